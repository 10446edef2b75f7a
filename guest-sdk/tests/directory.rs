//! The harness plays the lobby, hand-off and the room directory like the
//! host.

use roomhost_sdk::testing::{TestRoom, Transfer};
use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, Handoff, InitInfo, Message, Rejection, Room,
    RoomChange, RoomEntry, RoomService, TransferError, room_service,
};
use serde_json::json;

/// Moves clients on command and records every callback.
#[derive(Default)]
struct Mover {
    events: Vec<String>,
    lobby: bool,
    serve_root: Option<Result<(), String>>,
}

#[room_service]
impl RoomService for Mover {
    const LOBBY: bool = true;

    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        self.lobby = info.lobby;
        assert_eq!(room.is_lobby(), info.lobby);
        if info.config.contains("serve_root") {
            self.serve_root = Some(room.serve_root().map_err(|err| err.to_string()));
        }
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        self.events
            .push(format!("connect {} {:?}", client.id, client.handoff));
        if let Some(handoff) = &client.handoff
            && handoff.data.starts_with(b"no")
        {
            if handoff.data == b"no-but-move" {
                let result = room.transfer_to_room(client.id, "elsewhere", b"", true);
                self.events.push(outcome(result));
            }
            return Err("not today".into());
        }
        if client.query_param("move").is_some() {
            let result = room.transfer_to_room(client.id, "elsewhere", b"", true);
            self.events.push(outcome(result));
        }
        room.broadcast(format!("joined {}", client.id), &[client.id]);
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let text = message.as_text().unwrap_or_default().to_owned();
        let mut parts = text.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("go"), Some(to), create) => {
                let result = room.transfer_to_room(client, to, b"data", create == Some("create"));
                let moved = result.is_ok();
                room.send(client, outcome(result));
                if moved {
                    room.broadcast("after transfer", &[]);
                }
            }
            (Some("lobby"), _, _) => {
                let result = room.transfer_to_lobby(client, b"back");
                room.send(client, outcome(result));
            }
            (Some("rooms"), _, _) => {
                let ids: Vec<_> = room.rooms().into_iter().map(|r| r.room_id).collect();
                room.send(client, ids.join(","));
            }
            (Some("serve"), _, _) => {
                let result = room.serve_root();
                room.send(client, format!("{}", result.is_ok()));
            }
            _ => {}
        }
    }

    fn disconnect(&mut self, _: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        self.events.push(format!("disconnect {client} {reason:?}"));
    }

    fn room_changed(&mut self, room: &mut Room<'_>, change: RoomChange) {
        self.events.push(format!("changed {}", change.room_id()));
        room.broadcast(format!("changed {}", change.room_id()), &[]);
    }
}

/// `ok`, or `error: MESSAGE`.
fn outcome(result: Result<(), TransferError>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

fn lobby() -> TestRoom<Mover> {
    TestRoom::<Mover>::builder().lobby(true).build()
}

#[test]
fn lobby_flag_and_root() {
    let room = TestRoom::<Mover>::builder()
        .lobby(true)
        .raw_config("serve_root")
        .build();
    assert!(room.is_lobby());
    assert_eq!(room.room_id(), "");
    assert!(room.served_root());
    assert_eq!(room.service().serve_root, Some(Ok(())));

    let taken = TestRoom::<Mover>::builder()
        .lobby(true)
        .root_taken(true)
        .raw_config("serve_root")
        .build();
    assert!(!taken.served_root());
    assert!(matches!(taken.service().serve_root, Some(Err(_))));

    let not_lobby = TestRoom::<Mover>::builder()
        .raw_config("serve_root")
        .build();
    assert!(!not_lobby.served_root());
    assert!(matches!(not_lobby.service().serve_root, Some(Err(_))));

    // Only during init.
    let mut late = lobby();
    let a = late.connect();
    late.message(a, "serve");
    assert_eq!(late.take_sent(a), ["false"]);
    assert!(!late.served_root());
}

#[test]
fn transfer_moves_the_client_after_the_callback() {
    let mut room = lobby();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    room.message(a, "go R1 create");
    // The reply still reaches `a` (send is service-wide); the broadcast made
    // after the transfer does not.
    assert_eq!(room.take_sent(a), ["ok"]);
    assert_eq!(room.take_sent(b), ["after transfer"]);
    assert_eq!(room.clients(), [b]);
    assert_eq!(
        room.take_transfers(),
        [Transfer {
            client: a,
            to: Some("R1".into()),
            data: b"data".to_vec(),
            create: true,
        }]
    );
    assert!(room.take_transfers().is_empty());
    assert_eq!(
        room.service().events.last().map(String::as_str),
        Some("disconnect 1 Transferred")
    );
}

#[test]
fn transfer_errors_match_the_host() {
    let mut room = TestRoom::<Mover>::builder().room_id("R1").build();
    let a = room.connect();
    room.take_all();
    room.message(a, "go R1 create");
    room.message(a, "go R2");
    let long = "x".repeat(roomhost_sdk::limits::MAX_ROOM_ID_BYTES + 1);
    room.message(a, format!("go {long} create"));
    assert_eq!(
        room.take_sent(a),
        [
            "error: the client is already in that room",
            "error: no such room",
            "error: a room id must be 1 to 256 bytes",
        ]
    );
    assert!(room.take_transfers().is_empty());
    assert!(room.is_connected(a));

    // With the room in the directory, create=false works.
    room.set_rooms(vec![RoomEntry::new("R2", 1, json!(null))]);
    room.message(a, "go R2");
    assert_eq!(room.take_sent(a), ["ok"]);
    assert_eq!(room.take_transfers()[0].to.as_deref(), Some("R2"));

    // A room may send a client to the lobby; the lobby may not.
    let b = room.connect();
    room.message(b, "lobby");
    assert_eq!(room.take_sent(b), ["ok"]);
    assert_eq!(room.take_transfers()[0].to, None);
    let mut lobby = lobby();
    let c = lobby.connect();
    lobby.message(c, "lobby");
    assert_eq!(
        lobby.take_sent(c),
        ["error: the client is already in that room"]
    );
}

#[test]
fn rooms_come_from_the_test() {
    let mut room = lobby();
    let a = room.connect();
    room.set_rooms(vec![
        RoomEntry::new("A", 1, json!({"x": 1})),
        RoomEntry::new("B", 2, json!(null)),
    ]);
    room.message(a, "rooms");
    assert_eq!(room.take_sent(a), ["A,B"]);
    assert_eq!(room.rooms().len(), 2);
}

#[test]
fn handoffs_and_bounces() {
    let mut room = TestRoom::<Mover>::builder().room_id("R1").build();
    let a = room
        .connect_with_handoff(Handoff::from_lobby("hi"))
        .expect("accepted");
    assert_eq!(
        room.service().events[0],
        format!("connect {a} {:?}", Some(Handoff::from_lobby("hi")))
    );
    // A rejected hand-off goes back to its room: still reachable.
    let rejected = room.connect_with_handoff(Handoff::from_lobby("no"));
    assert_eq!(rejected.unwrap_err(), "not today");

    room.message(a, "lobby");
    let transfer = room.take_transfers().remove(0);
    room.bounce_back(&transfer, "lobby is full")
        .expect("accepted");
    assert!(room.is_connected(a));
    assert_eq!(
        room.service().events.last(),
        Some(&format!(
            "connect {a} {:?}",
            Some(Handoff::new(None, "back").with_rejection("lobby is full"))
        ))
    );
}

#[test]
fn room_changed_reaches_the_lobby() {
    let mut room = lobby();
    let a = room.connect();
    room.take_all();
    room.room_changed(RoomChange::Updated(RoomEntry::new("X", 1, json!(null))));
    room.room_changed(RoomChange::Closed("X".into()));
    assert_eq!(room.take_sent(a), ["changed X", "changed X"]);
}

#[test]
#[should_panic(expected = "only calls room_changed on the lobby")]
fn room_changed_needs_the_lobby() {
    TestRoom::<Mover>::new().room_changed(RoomChange::Closed("X".into()));
}

#[test]
fn a_transfer_during_connect_waits_for_the_accept() {
    let mut room = TestRoom::<Mover>::builder().room_id("R1").build();
    let a = room.connect_with_query("move");
    let events = &room.service().events;
    assert_eq!(events[events.len() - 2], "ok");
    assert_eq!(events[events.len() - 1], "disconnect 1 Transferred");
    assert_eq!(room.take_transfers()[0].to.as_deref(), Some("elsewhere"));
    assert!(!room.is_connected(a));
}

#[test]
fn a_transfer_during_a_rejected_connect_is_dropped() {
    let mut room = TestRoom::<Mover>::builder().room_id("R1").build();
    let rejected = room.connect_with_handoff(Handoff::from_lobby("no-but-move"));
    assert_eq!(rejected.unwrap_err(), "not today");
    assert!(room.take_transfers().is_empty());
}

#[test]
fn a_service_without_a_lobby_cannot_send_clients_there() {
    #[derive(Default)]
    struct Rooms;
    impl RoomService for Rooms {
        fn message(&mut self, room: &mut Room<'_>, client: ClientId, _: Message) {
            let error = room.transfer_to_lobby(client, b"").unwrap_err();
            assert_eq!(error, roomhost_sdk::TransferError::NoLobby);
            room.send(client, error.to_string());
        }
    }
    let mut room = TestRoom::<Rooms>::new();
    let a = room.connect();
    room.message(a, "go");
    assert_eq!(room.take_sent(a), ["the service has no lobby"]);
}
