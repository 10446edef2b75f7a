//! Asking a freshly loaded plugin what it is (`describe`: whether the
//! service has a lobby), on a throwaway instance, before any room runs it.

use std::path::Path;

use super::cache::CompileCache;
use super::engine::WasmEngine;
use super::instance::{GuestError, RoomInstance};
use std::time::Duration;

use super::plugin::{Description, Plugin, PluginError};
use crate::limits::Limits;

impl Plugin {
    /// Loads the component at `path` (see [`Plugin::load`]) on a blocking
    /// thread, then asks it what it is ([`Plugin::describe`]).
    pub async fn load_described(
        engine: &WasmEngine,
        path: &Path,
        cache: Option<&CompileCache>,
        limits: &Limits,
    ) -> Result<Plugin, PluginError> {
        let (load_engine, load_path, load_cache) =
            (engine.clone(), path.to_owned(), cache.cloned());
        let plugin = tokio::task::spawn_blocking(move || {
            Plugin::load(&load_engine, &load_path, load_cache.as_ref())
        })
        .await
        .map_err(|join| PluginError::Describe {
            path: path.to_owned(),
            reason: format!("the loading task failed: {join}"),
        })??;
        plugin.describe(engine, limits).await
    }

    /// Calls the plugin's `describe` on a throwaway instance and records the
    /// answer (whether the service has a lobby).
    pub async fn describe(
        self,
        engine: &WasmEngine,
        limits: &Limits,
    ) -> Result<Plugin, PluginError> {
        if self.pre().is_none() {
            return Ok(self);
        }
        let path = self.path().to_owned();
        let failed = |error: GuestError| PluginError::Describe {
            path: path.clone(),
            reason: error.0,
        };
        let mut instance = RoomInstance::instantiate(engine, &self, limits, None)
            .await
            .map_err(failed)?;
        let description = instance.describe_service().await.map_err(failed)?;
        Ok(self.described(Description {
            lobby: description.lobby,
            reconnect_grace: Duration::from_millis(u64::from(description.reconnect_grace_ms))
                .min(limits.max_reconnect_grace),
            // Set by `described` from the component's imports.
            uses_storage: false,
        }))
    }
}
