//! One watch party: a host, its members, playback state and chat. Each party
//! is its own room, named by its id (a UUID v4).
//!
//! - **Entry.** Only clients handed over by the lobby get in: the first
//!   with a create request becomes the host (ready, `paused` at
//!   `start_pos`) and gets `room_state`; later ones join as members (not
//!   ready) and get `room_state`, the others `participants_update`. A
//!   joiner beyond `max_clients_per_room` is turned away with "Room is
//!   full" (it goes back to the lobby, which tells it). A closed party
//!   turns everyone away.
//! - **Leaving.** A member's `leave_room` or disconnection → the others get
//!   `client_left`; the leaver (if still connected) goes back to the lobby.
//!   The host's → the party closes (below).
//! - **Closing.** Every member but a departing host gets `room_closed`
//!   (`Host left the room`, or `Host started a new room` when the host
//!   created another party, in which case the host gets it too) and is
//!   transferred back to the lobby; timers are cancelled and the listing
//!   marked closed, so the room ends once the transfers complete.
//! - **Moving on.** `create_room` or `join_room` (to another party) from
//!   inside a party leaves it first (closing it if the sender hosts it),
//!   then the lobby carries out the request. Authentication, an unknown
//!   target or a full one are checked before leaving, so a refused request
//!   changes nothing. `join_room` to this very party re-sends `room_state`
//!   and marks the sender not ready.
//! - **Control.** `player_event` and `state_update` from anyone but the
//!   host are ignored; see [`crate::sync`] for the rules and
//!   `Party::player_event` for the scheduling.
//! - **Chat.** `chat_message` `{text}` of 1..=500 characters goes to
//!   everyone, the sender included, as `{username, text}`.
//! - **Scope.** Party messages whose `room` names another party are
//!   ignored (they were meant for the party the client just left). Every
//!   frame the party sends about itself carries its id as `room`.

use std::collections::BTreeMap;
use std::time::Duration;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Rejection, Room, RoomService,
    TimerId, room_service,
};
use serde_json::{Value, json};

use crate::common::{self, TIMER_SWEEP};
use crate::config::Config;
use crate::directory::{PartyInfo, parties_of, room_list};
use crate::envelope::{
    AUTH_REQUIRED, Incoming, Out, PlayState, REASON_HOST_LEFT, REASON_NEW_ROOM, ROOM_FULL,
    client_id, is_valid_chat, valid_position, with_field,
};
use crate::lobby::Lobby;
use crate::profile::{CreateRequest, Intent, Profile, Transit};
use crate::sync::{PendingPlay, Sync};

/// The timer of the pending play.
pub const TIMER_PENDING_PLAY: TimerId = 2;

/// Why a party turns a client away when it has closed or the client did
/// not come through the lobby.
pub const NOT_JOINABLE: &str = "No such party";

/// The state of one party: the service's rooms (its lobby is a
/// [`Lobby`]).
#[derive(Debug)]
#[room_service(lobby = Lobby)]
pub struct Party {
    id: String,
    config: Config,
    name: String,
    host: Option<ClientId>,
    /// Every client in the party, host included.
    members: BTreeMap<ClientId, Profile>,
    media_id: Option<String>,
    sync: Sync,
    created_at: u64,
    closed: bool,
    sweep_armed: bool,
}

impl Party {
    /// An empty party in `room`, waiting for its host.
    pub fn new(room: &mut Room<'_>, config: Config) -> Self {
        Self {
            id: room.room_id().to_owned(),
            config,
            name: String::new(),
            host: None,
            members: BTreeMap::new(),
            media_id: None,
            sync: Sync::new(0.0),
            created_at: room.now_ms(),
            closed: false,
            sweep_armed: false,
        }
    }

    /// The party id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The party's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host, while the party is open.
    pub fn host(&self) -> Option<ClientId> {
        self.host
    }

    /// The members, host included, in id order.
    pub fn members(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members.keys().copied()
    }

    /// A member's state.
    pub fn profile(&self, client: ClientId) -> Option<&Profile> {
        self.members.get(&client)
    }

    /// The playback and synchronization state.
    pub fn sync(&self) -> &Sync {
        &self.sync
    }

    /// Whether the party has closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The host arrives with its create request.
    fn start(
        &mut self,
        room: &mut Room<'_>,
        host: ClientId,
        profile: Profile,
        request: CreateRequest,
    ) {
        let now = room.now_ms();
        self.name = request
            .name
            .unwrap_or_else(|| format!("Room de {}", profile.display_name()));
        self.media_id = request.media_id;
        self.sync = Sync::new(request.start_pos);
        self.sync.ready.insert(host);
        self.created_at = now;
        self.host = Some(host);
        self.members.insert(host, profile);
        room.info(&format!("party {:?} created by client {host}", self.name));
        self.send_room_state(room, host);
        self.publish(room);
        common::arm_sweep(room, &mut self.sweep_armed, &self.config);
    }

    /// A member arrives.
    fn admit(&mut self, room: &mut Room<'_>, client: ClientId, profile: Profile) {
        self.members.insert(client, profile);
        self.sync.ready.remove(&client);
        self.send_room_state(room, client);
        let update = Out::new("participants_update", room.now_ms())
            .with_room(self.id.clone())
            .with_payload(json!({ "participant_count": self.members.len() }));
        room.broadcast(update.to_message(), &[client]);
        self.publish(room);
        common::arm_sweep(room, &mut self.sweep_armed, &self.config);
    }

    /// `room_state` for `client`: `{name, host_id, state: {position,
    /// play_state}, participant_count, media_id?}`.
    fn send_room_state(&self, room: &mut Room<'_>, client: ClientId) {
        let mut payload = json!({
            "name": self.name,
            "host_id": self.host.map(client_id),
            "state": {
                "position": self.sync.position,
                "play_state": self.sync.play_state.as_str(),
            },
            "participant_count": self.members.len(),
        });
        if let (Some(media_id), Some(object)) = (&self.media_id, payload.as_object_mut()) {
            object.insert("media_id".into(), Value::String(media_id.clone()));
        }
        let state = Out::new("room_state", room.now_ms())
            .with_room(self.id.clone())
            .with_client(client_id(client))
            .with_payload(payload);
        room.send(client, state.to_message());
    }

    /// `create_room` from inside the party.
    fn create_room(&mut self, room: &mut Room<'_>, client: ClientId, incoming: &Incoming) {
        let Some(mut profile) = self.members.get(&client).cloned() else {
            return;
        };
        profile.offer_name(incoming.field("user_name"));
        if !self.may_enter(room, client, &profile) {
            return;
        }
        let request = CreateRequest::from_payload(incoming.payload.as_ref());
        let intent = Intent::Create { request };
        if self.host == Some(client) {
            self.close(room, REASON_NEW_ROOM, true);
        } else {
            self.remove_member(room, client);
        }
        self.send_to_lobby(room, client, profile, intent);
    }

    /// `join_room` from inside the party.
    fn join_room(&mut self, room: &mut Room<'_>, client: ClientId, incoming: &Incoming) {
        let Some(mut profile) = self.members.get(&client).cloned() else {
            return;
        };
        profile.offer_name(incoming.field("user_name"));
        if !self.may_enter(room, client, &profile) {
            return;
        }
        let Some(target) = incoming.target_room() else {
            return;
        };
        if target == self.id {
            // Joining again: fresh state, not ready until it says so.
            if let Some(member) = self.members.get_mut(&client) {
                *member = profile;
            }
            self.sync.ready.remove(&client);
            return self.send_room_state(room, client);
        }
        let parties = parties_of(&room.rooms());
        let Some(party) = parties.get(target) else {
            room.debug(&format!(
                "client {client}: join to unknown party {target:?} ignored"
            ));
            return;
        };
        if party.count >= self.config.max_clients_per_room {
            return common::send_error(room, client, ROOM_FULL, Some(target));
        }
        let intent = Intent::Join {
            room: target.to_owned(),
        };
        if self.host == Some(client) {
            self.members.remove(&client);
            self.close(room, REASON_HOST_LEFT, false);
        } else {
            self.remove_member(room, client);
        }
        self.send_to_lobby(room, client, profile, intent);
    }

    /// Whether `client` may create or join (authenticated, when
    /// authentication is on); tells it otherwise.
    fn may_enter(&self, room: &mut Room<'_>, client: ClientId, profile: &Profile) -> bool {
        if room.auth_enabled() && !profile.authenticated {
            common::send_error(room, client, AUTH_REQUIRED, Some(&self.id));
            return false;
        }
        true
    }

    /// `leave_room`.
    fn leave(&mut self, room: &mut Room<'_>, client: ClientId) {
        let Some(profile) = self.members.get(&client).cloned() else {
            return;
        };
        if self.host == Some(client) {
            self.members.remove(&client);
            self.close(room, REASON_HOST_LEFT, false);
        } else {
            self.remove_member(room, client);
        }
        self.send_to_lobby(room, client, profile, Intent::Return);
    }

    /// Removes a member that is not the host; the others get `client_left`.
    fn remove_member(&mut self, room: &mut Room<'_>, client: ClientId) {
        if self.members.remove(&client).is_none() {
            return;
        }
        self.sync.ready.remove(&client);
        let left = Out::new("client_left", room.now_ms())
            .with_room(self.id.clone())
            .with_client(client_id(client))
            .with_payload(json!({ "participant_count": self.members.len() }));
        room.broadcast(left.to_message(), &[client]);
        self.publish(room);
    }

    /// Closes the party: see the module docs. `notify_host`: the host, if
    /// still a member, gets `room_closed` too (and is left for the caller
    /// to move); every other member is sent back to the lobby.
    fn close(&mut self, room: &mut Room<'_>, reason: &str, notify_host: bool) {
        self.closed = true;
        self.sync.pending = None;
        room.cancel_timer(TIMER_PENDING_PLAY);
        common::disarm_sweep(room, &mut self.sweep_armed);
        let host = self.host.take();
        let closed = Out::new("room_closed", room.now_ms())
            .with_room(self.id.clone())
            .with_payload(json!({ "reason": reason }))
            .to_message();
        for (member, profile) in std::mem::take(&mut self.members) {
            if Some(member) == host {
                if notify_host {
                    room.send(member, closed.clone());
                }
                continue;
            }
            room.send(member, closed.clone());
            self.send_to_lobby(room, member, profile, Intent::Return);
        }
        self.sync.ready.clear();
        room.info(&format!("party {:?} closed: {reason}", self.name));
        self.publish(room);
    }

    /// Transfers `client` to the lobby with `intent` (closing it if even
    /// that fails, which only happens when it is no longer here).
    fn send_to_lobby(
        &mut self,
        room: &mut Room<'_>,
        client: ClientId,
        profile: Profile,
        intent: Intent,
    ) {
        self.members.remove(&client);
        let transit = Transit { profile, intent };
        if let Err(err) = room.transfer_to_lobby(client, &transit.encode()) {
            room.warn(&format!(
                "cannot return client {client} to the lobby: {err}"
            ));
            room.close(client, 1000, "Party closed");
        }
    }

    /// `ready`: the sender is ready; the pending play starts if it was the
    /// last one.
    fn ready(&mut self, room: &mut Room<'_>, client: ClientId) {
        self.sync.ready.insert(client);
        if self.sync.pending.is_some()
            && self.sync.all_ready(self.members.keys())
            && let Some(pending) = self.sync.pending.take()
        {
            room.cancel_timer(TIMER_PENDING_PLAY);
            self.start_play(room, pending.position);
        }
    }

    /// `player_event` `{action, position, play_state?}` from the host.
    ///
    /// The action must be `play`, `pause`, `seek` or `buffering`, the
    /// position valid, and `play_state`, if present, `playing` or `paused`;
    /// anything else is ignored. An accepted event starts the command
    /// cooldown and updates the state.
    ///
    /// - `play`: with everyone ready, `player_event` `{action: "play",
    ///   position, target_server_ts: now + play_schedule_ms}` goes to every
    ///   member, the host included, with `server_ts = target_server_ts`.
    ///   Otherwise it becomes the pending play (replacing any earlier one),
    ///   started by the last `ready` or after `max_ready_wait_ms`.
    /// - `pause`, `seek`, `buffering`: the host's payload plus
    ///   `target_server_ts = now + control_schedule_ms` goes to everyone
    ///   but the host, with `server_ts = target_server_ts`. A `pause`
    ///   cancels a pending play; a `seek` moves it to the new position.
    fn player_event(&mut self, room: &mut Room<'_>, client: ClientId, incoming: Incoming) {
        if self.host != Some(client) {
            return;
        }
        let Some(action) = incoming.str_field("action").map(str::to_owned) else {
            return;
        };
        let Some(position) = valid_position(incoming.field("position")) else {
            return;
        };
        let play_state = match incoming.field("play_state") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_str().and_then(PlayState::parse) {
                Some(play_state) => Some(play_state),
                None => return,
            },
        };
        let now = room.now_ms();
        match action.as_str() {
            "play" => {
                self.sync
                    .apply_command(position, Some(PlayState::Playing), now);
                // `max_ready_wait_ms: 0` (the "owp-current" timing) plays
                // at once, like the current OpenWatchParty server.
                let no_wait = self.config.max_ready_wait_ms == 0;
                if no_wait || self.sync.all_ready(self.members.keys()) {
                    self.sync.pending = None;
                    room.cancel_timer(TIMER_PENDING_PLAY);
                    self.start_play(room, position);
                } else {
                    self.sync.pending = Some(PendingPlay {
                        position,
                        created_at: now,
                    });
                    let wait = Duration::from_millis(self.config.max_ready_wait_ms);
                    if let Err(err) = room.set_timer(TIMER_PENDING_PLAY, wait) {
                        room.warn(&format!(
                            "cannot time the pending play ({err}); playing now"
                        ));
                        self.sync.pending = None;
                        self.start_play(room, position);
                    }
                }
            }
            "pause" | "seek" | "buffering" => {
                let play_state = match action.as_str() {
                    "pause" => Some(PlayState::Paused),
                    "seek" => play_state,
                    _ => None,
                };
                self.sync.apply_command(position, play_state, now);
                if action == "pause" && self.sync.pending.take().is_some() {
                    room.cancel_timer(TIMER_PENDING_PLAY);
                }
                if action == "seek"
                    && let Some(pending) = &mut self.sync.pending
                {
                    pending.position = position;
                }
                let target = now.saturating_add(self.config.control_schedule_ms);
                let payload = with_field(incoming.payload, "target_server_ts", json!(target));
                let event = Out::new("player_event", now)
                    .with_room(self.id.clone())
                    .with_client(client_id(client))
                    .with_payload(payload)
                    .with_ts(incoming.ts)
                    .with_server_ts(target);
                room.broadcast(event.to_message(), &[client]);
            }
            _ => {}
        }
    }

    /// Starts playback at `position`: `play` to everyone, host included,
    /// at `now + play_schedule_ms`.
    fn start_play(&mut self, room: &mut Room<'_>, position: f64) {
        let now = room.now_ms();
        let target = now.saturating_add(self.config.play_schedule_ms);
        self.sync.position = position;
        self.sync.play_state = PlayState::Playing;
        let event = Out::new("player_event", now)
            .with_room(self.id.clone())
            .with_client_opt(self.host.map(client_id))
            .with_payload(json!({
                "action": "play",
                "position": position,
                "target_server_ts": target,
            }))
            .with_server_ts(target);
        room.broadcast(event.to_message(), &[]);
    }

    /// `state_update` `{position, play_state}` from the host: relayed to
    /// everyone but the host with `server_ts = now` if the filter lets it
    /// through (see [`crate::sync`]); ignored when invalid.
    fn state_update(&mut self, room: &mut Room<'_>, client: ClientId, incoming: Incoming) {
        if self.host != Some(client) {
            return;
        }
        let Some(position) = valid_position(incoming.field("position")) else {
            return;
        };
        let Some(play_state) = incoming.str_field("play_state").and_then(PlayState::parse) else {
            return;
        };
        let now = room.now_ms();
        if !self
            .sync
            .accepts_state_update(position, play_state, now, &self.config)
        {
            return;
        }
        self.sync.apply_state_update(position, play_state, now);
        let update = Out::new("state_update", now)
            .with_room(self.id.clone())
            .with_client(client_id(client))
            .with_payload_opt(incoming.payload)
            .with_ts(incoming.ts);
        room.broadcast(update.to_message(), &[client]);
    }

    /// `chat_message` `{text}`: to everyone, the sender included.
    fn chat(&mut self, room: &mut Room<'_>, client: ClientId, incoming: &Incoming) {
        let Some(text) = incoming
            .str_field("text")
            .filter(|text| is_valid_chat(text))
        else {
            return;
        };
        let Some(profile) = self.members.get(&client) else {
            return;
        };
        let chat = Out::new("chat_message", room.now_ms())
            .with_room(self.id.clone())
            .with_client(client_id(client))
            .with_payload(json!({ "username": profile.display_name(), "text": text }));
        room.broadcast(chat.to_message(), &[]);
    }

    /// Publishes the listing metadata (the lobby reads it).
    fn publish(&self, room: &mut Room<'_>) {
        let info = PartyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            count: self.members.len(),
            media_id: self.media_id.clone(),
            members: self.members.keys().copied().collect(),
            created_at: self.created_at,
            closed: self.closed,
        };
        if let Err(err) = room.set_info(&info) {
            room.warn(&format!("cannot publish the party's listing: {err}"));
        }
    }
}

impl Default for Party {
    /// A party before `init` (no id, default configuration).
    fn default() -> Self {
        Self {
            id: String::new(),
            config: Config::default(),
            name: String::new(),
            host: None,
            members: BTreeMap::new(),
            media_id: None,
            sync: Sync::new(0.0),
            created_at: 0,
            closed: false,
            sweep_armed: false,
        }
    }
}

impl RoomService for Party {
    /// An empty party, waiting for its host.
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let config = crate::config_from(room, info);
        *self = Party::new(room, config);
        Ok(())
    }

    /// A client handed over by the lobby: see the module docs.
    fn connect(&mut self, room: &mut Room<'_>, info: &ClientInfo) -> Result<(), Rejection> {
        if self.closed {
            return Err(NOT_JOINABLE.into());
        }
        let transit = info
            .handoff
            .as_ref()
            .filter(|handoff| !handoff.is_rejected())
            .and_then(|handoff| Transit::decode(&handoff.data))
            .ok_or_else(|| NOT_JOINABLE.to_owned())?;
        match transit.intent {
            Intent::Create { request } if self.host.is_none() && self.members.is_empty() => {
                self.start(room, info.id, transit.profile, request);
                Ok(())
            }
            Intent::Join { .. } if self.host.is_some() => {
                if self.members.len() >= self.config.max_clients_per_room {
                    return Err(ROOM_FULL.into());
                }
                self.admit(room, info.id, transit.profile);
                Ok(())
            }
            _ => Err(NOT_JOINABLE.into()),
        }
    }

    /// A frame from a member.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let Some(profile) = self.members.get_mut(&client) else {
            return;
        };
        let Some(incoming) =
            common::receive(room, client, profile, message, &self.config, Some(&self.id))
        else {
            return;
        };
        match incoming.kind.as_str() {
            "list_rooms" => {
                let parties = parties_of(&room.rooms());
                let list = room_list(parties.values());
                let frame = Out::new("room_list", room.now_ms()).with_payload(list);
                room.send(client, frame.to_message());
            }
            "create_room" => self.create_room(room, client, &incoming),
            "join_room" => self.join_room(room, client, &incoming),
            _ if incoming
                .target_room()
                .is_some_and(|target| target != self.id) =>
            {
                room.debug(&format!(
                    "client {client}: {} for another party ignored",
                    incoming.kind
                ));
            }
            "leave_room" => self.leave(room, client),
            "ready" => self.ready(room, client),
            "player_event" => self.player_event(room, client, incoming),
            "state_update" => self.state_update(room, client, incoming),
            "chat_message" => self.chat(room, client, &incoming),
            _ => {}
        }
    }

    /// A member left (closed, lost or kicked; transfers were handled when
    /// they were made).
    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        if reason == DisconnectReason::Transferred && !self.members.contains_key(&client) {
            return;
        }
        if self.host == Some(client) {
            room.debug(&format!("host {client} left ({reason:?})"));
            self.members.remove(&client);
            self.close(room, REASON_HOST_LEFT, false);
        } else if self.members.contains_key(&client) {
            self.remove_member(room, client);
        }
    }

    /// The pending play's deadline, or the silence sweep.
    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        match timer {
            TIMER_PENDING_PLAY => {
                if let Some(pending) = self.sync.pending.take() {
                    room.debug("not everyone is ready; starting the pending play anyway");
                    self.start_play(room, pending.position);
                }
            }
            TIMER_SWEEP => {
                self.sweep_armed = false;
                common::close_silent(room, &self.members, &self.config);
                if !self.members.is_empty() && !self.closed {
                    common::arm_sweep(room, &mut self.sweep_armed, &self.config);
                }
            }
            _ => {}
        }
    }
}
