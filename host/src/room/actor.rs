//! The task that runs one room: it owns the instance, drains the inbox, fires
//! timers, and ends the room when it is idle or when the plugin fails.

use std::future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::directory::{JoinError, RoomMeta, Rooms};
use super::{ConnectRequest, RoomEvent};
use crate::close;
use crate::limits::Limits;
use crate::service::Service;
use crate::wasm::{
    DisconnectReason, GuestClientInfo, GuestError, GuestInitInfo, RoomInstance, WasmEngine,
};

pub(crate) struct RoomActor {
    rooms: Arc<Rooms>,
    service: Arc<Service>,
    meta: Arc<RoomMeta>,
    inbox: mpsc::Receiver<RoomEvent>,
}

impl RoomActor {
    pub(crate) fn new(
        rooms: Arc<Rooms>,
        service: Arc<Service>,
        meta: Arc<RoomMeta>,
        inbox: mpsc::Receiver<RoomEvent>,
    ) -> RoomActor {
        RoomActor {
            rooms,
            service,
            meta,
            inbox,
        }
    }

    /// Runs the room until it ends.
    pub(crate) async fn run(mut self, engine: WasmEngine, limits: Arc<Limits>) {
        let init = GuestInitInfo {
            room_id: self.meta.key.room.to_string(),
            config: self.service.config().to_owned(),
            restored: None,
        };
        let mut instance = match RoomInstance::instantiate(&engine, self.service.plugin(), &limits)
        {
            Ok(instance) => instance,
            Err(error) => return self.dispose(None, error),
        };
        if let Err(error) = instance.init(&init) {
            return self.dispose(Some(&mut instance), error);
        }
        tracing::debug!("room started");
        loop {
            let next_timer = instance.state().timers.next_deadline();
            let step = tokio::select! {
                event = self.inbox.recv() => match event {
                    Some(event) => handle(&mut instance, event),
                    // The table holds a sender while the room is listed.
                    None => return,
                },
                () = wait_until(next_timer) => fire_due_timers(&mut instance),
            };
            if let Err(error) = step.and_then(|()| deliver_kicks(&mut instance)) {
                return self.dispose(Some(&mut instance), error);
            }
            self.publish(&mut instance);
            let state = instance.state();
            if state.members.is_empty()
                && state.timers.is_empty()
                && self.rooms.retire(&self.meta, &self.inbox)
            {
                tracing::debug!("room ended: no clients and no timers");
                self.drain(None);
                return;
            }
        }
    }

    /// Copies what `/rooms` shows out of the instance.
    fn publish(&self, instance: &mut RoomInstance) {
        let state = instance.state();
        self.meta
            .clients
            .store(state.members.len(), Ordering::Relaxed);
        if state.info_changed {
            state.info_changed = false;
            if let (Ok(mut info), Some(value)) = (self.meta.info.lock(), state.info.as_ref()) {
                *info = value.clone();
            }
        }
    }

    /// Ends a failed room: its clients get 1011 with the reason, joins waiting
    /// in the inbox are refused, and the table forgets it.
    fn dispose(mut self, instance: Option<&mut RoomInstance>, error: GuestError) {
        tracing::error!(reason = %error, "room disposed");
        self.rooms.remove(&self.meta);
        if let Some(instance) = instance {
            for member in instance.state().members.values() {
                member.close(close::ROOM_ERROR, &error.0);
            }
        }
        self.drain(Some(&error));
    }

    /// Closes the inbox and answers every join still in it: refused with the
    /// room's failure, or (for a room that ended normally) dropped, so the
    /// client retries on a fresh room.
    fn drain(&mut self, failure: Option<&GuestError>) {
        self.inbox.close();
        while let Ok(event) = self.inbox.try_recv() {
            if let (RoomEvent::Connect { reply, .. }, Some(error)) = (event, failure) {
                let _ = reply.send(Err(JoinError::RoomFailed(error.0.clone())));
            }
        }
    }
}

fn handle(instance: &mut RoomInstance, event: RoomEvent) -> Result<(), GuestError> {
    match event {
        RoomEvent::Connect { request, reply } => connect(instance, request, reply),
        RoomEvent::Frame { client, message } => {
            if instance.state().members.contains_key(&client) {
                instance.message(client, &message)?;
            }
            Ok(())
        }
        RoomEvent::Disconnect { client, reason } => {
            if instance.state().members.remove(&client).is_some() {
                instance.disconnect(client, reason.into())?;
            }
            Ok(())
        }
    }
}

fn connect(
    instance: &mut RoomInstance,
    request: ConnectRequest,
    reply: tokio::sync::oneshot::Sender<Result<(), JoinError>>,
) -> Result<(), GuestError> {
    let id = request.id();
    let info = GuestClientInfo {
        id,
        path: request.path,
        query: request.query,
        identity: request.identity,
        handoff: None,
    };
    // A member already, so the plugin can greet it from inside `connect`.
    instance.state().members.insert(id, request.sender);
    let answer = match instance.connect(&info) {
        Ok(answer) => answer,
        Err(error) => {
            let _ = reply.send(Err(JoinError::RoomFailed(error.0.clone())));
            return Err(error);
        }
    };
    let answer = answer.map_err(JoinError::Rejected);
    if answer.is_err() {
        instance.state().members.remove(&id);
    }
    if reply.send(answer.clone()).is_err() && answer.is_ok() {
        // The connection gave up while we decided: it is gone already.
        instance.state().members.remove(&id);
        instance.disconnect(id, DisconnectReason::Lost)?;
    }
    Ok(())
}

fn fire_due_timers(instance: &mut RoomInstance) -> Result<(), GuestError> {
    let now = Instant::now();
    while let Some(id) = instance.state().timers.pop_due(now) {
        instance.timer(id)?;
        deliver_kicks(instance)?;
    }
    Ok(())
}

/// Tells the plugin about clients it closed during the last callback (and
/// those its `disconnect` handlers close in turn).
fn deliver_kicks(instance: &mut RoomInstance) -> Result<(), GuestError> {
    loop {
        let kicked = std::mem::take(&mut instance.state().kicked);
        if kicked.is_empty() {
            return Ok(());
        }
        for client in kicked {
            instance.disconnect(client, DisconnectReason::Kicked)?;
        }
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => future::pending().await,
    }
}
