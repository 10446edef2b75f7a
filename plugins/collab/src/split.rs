//! Splits a Yjs v1 update into several smaller updates, so that a large
//! document reaches a joining client in frames of bounded size.
//!
//! A v1 update lists, per client, a run of contiguous structs (each with its
//! own bytes; only the run's first clock is written), then a delete set.
//! Any contiguous part of a run is itself a valid run, so the update can be
//! cut between structs; a long string or list of values is cut inside,
//! as Yjs itself does when it encodes a struct from an offset: the second
//! part gets the first part's last id as its origin and keeps the right
//! origin. The delete set goes last, split by ranges when it is large.
//! Yjs clients apply each part on its own: a part whose structs depend on
//! a later part waits in the client's pending set until that part arrives.
//!
//! The input is the room's own encoding (`Document::diff`), but it is read
//! with bounded reads all the same: a problem is an error, never a panic.

use std::ops::Range;

use yrs::encoding::read::{Cursor, Read};

use crate::guard;

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
/// The low five bits of a struct's info byte name its content.
const CONTENT_BITS: u8 = 0b1_1111;
const CONTENT_STRING: u8 = 4;
const CONTENT_ANY: u8 = 8;

/// The update could not be read (never the case for yrs's own encoding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot split the update: {0}")]
pub struct SplitError(String);

fn bad(err: impl std::fmt::Display) -> SplitError {
    SplitError(err.to_string())
}

/// A client's deleted ranges: its id and `(clock, len)` pairs.
type Deletes = (u64, Vec<(u32, u32)>);

/// A part of one struct, written as it is or cut from a longer one.
#[derive(Debug, Clone)]
enum Body {
    /// The struct's own bytes.
    Whole(Range<usize>),
    /// A cut: `head` (info byte, origins, parent), the content's count
    /// (UTF-8 bytes of a string, number of values of a list), and the
    /// content's bytes in the update.
    Cut {
        head: Vec<u8>,
        count: usize,
        content: Range<usize>,
    },
}

/// One struct (or a cut of one) of a client's run.
#[derive(Debug, Clone)]
struct Part {
    client: u64,
    clock: u32,
    len: u32,
    body: Body,
}

impl Part {
    fn bytes(&self) -> usize {
        match &self.body {
            Body::Whole(range) => range.len(),
            Body::Cut {
                head,
                count,
                content,
            } => head.len() + var_len(*count as u64) + content.len(),
        }
    }

    fn write(&self, update: &[u8], out: &mut Vec<u8>) {
        match &self.body {
            Body::Whole(range) => out.extend_from_slice(&update[range.clone()]),
            Body::Cut {
                head,
                count,
                content,
            } => {
                out.extend_from_slice(head);
                write_var(out, *count as u64);
                out.extend_from_slice(&update[content.clone()]);
            }
        }
    }
}

/// Splits `update` into updates of at most about `max` bytes each, in an
/// order a client may apply them in. A struct that cannot be cut (an
/// embed, a binary, a nested type) larger than `max` goes alone. An update
/// that fits in `max` comes back as it is.
pub fn split(update: &[u8], max: usize) -> Result<Vec<Vec<u8>>, SplitError> {
    if update.len() <= max {
        return Ok(vec![update.to_vec()]);
    }
    let mut cursor = Cursor::new(update);
    // Room for the counts and the client header of a chunk.
    let budget = max.saturating_sub(32).max(64);
    let parts = read_parts(&mut cursor, update, budget)?;
    let delete_set = read_delete_set(&mut cursor)?;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < parts.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < parts.len() && (end == start || bytes + parts[end].bytes() <= budget) {
            bytes += parts[end].bytes();
            end += 1;
        }
        chunks.push(write_chunk(update, &parts[start..end], &[]));
        start = end;
    }
    // The deletions last: they may delete structs of any chunk.
    for group in group_deletes(&delete_set, budget) {
        chunks.push(write_chunk(update, &[], &group));
    }
    if chunks.is_empty() {
        chunks.push(write_chunk(update, &[], &[]));
    }
    Ok(chunks)
}

/// Writes one update: the parts (consecutive parts of a client form one
/// run) and the delete ranges `(client, ranges)`.
fn write_chunk(update: &[u8], parts: &[Part], deletes: &[Deletes]) -> Vec<u8> {
    let mut runs: Vec<&[Part]> = Vec::new();
    let mut start = 0;
    for i in 1..=parts.len() {
        let ends_run = i == parts.len()
            || parts[i].client != parts[start].client
            || parts[i - 1].clock.checked_add(parts[i - 1].len) != Some(parts[i].clock);
        if ends_run {
            runs.push(&parts[start..i]);
            start = i;
        }
    }
    let mut out = Vec::new();
    write_var(&mut out, runs.len() as u64);
    for run in runs {
        write_var(&mut out, run.len() as u64);
        write_var(&mut out, run[0].client);
        write_var(&mut out, u64::from(run[0].clock));
        for part in run {
            part.write(update, &mut out);
        }
    }
    write_var(&mut out, deletes.len() as u64);
    for (client, ranges) in deletes {
        write_var(&mut out, *client);
        write_var(&mut out, ranges.len() as u64);
        for &(clock, len) in ranges {
            write_var(&mut out, u64::from(clock));
            write_var(&mut out, u64::from(len));
        }
    }
    out
}

/// Reads every struct of the update, cutting those larger than `budget`
/// whose content can be cut.
fn read_parts(
    cursor: &mut Cursor<'_>,
    update: &[u8],
    budget: usize,
) -> Result<Vec<Part>, SplitError> {
    let mut parts = Vec::new();
    let clients: u32 = cursor.read_var().map_err(bad)?;
    for _ in 0..clients {
        let count: u32 = cursor.read_var().map_err(bad)?;
        let client: u64 = cursor.read_var().map_err(bad)?;
        let mut clock: u32 = cursor.read_var().map_err(bad)?;
        for _ in 0..count {
            let start = cursor.next;
            let info = cursor.read_u8().map_err(bad)?;
            let len = match info {
                // GC and skip: a length only.
                0 | 10 => cursor.read_var().map_err(bad)?,
                _ => {
                    skip_head(cursor, info)?;
                    let content_at = cursor.next;
                    let kind = info & CONTENT_BITS;
                    match kind {
                        CONTENT_STRING => {
                            let before = cursor.next;
                            let text = cursor.read_string().map_err(bad)?;
                            let len = utf16_len(text)?;
                            // After the string's length prefix.
                            let text_at = before + var_len(text.len() as u64);
                            let text_range = text_at..text_at + text.len();
                            if cursor.next - start > budget {
                                let head = &update[start..content_at];
                                let text = &update[text_range.clone()];
                                let text = std::str::from_utf8(text).map_err(bad)?;
                                let cut = CutString {
                                    text,
                                    at: text_range.start,
                                };
                                cut_string(&mut parts, client, clock, info, head, cut, budget)?;
                                clock = clock
                                    .checked_add(len)
                                    .ok_or_else(|| bad("clock out of range"))?;
                                continue;
                            }
                            len
                        }
                        CONTENT_ANY => {
                            let cut = read_values(cursor)?;
                            let struct_bytes = cursor.next - start;
                            if struct_bytes > budget && cut.units.len() > 1 {
                                let head = &update[start..content_at];
                                cut_struct(&mut parts, client, clock, info, head, &cut, budget)?;
                                clock = clock
                                    .checked_add(cut.total_len())
                                    .ok_or_else(|| bad("clock out of range"))?;
                                continue;
                            }
                            cut.total_len()
                        }
                        other => {
                            let mut probe = Cursor::new(update);
                            probe.next = content_at;
                            let len = guard::read_content(&mut probe, other)
                                .map_err(|problem| bad(format!("{problem:?}")))?;
                            cursor.next = probe.next;
                            len
                        }
                    }
                }
            };
            parts.push(Part {
                client,
                clock,
                len,
                body: Body::Whole(start..cursor.next),
            });
            clock = clock
                .checked_add(len)
                .ok_or_else(|| bad("clock out of range"))?;
        }
    }
    Ok(parts)
}

/// Skips a struct's origins and parent.
fn skip_head(cursor: &mut Cursor<'_>, info: u8) -> Result<(), SplitError> {
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    if info & HAS_ORIGIN != 0 {
        skip_id(cursor)?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        skip_id(cursor)?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        let named: u32 = cursor.read_var().map_err(bad)?;
        if named == 1 {
            cursor.read_string().map_err(bad)?;
        } else {
            skip_id(cursor)?;
        }
        if info & HAS_PARENT_SUB != 0 {
            cursor.read_string().map_err(bad)?;
        }
    }
    Ok(())
}

fn skip_id(cursor: &mut Cursor<'_>) -> Result<(u64, u32), SplitError> {
    let client: u64 = cursor.read_var().map_err(bad)?;
    let clock: u32 = cursor.read_var().map_err(bad)?;
    Ok((client, clock))
}

/// The values of a list, as units that can go to either side of a cut:
/// each with its bytes in the update and its length in clock ticks (one).
struct Cuttable {
    units: Vec<(Range<usize>, u32)>,
}

impl Cuttable {
    fn total_len(&self) -> u32 {
        self.units
            .iter()
            .fold(0u32, |total, (_, len)| total.saturating_add(*len))
    }
}

/// The values of a list, one unit each.
fn read_values(cursor: &mut Cursor<'_>) -> Result<Cuttable, SplitError> {
    let mut units = Vec::new();
    let count: u32 = cursor.read_var().map_err(bad)?;
    for _ in 0..count {
        let start = cursor.next;
        guard::skip_any(cursor, 0).map_err(|problem| bad(format!("{problem:?}")))?;
        units.push((start..cursor.next, 1));
    }
    Ok(Cuttable { units })
}

/// A string's length in clock ticks: UTF-16 code units (one per byte for
/// ASCII, the common case, without walking the characters).
fn utf16_len(text: &str) -> Result<u32, SplitError> {
    let len = if text.is_ascii() {
        text.len()
    } else {
        text.encode_utf16().count()
    };
    u32::try_from(len).map_err(|_| bad("string too long"))
}

/// A string to cut, and where its bytes start in the update.
struct CutString<'a> {
    text: &'a str,
    at: usize,
}

/// Cuts a string struct at `clock` into parts of at most about `budget`
/// bytes, between characters (never inside a surrogate pair).
fn cut_string(
    parts: &mut Vec<Part>,
    client: u64,
    clock: u32,
    info: u8,
    head: &[u8],
    cut: CutString<'_>,
    budget: usize,
) -> Result<(), SplitError> {
    let text = cut.text;
    let mut at = clock;
    let mut from = 0;
    while from < text.len() {
        // The first part keeps the struct's head; the others start after
        // the previous part (their origin) and keep its right origin.
        let head = if at == clock {
            head.to_vec()
        } else {
            cut_head(client, at, info, head)?
        };
        let room = budget.saturating_sub(head.len() + 10).max(16);
        let mut to = (from + room).min(text.len());
        while !text.is_char_boundary(to) {
            to -= 1;
        }
        if to == from {
            // Never the case with room for a character; step over one.
            to = from + text[from..].chars().next().map_or(1, char::len_utf8);
        }
        let len = utf16_len(&text[from..to])?;
        parts.push(Part {
            client,
            clock: at,
            len,
            body: Body::Cut {
                head,
                count: to - from,
                content: cut.at + from..cut.at + to,
            },
        });
        at = at
            .checked_add(len)
            .ok_or_else(|| bad("clock out of range"))?;
        from = to;
    }
    Ok(())
}

/// Cuts a list struct at `clock` into parts of at most about `budget`
/// bytes, between values.
fn cut_struct(
    parts: &mut Vec<Part>,
    client: u64,
    clock: u32,
    info: u8,
    head: &[u8],
    cut: &Cuttable,
    budget: usize,
) -> Result<(), SplitError> {
    let mut at = clock;
    let mut i = 0;
    while i < cut.units.len() {
        // The first part keeps the struct's head; the others start after
        // the previous part (their origin) and keep its right origin.
        let head = if at == clock {
            head.to_vec()
        } else {
            cut_head(client, at, info, head)?
        };
        let first = i;
        let start = cut.units[i].0.start;
        let mut end = cut.units[i].0.end;
        let mut len = cut.units[i].1;
        i += 1;
        while i < cut.units.len() && cut.units[i].0.end - start + head.len() + 10 <= budget {
            end = cut.units[i].0.end;
            len = len.saturating_add(cut.units[i].1);
            i += 1;
        }
        let count = i - first;
        parts.push(Part {
            client,
            clock: at,
            len,
            body: Body::Cut {
                head,
                count,
                content: start..end,
            },
        });
        at = at
            .checked_add(len)
            .ok_or_else(|| bad("clock out of range"))?;
    }
    Ok(())
}

/// The head of a part cut from a struct of `client` at `at`: its origin is
/// the id just before it; the right origin is the struct's own.
fn cut_head(client: u64, at: u32, info: u8, head: &[u8]) -> Result<Vec<u8>, SplitError> {
    let mut cursor = Cursor::new(head);
    cursor.read_u8().map_err(bad)?;
    if info & HAS_ORIGIN != 0 {
        skip_id(&mut cursor)?;
    }
    let right_origin = if info & HAS_RIGHT_ORIGIN != 0 {
        Some(skip_id(&mut cursor)?)
    } else {
        None
    };
    // Yjs writes the parent-sub bit whenever the struct has one, and reads
    // the parent only without origins: keep the bit, drop the parent.
    let mut out = vec![(info & !HAS_RIGHT_ORIGIN) | HAS_ORIGIN];
    write_var(&mut out, client);
    write_var(&mut out, u64::from(at - 1));
    if let Some((right_client, right_clock)) = right_origin {
        out[0] |= HAS_RIGHT_ORIGIN;
        write_var(&mut out, right_client);
        write_var(&mut out, u64::from(right_clock));
    }
    Ok(out)
}

fn read_delete_set(cursor: &mut Cursor<'_>) -> Result<Vec<Deletes>, SplitError> {
    let mut deletes = Vec::new();
    let clients: u32 = cursor.read_var().map_err(bad)?;
    for _ in 0..clients {
        let client: u64 = cursor.read_var().map_err(bad)?;
        let count: u32 = cursor.read_var().map_err(bad)?;
        let mut ranges = Vec::new();
        for _ in 0..count {
            let clock: u32 = cursor.read_var().map_err(bad)?;
            let len: u32 = cursor.read_var().map_err(bad)?;
            ranges.push((clock, len));
        }
        deletes.push((client, ranges));
    }
    Ok(deletes)
}

/// Groups the delete set into sets of at most about `budget` bytes (a
/// range takes at most 10 bytes, a client header 20).
fn group_deletes(deletes: &[Deletes], budget: usize) -> Vec<Vec<Deletes>> {
    let mut groups = Vec::new();
    let mut group: Vec<Deletes> = Vec::new();
    let mut bytes = 0;
    for (client, ranges) in deletes {
        for &range in ranges {
            if bytes + 30 > budget && !group.is_empty() {
                groups.push(std::mem::take(&mut group));
                bytes = 0;
            }
            match group.last_mut() {
                Some((last, ranges)) if last == client => ranges.push(range),
                _ => {
                    group.push((*client, vec![range]));
                    bytes += 20;
                }
            }
            bytes += 10;
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn var_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn write_var(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
