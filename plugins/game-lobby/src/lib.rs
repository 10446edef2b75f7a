//! The game-lobby plugin (in progress).
