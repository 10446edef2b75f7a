//! Rolling a new plugin version out to every live room of a service (hot
//! reload), and the report of how each room fared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::RoomEvent;
use super::directory::Rooms;
use super::reload::RoomReload;
use crate::service::Service;
use crate::wasm::Plugin;

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
        let name = service.name();
        for (outcome, count) in [
            ("restored", report.restored),
            ("restarted", report.restarted),
            ("unchanged", report.unchanged),
            ("kept_old", report.kept_old.len()),
            ("failed", report.failed.len()),
        ] {
            if count > 0 {
                self.metrics().reloaded(name, outcome, count);
            }
        }
        report
    }
}
