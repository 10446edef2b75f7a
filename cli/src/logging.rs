//! The host's log output: human-readable text (colour only on a terminal)
//! or one JSON object per line for log shippers, on stderr.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, fields, span).
    Json,
}

/// The logging flags of `serve` and `dev`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct LogArgs {
    /// Log line format. `RUST_LOG` sets the levels (default: info, with
    /// wasmtime, cranelift and the file watcher at warn).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value_t,
        env = "ROOMHOST_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,
}

/// The levels used when `RUST_LOG` is not set. The file watcher's info lines
/// ("unable to remove watch descriptor" for every deleted build file) read
/// like errors and say nothing a user can act on.
const DEFAULT_FILTER: &str = "info,wasmtime=warn,cranelift=warn,notify=warn";

/// Installs the global subscriber writing to stderr.
pub(crate) fn init(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}
