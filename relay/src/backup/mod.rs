//! `walcast backup` and `walcast restore`: a consistent baseline plus a continuous change log
//! in immutable, checksummed objects (a directory or an S3/GCS/Azure bucket), acknowledged to
//! the relay only once durable, and restorable into an empty database at any LSN it covers.
//! The layout is a versioned contract: docs/backup.md.
//!
//! - [`layout`]: object names and the checksummed object format (pure).
//! - [`assemble`]: frames → whole committed transactions (pure).
//! - [`sql`]: the SQL that replays a change (pure).
//! - [`store`]: the destination, through `object_store` (IO).
//! - [`writer`]: the backup loop (IO).
//! - [`restore`]: rebuilding the tables (IO).

pub mod assemble;
pub mod layout;
pub mod restore;
pub mod sql;
pub mod store;
pub mod writer;

pub use restore::{restore, RestoreError, RestoreSummary};
pub use store::Destination;
pub use writer::{run, state_of, BackupConfig, BackupError, BackupState};
