//! Reading the log for one client, from a resume position, up to the visible end (what the
//! writer has written, fsynced or not: [`super::Log::visible`]).
//!
//! `from = X` means "I applied every transaction whose commit end_lsn <= X". Opening a reader:
//! 1. pick the last segment whose `start_lsn <= X` (all transactions ending at or before its
//!    start are in earlier segments);
//! 2. start at that segment's first frame, or earlier at the first chunk of a streamed
//!    transaction that was in flight when the segment began (`stream_open_since`);
//! 3. pre-scan from there to the first transaction that ends after X, building the schema
//!    prelude as of that point and the set of streamed xids that committed at or before X;
//! 4. emit the prelude as `'p'` frames, then re-scan from the start point through a [`Dedup`]
//!    at X: earlier transactions and finished streams are dropped, chunks of streams still open
//!    at X are kept.
//!
//! Memory is bounded: one read buffer (default 256 KiB, growing only to hold one larger frame),
//! the prelude, and the set of open stream xids. The reader does blocking file IO in small
//! reads; the async serving layer calls [`LogReader::read_available`] after the visible watch
//! ([`super::Log::subscribe_visible`]) changes, e.g. from `spawn_blocking` or directly (page cache).

use std::collections::{HashSet, VecDeque};

use walcast_decoder::frame::{self, FrameKind};
use walcast_decoder::Lsn;

use super::dedup::{Dedup, Verdict};
use super::pgoutput_peek::{PeekState, Peeked};
use super::segment::{ScanError, Scanner};
use super::{Durable, Log, LogError, SegmentInfo};
use crate::prelude::Prelude;

/// A frame handed to a client, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFrame {
    pub kind: FrameKind,
    pub lsn: Lsn,
    pub payload: Vec<u8>,
}

/// The first segment a reader can start in, and the LSN clients may resume from there:
/// the oldest segment whose in-flight streams (if any) are still fully on disk.
pub(crate) fn oldest_servable(segs: &[SegmentInfo]) -> Option<(usize, Lsn)> {
    let first = segs.first()?.meta.base;
    segs.iter()
        .position(|s| s.meta.stream_open_since.map_or(true, |o| o >= first))
        .map(|i| (i, segs[i].meta.start_lsn))
}

/// Receives one frame: kind, lsn, payload, and the encoded bytes when they come from disk.
type Emit<'e> = dyn FnMut(FrameKind, Lsn, &[u8], Option<&[u8]>) + 'e;

pub struct LogReader {
    log: Log,
    scanner: Scanner,
    dedup: Dedup,
    pending_prelude: VecDeque<OwnedFrame>,
    from: Lsn,
    /// The segment list generation the scanner knows.
    generation: u64,
    prescanned: u64,
}

impl LogReader {
    /// Positions a reader for a client that applied every transaction whose commit
    /// end_lsn <= `from`; `None` starts at the oldest retained data.
    /// Errors with [`LogError::ResyncRequired`] if the log no longer holds what the client needs.
    pub fn open(log: &Log, from: Option<Lsn>) -> Result<LogReader, LogError> {
        let generation = log.shared.generation();
        let segs = log.shared.segments().clone();
        let (first_ok, oldest) = oldest_servable(&segs).ok_or(LogError::ResyncRequired {
            requested: from.unwrap_or(Lsn::ZERO),
            oldest_available: Lsn::ZERO,
        })?;
        let x = from.unwrap_or(oldest);
        if x < oldest {
            return Err(LogError::ResyncRequired {
                requested: x,
                oldest_available: oldest,
            });
        }
        let durable = log.visible();
        if x > durable.lsn {
            return Err(LogError::AheadOfLog {
                requested: x,
                durable: durable.lsn,
            });
        }
        let bases: Vec<u64> = segs.iter().map(|s| s.meta.base).collect();
        let cap = log.shared.read_buffer;

        // Fast path: resuming exactly at the writer's last quiescent sync. Only the span of
        // streams still open there is scanned (for streams that finished inside it).
        let first_base = segs[first_ok].meta.base;
        if let Some(tail) = log.shared.tail() {
            let start = tail.stream_open_since.unwrap_or(tail.offset);
            if tail.lsn == x && start >= first_base {
                let mut scanner = Scanner::new(&log.shared.dir, bases, start, cap);
                let (done, prescanned) =
                    done_streams(&mut scanner, tail.offset, x).map_err(|e| match e {
                        DoneError::Scan(e) => scan_error(log, x, oldest, e),
                        DoneError::Log(e) => e,
                    })?;
                scanner.seek(start);
                let pending_prelude = tail
                    .prelude
                    .iter()
                    .map(|p| OwnedFrame {
                        kind: FrameKind::Prelude,
                        lsn: p.lsn,
                        payload: p.msg.clone(),
                    })
                    .collect();
                return Ok(LogReader {
                    log: log.clone(),
                    scanner,
                    dedup: Dedup::with_done_streams(x, done),
                    pending_prelude,
                    from: x,
                    generation,
                    prescanned,
                });
            }
        }

        let k = first_ok + segs[first_ok..].partition_point(|s| s.meta.start_lsn <= x) - 1;
        let meta = segs[k].meta;
        let start = match meta.stream_open_since {
            Some(s) if s < meta.first_frame() => s,
            _ => meta.first_frame(),
        };

        // Pre-scan: prelude as of the first transaction after X, and streams done by X.
        let mut scanner = Scanner::new(&log.shared.dir, bases.clone(), start, cap);
        let mut prelude = Prelude::new();
        let mut peek = PeekState::new();
        let mut done = HashSet::new();
        let mut prescanned = 0u64;
        loop {
            let f = match scanner.next(durable.offset, false) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(scan_error(log, x, oldest, e)),
            };
            prescanned += 1;
            if f.kind == FrameKind::Wal {
                let (p, block) = peek
                    .peek(f.payload)
                    .map_err(|source| LogError::Pgoutput { lsn: f.lsn, source })?;
                if block.is_none() {
                    let past_x = match p {
                        Peeked::Begin { final_lsn, .. } => final_lsn >= x,
                        Peeked::BeginPrepare { prepare_lsn, .. } => prepare_lsn >= x,
                        Peeked::StandaloneMessage { lsn } => lsn >= x,
                        Peeked::StreamCommit { end_lsn, .. }
                        | Peeked::StreamPrepare { end_lsn, .. }
                        | Peeked::Commit { end_lsn, .. }
                        | Peeked::Prepare { end_lsn, .. }
                        | Peeked::CommitPrepared { end_lsn, .. }
                        | Peeked::RollbackPrepared { end_lsn, .. } => end_lsn > x,
                        _ => false,
                    };
                    if past_x {
                        break;
                    }
                    if let Peeked::StreamCommit { xid, .. } | Peeked::StreamPrepare { xid, .. } = p
                    {
                        done.insert(xid);
                    }
                }
            } else if f.kind == FrameKind::Reset {
                peek.reset();
            }
            prelude
                .observe(f.kind, f.lsn, f.payload)
                .map_err(|source| LogError::Pgoutput { lsn: f.lsn, source })?;
        }
        let pending_prelude = prelude
            .frames()
            .into_iter()
            .map(|p| OwnedFrame {
                kind: FrameKind::Prelude,
                lsn: p.lsn,
                payload: p.msg,
            })
            .collect();
        let mut scanner = scanner;
        scanner.seek(start);
        Ok(LogReader {
            log: log.clone(),
            scanner,
            dedup: Dedup::with_done_streams(x, done),
            pending_prelude,
            from: x,
            generation,
            prescanned,
        })
    }

    /// Frames read to position this reader (diagnostics: how much a resume cost).
    pub fn prescanned_frames(&self) -> u64 {
        self.prescanned
    }

    /// The position this reader resumes after (the `from` it was opened with, or the oldest
    /// available LSN).
    pub fn from(&self) -> Lsn {
        self.from
    }

    /// Global offset of the next frame to read.
    pub fn position(&self) -> u64 {
        self.scanner.pos()
    }

    /// The read buffer's current allocation (bounded; see the module docs).
    pub fn buffer_capacity(&self) -> usize {
        self.scanner.buffer_capacity()
    }

    /// Frees the read buffer while caught up (see [`Scanner::release_idle_buffer`]); call it
    /// before waiting for new data so idle clients cost little memory.
    pub fn release_idle_buffer(&mut self) {
        self.scanner.release_idle_buffer();
    }

    /// Watch the log's visible position (wake up, then call `read_available` again).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Durable> {
        self.log.subscribe_visible()
    }

    /// The next frame for the client, or `Ok(None)` when it has caught up with the visible end.
    pub fn next_frame(&mut self) -> Result<Option<OwnedFrame>, LogError> {
        let mut out = None;
        self.step(&mut |k, l, p, _raw| {
            out = Some(OwnedFrame {
                kind: k,
                lsn: l,
                payload: p.to_vec(),
            });
        })?;
        Ok(out)
    }

    /// Appends encoded frames (wire format, no stream header) to `out` until about `max_bytes`
    /// were added or the visible end is reached. Returns the number of frames appended.
    pub fn read_available(
        &mut self,
        out: &mut Vec<u8>,
        max_bytes: usize,
    ) -> Result<usize, LogError> {
        let start_len = out.len();
        let mut n = 0;
        while out.len() - start_len < max_bytes {
            let mut got = false;
            self.step(&mut |k, l, p, raw| {
                match raw {
                    Some(raw) => out.extend_from_slice(raw),
                    None => frame::encode_frame(k, l, p, out),
                }
                got = true;
            })?;
            if !got {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Like [`LogReader::read_available`], but waits on `durable` (from [`LogReader::subscribe`])
    /// until at least one frame is available. Returns `Ok(0)` only when the writer is gone (the
    /// relay is shutting down). File reads are small and usually hit the page cache; a serving
    /// layer that must never block its executor can call `read_available` from `spawn_blocking`
    /// instead.
    pub async fn read_or_wait(
        &mut self,
        durable: &mut tokio::sync::watch::Receiver<Durable>,
        out: &mut Vec<u8>,
        max_bytes: usize,
    ) -> Result<usize, LogError> {
        loop {
            // Mark the current value seen *before* reading, so a sync that lands during the
            // read wakes the next `changed()`.
            durable.borrow_and_update();
            let n = self.read_available(out, max_bytes)?;
            if n > 0 {
                return Ok(n);
            }
            if durable.changed().await.is_err() {
                return Ok(0);
            }
        }
    }

    /// Produces at most one frame through `emit` (kind, lsn, payload, raw bytes if on disk).
    fn step(&mut self, emit: &mut Emit<'_>) -> Result<(), LogError> {
        if let Some(p) = self.pending_prelude.pop_front() {
            emit(p.kind, p.lsn, &p.payload, None);
            return Ok(());
        }
        let durable = self.log.visible();
        let shared = &self.log.shared;
        loop {
            let generation = shared.generation();
            if generation != self.generation {
                self.scanner
                    .set_bases(shared.segments().iter().map(|s| s.meta.base).collect());
                self.generation = generation;
            }
            // Our segment was deleted by retention: the client fell too far behind. (Segments
            // go oldest first, so "deleted" is exactly "position below the oldest base".)
            if self.scanner.pos() < shared.oldest_base() {
                return Err(LogError::ResyncRequired {
                    requested: self.from,
                    oldest_available: self.log.oldest_available(),
                });
            }
            let f = match self.scanner.next(durable.offset, false) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(scan_error(
                        &self.log,
                        self.from,
                        self.log.oldest_available(),
                        e,
                    ))
                }
            };
            let keep = match f.kind {
                FrameKind::Wal => {
                    self.dedup
                        .on_wal(f.payload)
                        .map_err(|source| LogError::Pgoutput { lsn: f.lsn, source })?
                        == Verdict::Keep
                }
                FrameKind::Reset => {
                    self.dedup.new_session();
                    true
                }
                FrameKind::Heartbeat => f.lsn >= self.from,
                FrameKind::End => true,
                // Meta and prelude frames on disk were covered by the prelude we sent.
                _ => false,
            };
            if keep {
                emit(f.kind, f.lsn, f.payload, Some(f.raw));
                return Ok(());
            }
        }
    }
}

enum DoneError {
    Scan(ScanError),
    Log(LogError),
}

/// Streamed xids that commit (or prepare) at or before `x` between the scanner's position and
/// `until`, and the number of frames read.
fn done_streams(
    scanner: &mut Scanner,
    until: u64,
    x: Lsn,
) -> Result<(HashSet<u32>, u64), DoneError> {
    let mut peek = PeekState::new();
    let mut done = HashSet::new();
    let mut n = 0;
    while let Some(f) = scanner.next(until, false).map_err(DoneError::Scan)? {
        n += 1;
        match f.kind {
            FrameKind::Wal => {
                let (p, _) = peek
                    .peek(f.payload)
                    .map_err(|source| DoneError::Log(LogError::Pgoutput { lsn: f.lsn, source }))?;
                if let Peeked::StreamCommit { xid, end_lsn, .. }
                | Peeked::StreamPrepare { xid, end_lsn, .. } = p
                {
                    if end_lsn <= x {
                        done.insert(xid);
                    }
                }
            }
            FrameKind::Reset => peek.reset(),
            _ => {}
        }
    }
    Ok((done, n))
}

fn scan_error(log: &Log, requested: Lsn, oldest: Lsn, e: ScanError) -> LogError {
    match e {
        ScanError::Gone { .. } => LogError::ResyncRequired {
            requested,
            oldest_available: oldest.max(log.oldest_available()),
        },
        ScanError::Torn { offset } => LogError::Corrupt {
            path: log.shared.dir.clone(),
            offset,
            detail: "frame ends past the file end".into(),
        },
        ScanError::Corrupt { offset, error } => LogError::Corrupt {
            path: log.shared.dir.clone(),
            offset,
            detail: error.to_string(),
        },
        ScanError::Io { path, source } => LogError::Io { path, source },
    }
}
