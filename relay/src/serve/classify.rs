//! Reading a frame's pgoutput shape for the table filter: which relation a change touches,
//! which names a Relation message carries, where transactions and stream blocks begin and end.

use walcast_decoder::frame::FrameKind;
use walcast_decoder::pgoutput::{self, Message};

use super::filter::FrameClass;

/// Follows Stream Start/Stop so that messages inside a block are parsed with their xid.
#[derive(Debug, Default)]
pub struct Classifier {
    in_stream: bool,
    last_in_stream: bool,
}

impl Classifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last classified frame sat inside a stream block (its R/Y/I/U/D/T/M carry an
    /// xid after the tag), for whoever parses it further (row scopes).
    pub fn last_in_stream(&self) -> bool {
        self.last_in_stream
    }

    /// Classifies one frame. A pgoutput message that does not parse is passed through
    /// unfiltered, rather than hidden: the client's decoder reports it with its offset.
    /// Insert/Update/Delete are classified from their tag and relation id alone: they are most
    /// of the stream, and every client classifies every frame, so their tuples are not parsed
    /// here (row scopes decode them once for all clients, see `scope::memo`).
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
        self.last_in_stream = in_stream;
        if let Some(relid) = change_relid(payload, in_stream) {
            return FrameClass::Change { relid };
        }
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

/// The relation id of an Insert, Update or Delete, read from its header.
fn change_relid(payload: &[u8], in_stream: bool) -> Option<u32> {
    let (&tag, rest) = payload.split_first()?;
    if !matches!(
        tag,
        pgoutput::TAG_INSERT | pgoutput::TAG_UPDATE | pgoutput::TAG_DELETE
    ) {
        return None;
    }
    let at = if in_stream { 4 } else { 0 };
    let id: [u8; 4] = rest.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_classified_from_their_header() {
        let mut c = Classifier::new();
        let mut ins = vec![b'I'];
        ins.extend_from_slice(&42u32.to_be_bytes());
        ins.extend_from_slice(b"N\0\0");
        assert_eq!(
            c.classify(FrameKind::Wal, &ins),
            FrameClass::Change { relid: 42 }
        );
        assert!(!c.last_in_stream());
        // Inside a stream block the xid comes first.
        let mut start = vec![b'S'];
        start.extend_from_slice(&7u32.to_be_bytes());
        start.push(1);
        assert_eq!(
            c.classify(FrameKind::Wal, &start),
            FrameClass::StreamStart { xid: 7 }
        );
        let mut upd = vec![b'U'];
        upd.extend_from_slice(&7u32.to_be_bytes());
        upd.extend_from_slice(&43u32.to_be_bytes());
        assert_eq!(
            c.classify(FrameKind::Wal, &upd),
            FrameClass::Change { relid: 43 }
        );
        assert!(c.last_in_stream());
        // Too short to carry a relation id: not a change this filter can place.
        assert_eq!(c.classify(FrameKind::Wal, b"D\0"), FrameClass::Passthrough);
    }
}
