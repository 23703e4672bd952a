//! Consistent bootstrap (`docs/bootstrap.md`): the rows of every published table as of one
//! consistent point, in the same frames and decoder path as changes, followed by the relay's
//! stream from that point.
//!
//! - [`pgoutput`]: Relation/Type/Insert messages and the COPY text reader (pure).
//! - [`catalog`]: which tables and columns, from pg_catalog under the snapshot.
//! - [`job`]: one copy under one exported snapshot into an image file.
//! - [`baseline`]: the relay's own slot's exported snapshot as the first image.
//! - [`stream`]: serving an image to one client, then handing over to the log.
//!
//! [`Bootstrapper`] shares the work: every client arriving while an image is usable (its
//! consistent point still inside the log's retention) streams that file; clients arriving while
//! a job runs wait for it; a new job starts only when there is no usable image. So a thousand
//! clients cost PostgreSQL one snapshot transaction per `parallel` connection, not a thousand.
//! An image is offered to new clients for `max_age`; after that the next request builds a newer
//! one (less log to replay), and clients still streaming the old one keep their file open.

pub mod baseline;
pub mod catalog;
pub mod job;
pub mod pgoutput;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use walcast_decoder::Lsn;

pub use baseline::BaselineSink;
pub use job::{Built, JobConfig};
pub use stream::{BootStep, BootStream};

use crate::log::Log;
use crate::metrics::Metrics;
use crate::source::SourceError;

/// Why a bootstrap job failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("bootstrap query failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("bootstrap image {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bootstrap: a COPY row of {table} is malformed: {error}")]
    Row {
        table: String,
        error: pgoutput::CopyRowError,
    },
    #[error("bootstrap: {0}")]
    Snapshot(String),
}

impl BootstrapError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BootstrapError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A finished image file. The file is deleted when the last holder (the bootstrapper's current
/// image, or a client still streaming it) lets go.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub built: Built,
    pub finished: Instant,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

type JobResult = Option<Result<Arc<Image>, String>>;

#[derive(Default)]
struct State {
    current: Option<Arc<Image>>,
    running: Option<watch::Receiver<JobResult>>,
}

/// Runs bootstrap jobs and shares their images between clients.
pub struct Bootstrapper {
    cfg: JobConfig,
    dir: PathBuf,
    log: Log,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    seq: AtomicU64,
    /// Whether the relay's own slot exists. A job's consistent point lies inside the log only
    /// if its temporary slot is created after the relay's slot, so jobs wait for this.
    slot_ready: watch::Sender<bool>,
}

impl Bootstrapper {
    /// Images go to `dir` (created; leftovers of an earlier run are removed: their snapshot
    /// transactions are gone, and a restart builds new ones on demand).
    pub fn new(
        cfg: JobConfig,
        dir: PathBuf,
        log: Log,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Bootstrapper>> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("image-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(Bootstrapper {
            cfg,
            dir,
            log,
            metrics,
            state: Mutex::new(State::default()),
            seq: AtomicU64::new(0),
            slot_ready: watch::Sender::new(false),
        }))
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Records that the relay's slot exists (the replication session is prepared): from now on
    /// a job's temporary slot starts at or after the relay's, inside what the log will hold.
    pub fn slot_ready(&self) {
        self.slot_ready.send_replace(true);
    }

    /// An image a client can start from now: the current one if the log still holds its
    /// consistent point, else the running job's, else a new job's. Before the relay's slot
    /// exists it waits: a job started then would have a consistent point older than anything
    /// the log will ever hold, and its client could only be told to resync.
    pub async fn image(self: &Arc<Self>) -> Result<Arc<Image>, String> {
        self.slot_ready
            .subscribe()
            .wait_for(|ready| *ready)
            .await
            .map_err(|_| "the relay stopped before its slot existed".to_string())?;
        let mut rx = {
            let mut st = self.state.lock().map_err(|_| "bootstrap state poisoned")?;
            if let Some(img) = &st.current {
                if img.finished.elapsed() <= self.cfg.max_age
                    && img.built.consistent_point >= self.log.oldest_available()
                {
                    return Ok(img.clone());
                }
                st.current = None;
            }
            match &st.running {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    st.running = Some(rx.clone());
                    let me = self.clone();
                    tokio::spawn(async move {
                        let result = me.run_job().await;
                        me.publish(result, &tx);
                    });
                    rx
                }
            }
        };
        Self::wait(&mut rx).await
    }

    /// Builds the image from a snapshot another connection exported (the relay's own slot at
    /// creation: `docs/bootstrap.md`, "Initial baseline"). The caller keeps the exporting
    /// connection idle until this returns. Clients asking meanwhile wait for this image.
    pub async fn build_from_snapshot(
        self: &Arc<Self>,
        snapshot: &str,
        consistent_point: Lsn,
    ) -> Result<Arc<Image>, String> {
        let (tx, mut rx) = watch::channel(None);
        {
            let mut st = self.state.lock().map_err(|_| "bootstrap state poisoned")?;
            st.running = Some(rx.clone());
        }
        // Clients waiting for the slot now join this image.
        self.slot_ready();
        self.metrics.bootstrap_jobs.fetch_add(1, Relaxed);
        self.metrics.bootstrap_running.store(1, Relaxed);
        let path = job::image_path(&self.dir, consistent_point);
        let result = async {
            let conns = job::import(&self.cfg.source, snapshot, self.cfg.parallel).await?;
            job::copy(&self.cfg, conns, consistent_point, &path, &self.metrics).await
        }
        .await
        .map(|built| {
            Arc::new(Image {
                path,
                built,
                finished: Instant::now(),
            })
        });
        self.publish(result, &tx);
        Self::wait(&mut rx).await
    }

    async fn wait(rx: &mut watch::Receiver<JobResult>) -> Result<Arc<Image>, String> {
        let r = rx
            .wait_for(|r| r.is_some())
            .await
            .map_err(|_| "the bootstrap job ended without a result".to_string())?;
        r.clone()
            .unwrap_or_else(|| Err("the bootstrap job ended without a result".into()))
    }

    async fn run_job(&self) -> Result<Arc<Image>, BootstrapError> {
        self.metrics.bootstrap_jobs.fetch_add(1, Relaxed);
        self.metrics.bootstrap_running.store(1, Relaxed);
        let n = self.seq.fetch_add(1, Relaxed);
        let slot = format!("walcast_boot_{}_{n}", std::process::id());
        // The file name needs the consistent point, known only once the slot exists: write
        // under a per-job name and rename.
        let staging = self.dir.join(format!("image-job-{n}.wcb"));
        let built = job::run(&self.cfg, &slot, &staging, &self.metrics).await?;
        let path = job::image_path(&self.dir, built.consistent_point);
        tokio::fs::rename(&staging, &path)
            .await
            .map_err(|e| BootstrapError::io(&path, e))?;
        Ok(Arc::new(Image {
            path,
            built,
            finished: Instant::now(),
        }))
    }

    fn publish(&self, result: Result<Arc<Image>, BootstrapError>, tx: &watch::Sender<JobResult>) {
        self.metrics.bootstrap_running.store(0, Relaxed);
        let shared = match result {
            Ok(img) => Ok(img),
            Err(e) => {
                self.metrics.bootstrap_failures.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "bootstrap job failed");
                Err(e.to_string())
            }
        };
        if let Ok(mut st) = self.state.lock() {
            st.running = None;
            if let Ok(img) = &shared {
                st.current = Some(img.clone());
            }
        }
        let _ = tx.send(Some(shared));
    }
}
