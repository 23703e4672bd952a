//! Model test: random workloads of regular transactions, schema changes, interleaved streamed
//! transactions (committed, aborted, still open) and heartbeats, written with tiny segments.
//! For resume positions across the whole history, a simulated client reading from the log must
//! get exactly the transactions that end after X, every chunk of the streams it must apply, and
//! a schema that matches every change it decodes.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;
use walcast_relay::log::pgoutput_peek::{build::*, PeekState, Peeked};
use walcast_relay::log::{Log, LogConfig, LogError, RetentionPolicy};

#[derive(Clone, Debug)]
enum Op {
    /// Regular transaction touching relation `rel`; `alter` bumps its schema first.
    Txn {
        rel: u32,
        alter: bool,
    },
    /// A chunk of the stream in slot `slot` (opening one if none is open) touching `rel`.
    Chunk {
        slot: usize,
        rel: u32,
    },
    Commit {
        slot: usize,
    },
    Abort {
        slot: usize,
    },
    Heartbeat,
    /// PostgreSQL reconnects: a reset, open streams are abandoned, and the last `resend`
    /// regular transactions are sent again (the writer must drop them).
    /// With `restream`, the last committed streamed transaction is streamed again, whole
    /// (the writer must drop its commit; its chunks stay uncommitted).
    Reconnect {
        resend: usize,
        restream: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..3, proptest::bool::weighted(0.2)).prop_map(|(rel, alter)| Op::Txn { rel, alter }),
        3 => (0usize..3, 0u32..3).prop_map(|(slot, rel)| Op::Chunk { slot, rel }),
        2 => (0usize..3).prop_map(|slot| Op::Commit { slot }),
        1 => (0usize..3).prop_map(|slot| Op::Abort { slot }),
        1 => Just(Op::Heartbeat),
        1 => (0usize..4, proptest::bool::ANY).prop_map(|(resend, restream)| Op::Reconnect { resend, restream }),
    ]
}

/// What the writer was given, for the oracle.
#[derive(Default)]
struct History {
    /// Regular transactions: (final_lsn, end_lsn).
    txns: Vec<(u64, u64)>,
    /// Streamed xid → (chunks, Some(end_lsn) if committed, aborted).
    streams: BTreeMap<u32, (usize, Option<u64>, bool)>,
    /// Positions a client might resume from.
    boundaries: Vec<u64>,
}

fn rel_tag(rel: u32, version: u32) -> String {
    format!("r{rel}v{version}")
}

fn build(ops: &[Op], dir: &std::path::Path) -> (Log, History) {
    let mut c = LogConfig::new(dir);
    c.segment_bytes = 600;
    c.read_buffer = 4096;
    let (log, mut w, _) = Log::open(c).unwrap();
    let mut h = History::default();
    let mut lsn = 0x1000u64;
    let mut version: HashMap<u32, u32> = HashMap::new();
    // Schema sent this session (regular), and per open stream.
    let mut sent: HashSet<u32> = HashSet::new();
    let mut slots: [Option<(u32, HashSet<u32>)>; 3] = Default::default();
    let mut next_xid = 100u32;
    // Raw messages of each stream, to stream a committed one again after a reconnect.
    let mut raw: HashMap<u32, Vec<(u64, Vec<u8>)>> = HashMap::new();
    let mut last_committed: Option<u32> = None;
    for op in ops {
        lsn += 0x100;
        match op {
            Op::Txn { rel, alter } => {
                let locked = slots.iter().flatten().any(|(_, rels)| rels.contains(rel));
                w.append_wal(Lsn(lsn - 0x80), &begin(lsn, 1)).unwrap();
                if *alter && !locked {
                    *version.entry(*rel).or_default() += 1;
                    sent.remove(rel);
                }
                let v = version.get(rel).copied().unwrap_or(0);
                if sent.insert(*rel) {
                    w.append_wal(Lsn::ZERO, &relation(None, *rel, &rel_tag(*rel, v)))
                        .unwrap();
                }
                w.append_wal(Lsn(lsn - 0x40), &insert(*rel, rel_tag(*rel, v).as_bytes()))
                    .unwrap();
                w.append_wal(Lsn(lsn), &commit(lsn, lsn + 0x10)).unwrap();
                h.txns.push((lsn, lsn + 0x10));
                h.boundaries.push(lsn + 0x10);
            }
            Op::Chunk { slot, rel } => {
                let (xid, rels) = slots[*slot].get_or_insert_with(|| {
                    next_xid += 1;
                    (next_xid, HashSet::new())
                });
                let xid = *xid;
                let v = version.get(rel).copied().unwrap_or(0);
                let first = !h.streams.contains_key(&xid);
                let start = if first {
                    stream_start(xid)
                } else {
                    stream_start_next(xid)
                };
                let mut msgs = vec![(lsn, start)];
                if rels.insert(*rel) {
                    msgs.push((0, relation(Some(xid), *rel, &rel_tag(*rel, v))));
                }
                msgs.push((
                    lsn + 1,
                    stream_insert(xid, *rel, rel_tag(*rel, v).as_bytes()),
                ));
                msgs.push((lsn + 2, stream_stop()));
                for (l, m) in msgs {
                    w.append_wal(Lsn(l), &m).unwrap();
                    raw.entry(xid).or_default().push((l, m));
                }
                h.streams.entry(xid).or_default().0 += 1;
            }
            Op::Commit { slot } => {
                if let Some((xid, _)) = slots[*slot].take() {
                    let c = stream_commit(xid, lsn, lsn + 0x10);
                    w.append_wal(Lsn(lsn), &c).unwrap();
                    raw.entry(xid).or_default().push((lsn, c));
                    last_committed = Some(xid);
                    h.streams.entry(xid).or_default().1 = Some(lsn + 0x10);
                    h.boundaries.push(lsn + 0x10);
                }
            }
            Op::Abort { slot } => {
                if let Some((xid, _)) = slots[*slot].take() {
                    w.append_wal(Lsn(lsn), &stream_abort(xid, xid)).unwrap();
                    h.streams.entry(xid).or_default().2 = true;
                }
            }
            Op::Heartbeat => {
                w.append(FrameKind::Heartbeat, Lsn(lsn), &[]).unwrap();
                h.boundaries.push(lsn);
            }
            Op::Reconnect { resend, restream } => {
                w.append(FrameKind::Reset, Lsn(lsn), &[]).unwrap();
                slots = Default::default();
                sent.clear();
                let n = h.txns.len();
                for &(fin, end) in &h.txns[n.saturating_sub(*resend)..] {
                    let dropped = [
                        w.append_wal(Lsn(fin - 0x80), &begin(fin, 1)).unwrap(),
                        w.append_wal(Lsn(fin - 0x40), &insert(0, b"dup")).unwrap(),
                        w.append_wal(Lsn(fin), &commit(fin, end)).unwrap(),
                    ];
                    assert!(dropped
                        .iter()
                        .all(|a| *a == walcast_relay::log::Appended::Dropped));
                }
                if let (true, Some(xid)) = (*restream, last_committed) {
                    let msgs = raw[&xid].clone();
                    let (commit, chunks) = msgs.split_last().unwrap();
                    for (l, m) in chunks {
                        w.append_wal(Lsn(*l), m).unwrap();
                    }
                    let got = w.append_wal(Lsn(commit.0), &commit.1).unwrap();
                    assert_eq!(
                        got,
                        walcast_relay::log::Appended::Dropped,
                        "duplicate stream commit"
                    );
                }
            }
        }
        if lsn % 0x700 == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
    (log, h)
}

/// A client: applies frames, checks schema for every change, records what it applied.
#[derive(Default)]
struct Client {
    schema: HashMap<u32, String>,
    pending: HashMap<u32, HashMap<u32, String>>,
    chunks: HashMap<u32, usize>,
    applied_txns: Vec<u64>,
    applied_streams: BTreeMap<u32, usize>,
    peek: PeekState,
}

impl Client {
    fn apply(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), String> {
        let name = |m: &[u8], at: usize| {
            let s = &m[at..];
            let s = &s[s.iter().position(|&b| b == 0).unwrap() + 1..];
            String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
        };
        match kind {
            FrameKind::Prelude => {
                let rel = u32::from_be_bytes(payload[1..5].try_into().unwrap());
                self.schema.insert(rel, name(payload, 5));
            }
            FrameKind::Reset => {
                self.pending.clear();
                self.chunks.clear();
                self.peek.reset();
            }
            FrameKind::Wal => {
                let (p, block) = self.peek.peek(payload).unwrap();
                match (p, block) {
                    (Peeked::Relation { relid }, None) => {
                        self.schema.insert(relid, name(payload, 5));
                    }
                    (Peeked::Relation { relid }, Some(xid)) => {
                        self.pending
                            .entry(xid)
                            .or_default()
                            .insert(relid, name(payload, 9));
                    }
                    (Peeked::Begin { final_lsn, .. }, _) => self.applied_txns.push(final_lsn.0),
                    (Peeked::StreamStart { xid, .. }, _) => {
                        *self.chunks.entry(xid).or_default() += 1
                    }
                    (Peeked::StreamCommit { xid, .. }, _) => {
                        let n = self.chunks.remove(&xid).unwrap_or(0);
                        self.applied_streams.insert(xid, n);
                        for (rel, s) in self.pending.remove(&xid).unwrap_or_default() {
                            self.schema.insert(rel, s);
                        }
                    }
                    (Peeked::StreamAbort { xid, .. }, _) => {
                        self.chunks.remove(&xid);
                        self.pending.remove(&xid);
                    }
                    (Peeked::Other(b'I'), blk) => {
                        let at = if blk.is_some() { 5 } else { 1 };
                        let rel = u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
                        let want = String::from_utf8(payload[at + 5..].to_vec()).unwrap();
                        let have = blk
                            .and_then(|x| self.pending.get(&x).and_then(|p| p.get(&rel)))
                            .or_else(|| self.schema.get(&rel));
                        if have != Some(&want) {
                            return Err(format!(
                                "insert on {rel} expects {want}, client has {have:?}"
                            ));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Reads from `from` with a simulated client and compares with the oracle.
fn check_from(log: &Log, h: &History, from: Option<u64>) -> Result<(), TestCaseError> {
    let mut r = log
        .reader(from.map(Lsn))
        .map_err(|e| TestCaseError::fail(format!("from {from:?}: {e}")))?;
    let x = r.from().0;
    let mut client = Client::default();
    while let Some(f) = r.next_frame().unwrap() {
        client
            .apply(f.kind, &f.payload)
            .map_err(|e| TestCaseError::fail(format!("from {x:#x}: {e}")))?;
    }
    let want_txns: Vec<u64> = h.txns.iter().filter(|t| t.1 > x).map(|t| t.0).collect();
    prop_assert_eq!(
        &client.applied_txns,
        &want_txns,
        "regular transactions from {:#x}",
        x
    );
    let want_streams: BTreeMap<u32, usize> = h
        .streams
        .iter()
        .filter_map(|(&xid, &(n, end, _))| end.filter(|&e| e > x).map(|_| (xid, n)))
        .collect();
    prop_assert_eq!(
        &client.applied_streams,
        &want_streams,
        "streams (xid → chunks) from {:#x}",
        x
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_resume_position_gets_exactly_what_it_needs(ops in proptest::collection::vec(op(), 1..80)) {
        let tmp = tempfile::tempdir().unwrap();
        let (log, h) = build(&ops, tmp.path());
        check_from(&log, &h, None)?;
        for &b in &h.boundaries {
            check_from(&log, &h, Some(b))?;
        }
    }

    #[test]
    fn retention_keeps_what_a_durable_consumer_needs(ops in proptest::collection::vec(op(), 1..80), keep_at in 0.0f64..1.0) {
        let tmp = tempfile::tempdir().unwrap();
        let (log, h) = build(&ops, tmp.path());
        prop_assume!(!h.boundaries.is_empty());
        let min_keep = h.boundaries[((h.boundaries.len() - 1) as f64 * keep_at) as usize];
        let policy = RetentionPolicy { max_bytes: Some(1), max_age: None };
        log.apply_retention(&policy, 0, Lsn(min_keep)).unwrap();
        let oldest = log.oldest_available();
        prop_assert!(oldest <= Lsn(min_keep), "oldest {} above min_keep {:#x}", oldest, min_keep);
        check_from(&log, &h, None)?;
        for &b in &h.boundaries {
            if Lsn(b) >= oldest {
                check_from(&log, &h, Some(b))?;
            } else {
                let resync = matches!(log.reader(Some(Lsn(b))), Err(LogError::ResyncRequired { .. }));
                prop_assert!(resync, "from {:#x} below oldest {} must need a resync", b, oldest);
            }
        }
    }
}
