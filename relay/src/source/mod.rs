//! The replication source: a thin walsender client on tokio that holds one pgoutput slot.
//!
//! - [`config`]: where to connect (URL / `PG*` env), with the password redacted everywhere.
//! - [`tls`]: rustls settings per `sslmode`.
//! - [`conn`]: startup, authentication and the replication commands.
//! - [`stream`]: XLogData and keepalives in, standby status out.
//! - [`slot`]: preflight, publication and slot management over ordinary SQL.
//! - [`backoff`]: pure reconnect delays.
//! - [`session`]: the reconnecting driver that ties them together.
//! - [`error`]: what went wrong and whether retrying helps.

pub mod backoff;
pub mod config;
pub mod conn;
pub mod error;
pub mod session;
pub mod slot;
pub mod stream;
pub mod tls;

pub use backoff::{Backoff, BackoffConfig};
pub use config::{Host, Password, SourceConfig, SslMode, SESSION_OPTIONS};
pub use conn::{
    proto_version_for, CreateSlotOptions, CreatedSlot, IdentifySystem, PgOutputOptions,
    ReplicationConnection, Streaming,
};
pub use error::{RetryAdvice, ServerError, SourceError};
pub use session::{
    Prepared, ReplicationSink, RunError, Session, SessionConfig, SinkError, Started,
};
pub use slot::{PublicationInfo, PublicationSpec, ServerInfo, SlotInfo, SqlConnection};
pub use stream::{pg_micros, ReplicationMessage, ReplicationStream};
