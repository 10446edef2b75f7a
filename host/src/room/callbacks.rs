//! What follows a callback: the host carries out what the plugin asked for
//! beyond frames (closes, transfers), the steps of offering a client to a
//! room, and what ends an event: its storage writes committed, then its
//! output released (`settle`). Shared by the actor and the hot-reload path.

use crate::client::{ClientId, ClientSender, Move};
use crate::wasm::{
    DisconnectReason, GuestClientInfo, GuestError, GuestHandoff, GuestRejection, PendingTransfer,
};

use super::body::RoomBody;
use super::meta::RoomMeta;
use crate::storage::{RoomCommit, Storage};
use crate::wasm::Failure;

/// What `connect` made of a client.
pub(super) struct Offer {
    /// The plugin's accept or reject. On reject the client is no longer a
    /// member; on accept it is, unless the plugin closed it meanwhile.
    pub(super) answer: Result<(), GuestRejection>,
    /// A transfer the plugin asked for during the call, to be started once
    /// the client knows it was accepted.
    pub(super) deferred: Option<PendingTransfer>,
}

/// Makes the client a member (so the plugin can greet it from inside
/// `connect`), calls `connect` and carries out what the call asked for.
pub(super) async fn offer(
    instance: &mut RoomBody,
    meta: &RoomMeta,
    sender: ClientSender,
    info: &GuestClientInfo,
) -> Result<Offer, GuestError> {
    let id = info.id;
    let state = instance.state();
    state.add_member(sender, info.clone());
    state.connecting = Some(id);
    let answer = instance.connect(info).await;
    let state = instance.state();
    state.connecting = None;
    let deferred = state.deferred_transfer.take();
    let answer = answer?;
    if answer.is_err() {
        // Out before anything the call asked for runs: a rejected client
        // gets no `disconnect`, and no later callback can move it.
        let state = instance.state();
        state.remove_member(id);
        state.kicked.retain(|kicked| *kicked != id);
    }
    after_call(instance, meta).await?;
    let state = instance.state();
    if answer.is_ok() && state.is_member(id) {
        state.tap_membership(id, None);
    }
    Ok(Offer {
        deferred: deferred.filter(|_| answer.is_ok()),
        answer,
    })
}

/// Carries out what the last callback asked for beyond frames: clients it
/// closed get `disconnect(kicked)`, clients it transferred are sent on their
/// way and get `disconnect(transferred)`. Those callbacks may ask for more.
pub(super) async fn after_call(instance: &mut RoomBody, meta: &RoomMeta) -> Result<(), GuestError> {
    loop {
        let state = instance.state();
        let kicked = std::mem::take(&mut state.kicked);
        let transfers = std::mem::take(&mut state.transfers);
        let overflowed = std::mem::take(&mut state.overflowed);
        if kicked.is_empty() && transfers.is_empty() && overflowed.is_empty() {
            return Ok(());
        }
        // Clients whose replay buffer overflowed while they waited to
        // reconnect: their grace ends now.
        for client in overflowed {
            end_grace(instance, client).await?;
        }
        for client in kicked {
            instance
                .state()
                .tap_membership(client, Some(leave_reason(DisconnectReason::Kicked)));
            instance
                .disconnect(client, DisconnectReason::Kicked)
                .await?;
        }
        // Every move is ordered before any `disconnect(transferred)` runs,
        // so a callback that fails cannot strand the clients after it.
        let mut moved = Vec::with_capacity(transfers.len());
        for transfer in transfers {
            instance.state().tap_membership(
                transfer.client,
                Some(leave_reason(DisconnectReason::Transferred)),
            );
            let order = Move {
                to: transfer.to,
                handoff: GuestHandoff {
                    from_room: (!meta.is_lobby()).then(|| meta.key.room.to_string()),
                    data: transfer.data,
                    rejected: None,
                },
                create: transfer.create,
            };
            instance.state().relocate(&transfer.sender, order);
            moved.push(transfer.client);
        }
        for client in moved {
            instance
                .disconnect(client, DisconnectReason::Transferred)
                .await?;
        }
    }
}

/// How the dev tap names a disconnect reason.
pub(super) fn leave_reason(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Closed => "closed",
        DisconnectReason::Lost => "lost",
        DisconnectReason::Kicked => "kicked",
        DisconnectReason::Transferred => "transferred",
        DisconnectReason::Suspended => "suspended",
    }
}

/// Ends a suspended member's wait: it leaves the room and the service, and
/// the room gets `disconnect(lost)`. Nothing happens for a client that is no
/// longer suspended here.
pub(super) async fn end_grace(instance: &mut RoomBody, client: ClientId) -> Result<(), GuestError> {
    let state = instance.state();
    let waiting = state
        .room
        .members
        .get(&client)
        .is_some_and(|member| member.suspended.is_some());
    if !waiting {
        return Ok(());
    }
    state.remove_member(client);
    state.forget_client(client);
    state.tap_membership(client, Some(leave_reason(DisconnectReason::Lost)));
    instance.disconnect(client, DisconnectReason::Lost).await
}

/// Ends an event: commits the storage writes it made and, once they are
/// durable, releases the output the room's gate held. A failed commit fails
/// the room (the held output is never sent).
pub(super) async fn settle(
    instance: &mut RoomBody,
    storage: &Storage,
    meta: &RoomMeta,
) -> Result<(), GuestError> {
    let state = instance.state();
    if state.room.store.has_changes() {
        let commit = RoomCommit {
            service: meta.key.service.clone(),
            room: meta.key.room.clone(),
            changes: state.room.store.take_changes(),
        };
        let timing = storage.commit(commit).await.map_err(|error| {
            GuestError(
                format!("the room's storage commit failed: {error}"),
                Failure::Storage,
            )
        })?;
        if let Some(metrics) = instance.state().metrics() {
            metrics.storage_commit(timing.latency, timing.group);
        }
    }
    instance.state().release_output();
    Ok(())
}
