//! Runs one `cargo build` of the dev loop with a progress line: a spinner,
//! the elapsed time and cargo's latest step on a terminal, a single line
//! otherwise. Cargo's output is kept whole for the error report.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::BuildFailure;
use crate::build::PluginBuild;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Cargo output kept for a failure report (the end matters most).
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Builds the crate; returns the component or cargo's output on failure.
pub(crate) async fn run_build(build: &PluginBuild) -> Result<PathBuf, BuildFailure> {
    let mut command = build.command();
    command
        .arg("--color=never")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let latest = Arc::new(Mutex::new(String::new()));
    let reader_latest = latest.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<String, BuildFailure> {
        let mut child = command.spawn().map_err(|error| BuildFailure {
            output: format!("cannot run cargo: {error}"),
        })?;
        let mut output = String::new();
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.trim_start().starts_with("Compiling") {
                    *reader_latest.lock().unwrap_or_else(PoisonError::into_inner) =
                        line.trim().to_owned();
                }
                output.push_str(&line);
                output.push('\n');
            }
        }
        let status = child.wait().map_err(|error| BuildFailure {
            output: format!("cargo did not finish: {error}"),
        })?;
        if status.success() {
            Ok(output)
        } else {
            Err(BuildFailure {
                output: tail(output),
            })
        }
    });

    let package = build.package().to_owned();
    let on_terminal = std::io::stderr().is_terminal();
    if !on_terminal {
        eprintln!("building {package} …");
    }
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(task);
    let result = loop {
        tokio::select! {
            joined = &mut task => break joined,
            _ = ticker.tick(), if on_terminal => {
                let frame = SPINNER[(started.elapsed().as_millis() / 100) as usize % SPINNER.len()];
                let step = latest.lock().unwrap_or_else(PoisonError::into_inner).clone();
                eprint!(
                    "\r\x1b[2K{frame} building {package} {:.1}s  {step}",
                    started.elapsed().as_secs_f64()
                );
                let _ = std::io::stderr().flush();
            }
        }
    };
    if on_terminal {
        eprint!("\r\x1b[2K");
    }
    match result {
        Ok(Ok(_)) => build.output().map_err(BuildFailure::from),
        Ok(Err(failure)) => Err(failure),
        Err(join) => Err(BuildFailure {
            output: format!("the build task failed: {join}"),
        }),
    }
}

/// The end of cargo's output, cut on a line boundary.
fn tail(output: String) -> String {
    if output.len() <= MAX_OUTPUT_BYTES {
        return output;
    }
    let mut start = output.len() - MAX_OUTPUT_BYTES;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    let cut = output[start..]
        .find('\n')
        .map_or(start, |newline| start + newline + 1);
    format!("… (earlier output cut)\n{}", &output[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_line_boundary() {
        let short = "error: x\n".to_owned();
        assert_eq!(tail(short.clone()), short);
        let long = format!("{}\nlast line\n", "é".repeat(MAX_OUTPUT_BYTES));
        let kept = tail(long);
        assert!(kept.starts_with("… (earlier output cut)\n"));
        assert!(kept.ends_with("last line\n"));
        assert!(kept.len() < MAX_OUTPUT_BYTES + 64);
    }
}
