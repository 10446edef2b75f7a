//! Containment of host bugs: a panic in a room's or a connection's task is
//! caught where the task is driven, turned into a reason, and handled like a
//! failure of that room or connection, never of the process.

use std::any::Any;

/// The text of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}
