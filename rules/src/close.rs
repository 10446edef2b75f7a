//! WebSocket close codes a plugin may use, and the close reason length.

/// Normal closure.
pub const NORMAL: u16 = 1000;

/// Policy violation: the close code of a rejection that names no code.
pub const POLICY: u16 = 1008;

/// Longest close reason the WebSocket protocol allows, in bytes.
pub const MAX_REASON_BYTES: usize = 123;

/// Whether a plugin may close a client with `code`: 1000 (normal closure)
/// or the application range `3000..=4999`. Codes `1001..=2999` belong to the
/// protocol and the host; a plugin's other codes become 1000.
///
/// ```
/// use roomhost_rules::close::is_plugin_code;
/// assert!(is_plugin_code(1000) && is_plugin_code(4001));
/// assert!(!is_plugin_code(1011) && !is_plugin_code(5000));
/// ```
pub const fn is_plugin_code(code: u16) -> bool {
    code == NORMAL || (code >= 3000 && code <= 4999)
}

/// The close code a client rejected by `connect` gets: the plugin's code
/// when it is in the private range `4000..=4999`, 1008 otherwise.
///
/// ```
/// use roomhost_rules::close::rejection_code;
/// assert_eq!(rejection_code(Some(4403)), 4403);
/// assert_eq!(rejection_code(Some(1000)), 1008);
/// assert_eq!(rejection_code(None), 1008);
/// ```
pub const fn rejection_code(code: Option<u16>) -> u16 {
    match code {
        Some(code) if code >= 4000 && code <= 4999 => code,
        _ => POLICY,
    }
}

/// Cuts `reason` to at most [`MAX_REASON_BYTES`] on a character boundary.
///
/// ```
/// let long = "é".repeat(100);
/// let cut = roomhost_rules::close::truncate_reason(&long);
/// assert!(cut.len() <= 123);
/// assert!(cut.chars().all(|c| c == 'é'));
/// ```
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
