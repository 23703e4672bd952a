//! Clients are served what the relay's log has written before it is fsynced. An OS crash can
//! then take from the log a tail that clients already applied. The slot was never confirmed
//! past the fsynced position, so PostgreSQL sends that tail again with the same LSNs; a client
//! resuming past the recovered log waits for it instead of being told to resync, and gets
//! exactly what follows its position. A client reading from the start gets everything once.

use std::io::{Read, Write};
use std::time::Duration;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const TABLES: &[&str] = &["public.t", "public.fence"];

fn put(relay: &Relay, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(relay.http).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_tail_lost_after_clients_saw_it_is_resent_and_resumed_without_resync() {
    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).expect("tables");
    let mut relay = Relay::start(&pg, TABLES, &[]).expect("relay");
    // A durable consumer that never acks holds the slot at its start: nothing the test cuts
    // from the log below has been confirmed, as with an unsynced tail.
    let reg = put(&relay, "/v1/consumers/holder");
    assert!(reg.starts_with("HTTP/1.1 20"), "{reg}");
    let cf_start = confirmed_flush(&pg).unwrap().expect("slot");

    const N: u64 = 60;
    let live = Consumer::start(&relay.url(), None, None, &[]);
    write_txns(&pg, 1..=N).unwrap();
    let until = fence(&pg).unwrap();
    let seen = live.wait_for(until, Duration::from_secs(60)).unwrap();
    drop(live);
    check_exactly_once(&seen, 1..=N).unwrap();
    let resume = seen.last().unwrap().end_lsn;
    relay.kill9();
    assert_eq!(
        confirmed_flush(&pg).unwrap(),
        Some(cf_start),
        "the holder kept the slot in place"
    );

    // The "OS crash": the active segment loses its second half.
    let mut segs: Vec<_> = std::fs::read_dir(relay.log_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let last = segs.last().expect("a segment");
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    relay.restart().unwrap();
    // Resuming past the recovered log (unless PostgreSQL's resend already refilled it: the
    // relay is ready once it streams, so this races; the unit tests in serve::session cover
    // the waiting itself): never resync_required, exactly what follows the position.
    let resumed = Consumer::start(&relay.url(), None, Some(resume), &[]);
    write_txns(&pg, N + 1..=N + 10).unwrap();
    let until = fence(&pg).unwrap();
    let rest = resumed.wait_for(until, Duration::from_secs(60)).unwrap();
    check_exactly_once(&rest, N + 1..=N + 10).unwrap();
    assert!(rest.iter().all(|t| t.end_lsn > resume));
    // The log holds everything again, once.
    let all = Consumer::start(&relay.url(), None, None, &[]);
    let txns = all.wait_for(until, Duration::from_secs(60)).unwrap();
    check_exactly_once(&txns, 1..=N + 10).unwrap();
    assert_eq!(relay.metric("walcast_resync_required_total").unwrap(), 0);
}
