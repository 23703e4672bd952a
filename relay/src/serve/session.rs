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
}

impl Hub {
    pub fn open(&self, request: &StreamRequest) -> Result<ClientStream, OpenError> {
        if *self.shutdown.borrow() {
            return Err(OpenError::ShuttingDown);
        }
        if request.bootstrap {
            if !request.scopes.is_empty() {
                // Image rows are not judged by row scopes yet: refuse rather than leak.
                return Err(OpenError::Forbidden(
                    "bootstrap is not available to tokens with row scopes yet; stream without bootstrap",
                ));
            }
            // The log reader opens at the image's consistent point, once the image is sent.
            self.metrics.clients_total.fetch_add(1, Relaxed);
            self.metrics.bootstrap_clients.fetch_add(1, Relaxed);
            return Ok(ClientStream {
                durable: self.log.subscribe(),
                reader: None,
                scope: None,
                boot: Some(BootStream::new(
                    self.bootstrap.clone(),
                    request.tables.clone(),
                )),
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
        let reader = self.log.reader(from).map_err(|e| match e {
            // A position beyond anything this log made durable comes from another log (a wiped
            // data directory, another relay): serving it could skip changes, so resync.
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
        let scope = (!request.scopes.is_empty())
            .then(|| ScopeFilter::new(request.scopes.iter().cloned(), self.routes.clone()));
        self.metrics.clients_total.fetch_add(1, Relaxed);
        Ok(ClientStream {
            scope,
            durable: self.log.subscribe(),
            reader: Some(reader),
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
    fn filter_for(&self, request: &StreamRequest) -> Option<(TableFilter<OwnedFrame>, Classifier)> {
        (!request.tables.is_empty()).then(|| {
            (
                TableFilter::new(request.tables.iter().cloned()),
                Classifier::new(),
            )
        })
    }
}

pub struct ClientStream {
    /// `None` while a bootstrap image is being sent.
    reader: Option<LogReader>,
    boot: Option<BootStream>,
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
            // Caught up: wait for more durable data, shutdown, or the heartbeat time.
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
