//! walcast frame format v2: the v1 frames re-encoded for compression, for the wire only.
//!
//! v1 spends 17 bytes of fixed-width envelope on every message (length, CRC-32C, kind, LSN),
//! and its BEGIN/COMMIT carry absolute LSNs and timestamps. Under zstd those are the bytes
//! that do not compress: the CRC is pure entropy, and every LSN differs from the last in its
//! low bytes. v2 keeps every v1 frame exactly (kind, LSN and payload are reconstructed byte for
//! byte) but writes:
//!
//! ```text
//! header: "WALCAST\0" | u16 version = 2 | u16 flags = 0
//! record: tag = a v1 frame kind ('w', 'p', 'k', 'x', 'e', …)
//!             varint lsn_code | varint len | payload
//!       | tag = 'B' (a 'w' frame holding a 21-byte pgoutput Begin)
//!             varint lsn_code | zz(final_lsn − prev_end) | zz(commit_time − prev_time) | zz(xid − prev_xid)
//!       | tag = 'C' (a 'w' frame holding a 26-byte pgoutput Commit)
//!             varint lsn_code | u8 flags | zz(commit_lsn − begin_final) | zz(end_lsn − commit_lsn)
//!             | zz(commit_time − begin_time)
//! lsn_code = 0 for LSN 0, else zz(lsn − prev_lsn) + 1
//! ```
//!
//! Varints are unsigned LEB128 (at most 10 bytes); `zz` is zigzag of the wrapping i64
//! difference, so every u64 round-trips. The state (`prev_lsn`, …) starts at 0 and is updated
//! the same way on both sides: see [`State`]. There is no per-record checksum: v2 is a wire
//! format, and the transport (TCP or QUIC checksums, TLS) protects it. The log on disk stays v1.
//! The normative description is `docs/frames.md`, "Version 2".

use super::rows::Rows;
use super::{encode_frame, encode_header, FrameKind, FrameReader, MAGIC, MAX_PAYLOAD_LEN};
use crate::{DecodeError, ErrorKind, Lsn, Result};

/// The version number in a v2 stream's header.
pub const VERSION_2: u16 = 2;
/// Version 3: version 2 plus row records (`super::rows`), for 'w' and 'b' row messages.
pub const VERSION_3: u16 = 3;

/// Record tag of a row record (version 3 only).
const TAG_ROW: u8 = b'R';

/// Record tag of a delta-coded Begin.
const TAG_BEGIN: u8 = b'B';
/// Record tag of a delta-coded Commit.
const TAG_COMMIT: u8 = b'C';
const BEGIN_LEN: usize = 21;
const COMMIT_LEN: usize = 26;

/// What both sides remember between records.
#[derive(Debug, Default, Clone, Copy)]
struct State {
    prev_lsn: u64,
    prev_end: u64,
    prev_time: u64,
    prev_xid: u64,
    begin_final: u64,
    begin_time: u64,
}

pub(super) fn zigzag(d: u64) -> u64 {
    let v = d as i64;
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Appends the 12-byte v2 stream header.
pub fn encode_header_v2(out: &mut Vec<u8>) {
    encode_header_version(VERSION_2, out);
}

/// The version of a stream whose first 10 bytes are `head`, if it is 2 or 3 (a header that is
/// not walcast's, or version 1, is for the v1 reader to read or report).
pub fn compact_version(head: &[u8]) -> Option<u16> {
    let version = u16::from_be_bytes([*head.get(8)?, *head.get(9)?]);
    (head.starts_with(&MAGIC) && matches!(version, VERSION_2 | VERSION_3)).then_some(version)
}

/// Appends the 12-byte header of a version 2 or 3 stream.
pub fn encode_header_version(version: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Encodes frames as v2 (or v3) records. Pure; one per stream.
#[derive(Debug, Default)]
pub struct Encoder {
    st: State,
    /// Row coding state, in version 3.
    rows: Option<Box<Rows>>,
    body: Vec<u8>,
}

impl Encoder {
    /// A version 2 encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder for `version` 2 or 3.
    ///
    /// # Panics
    /// For another version.
    pub fn with_version(version: u16) -> Self {
        assert!(
            matches!(version, VERSION_2 | VERSION_3),
            "frame version {version}"
        );
        Encoder {
            rows: (version == VERSION_3).then(Box::default),
            ..Self::default()
        }
    }

    /// The version this encoder writes.
    pub fn version(&self) -> u16 {
        if self.rows.is_some() {
            VERSION_3
        } else {
            VERSION_2
        }
    }

    fn lsn_code(&mut self, lsn: u64) -> u64 {
        if lsn == 0 {
            0
        } else {
            let code = zigzag(lsn.wrapping_sub(self.st.prev_lsn)) + 1;
            self.st.prev_lsn = lsn;
            code
        }
    }

    /// Appends the record of one frame.
    ///
    /// # Panics
    /// If `payload` is longer than [`MAX_PAYLOAD_LEN`], as [`encode_frame`] does.
    pub fn encode(&mut self, kind: FrameKind, lsn: Lsn, payload: &[u8], out: &mut Vec<u8>) {
        assert!(payload.len() <= MAX_PAYLOAD_LEN, "frame payload too large");
        let wal = kind == FrameKind::Wal;
        match payload.first() {
            Some(&b'B') if wal && payload.len() == BEGIN_LEN => {
                let fin = be_u64(&payload[1..]);
                let time = be_u64(&payload[9..]);
                let xid = u64::from(u32::from_be_bytes([
                    payload[17],
                    payload[18],
                    payload[19],
                    payload[20],
                ]));
                out.push(TAG_BEGIN);
                let code = self.lsn_code(lsn.0);
                put_varint(out, code);
                put_varint(out, zigzag(fin.wrapping_sub(self.st.prev_end)));
                put_varint(out, zigzag(time.wrapping_sub(self.st.prev_time)));
                put_varint(out, zigzag(xid.wrapping_sub(self.st.prev_xid)));
                self.st.begin_final = fin;
                self.st.begin_time = time;
                self.st.prev_time = time;
                self.st.prev_xid = xid;
            }
            Some(&b'C') if wal && payload.len() == COMMIT_LEN => {
                let commit = be_u64(&payload[2..]);
                let end = be_u64(&payload[10..]);
                let time = be_u64(&payload[18..]);
                out.push(TAG_COMMIT);
                let code = self.lsn_code(lsn.0);
                put_varint(out, code);
                out.push(payload[1]);
                put_varint(out, zigzag(commit.wrapping_sub(self.st.begin_final)));
                put_varint(out, zigzag(end.wrapping_sub(commit)));
                put_varint(out, zigzag(time.wrapping_sub(self.st.begin_time)));
                self.st.prev_end = end;
            }
            Some(b'I' | b'U' | b'D') if self.encode_row(kind, payload) => {
                out.push(TAG_ROW);
                let code = self.lsn_code(lsn.0);
                put_varint(out, code);
                put_varint(out, self.body.len() as u64);
                out.extend_from_slice(&self.body);
            }
            _ => {
                if wal {
                    // Stream Start/Stop tell the row coder whether rows carry an xid.
                    if let Some(rows) = &mut self.rows {
                        rows.observe(payload);
                    }
                }
                out.push(kind.to_byte());
                let code = self.lsn_code(lsn.0);
                put_varint(out, code);
                put_varint(out, payload.len() as u64);
                out.extend_from_slice(payload);
            }
        }
    }
}

impl Encoder {
    /// Codes a row message into `self.body` (version 3, 'w' and 'b' frames only).
    fn encode_row(&mut self, kind: FrameKind, payload: &[u8]) -> bool {
        let Some(rows) = &mut self.rows else {
            return false;
        };
        if !matches!(kind, FrameKind::Wal | FrameKind::Bootstrap) {
            return false;
        }
        self.body.clear();
        rows.encode(kind.to_byte(), payload, &mut self.body)
    }
}

/// Turns a v1 byte stream (as the relay's sessions produce it, in chunks cut anywhere) into a
/// v2 byte stream. Unknown v1 frame kinds are dropped, as any v1 reader would skip them.
#[derive(Debug, Default)]
pub struct Transcoder {
    reader: FrameReader,
    enc: Encoder,
    header_sent: bool,
}

impl Transcoder {
    /// A transcoder to version 2.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transcoder to `version` 2 or 3 ([`Encoder::with_version`]).
    pub fn with_version(version: u16) -> Self {
        Transcoder {
            enc: Encoder::with_version(version),
            ..Self::default()
        }
    }

    /// The v2 bytes for one more v1 chunk (the v2 header first).
    pub fn push(&mut self, v1_chunk: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(v1_chunk.len());
        if !self.header_sent {
            encode_header_version(self.enc.version(), &mut out);
            self.header_sent = true;
        }
        self.reader.push(v1_chunk);
        while let Some(f) = self.reader.next_frame()? {
            self.enc.encode(f.kind, f.lsn, f.payload, &mut out);
        }
        Ok(out)
    }
}

/// One frame decoded from a v2 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub kind: FrameKind,
    pub lsn: Lsn,
    pub payload: Vec<u8>,
}

/// Incremental v2 and v3 reader (the header says which): push bytes as they arrive, pull frames
/// out. `Ok(None)`: more bytes needed. Error offsets count from the start of the stream; after
/// an error it stays failed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    base: u64,
    header_done: bool,
    failed: bool,
    st: State,
    /// Row state, once a version 3 header was read.
    rows: Option<Box<Rows>>,
}

/// A bounded cursor over one record: `None` = the record is not complete yet.
pub(super) struct Cur<'a> {
    pub(super) b: &'a [u8],
    pub(super) at: usize,
}

impl Cur<'_> {
    pub(super) fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    /// `Some(Err)` for an over-long varint, which no encoder writes.
    #[inline]
    pub(super) fn varint(&mut self) -> Option<std::result::Result<u64, usize>> {
        // Most varints of a stream (lengths, column counts, small deltas) are one byte.
        match self.b.get(self.at) {
            Some(&b) if b < 0x80 => {
                self.at += 1;
                Some(Ok(u64::from(b)))
            }
            _ => self.varint_long(),
        }
    }

    fn varint_long(&mut self) -> Option<std::result::Result<u64, usize>> {
        let start = self.at;
        let mut v = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(Ok(v));
            }
        }
        Some(Err(start))
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream's version (2 or 3), once its header was read.
    pub fn version(&self) -> Option<u16> {
        self.header_done.then_some(if self.rows.is_some() {
            VERSION_3
        } else {
            VERSION_2
        })
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    fn offset(&self, at: usize) -> usize {
        usize::try_from(self.base + at as u64).unwrap_or(usize::MAX)
    }

    fn fail(&mut self, at: usize, kind: ErrorKind, context: &'static str) -> DecodeError {
        self.failed = true;
        DecodeError::new(self.offset(at), kind, context)
    }

    fn decode_lsn(&mut self, code: u64) -> u64 {
        if code == 0 {
            0
        } else {
            let lsn = self.st.prev_lsn.wrapping_add(unzigzag(code - 1));
            self.st.prev_lsn = lsn;
            lsn
        }
    }

    /// The next frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<OwnedFrame>> {
        let mut payload = Vec::new();
        Ok(self
            .next_frame_into(&mut payload)?
            .map(|(kind, lsn)| OwnedFrame { kind, lsn, payload }))
    }

    /// Like [`Decoder::next_frame`], but leaves the payload in `payload` (cleared first), so a
    /// reader that reuses one buffer allocates nothing per frame.
    pub fn next_frame_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<(FrameKind, Lsn)>> {
        if self.failed {
            return Err(DecodeError::new(
                self.offset(self.pos),
                ErrorKind::OutOfPlace("stream already failed"),
                "v2 record",
            ));
        }
        if !self.header_done {
            let rest = &self.buf[self.pos..];
            let n = rest.len().min(MAGIC.len());
            if rest[..n] != MAGIC[..n] {
                let at = self.pos;
                return Err(self.fail(
                    at,
                    ErrorKind::InvalidValue("no walcast magic"),
                    "stream header",
                ));
            }
            if rest.len() < 12 {
                return Ok(None);
            }
            let v = u16::from_be_bytes([rest[8], rest[9]]);
            if v != VERSION_2 && v != VERSION_3 {
                let at = self.pos + 8;
                return Err(self.fail(at, ErrorKind::UnsupportedVersion(v), "stream header"));
            }
            self.rows = (v == VERSION_3).then(Box::default);
            self.pos += 12;
            self.header_done = true;
        }
        let start = self.pos;
        let mut c = Cur {
            b: &self.buf[start..],
            at: 0,
        };
        let Some(tag) = c.u8() else { return Ok(None) };
        macro_rules! varint {
            () => {
                match c.varint() {
                    None => return Ok(None),
                    Some(Ok(v)) => v,
                    Some(Err(at)) => {
                        return Err(self.fail(
                            start + at,
                            ErrorKind::InvalidValue("varint longer than 10 bytes"),
                            "v2 record",
                        ))
                    }
                }
            };
        }
        // `varint len | len bytes`. The length is bounded above, and nothing is allocated
        // before all its bytes are in.
        macro_rules! sized {
            ($context:expr) => {{
                let len = varint!();
                if len > MAX_PAYLOAD_LEN as u64 {
                    return Err(self.fail(
                        start,
                        ErrorKind::BadLength(len.min(i64::MAX as u64) as i64),
                        $context,
                    ));
                }
                let len = len as usize;
                let Some(bytes) = c.b.get(c.at..c.at + len) else {
                    return Ok(None);
                };
                c.at += len;
                bytes
            }};
        }
        let lsn_code = varint!();
        let mut st = self.st;
        let frame = match tag {
            TAG_BEGIN => {
                let (d_fin, d_time, d_xid) = (varint!(), varint!(), varint!());
                let fin = st.prev_end.wrapping_add(unzigzag(d_fin));
                let time = st.prev_time.wrapping_add(unzigzag(d_time));
                let xid = st.prev_xid.wrapping_add(unzigzag(d_xid));
                let Ok(xid32) = u32::try_from(xid) else {
                    return Err(self.fail(
                        start,
                        ErrorKind::InvalidValue("xid beyond 32 bits"),
                        "v2 Begin",
                    ));
                };
                payload.clear();
                payload.push(b'B');
                payload.extend_from_slice(&fin.to_be_bytes());
                payload.extend_from_slice(&time.to_be_bytes());
                payload.extend_from_slice(&xid32.to_be_bytes());
                debug_assert_eq!(payload.len(), BEGIN_LEN);
                (st.begin_final, st.begin_time, st.prev_time, st.prev_xid) = (fin, time, time, xid);
                FrameKind::Wal
            }
            TAG_COMMIT => {
                let Some(flags) = c.u8() else { return Ok(None) };
                let (d_commit, d_end, d_time) = (varint!(), varint!(), varint!());
                let commit = st.begin_final.wrapping_add(unzigzag(d_commit));
                let end = commit.wrapping_add(unzigzag(d_end));
                let time = st.begin_time.wrapping_add(unzigzag(d_time));
                payload.clear();
                payload.extend_from_slice(&[b'C', flags]);
                payload.extend_from_slice(&commit.to_be_bytes());
                payload.extend_from_slice(&end.to_be_bytes());
                payload.extend_from_slice(&time.to_be_bytes());
                debug_assert_eq!(payload.len(), COMMIT_LEN);
                st.prev_end = end;
                FrameKind::Wal
            }
            TAG_ROW if self.rows.is_some() => {
                let body = sized!("v3 row record");
                let body_at = start + c.at - body.len();
                let rows = self.rows.as_mut().expect("checked above");
                match rows.decode(body, payload) {
                    Ok(kind) if payload.len() <= MAX_PAYLOAD_LEN => FrameKind::from_byte(kind),
                    Ok(_) => {
                        let len = payload.len() as i64;
                        return Err(self.fail(body_at, ErrorKind::BadLength(len), "v3 row record"));
                    }
                    Err((at, kind, context)) => return Err(self.fail(body_at + at, kind, context)),
                }
            }
            kind => {
                let bytes = sized!("v2 record");
                payload.clear();
                payload.extend_from_slice(bytes);
                FrameKind::from_byte(kind)
            }
        };
        let used = c.at;
        self.st = st;
        let lsn = Lsn(self.decode_lsn(lsn_code));
        self.pos = start + used;
        Ok(Some((frame, lsn)))
    }

    /// Appends, as v1 bytes (header first), every frame complete so far: lets a v1 reader
    /// consume a v2 stream unchanged.
    pub fn to_v1(&mut self, out: &mut Vec<u8>, header: &mut bool) -> Result<()> {
        if !*header {
            encode_header(out);
            *header = true;
        }
        let mut payload = Vec::new();
        while let Some((kind, lsn)) = self.next_frame_into(&mut payload)? {
            encode_frame(kind, lsn, &payload, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn begin(fin: u64, time: u64, xid: u32) -> Vec<u8> {
        let mut p = vec![b'B'];
        p.extend_from_slice(&fin.to_be_bytes());
        p.extend_from_slice(&time.to_be_bytes());
        p.extend_from_slice(&xid.to_be_bytes());
        p
    }

    fn commit(flags: u8, lsn: u64, end: u64, time: u64) -> Vec<u8> {
        let mut p = vec![b'C', flags];
        p.extend_from_slice(&lsn.to_be_bytes());
        p.extend_from_slice(&end.to_be_bytes());
        p.extend_from_slice(&time.to_be_bytes());
        p
    }

    /// A pgoutput row message: `tag` 'I', 'U' (new tuple only) or 'D' (key tuple).
    fn row(tag: u8, xid: Option<u32>, relid: u32, cols: &[Option<String>]) -> Vec<u8> {
        let mut p = vec![tag];
        if let Some(x) = xid {
            p.extend_from_slice(&x.to_be_bytes());
        }
        p.extend_from_slice(&relid.to_be_bytes());
        p.push(if tag == b'D' { b'K' } else { b'N' });
        p.extend_from_slice(&(cols.len() as u16).to_be_bytes());
        for c in cols {
            match c {
                None => p.push(b'n'),
                Some(v) => {
                    p.push(b't');
                    p.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    p.extend_from_slice(v.as_bytes());
                }
            }
        }
        p
    }

    fn row_strategy() -> impl Strategy<Value = Vec<u8>> {
        let col = prop_oneof![
            Just(None),
            "[0-9]{1,3}".prop_map(Some),
            "a[0-9] [0-9]{0,20}".prop_map(Some)
        ];
        (
            prop_oneof![Just(b'I'), Just(b'U'), Just(b'D')],
            proptest::option::of(any::<u32>()),
            1u32..3,
            proptest::collection::vec(col, 0..5),
        )
            .prop_map(|(tag, xid, rel, cols)| row(tag, xid, rel, &cols))
    }

    fn frame_strategy() -> impl Strategy<Value = (FrameKind, u64, Vec<u8>)> {
        let kind = prop_oneof![
            Just(FrameKind::Wal),
            Just(FrameKind::Wal),
            Just(FrameKind::Bootstrap),
            Just(FrameKind::Prelude),
            Just(FrameKind::Heartbeat),
            Just(FrameKind::Reset),
            Just(FrameKind::End),
        ];
        let lsn = prop_oneof![Just(0u64), any::<u64>(), 0x1_0000_0000u64..0x1_0001_0000];
        let payload = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            row_strategy(),
            row_strategy(),
            Just(vec![b'S', 0, 0, 0, 9, 1]),
            Just(vec![b'E']),
            (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(a, b, c)| begin(a, b, c)),
            (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(f, a, b, c)| commit(f, a, b, c)),
            // Almost a Begin/Commit: same tag, other length.
            proptest::collection::vec(any::<u8>(), 20..28).prop_map(|mut v| {
                v[0] = b'C';
                v
            }),
        ];
        (kind, lsn, payload)
    }

    proptest! {
        /// Every frame comes back exactly, whatever the chunking, in both versions.
        #[test]
        fn round_trip(
            frames in proptest::collection::vec(frame_strategy(), 0..40),
            cut in 1usize..50,
            version in VERSION_2..=VERSION_3,
        ) {
            let mut v1 = Vec::new();
            encode_header(&mut v1);
            for (k, l, p) in &frames {
                encode_frame(*k, Lsn(*l), p, &mut v1);
            }
            let mut t = Transcoder::with_version(version);
            let mut v2 = Vec::new();
            for piece in v1.chunks(cut) {
                v2.extend(t.push(piece).unwrap());
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for piece in v2.chunks(cut.max(2) - 1) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push((f.kind, f.lsn.0, f.payload));
                }
            }
            prop_assert_eq!(got, frames);
            // And back to v1 byte for byte.
            let mut d = Decoder::new();
            d.push(&v2);
            let (mut back, mut header) = (Vec::new(), false);
            d.to_v1(&mut back, &mut header).unwrap();
            prop_assert_eq!(back, v1);
        }

        /// Garbage never panics and never allocates beyond the input and one bounded payload.
        #[test]
        fn garbage_is_an_error_or_incomplete(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            version in VERSION_2..=VERSION_3,
        ) {
            let mut d = Decoder::new();
            let mut s = Vec::new();
            encode_header_version(version, &mut s);
            s.extend_from_slice(&bytes);
            d.push(&s);
            for _ in 0..300 {
                match d.next_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn a_transaction_shrinks_to_a_few_bytes_of_metadata() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        let base = 0x16_B374_D848u64;
        for i in 0..100u64 {
            let fin = base + i * 200 + 150;
            e.encode(
                FrameKind::Wal,
                Lsn(base + i * 200),
                &begin(fin, 7_000_000 + i * 100, 1000 + i as u32),
                &mut out,
            );
            e.encode(
                FrameKind::Wal,
                Lsn(fin),
                &commit(0, fin, fin + 48, 7_000_000 + i * 100),
                &mut out,
            );
        }
        // v1: 2 × (17 + ~23) bytes per transaction.
        assert!(out.len() < 100 * 24, "{} bytes", out.len());
    }

    #[test]
    fn version_3_codes_rows_and_version_2_leaves_them() {
        let mut v1 = Vec::new();
        encode_header(&mut v1);
        for i in 0..100u64 {
            let cols = [
                Some(i.to_string()),
                Some(format!("user{i}@example.com")),
                None,
            ];
            encode_frame(
                FrameKind::Wal,
                Lsn(1000 + i * 60),
                &row(b'I', None, 16384, &cols),
                &mut v1,
            );
        }
        let v2 = Transcoder::new().push(&v1).unwrap();
        let v3 = Transcoder::with_version(VERSION_3).push(&v1).unwrap();
        assert_eq!(v3[8..10], VERSION_3.to_be_bytes());
        // The first row goes literally; the others as deltas against it.
        assert_eq!(v3.windows(4).filter(|w| w == b"user").count(), 1);
        assert!(v2.windows(5).filter(|w| w == b"user9").count() >= 10);
        for stream in [v2, v3] {
            let mut d = Decoder::new();
            d.push(&stream);
            let (mut back, mut header) = (Vec::new(), false);
            d.to_v1(&mut back, &mut header).unwrap();
            assert_eq!(back, v1);
        }
    }

    #[test]
    fn rejects_other_versions_and_bad_lengths() {
        let mut d = Decoder::new();
        let mut v1 = Vec::new();
        encode_header(&mut v1);
        d.push(&v1);
        assert_eq!(
            d.next_frame().unwrap_err().kind,
            ErrorKind::UnsupportedVersion(1)
        );
        let mut s = Vec::new();
        encode_header_v2(&mut s);
        s.extend_from_slice(&[b'w', 0]);
        put_varint(&mut s, MAX_PAYLOAD_LEN as u64 + 1);
        let mut d = Decoder::new();
        d.push(&s);
        assert!(matches!(
            d.next_frame().unwrap_err().kind,
            ErrorKind::BadLength(_)
        ));
        let mut s = Vec::new();
        encode_header_v2(&mut s);
        s.push(b'w');
        s.extend_from_slice(&[0xff; 11]);
        let mut d = Decoder::new();
        d.push(&s);
        let e = d.next_frame().unwrap_err();
        assert_eq!(e.offset, 13);
    }
}
