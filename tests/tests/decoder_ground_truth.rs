//! The decoder against real PostgreSQL, on every major this machine has (15 always; 14, 16, 17
//! and 18 from tests/pg-versions): raw pgoutput read through the slot SQL functions, in text and
//! binary mode, with the protocol version the relay would use, streaming and messages on.
//!
//! Ground truth: `to_json()` of every row of the types table (byte for byte, per column), and
//! test_decoding (PostgreSQL's reference plugin) for which changes were committed, in which order.

mod common;

use common::{decode_to_lines, first_difference};
use serde_json::Value;
use walcast_decoder::Lsn;
use walcast_testkit::bin_dir;
use walcast_tests::events::{committed_units, kind, parse_lines, Event};
use walcast_tests::ground_truth::{collect, GroundTruth};
use walcast_tests::ops::{filter_ops, restrict_columns, Op, Unit};
use walcast_tests::pg::{supports_two_phase, RawMessage};
use walcast_tests::rawjson::{diff, member_object, members};
use walcast_tests::test_decoding;

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
                check_major($major);
            }
        )*
    };
}

per_major!(pg14 => 14, pg15 => 15, pg16 => 16, pg17 => 17, pg18 => 18);

fn decode(major: u32, mode: &str, msgs: &[RawMessage]) -> Vec<String> {
    let input: Vec<(Option<Lsn>, &[u8])> = msgs
        .iter()
        .map(|m| {
            (
                Some(m.lsn.parse::<Lsn>().expect("PostgreSQL prints valid LSNs")),
                m.bytes.as_slice(),
            )
        })
        .collect();
    decode_to_lines(input).unwrap_or_else(|e| panic!("PG{major} {mode}: {e}"))
}

fn check_major(major: u32) {
    let gt = collect(major).unwrap_or_else(|e| panic!("PG{major}: collecting ground truth: {e:#}"));
    let text = decode(major, "text", &gt.text);
    let binary = decode(major, "binary", &gt.binary);

    check_types_against_to_json(&gt, "text", &text);
    check_types_against_to_json(&gt, "binary", &binary);
    check_narrow7_against_to_json(&gt, "text", &text);
    check_narrow7_against_to_json(&gt, "binary", &binary);
    // Binary and text mode must be indistinguishable to a client (for built-in types).
    let (t, b) = (comparable(&text), comparable(&binary));
    if let Some(d) = first_difference(&t, &b) {
        panic!("PG{major}: text and binary mode decode differently at {d}");
    }

    if let Some(par) = &gt.parallel {
        check_parallel_streaming(major, &text, &decode(major, "parallel", par));
    }

    let events = parse_lines(&text).unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
    check_committed_outcome(&gt, &events);
    check_identity_and_toast(major, &events);
    check_stream_and_two_phase(major, &events);
}

/// Columns of t_types whose types are user-defined (enum, domains, enum array). The `to_json()`
/// contract covers built-in types; pgoutput describes these only by a Type message (for a domain,
/// the base type's name under the domain's OID; for `mood[]`, the name `_mood`). Each must equal
/// `to_json()` or else fall back to PostgreSQL's text output as a string in text mode, and to some
/// string in binary mode. Text and binary mode are compared without them.
const USER_TYPED_COLUMNS: [&str; 4] = ["c_mood", "c_posint", "c_short_text", "a_mood"];

/// The JSON lines with the user-typed columns of t_types removed, raw member texts kept.
fn comparable(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let mut ev = members(line).unwrap_or_else(|e| panic!("{e:#}"));
            if ev.get("table").map(String::as_str) == Some("\"t_types\"") {
                if let Some(mut new) = member_object(line, "new").unwrap() {
                    new.retain(|k, _| !USER_TYPED_COLUMNS.contains(&k.as_str()));
                    ev.insert("new".into(), format!("{new:?}"));
                }
            }
            format!("{ev:?}")
        })
        .collect()
}

/// (a) Every decoded insert into t_types equals `to_json()` of that row, column by column,
/// as raw JSON text.
fn check_types_against_to_json(gt: &GroundTruth, mode: &str, lines: &[String]) {
    let major = gt.major;
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for line in lines {
        let ev = members(line).unwrap_or_else(|e| panic!("PG{major} {mode}: {e:#}"));
        if ev.get("type").map(String::as_str) != Some("\"insert\"")
            || ev.get("table").map(String::as_str) != Some("\"t_types\"")
        {
            continue;
        }
        assert!(
            !ev.contains_key("unchanged_toast"),
            "PG{major} {mode}: insert with unchanged TOAST: {line}"
        );
        let new = member_object(line, "new")
            .unwrap()
            .unwrap_or_else(|| panic!("PG{major} {mode}: insert without new: {line}"));
        let id: i64 = new
            .get("id")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no id in {line}"));
        let mut expected = members(&gt.types_json[&id]).unwrap();
        let mut new = new;
        for col in USER_TYPED_COLUMNS {
            let want_text = gt.user_typed_text.get(&(id, col.to_owned()));
            let to_json = expected.remove(col);
            let got = new
                .remove(col)
                .unwrap_or_else(|| panic!("PG{major} {mode}: id {id}: no {col}"));
            // to_json() itself is always right; failing that, the documented fallback.
            if Some(&got) == to_json.as_ref() {
                continue;
            }
            match want_text {
                None => assert_eq!(got, "null", "PG{major} {mode}: id {id} {col}"),
                Some(text) if mode == "text" => assert_eq!(
                    got,
                    serde_json::to_string(text).unwrap(),
                    "PG{major} {mode}: id {id} {col}: neither to_json() {to_json:?} nor the text output"
                ),
                Some(_) => assert!(
                    got.starts_with('"'),
                    "PG{major} {mode}: id {id} {col}: neither to_json() {to_json:?} nor a string: {got}"
                ),
            }
        }
        for d in diff(&expected, &new) {
            problems.push(format!("id {id} {d}"));
        }
        seen.push(id);
    }
    assert_eq!(
        seen,
        gt.types_json.keys().copied().collect::<Vec<_>>(),
        "PG{major} {mode}: t_types inserts"
    );
    assert!(
        problems.is_empty(),
        "PG{major} {mode}: decoded values differ from to_json() ({} columns):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// (b) What a subscriber applying the decoded stream commits equals what test_decoding reports.
fn check_committed_outcome(gt: &GroundTruth, events: &[Event]) {
    let major = gt.major;
    let oracle =
        test_decoding::units(&gt.test_decoding).unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
    // pub_ins publishes only inserts of t_nothing (REPLICA IDENTITY NOTHING); test_decoding shows all.
    let oracle = filter_ops(oracle, |op| {
        op.table() == Some("public.t_nothing") && !matches!(op, Op::Insert { .. })
    });
    let actual = committed_units(events)
        .unwrap_or_else(|e| panic!("PG{major}: applying the decoded stream: {e:#}"));
    let actual = filter_ops(actual, |_| false);
    // t_types and narrow7 values are checked against to_json(); test_decoding prints them
    // differently (timestamps, arrays, bytea…).
    let norm = |u: Vec<Unit>| {
        let u = restrict_columns(u, "public.t_types", &["id"]);
        restrict_columns(u, "public.narrow7", &["id"])
    };
    let (oracle, actual) = (norm(oracle), norm(actual));
    if oracle != actual {
        let i = oracle
            .iter()
            .zip(&actual)
            .position(|(a, b)| a != b)
            .unwrap_or(oracle.len().min(actual.len()));
        panic!(
            "PG{major}: committed outcome differs from test_decoding at transaction {i} of {} (oracle) / {} (decoded):\n\
             oracle:  {:?}\ndecoded: {:?}",
            oracle.len(),
            actual.len(),
            oracle.get(i).map(|u| u.iter().take(5).collect::<Vec<_>>()),
            actual.get(i).map(|u| u.iter().take(5).collect::<Vec<_>>()),
        );
    }
}

fn on_table<'e>(events: &'e [Event], table: &str, what: &str) -> Vec<&'e Event> {
    events
        .iter()
        .filter(|e| kind(e) == what && e.get("table").and_then(Value::as_str) == Some(table))
        .collect()
}

fn keys(v: Option<&Value>) -> Vec<String> {
    let mut k: Vec<String> = v
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// (c) Replica identities and unchanged TOAST, message by message.
fn check_identity_and_toast(major: u32, events: &[Event]) {
    // DEFAULT: key tuples hold only the primary key; updates that keep the key carry no key.
    let upd = on_table(events, "t_def", "update");
    assert_eq!(upd.len(), 2, "PG{major}: t_def updates");
    assert!(
        upd[0].get("key").is_none() && upd[0].get("old").is_none(),
        "PG{major}: {:?}",
        upd[0]
    );
    assert_eq!(
        keys(upd[1].get("key")),
        ["id"],
        "PG{major}: key of a key-changing update: {:?}",
        upd[1]
    );
    assert_eq!(upd[1]["key"]["id"], 2, "PG{major}");
    let del = on_table(events, "t_def", "delete");
    assert_eq!(del.len(), 1, "PG{major}");
    assert_eq!(keys(del[0].get("key")), ["id"], "PG{major}: {:?}", del[0]);
    assert!(
        del[0].get("new").is_none(),
        "PG{major}: delete with new: {:?}",
        del[0]
    );

    // USING INDEX: the key is the index's column only.
    let upd = on_table(events, "t_idx", "update");
    assert!(upd[0].get("key").is_none(), "PG{major}: {:?}", upd[0]);
    assert_eq!(keys(upd[1].get("key")), ["code"], "PG{major}: {:?}", upd[1]);
    assert_eq!(upd[1]["key"]["code"], "k2", "PG{major}");
    assert_eq!(
        keys(on_table(events, "t_idx", "delete")[0].get("key")),
        ["code"],
        "PG{major}"
    );

    // FULL: every update and delete carries the whole old row, NULLs included.
    for ev in on_table(events, "t_full", "update")
        .into_iter()
        .chain(on_table(events, "t_full", "delete"))
    {
        assert_eq!(keys(ev.get("old")), ["a", "b", "id"], "PG{major}: {ev:?}");
        assert!(ev.get("key").is_none(), "PG{major}: {ev:?}");
    }
    let full_del = on_table(events, "t_full", "delete");
    assert_eq!(
        full_del[0]["old"]["a"],
        Value::Null,
        "PG{major}: NULL in an old row stays null"
    );

    // NOTHING (insert-only publication): the insert arrives, nothing else.
    assert_eq!(
        on_table(events, "t_nothing", "insert").len(),
        1,
        "PG{major}"
    );
    assert!(
        on_table(events, "t_nothing", "update").is_empty()
            && on_table(events, "t_nothing", "delete").is_empty()
    );

    // Unchanged TOAST: listed, absent from new, never null.
    let upd = on_table(events, "t_toast", "update");
    assert_eq!(upd.len(), 3, "PG{major}");
    assert_eq!(
        upd[0]["unchanged_toast"],
        serde_json::json!(["big"]),
        "PG{major}: {:?}",
        upd[0]
    );
    assert_eq!(
        keys(upd[0].get("new")),
        ["id", "small"],
        "PG{major}: {:?}",
        upd[0]
    );
    assert!(
        upd[1].get("unchanged_toast").is_none(),
        "PG{major}: {:?}",
        upd[1]
    );
    assert_eq!(upd[1]["new"]["big"], "short now", "PG{major}");
    for ev in events {
        if let Some(names) = ev.get("unchanged_toast").and_then(Value::as_array) {
            assert!(
                !names.is_empty(),
                "PG{major}: empty unchanged_toast list: {ev:?}"
            );
            for n in names {
                let n = n.as_str().unwrap_or_default();
                assert!(
                    ev["new"].get(n).is_none(),
                    "PG{major}: {n} both unchanged and present: {ev:?}"
                );
            }
        }
    }
    let ins = on_table(events, "t_toast", "insert");
    assert!(
        ins[0]["new"]["big"]
            .as_str()
            .is_some_and(|s| s.len() == 150 * 32),
        "PG{major}: TOASTed value in full"
    );

    // FULL identity with a TOASTed column left alone: the new row marks it unchanged, the old
    // row (and the deleted row) carry the whole value.
    let upd = on_table(events, "t_full_toast", "update");
    assert_eq!(upd.len(), 1, "PG{major}");
    assert_eq!(
        upd[0]["unchanged_toast"],
        serde_json::json!(["big"]),
        "PG{major}: {:?}",
        upd[0]
    );
    let full_len = |e: &Event| e["old"]["big"].as_str().map(str::len);
    assert_eq!(
        full_len(upd[0]),
        Some(150 * 32),
        "PG{major}: old row of a FULL update"
    );
    let del = on_table(events, "t_full_toast", "delete");
    assert_eq!(
        full_len(del[0]),
        Some(150 * 32),
        "PG{major}: old row of a FULL delete"
    );

    // Schema changes: each insert carries the columns the table had then, with the new types.
    let alter: Vec<Vec<String>> = on_table(events, "t_alter", "insert")
        .iter()
        .map(|e| keys(e.get("new")))
        .collect();
    assert_eq!(
        alter,
        [
            vec!["a", "id"],
            vec!["a", "b", "id"],
            vec!["b", "id"],
            vec!["b", "id"],
            vec!["c", "id"]
        ],
        "PG{major}"
    );
    let big = on_table(events, "t_alter", "insert")[3]["new"]["b"].clone();
    assert_eq!(
        big,
        serde_json::json!(9_000_000_000_i64),
        "PG{major}: int8 after ALTER TYPE"
    );
    let after = on_table(events, "t_stream", "insert")
        .into_iter()
        .find(|e| e["new"]["id"] == -1);
    assert_eq!(
        after.map(|e| e["new"]["extra"].clone()),
        Some(43.into()),
        "PG{major}: column added in a streamed transaction"
    );

    // TRUNCATE flags.
    let truncs: Vec<&Event> = events.iter().filter(|e| kind(e) == "truncate").collect();
    assert_eq!(truncs.len(), 3, "PG{major}");
    assert_eq!(truncs[0]["cascade"], true, "PG{major}");
    assert_eq!(
        truncs[0]["relations"].as_array().map(Vec::len),
        Some(2),
        "PG{major}: cascade includes the child"
    );
    assert_eq!(truncs[1]["restart_identity"], true, "PG{major}");
    assert_eq!(
        (
            truncs[2]["cascade"].clone(),
            truncs[2]["restart_identity"].clone()
        ),
        (false.into(), false.into())
    );

    // Logical messages, transactional and not.
    let msgs: Vec<&Event> = events.iter().filter(|e| kind(e) == "message").collect();
    assert!(msgs.iter().any(|m| m["transactional"] == true
        && m["prefix"] == "walcast"
        && m["content"] == "{\"req\":\"abc\"}"));
    assert!(msgs
        .iter()
        .any(|m| m["transactional"] == false && m["content"] == "non-transactional ünïcode"));

    // Origin, and relation/type messages for the enum and domains.
    assert!(
        events.iter().any(|e| kind(e) == "origin"),
        "PG{major}: no origin event"
    );
    assert!(
        events.iter().filter(|e| kind(e) == "type").count() >= 2,
        "PG{major}: no type events"
    );
    assert!(
        events.iter().any(|e| kind(e) == "relation"),
        "PG{major}: no relation events"
    );
    for e in events {
        if let Some(lsn) = e.get("lsn").and_then(Value::as_str) {
            assert!(lsn.parse::<Lsn>().is_ok(), "PG{major}: bad LSN text {lsn}");
        }
    }
}

/// (c) Streaming (with a rolled-back subtransaction and an aborted transaction) and two-phase.
fn check_stream_and_two_phase(major: u32, events: &[Event]) {
    let mut in_stream = false;
    for e in events {
        match kind(e) {
            "stream_start" => in_stream = true,
            "stream_stop" => in_stream = false,
            "insert" | "update" | "delete" | "truncate" | "relation" | "type" if in_stream => {
                assert!(
                    e.get("xid").and_then(Value::as_u64).is_some(),
                    "PG{major}: streamed change without xid: {e:?}"
                );
            }
            "message" if in_stream && e["transactional"] == true => {
                assert!(
                    e.get("xid").is_some(),
                    "PG{major}: streamed message without xid: {e:?}"
                );
            }
            "insert" | "update" | "delete" if !in_stream => {
                assert!(
                    e.get("xid").is_none(),
                    "PG{major}: xid outside a stream: {e:?}"
                );
            }
            _ => {}
        }
    }
    let aborts: Vec<&Event> = events
        .iter()
        .filter(|e| kind(e) == "stream_abort")
        .collect();
    assert!(
        aborts.iter().any(|a| a["xid"] != a["subxid"]),
        "PG{major}: no subtransaction abort: {aborts:?}"
    );
    // PG18 checks, when the memory limit is hit, whether a transaction has already aborted and
    // then drops it instead of streaming it; decoding through the SQL functions after the ROLLBACK
    // therefore never streams it. Older majors stream it and then send a top-level abort.
    if major < 18 {
        assert!(
            aborts.iter().any(|a| a["xid"] == a["subxid"]),
            "PG{major}: no aborted streamed transaction: {aborts:?}"
        );
    }
    // PG14's pgoutput has no two-phase support: the large prepared transaction arrives as an
    // ordinary streamed transaction at COMMIT PREPARED.
    assert_eq!(
        events.iter().filter(|e| kind(e) == "stream_commit").count(),
        if supports_two_phase(major) { 1 } else { 2 },
        "PG{major}: stream_commit count"
    );

    if supports_two_phase(major) {
        // gid 1 committed, gid 2 rolled back (both small), gid 3 large enough to be streamed.
        let expect = [
            ("begin_prepare", 2),
            ("prepare", 2),
            ("stream_prepare", 1),
            ("commit_prepared", 2),
            ("rollback_prepared", 1),
        ];
        for (k, n) in expect {
            let found: Vec<&Event> = events.iter().filter(|e| kind(e) == k).collect();
            assert_eq!(found.len(), n, "PG{major}: {k}");
            for e in found {
                assert!(
                    e["gid"]
                        .as_str()
                        .is_some_and(|g| g.starts_with("walcast_gid_")),
                    "PG{major}: {e:?}"
                );
            }
        }
    }
}

/// `streaming 'parallel'` (PG16+) differs only in Stream Abort, which gains the abort LSN and
/// time: every other line decodes identically, and aborts name the same transactions.
fn check_parallel_streaming(major: u32, text: &[String], parallel: &[String]) {
    assert_eq!(
        text.len(),
        parallel.len(),
        "PG{major}: parallel streaming line count"
    );
    let mut aborts = 0;
    for (t, p) in text.iter().zip(parallel) {
        let (te, pe) = (members(t).unwrap(), members(p).unwrap());
        if te.get("type").map(String::as_str) == Some("\"stream_abort\"") {
            aborts += 1;
            for k in ["type", "xid", "subxid", "lsn"] {
                assert_eq!(
                    te.get(k),
                    pe.get(k),
                    "PG{major}: stream_abort {k}: {t} vs {p}"
                );
            }
        } else {
            assert_eq!(t, p, "PG{major}: parallel streaming decodes differently");
        }
    }
    assert!(aborts > 0, "PG{major}: no stream_abort to compare");
}

/// Every decoded insert into narrow7 (many distinct floats, numerics and timestamps) equals
/// `to_json()` of its row, byte for byte.
fn check_narrow7_against_to_json(gt: &GroundTruth, mode: &str, lines: &[String]) {
    let major = gt.major;
    let mut problems = Vec::new();
    let mut seen = 0;
    for line in lines {
        let ev = members(line).unwrap_or_else(|e| panic!("PG{major} {mode}: {e:#}"));
        if ev.get("type").map(String::as_str) != Some("\"insert\"")
            || ev.get("table").map(String::as_str) != Some("\"narrow7\"")
        {
            continue;
        }
        let new = member_object(line, "new").unwrap().unwrap_or_default();
        let id: i64 = new
            .get("id")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        let expected = members(&gt.narrow7_json[&id]).unwrap();
        problems.extend(
            diff(&expected, &new)
                .into_iter()
                .map(|d| format!("id {id} {d}")),
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        gt.narrow7_json.len(),
        "PG{major} {mode}: narrow7 inserts"
    );
    assert!(
        problems.is_empty(),
        "PG{major} {mode}: narrow7 values differ from to_json() ({}):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
