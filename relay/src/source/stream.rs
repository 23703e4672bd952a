//! The replication stream after `START_REPLICATION`: XLogData and keepalives in, standby status
//! updates out. The pgoutput payload is handed on untouched, as a zero-copy `Bytes` slice of the
//! receive buffer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};
use walcast_decoder::envelope::{self, Envelope};
use walcast_decoder::Lsn;

use super::conn::ReplicationConnection;
use super::error::{ServerError, SourceError};

/// Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_OFFSET_SECS: u64 = 946_684_800;

/// Microseconds since 2000-01-01 UTC for a wall-clock time.
pub fn pg_micros(t: SystemTime) -> i64 {
    let unix = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    unix.as_micros() as i64 - (PG_EPOCH_OFFSET_SECS as i64) * 1_000_000
}

/// One message from the walsender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// `w`: one pgoutput message (`data`, starting with its tag byte: `B`, `I`, `C`, …).
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        data: Bytes,
    },
    /// `k`: the server's position and whether it wants a status update now.
    Keepalive {
        wal_end: Lsn,
        send_time: i64,
        reply_requested: bool,
    },
}

/// Parses the body of a CopyData message in a logical replication stream, with the decoder's
/// envelope parser. `Ok(None)` for tags this version does not know (newer servers may add
/// some). The pgoutput payload stays a zero-copy slice of `body`.
pub fn parse_copy_data(body: Bytes) -> Result<Option<ReplicationMessage>, SourceError> {
    match envelope::parse_envelope(&body) {
        Ok(Envelope::XLogData {
            wal_start,
            wal_end,
            send_time,
            data,
        }) => Ok(Some(ReplicationMessage::XLogData {
            wal_start,
            wal_end,
            send_time,
            data: body.slice_ref(data),
        })),
        Ok(Envelope::Keepalive {
            wal_end,
            send_time,
            reply_requested,
        }) => Ok(Some(ReplicationMessage::Keepalive {
            wal_end,
            send_time,
            reply_requested,
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(SourceError::Protocol(format!(
            "malformed replication message: {e}"
        ))),
    }
}

/// Encodes a standby status update (`r`) as the body of a CopyData message.
pub fn encode_status(
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
    time: i64,
    reply_requested: bool,
) -> [u8; 34] {
    envelope::encode_standby_status(write, flush, apply, time, reply_requested)
}

/// A connection in CopyBoth mode, streaming one slot.
#[derive(Debug)]
pub struct ReplicationStream {
    conn: ReplicationConnection,
    proto_version: u32,
    server_major: u32,
}

impl ReplicationStream {
    pub(crate) fn new(
        conn: ReplicationConnection,
        proto_version: u32,
        server_major: u32,
    ) -> ReplicationStream {
        ReplicationStream {
            conn,
            proto_version,
            server_major,
        }
    }

    pub fn proto_version(&self) -> u32 {
        self.proto_version
    }

    pub fn server_major(&self) -> u32 {
        self.server_major
    }

    /// The next XLogData or keepalive. Cancellation-safe (for `select!` with a status timer):
    /// a cancelled call loses no bytes. Unknown CopyData tags are skipped.
    pub async fn next(&mut self) -> Result<ReplicationMessage, SourceError> {
        loop {
            let frame = self.conn.read_frame().await?;
            match frame.tag {
                b'd' => {
                    if let Some(m) = parse_copy_data(frame.body)? {
                        return Ok(m);
                    }
                }
                b'E' => {
                    let e = ServerError::parse(&frame.body);
                    let user = self.conn.user().to_string();
                    return Err(SourceError::classify(e, &user, None));
                }
                // CopyDone: the server ended the stream (shutdown, or a timeline switch).
                b'c' => return Err(SourceError::Closed),
                _ => {
                    self.conn.delegate(frame)?;
                }
            }
        }
    }

    /// Whether [`Self::next`] would return at once without reading the socket. The relay uses
    /// this for group commit: it makes the log durable when the burst it is reading drains.
    pub fn has_buffered(&self) -> bool {
        self.conn.has_buffered_frame()
    }

    /// Sends a standby status update stamped with the current wall-clock time. Only `flush`
    /// moves a logical slot's `confirmed_flush_lsn`; send flush = a durable commit end LSN.
    pub async fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        reply_requested: bool,
    ) -> Result<(), SourceError> {
        let body = encode_status(
            write,
            flush,
            apply,
            pg_micros(SystemTime::now()),
            reply_requested,
        );
        let w = self.conn.wbuf();
        w.put_u8(b'd');
        w.put_u32(4 + body.len() as u32);
        w.put_slice(&body);
        self.conn.flush().await
    }

    /// Ends the session: sends Terminate and closes the socket.
    pub async fn close(self) -> Result<(), SourceError> {
        self.conn.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlogdata_is_split_without_copying() {
        let mut v = vec![b'w'];
        v.extend_from_slice(&1u64.to_be_bytes());
        v.extend_from_slice(&2u64.to_be_bytes());
        v.extend_from_slice(&3u64.to_be_bytes());
        v.extend_from_slice(b"Bxyz");
        let body = Bytes::from(v);
        let ptr = body.as_ptr();
        match parse_copy_data(body).unwrap().unwrap() {
            ReplicationMessage::XLogData {
                wal_start,
                wal_end,
                send_time,
                data,
            } => {
                assert_eq!((wal_start, wal_end, send_time), (Lsn(1), Lsn(2), 3));
                assert_eq!(&data[..], b"Bxyz");
                assert_eq!(data.as_ptr(), ptr.wrapping_add(25));
            }
            m => panic!("{m:?}"),
        }
        assert!(parse_copy_data(Bytes::from_static(b"w\0\0")).is_err());
    }

    #[test]
    fn keepalive_and_unknown() {
        let mut v = vec![b'k'];
        v.extend_from_slice(&0x10u64.to_be_bytes());
        v.extend_from_slice(&7u64.to_be_bytes());
        v.push(1);
        assert_eq!(
            parse_copy_data(Bytes::from(v)).unwrap(),
            Some(ReplicationMessage::Keepalive {
                wal_end: Lsn(0x10),
                send_time: 7,
                reply_requested: true
            })
        );
        assert_eq!(
            parse_copy_data(Bytes::from_static(b"zwhatever")).unwrap(),
            None
        );
        assert!(parse_copy_data(Bytes::from_static(b"k\0")).is_err());
    }

    #[test]
    fn status_layout() {
        let b = encode_status(Lsn(1), Lsn(2), Lsn(3), 4, true);
        assert_eq!(b[0], b'r');
        assert_eq!(u64::from_be_bytes(b[9..17].try_into().unwrap()), 2);
        assert_eq!(i64::from_be_bytes(b[25..33].try_into().unwrap()), 4);
        assert_eq!(b[33], 1);
        assert_eq!(
            pg_micros(UNIX_EPOCH + Duration::from_secs(PG_EPOCH_OFFSET_SECS + 1)),
            1_000_000
        );
    }
}
