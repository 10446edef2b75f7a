//! The state a room carries across a hot reload, in lib0 encoding (yrs's
//! varints and length-prefixed buffers):
//!
//! ```text
//! "roomhost-collab/1"            magic and version
//! varint   server client id
//! buf      the document as a v1 update
//! varint n, n × (string name, u8 kind)          declared root kinds
//! varint n, n × (varint id, varint clock, string state|"null", varint last_updated)
//! varint n, n × (varint awareness id, varint connection)   who controls what
//! varint n, n × varint connection                            connected clients
//! varint n, n × varint connection        read-only clients (absent in older snapshots)
//! ```

use roomhost_sdk::ClientId;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::presence::{AwarenessId, Entry};
use crate::roots::Kind;

const MAGIC: &str = "roomhost-collab/1";

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The server's client id.
    pub client_id: u64,
    /// The document as a v1 update.
    pub doc: Vec<u8>,
    /// The declared kind of each root.
    pub kinds: Vec<(String, Kind)>,
    /// The awareness table, removed entries included.
    pub presence: Vec<(AwarenessId, Entry)>,
    /// Which connection controls which awareness id.
    pub owners: Vec<(AwarenessId, ClientId)>,
    /// The connected clients.
    pub clients: Vec<ClientId>,
    /// The connected clients whose token grants read-only access.
    pub read_only: Vec<ClientId>,
}

impl Snapshot {
    /// The snapshot as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.doc.len() + 64);
        out.write_string(MAGIC);
        out.write_var(self.client_id);
        out.write_buf(&self.doc);
        out.write_var(self.kinds.len());
        for (name, kind) in &self.kinds {
            out.write_string(name);
            out.write_u8(kind.code());
        }
        out.write_var(self.presence.len());
        for (id, entry) in &self.presence {
            out.write_var(*id);
            out.write_var(entry.clock);
            out.write_string(entry.state.as_deref().unwrap_or("null"));
            out.write_var(entry.last_updated);
        }
        out.write_var(self.owners.len());
        for (id, client) in &self.owners {
            out.write_var(*id);
            out.write_var(*client);
        }
        out.write_var(self.clients.len());
        for client in &self.clients {
            out.write_var(*client);
        }
        out.write_var(self.read_only.len());
        for client in &self.read_only {
            out.write_var(*client);
        }
        out
    }

    /// Reads a snapshot written by [`Snapshot::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        read(&mut Cursor::new(bytes)).map_err(|err| format!("unreadable collab snapshot: {err}"))
    }
}

fn read(cursor: &mut Cursor<'_>) -> Result<Snapshot, yrs::encoding::read::Error> {
    use yrs::encoding::read::Error;
    if cursor.read_string()? != MAGIC {
        return Err(Error::Custom("not a roomhost-collab/1 snapshot".to_owned()));
    }
    let client_id = cursor.read_var()?;
    let doc = cursor.read_buf()?.to_vec();
    let mut kinds = Vec::new();
    for _ in 0..cursor.read_var::<u32>()? {
        let name = cursor.read_string()?.to_owned();
        let kind = Kind::from_code(cursor.read_u8()?).ok_or(Error::UnexpectedValue)?;
        kinds.push((name, kind));
    }
    let mut presence = Vec::new();
    for _ in 0..cursor.read_var::<u32>()? {
        let id = cursor.read_var()?;
        let clock = cursor.read_var()?;
        let state = cursor.read_string()?;
        let state = (state != "null").then(|| state.into());
        let last_updated = cursor.read_var()?;
        presence.push((
            id,
            Entry {
                clock,
                state,
                last_updated,
            },
        ));
    }
    let mut owners = Vec::new();
    for _ in 0..cursor.read_var::<u32>()? {
        owners.push((cursor.read_var()?, cursor.read_var()?));
    }
    let mut clients = Vec::new();
    for _ in 0..cursor.read_var::<u32>()? {
        clients.push(cursor.read_var()?);
    }
    let mut read_only = Vec::new();
    if cursor.has_content() {
        for _ in 0..cursor.read_var::<u32>()? {
            read_only.push(cursor.read_var()?);
        }
    }
    Ok(Snapshot {
        client_id,
        doc,
        kinds,
        presence,
        owners,
        clients,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let snapshot = Snapshot {
            client_id: 77,
            doc: vec![0, 0],
            kinds: vec![("t".into(), Kind::Text), ("m".into(), Kind::Map)],
            presence: vec![
                (
                    5,
                    Entry {
                        clock: 3,
                        state: Some(r#"{"user":"a"}"#.into()),
                        last_updated: 1_700_000_000_000,
                    },
                ),
                (
                    6,
                    Entry {
                        clock: 9,
                        state: None,
                        last_updated: 1,
                    },
                ),
            ],
            owners: vec![(5, 2)],
            clients: vec![2, 3],
            read_only: vec![3],
        };
        assert_eq!(Snapshot::decode(&snapshot.encode()), Ok(snapshot));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Snapshot::decode(b"").is_err());
        assert!(Snapshot::decode(b"\x03abc").is_err());
        let mut truncated = Snapshot::default().encode();
        // The read-only section may be absent (older snapshots): cut into
        // the one before it.
        truncated.truncate(truncated.len() - 2);
        assert!(Snapshot::decode(&truncated).is_err());
        let mut older = Snapshot {
            read_only: vec![],
            ..Snapshot::default()
        }
        .encode();
        older.pop();
        assert_eq!(Snapshot::decode(&older), Ok(Snapshot::default()));
    }
}
