//! The replication source against real PostgreSQL clusters (walcast-testkit).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use walcast_decoder::Lsn;
use walcast_relay::source::{
    BackoffConfig, CreateSlotOptions, PgOutputOptions, Prepared, PublicationSpec,
    ReplicationConnection, ReplicationMessage, ReplicationSink, ReplicationStream, Session,
    SessionConfig, SinkError, SourceConfig, SourceError, SqlConnection,
};
use walcast_testkit::PgCluster;

fn cfg_url(url: &str) -> SourceConfig {
    SourceConfig::from_url_and_env(Some(url), |_| None).unwrap()
}

fn cfg(pg: &PgCluster) -> SourceConfig {
    cfg_url(&format!("{}?sslmode=disable", pg.url()))
}

fn versions() -> Vec<u32> {
    let v = walcast_testkit::available_versions();
    assert!(
        v.contains(&15),
        "PostgreSQL 15 must be installed for these tests"
    );
    eprintln!("testing against PostgreSQL {v:?}");
    v
}

/// The commit end LSN of a `C` message (flags at 1, commit lsn at 2, end lsn at 10).
fn commit_end(data: &[u8]) -> Lsn {
    Lsn(u64::from_be_bytes(data[10..18].try_into().unwrap()))
}

/// Reads until a Commit, returning the pgoutput tags seen and the commit end LSN. Answers
/// keepalives that ask for a reply.
async fn read_txn(stream: &mut ReplicationStream) -> (Vec<u8>, Lsn) {
    let mut tags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no commit within 30 s; saw {:?}",
            String::from_utf8_lossy(&tags)
        );
        let m = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("stream stalled")
            .unwrap();
        match m {
            ReplicationMessage::XLogData { data, .. } => {
                tags.push(data[0]);
                if data[0] == b'C' {
                    return (tags, commit_end(&data));
                }
            }
            ReplicationMessage::Keepalive {
                wal_end,
                reply_requested: true,
                ..
            } => {
                stream
                    .send_status(wal_end, Lsn::ZERO, Lsn::ZERO, false)
                    .await
                    .unwrap();
            }
            ReplicationMessage::Keepalive { .. } => {}
        }
    }
}

fn confirmed_flush(pg: &PgCluster, slot: &str) -> Lsn {
    pg.psql(&format!(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn connects_with_trust_and_session_settings() {
    for major in versions() {
        let pg = PgCluster::start(major).unwrap();
        let mut conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
        assert_eq!(conn.server_major(), major);
        let sys = conn.identify_system().await.unwrap();
        assert_eq!(sys.dbname.as_deref(), Some("postgres"));
        assert_eq!(sys.timeline, 1);
        assert!(sys.xlogpos > Lsn::ZERO);
        // The walsender accepted the options the decoder relies on.
        for (setting, want) in [
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("extra_float_digits", "3"),
            ("bytea_output", "hex"),
            ("lc_monetary", "C"),
        ] {
            let rows = conn.simple_query(&format!("SHOW {setting}")).await.unwrap();
            assert_eq!(rows[0][0].as_deref(), Some(want), "{setting} on PG{major}");
        }
        let err = conn
            .simple_query("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
        // the connection stays usable after an error
        assert_eq!(
            conn.simple_query("SELECT 1").await.unwrap()[0][0].as_deref(),
            Some("1")
        );
        conn.close().await.unwrap();
    }
}

fn write_hba(pg: &PgCluster, lines: &str) {
    let hba = format!(
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost replication postgres 127.0.0.1/32 trust\n{lines}"
    );
    std::fs::write(pg.data_dir().join("pg_hba.conf"), hba).unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

#[tokio::test]
async fn authenticates_with_scram_md5_and_cleartext() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE s LOGIN REPLICATION PASSWORD 'sekret-s'").unwrap();
    pg.psql("SET password_encryption = 'md5'; CREATE ROLE m LOGIN REPLICATION PASSWORD 'sekret-m'")
        .unwrap();
    pg.psql("CREATE ROLE c LOGIN REPLICATION PASSWORD 'sekret-c'")
        .unwrap();
    write_hba(
        &pg,
        "host all m 127.0.0.1/32 md5\nhost all c 127.0.0.1/32 password\nhost all all 127.0.0.1/32 scram-sha-256\n",
    );
    let url = |user: &str, pw: &str| {
        cfg_url(&format!(
            "postgres://{user}:{pw}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port
        ))
    };
    for (user, pw) in [("s", "sekret-s"), ("m", "sekret-m"), ("c", "sekret-c")] {
        let mut conn = ReplicationConnection::connect(&url(user, pw))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        let rows = conn.simple_query("SELECT current_user").await.unwrap();
        assert_eq!(rows[0][0].as_deref(), Some(user));
        conn.close().await.unwrap();
        // and the ordinary SQL connection with the same settings
        let sql = SqlConnection::connect(&url(user, pw)).await.unwrap();
        let u: String = sql
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(u, user);
    }
    for user in ["s", "m", "c"] {
        let err = ReplicationConnection::connect(&url(user, "wrong-pw"))
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Auth { .. }), "{user}: {err:?}");
        assert!(err.is_terminal());
        let text = format!("{err} {err:?}");
        assert!(text.contains("password authentication failed"), "{text}");
        assert!(!text.contains("wrong-pw"), "password leaked: {text}");
    }
    // no password at all
    let err = ReplicationConnection::connect(&cfg_url(&format!(
        "postgres://s@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    )))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("none is configured"), "{err}");
}

#[tokio::test]
async fn exported_snapshot_then_stream_then_confirm() {
    for major in versions() {
        let pg = PgCluster::start(major).unwrap();
        pg.psql("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'before')")
            .unwrap();
        let mut sc = SessionConfig::new(cfg(&pg), "snap_slot", "snap_pub");
        sc.publication_spec = PublicationSpec::Tables(vec!["public.t".into()]);
        let mut session = Session::new(sc);
        let p = session.prepare().await.unwrap();
        assert!(p.publication.created);
        assert_eq!(p.publication.tables, vec!["public.t".to_string()]);
        assert_eq!(
            p.proto_version,
            walcast_relay::source::proto_version_for(major)
        );
        let created = p.created.clone().expect("slot created");
        let snap = created.snapshot_name.clone().expect("snapshot exported");
        assert_eq!(p.start_lsn, created.consistent_point);

        // A change after slot creation: invisible to the snapshot, present in the stream.
        pg.psql("INSERT INTO t VALUES (2, 'after')").unwrap();
        p.sql
            .client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snap}'"
            ))
            .await
            .unwrap();
        let n: i64 = p
            .sql
            .client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n, 1,
            "the snapshot sees exactly the state the stream continues from"
        );
        p.sql.client.batch_execute("COMMIT").await.unwrap();

        let mut started = p.start().await.unwrap();
        assert_eq!(started.stream.server_major(), major);
        let (tags, end) = read_txn(&mut started.stream).await;
        assert_eq!(
            tags,
            b"BRIC".to_vec(),
            "PG{major}: {:?}",
            String::from_utf8_lossy(&tags)
        );
        assert!(end > created.consistent_point);

        started
            .stream
            .send_status(end, end, end, false)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while confirmed_flush(&pg, "snap_slot") < end {
            assert!(
                Instant::now() < deadline,
                "confirmed_flush_lsn did not reach {end}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(confirmed_flush(&pg, "snap_slot"), end);
        started.stream.close().await.unwrap();

        // Second session: the slot exists; streaming resumes after the confirmed commit.
        let mut p2 = {
            let mut sc = SessionConfig::new(cfg(&pg), "snap_slot", "snap_pub");
            sc.publication_spec = PublicationSpec::Tables(vec!["public.t".into()]);
            Session::new(sc)
        };
        let p2 = loop {
            // the old walsender may take a moment to release the slot
            match p2.prepare().await {
                Ok(p) => break p,
                Err(SourceError::SlotActive { .. }) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(p2.created.is_none() && !p2.publication.created);
        assert_eq!(p2.start_lsn, end);
        pg.psql("INSERT INTO t VALUES (3, 'third')").unwrap();
        let mut s2 = p2.start().await.unwrap();
        let (tags, end3) = read_txn(&mut s2.stream).await;
        assert_eq!(tags, b"BRIC".to_vec(), "schema is re-sent in a new session");
        assert!(end3 > end);
    }
}

#[tokio::test]
async fn create_slot_on_raw_connection_keeps_it_idle_for_snapshot_import() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql("CREATE TABLE u (id int); CREATE PUBLICATION up FOR TABLE u")
        .unwrap();
    let mut conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
    let c = conn
        .create_slot(
            "raw_slot",
            CreateSlotOptions {
                export_snapshot: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c.slot_name, "raw_slot");
    let snap = c.snapshot_name.unwrap();
    let sql = SqlConnection::connect(&cfg(&pg)).await.unwrap();
    sql.client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snap}'; COMMIT"
        ))
        .await
        .unwrap();
    // duplicate name: a clear server error, not a hang
    let err = conn
        .create_slot("raw_slot", CreateSlotOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42710"), "{err}");
    conn.create_slot("drop_me", CreateSlotOptions::default())
        .await
        .unwrap();
    conn.drop_slot("drop_me", false).await.unwrap();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'drop_me'")
            .unwrap()
            .trim(),
        "0"
    );
    let stream = conn
        .start_replication("raw_slot", Lsn::ZERO, &PgOutputOptions::new("up"))
        .await
        .unwrap();
    assert_eq!(stream.proto_version(), 3);
}

/// Pretends to be the log: everything is durable as soon as it arrives.
struct TestSink {
    tx: mpsc::UnboundedSender<(u8, Lsn)>,
    durable: Lsn,
    sessions: mpsc::UnboundedSender<Lsn>,
}

impl ReplicationSink for TestSink {
    async fn prepared(&mut self, p: &Prepared) -> Result<(), SinkError> {
        let _ = self.sessions.send(p.start_lsn);
        Ok(())
    }
    async fn xlog(&mut self, _: Lsn, _: Lsn, _: i64, data: Bytes) -> Result<(), SinkError> {
        if data[0] == b'C' || data[0] == b'c' {
            // C: end lsn at 10; c (stream commit): xid(4) flags(1) lsn(8), end lsn at 14
            let off = if data[0] == b'C' { 10 } else { 14 };
            self.durable = Lsn(u64::from_be_bytes(data[off..off + 8].try_into().unwrap()));
            let _ = self.tx.send((b'C', self.durable));
        } else {
            let _ = self.tx.send((data[0], Lsn::ZERO));
        }
        Ok(())
    }
    fn durable(&mut self) -> (Lsn, Option<Lsn>) {
        (self.durable, None)
    }
}

async fn next_commit(rx: &mut mpsc::UnboundedReceiver<(u8, Lsn)>, within: Duration) -> Lsn {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((b'C', lsn))) => return lsn,
            Ok(Some(_)) => {}
            Ok(None) => panic!("sink closed"),
            Err(_) => panic!("no commit within {within:?}"),
        }
    }
}

fn spawn_session(
    pg: &PgCluster,
    slot: &str,
    spec: PublicationSpec,
) -> (
    mpsc::UnboundedReceiver<(u8, Lsn)>,
    mpsc::UnboundedReceiver<Lsn>,
    tokio::task::JoinHandle<String>,
) {
    let mut sc = SessionConfig::new(cfg(pg), slot, "the_pub");
    sc.publication_spec = spec;
    sc.backoff = BackoffConfig {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        ..Default::default()
    };
    sc.feedback.status_interval = Duration::from_millis(500);
    let (tx, rx) = mpsc::unbounded_channel();
    let (stx, srx) = mpsc::unbounded_channel();
    let mut sink = TestSink {
        tx,
        durable: Lsn::ZERO,
        sessions: stx,
    };
    let h = tokio::spawn(async move {
        let mut s = Session::new(sc);
        s.run(&mut sink).await.to_string()
    });
    (rx, srx, h)
}

#[tokio::test]
async fn survives_idle_with_short_wal_sender_timeout_and_advances_idle_slot() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql("ALTER SYSTEM SET wal_sender_timeout = '2s'")
        .unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    pg.psql("CREATE TABLE k (id int)").unwrap();
    let (mut rx, mut sessions, h) =
        spawn_session(&pg, "ka_slot", PublicationSpec::Tables(vec!["k".into()]));
    tokio::time::timeout(Duration::from_secs(20), sessions.recv())
        .await
        .unwrap()
        .unwrap();
    pg.psql("INSERT INTO k VALUES (1)").unwrap();
    let c1 = next_commit(&mut rx, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        sessions.try_recv().is_err(),
        "the session was restarted: keepalives were not answered"
    );
    pg.psql("INSERT INTO k VALUES (2)").unwrap();
    let c2 = next_commit(&mut rx, Duration::from_secs(20)).await;
    assert!(c2 > c1);
    // Idle: WAL written elsewhere (not published, so no messages at all) lets the slot advance
    // past c2 via keepalives.
    pg.psql("CREATE TABLE other (x int); INSERT INTO other SELECT generate_series(1, 1000)")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = confirmed_flush(&pg, "ka_slot");
        if f > c2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle slot stuck at {f} (last commit {c2})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        pg.server_log()
            .matches("terminating walsender process due to replication timeout")
            .count()
            == 0
    );
    h.abort();
}

#[tokio::test]
async fn reconnects_after_crash_restart_and_resumes() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql("CREATE TABLE r (id int)").unwrap();
    let (mut rx, mut sessions, h) = spawn_session(&pg, "rc_slot", PublicationSpec::AllTables);
    tokio::time::timeout(Duration::from_secs(20), sessions.recv())
        .await
        .unwrap()
        .unwrap();
    pg.psql("INSERT INTO r VALUES (1)").unwrap();
    let c1 = next_commit(&mut rx, Duration::from_secs(20)).await;
    // let the status update reach the server and a checkpoint persist the slot
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.psql("CHECKPOINT").unwrap();
    pg.restart_immediate().unwrap();
    pg.wait_ready(Duration::from_secs(30)).unwrap();
    pg.psql("INSERT INTO r VALUES (2)").unwrap();
    let start2 = tokio::time::timeout(Duration::from_secs(30), sessions.recv())
        .await
        .unwrap()
        .unwrap();
    // Before PG17 a crash may lose the in-memory confirmed_flush_lsn, so the new session may
    // replay c1 (at-least-once; consumers dedupe by LSN). It must not skip anything.
    assert!(
        start2 > Lsn::ZERO && start2 <= c1,
        "resumed from {start2}, past unconfirmed work? c1={c1}"
    );
    let mut c2 = next_commit(&mut rx, Duration::from_secs(30)).await;
    if c2 == c1 {
        c2 = next_commit(&mut rx, Duration::from_secs(30)).await;
    }
    assert!(c2 > c1);
    assert!(!h.is_finished());
    h.abort();
}

#[tokio::test]
async fn clear_errors_for_missing_table_publication_and_privilege() {
    let pg = PgCluster::start(15).unwrap();
    pg.psql("CREATE TABLE present (id int)").unwrap();
    let mut sc = SessionConfig::new(cfg(&pg), "e_slot", "e_pub");
    sc.publication_spec =
        PublicationSpec::Tables(vec!["public.present".into(), "public.absent".into()]);
    let err = Session::new(sc).prepare().await.err().unwrap();
    assert!(
        matches!(&err, SourceError::MissingTable { table } if table == "public.absent"),
        "{err:?}"
    );
    assert!(err.is_terminal());

    // existing publication is left alone; missing publication without a spec is terminal
    let err = Session::new(SessionConfig::new(cfg(&pg), "e_slot", "nope"))
        .prepare()
        .await
        .err()
        .unwrap();
    assert!(
        err.is_terminal() && err.to_string().contains("does not exist"),
        "{err}"
    );

    pg.psql("CREATE ROLE norepl LOGIN; CREATE PUBLICATION e_pub FOR TABLE present")
        .unwrap();
    let mut sc = SessionConfig::new(
        cfg_url(&format!(
            "postgres://norepl@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port
        )),
        "e_slot",
        "e_pub",
    );
    sc.create_slot = true;
    let err = Session::new(sc).prepare().await.err().unwrap();
    assert!(
        matches!(err, SourceError::NoReplicationPrivilege { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ALTER ROLE norepl WITH REPLICATION"),
        "{err}"
    );
    // the walsender's own refusal is classified the same way
    let err = ReplicationConnection::connect(&cfg_url(&format!(
        "postgres://norepl@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    )))
    .await
    .unwrap_err();
    assert!(
        matches!(err, SourceError::NoReplicationPrivilege { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalidated_slot_is_terminal() {
    for major in versions() {
        let pg = PgCluster::start(major).unwrap();
        pg.psql("CREATE TABLE present (id int)").unwrap();
        pg.psql("CREATE PUBLICATION e_pub FOR TABLE present")
            .unwrap();
        // Invalidate a slot: keep at most 1 MB of WAL for it, then write and remove more.
        pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
            .unwrap();
        pg.psql("SELECT pg_reload_conf()").unwrap();
        pg.psql("SELECT pg_create_logical_replication_slot('inv_slot', 'pgoutput')")
            .unwrap();
        for _ in 0..6 {
            pg.psql("INSERT INTO present SELECT generate_series(1, 20000); SELECT pg_switch_wal(); CHECKPOINT;").unwrap();
            if pg
                .psql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'inv_slot'")
                .unwrap()
                .trim()
                == "lost"
            {
                break;
            }
        }
        assert_eq!(
            pg.psql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'inv_slot'")
                .unwrap()
                .trim(),
            "lost"
        );
        let err = Session::new(SessionConfig::new(cfg(&pg), "inv_slot", "e_pub"))
            .prepare()
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, SourceError::SlotInvalidated { .. }),
            "{err:?}"
        );
        assert!(err.is_terminal());
        assert!(
            err.to_string()
                .contains("pg_drop_replication_slot('inv_slot')"),
            "{err}"
        );
        // and START_REPLICATION's own 55000 says the same
        let conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
        let err = conn
            .start_replication("inv_slot", Lsn::ZERO, &PgOutputOptions::new("e_pub"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::SlotInvalidated { .. }),
            "{err:?}"
        );
        assert_eq!(err.sqlstate(), None);

        // a session driver gives up on it instead of retrying forever
        let mut s = Session::new(SessionConfig::new(cfg(&pg), "inv_slot", "e_pub"));
        let t = Instant::now();
        let err = s.prepare_with_retry().await.err().unwrap();
        assert!(err.is_terminal() && t.elapsed() < Duration::from_secs(5));
        if major >= 17 {
            let reason = pg
                .psql("SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = 'inv_slot'")
                .unwrap();
            assert!(err.to_string().contains(reason.trim()), "PG{major}: {err}");
        }
    }
}

#[tokio::test]
async fn wal_level_replica_is_a_clear_error() {
    let pg = PgCluster::start_with(15, &["wal_level = replica"]).unwrap();
    let err = Session::new(SessionConfig::new(cfg(&pg), "w_slot", "w_pub"))
        .prepare()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SourceError::WalLevel { .. }), "{err:?}");
    assert!(err.is_terminal());
    assert!(
        err.to_string()
            .contains("set wal_level=logical in postgresql.conf"),
        "{err}"
    );
    // the walsender refuses too, and that is classified the same way
    let mut conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
    let err = conn
        .create_slot("w_slot", CreateSlotOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::WalLevel { .. }), "{err:?}");
}

#[tokio::test]
async fn resources_exhausted_is_retryable_but_loud() {
    let pg = PgCluster::start_with(15, &["max_replication_slots = 1"]).unwrap();
    pg.psql("CREATE PUBLICATION x_pub FOR ALL TABLES").unwrap();
    pg.psql("SELECT pg_create_logical_replication_slot('x1', 'pgoutput')")
        .unwrap();
    let err = Session::new(SessionConfig::new(cfg(&pg), "x2", "x_pub"))
        .prepare()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SourceError::ResourcesExhausted(_)), "{err:?}");
    assert_eq!(
        err.retry_advice(),
        walcast_relay::source::RetryAdvice::RetryLoudly
    );
    assert!(err.to_string().contains("max_replication_slots"));
}

/// Writes a file into the data directory, owned by the server's user when we are root.
fn write_server_file(pg: &PgCluster, name: &str, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = pg.data_dir().join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let owner = std::process::Command::new("stat")
        .arg("-c")
        .arg("%U")
        .arg(pg.data_dir())
        .output()
        .unwrap();
    let owner = String::from_utf8(owner.stdout).unwrap();
    let status = std::process::Command::new("chown")
        .arg(owner.trim())
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn tls_modes() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let pg = PgCluster::start(15).unwrap();
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);

    // Server without TLS: require refuses, prefer falls back to plain.
    let err = ReplicationConnection::connect(&cfg_url(&format!("{base}?sslmode=require")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::TlsUnsupported("require")),
        "{err:?}"
    );
    assert!(err.is_terminal());
    ReplicationConnection::connect(&cfg_url(&format!("{base}?sslmode=prefer")))
        .await
        .unwrap();

    // A CA and a server certificate that names only db.example (not 127.0.0.1).
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["db.example".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    write_server_file(&pg, "server.crt", &leaf.pem(), 0o644);
    write_server_file(&pg, "server.key", &leaf_key.serialize_pem(), 0o600);
    pg.psql("ALTER SYSTEM SET ssl = on").unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let other_ca = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other_ca.pem()).unwrap();

    let uses_tls = |rows: Vec<Vec<Option<String>>>| rows[0][0].as_deref() == Some("t");
    let ssl_q = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    for mode in ["require", "prefer"] {
        let mut c = ReplicationConnection::connect(&cfg_url(&format!("{base}?sslmode={mode}")))
            .await
            .unwrap();
        assert!(
            uses_tls(c.simple_query(ssl_q).await.unwrap()),
            "{mode} must encrypt"
        );
        let sql = SqlConnection::connect(&cfg_url(&format!("{base}?sslmode={mode}")))
            .await
            .unwrap();
        let ssl: bool = sql.client.query_one(ssl_q, &[]).await.unwrap().get(0);
        assert!(ssl, "SQL connection with {mode}");
    }
    // verify-ca: chain checked, name not.
    let ca_url = format!("{base}?sslmode=verify-ca&sslrootcert={}", ca_path.display());
    let mut c = ReplicationConnection::connect(&cfg_url(&ca_url))
        .await
        .unwrap();
    assert!(uses_tls(c.simple_query(ssl_q).await.unwrap()));
    SqlConnection::connect(&cfg_url(&ca_url)).await.unwrap();
    // verify-full: the certificate does not name 127.0.0.1.
    let full_url = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        ca_path.display()
    );
    let err = ReplicationConnection::connect(&cfg_url(&full_url))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Tls(_)), "{err:?}");
    assert!(err.is_terminal());
    // an untrusted CA fails verify-ca, and require with a root file behaves like verify-ca
    for mode in ["verify-ca", "require"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", other_path.display());
        let err = ReplicationConnection::connect(&cfg_url(&url))
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Tls(_)), "{mode}: {err:?}");
    }
}

#[tokio::test]
async fn tls_verify_full_accepts_matching_name() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let pg = PgCluster::start(15).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    write_server_file(&pg, "server.crt", &leaf.pem(), 0o644);
    write_server_file(&pg, "server.key", &leaf_key.serialize_pem(), 0o600);
    pg.psql("ALTER SYSTEM SET ssl = on").unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port,
        ca_path.display()
    );
    let mut c = ReplicationConnection::connect(&cfg_url(&url))
        .await
        .unwrap();
    let rows = c
        .simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("t"));
    let sql = SqlConnection::connect(&cfg_url(&url)).await.unwrap();
    let ssl: bool = sql
        .client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

#[tokio::test]
async fn unix_socket_connection() {
    let pg = PgCluster::start(15).unwrap();
    let sock = pg.data_dir().parent().unwrap().join("sock");
    let url = format!(
        "postgres://postgres@/postgres?host={}&port={}",
        sock.display(),
        pg.port
    );
    let mut c = ReplicationConnection::connect(&cfg_url(&url))
        .await
        .unwrap();
    assert_eq!(
        c.identify_system().await.unwrap().dbname.as_deref(),
        Some("postgres")
    );
    let sql = SqlConnection::connect(&cfg_url(&url)).await.unwrap();
    let n: i32 = sql.client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

/// `next()` cancelled over and over by a short timer (as a `select!` with a status tick does)
/// must lose no bytes: a large streamed transaction arrives complete.
#[tokio::test]
async fn next_is_cancellation_safe() {
    for major in versions() {
        let pg = PgCluster::start(major).unwrap();
        pg.psql("CREATE TABLE big (id int, pad text); CREATE PUBLICATION big_pub FOR TABLE big")
            .unwrap();
        let mut conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
        conn.create_slot("big_slot", CreateSlotOptions::default())
            .await
            .unwrap();
        let mut stream = conn
            .start_replication("big_slot", Lsn::ZERO, &PgOutputOptions::new("big_pub"))
            .await
            .unwrap();
        const ROWS: usize = 5000;
        pg.psql(&format!(
            "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, {ROWS}) g"
        ))
        .unwrap();
        let mut inserts = 0;
        let mut cancelled = 0;
        let mut tags = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "PG{major}: stalled after {inserts} inserts"
            );
            tokio::select! {
                m = stream.next() => match m.unwrap() {
                    ReplicationMessage::XLogData { data, .. } => {
                        tags.insert(data[0]);
                        match data[0] {
                            b'I' => inserts += 1,
                            b'C' | b'c' => break,
                            _ => {}
                        }
                    }
                    ReplicationMessage::Keepalive { wal_end, reply_requested: true, .. } => {
                        stream.send_status(wal_end, Lsn::ZERO, Lsn::ZERO, false).await.unwrap();
                    }
                    ReplicationMessage::Keepalive { .. } => {}
                },
                _ = tokio::time::sleep(Duration::from_micros(20)) => cancelled += 1,
            }
        }
        assert_eq!(
            inserts,
            ROWS,
            "tags seen: {:?}",
            tags.iter().map(|&t| t as char).collect::<String>()
        );
        assert!(
            tags.contains(&b'S'),
            "64kB logical_decoding_work_mem: the transaction is streamed"
        );
        assert!(
            cancelled > 0,
            "the timer never cancelled a read; the test proved nothing"
        );
    }
}

/// With wal_sender_timeout=0 an idle server says nothing at all; the receive-timeout probe
/// (a status with reply_requested) must get an answer rather than a false reconnect.
#[tokio::test]
async fn silent_server_is_probed_not_dropped() {
    let pg = PgCluster::start_with(15, &["wal_sender_timeout = 0"]).unwrap();
    pg.psql("CREATE TABLE q (id int)").unwrap();
    let mut sc = SessionConfig::new(cfg(&pg), "q_slot", "q_pub");
    sc.publication_spec = PublicationSpec::Tables(vec!["q".into()]);
    sc.receive_timeout = Duration::from_millis(700);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stx, mut sessions) = mpsc::unbounded_channel();
    let mut sink = TestSink {
        tx,
        durable: Lsn::ZERO,
        sessions: stx,
    };
    let h = tokio::spawn(async move { Session::new(sc).run(&mut sink).await.to_string() });
    tokio::time::timeout(Duration::from_secs(20), sessions.recv())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        sessions.try_recv().is_err(),
        "reconnected although the server was alive"
    );
    pg.psql("INSERT INTO q VALUES (1)").unwrap();
    next_commit(&mut rx, Duration::from_secs(20)).await;
    h.abort();
}

#[tokio::test]
async fn fatal_error_is_reported_not_lost() {
    let pg = PgCluster::start(15).unwrap();
    let mut conn = ReplicationConnection::connect(&cfg(&pg)).await.unwrap();
    let err = conn
        .simple_query("SELECT pg_terminate_backend(pg_backend_pid())")
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("57P01"), "{err:?}");
    assert!(!err.is_terminal(), "an admin kill is worth a reconnect");
}
