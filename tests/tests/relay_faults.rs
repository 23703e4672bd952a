//! Faults: the relay killed (-9) or stopped (SIGTERM) mid-load, PostgreSQL crash-restarted
//! mid-load, and the slot never confirming past what the relay fsynced. In every case a
//! resuming client still applies every commit exactly once, in order.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use walcast_decoder::Lsn;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const TABLES: &[&str] = &["public.t", "public.fence"];

fn setup() -> (PgCluster, Relay) {
    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).expect("tables");
    let relay = Relay::start(&pg, TABLES, &[]).expect("relay");
    (pg, relay)
}

#[test]
fn relay_kill9_and_sigterm_mid_load_lose_and_repeat_nothing() {
    let (pg, mut relay) = setup();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    const N: u64 = 600;
    let written = AtomicU64::new(0);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            write_txns_paced(&pg, 1..=N, 10, Duration::from_millis(20), |i| {
                written.store(i, SeqCst)
            })
        });
        for (n, at) in [120u64, 240, 360].into_iter().enumerate() {
            poll(Duration::from_secs(30), "writer progress", || {
                (written.load(SeqCst) >= at).then_some(())
            })
            .unwrap();
            relay.kill9();
            // Stay down a little while the writer goes on: the slot must hold those changes.
            std::thread::sleep(Duration::from_millis(100 * n as u64));
            relay.restart().unwrap();
        }
        poll(Duration::from_secs(30), "writer progress", || {
            (written.load(SeqCst) >= 480).then_some(())
        })
        .unwrap();
        let status = relay.sigterm().unwrap();
        assert!(status.success(), "graceful stop exits 0: {status}");
        relay.restart().unwrap();
        writer.join().unwrap().unwrap();
    });
    let until = fence(&pg).unwrap();
    let txns = consumer
        .wait_for(until, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}\nrelay log:\n{}", relay.log_text()));
    check_exactly_once(&txns, 1..=N).unwrap();
    assert_eq!(apply_to_map(&txns), table_map(&pg).unwrap());
    assert!(
        consumer.with(|s| s.resets) >= 1,
        "the client noticed the restarts"
    );
}

#[test]
fn postgres_crash_restart_mid_load_loses_and_repeats_nothing() {
    let (pg, relay) = setup();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    for (k, range) in [1..=200u64, 201..=400, 401..=600].into_iter().enumerate() {
        write_txns_paced(&pg, range, 50, Duration::ZERO, |_| {}).unwrap();
        if k < 2 {
            // The relay is usually still streaming this batch when the server dies.
            pg.restart_immediate().unwrap();
            pg.wait_ready(Duration::from_secs(30)).unwrap();
        }
    }
    let until = fence(&pg).unwrap();
    let txns = consumer
        .wait_for(until, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}\nrelay log:\n{}", relay.log_text()));
    check_exactly_once(&txns, 1..=600).unwrap();
    assert_eq!(apply_to_map(&txns), table_map(&pg).unwrap());
    assert!(relay.metric("walcast_source_reconnects_total").unwrap() >= 1);
}

#[test]
fn confirmed_flush_never_passes_the_fsynced_log() {
    let (pg, mut relay) = setup();
    const N: u64 = 400;
    let done = AtomicU64::new(0);
    let mut samples = 0;
    let mut advanced = 0;
    // The slot starts at its consistent point; only the relay's confirmations move it on.
    let initial_cf = confirmed_flush(&pg).unwrap().expect("slot exists");
    let mut last_cf = initial_cf;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let r = write_txns_paced(&pg, 1..=N, 20, Duration::from_millis(10), |_| {});
            done.store(1, SeqCst);
            r
        });
        while done.load(SeqCst) == 0 || samples < 20 {
            let cf = confirmed_flush(&pg).unwrap().unwrap_or(Lsn::ZERO);
            // Sampled after: the durable position only grows, so cf <= it must hold.
            let durable = Lsn(relay.metric("walcast_durable_lsn").unwrap());
            assert!(
                cf == initial_cf || cf <= durable,
                "slot confirmed {cf} but the relay had fsynced only up to {durable}"
            );
            assert!(cf >= last_cf, "confirmed_flush_lsn went back");
            if cf != initial_cf {
                advanced += 1;
            }
            last_cf = cf;
            samples += 1;
        }
        writer.join().unwrap().unwrap();
    });
    assert!(samples >= 20);
    // Let a confirmation cover part of the load, then crash the relay.
    poll(
        Duration::from_secs(30),
        "the slot to confirm some of the load",
        || (confirmed_flush(&pg).ok()?? > initial_cf).then_some(()),
    )
    .unwrap();
    eprintln!("{samples} samples, {advanced} with the slot advanced");
    let cf_at_kill = confirmed_flush(&pg).unwrap().unwrap();
    let t0 = std::time::Instant::now();
    relay.kill9();
    relay.restart().unwrap();
    eprintln!("restart took {:?}", t0.elapsed());
    // PostgreSQL resends nothing at or before cf_at_kill: the relay's own log must have it.
    let until = fence(&pg).unwrap();
    let consumer = Consumer::start(&relay.url(), None, None, &[]);
    let txns = consumer.wait_for(until, Duration::from_secs(60)).unwrap();
    eprintln!("consumed after {:?}", t0.elapsed());
    check_exactly_once(&txns, 1..=N).unwrap();
    let confirmed: Vec<&Txn> = txns.iter().filter(|t| t.end_lsn <= cf_at_kill).collect();
    assert!(
        !confirmed.is_empty(),
        "some commits were confirmed before the kill (cf {cf_at_kill})"
    );
}

#[test]
fn relay_killed_inside_a_streamed_transaction_delivers_it_once_whole() {
    let (pg, mut relay) = setup();
    let live = Consumer::start(&relay.url(), None, None, &[]);
    write_txns(&pg, 1..=10).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // Far past logical_decoding_work_mem before the pause, so blocks are streamed
            // (and logged by the relay) while the transaction is still open.
            pg.psql(
                "BEGIN; \
                 INSERT INTO t SELECT g, -g, repeat('s', 200) FROM generate_series(1000001, 1005000) g; \
                 SELECT pg_sleep(3); \
                 INSERT INTO t SELECT g, -g, repeat('s', 200) FROM generate_series(1005001, 1010000) g; \
                 COMMIT;",
            )
        });
        // Wait until the relay has logged stream blocks of the open transaction.
        poll(
            Duration::from_secs(20),
            "streamed blocks in the relay",
            || {
                let frames = relay.metric("walcast_frames_in_total").ok()?;
                (frames > 3000).then_some(())
            },
        )
        .unwrap();
        relay.kill9();
        relay.restart().unwrap();
        writer.join().unwrap().unwrap();
    });
    write_txns(&pg, 11..=20).unwrap();
    let until = fence(&pg).unwrap();
    let check = |txns: &[Txn]| {
        let big: Vec<&Txn> = txns
            .iter()
            .filter(|t| t.on("t").iter().any(|c| change_summary(c).1 > 1_000_000))
            .collect();
        assert_eq!(
            big.len(),
            1,
            "the streamed transaction applied exactly once"
        );
        let ids: Vec<i64> = big[0].on("t").iter().map(|c| change_summary(c).1).collect();
        assert_eq!(ids, (1_000_001..=1_010_000).collect::<Vec<i64>>());
        let small: Vec<Txn> = txns
            .iter()
            .filter(|t| !t.on("t").iter().any(|c| change_summary(c).1 > 1_000_000))
            .cloned()
            .collect();
        check_exactly_once(&small, 1..=20).unwrap();
        for w in txns.windows(2) {
            assert!(w[0].end_lsn < w[1].end_lsn);
        }
    };
    let txns = live
        .wait_for(until, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}\nrelay log:\n{}", relay.log_text()));
    check(&txns);
    assert_eq!(apply_to_map(&txns), table_map(&pg).unwrap());
    // A client reading the whole log afterwards (partial blocks from the killed session, then
    // the transaction streamed again) gets the same.
    let fresh = Consumer::start(&relay.url(), None, None, &[]);
    check(&fresh.wait_for(until, Duration::from_secs(30)).unwrap());
}
