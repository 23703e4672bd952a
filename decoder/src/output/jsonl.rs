//! The JSON lines form of decoded events ("output format v1", see `docs/output.md`).
//!
//! One [`Event`] becomes one JSON object. Column values are printed by
//! [`crate::value::json::write_json`], exactly as PostgreSQL's `to_json()` prints them; LSNs
//! are strings as PostgreSQL prints them (`16/B374D848`); timestamps are UTC, as `to_json()`
//! prints a `timestamptz` in a UTC session (`2024-05-01T12:00:00.123456+00:00`).
//! Written by hand into a `String`: this runs once per row.

use std::fmt::Write as _;

use crate::decoder::{Cell, Change, Event, Row};
use crate::relation::RelationInfo;
use crate::value::{json::write_json, Value};
use crate::Lsn;

/// Appends the JSON object for `event` (no newline). `lsn`, when given and non-zero, is added
/// as `"lsn"` (the XLogData start LSN of the message, for deduplication).
pub fn write_event(event: &Event<'_>, lsn: Option<Lsn>, out: &mut String) {
    let mut o = Obj::open(out, event.type_name());
    if let Some(l) = lsn.filter(|l| !l.is_zero()) {
        o.lsn("lsn", l);
    }
    match event {
        Event::Begin(b) => {
            o.uint("xid", b.xid.into());
            o.lsn("final_lsn", b.final_lsn);
            o.ts("commit_ts", b.commit_time);
        }
        Event::Commit(c) => {
            if let Some(x) = c.xid {
                o.uint("xid", x.into());
            }
            o.lsn("commit_lsn", c.commit_lsn);
            o.lsn("end_lsn", c.end_lsn);
            o.ts("commit_ts", c.commit_time);
        }
        Event::Origin(orig) => {
            o.lsn("origin_lsn", orig.commit_lsn);
            o.str("name", orig.name);
        }
        Event::Relation(r) => {
            o.opt_xid(r.xid);
            write_relation_fields(&mut o, &r.relation);
        }
        Event::Type(t) => {
            o.opt_xid(t.xid);
            o.uint("oid", t.oid.into());
            o.str(
                "schema",
                if t.namespace.is_empty() {
                    "pg_catalog"
                } else {
                    t.namespace
                },
            );
            o.str("name", t.name);
        }
        Event::Insert(c) | Event::Update(c) | Event::Delete(c) => write_change(&mut o, c),
        Event::Truncate(t) => {
            o.opt_xid(t.xid);
            o.bool("cascade", t.cascade);
            o.bool("restart_identity", t.restart_identity);
            o.key("relations");
            o.out.push('[');
            for (n, r) in t.relations.iter().enumerate() {
                if n > 0 {
                    o.out.push(',');
                }
                o.out.push_str("{\"schema\":");
                write_json_string(&r.schema, o.out);
                o.out.push_str(",\"table\":");
                write_json_string(&r.table, o.out);
                o.out.push('}');
            }
            o.out.push(']');
        }
        Event::Message(m) => {
            o.opt_xid(m.xid);
            o.bool("transactional", m.transactional());
            o.lsn("message_lsn", m.lsn);
            o.str("prefix", m.prefix);
            match std::str::from_utf8(m.content) {
                Ok(text) => o.str("content", text),
                Err(_) => {
                    o.key("content_hex");
                    o.out.push('"');
                    write_hex(m.content, o.out);
                    o.out.push('"');
                }
            }
        }
        Event::StreamStart(s) => {
            o.uint("xid", s.xid.into());
            o.bool("first_segment", s.first_segment);
        }
        Event::StreamStop => {}
        Event::StreamCommit(c) => {
            o.uint("xid", c.xid.into());
            o.lsn("commit_lsn", c.commit_lsn);
            o.lsn("end_lsn", c.end_lsn);
            o.ts("commit_ts", c.commit_time);
        }
        Event::StreamAbort(a) => {
            o.uint("xid", a.xid.into());
            o.uint("subxid", a.subxid.into());
            if let Some(l) = a.abort_lsn {
                o.lsn("abort_lsn", l);
            }
            if let Some(t) = a.abort_time {
                o.ts("abort_ts", t);
            }
            o.key("discarded_xids");
            o.out.push('[');
            for (n, x) in a.discarded.iter().enumerate() {
                if n > 0 {
                    o.out.push(',');
                }
                let _ = write!(o.out, "{x}");
            }
            o.out.push(']');
        }
        Event::BeginPrepare(p) | Event::Prepare(p) | Event::StreamPrepare(p) => {
            o.uint("xid", p.xid.into());
            o.str("gid", p.gid);
            o.lsn("prepare_lsn", p.prepare_lsn);
            o.lsn("end_lsn", p.end_lsn);
            o.ts("prepare_ts", p.prepare_time);
        }
        Event::CommitPrepared(c) => {
            o.uint("xid", c.xid.into());
            o.str("gid", c.gid);
            o.lsn("commit_lsn", c.commit_lsn);
            o.lsn("end_lsn", c.end_lsn);
            o.ts("commit_ts", c.commit_time);
        }
        Event::RollbackPrepared(r) => {
            o.uint("xid", r.xid.into());
            o.str("gid", r.gid);
            o.lsn("prepare_end_lsn", r.prepare_end_lsn);
            o.lsn("rollback_end_lsn", r.rollback_end_lsn);
            o.ts("prepare_ts", r.prepare_time);
            o.ts("rollback_ts", r.rollback_time);
        }
    }
    o.close();
}

fn write_relation_fields(o: &mut Obj<'_>, r: &RelationInfo) {
    o.uint("relation_id", r.id.into());
    o.str("schema", &r.schema);
    o.str("table", &r.table);
    o.str("replica_identity", r.replica_identity.as_str());
    o.key("columns");
    o.out.push('[');
    for (n, c) in r.columns.iter().enumerate() {
        if n > 0 {
            o.out.push(',');
        }
        let mut col = Obj {
            out: &mut *o.out,
            first: true,
        };
        col.out.push('{');
        col.str("name", &c.name);
        col.uint("type_oid", c.type_oid.into());
        col.int("type_modifier", c.type_modifier.into());
        col.bool("key", c.is_key);
        if let Some(t) = &c.type_name {
            col.str("type_name", t);
        }
        col.out.push('}');
    }
    o.out.push(']');
}

fn write_change(o: &mut Obj<'_>, c: &Change<'_>) {
    o.opt_xid(c.xid);
    o.str("schema", &c.relation.schema);
    o.str("table", &c.relation.table);
    if let Some(new) = &c.new {
        o.key("new");
        write_row(new, &c.relation, o.out);
    }
    if let Some(old) = &c.old {
        o.key("old");
        write_row(old, &c.relation, o.out);
    }
    if let Some(key) = &c.key {
        o.key("key");
        write_row(key, &c.relation, o.out);
    }
    if let Some(new) = &c.new {
        write_toast_list(o, "unchanged_toast", new, &c.relation);
    }
    if let Some(old) = c.old.as_ref().or(c.key.as_ref()) {
        write_toast_list(o, "old_unchanged_toast", old, &c.relation);
    }
}

/// Lists the columns whose value was not sent because it is an unchanged TOASTed value.
fn write_toast_list(o: &mut Obj<'_>, name: &str, row: &Row<'_>, relation: &RelationInfo) {
    let mut any = false;
    for (col, cell) in row.with_columns(relation) {
        if *cell == Cell::UnchangedToast {
            if any {
                o.out.push(',');
            } else {
                o.key(name);
                o.out.push('[');
                any = true;
            }
            write_json_string(&col.name, o.out);
        }
    }
    if any {
        o.out.push(']');
    }
}

/// A row as `{"column": value, ...}`, leaving out unchanged-TOAST and not-in-key columns.
fn write_row(row: &Row<'_>, relation: &RelationInfo, out: &mut String) {
    out.push('{');
    let mut first = true;
    for (col, cell) in row.with_columns(relation) {
        let Cell::Value(v) = cell else { continue };
        if !first {
            out.push(',');
        }
        first = false;
        write_json_string(&col.name, out);
        out.push(':');
        match v {
            Value::Null => out.push_str("null"),
            v => write_json(v, out),
        }
    }
    out.push('}');
}

/// An object being written: tracks whether a comma is needed.
struct Obj<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut String, type_name: &str) -> Self {
        out.push_str("{\"type\":\"");
        out.push_str(type_name);
        out.push('"');
        Obj { out, first: false }
    }

    fn close(self) {
        self.out.push('}');
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        // Keys are our own ASCII names; no escaping needed.
        self.out.push_str(k);
        self.out.push_str("\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        write_json_string(v, self.out);
    }

    fn uint(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }

    fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }

    fn lsn(&mut self, k: &str, v: Lsn) {
        self.key(k);
        let _ = write!(self.out, "\"{v}\"");
    }

    fn ts(&mut self, k: &str, micros: i64) {
        self.key(k);
        self.out.push('"');
        write_timestamptz_utc(micros, self.out);
        self.out.push('"');
    }

    fn opt_xid(&mut self, xid: Option<u32>) {
        if let Some(x) = xid {
            self.uint("xid", x.into());
        }
    }
}

/// Appends `s` as a JSON string, escaped as PostgreSQL's `escape_json` does: `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00XX`; everything else verbatim.
pub fn write_json_string(s: &str, out: &mut String) {
    // One escaper for the whole crate: the value layer's, which matches PostgreSQL's.
    crate::value::json::escape_json(out, s);
}

fn write_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_UNIX_DAYS: i64 = 10_957;

/// Appends a `timestamptz` (microseconds since 2000-01-01 UTC) as `to_json()` prints it in a
/// UTC session: `2024-05-01T12:00:00.123456+00:00`, fractional digits without trailing zeros,
/// `infinity`/`-infinity`, and ` BC` after years before 1.
pub fn write_timestamptz_utc(micros: i64, out: &mut String) {
    if micros == i64::MAX {
        out.push_str("infinity");
        return;
    }
    if micros == i64::MIN {
        out.push_str("-infinity");
        return;
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days + PG_EPOCH_UNIX_DAYS);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    let (y, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    let _ = write!(
        out,
        "{y:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let mut digits = format!("{frac:06}");
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push('.');
        out.push_str(&digits);
    }
    out.push_str("+00:00");
    if bc {
        out.push_str(" BC");
    }
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(micros: i64) -> String {
        let mut s = String::new();
        write_timestamptz_utc(micros, &mut s);
        s
    }

    #[test]
    fn timestamps_print_like_to_json_in_utc() {
        assert_eq!(ts(0), "2000-01-01T00:00:00+00:00");
        assert_eq!(ts(-1), "1999-12-31T23:59:59.999999+00:00");
        assert_eq!(ts(1_500_000), "2000-01-01T00:00:01.5+00:00");
        // 2024-05-01 12:00:00.123456 UTC = 767880000.123456 s after 2000-01-01.
        assert_eq!(ts(767_880_000_123_456), "2024-05-01T12:00:00.123456+00:00");
        // Leap day.
        assert_eq!(ts(59 * MICROS_PER_DAY), "2000-02-29T00:00:00+00:00");
        assert_eq!(ts(i64::MAX), "infinity");
        assert_eq!(ts(i64::MIN), "-infinity");
        // 0001-01-01 is 730119 days before 2000-01-01; the day before is 1 BC's last day.
        assert_eq!(ts(-730_119 * MICROS_PER_DAY), "0001-01-01T00:00:00+00:00");
        assert_eq!(
            ts(-730_120 * MICROS_PER_DAY),
            "0001-12-31T00:00:00+00:00 BC"
        );
    }

    #[test]
    fn escaper_matches_postgres_escape_json() {
        let mut s = String::new();
        write_json_string("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}é😀/", &mut s);
        assert_eq!(s, r#""a\"b\\c\n\r\t\b\f\u0001\u001fé😀/""#);
        let mut s = String::new();
        write_json_string("", &mut s);
        assert_eq!(s, "\"\"");
    }

    #[test]
    fn hex() {
        let mut s = String::new();
        write_hex(&[0, 0xab, 0xff], &mut s);
        assert_eq!(s, "00abff");
    }
}
