//! Hot reload: moves every live room of a service onto a new plugin version
//! without closing a socket.
//!
//! Each room does it inside its own actor, between two events, so no frame is
//! lost or reordered: frames that arrive meanwhile wait in the inbox. The old
//! instance is asked for a `snapshot`; the new one starts from it and takes
//! over the clients, timers, held frames and info the host keeps for the
//! room. A service without snapshots is restarted and `connect` replayed for
//! each client. Whatever fails, the room stays on the old version and says
//! why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::RoomEvent;
use super::actor::{after_call, leave_reason};
use super::body::RoomBody;
use super::directory::{RoomMeta, Rooms, lock};
use crate::client::ClientId;
use crate::close;
use crate::limits::Limits;
use crate::service::Service;
use crate::wasm::{
    DisconnectReason, GuestClientInfo, GuestError, GuestInitInfo, GuestMessage, MAX_PLUGIN_TEXT,
    Plugin, RoomLink, WasmEngine, bounded,
};

/// What a reload did to one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum RoomReload {
    /// The new version restored the room's snapshot; clients were
    /// re-attached silently.
    Restored,
    /// The service has no snapshot support: the new version started fresh
    /// and `connect` was replayed for each client.
    Restarted,
    /// The room already runs this version: nothing was done.
    Unchanged,
    /// The room stays on the old version, for this reason.
    KeptOld(String),
    /// The old instance failed while being snapshotted: the room was
    /// disposed (its clients got 1011), as after any plugin failure.
    Failed(String),
}

/// What reloading a service did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The service.
    pub service: String,
    /// The plugin version rooms run now (new rooms always do).
    pub version: String,
    /// Rooms reloaded from a snapshot.
    pub restored: usize,
    /// Rooms restarted with `connect` replayed.
    pub restarted: usize,
    /// Rooms that already ran this version (a rebuild that changed nothing).
    pub unchanged: usize,
    /// Rooms left on the old version, with the reason.
    pub kept_old: Vec<(String, String)>,
    /// Rooms disposed because their snapshot call failed.
    pub failed: Vec<(String, String)>,
    /// Wall time from the plugin swap to the last room's answer.
    #[serde(serialize_with = "as_millis")]
    pub elapsed: Duration,
}

impl ReloadReport {
    /// Rooms the reload reached (the lobby counts as one).
    pub fn rooms(&self) -> usize {
        self.restored + self.restarted + self.unchanged + self.kept_old.len() + self.failed.len()
    }
}

fn as_millis<S: serde::Serializer>(elapsed: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(elapsed.as_secs_f64() * 1000.0)
}

impl Rooms {
    /// Makes `plugin` the version of `service`'s new rooms, then moves every
    /// live room of the service (lobby included) onto it and reports how
    /// each fared.
    ///
    /// Reloads of one service run one at a time, so every room ends on the
    /// version the last reload brought.
    pub async fn reload(&self, service: &Arc<Service>, plugin: Plugin) -> ReloadReport {
        let _one_at_a_time = service.reloading().await;
        let started = Instant::now();
        let plugin = Arc::new(plugin);
        service.replace_plugin(plugin.clone());
        let mut answers = Vec::new();
        for handle in self.handles(service.name()) {
            let (reply, answer) = oneshot::channel();
            let event = RoomEvent::Reload {
                plugin: plugin.clone(),
                reply,
            };
            // A room that ended meanwhile has nothing to reload.
            if handle.inbox.send(event).await.is_ok() {
                answers.push((handle.meta.key.room.to_string(), answer));
            }
        }
        let mut report = ReloadReport {
            service: service.name().to_owned(),
            version: plugin.version().to_owned(),
            restored: 0,
            restarted: 0,
            unchanged: 0,
            kept_old: Vec::new(),
            failed: Vec::new(),
            elapsed: Duration::ZERO,
        };
        for (room, answer) in answers {
            match answer.await {
                Ok(RoomReload::Restored) => report.restored += 1,
                Ok(RoomReload::Restarted) => report.restarted += 1,
                Ok(RoomReload::Unchanged) => report.unchanged += 1,
                Ok(RoomReload::KeptOld(reason)) => report.kept_old.push((room, reason)),
                Ok(RoomReload::Failed(reason)) => report.failed.push((room, reason)),
                // The room ended before it got to the event.
                Err(_) => {}
            }
        }
        report.elapsed = started.elapsed();
        report
    }
}

/// Moves one room onto `plugin`. An `Err` means an instance failed in a way
/// that leaves the room unusable, and the room must be disposed.
pub(super) async fn reload_room(
    instance: &mut RoomBody,
    meta: &RoomMeta,
    link: RoomLink,
    plugin: &Plugin,
    engine: &WasmEngine,
    limits: &Limits,
    config: &str,
) -> Result<RoomReload, GuestError> {
    if *lock(&meta.plugin_version) == plugin.version() {
        return Ok(RoomReload::Unchanged);
    }
    let snapshot = match instance.snapshot().await? {
        Ok(snapshot) => snapshot,
        Err(reason) => {
            return Ok(kept_old(format!(
                "its snapshot failed: {}",
                bounded(reason, MAX_PLUGIN_TEXT)
            )));
        }
    };
    let mut fresh = match RoomBody::instantiate(engine, plugin, limits, Some(link)).await {
        Ok(fresh) => fresh,
        Err(error) => return Ok(kept_old(error.0)),
    };
    let init = GuestInitInfo {
        room_id: meta.key.room.to_string(),
        lobby: meta.is_lobby(),
        config: config.to_owned(),
        restored: snapshot,
    };
    let outcome = if init.restored.is_some() {
        restore(instance, &mut fresh, meta, &init).await
    } else {
        restart(instance, &mut fresh, meta, &init).await
    };
    match outcome {
        Ok(outcome) => {
            std::mem::swap(instance, &mut fresh);
            *lock(&meta.plugin_version) = plugin.version().to_owned();
            Ok(outcome)
        }
        Err(reason) => {
            forget_moved(instance, &mut fresh, meta).await?;
            Ok(kept_old(reason))
        }
    }
}

/// The new instance takes over a copy of the room's occupancy and restores
/// the snapshot in `init`. On failure the old instance still has the
/// occupancy as it was before the attempt.
async fn restore(
    old: &mut RoomBody,
    fresh: &mut RoomBody,
    meta: &RoomMeta,
    init: &GuestInitInfo,
) -> Result<RoomReload, String> {
    // The old instance keeps its clients until the new one has them: if
    // this task panics meanwhile, disposing the room still closes them.
    let before = old.state().occupancy();
    fresh.state().put_occupancy(before.clone());
    let restored = match fresh.init(init).await {
        Ok(()) => after_call(fresh, meta).await,
        Err(error) => Err(error),
    };
    match restored {
        Ok(()) => {
            // Info is published again only if the new version changed it.
            let state = fresh.state();
            state.info_changed = state.info != before.info;
            Ok(RoomReload::Restored)
        }
        Err(error) => Err(format!("the new version failed to restore it: {error}")),
    }
}

/// The new instance starts fresh and every client is connected to it again,
/// in id order; a client the new version rejects is closed with 1008. On
/// failure the old instance keeps its occupancy.
async fn restart(
    old: &mut RoomBody,
    fresh: &mut RoomBody,
    meta: &RoomMeta,
    init: &GuestInitInfo,
) -> Result<RoomReload, String> {
    let started = match fresh.init(init).await {
        Ok(()) => after_call(fresh, meta).await,
        Err(error) => Err(error),
    };
    if let Err(error) = started {
        return Err(format!("the new version failed to start: {error}"));
    }
    let mut clients: Vec<_> = old.state().members.keys().copied().collect();
    clients.sort_unstable();
    for client in clients {
        let Some(sender) = old.state().members.get(&client).cloned() else {
            continue;
        };
        let info = old
            .state()
            .arrivals
            .get(&client)
            .cloned()
            .unwrap_or_else(|| GuestClientInfo {
                id: client,
                path: String::new(),
                query: String::new(),
                identity: None,
                claims: None,
                read_only: false,
                handoff: None,
            });
        let state = fresh.state();
        state.members.insert(client, sender.clone());
        state.connecting = Some(client);
        let answer = fresh.connect(&info).await;
        fresh.state().connecting = None;
        let answer = match answer {
            Ok(answer) => after_call(fresh, meta).await.map(|()| answer),
            Err(error) => Err(error),
        };
        match answer {
            Ok(Ok(())) => {
                // Unless the new version closed it during its own connect.
                if fresh.state().members.contains_key(&client) {
                    fresh.state().arrivals.insert(client, info);
                }
            }
            Ok(Err(reason)) => {
                fresh.state().remove_member(client);
                sender.close(
                    close::POLICY,
                    &format!(
                        "rejected after reload: {}",
                        bounded(reason, MAX_PLUGIN_TEXT)
                    ),
                );
            }
            Err(error) => {
                return Err(format!(
                    "the new version failed while reconnecting client {client}: {error}"
                ));
            }
        }
    }
    // Frames held for clients the old version transferred away still follow
    // them, beside those the new version transferred during the replay.
    let held = std::mem::take(&mut old.state().departing);
    fresh.state().departing.extend(held);
    Ok(RoomReload::Restarted)
}

/// After a failed attempt: clients the new version already sent to another
/// room are gone from the old one too (it gets `disconnect(transferred)`),
/// so no client is left a member of two rooms. Clients it closed need
/// nothing here: their connections report the close to the room as usual.
async fn forget_moved(
    old: &mut RoomBody,
    fresh: &mut RoomBody,
    meta: &RoomMeta,
) -> Result<(), GuestError> {
    // Transfers still pending never left: they are dropped with the instance.
    let pending: Vec<ClientId> = fresh.state().transfers.iter().map(|t| t.client).collect();
    let moved: Vec<(ClientId, Vec<GuestMessage>)> = fresh
        .state()
        .departing
        .drain()
        .filter(|(client, _)| {
            !pending.contains(client) && !old.state().departing.contains_key(client)
        })
        .collect();
    for (client, held) in moved {
        let state = old.state();
        if state.remove_member(client).is_some() {
            state.departing.insert(client, held);
            state.tap_membership(client, Some(leave_reason(DisconnectReason::Transferred)));
            old.disconnect(client, DisconnectReason::Transferred)
                .await?;
            after_call(old, meta).await?;
        }
    }
    Ok(())
}

fn kept_old(reason: String) -> RoomReload {
    tracing::warn!(%reason, "reload: room kept on the old version");
    RoomReload::KeptOld(reason)
}
