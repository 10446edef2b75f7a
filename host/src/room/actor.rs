//! The task that runs one room: it owns the instance, loads its stored data,
//! drains the inbox, fires timers, carries out kicks and transfers, commits
//! each event's storage writes before releasing its output, keeps the lobby
//! informed, and ends the room when it is idle, when the plugin fails, or
//! when the task itself panics (a host bug, contained to the room).

use std::collections::HashMap;
use std::future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::body::RoomBody;
use super::callbacks::{after_call, end_grace, leave_reason, offer, settle};
use super::meta::{RoomMeta, lock};
use super::reload::{RoomReload, reload_room};
use super::snapshots;
use super::table::RoomTable;
use super::{ConnectRequest, JoinError, LeaveReason, ReturningClient, RoomEvent};
use crate::client::{ClientId, ClientSender};
use crate::close;
use crate::contain::panic_message;
use crate::dev::Direction;
use crate::limits::Limits;
use crate::service::Service;
use crate::storage::Storage;
use crate::wasm::{
    DisconnectReason, Failure, GuestClientInfo, GuestError, GuestInitInfo, GuestMessage,
    GuestRoomChange, MAX_PLUGIN_TEXT, RoomLink, ServiceDirectory, WasmEngine, bounded,
};

/// The most inbox events whose storage writes share one commit.
const MAX_EVENTS_PER_COMMIT: usize = 64;

/// Where a room goes after an event.
enum Flow {
    /// On, with the event's outcome (an error disposes the room).
    Go(Result<(), GuestError>),
    /// The room has ended.
    End,
}

pub(crate) struct RoomActor {
    table: Arc<RoomTable>,
    /// What the room's instance may ask of its service.
    directory: Arc<dyn ServiceDirectory>,
    service: Arc<Service>,
    meta: Arc<RoomMeta>,
    inbox: mpsc::Receiver<RoomEvent>,
    /// Where the room's stored data lives.
    storage: Arc<Storage>,
    /// When the room's snapshot is to be saved (a service with durable
    /// snapshots whose room changed since the last save).
    snapshot_due: Option<Instant>,
    /// The room changed since the lobby last heard of it (a new room has
    /// not been reported yet).
    unreported: bool,
}

impl RoomActor {
    pub(crate) fn new(
        table: Arc<RoomTable>,
        directory: Arc<dyn ServiceDirectory>,
        service: Arc<Service>,
        meta: Arc<RoomMeta>,
        inbox: mpsc::Receiver<RoomEvent>,
        storage: Arc<Storage>,
    ) -> RoomActor {
        RoomActor {
            table,
            directory,
            service,
            meta,
            inbox,
            storage,
            snapshot_due: None,
            unreported: true,
        }
    }

    /// Runs the room until it ends. A panic while serving it (a host bug)
    /// is contained here: the room is disposed like a failed one.
    pub(crate) async fn run(mut self, engine: WasmEngine, limits: Arc<Limits>) {
        let mut body = None;
        let served = AssertUnwindSafe(self.serve(&mut body, engine, limits))
            .catch_unwind()
            .await;
        if let Err(panic) = served {
            let error = GuestError(
                format!(
                    "internal error in the host: {}",
                    panic_message(panic.as_ref())
                ),
                Failure::Host,
            );
            self.dispose(body.as_mut(), error);
        }
    }

    /// Serves the room until it ends; the instance lives in `body`, where
    /// [`RoomActor::run`] finds it if this panics.
    async fn serve(
        &mut self,
        body: &mut Option<RoomBody>,
        engine: WasmEngine,
        limits: Arc<Limits>,
    ) {
        let link = RoomLink {
            directory: self.directory.clone(),
            service: self.meta.key.service.clone(),
            room: self.meta.key.room.clone(),
        };
        // Boxed: start-up (storage loads, instantiation, `init`) ends before
        // the room goes idle, and inline its future would size every room's
        // task for as long as the room lives (issue 19).
        let Some(instance) = Box::pin(self.start(body, &engine, &limits, &link)).await else {
            return;
        };
        tracing::debug!(lobby = self.meta.is_lobby(), "room started");
        loop {
            let state = instance.state();
            let next_timer = match (state.room.timers.next_deadline(), state.next_expiry()) {
                (Some(timer), Some(expiry)) => Some(timer.min(expiry)),
                (timer, expiry) => timer.or(expiry),
            };
            let snapshot_due = self.snapshot_due;
            let mut step = tokio::select! {
                event = self.inbox.recv() => match event {
                    Some(event) => {
                        self.changed();
                        match self.on_event(instance, event, &link, &engine, &limits).await {
                            Flow::Go(step) => step,
                            Flow::End => return,
                        }
                    }
                    // The table holds a sender while the room is listed.
                    None => return,
                },
                () = wait_until(next_timer) => {
                    self.changed();
                    fire_due_timers(instance, &self.meta).await
                }
                () = wait_until(snapshot_due) => self.save_snapshot(instance).await,
            };
            // Events already waiting join this one's commit: a busy room
            // pays one durable write per batch, not per event.
            let mut batched = 1;
            while step.is_ok()
                && batched < MAX_EVENTS_PER_COMMIT
                && instance.state().room.store.has_changes()
            {
                let Ok(event) = self.inbox.try_recv() else {
                    break;
                };
                batched += 1;
                step = match self
                    .on_event(instance, event, &link, &engine, &limits)
                    .await
                {
                    Flow::Go(step) => step,
                    Flow::End => return,
                };
            }
            let step = match step {
                Ok(()) => self.deliver_lobby_notices(instance).await,
                Err(error) => Err(error),
            };
            // The event's writes are durable before anyone sees its output.
            let step = match step {
                Ok(()) => settle(instance, &self.storage, &self.meta).await,
                Err(error) => Err(error),
            };
            if let Err(error) = step {
                return self.dispose(Some(instance), error);
            }
            self.publish(instance);
            // The last changes are saved before the room can end.
            if self.is_idle(instance)
                && self.snapshot_due.is_some()
                && let Err(error) = self.save_snapshot(instance).await
            {
                return self.dispose(Some(instance), error);
            }
            if self.is_idle(instance) && self.table.retire(&self.meta, &self.inbox) {
                tracing::debug!("room ended: no clients and no timers");
                self.drain(None, HashMap::new());
                return;
            }
        }
    }

    /// Starts the room: loads what it stored, instantiates its plugin into
    /// `body` and runs `init`. `None` when it failed (the room is disposed).
    async fn start<'body>(
        &mut self,
        body: &'body mut Option<RoomBody>,
        engine: &WasmEngine,
        limits: &Limits,
        link: &RoomLink,
    ) -> Option<&'body mut RoomBody> {
        match self.try_start(body, engine, limits, link).await {
            Ok(()) => body.as_mut(),
            Err(error) => {
                // With the instance once it exists: output `init` left
                // waiting for its commit is abandoned with it.
                self.dispose(body.as_mut(), error);
                None
            }
        }
    }

    /// [`RoomActor::start`]'s steps; the instance is in `body` once made.
    async fn try_start(
        &self,
        body: &mut Option<RoomBody>,
        engine: &WasmEngine,
        limits: &Limits,
        link: &RoomLink,
    ) -> Result<(), GuestError> {
        let restored = match self.service.durable_snapshots() {
            Some(_) => snapshots::load(&self.storage, &self.meta).await?,
            None => None,
        };
        let init = GuestInitInfo {
            room_id: self.meta.key.room.to_string(),
            lobby: self.meta.is_lobby(),
            config: self.service.config().to_owned(),
            restored,
        };
        // The version this room runs is the one it starts with, even if a
        // reload swapped the service's plugin since the room was listed.
        let plugin = self.service.plugin();
        *lock(&self.meta.plugin_version) = plugin.version().to_owned();
        let stored = if plugin.description().uses_storage {
            Some(self.load().await?)
        } else {
            None
        };
        let instance =
            body.insert(RoomBody::instantiate(engine, &plugin, limits, Some(link.clone())).await?);
        if let Some(stored) = stored {
            instance.state().restore_storage(limits, stored);
        }
        instance.init(&init).await?;
        after_call(instance, &self.meta).await?;
        settle(instance, &self.storage, &self.meta).await
    }

    /// Handles one event from the inbox.
    async fn on_event(
        &mut self,
        instance: &mut RoomBody,
        event: RoomEvent,
        link: &RoomLink,
        engine: &WasmEngine,
        limits: &Limits,
    ) -> Flow {
        match event {
            RoomEvent::Reload { plugin, reply } => {
                // The old version's last writes are durable before it goes.
                if let Err(error) = settle(instance, &self.storage, &self.meta).await {
                    let _ = reply.send(RoomReload::Failed(error.0.clone()));
                    return Flow::Go(Err(error));
                }
                // Boxed, like the other rare events' futures below: the
                // largest branch sizes the room's task for its whole life.
                let outcome = Box::pin(reload_room(
                    instance,
                    &self.meta,
                    link.clone(),
                    &plugin,
                    engine,
                    limits,
                    self.service.config(),
                ))
                .await;
                let (answer, step) = match outcome {
                    Ok(outcome) => (outcome, Ok(())),
                    Err(error) => (RoomReload::Failed(error.0.clone()), Err(error)),
                };
                let _ = reply.send(answer);
                Flow::Go(step)
            }
            RoomEvent::Close { code, reason } => {
                // What the room wrote before the host closed it is kept.
                let saved = match settle(instance, &self.storage, &self.meta).await {
                    Ok(()) if self.snapshot_due.is_some() => self.save_snapshot(instance).await,
                    saved => saved,
                };
                if let Err(error) = saved {
                    self.dispose(Some(instance), error);
                    return Flow::End;
                }
                self.close(instance, code, &reason);
                Flow::End
            }
            #[cfg(feature = "fault-injection")]
            RoomEvent::Panic => panic!("injected panic (fault-injection)"),
            event => Flow::Go(handle(instance, &self.meta, &self.storage, event).await),
        }
    }

    /// Notes that the room may have changed: with durable snapshots, its
    /// snapshot is due within the service's interval.
    fn changed(&mut self) {
        if let Some(every) = self.service.durable_snapshots()
            && self.snapshot_due.is_none()
        {
            self.snapshot_due = Some(Instant::now() + every);
        }
    }

    /// Saves the room's snapshot now (durable snapshots).
    async fn save_snapshot(&mut self, instance: &mut RoomBody) -> Result<(), GuestError> {
        self.snapshot_due = None;
        snapshots::save(instance, &self.storage, &self.meta).await
    }

    /// What the room stores, loaded before its `init`.
    async fn load(&self) -> Result<crate::storage::StoredRoom, GuestError> {
        self.storage
            .load(&self.meta.key.service, &self.meta.key.room)
            .await
            .map_err(|error| {
                GuestError(
                    format!("cannot load the room's storage: {error}"),
                    Failure::Storage,
                )
            })
    }

    /// Lobby only: hands the directory changes waiting for it to the plugin.
    async fn deliver_lobby_notices(&self, instance: &mut RoomBody) -> Result<(), GuestError> {
        if !self.meta.is_lobby() {
            return Ok(());
        }
        for change in self.table.take_lobby_notices(&self.meta.key.service) {
            instance.room_changed(&change).await?;
            after_call(instance, &self.meta).await?;
        }
        Ok(())
    }

    fn is_idle(&self, instance: &mut RoomBody) -> bool {
        let room = &instance.state().room;
        !self.meta.is_lobby()
            && room.members.is_empty()
            && room.timers.is_empty()
            && room.departing.is_empty()
    }

    /// Copies what `/rooms` shows out of the instance, and tells the lobby
    /// when it changed.
    /// Runs after every event, so it does nothing unless the client count or
    /// the info changed.
    fn publish(&mut self, instance: &mut RoomBody) {
        self.meta.cpu_nanos.store(
            u64::try_from(instance.cpu_time().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let state = instance.state();
        self.meta
            .storage_bytes
            .store(state.room.store.bytes(), Ordering::Relaxed);
        let clients = state.room.members.len();
        if self.meta.clients.swap(clients, Ordering::Relaxed) != clients {
            self.unreported = true;
        }
        if state.info_changed {
            state.info_changed = false;
            self.unreported = true;
            if let (Ok(mut info), Some(value)) = (self.meta.info.lock(), state.room.info.as_ref()) {
                *info = value.clone();
            }
        }
        if self.unreported && !self.meta.is_lobby() {
            self.unreported = false;
            self.table.notify_lobby(
                &self.meta.key.service,
                GuestRoomChange::Updated(self.meta.entry()),
            );
        }
    }

    /// Ends the room on the host's order: its clients are closed with `code`
    /// and `reason`, and the table forgets it.
    fn close(&mut self, instance: &mut RoomBody, code: u16, reason: &str) {
        tracing::info!(reason, "room closed by the host");
        self.table.remove(&self.meta);
        for (id, member) in &instance.state().room.members {
            member.sender.close(code, reason);
            if member.suspended.is_some() {
                self.directory.forget_client(*id);
            }
        }
        let departing = std::mem::take(&mut instance.state().room.departing);
        self.drain(None, departing);
    }

    /// Ends a failed room: its clients get 1011 with the reason, joins waiting
    /// in the inbox are refused, and the table forgets it.
    fn dispose(&mut self, instance: Option<&mut RoomBody>, error: GuestError) {
        tracing::error!(reason = %error, "room disposed");
        self.directory
            .metrics()
            .room_disposed(&self.meta.key.service, error.1.label());
        if let Ok(mut failure) = self.meta.failure.lock() {
            *failure = Some(error.0.clone());
        }
        self.table.remove(&self.meta);
        let mut departing = HashMap::new();
        if let Some(instance) = instance {
            for left in instance.state().abandon_output() {
                left.close(close::ROOM_ERROR, &error.0);
            }
            for (id, member) in &instance.state().room.members {
                member.sender.close(close::ROOM_ERROR, &error.0);
                // A client waiting to reconnect has nothing to come back to.
                if member.suspended.is_some() {
                    self.directory.forget_client(*id);
                }
            }
            departing = std::mem::take(&mut instance.state().room.departing);
        }
        self.drain(Some(&error), departing);
    }

    /// Closes the inbox and answers what is still in it: joins are refused
    /// with the room's failure or, for a room that ended normally, dropped so
    /// the client retries on a fresh room; departures get no frames.
    fn drain(
        &mut self,
        failure: Option<&GuestError>,
        mut departing: HashMap<ClientId, Vec<GuestMessage>>,
    ) {
        self.inbox.close();
        while let Ok(event) = self.inbox.try_recv() {
            let failed =
                || JoinError::RoomFailed(failure.map_or_else(String::new, |error| error.0.clone()));
            match event {
                RoomEvent::Connect { reply, .. } if failure.is_some() => {
                    let _ = reply.send(Err(failed()));
                }
                RoomEvent::Started { reply } => {
                    let _ = reply.send(Err(failed()));
                }
                // Frames held for a transferred client follow it even when
                // this room failed after the transfer.
                RoomEvent::Depart { client, reply } => {
                    let _ = reply.send(departing.remove(&client).unwrap_or_default());
                }
                RoomEvent::Resume { reply, .. } => {
                    let _ = reply.send(Err("the room ended".into()));
                }
                _ => {}
            }
        }
    }
}

async fn handle(
    instance: &mut RoomBody,
    meta: &RoomMeta,
    storage: &Storage,
    event: RoomEvent,
) -> Result<(), GuestError> {
    match event {
        RoomEvent::Connect { request, reply } => {
            Box::pin(connect(instance, meta, storage, *request, reply)).await
        }
        RoomEvent::Frame { client, message } => {
            if instance.state().is_member(client) {
                instance
                    .state()
                    .tap_frame(Some(client), Direction::In, &message);
                instance.message(client, &message).await?;
                after_call(instance, meta).await?;
            } else {
                instance.state().hold_for_departing(client, message);
            }
            Ok(())
        }
        RoomEvent::Disconnect {
            client,
            reason,
            connection,
            held,
        } => {
            let state = instance.state();
            // A client that reconnected meanwhile is not the one that left.
            let replaced = state
                .room
                .members
                .get(&client)
                .is_some_and(|member| member.sender.connection() != connection);
            if replaced {
                return Ok(());
            }
            state.room.departing.remove(&client);
            if reason == LeaveReason::Lost && state.suspend(client) {
                if let Some(held) = held {
                    let _ = held.send(());
                }
                let reason = DisconnectReason::Suspended;
                state.tap_membership(client, Some(leave_reason(reason)));
                instance.disconnect(client, reason).await?;
                return after_call(instance, meta).await;
            }
            let was_waiting = state
                .room
                .members
                .get(&client)
                .is_some_and(|member| member.suspended.is_some());
            if was_waiting {
                // It cannot leave twice: its grace ends as usual.
                return Ok(());
            }
            if state.remove_member(client).is_some() {
                let reason = DisconnectReason::from(reason);
                state.tap_membership(client, Some(leave_reason(reason)));
                instance.disconnect(client, reason).await?;
                after_call(instance, meta).await?;
            }
            Ok(())
        }
        RoomEvent::Depart { client, reply } => {
            let held = instance
                .state()
                .room
                .departing
                .remove(&client)
                .unwrap_or_default();
            let _ = reply.send(held);
            Ok(())
        }
        RoomEvent::Resume { client, reply } => {
            let ReturningClient { sender, token } = *client;
            Box::pin(resume(instance, meta, storage, sender, token, reply)).await
        }
        // Taken after every event of the lobby (see `run`).
        RoomEvent::LobbyNotices => Ok(()),
        RoomEvent::Started { reply } => {
            let _ = reply.send(Ok(()));
            Ok(())
        }
        RoomEvent::Request { request, reply } => {
            // The caller gave up (and answered 503): the request must not
            // take effect behind its back.
            if reply.is_closed() {
                return Ok(());
            }
            let answer: Result<_, GuestError> = Box::pin(async {
                let response = instance.request(&request).await?;
                after_call(instance, meta).await?;
                // The answer is output too: it waits for the request's writes.
                settle(instance, storage, meta).await?;
                Ok(response)
            })
            .await;
            match answer {
                Ok(response) => {
                    let _ = reply.send(Ok(response));
                    Ok(())
                }
                Err(error) => {
                    let _ = reply.send(Err(error.0.clone()));
                    Err(error)
                }
            }
        }
        // Handled by the actor, which owns what a reload and a close need.
        RoomEvent::Reload { .. } | RoomEvent::Close { .. } => Ok(()),
        #[cfg(feature = "fault-injection")]
        RoomEvent::Panic => Ok(()),
    }
}

async fn connect(
    instance: &mut RoomBody,
    meta: &RoomMeta,
    storage: &Storage,
    request: ConnectRequest,
    reply: oneshot::Sender<Result<(), JoinError>>,
) -> Result<(), GuestError> {
    let id = request.id();
    let info = GuestClientInfo {
        id,
        path: request.path,
        query: request.query,
        identity: request.identity,
        claims: request.claims,
        read_only: request.read_only,
        handoff: request.handoff,
        resume_token: request.resume_token,
    };
    let offer = match offer(instance, meta, request.sender, &info).await {
        Ok(offer) => offer,
        Err(error) => {
            let _ = reply.send(Err(JoinError::RoomFailed(error.0.clone())));
            return Err(error);
        }
    };
    let answer = offer.answer.map_err(|rejection| JoinError::Rejected {
        code: close::rejection_code(rejection.code),
        reason: bounded(rejection.reason, MAX_PLUGIN_TEXT),
    });
    // The answer is output too (a rejection's reason may tell of what
    // `connect` wrote): a room that uses storage commits first.
    if instance.state().gate.is_on()
        && let Err(error) = settle(instance, storage, meta).await
    {
        let _ = reply.send(Err(JoinError::RoomFailed(error.0.clone())));
        return Err(error);
    }
    let accepted = answer.is_ok() && instance.state().is_member(id);
    if reply.send(answer).is_err() {
        if accepted && instance.state().remove_member(id).is_some() {
            // The connection gave up while we decided: it is gone already.
            let reason = DisconnectReason::Lost;
            instance
                .state()
                .tap_membership(id, Some(leave_reason(reason)));
            instance.disconnect(id, reason).await?;
            after_call(instance, meta).await?;
        }
        return Ok(());
    }
    // The client knows it is in: a transfer asked for during its connect
    // can move it now.
    if accepted && let Some(transfer) = offer.deferred {
        instance.state().start_transfer(transfer);
        after_call(instance, meta).await?;
    }
    Ok(())
}

/// A client back on a new connection: it takes its member's place, gets
/// the frames kept for it, and the room gets `reconnect`. A connection the
/// host had not noticed as lost yet is closed, replaced.
async fn resume(
    instance: &mut RoomBody,
    meta: &RoomMeta,
    storage: &Storage,
    sender: ClientSender,
    token: String,
    reply: oneshot::Sender<Result<(), String>>,
) -> Result<(), GuestError> {
    let client = sender.id();
    // The frames kept for the client may come from events whose writes
    // are not committed yet (this one's batch): they are durable first.
    settle(instance, storage, meta).await?;
    let Some(member) = instance.state().room.members.get_mut(&client) else {
        let _ = reply.send(Err("the client is no longer in its room".into()));
        return Ok(());
    };
    let old = std::mem::replace(&mut member.sender, sender.clone());
    member.arrival.resume_token = Some(token.clone());
    let kept = member.suspended.take().map(|waiting| waiting.frames);
    if old.connection() != sender.connection() {
        old.close(close::NORMAL, "replaced by a resumed connection");
    }
    for frame in kept.unwrap_or_default() {
        let _ = sender.send(frame);
    }
    let _ = reply.send(Ok(()));
    instance.state().tap_membership(client, None);
    instance.reconnect(client, &token).await?;
    after_call(instance, meta).await
}

async fn fire_due_timers(instance: &mut RoomBody, meta: &RoomMeta) -> Result<(), GuestError> {
    let now = Instant::now();
    // Members whose grace period ran out leave first.
    while let Some(client) = instance.state().expired(now) {
        end_grace(instance, client).await?;
        after_call(instance, meta).await?;
    }
    while let Some(id) = instance.state().room.timers.pop_due(now) {
        // A durable timer that fired is done; the callback may set it again.
        instance.state().room.store.clear_timer(id);
        instance.timer(id).await?;
        after_call(instance, meta).await?;
    }
    Ok(())
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => future::pending().await,
    }
}
