//! The single writer: buffered appends, group-commit `sync`, segment rolls, the durable position,
//! and dropping transactions PostgreSQL resends after a reconnect.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};
use walcast_decoder::frame::{self, FrameKind, HEADER_LEN, MAX_PAYLOAD_LEN};
use walcast_decoder::Lsn;

use super::dedup::{Dedup, Verdict};
use super::pgoutput_peek::{PeekError, PeekState, Peeked};
use super::segment::{segment_path, SegmentMeta};
use super::TailSnapshot;
use super::{io_err, Durable, LogError, SegmentInfo, Shared};
use crate::prelude::{Prelude, PreludeFrame};

/// Buffered bytes beyond which `append` writes (without syncing) to bound memory.
const WRITE_THROUGH: usize = 1 << 20;

/// Outcome of an append.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Written (buffered) at this global offset.
    Kept { offset: u64 },
    /// Not written: a resent transaction already in the log, or a heartbeat that would not
    /// advance the boundary.
    Dropped,
}

/// Transaction-boundary tracking over the frames that are in the log. Pure.
#[derive(Clone, Debug, Default)]
pub(crate) struct TxnState {
    peek: PeekState,
    in_txn: bool,
    /// Streamed xids in flight → global offset of their first Stream Start.
    open_streams: BTreeMap<u32, u64>,
    /// End LSN of the last boundary seen.
    pub(crate) boundary_lsn: Lsn,
}

impl TxnState {
    pub(crate) fn new(boundary_lsn: Lsn) -> Self {
        TxnState {
            boundary_lsn,
            ..Default::default()
        }
    }

    /// Feeds one frame at global `offset`. Returns true if the frame ends at a transaction
    /// boundary (a position the log may be truncated to and a new segment may start at).
    pub(crate) fn observe(
        &mut self,
        kind: FrameKind,
        lsn: Lsn,
        payload: &[u8],
        offset: u64,
    ) -> Result<bool, PeekError> {
        let end = match kind {
            FrameKind::Wal => {
                let (p, block) = self.peek.peek(payload)?;
                if block.is_some() {
                    return Ok(false);
                }
                match p {
                    Peeked::Begin { .. } | Peeked::BeginPrepare { .. } => {
                        self.in_txn = true;
                        None
                    }
                    Peeked::Commit { end_lsn, .. } | Peeked::Prepare { end_lsn, .. } => {
                        self.in_txn = false;
                        Some(end_lsn)
                    }
                    Peeked::StreamStart { xid, .. } => {
                        self.open_streams.entry(xid).or_insert(offset);
                        None
                    }
                    Peeked::StreamCommit { xid, end_lsn, .. }
                    | Peeked::StreamPrepare { xid, end_lsn, .. } => {
                        self.open_streams.remove(&xid);
                        Some(end_lsn)
                    }
                    Peeked::StreamAbort { xid, subxid } => {
                        if xid == subxid {
                            self.open_streams.remove(&xid);
                        }
                        None
                    }
                    Peeked::CommitPrepared { end_lsn, .. }
                    | Peeked::RollbackPrepared { end_lsn, .. }
                        if !self.in_txn =>
                    {
                        Some(end_lsn)
                    }
                    _ => None,
                }
            }
            FrameKind::Heartbeat if self.quiescent() => Some(lsn),
            FrameKind::Reset => {
                self.peek.reset();
                self.in_txn = false;
                self.open_streams.clear();
                None
            }
            _ => None,
        };
        match end {
            Some(l) => {
                self.boundary_lsn = self.boundary_lsn.max(l);
                Ok(!self.in_txn && self.peek.in_block().is_none())
            }
            None => Ok(false),
        }
    }

    /// Stops tracking a streamed xid whose commit was dropped. True if it was open.
    pub(crate) fn forget_stream(&mut self, xid: u32) -> bool {
        self.open_streams.remove(&xid).is_some()
    }

    /// Outside any regular transaction and any stream block: a segment may start here.
    pub(crate) fn quiescent(&self) -> bool {
        !self.in_txn && self.peek.in_block().is_none()
    }

    pub(crate) fn stream_open_since(&self) -> Option<u64> {
        self.open_streams.values().min().copied()
    }
}

/// A sync whose fsync has not run yet (see [`LogWriter::begin_sync`]).
pub struct PendingSync {
    file: File,
    path: std::path::PathBuf,
    base: u64,
    file_len: u64,
    durable: Durable,
    tail: Option<Arc<TailSnapshot>>,
    shared: Arc<Shared>,
}

impl PendingSync {
    /// fdatasyncs the segment and publishes the durable position to readers, unless a newer
    /// one was published meanwhile. Blocking: run it where blocking is fine.
    pub fn complete(self) -> Result<Durable, LogError> {
        self.file.sync_data().map_err(io_err(&self.path))?;
        if let Some(seg) = self
            .shared
            .segments()
            .iter_mut()
            .find(|s| s.meta.base == self.base)
        {
            seg.len = seg.len.max(self.file_len);
        }
        let d = self.durable;
        let newer = self.shared.durable.send_if_modified(|cur| {
            let newer = d.offset > cur.offset || (d.offset == cur.offset && d != *cur);
            if newer {
                *cur = d;
            }
            newer
        });
        if newer {
            if let Some(tail) = self.tail {
                self.shared.set_tail(tail);
            }
        }
        // Normally already visible since `begin_sync`; this keeps visible >= durable regardless.
        self.shared.publish_visible(d);
        Ok(d)
    }
}

/// The one writer of a log. Not `Clone`: exactly one task appends.
pub struct LogWriter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) segment_bytes: u64,
    pub(crate) file: File,
    /// Base of the active segment.
    pub(crate) base: u64,
    /// Bytes of the active segment already written to the file (synced or not).
    pub(crate) file_len: u64,
    /// Encoded frames not yet written to the file.
    pub(crate) buf: Vec<u8>,
    pub(crate) dedup: Dedup,
    pub(crate) txn: TxnState,
    pub(crate) prelude: Prelude,
    pub(crate) durable: Durable,
    /// Frames appended since open (synced or not).
    pub(crate) frames: u64,
    pub(crate) poisoned: bool,
    /// `Prelude::frames()` cached by `Prelude::changes()`.
    pub(crate) prelude_cache: Option<(u64, Arc<Vec<PreludeFrame>>)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LogWriter {
    /// Appends one frame (buffered; durable after the next [`LogWriter::sync`]).
    ///
    /// - `'w'`: `payload` is one pgoutput message, `lsn` the XLogData start LSN. Transactions
    ///   PostgreSQL resends after a reconnect (commit end_lsn <= the log's boundary at the last
    ///   reset) are dropped, see [`Dedup`].
    /// - `'x'`: a new walsender session started; append it on every (re)connect.
    /// - `'k'`: a heartbeat: kept only outside any transaction and if `lsn` advances the
    ///   boundary; it then advances the durable LSN (an idle slot can be confirmed).
    /// - `'p'`, `'m'`, `'e'` and unknown kinds are the log's own or the server's: dropped.
    pub fn append(
        &mut self,
        kind: FrameKind,
        lsn: Lsn,
        payload: &[u8],
    ) -> Result<Appended, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(LogError::TooLarge(payload.len()));
        }
        match kind {
            FrameKind::Wal => {
                let verdict = self
                    .dedup
                    .on_wal(payload)
                    .map_err(|source| LogError::Pgoutput { lsn, source })?;
                if verdict == Verdict::Drop {
                    if let Ok(
                        Peeked::StreamCommit { xid, .. } | Peeked::StreamPrepare { xid, .. },
                    ) = super::pgoutput_peek::peek(payload, false)
                    {
                        // Its chunks (if any reached the log) stay uncommitted: stop tracking it.
                        if self.txn.forget_stream(xid) {
                            warn!(xid, %lsn, durable = %self.dedup.from(),
                                "a streamed transaction already in the log was streamed again; its chunks stay \
                                 uncommitted (start replication at the log's durable LSN to avoid this)");
                        }
                        self.prelude.forget_stream(xid);
                    }
                    debug!(%lsn, tag = ?payload.first().map(|&b| b as char), "dropping resent message");
                    return Ok(Appended::Dropped);
                }
            }
            FrameKind::Reset => self.dedup.reset(self.txn.boundary_lsn),
            FrameKind::Heartbeat => {
                if !self.txn.quiescent() || lsn <= self.txn.boundary_lsn {
                    return Ok(Appended::Dropped);
                }
            }
            _ => return Ok(Appended::Dropped),
        }
        if self.txn.quiescent() && self.file_len + self.buf.len() as u64 >= self.segment_bytes {
            self.roll()?;
        }
        let offset = self.end();
        // Dedup already peeked 'w' successfully, so these cannot fail on the same bytes.
        self.txn
            .observe(kind, lsn, payload, offset)
            .map_err(|source| LogError::Pgoutput { lsn, source })?;
        self.prelude
            .observe(kind, lsn, payload)
            .map_err(|source| LogError::Pgoutput { lsn, source })?;
        frame::encode_frame(kind, lsn, payload, &mut self.buf);
        self.frames += 1;
        if self.buf.len() >= WRITE_THROUGH {
            self.write_buffered()?;
        }
        Ok(Appended::Kept { offset })
    }

    /// Shorthand for `append(FrameKind::Wal, lsn, msg)`.
    pub fn append_wal(&mut self, lsn: Lsn, msg: &[u8]) -> Result<Appended, LogError> {
        self.append(FrameKind::Wal, lsn, msg)
    }

    /// Writes buffered frames and fdatasyncs them; then publishes the new [`Durable`] position
    /// to readers. A failed write or sync poisons the writer (after an fsync error the page
    /// cache cannot be trusted): reopen the log.
    pub fn sync(&mut self) -> Result<Durable, LogError> {
        let pending = self.begin_sync()?;
        let d = pending.complete().inspect_err(|_| self.poisoned = true)?;
        self.durable = self.durable.max_by_offset(d);
        Ok(d)
    }

    /// Writes the buffered frames to the file (no fsync) and lets readers serve them
    /// ([`super::Log::visible`]). Cheap enough to call after every burst of appends: one
    /// `pwrite`. Returns the visible position.
    pub fn publish(&mut self) -> Result<Durable, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.write_buffered()?;
        let d = Durable {
            offset: self.end(),
            lsn: self.txn.boundary_lsn,
            frames: self.frames,
        };
        self.shared.publish_visible(d);
        Ok(d)
    }

    /// The first half of a sync, on the writer's thread: writes the buffered frames to the file
    /// (no fsync) and captures what becomes durable once that file is fsynced. The second half,
    /// [`PendingSync::complete`], may run on another thread while this writer goes on
    /// appending; that is how the relay overlaps fsync with ingest (group commit). If it fails,
    /// call [`LogWriter::poison`]: nothing after the last successful sync may be trusted.
    pub fn begin_sync(&mut self) -> Result<PendingSync, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let durable = self.publish()?;
        let path = segment_path(&self.shared.dir, self.base);
        let file = self.file.try_clone().map_err(io_err(&path))?;
        let tail = if self.txn.quiescent() {
            let changes = self.prelude.changes();
            let prelude = match &self.prelude_cache {
                Some((c, frames)) if *c == changes => frames.clone(),
                _ => {
                    let frames = Arc::new(self.prelude.frames());
                    self.prelude_cache = Some((changes, frames.clone()));
                    frames
                }
            };
            Some(Arc::new(TailSnapshot {
                lsn: self.txn.boundary_lsn,
                offset: durable.offset,
                stream_open_since: self.txn.stream_open_since(),
                prelude,
            }))
        } else {
            None
        };
        Ok(PendingSync {
            file,
            path,
            base: self.base,
            file_len: self.file_len,
            durable,
            tail,
            shared: self.shared.clone(),
        })
    }

    /// Marks the writer failed (a [`PendingSync`] could not complete).
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Declares where a fresh log begins: the slot's confirmed_flush_lsn (or its consistent
    /// point when the relay creates the slot). Clients resuming from an older position then get
    /// `ResyncRequired` instead of a silent gap. Only allowed while the log holds no frames.
    pub fn set_start_lsn(&mut self, lsn: Lsn) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let head = (HEADER_LEN + frame::FRAME_PREFIX_LEN + frame::BODY_FIXED_LEN + 24) as u64;
        let mut segs = self.shared.segments();
        if segs.len() != 1 || self.base != 0 || self.file_len != head || !self.buf.is_empty() {
            return Err(LogError::NotEmpty);
        }
        let mut meta = segs[0].meta;
        meta.start_lsn = lsn;
        let mut bytes = Vec::with_capacity(head as usize);
        frame::encode_header(&mut bytes);
        meta.encode_frame(&mut bytes);
        let path = segment_path(&self.shared.dir, self.base);
        self.file.write_all_at(&bytes, 0).map_err(io_err(&path))?;
        self.file.sync_data().map_err(io_err(&path))?;
        segs[0].meta = meta;
        drop(segs);
        self.txn.boundary_lsn = lsn;
        self.dedup.reset(lsn);
        self.durable.lsn = lsn;
        let d = self.durable;
        self.shared.durable.send_replace(d);
        self.shared.visible.send_replace(d);
        Ok(())
    }

    /// The last synced position (as published to readers, whichever thread completed it).
    pub fn durable(&self) -> Durable {
        self.durable.max_by_offset(*self.shared.durable.borrow())
    }

    /// The boundary LSN of everything appended (durable only after `sync`).
    pub fn appended_boundary(&self) -> Lsn {
        self.txn.boundary_lsn
    }

    /// Whether a regular transaction or a stream block is open in what was appended.
    pub fn in_transaction(&self) -> bool {
        !self.txn.quiescent()
    }

    /// The schema prelude as of the last appended frame.
    pub fn prelude(&self) -> &Prelude {
        &self.prelude
    }

    /// Global offset where the next frame goes.
    pub fn end(&self) -> u64 {
        self.base + self.file_len + self.buf.len() as u64
    }

    fn write_buffered(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all_at(&self.buf, self.file_len) {
            self.poisoned = true;
            return Err(io_err(&segment_path(&self.shared.dir, self.base))(e));
        }
        self.file_len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Seals the active segment (durably) and starts a new one at the current end, opening with
    /// the metadata frame and the prelude snapshot.
    fn roll(&mut self) -> Result<(), LogError> {
        self.write_buffered()?;
        let old = segment_path(&self.shared.dir, self.base);
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io_err(&old)(e));
        }
        if let Some(last) = self.shared.segments().last_mut() {
            last.len = self.file_len;
        }
        let base = self.end();
        let meta = SegmentMeta {
            base,
            start_lsn: self.txn.boundary_lsn,
            stream_open_since: self.txn.stream_open_since(),
            created_unix_ms: now_ms(),
        };
        let (file, len) = create_segment(&self.shared.dir, &meta, &self.prelude)
            .inspect_err(|_| self.poisoned = true)?;
        info!(base = format_args!("{base:016x}"), start_lsn = %meta.start_lsn, prelude = self.prelude.len(), "log segment rolled");
        self.shared.segments().push(SegmentInfo { meta, len });
        self.shared.segments_changed();
        self.file = file;
        self.base = base;
        self.file_len = len;
        Ok(())
    }
}

/// Creates a segment file with header, meta frame and prelude frames, fsyncs it and the
/// directory. Returns the file (open for writing) and its length.
pub(crate) fn create_segment(
    dir: &Path,
    meta: &SegmentMeta,
    prelude: &Prelude,
) -> Result<(File, u64), LogError> {
    let path = segment_path(dir, meta.base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut head = Vec::with_capacity(HEADER_LEN + 64 + prelude.bytes() + prelude.len() * 17);
    frame::encode_header(&mut head);
    meta.encode_frame(&mut head);
    for p in prelude.frames() {
        frame::encode_frame(FrameKind::Prelude, p.lsn, &p.msg, &mut head);
    }
    file.write_all_at(&head, 0).map_err(io_err(&path))?;
    file.sync_data().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok((file, head.len() as u64))
}

/// Makes a file creation or deletion in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
