//! The stateful decoder: pgoutput messages in, [`Event`]s with named, typed rows out.
//!
//! It keeps exactly the state a pgoutput stream needs to be read:
//! - whether it is inside a Stream Start … Stream Stop block (then some messages carry an xid),
//! - the relation and type descriptions (Relation/Type are sent once per walsender session),
//! - per streamed transaction, the subtransaction xids seen, so a Stream Abort can say exactly
//!   whose changes are discarded (see [`streamed::StreamedTransactions`] to buffer them).

pub mod streamed;

use std::sync::Arc;

use crate::pgoutput::{
    self, Begin, Column, CommitPrepared, LogicalMessage, Message, OldTuple, Origin, Prepare,
    RollbackPrepared, StreamCommit, StreamStart, TupleData, Type,
};
use crate::relation::{ColumnInfo, RelationInfo, ReplicaIdentity};
use crate::value::{self, Value};
use crate::{DecodeError, ErrorKind, Lsn, Result};

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    Begin(Begin),
    /// A Commit, with the xid of the Begin it closes (when this decoder saw that Begin).
    Commit(CommitEvent),
    Origin(Origin<'a>),
    /// A relation was (re)described; the decoder's cache now holds `relation`.
    Relation(RelationEvent),
    /// A user-defined type was described.
    Type(Type<'a>),
    Insert(Change<'a>),
    Update(Change<'a>),
    Delete(Change<'a>),
    Truncate(TruncateEvent),
    Message(LogicalMessage<'a>),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbortEvent),
    BeginPrepare(Prepare<'a>),
    Prepare(Prepare<'a>),
    CommitPrepared(CommitPrepared<'a>),
    RollbackPrepared(RollbackPrepared<'a>),
    StreamPrepare(Prepare<'a>),
}

impl Event<'_> {
    /// The `"type"` name of this event in the JSON lines output.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Begin(_) => "begin",
            Event::Commit(_) => "commit",
            Event::Origin(_) => "origin",
            Event::Relation(_) => "relation",
            Event::Type(_) => "type",
            Event::Insert(_) => "insert",
            Event::Update(_) => "update",
            Event::Delete(_) => "delete",
            Event::Truncate(_) => "truncate",
            Event::Message(_) => "message",
            Event::StreamStart(_) => "stream_start",
            Event::StreamStop => "stream_stop",
            Event::StreamCommit(_) => "stream_commit",
            Event::StreamAbort(_) => "stream_abort",
            Event::BeginPrepare(_) => "begin_prepare",
            Event::Prepare(_) => "prepare",
            Event::CommitPrepared(_) => "commit_prepared",
            Event::RollbackPrepared(_) => "rollback_prepared",
            Event::StreamPrepare(_) => "stream_prepare",
        }
    }

    /// The xid PostgreSQL sent with this event, if it carries one (streamed changes carry the
    /// xid of the (sub)transaction that made them).
    pub fn xid(&self) -> Option<u32> {
        match self {
            Event::Begin(b) => Some(b.xid),
            Event::Commit(c) => c.xid,
            Event::Relation(r) => r.xid,
            Event::Type(t) => t.xid,
            Event::Insert(c) | Event::Update(c) | Event::Delete(c) => c.xid,
            Event::Truncate(t) => t.xid,
            Event::Message(m) => m.xid,
            Event::StreamStart(s) => Some(s.xid),
            Event::StreamCommit(s) => Some(s.xid),
            Event::StreamAbort(a) => Some(a.xid),
            Event::BeginPrepare(p) | Event::Prepare(p) | Event::StreamPrepare(p) => Some(p.xid),
            Event::CommitPrepared(c) => Some(c.xid),
            Event::RollbackPrepared(r) => Some(r.xid),
            _ => None,
        }
    }
}

/// `C`: a transaction commits. pgoutput's Commit has no xid; the decoder adds the one from
/// the Begin it saw, so consumers can name the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitEvent {
    pub xid: Option<u32>,
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationEvent {
    /// Present when the Relation message was sent inside a stream block.
    pub xid: Option<u32>,
    pub relation: Arc<RelationInfo>,
}

/// An Insert, Update or Delete. Rows have one [`Cell`] per column of `relation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    /// Present inside a stream block: the xid of the (sub)transaction that made the change.
    pub xid: Option<u32>,
    pub relation: Arc<RelationInfo>,
    /// Insert and Update: the new row.
    pub new: Option<Row<'a>>,
    /// Update and Delete under REPLICA IDENTITY FULL: the whole old row.
    pub old: Option<Row<'a>>,
    /// Update (when the key changed) and Delete under DEFAULT/INDEX: the old key; other
    /// columns are [`Cell::NotInKey`].
    pub key: Option<Row<'a>>,
}

/// One row: a cell per relation column, in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row<'a> {
    pub cells: Vec<Cell<'a>>,
}

impl<'a> Row<'a> {
    /// Pairs each cell with its column description.
    pub fn with_columns<'r>(
        &'r self,
        relation: &'r RelationInfo,
    ) -> impl Iterator<Item = (&'r ColumnInfo, &'r Cell<'a>)> {
        relation.columns.iter().zip(self.cells.iter())
    }

    /// The cell of the column named `name`.
    pub fn get<'r>(&'r self, relation: &RelationInfo, name: &str) -> Option<&'r Cell<'a>> {
        self.cells.get(relation.column_index(name)?)
    }
}

/// One column of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// A value, [`Value::Null`] for SQL NULL.
    Value(Value<'a>),
    /// A TOASTed value that did not change and was not sent. Not NULL: the old value stands.
    UnchangedToast,
    /// In a key tuple (`K`): the column is not part of the replica identity. Not NULL.
    NotInKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TruncateEvent {
    pub xid: Option<u32>,
    pub cascade: bool,
    pub restart_identity: bool,
    pub relations: Vec<Arc<RelationInfo>>,
}

/// A Stream Abort, with the decoder's account of which changes it discards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAbortEvent {
    /// Top-level transaction.
    pub xid: u32,
    /// The aborted (sub)transaction; equal to `xid` when the whole transaction aborts.
    pub subxid: u32,
    /// PostgreSQL 16+ with `streaming 'parallel'`.
    pub abort_lsn: Option<Lsn>,
    pub abort_time: Option<i64>,
    /// Every xid whose streamed changes are now void: for a top-level abort, `xid` and every
    /// subxid seen; for a subtransaction abort, `subxid` and the subxids first seen after it
    /// (its nested subtransactions), as PostgreSQL's own apply worker discards them.
    pub discarded: Vec<u32>,
}

impl StreamAbortEvent {
    /// The whole streamed transaction is aborted.
    pub fn is_top_level(&self) -> bool {
        self.xid == self.subxid
    }
}

/// What the decoder has seen of one streamed transaction.
#[derive(Debug, Default, Clone)]
struct StreamState {
    /// Subtransaction xids in the order their first change arrived.
    subxids: Vec<u32>,
    /// Subtransaction xids, as a set.
    seen: IdMap<()>,
    /// Relations described inside this transaction's stream blocks. They may describe a schema
    /// that only exists if the transaction commits, so they stay out of the session cache until then.
    relations: IdMap<Arc<RelationInfo>>,
}

#[doc(hidden)]
pub use crate::id_map::IdMap;

/// Stateful pgoutput decoder. One per walsender session (or one per replayed log).
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    relations: IdMap<Arc<RelationInfo>>,
    /// User type OID → `schema.name`.
    types: IdMap<String>,
    /// Top-level xid of the stream block we are inside.
    current_stream: Option<u32>,
    /// Xid of the open (non-streamed) transaction, from its Begin.
    current_xid: Option<u32>,
    streams: IdMap<StreamState>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets stream state for a new walsender session; keeps the relation and type caches
    /// (a new session re-sends them anyway, and a relay replays them).
    pub fn reset(&mut self) {
        self.current_stream = None;
        self.current_xid = None;
        self.streams.clear();
    }

    /// Inside a Stream Start … Stream Stop block?
    pub fn in_stream(&self) -> bool {
        self.current_stream.is_some()
    }

    /// Top-level xid of the stream block we are inside.
    pub fn stream_xid(&self) -> Option<u32> {
        self.current_stream
    }

    /// The cached description of relation `id` (inside a stream block, as that transaction sees it).
    pub fn relation(&self, id: u32) -> Option<&Arc<RelationInfo>> {
        self.current_stream
            .and_then(|x| self.streams.get(&x))
            .and_then(|s| s.relations.get(&id))
            .or_else(|| self.relations.get(&id))
    }

    /// All relations of the session cache.
    pub fn relations(&self) -> impl Iterator<Item = &Arc<RelationInfo>> {
        self.relations.values()
    }

    /// Registers a relation description obtained elsewhere (e.g. a relay's schema prelude).
    pub fn insert_relation(&mut self, relation: RelationInfo) -> Arc<RelationInfo> {
        let arc = Arc::new(relation);
        self.relations.insert(arc.id, Arc::clone(&arc));
        arc
    }

    /// Decodes one pgoutput message. On error the decoder state is unchanged.
    pub fn decode<'a>(&mut self, msg: &'a [u8]) -> Result<Event<'a>> {
        let message = pgoutput::parse(msg, self.in_stream())?;
        Ok(match message {
            Message::Begin(b) => {
                self.current_xid = Some(b.xid);
                Event::Begin(b)
            }
            Message::Commit(c) => Event::Commit(CommitEvent {
                xid: self.current_xid.take(),
                flags: c.flags,
                commit_lsn: c.commit_lsn,
                end_lsn: c.end_lsn,
                commit_time: c.commit_time,
            }),
            Message::Origin(o) => Event::Origin(o),
            Message::Relation(r) => Event::Relation(self.on_relation(msg, r)?),
            Message::Type(t) => {
                let ns = if t.namespace.is_empty() {
                    "pg_catalog"
                } else {
                    t.namespace
                };
                self.types.insert(t.oid, format!("{ns}.{}", t.name));
                Event::Type(t)
            }
            Message::Insert(i) => {
                let relation = self.lookup(msg, i.relation_id)?;
                let new = Some(row(msg, &relation, i.new, false)?);
                self.note_stream_xid(i.xid);
                Event::Insert(Change {
                    xid: i.xid,
                    relation,
                    new,
                    old: None,
                    key: None,
                })
            }
            Message::Update(u) => {
                let relation = self.lookup(msg, u.relation_id)?;
                let (old, key) = old_rows(msg, &relation, u.old)?;
                let new = Some(row(msg, &relation, u.new, false)?);
                self.note_stream_xid(u.xid);
                Event::Update(Change {
                    xid: u.xid,
                    relation,
                    new,
                    old,
                    key,
                })
            }
            Message::Delete(d) => {
                let relation = self.lookup(msg, d.relation_id)?;
                let (old, key) = old_rows(msg, &relation, Some(d.old))?;
                self.note_stream_xid(d.xid);
                Event::Delete(Change {
                    xid: d.xid,
                    relation,
                    new: None,
                    old,
                    key,
                })
            }
            Message::Truncate(t) => {
                let ids_start = msg.len() - 4 * t.relation_ids.len();
                let mut relations = Vec::with_capacity(t.relation_ids.len());
                for (n, &id) in t.relation_ids.iter().enumerate() {
                    let rel = self.relation(id).cloned().ok_or_else(|| {
                        DecodeError::new(
                            ids_start + 4 * n,
                            ErrorKind::UnknownRelation(id),
                            "Truncate",
                        )
                    })?;
                    relations.push(rel);
                }
                self.note_stream_xid(t.xid);
                Event::Truncate(TruncateEvent {
                    xid: t.xid,
                    cascade: t.cascade(),
                    restart_identity: t.restart_identity(),
                    relations,
                })
            }
            Message::Message(m) => {
                self.note_stream_xid(m.xid);
                Event::Message(m)
            }
            Message::StreamStart(s) => {
                self.require_outside_stream("Stream Start inside a stream block")?;
                self.current_stream = Some(s.xid);
                self.streams.get_or_default(s.xid);
                Event::StreamStart(s)
            }
            Message::StreamStop => {
                if self.current_stream.take().is_none() {
                    return Err(out_of_place("Stream Stop outside a stream block"));
                }
                Event::StreamStop
            }
            Message::StreamCommit(c) => {
                self.require_outside_stream("Stream Commit inside a stream block")?;
                self.finish_stream(c.xid);
                Event::StreamCommit(c)
            }
            Message::StreamPrepare(p) => {
                self.require_outside_stream("Stream Prepare inside a stream block")?;
                self.finish_stream(p.xid);
                Event::StreamPrepare(p)
            }
            Message::StreamAbort(a) => {
                self.require_outside_stream("Stream Abort inside a stream block")?;
                let discarded = self.abort_stream(a.xid, a.subxid);
                Event::StreamAbort(StreamAbortEvent {
                    xid: a.xid,
                    subxid: a.subxid,
                    abort_lsn: a.abort_lsn,
                    abort_time: a.abort_time,
                    discarded,
                })
            }
            Message::BeginPrepare(p) => {
                self.current_xid = Some(p.xid);
                Event::BeginPrepare(p)
            }
            Message::Prepare(p) => {
                self.current_xid = None;
                Event::Prepare(p)
            }
            Message::CommitPrepared(c) => Event::CommitPrepared(c),
            Message::RollbackPrepared(r) => Event::RollbackPrepared(r),
            // `Message` is non_exhaustive only towards other crates; every variant is handled.
        })
    }

    fn require_outside_stream(&self, what: &'static str) -> Result<()> {
        if self.in_stream() {
            Err(out_of_place(what))
        } else {
            Ok(())
        }
    }

    fn lookup(&self, msg: &[u8], id: u32) -> Result<Arc<RelationInfo>> {
        self.relation(id).cloned().ok_or_else(|| {
            // The relation id follows the tag and, in a stream block, the xid.
            let offset = if self.in_stream() { 5 } else { 1 };
            DecodeError::new(
                offset.min(msg.len()),
                ErrorKind::UnknownRelation(id),
                "relation id",
            )
        })
    }

    /// The type whose codec decodes a column of type `type_oid`: a domain over a built-in type
    /// decodes as that type (its Type message names the base type in `pg_catalog`); enums and
    /// other user types stay unknown (text, or raw bytes in binary mode).
    fn decode_oid(&self, type_oid: u32) -> u32 {
        self.types
            .get(&type_oid)
            .and_then(|name| name.strip_prefix("pg_catalog."))
            .and_then(value::oid::by_name)
            .unwrap_or(type_oid)
    }

    fn on_relation(&mut self, msg: &[u8], r: pgoutput::Relation<'_>) -> Result<RelationEvent> {
        let replica_identity = ReplicaIdentity::from_byte(r.replica_identity).ok_or_else(|| {
            // The replica identity byte follows the relation name's NUL.
            let offset = offset_in(msg, r.name.as_bytes()) + r.name.len() + 1;
            DecodeError::new(
                offset,
                ErrorKind::Unexpected {
                    found: r.replica_identity,
                    expected: "replica identity d, n, f or i",
                },
                "Relation",
            )
        })?;
        let columns = r
            .columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.name.to_owned(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                is_key: c.is_key(),
                type_name: self.types.get(&c.type_oid).cloned(),
                decode_oid: self.decode_oid(c.type_oid),
            })
            .collect();
        let info = RelationInfo {
            id: r.id,
            schema: if r.namespace.is_empty() {
                "pg_catalog".to_owned()
            } else {
                r.namespace.to_owned()
            },
            table: r.name.to_owned(),
            replica_identity,
            columns,
        };
        let cache = match self.current_stream {
            Some(x) => &mut self.streams.get_or_default(x).relations,
            None => &mut self.relations,
        };
        // Keep the same Arc when nothing changed, so consumers can compare cheaply.
        let relation = match cache.get(&info.id) {
            Some(existing) if **existing == info => Arc::clone(existing),
            _ => {
                let arc = Arc::new(info);
                cache.insert(arc.id, Arc::clone(&arc));
                arc
            }
        };
        Ok(RelationEvent {
            xid: r.xid,
            relation,
        })
    }

    fn note_stream_xid(&mut self, xid: Option<u32>) {
        let (Some(top), Some(xid)) = (self.current_stream, xid) else {
            return;
        };
        if xid == top {
            return;
        }
        let state = self.streams.get_or_default(top);
        if state.subxids.last() != Some(&xid) && state.seen.insert(xid, ()).is_none() {
            state.subxids.push(xid);
        }
    }

    fn finish_stream(&mut self, xid: u32) {
        if let Some(state) = self.streams.remove(&xid) {
            // Committed (or prepared): its relation descriptions are now the session's.
            self.relations.extend(state.relations);
        }
    }

    fn abort_stream(&mut self, xid: u32, subxid: u32) -> Vec<u32> {
        if xid == subxid {
            let mut discarded = vec![xid];
            if let Some(state) = self.streams.remove(&xid) {
                discarded.extend(state.subxids);
            }
            return discarded;
        }
        let Some(state) = self.streams.get_mut(&xid) else {
            return vec![subxid];
        };
        match state.subxids.iter().position(|&s| s == subxid) {
            Some(pos) => {
                let discarded: Vec<u32> = state.subxids.drain(pos..).collect();
                for s in &discarded {
                    state.seen.remove(s);
                }
                discarded
            }
            None => vec![subxid],
        }
    }
}

fn out_of_place(what: &'static str) -> DecodeError {
    DecodeError::new(0, ErrorKind::OutOfPlace(what), "stream state")
}

/// Offset of `part` inside `msg` (both from the same allocation).
fn offset_in(msg: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize)
        .wrapping_sub(msg.as_ptr() as usize)
        .min(msg.len())
}

fn old_rows<'a>(
    msg: &'a [u8],
    relation: &RelationInfo,
    old: Option<OldTuple<'a>>,
) -> Result<(Option<Row<'a>>, Option<Row<'a>>)> {
    Ok(match old {
        None => (None, None),
        Some(OldTuple::Full(t)) => (Some(row(msg, relation, t, false)?), None),
        Some(OldTuple::Key(t)) => (None, Some(row(msg, relation, t, true)?)),
    })
}

/// Types one tuple against its relation into a [`Row`].
fn row<'a>(
    msg: &'a [u8],
    relation: &RelationInfo,
    tuple: TupleData<'a>,
    key: bool,
) -> Result<Row<'a>> {
    let mut cells = Vec::with_capacity(relation.columns.len());
    type_tuple(msg, relation, tuple, key, |c| cells.push(c))?;
    Ok(Row { cells })
}

/// Types one tuple of `msg` against its relation, handing each cell to `emit` in column order,
/// for consumers that write cells somewhere other than a [`Row`] (the WASM engine's flat
/// buffers). In a key tuple, `n` on a non-key column means "not part of the key", never NULL.
/// Errors carry offsets into `msg`; cells emitted before an error are the caller's to discard.
pub fn type_tuple<'a>(
    msg: &'a [u8],
    relation: &RelationInfo,
    tuple: TupleData<'a>,
    key: bool,
    mut emit: impl FnMut(Cell<'a>),
) -> Result<()> {
    if tuple.len() != relation.columns.len() {
        // The column count is the Int16 right before the column bytes.
        let offset = offset_in(msg, tuple.raw()).saturating_sub(2);
        return Err(DecodeError::new(
            offset,
            ErrorKind::ColumnCountMismatch {
                relation: relation.id,
                expected: relation.columns.len(),
                found: tuple.len(),
            },
            "TupleData",
        ));
    }
    for (col, column) in relation.columns.iter().zip(tuple.columns()) {
        // Values are emitted by the decoders' own match arms (see `value::decode_text_emit`).
        match column {
            Column::Null if key && !col.is_key => emit(Cell::NotInKey),
            Column::Null => emit(Cell::Value(Value::Null)),
            Column::UnchangedToast => emit(Cell::UnchangedToast),
            Column::Text(bytes) => {
                value::decode_text_emit(col.decode_oid, bytes, |v| emit(Cell::Value(v)))
                    .map_err(|e| e.shifted(offset_in(msg, bytes)))?
            }
            Column::Binary(bytes) => {
                value::decode_binary_emit(col.decode_oid, bytes, |v| emit(Cell::Value(v)))
                    .map_err(|e| e.shifted(offset_in(msg, bytes)))?
            }
        }
    }
    Ok(())
}
