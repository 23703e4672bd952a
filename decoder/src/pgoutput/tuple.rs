//! TupleData: the column values of one row, validated once and then iterated without allocation.

use super::primitives::{i32_, take, u16_, u8_, IRes, PErr};
use crate::ErrorKind;

/// Column kind byte: SQL NULL (or, in a `K` tuple, "not part of the key").
pub const COLUMN_NULL: u8 = b'n';
/// Column kind byte: an unchanged TOASTed value whose bytes were not sent. Not NULL.
pub const COLUMN_UNCHANGED_TOAST: u8 = b'u';
/// Column kind byte: the type's text output follows (Int32 length, bytes).
pub const COLUMN_TEXT: u8 = b't';
/// Column kind byte: the type's binary `send` output follows (Int32 length, bytes).
pub const COLUMN_BINARY: u8 = b'b';

/// One column of a TupleData, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column<'a> {
    Null,
    UnchangedToast,
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

/// A validated TupleData. Iterate it with [`TupleData::columns`].
///
/// Parsing checks every column's kind and length once, so iteration cannot fail; nothing is
/// allocated, whatever column count the message claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleData<'a> {
    ncols: u16,
    /// The column bytes after the Int16 column count.
    data: &'a [u8],
}

impl<'a> TupleData<'a> {
    /// Number of columns in the tuple, as sent.
    pub fn len(&self) -> usize {
        usize::from(self.ncols)
    }

    pub fn is_empty(&self) -> bool {
        self.ncols == 0
    }

    /// The raw column bytes (after the column count).
    pub fn raw(&self) -> &'a [u8] {
        self.data
    }

    pub fn columns(&self) -> Columns<'a> {
        Columns {
            rest: self.data,
            left: self.ncols,
        }
    }
}

/// Iterator over a [`TupleData`]'s columns.
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Columns<'a> {
    type Item = Column<'a>;

    #[inline]
    fn next(&mut self) -> Option<Column<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The tuple was validated at parse time; the checks below only keep this total.
        let (&kind, rest) = self.rest.split_first()?;
        match kind {
            COLUMN_NULL => {
                self.rest = rest;
                Some(Column::Null)
            }
            COLUMN_UNCHANGED_TOAST => {
                self.rest = rest;
                Some(Column::UnchangedToast)
            }
            _ => {
                let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let value = rest.get(4..4 + len)?;
                self.rest = &rest[4 + len..];
                Some(if kind == COLUMN_TEXT {
                    Column::Text(value)
                } else {
                    Column::Binary(value)
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// Parses and validates a TupleData (Int16 count, then per column a kind byte and maybe a value).
#[inline]
pub(crate) fn tuple_data(input: &[u8]) -> IRes<'_, TupleData<'_>> {
    match tuple_data_fast(input) {
        Some((rest, tuple)) => Ok((rest, tuple)),
        None => tuple_data_checked(input),
    }
}

/// A well-formed TupleData at the start of `input` and the bytes after it; `None` if malformed.
#[inline]
pub(crate) fn tuple_data_fast(input: &[u8]) -> Option<(&[u8], TupleData<'_>)> {
    let (ncols, used) = valid_len(input)?;
    Some((
        &input[2 + used..],
        TupleData {
            ncols,
            data: &input[2..2 + used],
        },
    ))
}

/// The column count and the length of the column bytes of a well-formed TupleData at the start
/// of `input`; `None` if it is malformed in any way. Runs once per tuple on every row, so it
/// walks the bytes with plain indices (a nom-style parser returns a large `Result` per field);
/// on `None`, [`tuple_data_checked`] walks them again to say what is wrong and where.
#[inline]
fn valid_len(input: &[u8]) -> Option<(u16, usize)> {
    let ncols = u16::from_be_bytes(input.get(..2)?.try_into().ok()?);
    let data = &input[2..];
    let mut pos = 0usize;
    for _ in 0..ncols {
        match *data.get(pos)? {
            COLUMN_NULL | COLUMN_UNCHANGED_TOAST => pos += 1,
            COLUMN_TEXT | COLUMN_BINARY => {
                let len_bytes: [u8; 4] = data.get(pos + 1..pos + 5)?.try_into().ok()?;
                let len = usize::try_from(i32::from_be_bytes(len_bytes)).ok()?;
                pos = (pos + 5).checked_add(len)?;
                if pos > data.len() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((ncols, pos))
}

/// [`tuple_data`] for malformed input: the same walk, reporting the first fault with its position.
#[cold]
#[inline(never)]
fn tuple_data_checked(input: &[u8]) -> IRes<'_, TupleData<'_>> {
    let (data, ncols) = u16_(input, "TupleData column count")?;
    let mut i = data;
    for _ in 0..ncols {
        let (rest, kind) = u8_(i, "TupleData column kind")?;
        i = match kind {
            COLUMN_NULL | COLUMN_UNCHANGED_TOAST => rest,
            COLUMN_TEXT | COLUMN_BINARY => {
                let (after_len, len) = i32_(rest, "TupleData column length")?;
                if len < 0 {
                    return Err(PErr::at(
                        rest,
                        ErrorKind::BadLength(i64::from(len)),
                        "TupleData column length",
                    ));
                }
                let (after, _) = take(after_len, len as usize, "TupleData column value")?;
                after
            }
            other => {
                return Err(PErr::at(
                    i,
                    ErrorKind::UnknownColumnKind(other as char),
                    "TupleData column kind",
                ))
            }
        };
    }
    let used = data.len() - i.len();
    Ok((
        i,
        TupleData {
            ncols,
            data: &data[..used],
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::primitives::finish;

    #[test]
    fn iterates_all_kinds() {
        let msg = b"\x00\x04nut\x00\x00\x00\x02hib\x00\x00\x00\x01\x07rest";
        let (rest, t) = tuple_data(msg).unwrap();
        assert_eq!(rest, b"rest");
        let cols: Vec<_> = t.columns().collect();
        assert_eq!(
            cols,
            vec![
                Column::Null,
                Column::UnchangedToast,
                Column::Text(b"hi"),
                Column::Binary(&[7])
            ]
        );
    }

    #[test]
    fn huge_column_count_fails_without_allocating() {
        let msg = b"\xff\xffn";
        let e = finish(tuple_data(msg), msg.len()).unwrap_err();
        assert_eq!((e.offset, e.kind), (3, ErrorKind::Truncated { needed: 1 }));
    }

    #[test]
    fn lying_and_negative_lengths() {
        let msg = b"\x00\x01t\x7f\xff\xff\xffab";
        let e = finish(tuple_data(msg), msg.len()).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
        let msg = b"\x00\x01t\xff\xff\xff\xfe";
        let e = finish(tuple_data(msg), msg.len()).unwrap_err();
        assert_eq!((e.offset, e.kind), (3, ErrorKind::BadLength(-2)));
        let msg = b"\x00\x01x";
        let e = finish(tuple_data(msg), msg.len()).unwrap_err();
        assert_eq!((e.offset, e.kind), (2, ErrorKind::UnknownColumnKind('x')));
    }
}
