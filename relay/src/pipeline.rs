//! The ingest path: what the replication session receives goes into the log, and the log's
//! durable position goes back to the session as the LSN it may confirm.
//!
//! Group commit: the session appends a burst of messages and asks for durability when the burst
//! drains. The sink then writes what it buffered to the file, which lets clients read it at
//! once (before any fsync: a live client does not wait for the disk), and hands the fsync to a
//! blocking thread, going on appending while the disk works; when the fsync completes, the
//! session confirms the new durable position to PostgreSQL on its next poll. Only one fsync is
//! in flight at a time, so each covers everything appended while the previous one ran.
//! PostgreSQL never hears of a flush position that is not on disk here, so whatever an OS crash
//! takes from the unsynced tail, the server sends again with the same LSNs.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use crate::log::{Appended, Durable, LogError, LogWriter};
use crate::metrics::Metrics;
use crate::serve::status::StatusBoard;
use crate::source::{Prepared, ReplicationSink, SinkError};

/// The lowest LSN that registered durable consumers have acknowledged (`None`: no such consumer).
pub type ConsumerFloor = Arc<dyn Fn() -> Option<Lsn> + Send + Sync>;

pub struct LogSink {
    writer: LogWriter,
    metrics: Arc<Metrics>,
    board: Arc<StatusBoard>,
    sessions: u64,
    unsynced: bool,
    /// A sync failure: the next append reports it and stops the session (the log must be reopened).
    failed: Option<LogError>,
    consumer_floor: Option<ConsumerFloor>,
    shutdown: watch::Receiver<bool>,
    /// The fsync running on a blocking thread, if any; it returns when it published.
    in_flight: Option<tokio::task::JoinHandle<Result<(Durable, Instant), LogError>>>,
    /// Commits received but not yet durable, with when they arrived (for the latency metrics;
    /// bounded by [`MAX_TIMED`]: commits beyond it are not timed).
    awaiting_durable: VecDeque<(Lsn, Instant)>,
    /// The same, not yet readable by clients.
    awaiting_servable: VecDeque<(Lsn, Instant)>,
}

/// How many commits at most wait in the latency bookkeeping.
const MAX_TIMED: usize = 8192;

impl LogSink {
    pub fn new(
        writer: LogWriter,
        metrics: Arc<Metrics>,
        board: Arc<StatusBoard>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        metrics.durable_lsn.store(writer.durable().lsn.0, Relaxed);
        LogSink {
            writer,
            metrics,
            board,
            sessions: 0,
            unsynced: false,
            failed: None,
            consumer_floor: None,
            shutdown,
            in_flight: None,
            awaiting_durable: VecDeque::new(),
            awaiting_servable: VecDeque::new(),
        }
    }

    pub fn with_consumer_floor(mut self, floor: ConsumerFloor) -> Self {
        self.consumer_floor = Some(floor);
        self
    }

    /// Makes everything appended durable now (waits for an fsync in flight, then syncs the rest).
    pub async fn sync(&mut self) -> Result<(), LogError> {
        if let Some(task) = self.in_flight.take() {
            self.finish(task.await)?;
        }
        if !self.unsynced {
            return Ok(());
        }
        let pending = self.writer.begin_sync()?;
        self.unsynced = false;
        let done = tokio::task::spawn_blocking(move || complete_timed(pending)).await;
        self.finish(done)
    }

    /// Lets clients read everything appended (written to the file, not fsynced).
    fn publish(&mut self) -> Result<(), LogError> {
        let visible = self.writer.publish()?;
        let now = Instant::now();
        while let Some(&(lsn, received)) = self.awaiting_servable.front() {
            if lsn > visible.lsn {
                break;
            }
            self.awaiting_servable.pop_front();
            self.metrics
                .commit_servable
                .observe(now.saturating_duration_since(received));
        }
        Ok(())
    }

    /// Starts an fsync of what was appended if none is running; collects a finished one.
    fn pump_sync(&mut self) -> Result<(), LogError> {
        if let Some(task) = &self.in_flight {
            if !task.is_finished() {
                return Ok(());
            }
            let task = self.in_flight.take().expect("checked above");
            let done = futures_util::FutureExt::now_or_never(task).expect("finished task is ready");
            self.finish(done)?;
        }
        if self.unsynced {
            let pending = self.writer.begin_sync()?;
            self.unsynced = false;
            self.in_flight = Some(tokio::task::spawn_blocking(move || complete_timed(pending)));
        }
        Ok(())
    }

    fn finish(
        &mut self,
        done: Result<Result<(Durable, Instant), LogError>, tokio::task::JoinError>,
    ) -> Result<(), LogError> {
        let result = done.unwrap_or_else(|e| {
            Err(LogError::Io {
                path: Default::default(),
                source: std::io::Error::other(format!("fsync task failed: {e}")),
            })
        });
        match result {
            Ok((d, at)) => {
                self.metrics.durable_lsn.fetch_max(d.lsn.0, Relaxed);
                while let Some(&(lsn, received)) = self.awaiting_durable.front() {
                    if lsn > d.lsn {
                        break;
                    }
                    self.awaiting_durable.pop_front();
                    let waited = at.saturating_duration_since(received);
                    self.metrics.commit_durable.observe(waited);
                }
                Ok(())
            }
            Err(e) => {
                // After a failed fsync the page cache cannot be trusted: stop appending.
                self.writer.poison();
                Err(e)
            }
        }
    }

    pub fn into_writer(self) -> LogWriter {
        self.writer
    }
}

/// The fsync half of a sync, noting when its position was published.
fn complete_timed(pending: crate::log::PendingSync) -> Result<(Durable, Instant), LogError> {
    pending.complete().map(|d| (d, Instant::now()))
}

/// A Commit message's end LSN and commit timestamp (`C`: flags @1, commit_lsn @2, end_lsn @10,
/// timestamp @18).
fn commit_times(msg: &[u8]) -> Option<(Lsn, i64)> {
    if msg.first() != Some(&b'C') {
        return None;
    }
    let end = u64::from_be_bytes(msg.get(10..18)?.try_into().ok()?);
    let ts = i64::from_be_bytes(msg.get(18..26)?.try_into().ok()?);
    Some((Lsn(end), ts))
}

impl ReplicationSink for LogSink {
    async fn prepared(&mut self, p: &Prepared) -> Result<(), SinkError> {
        if let Some(e) = self.failed.take() {
            return Err(Box::new(e));
        }
        let fresh = self.writer.durable().frames == 0 && self.writer.durable().lsn.is_zero();
        if self.sessions == 0 && fresh {
            // A fresh log starts where the slot does: clients asking for anything older get
            // "resync required" rather than a silent gap. (NotEmpty: the log already has data.)
            match self.writer.set_start_lsn(p.start_lsn) {
                Ok(()) | Err(LogError::NotEmpty) => {}
                Err(e) => return Err(Box::new(e)),
            }
        }
        // Every new walsender session: clients must drop in-flight streamed transactions, and
        // the log starts dropping what PostgreSQL resends from the slot's confirmed position.
        self.writer
            .append(FrameKind::Reset, self.writer.appended_boundary(), &[])?;
        self.unsynced = true;
        if self.sessions > 0 {
            self.metrics.source_reconnects.fetch_add(1, Relaxed);
        }
        self.sessions += 1;
        self.board.update(|f| {
            f.server_version = Some(p.server.version_num.to_string());
            f.proto_version = Some(p.proto_version);
            f.state = "streaming".into();
            f.last_error = None;
        });
        self.metrics.source_connected.store(1, Relaxed);
        Ok(())
    }

    async fn xlog(
        &mut self,
        wal_start: Lsn,
        wal_end: Lsn,
        _send_time: i64,
        data: Bytes,
    ) -> Result<(), SinkError> {
        if let Some(e) = self.failed.take() {
            return Err(Box::new(e));
        }
        self.metrics.source_wal_end.fetch_max(wal_end.0, Relaxed);
        match self.writer.append_wal(wal_start, &data)? {
            Appended::Kept { .. } => {
                self.metrics.frames_in.fetch_add(1, Relaxed);
                self.metrics.bytes_in.fetch_add(data.len() as u64, Relaxed);
                if matches!(data.first(), Some(b'C' | b'c' | b'K' | b'r' | b'P' | b'p')) {
                    self.metrics.transactions_logged.fetch_add(1, Relaxed);
                }
                if let Some((end_lsn, commit_time)) = commit_times(&data) {
                    let delay = crate::source::pg_micros(SystemTime::now()) - commit_time;
                    if let Ok(us) = u64::try_from(delay) {
                        self.metrics
                            .commit_received
                            .observe(Duration::from_micros(us));
                    }
                    let now = Instant::now();
                    if self.awaiting_durable.len() < MAX_TIMED {
                        self.awaiting_durable.push_back((end_lsn, now));
                    }
                    if self.awaiting_servable.len() < MAX_TIMED {
                        self.awaiting_servable.push_back((end_lsn, now));
                    }
                }
                self.unsynced = true;
            }
            Appended::Dropped => {
                self.metrics.duplicates_dropped.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    fn durable(&mut self) -> (Lsn, Option<Lsn>) {
        if self.failed.is_none() {
            if let Err(e) = self.publish().and_then(|()| self.pump_sync()) {
                tracing::error!(error = %e, "making the log durable failed; stopping replication (nothing is confirmed past the last good sync)");
                self.failed = Some(e);
            }
        }
        let floor = self.consumer_floor.as_ref().and_then(|f| f());
        (self.writer.durable().lsn, floor)
    }

    fn poll_interval(&self) -> Option<std::time::Duration> {
        // While an fsync runs or data waits for one, look again soon: the next fsync should
        // start as soon as this one ends, not at the session's idle poll.
        let busy = self.failed.is_none() && (self.in_flight.is_some() || self.unsynced);
        busy.then_some(std::time::Duration::from_millis(1))
    }

    fn stop_requested(&self) -> bool {
        *self.shutdown.borrow() || self.failed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commit_end_lsn_and_time() {
        let mut c = vec![b'C', 0];
        c.extend_from_slice(&0x10u64.to_be_bytes());
        c.extend_from_slice(&0x28u64.to_be_bytes());
        c.extend_from_slice(&777i64.to_be_bytes());
        assert_eq!(commit_times(&c), Some((Lsn(0x28), 777)));
        assert_eq!(commit_times(&c[..25]), None);
        c[0] = b'B';
        assert_eq!(commit_times(&c), None);
    }
}
