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

use super::broadcast::{Broadcast, Feed, FeedItem};
use super::classify::Classifier;
use super::filter::FrameClass;
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
    /// The shared reader for caught-up row-scoped clients; `None`: each reads on its own.
    pub broadcast: Option<Broadcast>,
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
                fanout: self.fanout_for(request),
                fan: FanoutState::default(),
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
            fanout: self.fanout_for(request),
            fan: FanoutState::default(),
            _consumer: consumer,
        })
    }
}

impl Hub {
    /// A client whose every table is row-scoped can be served by the shared reader.
    fn fanout_for(&self, request: &StreamRequest) -> Option<Fanout> {
        let broadcast = self.broadcast.clone()?;
        let all_scoped = !request.scopes.is_empty()
            && request
                .tables
                .iter()
                .all(|t| request.scopes.iter().any(|(s, _)| s == t));
        all_scoped.then(|| Fanout {
            broadcast,
            tables: request.tables.clone(),
            scopes: request.scopes.clone(),
            routes: self.routes.clone(),
        })
    }

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

/// The end LSN of a plain Commit (the log's own reading of pgoutput, `pgoutput_peek`).
pub(crate) fn commit_end(payload: &[u8]) -> Option<Lsn> {
    match crate::log::pgoutput_peek::peek(payload, false) {
        Ok(crate::log::pgoutput_peek::Peeked::Commit { end_lsn, .. }) => Some(end_lsn),
        _ => None,
    }
}

/// How long a client waits for the shared reader to take it (it answers at its next commit
/// boundary); after that the client goes on with its own reader.
const JOIN_WAIT: Duration = Duration::from_millis(50);

/// How often a stream waiting for the log to reach its resume position checks whether the
/// position is still plausible.
const AHEAD_RECHECK: Duration = Duration::from_secs(1);

/// What a row-scoped client needs to move to the shared reader and back.
struct Fanout {
    broadcast: Broadcast,
    tables: Vec<(String, String)>,
    scopes: Vec<((String, String), crate::auth::RowScope)>,
    routes: Arc<RouteMemo>,
}

/// A stream's state towards the shared reader (only ever used when `fanout` is set).
#[derive(Default)]
struct FanoutState {
    /// While served by the shared reader (`reader` is then `None`).
    feed: Option<Feed>,
    /// The end LSN of the commit the own reader returned last, if nothing but heartbeats came
    /// after it: where this client can move to the shared reader.
    join_point: Option<Lsn>,
    /// Whether the last fill read the log to its end.
    drained: bool,
    /// Subscribed to the shared reader, which starts after a commit the own reader has not
    /// read yet ([`Feed::switch_at`]); `switch_due` once it has.
    joining: Option<Feed>,
    switch_due: bool,
}

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
    /// Set for clients the shared reader can serve ([`Hub::fanout_for`]).
    fanout: Option<Fanout>,
    /// Where the stream stands with the shared reader.
    fan: FanoutState,
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
            // The last chunk ended right after a commit with the log read to its end: move to
            // the shared reader if it stands there too.
            self.switch_if_due();
            if self.fan.drained {
                self.try_join().await;
            }
            if self.fan.feed.is_some() {
                match self.fill_shared(&mut out).await {
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
            // Caught up right after a commit: move to the shared reader if it stands there.
            if self.fan.drained && self.try_join().await {
                continue;
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
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        // No one can signal shutdown any more: end rather than spin.
                        self.end(&mut out, "shutdown", "the relay is shutting down; reconnect to resume");
                        return Some(self.count(out, 1));
                    }
                }
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
                Err(e) => {
                    self.end_unreadable(e, out);
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
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        self.end(out, "shutdown", "the relay is shutting down; reconnect to resume");
                        return Some(1);
                    }
                    return None;
                }
                _ = tokio::time::sleep(AHEAD_RECHECK) => {}
                _ = tokio::time::sleep_until(heartbeat_at) => {
                    // The client's own position: nothing after it is available yet.
                    frame::encode_frame(FrameKind::Heartbeat, from, &[], out);
                    return Some(1);
                }
            }
        }
    }

    /// Asks the shared reader to take over at [`FanoutState::join_point`]. True if it did
    /// right there; it may also take over at a later commit, which the own reader reads first
    /// (see [`FanoutState::joining`]).
    async fn try_join(&mut self) -> bool {
        if self.fan.feed.is_some() || self.fan.joining.is_some() {
            return false;
        }
        let (Some(fanout), Some(after)) = (&self.fanout, self.fan.join_point.take()) else {
            return false;
        };
        if self.boot.is_some() || self.reader.is_none() {
            return false;
        }
        let join = fanout.broadcast.join(after, fanout.scopes.clone());
        match tokio::time::timeout(JOIN_WAIT, join).await {
            Ok(Some(feed)) if feed.switch_at == after => {
                tracing::debug!(%after, "a scoped client moved to the shared reader");
                self.fan.feed = Some(feed);
                self.reader = None;
                true
            }
            Ok(Some(feed)) => {
                self.fan.joining = Some(feed);
                false
            }
            Ok(None) => false,
            Err(_) => {
                // The shared reader is behind, or inside a long transaction: not now.
                self.metrics.fanout_joins_refused.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Switches to the feed once the own reader has read the commit it starts after.
    fn switch_if_due(&mut self) {
        if self.fan.switch_due {
            self.fan.switch_due = false;
            tracing::debug!("a scoped client moved to the shared reader");
            self.fan.feed = self.fan.joining.take();
            self.reader = None;
            self.fan.join_point = None;
        }
    }

    /// Served by the shared reader: appends what it queued for this client, waiting while
    /// nothing is. `Some(frames)`: `out` holds a chunk to send; `None`: go round again (shutdown,
    /// or the stream went back to its own reader with nothing to send yet).
    async fn fill_shared(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        let mut frames = 0;
        while out.len() < CHUNK_BYTES {
            let feed = self.fan.feed.as_mut()?;
            let item = match feed.try_next() {
                Ok(item) => item,
                Err(false) if !out.is_empty() => break,
                Err(false) => {
                    tokio::select! {
                        item = feed.next() => match item {
                            Some(item) => item,
                            None => return self.shared_gone(out),
                        },
                        changed = self.shutdown.changed() => {
                            if changed.is_err() {
                                // The relay is going away without saying so: end, don't spin.
                                return self.shared_gone(out);
                            }
                            return None;
                        }
                    }
                }
                Err(true) => return self.shared_gone(out),
            };
            match item {
                FeedItem::Frame(o) => {
                    let f = match &o {
                        super::scope::Out::Shared(f) => f.as_ref(),
                        super::scope::Out::Own(f) => f,
                    };
                    frame::encode_frame(f.kind, f.lsn, &f.payload, out);
                }
                FeedItem::Heartbeat(lsn) => {
                    frame::encode_frame(FrameKind::Heartbeat, lsn, &[], out)
                }
                FeedItem::Release { after } => {
                    self.back_to_own_reader(after, out);
                    return Some(frames + 1);
                }
            }
            frames += 1;
        }
        Some(frames)
    }

    /// The shared reader ended (the relay is shutting down).
    fn shared_gone(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        self.fan.feed = None;
        self.end(
            out,
            "shutdown",
            "the relay is shutting down; reconnect to resume",
        );
        Some(1)
    }

    /// Released by the shared reader after the commit ending at `after`: on the wire this is a
    /// reconnect (a Reset frame: the client drops what it holds of open transactions), then the
    /// client's own reader, table filter and scope again, from right after that commit.
    fn back_to_own_reader(&mut self, after: Lsn, out: &mut Vec<u8>) {
        self.fan.feed = None;
        // Where the own reader stood before is no place to join at any more.
        self.fan.join_point = None;
        self.fan.drained = false;
        let Some(fanout) = &self.fanout else {
            return;
        };
        frame::encode_frame(FrameKind::Reset, after, &[], out);
        self.filter = Some((
            TableFilter::new(fanout.tables.iter().cloned()),
            Classifier::new(),
        ));
        self.scope = Some(ScopeFilter::new(
            fanout.scopes.iter().cloned(),
            fanout.routes.clone(),
        ));
        match self.log.reader(Some(after)) {
            Ok(r) => self.reader = Some(r),
            Err(e) => self.end_unreadable(e, out),
        }
    }

    /// Ends the stream because the log cannot be opened where it must continue.
    fn end_unreadable(&mut self, e: LogError, out: &mut Vec<u8>) {
        match e {
            LogError::ResyncRequired {
                requested,
                oldest_available,
            } => {
                self.metrics.resync_required.fetch_add(1, Relaxed);
                let msg = format!("changes after {requested} are not in the log (oldest available: {oldest_available}); bootstrap again");
                self.end(out, "resync_required", &msg);
            }
            e => {
                tracing::error!(error = %e, "opening the log for a client failed");
                self.end(
                    out,
                    "internal",
                    "the relay could not read its log; reconnect later",
                );
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
        self.fan.drained = false;
        while out.len() < CHUNK_BYTES {
            let Some(mut f) = reader.next_frame()? else {
                self.fan.drained = true;
                break;
            };
            let class = classifier.classify(f.kind, &f.payload);
            let mut switch = false;
            if self.fanout.is_some() && f.kind != FrameKind::Heartbeat {
                self.fan.join_point = match class {
                    FrameClass::Commit => commit_end(&f.payload),
                    _ => None,
                };
                if let (Some(end), Some(j)) = (self.fan.join_point, &self.fan.joining) {
                    if end == j.switch_at {
                        switch = true;
                    } else if end > j.switch_at {
                        // Cannot happen with both readers on one log; never risk a gap.
                        tracing::warn!(%end, switch_at = %j.switch_at, "a client passed its switch point; it stays on its own reader");
                        self.fan.joining = None;
                    }
                }
            }
            if let Some(scope) = &mut self.scope {
                // The frame's end offset names it in the log, for the shared decode memo.
                let pos = reader.position();
                match scope.judge(&class, &f.payload, classifier.last_in_stream(), pos) {
                    Verdict::Pass => {}
                    Verdict::Drop if switch => {
                        self.fan.switch_due = true;
                        break;
                    }
                    Verdict::Drop => continue,
                    Verdict::Replace(payload) => f.payload = payload,
                }
            }
            filter.push(f, &class, &mut self.scratch);
            for f in self.scratch.drain(..) {
                frame::encode_frame(f.kind, f.lsn, &f.payload, out);
                frames += 1;
            }
            if switch {
                // Everything after this commit comes from the feed.
                self.fan.switch_due = true;
                break;
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
            broadcast: None,
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
