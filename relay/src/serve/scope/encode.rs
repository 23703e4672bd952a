//! Re-encoding pgoutput change messages for row scopes (docs/auth.md, "Row scopes"): an Update
//! that moves a row out of a client's scope reaches that client as a Delete of the old row's
//! identity, one that moves a row in as an Insert of the new row. Pure byte building; the tests
//! round-trip every message through `walcast_decoder::pgoutput::parse`.

use walcast_decoder::pgoutput::{
    Column, OldTuple, TupleData, COLUMN_BINARY, COLUMN_NULL, COLUMN_TEXT, COLUMN_UNCHANGED_TOAST,
    TAG_DELETE, TAG_INSERT,
};

const TUPLE_NEW: u8 = b'N';
const TUPLE_KEY: u8 = b'K';
const TUPLE_OLD: u8 = b'O';

/// Appends a TupleData (Int16 column count, then the columns as sent).
pub fn encode_tuple(tuple: &TupleData<'_>, out: &mut Vec<u8>) {
    // The decoder validated the count as an Int16, so it fits.
    out.extend_from_slice(&(tuple.len() as u16).to_be_bytes());
    out.extend_from_slice(tuple.raw());
}

fn encode_column(col: Column<'_>, out: &mut Vec<u8>) {
    let (kind, value) = match col {
        Column::Null => (COLUMN_NULL, None),
        Column::UnchangedToast => (COLUMN_UNCHANGED_TOAST, None),
        Column::Text(v) => (COLUMN_TEXT, Some(v)),
        Column::Binary(v) => (COLUMN_BINARY, Some(v)),
    };
    out.push(kind);
    if let Some(v) = value {
        // A value of the decoded message: its length came from an Int32, so it fits.
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
}

fn header(tag: u8, xid: Option<u32>, relid: u32, out: &mut Vec<u8>) {
    out.push(tag);
    if let Some(xid) = xid {
        out.extend_from_slice(&xid.to_be_bytes());
    }
    out.extend_from_slice(&relid.to_be_bytes());
}

/// A Delete (`'D'`) of the row identified by `old` (the Update's `K` or `O` tuple).
/// `xid` is the stream block's xid when the Update was inside one.
pub fn delete_of(xid: Option<u32>, relid: u32, old: &OldTuple<'_>) -> Vec<u8> {
    let tuple = old.tuple();
    let mut out = Vec::with_capacity(10 + tuple.raw().len());
    header(TAG_DELETE, xid, relid, &mut out);
    out.push(match old {
        OldTuple::Key(_) => TUPLE_KEY,
        OldTuple::Full(_) => TUPLE_OLD,
    });
    encode_tuple(&tuple, &mut out);
    out
}

/// An Insert (`'I'`) of the Update's new row. Unchanged TOASTed columns (`'u'`) take their value
/// from `old` when it is a full old row (`O`) that carries one: the client never had the old
/// row, so "unchanged" would tell it nothing. A `'u'` with no old value to take stays `'u'`.
pub fn insert_of(
    xid: Option<u32>,
    relid: u32,
    new: &TupleData<'_>,
    old: Option<&OldTuple<'_>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + new.raw().len());
    header(TAG_INSERT, xid, relid, &mut out);
    out.push(TUPLE_NEW);
    let full_old = match old {
        Some(OldTuple::Full(t)) => Some(t),
        _ => None,
    };
    let has_toast = new.columns().any(|c| c == Column::UnchangedToast);
    match full_old {
        Some(old) if has_toast => {
            out.extend_from_slice(&(new.len() as u16).to_be_bytes());
            let mut old_cols = old.columns();
            for col in new.columns() {
                let before = old_cols.next();
                let col = match (col, before) {
                    (Column::UnchangedToast, Some(b @ (Column::Text(_) | Column::Binary(_)))) => b,
                    (c, _) => c,
                };
                encode_column(col, &mut out);
            }
        }
        _ => encode_tuple(new, &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::pgoutput::{self, Message};

    /// An Update message, built by hand the way PostgreSQL sends it.
    fn update(xid: Option<u32>, old: Option<(u8, &[Column])>, new: &[Column]) -> Vec<u8> {
        let mut m = vec![b'U'];
        if let Some(x) = xid {
            m.extend_from_slice(&x.to_be_bytes());
        }
        m.extend_from_slice(&16384u32.to_be_bytes());
        let tuple = |cols: &[Column], m: &mut Vec<u8>| {
            m.extend_from_slice(&(cols.len() as u16).to_be_bytes());
            for c in cols {
                encode_column(*c, m);
            }
        };
        if let Some((kind, cols)) = old {
            m.push(kind);
            tuple(cols, &mut m);
        }
        m.push(b'N');
        tuple(new, &mut m);
        m
    }

    fn parse_update(m: &[u8], in_stream: bool) -> pgoutput::Update<'_> {
        match pgoutput::parse(m, in_stream).unwrap() {
            Message::Update(u) => u,
            other => panic!("not an update: {other:?}"),
        }
    }

    #[test]
    fn delete_of_an_update_keeps_the_old_identity() {
        for (kind, xid) in [(b'K', None), (b'O', Some(77)), (b'O', None)] {
            let old = [Column::Text(b"1"), Column::Text(b"t1"), Column::Null];
            let m = update(
                xid,
                Some((kind, &old)),
                &[Column::Text(b"1"), Column::Text(b"t2"), Column::Null],
            );
            let u = parse_update(&m, xid.is_some());
            let d = delete_of(u.xid, u.relation_id, &u.old.unwrap());
            match pgoutput::parse(&d, xid.is_some()).unwrap() {
                Message::Delete(del) => {
                    assert_eq!(del.xid, xid);
                    assert_eq!(del.relation_id, 16384);
                    assert_eq!(del.old, u.old.unwrap());
                    assert_eq!(del.old.tuple().columns().collect::<Vec<_>>(), old);
                }
                other => panic!("not a delete: {other:?}"),
            }
        }
    }

    #[test]
    fn insert_of_an_update_carries_the_new_row_only() {
        let new = [Column::Text(b"1"), Column::Binary(&[0, 1]), Column::Null];
        let m = update(
            Some(5),
            Some((b'K', &[Column::Text(b"1"), Column::Null, Column::Null])),
            &new,
        );
        let u = parse_update(&m, true);
        let i = insert_of(u.xid, u.relation_id, &u.new, u.old.as_ref());
        match pgoutput::parse(&i, true).unwrap() {
            Message::Insert(ins) => {
                assert_eq!(ins.xid, Some(5));
                assert_eq!(ins.relation_id, 16384);
                assert_eq!(ins.new.columns().collect::<Vec<_>>(), new);
            }
            other => panic!("not an insert: {other:?}"),
        }
    }

    #[test]
    fn insert_fills_unchanged_toast_from_a_full_old_row() {
        let m = update(
            None,
            Some((
                b'O',
                &[Column::Text(b"1"), Column::Text(b"big"), Column::Null],
            )),
            &[
                Column::Text(b"1"),
                Column::UnchangedToast,
                Column::UnchangedToast,
            ],
        );
        let u = parse_update(&m, false);
        let i = insert_of(u.xid, u.relation_id, &u.new, u.old.as_ref());
        match pgoutput::parse(&i, false).unwrap() {
            Message::Insert(ins) => assert_eq!(
                ins.new.columns().collect::<Vec<_>>(),
                // The old row had no value for the third column: it stays 'u'.
                [
                    Column::Text(b"1"),
                    Column::Text(b"big"),
                    Column::UnchangedToast
                ]
            ),
            other => panic!("not an insert: {other:?}"),
        }
        // Without a full old row there is nothing to fill from.
        let m = update(None, None, &[Column::Text(b"1"), Column::UnchangedToast]);
        let u = parse_update(&m, false);
        let i = insert_of(None, u.relation_id, &u.new, None);
        let Message::Insert(ins) = pgoutput::parse(&i, false).unwrap() else {
            panic!("not an insert")
        };
        assert_eq!(ins.new, u.new);
    }
}
