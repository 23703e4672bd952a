//! Property tests: encode(model) → parse → the same model; prefixes and random bytes are
//! errors with an in-bounds offset, never panics.

mod support;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use support::encoder::{Col, Msg, Prep, RelCol};
use walcast_decoder::pgoutput;
use walcast_decoder::{parse_envelope, Decoder};

fn name() -> impl Strategy<Value = String> {
    // Any UTF-8 without NUL, including multi-byte characters.
    "[a-zA-Z0-9_ .\"é€😀-]{0,12}"
}

fn col() -> impl Strategy<Value = Col> {
    prop_oneof![
        Just(Col::Null),
        Just(Col::Toast),
        vec(any::<u8>(), 0..24).prop_map(Col::Text),
        vec(any::<u8>(), 0..24).prop_map(Col::Binary),
    ]
}

fn tuple() -> impl Strategy<Value = Vec<Col>> {
    vec(col(), 0..10)
}

fn prep() -> impl Strategy<Value = Prep> {
    (
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        any::<u32>(),
        name(),
    )
        .prop_map(|(flags, prepare_lsn, end_lsn, time, xid, gid)| Prep {
            flags,
            prepare_lsn,
            end_lsn,
            time,
            xid,
            gid,
        })
}

fn old_kind() -> impl Strategy<Value = u8> {
    prop_oneof![Just(b'K'), Just(b'O')]
}

pub fn msg() -> impl Strategy<Value = Msg> {
    let x = || option::of(any::<u32>());
    prop_oneof![
        (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, time, xid)| Msg::Begin {
            final_lsn,
            time,
            xid
        }),
        (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
            |(flags, commit_lsn, end_lsn, time)| Msg::Commit {
                flags,
                commit_lsn,
                end_lsn,
                time
            }
        ),
        (any::<u64>(), name()).prop_map(|(lsn, name)| Msg::Origin { lsn, name }),
        (
            x(),
            any::<u32>(),
            name(),
            name(),
            any::<u8>(),
            vec((any::<u8>(), name(), any::<u32>(), any::<i32>()), 0..8)
        )
            .prop_map(|(xid, id, ns, name, ident, cols)| Msg::Relation {
                xid,
                id,
                ns,
                name,
                ident,
                cols: cols
                    .into_iter()
                    .map(|(flags, name, type_oid, type_modifier)| RelCol {
                        flags,
                        name,
                        type_oid,
                        type_modifier
                    })
                    .collect(),
            }),
        (x(), any::<u32>(), name(), name()).prop_map(|(xid, oid, ns, name)| Msg::Type {
            xid,
            oid,
            ns,
            name
        }),
        (x(), any::<u32>(), tuple()).prop_map(|(xid, rel, new)| Msg::Insert { xid, rel, new }),
        (
            x(),
            any::<u32>(),
            option::of((old_kind(), tuple())),
            tuple()
        )
            .prop_map(|(xid, rel, old, new)| Msg::Update { xid, rel, old, new }),
        (x(), any::<u32>(), old_kind(), tuple()).prop_map(|(xid, rel, kind, old)| Msg::Delete {
            xid,
            rel,
            kind,
            old
        }),
        (x(), any::<u8>(), vec(any::<u32>(), 0..6))
            .prop_map(|(xid, options, rels)| Msg::Truncate { xid, options, rels }),
        (
            x(),
            any::<u8>(),
            any::<u64>(),
            name(),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(xid, flags, lsn, prefix, content)| Msg::Message {
                xid,
                flags,
                lsn,
                prefix,
                content
            }),
        (any::<u32>(), any::<bool>()).prop_map(|(xid, first)| Msg::StreamStart { xid, first }),
        Just(Msg::StreamStop),
        (
            any::<u32>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>()
        )
            .prop_map(
                |(xid, flags, commit_lsn, end_lsn, time)| Msg::StreamCommit {
                    xid,
                    flags,
                    commit_lsn,
                    end_lsn,
                    time
                }
            ),
        (
            any::<u32>(),
            any::<u32>(),
            option::of((any::<u64>(), any::<i64>()))
        )
            .prop_map(|(xid, subxid, parallel)| Msg::StreamAbort {
                xid,
                subxid,
                parallel
            }),
        prep().prop_map(|mut p| {
            p.flags = 0; // Begin Prepare has no flags byte.
            Msg::BeginPrepare(p)
        }),
        prep().prop_map(Msg::Prepare),
        prep().prop_map(Msg::StreamPrepare),
        (
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            any::<u32>(),
            name()
        )
            .prop_map(
                |(flags, commit_lsn, end_lsn, time, xid, gid)| Msg::CommitPrepared {
                    flags,
                    commit_lsn,
                    end_lsn,
                    time,
                    xid,
                    gid
                }
            ),
        (
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u32>(),
            name()
        )
            .prop_map(
                |(
                    flags,
                    prepare_end_lsn,
                    rollback_end_lsn,
                    prepare_time,
                    rollback_time,
                    xid,
                    gid,
                )| Msg::RollbackPrepared {
                    flags,
                    prepare_end_lsn,
                    rollback_end_lsn,
                    prepare_time,
                    rollback_time,
                    xid,
                    gid
                }
            ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_parse_round_trip(m in msg()) {
        let bytes = m.encode();
        let parsed = pgoutput::parse(&bytes, m.in_stream()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(Msg::from_parsed(&parsed), m);
    }

    #[test]
    fn every_prefix_is_an_error_with_offset_in_bounds(m in msg()) {
        let bytes = m.encode();
        for len in 0..bytes.len() {
            match pgoutput::parse(&bytes[..len], m.in_stream()) {
                Err(e) => prop_assert!(e.offset <= len, "offset {} > len {} for {:?}", e.offset, len, m),
                // A parallel-streaming Stream Abort cut after its subxid is a valid protocol-2 abort.
                Ok(pgoutput::Message::StreamAbort(_)) if len == 9 => {}
                Ok(other) => prop_assert!(false, "prefix {} of {:?} parsed as {:?}", len, m, other),
            }
        }
    }

    #[test]
    fn trailing_byte_is_an_error(m in msg(), extra in any::<u8>()) {
        let mut bytes = m.encode();
        bytes.push(extra);
        if let Ok(parsed) = pgoutput::parse(&bytes, m.in_stream()) {
            // Only a Stream Abort can grow (into the parallel form) — and never by one byte.
            prop_assert!(false, "{:?} + 1 byte parsed as {:?}", m, parsed);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..64), in_stream in any::<bool>()) {
        if let Err(e) = pgoutput::parse(&bytes, in_stream) {
            prop_assert!(e.offset <= bytes.len());
        }
        if let Err(e) = parse_envelope(&bytes) {
            prop_assert!(e.offset <= bytes.len());
        }
    }

    #[test]
    fn mutated_messages_never_panic(m in msg(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = m.encode();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Err(e) = pgoutput::parse(&bytes, m.in_stream()) {
            prop_assert!(e.offset <= bytes.len());
        }
    }

    #[test]
    fn decoder_fed_any_sequence_never_panics(ms in vec(msg(), 0..40)) {
        let mut d = Decoder::new();
        for m in &ms {
            let bytes = m.encode();
            if let Err(e) = d.decode(&bytes) {
                prop_assert!(e.offset <= bytes.len());
            }
        }
    }
}
