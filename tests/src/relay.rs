//! The relay's end-to-end harness: run `walcast relay` as a child process (so tests can
//! `kill -9` it), talk to it with the library client, and apply what it streams the way a
//! careful consumer would (buffer streamed transactions, apply on commit, drop on abort).
//!
//! Also a small deterministic writer whose every transaction can be checked for content,
//! order and exactly-once delivery.

use crate::background::{parse_tables, Background};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use walcast_decoder::decoder::streamed::StreamedTransactions;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::{Decoder, Event, Lsn};
use walcast_relay::client::{ClientError, Delivery, Subscription, Transport};
use walcast_testkit::{workspace_root, PgCluster};

pub use walcast_testkit;

/// Path of the `walcast` binary, built once per test process if cargo did not provide it.
pub fn walcast_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("CARGO_BIN_EXE_walcast") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Cargo only builds binaries of the package under test; build ours (usually a no-op).
        let mut build = Command::new(cargo);
        // `cargo test` gives its tests variables (CARGO_PKG_*, CARGO_MANIFEST_DIR,
        // LD_LIBRARY_PATH, …) that cargo would track as changed and rebuild for; drop them so
        // this build matches the one the developer's own `cargo build` makes.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            let keep = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&k.as_ref())
                || k.starts_with("CARGO_BUILD_")
                || k.starts_with("CARGO_REGISTRIES_")
                || k.starts_with("CARGO_NET_")
                || k.starts_with("CARGO_TERM_");
            if (k.starts_with("CARGO_") && !keep)
                || k == "LD_LIBRARY_PATH"
                || k == "OUT_DIR"
                || k == "RUST_TEST_THREADS"
            {
                build.env_remove(&key);
            }
        }
        let status = build
            .current_dir(&root)
            // Select walcast-tests too: features then unify as in `cargo test -p walcast-tests`,
            // so this build and the test build share artifacts instead of rebuilding each other.
            .args([
                "build",
                "-q",
                "-p",
                "walcast-tests",
                "-p",
                "walcast-relay",
                "--bin",
                "walcast",
            ])
            .status()
            .expect("running cargo build for the walcast binary");
        assert!(status.success(), "cargo build -p walcast-relay failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("walcast")
    })
    .clone()
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with `what`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `walcast relay` child process with its own data directory.
pub struct Relay {
    child: Option<Child>,
    data: tempfile::TempDir,
    args: Vec<String>,
    pub http: SocketAddr,
    /// QUIC address and certificate fingerprint, when started with QUIC.
    pub quic: Option<(SocketAddr, String)>,
    starts: u32,
}

impl Relay {
    /// Starts a relay for `tables` (schema.table) on `pg`, with extra flags, and waits until it
    /// streams (the slot exists, so every later commit will be captured).
    pub fn start(pg: &PgCluster, tables: &[&str], extra: &[&str]) -> Result<Relay> {
        let relay = Self::start_unready(pg, tables, extra)?;
        relay.wait_ready()?;
        Ok(relay)
    }

    /// Like [`Relay::start`], but returns as soon as the relay prints its addresses: before it
    /// has created its slot and copied its initial baseline ([`Relay::wait_ready`] waits).
    pub fn start_unready(pg: &PgCluster, tables: &[&str], extra: &[&str]) -> Result<Relay> {
        let data = tempfile::Builder::new()
            .prefix("walcast-relay-")
            .tempdir()?;
        let mut args: Vec<String> = vec![
            "--postgres".into(),
            pg.url(),
            "--slot".into(),
            "walcast_test".into(),
            "--publication".into(),
            "walcast_test".into(),
            "--data-dir".into(),
            data.path().join("state").display().to_string(),
        ];
        if !tables.is_empty() {
            args.push("--tables".into());
            args.push(tables.join(","));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut relay = Relay {
            child: None,
            data,
            args,
            http: "127.0.0.1:0".parse().expect("literal"),
            quic: None,
            starts: 0,
        };
        relay.spawn_process()?;
        Ok(relay)
    }

    /// Starts the process on the same addresses as before (port 0 the first time) and waits
    /// for it to report streaming.
    fn spawn(&mut self) -> Result<()> {
        self.spawn_process()?;
        self.wait_ready()
    }

    /// Starts the process and waits for it to print its addresses.
    fn spawn_process(&mut self) -> Result<()> {
        let mut args = self.args.clone();
        args.push("--http".into());
        args.push(self.http.to_string());
        let wants_quic = self.args.iter().any(|a| a == "--quic");
        if let (Some((addr, _)), true) = (&self.quic, wants_quic) {
            // Keep the QUIC port across restarts; the certificate is new each start.
            if let Some(i) = args.iter().position(|a| a == "--quic") {
                args[i + 1] = addr.to_string();
            }
        }
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("relay.log"))?;
        let mut child = Command::new(walcast_bin())
            .arg("relay")
            .args(&args)
            .env("RUST_LOG", "info,walcast_relay=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("spawning walcast relay")?;
        let stdout = child.stdout.take().context("relay stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Drain stdout for the process's lifetime so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut http = None;
        let mut quic = None;
        while http.is_none() || (wants_quic && quic.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "relay did not print its addresses; log:\n{}",
                    self.log_text()
                )
            })?;
            if let Some(rest) = line.strip_prefix("walcast relay: HTTP on http://") {
                let addr = rest.split_whitespace().next().unwrap_or("");
                http = Some(addr.parse::<SocketAddr>().context("HTTP address")?);
            } else if let Some(rest) = line.strip_prefix("walcast relay: QUIC on quic://") {
                let mut words = rest.split_whitespace();
                let addr: SocketAddr = words.next().unwrap_or("").parse()?;
                let fp = words.last().unwrap_or("").to_string();
                quic = Some((addr, fp));
            }
        }
        self.http = http.expect("loop ends with an address");
        if quic.is_some() {
            self.quic = quic;
        }
        Ok(())
    }

    /// Waits until `/readyz` says the relay streams from PostgreSQL.
    pub fn wait_ready(&self) -> Result<()> {
        poll(Duration::from_secs(30), "the relay to be ready", || {
            matches!(http_get(self.http, "/readyz"), Ok((200, _))).then_some(())
        })
        .with_context(|| format!("relay log:\n{}", self.log_text()))?;
        Ok(())
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn quic_url(&self) -> Option<(String, String)> {
        self.quic
            .as_ref()
            .map(|(a, fp)| (format!("quic://{a}"), fp.clone()))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9`: no chance to sync or confirm anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns its status.
    pub fn sigterm(&mut self) -> Result<ExitStatus> {
        let mut c = self.child.take().context("relay not running")?;
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        let start = Instant::now();
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                bail!("relay ignored SIGTERM for 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again with the same data directory and addresses.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    /// The directory of the relay's log segments.
    pub fn log_dir(&self) -> PathBuf {
        self.data.path().join("state").join("log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.data.path().join("relay.log")).unwrap_or_default()
    }

    /// A value from `/metrics` (a line `name value`).
    pub fn metric(&self, name: &str) -> Result<u64> {
        let (status, body) = http_get(self.http, "/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        for line in body.lines() {
            if let Some(v) = line.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                return v.trim().parse::<f64>().map(|f| f as u64).context("metric");
            }
        }
        bail!("metric {name} not found in:\n{body}")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- relay log (started {} times) ----\n{}",
                self.starts,
                self.log_text()
            );
        }
        self.kill9();
    }
}

/// A minimal blocking HTTP/1.1 GET (status, body), so tests need no second HTTP stack. Reads
/// until the server closes or for at most 5 s (a stream never closes).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One applied (committed) transaction: its commit end LSN and its changes as the JSON lines
/// contract prints them (`{"type":"insert","schema":…,"table":…,"new":{…}}`).
#[derive(Debug, Clone)]
pub struct Txn {
    pub end_lsn: Lsn,
    pub streamed: bool,
    pub changes: Vec<serde_json::Value>,
}

impl Txn {
    /// Changes of table `table` (in schema public).
    pub fn on(&self, table: &str) -> Vec<&serde_json::Value> {
        self.changes
            .iter()
            .filter(|c| c["table"] == table && c["schema"] == "public")
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct ConsumerState {
    pub txns: Vec<Txn>,
    /// How many streamed-transaction aborts were seen.
    pub stream_aborts: usize,
    /// Reconnects signalled by the subscription.
    pub resets: usize,
    /// The last heartbeat LSN.
    pub heartbeat: Option<Lsn>,
    /// Why the subscription stopped, if it did.
    pub error: Option<String>,
    pub resync_required: bool,
    /// Deliveries of any kind (frames, heartbeats, resets).
    pub deliveries: u64,
}

/// A library client on its own thread and runtime, applying committed transactions.
pub struct Consumer(Background<ConsumerState>);

impl Consumer {
    /// Subscribes to `url` (http:// or quic://) after `from`, for `tables` (empty: all).
    pub fn start(url: &str, cert: Option<&str>, from: Option<Lsn>, tables: &[&str]) -> Consumer {
        let (url, cert, tables) = (
            url.to_string(),
            cert.map(str::to_string),
            parse_tables(tables),
        );
        Consumer(Background::spawn(
            move |st| async move { consume(&url, cert.as_deref(), from, tables, &st).await },
            |s, e| {
                s.resync_required = matches!(
                    e.downcast_ref::<ClientError>(),
                    Some(ClientError::ResyncRequired { .. })
                );
                s.error = Some(format!("{e:#}"));
            },
        ))
    }

    pub fn with<T>(&self, f: impl FnOnce(&ConsumerState) -> T) -> T {
        self.0.with(f)
    }

    pub fn txns(&self) -> Vec<Txn> {
        self.with(|s| s.txns.clone())
    }

    pub fn error(&self) -> Option<String> {
        self.with(|s| s.error.clone())
    }

    /// Waits until a transaction ending after `lsn` was applied (for `lsn` from [`fence`]: the
    /// fence commit); fails early if the subscription stopped with an error.
    pub fn wait_for(&self, lsn: Lsn, timeout: Duration) -> Result<Vec<Txn>> {
        poll(timeout, &format!("a commit ending after {lsn}"), || {
            self.with(|s| {
                if s.error.is_some() || s.txns.last().is_some_and(|t| t.end_lsn > lsn) {
                    Some(())
                } else {
                    None
                }
            })
        })
        .with_context(|| {
            format!(
                "consumer has {} txns, last {:?}",
                self.with(|s| s.txns.len()),
                self.with(|s| s.txns.last().map(|t| t.end_lsn))
            )
        })?;
        if let Some(e) = self.error() {
            bail!("the subscription stopped: {e}");
        }
        Ok(self.txns())
    }
}

async fn consume(
    url: &str,
    cert: Option<&str>,
    from: Option<Lsn>,
    tables: Vec<(String, String)>,
    st: &Mutex<ConsumerState>,
) -> Result<()> {
    let transport = Transport::from_url(url, cert)?;
    let mut sub = Subscription::new(transport, from, tables);
    let mut decoder = Decoder::new();
    let mut pending: StreamedTransactions<serde_json::Value> = StreamedTransactions::new();
    let mut current: Option<Vec<serde_json::Value>> = None;
    let mut line = String::new();
    loop {
        let delivery = sub.next().await?;
        let mut s = st.lock().unwrap();
        s.deliveries += 1;
        let frame = match delivery {
            Delivery::Frame(f) => f,
            Delivery::Reset => {
                decoder.reset();
                pending.clear();
                current = None;
                s.resets += 1;
                continue;
            }
            Delivery::Heartbeat(l) => {
                s.heartbeat = Some(l);
                continue;
            }
        };
        let top = decoder.stream_xid();
        let event = decoder
            .decode(&frame.payload)
            .with_context(|| format!("decoding the frame at {}", frame.lsn))?;
        match &event {
            Event::Begin(_) => {
                if current.is_some() {
                    bail!("Begin at {} inside an open transaction", frame.lsn);
                }
                current = Some(Vec::new());
            }
            Event::Insert(_) | Event::Update(_) | Event::Delete(_) | Event::Truncate(_) => {
                line.clear();
                write_event(&event, None, &mut line);
                let json: serde_json::Value = serde_json::from_str(&line)?;
                match (top, current.as_mut()) {
                    (Some(top), _) => pending.push(top, event.xid().unwrap_or(top), json),
                    (None, Some(cur)) => cur.push(json),
                    (None, None) => bail!("a change at {} outside any transaction", frame.lsn),
                }
            }
            Event::Commit(c) => {
                let changes = current
                    .take()
                    .with_context(|| format!("Commit at {} without Begin", frame.lsn))?;
                s.txns.push(Txn {
                    end_lsn: c.end_lsn,
                    streamed: false,
                    changes,
                });
            }
            Event::StreamCommit(c) => {
                let changes = pending.commit(c.xid);
                s.txns.push(Txn {
                    end_lsn: c.end_lsn,
                    streamed: true,
                    changes,
                });
            }
            Event::StreamAbort(a) => {
                pending.abort(a);
                s.stream_aborts += 1;
            }
            _ => {}
        }
    }
}

// ---- The checked writer ----

/// Creates the writer's tables: `t` (checked data) and `fence` (see [`fence`]).
pub fn create_tables(pg: &PgCluster) -> Result<()> {
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, seq bigint NOT NULL, v text); \
         CREATE TABLE fence (n serial PRIMARY KEY);",
    )?;
    Ok(())
}

/// SQL of the writer's transaction `i` (1-based): insert row i, update row i-3, delete row
/// i-7. Every change carries `i` (new rows) or names row i-7 (delete key), so a consumer can
/// check each transaction's content and their order.
pub fn txn_sql(i: u64) -> String {
    format!(
        "BEGIN; INSERT INTO t VALUES ({i}, {i}, 'v{i}'); \
         UPDATE t SET seq = {i}, v = 'u{i}' WHERE id = {}; \
         DELETE FROM t WHERE id = {}; COMMIT;\n",
        i as i64 - 3,
        i as i64 - 7
    )
}

/// Commits the writer's transactions `range`, many per psql call.
pub fn write_txns(pg: &PgCluster, range: std::ops::RangeInclusive<u64>) -> Result<()> {
    write_txns_paced(pg, range, 100, Duration::ZERO, |_| {})
}

/// Commits `range` in psql calls of `per_call` transactions, sleeping `pause` between calls
/// and reporting the last committed `i` after each call. Commits are synchronous (the test
/// clusters default to `synchronous_commit = off`, whose commits a crash may lose).
pub fn write_txns_paced(
    pg: &PgCluster,
    range: std::ops::RangeInclusive<u64>,
    per_call: usize,
    pause: Duration,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let all: Vec<u64> = range.collect();
    for chunk in all.chunks(per_call.max(1)) {
        let mut sql = String::from("SET synchronous_commit = on;\n");
        sql.extend(chunk.iter().map(|i| txn_sql(*i)));
        pg.psql(&sql)?;
        progress(*chunk.last().expect("chunks are not empty"));
        std::thread::sleep(pause);
    }
    Ok(())
}

/// The changes transaction `i` makes: (op, id, seq) with seq 0 for deletes.
pub fn expected_changes(i: u64) -> Vec<(String, i64, i64)> {
    let i = i as i64;
    let mut v = vec![("insert".to_string(), i, i)];
    if i > 3 {
        v.push(("update".into(), i - 3, i));
    }
    if i > 7 {
        v.push(("delete".into(), i - 7, 0));
    }
    v
}

/// (op, id, seq) of one change on `t` as the JSON lines contract prints it.
pub fn change_summary(c: &serde_json::Value) -> (String, i64, i64) {
    let op = c["type"].as_str().unwrap_or("?").to_string();
    let row = if op == "delete" {
        c.get("key").or_else(|| c.get("old"))
    } else {
        c.get("new")
    };
    let row = row.cloned().unwrap_or_default();
    let id = row["id"].as_i64().unwrap_or(-1);
    let seq = if op == "delete" {
        0
    } else {
        row["seq"].as_i64().unwrap_or(-1)
    };
    (op, id, seq)
}

/// Asserts that `txns` hold exactly the writer's transactions `range` on `t`, each once, in
/// order, with strictly increasing commit end LSNs.
pub fn check_exactly_once(txns: &[Txn], range: std::ops::RangeInclusive<u64>) -> Result<()> {
    for w in txns.windows(2) {
        if w[1].end_lsn <= w[0].end_lsn {
            bail!(
                "commit end LSNs not increasing: {} then {}",
                w[0].end_lsn,
                w[1].end_lsn
            );
        }
    }
    let got: Vec<Vec<(String, i64, i64)>> = txns
        .iter()
        .map(|t| t.on("t"))
        .filter(|c| !c.is_empty())
        .map(|c| c.into_iter().map(change_summary).collect())
        .collect();
    let want: Vec<Vec<(String, i64, i64)>> = range.clone().map(expected_changes).collect();
    if got.len() != want.len() {
        let firsts: Vec<i64> = got.iter().map(|c| c[0].2).collect();
        let head: Vec<String> = txns
            .iter()
            .take(4)
            .map(|t| format!("{} {:?}", t.end_lsn, t.changes))
            .collect();
        bail!(
            "expected {} transactions on t ({range:?}), got {}; first seqs: {:?}; first txns: {head:#?}",
            want.len(),
            got.len(),
            firsts
        );
    }
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            bail!("transaction #{n} differs: got {g:?}, want {w:?}");
        }
    }
    Ok(())
}

/// Applies `t`'s changes to a map id -> (seq, v), as a replica would.
pub fn apply_to_map(txns: &[Txn]) -> std::collections::BTreeMap<i64, (i64, String)> {
    let mut m = std::collections::BTreeMap::new();
    for t in txns {
        for c in t.on("t") {
            match c["type"].as_str() {
                Some("insert") | Some("update") => {
                    let n = &c["new"];
                    m.insert(
                        n["id"].as_i64().unwrap_or(-1),
                        (
                            n["seq"].as_i64().unwrap_or(-1),
                            n["v"].as_str().unwrap_or("").to_string(),
                        ),
                    );
                }
                Some("delete") => {
                    m.remove(&c["key"]["id"].as_i64().unwrap_or(-1));
                }
                _ => {}
            }
        }
    }
    m
}

/// The table `t` as PostgreSQL has it, in the same shape as [`apply_to_map`].
pub fn table_map(pg: &PgCluster) -> Result<std::collections::BTreeMap<i64, (i64, String)>> {
    let out = pg.psql("SELECT id, seq, v FROM t ORDER BY id")?;
    let mut m = std::collections::BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let mut f = line.split('|');
        let id = f.next().unwrap_or("").parse()?;
        let seq = f.next().unwrap_or("").parse()?;
        let v = f.next().unwrap_or("").to_string();
        m.insert(id, (seq, v));
    }
    Ok(m)
}

/// The server's current WAL insert position, then one more commit (into `fence`): every commit
/// made before ends at or before the returned LSN (the last one may end exactly there), and the
/// fence commit ends after it.
/// (Not `pg_current_wal_lsn()`: with `synchronous_commit = off` the write position lags the
/// commits already made, so a commit made before could end after it.)
pub fn fence(pg: &PgCluster) -> Result<Lsn> {
    let lsn = pg_lsn(pg, "SELECT pg_current_wal_insert_lsn()")?;
    pg.psql("INSERT INTO fence DEFAULT VALUES")?;
    Ok(lsn)
}

/// Runs a query returning one pg_lsn.
pub fn pg_lsn(pg: &PgCluster, sql: &str) -> Result<Lsn> {
    let out = pg.psql(sql)?;
    out.trim()
        .parse::<Lsn>()
        .map_err(|e| anyhow::anyhow!("{sql}: {out:?}: {e}"))
}

/// The slot's confirmed_flush_lsn (None while unset).
pub fn confirmed_flush(pg: &PgCluster) -> Result<Option<Lsn>> {
    let out = pg.psql(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walcast_test'",
    )?;
    let s = out.trim();
    if s.is_empty() {
        return Ok(None);
    }
    Ok(Some(s.parse::<Lsn>().map_err(|e| {
        anyhow::anyhow!("confirmed_flush_lsn {s:?}: {e}")
    })?))
}

/// One QUIC stream request with `body` (the relay's JSON request, or anything else); returns the bytes received
/// until `until` appears in them, the stream ends, or `timeout` passes.
pub async fn quic_request(
    addr: SocketAddr,
    sha256: &str,
    body: impl AsRef<[u8]>,
    until: &str,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let Transport::Quic {
        endpoint,
        client_config,
        ..
    } = Transport::from_url(&format!("quic://{addr}"), Some(sha256))?
    else {
        bail!("not a QUIC transport");
    };
    let conn = endpoint
        .connect_with(client_config, addr, "localhost")?
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(body.as_ref()).await?;
    send.finish()?;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found = got.windows(until.len()).any(|w| w == until.as_bytes());
        if found {
            break;
        }
        match tokio::time::timeout_at(deadline, recv.read_chunk(64 * 1024, true)).await {
            Ok(Ok(Some(c))) => got.extend_from_slice(&c.bytes),
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(e)) => bail!("QUIC read: {e}"),
        }
    }
    Ok(got)
}
