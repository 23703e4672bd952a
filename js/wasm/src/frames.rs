//! Incremental reader of the walcast frame format v1, fed arbitrary chunks of an HTTP body.
//!
//! INTEGRATION: `walcast_decoder::frame` (helper "log") is the one implementation of the format.
//! This reader exists only because that module had not landed when the JS package was built;
//! swap `FrameReader::next` for the decoder's incremental parser once it exists.
//!
//! Stream: magic `WALCAST\0`, u16 version (1), u16 flags; then frames
//! `u32 body_len | u32 crc32c(body) | body`, body = `u8 kind | u64 lsn | payload`, big-endian.

pub const MAGIC: &[u8; 8] = b"WALCAST\0";
const HEADER_LEN: usize = 12;
/// A frame body is at most one pgoutput message plus 9 bytes; PostgreSQL caps a message near
/// 1 GiB. Anything larger is corruption, not data, and must not make us buffer without bound.
const MAX_BODY: usize = (1 << 30) + 64;

pub struct Frame<'a> {
    pub kind: u8,
    pub lsn: u64,
    pub payload: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    BadMagic,
    UnsupportedVersion(u16),
    BadLength(usize),
    BadChecksum { offset: u64 },
}

impl FrameError {
    pub fn message(&self) -> String {
        match self {
            FrameError::BadMagic => "not a walcast frame stream (bad magic)".into(),
            FrameError::UnsupportedVersion(v) => {
                let mut s = String::from("unsupported walcast frame version ");
                push_u64(&mut s, u64::from(*v));
                s
            }
            FrameError::BadLength(n) => {
                let mut s = String::from("frame body length out of range: ");
                push_u64(&mut s, *n as u64);
                s
            }
            FrameError::BadChecksum { offset } => {
                let mut s = String::from("bad frame checksum at stream byte ");
                push_u64(&mut s, *offset);
                s
            }
        }
    }
}

/// Appends a decimal number without pulling in core::fmt.
pub fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("?"));
}

#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
    header_seen: bool,
    /// Stream offset of `buf[0]`, for error messages.
    base: u64,
}

impl FrameReader {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.base += self.pos as u64;
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.base += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if !self.header_seen {
            let avail = &self.buf[self.pos..];
            let n = avail.len().min(MAGIC.len());
            if avail[..n] != MAGIC[..n] {
                return Err(FrameError::BadMagic);
            }
            if avail.len() < HEADER_LEN {
                return Ok(None);
            }
            let version = u16::from_be_bytes([avail[8], avail[9]]);
            if version != 1 {
                return Err(FrameError::UnsupportedVersion(version));
            }
            self.pos += HEADER_LEN;
            self.header_seen = true;
        }
        let avail = &self.buf[self.pos..];
        if avail.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        let crc = u32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]);
        if !(9..=MAX_BODY).contains(&len) {
            return Err(FrameError::BadLength(len));
        }
        if avail.len() < 8 + len {
            return Ok(None);
        }
        let start = self.pos;
        let body = &self.buf[start + 8..start + 8 + len];
        if crc32c::crc32c(body) != crc {
            return Err(FrameError::BadChecksum {
                offset: self.base + start as u64,
            });
        }
        self.pos += 8 + len;
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&body[1..9]);
        Ok(Some(Frame {
            kind: body[0],
            lsn: u64::from_be_bytes(lsn),
            payload: &body[9..],
        }))
    }

    /// Forget everything buffered: the next bytes start a new stream (a new connection).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.header_seen = false;
        self.base = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![kind];
        body.extend_from_slice(&lsn.to_be_bytes());
        body.extend_from_slice(payload);
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn reads_frames_split_at_every_byte() {
        let mut stream = MAGIC.to_vec();
        stream.extend_from_slice(&[0, 1, 0, 0]);
        stream.extend(frame(b'w', 7, b"hello"));
        stream.extend(frame(b'k', 9, b""));
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for b in &stream {
            r.push(std::slice::from_ref(b));
            while let Some(f) = r.next().expect("valid stream") {
                got.push((f.kind, f.lsn, f.payload.to_vec()));
            }
        }
        assert_eq!(got, vec![(b'w', 7, b"hello".to_vec()), (b'k', 9, vec![])]);
    }

    #[test]
    fn rejects_corruption() {
        let mut stream = MAGIC.to_vec();
        stream.extend_from_slice(&[0, 1, 0, 0]);
        let mut f = frame(b'w', 7, b"hello");
        let last = f.len() - 1;
        f[last] ^= 1;
        stream.extend(f);
        let mut r = FrameReader::default();
        r.push(&stream);
        assert_eq!(r.next().err(), Some(FrameError::BadChecksum { offset: 12 }));
        let mut r = FrameReader::default();
        r.push(b"HTTP/1.1");
        assert_eq!(r.next().err(), Some(FrameError::BadMagic));
    }
}
