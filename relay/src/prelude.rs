//! The schema prelude: the latest Relation (`R`) and Type (`Y`) message per relation id / type
//! oid, so a client that starts mid-stream can decode the first change it gets. Pure.
//!
//! PostgreSQL sends R/Y once per walsender session (and again after a relcache invalidation),
//! so a client joining later never sees them. The relay feeds every frame, in log order, to a
//! [`Prelude`] and sends [`Prelude::frames`] (as `'p'` frames) before the first real frame.
//!
//! Streamed transactions: inside a Stream Start … Stop block R/Y carry the xid after the tag.
//! Those are kept aside per xid and only become the committed schema on Stream Commit (or Stream
//! Prepare); Stream Abort of the top-level xid and a session reset (`'x'`) drop them. An aborted
//! stream's R therefore never replaces the committed one. Entries carry a sequence number, so
//! promoting a stream's R on commit never overrides a newer R that arrived meanwhile.
//! Promoted messages are stored without the stream xid: prelude frames are always in the
//! plain (non-stream) layout.

use std::collections::{BTreeMap, HashMap};

use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use crate::log::pgoutput_peek::{PeekError, PeekState, Peeked};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Type(u32),
    Relation(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    seq: u64,
    lsn: Lsn,
    /// The pgoutput message in the plain layout (no stream xid).
    msg: Vec<u8>,
}

/// One prelude message to send: a `'p'` frame with this LSN and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreludeFrame {
    pub lsn: Lsn,
    pub msg: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Prelude {
    committed: BTreeMap<Key, Entry>,
    pending: HashMap<u32, Vec<(Key, Entry)>>,
    seq: u64,
    /// Bumped on every change of the committed set, so callers can cache [`Prelude::frames`].
    changes: u64,
    peek: PeekState,
}

impl Prelude {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of relations and types in the committed prelude.
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// A counter that changes whenever the committed prelude does.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Total payload bytes of the committed prelude.
    pub fn bytes(&self) -> usize {
        self.committed.values().map(|e| e.msg.len()).sum()
    }

    /// Feeds one frame, in log order. Frames other than `'w'`, `'p'` and `'x'` are ignored.
    /// An error means a malformed pgoutput message; the state is unchanged by it.
    pub fn observe(&mut self, kind: FrameKind, lsn: Lsn, payload: &[u8]) -> Result<(), PeekError> {
        match kind {
            FrameKind::Wal => self.observe_wal(lsn, payload),
            FrameKind::Prelude => {
                // Prelude frames are plain-layout R/Y, never inside a block.
                // A segment's snapshot is as old as the segment start: sequence 0, so a stream
                // R/Y that was pending before the snapshot still wins when its stream commits.
                let key = match crate::log::pgoutput_peek::peek(payload, false)? {
                    Peeked::Relation { relid } => Key::Relation(relid),
                    Peeked::Type { oid } => Key::Type(oid),
                    _ => return Ok(()),
                };
                self.changes += 1;
                self.committed.insert(
                    key,
                    Entry {
                        seq: 0,
                        lsn,
                        msg: payload.to_vec(),
                    },
                );
                Ok(())
            }
            FrameKind::Reset => {
                self.pending.clear();
                self.peek.reset();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn observe_wal(&mut self, lsn: Lsn, msg: &[u8]) -> Result<(), PeekError> {
        let (p, block_xid) = self.peek.peek(msg)?;
        let key = match p {
            Peeked::Relation { relid } => Some(Key::Relation(relid)),
            Peeked::Type { oid } => Some(Key::Type(oid)),
            _ => None,
        };
        if let Some(key) = key {
            match block_xid {
                None => self.commit(key, lsn, msg.to_vec()),
                Some(xid) => {
                    // Strip the 4-byte stream xid: prelude frames use the plain layout.
                    let mut plain = Vec::with_capacity(msg.len().saturating_sub(4));
                    plain.push(msg[0]);
                    plain.extend_from_slice(msg.get(5..).unwrap_or(&[]));
                    self.seq += 1;
                    let entry = Entry {
                        seq: self.seq,
                        lsn,
                        msg: plain,
                    };
                    self.pending.entry(xid).or_default().push((key, entry));
                }
            }
            return Ok(());
        }
        match p {
            Peeked::StreamCommit { xid, .. } | Peeked::StreamPrepare { xid, .. } => {
                for (key, entry) in self.pending.remove(&xid).unwrap_or_default() {
                    let newer = self.committed.get(&key).is_some_and(|c| c.seq > entry.seq);
                    if !newer {
                        self.changes += 1;
                        self.committed.insert(key, entry);
                    }
                }
            }
            Peeked::StreamAbort { xid, subxid } if xid == subxid => {
                self.pending.remove(&xid);
            }
            _ => {}
        }
        Ok(())
    }

    /// Drops the schema held for a streamed xid without promoting it (its commit was a duplicate
    /// the log dropped).
    pub fn forget_stream(&mut self, xid: u32) {
        self.pending.remove(&xid);
    }

    fn commit(&mut self, key: Key, lsn: Lsn, msg: Vec<u8>) {
        self.seq += 1;
        self.changes += 1;
        self.committed.insert(
            key,
            Entry {
                seq: self.seq,
                lsn,
                msg,
            },
        );
    }

    /// The committed prelude as frames to send: all Types first (Relation columns refer to type
    /// oids), then Relations, each group in the order it was last seen.
    pub fn frames(&self) -> Vec<PreludeFrame> {
        let mut types: Vec<&Entry> = Vec::new();
        let mut rels: Vec<&Entry> = Vec::new();
        for (k, e) in &self.committed {
            match k {
                Key::Type(_) => types.push(e),
                Key::Relation(_) => rels.push(e),
            }
        }
        types.sort_by_key(|e| e.seq);
        rels.sort_by_key(|e| e.seq);
        types
            .into_iter()
            .chain(rels)
            .map(|e| PreludeFrame {
                lsn: e.lsn,
                msg: e.msg.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::pgoutput_peek::build::*;

    fn wal(p: &mut Prelude, msg: Vec<u8>) {
        p.observe(FrameKind::Wal, Lsn(1), &msg).unwrap();
    }

    #[test]
    fn keeps_latest_per_relation_types_first() {
        let mut p = Prelude::new();
        wal(&mut p, begin(10, 1));
        wal(&mut p, relation(None, 5, "v1"));
        wal(&mut p, type_msg(None, 900, "mood"));
        wal(&mut p, relation(None, 6, "other"));
        wal(&mut p, commit(10, 11));
        wal(&mut p, relation(None, 5, "v2"));
        let f = p.frames();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].msg, type_msg(None, 900, "mood"));
        assert_eq!(f[1].msg, relation(None, 6, "other"));
        assert_eq!(f[2].msg, relation(None, 5, "v2"));
    }

    #[test]
    fn aborted_stream_relation_never_replaces_committed() {
        let mut p = Prelude::new();
        wal(&mut p, relation(None, 5, "v1"));
        wal(&mut p, stream_start(9));
        wal(&mut p, relation(Some(9), 5, "aborted"));
        wal(&mut p, stream_stop());
        assert_eq!(
            p.frames()[0].msg,
            relation(None, 5, "v1"),
            "pending until commit"
        );
        wal(&mut p, stream_abort(9, 9));
        wal(&mut p, stream_commit(9, 1, 2));
        assert_eq!(p.frames()[0].msg, relation(None, 5, "v1"));
    }

    #[test]
    fn committed_stream_relation_is_promoted_without_xid() {
        let mut p = Prelude::new();
        wal(&mut p, relation(None, 5, "v1"));
        wal(&mut p, stream_start(9));
        wal(&mut p, relation(Some(9), 5, "v2"));
        wal(&mut p, stream_stop());
        wal(&mut p, stream_commit(9, 1, 2));
        assert_eq!(p.frames()[0].msg, relation(None, 5, "v2"));
    }

    #[test]
    fn promotion_does_not_override_newer_plain_relation() {
        let mut p = Prelude::new();
        wal(&mut p, stream_start(9));
        wal(&mut p, relation(Some(9), 5, "stream"));
        wal(&mut p, stream_stop());
        wal(&mut p, relation(None, 5, "newer"));
        wal(&mut p, stream_commit(9, 1, 2));
        assert_eq!(p.frames()[0].msg, relation(None, 5, "newer"));
    }

    #[test]
    fn reset_drops_pending_and_prelude_frames_count_as_committed() {
        let mut p = Prelude::new();
        p.observe(FrameKind::Prelude, Lsn(0), &relation(None, 1, "snap"))
            .unwrap();
        wal(&mut p, stream_start(9));
        wal(&mut p, relation(Some(9), 1, "lost"));
        p.observe(FrameKind::Reset, Lsn(0), &[]).unwrap();
        // After the reset we are outside any block: a plain R parses with the plain layout.
        wal(&mut p, relation(None, 2, "plain"));
        wal(&mut p, stream_commit(9, 1, 2));
        let f = p.frames();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].msg, relation(None, 1, "snap"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn snapshot_frames_lose_to_a_stream_pending_before_them() {
        // Replay from an in-flight stream's first chunk through a later segment's snapshot.
        let mut p = Prelude::new();
        wal(&mut p, stream_start(9));
        wal(&mut p, relation(Some(9), 5, "stream-v2"));
        wal(&mut p, stream_stop());
        p.observe(
            FrameKind::Prelude,
            Lsn(0),
            &relation(None, 5, "snapshot-v1"),
        )
        .unwrap();
        wal(&mut p, stream_commit(9, 1, 2));
        assert_eq!(p.frames()[0].msg, relation(None, 5, "stream-v2"));
    }
}
