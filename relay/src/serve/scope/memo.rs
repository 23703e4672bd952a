//! Each change on a row-scoped table is decoded once, whichever and however many clients read
//! it: the first client to reach a frame decodes the scoped column's old and new value (and,
//! when the value changed, the Delete and Insert a boundary crossing needs) and leaves the result
//! here, keyed by the frame's position in the log. The others find it. Bounded: the oldest
//! entries go first; a client far behind the rest decodes for itself and shares that in turn.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use walcast_decoder::pgoutput::{self, Column, Message, OldTuple, TupleData};
use walcast_decoder::value::decode_binary;
use walcast_decoder::Value;

use super::encode::{delete_of, insert_of};

/// Most decoded changes the memo holds (a few MiB at most: two short values and, for updates
/// that change the scoped value, two re-encoded messages).
pub const MEMO_ENTRIES: usize = 16 * 1024;

/// The scoped column's value on one side of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The column's text form.
    Value(Box<str>),
    /// SQL NULL: matches no scope.
    Null,
    /// Not sent (no old tuple, a column outside the replica identity, an unchanged TOASTed value
    /// with no old value) or not comparable as text.
    Unknown,
    /// This side does not exist (the old side of an Insert, the new side of a Delete).
    Absent,
}

/// Where the scoped column is in a relation, from its Relation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnRef {
    pub index: u16,
    pub type_oid: u32,
    /// Part of the replica identity: an Update without an old tuple did not change it.
    pub in_identity: bool,
}

/// One change, decoded for one scoped column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub relid: u32,
    pub kind: u8,
    pub old: Side,
    pub new: Side,
    /// For an Update that changes the scoped value: the Delete of the old identity (moving out;
    /// `None` when no old tuple was sent) and the Insert of the new row (moving in).
    pub as_delete: Option<Vec<u8>>,
    pub as_insert: Option<Vec<u8>>,
    /// The payload's length, checked on a hit so a stale entry can never be applied.
    len: usize,
}

/// Decodes `payload` (an Insert, Update or Delete) for the scoped column `col`.
/// `None` if it does not parse as one: the caller then delivers it to no scoped client.
pub fn decode(payload: &[u8], in_stream: bool, col: ColumnRef) -> Option<Decoded> {
    // `None` stands for an unchanged TOASTed value ('u').
    let side = |t: &TupleData<'_>| match t.columns().nth(usize::from(col.index)) {
        None => Some(Side::Unknown),
        Some(c) => column_text(c, col.type_oid),
    };
    let old_side = |old: &Option<OldTuple<'_>>| match old {
        Some(OldTuple::Full(t)) => side(t).unwrap_or(Side::Unknown),
        Some(OldTuple::Key(t)) if col.in_identity => side(t).unwrap_or(Side::Unknown),
        // A key tuple sends 'n' for columns outside the identity: not "NULL", unknown.
        Some(OldTuple::Key(_)) | None => Side::Unknown,
    };
    let d = match pgoutput::parse(payload, in_stream).ok()? {
        Message::Insert(i) => Decoded {
            relid: i.relation_id,
            kind: pgoutput::TAG_INSERT,
            old: Side::Absent,
            new: side(&i.new).unwrap_or(Side::Unknown),
            as_delete: None,
            as_insert: None,
            len: payload.len(),
        },
        Message::Delete(d) => Decoded {
            relid: d.relation_id,
            kind: pgoutput::TAG_DELETE,
            old: old_side(&Some(d.old)),
            new: Side::Absent,
            as_delete: None,
            as_insert: None,
            len: payload.len(),
        },
        Message::Update(u) => {
            let new_sent = side(&u.new);
            let old = match (&u.old, col.in_identity) {
                // No old tuple: the identity did not change, so neither did the column.
                (None, true) => new_sent.clone().unwrap_or(Side::Unknown),
                _ => old_side(&u.old),
            };
            // Unchanged TOAST: the new value is the old one.
            let new = new_sent.unwrap_or_else(|| old.clone());
            let crossing = old != new;
            Decoded {
                relid: u.relation_id,
                kind: pgoutput::TAG_UPDATE,
                as_delete: crossing
                    .then(|| u.old.as_ref().map(|o| delete_of(u.xid, u.relation_id, o)))
                    .flatten(),
                as_insert: crossing
                    .then(|| insert_of(u.xid, u.relation_id, &u.new, u.old.as_ref())),
                old,
                new,
                len: payload.len(),
            }
        }
        _ => return None,
    };
    Some(d)
}

/// A column's text form, as `equals` holds it; `None` for an unchanged TOASTed value.
fn column_text(c: Column<'_>, type_oid: u32) -> Option<Side> {
    Some(match c {
        Column::Null => Side::Null,
        Column::UnchangedToast => return None,
        Column::Text(b) => match std::str::from_utf8(b) {
            Ok(s) => Side::Value(s.into()),
            Err(_) => Side::Unknown,
        },
        Column::Binary(b) => {
            binary_text(type_oid, b).map_or(Side::Unknown, |s| Side::Value(s.into()))
        }
    })
}

/// The text output PostgreSQL would have sent for the types a scope column plausibly has.
/// Others are not comparable (documented: use a text, integer or uuid column).
fn binary_text(type_oid: u32, raw: &[u8]) -> Option<String> {
    Some(match decode_binary(type_oid, raw).ok()? {
        Value::Text(s) | Value::Numeric(s) => s.into_owned(),
        Value::Int2(v) => v.to_string(),
        Value::Int4(v) => v.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Oid(v) => v.to_string(),
        Value::Bool(v) => if v { "t" } else { "f" }.to_string(),
        Value::Uuid(u) => {
            let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        _ => return None,
    })
}

type Key = (u64, u16);

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Arc<Decoded>>,
    order: VecDeque<Key>,
}

/// Decoded changes shared by every scoped client of one relay (see the module docs).
#[derive(Debug, Default)]
pub struct RouteMemo {
    entries: Mutex<Entries>,
    /// Relations already warned about (an update whose old value cannot be known).
    warned: Mutex<HashSet<u32>>,
}

impl RouteMemo {
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoded change at log position `pos` for column `col`, decoding it if no client
    /// did yet. `None` if the payload is not a change that parses.
    pub fn get_or_decode(
        &self,
        pos: u64,
        payload: &[u8],
        in_stream: bool,
        col: ColumnRef,
    ) -> Option<Arc<Decoded>> {
        let key = (pos, col.index);
        {
            let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = e.map.get(&key) {
                if d.len == payload.len() {
                    return Some(d.clone());
                }
            }
        }
        // Decoded outside the lock: clients decoding different frames do not wait on each other.
        let d = Arc::new(decode(payload, in_stream, col)?);
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.map.insert(key, d.clone()).is_none() {
            e.order.push_back(key);
        }
        while e.order.len() > MEMO_ENTRIES {
            if let Some(old) = e.order.pop_front() {
                e.map.remove(&old);
            }
        }
        Some(d)
    }

    /// Logs, once per relation for the whole relay (per-client readers and the shared reader
    /// alike), that `relid`'s updates and deletes cannot be judged and reach no scoped client.
    pub fn warn_unknown_old(&self, relid: u32) {
        let mut w = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the number of relations; cap it anyway.
        if w.len() < 65_536 && w.insert(relid) {
            tracing::warn!(
                relid,
                "a row-scoped table's update or delete does not carry the scoped column's old value; \
                 scoped clients do not receive such changes. Set REPLICA IDENTITY FULL, or use an \
                 identity index that includes the column"
            );
        }
    }

    /// Whether `relid` was warned about.
    #[cfg(test)]
    pub fn warned(&self, relid: u32) -> bool {
        let w = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        w.contains(&relid)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
