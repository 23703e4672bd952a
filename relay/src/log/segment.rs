//! Segment files: naming, the metadata frame that opens each one, and a bounded-buffer frame
//! scanner that walks frames across segment files by global byte offset.
//!
//! A segment is named after its *base*: the global log offset of its first byte, as 16 hex
//! digits (`00000000000a0000.wcl`). Global offsets therefore grow monotonically across segments,
//! and one `u64` names any frame in the log. Layout of a segment:
//!
//! ```text
//! header (12) | 'm' meta frame | 'p' prelude frames … | data frames …
//! ```

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use walcast_decoder::frame::{self, FrameKind, HEADER_LEN};
use walcast_decoder::{DecodeError, Lsn};

pub const SEGMENT_EXT: &str = "wcl";

/// `u64 base | u64 stream_open_since (u64::MAX = none) | u64 created_unix_ms`.
const META_LEN: usize = 24;

pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:016x}.{SEGMENT_EXT}"))
}

/// What the `'m'` frame at the start of a segment says.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Global offset of the segment's first byte (also in the file name).
    pub base: u64,
    /// The log's boundary LSN when the segment was opened: every transaction whose commit
    /// end_lsn <= start_lsn is in earlier segments. Stored as the frame's lsn.
    pub start_lsn: Lsn,
    /// Global offset of the first Stream Start of a streamed transaction still in flight when the
    /// segment was opened (its chunks are in earlier segments); `None` if none was in flight.
    pub stream_open_since: Option<u64>,
    pub created_unix_ms: u64,
}

impl SegmentMeta {
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut p = Vec::with_capacity(META_LEN);
        p.extend_from_slice(&self.base.to_be_bytes());
        p.extend_from_slice(&self.stream_open_since.unwrap_or(u64::MAX).to_be_bytes());
        p.extend_from_slice(&self.created_unix_ms.to_be_bytes());
        frame::encode_frame(FrameKind::SegmentMeta, self.start_lsn, &p, out);
    }

    fn from_payload(lsn: Lsn, p: &[u8]) -> Option<SegmentMeta> {
        if p.len() < META_LEN {
            return None;
        }
        let at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&p[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let since = at(8);
        Some(SegmentMeta {
            base: at(0),
            start_lsn: lsn,
            stream_open_since: (since != u64::MAX).then_some(since),
            created_unix_ms: at(16),
        })
    }

    /// Global offset where reading this segment's frames starts (just after the header).
    pub fn first_frame(&self) -> u64 {
        self.base + HEADER_LEN as u64
    }
}

/// Reads the header and meta frame of a segment file. `Ok(None)`: the file is too short or
/// malformed at its start (a crash while the segment was being created).
pub fn read_meta(path: &Path, base: u64) -> io::Result<Option<(SegmentMeta, u64)>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut buf = vec![
        0u8;
        (HEADER_LEN + frame::FRAME_PREFIX_LEN + frame::BODY_FIXED_LEN + META_LEN)
            .min(len as usize)
    ];
    file.read_exact_at(&mut buf, 0)?;
    if !matches!(frame::parse_header(&buf), Ok(Some(_))) {
        return Ok(None);
    }
    match frame::parse_frame(&buf[HEADER_LEN..]) {
        Ok(Some((f, _))) if f.kind == FrameKind::SegmentMeta => {
            Ok(SegmentMeta::from_payload(f.lsn, f.payload)
                .filter(|m| m.base == base)
                .map(|m| (m, len)))
        }
        _ => Ok(None),
    }
}

/// Lists segment bases in `dir`, ascending. Files that do not look like segments are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXT}")) else {
            continue;
        };
        if stem.len() == 16 {
            if let Ok(b) = u64::from_str_radix(stem, 16) {
                bases.push(b);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Why the scanner stopped before a full frame.
#[derive(Debug)]
pub enum ScanError {
    /// The file ends inside the frame starting at `offset` (global): a torn write.
    Torn {
        offset: u64,
    },
    /// The frame at `offset` (global) fails its length or checksum check.
    Corrupt {
        offset: u64,
        error: DecodeError,
    },
    /// The segment holding `offset` no longer exists (deleted by retention).
    Gone {
        offset: u64,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

/// One frame as the scanner returns it: borrowed from the scanner's buffer.
#[derive(Debug)]
pub struct ScannedFrame<'a> {
    /// Global offset of the frame's first byte.
    pub offset: u64,
    pub kind: FrameKind,
    pub lsn: Lsn,
    pub payload: &'a [u8],
    /// The whole encoded frame (prefix + body), ready to forward as-is.
    pub raw: &'a [u8],
}

impl ScannedFrame<'_> {
    pub fn end(&self) -> u64 {
        self.offset + self.raw.len() as u64
    }
}

/// Walks frames by global offset with a bounded read buffer (it grows only to hold one frame
/// larger than the buffer, at most 64 MiB, and shrinks back afterwards).
pub struct Scanner {
    dir: PathBuf,
    /// Bases of the segments, ascending; the scanner follows them in order.
    bases: Vec<u64>,
    file: Option<(u64, File)>,
    buf: Vec<u8>,
    /// `buf[start..]` holds the bytes at global offset `pos` onwards.
    start: usize,
    pos: u64,
    cap: usize,
}

impl Scanner {
    pub fn new(dir: &Path, bases: Vec<u64>, pos: u64, cap: usize) -> Scanner {
        let cap = cap.max(4096);
        Scanner {
            dir: dir.to_path_buf(),
            bases,
            file: None,
            buf: Vec::with_capacity(cap),
            start: 0,
            pos,
            cap,
        }
    }

    /// Global offset of the next frame.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Current buffer allocation, for tests of bounded memory.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Frees the read buffer when nothing is buffered, so a caught-up reader waiting for new
    /// data holds no buffer memory (it is allocated again on the next read).
    pub fn release_idle_buffer(&mut self) {
        if self.start >= self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Learns about segments created since the scanner was made.
    pub fn set_bases(&mut self, bases: Vec<u64>) {
        self.bases = bases;
    }

    /// Moves to global offset `pos` (must be a frame start), dropping buffered bytes.
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
        self.buf.clear();
        self.start = 0;
    }

    /// The next frame whose end is at or before `limit` (global), or `Ok(None)` if the next
    /// frame is not complete within `limit`. In `strict_end` mode (recovery), bytes that end
    /// before a frame is complete are reported as [`ScanError::Torn`].
    pub fn next(
        &mut self,
        limit: u64,
        strict_end: bool,
    ) -> Result<Option<ScannedFrame<'_>>, ScanError> {
        // Step over segment ends: a segment ends where the next one begins.
        loop {
            let seg = self.segment_of(self.pos);
            let Some(idx) = seg else {
                return Err(ScanError::Gone { offset: self.pos });
            };
            let base = self.bases[idx];
            if self.pos < base + HEADER_LEN as u64 {
                self.seek(base + HEADER_LEN as u64);
            }
            match self.bases.get(idx + 1) {
                Some(&next) if self.pos >= next => {
                    self.seek(next + HEADER_LEN as u64);
                    continue;
                }
                _ => {}
            }
            break;
        }
        let idx = self
            .segment_of(self.pos)
            .ok_or(ScanError::Gone { offset: self.pos })?;
        let seg_end = self
            .bases
            .get(idx + 1)
            .copied()
            .unwrap_or(u64::MAX)
            .min(limit);
        if self.pos >= seg_end {
            return Ok(None);
        }
        let avail_limit = seg_end - self.pos;
        // Need the 8-byte prefix first.
        if !self.fill(idx, frame::FRAME_PREFIX_LEN, avail_limit)? {
            return self.short(strict_end);
        }
        let total = match frame::peek_frame_len(&self.buf[self.start..]) {
            Ok(Some(t)) => t,
            Ok(None) => return self.short(strict_end),
            Err(error) => {
                return Err(ScanError::Corrupt {
                    offset: self.pos,
                    error,
                })
            }
        };
        if !self.fill(idx, total, avail_limit)? {
            return self.short(strict_end);
        }
        let offset = self.pos;
        let raw_start = self.start;
        match frame::parse_frame(&self.buf[raw_start..raw_start + total]) {
            Ok(Some((f, used))) => {
                debug_assert_eq!(used, total);
                self.start += total;
                self.pos += total as u64;
                let raw = &self.buf[raw_start..raw_start + total];
                Ok(Some(ScannedFrame {
                    offset,
                    kind: f.kind,
                    lsn: f.lsn,
                    payload: &raw[frame::FRAME_PREFIX_LEN + frame::BODY_FIXED_LEN..],
                    raw,
                }))
            }
            Ok(None) => self.short(strict_end),
            Err(error) => Err(ScanError::Corrupt { offset, error }),
        }
    }

    fn short<T>(&self, strict_end: bool) -> Result<Option<T>, ScanError> {
        if strict_end {
            Err(ScanError::Torn { offset: self.pos })
        } else {
            Ok(None)
        }
    }

    fn segment_of(&self, pos: u64) -> Option<usize> {
        let idx = self.bases.partition_point(|&b| b <= pos);
        (idx > 0).then(|| idx - 1)
    }

    /// Ensures `need` bytes are buffered at `pos`, reading at most `avail` bytes past `pos`.
    /// Returns false if `need` exceeds `avail`; a file that ends before `avail` is
    /// [`ScanError::Torn`].
    fn fill(&mut self, idx: usize, need: usize, avail: u64) -> Result<bool, ScanError> {
        let have = self.buf.len() - self.start;
        if have >= need {
            return Ok(true);
        }
        if (need as u64) > avail {
            return Ok(false);
        }
        // Compact, then shrink a buffer that grew for one huge frame.
        self.buf.drain(..self.start);
        self.start = 0;
        if self.buf.capacity() > self.cap.max(need) * 2 {
            self.buf.shrink_to(self.cap.max(need));
        }
        let base = self.bases[idx];
        let path = segment_path(&self.dir, base);
        if self.file.as_ref().map(|(b, _)| *b) != Some(base) {
            match File::open(&path) {
                Ok(f) => self.file = Some((base, f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ScanError::Gone { offset: self.pos })
                }
                Err(source) => return Err(ScanError::Io { path, source }),
            }
        }
        let Some((_, file)) = self.file.as_ref() else {
            return Ok(false);
        };
        // Read up to a full buffer, but never past `avail` (the durable limit or segment end).
        let want = (self.cap.max(need) as u64).min(avail) as usize;
        let mut file_off = self.pos - base + have as u64;
        let mut filled = have;
        self.buf.resize(want, 0);
        while filled < need {
            let n = file
                .read_at(&mut self.buf[filled..want], file_off)
                .map_err(|source| ScanError::Io {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
            file_off += n as u64;
        }
        self.buf.truncate(filled);
        if filled < need {
            // The file ends before bytes the log says exist (a sealed segment's end, or the
            // durable offset): a damaged file. Report it rather than wait forever for data.
            return Err(ScanError::Torn { offset: self.pos });
        }
        Ok(true)
    }
}
