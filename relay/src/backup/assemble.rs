//! Groups a subscription's frames into whole committed transactions, so that a change-log object
//! only ever holds complete transactions and the backup acknowledges nothing half-written.
//! Pure (sans-IO): frames in, units out.
//!
//! A plain transaction arrives contiguously (Begin … Commit). A streamed one arrives as blocks
//! (Stream Start … Stream Stop) interleaved with other transactions, and is kept aside per xid
//! until its Stream Commit; a top-level Stream Abort drops it. Its frames are then written
//! together, in arrival order, so restore can replay them as one streamed transaction.

use std::collections::HashMap;

use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use crate::client::OwnedFrame;
use crate::log::pgoutput_peek::{PeekError, PeekState, Peeked};

/// What one frame completes.
#[derive(Debug, PartialEq, Eq)]
pub enum Unit {
    /// A frame outside any transaction (a Relation/Type prelude, a non-transactional message).
    Loose(OwnedFrame),
    /// Every frame of one committed transaction; `end_lsn` is its commit's end.
    Txn {
        frames: Vec<OwnedFrame>,
        end_lsn: Lsn,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("invalid pgoutput message at {lsn}: {source}")]
    Peek { lsn: Lsn, source: PeekError },
    #[error("two-phase transactions (prepare at {lsn}) are not supported by walcast backup")]
    TwoPhase { lsn: Lsn },
}

#[derive(Debug, Default)]
pub struct Assembler {
    peek: PeekState,
    /// The open plain transaction.
    open: Option<Vec<OwnedFrame>>,
    /// Streamed transactions not committed yet, by top-level xid.
    streamed: HashMap<u32, Vec<OwnedFrame>>,
    /// Bytes held in `open` and `streamed`.
    held_bytes: usize,
}

impl Assembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing is held: every transaction delivered so far is complete.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && self.streamed.is_empty()
    }

    /// Bytes of transactions not committed yet (a large streamed transaction waits in memory).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The subscription reconnected: what is in flight will be sent again from its start.
    pub fn reset(&mut self) {
        self.peek.reset();
        self.open = None;
        self.streamed.clear();
        self.held_bytes = 0;
    }

    pub fn push(&mut self, frame: OwnedFrame) -> Result<Option<Unit>, AssembleError> {
        if frame.kind != FrameKind::Wal {
            // Prelude Relation/Type frames come between transactions.
            return Ok(Some(Unit::Loose(frame)));
        }
        let (peeked, block) =
            self.peek
                .peek(&frame.payload)
                .map_err(|source| AssembleError::Peek {
                    lsn: frame.lsn,
                    source,
                })?;
        let size = frame.payload.len();
        match peeked {
            Peeked::BeginPrepare { .. }
            | Peeked::Prepare { .. }
            | Peeked::StreamPrepare { .. }
            | Peeked::CommitPrepared { .. }
            | Peeked::RollbackPrepared { .. } => Err(AssembleError::TwoPhase { lsn: frame.lsn }),
            Peeked::Begin { .. } => {
                self.held_bytes += size;
                self.open = Some(vec![frame]);
                Ok(None)
            }
            Peeked::Commit { end_lsn, .. } => {
                let mut frames = self.open.take().unwrap_or_default();
                self.held_bytes -= frames.iter().map(|f| f.payload.len()).sum::<usize>();
                frames.push(frame);
                Ok(Some(Unit::Txn { frames, end_lsn }))
            }
            Peeked::StreamStart { xid, .. } => {
                self.held_bytes += size;
                self.streamed.entry(xid).or_default().push(frame);
                Ok(None)
            }
            Peeked::StreamAbort { xid, subxid } if xid == subxid => {
                if let Some(dropped) = self.streamed.remove(&xid) {
                    self.held_bytes -= dropped.iter().map(|f| f.payload.len()).sum::<usize>();
                }
                Ok(None)
            }
            Peeked::StreamAbort { xid, .. } => {
                // A subtransaction abort: restore discards what it names.
                self.held_bytes += size;
                self.streamed.entry(xid).or_default().push(frame);
                Ok(None)
            }
            Peeked::StreamCommit { xid, end_lsn, .. } => {
                let mut frames = self.streamed.remove(&xid).unwrap_or_default();
                self.held_bytes -= frames.iter().map(|f| f.payload.len()).sum::<usize>();
                frames.push(frame);
                Ok(Some(Unit::Txn { frames, end_lsn }))
            }
            Peeked::StreamStop => {
                // Closes the block of the xid it was in.
                if let Some(frames) = block.and_then(|xid| self.streamed.get_mut(&xid)) {
                    self.held_bytes += size;
                    frames.push(frame);
                }
                Ok(None)
            }
            _ => {
                if let Some(xid) = block {
                    self.held_bytes += size;
                    self.streamed.entry(xid).or_default().push(frame);
                    Ok(None)
                } else if let Some(open) = &mut self.open {
                    self.held_bytes += size;
                    open.push(frame);
                    Ok(None)
                } else {
                    Ok(Some(Unit::Loose(frame)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::pgoutput_peek::build;
    use bytes::Bytes;

    fn wal(lsn: u64, payload: Vec<u8>) -> OwnedFrame {
        OwnedFrame {
            kind: FrameKind::Wal,
            lsn: Lsn(lsn),
            payload: Bytes::from(payload),
        }
    }

    fn units(a: &mut Assembler, frames: Vec<OwnedFrame>) -> Vec<Unit> {
        frames
            .into_iter()
            .filter_map(|f| a.push(f).unwrap())
            .collect()
    }

    /// The first block of streamed transaction 700, at LSNs 1..=3.
    fn first_block() -> Vec<OwnedFrame> {
        vec![
            wal(1, build::stream_start(700)),
            wal(2, build::stream_insert(700, 16384, b"a")),
            wal(3, build::stream_stop()),
        ]
    }

    #[test]
    fn plain_and_streamed_transactions_come_out_whole_in_commit_order() {
        let mut a = Assembler::new();
        let out = units(
            &mut a,
            [
                first_block(),
                vec![
                    wal(4, build::begin(20, 701)),
                    wal(5, build::insert(16384, b"b")),
                    wal(6, build::commit(20, 21)),
                    wal(7, build::stream_start_next(700)),
                    wal(8, build::stream_insert(700, 16384, b"c")),
                    wal(9, build::stream_stop()),
                ],
            ]
            .concat(),
        );
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], Unit::Txn { frames, end_lsn } if frames.len() == 3 && *end_lsn == Lsn(21))
        );
        assert!(!a.is_idle());
        assert!(a.held_bytes() > 0);
        let out = units(&mut a, vec![wal(10, build::stream_commit(700, 30, 31))]);
        let Unit::Txn { frames, end_lsn } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(*end_lsn, Lsn(31));
        let lsns: Vec<u64> = frames.iter().map(|f| f.lsn.0).collect();
        assert_eq!(lsns, [1, 2, 3, 7, 8, 9, 10]);
        assert!(a.is_idle());
        assert_eq!(a.held_bytes(), 0);
    }

    #[test]
    fn an_aborted_stream_and_a_reset_leave_nothing_behind() {
        let mut a = Assembler::new();
        let out = units(
            &mut a,
            [
                first_block(),
                vec![
                    wal(4, build::stream_abort(700, 700)),
                    wal(5, build::begin(20, 701)),
                ],
            ]
            .concat(),
        );
        assert!(out.is_empty());
        assert!(!a.is_idle(), "the open plain transaction");
        a.reset();
        assert!(a.is_idle());
        assert_eq!(a.held_bytes(), 0);
        let prelude = OwnedFrame {
            kind: FrameKind::Prelude,
            lsn: Lsn(0),
            payload: Bytes::from(build::relation(None, 16384, "t")),
        };
        assert!(matches!(a.push(prelude).unwrap(), Some(Unit::Loose(_))));
    }
}
