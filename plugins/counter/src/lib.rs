//! A shared counter per room.
//!
//! Clients send `increment` / `decrement` (or JSON
//! `{"op": "increment" | "decrement", "by": n}` with `n` in
//! `1..=1_000_000`, default 1). After every accepted command the room
//! broadcasts `{"count": n}` to everyone; a new client receives the current
//! `{"count": n}` on connect. Anything else gets `{"error": "..."}` back.
//! Configuration: `{"start": i64}` (default 0). The room's listing metadata
//! is `{"count": n}`. The count saturates at the `i64` bounds.

use roomhost_sdk::{
    ClientId, ClientInfo, InitInfo, Message, Rejection, Room, RoomService, room_service,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The largest step a single command may take.
pub const MAX_STEP: i64 = 1_000_000;

/// The room service: one counter. Its state survives hot reloads
/// (`roomhost dev`) through serde.
#[derive(Debug, Default, Serialize, Deserialize)]
#[room_service(snapshot = serde)]
pub struct Counter {
    count: i64,
}

/// The room configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    start: i64,
}

/// A JSON command.
#[derive(Debug, Deserialize)]
struct JsonCommand {
    op: String,
    by: Option<serde_json::Value>,
}

impl Counter {
    /// The current count.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// Parses a frame into a signed step, or the error to send back.
    fn parse(message: &Message) -> Result<i64, String> {
        let Some(text) = message.as_text() else {
            return Err("unknown command: binary frames are not supported".to_owned());
        };
        match text.trim() {
            "increment" => return Ok(1),
            "decrement" => return Ok(-1),
            _ => {}
        }
        let Ok(command) = serde_json::from_str::<JsonCommand>(text) else {
            return Err(format!("unknown command {}", quoted_prefix(text)));
        };
        let sign = match command.op.as_str() {
            "increment" => 1,
            "decrement" => -1,
            other => return Err(format!("unknown command {}", quoted_prefix(other))),
        };
        let by = match command.by {
            None => 1,
            Some(by) => by
                .as_i64()
                .filter(|by| (1..=MAX_STEP).contains(by))
                .ok_or_else(|| format!("\"by\" must be an integer from 1 to {MAX_STEP}"))?,
        };
        Ok(sign * by)
    }

    fn publish(&self, room: &mut Room<'_>) {
        room.broadcast(Message::json(&json!({ "count": self.count })), &[]);
        self.update_info(room);
    }

    fn update_info(&self, room: &mut Room<'_>) {
        if let Err(err) = room.set_info(&json!({ "count": self.count })) {
            room.warn(&err.to_string());
        }
    }
}

impl RoomService for Counter {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let config = info.config::<Config>().unwrap_or_else(|err| {
            room.warn(&format!("invalid config, starting at 0: {err}"));
            Config::default()
        });
        self.count = config.start;
        self.update_info(room);
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        room.send(client.id, Message::json(&json!({ "count": self.count })));
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        match Self::parse(&message) {
            Ok(step) => {
                self.count = self.count.saturating_add(step);
                self.publish(room);
            }
            Err(error) => room.send(client, Message::json(&json!({ "error": error }))),
        }
    }
}

/// `text` quoted for an error message, cut to 64 characters.
fn quoted_prefix(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomhost_sdk::DisconnectReason;
    use roomhost_sdk::testing::TestRoom;
    use serde_json::Value;

    fn count(n: i64) -> Value {
        json!({ "count": n })
    }

    #[test]
    fn new_client_gets_the_count() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        assert_eq!(room.take_sent_json(alice), [count(0)]);
        assert_eq!(room.info(), Some(count(0)));
    }

    #[test]
    fn config_sets_the_start() {
        let mut room = TestRoom::<Counter>::with_config(&json!({ "start": -5 }));
        let alice = room.connect();
        assert_eq!(room.take_sent_json(alice), [count(-5)]);
        assert_eq!(room.info(), Some(count(-5)));
    }

    #[test]
    fn invalid_config_warns_and_starts_at_zero() {
        let room = TestRoom::<Counter>::builder()
            .raw_config(r#"{"start": "ten"}"#)
            .build();
        assert_eq!(room.service().count(), 0);
        assert!(room.logs()[0].1.starts_with("invalid config"));
    }

    #[test]
    fn text_commands_broadcast_to_everyone() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        let bob = room.connect();
        room.take_all();
        room.message(alice, "increment");
        room.message(bob, " increment\n");
        room.message(bob, "decrement");
        for client in [alice, bob] {
            assert_eq!(room.take_sent_json(client), [count(1), count(2), count(1)]);
        }
        assert_eq!(room.info(), Some(count(1)));
    }

    #[test]
    fn json_commands_take_a_step() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        room.take_all();
        room.message(alice, r#"{"op":"increment","by":10}"#);
        room.message(alice, r#"{"op":"decrement","by":3}"#);
        room.message(alice, r#"{"op":"decrement"}"#);
        assert_eq!(room.take_sent_json(alice), [count(10), count(7), count(6)]);
    }

    #[test]
    fn bad_steps_are_errors_for_the_sender_only() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        let bob = room.connect();
        room.take_all();
        for by in ["0", "-1", "1000001", "1.5", "\"2\"", "[]"] {
            room.message(alice, format!(r#"{{"op":"increment","by":{by}}}"#));
            let reply = room.take_sent_json(alice);
            assert_eq!(reply.len(), 1, "by {by}");
            assert_eq!(
                reply[0]["error"],
                "\"by\" must be an integer from 1 to 1000000"
            );
        }
        room.message(alice, r#"{"op":"increment","by":1000000}"#);
        assert_eq!(room.take_sent_json(bob), [count(1_000_000)]);
        assert_eq!(room.service().count(), 1_000_000);
    }

    #[test]
    fn unknown_commands_are_errors() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        let bob = room.connect();
        room.take_all();
        room.message(alice, "reset");
        room.message(alice, r#"{"op":"reset"}"#);
        room.message(alice, "{not json");
        room.message(alice, vec![1, 2, 3]);
        room.message(alice, "x".repeat(1000));
        let errors: Vec<_> = room
            .take_sent_json(alice)
            .into_iter()
            .map(|reply| reply["error"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(errors[0], r#"unknown command "reset""#);
        assert_eq!(errors[1], r#"unknown command "reset""#);
        assert_eq!(errors[2], r#"unknown command "{not json""#);
        assert!(errors[3].contains("binary"));
        assert_eq!(
            errors[4],
            format!("unknown command \"{}\"...", "x".repeat(64))
        );
        assert!(room.take_sent(bob).is_empty());
        assert_eq!(room.service().count(), 0);
    }

    #[test]
    fn count_saturates() {
        let mut room = TestRoom::<Counter>::with_config(&json!({ "start": i64::MAX - 1 }));
        let alice = room.connect();
        room.message(alice, r#"{"op":"increment","by":5}"#);
        assert_eq!(room.service().count(), i64::MAX);
        room.message(alice, "increment");
        assert_eq!(room.service().count(), i64::MAX);

        let mut room = TestRoom::<Counter>::with_config(&json!({ "start": i64::MIN }));
        let alice = room.connect();
        room.message(alice, "decrement");
        assert_eq!(room.service().count(), i64::MIN);
    }

    #[test]
    fn departures_do_not_change_the_count() {
        let mut room = TestRoom::<Counter>::new();
        let alice = room.connect();
        room.message(alice, "increment");
        room.disconnect(alice, DisconnectReason::Closed);
        let bob = room.connect();
        assert_eq!(room.take_sent_json(bob), [count(1)]);
    }
}
