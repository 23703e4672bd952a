//! The native Rust client: a resumable stream of frames (and decoded changes) from a relay,
//! over HTTP or QUIC.
//!
//! A [`Subscription`] reconnects by itself with backoff. Each time it reconnects it resumes after
//! the last transaction it delivered, and it drops anything the relay sends again by LSN, so
//! every transaction is delivered once. After a reconnect it first yields [`Delivery::Reset`]:
//! blocks of a streamed transaction that had not committed yet will be sent again from their
//! start, so the consumer discards what it buffered for them.

mod transport;

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
    /// Discard in-flight (uncommitted) streamed transactions: their blocks come again.
    Reset,
    /// The relay reports the stream complete up to this LSN (idle heartbeat).
    Heartbeat(Lsn),
}
