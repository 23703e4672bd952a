//! One replication session end to end: preflight, publication, slot, START_REPLICATION, and the
//! reconnect loop around it. Only terminal errors end [`Session::run`].

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use walcast_decoder::Lsn;

use super::backoff::{Backoff, BackoffConfig};
use super::config::SourceConfig;
use super::conn::{CreateSlotOptions, CreatedSlot, PgOutputOptions, ReplicationConnection};
use super::error::{RetryAdvice, SourceError};
use super::slot::{self, PublicationInfo, PublicationSpec, ServerInfo, SlotInfo, SqlConnection};
use super::stream::{ReplicationMessage, ReplicationStream};
use crate::feedback::{Event, Feedback, FeedbackConfig};

/// Everything a session needs to know.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub conn: SourceConfig,
    pub slot: String,
    pub publication: String,
    pub publication_spec: PublicationSpec,
    /// Create the slot if it does not exist.
    pub create_slot: bool,
    /// Export a snapshot when creating the slot (for a consistent bootstrap).
    pub export_snapshot: bool,
    pub temporary_slot: bool,
    /// Create the slot with two_phase and ask pgoutput for two-phase decoding (PG15+).
    pub two_phase: bool,
    /// pgoutput options; `publication_names` is filled from `publication` when empty.
    pub output: PgOutputOptions,
    /// Start here instead of the slot's confirmed position (the server skips ahead to
    /// confirmed_flush_lsn anyway if this is older).
    pub start_lsn: Option<Lsn>,
    pub backoff: BackoffConfig,
    pub feedback: FeedbackConfig,
    /// Silence from the server for this long makes walcast ask for a reply (a status with
    /// reply_requested); twice this long without any message means the connection is dead
    /// (a black-holed network would otherwise hang until TCP gives up, many minutes later).
    pub receive_timeout: Duration,
}

impl SessionConfig {
    pub fn new(
        conn: SourceConfig,
        slot: impl Into<String>,
        publication: impl Into<String>,
    ) -> SessionConfig {
        let publication = publication.into();
        SessionConfig {
            conn,
            slot: slot.into(),
            output: PgOutputOptions::new(publication.clone()),
            publication,
            publication_spec: PublicationSpec::Existing,
            create_slot: true,
            export_snapshot: true,
            temporary_slot: false,
            two_phase: false,
            start_lsn: None,
            backoff: BackoffConfig::default(),
            feedback: FeedbackConfig::default(),
            receive_timeout: Duration::from_secs(30),
        }
    }
}

/// Preflight done, publication and slot in place, replication connection idle. If the slot was
/// just created, its exported snapshot is valid until [`Prepared::start`]: import it with
/// `BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '<name>'` first.
pub struct Prepared {
    pub server: ServerInfo,
    pub publication: PublicationInfo,
    /// The slot as it was before this session (None if just created).
    pub slot_before: Option<SlotInfo>,
    pub created: Option<CreatedSlot>,
    /// Where streaming will start: the slot's confirmed_flush_lsn, the consistent point of a new
    /// slot, or the configured start.
    pub start_lsn: Lsn,
    /// pgoutput protocol version that will be requested.
    pub proto_version: u32,
    /// An ordinary SQL connection to the same database (for snapshot import, monitoring).
    pub sql: SqlConnection,
    conn: ReplicationConnection,
    slot: String,
    output: PgOutputOptions,
}

impl Prepared {
    pub fn server_major(&self) -> u32 {
        self.server.major
    }

    /// `START_REPLICATION`; the exported snapshot (if any) is gone after this.
    pub async fn start(self) -> Result<Started, SourceError> {
        let stream = self
            .conn
            .start_replication(&self.slot, self.start_lsn, &self.output)
            .await?;
        Ok(Started {
            stream,
            server_major: self.server.major,
            proto_version: self.proto_version,
            start_lsn: self.start_lsn,
            created: self.created,
            publication: self.publication,
            sql: self.sql,
        })
    }
}

/// A running stream and what it was started with.
pub struct Started {
    pub stream: ReplicationStream,
    pub server_major: u32,
    pub proto_version: u32,
    pub start_lsn: Lsn,
    pub created: Option<CreatedSlot>,
    pub publication: PublicationInfo,
    pub sql: SqlConnection,
}

/// Errors a sink returns end [`Session::run`].
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where [`Session::run`] delivers the stream.
pub trait ReplicationSink: Send {
    /// Once per (re)connection, before START_REPLICATION. A new session re-sends Relation/Type
    /// messages, and `p.created` carries the exported snapshot of a just-created slot.
    fn prepared(&mut self, p: &Prepared) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// One pgoutput message, raw.
    fn xlog(
        &mut self,
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        data: Bytes,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The log's durable (fsynced) commit end LSN, and the lowest LSN acked by all registered
    /// durable consumers (None if there are none). Polled often; keep it cheap.
    fn durable(&mut self) -> (Lsn, Option<Lsn>);

    /// Polled between messages: when true, the session makes everything durable, sends a final
    /// status update to PostgreSQL, closes the connection and [`Session::run`] returns
    /// [`RunError::Stopped`].
    fn stop_requested(&self) -> bool {
        false
    }

    /// How soon the session should call [`ReplicationSink::durable`] again while no message
    /// arrives (`None`: the session's own idle poll). A sink with durability work in flight
    /// asks for a short interval.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
}

/// Why [`Session::run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(SourceError),
    #[error("sink: {0}")]
    Sink(SinkError),
    #[error("stopped on request")]
    Stopped,
}

/// How one stream ended.
enum PumpEnd {
    Failed(SourceError),
    Stopped,
}

/// Connects and reconnects one slot's replication session.
pub struct Session {
    cfg: SessionConfig,
    backoff: Backoff,
}

impl Session {
    pub fn new(mut cfg: SessionConfig) -> Session {
        if cfg.output.publication_names.is_empty() {
            cfg.output.publication_names.push(cfg.publication.clone());
        }
        if cfg.two_phase {
            cfg.output.two_phase = true;
        }
        let backoff = Backoff::with_entropy(cfg.backoff);
        Session { cfg, backoff }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// One attempt: preflight, publication, slot, replication connection.
    pub async fn prepare(&mut self) -> Result<Prepared, SourceError> {
        let cfg = &self.cfg;
        let sql = SqlConnection::connect(&cfg.conn).await?;
        let server = slot::preflight(&sql.client).await?;
        let publication =
            slot::ensure_publication(&sql.client, &cfg.publication, &cfg.publication_spec).await?;
        let existing = slot::slot_info(&sql.client, server.major, &cfg.slot).await?;
        if let Some(s) = &existing {
            slot::check_slot(s, &server.database)?;
        }
        let mut conn = ReplicationConnection::connect(&cfg.conn).await?;
        let created = match &existing {
            Some(_) => None,
            None if !cfg.create_slot => {
                return Err(SourceError::SlotMissing {
                    slot: cfg.slot.clone(),
                })
            }
            None => {
                let opts = CreateSlotOptions {
                    temporary: cfg.temporary_slot,
                    two_phase: cfg.two_phase,
                    export_snapshot: cfg.export_snapshot,
                };
                let c = conn.create_slot(&cfg.slot, opts).await?;
                tracing::info!(slot = %c.slot_name, consistent_point = %c.consistent_point, snapshot = ?c.snapshot_name, "created replication slot");
                Some(c)
            }
        };
        let slot_pos = match (&existing, &created) {
            (Some(s), _) => s.confirmed_flush_lsn.unwrap_or(Lsn::ZERO),
            (None, Some(c)) => c.consistent_point,
            (None, None) => Lsn::ZERO,
        };
        let start_lsn = cfg.start_lsn.map_or(slot_pos, |s| s.max(slot_pos));
        let proto_version = cfg.output.effective_proto_version(server.major);
        Ok(Prepared {
            server,
            publication,
            slot_before: existing,
            created,
            start_lsn,
            proto_version,
            sql,
            conn,
            slot: cfg.slot.clone(),
            output: cfg.output.clone(),
        })
    }

    /// [`Self::prepare`], retried with backoff until it works or fails terminally.
    pub async fn prepare_with_retry(&mut self) -> Result<Prepared, SourceError> {
        loop {
            match self.prepare().await {
                Ok(p) => return Ok(p),
                Err(e) => self.after_error(e).await?,
            }
        }
    }

    /// The reconnect backoff (call `connected`/`disconnected` on it in a hand-written loop).
    pub fn backoff_mut(&mut self) -> &mut Backoff {
        &mut self.backoff
    }

    /// For hand-written loops: logs a failed attempt and sleeps the backoff delay, or returns
    /// the error if it is terminal.
    pub async fn after_error(&mut self, e: SourceError) -> Result<(), SourceError> {
        let advice = e.retry_advice();
        if advice == RetryAdvice::Terminal {
            tracing::error!(error = %e, slot = %self.cfg.slot, "replication source stopped: this needs an operator");
            return Err(e);
        }
        let delay = self.backoff.next_delay();
        let attempt = self.backoff.attempts();
        let target = self.cfg.conn.redacted_url();
        if advice == RetryAdvice::RetryLoudly {
            tracing::error!(error = %e, %target, attempt, next_delay = ?delay, "replication source cannot start; retrying");
        } else {
            tracing::warn!(error = %e, %target, attempt, next_delay = ?delay, "replication connection failed; reconnecting");
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Streams forever: prepare, start, hand every message to `sink`, send feedback, and
    /// reconnect after any non-terminal error. Returns only on a terminal error or a sink error.
    pub async fn run<S: ReplicationSink>(&mut self, sink: &mut S) -> RunError {
        loop {
            let prepared = match self.prepare_with_retry().await {
                Ok(p) => p,
                Err(e) => return RunError::Source(e),
            };
            let mut prepared = prepared;
            let confirmed = prepared.start_lsn;
            // Never ask for less than what the sink already holds durably: PostgreSQL then has
            // no committed transaction to send again (the slot's position may lag after a crash).
            let (held, _) = sink.durable();
            if held > prepared.start_lsn {
                prepared.start_lsn = held;
            }
            if let Err(e) = sink.prepared(&prepared).await {
                return RunError::Sink(e);
            }
            let started = match prepared.start().await {
                Ok(s) => s,
                Err(e) => match self.after_error(e).await {
                    Ok(()) => continue,
                    Err(e) => return RunError::Source(e),
                },
            };
            tracing::info!(
                slot = %self.cfg.slot, start = %started.start_lsn, server_major = started.server_major,
                proto_version = started.proto_version, "streaming"
            );
            self.backoff.connected(Instant::now());
            let err = match self.pump(started, confirmed, sink).await {
                Ok(PumpEnd::Failed(e)) => e,
                Ok(PumpEnd::Stopped) => return RunError::Stopped,
                Err(sink_err) => return RunError::Sink(sink_err),
            };
            self.backoff.disconnected(Instant::now());
            if let Err(e) = self.after_error(err).await {
                return RunError::Source(e);
            }
        }
    }

    /// Runs one stream until it fails; returns the stream's error, or a sink error.
    async fn pump<S: ReplicationSink>(
        &mut self,
        started: Started,
        confirmed: Lsn,
        sink: &mut S,
    ) -> Result<PumpEnd, SinkError> {
        let mut stream = started.stream;
        // Streaming may start past the slot's position (the log holds more); durable consumers
        // may still need what lies between, so that is not confirmed until they ack it.
        let mut fb = Feedback::new(started.start_lsn, self.cfg.feedback).with_confirmed(confirmed);
        // Durability news comes by polling the sink; this bounds how stale it gets.
        const POLL: Duration = Duration::from_millis(100);
        // Group commit: while a burst of messages is already buffered, keep appending; ask the
        // sink for durability (which fsyncs) when the burst drains or after this many messages.
        const MAX_BURST: u32 = 4096;
        let mut burst = 0u32;
        let probe_after = self.cfg.receive_timeout;
        let mut last_rx = Instant::now();
        let mut probed = false;
        loop {
            let now = Instant::now();
            let silent = now.saturating_duration_since(last_rx);
            if silent >= probe_after * 2 {
                return Ok(PumpEnd::Failed(SourceError::Timeout(silent)));
            }
            if silent >= probe_after && !probed {
                probed = true;
                let f = fb.sent_flush();
                if let Err(e) = stream.send_status(fb.received().max(f), f, f, true).await {
                    return Ok(PumpEnd::Failed(e));
                }
            }
            let wait = fb
                .next_deadline(now)
                .saturating_duration_since(now)
                .min(sink.poll_interval().unwrap_or(POLL));
            tokio::select! {
                m = stream.next() => match m {
                    Ok(ReplicationMessage::XLogData { wal_start, wal_end, send_time, data }) => {
                        (last_rx, probed) = (Instant::now(), false);
                        fb.on_xlog(wal_end, &data);
                        sink.xlog(wal_start, wal_end, send_time, data).await?;
                    }
                    Ok(ReplicationMessage::Keepalive { wal_end, reply_requested, .. }) => {
                        (last_rx, probed) = (Instant::now(), false);
                        fb.on(Event::Keepalive { wal_end, reply_requested });
                    }
                    Err(e) => return Ok(PumpEnd::Failed(e)),
                },
                _ = tokio::time::sleep(wait) => {}
            }
            burst += 1;
            if stream.has_buffered() && burst < MAX_BURST && !fb.reply_pending() {
                continue;
            }
            burst = 0;
            let (durable, min_ack) = sink.durable();
            fb.on(Event::Durable { lsn: durable });
            fb.on(Event::ConsumerAck { min: min_ack });
            if let Some(st) = fb.poll(Instant::now()) {
                if let Err(e) = stream
                    .send_status(st.write, st.flush, st.apply, st.reply_requested)
                    .await
                {
                    return Ok(PumpEnd::Failed(e));
                }
            }
            if sink.stop_requested() {
                // Let the sink finish making everything durable (bounded), so the final status
                // confirms all of it.
                let give_up = Instant::now() + Duration::from_secs(10);
                while sink.poll_interval().is_some() && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let (durable, min_ack) = sink.durable();
                    fb.on(Event::Durable { lsn: durable });
                    fb.on(Event::ConsumerAck { min: min_ack });
                }
                let flush = fb.allowed_flush();
                if !flush.is_zero() {
                    if let Err(e) = stream.send_status(flush, flush, flush, false).await {
                        tracing::warn!(error = %e, "could not send the final status update");
                    }
                }
                tracing::info!(flush = %flush, "replication stopped; final position confirmed");
                let _ = stream.close().await;
                return Ok(PumpEnd::Stopped);
            }
        }
    }
}
