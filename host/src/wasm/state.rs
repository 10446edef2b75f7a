//! What a room's store holds, and the `host` imports a plugin calls.
//!
//! Imports never block: frames go straight into the clients' bounded queues,
//! timers into the room's timer queue, and closes are recorded so the actor can
//! deliver `disconnect(kicked)` once the current callback returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message as WsMessage;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::bindings::roomhost::room::{auth, directory, host, types};
use super::output::PluginLog;
use crate::client::{ClientId, ClientSender};
use crate::close;
use crate::dev::{Direction, Payload};
use crate::limits::Limits;
use crate::room::timers::Timers;
use crate::room::{LOBBY, RoomKey, Rooms};

/// Where a room instance sits in the host: the room table and its own key.
/// An instance driven without one (a benchmark) has no directory: `transfer`,
/// `rooms` and `serve-root` fail, and `send` reaches only its members.
#[derive(Clone)]
pub struct RoomLink {
    pub(crate) rooms: Arc<Rooms>,
    pub(crate) key: RoomKey,
}

impl RoomLink {
    fn is_lobby(&self) -> bool {
        &*self.key.room == LOBBY
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

/// The part of a room the host owns rather than the plugin: it moves from
/// the old instance to the new one on a hot reload.
#[derive(Clone)]
pub(crate) struct Occupancy {
    pub(crate) members: HashMap<ClientId, ClientSender>,
    pub(crate) arrivals: HashMap<ClientId, types::ClientInfo>,
    pub(crate) timers: Timers,
    pub(crate) departing: HashMap<ClientId, Vec<types::Frame>>,
    pub(crate) info: Option<serde_json::Value>,
}

/// The data of one room's wasmtime store.
pub struct RoomState {
    wasi: WasiCtx,
    /// Where the plugin's stdout, stderr and `host.log` go.
    pub(crate) log: PluginLog,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) members: HashMap<ClientId, ClientSender>,
    /// How each member connected, replayed as `connect` when a reload
    /// restarts the room without a snapshot.
    pub(crate) arrivals: HashMap<ClientId, types::ClientInfo>,
    pub(crate) timers: Timers,
    /// Clients closed by the plugin during the current callback.
    pub(crate) kicked: Vec<ClientId>,
    /// Clients transferred away during the current callback.
    pub(crate) transfers: Vec<PendingTransfer>,
    /// Transferred clients whose connection has not switched yet, with the
    /// frames that reached this room meanwhile (handed on, in order).
    pub(crate) departing: HashMap<ClientId, Vec<types::Frame>>,
    /// Whether `init` is running (the only time `serve-root` is allowed).
    pub(crate) in_init: bool,
    /// The client whose `connect` is running: it cannot be transferred
    /// before it is accepted.
    pub(crate) connecting: Option<ClientId>,
    link: Option<RoomLink>,
    max_room_id_bytes: usize,
    max_departing_frames: usize,
    /// Listing metadata from `set-info`, and whether it changed.
    pub(crate) info: Option<serde_json::Value>,
    pub(crate) info_changed: bool,
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
    pub(crate) fn new(limits: &Limits, link: Option<RoomLink>, log: PluginLog) -> RoomState {
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
            members: HashMap::new(),
            arrivals: HashMap::new(),
            timers: Timers::new(limits.max_timers_per_room),
            kicked: Vec::new(),
            transfers: Vec::new(),
            departing: HashMap::new(),
            in_init: false,
            connecting: None,
            link,
            max_room_id_bytes: limits.max_room_id_bytes,
            max_departing_frames: limits.room_inbox,
            info: None,
            info_changed: false,
            last_error_log: None,
            max_plugin_frame_bytes: limits.max_plugin_frame_bytes,
            max_info_bytes: limits.max_info_bytes,
        }
    }

    /// Makes `sender` a member of the room without a `connect` call, for
    /// driving an instance directly (benchmarks, embedders).
    pub fn insert_member(&mut self, sender: ClientSender) {
        self.members.insert(sender.id(), sender);
    }

    /// Removes a member and what the host remembers of how it connected.
    pub(crate) fn remove_member(&mut self, client: ClientId) -> Option<ClientSender> {
        self.arrivals.remove(&client);
        self.members.remove(&client)
    }

    /// A copy of what the host keeps for the room across a reload (clients,
    /// timers, held frames, info).
    pub(crate) fn occupancy(&self) -> Occupancy {
        Occupancy {
            members: self.members.clone(),
            arrivals: self.arrivals.clone(),
            timers: self.timers.clone(),
            departing: self.departing.clone(),
            info: self.info.clone(),
        }
    }

    /// Installs an occupancy taken from another instance of the room.
    pub(crate) fn put_occupancy(&mut self, occupancy: Occupancy) {
        self.members = occupancy.members;
        self.arrivals = occupancy.arrivals;
        self.timers = occupancy.timers;
        self.departing = occupancy.departing;
        self.info = occupancy.info;
    }

    /// Keeps a frame that reached this room after its sender was transferred
    /// away; returns false when the client is not departing.
    pub(crate) fn hold_for_departing(&mut self, client: ClientId, frame: types::Frame) -> bool {
        let limit = self.max_departing_frames;
        match self.departing.get_mut(&client) {
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
            && let Some(tap) = link.rooms.tap()
        {
            let payload = match msg {
                types::Frame::Text(text) => Payload::Text(text),
                types::Frame::Binary(bytes) => Payload::Binary(bytes),
            };
            tap.frame(
                &link.key.service,
                &link.key.room,
                client,
                direction,
                payload,
            );
        }
    }

    /// Reports a join (`reason: None`) or a leave to the dev tap.
    pub(crate) fn tap_membership(&self, client: ClientId, reason: Option<&str>) {
        if let Some(link) = &self.link
            && let Some(tap) = link.rooms.tap()
        {
            tap.membership(&link.key.service, &link.key.room, client, reason);
        }
    }

    /// The directory link, or the error a plugin sees without one.
    fn link(&self) -> Result<&RoomLink, String> {
        self.link
            .as_ref()
            .ok_or_else(|| "this instance is not attached to a room table".to_owned())
    }

    /// Checks a plugin's frame against `max_plugin_frame_bytes`; the error
    /// is what `send` or `broadcast` returns to the plugin.
    fn fits(&self, msg: &types::Frame) -> Result<(), String> {
        let len = match msg {
            types::Frame::Text(text) => text.len(),
            types::Frame::Binary(bytes) => bytes.len(),
        };
        if len > self.max_plugin_frame_bytes {
            return Err(frame_too_large(len, self.max_plugin_frame_bytes));
        }
        Ok(())
    }
}

/// The error a plugin gets for a frame over the plugin frame limit. The SDK
/// harness (`roomhost_sdk::testing`) words it the same way.
pub(crate) fn frame_too_large(len: usize, limit: usize) -> String {
    format!("frame is {len} bytes; the limit is {limit} (max_plugin_frame_bytes)")
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
        self.tap_frame(Some(client), Direction::Out, &msg);
        let frame = into_ws(msg);
        // A slow consumer is closed by `send`; the room goes on.
        if let Some(member) = self.members.get(&client) {
            let _ = member.send(frame);
        } else if let Some(link) = &self.link
            && let Some(other) = link.rooms.client(&link.key.service, client)
        {
            let _ = other.send(frame);
        }
        Ok(())
    }

    fn broadcast(&mut self, msg: types::Frame, mut except: Vec<ClientId>) -> Result<(), String> {
        self.fits(&msg)?;
        self.tap_frame(None, Direction::Broadcast, &msg);
        let frame = into_ws(msg);
        // Sorted, so a long list costs log(n) per member rather than n.
        except.sort_unstable();
        for (id, member) in &self.members {
            if except.binary_search(id).is_err() {
                let _ = member.send(frame.clone());
            }
        }
        Ok(())
    }

    fn close(&mut self, client: ClientId, code: u16, reason: String) {
        let Some(member) = self.remove_member(client) else {
            return;
        };
        let code = if close::is_plugin_code(code) {
            code
        } else {
            tracing::warn!(
                code,
                "plugin used a reserved close code; sending 1000 instead"
            );
            close::NORMAL
        };
        member.close(code, &reason);
        self.kicked.push(client);
    }

    fn set_timer(&mut self, id: u64, delay_ms: u64) -> Result<(), String> {
        self.timers
            .set(id, Duration::from_millis(delay_ms))
            .map_err(|error| error.to_string())
    }

    fn cancel_timer(&mut self, id: u64) {
        self.timers.cancel(id);
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
        if info.len() > self.max_info_bytes {
            return Err(format!(
                "info is {} bytes; the limit is {}",
                info.len(),
                self.max_info_bytes
            ));
        }
        let value = serde_json::from_str(&info)
            .map_err(|error| format!("info is not valid JSON: {error}"))?;
        // Re-publishing the same info is not a change the lobby hears about.
        if self.info.as_ref() != Some(&value) {
            self.info = Some(value);
            self.info_changed = true;
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
    ) -> Result<(), String> {
        let link = self.link()?;
        if !self.members.contains_key(&client) {
            return Err(format!("client {client} is not in this room"));
        }
        if self.connecting == Some(client) {
            return Err("a client cannot be transferred during its own connect; accept it, then transfer it".into());
        }
        match &room {
            None if link.is_lobby() => return Err("the client is already in the lobby".into()),
            None => {}
            Some(id) if id.is_empty() || id.len() > self.max_room_id_bytes => {
                return Err(format!(
                    "a room id must be 1 to {} bytes",
                    self.max_room_id_bytes
                ));
            }
            Some(id) if **id == *link.key.room => {
                return Err("the client is already in this room".into());
            }
            Some(id) if !create && !link.rooms.is_live(&link.key.service, id) => {
                return Err(format!("no room named {id:?}"));
            }
            Some(_) => {}
        }
        let Some(sender) = self.remove_member(client) else {
            return Err(format!("client {client} is not in this room"));
        };
        self.departing.insert(client, Vec::new());
        self.transfers.push(PendingTransfer {
            client,
            sender,
            to: room,
            data,
            create,
        });
        Ok(())
    }

    fn rooms(&mut self) -> Vec<types::RoomEntry> {
        match &self.link {
            Some(link) => link.rooms.entries(&link.key.service),
            None => Vec::new(),
        }
    }

    fn serve_root(&mut self) -> Result<(), String> {
        let link = self.link()?;
        if !link.is_lobby() || !self.in_init {
            return Err("only the lobby may claim the root, during init".into());
        }
        link.rooms.claim_root(&link.key.service)
    }
}

impl auth::Host for RoomState {
    fn enabled(&mut self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|link| link.rooms.auth().is_some())
    }

    fn verify_token(&mut self, token: String) -> Result<String, String> {
        let auth = self
            .link
            .as_ref()
            .and_then(|link| link.rooms.auth())
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

/// Cuts a plugin-supplied text to `max` bytes on a character boundary, so a
/// plugin cannot make the host log or copy megabytes.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Longest plugin-supplied text (log line, reject reason, failure reason)
/// the host keeps.
pub(crate) const MAX_PLUGIN_TEXT: usize = 4096;

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
