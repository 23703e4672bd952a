//! Durable consumers end to end, against a real PostgreSQL and the real `walcast` binary:
//! the slot never confirms past the lowest consumer ack, acks survive kill -9 of the relay,
//! a consumer resumes exactly after its ack, removing a consumer releases the slot and the log,
//! and retention keeps what a consumer still needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use walcast_decoder::Lsn;
use walcast_testkit::{workspace_root, PgCluster};

/// The `walcast` binary, built if needed (integration tests of another crate cannot name it).
fn walcast_bin() -> PathBuf {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-q", "-p", "walcast-relay", "--bin", "walcast"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building walcast failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("walcast")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `walcast relay` process; killed with SIGKILL when dropped.
struct Relay {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Relay {
    fn start(bin: &Path, pg: &PgCluster, data: &Path, port: u16) -> Result<Relay> {
        Self::start_with(bin, pg, data, port, &[])
    }

    fn start_with(
        bin: &Path,
        pg: &PgCluster,
        data: &Path,
        port: u16,
        extra: &[&str],
    ) -> Result<Relay> {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = data.with_file_name(format!("relay-{n}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(["relay", "--postgres", &pg.url(), "--tables", "public.t"])
            .arg("--data-dir")
            .arg(data)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(["--segment-bytes", "64KiB", "--retention-bytes", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let relay = Relay { child, port, log };
        relay.wait_ready()?;
        Ok(relay)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(self.port, "GET", "/readyz", None) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("relay not ready; log:\n{}", self.log_text())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = http(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn durable(&self) -> Lsn {
        let (_, s) = self.call("GET", "/v1/status", None);
        lsn(&s["positions"]["durable_lsn"])
    }

    fn segments(&self) -> u64 {
        let (_, s) = self.call("GET", "/v1/status", None);
        s["log"]["segments"].as_u64().unwrap_or(0)
    }

    fn consumer(&self, name: &str) -> Value {
        let (status, v) = self.call("GET", &format!("/v1/consumers/{name}"), None);
        assert_eq!(status, 200, "GET consumer {name}: {v}");
        v
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lsn(v: &Value) -> Lsn {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an LSN: {v}"))
}

/// A minimal HTTP/1.1 call (`Connection: close`); returns the status and the body. Only the
/// status line is read from `/v1/stream`, which never ends.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    if path.starts_with("/v1/stream") {
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    } else {
        s.read_to_end(&mut buf)?;
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn slot_confirmed(pg: &PgCluster) -> Lsn {
    pg.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walcast'")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// `walcast tail` until the commit at `until`; returns the end LSNs of the commits it printed.
fn tail(bin: &Path, url: &str, extra: &[&str], until: Lsn) -> Vec<Lsn> {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["tail", "--url", url, "--until", &until.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running walcast tail");
    assert!(
        out.status.success(),
        "tail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("tail {url} {extra:?} took {:?}", t.elapsed());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("commit_lsn").is_some() && v.get("end_lsn").is_some())
        .map(|v| lsn(&v["end_lsn"]))
        .collect()
}

#[test]
fn durable_consumers_bound_the_slot_survive_restarts_and_hold_retention() {
    let bin = walcast_bin();
    let pg = PgCluster::start(15).unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let relay = Relay::start(&bin, &pg, &data, port).unwrap();

    // Two consumers before any change: c1 will follow, c2 registers and then goes silent.
    let (st, c1) = relay.call("PUT", "/v1/consumers/c1", None);
    assert_eq!(st, 201, "{c1}");
    let (st, again) = relay.call("PUT", "/v1/consumers/c1", Some(r#"{"from":"0/0"}"#));
    assert_eq!(st, 200, "registering again is idempotent: {again}");
    assert_eq!(again["acked_lsn"], c1["acked_lsn"]);
    let (st, c2) = relay.call("PUT", "/v1/consumers/c2", Some(""));
    assert_eq!(st, 201, "{c2}");
    let start = lsn(&c2["acked_lsn"]);
    let (st, e) = relay.call("PUT", "/v1/consumers/bad%20name", None);
    assert_eq!((st, e["code"].as_str()), (400, Some("bad_request")));

    // 24 transactions of ~8 KB each: several 64 KiB segments.
    for i in 0..24 {
        pg.psql(&format!(
            "INSERT INTO t SELECT {i}, string_agg(md5(random()::text), '') FROM generate_series(1, 250)"
        ))
        .unwrap();
    }
    let last_insert: Lsn = pg
        .psql("SELECT pg_current_wal_insert_lsn()")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the log to hold every insert",
        Duration::from_secs(30),
        || relay.durable() >= last_insert,
    );
    let commits = tail(&bin, &url, &[], relay.durable());
    assert_eq!(commits.len(), 24, "{commits:?}");
    assert!(commits[0] > start);
    let last = commits[23];

    // Ack halfway: the slot goes exactly there and no further, although the log holds more.
    let a = commits[9];
    let (st, v) = relay.call(
        "POST",
        "/v1/consumers/c1/ack",
        Some(&format!(r#"{{"lsn":"{a}"}}"#)),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(lsn(&v["acked_lsn"]), a);
    assert!(v["last_ack_unix_ms"].as_u64().is_some());
    let (st, v) = relay.call(
        "POST",
        "/v1/consumers/c1/ack",
        Some(&format!(r#"{{"lsn":"{}"}}"#, commits[3])),
    );
    assert_eq!(
        (st, lsn(&v["acked_lsn"])),
        (200, a),
        "acks never move backwards"
    );
    let beyond = Lsn(relay.durable().0 + 1);
    let (st, v) = relay.call(
        "POST",
        "/v1/consumers/c1/ack",
        Some(&format!(r#"{{"lsn":"{beyond}"}}"#)),
    );
    assert_eq!(
        st, 400,
        "an ack beyond the durable position is refused: {v}"
    );
    // c2 has acked nothing: the slot stays below the first transaction.
    std::thread::sleep(Duration::from_secs(1));
    assert!(slot_confirmed(&pg) < commits[0], "c2 holds the slot");
    // c2 acks less than c1: the slot goes exactly to the lowest ack, and no further.
    let b = commits[4];
    let (st, _) = relay.call(
        "POST",
        "/v1/consumers/c2/ack",
        Some(&format!(r#"{{"lsn":"{b}"}}"#)),
    );
    assert_eq!(st, 200);
    wait_for(
        "the slot to confirm the lowest ack",
        Duration::from_secs(20),
        || slot_confirmed(&pg) == b,
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let c = slot_confirmed(&pg);
        assert!(c <= b, "slot confirmed {c} past the lowest ack {b}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(relay.durable() >= last);

    // Visible to operators: lag, metrics.
    let (_, list) = relay.call("GET", "/v1/consumers", None);
    assert_eq!(
        list["consumers"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    assert!(relay.consumer("c1")["lag_bytes"].as_u64().unwrap() >= last.0 - a.0);
    let (_, metrics) = http(port, "GET", "/metrics", None).unwrap();
    assert!(metrics.contains("walcast_consumers 2\n"), "{metrics}");
    assert!(metrics.contains("walcast_consumer_lag_bytes{consumer=\"c2\"}"));
    let cli = Command::new(&bin)
        .args(["consumers", "list", "--url", &url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success() && table.contains("c1") && table.contains("c2"),
        "{table}"
    );

    // Retention (1 byte budget, checked every 5 s) keeps what the consumers still need.
    // (the gauge is refreshed by the retention pass, every 5 s)
    std::thread::sleep(Duration::from_secs(6));
    let segs_before = relay.segments();
    assert!(
        segs_before >= 2,
        "retention deleted what c2 needs: {segs_before} segments left"
    );
    let (st, _) = http(port, "GET", "/v1/stream?consumer=c2", None).unwrap();
    assert_eq!(st, 200, "c2's position must still be in the log");

    // kill -9 and restart: the consumers and their acks are still there, the slot stays put.
    relay.kill9();
    let relay = Relay::start(&bin, &pg, &data, port).unwrap();
    assert_eq!(lsn(&relay.consumer("c1")["acked_lsn"]), a);
    assert_eq!(lsn(&relay.consumer("c2")["acked_lsn"]), b);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let c = slot_confirmed(&pg);
        assert!(
            c <= b,
            "after restart the slot confirmed {c} past the ack {b}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Resuming as c1 continues exactly after its ack, and tail acks as it goes.
    let resumed = tail(&bin, &url, &["--consumer", "c1"], last);
    assert_eq!(resumed, commits[10..].to_vec());
    assert_eq!(lsn(&relay.consumer("c1")["acked_lsn"]), last);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slot_confirmed(&pg), b, "c2 still holds the slot");

    // Removing c2 releases the slot up to the log's durable position, and the log.
    let (st, _) = relay.call("DELETE", "/v1/consumers/c2", None);
    assert_eq!(st, 204);
    assert_eq!(relay.call("GET", "/v1/consumers/c2", None).0, 404);
    let durable = relay.durable();
    wait_for(
        "the slot to reach the log's durable position",
        Duration::from_secs(20),
        || slot_confirmed(&pg) >= durable,
    );
    wait_for(
        "retention to delete what nobody needs",
        Duration::from_secs(20),
        || relay.segments() < segs_before,
    );
    let (st, _) = http(
        port,
        "GET",
        &format!("/v1/stream?from={}", commits[0]),
        None,
    )
    .unwrap();
    assert_eq!(
        st, 410,
        "the start of the log is gone once no consumer needs it"
    );
}

#[test]
fn a_consumer_registers_streams_and_acks_over_quic() {
    let bin = walcast_bin();
    let pg = PgCluster::start(15).unwrap();
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let qport = free_port();
    let quic_addr = format!("127.0.0.1:{qport}");
    let relay = Relay::start_with(&bin, &pg, &data, port, &["--quic", &quic_addr]).unwrap();
    let fingerprint = relay
        .log_text()
        .lines()
        .find_map(|l| l.split("certificate SHA-256 ").nth(1).map(str::trim))
        .map(str::to_owned)
        .expect("the relay prints its certificate fingerprint");
    for i in 0..6 {
        pg.psql(&format!("INSERT INTO t VALUES ({i}, 'v{i}')"))
            .unwrap();
    }
    let last_insert: Lsn = pg
        .psql("SELECT pg_current_wal_insert_lsn()")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the log to hold every insert",
        Duration::from_secs(30),
        || relay.durable() >= last_insert,
    );
    let http_url = format!("http://127.0.0.1:{port}");
    let commits = tail(&bin, &http_url, &[], relay.durable());
    assert_eq!(commits.len(), 6, "{commits:?}");

    let quic_url = format!("quic://{quic_addr}");
    let from = commits[1].to_string();
    // Registration (with a start position) and acks go over QUIC control streams.
    let got = tail(
        &bin,
        &quic_url,
        &[
            "--cert-sha256",
            &fingerprint,
            "--consumer",
            "q1",
            "--from",
            &from,
        ],
        commits[3],
    );
    assert_eq!(got, commits[2..=3].to_vec());
    let c = relay.consumer("q1");
    assert_eq!(lsn(&c["acked_lsn"]), commits[3], "{c}");
    // The stream request names the consumer: it resumes after the ack.
    let got = tail(
        &bin,
        &quic_url,
        &["--cert-sha256", &fingerprint, "--consumer", "q1"],
        commits[5],
    );
    assert_eq!(got, commits[4..=5].to_vec());
    assert_eq!(lsn(&relay.consumer("q1")["acked_lsn"]), commits[5]);
    // The relay notices a closed stream at its next write (a heartbeat at the latest).
    wait_for(
        "the consumer to show as disconnected",
        Duration::from_secs(15),
        || relay.consumer("q1")["connected"] == 0,
    );
}
