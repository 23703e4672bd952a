//! The durable log end to end on a temp dir: round trip, rolls, prelude as of X, dedup after a
//! reconnect, streamed transactions across segments, retention, bounded reader memory.

use std::time::Duration;

use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;
use walcast_relay::log::pgoutput_peek::build::*;
use walcast_relay::log::{
    Appended, Log, LogConfig, LogError, LogWriter, OwnedFrame, RetentionPolicy,
};

/// Transaction number `n` commits at `n * 0x100`, ends at `n * 0x100 + 0x10`.
fn end_of(n: u64) -> Lsn {
    Lsn(n * 0x100 + 0x10)
}

fn txn(w: &mut LogWriter, n: u64, relid: u32, schema: Option<&str>, rows: usize) -> Vec<Appended> {
    let mut out = vec![w
        .append_wal(Lsn(n * 0x100 - 0x80), &begin(n * 0x100, n as u32))
        .unwrap()];
    if let Some(tag) = schema {
        out.push(
            w.append_wal(Lsn::ZERO, &relation(None, relid, tag))
                .unwrap(),
        );
    }
    for r in 0..rows {
        out.push(
            w.append_wal(
                Lsn(n * 0x100 - 0x40),
                &insert(relid, format!("n{n}r{r}").as_bytes()),
            )
            .unwrap(),
        );
    }
    out.push(
        w.append_wal(Lsn(n * 0x100), &commit(n * 0x100, n * 0x100 + 0x10))
            .unwrap(),
    );
    out
}

fn config(dir: &std::path::Path) -> LogConfig {
    let mut c = LogConfig::new(dir.join("log"));
    c.segment_bytes = 1024;
    c.read_buffer = 4096;
    c
}

fn read_all(log: &Log, from: Option<Lsn>) -> Result<Vec<OwnedFrame>, LogError> {
    let mut r = log.reader(from)?;
    let mut v = Vec::new();
    while let Some(f) = r.next_frame()? {
        v.push(f);
    }
    Ok(v)
}

/// The transaction numbers whose Begin appears in `frames`.
fn begins(frames: &[OwnedFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Wal && f.payload[0] == b'B')
        .map(|f| u64::from_be_bytes(f.payload[1..9].try_into().unwrap()) / 0x100)
        .collect()
}

#[test]
fn round_trip_and_durable_position() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, rec) = Log::open(config(tmp.path())).unwrap();
    assert!(rec.fresh);
    txn(&mut w, 1, 5, Some("v1"), 3);
    txn(&mut w, 2, 5, None, 2);
    // Not synced yet: readers see nothing but the (empty) prelude.
    assert!(read_all(&log, None).unwrap().is_empty());
    let d = w.sync().unwrap();
    assert_eq!(d.lsn, end_of(2));
    assert_eq!(log.durable(), d);
    let frames = read_all(&log, None).unwrap();
    assert_eq!(begins(&frames), vec![1, 2]);
    assert_eq!(frames.len(), 1 + 1 + 3 + 1 + 1 + 2 + 1);
    assert_eq!(frames[1].payload, relation(None, 5, "v1"));
    // An open transaction does not advance the durable LSN.
    w.append_wal(Lsn(0x250), &begin(0x300, 3)).unwrap();
    assert_eq!(w.sync().unwrap().lsn, end_of(2));
}

#[test]
fn reader_from_the_middle_gets_prelude_as_of_x_across_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("rel5-v1"), 1);
    txn(&mut w, 2, 6, Some("rel6-v1"), 1);
    for n in 3..60 {
        let schema = if n == 40 { Some("rel5-v2") } else { None };
        txn(&mut w, n, 5, schema, 4);
    }
    w.sync().unwrap();
    assert!(
        log.segments().len() > 3,
        "small segments must roll: {}",
        log.segments().len()
    );

    // From the end of txn 30: prelude has rel5-v1 and rel6-v1, then txns 31.. exactly.
    let frames = read_all(&log, Some(end_of(30))).unwrap();
    let prelude: Vec<_> = frames
        .iter()
        .take_while(|f| f.kind == FrameKind::Prelude)
        .collect();
    assert_eq!(prelude.len(), 2);
    assert!(prelude
        .iter()
        .any(|f| f.payload == relation(None, 5, "rel5-v1")));
    assert!(prelude
        .iter()
        .any(|f| f.payload == relation(None, 6, "rel6-v1")));
    assert_eq!(begins(&frames), (31..60).collect::<Vec<_>>());
    assert!(
        frames.iter().skip(2).all(|f| f.kind != FrameKind::Prelude),
        "disk snapshots are not repeated"
    );

    // From after txn 45: rel5 is v2 in the prelude.
    let frames = read_all(&log, Some(end_of(45))).unwrap();
    assert!(frames
        .iter()
        .any(|f| f.kind == FrameKind::Prelude && f.payload == relation(None, 5, "rel5-v2")));
    assert!(!frames
        .iter()
        .any(|f| f.payload == relation(None, 5, "rel5-v1")));
    assert_eq!(begins(&frames), (46..60).collect::<Vec<_>>());

    // A position between commits (a heartbeat LSN) resumes at the next transaction.
    let frames = read_all(&log, Some(Lsn(45 * 0x100 + 0x20))).unwrap();
    assert_eq!(begins(&frames)[0], 46);

    // Everything, from the start.
    assert_eq!(
        begins(&read_all(&log, None).unwrap()),
        (1..60).collect::<Vec<_>>()
    );
}

#[test]
fn reopen_keeps_everything_and_adds_a_reset() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (_log, mut w, _) = Log::open(config(tmp.path())).unwrap();
        for n in 1..30 {
            txn(&mut w, n, 5, (n == 1).then_some("v1"), 3);
        }
        w.sync().unwrap();
    }
    let (log, mut w, rec) = Log::open(config(tmp.path())).unwrap();
    assert!(!rec.fresh);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.durable.lsn, end_of(29));
    assert_eq!(w.durable().lsn, end_of(29));
    txn(&mut w, 30, 5, None, 1);
    w.sync().unwrap();
    let frames = read_all(&log, Some(end_of(28))).unwrap();
    assert_eq!(
        frames[0].payload,
        relation(None, 5, "v1"),
        "prelude rebuilt on reopen"
    );
    assert_eq!(begins(&frames), vec![29, 30]);
    assert!(frames.iter().any(|f| f.kind == FrameKind::Reset));
}

#[test]
fn reconnect_resend_is_deduplicated() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    for n in 2..=10 {
        txn(&mut w, n, 5, None, 1);
    }
    w.sync().unwrap();
    // PostgreSQL reconnects and resends from its (older) confirmed position.
    w.append(FrameKind::Reset, Lsn(0x500), &[]).unwrap();
    let resent = txn(&mut w, 5, 5, Some("v1"), 1);
    assert!(resent.iter().all(|a| *a == Appended::Dropped));
    for n in 6..=15 {
        txn(&mut w, n, 5, None, 1);
    }
    w.sync().unwrap();
    let got = begins(&read_all(&log, None).unwrap());
    assert_eq!(got, (1..=15).collect::<Vec<_>>());
}

#[test]
fn heartbeats_advance_durable_only_outside_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let (_log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    assert!(matches!(
        w.append(FrameKind::Heartbeat, Lsn(0x900), &[]).unwrap(),
        Appended::Kept { .. }
    ));
    assert_eq!(w.sync().unwrap().lsn, Lsn(0x900));
    assert_eq!(
        w.append(FrameKind::Heartbeat, Lsn(0x800), &[]).unwrap(),
        Appended::Dropped
    );
    w.append_wal(Lsn(0xA00), &begin(0xA00, 9)).unwrap();
    assert_eq!(
        w.append(FrameKind::Heartbeat, Lsn(0xB00), &[]).unwrap(),
        Appended::Dropped
    );
    assert_eq!(w.sync().unwrap().lsn, Lsn(0x900));
}

#[test]
fn streamed_transaction_open_across_a_roll_is_served_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    // Stream xid 77 starts, with its own schema, then regular transactions roll segments.
    w.append_wal(Lsn(0x180), &stream_start(77)).unwrap();
    w.append_wal(Lsn::ZERO, &relation(Some(77), 5, "v2-streamed"))
        .unwrap();
    w.append_wal(Lsn(0x190), &stream_insert(77, 5, b"s1"))
        .unwrap();
    w.append_wal(Lsn(0x1A0), &stream_stop()).unwrap();
    for n in 2..40 {
        txn(&mut w, n, 5, None, 4);
    }
    w.append_wal(Lsn(0x2800), &stream_start_next(77)).unwrap();
    w.append_wal(Lsn(0x2810), &stream_insert(77, 5, b"s2"))
        .unwrap();
    w.append_wal(Lsn(0x2820), &stream_stop()).unwrap();
    w.append_wal(Lsn(0x4000), &stream_commit(77, 0x4000, 0x4010))
        .unwrap();
    txn(&mut w, 0x41, 5, None, 1);
    w.sync().unwrap();
    let segs = log.segments();
    assert!(segs.len() > 2);
    assert!(
        segs.iter()
            .skip(1)
            .all(|s| s.meta.stream_open_since.is_some()),
        "{segs:?}"
    );

    // A client at txn 30 must still get both chunks of stream 77, and its commit.
    let frames = read_all(&log, Some(end_of(30))).unwrap();
    let chunks: Vec<_> = frames
        .iter()
        .filter(|f| {
            f.payload.first() == Some(&b'I')
                && f.payload.len() > 9
                && f.payload[1..5] == 77u32.to_be_bytes()
        })
        .collect();
    assert_eq!(chunks.len(), 2);
    assert!(frames
        .iter()
        .any(|f| f.payload == stream_commit(77, 0x4000, 0x4010)));
    assert_eq!(begins(&frames), (31..40).chain([0x41]).collect::<Vec<_>>());
    // Prelude as of X: the stream's R is not committed yet at X.
    assert!(frames
        .iter()
        .any(|f| f.kind == FrameKind::Prelude && f.payload == relation(None, 5, "v1")));

    // A client past the stream commit gets neither chunks nor the commit, and the promoted schema.
    let frames = read_all(&log, Some(Lsn(0x4010))).unwrap();
    assert!(!frames
        .iter()
        .any(|f| f.payload.first() == Some(&b'S') || f.payload.first() == Some(&b'c')));
    assert_eq!(begins(&frames), vec![0x41]);
    assert!(frames
        .iter()
        .any(|f| f.kind == FrameKind::Prelude && f.payload == relation(None, 5, "v2-streamed")));

    // And after a reopen (recovery replays from the stream's first chunk), the prelude holds.
    drop(w);
    let (log2, _w2, _) = Log::open(config(tmp.path())).unwrap();
    let frames = read_all(&log2, Some(Lsn(0x4010))).unwrap();
    assert!(frames
        .iter()
        .any(|f| f.kind == FrameKind::Prelude && f.payload == relation(None, 5, "v2-streamed")));
}

#[test]
fn reader_follows_the_writer_and_watch_fires() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    w.sync().unwrap();
    let mut r = log.reader(Some(end_of(1))).unwrap();
    let mut rx = r.subscribe();
    rx.borrow_and_update();
    let mut out = Vec::new();
    assert_eq!(
        r.read_available(&mut out, 1 << 20).unwrap(),
        1,
        "only the prelude"
    );
    for n in 2..100 {
        txn(&mut w, n, 5, None, 2);
    }
    assert_eq!(
        r.read_available(&mut out, 1 << 20).unwrap(),
        0,
        "nothing before sync"
    );
    w.sync().unwrap();
    assert!(rx.has_changed().unwrap());
    let mut all = Vec::new();
    loop {
        let n = r.read_available(&mut out, 512).unwrap();
        if n == 0 {
            break;
        }
        all.push(n);
    }
    assert!(all.len() > 1, "max_bytes splits the output");
    // Decode what was produced with the shared frame reader.
    let mut stream = Vec::new();
    walcast_decoder::frame::encode_header(&mut stream);
    stream.extend_from_slice(&out);
    let mut fr = walcast_decoder::frame::FrameReader::new();
    fr.push(&stream);
    let mut n_begin = 0;
    while let Some(f) = fr.next_frame().unwrap() {
        if f.kind == FrameKind::Wal && f.payload[0] == b'B' {
            n_begin += 1;
        }
    }
    assert_eq!(n_begin, 98);
}

#[test]
fn retention_by_size_and_age_and_min_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    for n in 2..200 {
        txn(&mut w, n, 5, None, 4);
    }
    w.sync().unwrap();
    let nseg = log.segments().len();
    assert!(nseg > 10);
    let mut slow = log.reader(Some(end_of(2))).unwrap();
    assert!(slow.next_frame().unwrap().is_some());

    // A durable consumer at txn 100 protects everything it still needs.
    let policy = RetentionPolicy {
        max_bytes: Some(1),
        max_age: None,
    };
    let now = u64::MAX / 2;
    let rep = log.apply_retention(&policy, now, end_of(100)).unwrap();
    assert!(!rep.deleted.is_empty());
    assert!(rep.oldest_available <= end_of(100));
    assert_eq!(
        begins(&read_all(&log, Some(end_of(100))).unwrap()),
        (101..200).collect::<Vec<_>>()
    );
    // The slow reader's segment is gone: typed error, not a gap.
    let err = loop {
        match slow.next_frame() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("reader must notice the deletion"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LogError::ResyncRequired { .. }), "{err}");
    // New readers from before the retained data: ResyncRequired with the oldest position.
    match log.reader(Some(end_of(2))) {
        Err(LogError::ResyncRequired {
            oldest_available, ..
        }) => assert_eq!(oldest_available, log.oldest_available()),
        other => panic!("expected ResyncRequired, got {:?}", other.map(|_| ())),
    }

    // Age: nothing is too young to keep with a huge max_age; everything sealed goes with zero.
    let before = log.segments().len();
    let rep = log
        .apply_retention(
            &RetentionPolicy {
                max_bytes: None,
                max_age: Some(Duration::from_secs(3600)),
            },
            0,
            Lsn::MAX,
        )
        .unwrap();
    assert!(rep.deleted.is_empty());
    assert_eq!(log.segments().len(), before);
    let rep = log
        .apply_retention(
            &RetentionPolicy {
                max_bytes: None,
                max_age: Some(Duration::ZERO),
            },
            now,
            Lsn::MAX,
        )
        .unwrap();
    assert_eq!(rep.deleted.len(), before - 1, "all but the active segment");
    assert_eq!(log.segments().len(), 1);
    // Data in the active segment is still served, with the prelude.
    let frames = read_all(&log, None).unwrap();
    assert_eq!(frames[0].payload, relation(None, 5, "v1"));
    assert_eq!(*begins(&frames).last().unwrap(), 199);
    // The writer keeps going.
    txn(&mut w, 200, 5, None, 1);
    w.sync().unwrap();
    assert_eq!(*begins(&read_all(&log, None).unwrap()).last().unwrap(), 200);
}

#[test]
fn bounded_memory_reading_a_large_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = LogConfig::new(tmp.path().join("log"));
    c.segment_bytes = 1 << 20;
    c.read_buffer = 16 << 10;
    let (log, mut w, _) = Log::open(c).unwrap();
    let row = vec![7u8; 1000];
    let mut n = 1;
    while w.end() < 24 << 20 {
        w.append_wal(Lsn(n * 0x100 - 0x80), &begin(n * 0x100, n as u32))
            .unwrap();
        for _ in 0..10 {
            w.append_wal(Lsn(n * 0x100 - 0x40), &insert(5, &row))
                .unwrap();
        }
        w.append_wal(Lsn(n * 0x100), &commit(n * 0x100, n * 0x100 + 0x10))
            .unwrap();
        n += 1;
    }
    // One frame larger than the buffer.
    w.append_wal(Lsn(n * 0x100 - 0x80), &begin(n * 0x100, n as u32))
        .unwrap();
    w.append_wal(Lsn(n * 0x100 - 0x40), &insert(5, &vec![1u8; 100 << 10]))
        .unwrap();
    w.append_wal(Lsn(n * 0x100), &commit(n * 0x100, n * 0x100 + 0x10))
        .unwrap();
    w.sync().unwrap();
    let mut r = log.reader(None).unwrap();
    let mut count = 0u64;
    let mut max_cap = 0;
    let mut out = Vec::new();
    loop {
        out.clear();
        let k = r.read_available(&mut out, 64 << 10).unwrap();
        max_cap = max_cap.max(r.buffer_capacity());
        if k == 0 {
            break;
        }
        count += k as u64;
    }
    assert_eq!(count, (n - 1) * 12 + 3);
    assert!(
        max_cap <= 2 * (100 << 10) + (16 << 10),
        "reader buffer grew to {max_cap}"
    );
}

#[test]
fn reopen_scans_only_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let mut total_frames = 0u64;
    {
        let (_log, mut w, _) = Log::open(config(tmp.path())).unwrap();
        for n in 1..2000 {
            total_frames += txn(&mut w, n, 5, (n == 1).then_some("v1"), 4).len() as u64;
        }
        w.sync().unwrap();
    }
    let t = std::time::Instant::now();
    let (log, _w, rec) = Log::open(config(tmp.path())).unwrap();
    let took = t.elapsed();
    let segments = log.segments().len() as u64;
    assert!(segments > 100);
    assert!(
        rec.frames_scanned < total_frames / 50,
        "recovery scanned {} of {total_frames} frames",
        rec.frames_scanned
    );
    eprintln!(
        "reopen of {segments} segments, {total_frames} frames: {took:?}, scanned {}",
        rec.frames_scanned
    );
}

#[test]
fn fresh_log_start_lsn_and_positions_outside_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    w.set_start_lsn(Lsn(0x1000)).unwrap();
    assert_eq!(log.oldest_available(), Lsn(0x1000));
    assert!(matches!(
        log.reader(Some(Lsn(0x500))),
        Err(LogError::ResyncRequired { .. })
    ));
    assert!(log.reader(Some(Lsn(0x1000))).is_ok());
    assert!(matches!(
        log.reader(Some(Lsn(0x2000))),
        Err(LogError::AheadOfLog { .. })
    ));
    // Resent transactions below the start are dropped.
    assert!(txn(&mut w, 0x8, 5, Some("v1"), 1)
        .iter()
        .all(|a| *a == Appended::Dropped));
    txn(&mut w, 0x11, 5, Some("v1"), 1);
    w.sync().unwrap();
    assert!(matches!(w.set_start_lsn(Lsn(0x1)), Err(LogError::NotEmpty)));
    assert_eq!(
        begins(&read_all(&log, Some(Lsn(0x1000))).unwrap()),
        vec![0x11]
    );
    // The start survives a reopen.
    drop((log, w));
    let (log, _w, _) = Log::open(config(tmp.path())).unwrap();
    assert_eq!(log.oldest_available(), Lsn(0x1000));
    assert!(matches!(
        log.reader(Some(Lsn(0x500))),
        Err(LogError::ResyncRequired { .. })
    ));
}

#[test]
fn an_empty_log_stays_empty_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Log::open(config(tmp.path())).unwrap());
    let (_log, mut w, rec) = Log::open(config(tmp.path())).unwrap();
    assert!(!rec.fresh);
    w.set_start_lsn(Lsn(0x42)).unwrap();
    assert_eq!(w.durable().lsn, Lsn(0x42));
}

#[tokio::test]
async fn async_reader_wakes_on_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    w.sync().unwrap();
    let mut r = log.reader(Some(end_of(1))).unwrap();
    let mut rx = r.subscribe();
    let mut out = Vec::new();
    assert_eq!(
        r.read_or_wait(&mut rx, &mut out, 1 << 20).await.unwrap(),
        1,
        "prelude"
    );
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut frames = 0;
        while frames < 4 {
            frames += r.read_or_wait(&mut rx, &mut out, 1 << 20).await.unwrap();
        }
        frames
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    txn(&mut w, 2, 5, None, 2);
    w.sync().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, 4);
}

#[test]
fn a_damaged_sealed_segment_is_an_error_not_a_stall() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    for n in 1..40 {
        txn(&mut w, n, 5, (n == 1).then_some("v1"), 4);
    }
    w.sync().unwrap();
    let segs = log.segments();
    assert!(segs.len() > 3);
    let victim = walcast_relay::log::segment::segment_path(log.dir(), segs[1].meta.base);
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len / 2 + 3)
        .unwrap();
    let err = read_all(&log, None).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
}

#[test]
fn resuming_at_the_tail_does_not_rescan_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.segment_bytes = 64 << 20;
    let (log, mut w, _) = Log::open(c).unwrap();
    for n in 1..2000 {
        txn(&mut w, n, 5, (n == 1).then_some("v1"), 2);
    }
    let d = w.sync().unwrap();
    let r = log.reader(Some(d.lsn)).unwrap();
    assert_eq!(r.prescanned_frames(), 0);
    let frames = read_all(&log, Some(d.lsn)).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].payload, relation(None, 5, "v1"));
    // One transaction behind the tail: the slow path, same kind of answer.
    let r = log.reader(Some(end_of(1998))).unwrap();
    assert!(r.prescanned_frames() > 1000);
    let frames = read_all(&log, Some(end_of(1998))).unwrap();
    assert_eq!(frames[0].payload, relation(None, 5, "v1"));
    assert_eq!(begins(&frames), vec![1999]);
}

#[test]
fn oversized_payload_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (_log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    let big = vec![b'I'; walcast_decoder::frame::MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        w.append_wal(Lsn(1), &big),
        Err(LogError::TooLarge(_))
    ));
    // The writer is still usable.
    txn(&mut w, 1, 5, Some("v1"), 1);
    assert_eq!(w.sync().unwrap().lsn, end_of(1));
}

#[test]
fn published_frames_are_readable_before_the_fsync_and_durable_stays_put() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    let d1 = w.sync().unwrap();
    txn(&mut w, 2, 5, None, 2);
    // Appended only: neither visible nor durable.
    assert_eq!(log.visible(), d1);
    let v = w.publish().unwrap();
    assert_eq!(v.lsn, end_of(2));
    assert_eq!(log.visible(), v);
    assert_eq!(
        log.durable(),
        d1,
        "publishing does not make anything durable"
    );
    assert_eq!(w.durable(), d1);
    assert_eq!(begins(&read_all(&log, None).unwrap()), vec![1, 2]);
    // A client may resume from a visible position.
    let frames = read_all(&log, Some(end_of(2))).unwrap();
    assert!(begins(&frames).is_empty());
    assert!(frames.iter().all(|f| f.kind == FrameKind::Prelude));
    assert!(matches!(
        log.reader(Some(end_of(3))),
        Err(LogError::AheadOfLog { .. })
    ));
    // The fsync then makes the same position durable; visible never goes back.
    assert_eq!(w.sync().unwrap(), v);
    assert_eq!(log.durable(), v);
    assert_eq!(log.visible(), v);
}

#[tokio::test]
async fn async_reader_wakes_on_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(config(tmp.path())).unwrap();
    txn(&mut w, 1, 5, Some("v1"), 1);
    w.sync().unwrap();
    let mut r = log.reader(Some(end_of(1))).unwrap();
    let mut rx = r.subscribe();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut frames = 0;
        while frames < 1 + 4 {
            frames += r.read_or_wait(&mut rx, &mut out, 1 << 20).await.unwrap();
        }
        frames
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    txn(&mut w, 2, 5, None, 2);
    w.publish().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, 5, "prelude + the unsynced transaction");
    assert_eq!(log.durable().lsn, end_of(1));
}
