//! Just enough of pgoutput to run the log: transaction boundaries, their LSNs, stream blocks,
//! and which relation/type a schema message describes. Everything else stays opaque bytes.
//!
//! Layouts follow PostgreSQL's "Logical Replication Message Formats" (protocol versions 1–4).
//! Offsets below count from the tag byte. Every read is bounds-checked: a short message is a
//! [`PeekError`], never a panic.

use walcast_decoder::Lsn;

/// The fields of one pgoutput message that the log needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// `B`: final_lsn @1 (the commit record's LSN), ts @9, xid @17.
    Begin { final_lsn: Lsn, xid: u32 },
    /// `C`: flags @1, commit_lsn @2, end_lsn @10, ts @18.
    Commit { commit_lsn: Lsn, end_lsn: Lsn },
    /// `b`: prepare_lsn @1, end_lsn @9, ts @17, xid @25, gid.
    BeginPrepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        xid: u32,
    },
    /// `P`: flags @1, prepare_lsn @2, end_lsn @10, ts @18, xid @26, gid.
    Prepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        xid: u32,
    },
    /// `K`: flags @1, commit_lsn @2, end_lsn @10, ts @18, xid @26, gid.
    CommitPrepared {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        xid: u32,
    },
    /// `r`: flags @1, prepare end_lsn @2, rollback end_lsn @10, prepare ts @18, rollback ts @26, xid @34.
    RollbackPrepared { end_lsn: Lsn, xid: u32 },
    /// `S`: xid @1, first-segment flag @5 (1 = the first block of this xid in this session).
    StreamStart { xid: u32, first: bool },
    /// `E`: no fields.
    StreamStop,
    /// `c`: xid @1, flags @5, commit_lsn @6, end_lsn @14, ts @22.
    StreamCommit {
        xid: u32,
        commit_lsn: Lsn,
        end_lsn: Lsn,
    },
    /// `p`: flags @1, prepare_lsn @2, end_lsn @10, ts @18, xid @26, gid.
    StreamPrepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        xid: u32,
    },
    /// `A`: xid @1, subxid @5 (PG16+ parallel streaming adds abort_lsn and ts).
    StreamAbort { xid: u32, subxid: u32 },
    /// `R`: relid @1, or @5 after the stream xid inside a stream block.
    Relation { relid: u32 },
    /// `Y`: type oid @1, or @5 inside a stream block.
    Type { oid: u32 },
    /// `M`: non-transactional (flags bit 0 clear) logical message outside a stream block,
    /// lsn @2. Transactional ones travel inside a transaction and are [`Peeked::Other`].
    StandaloneMessage { lsn: Lsn },
    /// Any other message (I, U, D, T, O, transactional M, unknown tags): opaque.
    Other(u8),
}

/// The message is shorter than its fixed fields, or empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput message {tag:?} too short: needs {needed} bytes, has {len}")]
pub struct PeekError {
    pub tag: char,
    pub needed: usize,
    pub len: usize,
}

fn u32_at(m: &[u8], at: usize) -> Result<u32, PeekError> {
    m.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(PeekError {
            tag: tag_char(m),
            needed: at + 4,
            len: m.len(),
        })
}

fn lsn_at(m: &[u8], at: usize) -> Result<Lsn, PeekError> {
    m.get(at..at + 8)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Lsn(u64::from_be_bytes(a))
        })
        .ok_or(PeekError {
            tag: tag_char(m),
            needed: at + 8,
            len: m.len(),
        })
}

fn u8_at(m: &[u8], at: usize) -> Result<u8, PeekError> {
    m.get(at).copied().ok_or(PeekError {
        tag: tag_char(m),
        needed: at + 1,
        len: m.len(),
    })
}

fn tag_char(m: &[u8]) -> char {
    m.first().map(|&b| b as char).unwrap_or('\0')
}

/// Peeks at one pgoutput message. `in_stream_block` says whether it arrived between Stream
/// Start and Stream Stop, where R/Y/I/U/D/T/M carry an extra xid after the tag.
pub fn peek(msg: &[u8], in_stream_block: bool) -> Result<Peeked, PeekError> {
    let tag = u8_at(msg, 0)?;
    let x = if in_stream_block { 4 } else { 0 };
    Ok(match tag {
        b'B' => Peeked::Begin {
            final_lsn: lsn_at(msg, 1)?,
            xid: u32_at(msg, 17)?,
        },
        b'C' => Peeked::Commit {
            commit_lsn: lsn_at(msg, 2)?,
            end_lsn: lsn_at(msg, 10)?,
        },
        b'b' => Peeked::BeginPrepare {
            prepare_lsn: lsn_at(msg, 1)?,
            end_lsn: lsn_at(msg, 9)?,
            xid: u32_at(msg, 25)?,
        },
        b'P' => Peeked::Prepare {
            prepare_lsn: lsn_at(msg, 2)?,
            end_lsn: lsn_at(msg, 10)?,
            xid: u32_at(msg, 26)?,
        },
        b'K' => Peeked::CommitPrepared {
            commit_lsn: lsn_at(msg, 2)?,
            end_lsn: lsn_at(msg, 10)?,
            xid: u32_at(msg, 26)?,
        },
        b'r' => Peeked::RollbackPrepared {
            end_lsn: lsn_at(msg, 10)?,
            xid: u32_at(msg, 34)?,
        },
        b'S' => Peeked::StreamStart {
            xid: u32_at(msg, 1)?,
            first: u8_at(msg, 5)? == 1,
        },
        b'E' => Peeked::StreamStop,
        b'c' => Peeked::StreamCommit {
            xid: u32_at(msg, 1)?,
            commit_lsn: lsn_at(msg, 6)?,
            end_lsn: lsn_at(msg, 14)?,
        },
        b'p' => Peeked::StreamPrepare {
            prepare_lsn: lsn_at(msg, 2)?,
            end_lsn: lsn_at(msg, 10)?,
            xid: u32_at(msg, 26)?,
        },
        b'A' => Peeked::StreamAbort {
            xid: u32_at(msg, 1)?,
            subxid: u32_at(msg, 5)?,
        },
        b'R' => Peeked::Relation {
            relid: u32_at(msg, 1 + x)?,
        },
        b'Y' => Peeked::Type {
            oid: u32_at(msg, 1 + x)?,
        },
        b'M' if !in_stream_block => {
            let flags = u8_at(msg, 1)?;
            if flags & 1 == 0 {
                Peeked::StandaloneMessage {
                    lsn: lsn_at(msg, 2)?,
                }
            } else {
                Peeked::Other(tag)
            }
        }
        other => Peeked::Other(other),
    })
}

/// Tracks whether the next message is inside a Stream Start … Stop block, which decides whether
/// R/Y/I/U/D/T/M carry an xid. Feed it every pgoutput message in stream order.
#[derive(Clone, Debug, Default)]
pub struct PeekState {
    block: Option<u32>,
}

impl PeekState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Peeks at `msg` and returns it with the xid of the enclosing stream block, if any.
    pub fn peek(&mut self, msg: &[u8]) -> Result<(Peeked, Option<u32>), PeekError> {
        let in_block = self.block;
        let p = peek(msg, in_block.is_some())?;
        match p {
            Peeked::StreamStart { xid, .. } => self.block = Some(xid),
            Peeked::StreamStop => self.block = None,
            _ => {}
        }
        Ok((p, in_block))
    }

    /// The xid of the stream block the next message is in, if any.
    pub fn in_block(&self) -> Option<u32> {
        self.block
    }

    /// A new walsender session starts outside any block.
    pub fn reset(&mut self) {
        self.block = None;
    }
}

/// Builders for pgoutput messages, used by tests across the crate (and handy for the relay's
/// own tests). They produce byte-exact layouts of the fields the log reads.
pub mod build {
    fn lsn(v: &mut Vec<u8>, l: u64) {
        v.extend_from_slice(&l.to_be_bytes());
    }
    fn u32v(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_be_bytes());
    }

    pub fn begin(final_lsn: u64, xid: u32) -> Vec<u8> {
        let mut v = vec![b'B'];
        lsn(&mut v, final_lsn);
        lsn(&mut v, 0);
        u32v(&mut v, xid);
        v
    }
    pub fn commit(commit_lsn: u64, end_lsn: u64) -> Vec<u8> {
        let mut v = vec![b'C', 0];
        lsn(&mut v, commit_lsn);
        lsn(&mut v, end_lsn);
        lsn(&mut v, 0);
        v
    }
    /// An Insert with an opaque body (the log never looks inside).
    pub fn insert(relid: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![b'I'];
        u32v(&mut v, relid);
        v.push(b'N');
        v.extend_from_slice(body);
        v
    }
    /// A Relation message; `stream_xid` adds the in-stream xid. `tag` distinguishes versions.
    pub fn relation(stream_xid: Option<u32>, relid: u32, tag: &str) -> Vec<u8> {
        let mut v = vec![b'R'];
        if let Some(x) = stream_xid {
            u32v(&mut v, x);
        }
        u32v(&mut v, relid);
        v.extend_from_slice(b"public\0");
        v.extend_from_slice(tag.as_bytes());
        v.push(0);
        v.push(b'd');
        v.extend_from_slice(&0u16.to_be_bytes());
        v
    }
    pub fn type_msg(stream_xid: Option<u32>, oid: u32, name: &str) -> Vec<u8> {
        let mut v = vec![b'Y'];
        if let Some(x) = stream_xid {
            u32v(&mut v, x);
        }
        u32v(&mut v, oid);
        v.extend_from_slice(b"public\0");
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v
    }
    pub fn stream_start(xid: u32) -> Vec<u8> {
        let mut v = vec![b'S'];
        u32v(&mut v, xid);
        v.push(1);
        v
    }
    /// A Stream Start that continues an xid already streamed (first-segment flag 0).
    pub fn stream_start_next(xid: u32) -> Vec<u8> {
        let mut v = stream_start(xid);
        v[5] = 0;
        v
    }
    pub fn stream_stop() -> Vec<u8> {
        vec![b'E']
    }
    pub fn stream_commit(xid: u32, commit_lsn: u64, end_lsn: u64) -> Vec<u8> {
        let mut v = vec![b'c'];
        u32v(&mut v, xid);
        v.push(0);
        lsn(&mut v, commit_lsn);
        lsn(&mut v, end_lsn);
        lsn(&mut v, 0);
        v
    }
    pub fn stream_abort(xid: u32, subxid: u32) -> Vec<u8> {
        let mut v = vec![b'A'];
        u32v(&mut v, xid);
        u32v(&mut v, subxid);
        v
    }
    /// Relation `public.t (id int4, tenant text)`, replica identity FULL: the row-scope tests'
    /// table.
    pub fn tenant_relation(relid: u32) -> Vec<u8> {
        tenant_relation_with(None, relid)
    }
    /// [`tenant_relation`] inside a stream block (the xid after the tag).
    pub fn tenant_relation_in_stream(xid: u32, relid: u32) -> Vec<u8> {
        tenant_relation_with(Some(xid), relid)
    }
    fn tenant_relation_with(stream_xid: Option<u32>, relid: u32) -> Vec<u8> {
        let mut m = vec![b'R'];
        if let Some(x) = stream_xid {
            u32v(&mut m, x);
        }
        u32v(&mut m, relid);
        m.extend_from_slice(b"public\0t\0f");
        m.extend_from_slice(&2u16.to_be_bytes());
        for (name, oid) in [("id", 23u32), ("tenant", 25)] {
            m.push(1);
            m.extend_from_slice(name.as_bytes());
            m.push(0);
            u32v(&mut m, oid);
            m.extend_from_slice(&(-1i32).to_be_bytes());
        }
        m
    }
    /// A text tuple `(id, tenant)` of [`tenant_relation`].
    pub fn tenant_tuple(id: &str, tenant: &str, m: &mut Vec<u8>) {
        m.extend_from_slice(&2u16.to_be_bytes());
        for v in [id, tenant] {
            m.push(b't');
            u32v(m, v.len() as u32);
            m.extend_from_slice(v.as_bytes());
        }
    }
    /// An Insert inside a stream block (xid after the tag).
    pub fn stream_insert(xid: u32, relid: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![b'I'];
        u32v(&mut v, xid);
        u32v(&mut v, relid);
        v.push(b'N');
        v.extend_from_slice(body);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_documented_offsets() {
        assert_eq!(
            peek(&build::begin(0x10, 7), false).unwrap(),
            Peeked::Begin {
                final_lsn: Lsn(0x10),
                xid: 7
            }
        );
        assert_eq!(
            peek(&build::commit(0x10, 0x18), false).unwrap(),
            Peeked::Commit {
                commit_lsn: Lsn(0x10),
                end_lsn: Lsn(0x18)
            }
        );
        assert_eq!(
            peek(&build::stream_commit(9, 0x20, 0x28), false).unwrap(),
            Peeked::StreamCommit {
                xid: 9,
                commit_lsn: Lsn(0x20),
                end_lsn: Lsn(0x28)
            }
        );
        assert_eq!(
            peek(&build::relation(None, 42, "t"), false).unwrap(),
            Peeked::Relation { relid: 42 }
        );
        assert_eq!(
            peek(&build::relation(Some(9), 42, "t"), true).unwrap(),
            Peeked::Relation { relid: 42 }
        );
        assert_eq!(
            peek(&build::type_msg(Some(9), 600, "t"), true).unwrap(),
            Peeked::Type { oid: 600 }
        );
        assert_eq!(
            peek(&build::stream_abort(9, 10), false).unwrap(),
            Peeked::StreamAbort { xid: 9, subxid: 10 }
        );
        // Rollback Prepared: flags, prepare end, rollback end, two timestamps, xid.
        let mut r = vec![b'r', 0];
        for x in [1u64, 2, 3, 4] {
            r.extend_from_slice(&x.to_be_bytes());
        }
        r.extend_from_slice(&77u32.to_be_bytes());
        r.extend_from_slice(b"gid\0");
        assert_eq!(
            peek(&r, false).unwrap(),
            Peeked::RollbackPrepared {
                end_lsn: Lsn(2),
                xid: 77
            }
        );
        let mut m = vec![b'M', 0];
        m.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            peek(&m, false).unwrap(),
            Peeked::StandaloneMessage { lsn: Lsn(5) }
        );
        m[1] = 1;
        assert_eq!(peek(&m, false).unwrap(), Peeked::Other(b'M'));
    }

    #[test]
    fn short_messages_are_errors_not_panics() {
        for msg in [
            build::begin(1, 2),
            build::commit(1, 2),
            build::stream_commit(1, 2, 3),
            build::relation(Some(1), 2, "x"),
        ] {
            for n in 0..msg.len().min(26) {
                let r = peek(&msg[..n], msg[0] == b'R');
                if n == 0 {
                    assert!(r.is_err());
                }
                // Prefixes either fail or (for variable-length tails) succeed; never panic.
                let _ = r;
            }
        }
        assert_eq!(
            peek(&build::begin(1, 2)[..20], false).unwrap_err().needed,
            21
        );
        assert_eq!(peek(b"", false).unwrap_err().len, 0);
    }
}
