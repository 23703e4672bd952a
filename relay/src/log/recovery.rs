//! Opening the log: find the segments, verify the tail, cut it back to the last transaction
//! boundary, rebuild the writer's state.
//!
//! Rules:
//! - Sealed segments were fsynced when sealed; only their header/meta is read at startup
//!   (O(number of segments), a few dozen bytes each).
//! - The last segment is scanned frame by frame with checksums. A torn frame (file ends inside
//!   it) or a corrupt one (bad length or checksum) ends the valid data; a warning names the
//!   offset. Everything after the last transaction boundary (Commit, Stream Commit, Prepare,
//!   Stream Prepare, Commit/Rollback Prepared, heartbeat outside a transaction, or the segment
//!   start) is cut too: PostgreSQL never had that position confirmed, so it will resend it.
//! - A last segment whose header or meta frame is torn (crash while rolling) holds nothing
//!   durable and is deleted.
//! - State the writer needs (boundary LSN, prelude, in-flight streams) is rebuilt by replaying
//!   from the last segment's start, or from the oldest in-flight stream's first chunk if that is
//!   earlier: O(tail).
//! - Then a reset frame (`'x'`) is appended and synced: frames readers may have seen past the cut
//!   were part of transactions that clients must discard.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::{info, warn};
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use super::dedup::Dedup;
use super::segment::{list_segments, read_meta, segment_path, ScanError, Scanner, SegmentMeta};
use super::writer::{create_segment, sync_dir, LogWriter, TxnState};
use super::{io_err, Durable, Log, LogConfig, LogError, SegmentInfo, Shared};
use crate::prelude::Prelude;

/// What [`Log::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The log did not exist and was created.
    pub fresh: bool,
    /// Durable position after recovery (before the reset frame appended by open).
    pub durable: Durable,
    /// Kind, LSN and global offset of the last frame kept (meta/prelude frames included).
    pub last_frame: Option<(FrameKind, Lsn, u64)>,
    pub segments: usize,
    /// Frames scanned in the tail (including replay from an in-flight stream's start).
    pub frames_scanned: u64,
    /// Bytes cut from the end of the last segment.
    pub truncated_bytes: u64,
    /// Why the valid data ended before the file did, if it did.
    pub tail_problem: Option<String>,
}

fn corrupt(dir: &Path, base: u64, offset: u64, detail: String) -> LogError {
    LogError::Corrupt {
        path: segment_path(dir, base),
        offset,
        detail,
    }
}

pub(crate) fn open(config: LogConfig) -> Result<(Log, LogWriter, Recovered), LogError> {
    let dir = config.dir.clone();
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Make the new directory's own entry durable too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let mut bases = list_segments(&dir).map_err(io_err(&dir))?;

    // Metas of every segment; a torn meta is only acceptable on the last one.
    let mut infos: Vec<SegmentInfo> = Vec::with_capacity(bases.len());
    while let Some(&last) = bases.last() {
        let path = segment_path(&dir, last);
        match read_meta(&path, last).map_err(io_err(&path))? {
            Some(_) => break,
            None => {
                warn!(path = %path.display(), "deleting last log segment with a torn header (crash while rolling)");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                sync_dir(&dir)?;
                bases.pop();
            }
        }
    }
    for &b in &bases {
        let path = segment_path(&dir, b);
        match read_meta(&path, b).map_err(io_err(&path))? {
            Some((meta, len)) => infos.push(SegmentInfo { meta, len }),
            None => {
                return Err(corrupt(
                    &dir,
                    b,
                    b,
                    "segment header or meta frame is unreadable".into(),
                ))
            }
        }
    }

    let (durable_tx, _) = watch::channel(Durable::default());
    let (visible_tx, _) = watch::channel(Durable::default());
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        read_buffer: config.read_buffer,
        segments: Mutex::new(Vec::new()),
        durable: durable_tx,
        visible: visible_tx,
        generation: AtomicU64::new(0),
        oldest_base: AtomicU64::new(0),
        tail: Mutex::new(None),
    });

    let Some(last) = infos.last().copied() else {
        // Fresh log: one empty segment starting at offset 0, LSN 0.
        let meta = SegmentMeta {
            base: 0,
            start_lsn: Lsn::ZERO,
            stream_open_since: None,
            created_unix_ms: now_ms(),
        };
        let (file, len) = create_segment(&dir, &meta, &Prelude::new())?;
        shared.segments().push(SegmentInfo { meta, len });
        shared.segments_changed();
        let durable = Durable {
            offset: len,
            lsn: Lsn::ZERO,
            frames: 0,
        };
        shared.durable.send_replace(durable);
        shared.visible.send_replace(durable);
        info!(dir = %dir.display(), "created new log");
        let writer = LogWriter {
            shared: shared.clone(),
            segment_bytes: config.segment_bytes,
            file,
            base: 0,
            file_len: len,
            buf: Vec::new(),
            dedup: Dedup::new(Lsn::ZERO),
            txn: TxnState::new(Lsn::ZERO),
            prelude: Prelude::new(),
            durable,
            frames: 0,
            poisoned: false,
            prelude_cache: None,
        };
        let rec = Recovered {
            fresh: true,
            durable,
            last_frame: Some((FrameKind::SegmentMeta, Lsn::ZERO, 0)),
            segments: 1,
            frames_scanned: 0,
            truncated_bytes: 0,
            tail_problem: None,
        };
        return Ok((Log { shared }, writer, rec));
    };

    let base = last.meta.base;
    let first = bases[0];
    // Replay from the oldest in-flight stream's first chunk, if it is still on disk, so stream
    // R/Y promoted by a Stream Commit in the tail reach the prelude.
    let replay_from = match last.meta.stream_open_since {
        Some(s) if s >= first && s < base => s,
        _ => last.meta.first_frame(),
    };

    // Pass 1: find the last boundary in the last segment.
    let file_end = base + last.len;
    let mut scanner = Scanner::new(&dir, bases.clone(), replay_from, config.read_buffer);
    let mut txn = TxnState::new(Lsn::ZERO);
    let mut cut = last.meta.first_frame();
    let mut cut_lsn = last.meta.start_lsn;
    let mut frames_scanned = 0u64;
    let mut tail_problem = None;
    loop {
        let item = scanner.next(file_end, true);
        let f = match item {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(ScanError::Torn { offset }) if offset < base => {
                // A sealed segment (replayed for an in-flight stream) is short: not a crash tail.
                return Err(corrupt(
                    &dir,
                    base,
                    offset,
                    "sealed segment ends early".into(),
                ));
            }
            Err(ScanError::Torn { offset }) => {
                if offset < file_end {
                    tail_problem = Some(format!("torn frame at offset {offset}"));
                }
                break;
            }
            Err(ScanError::Corrupt { offset, error }) if offset >= base => {
                tail_problem = Some(format!("corrupt frame at offset {offset}: {error}"));
                break;
            }
            Err(ScanError::Corrupt { offset, error }) => {
                return Err(corrupt(&dir, base, offset, error.to_string()));
            }
            Err(ScanError::Gone { offset }) => {
                return Err(corrupt(
                    &dir,
                    base,
                    offset,
                    "segment vanished during recovery".into(),
                ))
            }
            Err(ScanError::Io { path, source }) => return Err(LogError::Io { path, source }),
        };
        frames_scanned += 1;
        let (offset, end) = (f.offset, f.end());
        let in_tail = offset >= base;
        match f.kind {
            FrameKind::SegmentMeta | FrameKind::Prelude if in_tail => {
                cut = end;
                cut_lsn = last.meta.start_lsn;
            }
            _ => {
                let boundary = txn
                    .observe(f.kind, f.lsn, f.payload, offset)
                    .map_err(|e| corrupt(&dir, base, offset, e.to_string()))?;
                if boundary && in_tail {
                    cut = end;
                    cut_lsn = txn.boundary_lsn;
                }
            }
        }
    }
    let truncated_bytes = file_end - cut;
    if truncated_bytes > 0 {
        let path = segment_path(&dir, base);
        warn!(
            path = %path.display(),
            offset = cut,
            bytes = truncated_bytes,
            problem = tail_problem.as_deref().unwrap_or("incomplete transaction"),
            "truncating log tail to the last transaction boundary"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_len(cut - base).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
    }

    // Pass 2: rebuild prelude and transaction state up to the cut.
    let mut scanner = Scanner::new(&dir, bases.clone(), replay_from, config.read_buffer);
    let mut txn = TxnState::new(cut_lsn);
    let mut prelude = Prelude::new();
    let mut last_frame = None;
    while let Some(f) = scanner
        .next(cut, false)
        .map_err(|e| corrupt(&dir, base, scanner_pos(&e), format!("{e:?}")))?
    {
        prelude
            .observe(f.kind, f.lsn, f.payload)
            .map_err(|e| corrupt(&dir, base, f.offset, e.to_string()))?;
        if !matches!(f.kind, FrameKind::SegmentMeta | FrameKind::Prelude) {
            txn.observe(f.kind, f.lsn, f.payload, f.offset)
                .map_err(|e| corrupt(&dir, base, f.offset, e.to_string()))?;
        }
        last_frame = Some((f.kind, f.lsn, f.offset));
    }
    txn.boundary_lsn = cut_lsn;

    let path = segment_path(&dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    if let Some(l) = infos.last_mut() {
        l.len = cut - base;
    }
    let segments = infos.len();
    *shared.segments() = infos;
    shared.segments_changed();
    let durable = Durable {
        offset: cut,
        lsn: cut_lsn,
        frames: 0,
    };
    shared.durable.send_replace(durable);
    shared.visible.send_replace(durable);
    let mut writer = LogWriter {
        shared: shared.clone(),
        segment_bytes: config.segment_bytes,
        file,
        base,
        file_len: cut - base,
        buf: Vec::new(),
        dedup: Dedup::new(cut_lsn),
        txn,
        prelude,
        durable,
        frames: 0,
        poisoned: false,
        prelude_cache: None,
    };
    info!(dir = %dir.display(), segments, durable_lsn = %cut_lsn, truncated_bytes, "log recovered");
    // A log that holds nothing but its first segment's head stays empty, so the relay can still
    // declare its start LSN (`set_start_lsn`) after a crash before the first append.
    let empty = segments == 1 && base == 0 && cut == last.meta.first_frame() + meta_frame_len();
    if !empty {
        writer.append(FrameKind::Reset, cut_lsn, &[])?;
        writer.sync()?;
    }
    let rec = Recovered {
        fresh: false,
        durable,
        last_frame,
        segments,
        frames_scanned,
        truncated_bytes,
        tail_problem,
    };
    Ok((Log { shared }, writer, rec))
}

fn meta_frame_len() -> u64 {
    (walcast_decoder::frame::FRAME_PREFIX_LEN + walcast_decoder::frame::BODY_FIXED_LEN + 24) as u64
}

fn scanner_pos(e: &ScanError) -> u64 {
    match e {
        ScanError::Torn { offset }
        | ScanError::Corrupt { offset, .. }
        | ScanError::Gone { offset } => *offset,
        ScanError::Io { .. } => 0,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
