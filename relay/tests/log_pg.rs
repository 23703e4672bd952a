//! The log against real pgoutput bytes from PostgreSQL 15 (SQL interface of a pgoutput slot):
//! checks the peeked layouts (Begin/Commit, streaming, two-phase, Relation ids) on what the
//! server really sends, and that a reader from the middle gets the altered schema as prelude.

use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;
use walcast_relay::log::pgoutput_peek::{PeekState, Peeked};
use walcast_relay::log::{Appended, Log, LogConfig};
use walcast_testkit::PgCluster;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// (lsn, message) rows of a peek at the slot.
fn changes(pg: &PgCluster, opts: &str) -> Vec<(Lsn, Vec<u8>)> {
    let out = pg
        .psql(&format!(
            "SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL, {opts})"
        ))
        .unwrap();
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (lsn, hex) = l.split_once('|').unwrap();
            (lsn.parse().unwrap(), unhex(hex))
        })
        .collect()
}

#[test]
fn real_pgoutput_stream_round_trips_through_the_log() {
    let pg = match PgCluster::start(15) {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL 15 is required for this test: {e:#}"),
    };
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .unwrap();
    pg.psql("CREATE PUBLICATION p FOR TABLE t").unwrap();
    pg.psql("SELECT pg_create_logical_replication_slot('s', 'pgoutput', false, true)")
        .unwrap();
    let relid: u32 = pg
        .psql("SELECT 't'::regclass::oid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    pg.psql("INSERT INTO t VALUES (1, 'a')").unwrap();
    // Larger than logical_decoding_work_mem (64kB): streamed.
    pg.psql("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(2, 3000) g")
        .unwrap();
    pg.psql("BEGIN; INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(3001, 6000) g; ROLLBACK").unwrap();
    pg.psql("ALTER TABLE t ADD COLUMN w int").unwrap();
    pg.psql("INSERT INTO t VALUES (6001, 'b', 7)").unwrap();
    pg.psql("BEGIN; INSERT INTO t VALUES (6002, 'c', 8); PREPARE TRANSACTION 'g1'")
        .unwrap();
    pg.psql("COMMIT PREPARED 'g1'").unwrap();
    pg.psql("INSERT INTO t VALUES (6003, 'd', 9)").unwrap();

    let msgs = changes(
        &pg,
        "'proto_version', '3', 'publication_names', 'p', 'streaming', 'on', 'two_phase', 'on'",
    );
    assert!(msgs.len() > 20, "{} messages", msgs.len());

    // Layout checks on real bytes.
    let mut peek = PeekState::new();
    let (mut begins, mut commits, mut stream_commits, mut aborts, mut relations) = (0, 0, 0, 0, 0);
    let mut begin_final = None;
    let mut begin_prepare = None;
    let mut streamed_xids = std::collections::HashSet::new();
    for (_, m) in &msgs {
        let (p, block) = peek.peek(m).unwrap();
        match p {
            Peeked::Begin { final_lsn, .. } => {
                begins += 1;
                begin_final = Some(final_lsn);
            }
            Peeked::Commit {
                commit_lsn,
                end_lsn,
            } => {
                commits += 1;
                assert_eq!(
                    Some(commit_lsn),
                    begin_final,
                    "Begin.final_lsn is the commit LSN"
                );
                assert!(end_lsn > commit_lsn);
            }
            Peeked::StreamStart { xid, .. } => {
                streamed_xids.insert(xid);
            }
            Peeked::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
            } => {
                stream_commits += 1;
                assert!(streamed_xids.contains(&xid));
                assert!(end_lsn > commit_lsn);
            }
            Peeked::StreamAbort { xid, subxid } => {
                aborts += 1;
                assert!(streamed_xids.contains(&xid));
                assert_eq!(xid, subxid);
            }
            Peeked::Relation { relid: r } => {
                relations += 1;
                assert_eq!(
                    r, relid,
                    "relation id at @1 (or @5 in a stream block: {block:?})"
                );
            }
            Peeked::BeginPrepare { xid, end_lsn, .. } => begin_prepare = Some((xid, end_lsn)),
            Peeked::Prepare { xid, end_lsn, .. } => {
                assert_eq!(
                    Some((xid, end_lsn)),
                    begin_prepare,
                    "Prepare matches Begin Prepare"
                );
            }
            Peeked::CommitPrepared {
                xid,
                end_lsn,
                commit_lsn,
            } => {
                assert_eq!(Some(xid), begin_prepare.map(|b| b.0));
                assert!(end_lsn > commit_lsn);
            }
            _ => {}
        }
    }
    eprintln!(
        "tags: {}",
        msgs.iter()
            .map(|(_, m)| m[0] as char)
            .filter(|c| *c != 'I')
            .collect::<String>()
    );
    assert!(
        begins >= 2 && commits >= 2,
        "begins {begins}, commits {commits}"
    );
    assert_eq!(stream_commits, 1);
    assert_eq!(aborts, 1);
    assert!(relations >= 3, "relations {relations}");
    assert!(begin_prepare.is_some());

    // Through the log, twice: the second pass is a reconnect resend from 0/0. Regular and
    // two-phase transactions are dropped; streamed blocks cannot be judged before their commit
    // and are kept (which is why the source starts replication at the log's durable LSN: then
    // PostgreSQL never streams them again, see docs/frames.md).
    let tmp = tempfile::tempdir().unwrap();
    let (log, mut w, _) = Log::open(LogConfig::new(tmp.path())).unwrap();
    for (lsn, m) in &msgs {
        assert!(matches!(
            w.append_wal(*lsn, m).unwrap(),
            Appended::Kept { .. }
        ));
    }
    let d1 = w.sync().unwrap();
    w.append(FrameKind::Reset, Lsn::ZERO, &[]).unwrap();
    let mut resend_peek = PeekState::new();
    for (lsn, m) in &msgs {
        let (_, block) = resend_peek.peek(m).unwrap();
        let streamed = block.is_some() || matches!(m[0], b'S' | b'c' | b'A');
        let got = w.append_wal(*lsn, m).unwrap();
        if !streamed {
            assert_eq!(got, Appended::Dropped, "resent {:?}", m[0] as char);
        }
    }
    let d2 = w.sync().unwrap();
    assert_eq!(d1.lsn, d2.lsn);
    let last_end = pg
        .psql("SELECT pg_current_wal_lsn()")
        .unwrap()
        .trim()
        .parse::<Lsn>()
        .unwrap();
    assert!(d1.lsn <= last_end && d1.lsn > Lsn::ZERO);

    // A reader resuming after the ALTER's transaction gets the altered Relation as prelude.
    let mut r = log.reader(Some(d1.lsn)).unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(f.kind, FrameKind::Prelude);
    assert_eq!(f.payload[0], b'R');
    assert!(
        f.payload.windows(2).any(|w| w == b"w\0"),
        "prelude R has the added column"
    );
}
