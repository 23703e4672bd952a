//! Building pgoutput messages for bootstrap rows (pure): Relation (`'R'`), Type (`'Y'`) and
//! Insert (`'I'`), byte for byte in the layout pgoutput uses outside a streamed transaction
//! (PostgreSQL docs, "Logical Replication Message Formats"), so clients decode bootstrap rows
//! with the same decoder path as live changes.
//!
//! Also the COPY text format reader: `COPY … TO STDOUT` (text format) writes each column as the
//! type's output function result, then escapes backslash, newline, carriage return, tab and a
//! few control characters. Undoing that escaping gives exactly the text pgoutput sends for the
//! same value in a session with the same settings (DateStyle, TimeZone, extra_float_digits,
//! bytea_output, IntervalStyle: `SESSION_OPTIONS`, used by both connections).

/// One column of a relation as pgoutput describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// Part of the replica identity (flag 1 in the Relation message).
    pub key: bool,
}

/// A published table as pgoutput's Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDesc {
    pub id: u32,
    /// Empty for `pg_catalog` (pgoutput writes it that way).
    pub namespace: String,
    pub name: String,
    /// `relreplident`: d, n, f or i.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

fn cstring(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The `'R'` message for `rel`.
pub fn relation_message(rel: &RelationDesc) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + rel.columns.len() * 24);
    out.push(b'R');
    out.extend_from_slice(&rel.id.to_be_bytes());
    cstring(&mut out, &rel.namespace);
    cstring(&mut out, &rel.name);
    out.push(rel.replica_identity);
    out.extend_from_slice(&(rel.columns.len() as u16).to_be_bytes());
    for c in &rel.columns {
        out.push(u8::from(c.key));
        cstring(&mut out, &c.name);
        out.extend_from_slice(&c.type_oid.to_be_bytes());
        out.extend_from_slice(&c.type_modifier.to_be_bytes());
    }
    out
}

/// The `'Y'` message for a non-built-in type (pgoutput sends one before the first Relation
/// that uses it).
pub fn type_message(oid: u32, namespace: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + namespace.len() + name.len());
    out.push(b'Y');
    out.extend_from_slice(&oid.to_be_bytes());
    cstring(&mut out, namespace);
    cstring(&mut out, name);
    out
}

/// Why a COPY line could not be turned into a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyRowError {
    #[error("COPY row has {got} columns, the relation has {want}")]
    ColumnCount { got: usize, want: usize },
    #[error("COPY row has a dangling backslash")]
    Escape,
}

/// Appends the `'I'` message for one COPY text line (without its newline) of relation
/// `relation_id` with `ncols` columns to `out`: text (`'t'`) columns, `'n'` for `\N`.
pub fn insert_from_copy_line(
    relation_id: u32,
    ncols: usize,
    line: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CopyRowError> {
    let start = out.len();
    out.push(b'I');
    out.extend_from_slice(&relation_id.to_be_bytes());
    out.push(b'N');
    out.extend_from_slice(&(ncols as u16).to_be_bytes());
    let mut got = 0usize;
    let result = (|| {
        // An empty line is one empty column when ncols is 1, and never zero columns: COPY of a
        // zero-column table writes empty lines, which split() also gives as one field.
        if ncols == 0 {
            return if line.is_empty() {
                Ok(())
            } else {
                Err(CopyRowError::ColumnCount { got: 1, want: 0 })
            };
        }
        for field in line.split(|b| *b == b'\t') {
            got += 1;
            if got > ncols {
                continue;
            }
            if field == b"\\N" {
                out.push(b'n');
                continue;
            }
            out.push(b't');
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            unescape(field, out)?;
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
        if got != ncols {
            return Err(CopyRowError::ColumnCount { got, want: ncols });
        }
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Undoes COPY text escaping (`CopyAttributeOutText` in PostgreSQL's copyto.c writes `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, `\v`; the reader side also accepts octal and `\x` hex, which
/// are handled for completeness).
fn unescape(field: &[u8], out: &mut Vec<u8>) -> Result<(), CopyRowError> {
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            // Copy the run up to the next backslash at once.
            let end = field[i..]
                .iter()
                .position(|c| *c == b'\\')
                .map_or(field.len(), |p| i + p);
            out.extend_from_slice(&field[i..end]);
            i = end;
            continue;
        }
        let Some(&c) = field.get(i + 1) else {
            return Err(CopyRowError::Escape);
        };
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex = |d: u8| (d as char).to_digit(16);
                match field.get(i).and_then(|d| hex(*d)) {
                    Some(mut v) => {
                        i += 1;
                        if let Some(w) = field.get(i).and_then(|d| hex(*d)) {
                            v = v * 16 + w;
                            i += 1;
                        }
                        out.push(v as u8);
                    }
                    None => out.push(b'x'),
                }
            }
            other => out.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::{Decoder, Event};

    fn rel() -> RelationDesc {
        RelationDesc {
            id: 16384,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: b'd',
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1,
                    key: true,
                },
                Column {
                    name: "v".into(),
                    type_oid: 25,
                    type_modifier: -1,
                    key: false,
                },
            ],
        }
    }

    #[test]
    fn decoder_reads_built_messages() {
        let mut d = Decoder::new();
        match d.decode(&relation_message(&rel())).unwrap() {
            Event::Relation(r) => {
                let r = &r.relation;
                assert_eq!(
                    (r.id, r.schema.as_str(), r.table.as_str()),
                    (16384, "public", "t")
                );
                assert_eq!(r.columns.len(), 2);
                assert!(r.columns[0].is_key && !r.columns[1].is_key);
            }
            other => panic!("{other:?}"),
        }
        let mut ins = Vec::new();
        insert_from_copy_line(16384, 2, b"7\ta\\tb\\\\c\\nd", &mut ins).unwrap();
        let mut s = String::new();
        let ev = d.decode(&ins).unwrap();
        walcast_decoder::output::jsonl::write_event(&ev, None, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "insert");
        assert_eq!(v["new"]["id"], 7);
        assert_eq!(v["new"]["v"], "a\tb\\c\nd");
        let mut ins = Vec::new();
        insert_from_copy_line(16384, 2, b"8\t\\N", &mut ins).unwrap();
        s.clear();
        walcast_decoder::output::jsonl::write_event(&d.decode(&ins).unwrap(), None, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v["new"]["v"].is_null());
    }

    #[test]
    fn refuses_malformed_lines_without_leaving_bytes() {
        let mut out = vec![1, 2];
        assert_eq!(
            insert_from_copy_line(1, 2, b"1", &mut out),
            Err(CopyRowError::ColumnCount { got: 1, want: 2 })
        );
        assert_eq!(
            insert_from_copy_line(1, 1, b"a\\", &mut out),
            Err(CopyRowError::Escape)
        );
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn unescapes_octal_and_hex() {
        let mut out = Vec::new();
        unescape(b"\\101\\x42\\q\\7", &mut out).unwrap();
        assert_eq!(out, b"ABq\x07");
    }
}
