//! The lobby: where every client arrives (`/ws`), and where it comes back
//! between parties.
//!
//! - **Arrival.** A new connection gets `client_hello` (`client` and
//!   `payload.client_id`: its id as a string) and then `room_list`. A
//!   client coming back from a party (it left, or the party closed) gets
//!   `room_list`; one sent by a party to create or join carries on with
//!   that request from its `connect` (the host moves it once it is
//!   accepted).
//! - **Messages.** `ping`, `auth` and `client_log` as everywhere (see
//!   [`crate::common`]); `list_rooms` → `room_list`;
//!   `create_room` → a new party (id: a UUID v4 from the host's random
//!   generator), the client transferred there as its host; `join_room` →
//!   the client transferred to party `room` as a member. The party types
//!   (`ready`, `player_event`, ...) are ignored here.
//! - **Checks.** With authentication on, `create_room`/`join_room` need a
//!   prior successful `auth` ("Authentication required"). A join to a
//!   party the lobby does not know (or that closed) is ignored. A full
//!   party gets "Room is full" (with `room` set) from the lobby's own
//!   count, and the party itself checks again when the client arrives (two
//!   joins can race for the last seat): a client it turns away comes back
//!   here and gets the same error.
//! - **Directory.** The lobby keeps the open parties from `room_changed`
//!   (see [`crate::directory`]) and pushes `room_list` to every
//!   client of the service (its own and every party's members) whenever
//!   the list changes: a party created, closed, or its count changed.

use std::collections::{BTreeMap, BTreeSet};

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Rejection, Room, RoomChange,
    RoomService, TimerId,
};
use serde_json::{Value, json};

use crate::common::{self, TIMER_SWEEP};
use crate::config::Config;
use crate::directory::{PartyInfo, parties_of, room_list};
use crate::envelope::{AUTH_REQUIRED, CREATE_FAILED, Out, ROOM_FULL, client_id, uuid_v4};
use crate::profile::{CreateRequest, Intent, Profile, Transit};

/// The lobby's state.
#[derive(Debug, Default)]
pub struct Lobby {
    config: Config,
    /// The clients here, with their state.
    clients: BTreeMap<ClientId, Profile>,
    /// The open parties, by id.
    parties: BTreeMap<String, PartyInfo>,
    /// The `room_list` payload last pushed.
    pushed: Option<Value>,
    sweep_armed: bool,
}

impl Lobby {
    /// The lobby, with the parties already live (after a lobby restart).
    pub fn new(room: &mut Room<'_>, config: Config) -> Self {
        let parties = parties_of(&room.rooms());
        Self {
            config,
            clients: BTreeMap::new(),
            parties,
            pushed: None,
            sweep_armed: false,
        }
    }

    /// The clients in the lobby.
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.clients.keys().copied()
    }

    /// A client's state, if it is in the lobby.
    pub fn profile(&self, client: ClientId) -> Option<&Profile> {
        self.clients.get(&client)
    }

    /// The open parties the lobby knows, by id.
    pub fn parties(&self) -> &BTreeMap<String, PartyInfo> {
        &self.parties
    }

    /// The current `room_list` payload.
    pub fn room_list(&self) -> Value {
        room_list(self.parties.values())
    }

    /// Sends `room_list` to every client of the service if it changed since
    /// the last push.
    fn push_room_list(&mut self, room: &mut Room<'_>) {
        let list = self.room_list();
        if self.pushed.as_ref() == Some(&list) {
            return;
        }
        let frame = Out::new("room_list", room.now_ms())
            .with_payload(list.clone())
            .to_message();
        self.pushed = Some(list);
        let everyone: BTreeSet<ClientId> = self
            .clients
            .keys()
            .copied()
            .chain(
                self.parties
                    .values()
                    .flat_map(|party| party.members.iter().copied()),
            )
            .collect();
        for client in everyone {
            room.send(client, frame.clone());
        }
    }

    fn send_room_list(&self, room: &mut Room<'_>, client: ClientId) {
        let frame = Out::new("room_list", room.now_ms()).with_payload(self.room_list());
        room.send(client, frame.to_message());
    }

    /// Whether `client` may create or join: with authentication on, only
    /// after a successful `auth` (otherwise it is told so).
    fn may_enter(&self, room: &mut Room<'_>, client: ClientId) -> bool {
        let authenticated = self.clients.get(&client).is_some_and(|p| p.authenticated);
        if room.auth_enabled() && !authenticated {
            common::send_error(room, client, AUTH_REQUIRED, None);
            return false;
        }
        true
    }

    /// `create_room`: transfers the client to a new party as its host.
    fn create(&mut self, room: &mut Room<'_>, client: ClientId, request: CreateRequest) {
        if !self.may_enter(room, client) {
            return;
        }
        let Some(profile) = self.clients.get(&client).cloned() else {
            return;
        };
        let mut party = uuid_v4(room.random_u64(), room.random_u64());
        while self.parties.contains_key(&party) {
            party = uuid_v4(room.random_u64(), room.random_u64());
        }
        let transit = Transit {
            profile,
            intent: Intent::Create { request },
        };
        if let Err(err) = room.transfer(client, Some(&party), &transit.encode(), true) {
            room.warn(&format!("cannot create party {party}: {err}"));
            common::send_error(room, client, CREATE_FAILED, None);
        }
    }

    /// `join_room`: transfers the client to party `party`.
    fn join(&mut self, room: &mut Room<'_>, client: ClientId, party: Option<&str>) {
        if !self.may_enter(room, client) {
            return;
        }
        let Some(party) = party else {
            return;
        };
        let Some(info) = self.parties.get(party) else {
            room.debug(&format!(
                "client {client}: join to unknown party {party:?} ignored"
            ));
            return;
        };
        if info.count >= self.config.max_clients_per_room {
            return common::send_error(room, client, ROOM_FULL, Some(party));
        }
        let Some(profile) = self.clients.get(&client).cloned() else {
            return;
        };
        let transit = Transit {
            profile,
            intent: Intent::Join {
                room: party.to_owned(),
            },
        };
        if let Err(err) = room.transfer(client, Some(party), &transit.encode(), false) {
            room.debug(&format!("client {client}: cannot join {party}: {err}"));
        }
    }
}

impl RoomService for Lobby {
    /// The lobby, with the parties already live (after a lobby restart).
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let config = crate::config_from(room, info);
        *self = Lobby::new(room, config);
        Ok(())
    }

    /// A client arrives: see the module docs. The lobby accepts everyone.
    fn connect(&mut self, room: &mut Room<'_>, info: &ClientInfo) -> Result<(), Rejection> {
        let client = info.id;
        let now = room.now_ms();
        let Some(handoff) = &info.handoff else {
            let mut profile = Profile::new(now);
            if let Some(identity) = &info.identity {
                profile.authenticated = true;
                profile.user_id = Some(identity.clone());
            }
            self.clients.insert(client, profile);
            common::arm_sweep(room, &mut self.sweep_armed, &self.config);
            let id = client_id(client);
            let hello = Out::new("client_hello", now)
                .with_client(id.clone())
                .with_payload(json!({ "client_id": id }));
            room.send(client, hello.to_message());
            self.send_room_list(room, client);
            return Ok(());
        };
        let transit = Transit::decode(&handoff.data);
        let profile = transit
            .as_ref()
            .map_or_else(|| Profile::new(now), |transit| transit.profile.clone());
        self.clients.insert(client, profile);
        common::arm_sweep(room, &mut self.sweep_armed, &self.config);

        if let Some(reason) = &handoff.rejected {
            // Turned away by the party it was sent to.
            let party = handoff.from_room.as_deref().unwrap_or("");
            room.debug(&format!("client {client} turned away by {party}: {reason}"));
            if reason == ROOM_FULL {
                common::send_error(room, client, ROOM_FULL, Some(party));
            } else if matches!(transit.map(|t| t.intent), Some(Intent::Create { .. })) {
                common::send_error(room, client, CREATE_FAILED, None);
            }
            // Otherwise the party ended meanwhile: a join to an unknown
            // party is ignored.
            return Ok(());
        }
        // The request carries on at once: the host moves the client once
        // this `connect` has accepted it.
        match transit.map(|transit| transit.intent) {
            Some(Intent::Create { request }) => self.create(room, client, request),
            Some(Intent::Join { room: party }) => self.join(room, client, Some(&party)),
            Some(Intent::Return) | None => self.send_room_list(room, client),
        }
        Ok(())
    }

    /// A frame from a client in the lobby.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let Some(profile) = self.clients.get_mut(&client) else {
            return;
        };
        let Some(incoming) = common::receive(room, client, profile, message, &self.config, None)
        else {
            return;
        };
        match incoming.kind.as_str() {
            "list_rooms" => self.send_room_list(room, client),
            "create_room" => {
                profile.offer_name(incoming.field("user_name"));
                let request = CreateRequest::from_payload(incoming.payload.as_ref());
                self.create(room, client, request);
            }
            "join_room" => {
                profile.offer_name(incoming.field("user_name"));
                self.join(room, client, incoming.target_room());
            }
            // `ready`, `leave_room`, `player_event`, `state_update`,
            // `chat_message`: only meaningful in a party.
            _ => {}
        }
    }

    /// A client left the lobby (for a party, or the service).
    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, _reason: DisconnectReason) {
        self.clients.remove(&client);
        if self.clients.is_empty() {
            common::disarm_sweep(room, &mut self.sweep_armed);
        }
    }

    /// The silence sweep.
    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        if timer != TIMER_SWEEP {
            return;
        }
        self.sweep_armed = false;
        common::close_silent(room, &self.clients, &self.config);
        if !self.clients.is_empty() {
            common::arm_sweep(room, &mut self.sweep_armed, &self.config);
        }
    }

    /// A party was created, changed or ended: update the list and push it
    /// if it changed.
    fn room_changed(&mut self, room: &mut Room<'_>, change: RoomChange) {
        match change {
            RoomChange::Updated(entry) => match PartyInfo::from_entry(&entry) {
                Some(info) => {
                    self.parties.insert(entry.room_id, info);
                }
                None => {
                    self.parties.remove(&entry.room_id);
                }
            },
            RoomChange::Closed(id) => {
                self.parties.remove(&id);
            }
        }
        self.push_room_list(room);
    }
}
