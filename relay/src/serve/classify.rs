//! Reading a frame's pgoutput shape for the table filter: which relation a change touches,
//! which names a Relation message carries, where transactions and stream blocks begin and end.

use walcast_decoder::frame::FrameKind;
use walcast_decoder::pgoutput::{self, Message};

use super::filter::FrameClass;

/// Follows Stream Start/Stop so that messages inside a block are parsed with their xid.
#[derive(Debug, Default)]
pub struct Classifier {
    in_stream: bool,
}

impl Classifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies one frame. A pgoutput message that does not parse is passed through
    /// unfiltered, rather than hidden: the client's decoder reports it with its offset.
    pub fn classify(&mut self, kind: FrameKind, payload: &[u8]) -> FrameClass {
        match kind {
            FrameKind::Wal | FrameKind::Prelude => {}
            FrameKind::Reset => {
                self.in_stream = false;
                return FrameClass::Passthrough;
            }
            _ => return FrameClass::Passthrough,
        }
        // Prelude messages are always in the plain layout, outside any block.
        let in_stream = self.in_stream && kind == FrameKind::Wal;
        let Ok(msg) = pgoutput::parse(payload, in_stream) else {
            return FrameClass::Passthrough;
        };
        match msg {
            Message::Begin(_) => FrameClass::Begin,
            Message::Commit(_) => FrameClass::Commit,
            Message::BeginPrepare(p) => FrameClass::BeginPrepare { xid: p.xid },
            Message::Prepare(_) => FrameClass::Prepare,
            Message::CommitPrepared(c) => FrameClass::CommitPrepared { xid: c.xid },
            Message::RollbackPrepared(r) => FrameClass::RollbackPrepared { xid: r.xid },
            Message::Origin(_) => FrameClass::Origin,
            Message::Type(_) => FrameClass::Type,
            Message::Relation(r) => FrameClass::Relation {
                relid: r.id,
                schema: if r.namespace.is_empty() {
                    "pg_catalog".into()
                } else {
                    r.namespace.into()
                },
                table: r.name.into(),
            },
            Message::Insert(i) => FrameClass::Change {
                relid: i.relation_id,
            },
            Message::Update(u) => FrameClass::Change {
                relid: u.relation_id,
            },
            Message::Delete(d) => FrameClass::Change {
                relid: d.relation_id,
            },
            Message::Truncate(t) => FrameClass::Truncate {
                relids: t.relation_ids,
            },
            Message::Message(m) => FrameClass::Message {
                transactional: m.transactional(),
            },
            Message::StreamStart(s) => {
                self.in_stream = true;
                FrameClass::StreamStart { xid: s.xid }
            }
            Message::StreamStop => {
                self.in_stream = false;
                FrameClass::StreamStop
            }
            Message::StreamCommit(c) => FrameClass::StreamCommit { xid: c.xid },
            Message::StreamAbort(a) => FrameClass::StreamAbort {
                xid: a.xid,
                subxid: a.subxid,
            },
            Message::StreamPrepare(p) => FrameClass::StreamPrepare { xid: p.xid },
            _ => FrameClass::Passthrough,
        }
    }
}
