//! walcast-decoder: a sans-IO decoder for PostgreSQL's built-in `pgoutput` logical replication
//! plugin, protocol versions 1–4 (PostgreSQL 14–18).
//!
//! It turns bytes into values and nothing else: no sockets, no files, no threads, no clocks.
//! The same code runs natively in the relay and the Rust client, and as WASM in browsers and Node.
//! Every malformed or truncated input gives a [`DecodeError`] naming the byte offset; nothing panics.
//!
//! The layers, from the wire inwards:
//! - [`frame`]: walcast's own frame format (disk log, HTTP and QUIC streams), see `docs/frames.md`.
//! - [`envelope`]: the replication protocol's CopyData envelopes (`w` XLogData, `k` keepalive, `r` status).
//! - [`pgoutput`]: one pgoutput message, parsed zero-copy into a borrowed `pgoutput::Message`.
//! - `Decoder`: the stateful part — relation/type cache and streamed-transaction state —
//!   turning messages into `Event`s whose rows carry names and typed [`Value`]s.
//! - [`output`]: the JSON lines contract and the MessagePack form, see `docs/output.md`.

mod error;
mod id_map;
mod lsn;

pub mod decoder;
pub mod envelope;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod output;
pub mod pgoutput;
pub mod relation;
pub mod value;

pub use decoder::{Cell, Change, Decoder, Event, Row};
pub use envelope::{encode_standby_status, parse_envelope, Envelope};
pub use error::{DecodeError, ErrorKind, Result};
pub use lsn::{Lsn, ParseLsnError};
pub use output::{jsonl::write_event, msgpack::MsgpackEncoder};
pub use relation::{ColumnInfo, RelationInfo, ReplicaIdentity};
pub use value::Value;
