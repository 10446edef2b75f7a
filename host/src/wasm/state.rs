//! What a room's store holds, and the `host` imports a plugin calls.
//!
//! Imports never block: frames go straight into the clients' bounded queues
//! (or, for a room that uses storage, into its output gate until the event
//! commits; see `gate`), timers into the room's timer queue, and closes are
//! recorded so the actor can deliver `disconnect(kicked)` once the current
//! callback returns. The `storage` imports are in `store`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message as WsMessage;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use roomhost_rules::checks::{self, ClientStateRefusal, TransferRefusal, TransferSource};
use roomhost_rules::storage::RoomStore;

use super::bindings::roomhost::room::{auth, directory, host, types};
use super::gate::{Held, OutputGate};
use super::output::PluginLog;
use super::plugin::Description;
use super::text::{MAX_PLUGIN_TEXT, bounded};
use super::timers::Timers;
use crate::auth::TokenVerifier;
use crate::client::{ClientId, ClientSender, Move, SendError};
use crate::close;
use crate::dev::{DevTap, Direction, Payload};
use crate::limits::Limits;
use crate::metrics::Metrics;
use prometheus_client::metrics::histogram::Histogram;

/// What a room instance may ask of the rest of the host: the other clients
/// of its service, the service's rooms, the server root, the token key and
/// the dev tap. The room table implements it; keeping it a trait lets this
/// module know nothing of the table.
pub trait ServiceDirectory: Send + Sync {
    /// A client of `service`, wherever it is.
    fn client(&self, service: &str, client: ClientId) -> Option<ClientSender>;
    /// Whether room `room` of `service` is live.
    fn is_live(&self, service: &str, room: &str) -> bool;
    /// The live rooms of `service`, the lobby excluded, sorted by id.
    fn entries(&self, service: &str) -> Vec<types::RoomEntry>;
    /// Lets `service`'s lobby serve `/`; fails when another service has it.
    fn claim_root(&self, service: &Arc<str>) -> Result<(), String>;
    /// Forgets a client that left the service while it waited to reconnect
    /// (its seat and its resume token).
    fn forget_client(&self, client: ClientId);
    /// How tokens are verified (`None`: no key configured).
    fn auth(&self) -> Option<&TokenVerifier>;
    /// The dev event stream, in dev mode.
    fn tap(&self) -> Option<&DevTap>;
    /// The host's metrics.
    fn metrics(&self) -> &Metrics;
}

/// Where a room instance sits in the host: its service's directory and its
/// own name. An instance driven without one (a benchmark) has no directory:
/// `transfer`, `rooms` and `serve-root` fail, and `send` reaches only its
/// members.
#[derive(Clone)]
pub struct RoomLink {
    pub(crate) directory: Arc<dyn ServiceDirectory>,
    pub(crate) service: Arc<str>,
    pub(crate) room: Arc<str>,
}

impl RoomLink {
    fn is_lobby(&self) -> bool {
        *self.room == *roomhost_rules::LOBBY_ROOM_ID
    }
}

/// A transfer the plugin asked for during the current callback.
pub(crate) struct PendingTransfer {
    pub(crate) client: ClientId,
    pub(crate) sender: ClientSender,
    pub(crate) to: Option<String>,
    pub(crate) data: Vec<u8>,
    pub(crate) create: bool,
}

/// A client of the room, as the host keeps it.
#[derive(Clone)]
pub(crate) struct Member {
    /// Its writing side.
    pub(crate) sender: ClientSender,
    /// How it connected, without its hand-off: what `client-details`
    /// returns, and what a reload without snapshot replays as `connect`.
    pub(crate) arrival: types::ClientInfo,
    /// What the plugin attached with `set-client-state`.
    pub(crate) state: Vec<u8>,
    /// Set while its connection is lost and it may reconnect.
    pub(crate) suspended: Option<Suspension>,
}

/// A member waiting to reconnect: until when, and the frames sent to it
/// meanwhile (replayed in order if it comes back).
#[derive(Clone)]
pub(crate) struct Suspension {
    pub(crate) until: tokio::time::Instant,
    pub(crate) frames: Vec<WsMessage>,
    pub(crate) bytes: usize,
}

/// The part of a room the host owns rather than the plugin. It is one value
/// so that a hot reload moves all of it to the new instance: a field added
/// here cannot be forgotten by the reload.
#[derive(Clone)]
pub(crate) struct Occupancy {
    pub(crate) members: HashMap<ClientId, Member>,
    pub(crate) timers: Timers,
    /// Transferred clients whose connection has not switched yet, with the
    /// frames that reached this room meanwhile (handed on, in order).
    pub(crate) departing: HashMap<ClientId, Vec<types::Frame>>,
    /// Listing metadata from `set-info`.
    pub(crate) info: Option<serde_json::Value>,
    /// The room's stored data and the writes awaiting their commit.
    pub(crate) store: RoomStore,
}

/// The data of one room's wasmtime store.
pub struct RoomState {
    wasi: WasiCtx,
    /// Where the plugin's stdout, stderr and `host.log` go.
    pub(crate) log: PluginLog,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// Clients, timers, held frames and info: what a reload carries over.
    pub(crate) room: Occupancy,
    /// Output waiting for the current event's commit (rooms that use
    /// storage).
    pub(crate) gate: OutputGate,
    /// Clients closed by the plugin during the current callback.
    pub(crate) kicked: Vec<ClientId>,
    /// Clients transferred away during the current callback.
    pub(crate) transfers: Vec<PendingTransfer>,
    /// Suspended clients whose replay buffer overflowed during the current
    /// callback: their grace ends (`disconnect(lost)` after the call).
    pub(crate) overflowed: Vec<ClientId>,
    /// Whether `init` is running (the only time `serve-root` is allowed).
    pub(crate) in_init: bool,
    /// The client whose `connect` is running. A transfer of it waits in
    /// `deferred_transfer` until it is accepted.
    pub(crate) connecting: Option<ClientId>,
    pub(crate) deferred_transfer: Option<PendingTransfer>,
    link: Option<RoomLink>,
    /// What the service's plugin declared (`describe`), its grace period
    /// already capped by `max_reconnect_grace`.
    pub(crate) description: Description,
    max_replay_frames: usize,
    max_replay_bytes: usize,
    max_room_id_bytes: usize,
    max_departing_frames: usize,
    max_client_state_bytes: usize,
    /// Whether the info changed since the actor last published it.
    pub(crate) info_changed: bool,
    /// The room's callback-duration histograms, by callback name.
    call_histograms: Vec<(&'static str, Histogram)>,
    /// The last error-level log line of the current callback (the SDK logs
    /// panics this way), used to explain a trap.
    pub(crate) last_error_log: Option<String>,
    max_plugin_frame_bytes: usize,
    max_info_bytes: usize,
}

impl RoomState {
    /// Fresh state for a room under `limits`, logging to `log`. WASI gets
    /// an empty context (no directories, no environment, no arguments) with
    /// stdout and stderr going to `log`; see [`super::wasi`].
    pub(crate) fn new(
        limits: &Limits,
        link: Option<RoomLink>,
        description: Description,
        log: PluginLog,
    ) -> RoomState {
        RoomState {
            wasi: WasiCtx::builder()
                .stdout(log.stdout())
                .stderr(log.stderr())
                .build(),
            table: bounded_table(),
            log,
            limiter: MemoryLimiter {
                max_bytes: limits.room_memory_bytes,
                used_bytes: 0,
                exceeded: false,
            },
            room: Occupancy {
                members: HashMap::new(),
                timers: Timers::new(limits.max_timers_per_room),
                departing: HashMap::new(),
                info: None,
                store: RoomStore::new(limits.storage()),
            },
            gate: OutputGate::new(description.uses_storage, limits.max_held_output_bytes),
            kicked: Vec::new(),
            transfers: Vec::new(),
            overflowed: Vec::new(),
            in_init: false,
            connecting: None,
            deferred_transfer: None,
            link,
            description,
            max_replay_frames: limits.max_replay_frames,
            max_replay_bytes: limits.max_replay_bytes,
            max_room_id_bytes: limits.max_room_id_bytes,
            max_departing_frames: limits.room_inbox,
            max_client_state_bytes: limits.max_client_state_bytes,
            info_changed: false,
            call_histograms: Vec::new(),
            last_error_log: None,
            max_plugin_frame_bytes: limits.max_plugin_frame_bytes,
            max_info_bytes: limits.max_info_bytes,
        }
    }

    /// Makes `sender` a member of the room without a `connect` call, for
    /// driving an instance directly (benchmarks, embedders).
    pub fn insert_member(&mut self, sender: ClientSender) {
        let arrival = types::ClientInfo {
            id: sender.id(),
            path: String::new(),
            query: String::new(),
            identity: None,
            handoff: None,
            claims: None,
            read_only: false,
            resume_token: None,
        };
        self.add_member(sender, arrival);
    }

    /// Makes a client a member, remembering how it arrived (without its
    /// hand-off) and with no state.
    pub(crate) fn add_member(&mut self, sender: ClientSender, mut arrival: types::ClientInfo) {
        arrival.handoff = None;
        let member = Member {
            sender,
            arrival,
            state: Vec::new(),
            suspended: None,
        };
        self.room.members.insert(member.sender.id(), member);
    }

    /// Whether `client` is a member.
    pub(crate) fn is_member(&self, client: ClientId) -> bool {
        self.room.members.contains_key(&client)
    }

    /// The members' ids, ascending.
    pub(crate) fn member_ids(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.room.members.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Removes a member; its writing side, if it was one.
    pub(crate) fn remove_member(&mut self, client: ClientId) -> Option<ClientSender> {
        self.room
            .members
            .remove(&client)
            .map(|member| member.sender)
    }

    /// Keeps a frame that reached this room after its sender was transferred
    /// away; returns false when the client is not departing.
    pub(crate) fn hold_for_departing(&mut self, client: ClientId, frame: types::Frame) -> bool {
        let limit = self.max_departing_frames;
        match self.room.departing.get_mut(&client) {
            Some(held) if held.len() < limit => {
                held.push(frame);
                true
            }
            Some(_) => {
                tracing::warn!(client, "too many frames during a transfer; dropped one");
                true
            }
            None => false,
        }
    }

    /// Reports a frame to the dev tap, in dev mode.
    pub(crate) fn tap_frame(
        &self,
        client: Option<ClientId>,
        direction: Direction,
        msg: &types::Frame,
    ) {
        if let Some(link) = &self.link
            && let Some(tap) = link.directory.tap()
        {
            let payload = match msg {
                types::Frame::Text(text) => Payload::Text(text),
                types::Frame::Binary(bytes) => Payload::Binary(bytes),
            };
            tap.frame(&link.service, &link.room, client, direction, payload);
        }
    }

    /// Reports a join (`reason: None`) or a leave to the dev tap.
    pub(crate) fn tap_membership(&self, client: ClientId, reason: Option<&str>) {
        if let Some(link) = &self.link
            && let Some(tap) = link.directory.tap()
        {
            tap.membership(&link.service, &link.room, client, reason);
        }
    }

    /// Checks a plugin's frame against `max_plugin_frame_bytes`; the error
    /// is what `send` or `broadcast` returns to the plugin.
    fn fits(&self, msg: &types::Frame) -> Result<(), String> {
        checks::frame_fits(frame_len(msg), self.max_plugin_frame_bytes)
            .map_err(|error| error.to_string())
    }

    /// Keeps a frame for a suspended member; past `max_replay_frames` or
    /// `max_replay_bytes` its grace ends instead (after the call).
    fn keep_for_replay(&mut self, client: ClientId, frame: WsMessage, len: usize) {
        let (max_frames, max_bytes) = (self.max_replay_frames, self.max_replay_bytes);
        let Some(suspension) = self
            .room
            .members
            .get_mut(&client)
            .and_then(|member| member.suspended.as_mut())
        else {
            return;
        };
        if suspension.frames.len() >= max_frames || suspension.bytes + len > max_bytes {
            suspension.frames.clear();
            if !self.overflowed.contains(&client) {
                self.overflowed.push(client);
            }
            return;
        }
        suspension.bytes += len;
        suspension.frames.push(frame);
    }

    /// Puts a member on hold after its connection was lost, for the
    /// service's grace period; false when reconnection is off or the
    /// client is not a member.
    pub(crate) fn suspend(&mut self, client: ClientId) -> bool {
        let grace = self.description.reconnect_grace;
        if grace.is_zero() {
            return false;
        }
        match self.room.members.get_mut(&client) {
            Some(member) if member.suspended.is_none() => {
                member.suspended = Some(Suspension {
                    until: tokio::time::Instant::now() + grace,
                    frames: Vec::new(),
                    bytes: 0,
                });
                true
            }
            _ => false,
        }
    }

    /// The earliest end of a member's grace period, if any is waiting.
    pub(crate) fn next_expiry(&self) -> Option<tokio::time::Instant> {
        self.room
            .members
            .values()
            .filter_map(|member| member.suspended.as_ref().map(|s| s.until))
            .min()
    }

    /// A suspended member whose grace period is over at `now`.
    pub(crate) fn expired(&self, now: tokio::time::Instant) -> Option<ClientId> {
        self.room
            .members
            .iter()
            .find(|(_, member)| member.suspended.as_ref().is_some_and(|s| s.until <= now))
            .map(|(id, _)| *id)
    }

    /// Tells the service directory a client left while waiting to
    /// reconnect, so its seat and token go too.
    pub(crate) fn forget_client(&self, client: ClientId) {
        if let Some(link) = &self.link {
            link.directory.forget_client(client);
        }
    }

    /// Loads what the room stores, before `init`: its entries, and its
    /// durable timers pending again (one whose time passed fires at once).
    pub(crate) fn restore_storage(&mut self, limits: &Limits, stored: crate::storage::StoredRoom) {
        self.adopt_store(RoomStore::loaded(
            limits.storage(),
            stored.entries,
            stored.timers,
        ));
    }

    /// Makes `store` the room's storage, its durable timers pending again
    /// (a hot reload that restarts the room hands its store on this way).
    /// A durable timer the room has no room for is dropped from the store,
    /// so it does not wake the room at every start without firing.
    pub(crate) fn adopt_store(&mut self, mut store: RoomStore) {
        let now = unix_millis(SystemTime::now());
        let timers: Vec<(u64, u64)> = store.timers().collect();
        for (id, due) in timers {
            let delay = std::time::Duration::from_millis(due.saturating_sub(now));
            if let Err(error) = self.room.timers.set(id, delay) {
                tracing::warn!(timer = id, %error, "a stored durable timer was dropped");
                store.clear_timer(id);
            }
        }
        self.room.store = store;
    }

    /// The host's metrics, when the room is attached to a host.
    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.link.as_ref().map(|link| link.directory.metrics())
    }

    /// Counts `sent` frames of `len` bytes queued to clients, `slow` of
    /// which closed their client as a slow consumer.
    fn count_out(&self, sent: usize, len: usize, slow: usize) {
        if let Some(metrics) = self.metrics() {
            metrics.frames_out(sent, len);
            if slow > 0 {
                metrics.slow_consumers(slow);
            }
        }
    }

    /// Records a plugin callback's duration under the room's service.
    pub(crate) fn record_call(&mut self, callback: &'static str, elapsed: std::time::Duration) {
        let Some(link) = &self.link else {
            return;
        };
        // A room makes a handful of kinds of calls (one per export): a short
        // list of handles beats a labelled lookup, and two allocations, per
        // call.
        let cached = self
            .call_histograms
            .iter()
            .find(|(name, _)| *name == callback);
        let histogram = match cached {
            Some((_, histogram)) => histogram.clone(),
            None => {
                let histogram = link
                    .directory
                    .metrics()
                    .callback_histogram(&link.service, callback);
                self.call_histograms.push((callback, histogram.clone()));
                histogram
            }
        };
        histogram.observe(elapsed.as_secs_f64());
    }

    /// Sends what the gate held, in order: the event's writes are durable.
    pub(crate) fn release_output(&mut self) {
        for effect in self.gate.take() {
            match effect {
                Held::Frame(to, frame, len) => {
                    let slow = to.send(frame) == Err(SendError::SlowConsumer);
                    self.count_out(1, len, usize::from(slow));
                }
                Held::Close(to, code, reason) => to.close(code, &reason),
                Held::Relocate(to, order) => to.relocate(order),
            }
        }
    }

    /// Drops what the gate held (its event failed, nothing of it is sent)
    /// and returns the clients it was closing or moving: they have left
    /// the room already and must still hear that it failed.
    pub(crate) fn abandon_output(&mut self) -> Vec<ClientSender> {
        self.gate
            .take()
            .into_iter()
            .filter_map(|effect| match effect {
                Held::Close(to, ..) | Held::Relocate(to, _) => Some(to),
                Held::Frame(..) => None,
            })
            .collect()
    }

    /// Orders `to`'s connection to another room, through the gate.
    pub(crate) fn relocate(&mut self, to: &ClientSender, order: Move) {
        if self.gate.is_on() {
            self.gate.hold(Held::Relocate(to.clone(), order));
        } else {
            to.relocate(order);
        }
    }

    /// Records how long the room's instance took to create.
    pub(crate) fn record_instantiate(&self, elapsed: std::time::Duration) {
        if let Some(metrics) = self.metrics() {
            metrics.instantiated(elapsed);
        }
    }
}

/// Queues `frame` for `to`, or holds it in `gate` when the gate is on
/// (`None`: held, to be counted when released).
fn pass(
    gate: &mut OutputGate,
    to: &ClientSender,
    frame: WsMessage,
    len: usize,
) -> Option<Result<(), SendError>> {
    if gate.is_on() {
        gate.hold(Held::Frame(to.clone(), frame, len));
        return None;
    }
    Some(to.send(frame))
}

/// The payload size of a plugin's frame.
fn frame_len(msg: &types::Frame) -> usize {
    match msg {
        types::Frame::Text(text) => text.len(),
        types::Frame::Binary(bytes) => bytes.len(),
    }
}

/// Converts a plugin's frame for the wire.
fn into_ws(msg: types::Frame) -> WsMessage {
    match msg {
        types::Frame::Text(text) => WsMessage::Text(text.into()),
        types::Frame::Binary(bytes) => WsMessage::Binary(bytes.into()),
    }
}

impl WasiView for RoomState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for RoomState {}

impl host::Host for RoomState {
    fn send(&mut self, client: ClientId, msg: types::Frame) -> Result<(), String> {
        self.fits(&msg)?;
        let len = frame_len(&msg);
        self.gate
            .fits(len + super::gate::ENTRY_BYTES)
            .map_err(|error| error.to_string())?;
        self.tap_frame(Some(client), Direction::Out, &msg);
        let frame = into_ws(msg);
        // A slow consumer is closed by `send`; the room goes on.
        let sent = if let Some(member) = self.room.members.get_mut(&client) {
            if member.suspended.is_some() {
                self.keep_for_replay(client, frame, len);
                return Ok(());
            }
            pass(&mut self.gate, &member.sender, frame, len)
        } else if let Some(link) = &self.link
            && let Some(other) = link.directory.client(&link.service, client)
        {
            pass(&mut self.gate, &other, frame, len)
        } else {
            None
        };
        if let Some(sent) = sent {
            self.count_out(1, len, usize::from(sent == Err(SendError::SlowConsumer)));
        }
        Ok(())
    }

    fn broadcast(&mut self, msg: types::Frame, mut except: Vec<ClientId>) -> Result<(), String> {
        self.fits(&msg)?;
        let len = frame_len(&msg);
        if self.gate.is_on() {
            self.gate
                .fits((len + super::gate::ENTRY_BYTES).saturating_mul(self.room.members.len()))
                .map_err(|error| error.to_string())?;
        }
        self.tap_frame(None, Direction::Broadcast, &msg);
        let frame = into_ws(msg);
        // Sorted, so a long list costs log(n) per member rather than n.
        except.sort_unstable();
        let (mut sent, mut slow) = (0, 0);
        let mut waiting = Vec::new();
        for (id, member) in &self.room.members {
            if except.binary_search(id).is_err() {
                if member.suspended.is_some() {
                    waiting.push(*id);
                    continue;
                }
                if let Some(result) = pass(&mut self.gate, &member.sender, frame.clone(), len) {
                    sent += 1;
                    slow += usize::from(result == Err(SendError::SlowConsumer));
                }
            }
        }
        for client in waiting {
            self.keep_for_replay(client, frame.clone(), len);
        }
        self.count_out(sent, len, slow);
        Ok(())
    }

    fn close(&mut self, client: ClientId, code: u16, reason: String) {
        let waiting = self
            .room
            .members
            .get(&client)
            .is_some_and(|member| member.suspended.is_some());
        let Some(member) = self.remove_member(client) else {
            return;
        };
        if waiting {
            // Closed while waiting to reconnect: it has left the service.
            self.forget_client(client);
        }
        let code = if roomhost_rules::close::is_plugin_code(code) {
            code
        } else {
            tracing::warn!(
                code,
                "plugin used a reserved close code; sending 1000 instead"
            );
            close::NORMAL
        };
        if self.gate.is_on() {
            self.gate.hold(Held::Close(member, code, reason));
        } else {
            member.close(code, &reason);
        }
        self.kicked.push(client);
    }

    fn set_timer(&mut self, id: u64, delay_ms: u64) -> Result<(), String> {
        self.room
            .timers
            .set(id, checks::timer_delay(delay_ms))
            .map_err(|error| error.to_string())?;
        // A durable timer replaced by an ordinary one is no longer stored.
        self.room.store.clear_timer(id);
        Ok(())
    }

    fn cancel_timer(&mut self, id: u64) {
        self.room.timers.cancel(id);
        self.room.store.clear_timer(id);
    }

    fn now_ms(&mut self) -> u64 {
        unix_millis(SystemTime::now())
    }

    fn random(&mut self) -> u64 {
        rand::random()
    }

    fn log(&mut self, level: types::LogLevel, message: String) {
        let message = bounded(message, MAX_PLUGIN_TEXT);
        self.log.line(level, &message);
        if level == types::LogLevel::Error {
            // Kept even when the rate limit drops the line: it explains a
            // trap that follows (the SDK logs panics this way).
            self.last_error_log = Some(message);
        }
    }

    fn set_info(&mut self, info: String) -> Result<(), String> {
        checks::info_fits(info.len(), self.max_info_bytes).map_err(|error| error.to_string())?;
        let value = serde_json::from_str(&info)
            .map_err(|error| checks::InfoRefusal::NotJson(error.to_string()).to_string())?;
        // Re-publishing the same info is not a change the lobby hears about.
        if self.room.info.as_ref() != Some(&value) {
            self.room.info = Some(value);
            self.info_changed = true;
        }
        Ok(())
    }

    fn clients(&mut self) -> Vec<ClientId> {
        self.member_ids()
    }

    fn client_details(&mut self, client: ClientId) -> Option<types::ClientInfo> {
        self.room
            .members
            .get(&client)
            .map(|member| member.arrival.clone())
    }

    fn client_state(&mut self, client: ClientId) -> Option<Vec<u8>> {
        self.room
            .members
            .get(&client)
            .map(|member| member.state.clone())
    }

    fn set_client_state(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), types::ClientStateError> {
        let limit = self.max_client_state_bytes;
        checks::client_state_fits(self.is_member(client), state.len(), limit).map_err(
            |refusal| match refusal {
                ClientStateRefusal::TooLarge { limit, .. } => {
                    types::ClientStateError::TooLarge(u32::try_from(limit).unwrap_or(u32::MAX))
                }
                _ => types::ClientStateError::NotAMember,
            },
        )?;
        if let Some(member) = self.room.members.get_mut(&client) {
            member.state = state;
        }
        Ok(())
    }
}

impl directory::Host for RoomState {
    fn transfer(
        &mut self,
        client: ClientId,
        room: Option<String>,
        data: Vec<u8>,
        create: bool,
    ) -> Result<(), types::TransferError> {
        let Some(link) = &self.link else {
            return Err(types::TransferError::Unavailable);
        };
        let source = TransferSource {
            room_id: &link.room,
            lobby: link.is_lobby(),
            service_has_lobby: self.description.lobby,
            max_room_id_bytes: self.max_room_id_bytes,
        };
        // A member waiting to reconnect has no connection to move.
        let movable = self
            .room
            .members
            .get(&client)
            .is_some_and(|member| member.suspended.is_none());
        checks::transfer(source, movable, room.as_deref(), create, |id| {
            link.directory.is_live(&link.service, id)
        })
        .map_err(into_wit)?;
        let Some(member) = self.room.members.get(&client) else {
            return Err(types::TransferError::NotAMember);
        };
        let transfer = PendingTransfer {
            client,
            sender: member.sender.clone(),
            to: room,
            data,
            create,
        };
        if self.connecting == Some(client) {
            // Carried out once `connect` accepts the client (see the actor).
            // One move per client: a second one is refused, as it would be
            // once the first had taken the client out of the room.
            if self.deferred_transfer.is_some() {
                return Err(types::TransferError::NotAMember);
            }
            self.deferred_transfer = Some(transfer);
        } else {
            self.start_transfer(transfer);
        }
        Ok(())
    }

    fn rooms(&mut self) -> Vec<types::RoomEntry> {
        match &self.link {
            Some(link) => link.directory.entries(&link.service),
            None => Vec::new(),
        }
    }

    fn serve_root(&mut self) -> Result<(), String> {
        let Some(link) = &self.link else {
            return Err(TransferRefusal::Unavailable.to_string());
        };
        checks::may_serve_root(link.is_lobby(), self.in_init)
            .map_err(|refusal| refusal.to_string())?;
        link.directory.claim_root(&link.service)
    }
}

impl RoomState {
    /// Takes the client out of the room and queues its move: the actor
    /// sends it on its way after the current callback.
    pub(crate) fn start_transfer(&mut self, transfer: PendingTransfer) {
        if self.remove_member(transfer.client).is_some() {
            self.room.departing.insert(transfer.client, Vec::new());
            self.transfers.push(transfer);
        }
    }
}

/// The rules' refusal as the contract's `transfer-error`.
fn into_wit(refusal: TransferRefusal) -> types::TransferError {
    match refusal {
        TransferRefusal::NotAMember => types::TransferError::NotAMember,
        TransferRefusal::SameRoom => types::TransferError::SameRoom,
        TransferRefusal::InvalidRoomId { max } => {
            types::TransferError::InvalidRoomId(u32::try_from(max).unwrap_or(u32::MAX))
        }
        TransferRefusal::NoSuchRoom => types::TransferError::NoSuchRoom,
        TransferRefusal::NoLobby => types::TransferError::NoLobby,
        _ => types::TransferError::Unavailable,
    }
}

impl auth::Host for RoomState {
    fn enabled(&mut self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|link| link.directory.auth().is_some())
    }

    fn verify_token(&mut self, token: String) -> Result<String, String> {
        let auth = self
            .link
            .as_ref()
            .and_then(|link| link.directory.auth())
            .ok_or_else(|| "no token key configured".to_owned())?;
        auth.verify(&token)
            .map(|claims| claims.to_string())
            .map_err(|error| error.to_string())
    }
}

/// WASI resources (streams, pollables) one room may hold at once. The
/// default (a million) would let a plugin pin ~100 MB of host memory
/// outside its memory cap by never dropping the pollables it creates.
const MAX_WASI_RESOURCES: usize = 4096;

fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_WASI_RESOURCES);
    table
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Caps a room's linear memory and remembers whether the cap was hit, so a
/// memory bomb is reported as such rather than as a generic trap.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// All of the room's linear memories together.
    used_bytes: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .used_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!("room memory limit of {} bytes exceeded", self.max_bytes);
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a legitimate plugin needs few.
        Ok(desired <= 100_000)
    }
}
