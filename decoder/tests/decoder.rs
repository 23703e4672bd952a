//! The stateful decoder against hand-built pgoutput sequences.

mod support;

use std::sync::Arc;

use support::encoder::{relation, relcol, text, Col, Msg};
use walcast_decoder::decoder::streamed::StreamedTransactions;
use walcast_decoder::value::{decode_binary, decode_text};
use walcast_decoder::{Cell, Decoder, ErrorKind, Event, ReplicaIdentity, Value};

const INT4: u32 = 23;
const TEXT: u32 = 25;

fn users(xid: Option<u32>, ident: u8) -> Msg {
    relation(
        xid,
        16384,
        "users",
        ident,
        vec![
            relcol("id", INT4, true),
            relcol("name", TEXT, false),
            relcol("bio", TEXT, false),
        ],
    )
}

fn feed(d: &mut Decoder, m: &Msg) -> Vec<u8> {
    let bytes = m.encode();
    d.decode(&bytes).unwrap_or_else(|e| panic!("{m:?}: {e}"));
    bytes
}

/// Expected typed value of a text column, whatever the value layer makes of it.
fn tv(oid: u32, s: &'static str) -> Cell<'static> {
    Cell::Value(decode_text(oid, s.as_bytes()).expect("value decodes"))
}

#[test]
fn relation_then_insert_gives_typed_cells_pointing_at_the_cached_relation() {
    let mut d = Decoder::new();
    let rel_bytes = users(None, b'd').encode();
    let Event::Relation(r) = d.decode(&rel_bytes).unwrap() else {
        panic!("not a relation event")
    };
    assert_eq!(r.relation.schema, "public");
    assert_eq!(r.relation.table, "users");
    assert_eq!(r.relation.replica_identity, ReplicaIdentity::Default);
    assert!(r.relation.columns[0].is_key && !r.relation.columns[1].is_key);
    assert!(Arc::ptr_eq(&r.relation, d.relation(16384).unwrap()));

    let ins = Msg::Insert {
        xid: None,
        rel: 16384,
        new: vec![text("7"), Col::Null, Col::Toast],
    }
    .encode();
    let Event::Insert(c) = d.decode(&ins).unwrap() else {
        panic!("not an insert")
    };
    assert!(Arc::ptr_eq(&c.relation, &r.relation));
    assert_eq!(c.xid, None);
    let new = c.new.unwrap();
    assert_eq!(
        new.cells,
        vec![
            tv(INT4, "7"),
            Cell::Value(Value::Null),
            Cell::UnchangedToast
        ]
    );
    assert_eq!(new.get(&c.relation, "bio"), Some(&Cell::UnchangedToast));
    assert!(c.old.is_none() && c.key.is_none());
}

#[test]
fn binary_columns_use_the_binary_decoder() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    let ins = Msg::Insert {
        xid: None,
        rel: 16384,
        new: vec![Col::Binary(vec![0, 0, 0, 7]), text("a"), Col::Null],
    }
    .encode();
    let Event::Insert(c) = d.decode(&ins).unwrap() else {
        panic!()
    };
    assert_eq!(
        c.new.unwrap().cells[0],
        Cell::Value(decode_binary(INT4, &[0, 0, 0, 7]).unwrap())
    );
}

#[test]
fn key_tuple_null_is_not_in_key_but_full_tuple_null_is_null() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    let del = Msg::Delete {
        xid: None,
        rel: 16384,
        kind: b'K',
        old: vec![text("7"), Col::Null, Col::Null],
    }
    .encode();
    let Event::Delete(c) = d.decode(&del).unwrap() else {
        panic!()
    };
    assert_eq!(
        c.key.unwrap().cells,
        vec![tv(INT4, "7"), Cell::NotInKey, Cell::NotInKey]
    );
    assert!(c.old.is_none() && c.new.is_none());

    feed(&mut d, &users(None, b'f'));
    let upd = Msg::Update {
        xid: None,
        rel: 16384,
        old: Some((b'O', vec![text("7"), Col::Null, Col::Toast])),
        new: vec![text("8"), text("x"), Col::Toast],
    }
    .encode();
    let Event::Update(c) = d.decode(&upd).unwrap() else {
        panic!()
    };
    assert_eq!(c.relation.replica_identity, ReplicaIdentity::Full);
    assert_eq!(
        c.old.unwrap().cells,
        vec![
            tv(INT4, "7"),
            Cell::Value(Value::Null),
            Cell::UnchangedToast
        ]
    );
    assert_eq!(c.new.unwrap().cells[2], Cell::UnchangedToast);
}

#[test]
fn unknown_relation_and_column_count_mismatch_are_typed_errors() {
    let mut d = Decoder::new();
    let ins = Msg::Insert {
        xid: None,
        rel: 5,
        new: vec![],
    }
    .encode();
    let e = d.decode(&ins).unwrap_err();
    assert_eq!((e.offset, e.kind), (1, ErrorKind::UnknownRelation(5)));

    feed(&mut d, &users(None, b'd'));
    let ins = Msg::Insert {
        xid: None,
        rel: 16384,
        new: vec![text("1")],
    }
    .encode();
    let e = d.decode(&ins).unwrap_err();
    assert_eq!(e.offset, 6);
    assert_eq!(
        e.kind,
        ErrorKind::ColumnCountMismatch {
            relation: 16384,
            expected: 3,
            found: 1
        }
    );

    let t = Msg::Truncate {
        xid: None,
        options: 0,
        rels: vec![16384, 99],
    }
    .encode();
    let e = d.decode(&t).unwrap_err();
    assert_eq!((e.offset, e.kind), (10, ErrorKind::UnknownRelation(99)));
}

#[test]
fn bad_replica_identity_byte_is_reported_at_its_offset() {
    let mut d = Decoder::new();
    let bytes = relation(None, 1, "t", b'x', vec![]).encode();
    let e = d.decode(&bytes).unwrap_err();
    // tag, id, "public\0", "t\0"
    assert_eq!(e.offset, 1 + 4 + 7 + 2);
    assert!(matches!(e.kind, ErrorKind::Unexpected { found: b'x', .. }));
}

#[test]
fn type_messages_name_user_type_columns() {
    let mut d = Decoder::new();
    feed(
        &mut d,
        &Msg::Type {
            xid: None,
            oid: 16500,
            ns: "app".into(),
            name: "mood".into(),
        },
    );
    feed(
        &mut d,
        &relation(
            None,
            1,
            "t",
            b'd',
            vec![relcol("m", 16500, false), relcol("n", TEXT, false)],
        ),
    );
    let r = d.relation(1).unwrap();
    assert_eq!(r.columns[0].type_name.as_deref(), Some("app.mood"));
    assert_eq!(r.columns[1].type_name, None);
}

#[test]
fn truncate_names_relations_and_options() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    let t = Msg::Truncate {
        xid: None,
        options: 2,
        rels: vec![16384],
    }
    .encode();
    let Event::Truncate(t) = d.decode(&t).unwrap() else {
        panic!()
    };
    assert!(!t.cascade && t.restart_identity);
    assert_eq!(t.relations[0].table, "users");
}

#[test]
fn stream_blocks_switch_xid_parsing_and_track_subtransactions() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    assert!(!d.in_stream());
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 700,
            first: true,
        },
    );
    assert!(d.in_stream());
    assert_eq!(d.stream_xid(), Some(700));

    // Inside the block the same Insert carries an xid; without it, parsing fails.
    let no_xid = Msg::Insert {
        xid: None,
        rel: 16384,
        new: vec![text("1"), Col::Null, Col::Null],
    }
    .encode();
    assert!(d.decode(&no_xid).is_err());
    let ins = |xid| {
        Msg::Insert {
            xid: Some(xid),
            rel: 16384,
            new: vec![text("1"), Col::Null, Col::Null],
        }
        .encode()
    };
    let (a, b, c) = (ins(700), ins(701), ins(702));
    let Event::Insert(ch) = d.decode(&b).unwrap() else {
        panic!()
    };
    assert_eq!(ch.xid, Some(701));
    d.decode(&a).unwrap();
    d.decode(&c).unwrap();
    feed(&mut d, &Msg::StreamStop);
    assert!(!d.in_stream());

    // Abort of 701 discards it and 702 (first seen after it: nested), not the top level.
    let abort = Msg::StreamAbort {
        xid: 700,
        subxid: 701,
        parallel: None,
    }
    .encode();
    let Event::StreamAbort(ab) = d.decode(&abort).unwrap() else {
        panic!()
    };
    assert_eq!(ab.discarded, vec![701, 702]);
    assert!(!ab.is_top_level());

    // A later top-level abort discards the transaction and what is left of its subxids.
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 700,
            first: false,
        },
    );
    d.decode(&ins(703)).unwrap();
    feed(&mut d, &Msg::StreamStop);
    let abort = Msg::StreamAbort {
        xid: 700,
        subxid: 700,
        parallel: Some((0x100, 5)),
    }
    .encode();
    let Event::StreamAbort(ab) = d.decode(&abort).unwrap() else {
        panic!()
    };
    assert_eq!(ab.discarded, vec![700, 703]);
    assert_eq!(ab.abort_lsn.map(|l| l.0), Some(0x100));
}

#[test]
fn stream_state_errors_leave_the_decoder_unchanged() {
    let mut d = Decoder::new();
    let e = d.decode(&Msg::StreamStop.encode()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::OutOfPlace(_)));
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 1,
            first: true,
        },
    );
    let e = d
        .decode(
            &Msg::StreamStart {
                xid: 2,
                first: true,
            }
            .encode(),
        )
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::OutOfPlace(_)));
    assert_eq!(d.stream_xid(), Some(1));
    let commit = Msg::StreamCommit {
        xid: 1,
        flags: 0,
        commit_lsn: 1,
        end_lsn: 2,
        time: 3,
    }
    .encode();
    assert!(matches!(
        d.decode(&commit).unwrap_err().kind,
        ErrorKind::OutOfPlace(_)
    ));
    d.reset();
    assert!(!d.in_stream());
    d.decode(&commit).unwrap();
}

#[test]
fn relations_described_in_a_stream_are_private_until_commit() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 9,
            first: true,
        },
    );
    feed(
        &mut d,
        &relation(
            Some(9),
            16384,
            "users",
            b'f',
            vec![relcol("id", INT4, true)],
        ),
    );
    assert_eq!(d.relation(16384).unwrap().columns.len(), 1);
    feed(&mut d, &Msg::StreamStop);
    // Outside the block, the session's description still holds.
    assert_eq!(d.relation(16384).unwrap().columns.len(), 3);
    feed(
        &mut d,
        &Msg::StreamCommit {
            xid: 9,
            flags: 0,
            commit_lsn: 1,
            end_lsn: 2,
            time: 3,
        },
    );
    assert_eq!(d.relation(16384).unwrap().columns.len(), 1);

    // An aborted stream's description is dropped.
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 10,
            first: true,
        },
    );
    feed(&mut d, &users(Some(10), b'd'));
    feed(&mut d, &Msg::StreamStop);
    feed(
        &mut d,
        &Msg::StreamAbort {
            xid: 10,
            subxid: 10,
            parallel: None,
        },
    );
    assert_eq!(d.relation(16384).unwrap().columns.len(), 1);
}

#[test]
fn reset_keeps_relations() {
    let mut d = Decoder::new();
    feed(&mut d, &users(None, b'd'));
    feed(
        &mut d,
        &Msg::StreamStart {
            xid: 1,
            first: true,
        },
    );
    d.reset();
    assert!(!d.in_stream());
    assert!(d.relation(16384).is_some());
}

#[test]
fn streamed_transactions_buffer_until_commit_and_drop_aborted_subxacts() {
    let mut d = Decoder::new();
    let mut pending: StreamedTransactions<u32> = StreamedTransactions::new();
    let mut committed = Vec::new();
    let ins = |xid, id: &str| Msg::Insert {
        xid: Some(xid),
        rel: 16384,
        new: vec![text(id), Col::Null, Col::Null],
    };
    let seq = vec![
        users(None, b'd'),
        Msg::StreamStart {
            xid: 50,
            first: true,
        },
        ins(50, "1"),
        ins(51, "2"),
        ins(52, "3"),
        Msg::StreamStop,
        Msg::StreamAbort {
            xid: 50,
            subxid: 52,
            parallel: None,
        },
        Msg::StreamStart {
            xid: 50,
            first: false,
        },
        ins(50, "4"),
        Msg::StreamStop,
        Msg::StreamCommit {
            xid: 50,
            flags: 0,
            commit_lsn: 1,
            end_lsn: 2,
            time: 3,
        },
    ];
    for (n, m) in seq.iter().enumerate() {
        let bytes = m.encode();
        let top = d.stream_xid();
        match d.decode(&bytes).unwrap() {
            Event::Insert(c) => pending.push(top.unwrap(), c.xid.unwrap(), n as u32),
            Event::StreamAbort(a) => {
                assert_eq!(pending.abort(&a), 1);
            }
            Event::StreamCommit(c) => committed = pending.commit(c.xid),
            _ => {}
        }
    }
    // Messages 2, 3 and 8 survive; 4 (subxid 52) was aborted.
    assert_eq!(committed, vec![2, 3, 8]);
    assert!(pending.is_empty());
}
