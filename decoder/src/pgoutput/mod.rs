//! One pgoutput message, parsed zero-copy (protocol versions 1–4, PostgreSQL 14–18).
//!
//! [`parse`] is stateless: whether Relation/Type/Insert/Update/Delete/Truncate/Message carry a
//! streamed-transaction xid right after the tag depends on whether the message sits inside a
//! Stream Start … Stream Stop block, which only a stateful reader knows (see `crate::decoder`).
//! Layouts follow PostgreSQL's "Logical Replication Message Formats" and
//! `src/backend/replication/logical/proto.c`.

pub(crate) mod primitives;
mod tuple;

pub use tuple::{
    Column, Columns, TupleData, COLUMN_BINARY, COLUMN_NULL, COLUMN_TEXT, COLUMN_UNCHANGED_TOAST,
};

use primitives::{cstr, end, finish, i64_, lsn, take, u16_, u32_, u8_, IRes, PErr};
use tuple::{tuple_data, tuple_data_fast};

use crate::{ErrorKind, Lsn, Result};

pub const TAG_BEGIN: u8 = b'B';
pub const TAG_COMMIT: u8 = b'C';
pub const TAG_ORIGIN: u8 = b'O';
pub const TAG_RELATION: u8 = b'R';
pub const TAG_TYPE: u8 = b'Y';
pub const TAG_INSERT: u8 = b'I';
pub const TAG_UPDATE: u8 = b'U';
pub const TAG_DELETE: u8 = b'D';
pub const TAG_TRUNCATE: u8 = b'T';
pub const TAG_MESSAGE: u8 = b'M';
pub const TAG_STREAM_START: u8 = b'S';
pub const TAG_STREAM_STOP: u8 = b'E';
pub const TAG_STREAM_COMMIT: u8 = b'c';
pub const TAG_STREAM_ABORT: u8 = b'A';
pub const TAG_BEGIN_PREPARE: u8 = b'b';
pub const TAG_PREPARE: u8 = b'P';
pub const TAG_COMMIT_PREPARED: u8 = b'K';
pub const TAG_ROLLBACK_PREPARED: u8 = b'r';
pub const TAG_STREAM_PREPARE: u8 = b'p';

/// Marker before a TupleData: the new row.
pub const TUPLE_NEW: u8 = b'N';
/// Marker before a TupleData: the old row's replica identity key (REPLICA IDENTITY DEFAULT/INDEX).
pub const TUPLE_KEY: u8 = b'K';
/// Marker before a TupleData: the whole old row (REPLICA IDENTITY FULL).
pub const TUPLE_OLD: u8 = b'O';

/// Relation column flag: the column is part of the replica identity.
pub const COLUMN_FLAG_KEY: u8 = 1;
/// Logical decoding message flag: the message is transactional.
pub const MESSAGE_FLAG_TRANSACTIONAL: u8 = 1;
/// Truncate option: CASCADE.
pub const TRUNCATE_CASCADE: u8 = 1;
/// Truncate option: RESTART IDENTITY.
pub const TRUNCATE_RESTART_IDENTITY: u8 = 2;

/// One pgoutput message, borrowing names and values from the input bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin<'a>),
    Relation(Relation<'a>),
    Type(Type<'a>),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate),
    Message(LogicalMessage<'a>),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
    BeginPrepare(Prepare<'a>),
    Prepare(Prepare<'a>),
    CommitPrepared(CommitPrepared<'a>),
    RollbackPrepared(RollbackPrepared<'a>),
    StreamPrepare(Prepare<'a>),
}

impl Message<'_> {
    /// The tag byte this message is sent with.
    pub fn tag(&self) -> u8 {
        match self {
            Message::Begin(_) => TAG_BEGIN,
            Message::Commit(_) => TAG_COMMIT,
            Message::Origin(_) => TAG_ORIGIN,
            Message::Relation(_) => TAG_RELATION,
            Message::Type(_) => TAG_TYPE,
            Message::Insert(_) => TAG_INSERT,
            Message::Update(_) => TAG_UPDATE,
            Message::Delete(_) => TAG_DELETE,
            Message::Truncate(_) => TAG_TRUNCATE,
            Message::Message(_) => TAG_MESSAGE,
            Message::StreamStart(_) => TAG_STREAM_START,
            Message::StreamStop => TAG_STREAM_STOP,
            Message::StreamCommit(_) => TAG_STREAM_COMMIT,
            Message::StreamAbort(_) => TAG_STREAM_ABORT,
            Message::BeginPrepare(_) => TAG_BEGIN_PREPARE,
            Message::Prepare(_) => TAG_PREPARE,
            Message::CommitPrepared(_) => TAG_COMMIT_PREPARED,
            Message::RollbackPrepared(_) => TAG_ROLLBACK_PREPARED,
            Message::StreamPrepare(_) => TAG_STREAM_PREPARE,
        }
    }
}

/// `B`: a transaction starts. Times are microseconds since 2000-01-01 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    pub final_lsn: Lsn,
    pub commit_time: i64,
    pub xid: u32,
}

/// `C`: a transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

/// `O`: the replication origin of the current transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub commit_lsn: Lsn,
    pub name: &'a str,
}

/// `R`: a relation's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation<'a> {
    /// Present inside a stream block.
    pub xid: Option<u32>,
    pub id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
    /// `relreplident`: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// [`COLUMN_FLAG_KEY`] when the column is part of the replica identity.
    pub flags: u8,
    pub name: &'a str,
    pub type_oid: u32,
    pub type_modifier: i32,
}

impl RelationColumn<'_> {
    pub fn is_key(&self) -> bool {
        self.flags & COLUMN_FLAG_KEY != 0
    }
}

/// `Y`: a user-defined type's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Type<'a> {
    pub xid: Option<u32>,
    pub oid: u32,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
}

/// `I`: a row was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insert<'a> {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub new: TupleData<'a>,
}

/// The old-row part of an Update or Delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// `K`: the replica identity columns; other columns are sent as `n` and mean "not in key".
    Key(TupleData<'a>),
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full(TupleData<'a>),
}

impl<'a> OldTuple<'a> {
    pub fn tuple(&self) -> TupleData<'a> {
        match *self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// `U`: a row was updated. `old` is absent when the key did not change (DEFAULT/INDEX identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub old: Option<OldTuple<'a>>,
    pub new: TupleData<'a>,
}

/// `D`: a row was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    pub xid: Option<u32>,
    pub relation_id: u32,
    pub old: OldTuple<'a>,
}

/// `T`: relations were truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    pub xid: Option<u32>,
    /// [`TRUNCATE_CASCADE`] | [`TRUNCATE_RESTART_IDENTITY`].
    pub options: u8,
    pub relation_ids: Vec<u32>,
}

impl Truncate {
    pub fn cascade(&self) -> bool {
        self.options & TRUNCATE_CASCADE != 0
    }
    pub fn restart_identity(&self) -> bool {
        self.options & TRUNCATE_RESTART_IDENTITY != 0
    }
}

/// `M`: a logical decoding message (`pg_logical_emit_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogicalMessage<'a> {
    pub xid: Option<u32>,
    /// [`MESSAGE_FLAG_TRANSACTIONAL`].
    pub flags: u8,
    pub lsn: Lsn,
    pub prefix: &'a str,
    pub content: &'a [u8],
}

impl LogicalMessage<'_> {
    pub fn transactional(&self) -> bool {
        self.flags & MESSAGE_FLAG_TRANSACTIONAL != 0
    }
}

/// `S`: a block of a streamed (in-progress) transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    pub xid: u32,
    pub first_segment: bool,
}

/// `c`: a streamed transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCommit {
    pub xid: u32,
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

/// `A`: a streamed transaction (`subxid == xid`) or one of its subtransactions aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAbort {
    pub xid: u32,
    pub subxid: u32,
    /// Sent with `streaming 'parallel'` (protocol 4, PostgreSQL 16+).
    pub abort_lsn: Option<Lsn>,
    pub abort_time: Option<i64>,
}

/// `b` Begin Prepare, `P` Prepare and `p` Stream Prepare share this layout
/// (Begin Prepare has no flags byte; `flags` is 0 for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepare<'a> {
    pub flags: u8,
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_time: i64,
    pub xid: u32,
    pub gid: &'a str,
}

/// `K`: a prepared transaction was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPrepared<'a> {
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
    pub xid: u32,
    pub gid: &'a str,
}

/// `r`: a prepared transaction was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackPrepared<'a> {
    pub flags: u8,
    pub prepare_end_lsn: Lsn,
    pub rollback_end_lsn: Lsn,
    pub prepare_time: i64,
    pub rollback_time: i64,
    pub xid: u32,
    pub gid: &'a str,
}

/// Parses exactly one pgoutput message. `in_stream` says whether it sits inside a
/// Stream Start … Stream Stop block (then R/Y/I/U/D/T/M carry an xid after the tag).
///
/// Errors name the byte offset into `msg`. Trailing bytes are an error.
pub fn parse(msg: &[u8], in_stream: bool) -> Result<Message<'_>> {
    if let Some(m) = change_fast(msg, in_stream) {
        return Ok(m);
    }
    finish(message(msg, in_stream), msg.len())
}

/// A well-formed Insert, Update or Delete — nearly every message of a busy stream — read with
/// plain slice operations; `None` for any other message or any fault, which [`message`] then
/// parses (or reports) in full. Both give the same `Message` for the same well-formed bytes.
#[inline]
fn change_fast(msg: &[u8], in_stream: bool) -> Option<Message<'_>> {
    let be32 = |b: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)) };
    let (&tag, mut rest) = msg.split_first()?;
    if !matches!(tag, TAG_INSERT | TAG_UPDATE | TAG_DELETE) {
        return None;
    }
    let mut xid = None;
    if in_stream {
        xid = Some(be32(rest)?);
        rest = &rest[4..];
    }
    let relation_id = be32(rest)?;
    let (&marker, rest) = rest[4..].split_first()?;
    fn old_tuple(marker: u8, t: TupleData<'_>) -> OldTuple<'_> {
        if marker == TUPLE_KEY {
            OldTuple::Key(t)
        } else {
            OldTuple::Full(t)
        }
    }
    let (message, rest) = match (tag, marker) {
        (TAG_INSERT, TUPLE_NEW) => {
            let (rest, new) = tuple_data_fast(rest)?;
            let m = Message::Insert(Insert {
                xid,
                relation_id,
                new,
            });
            (m, rest)
        }
        (TAG_UPDATE, TUPLE_NEW) => {
            let (rest, new) = tuple_data_fast(rest)?;
            let m = Message::Update(Update {
                xid,
                relation_id,
                old: None,
                new,
            });
            (m, rest)
        }
        (TAG_UPDATE, TUPLE_KEY | TUPLE_OLD) => {
            let (rest, old) = tuple_data_fast(rest)?;
            let (&new_marker, rest) = rest.split_first()?;
            if new_marker != TUPLE_NEW {
                return None;
            }
            let (rest, new) = tuple_data_fast(rest)?;
            let m = Message::Update(Update {
                xid,
                relation_id,
                old: Some(old_tuple(marker, old)),
                new,
            });
            (m, rest)
        }
        (TAG_DELETE, TUPLE_KEY | TUPLE_OLD) => {
            let (rest, old) = tuple_data_fast(rest)?;
            let m = Message::Delete(Delete {
                xid,
                relation_id,
                old: old_tuple(marker, old),
            });
            (m, rest)
        }
        _ => return None,
    };
    rest.is_empty().then_some(message)
}

fn message(msg: &[u8], in_stream: bool) -> std::result::Result<Message<'_>, nom::Err<PErr>> {
    let (i, tag) = u8_(msg, "message tag")?;
    let (i, m) = match tag {
        TAG_BEGIN => begin(i)?,
        TAG_COMMIT => commit(i)?,
        TAG_ORIGIN => origin(i)?,
        TAG_RELATION => relation(i, in_stream)?,
        TAG_TYPE => type_(i, in_stream)?,
        TAG_INSERT => insert(i, in_stream)?,
        TAG_UPDATE => update(i, in_stream)?,
        TAG_DELETE => delete(i, in_stream)?,
        TAG_TRUNCATE => truncate(i, in_stream)?,
        TAG_MESSAGE => logical_message(i, in_stream)?,
        TAG_STREAM_START => stream_start(i)?,
        TAG_STREAM_STOP => (i, Message::StreamStop),
        TAG_STREAM_COMMIT => stream_commit(i)?,
        TAG_STREAM_ABORT => stream_abort(i)?,
        TAG_BEGIN_PREPARE => {
            let (i, p) = prepare_body(i, 0)?;
            (i, Message::BeginPrepare(p))
        }
        TAG_PREPARE => {
            let (i, flags) = u8_(i, "Prepare flags")?;
            let (i, p) = prepare_body(i, flags)?;
            (i, Message::Prepare(p))
        }
        TAG_STREAM_PREPARE => {
            let (i, flags) = u8_(i, "Stream Prepare flags")?;
            let (i, p) = prepare_body(i, flags)?;
            (i, Message::StreamPrepare(p))
        }
        TAG_COMMIT_PREPARED => commit_prepared(i)?,
        TAG_ROLLBACK_PREPARED => rollback_prepared(i)?,
        other => {
            return Err(PErr::at(
                msg,
                ErrorKind::UnknownMessageTag(other as char),
                "message tag",
            ))
        }
    };
    end(i, "message end")?;
    Ok(m)
}

fn stream_xid(i: &[u8], in_stream: bool) -> IRes<'_, Option<u32>> {
    if in_stream {
        let (i, x) = u32_(i, "streamed transaction xid")?;
        Ok((i, Some(x)))
    } else {
        Ok((i, None))
    }
}

fn begin(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, final_lsn) = lsn(i, "Begin final LSN")?;
    let (i, commit_time) = i64_(i, "Begin commit time")?;
    let (i, xid) = u32_(i, "Begin xid")?;
    Ok((
        i,
        Message::Begin(Begin {
            final_lsn,
            commit_time,
            xid,
        }),
    ))
}

fn commit(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, flags) = u8_(i, "Commit flags")?;
    let (i, commit_lsn) = lsn(i, "Commit LSN")?;
    let (i, end_lsn) = lsn(i, "Commit end LSN")?;
    let (i, commit_time) = i64_(i, "Commit time")?;
    Ok((
        i,
        Message::Commit(Commit {
            flags,
            commit_lsn,
            end_lsn,
            commit_time,
        }),
    ))
}

fn origin(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, commit_lsn) = lsn(i, "Origin LSN")?;
    let (i, name) = cstr(i, "Origin name")?;
    Ok((i, Message::Origin(Origin { commit_lsn, name })))
}

/// Smallest encoding of one Relation column: flags, empty name, type oid, typmod.
const MIN_RELATION_COLUMN: usize = 1 + 1 + 4 + 4;

fn relation(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, id) = u32_(i, "Relation id")?;
    let (i, namespace) = cstr(i, "Relation namespace")?;
    let (i, name) = cstr(i, "Relation name")?;
    let (i, replica_identity) = u8_(i, "Relation replica identity")?;
    let (mut i, ncols) = u16_(i, "Relation column count")?;
    // Capacity bounded by what the remaining bytes can hold, not by the claimed count.
    let mut columns = Vec::with_capacity(usize::from(ncols).min(i.len() / MIN_RELATION_COLUMN));
    for _ in 0..ncols {
        let (r, flags) = u8_(i, "Relation column flags")?;
        let (r, name) = cstr(r, "Relation column name")?;
        let (r, type_oid) = u32_(r, "Relation column type")?;
        let (r, type_modifier) = primitives::i32_(r, "Relation column type modifier")?;
        columns.push(RelationColumn {
            flags,
            name,
            type_oid,
            type_modifier,
        });
        i = r;
    }
    Ok((
        i,
        Message::Relation(Relation {
            xid,
            id,
            namespace,
            name,
            replica_identity,
            columns,
        }),
    ))
}

fn type_(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, oid) = u32_(i, "Type oid")?;
    let (i, namespace) = cstr(i, "Type namespace")?;
    let (i, name) = cstr(i, "Type name")?;
    Ok((
        i,
        Message::Type(Type {
            xid,
            oid,
            namespace,
            name,
        }),
    ))
}

fn insert(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, relation_id) = u32_(i, "Insert relation id")?;
    let (i, marker) = u8_(i, "Insert tuple marker")?;
    if marker != TUPLE_NEW {
        return Err(unexpected(i, marker, "'N'", "Insert tuple marker"));
    }
    let (i, new) = tuple_data(i)?;
    Ok((
        i,
        Message::Insert(Insert {
            xid,
            relation_id,
            new,
        }),
    ))
}

/// Error at the byte just consumed (`after` is the input after it).
fn unexpected(
    after: &[u8],
    found: u8,
    expected: &'static str,
    context: &'static str,
) -> nom::Err<PErr> {
    nom::Err::Error(PErr {
        remaining: after.len() + 1,
        kind: ErrorKind::Unexpected { found, expected },
        context,
    })
}

fn update(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, relation_id) = u32_(i, "Update relation id")?;
    let (mut i, mut marker) = u8_(i, "Update tuple marker")?;
    let mut old = None;
    if marker == TUPLE_KEY || marker == TUPLE_OLD {
        let (r, t) = tuple_data(i)?;
        old = Some(if marker == TUPLE_KEY {
            OldTuple::Key(t)
        } else {
            OldTuple::Full(t)
        });
        (i, marker) = u8_(r, "Update new tuple marker")?;
    }
    if marker != TUPLE_NEW {
        return Err(unexpected(
            i,
            marker,
            "'K', 'O' or 'N'",
            "Update tuple marker",
        ));
    }
    let (i, new) = tuple_data(i)?;
    Ok((
        i,
        Message::Update(Update {
            xid,
            relation_id,
            old,
            new,
        }),
    ))
}

fn delete(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, relation_id) = u32_(i, "Delete relation id")?;
    let (i, marker) = u8_(i, "Delete tuple marker")?;
    let (i, t) = match marker {
        TUPLE_KEY | TUPLE_OLD => tuple_data(i)?,
        _ => return Err(unexpected(i, marker, "'K' or 'O'", "Delete tuple marker")),
    };
    let old = if marker == TUPLE_KEY {
        OldTuple::Key(t)
    } else {
        OldTuple::Full(t)
    };
    Ok((
        i,
        Message::Delete(Delete {
            xid,
            relation_id,
            old,
        }),
    ))
}

fn truncate(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (after_count, count) = u32_(i, "Truncate relation count")?;
    let (r, options) = u8_(after_count, "Truncate options")?;
    let needed = u64::from(count) * 4;
    if needed > r.len() as u64 {
        let needed = usize::try_from(needed - r.len() as u64).unwrap_or(usize::MAX);
        return Err(PErr::at(
            r,
            ErrorKind::Truncated { needed },
            "Truncate relation ids",
        ));
    }
    let (r, ids) = take(r, count as usize * 4, "Truncate relation ids")?;
    let relation_ids = ids
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((
        r,
        Message::Truncate(Truncate {
            xid,
            options,
            relation_ids,
        }),
    ))
}

fn logical_message(i: &[u8], in_stream: bool) -> IRes<'_, Message<'_>> {
    let (i, xid) = stream_xid(i, in_stream)?;
    let (i, flags) = u8_(i, "Message flags")?;
    let (i, lsn) = lsn(i, "Message LSN")?;
    let (i, prefix) = cstr(i, "Message prefix")?;
    let (after_len, len) = primitives::i32_(i, "Message content length")?;
    if len < 0 {
        return Err(PErr::at(
            i,
            ErrorKind::BadLength(i64::from(len)),
            "Message content length",
        ));
    }
    let (i, content) = take(after_len, len as usize, "Message content")?;
    Ok((
        i,
        Message::Message(LogicalMessage {
            xid,
            flags,
            lsn,
            prefix,
            content,
        }),
    ))
}

fn stream_start(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, xid) = u32_(i, "Stream Start xid")?;
    let (i, first) = u8_(i, "Stream Start first segment")?;
    Ok((
        i,
        Message::StreamStart(StreamStart {
            xid,
            first_segment: first == 1,
        }),
    ))
}

fn stream_commit(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, xid) = u32_(i, "Stream Commit xid")?;
    let (i, flags) = u8_(i, "Stream Commit flags")?;
    let (i, commit_lsn) = lsn(i, "Stream Commit LSN")?;
    let (i, end_lsn) = lsn(i, "Stream Commit end LSN")?;
    let (i, commit_time) = i64_(i, "Stream Commit time")?;
    Ok((
        i,
        Message::StreamCommit(StreamCommit {
            xid,
            flags,
            commit_lsn,
            end_lsn,
            commit_time,
        }),
    ))
}

fn stream_abort(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, xid) = u32_(i, "Stream Abort xid")?;
    let (i, subxid) = u32_(i, "Stream Abort subxid")?;
    // Parallel streaming (PG16+) appends abort LSN and time; decide by length, not version.
    let (i, abort_lsn, abort_time) = if i.is_empty() {
        (i, None, None)
    } else {
        let (i, l) = lsn(i, "Stream Abort LSN")?;
        let (i, t) = i64_(i, "Stream Abort time")?;
        (i, Some(l), Some(t))
    };
    Ok((
        i,
        Message::StreamAbort(StreamAbort {
            xid,
            subxid,
            abort_lsn,
            abort_time,
        }),
    ))
}

fn prepare_body(i: &[u8], flags: u8) -> IRes<'_, Prepare<'_>> {
    let (i, prepare_lsn) = lsn(i, "Prepare LSN")?;
    let (i, end_lsn) = lsn(i, "Prepare end LSN")?;
    let (i, prepare_time) = i64_(i, "Prepare time")?;
    let (i, xid) = u32_(i, "Prepare xid")?;
    let (i, gid) = cstr(i, "Prepare gid")?;
    Ok((
        i,
        Prepare {
            flags,
            prepare_lsn,
            end_lsn,
            prepare_time,
            xid,
            gid,
        },
    ))
}

fn commit_prepared(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, flags) = u8_(i, "Commit Prepared flags")?;
    let (i, commit_lsn) = lsn(i, "Commit Prepared LSN")?;
    let (i, end_lsn) = lsn(i, "Commit Prepared end LSN")?;
    let (i, commit_time) = i64_(i, "Commit Prepared time")?;
    let (i, xid) = u32_(i, "Commit Prepared xid")?;
    let (i, gid) = cstr(i, "Commit Prepared gid")?;
    Ok((
        i,
        Message::CommitPrepared(CommitPrepared {
            flags,
            commit_lsn,
            end_lsn,
            commit_time,
            xid,
            gid,
        }),
    ))
}

fn rollback_prepared(i: &[u8]) -> IRes<'_, Message<'_>> {
    let (i, flags) = u8_(i, "Rollback Prepared flags")?;
    let (i, prepare_end_lsn) = lsn(i, "Rollback Prepared prepare end LSN")?;
    let (i, rollback_end_lsn) = lsn(i, "Rollback Prepared end LSN")?;
    let (i, prepare_time) = i64_(i, "Rollback Prepared prepare time")?;
    let (i, rollback_time) = i64_(i, "Rollback Prepared time")?;
    let (i, xid) = u32_(i, "Rollback Prepared xid")?;
    let (i, gid) = cstr(i, "Rollback Prepared gid")?;
    Ok((
        i,
        Message::RollbackPrepared(RollbackPrepared {
            flags,
            prepare_end_lsn,
            rollback_end_lsn,
            prepare_time,
            rollback_time,
            xid,
            gid,
        }),
    ))
}

#[cfg(test)]
mod tests;
