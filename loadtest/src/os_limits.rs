//! Operating-system limits on how many connections one process can hold: the open-files
//! limit (raised to its hard limit at the start of a run) and, on Linux, the ephemeral port
//! range (every connection to one address:port needs its own local port).

use std::io;

/// The process's open-files limit (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileLimit {
    /// The limit in force.
    pub soft: u64,
    /// The most the soft limit can be raised to without privileges.
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit and returns the limit now in force.
///
/// Thousands of sockets do not fit the usual default soft limit of 1024. If raising fails
/// (some platforms refuse an unlimited hard value), the current limit is returned unchanged.
#[cfg(unix)]
// The two rlimit calls below are, with the getrusage call in `cpu`, the
// crate's only unsafe code; each says why it is sound.
#[allow(unsafe_code)]
pub fn raise_open_files_limit() -> io::Result<FileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    // rlim_t is u64 on Linux but not on every unix: the casts are needed elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Ok(FileLimit {
        soft: limit.rlim_cur as u64,
        hard: limit.rlim_max as u64,
    })
}

/// Raises the soft open-files limit to the hard limit (not available on this platform).
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> io::Result<FileLimit> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "open-files limit not available on this platform",
    ))
}

/// Size of the ephemeral port range, where the platform tells.
fn ephemeral_ports() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (low, high) = (bounds.next()??, bounds.next()??);
    high.checked_sub(low).map(|n| n + 1)
}

/// Descriptors the process needs besides the sockets (runtime, stdio, resolver).
const SPARE_FILES: u64 = 64;

/// Raises the open-files limit and returns it with a warning for each limit that `connections`
/// exceeds.
pub(crate) fn prepare(connections: u64) -> (Option<FileLimit>, Vec<String>) {
    let mut warnings = Vec::new();
    let limit = raise_open_files_limit().ok();
    if let Some(warning) = limit.and_then(|limit| file_limit_warning(connections, limit)) {
        warnings.push(warning);
    }
    if let Some(ports) = ephemeral_ports()
        && connections > ports
    {
        warnings.push(format!(
            "{connections} connections to one address need as many local ports but the \
             ephemeral port range has {ports} (net.ipv4.ip_local_port_range): connections \
             beyond it fail with 'address not available'"
        ));
    }
    (limit, warnings)
}

/// The warning for `connections` sockets under `limit` (after trying to raise it), if they do
/// not fit.
fn file_limit_warning(connections: u64, limit: FileLimit) -> Option<String> {
    if connections.saturating_add(SPARE_FILES) <= limit.soft {
        return None;
    }
    let how = if limit.soft < limit.hard {
        // Raising to the hard limit failed (some platforms refuse it): try by hand.
        format!("raise it with `ulimit -n {}` before the run", limit.hard)
    } else {
        "it is already at the hard limit, which only root can raise (`ulimit -Hn` as root, \
         /etc/security/limits.conf, or LimitNOFILE= for a systemd service)"
            .to_owned()
    };
    Some(format!(
        "{connections} connections requested but the open-files limit is {} (hard limit {}): \
         connections beyond about {} will fail with 'too many open files'; {how}",
        limit.soft,
        limit.hard,
        limit.soft.saturating_sub(SPARE_FILES)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn raising_reaches_the_hard_limit_or_keeps_the_current_one() {
        let limit = raise_open_files_limit().expect("getrlimit works");
        assert!(limit.soft <= limit.hard);
        assert!(limit.soft > 0);
    }

    #[test]
    fn warns_when_connections_exceed_the_file_limit() {
        let (limit, warnings) = prepare(u64::MAX / 2);
        if limit.is_some() {
            assert!(warnings.iter().any(|w| w.contains("open-files limit")));
        }
        let (_, warnings) = prepare(10);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_hint_says_what_can_raise_the_limit() {
        let at_hard = FileLimit {
            soft: 1024,
            hard: 1024,
        };
        let warning = file_limit_warning(5000, at_hard).expect("does not fit");
        assert!(warning.contains("only root"), "{warning}");
        assert!(warning.contains("limits.conf"), "{warning}");
        assert!(warning.contains("about 960"), "{warning}");
        let below_hard = FileLimit {
            soft: 1024,
            hard: 4096,
        };
        let warning = file_limit_warning(5000, below_hard).expect("does not fit");
        assert!(warning.contains("`ulimit -n 4096`"), "{warning}");
        assert!(!warning.contains("root"), "{warning}");
        assert_eq!(file_limit_warning(960, at_hard), None);
        assert!(file_limit_warning(u64::MAX, at_hard).is_some());
    }
}
