//! The lobby and the game rooms through the SDK's harness: every rule of the
//! protocol page.

use std::time::Duration;

use roomhost_sdk::testing::{TestRoom, Transfer};
use roomhost_sdk::{ClientId, DisconnectReason, Handoff, Message, RoomEntry};
use serde_json::{Value, json};

use crate::GameLobby;
use crate::errors;
use crate::game::{GRACE_TIMER, Game, MAX_PLAYER_ID};
use crate::wire::{JoinRequest, handshake_reply};

const TTT: &str = "tic-tac-toe";
const KEY: &str = "r1#tic-tac-toe";

fn config() -> Value {
    json!({
        "games": [
            {"name": "tic-tac-toe", "max_players": 10},
            {"name": "Ternio", "max_players": 3},
            {"name": "open", "max_players": 0},
        ],
        "host_grace_ms": 1000,
    })
}

fn lobby() -> TestRoom<GameLobby> {
    TestRoom::<GameLobby>::builder()
        .lobby(true)
        .config(&config())
        .build()
}

fn game_room(key: &str) -> TestRoom<GameLobby> {
    TestRoom::<GameLobby>::builder()
        .room_id(key)
        .config(&config())
        .build()
}

fn request(game: &str, room: &str, create: bool, token: Option<u64>) -> JoinRequest {
    JoinRequest {
        game_id: game.into(),
        room_id: room.into(),
        rule_variation: 7,
        create_room: create,
        reconnect_token: token,
        four_field: false,
    }
}

fn error(text: &str) -> Message {
    let mut bytes = vec![5];
    bytes.extend_from_slice(text.as_bytes());
    Message::Binary(bytes)
}

fn bin(bytes: &[u8]) -> Message {
    Message::Binary(bytes.to_vec())
}

/// Parses a 13-byte handshake reply into (id, rule variation, token).
fn reply(message: &Message) -> (u16, u16, u64) {
    let Message::Binary(bytes) = message else {
        panic!("expected a binary reply, got {message:?}");
    };
    assert_eq!(bytes.len(), 13, "{bytes:?}");
    assert_eq!(bytes[0], 6);
    let id = u16::from_be_bytes([bytes[1], bytes[2]]);
    let rules = u16::from_be_bytes([bytes[3], bytes[4]]);
    let mut token = [0; 8];
    token.copy_from_slice(&bytes[5..]);
    (id, rules, u64::from_be_bytes(token))
}

fn arrive(room: &mut TestRoom<GameLobby>, request: &JoinRequest) -> Result<ClientId, String> {
    room.connect_with_handoff(Handoff::from_lobby(request.encode()))
        .map_err(|rejection| rejection.to_string())
}

/// Creates the game in `room` (key `r1#game`); returns the host and its token.
fn create_in(room: &mut TestRoom<GameLobby>, game: &str) -> (ClientId, u64) {
    let host = arrive(room, &request(game, "r1", true, None)).expect("creator accepted");
    let sent = room.take_sent(host);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (id, rules, token) = reply(&sent[0]);
    assert_eq!((id, rules), (0, 7));
    (host, token)
}

/// Joins `room`; returns the client, its id and token, and checks the host
/// heard of it.
fn join_in(room: &mut TestRoom<GameLobby>, game: &str, host: ClientId) -> (ClientId, u16, u64) {
    let client = arrive(room, &request(game, "r1", false, None)).expect("joiner accepted");
    let sent = room.take_sent(client);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (id, rules, token) = reply(&sent[0]);
    assert_eq!(rules, 7, "the room's rule variation");
    let [high, low] = id.to_be_bytes();
    assert_eq!(room.take_sent(host), [bin(&[0, high, low])]);
    (client, id, token)
}

/// A joined player: connection, id, token.
type Joined = (ClientId, u16, u64);

/// A room, its host and the host's token, and its players.
type Hosted<const N: usize> = (TestRoom<GameLobby>, ClientId, u64, [Joined; N]);

/// A tic-tac-toe room with its host and `N` players (ids 1..=N).
fn hosted<const N: usize>() -> Hosted<N> {
    let mut room = game_room(KEY);
    let (host, token) = create_in(&mut room, TTT);
    let players = std::array::from_fn(|_| join_in(&mut room, TTT, host));
    (room, host, token, players)
}

/// The host is away: the listing says so, and the whole grace period is
/// ahead.
fn assert_host_away(room: &TestRoom<GameLobby>) {
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(1000))]
    );
    assert_eq!(
        room.info().map(|i| i["host_connected"].clone()),
        Some(json!(false))
    );
}

/// The host reconnects with `token` to room r1: it gets its reply, then
/// `replay`, and the grace timer checks on it from now on.
fn host_back(room: &mut TestRoom<GameLobby>, token: u64, replay: &[&[u8]]) -> ClientId {
    let host = arrive(room, &request(TTT, "r1", false, Some(token))).expect("host back");
    let mut expected = vec![bin(&handshake_reply(0, 7, token))];
    expected.extend(replay.iter().map(|frame| bin(frame)));
    assert_eq!(room.take_sent(host), expected);
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(1000))],
        "the grace timer checks on the host from now on"
    );
    host
}

fn game(room: &TestRoom<GameLobby>) -> Option<&Game> {
    room.service().room().and_then(|r| r.game())
}

fn closed_with(room: &TestRoom<GameLobby>, client: ClientId) -> Option<String> {
    room.closed()
        .iter()
        .find(|(c, _, _)| *c == client)
        .map(|(_, code, reason)| {
            assert_eq!(*code, 1000);
            reason.clone()
        })
}

// ---- the lobby ----

#[test]
fn the_lobby_transfers_a_creator_with_its_request() {
    let mut lobby = lobby();
    let client = lobby.connect();
    let create = request(TTT, "r1", true, None);
    lobby.message(client, create.encode());
    assert!(lobby.take_sent(client).is_empty());
    assert_eq!(
        lobby.take_transfers(),
        [Transfer {
            client,
            to: Some(KEY.into()),
            data: create.encode(),
            create: true,
        }]
    );
}

#[test]
fn the_lobby_ignores_text_frames_before_the_request() {
    let mut lobby = lobby();
    let client = lobby.connect();
    lobby.message(client, "hello");
    lobby.message(client, "{}");
    assert!(lobby.take_sent(client).is_empty());
    assert!(lobby.take_transfers().is_empty());
    lobby.message(client, request(TTT, "r1", true, None).encode());
    assert_eq!(lobby.take_transfers().len(), 1);
}

#[test]
fn the_protocol_example_is_a_join_of_a_missing_room() {
    let mut lobby = lobby();
    let client = lobby.connect();
    let example = [
        0x0b, 0x74, 0x69, 0x63, 0x2d, 0x74, 0x61, 0x63, 0x2d, 0x74, 0x6f, 0x65, 0x02, 0x72, 0x31,
        0x00, 0x00, 0x00,
    ];
    lobby.message(client, example.to_vec());
    assert_eq!(
        lobby.take_sent(client),
        [error("Room r1 does not exist for game tic-tac-toe.")]
    );
    assert_eq!(
        closed_with(&lobby, client).as_deref(),
        Some("Room r1 does not exist for game tic-tac-toe.")
    );
    assert!(!lobby.is_connected(client));
}

#[test]
fn joins_go_to_live_rooms_in_both_request_forms() {
    let mut lobby = lobby();
    lobby.set_rooms(vec![RoomEntry::new(KEY, 1, json!({"game": TTT}))]);
    let join = request(TTT, "r1", false, None);
    let five = join.encode();
    let four = &five[..five.len() - 1];
    for form in [five.clone(), four.to_vec()] {
        let client = lobby.connect();
        lobby.message(client, form.clone());
        // The request travels in the form it came in: the game room answers
        // in that form.
        assert_eq!(
            lobby.take_transfers(),
            [Transfer {
                client,
                to: Some(KEY.into()),
                data: form,
                create: false,
            }]
        );
    }
}

#[test]
fn old_four_field_clients_get_the_five_byte_reply() {
    let mut room = game_room(KEY);
    let mut create = request(TTT, "r1", true, None);
    create.four_field = true;
    let host = arrive(&mut room, &create).expect("creator accepted");
    assert_eq!(room.take_sent(host), [bin(&[0x06, 0, 0, 0, 7])]);
    let mut join = request(TTT, "r1", false, None);
    join.four_field = true;
    let player = arrive(&mut room, &join).expect("joiner accepted");
    assert_eq!(room.take_sent(player), [bin(&[0x06, 0, 1, 0, 7])]);
}

#[test]
fn a_reconnect_to_a_missing_room_is_told_so() {
    let mut lobby = lobby();
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", true, Some(5)).encode());
    // The room is not running: the reconnect starts it, since it may have
    // a game stored before a restart. This one has none and refuses.
    let transfer = lobby.take_transfers().remove(0);
    assert!(transfer.create);
    let mut fresh = game_room(KEY);
    let reason = arrive(&mut fresh, &request(TTT, "r1", true, Some(5))).expect_err("no game");
    assert_eq!(lobby.bounce_back(&transfer, &reason), Ok(()));
    assert_eq!(
        lobby.take_sent(client),
        [error("Room r1 no longer exists for game tic-tac-toe.")]
    );

    // With the room live, a reconnect goes there without create.
    lobby.set_rooms(vec![RoomEntry::new(KEY, 1, json!(null))]);
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", true, Some(5)).encode());
    let transfers = lobby.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert!(!transfers[0].create);
}

#[test]
fn malformed_requests_are_refused() {
    let valid = request(TTT, "r1", false, None).encode();
    let mut trailing = valid.clone();
    trailing.push(0);
    for bad in [vec![], vec![0xFF], valid[..5].to_vec(), trailing] {
        let mut lobby = lobby();
        let client = lobby.connect();
        let other = lobby.connect();
        lobby.message(client, bad.clone());
        assert_eq!(
            lobby.take_sent(client),
            [error(errors::PARSE_FAILED)],
            "{bad:?}"
        );
        assert_eq!(
            closed_with(&lobby, client).as_deref(),
            Some(errors::PARSE_FAILED)
        );
        // Nothing else is affected.
        assert!(lobby.is_connected(other));
        assert!(lobby.take_all().is_empty());
        assert!(lobby.take_transfers().is_empty());
    }
}

#[test]
fn unknown_games_are_refused() {
    let mut lobby = lobby();
    let client = lobby.connect();
    lobby.message(client, request("chess", "r1", true, None).encode());
    assert_eq!(lobby.take_sent(client), [error("Unknown game chess.")]);
    assert!(lobby.take_transfers().is_empty());
    // Game ids are case-sensitive.
    let client = lobby.connect();
    lobby.message(client, request("ternio", "r1", true, None).encode());
    assert_eq!(lobby.take_sent(client), [error("Unknown game ternio.")]);
}

#[test]
fn creating_a_live_room_is_refused_but_an_ended_one_is_reused() {
    let mut lobby = lobby();
    lobby.set_rooms(vec![RoomEntry::new(KEY, 2, json!({"game": TTT}))]);
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", true, None).encode());
    assert_eq!(
        lobby.take_sent(client),
        [error("Room r1 already exists for game tic-tac-toe.")]
    );
    assert!(lobby.take_transfers().is_empty());

    lobby.set_rooms(vec![RoomEntry::new(KEY, 0, json!({"ended": true}))]);
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", true, None).encode());
    assert_eq!(lobby.take_transfers().len(), 1);
}

#[test]
fn room_keys_over_the_host_limit_are_refused() {
    let mut lobby = lobby();
    // A 120-character room name, as real clients use, fits; 244 + 1 + 11
    // = 256 bytes is the longest key.
    let real = "r".repeat(120);
    let client = lobby.connect();
    lobby.message(client, request(TTT, &real, true, None).encode());
    assert_eq!(lobby.take_transfers().len(), 1);
    let longest = "x".repeat(244);
    let client = lobby.connect();
    lobby.message(client, request(TTT, &longest, true, None).encode());
    assert_eq!(lobby.take_transfers().len(), 1);
    let client = lobby.connect();
    lobby.message(
        client,
        request(TTT, &format!("{longest}y"), true, None).encode(),
    );
    assert_eq!(
        lobby.take_sent(client),
        [error(&errors::room_id_too_long(TTT))]
    );
    assert!(lobby.take_transfers().is_empty());
}

#[test]
fn a_client_rejected_by_its_room_gets_the_reason() {
    let mut lobby = lobby();
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", true, None).encode());
    let transfer = lobby.take_transfers().remove(0);
    let reason = "Room r1 already exists for game tic-tac-toe.";
    assert_eq!(lobby.bounce_back(&transfer, reason), Ok(()));
    assert_eq!(lobby.take_sent(client), [error(reason)]);
    assert_eq!(closed_with(&lobby, client).as_deref(), Some(reason));

    // The room ended during the transfer: the host says "no such room".
    lobby.set_rooms(vec![RoomEntry::new(KEY, 1, json!(null))]);
    let client = lobby.connect();
    lobby.message(client, request(TTT, "r1", false, None).encode());
    let transfer = lobby.take_transfers().remove(0);
    assert_eq!(
        lobby.bounce_back(
            &transfer,
            &roomhost_sdk::TransferError::NoSuchRoom.to_string()
        ),
        Ok(())
    );
    assert_eq!(
        lobby.take_sent(client),
        [error("Room r1 does not exist for game tic-tac-toe.")]
    );
}

#[test]
#[should_panic(expected = "invalid game-lobby config: no games configured")]
fn an_invalid_config_fails_the_lobby() {
    let _ = TestRoom::<GameLobby>::builder()
        .lobby(true)
        .raw_config(r#"{"games": []}"#)
        .build();
}

#[test]
fn the_default_config_serves_the_protocol_games() {
    let lobby = TestRoom::<GameLobby>::builder().lobby(true).build();
    let config = lobby.service().lobby().map(|l| l.config().clone());
    assert_eq!(config, Some(crate::config::Config::default()));
}

// ---- the game room: handshake ----

#[test]
fn the_creator_hosts_and_fixes_the_rules() {
    let mut room = game_room(KEY);
    let (host, token) = create_in(&mut room, TTT);
    let game = game(&room).expect("a game");
    assert_eq!(game.host(), Some(host));
    assert_eq!((game.game_id(), game.room_id()), (TTT, "r1"));
    assert_eq!(game.rule_variation(), 7);
    assert_ne!(token, 0);
    assert_eq!(
        room.info(),
        Some(
            json!({"game": TTT, "room": "r1", "players": 1, "max_players": 10, "host_connected": true})
        )
    );
    // A joiner's rule variation does not matter.
    let joiner = JoinRequest {
        rule_variation: 99,
        ..request(TTT, "r1", false, None)
    };
    let client = arrive(&mut room, &joiner).expect("joins");
    assert_eq!(reply(&room.take_sent(client)[0]).1, 7);
}

#[test]
fn a_second_creator_is_refused() {
    let (mut room, _, _, _) = hosted::<1>();
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", true, None)),
        Err("Room r1 already exists for game tic-tac-toe.".to_owned())
    );
}

#[test]
fn an_empty_room_refuses_joins_and_reconnects() {
    let mut room = game_room(KEY);
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, None)),
        Err("Room r1 does not exist for game tic-tac-toe.".to_owned())
    );
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(1))),
        Err("Room r1 no longer exists for game tic-tac-toe.".to_owned())
    );
    assert!(
        room.take_all().is_empty(),
        "rejections are sent by the lobby"
    );
}

#[test]
fn clients_by_url_or_for_another_room_are_refused() {
    let mut room = game_room(KEY);
    let refused = room.try_connect("");
    assert_eq!(refused.unwrap_err(), errors::JOIN_THROUGH_LOBBY);
    assert_eq!(room.take_sent(1), [error(errors::JOIN_THROUGH_LOBBY)]);
    assert_eq!(
        arrive(&mut room, &request(TTT, "r2", true, None)),
        Err(errors::PARSE_FAILED.to_owned())
    );
    assert_eq!(
        room.connect_with_handoff(Handoff::from_lobby(vec![1, 2, 3]))
            .unwrap_err(),
        errors::PARSE_FAILED
    );
}

#[test]
fn ids_count_up_and_are_never_reused() {
    let (mut room, host, _, [(a, 1, _), (_, 2, _), (c, 3, _)]) = hosted::<3>() else {
        panic!("ids 1, 2, 3");
    };
    room.disconnect(a, DisconnectReason::Closed);
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 1])]);
    room.disconnect(c, DisconnectReason::Lost);
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 3])]);
    let (_, id, _) = join_in(&mut room, TTT, host);
    assert_eq!(id, 4);
}

#[test]
fn tokens_are_random_and_distinct() {
    let (_, _, host_token, players) = hosted::<5>();
    let mut tokens: Vec<u64> = players.iter().map(|p| p.2).collect();
    tokens.push(host_token);
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 6);
    // The harness's generator is seeded: another seed, other tokens.
    let mut other = TestRoom::<GameLobby>::builder()
        .room_id(KEY)
        .config(&config())
        .seed(1)
        .build();
    let (_, token) = create_in(&mut other, TTT);
    assert_ne!(token, host_token);
}

#[test]
fn the_cap_counts_the_host() {
    let key = "r1#Ternio";
    let mut room = game_room(key);
    let (host, _) = create_in(&mut room, "Ternio");
    let (a, _, _) = join_in(&mut room, "Ternio", host);
    let (_, _, _) = join_in(&mut room, "Ternio", host);
    let full = "Room r1 exceeded max amount of players 3.".to_owned();
    assert_eq!(
        arrive(&mut room, &request("Ternio", "r1", false, None)),
        Err(full.clone())
    );
    // The host's seat stays taken while it is away.
    room.disconnect(host, DisconnectReason::Lost);
    assert_eq!(
        arrive(&mut room, &request("Ternio", "r1", false, None)),
        Err(full)
    );
    // A player leaving frees a seat.
    room.disconnect(a, DisconnectReason::Closed);
    let client = arrive(&mut room, &request("Ternio", "r1", false, None)).expect("a free seat");
    assert_eq!(reply(&room.take_sent(client)[0]).0, 3);
    assert_eq!(room.info().map(|i| i["players"].clone()), Some(json!(2)));
}

#[test]
fn a_cap_of_zero_is_unlimited() {
    let mut room = game_room("r1#open");
    let (host, _) = create_in(&mut room, "open");
    for _ in 0..50 {
        join_in(&mut room, "open", host);
    }
    assert_eq!(game(&room).map(Game::connected), Some(51));
}

#[test]
fn ids_run_out_after_65435() {
    let mut room = game_room("r1#open");
    let (host, _) = create_in(&mut room, "open");
    if let Some(game) = room.service_mut().room_mut().and_then(|r| r.game_mut()) {
        game.next_id = MAX_PLAYER_ID;
    }
    let (_, id, _) = join_in(&mut room, "open", host);
    assert_eq!(id, 65_435);
    assert_eq!(
        arrive(&mut room, &request("open", "r1", false, None)),
        Err("Room r1 run out of client ids.".to_owned())
    );
}

// ---- reconnects ----

#[test]
fn a_client_reconnects_with_its_id() {
    let (mut room, host, _, [(a, id, token), _]) = hosted::<2>();
    room.disconnect(a, DisconnectReason::Lost);
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 1])]);
    let back = arrive(&mut room, &request(TTT, "r1", false, Some(token))).expect("back");
    assert_eq!(room.take_sent(back), [bin(&handshake_reply(id, 7, token))]);
    assert_eq!(room.take_sent(host), [bin(&[0, 0, 1])]);
    // Its RPCs carry the old id.
    room.message(back, vec![2, 42]);
    assert_eq!(room.take_sent(host), [bin(&[2, 0, 1, 42])]);
}

#[test]
fn bad_reconnects_are_refused() {
    let (mut room, _, host_token, _) = hosted::<1>();
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(12345))),
        Err(errors::INVALID_TOKEN.to_owned())
    );
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(host_token))),
        Err(errors::HOST_CONNECTED.to_owned())
    );
}

#[test]
fn a_reconnect_replaces_a_connection_still_open() {
    let (mut room, host, _, [(a, id, token)]) = hosted::<1>();
    let back = arrive(&mut room, &request(TTT, "r1", false, Some(token))).expect("back");
    assert_eq!(reply(&room.take_sent(back)[0]), (id, 7, token));
    assert_eq!(room.take_sent(a), [error(errors::RECONNECTED_ELSEWHERE)]);
    assert!(!room.is_connected(a));
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 1]), bin(&[0, 0, 1])]);
    assert_eq!(game(&room).map(Game::connected), Some(2));
}

#[test]
fn the_host_reconnects_within_the_grace_period_and_gets_the_replay() {
    let (mut room, host, host_token, [(a, _, _), (b, _, _), (c, _, _)]) = hosted::<3>();
    room.disconnect(host, DisconnectReason::Lost);
    assert_host_away(&room);
    // Meanwhile: b leaves, a new player joins, a leaves and comes back.
    room.disconnect(b, DisconnectReason::Closed);
    let d = arrive(&mut room, &request(TTT, "r1", false, None)).expect("joins");
    assert_eq!(reply(&room.take_sent(d)[0]).0, 4);
    let a_token = game(&room).map(|g| g.players()[&1].token).unwrap_or(0);
    room.disconnect(a, DisconnectReason::Lost);
    let a2 = arrive(&mut room, &request(TTT, "r1", false, Some(a_token))).expect("back");
    // RPCs while the host is away go nowhere.
    room.message(c, vec![2, 1]);
    room.advance(Duration::from_millis(999));
    assert!(game(&room).is_some());

    let host2 = host_back(
        &mut room,
        host_token,
        &[&[0, 0, 1], &[0, 0, 3], &[0, 0, 4], &[1, 0, 2]],
    );
    room.advance(Duration::from_secs(5));
    assert!(game(&room).is_some());
    for client in [a2, c, d] {
        assert!(room.is_connected(client));
    }
    room.message(c, vec![2, 9]);
    assert_eq!(room.take_sent(host2), [bin(&[2, 0, 3, 9])]);
}

#[test]
fn the_game_ends_when_the_host_stays_away() {
    let (mut room, host, host_token, [(a, _, _), (b, _, _)]) = hosted::<2>();
    room.take_all();
    room.disconnect(host, DisconnectReason::Closed);
    room.advance(Duration::from_millis(1000));
    for client in [a, b] {
        assert_eq!(room.take_sent(client), [error(errors::SERVER_LEFT)]);
        assert_eq!(
            closed_with(&room, client).as_deref(),
            Some(errors::SERVER_LEFT)
        );
    }
    assert!(game(&room).is_none());
    assert!(room.clients().is_empty());
    assert!(room.pending_timers().is_empty());
    assert_eq!(room.info().map(|i| i["ended"].clone()), Some(json!(true)));
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(host_token))),
        Err("Room r1 no longer exists for game tic-tac-toe.".to_owned())
    );
}

#[test]
fn without_grace_the_game_ends_at_once() {
    let mut room = TestRoom::<GameLobby>::builder()
        .room_id(KEY)
        .config(&json!({"host_grace_ms": 0}))
        .build();
    let (host, _) = create_in(&mut room, TTT);
    let (a, _, _) = join_in(&mut room, TTT, host);
    room.disconnect(host, DisconnectReason::Lost);
    assert_eq!(room.take_sent(a), [error(errors::SERVER_LEFT)]);
    assert!(game(&room).is_none());
}

// ---- relaying ----

#[test]
fn rpcs_reach_the_host_with_the_sender_id() {
    let (mut room, host, _, [_, (b, _, _)]) = hosted::<2>();
    room.message(b, vec![2, 0xAA, 0xBB]);
    assert_eq!(room.take_sent(host), [bin(&[2, 0, 2, 0xAA, 0xBB])]);
    room.message(b, vec![2]);
    assert_eq!(room.take_sent(host), [bin(&[2, 0, 2])]);
    // Text frames are not commands.
    room.message(b, "hello");
    assert!(room.take_all().is_empty());
    assert!(room.is_connected(b));
}

#[test]
fn the_sync_gate() {
    let (mut room, host, _, [(a, _, _), (b, _, _)]) = hosted::<2>();
    // Unsynced: deltas are dropped.
    room.message(host, vec![2, 1]);
    assert!(room.take_all().is_empty());
    // A full update syncs a.
    room.message(host, vec![3, 10]);
    assert_eq!(room.take_sent(a), [bin(&[3, 10])]);
    assert_eq!(room.take_sent(b), [bin(&[3, 10])]);
    room.message(host, vec![2, 2]);
    room.message(host, vec![3, 11]);
    room.message(host, vec![4, 12]);
    room.message(host, vec![2, 3]);
    for client in [a, b] {
        assert_eq!(
            room.take_sent(client),
            [bin(&[2, 2]), bin(&[4, 12]), bin(&[2, 3])]
        );
    }
    // A newcomer gets deltas only after its full update; a reset syncs too.
    let (c, _, _) = join_in(&mut room, TTT, host);
    room.take_sent(c);
    room.message(host, vec![2, 4]);
    assert!(room.take_sent(c).is_empty());
    room.message(host, vec![3, 13]);
    assert_eq!(room.take_sent(c), [bin(&[3, 13])]);
    assert_eq!(room.take_sent(a), [bin(&[2, 4])]);
    let (d, _, token) = join_in(&mut room, TTT, host);
    room.take_sent(d);
    room.message(host, vec![4, 14]);
    room.message(host, vec![2, 5]);
    assert_eq!(room.take_sent(d), [bin(&[4, 14]), bin(&[2, 5])]);
    // A reconnecting client starts unsynced again.
    room.disconnect(d, DisconnectReason::Lost);
    let d2 = arrive(&mut room, &request(TTT, "r1", false, Some(token))).expect("back");
    room.take_sent(d2);
    room.message(host, vec![2, 6]);
    assert!(room.take_sent(d2).is_empty());
    room.message(host, vec![3, 15]);
    assert_eq!(room.take_sent(d2), [bin(&[3, 15])]);
    // The host itself never receives its own frames.
    assert!(
        room.take_sent(host)
            .iter()
            .all(|m| m.as_bytes().first() != Some(&3))
    );
}

#[test]
fn a_client_may_leave_with_03() {
    let (mut room, host, _, [(a, _, _)]) = hosted::<1>();
    room.message(a, vec![3]);
    assert!(!room.is_connected(a));
    assert!(room.take_sent(a).is_empty());
    assert_eq!(closed_with(&room, a).as_deref(), Some(errors::CLIENT_LEFT));
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 1])]);
}

#[test]
fn illegal_client_frames_close_the_client() {
    for frame in [vec![], vec![0], vec![1, 0, 1], vec![4], vec![5], vec![0xFF]] {
        let (mut room, host, _, [(a, _, _), (b, _, _)]) = hosted::<2>();
        room.message(a, frame.clone());
        assert_eq!(
            room.take_sent(a),
            [error(errors::ILLEGAL_CLIENT)],
            "{frame:?}"
        );
        assert!(!room.is_connected(a));
        assert_eq!(room.take_sent(host), [bin(&[1, 0, 1])]);
        assert!(room.is_connected(b));
    }
}

#[test]
fn illegal_host_frames_close_the_host_and_start_the_grace_period() {
    for frame in [vec![], vec![5, 1], vec![6], vec![0xFF]] {
        let (mut room, host, _, [(a, _, _)]) = hosted::<1>();
        room.message(host, frame.clone());
        assert_eq!(
            room.take_sent(host),
            [error(errors::ILLEGAL_HOST)],
            "{frame:?}"
        );
        assert!(!room.is_connected(host));
        assert!(room.is_connected(a));
        assert_eq!(room.pending_timers().len(), 1);
        assert!(room.take_sent(a).is_empty());
    }
}

#[test]
fn the_host_kicks_a_player() {
    let (mut room, host, _, [(a, _, token), (b, _, _)]) = hosted::<2>();
    room.message(host, vec![1, 0, 1]);
    assert_eq!(room.take_sent(a), [error(errors::KICKED)]);
    assert_eq!(closed_with(&room, a).as_deref(), Some(errors::KICKED));
    assert!(room.take_sent(b).is_empty(), "the kick is not forwarded");
    assert_eq!(room.take_sent(host), [bin(&[1, 0, 1])]);
    // The kicked player's token is revoked.
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(token))),
        Err(errors::INVALID_TOKEN.to_owned())
    );
    // Unknown ids, the host's id and short frames are ignored.
    room.message(host, vec![1, 0, 9]);
    room.message(host, vec![1, 0, 0]);
    room.message(host, vec![1, 0]);
    assert!(room.take_all().is_empty());
    assert!(room.is_connected(host) && room.is_connected(b));
}

#[test]
fn the_host_ends_the_game() {
    let (mut room, host, _, [(a, _, _), (b, _, _)]) = hosted::<2>();
    room.message(host, vec![0]);
    for client in [a, b] {
        assert_eq!(room.take_sent(client), [error(errors::SERVER_LEFT)]);
        assert!(!room.is_connected(client));
    }
    assert!(room.take_sent(host).is_empty());
    assert_eq!(
        closed_with(&room, host).as_deref(),
        Some(errors::HOST_ENDED)
    );
    assert!(game(&room).is_none());
    assert!(room.pending_timers().is_empty(), "no grace after 00");
    assert_eq!(
        room.info(),
        Some(
            json!({"game": TTT, "room": "r1", "players": 0, "max_players": 10,
                    "host_connected": false, "ended": true})
        )
    );
    // Until the room is disposed, a new creator may start over.
    let (_, _) = create_in(&mut room, TTT);
    assert!(room.info().is_some_and(|i| i.get("ended").is_none()));
}

// ---- the game in storage ----

/// The game room `KEY` with a room storage cap of `bytes`.
fn game_room_storing(bytes: usize) -> TestRoom<GameLobby> {
    TestRoom::<GameLobby>::builder()
        .room_id(KEY)
        .config(&config())
        .max_room_storage_bytes(bytes)
        .build()
}

/// Reconnects with `token`; returns the connection and its reply.
fn back(room: &mut TestRoom<GameLobby>, token: u64) -> (ClientId, (u16, u16, u64)) {
    let client = arrive(room, &request(TTT, "r1", false, Some(token))).expect("back in");
    let sent = room.take_sent(client);
    assert!(!sent.is_empty(), "a reply");
    (client, reply(&sent[0]))
}

#[test]
fn players_get_back_in_after_a_restart_inside_the_grace_period() {
    let (mut room, _host, host_token, [(_, 1, a_token), (_, 2, _b_token), (_, 3, c_token)]) =
        hosted::<3>()
    else {
        panic!("ids 1, 2, 3");
    };
    room.restart().expect("the room starts again");
    let restored = game(&room).expect("the game is restored");
    assert_eq!(restored.host(), None);
    assert_eq!(restored.rule_variation(), 7);
    assert_eq!(restored.connected(), 0);
    assert_host_away(&room);

    room.advance(Duration::from_millis(400));
    let (a, (id, rules, token)) = back(&mut room, a_token);
    assert_eq!((id, rules, token), (1, 7, a_token));
    let (_c, (id, _, _)) = back(&mut room, c_token);
    assert_eq!(id, 3);
    // The host comes back: it hears who is here, and who is not (2).
    let host = host_back(&mut room, host_token, &[&[0, 0, 1], &[0, 0, 3], &[1, 0, 2]]);
    room.message(a, vec![2, 9]);
    assert_eq!(room.take_sent(host), [bin(&[2, 0, 1, 9])]);
    // A new player counts on from the stored ids.
    let (_, id, _) = join_in(&mut room, TTT, host);
    assert_eq!(id, 4);
}

#[test]
fn the_grace_period_runs_out_after_a_restart() {
    let (mut room, _host, host_token, [_]) = hosted::<1>();
    room.restart().expect("the room starts again");
    room.advance(Duration::from_millis(1000));
    assert!(game(&room).is_none());
    assert_eq!(room.storage().bytes(), 0, "an ended game stores nothing");
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(host_token))),
        Err("Room r1 no longer exists for game tic-tac-toe.".to_owned())
    );
}

#[test]
fn a_host_away_before_the_restart_keeps_its_deadline() {
    let (mut room, host, host_token, [_]) = hosted::<1>();
    room.disconnect(host, DisconnectReason::Lost);
    room.advance(Duration::from_millis(600));
    room.restart().expect("the room starts again");
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(400))]
    );
    room.advance(Duration::from_millis(399));
    let (_, (id, _, _)) = back(&mut room, host_token);
    assert_eq!(id, 0);
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(1000))],
        "the grace timer checks on the host from now on"
    );
    // Back: a second restart starts a whole grace period again.
    room.restart().expect("the room starts again");
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(1000))]
    );
}

#[test]
fn a_kicked_token_stays_revoked_after_a_restart() {
    let (mut room, host, _, [(_, _, kicked), (_, _, kept)]) = hosted::<2>();
    room.message(host, vec![1, 0, 1]);
    room.restart().expect("the room starts again");
    assert_eq!(
        arrive(&mut room, &request(TTT, "r1", false, Some(kicked))),
        Err(errors::INVALID_TOKEN.to_owned())
    );
    assert_eq!(back(&mut room, kept).1.0, 2);
}

#[test]
fn an_ended_game_deletes_what_it_stored() {
    let (mut room, host, _, [_, _]) = hosted::<2>();
    assert!(room.storage().bytes() > 0);
    room.message(host, vec![0]);
    assert_eq!(room.storage().bytes(), 0);
    room.restart().expect("the room starts again");
    assert!(game(&room).is_none());
}

#[test]
fn a_room_without_a_game_stores_nothing() {
    let mut room = game_room(KEY);
    let refused = arrive(&mut room, &request(TTT, "r1", false, Some(5)));
    assert!(refused.is_err());
    assert_eq!(room.storage().bytes(), 0);
}

#[test]
fn the_stored_game_stays_bounded_by_its_players() {
    let mut room = TestRoom::<GameLobby>::builder()
        .room_id("r1#open")
        .config(&config())
        .build();
    let (host, _) = create_in(&mut room, "open");
    let settings = room.storage().bytes();
    for round in 0..50 {
        let (a, id, _) = join_in(&mut room, "open", host);
        room.disconnect(a, DisconnectReason::Closed);
        room.take_sent(host);
        if round % 2 == 0 {
            room.message(host, [vec![1], id.to_be_bytes().to_vec()].concat());
            room.take_sent(host);
        }
        let players = game(&room).map_or(0, |g| g.players().len());
        // The settings (whose next id may grow by a digit or two) and 14
        // bytes per player still holding a token.
        assert!(room.storage().bytes() <= settings + 4 + 14 * players);
    }
    assert_eq!(game(&room).map(|g| g.players().len()), Some(25));
}

#[test]
fn a_join_storage_refuses_is_refused() {
    let mut room = game_room_storing(200);
    let (host, _) = create_in(&mut room, TTT);
    let stored = room.storage().bytes();
    let mut joined = 0;
    let refusal = loop {
        match arrive(&mut room, &request(TTT, "r1", false, None)) {
            Ok(_) => {
                joined += 1;
                room.take_all();
            }
            Err(reason) => break reason,
        }
        assert!(joined < 20, "the cap refuses a join eventually");
    };
    assert!(
        refusal.starts_with("Cannot join room r1 for game tic-tac-toe: the room would store"),
        "{refusal}"
    );
    // Nothing changed: the next id is still free, the host heard nothing.
    assert!(room.take_sent(host).is_empty());
    let game = game(&room).expect("the game goes on");
    assert_eq!(game.players().len(), joined);
    assert_eq!(game.next_id, joined as u32 + 1);
    assert!(room.storage().bytes() <= 200 && room.storage().bytes() > stored);
}

#[test]
fn a_create_storage_refuses_is_refused() {
    let mut room = game_room_storing(20);
    let refusal = arrive(&mut room, &request(TTT, "r1", true, None)).expect_err("refused");
    assert!(refusal.starts_with("Cannot create room r1 for game tic-tac-toe: "));
    assert!(game(&room).is_none());
    assert_eq!(room.storage().bytes(), 0);
}

#[test]
fn the_grace_timer_only_checks_on_a_connected_host() {
    let (mut room, host, _, [(a, _, _)]) = hosted::<1>();
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(1000))]
    );
    room.advance(Duration::from_millis(5500));
    assert!(room.is_connected(host) && room.is_connected(a));
    assert!(game(&room).is_some());
    assert_eq!(
        room.pending_timers(),
        [(GRACE_TIMER, Duration::from_millis(500))]
    );
    assert!(room.take_all().is_empty());
}
