//! Buffering streamed transactions until they commit.
//!
//! With `streaming 'on'`/`'parallel'`, PostgreSQL sends a large transaction's changes before it
//! commits, in Stream Start … Stream Stop blocks that may interleave with other transactions.
//! A consumer that must only apply committed changes buffers them per top-level xid here and
//! gets them back, in order, on Stream Commit (or Stream Prepare); a Stream Abort drops exactly
//! the changes [`StreamAbortEvent::discarded`] names.
//!
//! ```
//! use walcast_decoder::decoder::{streamed::StreamedTransactions, Event};
//! # fn demo(decoder: &mut walcast_decoder::Decoder, msgs: &[&[u8]]) -> walcast_decoder::Result<()> {
//! let mut pending: StreamedTransactions<String> = StreamedTransactions::new();
//! for msg in msgs {
//!     let top = decoder.stream_xid();
//!     let event = decoder.decode(msg)?;
//!     match (&event, top) {
//!         (Event::Insert(c) | Event::Update(c) | Event::Delete(c), Some(top)) => {
//!             pending.push(top, c.xid.unwrap_or(top), format!("{event:?}"));
//!         }
//!         (Event::StreamAbort(a), _) => { pending.abort(a); }
//!         (Event::StreamCommit(c), _) => { let _committed: Vec<String> = pending.commit(c.xid); }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

use super::{IdMap, StreamAbortEvent};

/// Items of in-progress streamed transactions, per top-level xid, in arrival order.
#[derive(Debug, Clone)]
pub struct StreamedTransactions<T> {
    txns: IdMap<Vec<(u32, T)>>,
    items: usize,
}

impl<T> Default for StreamedTransactions<T> {
    fn default() -> Self {
        StreamedTransactions {
            txns: IdMap::default(),
            items: 0,
        }
    }
}

impl<T> StreamedTransactions<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers `item`, made by (sub)transaction `xid` of the streamed transaction `top_xid`.
    pub fn push(&mut self, top_xid: u32, xid: u32, item: T) {
        self.txns.get_or_default(top_xid).push((xid, item));
        self.items += 1;
    }

    /// Drops the items of every xid the abort discards. Returns how many were dropped.
    pub fn abort(&mut self, abort: &StreamAbortEvent) -> usize {
        let dropped = if abort.is_top_level() {
            self.txns.remove(&abort.xid).map_or(0, |v| v.len())
        } else if let Some(items) = self.txns.get_mut(&abort.xid) {
            let before = items.len();
            items.retain(|(x, _)| !abort.discarded.contains(x));
            before - items.len()
        } else {
            0
        };
        self.items -= dropped;
        dropped
    }

    /// Takes the items of a committed (or prepared) streamed transaction, in arrival order.
    pub fn commit(&mut self, top_xid: u32) -> Vec<T> {
        let items: Vec<T> = self
            .txns
            .remove(&top_xid)
            .map(|v| v.into_iter().map(|(_, t)| t).collect())
            .unwrap_or_default();
        self.items -= items.len();
        items
    }

    /// Items buffered for `top_xid`.
    pub fn pending(&self, top_xid: u32) -> usize {
        self.txns.get(&top_xid).map_or(0, Vec::len)
    }

    /// Items buffered in total (watch this to bound memory).
    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Top-level xids with buffered items.
    pub fn transactions(&self) -> impl Iterator<Item = u32> + '_ {
        self.txns.keys().copied()
    }

    /// Drops everything (e.g. on a new walsender session, which re-streams from the start).
    pub fn clear(&mut self) {
        self.txns.clear();
        self.items = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abort(xid: u32, subxid: u32, discarded: Vec<u32>) -> StreamAbortEvent {
        StreamAbortEvent {
            xid,
            subxid,
            abort_lsn: None,
            abort_time: None,
            discarded,
        }
    }

    #[test]
    fn commit_returns_in_order_and_subabort_drops_only_its_xids() {
        let mut s = StreamedTransactions::new();
        s.push(10, 10, "a");
        s.push(10, 11, "b");
        s.push(20, 20, "x");
        s.push(10, 12, "c");
        s.push(10, 10, "d");
        assert_eq!(s.abort(&abort(10, 11, vec![11, 12])), 2);
        assert_eq!(s.len(), 3);
        assert_eq!(s.commit(10), vec!["a", "d"]);
        assert_eq!(s.abort(&abort(20, 20, vec![20])), 1);
        assert!(s.is_empty());
        assert!(s.commit(20).is_empty());
    }
}
