//! The watch-party plugin (in progress).
