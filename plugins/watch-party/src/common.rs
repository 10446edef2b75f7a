//! What the lobby and the parties handle alike: the checks every frame goes
//! through (rate limit, size, format, type), `ping`, `auth`, `client_log`,
//! and the silence sweep.

use std::time::Duration;

use roomhost_sdk::{ClientId, Message, Room, TimerId};
use serde_json::json;

use crate::config::Config;
use crate::envelope::{
    AUTH_FAILED, CLIENT_TYPES, INVALID_FORMAT, Incoming, Out, RATE_LIMITED, TOO_LARGE,
    UNKNOWN_TYPE, client_id, is_valid_name, valid_name,
};
use crate::profile::{DEFAULT_NAME, Profile};

/// The timer of the silence sweep (in the lobby and in every party).
pub const TIMER_SWEEP: TimerId = 1;
/// The close code for a client silent for `silence_timeout_ms`.
pub const SILENCE_CLOSE_CODE: u16 = 4408;
/// The close reason for a client silent for `silence_timeout_ms`.
pub const SILENCE_REASON: &str = "Connection silent for too long";

/// Runs the checks every frame goes through and answers what needs no
/// room-specific state. Returns the envelope when the caller must handle it
/// (`list_rooms`, `create_room`, `join_room` and the party types).
///
/// In order: the frame counts toward the rate limit and marks the client
/// active (over the limit: `error` "Rate limit exceeded", dropped); a frame
/// over `max_message_bytes` gets "Message too large"; a binary frame is
/// ignored; a frame that is not a valid envelope gets "Invalid message
/// format", one of an unknown type "Unknown message type". `ping` gets its
/// `pong`, `auth` is handled, `client_log` is accepted silently.
///
/// `party` is the party the client is in (`None` in the lobby): error
/// frames carry it as `room`.
pub fn receive(
    room: &mut Room<'_>,
    client: ClientId,
    profile: &mut Profile,
    message: Message,
    config: &Config,
    party: Option<&str>,
) -> Option<Incoming> {
    let now = room.now_ms();
    if profile.over_rate_limit(now, config) {
        send_error(room, client, RATE_LIMITED, party);
        return None;
    }
    if message.len() > config.max_message_bytes {
        send_error(room, client, TOO_LARGE, party);
        return None;
    }
    let Message::Text(text) = message else {
        return None;
    };
    let Some(incoming) = Incoming::parse(&text) else {
        send_error(room, client, INVALID_FORMAT, party);
        return None;
    };
    match incoming.kind.as_str() {
        "ping" => {
            let pong = Out::new("pong", now)
                .with_room_opt(incoming.room)
                .with_client_opt(incoming.client)
                .with_payload_opt(incoming.payload);
            room.send(client, pong.to_message());
            None
        }
        "client_log" => None,
        "auth" => {
            authenticate(room, client, profile, &incoming, party);
            None
        }
        kind if CLIENT_TYPES.contains(&kind) => Some(incoming),
        _ => {
            send_error(room, client, UNKNOWN_TYPE, party);
            None
        }
    }
}

/// Sends `error` `{message}` to `client`, with `room` set to `party`.
pub fn send_error(room: &mut Room<'_>, client: ClientId, message: &str, party: Option<&str>) {
    let error = Out::error(client, message, room.now_ms()).with_room_opt(party.map(str::to_owned));
    room.send(client, error.to_message());
}

/// `auth` `{token?, user_name?, user_id?}`.
///
/// - Authentication off (the host has no token key): a valid `user_name`
///   becomes the display name and `user_id` is recorded; the reply is
///   `auth_success` `{user_name}` (the display name, `Anonymous` if none
///   was ever given). A token is ignored.
/// - Authentication on: the token is verified by the host. Accepted: the
///   client is authenticated, its `name` claim (else its `sub`, else
///   `Anonymous`) becomes the display name, `sub` the user id, and the
///   reply is `auth_success`. Refused, or no token: `error`
///   "Authentication failed", and the client keeps whatever state it had.
pub fn authenticate(
    room: &mut Room<'_>,
    client: ClientId,
    profile: &mut Profile,
    incoming: &Incoming,
    party: Option<&str>,
) {
    if room.auth_enabled() {
        let Some(token) = incoming.str_field("token") else {
            room.debug(&format!("client {client}: auth without a token"));
            return send_error(room, client, AUTH_FAILED, party);
        };
        match room.verify_token(token) {
            Ok(claims) => {
                let sub = claims.get("sub").and_then(|sub| sub.as_str());
                let name = valid_name(claims.get("name"))
                    .or_else(|| sub.filter(|sub| is_valid_name(sub)).map(str::to_owned))
                    .unwrap_or_else(|| DEFAULT_NAME.to_owned());
                profile.authenticated = true;
                profile.user_id = sub.map(str::to_owned);
                profile.user_name = Some(name);
            }
            Err(err) => {
                room.debug(&format!(
                    "client {client}: token refused: {}",
                    err.message()
                ));
                return send_error(room, client, AUTH_FAILED, party);
            }
        }
    } else {
        profile.offer_name(incoming.field("user_name"));
        if let Some(user_id) = valid_name(incoming.field("user_id")) {
            profile.user_id = Some(user_id);
        }
    }
    let success = Out::new("auth_success", room.now_ms())
        .with_client(client_id(client))
        .with_payload(json!({ "user_name": profile.display_name() }));
    room.send(client, success.to_message());
}

/// How often the silence sweep runs: a quarter of the timeout, between
/// 50 ms and 5 s (so a silent client goes between `timeout` and `timeout
/// + 5 s` after its last frame).
pub fn sweep_interval(config: &Config) -> Duration {
    Duration::from_millis((config.silence_timeout_ms / 4).clamp(50, 5000))
}

/// Arms the silence sweep unless it is armed or disabled.
pub fn arm_sweep(room: &mut Room<'_>, armed: &mut bool, config: &Config) {
    if *armed || config.silence_timeout_ms == 0 {
        return;
    }
    match room.set_timer(TIMER_SWEEP, sweep_interval(config)) {
        Ok(()) => *armed = true,
        Err(err) => room.warn(&format!("cannot arm the silence sweep: {err}")),
    }
}

/// Disarms the silence sweep (a room with a pending timer never ends).
pub fn disarm_sweep(room: &mut Room<'_>, armed: &mut bool) {
    if *armed {
        room.cancel_timer(TIMER_SWEEP);
        *armed = false;
    }
}

/// Closes every client silent for `silence_timeout_ms` (the room then
/// receives their `disconnect(Kicked)`).
pub fn close_silent<'a>(
    room: &mut Room<'_>,
    clients: impl IntoIterator<Item = (&'a ClientId, &'a Profile)>,
    config: &Config,
) {
    let now = room.now_ms();
    let silent: Vec<ClientId> = clients
        .into_iter()
        .filter(|(_, profile)| profile.is_silent(now, config.silence_timeout_ms))
        .map(|(client, _)| *client)
        .collect();
    for client in silent {
        room.debug(&format!("client {client} silent; closing"));
        room.close(client, SILENCE_CLOSE_CODE, SILENCE_REASON);
    }
}
