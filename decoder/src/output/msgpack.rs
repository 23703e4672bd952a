//! Compact MessagePack form of decoded events ("output format v1", see `docs/output.md`).
//!
//! Each event becomes one MessagePack array whose first element is a record code. Rows are
//! arrays of values without column names: a relation record describing the columns is written
//! once per relation, before its first row, and again only when the description changes.

use std::sync::Arc;

use serde::ser::{SerializeSeq, SerializeTuple};
use serde::Serialize;

use crate::decoder::{Cell, Change, Event, IdMap, Row};
use crate::relation::RelationInfo;
use crate::value::{Array, InetAddr, Value};
use crate::Lsn;

/// Record codes: the first element of every record.
pub mod code {
    pub const RELATION: u8 = 0;
    pub const BEGIN: u8 = 1;
    pub const COMMIT: u8 = 2;
    pub const ORIGIN: u8 = 3;
    pub const TYPE: u8 = 4;
    pub const INSERT: u8 = 5;
    pub const UPDATE: u8 = 6;
    pub const DELETE: u8 = 7;
    pub const TRUNCATE: u8 = 8;
    pub const MESSAGE: u8 = 9;
    pub const STREAM_START: u8 = 10;
    pub const STREAM_STOP: u8 = 11;
    pub const STREAM_COMMIT: u8 = 12;
    pub const STREAM_ABORT: u8 = 13;
    pub const BEGIN_PREPARE: u8 = 14;
    pub const PREPARE: u8 = 15;
    pub const COMMIT_PREPARED: u8 = 16;
    pub const ROLLBACK_PREPARED: u8 = 17;
    pub const STREAM_PREPARE: u8 = 18;
    /// Not a pgoutput message: a stream that reconnected (see [`super::MsgpackEncoder::encode_reset`]).
    pub const RESET: u8 = 19;
}

pub type EncodeError = rmp_serde::encode::Error;

/// Stateful MessagePack encoder: remembers which relation descriptions its reader has seen.
/// Use one per output stream (a reader must read the stream from its start).
#[derive(Debug, Default, Clone)]
pub struct MsgpackEncoder {
    described: IdMap<Arc<RelationInfo>>,
}

impl MsgpackEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets which relations were described (for a new reader).
    pub fn reset(&mut self) {
        self.described.clear();
    }

    /// Appends a reset record, `[19]`: the stream reconnected, so a transaction (or streamed
    /// transaction) that had not committed yet comes again from its start. A reader discards
    /// what it holds of uncommitted transactions. Relation descriptions stay valid.
    pub fn encode_reset(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        (code::RESET,).serialize(&mut rmp_serde::Serializer::new(out))
    }

    /// Appends the record(s) for `event` to `out`: a relation record first when a row or
    /// truncate refers to a relation this stream has not described yet (or described
    /// differently), then the event's own record. A Relation event that changes nothing
    /// writes nothing. Returns the number of records written.
    pub fn encode(
        &mut self,
        event: &Event<'_>,
        lsn: Option<Lsn>,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        let lsn = lsn.filter(|l| !l.is_zero()).map(|l| l.0);
        let mut written = 0;
        let mut ser = rmp_serde::Serializer::new(&mut *out);
        match event {
            Event::Relation(r) => return Ok(usize::from(self.describe(&r.relation, &mut ser)?)),
            Event::Insert(c) | Event::Update(c) | Event::Delete(c) => {
                written += usize::from(self.describe(&c.relation, &mut ser)?);
            }
            Event::Truncate(t) => {
                for r in &t.relations {
                    written += usize::from(self.describe(r, &mut ser)?);
                }
            }
            _ => {}
        }
        record(event, lsn, &mut ser)?;
        Ok(written + 1)
    }

    fn describe<W: std::io::Write>(
        &mut self,
        relation: &Arc<RelationInfo>,
        ser: &mut rmp_serde::Serializer<W>,
    ) -> Result<bool, EncodeError> {
        if let Some(seen) = self.described.get(&relation.id) {
            if Arc::ptr_eq(seen, relation) || **seen == **relation {
                return Ok(false);
            }
        }
        RelationRecord(relation).serialize(&mut *ser)?;
        self.described.insert(relation.id, Arc::clone(relation));
        Ok(true)
    }
}

struct RelationRecord<'r>(&'r RelationInfo);

impl Serialize for RelationRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let ident = [r.replica_identity.as_byte()];
        let ident = std::str::from_utf8(&ident).unwrap_or("?");
        let columns: Vec<_> = r
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.type_oid,
                    c.type_modifier,
                    c.is_key,
                    c.type_name.as_deref(),
                )
            })
            .collect();
        (
            code::RELATION,
            r.id,
            r.schema.as_str(),
            r.table.as_str(),
            ident,
            columns,
        )
            .serialize(s)
    }
}

/// Bytes serialized as MessagePack `bin`.
struct Bin<'b>(&'b [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

fn record<W: std::io::Write>(
    event: &Event<'_>,
    lsn: Option<u64>,
    ser: &mut rmp_serde::Serializer<W>,
) -> Result<(), EncodeError> {
    match event {
        Event::Begin(b) => (code::BEGIN, lsn, b.xid, b.final_lsn.0, b.commit_time).serialize(ser),
        Event::Commit(c) => (
            code::COMMIT,
            lsn,
            c.xid,
            c.commit_lsn.0,
            c.end_lsn.0,
            c.commit_time,
        )
            .serialize(ser),
        Event::Origin(o) => (code::ORIGIN, lsn, o.commit_lsn.0, o.name).serialize(ser),
        Event::Relation(_) => Ok(()),
        Event::Type(t) => {
            let ns = if t.namespace.is_empty() {
                "pg_catalog"
            } else {
                t.namespace
            };
            (code::TYPE, lsn, t.xid, t.oid, ns, t.name).serialize(ser)
        }
        Event::Insert(c) => (
            code::INSERT,
            lsn,
            c.xid,
            c.relation.id,
            RowRecord(c.new.as_ref()),
        )
            .serialize(ser),
        Event::Update(c) => {
            let (kind, old) = old_part(c);
            (
                code::UPDATE,
                lsn,
                c.xid,
                c.relation.id,
                RowRecord(c.new.as_ref()),
                kind,
                RowRecord(old),
            )
                .serialize(ser)
        }
        Event::Delete(c) => {
            let (kind, old) = old_part(c);
            (
                code::DELETE,
                lsn,
                c.xid,
                c.relation.id,
                kind,
                RowRecord(old),
            )
                .serialize(ser)
        }
        Event::Truncate(t) => {
            let options = u8::from(t.cascade) | (u8::from(t.restart_identity) << 1);
            let ids: Vec<u32> = t.relations.iter().map(|r| r.id).collect();
            (code::TRUNCATE, lsn, t.xid, options, ids).serialize(ser)
        }
        Event::Message(m) => (
            code::MESSAGE,
            lsn,
            m.xid,
            m.transactional(),
            m.lsn.0,
            m.prefix,
            Bin(m.content),
        )
            .serialize(ser),
        Event::StreamStart(s) => (code::STREAM_START, lsn, s.xid, s.first_segment).serialize(ser),
        Event::StreamStop => (code::STREAM_STOP, lsn).serialize(ser),
        Event::StreamCommit(c) => (
            code::STREAM_COMMIT,
            lsn,
            c.xid,
            c.commit_lsn.0,
            c.end_lsn.0,
            c.commit_time,
        )
            .serialize(ser),
        Event::StreamAbort(a) => (
            code::STREAM_ABORT,
            lsn,
            a.xid,
            a.subxid,
            a.abort_lsn.map(|l| l.0),
            a.abort_time,
            &a.discarded,
        )
            .serialize(ser),
        Event::BeginPrepare(p) | Event::Prepare(p) | Event::StreamPrepare(p) => {
            let c = match event {
                Event::BeginPrepare(_) => code::BEGIN_PREPARE,
                Event::Prepare(_) => code::PREPARE,
                _ => code::STREAM_PREPARE,
            };
            (
                c,
                lsn,
                p.xid,
                p.gid,
                p.prepare_lsn.0,
                p.end_lsn.0,
                p.prepare_time,
            )
                .serialize(ser)
        }
        Event::CommitPrepared(c) => (
            code::COMMIT_PREPARED,
            lsn,
            c.xid,
            c.gid,
            c.commit_lsn.0,
            c.end_lsn.0,
            c.commit_time,
        )
            .serialize(ser),
        Event::RollbackPrepared(r) => (
            code::ROLLBACK_PREPARED,
            lsn,
            r.xid,
            r.gid,
            r.prepare_end_lsn.0,
            r.rollback_end_lsn.0,
            r.prepare_time,
            r.rollback_time,
        )
            .serialize(ser),
    }
}

/// `("K", key)`, `("O", old)` or `(nil, nil)`.
fn old_part<'c, 'a>(c: &'c Change<'a>) -> (Option<&'static str>, Option<&'c Row<'a>>) {
    match (&c.key, &c.old) {
        (Some(k), _) => (Some("K"), Some(k)),
        (None, Some(o)) => (Some("O"), Some(o)),
        (None, None) => (None, None),
    }
}

/// A row as `[values, unchanged_toast_indexes]`; absent rows are nil. Unchanged-TOAST and
/// not-in-key cells are nil in `values`; the index list tells the unchanged-TOAST ones apart.
struct RowRecord<'r, 'a>(Option<&'r Row<'a>>);

impl Serialize for RowRecord<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(row) = self.0 else {
            return s.serialize_none();
        };
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Cells(&row.cells))?;
        let toast: Vec<u32> = row
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == Cell::UnchangedToast)
            .map(|(i, _)| i as u32)
            .collect();
        t.serialize_element(&toast)?;
        t.end()
    }
}

struct Cells<'r, 'a>(&'r [Cell<'a>]);

impl Serialize for Cells<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            match c {
                Cell::Value(v) => seq.serialize_element(&MsgValue(v))?,
                Cell::UnchangedToast | Cell::NotInKey => seq.serialize_element(&())?,
            }
        }
        seq.end()
    }
}

/// The MessagePack form of a [`Value`] (v1): primitive types map to MessagePack primitives,
/// temporal types to integers on PostgreSQL's 2000-01-01 epoch, see `docs/output.md`.
pub struct MsgValue<'r, 'a>(pub &'r Value<'a>);

impl Serialize for MsgValue<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[allow(unreachable_patterns)]
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int2(v) => s.serialize_i16(*v),
            Value::Int4(v) => s.serialize_i32(*v),
            Value::Int8(v) | Value::Money(v) => s.serialize_i64(*v),
            Value::Oid(v) => s.serialize_u32(*v),
            Value::Float4(v) => s.serialize_f32(*v),
            Value::Float8(v) => s.serialize_f64(*v),
            Value::Numeric(t) | Value::Text(t) | Value::Json(t) | Value::Bit(t) => {
                s.serialize_str(t)
            }
            Value::UnknownText { text, .. } => s.serialize_str(text),
            Value::Bytea(b) | Value::UnknownBinary { bytes: b, .. } => s.serialize_bytes(b),
            Value::Uuid(u) => s.serialize_str(&format_uuid(u)),
            Value::Date(d) => s.serialize_i32(*d),
            Value::Time(t) | Value::Timestamp(t) | Value::TimestampTz(t) => s.serialize_i64(*t),
            Value::TimeTz {
                micros,
                offset_secs,
            } => (micros, offset_secs).serialize(s),
            Value::Interval {
                months,
                days,
                micros,
            } => (months, days, micros).serialize(s),
            Value::Inet { addr, prefix, cidr } => {
                let bytes: &[u8] = match addr {
                    InetAddr::V4(a) => a,
                    InetAddr::V6(a) => a,
                };
                (Bin(bytes), prefix, cidr).serialize(s)
            }
            Value::MacAddr(m) => s.serialize_bytes(m),
            Value::MacAddr8(m) => s.serialize_bytes(m),
            Value::Array(a) => ArrayRecord(a).serialize(s),
            // A value kind added after v1: its to_json text, so nothing is silently lost.
            other => {
                let mut text = String::new();
                crate::value::json::write_json(other, &mut text);
                s.serialize_str(&text)
            }
        }
    }
}

struct ArrayRecord<'r, 'a>(&'r Array<'a>);

impl Serialize for ArrayRecord<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let elements: Vec<MsgValue<'_, '_>> = a.elements.iter().map(MsgValue).collect();
        (a.element_oid, &a.dims, &a.lower_bounds, elements).serialize(s)
    }
}

fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text() {
        let u = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(format_uuid(&u), "12345678-9abc-def0-0001-020304050607");
    }

    #[test]
    fn reset_is_a_one_element_array() {
        let mut out = Vec::new();
        MsgpackEncoder::new().encode_reset(&mut out).unwrap();
        // fixarray of 1, positive fixint 19
        assert_eq!(out, [0x91, code::RESET]);
    }
}
