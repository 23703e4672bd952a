//! Frame version 3's row records: a pgoutput Insert, Update or Delete whose tuples are coded
//! against the previous tuple of the same relation, so that zstd sees near-identical records.
//!
//! Why: successive rows of a table differ in a few digits (ids, timestamps, counters), spread
//! over the row. zstd pays 2–3 bytes for every such break in a match, so a 7-column row that
//! changes in 6 places still costs ~12 bytes compressed. Coded as "column 1: +1, column 2: same
//! text with its digits +1, …" successive rows become the same bytes, which zstd stores in
//! almost nothing. The coding is lossless: the reader rebuilds the pgoutput message byte for
//! byte. The normative description is `docs/frames.md`, "Version 3".
//!
//! ```text
//! body:  u8 frame kind ('w' or 'b') | u8 flags (bit 0: the message carries an xid)
//!        | u8 message ('I', 'U', 'D') | [u32 xid] | u32 relid        (as pgoutput has them)
//!        | parts: ('N' | 'K' | 'O') tuple, in pgoutput's order
//! tuple: varint ncols | one op per column
//! op:    0x00                     same as that column of the reference tuple
//!      | 'n' | 'u'                null, unchanged TOAST
//!      | ('t' | 'b') varint len | bytes      literal
//!      | 'd' one varint per digit run of the reference text:
//!            zz(value − ref_value) << 1 | w, then if w: varint width
//! ```
//!
//! The reference tuple is the last tuple of the same relation and the same side: 'N' tuples
//! (Insert, Update new) and 'K'/'O' tuples (Update old, Delete) have a reference each. Both
//! sides remember tuples the same way (`Tuple::remember`): at most [`MAX_RELATIONS`] relations,
//! and per tuple at most [`MAX_REMEMBERED`] bytes; what is not remembered cannot be referred to.

use super::v2::{put_varint, unzigzag, zigzag, Cur};
use crate::ErrorKind;

/// Relations whose tuples are remembered; tuples of further relations are sent literally.
pub const MAX_RELATIONS: usize = 256;
/// Bytes remembered per tuple, counting [`COLUMN_COST`] per column on top of its value: bounds
/// a stream's row state to about MAX_RELATIONS × 2 × 16 KiB, whatever the rows hold.
pub const MAX_REMEMBERED: usize = 16 << 10;
const COLUMN_COST: usize = 32;
/// Longest digit run coded as a number: deltas of values below 10^18 always fit, shifted.
const MAX_DIGITS: usize = 18;

const OP_SAME: u8 = 0;
const OP_DIGITS: u8 = b'd';

/// A column as pgoutput lays it out.
#[derive(Debug, Clone, Copy)]
struct ColRef<'a> {
    kind: u8,
    bytes: &'a [u8],
}

impl ColRef<'_> {
    fn write_pgoutput(self, out: &mut Vec<u8>) {
        out.push(self.kind);
        if matches!(self.kind, b't' | b'b') {
            out.extend_from_slice(&(self.bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(self.bytes);
        }
    }
}

/// The reference of one relation side: the remembered columns of its last tuple, in their
/// pgoutput layout, back to back in one buffer. Replaced by each new tuple as a whole (one
/// copy), and runs of unchanged columns are copied out of it in one piece.
#[derive(Debug, Default)]
struct Reference {
    /// The columns' pgoutput bytes: kind, then length and value for 't' and 'b'.
    bytes: Vec<u8>,
    /// Where each column lies in `bytes`, then an end marker: column `i` is
    /// `bytes[cols[i].start..cols[i + 1].start]`.
    cols: Vec<ColAt>,
}

/// Where a remembered column lies in [`Reference::bytes`].
#[derive(Debug, Clone, Copy)]
struct ColAt {
    /// Offset of its kind byte.
    start: u32,
    kind: u8,
}

impl Reference {
    fn clear(&mut self) {
        self.bytes.clear();
        self.cols.clear();
    }

    fn len(&self) -> usize {
        self.cols.len().saturating_sub(1)
    }

    /// Column `i`, if remembered.
    fn get(&self, i: usize) -> Option<ColRef<'_>> {
        let (c, next) = (self.cols.get(i)?, self.cols.get(i + 1)?);
        Some(ColRef {
            kind: c.kind,
            bytes: &self.bytes[c.start as usize + header_len(c.kind)..next.start as usize],
        })
    }

    /// Appends the pgoutput bytes of columns `from..to`, all remembered, to `out`, and where
    /// each of them starts in `out[data..]` to `cols`.
    fn copy_span(
        &self,
        from: usize,
        to: usize,
        data: usize,
        out: &mut Vec<u8>,
        cols: &mut Vec<ColAt>,
    ) {
        let (base, end) = (self.cols[from].start, self.cols[to].start);
        let at = (out.len() - data) as u32;
        cols.extend(self.cols[from..to].iter().map(|c| ColAt {
            start: c.start - base + at,
            kind: c.kind,
        }));
        out.extend_from_slice(&self.bytes[base as usize..end as usize]);
    }

    /// Becomes `data`, the columns of the tuple just coded (valid pgoutput, back to back),
    /// which start at `cols`: as many leading columns as fit in [`MAX_REMEMBERED`], the same
    /// on both sides.
    fn remember(&mut self, data: &[u8], cols: &[ColAt]) {
        self.clear();
        let (mut end, mut used) = (data.len(), 0);
        // What counts against the limit is at most this (headers do not count): the usual
        // case, where the whole tuple fits, needs no walk over the columns.
        if data.len() + cols.len() * COLUMN_COST <= MAX_REMEMBERED {
            self.cols.extend_from_slice(cols);
        } else {
            for (i, c) in cols.iter().enumerate() {
                let next = cols.get(i + 1).map_or(data.len(), |n| n.start as usize);
                used += next - c.start as usize - header_len(c.kind) + COLUMN_COST;
                if used > MAX_REMEMBERED {
                    end = c.start as usize;
                    break;
                }
                self.cols.push(*c);
            }
        }
        // The end marker: where the next column would start.
        self.cols.push(ColAt {
            start: end as u32,
            kind: 0,
        });
        self.bytes.extend_from_slice(&data[..end]);
    }
}

/// The bytes before a pgoutput column's value: its kind, and for 't' and 'b' its length.
fn header_len(kind: u8) -> usize {
    if matches!(kind, b't' | b'b') {
        5
    } else {
        1
    }
}

/// Reads one pgoutput column at `*at`; `None` if it is malformed or cut short.
fn read_col<'a>(p: &'a [u8], at: &mut usize) -> Option<ColRef<'a>> {
    let kind = *p.get(*at)?;
    *at += 1;
    let bytes: &[u8] = match kind {
        b'n' | b'u' => &[],
        b't' | b'b' => {
            let len = u32::from_be_bytes(p.get(*at..*at + 4)?.try_into().ok()?) as usize;
            *at += 4;
            let v = p.get(*at..at.checked_add(len)?)?;
            *at += len;
            v
        }
        _ => return None,
    };
    Some(ColRef { kind, bytes })
}

/// Where a row message's tuples are: `(part, offset of its TupleData)`, in order.
struct Layout {
    head_len: usize,
    parts: [(u8, usize); 2],
    count: usize,
}

/// Checks that `p` is a whole row message with (or without) an xid, without allocating.
fn row_layout(p: &[u8], has_xid: bool) -> Option<Layout> {
    let msg = *p.first()?;
    let head_len = 1 + if has_xid { 8 } else { 4 };
    let mut at = head_len;
    let mut layout = Layout {
        head_len,
        parts: [(0, 0); 2],
        count: 0,
    };
    loop {
        let part = *p.get(at)?;
        let allowed = match (msg, layout.count) {
            (b'I', 0) => part == b'N',
            (b'D', 0) => part == b'K' || part == b'O',
            (b'U', 0) => matches!(part, b'N' | b'K' | b'O'),
            (b'U', 1) => part == b'N',
            _ => false,
        };
        if !allowed {
            return None;
        }
        layout.parts[layout.count] = (part, at + 1);
        layout.count += 1;
        let n = u16::from_be_bytes(p.get(at + 1..at + 3)?.try_into().ok()?);
        at += 3;
        for _ in 0..n {
            read_col(p, &mut at)?;
        }
        if part == b'N' || msg == b'D' {
            break;
        }
    }
    (at == p.len()).then_some(layout)
}

/// Which reference a tuple part uses.
fn side(part: u8) -> usize {
    usize::from(part != b'N')
}

/// The row state of one stream, identical on both sides.
#[derive(Debug, Default)]
pub struct Rows {
    /// Per relid, the references of its two sides. A list, not a map: streams touch a few
    /// tables, the last one used is looked up first, and it keeps hashing code out of WASM.
    refs: Vec<(u32, [Reference; 2])>,
    /// The reference of relations past [`MAX_RELATIONS`]: emptied before every tuple.
    scratch: Reference,
    /// Where the columns of the tuple being coded start (kept to reuse its allocation).
    cols: Vec<ColAt>,
    /// Encoder only: whether the last Stream Start was not yet closed by a Stream Stop, which
    /// says whether row messages carry an xid. Only a hint: the record says what it holds.
    in_stream: bool,
}

/// A decode failure inside a row record body: offset in the body, what, where.
pub type BodyError = (usize, ErrorKind, &'static str);

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// The digit run starting at `at`: its end and value, in one pass; `None` if longer than
/// [`MAX_DIGITS`].
#[inline(always)]
fn digit_run(v: &[u8], at: usize) -> Option<(usize, u64)> {
    let (mut end, mut value) = (at, 0u64);
    while end < v.len() && is_digit(v[end]) {
        if end - at == MAX_DIGITS {
            return None;
        }
        value = value * 10 + u64::from(v[end] - b'0');
        end += 1;
    }
    Some((end, value))
}

fn natural_width(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends `'d'` coding of `new` against `reference`, if both have the same text between
/// their digit runs and every run is at most [`MAX_DIGITS`] long. One pass over both.
fn encode_digits(reference: &[u8], new: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.push(OP_DIGITS);
    let (mut i, mut j) = (0, 0);
    loop {
        // The text up to the next digit run must be the same in both.
        while i < reference.len()
            && j < new.len()
            && reference[i] == new[j]
            && !is_digit(reference[i])
        {
            (i, j) = (i + 1, j + 1);
        }
        match (reference.get(i), new.get(j)) {
            (None, None) => return true,
            (Some(&a), Some(&b)) if is_digit(a) && is_digit(b) => {}
            _ => break,
        }
        let (Some((ri, r)), Some((nj, n))) = (digit_run(reference, i), digit_run(new, j)) else {
            break;
        };
        let width = nj - j;
        let implicit = (ri - i).max(natural_width(n));
        let flag = u64::from(width != implicit);
        put_varint(out, zigzag(n.wrapping_sub(r)) << 1 | flag);
        if flag == 1 {
            put_varint(out, width as u64);
        }
        (i, j) = (ri, nj);
    }
    out.truncate(start);
    false
}

/// Rebuilds the text a `'d'` op codes against `reference`, appending it to `out`. What the
/// new text shares with the reference (the text between runs, and the runs whose code is 0:
/// same value, same width) is copied in one piece up to the next changed run.
fn decode_digits(reference: &[u8], c: &mut Cur<'_>, out: &mut Vec<u8>) -> Result<(), BodyError> {
    let ctx = "v3 digit delta";
    let n = reference.len();
    // `reference[..copied]` has its counterpart in `out` already.
    let (mut i, mut copied) = (0, 0);
    loop {
        while i < n && !is_digit(reference[i]) {
            i += 1;
        }
        if i == n {
            out.extend_from_slice(&reference[copied..]);
            return Ok(());
        }
        let Some((ri, ref_value)) = digit_run(reference, i) else {
            return Err((
                c.at,
                ErrorKind::InvalidValue("digit run too long to code"),
                ctx,
            ));
        };
        let code = varint(c, ctx)?;
        if code == 0 {
            // Delta 0 at the implicit width (the run's own, as its value needs no more): the
            // reference's digits themselves, left to be copied with the text after them.
            i = ri;
            continue;
        }
        out.extend_from_slice(&reference[copied..i]);
        let value = ref_value.wrapping_add(unzigzag(code >> 1));
        let natural = natural_width(value);
        if natural > MAX_DIGITS {
            return Err((c.at, ErrorKind::InvalidValue("digit run out of range"), ctx));
        }
        let width = if code & 1 == 1 {
            let at = c.at;
            let w = varint(c, ctx)?;
            if w < natural as u64 || w > MAX_DIGITS as u64 {
                return Err((at, ErrorKind::InvalidValue("bad digit run width"), ctx));
            }
            w as usize
        } else {
            (ri - i).max(natural)
        };
        let mut buf = [b'0'; MAX_DIGITS];
        let mut v = value;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
        (i, copied) = (ri, ri);
    }
}

fn truncated(at: usize, ctx: &'static str) -> BodyError {
    (at, ErrorKind::Truncated { needed: 1 }, ctx)
}

#[inline(always)]
fn varint(c: &mut Cur<'_>, ctx: &'static str) -> Result<u64, BodyError> {
    match c.varint() {
        None => Err(truncated(c.at, ctx)),
        Some(Ok(v)) => Ok(v),
        Some(Err(at)) => Err((
            at,
            ErrorKind::InvalidValue("varint longer than 10 bytes"),
            ctx,
        )),
    }
}

fn byte(c: &mut Cur<'_>, ctx: &'static str) -> Result<u8, BodyError> {
    c.u8().ok_or_else(|| truncated(c.at, ctx))
}

fn bytes<'a>(c: &mut Cur<'a>, n: usize, ctx: &'static str) -> Result<&'a [u8], BodyError> {
    let b: &'a [u8] = c.b;
    let v =
        c.at.checked_add(n)
            .and_then(|end| b.get(c.at..end))
            .ok_or((c.at, ErrorKind::BadLength(n as i64), ctx))?;
    c.at += n;
    Ok(v)
}

impl Rows {
    /// The reference of (`relid`, `part`): the relation's own while it has or can get one.
    fn reference(&mut self, relid: u32, part: u8) -> &mut Reference {
        let found = self.refs.iter().rposition(|r| r.0 == relid);
        let at = match found {
            Some(i) => i,
            None if self.refs.len() < MAX_RELATIONS => {
                self.refs.push((relid, Default::default()));
                self.refs.len() - 1
            }
            None => {
                self.scratch.clear();
                return &mut self.scratch;
            }
        };
        // Move it to the end, where the next lookup starts.
        let last = self.refs.len() - 1;
        self.refs.swap(at, last);
        &mut self.refs[last].1[side(part)]
    }

    /// Encoder side: notes a Stream Start or Stop among the 'w' messages that are not rows.
    pub fn observe(&mut self, payload: &[u8]) {
        match (payload.first(), payload.len()) {
            (Some(b'S'), 6) => self.in_stream = true,
            (Some(b'E'), 1) => self.in_stream = false,
            _ => {}
        }
    }

    /// Appends the row record body of `payload` and returns true, if it is a row message.
    /// `kind` is the frame kind byte ('w' or 'b').
    pub fn encode(&mut self, kind: u8, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !matches!(payload.first(), Some(b'I' | b'U' | b'D')) {
            return false;
        }
        let hint = self.in_stream && kind == b'w';
        let Some((has_xid, layout)) = [hint, !hint]
            .into_iter()
            .find_map(|x| row_layout(payload, x).map(|l| (x, l)))
        else {
            return false;
        };
        let head = &payload[..layout.head_len];
        let relid = u32::from_be_bytes(head[head.len() - 4..].try_into().expect("4 bytes"));
        out.extend_from_slice(&[kind, u8::from(has_xid)]);
        out.extend_from_slice(head);
        for &(part, at) in &layout.parts[..layout.count] {
            out.push(part);
            let ncols = u16::from_be_bytes([payload[at], payload[at + 1]]);
            put_varint(out, u64::from(ncols));
            let (data, mut at) = (at + 2, at + 2);
            let mut cols = std::mem::take(&mut self.cols);
            cols.clear();
            let reference = self.reference(relid, part);
            for i in 0..usize::from(ncols) {
                cols.push(ColAt {
                    start: (at - data) as u32,
                    kind: payload[at],
                });
                let col = read_col(payload, &mut at).expect("row_layout checked it");
                let prev = reference.get(i);
                if prev.is_some_and(|p| p.kind == col.kind && p.bytes == col.bytes) {
                    out.push(OP_SAME);
                } else if !matches!(prev, Some(p) if col.kind == b't' && p.kind == b't'
                    && encode_digits(p.bytes, col.bytes, out))
                {
                    out.push(col.kind);
                    if matches!(col.kind, b't' | b'b') {
                        put_varint(out, col.bytes.len() as u64);
                        out.extend_from_slice(col.bytes);
                    }
                }
            }
            reference.remember(&payload[data..at], &cols);
            self.cols = cols;
        }
        true
    }

    /// Rebuilds the pgoutput payload of a row record body into `out` (cleared first; reused
    /// across records, so a stream of rows allocates nothing), and returns its frame kind byte.
    pub fn decode(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<u8, BodyError> {
        let ctx = "v3 row record";
        let mut c = Cur { b: body, at: 0 };
        let kind = byte(&mut c, ctx)?;
        if kind != b'w' && kind != b'b' {
            return Err((
                0,
                ErrorKind::InvalidValue("row record of a frame kind other than 'w' or 'b'"),
                ctx,
            ));
        }
        let flags = byte(&mut c, ctx)?;
        if flags > 1 {
            return Err((1, ErrorKind::InvalidValue("unknown row record flags"), ctx));
        }
        let msg = byte(&mut c, ctx)?;
        if !matches!(msg, b'I' | b'U' | b'D') {
            return Err((2, ErrorKind::UnknownMessageTag(char::from(msg)), ctx));
        }
        let head = bytes(&mut c, if flags == 1 { 8 } else { 4 }, ctx)?;
        let relid = u32::from_be_bytes(head[head.len() - 4..].try_into().expect("4 bytes"));
        out.clear();
        out.push(msg);
        out.extend_from_slice(head);
        let mut first_part = None;
        loop {
            let at = c.at;
            let part = byte(&mut c, ctx)?;
            let allowed = match (msg, first_part) {
                (b'I', None) => part == b'N',
                (b'D', None) => part == b'K' || part == b'O',
                (b'U', None) => matches!(part, b'N' | b'K' | b'O'),
                (b'U', Some(_)) => part == b'N',
                _ => false,
            };
            if !allowed {
                return Err((
                    at,
                    ErrorKind::Unexpected {
                        found: part,
                        expected: "a tuple part allowed here ('N', 'K' or 'O')",
                    },
                    ctx,
                ));
            }
            out.push(part);
            let mut cols = std::mem::take(&mut self.cols);
            let decoded = decode_tuple(self.reference(relid, part), &mut cols, &mut c, out);
            self.cols = cols;
            decoded?;
            if part == b'N' || msg == b'D' {
                break;
            }
            first_part = Some(part);
        }
        if c.at != body.len() {
            return Err((c.at, ErrorKind::TrailingBytes(body.len() - c.at), ctx));
        }
        Ok(kind)
    }
}

/// Decodes one tuple's ops into pgoutput TupleData, appended to `out`. `cols` is scratch
/// space: where each column starts, noted as it is written, so that the tuple becomes the
/// next reference without being parsed again.
fn decode_tuple(
    reference: &mut Reference,
    cols: &mut Vec<ColAt>,
    c: &mut Cur<'_>,
    out: &mut Vec<u8>,
) -> Result<(), BodyError> {
    let ctx = "v3 tuple";
    let at = c.at;
    let ncols = varint(c, ctx)?;
    let Ok(ncols) = u16::try_from(ncols) else {
        return Err((at, ErrorKind::BadLength(ncols as i64), ctx));
    };
    out.extend_from_slice(&ncols.to_be_bytes());
    let data = out.len();
    cols.clear();
    // The first of the unchanged columns not yet copied: a run of them is copied at once.
    let mut same_from = None;
    for i in 0..usize::from(ncols) {
        let at = c.at;
        let op = byte(c, ctx)?;
        let missing = |what| (at, ErrorKind::InvalidValue(what), ctx);
        if op == OP_SAME {
            if i >= reference.len() {
                return Err(missing("no reference column to repeat"));
            }
            same_from.get_or_insert(i);
            continue;
        }
        if let Some(from) = same_from.take() {
            reference.copy_span(from, i, data, out, cols);
        }
        let start = out.len();
        match op {
            b'n' | b'u' => out.push(op),
            b't' | b'b' => {
                let n = varint(c, ctx)?;
                let v = bytes(c, usize::try_from(n).unwrap_or(usize::MAX), ctx)?;
                ColRef { kind: op, bytes: v }.write_pgoutput(out);
            }
            OP_DIGITS => {
                let prev = reference.get(i).filter(|p| p.kind == b't');
                let prev = prev.ok_or_else(|| missing("digit delta without a reference text"))?;
                out.push(b't');
                out.extend_from_slice(&[0; 4]);
                decode_digits(prev.bytes, c, out)?;
                let len = (out.len() - start - 5) as u32;
                out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
            }
            other => return Err((at, ErrorKind::UnknownColumnKind(char::from(other)), ctx)),
        }
        cols.push(ColAt {
            start: (start - data) as u32,
            kind: out[start],
        });
    }
    if let Some(from) = same_from {
        reference.copy_span(from, usize::from(ncols), data, out, cols);
    }
    reference.remember(&out[data..], cols);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text_tuple(cols: &[&str]) -> Vec<u8> {
        let mut t = (cols.len() as u16).to_be_bytes().to_vec();
        for c in cols {
            if *c == "NULL" {
                t.push(b'n');
            } else {
                ColRef {
                    kind: b't',
                    bytes: c.as_bytes(),
                }
                .write_pgoutput(&mut t);
            }
        }
        t
    }

    fn insert(relid: u32, cols: &[&str]) -> Vec<u8> {
        let mut p = vec![b'I'];
        p.extend_from_slice(&relid.to_be_bytes());
        p.push(b'N');
        p.extend(text_tuple(cols));
        p
    }

    fn round_trip(msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let (mut enc, mut dec) = (Rows::default(), Rows::default());
        let mut bodies = Vec::new();
        for m in msgs {
            let mut body = Vec::new();
            assert!(enc.encode(b'w', m, &mut body), "not coded: {m:?}");
            let mut back = Vec::new();
            let kind = dec.decode(&body, &mut back).unwrap();
            assert_eq!((kind, &back), (b'w', m));
            bodies.push(body);
        }
        bodies
    }

    #[test]
    fn successive_rows_code_to_the_same_bytes() {
        let rows: Vec<_> = (1000..1010u64)
            .map(|g| {
                insert(
                    16384,
                    &[
                        &g.to_string(),
                        &format!("name {g}"),
                        &format!("user{g}@example.com"),
                        &format!("2024-01-01 00:16:{:02}+00", g % 60),
                        "t",
                    ],
                )
            })
            .collect();
        let bodies = round_trip(&rows);
        // After the first row, every row is "+1, +1, +1, seconds +1, same".
        assert_eq!(bodies[2], bodies[3]);
        assert!(bodies[3].len() < 30, "{:?}", bodies[3]);
    }

    #[test]
    fn widths_signs_and_skeleton_changes_round_trip() {
        let values = [
            "9",
            "10",
            "09",
            "0",
            "-5",
            "3",
            "999",
            "1000",
            "0999",
            "1.50",
            "1.75",
            "2.00",
            "2",
            "",
            "abc",
            "abc1",
            "abc12345678901234567890",
            "abc2",
            "x9999999999999999999",
        ];
        let msgs: Vec<_> = values.iter().map(|v| insert(1, &[v, "NULL"])).collect();
        round_trip(&msgs);
    }

    #[test]
    fn updates_and_deletes_use_their_own_reference() {
        let mut u = vec![b'U'];
        u.extend_from_slice(&7u32.to_be_bytes());
        u.push(b'K');
        u.extend(text_tuple(&["41", "NULL"]));
        u.push(b'N');
        u.extend(text_tuple(&["42", "b"]));
        let mut d = vec![b'D'];
        d.extend_from_slice(&7u32.to_be_bytes());
        d.push(b'K');
        d.extend(text_tuple(&["43", "NULL"]));
        // A streamed insert: with an xid after the tag.
        let mut s = vec![b'I'];
        s.extend_from_slice(&900u32.to_be_bytes());
        s.extend_from_slice(&insert(7, &["44", "c"])[1..]);
        round_trip(&[u, d, insert(7, &["1", "a"]), s.clone()]);
        // Also when the encoder knows it is inside a streamed block, and for a message that
        // parses both with and without an xid.
        let (mut enc, mut dec) = (Rows::default(), Rows::default());
        enc.observe(&[b'S', 0, 0, 3, 132, 1]);
        let mut body = Vec::new();
        assert!(enc.encode(b'w', &s, &mut body));
        assert_eq!(body[1], 1, "coded with its xid");
        let mut back = Vec::new();
        dec.decode(&body, &mut back).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn what_is_not_a_row_message_is_left_alone() {
        let mut enc = Rows::default();
        let mut out = Vec::new();
        assert!(!enc.encode(b'w', b"Bxxxxxxxx", &mut out));
        assert!(!enc.encode(b'w', &insert(1, &["1"])[..8], &mut out));
        let mut trailing = insert(1, &["1"]);
        trailing.push(0);
        assert!(!enc.encode(b'w', &trailing, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn big_values_are_not_remembered() {
        let big = "7".repeat(MAX_REMEMBERED);
        let bodies = round_trip(&[insert(1, &[&big, "1"]), insert(1, &[&big, "2"])]);
        assert!(
            bodies[1].len() > MAX_REMEMBERED,
            "the big value went literally"
        );
    }

    fn column() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            "[0-9]{0,22}".prop_map(Some),
            "[a-c0-9 .:-]{0,12}".prop_map(Some),
        ]
    }

    proptest! {
        /// Any sequence of rows comes back byte for byte.
        #[test]
        fn rows_round_trip(rows in proptest::collection::vec(
            (1u32..4, proptest::collection::vec(column(), 0..6)), 1..30)) {
            let msgs: Vec<_> = rows.iter().map(|(rel, cols)| {
                let cols: Vec<&str> = cols.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                insert(*rel, &cols)
            }).collect();
            round_trip(&msgs);
        }

        /// Garbage bodies are errors, never panics.
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..80)) {
            let (mut enc, mut dec) = (Rows::default(), Rows::default());
            let mut first = Vec::new();
            prop_assert!(enc.encode(b'w', &insert(1, &["12", "ab3"]), &mut first));
            let mut out = Vec::new();
            dec.decode(&first, &mut out).unwrap();
            let _ = dec.decode(&body, &mut out);
        }
    }
}
