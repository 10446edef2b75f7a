//! Bounds on text a plugin hands the host (log lines, reject and failure
//! reasons), so a plugin cannot make the host log or copy megabytes.

/// Longest plugin-supplied text (log line, reject reason, failure reason)
/// the host keeps.
pub(crate) const MAX_PLUGIN_TEXT: usize = 4096;

/// Cuts a plugin-supplied text to `max` bytes on a character boundary,
/// marking the cut with `…`.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
