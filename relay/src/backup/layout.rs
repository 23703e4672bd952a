//! What a backup looks like in its destination: object names and the checksummed object format.
//! Pure: bytes in, bytes out (docs/backup.md is the contract).
//!
//! ```text
//! baseline/<cp>/part-00000.wcf   rows of the consistent image at <cp> (Relation + Insert frames)
//! baseline/<cp>/manifest.json    written last: the image is complete (parts, sizes, checksums)
//! log/<prev>-<last>.wcf          whole committed transactions ending in (prev, last]
//! ```
//!
//! LSNs in names are 16 upper-case hex digits, so names sort by position. Every `.wcf` object
//! is a walcast v1 frame stream (docs/frames.md) followed by a 40-byte trailer: `WCSHA256`
//! and the SHA-256 of everything before it. Objects are never rewritten.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use walcast_decoder::frame::{encode_frame, encode_header, FrameKind, FrameReader};
use walcast_decoder::Lsn;

use crate::client::OwnedFrame;

pub const TRAILER_MAGIC: [u8; 8] = *b"WCSHA256";
pub const TRAILER_LEN: usize = 40;
pub const MANIFEST_FORMAT: &str = "walcast-backup-baseline";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{name}: too short to be a backup object ({len} bytes)")]
    Truncated { name: String, len: usize },
    #[error("{name}: no checksum trailer: not a walcast backup object, or cut short")]
    NoTrailer { name: String },
    #[error(
        "{name}: checksum mismatch (stored {stored}, computed {computed}): the object is corrupt"
    )]
    Checksum {
        name: String,
        stored: String,
        computed: String,
    },
    #[error("{name}: invalid frame at byte {offset}: {source}")]
    Frame {
        name: String,
        offset: usize,
        source: walcast_decoder::DecodeError,
    },
    #[error("{name}: not a backup object name")]
    BadName { name: String },
}

/// Sortable hex form of an LSN, as used in object names.
pub fn lsn_name(lsn: Lsn) -> String {
    format!("{:016X}", lsn.0)
}

fn parse_lsn_name(s: &str) -> Option<Lsn> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .map(Lsn)
}

pub fn baseline_dir(cp: Lsn) -> String {
    format!("baseline/{}", lsn_name(cp))
}

pub fn baseline_part(cp: Lsn, n: u32) -> String {
    format!("{}/part-{n:05}.wcf", baseline_dir(cp))
}

pub fn baseline_manifest(cp: Lsn) -> String {
    format!("{}/manifest.json", baseline_dir(cp))
}

pub fn segment_name(prev: Lsn, last: Lsn) -> String {
    format!("log/{}-{}.wcf", lsn_name(prev), lsn_name(last))
}

/// `(prev, last)` of a `log/<prev>-<last>.wcf` name (the part after `log/`).
pub fn parse_segment_name(file: &str) -> Option<(Lsn, Lsn)> {
    let stem = file.strip_suffix(".wcf")?;
    let (prev, last) = stem.split_once('-')?;
    Some((parse_lsn_name(prev)?, parse_lsn_name(last)?))
}

/// The consistent point of a `baseline/<cp>` directory name (the part after `baseline/`).
pub fn parse_baseline_dir(dir: &str) -> Option<Lsn> {
    parse_lsn_name(dir)
}

/// Builds one object: frames appended one by one, sealed with the checksum trailer.
#[derive(Debug)]
pub struct ObjectBuilder {
    buf: Vec<u8>,
    frames: usize,
}

impl Default for ObjectBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(1 << 16);
        encode_header(&mut buf);
        ObjectBuilder { buf, frames: 0 }
    }

    pub fn push(&mut self, kind: FrameKind, lsn: Lsn, payload: &[u8]) {
        encode_frame(kind, lsn, payload, &mut self.buf);
        self.frames += 1;
    }

    pub fn push_frame(&mut self, f: &OwnedFrame) {
        self.push(f.kind, f.lsn, &f.payload);
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The finished object and its SHA-256 (hex).
    pub fn seal(mut self) -> (Bytes, String) {
        let digest = Sha256::digest(&self.buf);
        self.buf.extend_from_slice(&TRAILER_MAGIC);
        self.buf.extend_from_slice(&digest);
        (Bytes::from(self.buf), hex::encode(digest))
    }
}

/// Checks an object's trailer and returns its frames.
pub fn read_object(name: &str, data: &[u8]) -> Result<Vec<OwnedFrame>, LayoutError> {
    let body = verified_body(name, data)?;
    let mut reader = FrameReader::new();
    reader.push(body);
    let mut frames = Vec::new();
    let mut offset = walcast_decoder::frame::HEADER_LEN;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                offset += f.encoded_len();
                frames.push(OwnedFrame {
                    kind: f.kind,
                    lsn: f.lsn,
                    payload: Bytes::copy_from_slice(f.payload),
                });
            }
            Ok(None) => break,
            Err(source) => {
                return Err(LayoutError::Frame {
                    name: name.into(),
                    offset,
                    source,
                })
            }
        }
    }
    if reader.buffered() > 0 {
        return Err(LayoutError::Truncated {
            name: name.into(),
            len: data.len(),
        });
    }
    Ok(frames)
}

/// The bytes before the trailer, once their checksum matches; also returns the checksum.
pub fn verified_body<'a>(name: &str, data: &'a [u8]) -> Result<&'a [u8], LayoutError> {
    if data.len() < TRAILER_LEN {
        return Err(LayoutError::Truncated {
            name: name.into(),
            len: data.len(),
        });
    }
    let (body, trailer) = data.split_at(data.len() - TRAILER_LEN);
    if trailer[..8] != TRAILER_MAGIC {
        return Err(LayoutError::NoTrailer { name: name.into() });
    }
    let computed = Sha256::digest(body);
    if computed[..] != trailer[8..] {
        return Err(LayoutError::Checksum {
            name: name.into(),
            stored: hex::encode(&trailer[8..]),
            computed: hex::encode(computed),
        });
    }
    Ok(body)
}

/// `baseline/<cp>/manifest.json`: the image at `consistent_point` is complete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub consistent_point: Lsn,
    pub rows: u64,
    pub parts: Vec<PartEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_any_flipped_byte_is_caught() {
        let mut b = ObjectBuilder::new();
        b.push(FrameKind::Prelude, Lsn(5), b"Rabc");
        b.push(FrameKind::Wal, Lsn(7), b"Ixyz");
        let (bytes, sum) = b.seal();
        assert_eq!(sum.len(), 64);
        let frames = read_object("x", &bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].lsn, Lsn(7));
        assert_eq!(&frames[1].payload[..], b"Ixyz");
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x40;
            assert!(
                read_object("x", &bad).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        for cut in 0..bytes.len() {
            assert!(read_object("x", &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn names_sort_by_lsn_and_parse_back() {
        let a = segment_name(Lsn(0x1_0000_0000), Lsn(0x2_0000_0010));
        assert_eq!(a, "log/0000000100000000-0000000200000010.wcf");
        assert_eq!(
            parse_segment_name(a.strip_prefix("log/").unwrap()),
            Some((Lsn(0x1_0000_0000), Lsn(0x2_0000_0010)))
        );
        assert!(segment_name(Lsn(9), Lsn(10)) < segment_name(Lsn(10), Lsn(0x100)));
        assert_eq!(parse_segment_name("zz-00.wcf"), None);
        assert_eq!(parse_baseline_dir(&lsn_name(Lsn(42))), Some(Lsn(42)));
    }
}
