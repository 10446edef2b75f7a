//! The synchronization rules, free of I/O so they can be tested by table:
//! the party's playback state, the `state_update` filter, the ready set
//! and the pending play.
//!
//! - **State.** `play`/`pause` set the play state (at the event, as the
//!   reference server does, so the host's own `state_update`s that follow
//!   are not mistaken for changes); every accepted `player_event` and
//!   relayed `state_update` sets the position. A `seek` carrying a valid
//!   `play_state` sets it too.
//! - **Filter.** A host `state_update` is relayed when its `play_state`
//!   differs from the party's, or when all of: the last accepted
//!   `player_event` is at least `command_cooldown_ms` old; the last relayed
//!   `state_update` is at least `min_state_update_interval_ms` old (or there
//!   is none); the position moved by at least `position_jitter_threshold`
//!   seconds (either way) from the party's.
//! - **Ready.** The host starts ready; a joiner is not ready until it sends
//!   `ready`. A `play` with everyone ready starts at once; otherwise it
//!   becomes the pending play, which starts when the last member is ready
//!   or `max_ready_wait_ms` after it was recorded.

use std::collections::BTreeSet;

use roomhost_sdk::ClientId;

use crate::config::Config;
use crate::envelope::PlayState;

/// A play waiting for unready members.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingPlay {
    /// Where playback will start, in seconds.
    pub position: f64,
    /// When the play was requested (ms).
    pub created_at: u64,
}

/// A party's playback and synchronization state.
#[derive(Debug, Clone, PartialEq)]
pub struct Sync {
    /// The position last reported by the host, in seconds.
    pub position: f64,
    /// Playing or paused.
    pub play_state: PlayState,
    /// When the last `player_event` was accepted (ms): the command
    /// cooldown runs from it.
    pub last_command: Option<u64>,
    /// When the last `state_update` was relayed (ms).
    pub last_state_update: Option<u64>,
    /// Members that are ready to play.
    pub ready: BTreeSet<ClientId>,
    /// The play waiting for unready members, if any.
    pub pending: Option<PendingPlay>,
}

impl Sync {
    /// A party paused at `start_pos`.
    pub fn new(start_pos: f64) -> Self {
        Self {
            position: start_pos,
            play_state: PlayState::Paused,
            last_command: None,
            last_state_update: None,
            ready: BTreeSet::new(),
            pending: None,
        }
    }

    /// Whether every one of `members` is ready.
    pub fn all_ready<'a>(&self, members: impl IntoIterator<Item = &'a ClientId>) -> bool {
        members
            .into_iter()
            .all(|member| self.ready.contains(member))
    }

    /// Whether `now` falls inside the command cooldown.
    pub fn in_cooldown(&self, now: u64, config: &Config) -> bool {
        self.last_command
            .is_some_and(|at| now.saturating_sub(at) < config.command_cooldown_ms)
    }

    /// Whether a host `state_update` of `position` and `play_state` at
    /// `now` is relayed (see the module docs).
    pub fn accepts_state_update(
        &self,
        position: f64,
        play_state: PlayState,
        now: u64,
        config: &Config,
    ) -> bool {
        if play_state != self.play_state {
            return true;
        }
        let interval_passed = self
            .last_state_update
            .is_none_or(|at| now.saturating_sub(at) >= config.min_state_update_interval_ms);
        let moved = (position - self.position).abs() >= config.position_jitter_threshold;
        !self.in_cooldown(now, config) && interval_passed && moved
    }

    /// Records a relayed `state_update`.
    pub fn apply_state_update(&mut self, position: f64, play_state: PlayState, now: u64) {
        self.position = position;
        self.play_state = play_state;
        self.last_state_update = Some(now);
    }

    /// Records an accepted `player_event` (starting the cooldown).
    pub fn apply_command(&mut self, position: f64, play_state: Option<PlayState>, now: u64) {
        self.position = position;
        if let Some(play_state) = play_state {
            self.play_state = play_state;
        }
        self.last_command = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    /// One row: the party's state, the update, and whether it is relayed.
    struct Row {
        what: &'static str,
        play_state: PlayState,
        last_command: Option<u64>,
        last_state_update: Option<u64>,
        update_position: f64,
        update_state: PlayState,
        relayed: bool,
    }

    const fn row(
        what: &'static str,
        last_command: Option<u64>,
        last_state_update: Option<u64>,
        update_position: f64,
        update_state: PlayState,
        relayed: bool,
    ) -> Row {
        Row {
            what,
            play_state: PlayState::Playing,
            last_command,
            last_state_update,
            update_position,
            update_state,
            relayed,
        }
    }

    use PlayState::{Paused, Playing};

    /// The party is at 100.0 s, playing; the update arrives at `T`.
    const TABLE: &[Row] = &[
        row("first update, moved 1 s", None, None, 101.0, Playing, true),
        row(
            "moved exactly the threshold",
            None,
            None,
            100.5,
            Playing,
            true,
        ),
        row(
            "moved less than the threshold",
            None,
            None,
            100.4,
            Playing,
            false,
        ),
        row("moved backwards 0.6 s", None, None, 99.4, Playing, true),
        row("moved backwards 0.3 s", None, None, 99.7, Playing, false),
        row("interval passed", None, Some(T - 500), 101.0, Playing, true),
        row(
            "interval not passed",
            None,
            Some(T - 499),
            101.0,
            Playing,
            false,
        ),
        row("cooldown over", Some(T - 2000), None, 101.0, Playing, true),
        row(
            "inside cooldown",
            Some(T - 1999),
            None,
            101.0,
            Playing,
            false,
        ),
        row(
            "inside cooldown, big jump",
            Some(T - 10),
            None,
            500.0,
            Playing,
            false,
        ),
        row(
            "state change inside cooldown",
            Some(T - 10),
            None,
            100.0,
            Paused,
            true,
        ),
        row(
            "state change, interval not passed",
            None,
            Some(T - 1),
            100.0,
            Paused,
            true,
        ),
        row("state change, no movement", None, None, 100.0, Paused, true),
        row(
            "all conditions fail",
            Some(T - 1),
            Some(T - 1),
            100.1,
            Playing,
            false,
        ),
    ];

    #[test]
    fn state_update_filter() {
        let config = Config::default();
        for row in TABLE {
            let sync = Sync {
                position: 100.0,
                play_state: row.play_state,
                last_command: row.last_command,
                last_state_update: row.last_state_update,
                ..Sync::new(0.0)
            };
            assert_eq!(
                sync.accepts_state_update(row.update_position, row.update_state, T, &config),
                row.relayed,
                "{}",
                row.what
            );
        }
    }

    #[test]
    fn filter_follows_the_configuration() {
        let config = Config {
            command_cooldown_ms: 0,
            min_state_update_interval_ms: 0,
            position_jitter_threshold: 0.0,
            ..Config::default()
        };
        let sync = Sync {
            last_command: Some(T),
            last_state_update: Some(T),
            ..Sync::new(100.0)
        };
        assert!(sync.accepts_state_update(100.0, Paused, T, &config));
    }

    #[test]
    fn commands_and_updates_move_the_state() {
        let mut sync = Sync::new(5.0);
        assert_eq!(sync.play_state, Paused);
        sync.apply_command(7.0, Some(Playing), T);
        assert_eq!(
            (sync.position, sync.play_state, sync.last_command),
            (7.0, Playing, Some(T))
        );
        assert!(sync.in_cooldown(T + 1999, &Config::default()));
        assert!(!sync.in_cooldown(T + 2000, &Config::default()));
        sync.apply_command(9.0, None, T + 1);
        assert_eq!(sync.play_state, Playing);
        sync.apply_state_update(10.0, Paused, T + 2);
        assert_eq!(sync.last_state_update, Some(T + 2));
    }

    #[test]
    fn readiness() {
        let mut sync = Sync::new(0.0);
        sync.ready.insert(1);
        assert!(sync.all_ready(&[1]));
        assert!(!sync.all_ready(&[1, 2]));
        sync.ready.insert(2);
        assert!(sync.all_ready(&[1, 2]));
    }
}
