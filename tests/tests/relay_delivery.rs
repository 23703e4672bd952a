//! End-to-end delivery through `walcast relay` against a real PostgreSQL 15: every commit once
//! and in order, resume from an LSN, late joiners, streamed transactions, table filters, QUIC,
//! bad requests, and the `tail`/`status` commands.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;
use walcast_decoder::Lsn;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const WAIT: Duration = Duration::from_secs(30);
const TABLES: &[&str] = &["public.t", "public.fence"];

fn setup() -> (PgCluster, Relay) {
    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).expect("tables");
    let relay = Relay::start(&pg, TABLES, &[]).expect("relay");
    (pg, relay)
}

#[test]
fn every_commit_arrives_once_in_order() {
    let (pg, relay) = setup();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    write_txns(&pg, 1..=300).unwrap();
    let until = fence(&pg).unwrap();
    let txns = consumer.wait_for(until, WAIT).unwrap();
    check_exactly_once(&txns, 1..=300).unwrap();
    assert_eq!(apply_to_map(&txns), table_map(&pg).unwrap());
    // A second client from the start gets the same, from the log alone.
    let again = Consumer::start(&relay.url(), None, None, &[]);
    let txns2 = again.wait_for(until, WAIT).unwrap();
    check_exactly_once(&txns2, 1..=300).unwrap();
}

#[test]
fn resume_from_an_lsn_gets_exactly_the_rest() {
    let (pg, relay) = setup();
    write_txns(&pg, 1..=100).unwrap();
    let mid = fence(&pg).unwrap();
    write_txns(&pg, 101..=200).unwrap();
    let until = fence(&pg).unwrap();

    let first = Consumer::start(&relay.url(), None, None, &[]);
    let all = first.wait_for(until, WAIT).unwrap();
    drop(first);
    // The last commit of the first half: the fence commit right after `mid`.
    let cut = all
        .iter()
        .find(|t| t.end_lsn >= mid)
        .expect("the first fence")
        .end_lsn;
    let second = Consumer::start(&relay.url(), None, Some(cut), &[]);
    let rest = second.wait_for(until, WAIT).unwrap();
    assert!(
        rest.iter().all(|t| t.end_lsn > cut),
        "resent a commit <= {cut}"
    );
    check_exactly_once(&rest, 101..=200).unwrap();
    let before: Vec<Txn> = all.into_iter().filter(|t| t.end_lsn <= cut).collect();
    check_exactly_once(&before, 1..=100).unwrap();
}

#[test]
fn late_joiner_gets_the_schema_prelude() {
    let (pg, relay) = setup();
    // Relation messages go out with the first transactions only.
    write_txns(&pg, 1..=200).unwrap();
    let mid = fence(&pg).unwrap();
    let first = Consumer::start(&relay.url(), None, None, &[]);
    let all = first.wait_for(mid, WAIT).unwrap();
    let from = all.last().unwrap().end_lsn;
    write_txns(&pg, 201..=220).unwrap();
    let until = fence(&pg).unwrap();
    // A fresh decoder that resumes mid-log must still know relation `t`.
    let late = Consumer::start(&relay.url(), None, Some(from), &[]);
    let txns = late.wait_for(until, WAIT).unwrap();
    check_exactly_once(&txns, 201..=220).unwrap();
}

#[test]
fn streamed_transactions_commit_whole_and_aborts_vanish() {
    let (pg, relay) = setup();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    let big =
        "INSERT INTO t SELECT g, -g, repeat('x', 200) || g FROM generate_series(100001, 105000) g;";
    // Aborted first: its rows must never be applied.
    pg.psql(&format!("BEGIN; {big} ROLLBACK;")).unwrap();
    pg.psql(&format!("BEGIN; {big} COMMIT;")).unwrap();
    let until = fence(&pg).unwrap();
    let txns = consumer.wait_for(until, WAIT).unwrap();
    let big_txns: Vec<&Txn> = txns.iter().filter(|t| !t.on("t").is_empty()).collect();
    assert_eq!(big_txns.len(), 1, "exactly the committed big transaction");
    let t = big_txns[0];
    assert!(
        t.streamed,
        "5,000 wide rows exceed logical_decoding_work_mem"
    );
    let changes = t.on("t");
    assert_eq!(changes.len(), 5000);
    let ids: Vec<i64> = changes.iter().map(|c| change_summary(c).1).collect();
    assert_eq!(ids, (100001..=105000).collect::<Vec<i64>>());
    assert!(
        consumer.with(|s| s.stream_aborts) >= 1,
        "the rollback was streamed and aborted"
    );
    assert_eq!(apply_to_map(&txns), table_map(&pg).unwrap());
}

#[test]
fn table_filter_passes_only_the_requested_table() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); \
         CREATE TABLE fence (n serial PRIMARY KEY);",
    )
    .unwrap();
    let relay = Relay::start(&pg, &["public.a", "public.b", "public.fence"], &[]).unwrap();
    // One psql -c runs its statements in one transaction unless BEGIN/COMMIT split them.
    pg.psql(
        "BEGIN; INSERT INTO a VALUES (1); COMMIT; BEGIN; INSERT INTO b VALUES (1); COMMIT; \
         BEGIN; INSERT INTO a VALUES (2); INSERT INTO b VALUES (2); COMMIT; \
         BEGIN; INSERT INTO b VALUES (3); COMMIT;",
    )
    .unwrap();
    let until = fence(&pg).unwrap();
    let all = Consumer::start(&relay.url(), None, None, &[]);
    let all_txns = all.wait_for(until, WAIT).unwrap();
    assert_eq!(all_txns.len(), 5, "a, b, a+b, b, fence: {all_txns:?}");

    let only_a = Consumer::start(&relay.url(), None, None, &["public.a"]);
    // The fence is filtered away too, so wait for the content instead.
    let txns = poll(WAIT, "a's two transactions", || {
        let t = only_a.txns();
        (t.len() >= 2).then_some(t)
    })
    .unwrap();
    // Let anything wrongly passed arrive: the unfiltered client saw all of it by now.
    std::thread::sleep(Duration::from_millis(500));
    let txns_now = only_a.txns();
    assert_eq!(
        txns_now.len(),
        2,
        "b-only transactions dropped: {txns_now:?}"
    );
    for t in &txns {
        for c in &t.changes {
            assert_eq!(c["table"], "a", "{c}");
        }
    }
    let ids: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.changes.iter().map(|c| c["new"]["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(only_a.error().is_none());
}

#[test]
fn quic_stream_equals_http_stream() {
    let pg = PgCluster::start(15).unwrap();
    create_tables(&pg).unwrap();
    let relay = Relay::start(&pg, TABLES, &["--quic", "127.0.0.1:0"]).unwrap();
    write_txns(&pg, 1..=100).unwrap();
    let until = fence(&pg).unwrap();
    let (quic_url, fp) = relay.quic_url().expect("QUIC address printed");
    let over_quic = Consumer::start(&quic_url, Some(&fp), None, &[]);
    let over_http = Consumer::start(&relay.url(), None, None, &[]);
    let q = over_quic.wait_for(until, WAIT).unwrap();
    let h = over_http.wait_for(until, WAIT).unwrap();
    check_exactly_once(&q, 1..=100).unwrap();
    assert_eq!(q.len(), h.len());
    for (a, b) in q.iter().zip(&h) {
        assert_eq!(a.end_lsn, b.end_lsn);
        assert_eq!(a.changes, b.changes);
    }
    // A wrong fingerprint is refused, not silently trusted.
    let wrong = Consumer::start(&quic_url, Some(&"00".repeat(32)), None, &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        wrong.txns().is_empty(),
        "pinned certificate mismatch must not connect"
    );
}

#[test]
fn bad_requests_get_a_clear_400_and_others_keep_flowing() {
    let (pg, relay) = setup();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    for path in [
        "/v1/stream?from=garbage",
        "/v1/stream?tables=a.b.c",
        "/v1/stream?bogus=1",
    ] {
        let (status, body) = http_get(relay.http, path).unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "bad_request", "{path}: {body}");
        assert!(!v["message"].as_str().unwrap_or("").is_empty());
    }
    // Garbage bytes on the socket do not take the relay down.
    if let Ok(mut s) = std::net::TcpStream::connect(relay.http) {
        let _ = s.write_all(b"\x16\x03\x01\x00\xffnot http at all\r\n\r\n");
        let mut sink = Vec::new();
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.read_to_end(&mut sink);
    }
    write_txns(&pg, 1..=50).unwrap();
    let until = fence(&pg).unwrap();
    let txns = consumer.wait_for(until, WAIT).unwrap();
    check_exactly_once(&txns, 1..=50).unwrap();
    assert_eq!(http_get(relay.http, "/healthz").unwrap().0, 200);
}

#[test]
fn tail_until_exits_zero_with_json_lines_and_status_summarizes() {
    let (pg, relay) = setup();
    write_txns(&pg, 1..=20).unwrap();
    let until = fence(&pg).unwrap();
    let out = Command::new(walcast_bin())
        .args(["tail", "--url", &relay.url(), "--until", &until.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let inserts: Vec<i64> = lines
        .iter()
        .filter(|v| v["type"] == "insert" && v["table"] == "t")
        .map(|v| v["new"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(inserts, (1..=20).collect::<Vec<i64>>());
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "commit", "tail stops right after the commit");
    let end: Lsn = last["end_lsn"].as_str().unwrap().parse().unwrap();
    assert!(end >= until);
    assert!(lines.iter().any(|v| v["type"] == "relation"));

    let out = Command::new(walcast_bin())
        .args(["status", "--url", &relay.url()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("walcast_test"), "slot named: {summary}");
    assert!(summary.to_lowercase().contains("streaming"), "{summary}");
    let out = Command::new(walcast_bin())
        .args(["status", "--json", "--url", &relay.url()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_object());
}

#[test]
fn concurrent_writers_arrive_in_commit_order() {
    let pg = PgCluster::start(15).unwrap();
    create_tables(&pg).unwrap();
    pg.psql("CREATE TABLE u (id int PRIMARY KEY)").unwrap();
    let relay = Relay::start(&pg, &["public.t", "public.u", "public.fence"], &[]).unwrap();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    std::thread::scope(|s| {
        let a = s.spawn(|| write_txns_paced(&pg, 1..=300, 30, Duration::ZERO, |_| {}));
        let b = s.spawn(|| -> anyhow::Result<()> {
            for chunk in (1..=300).collect::<Vec<u32>>().chunks(30) {
                let sql: String = chunk
                    .iter()
                    .map(|i| format!("BEGIN; INSERT INTO u VALUES ({i}); COMMIT;\n"))
                    .collect();
                pg.psql(&sql)?;
            }
            Ok(())
        });
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
    });
    let until = fence(&pg).unwrap();
    let txns = consumer.wait_for(until, WAIT).unwrap();
    // Strictly increasing end LSNs across both sessions, and each session's own order kept.
    check_exactly_once(&txns, 1..=300).unwrap();
    let u_ids: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.on("u"))
        .map(|c| c["new"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(u_ids, (1..=300).collect::<Vec<i64>>());
    assert_eq!(txns.len(), 601, "300 + 300 + the fence");
    assert_eq!(txns.last().unwrap().on("fence").len(), 1);
}

/// The same delivery guarantees on every other PostgreSQL major this machine has (14, 16, 17,
/// 18 from the npm packages), so each pgoutput protocol version (2–4, streaming 'on' and
/// 'parallel') goes through the relay end to end.
#[test]
fn every_available_major_delivers_plain_and_streamed_transactions() {
    let majors: Vec<u32> = walcast_testkit::available_versions()
        .into_iter()
        .filter(|m| *m != 15)
        .collect();
    if majors.is_empty() {
        eprintln!("skipped: only PostgreSQL 15 is installed here (scripts/install-deps.sh fetches 14/16/17/18)");
        return;
    }
    for major in majors {
        let pg = PgCluster::start(major).unwrap_or_else(|e| panic!("PostgreSQL {major}: {e:#}"));
        create_tables(&pg).unwrap();
        let relay = Relay::start(&pg, TABLES, &[])
            .unwrap_or_else(|e| panic!("relay on PostgreSQL {major}: {e:#}"));
        let consumer = Consumer::start(&relay.url(), None, None, &[]);
        write_txns(&pg, 1..=60).unwrap();
        let big = "INSERT INTO t SELECT g, -g, repeat('x', 200) || g FROM generate_series(100001, 103000) g;";
        pg.psql(&format!("BEGIN; {big} ROLLBACK;")).unwrap();
        pg.psql(&format!("BEGIN; {big} COMMIT;")).unwrap();
        let until = fence(&pg).unwrap();
        let txns = consumer
            .wait_for(until, WAIT)
            .unwrap_or_else(|e| panic!("PostgreSQL {major}: {e:#}"));
        let plain: Vec<Txn> = txns.iter().filter(|t| !t.streamed).cloned().collect();
        check_exactly_once(&plain, 1..=60).unwrap_or_else(|e| panic!("PostgreSQL {major}: {e:#}"));
        let big_txns: Vec<&Txn> = txns.iter().filter(|t| t.on("t").len() == 3000).collect();
        assert_eq!(
            big_txns.len(),
            1,
            "PostgreSQL {major}: exactly the committed big transaction"
        );
        assert!(
            big_txns[0].streamed,
            "PostgreSQL {major}: the big transaction was streamed"
        );
        assert_eq!(
            apply_to_map(&txns),
            table_map(&pg).unwrap(),
            "PostgreSQL {major}"
        );
    }
}

/// HTTP/2 with prior knowledge (h2c) serves the same frame stream as HTTP/1.1.
#[test]
fn http2_prior_knowledge_streams_frames() {
    let (pg, relay) = setup();
    write_txns(&pg, 1..=5).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let mut resp = client
            .get(format!("{}/v1/stream", relay.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-walcast-frames"
        );
        let mut got = Vec::new();
        while got.len() < 64 {
            let chunk = tokio::time::timeout(WAIT, resp.chunk())
                .await
                .expect("data in time")
                .unwrap()
                .expect("open stream");
            got.extend_from_slice(&chunk);
        }
        let (version, _) = walcast_decoder::frame::parse_header(&got)
            .unwrap()
            .expect("whole header");
        assert_eq!(version, 1);
    });
}

/// A stream request for a table the publication does not have is refused with a clear reason
/// (it would never receive anything); once the table is added to the publication, it is served.
#[test]
fn a_table_outside_the_publication_is_refused_until_added() {
    let pg = PgCluster::start(15).unwrap();
    create_tables(&pg).unwrap();
    pg.psql("CREATE TABLE later (id int PRIMARY KEY)").unwrap();
    let relay = Relay::start(&pg, &["public.t", "public.fence"], &[]).unwrap();
    let (status, body) = http_get(relay.http, "/v1/stream?tables=public.t,public.later").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unknown_table") && body.contains("public.later"),
        "the answer names the missing table: {body}"
    );
    assert!(relay
        .log_text()
        .contains("refused a stream request for tables the publication does not have"));
    pg.psql("ALTER PUBLICATION walcast_test ADD TABLE later")
        .unwrap();
    pg.psql("INSERT INTO later VALUES (7)").unwrap();
    let until = fence(&pg).unwrap();
    let client = Consumer::start(&relay.url(), None, None, &["public.later", "public.fence"]);
    let txns = client.wait_for(until, WAIT).unwrap();
    let ids: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.on("later"))
        .map(|c| c["new"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![7], "the added table is served");
}
