//! Runs one `cargo build` of the dev loop with a progress line: a spinner,
//! the elapsed time and cargo's latest step on a terminal, a single line
//! otherwise. Cargo's output is read to the end whatever it contains (a
//! reader that stopped early would leave cargo blocked on a full pipe), kept
//! for the error report, and its warnings are counted.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::BuildFailure;
use crate::build::PluginBuild;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Cargo output kept for a failure report (the end matters most).
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// A successful build.
#[derive(Debug)]
pub(crate) struct Built {
    /// The component.
    pub(crate) wasm: PathBuf,
    /// Compiler (and cargo) warnings it printed.
    pub(crate) warnings: usize,
}

/// Builds the crate; returns the component or cargo's output on failure.
pub(crate) async fn run_build(build: &PluginBuild) -> Result<Built, BuildFailure> {
    let mut command = build.command();
    command
        .arg("--color=never")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let latest = Arc::new(Mutex::new(String::new()));
    let reader_latest = latest.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<usize, BuildFailure> {
        let mut child = command.spawn().map_err(|error| BuildFailure {
            output: format!("cannot run cargo: {error}"),
        })?;
        let output = match child.stderr.take() {
            // The pipe is closed when read_output returns, before the wait.
            Some(stderr) => read_output(stderr, &reader_latest),
            None => CargoOutput::default(),
        };
        let status = child.wait().map_err(|error| BuildFailure {
            output: format!("cargo did not finish: {error}"),
        })?;
        if status.success() {
            Ok(output.warnings)
        } else {
            Err(BuildFailure {
                output: tail(output.text),
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
        Ok(Ok(warnings)) => Ok(Built {
            wasm: build.output()?,
            warnings,
        }),
        Ok(Err(failure)) => Err(failure),
        Err(join) => Err(BuildFailure {
            output: format!("the build task failed: {join}"),
        }),
    }
}

/// What cargo printed: its text (the end of it, when it is long) and how
/// many warnings it reported.
#[derive(Debug, Default)]
struct CargoOutput {
    text: String,
    warnings: usize,
}

/// Reads cargo's stderr to the end, line by line, keeping invalid UTF-8 as
/// replacement characters; the latest "Compiling" step goes to `latest`.
/// Only a read error stops it early, and then dropping the pipe makes
/// cargo's next write fail rather than block.
fn read_output(stderr: impl Read, latest: &Mutex<String>) -> CargoOutput {
    let mut reader = BufReader::new(stderr);
    let mut output = CargoOutput::default();
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim_start().starts_with("Compiling") {
            *latest.lock().unwrap_or_else(PoisonError::into_inner) = line.trim().to_owned();
        }
        if is_warning(line) {
            output.warnings += 1;
        }
        output.text.push_str(line);
        output.text.push('\n');
        // Only the end is ever shown: keep memory bounded on endless output.
        if output.text.len() > 2 * MAX_OUTPUT_BYTES {
            output.text = tail(std::mem::take(&mut output.text));
        }
    }
    output
}

/// A line that starts a warning: rustc's `warning: ...` headers and
/// cargo's own, not the per-crate summaries ("`x` (lib) generated 3
/// warnings") or cargo's notices about a failing build.
fn is_warning(line: &str) -> bool {
    let Some(message) = line.strip_prefix("warning: ") else {
        return false;
    };
    let summary = message.starts_with('`') && message.contains(" generated ");
    let emitted = message.split_once(' ').is_some_and(|(count, rest)| {
        count.parse::<u64>().is_ok() && rest.starts_with("warning") && rest.ends_with("emitted")
    });
    !(summary || emitted || message.starts_with("build failed"))
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

    #[test]
    fn output_is_read_to_the_end_past_invalid_utf8() {
        let stderr: &[u8] = b"   Compiling demo v0.1.0 (/work/demo)\n\
            bad \xff\xfe bytes from a build script\n\
            warning: unused variable: `x`\n \
            --> src/lib.rs:3:9\n\
            warning: unused import: `Message`\n\
            warning: `demo` (lib) generated 2 warnings (run `cargo fix` to apply 2 suggestions)\n\
            warning: 2 warnings emitted\n\
            \x80\n\
            last line without a newline";
        let latest = Mutex::new(String::new());
        let output = read_output(stderr, &latest);
        assert!(
            output.text.contains("bad \u{fffd}\u{fffd} bytes"),
            "{}",
            output.text
        );
        assert!(
            output.text.ends_with("last line without a newline\n"),
            "{}",
            output.text
        );
        assert_eq!(output.warnings, 2);
        assert_eq!(
            *latest.lock().unwrap(),
            "Compiling demo v0.1.0 (/work/demo)"
        );
    }

    #[test]
    fn warnings_are_told_from_summaries() {
        assert!(is_warning("warning: unused variable: `x`"));
        assert!(is_warning("warning: unused manifest key: package.foo"));
        assert!(!is_warning("warning: `demo` (lib) generated 1 warning"));
        assert!(!is_warning("warning: 3 warnings emitted"));
        assert!(!is_warning(
            "warning: build failed, waiting for other jobs to finish..."
        ));
        assert!(!is_warning("  = warning: nested"));
        assert!(!is_warning("error: expected expression"));
    }

    #[test]
    fn endless_output_keeps_its_end_in_bounded_memory() {
        let line = "x".repeat(999) + "\n";
        let stderr = line.repeat(500) + "the end\n";
        let output = read_output(stderr.as_bytes(), &Mutex::new(String::new()));
        assert!(output.text.len() <= 2 * MAX_OUTPUT_BYTES + 1000);
        assert!(output.text.ends_with("the end\n"));
    }
}
