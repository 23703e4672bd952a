//! walcast-relay: the server that holds one pgoutput replication slot, keeps the raw pgoutput
//! bytes in a durable log, and streams them, still raw, to many clients over HTTP and QUIC.
//! It also holds the native Rust client.
//!
//! The data path, in module order:
//! - [`source`]: the replication connection to PostgreSQL and the slot it holds (IO at the edge).
//! - [`feedback`]: the pure rule for which LSN may be confirmed to PostgreSQL.
//! - [`log`]: the append-only, segmented, checksummed log on disk.
//! - [`prelude`]: the pure schema-prelude state (latest Relation/Type per relation).
//! - [`pipeline`]: the ingest path from the session into the log (group commit).
//! - [`serve`]: HTTP and QUIC serving, fan-out and per-client table filtering.
//! - [`bootstrap`]: consistent bootstrap images (exported snapshot + COPY), shared by clients.
//! - [`client`]: the native Rust client (HTTP and QUIC, resume, dedup by LSN).
//! - [`consumers`]: durable consumers, whose acks bound the slot and retention.
//! - [`backup`]: `walcast backup` / `walcast restore`, a durable consumer writing to a bucket.
//! - [`metrics`]: Prometheus metrics.
//! - [`cli`]: the `walcast` subcommands.

pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod consumers;
pub mod feedback;
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod prelude;
pub mod serve;
pub mod source;
