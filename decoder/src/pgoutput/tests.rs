//! Hand-assembled messages, one per type, laid out as in PostgreSQL's proto.c.

use super::*;

/// Tiny byte builder so each test reads like the wire layout.
#[derive(Default)]
struct B(Vec<u8>);
impl B {
    fn new(tag: u8) -> Self {
        B(vec![tag])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn s(mut self, v: &str) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
}

fn text_col(v: &str) -> Vec<u8> {
    let mut out = vec![b't'];
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v.as_bytes());
    out
}

#[test]
fn begin() {
    let m = B::new(b'B').u64(0x16_B374_D848).u64(1000).u32(742).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::Begin(Begin {
            final_lsn: Lsn(0x16_B374_D848),
            commit_time: 1000,
            xid: 742
        })
    );
}

#[test]
fn commit() {
    let m = B::new(b'C').u8(0).u64(10).u64(20).u64(30).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(10),
            end_lsn: Lsn(20),
            commit_time: 30
        })
    );
}

#[test]
fn origin() {
    let m = B::new(b'O').u64(5).s("pg_1").0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::Origin(Origin {
            commit_lsn: Lsn(5),
            name: "pg_1"
        })
    );
}

#[test]
fn relation_in_and_out_of_stream() {
    let body = B::default()
        .u32(16384)
        .s("public")
        .s("t")
        .u8(b'd')
        .u16(2)
        .u8(1)
        .s("id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .s("name")
        .u32(25)
        .i32(-1)
        .0;
    let expect = |xid| {
        Message::Relation(Relation {
            xid,
            id: 16384,
            namespace: "public",
            name: "t",
            replica_identity: b'd',
            columns: vec![
                RelationColumn {
                    flags: 1,
                    name: "id",
                    type_oid: 23,
                    type_modifier: -1,
                },
                RelationColumn {
                    flags: 0,
                    name: "name",
                    type_oid: 25,
                    type_modifier: -1,
                },
            ],
        })
    };
    let m = B::new(b'R').raw(&body).0;
    assert_eq!(parse(&m, false).unwrap(), expect(None));
    let m = B::new(b'R').u32(900).raw(&body).0;
    assert_eq!(parse(&m, true).unwrap(), expect(Some(900)));
    // The same streamed bytes read as non-streamed do not parse as the same message.
    assert_ne!(parse(&m, false).ok(), Some(expect(Some(900))));
}

#[test]
fn relation_claiming_many_columns_is_an_error_not_an_allocation() {
    let m = B::new(b'R').u32(1).s("s").s("t").u8(b'f').u16(u16::MAX).0;
    let e = parse(&m, false).unwrap_err();
    assert_eq!(e.offset, m.len());
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
}

#[test]
fn type_message() {
    let m = B::new(b'Y').u32(7).u32(16500).s("public").s("mood").0;
    assert_eq!(
        parse(&m, true).unwrap(),
        Message::Type(Type {
            xid: Some(7),
            oid: 16500,
            namespace: "public",
            name: "mood"
        })
    );
}

#[test]
fn insert() {
    let m = B::new(b'I')
        .u32(16384)
        .u8(b'N')
        .u16(3)
        .raw(&text_col("42"))
        .u8(b'n')
        .u8(b'u')
        .0;
    let Message::Insert(ins) = parse(&m, false).unwrap() else {
        panic!("not an insert")
    };
    assert_eq!((ins.xid, ins.relation_id), (None, 16384));
    let cols: Vec<_> = ins.new.columns().collect();
    assert_eq!(
        cols,
        vec![Column::Text(b"42"), Column::Null, Column::UnchangedToast]
    );
}

#[test]
fn insert_with_wrong_marker() {
    let m = B::new(b'I').u32(1).u8(b'K').u16(0).0;
    let e = parse(&m, false).unwrap_err();
    assert_eq!(e.offset, 5);
    assert_eq!(
        e.kind,
        ErrorKind::Unexpected {
            found: b'K',
            expected: "'N'"
        }
    );
}

#[test]
fn update_forms() {
    let new = B::default().u16(1).raw(&text_col("x")).0;
    // No old tuple.
    let m = B::new(b'U').u32(1).u8(b'N').raw(&new).0;
    let Message::Update(u) = parse(&m, false).unwrap() else {
        panic!()
    };
    assert!(u.old.is_none());
    // Key tuple.
    let key = B::default().u16(2).raw(&text_col("1")).u8(b'n').0;
    let m = B::new(b'U').u32(1).u8(b'K').raw(&key).u8(b'N').raw(&new).0;
    let Message::Update(u) = parse(&m, false).unwrap() else {
        panic!()
    };
    let Some(OldTuple::Key(k)) = u.old else {
        panic!("expected key")
    };
    assert_eq!(
        k.columns().collect::<Vec<_>>(),
        vec![Column::Text(b"1"), Column::Null]
    );
    assert_eq!(
        u.new.columns().collect::<Vec<_>>(),
        vec![Column::Text(b"x")]
    );
    // Old tuple, streamed.
    let m = B::new(b'U')
        .u32(99)
        .u32(1)
        .u8(b'O')
        .raw(&new)
        .u8(b'N')
        .raw(&new)
        .0;
    let Message::Update(u) = parse(&m, true).unwrap() else {
        panic!()
    };
    assert_eq!(u.xid, Some(99));
    assert!(matches!(u.old, Some(OldTuple::Full(_))));
    // Old tuple without a new one.
    let m = B::new(b'U').u32(1).u8(b'O').raw(&new).0;
    assert!(matches!(
        parse(&m, false).unwrap_err().kind,
        ErrorKind::Truncated { .. }
    ));
    let m = B::new(b'U').u32(1).u8(b'O').raw(&new).u8(b'O').raw(&new).0;
    assert!(matches!(
        parse(&m, false).unwrap_err().kind,
        ErrorKind::Unexpected { found: b'O', .. }
    ));
}

#[test]
fn delete_forms() {
    let key = B::default().u16(1).raw(&text_col("1")).0;
    let m = B::new(b'D').u32(1).u8(b'K').raw(&key).0;
    assert!(matches!(
        parse(&m, false).unwrap(),
        Message::Delete(Delete {
            old: OldTuple::Key(_),
            ..
        })
    ));
    let m = B::new(b'D').u32(1).u8(b'O').raw(&key).0;
    assert!(matches!(
        parse(&m, false).unwrap(),
        Message::Delete(Delete {
            old: OldTuple::Full(_),
            ..
        })
    ));
    let m = B::new(b'D').u32(1).u8(b'N').raw(&key).0;
    assert_eq!(parse(&m, false).unwrap_err().offset, 5);
}

#[test]
fn truncate() {
    let m = B::new(b'T').u32(2).u8(3).u32(10).u32(11).0;
    let Message::Truncate(t) = parse(&m, false).unwrap() else {
        panic!()
    };
    assert_eq!(t.relation_ids, vec![10, 11]);
    assert!(t.cascade() && t.restart_identity());
    let m = B::new(b'T').u32(u32::MAX).u8(0).u32(1).0;
    let e = parse(&m, false).unwrap_err();
    assert_eq!(e.offset, 6);
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
}

#[test]
fn logical_message() {
    let m = B::new(b'M').u8(1).u64(77).s("ctx").i32(3).raw(b"abc").0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::Message(LogicalMessage {
            xid: None,
            flags: 1,
            lsn: Lsn(77),
            prefix: "ctx",
            content: b"abc"
        })
    );
    let m = B::new(b'M').u32(5).u8(0).u64(77).s("ctx").i32(-1).0;
    let e = parse(&m, true).unwrap_err();
    assert_eq!((e.offset, e.kind), (18, ErrorKind::BadLength(-1)));
}

#[test]
fn stream_control() {
    let m = B::new(b'S').u32(9).u8(1).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::StreamStart(StreamStart {
            xid: 9,
            first_segment: true
        })
    );
    assert_eq!(parse(b"E", true).unwrap(), Message::StreamStop);
    let m = B::new(b'c').u32(9).u8(0).u64(1).u64(2).u64(3).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::StreamCommit(StreamCommit {
            xid: 9,
            flags: 0,
            commit_lsn: Lsn(1),
            end_lsn: Lsn(2),
            commit_time: 3
        })
    );
}

#[test]
fn stream_abort_with_and_without_parallel_fields() {
    let m = B::new(b'A').u32(9).u32(10).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::StreamAbort(StreamAbort {
            xid: 9,
            subxid: 10,
            abort_lsn: None,
            abort_time: None
        })
    );
    let m = B::new(b'A').u32(9).u32(9).u64(100).u64(200).0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::StreamAbort(StreamAbort {
            xid: 9,
            subxid: 9,
            abort_lsn: Some(Lsn(100)),
            abort_time: Some(200)
        })
    );
    // Half of the parallel fields is truncation, not "absent".
    let m = B::new(b'A').u32(9).u32(9).u64(100).0;
    assert!(matches!(
        parse(&m, false).unwrap_err().kind,
        ErrorKind::Truncated { needed: 8 }
    ));
}

#[test]
fn two_phase() {
    let p = Prepare {
        flags: 0,
        prepare_lsn: Lsn(1),
        end_lsn: Lsn(2),
        prepare_time: 3,
        xid: 4,
        gid: "g1",
    };
    let m = B::new(b'b').u64(1).u64(2).u64(3).u32(4).s("g1").0;
    assert_eq!(parse(&m, false).unwrap(), Message::BeginPrepare(p));
    let m = B::new(b'P').u8(0).u64(1).u64(2).u64(3).u32(4).s("g1").0;
    assert_eq!(parse(&m, false).unwrap(), Message::Prepare(p));
    let m = B::new(b'p').u8(0).u64(1).u64(2).u64(3).u32(4).s("g1").0;
    assert_eq!(parse(&m, false).unwrap(), Message::StreamPrepare(p));
    let m = B::new(b'K').u8(0).u64(5).u64(6).u64(7).u32(4).s("g1").0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::CommitPrepared(CommitPrepared {
            flags: 0,
            commit_lsn: Lsn(5),
            end_lsn: Lsn(6),
            commit_time: 7,
            xid: 4,
            gid: "g1"
        })
    );
    let m = B::new(b'r')
        .u8(0)
        .u64(5)
        .u64(6)
        .u64(7)
        .u64(8)
        .u32(4)
        .s("g1")
        .0;
    assert_eq!(
        parse(&m, false).unwrap(),
        Message::RollbackPrepared(RollbackPrepared {
            flags: 0,
            prepare_end_lsn: Lsn(5),
            rollback_end_lsn: Lsn(6),
            prepare_time: 7,
            rollback_time: 8,
            xid: 4,
            gid: "g1"
        })
    );
}

#[test]
fn unknown_tag_trailing_bytes_and_empty_input() {
    let e = parse(b"Z123", false).unwrap_err();
    assert_eq!((e.offset, e.kind), (0, ErrorKind::UnknownMessageTag('Z')));
    let e = parse(b"Ex", false).unwrap_err();
    assert_eq!((e.offset, e.kind), (1, ErrorKind::TrailingBytes(1)));
    let e = parse(b"", false).unwrap_err();
    assert_eq!((e.offset, e.kind), (0, ErrorKind::Truncated { needed: 1 }));
}

#[test]
fn tags_round_trip_through_message_tag() {
    let m = B::new(b'S').u32(9).u8(0).0;
    assert_eq!(parse(&m, false).unwrap().tag(), TAG_STREAM_START);
}

/// The Insert/Update/Delete fast path gives exactly what the full parser gives, on every message
/// of the real captures (streamed ones inside their stream blocks) and on every truncation and
/// single-byte change of them; when the full parser refuses a message the fast path must too.
#[test]
fn change_fast_path_agrees_with_full_parser() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut checked = 0;
    for name in [
        "narrow7_text",
        "narrow7_binary",
        "streamed",
        "types_text",
        "types_binary",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.hex"))).unwrap();
        let mut in_stream = false;
        let mut inserts = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let msg = crate::output::parse_bytea_hex(line).unwrap();
            // Every kind of message, but only the first 50 Inserts (they are alike).
            if msg.first() == Some(&TAG_INSERT) {
                inserts += 1;
            }
            let skip = inserts > 50 && msg.first() == Some(&TAG_INSERT);
            let mut variants = vec![msg.clone()];
            for cut in 0..msg.len() {
                variants.push(msg[..cut].to_vec());
            }
            for pos in 0..msg.len().min(64) {
                for b in [0u8, b'n', b'u', b't', b'N', b'K', 0xff] {
                    let mut m = msg.clone();
                    m[pos] = b;
                    variants.push(m);
                }
            }
            for m in variants.iter().filter(|_| !skip) {
                let full = finish(message(m, in_stream), m.len());
                match change_fast(m, in_stream) {
                    Some(fast) => {
                        assert_eq!(Ok(fast), full, "{name}: {m:02x?}");
                        checked += 1;
                    }
                    None => assert!(
                        !matches!(
                            full,
                            Ok(Message::Insert(_) | Message::Update(_) | Message::Delete(_))
                        ),
                        "{name}: fast path refused a valid change {m:02x?}"
                    ),
                }
            }
            match parse(&msg, in_stream).unwrap() {
                Message::StreamStart(_) => in_stream = true,
                Message::StreamStop => in_stream = false,
                _ => {}
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
