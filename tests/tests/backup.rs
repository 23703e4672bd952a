//! `walcast backup` and `walcast restore` against a real relay and PostgreSQL 15: a backup
//! taken during a write load (plain, TOASTed, keyless and streamed transactions), killed -9
//! and resumed, restores into fresh databases exactly as the source stood at a chosen LSN and
//! at the end; a damaged object is refused, and the slot never passes what the backup has
//! made durable.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use walcast_decoder::Lsn;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const TABLES: &[&str] = &[
    "public.t",
    "public.fence",
    "public.wide",
    "public.nokey",
    "public.t_stream",
];

const SCHEMA: &str = r#"
CREATE TABLE wide (id int PRIMARY KEY, n numeric(12,3), ts timestamptz, j jsonb, b bytea,
                   arr int[], note text, big text);
ALTER TABLE wide ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO wide SELECT g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 minute',
       jsonb_build_object('k', g, 's', E'q"\\'), decode(md5(g::text), 'hex'), ARRAY[g, NULL, -g],
       E'tab\there\nnewline \\ backslash \\N ' || g, repeat(md5(g::text), 300)
  FROM generate_series(1, 2000) g;
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
INSERT INTO nokey SELECT g % 5, 'dup' FROM generate_series(1, 50) g;
CREATE TABLE t_stream (id int PRIMARY KEY, payload text);
"#;

/// Changes to the other tables that go with writer transaction `k`: unchanged-TOAST updates,
/// TOAST rewrites, deletes, inserts with awkward text, keyless duplicates.
fn side_sql(k: u64) -> String {
    let a = k % 2000 + 1;
    let b = (k * 7) % 2000 + 1;
    let c = (k * 13) % 2000 + 1;
    format!(
        "BEGIN; UPDATE wide SET n = n + 1 WHERE id = {a};\n\
         UPDATE wide SET note = note || E'\\t{k}', big = big || 'y{k}' WHERE id = {b};\n\
         DELETE FROM wide WHERE id = {c};\n\
         INSERT INTO wide VALUES ({}, NULL, now(), '[1, {{\"x\": null}}]', '\\x00ff', '{{}}', E'line\\r\\n{k}', repeat('z', 3000));\n\
         INSERT INTO nokey VALUES ({}, 'dup');\n\
         DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE a = {} LIMIT 1); COMMIT;\n",
        10_000 + k,
        k % 5,
        (k + 2) % 5
    )
}

/// A transaction larger than the test cluster's logical_decoding_work_mem (64kB), so pgoutput
/// streams it, with a rolled-back subtransaction inside.
fn streamed_sql(round: u64) -> String {
    let base = round * 100_000;
    format!(
        "BEGIN; INSERT INTO t_stream SELECT g, repeat('x', 60) || g FROM generate_series({}, {}) g;\n\
         SAVEPOINT s1; INSERT INTO t_stream SELECT g, 'gone' FROM generate_series({}, {}) g;\n\
         ROLLBACK TO SAVEPOINT s1;\n\
         UPDATE t_stream SET payload = 'updated' WHERE id BETWEEN {} AND {};\n\
         DELETE FROM t_stream WHERE id BETWEEN {} AND {}; COMMIT;\n",
        base + 1,
        base + 3000,
        base + 3001,
        base + 4000,
        base + 1,
        base + 10,
        base + 2990,
        base + 3000
    )
}

/// Every table's rows as text, in a stable order.
fn dump(pg: &PgCluster, db: &str) -> Result<Vec<(String, String)>> {
    let mut all = Vec::new();
    for (table, order) in [
        ("t", "id"),
        ("fence", "n"),
        ("wide", "id"),
        ("nokey", "a, b"),
        ("t_stream", "id"),
    ] {
        let sql = format!("SELECT x::text FROM {table} x ORDER BY {order}");
        let out = Command::new(pg.bin("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &pg.url_db(db),
                "-c",
                &sql,
            ])
            .output()?;
        if !out.status.success() {
            bail!("{sql} on {db}: {}", String::from_utf8_lossy(&out.stderr));
        }
        for line in String::from_utf8(out.stdout)?.lines() {
            all.push((table.to_string(), line.to_string()));
        }
    }
    Ok(all)
}

fn assert_same(what: &str, got: &[(String, String)], want: &[(String, String)]) {
    if got != want {
        let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
        panic!(
            "{what}: {} rows restored, {} expected\nmissing: {missing:?}\nextra: {extra:?}",
            got.len(),
            want.len()
        );
    }
}

fn backup(relay: &Relay, dir: &Path, extra: &[&str], log: &Path) -> Result<Child> {
    backup_to(relay, dir.as_os_str(), extra, &[], log)
}

fn backup_to(
    relay: &Relay,
    to: &std::ffi::OsStr,
    extra: &[&str],
    env: &[(&str, String)],
    log: &Path,
) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(walcast_bin())
        .args(["backup", "--url", &relay.url(), "--to"])
        .arg(to)
        .args(["--object-bytes", "64KiB", "--flush-every", "200ms"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info,walcast_relay::client=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawning walcast backup")
}

/// Waits for a `backup --until` run to exit; a hang fails with both sides' logs.
fn exit_within(mut run: Child, relay: &Relay, log: &Path) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(status) = run.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!(
                "backup --until did not exit in 120 s\n---- backup log ----\n{}\n---- relay log ----\n{}",
                std::fs::read_to_string(log).unwrap_or_default(),
                relay.log_text()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn restore(pg: &PgCluster, dir: &Path, db: &str, until: Option<Lsn>) -> Result<serde_json::Value> {
    restore_from(pg, dir.as_os_str(), &[], db, until)
}

fn restore_from(
    pg: &PgCluster,
    from: &std::ffi::OsStr,
    env: &[(&str, String)],
    db: &str,
    until: Option<Lsn>,
) -> Result<serde_json::Value> {
    pg.psql(&format!("CREATE DATABASE {db}"))?;
    let mut cmd = Command::new(walcast_bin());
    cmd.args(["restore", "--json", "--postgres", &pg.url_db(db), "--from"])
        .arg(from)
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(u) = until {
        cmd.args(["--until", &u.to_string()]);
    }
    let t = Instant::now();
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("restore failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    eprintln!("restore into {db} took {:?}", t.elapsed());
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn acked(relay: &Relay) -> Option<Lsn> {
    let (status, body) = http_get(relay.http_addr(), "/v1/consumers/backup").ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200).then(|| v["acked_lsn"].as_str()?.parse().ok())?
}

fn lsn_of(v: &serde_json::Value, field: &str) -> Lsn {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[test]
fn a_backup_under_load_restores_exactly_at_a_chosen_lsn_and_at_the_end() {
    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).unwrap();
    pg.psql(SCHEMA).unwrap();
    let relay = Relay::start(&pg, TABLES, &[]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backup");
    let log = work.path().join("backup.log");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Every commit's end LSN, to check the slot against the backup's acks.
    let witness = Consumer::start(&relay.url(), None, None, &[]);
    // The baseline is taken while the writer is already running.
    let mut first = backup(&relay, &dir, &[], &log).unwrap();
    let mut mid = None;
    let mut confirmed_vs_ack = Vec::new();
    for k in 1..=600u64 {
        let mut sql = String::from("SET synchronous_commit = on;\n");
        sql.push_str(&txn_sql(k));
        sql.push_str(&side_sql(k));
        if k % 150 == 0 {
            sql.push_str(&streamed_sql(k / 150));
        }
        pg.psql(&sql).unwrap();
        if k == 300 {
            // The state at a known LSN: nothing commits between the dump and the fence's LSN.
            let state = dump(&pg, "postgres").unwrap();
            mid = Some((fence(&pg).unwrap(), state));
        }
        if k == 400 {
            // Killed mid-load: the next run resumes from what is in the destination.
            first.kill().unwrap();
            first.wait().unwrap();
        }
        if k % 50 == 0 {
            // Read the ack after confirmed_flush: the ack only grows, so the slot may never be
            // ahead of an ack read later.
            if let (Ok(Some(c)), Some(a)) = (confirmed_flush(&pg), acked(&relay)) {
                confirmed_vs_ack.push((c, a));
            }
        }
        if k == 500 {
            // The writer goes on while the backup is down.
            first = backup(&relay, &dir, &[], &log).unwrap();
        }
    }
    // The state at `end`, then the fence commit after it.
    let final_state = dump(&pg, "postgres").unwrap();
    let end = fence(&pg).unwrap();
    let with_fence = dump(&pg, "postgres").unwrap();
    // Stop the running backup and finish with one that exits once `end` is durable.
    first.kill().unwrap();
    first.wait().unwrap();
    let status = exit_within(
        backup(&relay, &dir, &["--until", &end.to_string()], &log).unwrap(),
        &relay,
        &log,
    );
    assert!(
        status.success(),
        "backup --until exits 0: {status}\n{}",
        log_text()
    );
    let acked_end = acked(&relay).expect("the backup consumer is registered");
    assert!(acked_end >= end, "acked {acked_end} < {end}");
    assert!(
        log_text().contains("resuming the backup"),
        "later runs resumed: {}",
        log_text()
    );
    // Once a backup reaches `--until`, running it again with the same target exits at once
    // (nothing more may ever commit, so it cannot wait for a transaction to prove it).
    let again = exit_within(
        backup(&relay, &dir, &["--until", &end.to_string()], &log).unwrap(),
        &relay,
        &log,
    );
    assert!(
        again.success() && log_text().contains("already reaches --until"),
        "{}",
        log_text()
    );
    // The slot may move past an ack only over WAL without commits (idle keepalives).
    let commits: Vec<Lsn> = witness
        .wait_for(end, std::time::Duration::from_secs(60))
        .unwrap()
        .iter()
        .map(|t| t.end_lsn)
        .collect();
    for (c, a) in &confirmed_vs_ack {
        let passed: Vec<_> = commits.iter().filter(|e| *e > a && *e <= c).collect();
        assert!(
            passed.is_empty(),
            "confirmed_flush {c} passed the backup's ack {a} over commits {passed:?}"
        );
    }
    assert!(confirmed_vs_ack.len() >= 8, "{confirmed_vs_ack:?}");

    // Restore at the mid-load LSN and at the end; each must equal the source at that point.
    let (mid_lsn, mid_state) = mid.unwrap();
    let at_mid = restore(&pg, &dir, "restored_mid", Some(mid_lsn)).unwrap();
    eprintln!("restore at {mid_lsn}: {at_mid}");
    assert!(lsn_of(&at_mid, "restored_to") <= mid_lsn);
    assert!(
        at_mid["transactions"].as_u64().unwrap() > 0,
        "the log was replayed: {at_mid}"
    );
    assert_same(
        "at the mid LSN",
        &dump(&pg, "restored_mid").unwrap(),
        &mid_state,
    );
    // Without --until: as far as the backup reaches, which is `end`, or past it when the
    // fence commit made it into the backup before `--until` stopped it.
    let at_end = restore(&pg, &dir, "restored_end", None).unwrap();
    eprintln!("restore at the end: {at_end}");
    let restored = dump(&pg, "restored_end").unwrap();
    let want = if lsn_of(&at_end, "restored_to") > end {
        &with_fence
    } else {
        &final_state
    };
    assert_same("at the end", &restored, want);
    assert!(
        restored.iter().any(|(t, _)| t == "t_stream"),
        "streamed rows restored"
    );

    // A flipped byte in any log object is refused, naming the object.
    let damaged = work.path().join("damaged");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&dir)
        .arg(&damaged)
        .status()
        .unwrap();
    assert!(copied.success());
    let victim = std::fs::read_dir(damaged.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let err = restore(&pg, &damaged, "restored_damaged", None).unwrap_err();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        format!("{err:#}").contains("checksum") && format!("{err:#}").contains(&name),
        "{err:#}"
    );
    // Restoring into a database that already has the tables is refused, not merged.
    let err = Command::new(walcast_bin())
        .args([
            "restore",
            "--postgres",
            &pg.url_db("restored_end"),
            "--from",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("already exists"));
}

/// moto's S3 server (installed by scripts/install-deps.sh under tests/.moto), on a free port.
struct S3Server {
    child: Child,
    endpoint: String,
    python: std::path::PathBuf,
}

impl S3Server {
    fn start() -> Option<S3Server> {
        let venv = walcast_testkit::workspace_root().join("tests/.moto/bin");
        if !venv.join("moto_server").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tests/.moto is missing: run scripts/install-deps.sh"
            );
            eprintln!(
                "SKIPPED: no moto_server under tests/.moto (scripts/install-deps.sh installs it)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        poll(std::time::Duration::from_secs(30), "moto_server", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .unwrap();
        Some(S3Server {
            child,
            endpoint,
            python: venv.join("python"),
        })
    }

    fn create_bucket(&self, bucket: &str) {
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')",
            self.endpoint
        );
        let ok = Command::new(&self.python)
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(ok.success(), "creating bucket {bucket}");
    }

    /// What `object_store` reads to reach this endpoint.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_backup_to_an_s3_bucket_resumes_and_restores_the_same() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    s3.create_bucket("walcast");
    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).unwrap();
    pg.psql(SCHEMA).unwrap();
    let relay = Relay::start(&pg, TABLES, &[]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("backup.log");
    let to = std::ffi::OsStr::new("s3://walcast/shop/nightly");
    let mut run = backup_to(&relay, to, &[], &s3.env(), &log).unwrap();
    for k in 1..=200u64 {
        let mut sql = String::from("SET synchronous_commit = on;\n");
        sql.push_str(&txn_sql(k));
        sql.push_str(&side_sql(k));
        if k == 100 {
            sql.push_str(&streamed_sql(1));
            // Killed once its baseline is in the bucket: the next run must resume, not restart.
            poll(std::time::Duration::from_secs(60), "the baseline", || {
                std::fs::read_to_string(&log)
                    .ok()?
                    .contains("baseline written")
                    .then_some(())
            })
            .unwrap();
            run.kill().unwrap();
            run.wait().unwrap();
            run = backup_to(&relay, to, &[], &s3.env(), &log).unwrap();
        }
        pg.psql(&sql).unwrap();
    }
    let want = dump(&pg, "postgres").unwrap();
    let end = fence(&pg).unwrap();
    let with_fence = dump(&pg, "postgres").unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let status = exit_within(
        backup_to(&relay, to, &["--until", &end.to_string()], &s3.env(), &log).unwrap(),
        &relay,
        &log,
    );
    assert!(status.success(), "{}", log_text());
    assert!(log_text().contains("resuming the backup"), "{}", log_text());
    let summary = restore_from(&pg, to, &s3.env(), "restored_s3", Some(end)).unwrap();
    eprintln!("restore from S3: {summary}");
    assert!(lsn_of(&summary, "restored_to") <= end);
    assert_same("from S3", &dump(&pg, "restored_s3").unwrap(), &want);
    // Without --until: as far as the backup reaches, with or without the fence commit.
    let all = restore_from(&pg, to, &s3.env(), "restored_s3_all", None).unwrap();
    let got = dump(&pg, "restored_s3_all").unwrap();
    let expected = if lsn_of(&all, "restored_to") > end {
        &with_fence
    } else {
        &want
    };
    assert_same("from S3, all of it", &got, expected);
}
