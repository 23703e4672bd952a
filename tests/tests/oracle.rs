//! The ground-truth harness itself, without the decoder: every major runs the scenarios, and
//! test_decoding and the raw pgoutput stream show what the decoder tests rely on.

use walcast_testkit::bin_dir;
use walcast_tests::ground_truth::{collect, NARROW7_ROWS, STREAMED_ROWS};
use walcast_tests::ops::{Op, Val};
use walcast_tests::test_decoding::units;

fn tags(msgs: &[walcast_tests::pg::RawMessage]) -> Vec<u8> {
    msgs.iter().map(|m| m.bytes[0]).collect()
}

macro_rules! per_major {
    ($($name:ident => $major:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if bin_dir($major).is_none() {
                    assert_ne!($major, 15, "Debian's PostgreSQL 15 must be installed");
                    eprintln!("PostgreSQL {} not installed (scripts/install-deps.sh); skipped", $major);
                    return;
                }
                scenarios_produce_the_expected_raw_streams($major);
            }
        )*
    };
}

per_major!(pg14 => 14, pg15 => 15, pg16 => 16, pg17 => 17, pg18 => 18);

fn scenarios_produce_the_expected_raw_streams(major: u32) {
    let gt = collect(major).unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
    let text = tags(&gt.text);
    assert_eq!(
        text,
        tags(&gt.binary),
        "PG{major}: text and binary streams have the same messages"
    );
    for tag in [
        b'B', b'C', b'R', b'Y', b'I', b'U', b'D', b'T', b'M', b'O', b'S', b'E', b'c', b'A',
    ] {
        assert!(
            text.contains(&tag),
            "PG{major}: no {:?} message",
            tag as char
        );
    }
    if major >= 15 {
        for tag in [b'b', b'P', b'K', b'r', b'p'] {
            assert!(
                text.contains(&tag),
                "PG{major}: no two-phase {:?} message",
                tag as char
            );
        }
    }
    assert_eq!(gt.types_json.len(), 8, "PG{major}");
    assert_eq!(gt.narrow7_json.len() as u32, NARROW7_ROWS, "PG{major}");
    // streaming 'parallel' (PG16+): the same messages, but Stream Abort grows by the abort LSN
    // and time (tag, xid, subxid, then lsn and time: 1 + 4 + 4 + 8 + 8 bytes).
    match &gt.parallel {
        Some(par) => {
            assert_eq!(
                tags(par),
                text,
                "PG{major}: parallel streaming sends the same messages"
            );
            for (p, t) in par.iter().zip(&gt.text) {
                if p.bytes[0] == b'A' {
                    assert_eq!(
                        (t.bytes.len(), p.bytes.len()),
                        (9, 25),
                        "PG{major}: Stream Abort sizes"
                    );
                } else {
                    assert_eq!(p.bytes, t.bytes, "PG{major}");
                }
            }
        }
        None => assert!(major < 16),
    }

    let units = units(&gt.test_decoding).unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
    let ops: Vec<&Op> = units.iter().flatten().collect();
    // Unchanged TOAST on an update that leaves the big column alone.
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::Update { table, new, .. }
            if table == "public.t_toast" && new.get("big") == Some(&Val::Unchanged))),
        "PG{major}: {ops:?}"
    );
    // The streamed transaction: everything but the rolled-back savepoint and the aborted one.
    let streamed: Vec<&&Op> = ops
        .iter()
        .filter(|op| matches!(op, Op::Insert { table, .. } if table == "public.t_stream"))
        .collect();
    // STREAMED_ROWS, 50 from the released savepoint, one after the schema change, one after the
    // aborted transaction.
    assert_eq!(streamed.len() as u32, STREAMED_ROWS + 50 + 2, "PG{major}");
    // Prepared then rolled back never happened; prepared then committed did.
    let ids: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert { table, new } if table == "public.t_def" => match new.get("id") {
                Some(Val::Text(id)) => Some(id.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "7"], "PG{major}");
}
