//! walcast frame format v1: the one way bytes are framed on disk, over HTTP and over QUIC.
//!
//! A stream (and every log segment file) starts with a 12-byte header, then carries frames:
//!
//! ```text
//! header: "WALCAST\0" (8) | u16 version = 1 | u16 flags = 0
//! frame:  u32 body_len | u32 crc32c(body) | body
//! body:   u8 kind | u64 lsn | payload
//! ```
//!
//! All integers are big-endian. The normative description is `docs/frames.md`.
//! This module is pure: it never does IO, so it builds for WASM. Parsing is incremental:
//! `Ok(None)` means "feed more bytes and call again", exactly like postgres-protocol's
//! `Message::parse`, so a reader can resume after any cancellation.

mod any_version;
mod crc;
mod rows;
pub mod v2;

pub use any_version::AnyVersionReader;

use crate::{DecodeError, ErrorKind, Lsn, Result};
use crc::{crc32c, crc32c_append};

/// The 8 magic bytes that open every stream and segment file.
pub const MAGIC: [u8; 8] = *b"WALCAST\0";
/// The frame format version this module reads and writes.
pub const VERSION: u16 = 1;
/// Length of the stream/segment header.
pub const HEADER_LEN: usize = 12;
/// `u32 body_len | u32 crc32c`.
pub const FRAME_PREFIX_LEN: usize = 8;
/// `u8 kind | u64 lsn`, the part of every body before the payload.
pub const BODY_FIXED_LEN: usize = 9;
/// Largest body accepted (64 MiB). A larger length field is rejected before any allocation.
pub const MAX_BODY_LEN: usize = 64 << 20;
/// Largest payload that fits in a body.
pub const MAX_PAYLOAD_LEN: usize = MAX_BODY_LEN - BODY_FIXED_LEN;

/// What a frame carries. Tags are ASCII letters; see `docs/frames.md` for each one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// `'w'`: one pgoutput message exactly as PostgreSQL sent it; lsn = XLogData start LSN.
    Wal,
    /// `'p'`: schema prelude: a pgoutput Relation or Type message replayed by the relay so a
    /// client starting mid-stream knows every relation. Apply it like a `'w'` R/Y message.
    Prelude,
    /// `'k'`: heartbeat; empty payload; lsn = position up to which the stream is complete.
    Heartbeat,
    /// `'x'`: PostgreSQL started a new walsender session: discard in-flight streamed transactions.
    Reset,
    /// `'e'`: end of stream; payload is UTF-8 JSON `{"code": "...", "message": "..."}`.
    End,
    /// `'m'`: log segment metadata; only on disk, never sent to clients.
    SegmentMeta,
    /// `'b'`: one bootstrap row: a pgoutput Insert outside any transaction; lsn = the image's
    /// consistent point (`docs/bootstrap.md`). Apply it like a `'w'` Insert.
    Bootstrap,
    /// A kind this version does not know. Readers must skip it (forward compatibility).
    Unknown(u8),
}

impl FrameKind {
    pub fn from_byte(b: u8) -> FrameKind {
        match b {
            b'w' => FrameKind::Wal,
            b'p' => FrameKind::Prelude,
            b'k' => FrameKind::Heartbeat,
            b'x' => FrameKind::Reset,
            b'e' => FrameKind::End,
            b'm' => FrameKind::SegmentMeta,
            b'b' => FrameKind::Bootstrap,
            other => FrameKind::Unknown(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            FrameKind::Wal => b'w',
            FrameKind::Prelude => b'p',
            FrameKind::Heartbeat => b'k',
            FrameKind::Reset => b'x',
            FrameKind::End => b'e',
            FrameKind::SegmentMeta => b'm',
            FrameKind::Bootstrap => b'b',
            FrameKind::Unknown(b) => b,
        }
    }
}

/// One parsed frame, borrowing its payload from the input buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: FrameKind,
    pub lsn: Lsn,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes this frame takes when encoded (prefix + body).
    pub fn encoded_len(&self) -> usize {
        FRAME_PREFIX_LEN + BODY_FIXED_LEN + self.payload.len()
    }
}

/// Appends the 12-byte stream/segment header (version 1, flags 0) to `out`.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Parses the stream/segment header. `Ok(None)`: fewer than 12 bytes so far.
/// Returns the version and the number of bytes consumed (always [`HEADER_LEN`]).
pub fn parse_header(buf: &[u8]) -> Result<Option<(u16, usize)>> {
    let n = buf.len().min(MAGIC.len());
    if buf[..n] != MAGIC[..n] {
        let at = buf
            .iter()
            .zip(MAGIC.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(DecodeError::new(
            at,
            ErrorKind::Unexpected {
                found: buf[at],
                expected: "walcast magic \"WALCAST\\0\"",
            },
            "stream header",
        ));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let version = u16::from_be_bytes([buf[8], buf[9]]);
    if version != VERSION {
        return Err(DecodeError::new(
            8,
            ErrorKind::UnsupportedVersion(version),
            "stream header",
        ));
    }
    // Flags are reserved: a v1 reader ignores them, so a v1.x writer may set advisory bits.
    Ok(Some((version, HEADER_LEN)))
}

/// Appends one frame to `out`.
///
/// # Panics
/// If `payload` is longer than [`MAX_PAYLOAD_LEN`]: that is a bug in the caller (the relay never
/// produces such payloads; PostgreSQL's own messages are limited to 1 GB but pgoutput messages
/// larger than 64 MiB are rejected by the source before reaching here).
pub fn encode_frame(kind: FrameKind, lsn: Lsn, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "frame payload of {} bytes exceeds the maximum",
        payload.len()
    );
    let body_len = BODY_FIXED_LEN + payload.len();
    let mut crc = crc32c(&[kind.to_byte()]);
    crc = crc32c_append(crc, &lsn.0.to_be_bytes());
    crc = crc32c_append(crc, payload);
    out.reserve(FRAME_PREFIX_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.push(kind.to_byte());
    out.extend_from_slice(&lsn.0.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads just the frame prefix: `Ok(None)` if fewer than 8 bytes, else the total encoded length
/// of the frame (prefix + body) after validating the length field. Lets a file reader know how
/// many bytes to fetch before calling [`parse_frame`].
pub fn peek_frame_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < FRAME_PREFIX_LEN {
        return Ok(None);
    }
    let body_len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Err(DecodeError::new(
            0,
            ErrorKind::BadLength(body_len as i64),
            "frame length",
        ));
    }
    Ok(Some(FRAME_PREFIX_LEN + body_len))
}

/// Parses one frame from the start of `buf`.
///
/// `Ok(None)`: `buf` holds only part of a frame; call again with more bytes.
/// `Ok(Some((frame, consumed)))`: one frame, and how many bytes of `buf` it used.
/// A body length outside `9..=64 MiB` is [`ErrorKind::BadLength`]; a checksum mismatch is
/// [`ErrorKind::BadChecksum`] at offset 4 (the checksum field).
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>> {
    let total = match peek_frame_len(buf)? {
        Some(total) => total,
        None => return Ok(None),
    };
    if buf.len() < total {
        return Ok(None);
    }
    let stored_crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[FRAME_PREFIX_LEN..total];
    if crc32c(body) != stored_crc {
        return Err(DecodeError::new(4, ErrorKind::BadChecksum, "frame"));
    }
    let kind = FrameKind::from_byte(body[0]);
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&body[1..9]);
    Ok(Some((
        Frame {
            kind,
            lsn: Lsn(u64::from_be_bytes(lsn)),
            payload: &body[BODY_FIXED_LEN..],
        },
        total,
    )))
}

/// Incremental reader for a streaming client: push chunks as they arrive, pull frames out.
///
/// It checks the header first, skips frames of unknown kinds, and keeps at most one partial
/// frame (≤ 64 MiB + 8 bytes) plus the last pushed chunk buffered. Error offsets are counted
/// from the start of the stream.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    version: Option<u16>,
    failed: bool,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        // Compact lazily: drop consumed bytes only when they dominate the buffer, so a push is
        // amortised O(chunk).
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The stream's format version, once the header has been read.
    pub fn version(&self) -> Option<u16> {
        self.version
    }

    /// Bytes received but not yet returned as frames (a partial frame at most, once drained).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame of a known kind, `Ok(None)` if more bytes are needed.
    /// After an error the reader stays failed: the stream cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        if self.failed {
            return Err(DecodeError::new(
                self.offset_usize(),
                ErrorKind::OutOfPlace("stream already failed"),
                "frame",
            ));
        }
        if self.version.is_none() {
            match parse_header(&self.buf[self.pos..]) {
                Ok(Some((v, used))) => {
                    self.version = Some(v);
                    self.pos += used;
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            }
        }
        loop {
            let (kind, used) = match parse_frame(&self.buf[self.pos..]) {
                Ok(Some((frame, used))) => (frame.kind, used),
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            };
            let start = self.pos;
            self.pos += used;
            if let FrameKind::Unknown(_) = kind {
                continue;
            }
            // Parse again to borrow with the right lifetime; the checksum was already verified,
            // so slice directly.
            let body = &self.buf[start + FRAME_PREFIX_LEN..start + used];
            let mut lsn = [0u8; 8];
            lsn.copy_from_slice(&body[1..9]);
            return Ok(Some(Frame {
                kind,
                lsn: Lsn(u64::from_be_bytes(lsn)),
                payload: &body[BODY_FIXED_LEN..],
            }));
        }
    }

    fn offset_usize(&self) -> usize {
        usize::try_from(self.base + self.pos as u64).unwrap_or(usize::MAX)
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = true;
        e.shifted(self.offset_usize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_bytes(kind: FrameKind, lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(kind, Lsn(lsn), payload, &mut out);
        out
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let mut h = Vec::new();
        encode_header(&mut h);
        assert_eq!(h.len(), HEADER_LEN);
        assert_eq!(parse_header(&h).unwrap(), Some((1, HEADER_LEN)));
        for n in 0..HEADER_LEN {
            assert_eq!(parse_header(&h[..n]).unwrap(), None, "prefix {n}");
        }
        let mut bad = h.clone();
        bad[3] = b'x';
        assert_eq!(parse_header(&bad).unwrap_err().offset, 3);
        let mut v2 = h.clone();
        v2[9] = 2;
        assert_eq!(
            parse_header(&v2).unwrap_err().kind,
            ErrorKind::UnsupportedVersion(2)
        );
        assert!(parse_header(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn known_layout() {
        let b = frame_bytes(FrameKind::Heartbeat, 0x0102_0304_0506_0708, b"");
        assert_eq!(&b[0..4], &9u32.to_be_bytes());
        assert_eq!(b[8], b'k');
        assert_eq!(&b[9..17], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[4..8], &crc32c::crc32c(&b[8..]).to_be_bytes());
    }

    #[test]
    fn bad_checksum_and_lengths() {
        let mut b = frame_bytes(FrameKind::Wal, 7, b"Bhello");
        let last = b.len() - 1;
        b[last] ^= 1;
        let e = parse_frame(&b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadChecksum);
        assert_eq!(e.offset, 4);

        let mut huge = Vec::new();
        huge.extend_from_slice(&((MAX_BODY_LEN + 1) as u32).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(matches!(
            parse_frame(&huge).unwrap_err().kind,
            ErrorKind::BadLength(_)
        ));
        let mut short = Vec::new();
        short.extend_from_slice(&8u32.to_be_bytes());
        short.extend_from_slice(&[0; 4]);
        assert!(matches!(
            parse_frame(&short).unwrap_err().kind,
            ErrorKind::BadLength(8)
        ));
    }

    #[test]
    fn reader_skips_unknown_kinds_and_reports_stream_offsets() {
        let mut s = Vec::new();
        encode_header(&mut s);
        s.extend(frame_bytes(FrameKind::Unknown(b'z'), 1, b"future"));
        s.extend(frame_bytes(FrameKind::Wal, 2, b"C...."));
        let good_len = s.len();
        s.extend(frame_bytes(FrameKind::Wal, 3, b"broken"));
        let last = s.len() - 1;
        s[last] ^= 0xff;

        let mut r = FrameReader::new();
        // One byte at a time: every step is either a frame or "need more".
        let mut got = Vec::new();
        let mut err = None;
        for b in &s {
            r.push(std::slice::from_ref(b));
            match r.next_frame() {
                Ok(Some(f)) => got.push((f.kind, f.lsn, f.payload.to_vec())),
                Ok(None) => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(r.version(), Some(1));
        assert_eq!(got, vec![(FrameKind::Wal, Lsn(2), b"C....".to_vec())]);
        let e = err.expect("corrupt frame must be reported");
        assert_eq!(e.kind, ErrorKind::BadChecksum);
        assert_eq!(e.offset, good_len + 4);
        assert!(r.next_frame().is_err(), "a failed reader stays failed");
    }

    fn kind_strategy() -> impl Strategy<Value = FrameKind> {
        any::<u8>().prop_map(FrameKind::from_byte)
    }

    proptest! {
        #[test]
        fn round_trip(frames in proptest::collection::vec((kind_strategy(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
            let mut buf = Vec::new();
            for (k, l, p) in &frames {
                encode_frame(*k, Lsn(*l), p, &mut buf);
            }
            let mut at = 0;
            for (k, l, p) in &frames {
                let (f, used) = parse_frame(&buf[at..]).unwrap().unwrap();
                prop_assert_eq!(f.kind, *k);
                prop_assert_eq!(f.kind.to_byte(), k.to_byte());
                prop_assert_eq!(f.lsn, Lsn(*l));
                prop_assert_eq!(f.payload, &p[..]);
                prop_assert_eq!(used, f.encoded_len());
                at += used;
            }
            prop_assert_eq!(at, buf.len());
        }

        #[test]
        fn every_prefix_is_incomplete(kind in kind_strategy(), lsn in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = frame_bytes(kind, lsn, &payload);
            for n in 0..b.len() {
                prop_assert_eq!(parse_frame(&b[..n]).unwrap(), None);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_header(&bytes);
            if let Ok(Some((f, used))) = parse_frame(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(used, f.encoded_len());
            }
            let mut r = FrameReader::new();
            r.push(&bytes);
            for _ in 0..64 {
                match r.next_frame() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }

        #[test]
        fn reader_any_chunking(frames in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..100)), 0..10), split in 1usize..40) {
            let mut s = Vec::new();
            encode_header(&mut s);
            for (l, p) in &frames {
                encode_frame(FrameKind::Wal, Lsn(*l), p, &mut s);
            }
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            for chunk in s.chunks(split) {
                r.push(chunk);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push((f.lsn.0, f.payload.to_vec()));
                }
            }
            prop_assert_eq!(got, frames);
        }
    }
}
