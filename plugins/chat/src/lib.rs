//! Chat rooms with named participants.
//!
//! Clients join with `?name=alice` and exchange JSON messages; see the
//! README for the protocol. Configuration:
//! `{"typing_timeout_ms": u64, "max_message_len": usize}`.

use std::collections::BTreeMap;
use std::time::Duration;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Rejection, Room, RoomService,
    TimerId, room_service,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest name, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 32;

/// The room configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// How long a `typing` indicator lasts without a refresh.
    pub typing_timeout_ms: u64,
    /// The longest `say` text, in characters.
    pub max_message_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            typing_timeout_ms: 3000,
            max_message_len: 1000,
        }
    }
}

impl Config {
    /// Reads the configuration leniently: unknown fields are ignored, and a
    /// field of the wrong type (or a configuration that is not an object)
    /// is reported in the returned warnings and keeps its default.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut config = Self::default();
        let mut warnings = Vec::new();
        let value = match text.trim() {
            "" | "null" => return (config, warnings),
            text => serde_json::from_str::<Value>(text),
        };
        let fields = match value {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => {
                warnings.push("config is not a JSON object; using defaults".to_owned());
                return (config, warnings);
            }
            Err(err) => {
                warnings.push(format!("config is not valid JSON ({err}); using defaults"));
                return (config, warnings);
            }
        };
        field(
            &fields,
            "typing_timeout_ms",
            &mut config.typing_timeout_ms,
            &mut warnings,
        );
        field(
            &fields,
            "max_message_len",
            &mut config.max_message_len,
            &mut warnings,
        );
        (config, warnings)
    }
}

/// Overwrites `slot` with `fields[name]` if present and of the right type.
fn field<T: DeserializeOwned + std::fmt::Debug>(
    fields: &serde_json::Map<String, Value>,
    name: &str,
    slot: &mut T,
    warnings: &mut Vec<String>,
) {
    let Some(value) = fields.get(name) else {
        return;
    };
    match T::deserialize(value) {
        Ok(parsed) => *slot = parsed,
        Err(err) => warnings.push(format!(
            "config field {name:?} is invalid ({err}); using {slot:?}"
        )),
    }
}

/// A connected participant.
#[derive(Debug, Serialize, Deserialize)]
struct Member {
    name: String,
    typing: bool,
}

/// A message from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    Say { text: String },
    Typing,
}

/// The room service. Members, names and typing flags survive hot reloads
/// (`roomhost dev`) through serde.
#[derive(Debug, Default, Serialize, Deserialize)]
#[room_service(snapshot = serde)]
pub struct Chat {
    config: Config,
    /// Members by client id: ids grow with each connection, so this is join
    /// order.
    members: BTreeMap<ClientId, Member>,
}

impl Chat {
    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The members' names, in join order.
    pub fn names(&self) -> Vec<&str> {
        self.members.values().map(|m| m.name.as_str()).collect()
    }

    /// The name a client asks for, or why it cannot have it.
    fn requested_name(&self, client: &ClientInfo) -> Result<String, String> {
        let Some(raw) = client.query_param("name") else {
            return Err("a name is required: connect with ?name=YOUR_NAME".to_owned());
        };
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(format!("names must be 1 to {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("names cannot contain control characters".to_owned());
        }
        let taken = self
            .members
            .values()
            .any(|member| member.name.to_lowercase() == name.to_lowercase());
        if taken {
            return Err(format!("the name {name:?} is already taken in this room"));
        }
        Ok(name.to_owned())
    }

    fn say(&mut self, room: &mut Room<'_>, client: ClientId, text: String) {
        let len = text.chars().count();
        if text.trim().is_empty() {
            return error(room, client, "text must not be empty");
        }
        if len > self.config.max_message_len {
            let max = self.config.max_message_len;
            return error(
                room,
                client,
                &format!("text is {len} characters; the limit is {max}"),
            );
        }
        let Some(member) = self.members.get_mut(&client) else {
            return;
        };
        if member.typing {
            // `said` tells the others this member stopped typing.
            member.typing = false;
            room.cancel_timer(client);
        }
        let said = json!({
            "type": "said",
            "from": member.name,
            "text": text,
            "ts": room.now_ms(),
        });
        room.broadcast(Message::json(&said), &[]);
    }

    fn typing(&mut self, room: &mut Room<'_>, client: ClientId) {
        let Some(member) = self.members.get_mut(&client) else {
            return;
        };
        let timeout = Duration::from_millis(self.config.typing_timeout_ms);
        if let Err(err) = room.set_timer(client as TimerId, timeout) {
            room.warn(&format!("cannot track typing of {:?}: {err}", member.name));
            return;
        }
        if !member.typing {
            member.typing = true;
            let typing = json!({ "type": "typing", "name": member.name });
            room.broadcast(Message::json(&typing), &[client]);
        }
    }

    fn update_info(&self, room: &mut Room<'_>) {
        if let Err(err) = room.set_info(&json!({ "members": self.members.len() })) {
            room.warn(&err.to_string());
        }
    }
}

/// Replies `{"type":"error","message":...}` to `client`.
fn error(room: &mut Room<'_>, client: ClientId, message: &str) {
    room.send(
        client,
        Message::json(&json!({ "type": "error", "message": message })),
    );
}

impl RoomService for Chat {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let (config, warnings) = Config::parse(&info.config);
        for warning in warnings {
            room.warn(&warning);
        }
        self.config = config;
        self.update_info(room);
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let name = self.requested_name(client)?;
        let mut members = self.names();
        members.push(&name);
        let welcome = json!({ "type": "welcome", "you": name, "members": members });
        room.send(client.id, Message::json(&welcome));
        let joined = json!({ "type": "joined", "name": name });
        room.broadcast(Message::json(&joined), &[client.id]);
        self.members.insert(
            client.id,
            Member {
                name,
                typing: false,
            },
        );
        self.update_info(room);
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        if message.is_binary() {
            return error(room, client, "binary frames are not supported");
        }
        match message.parse_json::<Incoming>() {
            Ok(Incoming::Say { text }) => self.say(room, client, text),
            Ok(Incoming::Typing) => self.typing(room, client),
            Err(err) => error(room, client, &format!("invalid message: {err}")),
        }
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, _: DisconnectReason) {
        let Some(member) = self.members.remove(&client) else {
            return;
        };
        if member.typing {
            room.cancel_timer(client);
        }
        let left = json!({ "type": "left", "name": member.name });
        room.broadcast(Message::json(&left), &[]);
        self.update_info(room);
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        let client = timer as ClientId;
        let Some(member) = self.members.get_mut(&client) else {
            return;
        };
        if member.typing {
            member.typing = false;
            let stopped = json!({ "type": "stopped_typing", "name": member.name });
            room.broadcast(Message::json(&stopped), &[client]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomhost_sdk::testing::{DEFAULT_START_MS, TestRoom};

    fn join(room: &mut TestRoom<Chat>, name: &str) -> ClientId {
        room.connect_with_query(&format!("name={name}"))
    }

    #[test]
    fn welcome_and_joined() {
        let mut room = TestRoom::<Chat>::new();
        let alice = join(&mut room, "alice");
        assert_eq!(
            room.take_sent_json(alice),
            [json!({"type": "welcome", "you": "alice", "members": ["alice"]})]
        );
        let bob = join(&mut room, "%20Bob+");
        assert_eq!(
            room.take_sent_json(bob),
            [json!({"type": "welcome", "you": "Bob", "members": ["alice", "Bob"]})]
        );
        assert_eq!(
            room.take_sent_json(alice),
            [json!({"type": "joined", "name": "Bob"})]
        );
        assert_eq!(room.info(), Some(json!({"members": 2})));
    }

    #[test]
    fn invalid_names_are_rejected() {
        let mut room = TestRoom::<Chat>::new();
        join(&mut room, "alice");
        let reject = |room: &mut TestRoom<Chat>, query: &str| {
            room.try_connect(query).expect_err(query).to_string()
        };
        assert!(reject(&mut room, "").contains("name is required"));
        assert!(reject(&mut room, "name=").contains("1 to 32"));
        assert!(reject(&mut room, "name=+++").contains("1 to 32"));
        assert!(reject(&mut room, &format!("name={}", "x".repeat(33))).contains("1 to 32"));
        assert!(reject(&mut room, "name=a%0Ab").contains("control"));
        assert!(reject(&mut room, "name=ALICE").contains("already taken"));
        assert!(
            room.try_connect(&format!("name={}", "é".repeat(32)))
                .is_ok()
        );
        assert_eq!(room.clients().len(), 2);
    }

    #[test]
    fn say_reaches_everyone() {
        let mut room = TestRoom::<Chat>::new();
        let alice = join(&mut room, "alice");
        let bob = join(&mut room, "bob");
        room.take_all();
        room.message(alice, r#"{"type":"say","text":"hello"}"#);
        let said =
            json!({"type": "said", "from": "alice", "text": "hello", "ts": DEFAULT_START_MS});
        assert_eq!(room.take_sent_json(alice), std::slice::from_ref(&said));
        assert_eq!(room.take_sent_json(bob), [said]);
    }

    #[test]
    fn say_limits() {
        let mut room = TestRoom::<Chat>::with_config(&json!({ "max_message_len": 5 }));
        let alice = join(&mut room, "alice");
        let bob = join(&mut room, "bob");
        room.take_all();
        room.message(alice, r#"{"type":"say","text":"ééééé"}"#);
        room.message(alice, r#"{"type":"say","text":"toolong"}"#);
        room.message(alice, r#"{"type":"say","text":"  "}"#);
        let replies = room.take_sent_json(alice);
        assert_eq!(replies[0]["type"], "said");
        assert_eq!(
            replies[1],
            json!({"type": "error", "message": "text is 7 characters; the limit is 5"})
        );
        assert_eq!(replies[2]["message"], "text must not be empty");
        assert_eq!(room.take_sent_json(bob).len(), 1);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut room = TestRoom::<Chat>::new();
        let alice = join(&mut room, "alice");
        let bob = join(&mut room, "bob");
        room.take_all();
        for bad in [
            "not json",
            "{}",
            r#"{"type":"shout"}"#,
            r#"{"type":"say"}"#,
            r#"{"type":"say","text":3}"#,
            "[1]",
        ] {
            room.message(alice, bad);
            let reply = room.take_sent_json(alice);
            assert_eq!(reply.len(), 1, "{bad}");
            assert_eq!(reply[0]["type"], "error", "{bad}");
            assert!(
                reply[0]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("invalid message"))
            );
        }
        room.message(alice, vec![0u8, 1]);
        assert_eq!(
            room.take_sent_json(alice),
            [json!({"type": "error", "message": "binary frames are not supported"})]
        );
        assert!(room.take_sent(bob).is_empty());
    }

    #[test]
    fn typing_indicator_times_out() {
        let mut room = TestRoom::<Chat>::new();
        let alice = join(&mut room, "alice");
        let bob = join(&mut room, "bob");
        room.take_all();
        room.message(alice, r#"{"type":"typing"}"#);
        assert!(room.take_sent(alice).is_empty());
        assert_eq!(
            room.take_sent_json(bob),
            [json!({"type": "typing", "name": "alice"})]
        );
        assert_eq!(
            room.pending_timers(),
            [(alice, Duration::from_millis(3000))]
        );

        // A refresh re-arms the timer without telling the others again.
        room.advance(Duration::from_millis(2000));
        room.message(alice, r#"{"type":"typing"}"#);
        assert!(room.take_sent(bob).is_empty());
        room.advance(Duration::from_millis(2999));
        assert!(room.take_sent(bob).is_empty());
        room.advance(Duration::from_millis(1));
        assert_eq!(
            room.take_sent_json(bob),
            [json!({"type": "stopped_typing", "name": "alice"})]
        );
        assert!(room.take_sent(alice).is_empty());
        assert!(room.pending_timers().is_empty());
    }

    #[test]
    fn say_and_disconnect_cancel_typing() {
        let mut room = TestRoom::<Chat>::with_config(&json!({ "typing_timeout_ms": 100 }));
        let alice = join(&mut room, "alice");
        let bob = join(&mut room, "bob");
        room.message(alice, r#"{"type":"typing"}"#);
        room.message(alice, r#"{"type":"say","text":"hi"}"#);
        assert!(room.pending_timers().is_empty());
        room.message(bob, r#"{"type":"typing"}"#);
        room.take_all();
        room.disconnect(bob, DisconnectReason::Closed);
        assert!(room.pending_timers().is_empty());
        room.advance(Duration::from_millis(500));
        assert_eq!(
            room.take_sent_json(alice),
            [json!({"type": "left", "name": "bob"})]
        );
        assert_eq!(room.info(), Some(json!({"members": 1})));
        // The name is free again.
        assert!(room.try_connect("name=bob").is_ok());
    }

    #[test]
    fn config_is_lenient() {
        let (config, warnings) = Config::parse(r#"{"typing_timeout_ms": 50, "extra": true}"#);
        assert_eq!(config.typing_timeout_ms, 50);
        assert_eq!(config.max_message_len, 1000);
        assert!(warnings.is_empty());

        let (config, warnings) =
            Config::parse(r#"{"typing_timeout_ms": "soon", "max_message_len": 10}"#);
        assert_eq!(
            config,
            Config {
                typing_timeout_ms: 3000,
                max_message_len: 10
            }
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("typing_timeout_ms"));

        assert_eq!(Config::parse("null"), (Config::default(), vec![]));
        assert_eq!(Config::parse("[]").1.len(), 1);
        assert_eq!(Config::parse("{").1.len(), 1);

        let room = TestRoom::<Chat>::builder()
            .raw_config(r#"{"max_message_len": -1}"#)
            .build();
        assert_eq!(room.service().config(), &Config::default());
        assert_eq!(room.logs().len(), 1);
    }
}
