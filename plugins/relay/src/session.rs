//! One share session: a host, its viewers, the history routing and the
//! record.
//!
//! - A client arriving with hand-off data `host` becomes the host (a second
//!   one is rejected) and gets `{"type":"created","code":CODE}`. Any other
//!   client (hand-off data `viewer`, or someone connecting to
//!   `/ws/relay/CODE` by URL) becomes a viewer and gets
//!   `{"type":"joined","code":CODE}`. A room whose id is not a valid code
//!   rejects everyone, and so does a session that has ended.
//! - Host `command`/`activate` → recorded, and forwarded unchanged (the
//!   exact frame text) to every viewer.
//! - Viewer `history_request` → the viewer joins the FIFO of waiting
//!   viewers, the frame is forwarded unchanged to the host, and a timer
//!   starts. Host `history` → forwarded unchanged to the oldest waiting
//!   viewer (timer cancelled); with nobody waiting it is dropped. When the
//!   timer fires first, or when there is no host, the room answers from its
//!   record (see [`Session::history_from_record`]).
//! - Other viewer frames are ignored; so are host frames of other types.
//! - Host `close` or host departure → every viewer gets
//!   `{"type":"closed","reason":...}` and is closed with code 1000; after a
//!   `close` the host goes back to the lobby, so it can create again on the
//!   same socket. The session then has no clients and no timers, and ends.
//! - Listing metadata: `{"viewers": N}`.
//! - The record is kept in the room's storage ([`persist`]): a session
//!   that runs again after a host restart answers history requests with
//!   what it had relayed; an ended session deletes it. A durable timer
//!   ([`LEASE_TIMER`]) ends a session `stored_record_ms` after its host's
//!   last frame when the host is gone, so a record stored when the server
//!   went down does not stay forever.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Rejection, Room, RoomService,
    TimerId, room_service,
};
use serde_json::Value;

use crate::lobby::Lobby;
use crate::persist;
use crate::record::{Kind, Record};
use crate::{Config, Frame, HANDOFF_CLOSED, HANDOFF_HOST, Out, UNKNOWN_ROOM_CODE, is_room_code};

/// The `closed` reason after the host's `close`.
pub const REASON_HOST_CLOSED: &str = "Host closed the session";
/// The `closed` reason after the host disconnected.
pub const REASON_HOST_LEFT: &str = "Host disconnected";

/// The durable timer that bounds how long the stored record outlives its
/// host (see [`Config::stored_record_ms`]). History timers count up from 0
/// and never reach it.
pub const LEASE_TIMER: TimerId = TimerId::MAX;

/// A viewer waiting for history, and the timer that answers it from the
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    viewer: ClientId,
    timer: TimerId,
}

/// The state of one session: the service's rooms (its lobby is a
/// [`Lobby`]).
#[derive(Debug)]
#[room_service(lobby = Lobby)]
pub struct Session {
    code: String,
    history_timeout: Duration,
    host: Option<ClientId>,
    viewers: BTreeSet<ClientId>,
    /// Viewers waiting for history, oldest first.
    waiting: VecDeque<Waiting>,
    next_timer: TimerId,
    record: Record,
    /// Set once the host closed or left: the session accepts nobody.
    ended: bool,
    /// How long the stored record outlives its host's last frame.
    lease: Duration,
    /// When the lease timer is due, while this instance has set it.
    lease_due: Option<u64>,
}

impl Session {
    /// A session for the room `room` runs in.
    pub fn new(room: &mut Room<'_>, config: &Config) -> Self {
        let session = Self::with_config(room.room_id().to_owned(), config);
        session.update_info(room);
        session
    }

    fn with_config(code: String, config: &Config) -> Self {
        Self {
            code,
            history_timeout: Duration::from_millis(config.history_timeout_ms),
            host: None,
            viewers: BTreeSet::new(),
            waiting: VecDeque::new(),
            next_timer: 0,
            record: Record::new(config.max_record_entries, config.max_record_bytes),
            ended: false,
            lease: Duration::from_millis(config.stored_record_ms),
            lease_due: None,
        }
    }

    /// The room code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The host, while connected.
    pub fn host(&self) -> Option<ClientId> {
        self.host
    }

    /// The viewers, in id order.
    pub fn viewers(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.viewers.iter().copied()
    }

    /// The viewers waiting for history, oldest request first.
    pub fn waiting(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.waiting.iter().map(|waiting| waiting.viewer)
    }

    /// The record of relayed frames.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Whether the session has ended (host closed or left).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// A frame of type `kind` (parsed as `value`, received as `text`).
    fn on_frame(&mut self, room: &mut Room<'_>, client: ClientId, frame: &Frame) {
        if self.host == Some(client) {
            self.host_frame(room, &frame.kind, &frame.value, &frame.text);
        } else if self.viewers.contains(&client) && frame.kind == "history_request" {
            self.history_request(room, client, &frame.text);
        }
    }

    /// The `history` frame the room sends when answering from its record:
    /// `{"type":"history","commands":[...]}` with
    /// [`Record::history_commands`]: every recorded `command`'s `data`
    /// unchanged, and every recorded `activate` as its frame, in relay order.
    pub fn history_from_record(&self) -> Message {
        Out::History {
            commands: self.record.history_commands(),
        }
        .to_message()
    }

    fn host_frame(&mut self, room: &mut Room<'_>, kind: &str, value: &Value, text: &str) {
        match kind {
            "command" | "activate" => {
                let kind = if kind == "command" {
                    Kind::Command
                } else {
                    Kind::Activate
                };
                if let Some(data) = value.get("data") {
                    let pushed = self.record.push(kind, data.clone());
                    if let Err(err) = persist::save(&mut room.storage(), &mut self.record, pushed) {
                        room.warn(&format!(
                            "a {} frame is relayed but not recorded: {err}",
                            kind.name()
                        ));
                    }
                    self.renew_lease(room);
                }
                self.broadcast_to_viewers(room, text);
            }
            "history" => match self.waiting.pop_front() {
                Some(waiting) => {
                    room.cancel_timer(waiting.timer);
                    room.send(waiting.viewer, text);
                }
                None => room.debug("history from the host with nobody waiting; dropped"),
            },
            "close" => {
                if let Some(host) = self.host.take() {
                    self.end(room, REASON_HOST_CLOSED);
                    if let Err(err) = room.transfer_to_lobby(host, HANDOFF_CLOSED) {
                        room.warn(&format!("cannot return the host to the lobby: {err}"));
                        room.close(host, 1000, REASON_HOST_CLOSED);
                    }
                }
            }
            _ => {}
        }
    }

    fn history_request(&mut self, room: &mut Room<'_>, viewer: ClientId, text: &str) {
        let Some(host) = self.host else {
            return self.answer_from_record(room, viewer);
        };
        let timer = self.next_timer;
        self.next_timer = self.next_timer.wrapping_add(1);
        if let Err(err) = room.set_timer(timer, self.history_timeout) {
            room.warn(&format!("cannot time a history request: {err}"));
            return self.answer_from_record(room, viewer);
        }
        self.waiting.push_back(Waiting { viewer, timer });
        room.send(host, text);
    }

    /// Keeps the stored record for `stored_record_ms` after now, with a
    /// durable timer, so that a session stored when the host went down with
    /// the server is deleted in time even if nobody comes back to it. Set
    /// again only once half of it has passed.
    fn renew_lease(&mut self, room: &mut Room<'_>) {
        if self.record.is_empty() {
            return;
        }
        let now = room.now_ms();
        let lease = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        if self
            .lease_due
            .is_some_and(|due| due.saturating_sub(now) > lease / 2)
        {
            return;
        }
        match room.storage().set_durable_timer(LEASE_TIMER, self.lease) {
            Ok(()) => self.lease_due = Some(now.saturating_add(lease)),
            Err(err) => room.warn(&format!("cannot bound the stored record: {err}")),
        }
    }

    fn answer_from_record(&self, room: &mut Room<'_>, viewer: ClientId) {
        let reply = self.history_from_record();
        let bytes = reply.len();
        if let Err(err) = room.try_send(viewer, reply) {
            room.warn(&format!(
                "the history reply ({bytes} bytes) cannot be sent: {err}"
            ));
        }
    }

    fn broadcast_to_viewers(&self, room: &mut Room<'_>, text: &str) {
        let except: Vec<ClientId> = self.host.into_iter().collect();
        room.broadcast(text, &except);
    }

    /// Tells every viewer the session is over and closes it; forgets all
    /// state so the room can end.
    fn end(&mut self, room: &mut Room<'_>, reason: &str) {
        self.ended = true;
        let closed = Out::Closed { reason }.to_message();
        for viewer in std::mem::take(&mut self.viewers) {
            room.send(viewer, closed.clone());
            room.close(viewer, 1000, reason);
        }
        for waiting in self.waiting.drain(..) {
            room.cancel_timer(waiting.timer);
        }
        persist::clear(&mut room.storage(), &self.record);
        self.record.clear();
        room.cancel_timer(LEASE_TIMER);
        self.lease_due = None;
        self.update_info(room);
    }

    fn update_info(&self, room: &mut Room<'_>) {
        let info = serde_json::json!({ "viewers": self.viewers.len() });
        if let Err(err) = room.set_info(&info) {
            room.warn(&err.to_string());
        }
    }
}

impl Default for Session {
    /// A session before `init` (no code: it accepts nobody).
    fn default() -> Self {
        Self::with_config(String::new(), &Config::default())
    }
}

impl RoomService for Session {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        *self = Session::new(room, &Config::from_init(info)?);
        // A session that ran before a restart finds its record in storage.
        let unreadable = persist::load(&mut room.storage(), &mut self.record);
        if unreadable > 0 {
            room.warn(&format!(
                "{unreadable} stored record entries cannot be read; deleted"
            ));
        }
        Ok(())
    }

    /// A client wants in: the host (hand-off `host`) or a viewer.
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        if self.ended || !is_room_code(&self.code) {
            return Err(UNKNOWN_ROOM_CODE.into());
        }
        let as_host = client
            .handoff
            .as_ref()
            .is_some_and(|handoff| handoff.data == HANDOFF_HOST && !handoff.is_rejected());
        if as_host {
            if self.host.is_some() {
                return Err("this session already has a host".into());
            }
            self.host = Some(client.id);
            room.send(client.id, Out::Created { code: &self.code }.to_message());
        } else {
            self.viewers.insert(client.id);
            room.send(client.id, Out::Joined { code: &self.code }.to_message());
            self.update_info(room);
        }
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        if let Some(frame) = Frame::parse(message) {
            self.on_frame(room, client, &frame);
        }
    }

    /// A client left.
    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        if self.host == Some(client) {
            self.host = None;
            room.debug(&format!("host left ({reason:?})"));
            self.end(room, REASON_HOST_LEFT);
        } else if self.viewers.remove(&client) {
            self.waiting.retain(|waiting| {
                if waiting.viewer == client {
                    room.cancel_timer(waiting.timer);
                }
                waiting.viewer != client
            });
            self.update_info(room);
        }
    }

    /// A history timer fired: its viewer, if still waiting, is answered
    /// from the record.
    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        if timer == LEASE_TIMER {
            self.lease_due = None;
            if self.host.is_some() {
                self.renew_lease(room);
            } else {
                room.info("the stored record outlived its host; the session ends");
                self.end(room, REASON_HOST_LEFT);
            }
            return;
        }
        let Some(index) = self.waiting.iter().position(|w| w.timer == timer) else {
            return;
        };
        if let Some(waiting) = self.waiting.remove(index) {
            self.answer_from_record(room, waiting.viewer);
        }
    }
}
