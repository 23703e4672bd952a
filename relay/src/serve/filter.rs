//! Table filtering at the relay, by relation id only, without decoding rows.
//!
//! A client that asks for `tables=public.a,public.b` receives only the changes of those tables.
//! The filter learns which relation ids those names have from the Relation messages that pass by,
//! and holds each transaction's opening frames (Begin, Origin, transactional Messages, Relation,
//! Type) until its first matching change, so a transaction left empty by the filter is dropped
//! whole. Streamed transactions get the same treatment per stream block, and their closing
//! frames (Stream Commit/Abort/Prepare) pass only if some block of that xid passed. This is pure:
//! frames in, frames out; the serving tasks around it move the bytes.

use std::collections::{HashMap, HashSet};

/// What the filter needs to know about a frame: its pgoutput shape, read from a few bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameClass {
    Begin,
    Commit,
    BeginPrepare {
        xid: u32,
    },
    Prepare,
    CommitPrepared {
        xid: u32,
    },
    RollbackPrepared {
        xid: u32,
    },
    Origin,
    Type,
    Relation {
        relid: u32,
        schema: String,
        table: String,
    },
    /// Insert, Update or Delete of one relation.
    Change {
        relid: u32,
    },
    Truncate {
        relids: Vec<u32>,
    },
    Message {
        transactional: bool,
    },
    StreamStart {
        xid: u32,
    },
    StreamStop,
    StreamCommit {
        xid: u32,
    },
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
    StreamPrepare {
        xid: u32,
    },
    /// Anything that is not pgoutput (heartbeats, resets, ends): always passes, in order.
    Passthrough,
}

/// Above this many held frames a transaction's opening is released even before a matching change:
/// holding is for dropping empty transactions, and must not let one client's memory grow without bound.
pub const MAX_HELD_FRAMES: usize = 4096;

/// Whether a held frame describes schema (which must outlive a dropped transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    No,
    Relation(u32),
    Type,
}

/// The table filter for one client. `F` is whatever carries a frame's bytes.
#[derive(Debug)]
pub struct TableFilter<F> {
    wanted: HashSet<(String, String)>,
    /// Relation ids known to be wanted (true) or not (false), learned from Relation frames.
    relids: HashMap<u32, bool>,
    held: Vec<(F, Schema)>,
    /// Relation and Type frames of wanted tables whose transaction was dropped after all (row
    /// scopes drop changes one by one, so a transaction can carry a wanted table's Relation and
    /// none of its changes). PostgreSQL sends a Relation once per session, so the client still
    /// needs it: it goes out at the start of the next released transaction, with the stream xid
    /// it was sent with (`None` outside stream blocks). Bounded by [`MAX_HELD_FRAMES`].
    pending_schema: Vec<(F, Schema, Option<u32>)>,
    /// Whether the current transaction (or stream block) has released its opening frames.
    released: bool,
    in_txn: bool,
    /// Streamed or prepared transactions of which at least one frame was released.
    released_xids: HashSet<u32>,
    current_stream_xid: Option<u32>,
    current_prepare_xid: Option<u32>,
}

impl<F> TableFilter<F> {
    /// `tables` are `(schema, table)` pairs; an empty set means "every table".
    pub fn new(tables: impl IntoIterator<Item = (String, String)>) -> Self {
        TableFilter {
            wanted: tables.into_iter().collect(),
            relids: HashMap::new(),
            held: Vec::new(),
            pending_schema: Vec::new(),
            released: false,
            in_txn: false,
            released_xids: HashSet::new(),
            current_stream_xid: None,
            current_prepare_xid: None,
        }
    }

    pub fn is_everything(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Feeds one frame; appends to `out` whatever may now be sent, in order.
    pub fn push(&mut self, frame: F, class: &FrameClass, out: &mut Vec<F>) {
        if self.is_everything() {
            out.push(frame);
            return;
        }
        match class {
            FrameClass::Begin => {
                self.drop_held();
                self.in_txn = true;
                self.released = false;
                self.held.push((frame, Schema::No));
            }
            FrameClass::BeginPrepare { xid } => {
                self.drop_held();
                self.in_txn = true;
                self.released = false;
                self.current_prepare_xid = Some(*xid);
                self.held.push((frame, Schema::No));
            }
            FrameClass::StreamStart { xid } => {
                self.drop_held();
                self.in_txn = true;
                self.current_stream_xid = Some(*xid);
                self.released = false;
                self.held.push((frame, Schema::No));
            }
            FrameClass::Relation {
                relid,
                schema,
                table,
            } => {
                let wanted = self.wanted.contains(&(schema.clone(), table.clone()));
                self.relids.insert(*relid, wanted);
                // A newer description replaces one still pending.
                self.pending_schema
                    .retain(|(_, s, _)| *s != Schema::Relation(*relid));
                if wanted {
                    self.hold_or_pass(frame, Schema::Relation(*relid), out);
                }
            }
            FrameClass::Origin => self.hold_or_pass(frame, Schema::No, out),
            FrameClass::Type => self.hold_or_pass(frame, Schema::Type, out),
            FrameClass::Message { transactional } => {
                if *transactional && self.in_txn {
                    self.hold_or_pass(frame, Schema::No, out);
                } else {
                    out.push(frame);
                }
            }
            FrameClass::Change { relid } => {
                if self.relids.get(relid).copied().unwrap_or(false) {
                    self.release(out);
                    out.push(frame);
                }
            }
            FrameClass::Truncate { relids } => {
                if relids
                    .iter()
                    .any(|r| self.relids.get(r).copied().unwrap_or(false))
                {
                    self.release(out);
                    out.push(frame);
                }
            }
            FrameClass::Commit => self.close(frame, out),
            FrameClass::Prepare => {
                // The prepared transaction's outcome (Commit/Rollback Prepared) arrives later,
                // outside any transaction: remember whether the client saw it prepared.
                if let (true, Some(xid)) = (self.released, self.current_prepare_xid.take()) {
                    self.released_xids.insert(xid);
                }
                self.close(frame, out);
            }
            FrameClass::StreamStop => {
                self.close(frame, out);
                self.current_stream_xid = None;
            }
            FrameClass::CommitPrepared { xid } | FrameClass::RollbackPrepared { xid } => {
                if self.released_xids.remove(xid) {
                    out.push(frame);
                }
            }
            FrameClass::StreamCommit { xid } | FrameClass::StreamPrepare { xid } => {
                if self.released_xids.remove(xid) {
                    out.push(frame);
                }
            }
            FrameClass::StreamAbort { xid, subxid } => {
                let seen = if xid == subxid {
                    self.released_xids.remove(xid)
                } else {
                    self.released_xids.contains(xid)
                };
                if seen {
                    out.push(frame);
                }
            }
            FrameClass::Passthrough => out.push(frame),
        }
    }

    /// Whether the frames of the current transaction have been released to the client so far.
    pub fn current_released(&self) -> bool {
        self.released
    }

    fn hold_or_pass(&mut self, frame: F, schema: Schema, out: &mut Vec<F>) {
        if !self.in_txn || self.released {
            out.push(frame);
            return;
        }
        self.held.push((frame, schema));
        if self.held.len() >= MAX_HELD_FRAMES {
            self.release(out);
        }
    }

    fn release(&mut self, out: &mut Vec<F>) {
        let mut held = self.held.drain(..);
        if !self.pending_schema.is_empty() {
            // The opener (Begin, Stream Start, Begin Prepare) first, then the schema the client
            // missed, as PostgreSQL would have sent it before the first change.
            if let Some((opener, _)) = held.next() {
                out.push(opener);
            }
            let xid = self.current_stream_xid;
            let mut kept = Vec::new();
            for (f, s, sx) in self.pending_schema.drain(..) {
                if sx == xid {
                    out.push(f);
                } else {
                    // Its bytes carry another stream's xid (or none): wait for a matching block.
                    kept.push((f, s, sx));
                }
            }
            self.pending_schema = kept;
        }
        out.extend(held.map(|(f, _)| f));
        if !self.released {
            self.released = true;
            if let Some(xid) = self.current_stream_xid {
                self.released_xids.insert(xid);
            }
        }
    }

    fn close(&mut self, frame: F, out: &mut Vec<F>) {
        if self.released {
            out.push(frame);
        }
        self.drop_held();
        self.in_txn = false;
        self.released = false;
    }

    fn drop_held(&mut self) {
        let xid = self.current_stream_xid;
        for (f, schema) in self.held.drain(..) {
            if schema == Schema::No {
                continue;
            }
            if let Schema::Relation(_) = schema {
                self.pending_schema.retain(|(_, s, _)| *s != schema);
            }
            self.pending_schema.push((f, schema, xid));
        }
        if self.pending_schema.len() > MAX_HELD_FRAMES {
            let excess = self.pending_schema.len() - MAX_HELD_FRAMES;
            self.pending_schema.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(relid: u32, table: &str) -> FrameClass {
        FrameClass::Relation {
            relid,
            schema: "public".into(),
            table: table.into(),
        }
    }

    fn run(
        filter: &mut TableFilter<&'static str>,
        frames: &[(&'static str, FrameClass)],
    ) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (f, c) in frames {
            filter.push(*f, c, &mut out);
        }
        out
    }

    fn only_a() -> TableFilter<&'static str> {
        TableFilter::new([("public".to_string(), "a".to_string())])
    }

    #[test]
    fn empty_filter_passes_everything() {
        let mut f = TableFilter::new(Vec::new());
        let out = run(
            &mut f,
            &[
                ("B", FrameClass::Begin),
                ("I", FrameClass::Change { relid: 9 }),
                ("C", FrameClass::Commit),
            ],
        );
        assert_eq!(out, ["B", "I", "C"]);
    }

    #[test]
    fn keeps_matching_transaction_and_drops_empty_one() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("B1", FrameClass::Begin),
                ("Ra", rel(1, "a")),
                ("Rb", rel(2, "b")),
                ("Ib", FrameClass::Change { relid: 2 }),
                ("Ia", FrameClass::Change { relid: 1 }),
                ("C1", FrameClass::Commit),
                ("B2", FrameClass::Begin),
                ("Ib2", FrameClass::Change { relid: 2 }),
                (
                    "M2",
                    FrameClass::Message {
                        transactional: true,
                    },
                ),
                ("C2", FrameClass::Commit),
                ("k", FrameClass::Passthrough),
            ],
        );
        assert_eq!(out, ["B1", "Ra", "Ia", "C1", "k"]);
    }

    #[test]
    fn transactional_message_travels_with_its_transaction() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("B", FrameClass::Begin),
                (
                    "M",
                    FrameClass::Message {
                        transactional: true,
                    },
                ),
                ("Ra", rel(1, "a")),
                ("Ia", FrameClass::Change { relid: 1 }),
                ("C", FrameClass::Commit),
                (
                    "M-nontx",
                    FrameClass::Message {
                        transactional: false,
                    },
                ),
            ],
        );
        assert_eq!(out, ["B", "M", "Ra", "Ia", "C", "M-nontx"]);
    }

    #[test]
    fn streamed_transaction_passes_only_blocks_with_matches_and_its_commit() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("Ra", rel(1, "a")),
                ("Rb", rel(2, "b")),
                ("S1", FrameClass::StreamStart { xid: 7 }),
                ("Ib", FrameClass::Change { relid: 2 }),
                ("E1", FrameClass::StreamStop),
                ("S2", FrameClass::StreamStart { xid: 7 }),
                ("Ia", FrameClass::Change { relid: 1 }),
                ("E2", FrameClass::StreamStop),
                ("S3", FrameClass::StreamStart { xid: 8 }),
                ("Ib8", FrameClass::Change { relid: 2 }),
                ("E3", FrameClass::StreamStop),
                ("A8", FrameClass::StreamAbort { xid: 8, subxid: 8 }),
                ("c7", FrameClass::StreamCommit { xid: 7 }),
            ],
        );
        assert_eq!(out, ["Ra", "S2", "Ia", "E2", "c7"]);
    }

    #[test]
    fn subtransaction_abort_passes_while_transaction_continues() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("Ra", rel(1, "a")),
                ("S", FrameClass::StreamStart { xid: 7 }),
                ("Ia", FrameClass::Change { relid: 1 }),
                ("E", FrameClass::StreamStop),
                ("A-sub", FrameClass::StreamAbort { xid: 7, subxid: 9 }),
                ("c", FrameClass::StreamCommit { xid: 7 }),
            ],
        );
        assert_eq!(out, ["Ra", "S", "Ia", "E", "A-sub", "c"]);
    }

    #[test]
    fn prepared_transaction_outcome_follows_its_prepare() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("Ra", rel(1, "a")),
                ("Rb", rel(2, "b")),
                ("b1", FrameClass::BeginPrepare { xid: 5 }),
                ("Ia", FrameClass::Change { relid: 1 }),
                ("P1", FrameClass::Prepare),
                ("b2", FrameClass::BeginPrepare { xid: 6 }),
                ("Ib", FrameClass::Change { relid: 2 }),
                ("P2", FrameClass::Prepare),
                ("K6", FrameClass::CommitPrepared { xid: 6 }),
                ("K5", FrameClass::CommitPrepared { xid: 5 }),
            ],
        );
        assert_eq!(out, ["Ra", "b1", "Ia", "P1", "K5"]);
    }

    #[test]
    fn holding_is_bounded() {
        let mut f = only_a();
        let mut out = Vec::new();
        f.push("B", &FrameClass::Begin, &mut out);
        for _ in 0..MAX_HELD_FRAMES + 10 {
            f.push(
                "M",
                &FrameClass::Message {
                    transactional: true,
                },
                &mut out,
            );
        }
        assert!(f.held.len() < MAX_HELD_FRAMES);
        assert!(f.pending_schema.len() <= MAX_HELD_FRAMES);
        assert_eq!(out[0], "B");
    }

    #[test]
    fn truncate_passes_when_any_relation_matches() {
        let mut f = only_a();
        let out = run(
            &mut f,
            &[
                ("Ra", rel(1, "a")),
                ("Rb", rel(2, "b")),
                ("B", FrameClass::Begin),
                ("Tb", FrameClass::Truncate { relids: vec![2] }),
                ("C", FrameClass::Commit),
                ("B2", FrameClass::Begin),
                ("Tab", FrameClass::Truncate { relids: vec![2, 1] }),
                ("C2", FrameClass::Commit),
            ],
        );
        assert_eq!(out, ["Ra", "B2", "Tab", "C2"]);
    }

    #[test]
    fn schema_of_a_dropped_transaction_reaches_the_next_released_one() {
        // Row scopes drop changes of a wanted table one by one: the transaction that carried the
        // table's Relation can end up empty, and PostgreSQL will not send that Relation again.
        let mut f = only_a();
        let mut out = Vec::new();
        // Transaction 1: its change was dropped upstream (never pushed).
        f.push("B1", &FrameClass::Begin, &mut out);
        f.push("Ra", &rel(1, "a"), &mut out);
        f.push("C1", &FrameClass::Commit, &mut out);
        assert!(out.is_empty());
        f.push("B2", &FrameClass::Begin, &mut out);
        f.push("Ia", &FrameClass::Change { relid: 1 }, &mut out);
        f.push("C2", &FrameClass::Commit, &mut out);
        assert_eq!(out, ["B2", "Ra", "Ia", "C2"]);
        // Sent once, not again.
        out.clear();
        f.push("B3", &FrameClass::Begin, &mut out);
        f.push("Ia3", &FrameClass::Change { relid: 1 }, &mut out);
        f.push("C3", &FrameClass::Commit, &mut out);
        assert_eq!(out, ["B3", "Ia3", "C3"]);
        // A newer Relation replaces a pending older one.
        out.clear();
        f.push("B4", &FrameClass::Begin, &mut out);
        f.push("Ra-old", &rel(1, "a"), &mut out);
        f.push("C4", &FrameClass::Commit, &mut out);
        f.push("B5", &FrameClass::Begin, &mut out);
        f.push("Ra-new", &rel(1, "a"), &mut out);
        f.push("Ia5", &FrameClass::Change { relid: 1 }, &mut out);
        f.push("C5", &FrameClass::Commit, &mut out);
        assert_eq!(out, ["B5", "Ra-new", "Ia5", "C5"]);
        // A stream block's Relation (carrying its xid) waits for a block of the same xid.
        out.clear();
        f.push("S7", &FrameClass::StreamStart { xid: 7 }, &mut out);
        f.push("Ra7", &rel(1, "a"), &mut out);
        f.push("E7", &FrameClass::StreamStop, &mut out);
        f.push("B6", &FrameClass::Begin, &mut out);
        f.push("Ia6", &FrameClass::Change { relid: 1 }, &mut out);
        f.push("C6", &FrameClass::Commit, &mut out);
        f.push("S7b", &FrameClass::StreamStart { xid: 7 }, &mut out);
        f.push("Ia7", &FrameClass::Change { relid: 1 }, &mut out);
        f.push("E7b", &FrameClass::StreamStop, &mut out);
        assert_eq!(out, ["B6", "Ia6", "C6", "S7b", "Ra7", "Ia7", "E7b"]);
    }
}
