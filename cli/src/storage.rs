//! Where rooms' stored data lives (`--data-dir`, `--no-storage`) and
//! `roomhost storage`: list, export, import, delete and back up stored rooms.
//!
//! The embedded store is one redb file that one process opens at a time, so
//! these commands work on a data directory no server is using; a running
//! server's file is backed up through its admin endpoint
//! (`roomhost storage backup --server URL`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand};
use roomhost_host::storage::{
    Backend, EmbeddedBackend, MemoryBackend, RoomCommit, StorageError, StoredRoom,
};
use serde::{Deserialize, Serialize};

/// The data directory `serve` uses without `--data-dir` or `data_dir`:
/// next to the roomhost.toml it reads, or in the working directory.
pub const DEFAULT_DATA_DIR: &str = "roomhost-data";

/// Where rooms' stored data lives.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Storage")]
pub(crate) struct DataArgs {
    /// Directory of the embedded store (one file, roomhost.redb). Default for serve:
    /// roomhost-data/ next to the roomhost.toml read, else in the working directory;
    /// for dev: roomhost-dev-data/SERVICE/ in the crate's target directory. [toml: data_dir]
    #[arg(long, value_name = "DIR", env = "ROOMHOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep stored data in memory only: it is lost when the process exits.
    #[arg(long, conflicts_with = "data_dir")]
    no_storage: bool,
}

impl DataArgs {
    /// Whether `--data-dir` (or its variable) or `--no-storage` is given.
    pub(crate) fn is_set(&self) -> bool {
        self.data_dir.is_some() || self.no_storage
    }

    /// The backend these flags ask for, with `default` as the directory when
    /// none is given. Fails clearly when another process holds the store.
    pub(crate) fn open(&self, default: &Path) -> anyhow::Result<Arc<dyn Backend>> {
        if self.no_storage {
            return Ok(Arc::new(MemoryBackend::new()));
        }
        let dir = self.data_dir.clone().unwrap_or_else(|| default.to_owned());
        Ok(Arc::new(open_embedded(&dir)?))
    }
}

fn open_embedded(dir: &Path) -> anyhow::Result<EmbeddedBackend> {
    EmbeddedBackend::open(dir).map_err(|error| match error {
        StorageError::InUse(path) => anyhow::anyhow!(
            "the store {path} is in use by another roomhost process: stop it, or give this \
             one its own --data-dir (or --no-storage)"
        ),
        other => anyhow::anyhow!("cannot open the data directory {}: {other}", dir.display()),
    })
}

/// `roomhost storage`.
#[derive(Args)]
pub struct StorageArgs {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// List the rooms that store data: service, room, entries, bytes, durable timers.
    List(OfflineArgs),
    /// Print one room's data as JSON (keys and values as text when they are UTF-8,
    /// else base64 in `key_base64`/`value_base64`), or write it to --out.
    Export {
        #[command(flatten)]
        store: OfflineArgs,
        /// The service.
        service: String,
        /// The room id (empty string for the lobby).
        room: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replace one room's data with an export (the room's old data is deleted first).
    Import {
        #[command(flatten)]
        store: OfflineArgs,
        /// The export file (JSON, as `storage export` writes it).
        file: PathBuf,
    },
    /// Delete what one room stores.
    Delete {
        #[command(flatten)]
        store: OfflineArgs,
        /// The service.
        service: String,
        /// The room id (empty string for the lobby).
        room: String,
    },
    /// Write a consistent copy of the store to FILE: of a data directory no server is
    /// using, or of a running server's store with --server (its admin endpoint
    /// GET /storage/backup; give --admin-token when it requires one).
    Backup {
        #[command(flatten)]
        store: OfflineArgs,
        /// The copy to write (must not exist).
        to: PathBuf,
        /// A running server, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The server's admin token.
        #[arg(long, env = "ROOMHOST_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
}

#[derive(Args, Clone)]
struct OfflineArgs {
    /// The data directory [default: ./roomhost-data].
    #[arg(long, value_name = "DIR", env = "ROOMHOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl OfflineArgs {
    fn open(&self) -> anyhow::Result<EmbeddedBackend> {
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if !dir.join(roomhost_host::storage::FILE_NAME).is_file() {
            bail!(
                "{} holds no store ({} is missing)",
                dir.display(),
                roomhost_host::storage::FILE_NAME
            );
        }
        open_embedded(&dir)
    }
}

/// One room's data, as `export` writes and `import` reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomExport {
    service: String,
    room: String,
    entries: Vec<EntryExport>,
    #[serde(default)]
    timers: Vec<TimerExport>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryExport {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimerExport {
    id: u64,
    due_ms: u64,
}

/// Bytes as text when they are UTF-8, else as base64.
fn encode(bytes: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(error) => (None, Some(BASE64.encode(error.into_bytes()))),
    }
}

fn decode(text: Option<String>, base64: Option<String>, what: &str) -> anyhow::Result<Vec<u8>> {
    match (text, base64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .with_context(|| format!("{what}_base64 is not base64")),
        _ => bail!("each entry needs exactly one of `{what}` and `{what}_base64`"),
    }
}

pub fn run(args: StorageArgs) -> anyhow::Result<()> {
    match args.command {
        StorageCommand::List(store) => {
            let rooms = store.open()?.rooms()?;
            if rooms.is_empty() {
                println!("no room stores data");
            }
            for room in rooms {
                let room_id = if room.room.is_empty() {
                    "(lobby)"
                } else {
                    &room.room
                };
                println!(
                    "{:<16} {:<32} {:>8} entries {:>12} bytes {:>4} timers",
                    room.service, room_id, room.entries, room.bytes, room.timers
                );
            }
            Ok(())
        }
        StorageCommand::Export {
            store,
            service,
            room,
            out,
        } => {
            let stored = store.open()?.load(&service, &room)?;
            if stored.is_empty() {
                bail!("room {room:?} of service {service:?} stores nothing");
            }
            let export = RoomExport {
                service,
                room,
                entries: stored
                    .entries
                    .into_iter()
                    .map(|(key, value)| {
                        let (key, key_base64) = encode(key);
                        let (value, value_base64) = encode(value);
                        EntryExport {
                            key,
                            key_base64,
                            value,
                            value_base64,
                        }
                    })
                    .collect(),
                timers: stored
                    .timers
                    .into_iter()
                    .map(|(id, due_ms)| TimerExport { id, due_ms })
                    .collect(),
            };
            let json = serde_json::to_string_pretty(&export)?;
            match out {
                Some(path) => std::fs::write(&path, json)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{json}"),
            }
            Ok(())
        }
        StorageCommand::Import { store, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let export: RoomExport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a room export", file.display()))?;
            let mut stored = StoredRoom::default();
            for entry in export.entries {
                stored.entries.push((
                    decode(entry.key, entry.key_base64, "key")?,
                    decode(entry.value, entry.value_base64, "value")?,
                ));
            }
            stored.timers = export
                .timers
                .iter()
                .map(|timer| (timer.id, timer.due_ms))
                .collect();
            let backend = store.open()?;
            // One transaction: the old data goes and the export comes in
            // together, or neither (a failure leaves the room as it was).
            let old = backend.load(&export.service, &export.room)?;
            let count = stored.entries.len();
            let mut changes = roomhost_host::storage::Changes::default();
            changes
                .entries
                .extend(old.entries.into_iter().map(|(key, _)| (key, None)));
            changes
                .timers
                .extend(old.timers.into_iter().map(|(id, _)| (id, None)));
            changes.entries.extend(
                stored
                    .entries
                    .into_iter()
                    .map(|(key, value)| (key, Some(value))),
            );
            changes
                .timers
                .extend(stored.timers.into_iter().map(|(id, due)| (id, Some(due))));
            backend.commit(&[RoomCommit {
                service: export.service.as_str().into(),
                room: export.room.as_str().into(),
                changes,
            }])?;
            println!(
                "imported {count} entries into room {:?} of service {:?}",
                export.room, export.service
            );
            Ok(())
        }
        StorageCommand::Delete {
            store,
            service,
            room,
        } => {
            if store.open()?.delete_room(&service, &room)? {
                println!("deleted what room {room:?} of service {service:?} stored");
            } else {
                println!("room {room:?} of service {service:?} stored nothing");
            }
            Ok(())
        }
        StorageCommand::Backup {
            store,
            to,
            server,
            admin_token,
        } => {
            if to.exists() {
                bail!("{} exists: give a new file", to.display());
            }
            match server {
                Some(url) => backup_from_server(&url, admin_token.as_deref(), &to),
                None => {
                    let rooms = store.open()?.backup(&to)?;
                    println!("wrote {} ({rooms} rooms)", to.display());
                    Ok(())
                }
            }
        }
    }
}

/// Downloads a running server's backup (`GET /storage/backup`) to `to`.
fn backup_from_server(url: &str, token: Option<&str>, to: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let body = runtime.block_on(http_get(url, "/storage/backup", token))?;
    let mut file =
        std::fs::File::create_new(to).with_context(|| format!("cannot create {}", to.display()))?;
    file.write_all(&body)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", to.display()))?;
    println!("wrote {} ({} bytes) from {url}", to.display(), body.len());
    Ok(())
}

/// A plain HTTP/1.0 GET of `path` on `base` (`http://HOST:PORT`): the body
/// of a 200 answer, else the server's error.
async fn http_get(base: &str, path: &str, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("--server {base:?}: give an http://HOST:PORT address"))?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("the server's answer has no HTTP header")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = answer.split_off(split + 4);
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!(
            "{base}{path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}
