//! Hot reload of one room: moves it onto a new plugin version without closing
//! a socket (`rollout` does it for every room of a service).
//!
//! The room does it inside its own actor, between two events, so no frame is
//! lost or reordered: frames that arrive meanwhile wait in the inbox. The old
//! instance is asked for a `snapshot`; the new one starts from it and takes
//! over the clients, timers, held frames and info the host keeps for the
//! room. A service without snapshots is restarted and `connect` replayed for
//! each client. Whatever fails, the room stays on the old version and says
//! why.

use serde::Serialize;

use super::body::RoomBody;
use super::callbacks::{after_call, leave_reason, offer};
use super::meta::{RoomMeta, lock};
use crate::client::ClientId;
use crate::close;
use crate::limits::Limits;
use crate::wasm::{
    DisconnectReason, GuestError, GuestInitInfo, GuestMessage, MAX_PLUGIN_TEXT, Plugin, RoomLink,
    WasmEngine, bounded,
};

/// What a reload did to one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
#[non_exhaustive]
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
    let before = old.state().room.clone();
    let info_before = before.info.clone();
    fresh.state().room = before;
    let restored = match fresh.init(init).await {
        Ok(()) => after_call(fresh, meta).await,
        Err(error) => Err(error),
    };
    match restored {
        Ok(()) => {
            // Info is published again only if the new version changed it.
            let state = fresh.state();
            state.info_changed = state.room.info != info_before;
            Ok(RoomReload::Restored)
        }
        Err(error) => Err(format!(
            "the new version failed to restore the room: {error}"
        )),
    }
}

/// The new instance starts fresh and every client is connected to it again,
/// in id order; a client the new version rejects is closed with its
/// rejection's code (1008 unless it names one). On
/// failure the old instance keeps its occupancy.
async fn restart(
    old: &mut RoomBody,
    fresh: &mut RoomBody,
    meta: &RoomMeta,
    init: &GuestInitInfo,
) -> Result<RoomReload, String> {
    // What the room stores is the room's, whatever version runs it.
    let store = old.state().room.store.clone();
    fresh.state().adopt_store(store);
    let started = match fresh.init(init).await {
        Ok(()) => after_call(fresh, meta).await,
        Err(error) => Err(error),
    };
    if let Err(error) = started {
        return Err(format!("the new version failed to start: {error}"));
    }
    for client in old.state().member_ids() {
        let Some(member) = old.state().room.members.get(&client).cloned() else {
            continue;
        };
        let offered = offer(fresh, meta, member.sender.clone(), &member.arrival).await;
        let offered = match offered {
            Ok(offered) => offered,
            Err(error) => {
                return Err(format!(
                    "the new version failed while reconnecting client {client}: {error}"
                ));
            }
        };
        match offered.answer {
            Ok(()) => {
                // What the plugin attached to the client stays with it,
                // unless the new version set something else already.
                if let Some(kept) = fresh.state().room.members.get_mut(&client) {
                    if kept.state.is_empty() {
                        kept.state = member.state;
                    }
                    // Still waiting to reconnect, with what it missed.
                    kept.suspended = member.suspended;
                }
                if let Some(transfer) = offered.deferred {
                    fresh.state().start_transfer(transfer);
                    if let Err(error) = after_call(fresh, meta).await {
                        return Err(format!(
                            "the new version failed while reconnecting client {client}: {error}"
                        ));
                    }
                }
            }
            Err(rejection) => {
                member.sender.close(
                    close::rejection_code(rejection.code),
                    &format!(
                        "rejected after reload: {}",
                        bounded(rejection.reason, MAX_PLUGIN_TEXT)
                    ),
                );
            }
        }
    }
    // Frames held for clients the old version transferred away still follow
    // them, beside those the new version transferred during the replay.
    let held = std::mem::take(&mut old.state().room.departing);
    fresh.state().room.departing.extend(held);
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
        .room
        .departing
        .drain()
        .filter(|(client, _)| {
            !pending.contains(client) && !old.state().room.departing.contains_key(client)
        })
        .collect();
    for (client, held) in moved {
        let state = old.state();
        if state.remove_member(client).is_some() {
            state.room.departing.insert(client, held);
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
