//! The native Rust client: a resumable stream of frames (and decoded changes) from a relay,
//! over HTTP or QUIC.
//!
//! A [`Subscription`] reconnects by itself with backoff. Each time it reconnects it resumes after
//! the last transaction it delivered, and it drops anything the relay sends again by LSN, so
//! every committed transaction is delivered once. After a reconnect it first yields
//! [`Delivery::Reset`]: a transaction that was cut after its Begin, and the blocks of a streamed
//! transaction that had not committed yet, will be sent again from their start, so the consumer
//! discards what it holds of them.

mod framing;
mod inflate;
mod transport;

pub use crate::serve::request::Compression;
pub use framing::Framing;
pub use inflate::Inflater;
pub use transport::{Transport, TransportError};

use bytes::Bytes;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

/// One frame as received, owning its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub kind: FrameKind,
    pub lsn: Lsn,
    pub payload: Bytes,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A pgoutput message (live, or a prelude Relation/Type replayed by the relay).
    Frame(OwnedFrame),
    /// The stream reconnected: discard what is held of uncommitted transactions. A
    /// transaction cut after its Begin comes again from its Begin, and the blocks of in-flight
    /// streamed transactions come again from their start.
    Reset,
    /// The relay reports the stream complete up to this LSN (idle heartbeat).
    Heartbeat(Lsn),
}

use crate::log::dedup::{Dedup, Verdict};
use crate::log::pgoutput_peek::{PeekState, Peeked};
use crate::serve::control::Control;
use crate::serve::request::StreamRequest;
use crate::source::{Backoff, BackoffConfig};
use walcast_decoder::frame::FrameReader;

/// Why a subscription stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay no longer holds what this client needs: bootstrap again.
    #[error("resync required: {message}")]
    ResyncRequired { message: String },
    /// The relay refused the request (bad LSN, unknown option, …): retrying won't help.
    #[error("the relay refused the stream ({code}): {message}")]
    Refused { code: String, message: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The relay sent bytes that are not a valid frame stream.
    #[error("invalid stream from the relay: {0}")]
    Protocol(String),
    /// The connection dropped while the bootstrap image was arriving: the rows received so far
    /// are not a consistent state. Discard them and bootstrap again.
    #[error("the bootstrap was interrupted: {0}")]
    BootstrapInterrupted(String),
}

/// A resumable stream of frames from one relay.
pub struct Subscription {
    transport: Transport,
    tables: Vec<(String, String)>,
    conn: Option<(transport::ByteStream, Inflater, Framing, FrameReader)>,
    /// What this subscription asks the relay for (see [`Subscription::with_compression`]).
    compression: Compression,
    /// The frame version it asks for (see [`Subscription::with_frame_version`]).
    version: u16,
    /// Every transaction whose commit end LSN is <= this has been delivered.
    resume: Option<Lsn>,
    dedup: Dedup,
    peek: PeekState,
    in_txn: bool,
    delivered_any: bool,
    reset_due: bool,
    backoff: Backoff,
    /// The durable consumer this subscription is (see [`Subscription::with_consumer`]).
    consumer: Option<String>,
    /// Start with a bootstrap image ([`Subscription::with_bootstrap`]).
    bootstrap: bool,
    /// Bootstrap rows are arriving and the image's closing heartbeat has not come yet.
    in_bootstrap: bool,
    /// Why the bootstrap stream was lost before its image was complete.
    failed_bootstrap: Option<String>,
}

impl Subscription {
    /// A subscription that starts after `from` (`None`: the oldest position the relay holds).
    pub fn new(transport: Transport, from: Option<Lsn>, tables: Vec<(String, String)>) -> Self {
        Subscription {
            transport,
            tables,
            conn: None,
            compression: Compression::None,
            version: 1,
            resume: from,
            dedup: Dedup::new(from.unwrap_or(Lsn::ZERO)),
            peek: PeekState::new(),
            in_txn: false,
            delivered_any: false,
            reset_due: false,
            backoff: Backoff::with_entropy(BackoffConfig::default()),
            consumer: None,
            bootstrap: false,
            in_bootstrap: false,
            failed_bootstrap: None,
        }
    }

    /// Starts with the rows of every table (of `tables`) as of one consistent point, then the
    /// changes after it (`docs/bootstrap.md`). Bootstrap rows arrive as
    /// [`Delivery::Frame`]s of kind [`FrameKind::Bootstrap`] (pgoutput Inserts outside any
    /// transaction) after `'p'` Relation frames; a [`Delivery::Heartbeat`] at the consistent
    /// point closes the image. Only for a subscription without `from`. If the connection drops
    /// before the image is complete, [`Subscription::next`] fails with
    /// [`ClientError::BootstrapInterrupted`]: discard the partial rows and start again.
    pub fn with_bootstrap(mut self) -> Self {
        self.bootstrap = self.resume.is_none() && self.consumer.is_none();
        self
    }

    /// Streams as the registered durable consumer `name`: without a `from`, the stream starts
    /// after the consumer's acknowledged LSN, and [`Self::ack`] acknowledges. Register the
    /// consumer first ([`Self::register`], or `PUT /v1/consumers/{name}`).
    pub fn with_consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// Asks the relay to compress the stream (docs/frames.md, "Compression"). The frames
    /// delivered are the same either way; a relay that answers uncompressed is fine too.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Asks the relay for frame format `version` on the wire (1, the default; 2 or 3: smaller,
    /// especially compressed; docs/frames.md, "Version 2", "Version 3"). Deliveries are the
    /// same v1 frames either way.
    pub fn with_frame_version(mut self, version: u16) -> Self {
        self.version = version;
        self
    }

    /// Registers this subscription's consumer (idempotent: an existing consumer keeps its ack),
    /// starting after `from` (`None`: the oldest position the relay holds). Returns its ack.
    pub async fn register(&self, from: Option<Lsn>) -> Result<Lsn, ClientError> {
        let consumer = self.consumer_name()?;
        let v = self
            .transport
            .consumer_call(
                self.quic_conn(),
                &Control::Register {
                    consumer: consumer.to_string(),
                    from,
                },
            )
            .await?;
        acked_of(&v)
    }

    /// Tells the relay this consumer has durably applied every transaction whose commit end LSN
    /// is <= `lsn`; the slot and the relay's log may then forget them. Returns the consumer's
    /// ack afterwards (acks never move backwards).
    pub async fn ack(&self, lsn: Lsn) -> Result<Lsn, ClientError> {
        let consumer = self.consumer_name()?;
        let v = self
            .transport
            .consumer_call(
                self.quic_conn(),
                &Control::Ack {
                    consumer: consumer.to_string(),
                    lsn,
                },
            )
            .await?;
        acked_of(&v)
    }

    /// Ends the subscription, closing its connection gracefully.
    pub async fn close(mut self) {
        self.conn = None;
        self.transport.close().await;
    }

    fn consumer_name(&self) -> Result<&str, ClientError> {
        self.consumer
            .as_deref()
            .ok_or_else(|| ClientError::Refused {
                code: "no_consumer".into(),
                message: "this subscription has no consumer name (Subscription::with_consumer)"
                    .into(),
            })
    }

    fn quic_conn(&self) -> Option<&quinn::Connection> {
        self.conn.as_ref().and_then(|(s, ..)| s.quic_connection())
    }

    /// The position to resume from: every transaction whose commit end LSN is <= it was delivered.
    pub fn resume_lsn(&self) -> Option<Lsn> {
        self.resume
    }

    /// The next delivery. Reconnects (with backoff, resuming after the last delivered
    /// transaction) on network trouble and when the relay restarts; returns an error only when
    /// retrying cannot help.
    pub async fn next(&mut self) -> Result<Delivery, ClientError> {
        loop {
            if let Some(why) = self.failed_bootstrap.take() {
                self.in_bootstrap = false;
                return Err(ClientError::BootstrapInterrupted(why));
            }
            if self.reset_due {
                self.reset_due = false;
                return Ok(Delivery::Reset);
            }
            let Some((stream, inflater, framing, reader)) = &mut self.conn else {
                self.connect().await?;
                continue;
            };
            let frame = match reader.next_frame() {
                Ok(Some(f)) => OwnedFrame {
                    kind: f.kind,
                    lsn: f.lsn,
                    payload: Bytes::copy_from_slice(f.payload),
                },
                Ok(None) => {
                    if inflater.pending() {
                        // Decompressed in bounded steps: see `Inflater`.
                        let fed = inflater
                            .step()
                            .map_err(|e| e.to_string())
                            .and_then(|plain| {
                                framing.feed(plain, reader).map_err(|e| e.to_string())
                            });
                        match fed {
                            Ok(()) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "invalid compressed stream from the relay; reconnecting");
                                self.lost(&e);
                            }
                        }
                        continue;
                    }
                    match stream.chunk().await {
                        Ok(Some(chunk)) => {
                            if let Err(e) = inflater.push(chunk) {
                                self.lost(&e.to_string());
                            }
                        }
                        Ok(None) => self.lost("the relay closed the stream"),
                        Err(e) => self.lost(&e.to_string()),
                    }
                    continue;
                }
                Err(e) => {
                    // A corrupt stream: drop the connection and resume; never skip a change.
                    tracing::warn!(error = %e, "invalid frame from the relay; reconnecting");
                    self.lost(&e.to_string());
                    continue;
                }
            };
            if let Some(d) = self.accept(frame)? {
                return Ok(d);
            }
        }
    }

    /// Decides what to do with one frame; `None` means "nothing to deliver, read on".
    fn accept(&mut self, frame: OwnedFrame) -> Result<Option<Delivery>, ClientError> {
        match frame.kind {
            FrameKind::Wal => {
                let verdict = self
                    .dedup
                    .on_wal(&frame.payload)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                let (peeked, _) = self
                    .peek
                    .peek(&frame.payload)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                if verdict == Verdict::Drop {
                    return Ok(None);
                }
                match peeked {
                    Peeked::Begin { .. } | Peeked::BeginPrepare { .. } => self.in_txn = true,
                    Peeked::Commit { end_lsn, .. }
                    | Peeked::Prepare { end_lsn, .. }
                    | Peeked::StreamCommit { end_lsn, .. }
                    | Peeked::StreamPrepare { end_lsn, .. }
                    | Peeked::CommitPrepared { end_lsn, .. }
                    | Peeked::RollbackPrepared { end_lsn, .. } => {
                        self.in_txn = false;
                        self.advance(end_lsn);
                    }
                    _ => {}
                }
                self.delivered_any = true;
                Ok(Some(Delivery::Frame(frame)))
            }
            FrameKind::Prelude => Ok(Some(Delivery::Frame(frame))),
            FrameKind::Bootstrap if self.in_bootstrap => Ok(Some(Delivery::Frame(frame))),
            FrameKind::Heartbeat if self.in_bootstrap => {
                // The image is complete: it holds every transaction ending at or before here.
                self.in_bootstrap = false;
                self.bootstrap = false;
                self.advance(frame.lsn);
                Ok(Some(Delivery::Heartbeat(frame.lsn)))
            }
            FrameKind::Heartbeat => {
                if !self.in_txn && self.peek.in_block().is_none() {
                    self.advance(frame.lsn);
                }
                Ok(Some(Delivery::Heartbeat(frame.lsn)))
            }
            FrameKind::Reset => {
                self.peek.reset();
                self.dedup.reset(self.resume.unwrap_or(Lsn::ZERO));
                self.in_txn = false;
                Ok(Some(Delivery::Reset))
            }
            FrameKind::End => {
                #[derive(serde::Deserialize)]
                struct End {
                    code: String,
                    message: String,
                }
                let end: End = serde_json::from_slice(&frame.payload).unwrap_or(End {
                    code: "unknown".into(),
                    message: String::from_utf8_lossy(&frame.payload).into_owned(),
                });
                match end.code.as_str() {
                    "resync_required" => Err(ClientError::ResyncRequired {
                        message: end.message,
                    }),
                    "bad_request" | "unauthorized" | "forbidden" => Err(ClientError::Refused {
                        code: end.code,
                        message: end.message,
                    }),
                    _ => {
                        tracing::info!(code = %end.code, message = %end.message, "relay ended the stream; reconnecting");
                        self.lost(&end.message);
                        Ok(None)
                    }
                }
            }
            _ => Ok(None),
        }
    }

    fn advance(&mut self, lsn: Lsn) {
        if self.resume.map_or(true, |r| lsn > r) {
            self.resume = Some(lsn);
        }
    }

    fn lost(&mut self, why: &str) {
        if self.in_bootstrap {
            self.failed_bootstrap = Some(why.to_string());
        }
        tracing::debug!(reason = why, "stream to the relay lost");
        self.conn = None;
        self.backoff.disconnected(std::time::Instant::now());
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        loop {
            let request = StreamRequest {
                from: self.resume,
                tables: self.tables.clone(),
                consumer: self.consumer.clone(),
                bootstrap: self.bootstrap && self.resume.is_none(),
                ..Default::default()
            };
            match self
                .transport
                .open_with(&request, self.compression, self.version)
                .await
            {
                Ok(stream) => {
                    self.backoff.connected(std::time::Instant::now());
                    self.dedup = Dedup::new(self.resume.unwrap_or(Lsn::ZERO));
                    self.peek.reset();
                    self.in_txn = false;
                    // Whatever was in flight will be sent again from its start.
                    self.reset_due = self.delivered_any;
                    self.in_bootstrap = request.bootstrap;
                    self.conn = Some((stream, Inflater::new(), Framing::new(), FrameReader::new()));
                    return Ok(());
                }
                Err(TransportError::Refused { code, message, .. }) if code == "resync_required" => {
                    return Err(ClientError::ResyncRequired { message })
                }
                Err(e) if e.is_transient() => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(error = %e, next_delay = ?delay, "cannot reach the relay; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(TransportError::Refused { code, message, .. }) => {
                    return Err(ClientError::Refused { code, message })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn acked_of(v: &serde_json::Value) -> Result<Lsn, ClientError> {
    v["acked_lsn"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("unexpected consumer answer {v}")))
}
