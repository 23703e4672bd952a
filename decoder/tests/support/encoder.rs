//! A test-only pgoutput ENCODER: builds message bytes from an owned model, laid out as
//! PostgreSQL's `proto.c` writes them, and converts parsed messages back into the model so
//! property tests can check encode → parse → same model.
#![allow(dead_code)]

use walcast_decoder::pgoutput::{self, Column, Message, OldTuple};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Col {
    Null,
    Toast,
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelCol {
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prep {
    pub flags: u8,
    pub prepare_lsn: u64,
    pub end_lsn: u64,
    pub time: i64,
    pub xid: u32,
    pub gid: String,
}

/// The model of one pgoutput message. `xid: Option<u32>` fields are present inside stream blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Begin {
        final_lsn: u64,
        time: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        time: i64,
    },
    Origin {
        lsn: u64,
        name: String,
    },
    Relation {
        xid: Option<u32>,
        id: u32,
        ns: String,
        name: String,
        ident: u8,
        cols: Vec<RelCol>,
    },
    Type {
        xid: Option<u32>,
        oid: u32,
        ns: String,
        name: String,
    },
    Insert {
        xid: Option<u32>,
        rel: u32,
        new: Vec<Col>,
    },
    /// `old.0` is `b'K'` or `b'O'`.
    Update {
        xid: Option<u32>,
        rel: u32,
        old: Option<(u8, Vec<Col>)>,
        new: Vec<Col>,
    },
    Delete {
        xid: Option<u32>,
        rel: u32,
        kind: u8,
        old: Vec<Col>,
    },
    Truncate {
        xid: Option<u32>,
        options: u8,
        rels: Vec<u32>,
    },
    Message {
        xid: Option<u32>,
        flags: u8,
        lsn: u64,
        prefix: String,
        content: Vec<u8>,
    },
    StreamStart {
        xid: u32,
        first: bool,
    },
    StreamStop,
    StreamCommit {
        xid: u32,
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        time: i64,
    },
    StreamAbort {
        xid: u32,
        subxid: u32,
        parallel: Option<(u64, i64)>,
    },
    BeginPrepare(Prep),
    Prepare(Prep),
    StreamPrepare(Prep),
    CommitPrepared {
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        time: i64,
        xid: u32,
        gid: String,
    },
    RollbackPrepared {
        flags: u8,
        prepare_end_lsn: u64,
        rollback_end_lsn: u64,
        prepare_time: i64,
        rollback_time: i64,
        xid: u32,
        gid: String,
    },
}

impl Msg {
    /// Whether this message must be parsed as inside a stream block (it carries a stream xid).
    pub fn in_stream(&self) -> bool {
        match self {
            Msg::Relation { xid, .. }
            | Msg::Type { xid, .. }
            | Msg::Insert { xid, .. }
            | Msg::Update { xid, .. }
            | Msg::Delete { xid, .. }
            | Msg::Truncate { xid, .. }
            | Msg::Message { xid, .. } => xid.is_some(),
            _ => false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::default();
        match self {
            Msg::Begin {
                final_lsn,
                time,
                xid,
            } => {
                w.u8(b'B').u64(*final_lsn).i64(*time).u32(*xid);
            }
            Msg::Commit {
                flags,
                commit_lsn,
                end_lsn,
                time,
            } => {
                w.u8(b'C')
                    .u8(*flags)
                    .u64(*commit_lsn)
                    .u64(*end_lsn)
                    .i64(*time);
            }
            Msg::Origin { lsn, name } => {
                w.u8(b'O').u64(*lsn).s(name);
            }
            Msg::Relation {
                xid,
                id,
                ns,
                name,
                ident,
                cols,
            } => {
                w.u8(b'R')
                    .xid(*xid)
                    .u32(*id)
                    .s(ns)
                    .s(name)
                    .u8(*ident)
                    .u16(cols.len() as u16);
                for c in cols {
                    w.u8(c.flags)
                        .s(&c.name)
                        .u32(c.type_oid)
                        .i32(c.type_modifier);
                }
            }
            Msg::Type { xid, oid, ns, name } => {
                w.u8(b'Y').xid(*xid).u32(*oid).s(ns).s(name);
            }
            Msg::Insert { xid, rel, new } => {
                w.u8(b'I').xid(*xid).u32(*rel).u8(b'N').tuple(new);
            }
            Msg::Update { xid, rel, old, new } => {
                w.u8(b'U').xid(*xid).u32(*rel);
                if let Some((kind, old)) = old {
                    w.u8(*kind).tuple(old);
                }
                w.u8(b'N').tuple(new);
            }
            Msg::Delete {
                xid,
                rel,
                kind,
                old,
            } => {
                w.u8(b'D').xid(*xid).u32(*rel).u8(*kind).tuple(old);
            }
            Msg::Truncate { xid, options, rels } => {
                w.u8(b'T').xid(*xid).u32(rels.len() as u32).u8(*options);
                for r in rels {
                    w.u32(*r);
                }
            }
            Msg::Message {
                xid,
                flags,
                lsn,
                prefix,
                content,
            } => {
                w.u8(b'M')
                    .xid(*xid)
                    .u8(*flags)
                    .u64(*lsn)
                    .s(prefix)
                    .u32(content.len() as u32)
                    .raw(content);
            }
            Msg::StreamStart { xid, first } => {
                w.u8(b'S').u32(*xid).u8(u8::from(*first));
            }
            Msg::StreamStop => {
                w.u8(b'E');
            }
            Msg::StreamCommit {
                xid,
                flags,
                commit_lsn,
                end_lsn,
                time,
            } => {
                w.u8(b'c')
                    .u32(*xid)
                    .u8(*flags)
                    .u64(*commit_lsn)
                    .u64(*end_lsn)
                    .i64(*time);
            }
            Msg::StreamAbort {
                xid,
                subxid,
                parallel,
            } => {
                w.u8(b'A').u32(*xid).u32(*subxid);
                if let Some((lsn, time)) = parallel {
                    w.u64(*lsn).i64(*time);
                }
            }
            Msg::BeginPrepare(p) => {
                w.u8(b'b')
                    .u64(p.prepare_lsn)
                    .u64(p.end_lsn)
                    .i64(p.time)
                    .u32(p.xid)
                    .s(&p.gid);
            }
            Msg::Prepare(p) | Msg::StreamPrepare(p) => {
                let tag = if matches!(self, Msg::Prepare(_)) {
                    b'P'
                } else {
                    b'p'
                };
                w.u8(tag)
                    .u8(p.flags)
                    .u64(p.prepare_lsn)
                    .u64(p.end_lsn)
                    .i64(p.time)
                    .u32(p.xid)
                    .s(&p.gid);
            }
            Msg::CommitPrepared {
                flags,
                commit_lsn,
                end_lsn,
                time,
                xid,
                gid,
            } => {
                w.u8(b'K')
                    .u8(*flags)
                    .u64(*commit_lsn)
                    .u64(*end_lsn)
                    .i64(*time)
                    .u32(*xid)
                    .s(gid);
            }
            Msg::RollbackPrepared {
                flags,
                prepare_end_lsn,
                rollback_end_lsn,
                prepare_time,
                rollback_time,
                xid,
                gid,
            } => {
                w.u8(b'r')
                    .u8(*flags)
                    .u64(*prepare_end_lsn)
                    .u64(*rollback_end_lsn)
                    .i64(*prepare_time)
                    .i64(*rollback_time)
                    .u32(*xid)
                    .s(gid);
            }
        }
        w.0
    }

    /// The model of a parsed message.
    pub fn from_parsed(m: &Message<'_>) -> Msg {
        fn cols(t: pgoutput::TupleData<'_>) -> Vec<Col> {
            t.columns()
                .map(|c| match c {
                    Column::Null => Col::Null,
                    Column::UnchangedToast => Col::Toast,
                    Column::Text(b) => Col::Text(b.to_vec()),
                    Column::Binary(b) => Col::Binary(b.to_vec()),
                })
                .collect()
        }
        fn old(o: OldTuple<'_>) -> (u8, Vec<Col>) {
            match o {
                OldTuple::Key(t) => (b'K', cols(t)),
                OldTuple::Full(t) => (b'O', cols(t)),
            }
        }
        fn prep(p: &pgoutput::Prepare<'_>) -> Prep {
            Prep {
                flags: p.flags,
                prepare_lsn: p.prepare_lsn.0,
                end_lsn: p.end_lsn.0,
                time: p.prepare_time,
                xid: p.xid,
                gid: p.gid.to_owned(),
            }
        }
        match m {
            Message::Begin(b) => Msg::Begin {
                final_lsn: b.final_lsn.0,
                time: b.commit_time,
                xid: b.xid,
            },
            Message::Commit(c) => Msg::Commit {
                flags: c.flags,
                commit_lsn: c.commit_lsn.0,
                end_lsn: c.end_lsn.0,
                time: c.commit_time,
            },
            Message::Origin(o) => Msg::Origin {
                lsn: o.commit_lsn.0,
                name: o.name.to_owned(),
            },
            Message::Relation(r) => Msg::Relation {
                xid: r.xid,
                id: r.id,
                ns: r.namespace.to_owned(),
                name: r.name.to_owned(),
                ident: r.replica_identity,
                cols: r
                    .columns
                    .iter()
                    .map(|c| RelCol {
                        flags: c.flags,
                        name: c.name.to_owned(),
                        type_oid: c.type_oid,
                        type_modifier: c.type_modifier,
                    })
                    .collect(),
            },
            Message::Type(t) => Msg::Type {
                xid: t.xid,
                oid: t.oid,
                ns: t.namespace.to_owned(),
                name: t.name.to_owned(),
            },
            Message::Insert(i) => Msg::Insert {
                xid: i.xid,
                rel: i.relation_id,
                new: cols(i.new),
            },
            Message::Update(u) => Msg::Update {
                xid: u.xid,
                rel: u.relation_id,
                old: u.old.map(old),
                new: cols(u.new),
            },
            Message::Delete(d) => {
                let (kind, old) = old(d.old);
                Msg::Delete {
                    xid: d.xid,
                    rel: d.relation_id,
                    kind,
                    old,
                }
            }
            Message::Truncate(t) => Msg::Truncate {
                xid: t.xid,
                options: t.options,
                rels: t.relation_ids.clone(),
            },
            Message::Message(m) => Msg::Message {
                xid: m.xid,
                flags: m.flags,
                lsn: m.lsn.0,
                prefix: m.prefix.to_owned(),
                content: m.content.to_vec(),
            },
            Message::StreamStart(s) => Msg::StreamStart {
                xid: s.xid,
                first: s.first_segment,
            },
            Message::StreamStop => Msg::StreamStop,
            Message::StreamCommit(c) => Msg::StreamCommit {
                xid: c.xid,
                flags: c.flags,
                commit_lsn: c.commit_lsn.0,
                end_lsn: c.end_lsn.0,
                time: c.commit_time,
            },
            Message::StreamAbort(a) => Msg::StreamAbort {
                xid: a.xid,
                subxid: a.subxid,
                parallel: a.abort_lsn.map(|l| (l.0, a.abort_time.unwrap_or_default())),
            },
            Message::BeginPrepare(p) => Msg::BeginPrepare(prep(p)),
            Message::Prepare(p) => Msg::Prepare(prep(p)),
            Message::StreamPrepare(p) => Msg::StreamPrepare(prep(p)),
            Message::CommitPrepared(c) => Msg::CommitPrepared {
                flags: c.flags,
                commit_lsn: c.commit_lsn.0,
                end_lsn: c.end_lsn.0,
                time: c.commit_time,
                xid: c.xid,
                gid: c.gid.to_owned(),
            },
            Message::RollbackPrepared(r) => Msg::RollbackPrepared {
                flags: r.flags,
                prepare_end_lsn: r.prepare_end_lsn.0,
                rollback_end_lsn: r.rollback_end_lsn.0,
                prepare_time: r.prepare_time,
                rollback_time: r.rollback_time,
                xid: r.xid,
                gid: r.gid.to_owned(),
            },
            other => panic!("model has no form for {other:?}"),
        }
    }
}

/// Shorthand constructors for readable tests.
pub fn text(s: &str) -> Col {
    Col::Text(s.as_bytes().to_vec())
}

pub fn relcol(name: &str, type_oid: u32, key: bool) -> RelCol {
    RelCol {
        flags: u8::from(key),
        name: name.to_owned(),
        type_oid,
        type_modifier: -1,
    }
}

pub fn relation(xid: Option<u32>, id: u32, table: &str, ident: u8, cols: Vec<RelCol>) -> Msg {
    Msg::Relation {
        xid,
        id,
        ns: "public".to_owned(),
        name: table.to_owned(),
        ident,
        cols,
    }
}

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn s(&mut self, v: &str) -> &mut Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn xid(&mut self, xid: Option<u32>) -> &mut Self {
        if let Some(x) = xid {
            self.u32(x);
        }
        self
    }
    fn tuple(&mut self, cols: &[Col]) -> &mut Self {
        self.u16(cols.len() as u16);
        for c in cols {
            match c {
                Col::Null => self.u8(b'n'),
                Col::Toast => self.u8(b'u'),
                Col::Text(b) => self.u8(b't').u32(b.len() as u32).raw(b),
                Col::Binary(b) => self.u8(b'b').u32(b.len() as u32).raw(b),
            };
        }
        self
    }
}
