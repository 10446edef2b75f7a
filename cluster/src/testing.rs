//! A throwaway PostgreSQL server for tests ([`PgServer`]): a new data
//! directory in a temporary directory, a server on an ephemeral port of
//! 127.0.0.1, stopped and deleted when dropped. Any cluster test (this
//! crate's, or end-to-end ones with the `testing` feature) can use it.
//!
//! PostgreSQL refuses to run as root: under root the server runs as the
//! `postgres` user (the temporary directory is given to it); under any
//! other user it runs as that user. The binaries come from
//! `$ROOMHOST_PG_BIN`, else `/usr/lib/postgresql/15/bin`. The server runs
//! with `fsync = off`: tests exercise PostgreSQL's transactions, not its
//! survival of power loss.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The PostgreSQL binaries used unless `ROOMHOST_PG_BIN` says otherwise.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the test server could not be started.
#[derive(Debug, thiserror::Error)]
#[error("test PostgreSQL: {0}")]
pub struct FixtureError(String);

fn fail(what: impl std::fmt::Display) -> FixtureError {
    FixtureError(what.to_string())
}

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    port: u16,
}

/// The uid and gid of user `name`.
fn user_ids(name: &str) -> Result<(u32, u32), FixtureError> {
    let id = |flag: &str| -> Result<u32, FixtureError> {
        let out = Command::new("id")
            .args([flag, name])
            .output()
            .map_err(|e| fail(format!("cannot run `id`: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "PostgreSQL refuses to run as root, and there is no user {name:?} to run it as"
            )));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| fail(format!("`id {flag} {name}`: {e}")))
    };
    Ok((id("-u")?, id("-g")?))
}

fn am_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl PgServer {
    /// Initialises a data directory and starts a server on a free port;
    /// returns once it accepts connections.
    pub fn start() -> Result<PgServer, FixtureError> {
        let bin = std::env::var_os("ROOMHOST_PG_BIN")
            .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from);
        if !bin.join("postgres").is_file() {
            return Err(fail(format!(
                "no PostgreSQL server in {} (install postgresql-15, or set ROOMHOST_PG_BIN)",
                bin.display()
            )));
        }
        let run_as = if am_root() {
            Some(user_ids("postgres")?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("roomhost-pg-")
            .tempdir()
            .map_err(|e| fail(format!("temporary directory: {e}")))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| fail(format!("chown {}: {e}", dir.path().display())))?;
        }
        let mut server = PgServer {
            dir,
            bin,
            run_as,
            child: None,
            port: 0,
        };
        let init = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .args(["--no-instructions", "--locale=C"])
            .output()
            .map_err(|e| fail(format!("cannot run initdb: {e}")))?;
        if !init.status.success() {
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            )));
        }
        let mut last = String::new();
        for _ in 0..3 {
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(error) => last = error.0,
            }
        }
        Err(fail(last))
    }

    /// A command from the PostgreSQL binaries, as the user it runs as.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server on a port that was free a moment ago.
    fn launch(&mut self) -> Result<(), FixtureError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| fail(format!("no free port: {e}")))?
            .port();
        let log_path = self.dir.path().join("postgres.log");
        let log = std::fs::File::create(&log_path).map_err(|e| fail(format!("log file: {e}")))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))
                .map_err(|e| fail(format!("chown the log: {e}")))?;
        }
        let err = log
            .try_clone()
            .map_err(|e| fail(format!("log file: {e}")))?;
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=100"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| fail(format!("cannot start postgres: {e}")))?;
        let started = Instant::now();
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(fail(format!("postgres exited ({status}): {log}")));
            }
            if postgres::Client::connect(&url, postgres::NoTls).is_ok() {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "postgres did not accept connections within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (dropping one of that name first); its URL.
    pub fn create_database(&self, name: &str) -> Result<String, FixtureError> {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| fail(format!("connect: {e}")))?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        for sql in [
            format!("DROP DATABASE IF EXISTS {quoted}"),
            format!("CREATE DATABASE {quoted}"),
        ] {
            admin
                .batch_execute(&sql)
                .map_err(|e| fail(format!("{sql}: {}", crate::error::message(&e))))?;
        }
        Ok(self.url(name))
    }

    /// The temporary directory holding the data directory and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // A fast shutdown: it ends sessions and stops without a checkpoint
        // wait; the data is thrown away anyway.
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}
