//! Serving clients: each client reads the log at its own pace, through its own table filter;
//! caught-up row-scoped clients share one reader that routes by scope value ([`broadcast`]).
//!
//! - [`request`]: what a client asks for (pure, shared by HTTP and QUIC).
//! - [`session`]: one client's stream over the log, transport-independent.
//! - [`broadcast`]: one shared reader for caught-up row-scoped clients, routing by scope value.
//! - [`filter`], [`classify`]: table filtering by relation id (pure).
//! - [`scope`]: row scopes, in front of the table filter (pure).
//! - [`http`], [`quic`]: the transports; [`listen`]: the HTTP listener (TLS, deadlines).
//! - [`compress`]: per-connection zstd stream compression.
//! - [`control`], [`consumer_http`]: durable-consumer operations (register, ack) over both.
//! - [`status`]: the status board behind `/v1/status` and `/readyz`.
//! - [`published`]: the publication's tables, to refuse requests for tables it does not have.

pub mod broadcast;
pub mod classify;
pub mod compress;
pub mod consumer_http;
pub mod control;
pub mod filter;
pub mod http;
pub mod listen;
pub mod published;
pub mod quic;
pub mod request;
pub mod scope;
pub mod session;
pub mod status;
