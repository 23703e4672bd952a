//! Flow control and retention end to end: a client that never reads holds back neither other
//! clients nor the slot, and a client asking for what retention deleted is told to resync.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use walcast_decoder::Lsn;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

#[test]
fn a_stuck_client_stalls_neither_others_nor_the_slot() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql(
        "CREATE TABLE big (id int PRIMARY KEY, pad text); CREATE TABLE fence (n serial PRIMARY KEY);",
    )
    .unwrap();
    let relay = Relay::start(&pg, &["public.big", "public.fence"], &[]).unwrap();
    // Connects, asks for the stream from the start, and never reads a byte.
    let mut stuck = TcpStream::connect(relay.http).unwrap();
    write!(
        stuck,
        "GET /v1/stream HTTP/1.1\r\nHost: {}\r\n\r\n",
        relay.http
    )
    .unwrap();
    let normal = Consumer::start(&relay.url(), None, None, &[]);
    poll(Duration::from_secs(10), "both clients connected", || {
        let n = relay.metric("walcast_clients{transport=\"http\"}").ok()?;
        (n >= 2).then_some(())
    })
    .unwrap();
    let cf_before = confirmed_flush(&pg).unwrap().unwrap();
    let start = Instant::now();
    for k in 0..20 {
        // 1,000 rows of ~300 bytes per transaction: 6 MB in all, far beyond socket buffers.
        pg.psql(&format!(
            "INSERT INTO big SELECT g, repeat('p', 300) FROM generate_series({}, {}) g",
            k * 1000 + 1,
            k * 1000 + 1000
        ))
        .unwrap();
    }
    let until = fence(&pg).unwrap();
    let txns = normal.wait_for(until, Duration::from_secs(30)).unwrap();
    let ids: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.on("big"))
        .map(|c| c["new"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=20_000).collect::<Vec<i64>>());
    eprintln!("normal client had all 20k rows after {:?}", start.elapsed());
    // The slot moves on although one client is stuck far behind.
    poll(
        Duration::from_secs(20),
        "the slot to confirm the load",
        || (confirmed_flush(&pg).ok()?? >= until).then_some(()),
    )
    .unwrap();
    assert!(confirmed_flush(&pg).unwrap().unwrap() > cf_before);
    // The stuck client is still connected (not dropped for being slow) and harmless.
    assert!(relay.metric("walcast_clients{transport=\"http\"}").unwrap() >= 2);
    drop(stuck);
}

#[test]
fn retention_gone_means_resync_required() {
    let pg = PgCluster::start(15).unwrap();
    create_tables(&pg).unwrap();
    pg.psql("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        .unwrap();
    let relay = Relay::start(
        &pg,
        &["public.t", "public.fence", "public.big"],
        &["--segment-bytes", "64KiB", "--retention-bytes", "256KiB"],
    )
    .unwrap();
    write_txns(&pg, 1..=5).unwrap();
    let first = fence(&pg).unwrap();
    let early = Consumer::start(&relay.url(), None, None, &[]);
    let early_txns = early.wait_for(first, Duration::from_secs(30)).unwrap();
    let old: Lsn = early_txns[0].end_lsn;
    drop(early);
    // ~2 MB in many small transactions, so segments seal at transaction boundaries.
    for k in 0..20 {
        pg.psql(&format!(
            "SET synchronous_commit = on; {}",
            (0..10)
                .map(|j| {
                    let base = k * 1000 + j * 100 + 1;
                    format!(
                        "BEGIN; INSERT INTO big SELECT g, repeat('r', 100) FROM generate_series({base}, {}) g; COMMIT;",
                        base + 99
                    )
                })
                .collect::<String>()
        ))
        .unwrap();
    }
    let until = fence(&pg).unwrap();
    poll(Duration::from_secs(30), "the load to be durable", || {
        (relay.metric("walcast_durable_lsn").ok()? >= until.0).then_some(())
    })
    .unwrap();
    // Retention runs every few seconds; the first segment (base 0) goes first.
    poll(
        Duration::from_secs(30),
        "retention to delete old segments",
        || {
            let files = std::fs::read_dir(relay.log_dir()).ok()?.count();
            let first_gone = !relay.log_dir().join("0000000000000000.wcl").exists();
            (first_gone && files <= 8).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", relay.log_text()));

    let (status, body) = http_get(relay.http, &format!("/v1/stream?from={old}")).unwrap();
    assert_eq!(status, 410, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "resync_required", "{body}");

    let resumer = Consumer::start(&relay.url(), None, Some(old), &[]);
    poll(Duration::from_secs(10), "the subscription to stop", || {
        resumer.error()
    })
    .unwrap();
    assert!(
        resumer.with(|s| s.resync_required),
        "ClientError::ResyncRequired, got {:?}",
        resumer.error()
    );
    assert!(resumer.txns().is_empty());
    assert!(relay.metric("walcast_resync_required_total").unwrap() >= 2);

    // A client without a position starts at the oldest retained commit and still gets whole
    // transactions up to the end.
    let fresh = Consumer::start(&relay.url(), None, None, &[]);
    let txns = fresh.wait_for(until, Duration::from_secs(30)).unwrap();
    assert!(txns.first().unwrap().end_lsn > old);
    for w in txns.windows(2) {
        assert!(w[0].end_lsn < w[1].end_lsn);
    }
    let last_big: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.on("big"))
        .map(|c| c["new"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(last_big.last(), Some(&20_000));
    // Whole transactions only: every transaction on big holds 100 consecutive ids.
    for t in &txns {
        let ids: Vec<i64> = t
            .on("big")
            .iter()
            .map(|c| c["new"]["id"].as_i64().unwrap())
            .collect();
        if !ids.is_empty() {
            assert_eq!(ids.len(), 100, "a transaction cut by retention");
            assert_eq!(ids[0] % 100, 1);
        }
    }
}
