//! The JSON lines and MessagePack output contracts (docs/output.md, format v1).
//!
//! Rows here hold only NULL / unchanged-TOAST / not-in-key cells so the tests do not depend on
//! how the value layer prints values; that layer has its own tests.

mod support;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::{json, Value as J};
use support::encoder::{relation, relcol, Col, Msg, Prep};
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::output::msgpack::{code, MsgpackEncoder};
use walcast_decoder::{Decoder, Lsn};

const INT4: u32 = 23;
const TEXT: u32 = 25;

fn users(ident: u8) -> Msg {
    relation(
        None,
        16384,
        "users",
        ident,
        vec![
            relcol("id", INT4, true),
            relcol("na\"me", TEXT, false),
            relcol("bio", TEXT, false),
        ],
    )
}

/// Decodes `msgs` with one decoder and returns each message's JSON line, parsed back.
fn json_lines(msgs: &[Msg], lsn: Option<Lsn>) -> Vec<J> {
    let mut d = Decoder::new();
    msgs.iter()
        .map(|m| {
            let bytes = m.encode();
            let ev = d.decode(&bytes).unwrap_or_else(|e| panic!("{m:?}: {e}"));
            let mut s = String::new();
            write_event(&ev, lsn, &mut s);
            assert!(!s.contains('\n'));
            serde_json::from_str(&s).unwrap_or_else(|e| panic!("invalid JSON {s}: {e}"))
        })
        .collect()
}

fn last_json(msgs: &[Msg]) -> J {
    json_lines(msgs, None).pop().unwrap()
}

const T0: i64 = 767_880_000_123_456; // 2024-05-01T12:00:00.123456+00:00

#[test]
fn transaction_events() {
    let lines = json_lines(
        &[
            Msg::Begin {
                final_lsn: 0x16_B374_D848,
                time: T0,
                xid: 742,
            },
            Msg::Origin {
                lsn: 5,
                name: "node_a".into(),
            },
            Msg::Commit {
                flags: 0,
                commit_lsn: 0x16_B374_D848,
                end_lsn: 0x16_B374_D900,
                time: T0,
            },
        ],
        Some(Lsn(0x10)),
    );
    assert_eq!(
        lines[0],
        json!({"type":"begin","lsn":"0/10","xid":742,"final_lsn":"16/B374D848","commit_ts":"2024-05-01T12:00:00.123456+00:00"})
    );
    assert_eq!(
        lines[1],
        json!({"type":"origin","lsn":"0/10","origin_lsn":"0/5","name":"node_a"})
    );
    assert_eq!(
        lines[2],
        json!({"type":"commit","lsn":"0/10","xid":742,"commit_lsn":"16/B374D848","end_lsn":"16/B374D900","commit_ts":"2024-05-01T12:00:00.123456+00:00"})
    );
    // A zero LSN (Relation/Type, Begin before Origin) is left out.
    let j = json_lines(
        &[Msg::StreamStart {
            xid: 1,
            first: false,
        }],
        Some(Lsn::ZERO),
    );
    assert_eq!(
        j[0],
        json!({"type":"stream_start","xid":1,"first_segment":false})
    );
}

#[test]
fn relation_and_type_events() {
    let lines = json_lines(
        &[
            Msg::Type {
                xid: None,
                oid: 16500,
                ns: "app".into(),
                name: "mood".into(),
            },
            {
                let mut r = users(b'i');
                if let Msg::Relation { cols, .. } = &mut r {
                    cols.push(relcol("m", 16500, false));
                }
                r
            },
        ],
        None,
    );
    assert_eq!(
        lines[0],
        json!({"type":"type","oid":16500,"schema":"app","name":"mood"})
    );
    assert_eq!(
        lines[1],
        json!({"type":"relation","relation_id":16384,"schema":"public","table":"users","replica_identity":"index","columns":[
            {"name":"id","type_oid":23,"type_modifier":-1,"key":true},
            {"name":"na\"me","type_oid":25,"type_modifier":-1,"key":false},
            {"name":"bio","type_oid":25,"type_modifier":-1,"key":false},
            {"name":"m","type_oid":16500,"type_modifier":-1,"key":false,"type_name":"app.mood"}
        ]})
    );
}

#[test]
fn row_changes_separate_null_toast_and_not_in_key() {
    let ins = last_json(&[
        users(b'd'),
        Msg::Insert {
            xid: None,
            rel: 16384,
            new: vec![Col::Null, Col::Null, Col::Toast],
        },
    ]);
    assert_eq!(
        ins,
        json!({"type":"insert","schema":"public","table":"users","new":{"id":null,"na\"me":null},"unchanged_toast":["bio"]})
    );
    let upd = last_json(&[
        users(b'd'),
        Msg::Update {
            xid: None,
            rel: 16384,
            old: Some((b'K', vec![Col::Null, Col::Null, Col::Null])),
            new: vec![Col::Null; 3],
        },
    ]);
    // id is a key column, so its `n` is a NULL key value; the others are not in the key.
    assert_eq!(
        upd,
        json!({"type":"update","schema":"public","table":"users","new":{"id":null,"na\"me":null,"bio":null},"key":{"id":null}})
    );
    let del = last_json(&[
        users(b'f'),
        Msg::Delete {
            xid: None,
            rel: 16384,
            kind: b'O',
            old: vec![Col::Null, Col::Toast, Col::Null],
        },
    ]);
    assert_eq!(
        del,
        json!({"type":"delete","schema":"public","table":"users","old":{"id":null,"bio":null},"old_unchanged_toast":["na\"me"]})
    );
}

#[test]
fn truncate_and_messages() {
    let t = last_json(&[
        users(b'd'),
        Msg::Truncate {
            xid: None,
            options: 1,
            rels: vec![16384],
        },
    ]);
    assert_eq!(
        t,
        json!({"type":"truncate","cascade":true,"restart_identity":false,"relations":[{"schema":"public","table":"users"}]})
    );
    let m = last_json(&[Msg::Message {
        xid: None,
        flags: 1,
        lsn: 0x99,
        prefix: "ctx".into(),
        content: b"{\"req\":\"a\nb\"}".to_vec(),
    }]);
    assert_eq!(
        m,
        json!({"type":"message","transactional":true,"message_lsn":"0/99","prefix":"ctx","content":"{\"req\":\"a\nb\"}"})
    );
    let m = last_json(&[Msg::Message {
        xid: None,
        flags: 0,
        lsn: 1,
        prefix: "bin".into(),
        content: vec![0xff, 0x00, 0x10],
    }]);
    assert_eq!(
        m,
        json!({"type":"message","transactional":false,"message_lsn":"0/1","prefix":"bin","content_hex":"ff0010"})
    );
}

#[test]
fn stream_events_carry_xids() {
    let lines = json_lines(
        &[
            users(b'd'),
            Msg::StreamStart {
                xid: 700,
                first: true,
            },
            Msg::Insert {
                xid: Some(701),
                rel: 16384,
                new: vec![Col::Null; 3],
            },
            Msg::Message {
                xid: Some(700),
                flags: 1,
                lsn: 2,
                prefix: "p".into(),
                content: b"x".to_vec(),
            },
            Msg::StreamStop,
            Msg::StreamAbort {
                xid: 700,
                subxid: 701,
                parallel: Some((0x200, T0)),
            },
            Msg::StreamCommit {
                xid: 700,
                flags: 0,
                commit_lsn: 3,
                end_lsn: 4,
                time: 0,
            },
        ],
        None,
    );
    assert_eq!(
        lines[1],
        json!({"type":"stream_start","xid":700,"first_segment":true})
    );
    assert_eq!(lines[2]["xid"], json!(701));
    assert_eq!(lines[3]["xid"], json!(700));
    assert_eq!(lines[4], json!({"type":"stream_stop"}));
    assert_eq!(
        lines[5],
        json!({"type":"stream_abort","xid":700,"subxid":701,"abort_lsn":"0/200","abort_ts":"2024-05-01T12:00:00.123456+00:00","discarded_xids":[701]})
    );
    assert_eq!(
        lines[6],
        json!({"type":"stream_commit","xid":700,"commit_lsn":"0/3","end_lsn":"0/4","commit_ts":"2000-01-01T00:00:00+00:00"})
    );
}

#[test]
fn two_phase_events() {
    let p = Prep {
        flags: 0,
        prepare_lsn: 1,
        end_lsn: 2,
        time: 0,
        xid: 9,
        gid: "g\"1".into(),
    };
    let lines = json_lines(
        &[
            Msg::BeginPrepare(p.clone()),
            Msg::Prepare(p.clone()),
            Msg::StreamPrepare(p),
            Msg::CommitPrepared {
                flags: 0,
                commit_lsn: 3,
                end_lsn: 4,
                time: 0,
                xid: 9,
                gid: "g".into(),
            },
            Msg::RollbackPrepared {
                flags: 0,
                prepare_end_lsn: 5,
                rollback_end_lsn: 6,
                prepare_time: 0,
                rollback_time: 0,
                xid: 9,
                gid: "g".into(),
            },
        ],
        None,
    );
    let prep = |t: &str| json!({"type":t,"xid":9,"gid":"g\"1","prepare_lsn":"0/1","end_lsn":"0/2","prepare_ts":"2000-01-01T00:00:00+00:00"});
    assert_eq!(lines[0], prep("begin_prepare"));
    assert_eq!(lines[1], prep("prepare"));
    assert_eq!(lines[2], prep("stream_prepare"));
    assert_eq!(
        lines[3],
        json!({"type":"commit_prepared","xid":9,"gid":"g","commit_lsn":"0/3","end_lsn":"0/4","commit_ts":"2000-01-01T00:00:00+00:00"})
    );
    assert_eq!(
        lines[4],
        json!({"type":"rollback_prepared","xid":9,"gid":"g","prepare_end_lsn":"0/5","rollback_end_lsn":"0/6","prepare_ts":"2000-01-01T00:00:00+00:00","rollback_ts":"2000-01-01T00:00:00+00:00"})
    );
}

/// A MessagePack value, for reading records back in tests.
#[derive(Debug, Clone, PartialEq)]
enum Mv {
    Nil,
    Bool(bool),
    Int(i128),
    Str(String),
    Bin(Vec<u8>),
    Arr(Vec<Mv>),
}

impl<'de> Deserialize<'de> for Mv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Mv;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("msgpack value")
            }
            fn visit_unit<E>(self) -> Result<Mv, E> {
                Ok(Mv::Nil)
            }
            fn visit_none<E>(self) -> Result<Mv, E> {
                Ok(Mv::Nil)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Mv, E> {
                Ok(Mv::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Mv, E> {
                Ok(Mv::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Mv, E> {
                Ok(Mv::Int(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Mv, E> {
                Ok(Mv::Str(v.to_owned()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Mv, E> {
                Ok(Mv::Bin(v.to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Mv, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Mv::Arr(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn records(bytes: &[u8]) -> Vec<Mv> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    let mut out = Vec::new();
    while !de.get_ref().is_empty() {
        out.push(Mv::deserialize(&mut de).expect("valid msgpack record"));
    }
    out
}

fn int(v: i128) -> Mv {
    Mv::Int(v)
}
fn s(v: &str) -> Mv {
    Mv::Str(v.to_owned())
}
fn arr(v: Vec<Mv>) -> Mv {
    Mv::Arr(v)
}

#[test]
fn msgpack_describes_each_relation_once_then_rows_without_names() {
    let mut d = Decoder::new();
    let mut enc = MsgpackEncoder::new();
    let mut out = Vec::new();
    let mut counts = Vec::new();
    let msgs = [
        users(b'd'),
        Msg::Insert {
            xid: None,
            rel: 16384,
            new: vec![Col::Null, Col::Null, Col::Toast],
        },
        Msg::Insert {
            xid: None,
            rel: 16384,
            new: vec![Col::Null; 3],
        },
        users(b'd'), // re-sent unchanged: nothing written
        users(b'f'), // changed: described again
        Msg::Delete {
            xid: None,
            rel: 16384,
            kind: b'O',
            old: vec![Col::Null; 3],
        },
        Msg::Message {
            xid: None,
            flags: 1,
            lsn: 7,
            prefix: "p".into(),
            content: vec![1, 2],
        },
    ];
    for m in &msgs {
        let bytes = m.encode();
        let ev = d.decode(&bytes).unwrap();
        counts.push(enc.encode(&ev, Some(Lsn(0x42)), &mut out).unwrap());
    }
    assert_eq!(counts, vec![1, 1, 1, 0, 1, 1, 1]);
    let recs = records(&out);
    assert_eq!(recs.len(), 6);
    let rel = |ident: &str| {
        arr(vec![
            int(code::RELATION.into()),
            int(16384),
            s("public"),
            s("users"),
            s(ident),
            arr(vec![
                arr(vec![s("id"), int(23), int(-1), Mv::Bool(true), Mv::Nil]),
                arr(vec![
                    s("na\"me"),
                    int(25),
                    int(-1),
                    Mv::Bool(false),
                    Mv::Nil,
                ]),
                arr(vec![s("bio"), int(25), int(-1), Mv::Bool(false), Mv::Nil]),
            ]),
        ])
    };
    assert_eq!(recs[0], rel("d"));
    assert_eq!(
        recs[1],
        arr(vec![
            int(code::INSERT.into()),
            int(0x42),
            Mv::Nil,
            int(16384),
            arr(vec![
                arr(vec![Mv::Nil, Mv::Nil, Mv::Nil]),
                arr(vec![int(2)])
            ]),
        ])
    );
    assert_eq!(recs[3], rel("f"));
    assert_eq!(
        recs[4],
        arr(vec![
            int(code::DELETE.into()),
            int(0x42),
            Mv::Nil,
            int(16384),
            s("O"),
            arr(vec![arr(vec![Mv::Nil, Mv::Nil, Mv::Nil]), arr(vec![])]),
        ])
    );
    assert_eq!(
        recs[5],
        arr(vec![
            int(code::MESSAGE.into()),
            int(0x42),
            Mv::Nil,
            Mv::Bool(true),
            int(7),
            s("p"),
            Mv::Bin(vec![1, 2])
        ])
    );
}

#[test]
fn msgpack_encodes_every_event_kind() {
    let p = Prep {
        flags: 0,
        prepare_lsn: 1,
        end_lsn: 2,
        time: 3,
        xid: 9,
        gid: "g".into(),
    };
    let msgs = vec![
        Msg::Begin {
            final_lsn: 1,
            time: 2,
            xid: 3,
        },
        Msg::Origin {
            lsn: 1,
            name: "o".into(),
        },
        Msg::Type {
            xid: None,
            oid: 1,
            ns: String::new(),
            name: "t".into(),
        },
        users(b'd'),
        Msg::Update {
            xid: None,
            rel: 16384,
            old: None,
            new: vec![Col::Null; 3],
        },
        Msg::Truncate {
            xid: None,
            options: 3,
            rels: vec![16384],
        },
        Msg::Commit {
            flags: 0,
            commit_lsn: 1,
            end_lsn: 2,
            time: 3,
        },
        Msg::StreamStart {
            xid: 5,
            first: false,
        },
        Msg::StreamStop,
        Msg::StreamAbort {
            xid: 5,
            subxid: 5,
            parallel: None,
        },
        Msg::StreamCommit {
            xid: 6,
            flags: 0,
            commit_lsn: 1,
            end_lsn: 2,
            time: 3,
        },
        Msg::BeginPrepare(p.clone()),
        Msg::Prepare(p.clone()),
        Msg::StreamPrepare(p),
        Msg::CommitPrepared {
            flags: 0,
            commit_lsn: 1,
            end_lsn: 2,
            time: 3,
            xid: 9,
            gid: "g".into(),
        },
        Msg::RollbackPrepared {
            flags: 0,
            prepare_end_lsn: 1,
            rollback_end_lsn: 2,
            prepare_time: 3,
            rollback_time: 4,
            xid: 9,
            gid: "g".into(),
        },
    ];
    let mut d = Decoder::new();
    let mut enc = MsgpackEncoder::new();
    let mut out = Vec::new();
    for m in &msgs {
        let bytes = m.encode();
        enc.encode(&d.decode(&bytes).unwrap(), None, &mut out)
            .unwrap();
    }
    let codes: Vec<i128> = records(&out)
        .into_iter()
        .map(|r| match r {
            Mv::Arr(v) => match v[0] {
                Mv::Int(c) => c,
                _ => panic!("record without code"),
            },
            _ => panic!("record is not an array"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![1, 3, 4, 0, 6, 8, 2, 10, 11, 13, 12, 14, 15, 18, 16, 17]
    );
    let recs = records(&out);
    assert_eq!(
        recs[2],
        arr(vec![
            int(4),
            Mv::Nil,
            Mv::Nil,
            int(1),
            s("pg_catalog"),
            s("t")
        ])
    );
    assert_eq!(
        recs[5],
        arr(vec![
            int(8),
            Mv::Nil,
            Mv::Nil,
            int(3),
            arr(vec![int(16384)])
        ])
    );
    assert_eq!(
        recs[9],
        arr(vec![
            int(13),
            Mv::Nil,
            int(5),
            int(5),
            Mv::Nil,
            Mv::Nil,
            arr(vec![int(5)])
        ])
    );
}
