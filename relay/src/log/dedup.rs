//! Dropping transactions a consumer already has, by LSN. Pure.
//!
//! Two users:
//! - the writer, after PostgreSQL reconnects: the slot resends from its confirmed position,
//!   which may be older than what the log already holds durably (`from` = the log's last
//!   boundary LSN);
//! - a reader serving `from=X`: it starts at a safe point at or before X and must skip what the
//!   client already applied (`from` = X).
//!
//! The rule, with `from` = "every transaction whose commit end_lsn <= from is applied":
//! - a regular transaction is judged at its Begin: keep iff `final_lsn >= from` (final_lsn is the
//!   commit record's start, so `end_lsn <= from` ⇔ `final_lsn < from` for record-aligned `from`);
//!   two-phase `b … P` likewise by prepare_lsn; `K`/`r` (standalone) by their end_lsn;
//!   a non-transactional `M` by its LSN;
//! - a streamed transaction's chunks cannot be judged when they arrive (the commit LSN is not
//!   known yet). A reader learns the fate of in-flight xids by a pre-scan and passes
//!   `done_streams` (xids whose Stream Commit/Prepare end_lsn <= from); their blocks and commit
//!   are dropped. Chunks of other xids pass; a Stream Commit/Prepare whose end_lsn <= from is
//!   dropped (even if chunks passed: that stream is a duplicate, and stays uncommitted for the
//!   client until the next reset), and so is a Stream Abort whose chunks were not passed. A continuation block
//!   (first-segment flag 0) of an xid whose first block was not passed is dropped: it belongs
//!   to a stream that ended before the reader's start. After a reset (`'x'`),
//!   chunks of never-committed xids from the old session are harmless: clients discard them.

use std::collections::HashSet;

use walcast_decoder::Lsn;

use super::pgoutput_peek::{PeekError, PeekState, Peeked};

/// Keep or drop one frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
}

impl Verdict {
    fn of(keep: bool) -> Verdict {
        if keep {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}

#[derive(Clone, Debug)]
pub struct Dedup {
    from: Lsn,
    done_streams: HashSet<u32>,
    peek: PeekState,
    /// Inside `B … C` or `b … P`: whether that transaction is kept.
    in_txn: Option<bool>,
    /// Inside `S … E`: whether that block is kept.
    in_block: Option<bool>,
    /// Streamed xids with at least one kept block in this session.
    seen_chunks: HashSet<u32>,
}

impl Dedup {
    /// Drops everything whose commit end_lsn <= `from`. `Lsn::ZERO` keeps everything.
    pub fn new(from: Lsn) -> Self {
        Self::with_done_streams(from, HashSet::new())
    }

    /// As [`Dedup::new`], also dropping the blocks of streamed xids known to have committed at
    /// or before `from`.
    pub fn with_done_streams(from: Lsn, done_streams: HashSet<u32>) -> Self {
        Dedup {
            from,
            done_streams,
            peek: PeekState::new(),
            in_txn: None,
            in_block: None,
            seen_chunks: HashSet::new(),
        }
    }

    pub fn from(&self) -> Lsn {
        self.from
    }

    /// A new walsender session begins (the `'x'` frame): forget in-flight state and drop what is
    /// at or below `from` from now on.
    pub fn reset(&mut self, from: Lsn) {
        *self = Dedup::new(from);
    }

    /// A reset frame seen while reading: forget in-flight state, keep `from` and the streams
    /// known to be done (a done xid restreamed after the reset is still done).
    pub fn new_session(&mut self) {
        self.peek.reset();
        self.in_txn = None;
        self.in_block = None;
        self.seen_chunks.clear();
    }

    /// Whether the next `'w'` frame carrying pgoutput `msg` is kept.
    pub fn on_wal(&mut self, msg: &[u8]) -> Result<Verdict, PeekError> {
        let (p, block_xid) = self.peek.peek(msg)?;
        if let Some(keep) = self.in_block {
            if block_xid.is_some() {
                if p == Peeked::StreamStop {
                    self.in_block = None;
                }
                return Ok(Verdict::of(keep));
            }
        }
        if let Some(keep) = self.in_txn {
            if matches!(p, Peeked::Commit { .. } | Peeked::Prepare { .. }) {
                self.in_txn = None;
            }
            return Ok(Verdict::of(keep));
        }
        let from = self.from;
        let keep = match p {
            Peeked::Begin { final_lsn, .. } => {
                let keep = final_lsn >= from;
                self.in_txn = Some(keep);
                keep
            }
            Peeked::BeginPrepare { prepare_lsn, .. } => {
                let keep = prepare_lsn >= from;
                self.in_txn = Some(keep);
                keep
            }
            Peeked::StreamStart { xid, first } => {
                // A continuation block of an xid whose first block we did not pass (it lies
                // before where this reader started, and the xid ended before X) is useless:
                // the client could not decode it. Drop it.
                let keep =
                    !self.done_streams.contains(&xid) && (first || self.seen_chunks.contains(&xid));
                if keep {
                    self.seen_chunks.insert(xid);
                }
                self.in_block = Some(keep);
                keep
            }
            Peeked::StreamCommit { xid, end_lsn, .. }
            | Peeked::StreamPrepare { xid, end_lsn, .. } => {
                self.seen_chunks.remove(&xid);
                self.done_streams.remove(&xid);
                // At or below `from` it is applied already, whatever chunks were passed: a
                // duplicate stream (restreamed after a reconnect) stays uncommitted for clients,
                // who drop its chunks at the next reset.
                end_lsn > from
            }
            Peeked::StreamAbort { xid, subxid } => {
                let seen = self.seen_chunks.contains(&xid);
                if xid == subxid {
                    self.seen_chunks.remove(&xid);
                    self.done_streams.remove(&xid);
                }
                seen
            }
            Peeked::CommitPrepared { end_lsn, .. } | Peeked::RollbackPrepared { end_lsn, .. } => {
                end_lsn > from
            }
            Peeked::StandaloneMessage { lsn } => lsn >= from,
            // A stray Commit/Prepare/Stop outside what we track, R/Y or anything else outside a
            // transaction: pass it through; dropping unknown things silently would be worse.
            _ => true,
        };
        Ok(Verdict::of(keep))
    }
}

#[cfg(test)]
mod tests {
    use super::super::pgoutput_peek::build::*;
    use super::*;

    fn run(d: &mut Dedup, msgs: &[Vec<u8>]) -> Vec<bool> {
        msgs.iter()
            .map(|m| d.on_wal(m).unwrap() == Verdict::Keep)
            .collect()
    }

    #[test]
    fn drops_resent_transactions_at_or_below_from() {
        // Already durable: txn ending at 0x200. PostgreSQL resends from 0x100.
        let mut d = Dedup::new(Lsn(0x200));
        let msgs = vec![
            begin(0x1F0, 1),
            relation(None, 5, "v1"),
            insert(5, b"a"),
            commit(0x1F0, 0x200),
            begin(0x300, 2),
            insert(5, b"b"),
            commit(0x300, 0x310),
        ];
        assert_eq!(
            run(&mut d, &msgs),
            vec![false, false, false, false, true, true, true]
        );
    }

    #[test]
    fn zero_keeps_everything() {
        let mut d = Dedup::new(Lsn::ZERO);
        let msgs = vec![begin(0x10, 1), insert(1, b""), commit(0x10, 0x18)];
        assert_eq!(run(&mut d, &msgs), vec![true; 3]);
    }

    #[test]
    fn streamed_chunks_pass_and_done_streams_are_dropped() {
        let done: HashSet<u32> = [7].into_iter().collect();
        let mut d = Dedup::with_done_streams(Lsn(0x500), done);
        let msgs = vec![
            stream_start(7),
            stream_insert(7, 5, b"x"),
            stream_stop(),
            stream_start(8),
            relation(Some(8), 5, "v2"),
            stream_insert(8, 5, b"y"),
            stream_stop(),
            stream_commit(7, 0x400, 0x410), // done: dropped
            begin(0x480, 3),                // committed before from: dropped
            commit(0x480, 0x490),
            stream_commit(8, 0x600, 0x610), // after from: kept
        ];
        assert_eq!(
            run(&mut d, &msgs),
            vec![false, false, false, true, true, true, true, false, false, false, true]
        );
    }

    #[test]
    fn stream_commit_at_or_below_from_is_dropped_even_after_its_chunks() {
        let mut d = Dedup::new(Lsn(0x500));
        assert_eq!(
            d.on_wal(&stream_commit(1, 0x100, 0x110)).unwrap(),
            Verdict::Drop
        );
        let msgs = vec![
            stream_start(2),
            stream_stop(),
            stream_commit(2, 0x100, 0x110),
        ];
        assert_eq!(run(&mut d, &msgs), vec![true, true, false]);
        assert_eq!(d.on_wal(&stream_abort(3, 3)).unwrap(), Verdict::Drop);
        let msgs = vec![
            stream_start(4),
            stream_stop(),
            stream_commit(4, 0x600, 0x610),
        ];
        assert_eq!(run(&mut d, &msgs), vec![true, true, true]);
    }

    #[test]
    fn reset_forgets_open_transaction() {
        let mut d = Dedup::new(Lsn(0x100));
        assert_eq!(d.on_wal(&begin(0x50, 1)).unwrap(), Verdict::Drop);
        d.reset(Lsn(0x100));
        assert_eq!(d.on_wal(&begin(0x150, 2)).unwrap(), Verdict::Keep);
        assert_eq!(d.on_wal(&commit(0x150, 0x160)).unwrap(), Verdict::Keep);
    }
}
