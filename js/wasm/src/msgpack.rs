//! The native MessagePack records (`walcast_decoder::output::msgpack`, "output format v1"),
//! written by hand for the .wasm.
//!
//! The native encoder goes through serde and rmp-serde, which cost ~25 KB of the module. This
//! writer emits the same bytes with a few marker functions; `tests::same_bytes_as_native` checks
//! it against the native encoder on every captured fixture. Integers use the smallest encoding
//! (as rmp's `write_sint`/`write_uint`), `None`/unit are nil, tuples and sequences are arrays.

use std::sync::Arc;

use walcast_decoder::decoder::{Cell, Change, Event, IdMap, Row};
use walcast_decoder::output::msgpack::code;
use walcast_decoder::value::{InetAddr, Value};
use walcast_decoder::RelationInfo;

/// Stateful like the native `MsgpackEncoder`: remembers which relations its reader has seen.
#[derive(Default)]
pub struct Encoder {
    described: IdMap<Arc<RelationInfo>>,
}

/// Appends MessagePack markers and payloads to a byte vector.
struct W<'o>(&'o mut Vec<u8>);

impl W<'_> {
    fn nil(&mut self) {
        self.0.push(0xc0);
    }

    fn bool(&mut self, b: bool) {
        self.0.push(if b { 0xc3 } else { 0xc2 });
    }

    fn uint(&mut self, v: u64) {
        let o = &mut *self.0;
        if v < 128 {
            o.push(v as u8);
        } else if v < 256 {
            o.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65_536 {
            o.push(0xcd);
            o.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < 1 << 32 {
            o.push(0xce);
            o.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            o.push(0xcf);
            o.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn int(&mut self, v: i64) {
        if v >= 0 {
            return self.uint(v as u64);
        }
        let o = &mut *self.0;
        if v >= -32 {
            o.push(v as u8);
        } else if v >= -128 {
            o.extend_from_slice(&[0xd0, v as u8]);
        } else if v >= -32_768 {
            o.push(0xd1);
            o.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= -(1 << 31) {
            o.push(0xd2);
            o.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            o.push(0xd3);
            o.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn opt_uint(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.uint(v),
            None => self.nil(),
        }
    }

    fn array(&mut self, len: usize) {
        let o = &mut *self.0;
        if len < 16 {
            o.push(0x90 | len as u8);
        } else if len < 65_536 {
            o.push(0xdc);
            o.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            o.push(0xdd);
            o.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    fn str(&mut self, s: &str) {
        let o = &mut *self.0;
        let len = s.len();
        if len < 32 {
            o.push(0xa0 | len as u8);
        } else if len < 256 {
            o.extend_from_slice(&[0xd9, len as u8]);
        } else if len < 65_536 {
            o.push(0xda);
            o.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            o.push(0xdb);
            o.extend_from_slice(&(len as u32).to_be_bytes());
        }
        o.extend_from_slice(s.as_bytes());
    }

    fn bin(&mut self, b: &[u8]) {
        let o = &mut *self.0;
        let len = b.len();
        if len < 256 {
            o.extend_from_slice(&[0xc4, len as u8]);
        } else if len < 65_536 {
            o.push(0xc5);
            o.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            o.push(0xc6);
            o.extend_from_slice(&(len as u32).to_be_bytes());
        }
        o.extend_from_slice(b);
    }

    /// A record's head: `[code, lsn, …` with `n` elements in all.
    fn head(&mut self, n: usize, code: u8, lsn: Option<u64>) {
        self.array(n);
        self.uint(u64::from(code));
        self.opt_uint(lsn);
    }

    fn relation(&mut self, r: &RelationInfo) {
        self.array(6);
        self.uint(u64::from(code::RELATION));
        self.uint(u64::from(r.id));
        self.str(&r.schema);
        self.str(&r.table);
        let ident = [r.replica_identity.as_byte()];
        self.str(std::str::from_utf8(&ident).unwrap_or("?"));
        self.array(r.columns.len());
        for c in &r.columns {
            self.array(5);
            self.str(&c.name);
            self.uint(u64::from(c.type_oid));
            self.int(i64::from(c.type_modifier));
            self.bool(c.is_key);
            match &c.type_name {
                Some(t) => self.str(t),
                None => self.nil(),
            }
        }
    }

    /// `[values, unchanged_toast_indexes]`, or nil for an absent row.
    fn row(&mut self, row: Option<&Row<'_>>) {
        let Some(row) = row else {
            return self.nil();
        };
        self.array(2);
        self.array(row.cells.len());
        for c in &row.cells {
            match c {
                Cell::Value(v) => self.value(v),
                Cell::UnchangedToast | Cell::NotInKey => self.nil(),
            }
        }
        let toast = row
            .cells
            .iter()
            .filter(|c| matches!(c, Cell::UnchangedToast))
            .count();
        self.array(toast);
        for (i, c) in row.cells.iter().enumerate() {
            if matches!(c, Cell::UnchangedToast) {
                self.uint(i as u64);
            }
        }
    }

    fn value(&mut self, v: &Value<'_>) {
        match v {
            Value::Null => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int2(v) => self.int(i64::from(*v)),
            Value::Int4(v) | Value::Date(v) => self.int(i64::from(*v)),
            Value::Int8(v)
            | Value::Money(v)
            | Value::Time(v)
            | Value::Timestamp(v)
            | Value::TimestampTz(v) => self.int(*v),
            Value::Oid(v) => self.uint(u64::from(*v)),
            Value::Float4(v) => {
                self.0.push(0xca);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
            Value::Float8(v) => {
                self.0.push(0xcb);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
            Value::Numeric(t) | Value::Text(t) | Value::Json(t) | Value::Bit(t) => self.str(t),
            Value::UnknownText { text, .. } => self.str(text),
            Value::Bytea(b) | Value::UnknownBinary { bytes: b, .. } => self.bin(b),
            Value::Uuid(u) => {
                let mut buf = [0u8; 36];
                crate::flat::uuid_text(u, &mut buf);
                self.str(std::str::from_utf8(&buf).unwrap_or_default());
            }
            Value::TimeTz {
                micros,
                offset_secs,
            } => {
                self.array(2);
                self.int(*micros);
                self.int(i64::from(*offset_secs));
            }
            Value::Interval {
                months,
                days,
                micros,
            } => {
                self.array(3);
                self.int(i64::from(*months));
                self.int(i64::from(*days));
                self.int(*micros);
            }
            Value::Inet { addr, prefix, cidr } => {
                self.array(3);
                match addr {
                    InetAddr::V4(a) => self.bin(a),
                    InetAddr::V6(a) => self.bin(a),
                }
                self.uint(u64::from(*prefix));
                self.bool(*cidr);
            }
            Value::MacAddr(m) => self.bin(m),
            Value::MacAddr8(m) => self.bin(m),
            Value::Array(a) => {
                self.array(4);
                self.uint(u64::from(a.element_oid));
                self.array(a.dims.len());
                for d in &a.dims {
                    self.uint(u64::from(*d));
                }
                self.array(a.lower_bounds.len());
                for b in &a.lower_bounds {
                    self.int(i64::from(*b));
                }
                self.array(a.elements.len());
                for e in &a.elements {
                    self.value(e);
                }
            }
            // A value kind added after v1: its to_json text, as the native encoder does.
            other => {
                let mut text = String::new();
                walcast_decoder::value::json::write_json(other, &mut text);
                self.str(&text);
            }
        }
    }

    /// `("K", key)`, `("O", old)` or `(nil, nil)`.
    fn old_part(&mut self, c: &Change<'_>) {
        match (&c.key, &c.old) {
            (Some(k), _) => {
                self.str("K");
                self.row(Some(k));
            }
            (None, Some(o)) => {
                self.str("O");
                self.row(Some(o));
            }
            (None, None) => {
                self.nil();
                self.nil();
            }
        }
    }

    fn record(&mut self, event: &Event<'_>, lsn: Option<u64>) {
        match event {
            Event::Begin(b) => {
                self.head(5, code::BEGIN, lsn);
                self.uint(u64::from(b.xid));
                self.uint(b.final_lsn.0);
                self.int(b.commit_time);
            }
            Event::Commit(c) => {
                self.head(6, code::COMMIT, lsn);
                self.opt_uint(c.xid.map(u64::from));
                self.uint(c.commit_lsn.0);
                self.uint(c.end_lsn.0);
                self.int(c.commit_time);
            }
            Event::Origin(o) => {
                self.head(4, code::ORIGIN, lsn);
                self.uint(o.commit_lsn.0);
                self.str(o.name);
            }
            Event::Relation(_) => {}
            Event::Type(t) => {
                self.head(6, code::TYPE, lsn);
                self.opt_uint(t.xid.map(u64::from));
                self.uint(u64::from(t.oid));
                self.str(if t.namespace.is_empty() {
                    "pg_catalog"
                } else {
                    t.namespace
                });
                self.str(t.name);
            }
            Event::Insert(c) => {
                self.head(5, code::INSERT, lsn);
                self.opt_uint(c.xid.map(u64::from));
                self.uint(u64::from(c.relation.id));
                self.row(c.new.as_ref());
            }
            Event::Update(c) => {
                self.head(7, code::UPDATE, lsn);
                self.opt_uint(c.xid.map(u64::from));
                self.uint(u64::from(c.relation.id));
                self.row(c.new.as_ref());
                self.old_part(c);
            }
            Event::Delete(c) => {
                self.head(6, code::DELETE, lsn);
                self.opt_uint(c.xid.map(u64::from));
                self.uint(u64::from(c.relation.id));
                self.old_part(c);
            }
            Event::Truncate(t) => {
                self.head(5, code::TRUNCATE, lsn);
                self.opt_uint(t.xid.map(u64::from));
                self.uint(u64::from(
                    u8::from(t.cascade) | u8::from(t.restart_identity) << 1,
                ));
                self.array(t.relations.len());
                for r in &t.relations {
                    self.uint(u64::from(r.id));
                }
            }
            Event::Message(m) => {
                self.head(7, code::MESSAGE, lsn);
                self.opt_uint(m.xid.map(u64::from));
                self.bool(m.transactional());
                self.uint(m.lsn.0);
                self.str(m.prefix);
                self.bin(m.content);
            }
            Event::StreamStart(s) => {
                self.head(4, code::STREAM_START, lsn);
                self.uint(u64::from(s.xid));
                self.bool(s.first_segment);
            }
            Event::StreamStop => self.head(2, code::STREAM_STOP, lsn),
            Event::StreamCommit(c) => {
                self.head(6, code::STREAM_COMMIT, lsn);
                self.uint(u64::from(c.xid));
                self.uint(c.commit_lsn.0);
                self.uint(c.end_lsn.0);
                self.int(c.commit_time);
            }
            Event::StreamAbort(a) => {
                self.head(7, code::STREAM_ABORT, lsn);
                self.uint(u64::from(a.xid));
                self.uint(u64::from(a.subxid));
                self.opt_uint(a.abort_lsn.map(|l| l.0));
                match a.abort_time {
                    Some(t) => self.int(t),
                    None => self.nil(),
                }
                self.array(a.discarded.len());
                for x in &a.discarded {
                    self.uint(u64::from(*x));
                }
            }
            Event::BeginPrepare(p) | Event::Prepare(p) | Event::StreamPrepare(p) => {
                let c = match event {
                    Event::BeginPrepare(_) => code::BEGIN_PREPARE,
                    Event::Prepare(_) => code::PREPARE,
                    _ => code::STREAM_PREPARE,
                };
                self.head(7, c, lsn);
                self.uint(u64::from(p.xid));
                self.str(p.gid);
                self.uint(p.prepare_lsn.0);
                self.uint(p.end_lsn.0);
                self.int(p.prepare_time);
            }
            Event::CommitPrepared(c) => {
                self.head(7, code::COMMIT_PREPARED, lsn);
                self.uint(u64::from(c.xid));
                self.str(c.gid);
                self.uint(c.commit_lsn.0);
                self.uint(c.end_lsn.0);
                self.int(c.commit_time);
            }
            Event::RollbackPrepared(r) => {
                self.head(8, code::ROLLBACK_PREPARED, lsn);
                self.uint(u64::from(r.xid));
                self.str(r.gid);
                self.uint(r.prepare_end_lsn.0);
                self.uint(r.rollback_end_lsn.0);
                self.int(r.prepare_time);
                self.int(r.rollback_time);
            }
            // Event is non_exhaustive: the native encoder has a record for every event this
            // decoder version produces, so nothing is written for an unknown one.
            _ => {}
        }
    }
}

impl Encoder {
    /// Appends the record(s) for `event`, as `MsgpackEncoder::encode` does: a relation record
    /// first when a row or truncate refers to a relation not described yet (or described
    /// differently), then the event's own record. A Relation event that changes nothing writes
    /// nothing.
    pub fn encode(&mut self, event: &Event<'_>, lsn: Option<u64>, out: &mut Vec<u8>) {
        let lsn = lsn.filter(|l| *l != 0);
        match event {
            Event::Relation(r) => return self.describe(&r.relation, out),
            Event::Insert(c) | Event::Update(c) | Event::Delete(c) => {
                self.describe(&c.relation, out)
            }
            Event::Truncate(t) => {
                for r in &t.relations {
                    self.describe(r, out);
                }
            }
            _ => {}
        }
        W(out).record(event, lsn);
    }

    fn describe(&mut self, relation: &Arc<RelationInfo>, out: &mut Vec<u8>) {
        if let Some(seen) = self.described.get(&relation.id) {
            if Arc::ptr_eq(seen, relation) || **seen == **relation {
                return;
            }
        }
        W(out).relation(relation);
        self.described.insert(relation.id, Arc::clone(relation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::output::msgpack::MsgpackEncoder;
    use walcast_decoder::{Decoder, Lsn};

    fn hex_lines(text: &str) -> Vec<Vec<u8>> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| walcast_decoder::output::parse_bytea_hex(l).expect("hex line"))
            .collect()
    }

    fn fixtures() -> Vec<std::path::PathBuf> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
        let mut out = Vec::new();
        for dir in ["tests/fixtures", "decoder/tests/fixtures/pg15"] {
            let Ok(entries) = std::fs::read_dir(format!("{root}{dir}")) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "hex") {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn same_bytes_as_native() {
        let files = fixtures();
        assert!(files.len() >= 4, "fixtures found: {files:?}");
        let mut records = 0;
        for file in files {
            let msgs = hex_lines(&std::fs::read_to_string(&file).expect("fixture"));
            let (mut d1, mut d2) = (Decoder::new(), Decoder::new());
            let (mut native, mut ours) = (MsgpackEncoder::new(), Encoder::default());
            let (mut want, mut got) = (Vec::new(), Vec::new());
            for (i, m) in msgs.iter().enumerate() {
                // Vary the frame LSN, including none and zero (both written as nil).
                let lsn = [None, Some(0), Some(i as u64 * 0x1_0000_0001)][i % 3];
                let (Ok(a), Ok(b)) = (d1.decode(m), d2.decode(m)) else {
                    continue;
                };
                records += native
                    .encode(&a, lsn.map(Lsn), &mut want)
                    .expect("native encodes");
                ours.encode(&b, lsn, &mut got);
                assert_eq!(got, want, "{} message {}", file.display(), i + 1);
            }
        }
        assert!(records > 1000, "only {records} records compared");
    }

    #[test]
    fn every_integer_width_matches_rmp() {
        let samples: [i64; 20] = [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i64,
            1 << 32,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i32::MIN as i64,
            i64::MIN,
        ];
        for v in samples {
            let mut got = Vec::new();
            W(&mut got).int(v);
            assert_eq!(got, rmp_serde::to_vec(&v).expect("encodes"), "{v}");
            if v >= 0 {
                let mut got = Vec::new();
                W(&mut got).uint(v as u64);
                assert_eq!(got, rmp_serde::to_vec(&(v as u64)).expect("encodes"), "{v}");
            }
        }
        for len in [0usize, 15, 16, 31, 32, 255, 256, 65_535, 65_536] {
            let s = "x".repeat(len);
            let mut got = Vec::new();
            W(&mut got).str(&s);
            assert_eq!(got, rmp_serde::to_vec(&s).expect("encodes"), "str {len}");
            let v = vec![0u8; len];
            let mut got = Vec::new();
            W(&mut got).array(len);
            for _ in 0..len {
                W(&mut got).uint(0);
            }
            assert_eq!(got, rmp_serde::to_vec(&v).expect("encodes"), "array {len}");
            let mut got = Vec::new();
            W(&mut got).bin(&v);
            let mut want = Vec::new();
            serde::Serializer::serialize_bytes(&mut rmp_serde::Serializer::new(&mut want), &v)
                .expect("encodes");
            assert_eq!(got, want, "bin {len}");
        }
    }
}
