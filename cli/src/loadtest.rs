//! `roomhost loadtest`: flags for `roomhost_loadtest::LoadConfig`, a live progress line on
//! stderr, and the report (a table, or JSON with `--json`) on stdout.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use roomhost_loadtest::config::{DEFAULT_MAX_CONNECTIONS, DEFAULT_ROOM_PREFIX, DEFAULT_URL};
use roomhost_loadtest::{LoadConfig, Progress};

/// Arguments of `roomhost loadtest`.
#[derive(Args)]
pub struct LoadtestArgs {
    /// Base WebSocket URL; room i is {url}/{room-prefix}{i}. A ?query is sent with every
    /// connection.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Prefix of the room ids.
    #[arg(long, default_value = DEFAULT_ROOM_PREFIX, value_name = "PREFIX")]
    room_prefix: String,
    /// Connect every client to --url itself, with no room id added: for a server with a
    /// single room endpoint (e.g. Stateroom's /ws, to compare it side by side). Needs
    /// --rooms 1.
    #[arg(long)]
    single_url: bool,
    /// Number of rooms.
    #[arg(long, default_value_t = 10)]
    rooms: u32,
    /// Clients connected to each room.
    #[arg(long, default_value_t = 10, value_name = "N")]
    clients_per_room: u32,
    /// Messages per second sent by each client (at least 0.0001); 0 = as fast as the room
    /// echoes them back, with at most --max-in-flight of a client's own frames outstanding.
    ///
    /// At a fixed rate, latency is measured from each frame's scheduled send time (as wrk2
    /// does): a client held back by a slow server or a busy core counts the wait as latency
    /// instead of hiding it. A client more than 1 s behind skips the missed sends, and those
    /// due in the measurement window are reported as "skipped sends" and counted as lost. At
    /// --rate 0 latency is measured from the actual send.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "MSGS_PER_SEC",
        allow_negative_numbers = true
    )]
    rate: f64,
    /// With --rate 0: own frames a client may have sent and not yet received back.
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_in_flight: u32,
    /// Size of each frame in bytes (at least 16: send time, sender and sequence).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    payload_bytes: usize,
    /// Send binary frames (default: ASCII text frames).
    #[arg(long)]
    binary: bool,
    /// Open the connections evenly over this many seconds.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = parse_secs)]
    ramp_up_secs: Duration,
    /// Traffic after the ramp-up that is not measured, in seconds.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = parse_secs)]
    warmup_secs: Duration,
    /// Length of the measurement window, in seconds (at most 3600).
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_secs)]
    duration_secs: Duration,
    /// Print the report as JSON on stdout (default: a table).
    #[arg(long)]
    json: bool,
    /// Refuse scenarios with more connections than this (at most 1,000,000).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: u64,
    /// Allow a target that is not loopback. Only load-test deployments you are responsible
    /// for.
    #[arg(long)]
    allow_remote: bool,
}

/// Seconds as a non-negative decimal number, e.g. `2` or `0.5`.
fn parse_secs(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{value:?} is not a non-negative number of seconds"))
}

pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let config = LoadConfig {
        url: args.url,
        room_prefix: args.room_prefix,
        single_url: args.single_url,
        rooms: args.rooms,
        clients_per_room: args.clients_per_room,
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        payload_bytes: args.payload_bytes,
        binary: args.binary,
        ramp_up: args.ramp_up_secs,
        warmup: args.warmup_secs,
        duration: args.duration_secs,
        allow_remote: args.allow_remote,
        max_connections: args.max_connections,
        ..LoadConfig::default()
    };
    // Refuse bad input before starting a runtime or printing anything.
    let plan = config.validate()?;
    eprintln!(
        "loadtest: {} rooms × {} clients at {}, {:.1} s ramp-up, {:.1} s warm-up, {:.1} s measured",
        config.rooms,
        config.clients_per_room,
        plan.url_pattern(),
        config.ramp_up.as_secs_f64(),
        config.warmup.as_secs_f64(),
        config.duration.as_secs_f64(),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    let mut line = ProgressLine::new();
    let report = runtime.block_on(roomhost_loadtest::run(config, |p| line.show(p)))?;
    line.finish();

    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{report}");
    }
    if report.connections.established == 0 {
        bail!("no connection could be established (see the errors above)");
    }
    Ok(())
}

/// Progress on stderr: one line rewritten in place on a terminal, a line per update
/// otherwise (logs and CI keep every update).
struct ProgressLine {
    terminal: bool,
    shown: bool,
}

impl ProgressLine {
    fn new() -> Self {
        ProgressLine {
            terminal: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, progress: &Progress) {
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if self.terminal {
            // \r and "erase line" rewrite the same line.
            write!(stderr, "\r\x1b[2K{progress}")
        } else {
            writeln!(stderr, "{progress}")
        };
        let _ = stderr.flush();
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.terminal && self.shown {
            eprintln!();
        }
    }
}
