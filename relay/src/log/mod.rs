//! The durable log: append-only, segmented, checksummed files of walcast frames.
//!
//! One [`LogWriter`] appends what the replication source receives and makes it durable with
//! [`LogWriter::sync`] (group commit: append many, sync once). Any number of [`LogReader`]s
//! serve clients from a resume position. Readers see what was *written* to the segment files
//! ([`Log::visible`]), which may be ahead of what is fsynced ([`Log::durable`]): live clients
//! then do not wait for the disk. Only the durable position is ever confirmed to PostgreSQL,
//! so a tail lost in an OS crash is sent again by the server with the same LSNs (see
//! `docs/frames.md`, "LSN and resume semantics"). The files use the same frame format as the
//! wire (`docs/frames.md`), so serving copies bytes.
//!
//! - [`segment`]: file naming, the per-segment metadata frame, the bounded-buffer scanner.
//! - [`writer`]: appending, rolling segments, the durable position, reconnect dedup.
//! - [`recovery`]: what [`Log::open`] does after a crash: truncate to the last good commit.
//! - [`reader`]: positioning at `from=X`, the schema prelude as of X, following the writer.
//! - [`retention`]: which sealed segments may be deleted (pure), and deleting them.
//! - [`dedup`], [`pgoutput_peek`]: the pure pieces of pgoutput the log needs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use walcast_decoder::Lsn;

pub mod dedup;
pub mod pgoutput_peek;
pub mod reader;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod writer;

pub use dedup::{Dedup, Verdict};
pub use reader::{LogReader, OwnedFrame};
pub use recovery::Recovered;
pub use retention::{RetentionPolicy, RetentionReport};
pub use segment::SegmentMeta;
pub use writer::{Appended, LogWriter, PendingSync};

/// Default segment roll size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default reader buffer: 256 KiB (grows only for a single larger frame).
pub const DEFAULT_READ_BUFFER: usize = 256 << 10;

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Directory holding the segment files (the relay uses `<data-dir>/log`). Created if missing.
    pub dir: PathBuf,
    /// A segment is sealed and a new one started at the first transaction boundary after it
    /// reaches this size. One transaction (without streaming) may overshoot it.
    pub segment_bytes: u64,
    /// Readers' file buffer size.
    pub read_buffer: usize,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            read_buffer: DEFAULT_READ_BUFFER,
        }
    }
}

/// How far the log is durable (fsynced). Published by the writer after every `sync`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// Global byte offset up to which frames are fsynced. Readers never read past it.
    pub offset: u64,
    /// The end LSN of the last fsynced transaction boundary (Commit, Stream Commit, Prepare,
    /// Stream Prepare, Commit/Rollback Prepared, or a heartbeat outside a transaction): what the
    /// relay may confirm to PostgreSQL as flushed, as far as the log is concerned.
    pub lsn: Lsn,
    /// Number of frames fsynced since the log was opened.
    pub frames: u64,
}

impl Durable {
    /// The later of two positions (by log offset).
    pub fn max_by_offset(self, other: Durable) -> Durable {
        if other.offset > self.offset {
            other
        } else {
            self
        }
    }
}

/// Errors of the log. Positions are global byte offsets unless named otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The client asked for changes the log no longer holds (or never held): it must
    /// bootstrap again. Sent to clients as an `'e'` frame with code `resync_required`.
    #[error("resync required: changes after {requested} are no longer in the log (oldest available: {oldest_available})")]
    ResyncRequired {
        requested: Lsn,
        oldest_available: Lsn,
    },
    /// The client claims a position the log never reached: it comes from another log (the
    /// relay's data was wiped, or another relay). Serving it would silently skip changes.
    #[error("requested position {requested} is ahead of the log (durable up to {durable})")]
    AheadOfLog { requested: Lsn, durable: Lsn },
    /// [`LogWriter::set_start_lsn`] after data was written.
    #[error("the log's start LSN can only be set on an empty log")]
    NotEmpty,
    #[error("corrupt log at offset {offset} in {path}: {detail}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("payload of {0} bytes exceeds the 64 MiB frame limit")]
    TooLarge(usize),
    #[error("malformed pgoutput message at {lsn}: {source}")]
    Pgoutput {
        lsn: Lsn,
        source: pgoutput_peek::PeekError,
    },
    #[error("the log writer failed earlier and must be reopened")]
    Poisoned,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A segment as the log knows it in memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub meta: SegmentMeta,
    /// File length; for the active segment, the length at the last sync.
    pub len: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) read_buffer: usize,
    pub(crate) segments: Mutex<Vec<SegmentInfo>>,
    pub(crate) durable: watch::Sender<Durable>,
    /// What readers may serve: written to the files (maybe not fsynced yet). Never behind
    /// `durable`.
    pub(crate) visible: watch::Sender<Durable>,
    /// Bumped whenever a segment is added or removed, so readers refresh their list cheaply.
    pub(crate) generation: AtomicU64,
    /// Base of the oldest segment on disk; a reader positioned below it lost its data.
    pub(crate) oldest_base: AtomicU64,
    /// The writer's state at its last quiescent sync, so readers resuming exactly there (the
    /// common reconnect of a caught-up client) skip the pre-scan.
    pub(crate) tail: Mutex<Option<Arc<TailSnapshot>>>,
}

/// Where a reader resuming from `lsn` can start without scanning: at `offset` (or earlier at
/// `stream_open_since`), with `prelude` as the schema.
#[derive(Debug)]
pub(crate) struct TailSnapshot {
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) stream_open_since: Option<u64>,
    pub(crate) prelude: Arc<Vec<crate::prelude::PreludeFrame>>,
}

impl Shared {
    pub(crate) fn segments(&self) -> MutexGuard<'_, Vec<SegmentInfo>> {
        // A panic while holding this lock cannot leave the Vec half-updated in a way that matters
        // more than stopping; recover the data rather than propagate the poison.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Call after changing the segment list (with the lock released).
    pub(crate) fn segments_changed(&self) {
        let oldest = self.segments().first().map(|s| s.meta.base).unwrap_or(0);
        self.oldest_base.store(oldest, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Raises the visible position to `d` (never lowers it); wakes readers if it moved.
    pub(crate) fn publish_visible(&self, d: Durable) {
        self.visible.send_if_modified(|cur| {
            let newer = d.offset > cur.offset || (d.offset == cur.offset && d.lsn > cur.lsn);
            if newer {
                *cur = d;
            }
            newer
        });
    }

    pub(crate) fn tail(&self) -> Option<Arc<TailSnapshot>> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_tail(&self, t: Arc<TailSnapshot>) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn oldest_base(&self) -> u64 {
        self.oldest_base.load(Ordering::Acquire)
    }
}

/// A cheap, cloneable handle on an open log, for readers and retention.
#[derive(Clone, Debug)]
pub struct Log {
    pub(crate) shared: Arc<Shared>,
}

impl Log {
    /// Opens (or creates) the log in `config.dir`, recovering from a crash if needed, and returns
    /// the handle, the single writer, and what recovery found. See [`recovery`].
    pub fn open(config: LogConfig) -> Result<(Log, LogWriter, Recovered), LogError> {
        recovery::open(config)
    }

    /// Watch the durable position; `changed()` fires after each `sync` that made progress.
    pub fn subscribe(&self) -> watch::Receiver<Durable> {
        self.shared.durable.subscribe()
    }

    pub fn durable(&self) -> Durable {
        *self.shared.durable.borrow()
    }

    /// How far readers may read: frames written to the segment files, fsynced or not (at or
    /// ahead of [`Log::durable`]). A process crash keeps them (the page cache survives it); an
    /// OS crash may lose them, and PostgreSQL then sends them again, as nothing past
    /// [`Log::durable`] was confirmed.
    pub fn visible(&self) -> Durable {
        *self.shared.visible.borrow()
    }

    /// Watch the visible position; `changed()` fires whenever readers have more to read.
    pub fn subscribe_visible(&self) -> watch::Receiver<Durable> {
        self.shared.visible.subscribe()
    }

    /// A reader positioned for a client that says it applied every transaction whose commit
    /// end_lsn <= `from` (`None`: everything retained). See [`LogReader::open`].
    pub fn reader(&self, from: Option<Lsn>) -> Result<LogReader, LogError> {
        LogReader::open(self, from)
    }

    /// Segments currently in the log, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segments().clone()
    }

    /// The oldest LSN a client may resume from without `ResyncRequired`.
    pub fn oldest_available(&self) -> Lsn {
        reader::oldest_servable(&self.shared.segments())
            .map(|(_, lsn)| lsn)
            .unwrap_or(Lsn::ZERO)
    }

    /// Total bytes of all segment files.
    pub fn total_bytes(&self) -> u64 {
        self.shared.segments().iter().map(|s| s.len).sum()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}
