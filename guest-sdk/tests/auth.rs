//! Token verification through the harness: `TestAuth`.

use roomhost_sdk::testing::TestRoom;
use roomhost_sdk::{ClientId, ClientInfo, Message, Rejection, Room, RoomService, room_service};
use serde_json::json;

/// Verifies every text frame as a token and reports the outcome.
#[derive(Default)]
struct TokenGate;

#[room_service]
impl RoomService for TokenGate {
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let enabled = room.auth_enabled();
        room.send(client.id, format!("auth {enabled}"));
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let token = message.as_text().unwrap_or_default().to_owned();
        let reply = match room.verify_token(&token) {
            Ok(claims) => format!("ok {claims}"),
            Err(err) => format!("refused {}", err.message()),
        };
        room.send(client, reply);
    }
}

#[test]
fn auth_is_disabled_by_default() {
    use roomhost_sdk::testing::NO_TOKEN_KEY;

    let mut room = TestRoom::<TokenGate>::new();
    let alice = room.connect();
    room.message(alice, "anything");
    assert_eq!(
        room.take_sent(alice),
        ["auth false".to_owned(), format!("refused {NO_TOKEN_KEY}")]
    );
    assert_eq!(room.verified_tokens(), ["anything"]);
}

#[test]
fn auth_table_and_closure_decide_verification() {
    use roomhost_sdk::testing::{TestAuth, UNKNOWN_TOKEN};

    let auth = TestAuth::tokens([
        ("good", Ok(json!({ "sub": "u1", "name": "Alice" }))),
        ("expired", Err("token expired")),
    ]);
    assert!(auth.is_enabled());
    let mut room = TestRoom::<TokenGate>::builder().auth(auth).build();
    let alice = room.connect();
    room.message(alice, "good");
    room.message(alice, "expired");
    room.message(alice, "forged");
    assert_eq!(
        room.take_sent(alice),
        [
            "auth true".to_owned(),
            r#"ok {"name":"Alice","sub":"u1"}"#.to_owned(),
            "refused token expired".to_owned(),
            format!("refused {UNKNOWN_TOKEN}"),
        ]
    );

    room.set_auth(TestAuth::from_fn(|token| {
        Ok(json!({ "name": token.to_uppercase() }))
    }));
    room.message(alice, "bob");
    assert_eq!(room.take_sent(alice), [r#"ok {"name":"BOB"}"#]);

    room.set_auth(TestAuth::disabled());
    let bob = room.connect();
    assert_eq!(room.take_sent(bob), ["auth false"]);
}
