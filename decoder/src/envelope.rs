//! The streaming replication protocol's CopyData envelopes around pgoutput messages:
//! `w` XLogData and `k` primary keepalive from the server, `r` standby status update from the client.
//!
//! Times are microseconds since 2000-01-01 00:00:00 UTC, as PostgreSQL sends them.

use crate::pgoutput::primitives::{finish, i64_, lsn, u8_, IRes, PErr};
use crate::{Lsn, Result};

pub const TAG_XLOG_DATA: u8 = b'w';
pub const TAG_KEEPALIVE: u8 = b'k';
pub const TAG_STANDBY_STATUS: u8 = b'r';

/// Size of an encoded standby status update.
pub const STANDBY_STATUS_LEN: usize = 34;

/// One CopyData payload of a replication connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// WAL data: exactly one pgoutput message in `data`. `wal_start` is 0 for Relation/Type
    /// messages and for a Begin followed by Origin.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        data: &'a [u8],
    },
    /// Primary keepalive. Answer at once when `reply_requested`.
    Keepalive {
        wal_end: Lsn,
        send_time: i64,
        reply_requested: bool,
    },
    /// Standby status update (client to server).
    StandbyStatus {
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        send_time: i64,
        reply_requested: bool,
    },
    /// A tag this decoder does not know; newer servers add some. Callers skip it.
    Unknown(u8),
}

/// Parses one CopyData payload. Unknown tags give [`Envelope::Unknown`], not an error.
pub fn parse_envelope(copy_data: &[u8]) -> Result<Envelope<'_>> {
    finish(envelope(copy_data), copy_data.len())
}

fn envelope(input: &[u8]) -> std::result::Result<Envelope<'_>, nom::Err<PErr>> {
    let (i, tag) = u8_(input, "CopyData tag")?;
    match tag {
        TAG_XLOG_DATA => {
            let (i, wal_start) = lsn(i, "XLogData start")?;
            let (i, wal_end) = lsn(i, "XLogData end")?;
            let (data, send_time) = i64_(i, "XLogData send time")?;
            Ok(Envelope::XLogData {
                wal_start,
                wal_end,
                send_time,
                data,
            })
        }
        TAG_KEEPALIVE => {
            let (i, wal_end) = lsn(i, "keepalive WAL end")?;
            let (i, send_time) = i64_(i, "keepalive send time")?;
            // Bytes after the known fields are ignored: a newer server may append fields, and
            // a replication connection must not fail over them.
            let (_, reply) = reply_flag(i, "keepalive reply flag")?;
            Ok(Envelope::Keepalive {
                wal_end,
                send_time,
                reply_requested: reply,
            })
        }
        TAG_STANDBY_STATUS => {
            let (i, write) = lsn(i, "status write LSN")?;
            let (i, flush) = lsn(i, "status flush LSN")?;
            let (i, apply) = lsn(i, "status apply LSN")?;
            let (i, send_time) = i64_(i, "status send time")?;
            let (_, reply) = reply_flag(i, "status reply flag")?;
            Ok(Envelope::StandbyStatus {
                write,
                flush,
                apply,
                send_time,
                reply_requested: reply,
            })
        }
        other => Ok(Envelope::Unknown(other)),
    }
}

fn reply_flag<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, bool> {
    let (i, b) = u8_(i, context)?;
    Ok((i, b != 0))
}

/// Encodes a standby status update (`r`), the client's feedback to the walsender.
pub fn encode_standby_status(
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
    send_time: i64,
    reply_requested: bool,
) -> [u8; STANDBY_STATUS_LEN] {
    let mut out = [0u8; STANDBY_STATUS_LEN];
    out[0] = TAG_STANDBY_STATUS;
    out[1..9].copy_from_slice(&write.0.to_be_bytes());
    out[9..17].copy_from_slice(&flush.0.to_be_bytes());
    out[17..25].copy_from_slice(&apply.0.to_be_bytes());
    out[25..33].copy_from_slice(&send_time.to_be_bytes());
    out[33] = u8::from(reply_requested);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn xlog_data_borrows_the_message() {
        let mut m = vec![b'w'];
        m.extend_from_slice(&1u64.to_be_bytes());
        m.extend_from_slice(&2u64.to_be_bytes());
        m.extend_from_slice(&3i64.to_be_bytes());
        m.extend_from_slice(b"E");
        assert_eq!(
            parse_envelope(&m).unwrap(),
            Envelope::XLogData {
                wal_start: Lsn(1),
                wal_end: Lsn(2),
                send_time: 3,
                data: b"E"
            }
        );
    }

    #[test]
    fn keepalive() {
        let mut m = vec![b'k'];
        m.extend_from_slice(&0x16_0000_0001u64.to_be_bytes());
        m.extend_from_slice(&(-5i64).to_be_bytes());
        m.push(1);
        assert_eq!(
            parse_envelope(&m).unwrap(),
            Envelope::Keepalive {
                wal_end: Lsn(0x16_0000_0001),
                send_time: -5,
                reply_requested: true
            }
        );
        // Fields a newer server appends are ignored, not an error.
        m.push(0);
        assert!(matches!(
            parse_envelope(&m).unwrap(),
            Envelope::Keepalive {
                reply_requested: true,
                ..
            }
        ));
        let e = parse_envelope(&m[..10]).unwrap_err();
        assert_eq!((e.offset, e.kind), (9, ErrorKind::Truncated { needed: 7 }));
    }

    #[test]
    fn standby_status_round_trips() {
        let bytes = encode_standby_status(Lsn(10), Lsn(9), Lsn(8), 77, true);
        assert_eq!(bytes[0], b'r');
        assert_eq!(
            parse_envelope(&bytes).unwrap(),
            Envelope::StandbyStatus {
                write: Lsn(10),
                flush: Lsn(9),
                apply: Lsn(8),
                send_time: 77,
                reply_requested: true
            }
        );
    }

    #[test]
    fn unknown_tag_is_not_an_error() {
        assert_eq!(parse_envelope(b"zzz").unwrap(), Envelope::Unknown(b'z'));
        assert!(parse_envelope(b"").is_err());
    }
}
