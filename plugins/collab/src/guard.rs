//! Checks a Yjs v1 update before yrs sees it.
//!
//! yrs 0.28 trusts the structure of the updates it integrates: with hostile
//! input it can panic (overlapping structs, clocks near `u32::MAX`), recurse
//! without bound (deeply nested values), or corrupt memory (updates with
//! gaps, which it integrates out of order or keeps pending). This module
//! walks the update with bounded reads and accepts only what a Yjs client
//! connected to this server produces:
//!
//! - every struct decodes, values nest at most [`MAX_DEPTH`] deep, counts
//!   never exceed the bytes that follow;
//! - each client's structs are contiguous (no skips, no overlaps, one run
//!   per client) and end below 2^31;
//! - each run starts at or before the clock the document already has for
//!   that client (no gap);
//! - every origin, right origin and parent refers to an earlier struct of
//!   the same client, to the document, or to this update, without cycles;
//! - every deleted range lies within the document or this update.
//!
//! A violation of the first two is [`Problem::Malformed`]; of the rest,
//! [`Problem::Incomplete`] (the update depends on changes the server lacks).

use std::collections::BTreeMap;

use yrs::encoding::read::{Cursor, Read};
use yrs::{ClientID, StateVector};

/// How deep `Any` values (maps and arrays) may nest.
pub const MAX_DEPTH: usize = 64;

/// The highest clock an update may reach (yrs computes clock offsets as
/// `i32`).
const MAX_CLOCK: u32 = i32::MAX as u32;

/// Why an update is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not a well-formed update.
    Malformed(String),
    /// Depends on changes the document does not have.
    Incomplete(String),
}

type Id = (u64, u32);

/// What the guard learned about an update it accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// How many places integrating the update may split a struct in two
    /// (an origin or a deleted range that falls inside a struct): each
    /// split makes the document's encoding grow by up to [`SPLIT_BYTES`]
    /// beyond the bytes of the update.
    pub splits: usize,
}

/// How much one split can grow a document's v1 encoding: the second half
/// is a new struct with an info byte, an origin and a right origin (a
/// client id and a clock each) and a length, all varints.
pub const SPLIT_BYTES: usize = 40;

/// One struct of the update.
struct Struct {
    clock: u32,
    len: u32,
    refs: Vec<Id>,
    /// Where its references would split a struct if they fall inside one.
    cuts: Vec<Id>,
}

/// One client's run of structs.
struct Run {
    start: u32,
    end: u32,
    structs: Vec<Struct>,
}

fn malformed(what: impl Into<String>) -> Problem {
    Problem::Malformed(what.into())
}

fn eof(err: yrs::encoding::read::Error) -> Problem {
    Problem::Malformed(err.to_string())
}

/// Checks `update` against a document whose state vector is `known`, and
/// tells its [`Shape`].
pub fn check(update: &[u8], known: &StateVector) -> Result<Shape, Problem> {
    let mut cursor = Cursor::new(update);
    let runs = read_structs(&mut cursor)?;
    let deletes = read_delete_set(&mut cursor)?;
    let known_clock = |client: u64| known.get(&ClientID::new(client));

    for (&client, run) in &runs {
        if run.start > known_clock(client) {
            return Err(Problem::Incomplete(format!(
                "client {client} starts at {} but the document has {}",
                run.start,
                known_clock(client)
            )));
        }
    }
    let available = |(client, clock): Id| {
        clock < known_clock(client)
            || runs
                .get(&client)
                .is_some_and(|run| clock >= run.start && clock < run.end)
    };
    for (&client, run) in &runs {
        for item in &run.structs {
            for &(ref_client, ref_clock) in &item.refs {
                if ref_client == client && ref_clock >= item.clock {
                    return Err(malformed(format!(
                        "struct {client}:{} refers to its own future {ref_clock}",
                        item.clock
                    )));
                }
                if !available((ref_client, ref_clock)) {
                    return Err(Problem::Incomplete(format!(
                        "struct {client}:{} refers to unknown {ref_client}:{ref_clock}",
                        item.clock
                    )));
                }
            }
        }
    }
    for &(client, clock, len) in &deletes {
        let end = clock
            .checked_add(len)
            .filter(|&end| end <= MAX_CLOCK)
            .ok_or_else(|| malformed("deleted range out of bounds"))?;
        let limit = known_clock(client).max(runs.get(&client).map_or(0, |run| run.end));
        if len > 0 && end > limit {
            return Err(Problem::Incomplete(format!(
                "deletes {client}:{clock}..{end}, beyond what the document has"
            )));
        }
    }
    check_acyclic(&runs, known)?;
    Ok(Shape {
        splits: count_splits(&runs, &deletes, known),
    })
}

/// Counts the distinct places where integrating the update may split a
/// struct: each origin's end, right origin and parent, and each end of a
/// deleted range. One inside this update's own structs counts when it is
/// strictly inside one; one inside the document counts always (its
/// structs' bounds are not known here); one at the document's end or
/// beyond this update's never.
fn count_splits(
    runs: &BTreeMap<u64, Run>,
    deletes: &[(u64, u32, u32)],
    known: &StateVector,
) -> usize {
    let cuts = runs
        .values()
        .flat_map(|run| &run.structs)
        .flat_map(|item| item.cuts.iter().copied())
        .chain(deletes.iter().flat_map(|&(client, clock, len)| {
            [(client, clock), (client, clock.saturating_add(len))]
        }))
        .collect::<std::collections::BTreeSet<Id>>();
    cuts.into_iter()
        .filter(|&(client, at)| {
            let known = known.get(&ClientID::new(client));
            if at == 0 || at == known {
                return false;
            }
            if at < known {
                return true;
            }
            runs.get(&client).is_some_and(|run| {
                let index = run
                    .structs
                    .partition_point(|item| item.clock + item.len <= at);
                run.structs.get(index).is_some_and(|item| item.clock < at)
            })
        })
        .count()
}

fn read_structs(cursor: &mut Cursor<'_>) -> Result<BTreeMap<u64, Run>, Problem> {
    let mut runs: BTreeMap<u64, Run> = BTreeMap::new();
    let clients: u32 = cursor.read_var().map_err(eof)?;
    for _ in 0..clients {
        let count: u32 = cursor.read_var().map_err(eof)?;
        let client: u64 = cursor.read_var().map_err(eof)?;
        let mut clock: u32 = cursor.read_var().map_err(eof)?;
        if runs.contains_key(&client) {
            return Err(malformed(format!("client {client} appears twice")));
        }
        let start = clock;
        let mut structs = Vec::new();
        for _ in 0..count {
            let Some(item) = read_struct(cursor, clock)? else {
                continue;
            };
            clock = clock
                .checked_add(item.len)
                .filter(|&end| end <= MAX_CLOCK)
                .ok_or_else(|| malformed(format!("client {client}: clock out of range")))?;
            structs.push(item);
        }
        runs.insert(
            client,
            Run {
                start,
                end: clock,
                structs,
            },
        );
    }
    Ok(runs)
}

/// Reads one struct at `clock`; `None` for an empty item (which yrs skips).
fn read_struct(cursor: &mut Cursor<'_>, clock: u32) -> Result<Option<Struct>, Problem> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    let info = cursor.read_u8().map_err(eof)?;
    match info {
        0 => {
            let len: u32 = cursor.read_var().map_err(eof)?;
            if len == 0 {
                return Err(malformed("empty GC struct"));
            }
            return Ok(Some(Struct {
                clock,
                len,
                refs: Vec::new(),
                cuts: Vec::new(),
            }));
        }
        10 => {
            return Err(Problem::Incomplete(
                "the update has a gap (skip)".to_owned(),
            ));
        }
        _ => {}
    }
    // An item goes after the end of its origin and before the start of its
    // right origin: those are where a struct may be split.
    let mut refs = Vec::new();
    let mut cuts = Vec::new();
    if info & HAS_ORIGIN != 0 {
        let (client, clock) = read_id(cursor)?;
        refs.push((client, clock));
        cuts.push((client, clock.saturating_add(1)));
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        let id = read_id(cursor)?;
        refs.push(id);
        cuts.push(id);
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        let named: u32 = cursor.read_var().map_err(eof)?;
        if named == 1 {
            cursor.read_string().map_err(eof)?;
        } else {
            let id = read_id(cursor)?;
            refs.push(id);
            cuts.push(id);
        }
        if info & HAS_PARENT_SUB != 0 {
            cursor.read_string().map_err(eof)?;
        }
    }
    let len = read_content(cursor, info & 0b1111)?;
    Ok((len > 0).then_some(Struct {
        clock,
        len,
        refs,
        cuts,
    }))
}

fn read_id(cursor: &mut Cursor<'_>) -> Result<Id, Problem> {
    let client: u64 = cursor.read_var().map_err(eof)?;
    let clock: u32 = cursor.read_var().map_err(eof)?;
    Ok((client, clock))
}

/// Reads an item's content as yrs decodes it and returns its length.
pub(crate) fn read_content(cursor: &mut Cursor<'_>, content: u8) -> Result<u32, Problem> {
    Ok(match content {
        // Deleted
        1 => cursor.read_var().map_err(eof)?,
        // JSON (obsolete): yrs reads `len + 1` strings.
        2 => {
            let count: u32 = cursor.read_var().map_err(eof)?;
            let count = count
                .checked_add(1)
                .filter(|&n| n <= MAX_CLOCK)
                .ok_or_else(|| malformed("JSON content too long"))?;
            for _ in 0..count {
                cursor.read_string().map_err(eof)?;
            }
            count
        }
        // Binary
        3 => {
            cursor.read_buf().map_err(eof)?;
            1
        }
        // String: its length in UTF-16 code units.
        4 => {
            let text = cursor.read_string().map_err(eof)?;
            u32::try_from(text.encode_utf16().count()).map_err(|_| malformed("string too long"))?
        }
        // Embed (JSON text)
        5 => {
            read_json(cursor)?;
            1
        }
        // Format: key, JSON value
        6 => {
            cursor.read_string().map_err(eof)?;
            read_json(cursor)?;
            1
        }
        // Type
        7 => {
            match cursor.read_u8().map_err(eof)? {
                3 => {
                    cursor.read_string().map_err(eof)?;
                }
                0..=6 | 9 | 15 => {}
                other => return Err(malformed(format!("unsupported type ref {other}"))),
            }
            1
        }
        // Any values
        8 => {
            let count: u32 = cursor.read_var().map_err(eof)?;
            for _ in 0..count {
                skip_any(cursor, 0)?;
            }
            count
        }
        // Sub-document: guid, options
        9 => {
            cursor.read_string().map_err(eof)?;
            skip_any(cursor, 0)?;
            1
        }
        other => return Err(malformed(format!("unknown content type {other}"))),
    })
}

/// Reads JSON text as yrs does (which parses it).
fn read_json(cursor: &mut Cursor<'_>) -> Result<(), Problem> {
    let text = cursor.read_string().map_err(eof)?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|err| malformed(format!("bad JSON content: {err}")))
}

/// Skips one lib0 `Any` value, refusing nesting beyond [`MAX_DEPTH`].
pub(crate) fn skip_any(cursor: &mut Cursor<'_>, depth: usize) -> Result<(), Problem> {
    if depth >= MAX_DEPTH {
        return Err(malformed("values nest too deep"));
    }
    match cursor.read_u8().map_err(eof)? {
        120 | 121 | 126 | 127 => {}
        125 => {
            cursor.read_var::<i64>().map_err(eof)?;
        }
        124 => {
            cursor.read_exact(4).map_err(eof)?;
        }
        123 | 122 => {
            cursor.read_exact(8).map_err(eof)?;
        }
        119 => {
            cursor.read_string().map_err(eof)?;
        }
        118 => {
            let count: u64 = cursor.read_var().map_err(eof)?;
            for _ in 0..count {
                cursor.read_string().map_err(eof)?;
                skip_any(cursor, depth + 1)?;
            }
        }
        117 => {
            let count: u64 = cursor.read_var().map_err(eof)?;
            for _ in 0..count {
                skip_any(cursor, depth + 1)?;
            }
        }
        116 => {
            cursor.read_buf().map_err(eof)?;
        }
        other => return Err(malformed(format!("unknown value type {other}"))),
    }
    Ok(())
}

fn read_delete_set(cursor: &mut Cursor<'_>) -> Result<Vec<(u64, u32, u32)>, Problem> {
    let mut deletes = Vec::new();
    let clients: u32 = cursor.read_var().map_err(eof)?;
    for _ in 0..clients {
        let client: u64 = cursor.read_var().map_err(eof)?;
        let ranges: u32 = cursor.read_var().map_err(eof)?;
        for _ in 0..ranges {
            let clock: u32 = cursor.read_var().map_err(eof)?;
            let len: u32 = cursor.read_var().map_err(eof)?;
            deletes.push((client, clock, len));
        }
    }
    Ok(deletes)
}

/// Refuses references between the update's new structs that form a cycle
/// (yrs would wait for each struct's dependency forever).
fn check_acyclic(runs: &BTreeMap<u64, Run>, known: &StateVector) -> Result<(), Problem> {
    // Number the structs and find the one holding an id.
    let mut first_index = BTreeMap::new();
    let mut total = 0usize;
    for (&client, run) in runs {
        first_index.insert(client, total);
        total += run.structs.len();
    }
    let locate = |(client, clock): Id| -> Option<usize> {
        if clock < known.get(&ClientID::new(client)) {
            return None; // already in the document
        }
        let run = runs.get(&client)?;
        let at = run
            .structs
            .partition_point(|item| item.clock + item.len <= clock);
        (at < run.structs.len()).then(|| first_index[&client] + at)
    };
    let edges: Vec<Vec<usize>> = runs
        .values()
        .flat_map(|run| &run.structs)
        .map(|item| item.refs.iter().filter_map(|&id| locate(id)).collect())
        .collect();
    // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; total];
    for root in 0..total {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&target) = edges[node].get(*next) {
                *next += 1;
                match state[target] {
                    0 => {
                        state[target] = 1;
                        stack.push((target, 0));
                    }
                    1 => {
                        return Err(malformed(
                            "the update's structs depend on each other in a cycle",
                        ));
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}
