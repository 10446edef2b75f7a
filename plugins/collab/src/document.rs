//! The shared document of a room: a yrs [`Doc`] with the size cap, and the
//! updates each change produces, ready to fan out.
//!
//! Every change (a client's update, a REST edit) runs in one transaction;
//! an update observer collects what the transaction actually integrated,
//! like Yjs's `doc.on('update')`, so duplicates and not-yet-integrable parts
//! are never fanned out.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use yrs::updates::decoder::Decode;

use crate::guard::{self, Problem, SPLIT_BYTES};
use crate::roots::{self, Kind};
use yrs::{
    ClientID, Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update,
};

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The update could not be decoded or integrated.
    Malformed(String),
    /// The update depends on changes this document does not have (see
    /// [`guard`]). yrs would keep such parts pending, and its pending paths
    /// are not memory-safe with hostile input (yrs 0.28), so the update is
    /// refused: the sender has to resync (the room asks a client for it by
    /// sending sync step 1).
    Incomplete(String),
    /// The document would grow beyond the cap.
    TooLarge {
        /// The document's size now, in bytes of v1 encoding.
        size: usize,
        /// The size of the change, in bytes.
        incoming: usize,
        /// The cap.
        limit: usize,
    },
    /// The room's storage refused the change (it is full): the document
    /// went back to what is stored (see [`persist`](crate::persist)).
    Unsaved(String),
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "malformed update: {reason}"),
            Self::Incomplete(detail) => {
                write!(
                    f,
                    "incomplete update (it depends on changes the document lacks): {detail}"
                )
            }
            Self::TooLarge {
                size,
                incoming,
                limit,
            } => write!(
                f,
                "document too large: {size} + {incoming} bytes exceeds the {limit}-byte limit"
            ),
            Self::Unsaved(reason) => write!(f, "the change cannot be stored: {reason}"),
        }
    }
}

impl DocError {
    /// The close code for a client whose update was refused this way, or
    /// `None` when the update is dropped and the connection kept.
    ///
    /// Only bytes that are not a Yjs update close the connection: a
    /// y-websocket client reconnects 100 ms after any close and sends the
    /// same document again, so closing on a refusal that will repeat (a
    /// document at its cap, an update the server cannot integrate yet)
    /// would only make it reconnect ten times a second.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Malformed(_) => Some(crate::CLOSE_MALFORMED),
            Self::Incomplete(_) | Self::TooLarge { .. } | Self::Unsaved(_) => None,
        }
    }

    /// The HTTP status of an answer refusing a change this way.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::Incomplete(_) => 400,
            Self::TooLarge { .. } => 413,
            Self::Unsaved(_) => 507,
        }
    }
}

/// How a document is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The client id of the server's own edits.
    pub client_id: u64,
    /// The size cap, in bytes of v1 encoding.
    pub max_bytes: usize,
    /// Whether deleted content is garbage-collected (see
    /// [`Config::gc`](crate::config::Config::gc)).
    pub gc: bool,
}

/// A room's document.
pub struct Document {
    doc: Doc,
    /// Updates the observer collected since the last [`Document::take_updates`].
    produced: Rc<RefCell<Vec<Vec<u8>>>>,
    /// An upper bound of the v1 encoding's size: exact after
    /// [`Document::size`], plus, for each change since, the bytes of the
    /// updates it produced and [`SPLIT_BYTES`] per place where it may have
    /// split a struct (a split grows the encoding beyond the update's own
    /// bytes: deleting one character inside a long insertion produces 10
    /// bytes of update and grows the document by 19).
    size_bound: usize,
    /// Whether `size_bound` is the exact size (nothing changed since it was
    /// measured), so that refusing many updates does not encode the
    /// document for each.
    measured: bool,
    settings: Settings,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("settings", &self.settings)
            .field("size_bound", &self.size_bound)
            .finish_non_exhaustive()
    }
}

impl Default for Document {
    fn default() -> Self {
        Self::new(Settings {
            client_id: 0,
            max_bytes: usize::MAX,
            gc: false,
        })
    }
}

impl Document {
    /// An empty document whose own edits (REST edits) use `client_id`.
    /// Text offsets count UTF-16 code units, as in JavaScript.
    pub fn new(settings: Settings) -> Self {
        let doc = Doc::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            skip_gc: !settings.gc,
            ..Options::with_client_id(ClientID::new(settings.client_id))
        });
        let produced = Rc::new(RefCell::new(Vec::new()));
        {
            let sink = Rc::clone(&produced);
            let mut txn = doc.transact_mut();
            txn.observe_update_v1("collab", move |_, event| {
                sink.borrow_mut().push(event.update.clone());
            });
        }
        let mut document = Self {
            doc,
            produced,
            size_bound: 0,
            measured: false,
            settings,
        };
        document.size_bound = document.size();
        document
    }

    /// A document holding `state` (a v1 update from a snapshot), with its
    /// roots declared as `kinds`.
    pub fn restore(
        settings: Settings,
        state: &[u8],
        kinds: &[(String, Kind)],
    ) -> Result<Self, DocError> {
        let mut document = Self::new(settings);
        let update =
            Update::decode_v1(state).map_err(|err| DocError::Malformed(err.to_string()))?;
        {
            let mut txn = document.doc.transact_mut();
            txn.apply_update(update)
                .map_err(|err| DocError::Malformed(err.to_string()))?;
            for (name, kind) in kinds {
                roots::declare(&mut txn, name, *kind);
            }
            roots::settle(&mut txn);
        }
        document.produced.borrow_mut().clear();
        document.size_bound = document.size();
        Ok(document)
    }

    /// Applies updates the room itself produced earlier (its stored log),
    /// in order, then measures the document. They are trusted: they are
    /// what this document's observer collected from changes the guard had
    /// accepted, so they skip the guard and the size cap (a cap lowered
    /// since applies to new changes only).
    pub fn replay(&mut self, updates: &[Vec<u8>]) -> Result<(), DocError> {
        {
            let mut txn = self.doc.transact_mut();
            for update in updates {
                let update = Update::decode_v1(update)
                    .map_err(|err| DocError::Malformed(err.to_string()))?;
                txn.apply_update(update)
                    .map_err(|err| DocError::Malformed(err.to_string()))?;
            }
            roots::settle(&mut txn);
            let store = txn.store();
            if store.pending_update().is_some() || store.pending_ds().is_some() {
                return Err(DocError::Incomplete("the stored log has a gap".to_owned()));
            }
        }
        self.produced.borrow_mut().clear();
        self.size();
        Ok(())
    }

    /// The yrs document (read access for views and tests).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// How the document was set up.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The client id of the server's own edits.
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The state vector, for sync step 1.
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// What a peer at `state_vector` lacks, as a v1 update (sync step 2).
    pub fn diff(&self, state_vector: &StateVector) -> Vec<u8> {
        // Never anything pending here (see `DocError::Incomplete`).
        self.doc.transact().encode_diff_v1(state_vector)
    }

    /// The whole document as a v1 update.
    pub fn encode(&self) -> Vec<u8> {
        self.diff(&StateVector::default())
    }

    /// The exact size of the v1 encoding (encodes the whole document).
    pub fn size(&mut self) -> usize {
        self.size_bound = self.encode().len();
        self.measured = true;
        self.size_bound
    }

    /// The size cap.
    #[cfg(test)]
    pub(crate) fn max_bytes(&self) -> usize {
        self.settings.max_bytes
    }

    /// The running upper bound of the encoding's size (see
    /// [`Document::size`] for the exact one).
    #[cfg(test)]
    pub(crate) fn size_bound(&self) -> usize {
        self.size_bound
    }

    /// Checks that `incoming` more bytes keep the document within the cap,
    /// measuring it exactly only when the running bound says it might not.
    fn make_room(&mut self, incoming: usize) -> Result<(), DocError> {
        if self.size_bound.saturating_add(incoming) <= self.settings.max_bytes {
            return Ok(());
        }
        let size = if self.measured {
            self.size_bound
        } else {
            self.size()
        };
        if size.saturating_add(incoming) <= self.settings.max_bytes {
            Ok(())
        } else {
            Err(DocError::TooLarge {
                size,
                incoming,
                limit: self.settings.max_bytes,
            })
        }
    }

    /// Applies a v1 update from a peer. Returns what was integrated, to
    /// fan out (empty when the update brought nothing new). Nothing changes
    /// when the update is refused for its size or cannot be decoded.
    pub fn apply(&mut self, update: &[u8]) -> Result<Vec<Vec<u8>>, DocError> {
        // The guard first: bytes that are not an update are malformed
        // whatever their size (and close the client), well-formed ones
        // beyond the cap are only dropped.
        let before = self.state_vector();
        let shape = guard::check(update, &before).map_err(|problem| match problem {
            Problem::Malformed(reason) => DocError::Malformed(reason),
            Problem::Incomplete(reason) => DocError::Incomplete(reason),
        })?;
        self.make_room(
            update
                .len()
                .saturating_add(SPLIT_BYTES.saturating_mul(shape.splits)),
        )?;
        let decoded =
            Update::decode_v1(update).map_err(|err| DocError::Malformed(err.to_string()))?;
        let first = self.produced.borrow().len();
        let (result, incomplete) = {
            let mut txn = self.doc.transact_mut();
            let result = txn.apply_update(decoded);
            // Roots first seen in this update get the kind their content
            // shows, so views and REST edits agree with the clients.
            roots::settle(&mut txn);
            let store = txn.store();
            let incomplete = store.pending_update().is_some() || store.pending_ds().is_some();
            (result, incomplete)
        };
        // What was integrated before a failure stays queued: the caller
        // still fans it out with `take_updates`.
        if incomplete {
            // The guard should make this unreachable; drop what yrs kept
            // pending rather than let it reach the pending-retry path.
            self.drop_pending()?;
            return Err(DocError::Incomplete(
                "parts of the update were left pending".to_owned(),
            ));
        }
        self.account(first, &before);
        match result {
            Ok(()) => Ok(self.take_updates()),
            Err(err) => Err(DocError::Malformed(err.to_string())),
        }
    }

    /// Grows the running bound by what the updates produced since the
    /// `first` one can have added to the encoding of a document that was at
    /// `before`: their bytes, plus [`SPLIT_BYTES`] per split they may have
    /// made. Measures exactly if one of them cannot be read.
    fn account(&mut self, first: usize, before: &StateVector) {
        let growth = self.produced.borrow()[first..]
            .iter()
            .map(|update| {
                let shape = guard::check(update, before).ok()?;
                Some(update.len() + SPLIT_BYTES * shape.splits)
            })
            .sum::<Option<usize>>();
        match growth {
            Some(0) => {}
            Some(growth) => {
                self.size_bound = self.size_bound.saturating_add(growth);
                self.measured = false;
            }
            None => {
                self.size();
            }
        }
    }

    /// Rebuilds the document without the parts yrs keeps pending, keeping
    /// the updates produced so far.
    fn drop_pending(&mut self) -> Result<(), DocError> {
        let (kinds, state) = {
            let txn = self.doc.transact();
            (
                roots::kinds(&txn),
                txn.encode_diff_v1(&StateVector::default()),
            )
        };
        let fresh = Self::restore(self.settings, &state, &kinds)?;
        let produced = self.take_updates();
        *self = fresh;
        self.produced.borrow_mut().extend(produced);
        Ok(())
    }

    /// Runs a local edit (a REST edit) in one transaction and returns its
    /// result with the updates it produced.
    ///
    /// `estimate` is about how much the edit grows the encoding: an edit
    /// whose estimate does not fit is refused at once. Then the running
    /// bound grows by what the edit really produced. If that says the
    /// document may be beyond the cap, it is measured, and an edit that
    /// took it beyond is undone (the document goes back to its state
    /// before) and refused: how much a deletion grows the document (its
    /// tombstones) cannot be known beforehand.
    pub fn edit<R>(
        &mut self,
        estimate: usize,
        f: impl FnOnce(&mut TransactionMut<'_>) -> R,
    ) -> Result<(R, Vec<Vec<u8>>), DocError> {
        self.make_room(estimate)?;
        let backup = {
            let txn = self.doc.transact();
            (
                txn.encode_diff_v1(&StateVector::default()),
                roots::kinds(&txn),
            )
        };
        let before = self.state_vector();
        let first = self.produced.borrow().len();
        let result = {
            let mut txn = self.doc.transact_mut();
            f(&mut txn)
        };
        self.account(first, &before);
        if self.size_bound > self.settings.max_bytes {
            let size = self.size();
            if size > self.settings.max_bytes {
                let (state, kinds) = backup;
                let earlier = self.take_updates()[..first].to_vec();
                *self = Self::restore(self.settings, &state, &kinds)?;
                self.produced.borrow_mut().extend(earlier);
                return Err(DocError::TooLarge {
                    size: state.len(),
                    incoming: size.saturating_sub(state.len()),
                    limit: self.settings.max_bytes,
                });
            }
        }
        Ok((result, self.take_updates()))
    }

    /// The updates produced since the last call (after a failed
    /// [`Document::apply`], what it integrated before failing).
    pub fn take_updates(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.produced.borrow_mut())
    }
}
