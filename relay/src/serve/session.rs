//! One client's stream, independent of the transport: read the log from the client's position,
//! filter by table, and hand out chunks of encoded frames. Each client reads at its own pace
//! with a bounded buffer, so a slow or stuck client never holds back the slot or anyone else.

use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use walcast_decoder::frame::{self, FrameKind};
use walcast_decoder::Lsn;

use super::classify::Classifier;
use super::filter::TableFilter;
use super::published::Published;
use super::request::StreamRequest;
use super::scope::{RouteMemo, ScopeFilter, Verdict};
use crate::bootstrap::{BootStep, BootStream};
use crate::consumers::{Connected, ConsumerError, Registry};
use crate::log::{Durable, Log, LogError, LogReader, OwnedFrame};
use crate::metrics::Metrics;

/// Target size of one chunk handed to the transport.
pub const CHUNK_BYTES: usize = 32 * 1024;

/// How often an idle stream sends a heartbeat (so clients can tell a live stream from a dead one).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("resync required: changes after {requested} are no longer retained (oldest available: {oldest_available})")]
    ResyncRequired {
        requested: Lsn,
        oldest_available: Lsn,
    },
    #[error("the relay is shutting down")]
    ShuttingDown,
    #[error("log error: {0}")]
    Log(LogError),
    /// The named durable consumer is not registered.
    #[error(transparent)]
    Consumer(ConsumerError),
    /// The request is valid but not allowed for this client.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request names tables the publication does not have.
    #[error("the publication has no table {}: check the name (schema.table) and the relay's --publication", .0.join(", "))]
    UnknownTables(Vec<String>),
}

impl OpenError {
    /// Stable code for the `{"code","message"}` error body and `'e'` frames.
    pub fn code(&self) -> &'static str {
        match self {
            OpenError::ResyncRequired { .. } => "resync_required",
            OpenError::ShuttingDown => "shutdown",
            OpenError::Log(_) => "internal",
            OpenError::Consumer(e) => e.code(),
            OpenError::Forbidden(_) => "forbidden",
            OpenError::UnknownTables(_) => "unknown_table",
        }
    }
}

/// What the serving side shares with every client stream.
#[derive(Clone)]
pub struct Hub {
    pub log: Log,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    pub consumers: Arc<Registry>,
    /// Changes on row-scoped tables, decoded once for all clients.
    pub routes: Arc<RouteMemo>,
    /// Serves `bootstrap` requests (`docs/bootstrap.md`); `None`: they are refused.
    pub bootstrap: Option<Arc<crate::bootstrap::Bootstrapper>>,
    /// The publication's tables, as last read.
    pub published: Arc<Published>,
}

impl Hub {
    /// [`Hub::open`], after checking that the publication has every table the request names
    /// (see [`Published`]).
    pub async fn open_checked(&self, request: &StreamRequest) -> Result<ClientStream, OpenError> {
        let unknown = self.published.unknown(&request.tables).await;
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|(s, t)| format!("{s}.{t}")).collect();
            tracing::info!(tables = ?names, "refused a stream request for tables the publication does not have");
            return Err(OpenError::UnknownTables(names));
        }
        self.open(request)
    }

    pub fn open(&self, request: &StreamRequest) -> Result<ClientStream, OpenError> {
        if *self.shutdown.borrow() {
            return Err(OpenError::ShuttingDown);
        }
        if request.bootstrap {
            // The log reader opens at the image's consistent point, once the image is sent.
            // Row scopes judge the image's rows, then the stream's changes.
            self.metrics.clients_total.fetch_add(1, Relaxed);
            self.metrics.bootstrap_clients.fetch_add(1, Relaxed);
            return Ok(ClientStream {
                durable: self.log.subscribe_visible(),
                reader: None,
                scope: self.scope_for(request),
                ahead: None,
                log: self.log.clone(),
                boot: Some(
                    BootStream::new(self.bootstrap.clone(), request.tables.clone())
                        .with_scope(self.scope_for(request)),
                ),
                filter: self.filter_for(request),
                shutdown: self.shutdown.clone(),
                metrics: self.metrics.clone(),
                header_sent: false,
                finished: false,
                scratch: Vec::new(),
                _consumer: None,
            });
        }
        // A consumer's stream starts after its ack unless the client says where.
        let (from, consumer) = match &request.consumer {
            None => (request.from, None),
            Some(name) => {
                let (c, guard) = self.consumers.connect(name).map_err(OpenError::Consumer)?;
                (request.from.or(Some(c.acked)), Some(guard))
            }
        };
        let reader = match self.log.reader(from) {
            // Clients are served frames before they are fsynced, so after an OS crash a client
            // may resume past what the log kept; PostgreSQL sends that tail again (nothing past
            // the fsynced position was confirmed), so wait for the log to catch up. A position
            // past anything the server has written comes from another log (another server, a
            // wiped data directory): serving it could skip changes, so resync.
            Err(LogError::AheadOfLog { requested, .. })
                if !beyond_server(&self.metrics, requested) =>
            {
                None
            }
            other => Some(other),
        };
        let reader = reader.transpose().map_err(|e| match e {
            LogError::AheadOfLog { requested, .. } => {
                self.metrics.resync_required.fetch_add(1, Relaxed);
                OpenError::ResyncRequired {
                    requested,
                    oldest_available: self.log.oldest_available(),
                }
            }
            LogError::ResyncRequired {
                requested,
                oldest_available,
            } => {
                self.metrics.resync_required.fetch_add(1, Relaxed);
                OpenError::ResyncRequired {
                    requested,
                    oldest_available,
                }
            }
            other => OpenError::Log(other),
        })?;
        let filter = self.filter_for(request);
        self.metrics.clients_total.fetch_add(1, Relaxed);
        Ok(ClientStream {
            scope: self.scope_for(request),
            durable: self.log.subscribe_visible(),
            ahead: reader.is_none().then(|| from.unwrap_or(Lsn::ZERO)),
            log: self.log.clone(),
            reader,
            boot: None,
            filter,
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
            header_sent: false,
            finished: false,
            scratch: Vec::new(),
            _consumer: consumer,
        })
    }
}

impl Hub {
    fn scope_for(&self, request: &StreamRequest) -> Option<ScopeFilter> {
        (!request.scopes.is_empty())
            .then(|| ScopeFilter::new(request.scopes.iter().cloned(), self.routes.clone()))
    }

    fn filter_for(&self, request: &StreamRequest) -> Option<(TableFilter<OwnedFrame>, Classifier)> {
        (!request.tables.is_empty()).then(|| {
            (
                TableFilter::new(request.tables.iter().cloned()),
                Classifier::new(),
            )
        })
    }
}

/// Whether `lsn` lies past everything the server is known to have written (its sampled WAL
/// position, or the WAL end its walsender reported). Unknown (just started): not beyond.
fn beyond_server(metrics: &Metrics, lsn: Lsn) -> bool {
    let known = metrics
        .server_wal_lsn
        .load(Relaxed)
        .max(metrics.source_wal_end.load(Relaxed));
    known != 0 && lsn.0 > known
}

/// How often a stream waiting for the log to reach its resume position checks whether the
/// position is still plausible.
const AHEAD_RECHECK: Duration = Duration::from_secs(1);

pub struct ClientStream {
    /// `None` while a bootstrap image is being sent, or while waiting for the log to reach
    /// `ahead`.
    reader: Option<LogReader>,
    boot: Option<BootStream>,
    /// The resume position, while it is ahead of the log.
    ahead: Option<Lsn>,
    log: Log,
    durable: watch::Receiver<Durable>,
    filter: Option<(TableFilter<OwnedFrame>, Classifier)>,
    /// Row scopes, in front of the table filter (always present with scopes: the gate refuses
    /// scopes without a table list).
    scope: Option<ScopeFilter>,
    shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    header_sent: bool,
    finished: bool,
    scratch: Vec<OwnedFrame>,
    /// Marks the consumer connected while this stream lives.
    _consumer: Option<Connected>,
}

impl ClientStream {
    /// The next chunk of the stream (the header first), waiting for new data while caught up.
    /// `None` after the stream ended (an `'e'` frame was the last chunk).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        // Grows as frames arrive: an idle client waiting below holds no chunk buffer.
        let mut out = Vec::new();
        if !self.header_sent {
            frame::encode_header(&mut out);
            self.header_sent = true;
        }
        if let Some(boot) = &mut self.boot {
            let step = tokio::select! {
                step = boot.next(&mut out, CHUNK_BYTES) => step,
                _ = self.shutdown.changed() => BootStep::Failed("shutdown", "the relay is shutting down; bootstrap again".into()),
            };
            match step {
                BootStep::More => return Some(self.count(out, 1)),
                BootStep::Live(reader) => {
                    self.reader = Some(*reader);
                    self.boot = None;
                }
                BootStep::Failed(code, message) => {
                    self.end(&mut out, code, &message);
                    return Some(self.count(out, 1));
                }
            }
        }
        loop {
            if *self.shutdown.borrow() {
                self.end(
                    &mut out,
                    "shutdown",
                    "the relay is shutting down; reconnect to resume",
                );
                return Some(self.count(out, 1));
            }
            if let Some(from) = self.ahead {
                match self.wait_for_log(from, &mut out).await {
                    Some(frames) => return Some(self.count(out, frames)),
                    None => continue,
                }
            }
            match self.fill(&mut out) {
                Ok(frames) if !out.is_empty() => return Some(self.count(out, frames)),
                Ok(_) => {}
                Err(LogError::ResyncRequired {
                    requested,
                    oldest_available,
                }) => {
                    self.metrics.resync_required.fetch_add(1, Relaxed);
                    let msg = format!(
                        "this client fell behind retention: changes after {requested} are gone (oldest available: {oldest_available}); bootstrap again"
                    );
                    self.end(&mut out, "resync_required", &msg);
                    return Some(self.count(out, 1));
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the log for a client failed");
                    self.end(
                        &mut out,
                        "internal",
                        "the relay could not read its log; reconnect later",
                    );
                    return Some(self.count(out, 1));
                }
            }
            // Caught up: wait for more data, shutdown, or the heartbeat time.
            if let Some(r) = &mut self.reader {
                r.release_idle_buffer();
            }
            tokio::select! {
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        self.end(&mut out, "shutdown", "the relay's log closed; reconnect to resume");
                        return Some(self.count(out, 1));
                    }
                }
                _ = self.shutdown.changed() => {}
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {
                    let lsn = self.durable.borrow().lsn;
                    frame::encode_frame(FrameKind::Heartbeat, lsn, &[], &mut out);
                    return Some(self.count(out, 1));
                }
            }
        }
    }

    /// While the resume position `from` is ahead of the log: opens the reader once the log
    /// reaches it (`None`: go on streaming), or waits a while. `Some(frames)`: `out` holds a
    /// chunk to send (a heartbeat, or the `'e'` frame that ends the stream).
    async fn wait_for_log(&mut self, from: Lsn, out: &mut Vec<u8>) -> Option<usize> {
        let heartbeat_at = tokio::time::Instant::now() + HEARTBEAT_EVERY;
        loop {
            self.durable.borrow_and_update();
            match self.log.reader(Some(from)) {
                Ok(r) => {
                    tracing::info!(%from, "the log caught up with a client's resume position");
                    self.reader = Some(r);
                    self.ahead = None;
                    return None;
                }
                Err(LogError::AheadOfLog { .. }) if !beyond_server(&self.metrics, from) => {}
                Err(LogError::AheadOfLog { requested, .. }) => {
                    self.metrics.resync_required.fetch_add(1, Relaxed);
                    let msg = format!(
                        "resume position {requested} is past anything the server has written: it comes from another log; bootstrap again"
                    );
                    self.end(out, "resync_required", &msg);
                    return Some(1);
                }
                Err(LogError::ResyncRequired {
                    requested,
                    oldest_available,
                }) => {
                    self.metrics.resync_required.fetch_add(1, Relaxed);
                    let msg = format!("changes after {requested} are not in the log (oldest available: {oldest_available}); bootstrap again");
                    self.end(out, "resync_required", &msg);
                    return Some(1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "opening the log for a client failed");
                    self.end(
                        out,
                        "internal",
                        "the relay could not read its log; reconnect later",
                    );
                    return Some(1);
                }
            }
            tokio::select! {
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        self.end(out, "shutdown", "the relay's log closed; reconnect to resume");
                        return Some(1);
                    }
                }
                _ = self.shutdown.changed() => return None,
                _ = tokio::time::sleep(AHEAD_RECHECK) => {}
                _ = tokio::time::sleep_until(heartbeat_at) => {
                    // The client's own position: nothing after it is available yet.
                    frame::encode_frame(FrameKind::Heartbeat, from, &[], out);
                    return Some(1);
                }
            }
        }
    }

    /// Appends up to about [`CHUNK_BYTES`] of frames that are available now.
    /// Returns how many frames it appended.
    fn fill(&mut self, out: &mut Vec<u8>) -> Result<usize, LogError> {
        let Some(reader) = &mut self.reader else {
            return Ok(0);
        };
        let Some((filter, classifier)) = &mut self.filter else {
            return reader.read_available(out, CHUNK_BYTES.saturating_sub(out.len()));
        };
        let mut frames = 0;
        while out.len() < CHUNK_BYTES {
            let Some(mut f) = reader.next_frame()? else {
                break;
            };
            let class = classifier.classify(f.kind, &f.payload);
            if let Some(scope) = &mut self.scope {
                // The frame's end offset names it in the log, for the shared decode memo.
                let pos = reader.position();
                match scope.judge(&class, &f.payload, classifier.last_in_stream(), pos) {
                    Verdict::Pass => {}
                    Verdict::Drop => continue,
                    Verdict::Replace(payload) => f.payload = payload,
                }
            }
            filter.push(f, &class, &mut self.scratch);
            for f in self.scratch.drain(..) {
                frame::encode_frame(f.kind, f.lsn, &f.payload, out);
                frames += 1;
            }
        }
        Ok(frames)
    }

    fn end(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        frame::encode_frame(
            FrameKind::End,
            self.durable.borrow().lsn,
            body.as_bytes(),
            out,
        );
        self.finished = true;
    }

    fn count(&self, out: Vec<u8>, frames: usize) -> Bytes {
        self.metrics.bytes_out.fetch_add(out.len() as u64, Relaxed);
        self.metrics.frames_out.fetch_add(frames as u64, Relaxed);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::Registry;
    use crate::log::pgoutput_peek::build::{begin, commit, insert};
    use crate::log::LogConfig;
    use walcast_decoder::frame::FrameReader;

    fn txn(w: &mut crate::log::LogWriter, n: u64) {
        w.append_wal(Lsn(n * 0x100 - 0x80), &begin(n * 0x100, n as u32))
            .unwrap();
        w.append_wal(Lsn(n * 0x100 - 0x40), &insert(5, b"row"))
            .unwrap();
        w.append_wal(Lsn(n * 0x100), &commit(n * 0x100, n * 0x100 + 0x10))
            .unwrap();
    }

    fn hub(dir: &std::path::Path) -> (Hub, crate::log::LogWriter, watch::Sender<bool>) {
        let (log, writer, _) = Log::open(LogConfig::new(dir.join("log"))).unwrap();
        let (tx, shutdown) = watch::channel(false);
        let hub = Hub {
            log,
            metrics: Arc::new(Metrics::default()),
            shutdown,
            consumers: Registry::open(dir).unwrap(),
            routes: Default::default(),
            bootstrap: None,
            published: Default::default(),
        };
        (hub, writer, tx)
    }

    /// Commit end LSNs in a chunk (after the stream header in the first one).
    fn commits(reader: &mut FrameReader, chunk: &[u8]) -> Vec<Lsn> {
        reader.push(chunk);
        let mut out = Vec::new();
        while let Some(f) = reader.next_frame().unwrap() {
            if f.kind == FrameKind::Wal && f.payload[0] == b'C' {
                out.push(Lsn(u64::from_be_bytes(
                    f.payload[10..18].try_into().unwrap(),
                )));
            }
        }
        out
    }

    #[tokio::test]
    async fn a_resume_position_ahead_of_the_log_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, mut w, _tx) = hub(dir.path());
        w.set_start_lsn(Lsn(0x10)).unwrap();
        txn(&mut w, 1);
        w.sync().unwrap();
        // A client that was served transactions 2 and 3 before a crash lost them from the log;
        // the server (whose WAL is past them) sends them again.
        hub.metrics.server_wal_lsn.store(0x1000, Relaxed);
        let req = StreamRequest {
            from: Some(Lsn(0x310)),
            ..Default::default()
        };
        let mut stream = hub.open(&req).expect("waits instead of resync_required");
        let mut reader = FrameReader::new();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.is_empty() {
                let chunk = stream.next_chunk().await.unwrap();
                seen.extend(commits(&mut reader, &chunk));
            }
            seen
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        for n in 2..=4 {
            txn(&mut w, n);
        }
        w.publish().unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            seen,
            vec![Lsn(0x410)],
            "only what follows the client's position"
        );
    }

    #[tokio::test]
    async fn a_row_scoped_bootstrap_is_judged_by_its_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, _w, _tx) = hub(dir.path());
        let req = StreamRequest {
            tables: vec![("public".into(), "t".into())],
            bootstrap: true,
            scopes: vec![(
                ("public".into(), "t".into()),
                crate::auth::RowScope {
                    column: "tenant_id".into(),
                    equals: vec!["1".into()],
                },
            )],
            ..Default::default()
        };
        let stream = hub.open(&req).expect("a scoped bootstrap is served");
        // The live part after the image is scoped too, not only the image.
        assert!(stream.scope.is_some());
        assert!(stream.boot.is_some());
    }

    #[tokio::test]
    async fn a_resume_position_past_the_server_is_resync_required() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, mut w, _tx) = hub(dir.path());
        w.set_start_lsn(Lsn(0x10)).unwrap();
        txn(&mut w, 1);
        w.sync().unwrap();
        hub.metrics.server_wal_lsn.store(0x1000, Relaxed);
        let req = StreamRequest {
            from: Some(Lsn(0x2000)),
            ..Default::default()
        };
        assert!(matches!(
            hub.open(&req),
            Err(OpenError::ResyncRequired { .. })
        ));
        // Not known yet (just started): it waits, and ends as soon as the server is known.
        hub.metrics.server_wal_lsn.store(0, Relaxed);
        let mut stream = hub.open(&req).expect("unknown server position: wait");
        hub.metrics.source_wal_end.store(0x1800, Relaxed);
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Some(chunk) = tokio::time::timeout_at(deadline, stream.next_chunk())
            .await
            .unwrap()
        {
            out.extend_from_slice(&chunk);
        }
        let mut reader = FrameReader::new();
        reader.push(&out);
        let mut last = None;
        while let Some(f) = reader.next_frame().unwrap() {
            last = Some((f.kind, String::from_utf8_lossy(f.payload).to_string()));
        }
        let (kind, body) = last.unwrap();
        assert_eq!(kind, FrameKind::End);
        assert!(body.contains("resync_required"), "{body}");
    }
}
