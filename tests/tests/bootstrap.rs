//! Consistent bootstrap end to end (docs/bootstrap.md), against real PostgreSQL clusters:
//! clients that bootstrap while writers insert, update and delete, then apply the stream, end
//! with exactly `SELECT * FROM` each table; concurrent bootstraps share one job; a table filter
//! (or a token's grant) limits the image to its tables.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use walcast_decoder::frame::FrameKind;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::{Decoder, Event, Lsn};
use walcast_relay::client::{Delivery, Subscription, Transport};
use walcast_testkit::PgCluster;
use walcast_tests::background::{parse_tables, Background};
use walcast_tests::relay::*;

const WAIT: Duration = Duration::from_secs(60);
const TABLES: &[&str] = &["public.t", "public.u", "public.fence"];
/// Rows of `t` before the relay starts (the issue asks for tables of 100k+ rows): enough pages
/// (once analyzed) to be read in CTID ranges.
const PRELOAD: u64 = 100_000;

/// table -> id -> full row as JSON (what the decoder prints for the new tuple).
type Tables = BTreeMap<String, BTreeMap<i64, serde_json::Value>>;

#[derive(Default)]
struct State {
    tables: Tables,
    /// Rows the image carried.
    boot_rows: u64,
    /// The image's consistent point, once complete.
    boot_done: Option<Lsn>,
    last_end: Lsn,
    error: Option<String>,
}

/// A bootstrapping client on its own thread, applying rows and committed changes to maps.
struct BootClient(Background<State>);

impl BootClient {
    fn start(url: &str, tables: &[&str]) -> BootClient {
        Self::start_with(url, None, tables)
    }

    /// Over `url` (http:// or quic://, with the relay's certificate fingerprint for QUIC).
    fn start_with(url: &str, cert: Option<&str>, tables: &[&str]) -> BootClient {
        let (url, cert, tables) = (
            url.to_string(),
            cert.map(str::to_string),
            parse_tables(tables),
        );
        BootClient(Background::spawn(
            move |st| async move { run_client(&url, cert.as_deref(), tables, &st).await },
            |s, e| s.error = Some(format!("{e:#}")),
        ))
    }

    fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        self.0.with(f)
    }

    /// Waits until the client applied a commit ending after `lsn`; returns its tables.
    fn wait_for(&self, lsn: Lsn) -> Result<(Tables, u64, Lsn)> {
        poll(WAIT, &format!("a commit ending after {lsn}"), || {
            self.with(|s| (s.error.is_some() || s.last_end > lsn).then_some(()))
        })
        .with_context(|| format!("client at {}", self.with(|s| s.last_end)))?;
        self.with(|s| match &s.error {
            Some(e) => bail!("client failed: {e}"),
            None => Ok((
                s.tables.clone(),
                s.boot_rows,
                s.boot_done.context("bootstrap never completed")?,
            )),
        })
    }
}

/// The key of a row of `t` or `u` (`id`), or of `fence` (`n`).
fn key_of(row: &serde_json::Value) -> Result<i64> {
    row["id"]
        .as_i64()
        .or_else(|| row["n"].as_i64())
        .with_context(|| format!("row without an integer key: {row}"))
}

async fn run_client(
    url: &str,
    cert: Option<&str>,
    tables: Vec<(String, String)>,
    st: &Mutex<State>,
) -> Result<()> {
    let mut sub = Subscription::new(Transport::from_url(url, cert)?, None, tables).with_bootstrap();
    let mut decoder = Decoder::new();
    let mut txn: Option<Vec<serde_json::Value>> = None;
    let mut line = String::new();
    loop {
        let d = sub.next().await?;
        let mut s = st.lock().unwrap();
        let frame = match d {
            Delivery::Frame(f) => f,
            Delivery::Reset => {
                decoder.reset();
                txn = None;
                continue;
            }
            Delivery::Heartbeat(lsn) => {
                if s.boot_done.is_none() {
                    s.boot_done = Some(lsn);
                    s.last_end = s.last_end.max(lsn);
                }
                continue;
            }
        };
        let event = decoder.decode(&frame.payload)?;
        line.clear();
        match &event {
            Event::Insert(_) | Event::Update(_) | Event::Delete(_) => {
                write_event(&event, None, &mut line);
                let json: serde_json::Value = serde_json::from_str(&line)?;
                if frame.kind == FrameKind::Bootstrap {
                    if s.boot_done.is_some() {
                        bail!("a bootstrap row after the image's end");
                    }
                    let table = json["table"].as_str().unwrap_or("").to_string();
                    let row = json["new"].clone();
                    s.tables
                        .entry(table)
                        .or_default()
                        .insert(key_of(&row)?, row);
                    s.boot_rows += 1;
                } else {
                    txn.as_mut()
                        .context("a change outside any transaction")?
                        .push(json);
                }
            }
            Event::Begin(_) => txn = Some(Vec::new()),
            Event::Commit(c) => {
                if s.boot_done.is_none() {
                    bail!("a commit before the image was complete");
                }
                for c in txn.take().context("Commit without Begin")? {
                    let table = c["table"].as_str().unwrap_or("").to_string();
                    let m = s.tables.entry(table).or_default();
                    match c["type"].as_str() {
                        Some("insert") | Some("update") => {
                            m.insert(key_of(&c["new"])?, c["new"].clone());
                        }
                        Some("delete") => {
                            m.remove(&key_of(&c["key"])?);
                        }
                        _ => {}
                    }
                }
                if c.end_lsn <= s.last_end {
                    bail!("commit {} applied twice (last {})", c.end_lsn, s.last_end);
                }
                s.last_end = c.end_lsn;
            }
            Event::StreamStart(_) => bail!("streamed transactions are not expected here"),
            _ => {}
        }
    }
}

/// The `pieces` of every "bootstrap: copying" line of the relay's log (ANSI colors removed).
fn copy_pieces(log: &str) -> Vec<usize> {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("bootstrap: copying"))
        .filter_map(|l| {
            let rest = &l[l.find("pieces=")? + "pieces=".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// `table` as PostgreSQL has it: id -> row_to_json.
fn pg_table(pg: &PgCluster, table: &str) -> Result<BTreeMap<i64, serde_json::Value>> {
    let out = pg.psql(&format!(
        "SELECT row_to_json(x)::text FROM {table} x ORDER BY id"
    ))?;
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l)?;
        m.insert(key_of(&v)?, v);
    }
    Ok(m)
}

fn create_schema(pg: &PgCluster) -> Result<()> {
    pg.psql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, seq bigint NOT NULL, v text, note text); \
         CREATE TABLE u (id bigint PRIMARY KEY, label text NOT NULL, n int); \
         CREATE TABLE fence (n serial PRIMARY KEY); \
         CREATE SEQUENCE ids START {}; \
         INSERT INTO t SELECT i, i, 'v' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE E'tab\\there \\\\ nl\\n' || i END \
           FROM generate_series(1, {PRELOAD}) i; \
         INSERT INTO u SELECT i, 'u' || i, i FROM generate_series(1, 1000) i; \
         ANALYZE t;",
        PRELOAD + 1
    ))?;
    Ok(())
}

/// Writers inserting, updating and deleting on both tables until stopped.
fn start_writer(pg: &PgCluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Result<u64>> {
    // Commands are not Clone: keep what builds one, for the writer thread.
    let template = pg.psql_command();
    let program = template.get_program().to_owned();
    let args: Vec<_> = template.get_args().map(|a| a.to_owned()).collect();
    let pg_psql = move |sql: &str| -> Result<()> {
        let out = std::process::Command::new(&program)
            .args(&args)
            .arg("-q")
            .arg("-c")
            .arg(sql)
            .output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut sql = String::from("SET synchronous_commit = on;\n");
            for _ in 0..20 {
                sql.push_str(&format!(
                    "BEGIN; \
                     INSERT INTO t VALUES (nextval('ids'), 0, 'new', E'w\\\\{n}'); \
                     UPDATE t SET seq = seq + 1, v = md5(random()::text) WHERE id = (random() * {PRELOAD})::int; \
                     DELETE FROM t WHERE id = (random() * {PRELOAD})::int; \
                     UPDATE u SET n = n + 1, label = 'w{n}' WHERE id = (random() * 1000)::int; \
                     COMMIT;\n"
                ));
                n += 1;
            }
            pg_psql(&sql)?;
        }
        Ok(n)
    })
}

fn compare(pg: &PgCluster, got: &Tables, tables: &[&str]) -> Result<()> {
    for t in tables {
        let want = pg_table(pg, t)?;
        let empty = BTreeMap::new();
        let have = got.get(*t).unwrap_or(&empty);
        if have != &want {
            let missing: Vec<_> = want
                .keys()
                .filter(|k| !have.contains_key(k))
                .take(5)
                .collect();
            let extra: Vec<_> = have
                .keys()
                .filter(|k| !want.contains_key(k))
                .take(5)
                .collect();
            let differ: Vec<_> = want
                .iter()
                .filter(|(k, v)| have.get(k).is_some_and(|h| h != *v))
                .take(3)
                .map(|(k, v)| format!("{k}: want {v} have {}", have[k]))
                .collect();
            bail!(
                "table {t}: {} rows in PostgreSQL, {} at the client; missing {missing:?}, extra {extra:?}, differing {differ:?}",
                want.len(),
                have.len()
            );
        }
    }
    Ok(())
}

/// Bootstrap under fire on one major: a client during the relay's own initial copy, clients
/// at random moments while writers run (one batch of concurrent clients that must share one
/// job), a table-filtered client; all end equal to PostgreSQL.
fn under_fire(major: u32, shared_batch: usize) -> Result<()> {
    let pg = PgCluster::start(major)?;
    create_schema(&pg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&pg, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    // Images are offered for 2 s, so later clients need jobs of their own. The first client
    // asks as soon as the relay listens, while it creates its slot and copies its baseline.
    let relay = Relay::start_unready(&pg, TABLES, &["--bootstrap-max-age", "2s"])?;
    let first = BootClient::start(&relay.url(), &[]);
    let early = !matches!(http_get(relay.http, "/readyz"), Ok((200, _)));
    relay.wait_ready()?;
    eprintln!("PG{major}: the first client asked before the relay was ready: {early}");
    let r = fire(&pg, &relay, first, stop, writer, major, shared_batch);
    if r.is_err() {
        eprintln!("---- relay log ----\n{}", relay.log_text());
    }
    r
}

fn fire(
    pg: &PgCluster,
    relay: &Relay,
    first: BootClient,
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<Result<u64>>,
    major: u32,
    shared_batch: usize,
) -> Result<()> {
    let mut clients = vec![first];
    std::thread::sleep(Duration::from_millis(3000));
    let jobs_before = relay.metric("walcast_bootstrap_jobs_total")?;
    let batch: Vec<_> = (0..shared_batch)
        .map(|_| BootClient::start(&relay.url(), &[]))
        .collect();
    // Each client of the batch streams and decodes the whole ~7 MB image in a debug build;
    // on a loaded 2-core machine ten of them took over a minute. What is checked here is that
    // they finish and share one job, not how fast.
    poll(WAIT * 3, "the shared batch to finish its image", || {
        batch
            .iter()
            .all(|c| c.with(|s| s.boot_done.is_some() || s.error.is_some()))
            .then_some(())
    })?;
    let jobs_after = relay.metric("walcast_bootstrap_jobs_total")?;
    // They share one job (or, when the machine is slow and the relay's initial image is still
    // fresh, that image): never one job each.
    if jobs_after > jobs_before + 1 {
        bail!(
            "{shared_batch} concurrent bootstraps ran {} jobs, want at most 1",
            jobs_after - jobs_before
        );
    }
    clients.extend(batch);
    std::thread::sleep(Duration::from_millis(2500));
    // With fence, so the final fence commit reaches it (the relay drops transactions that a
    // filter leaves empty).
    let filtered = BootClient::start(&relay.url(), &["public.u", "public.fence"]);
    std::thread::sleep(Duration::from_millis(1000));
    clients.push(BootClient::start(&relay.url(), &[]));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("writer thread")?;
    let until = fence(pg)?;
    for (i, c) in clients.iter().enumerate() {
        let (tables, rows, cp) = c.wait_for(until).with_context(|| format!("client {i}"))?;
        compare(pg, &tables, &["t", "u"])
            .with_context(|| format!("client {i} (image at {cp}, {rows} rows)"))?;
        assert!(rows >= 1000, "client {i}: the image had only {rows} rows");
    }
    let (tables, rows, _) = filtered.wait_for(until).context("filtered client")?;
    compare(pg, &tables, &["u"]).context("filtered client")?;
    assert!(
        !tables.contains_key("t"),
        "the filtered client got rows of t"
    );
    assert_eq!(
        rows, 1000,
        "the filtered image holds exactly u's rows (fence is empty then)"
    );
    let jobs = relay.metric("walcast_bootstrap_jobs_total")?;
    assert!(
        jobs >= 2,
        "the initial baseline and at least one job under fire, got {jobs}"
    );
    let failures = relay.metric("walcast_bootstrap_failures_total")?;
    assert_eq!(failures, 0, "bootstrap jobs failed:\n{}", relay.log_text());
    assert!(relay.metric("walcast_bootstrap_rows_total")? >= PRELOAD);
    eprintln!(
        "PG{major}: {writes} writer transactions, {} clients, {jobs} bootstrap jobs",
        clients.len() + 1
    );
    // The large table was read in CTID ranges: more pieces than tables.
    let pieces = copy_pieces(&relay.log_text());
    assert!(
        !pieces.is_empty() && pieces.iter().all(|p| *p > TABLES.len()),
        "expected every job to split t into CTID ranges, pieces per job: {pieces:?}"
    );
    // No temporary slot is left behind.
    let slots =
        pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'walcast_boot_%'")?;
    assert_eq!(slots.trim(), "0", "temporary bootstrap slots left behind");
    Ok(())
}

#[test]
fn bootstrap_under_fire_pg15_shares_jobs_and_filters() {
    under_fire(15, 10).unwrap();
}

#[test]
fn bootstrap_under_fire_other_majors() {
    let start = Instant::now();
    for major in walcast_testkit::available_versions() {
        if major == 14 || major == 17 {
            under_fire(major, 3)
                .with_context(|| format!("PostgreSQL {major}"))
                .unwrap();
        }
    }
    eprintln!("other majors took {:?}", start.elapsed());
}

#[test]
fn bootstrap_is_refused_with_from() {
    let pg = PgCluster::start(15).unwrap();
    create_schema(&pg).unwrap();
    let relay = Relay::start(&pg, TABLES, &[]).unwrap();
    let (status, body) = http_get(relay.http, "/v1/stream?bootstrap=true&from=0/1").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bootstrap"), "{body}");
}

/// The other entry points: a QUIC client with `"bootstrap": true`, and `walcast tail
/// --bootstrap` printing the image's rows as inserts before the changes after it.
#[test]
fn bootstrap_over_quic_and_tail() {
    let pg = PgCluster::start(15).unwrap();
    create_schema(&pg).unwrap();
    let relay = Relay::start(&pg, TABLES, &["--quic", "127.0.0.1:0"]).unwrap();
    pg.psql("UPDATE u SET label = 'after' WHERE id <= 5; DELETE FROM t WHERE id <= 3")
        .unwrap();
    let (quic, fp) = relay.quic_url().expect("QUIC address");
    let client = BootClient::start_with(&quic, Some(&fp), &[]);
    let until = fence(&pg).unwrap();
    let (tables, rows, _) = client.wait_for(until).unwrap();
    compare(&pg, &tables, &["t", "u"]).unwrap();
    assert!(rows >= PRELOAD, "the QUIC image had {rows} rows");

    let out = std::process::Command::new(walcast_bin())
        .args(["tail", "--url", &relay.url(), "--bootstrap", "--until"])
        .arg(until.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut t_rows = std::collections::BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["table"] == "t" {
            match v["type"].as_str() {
                Some("insert") => {
                    t_rows.insert(v["new"]["id"].as_i64().unwrap());
                }
                Some("delete") => {
                    t_rows.remove(&v["key"]["id"].as_i64().unwrap());
                }
                _ => {}
            }
        }
    }
    let want: std::collections::BTreeSet<i64> = pg_table(&pg, "t").unwrap().into_keys().collect();
    assert_eq!(t_rows, want, "tail --bootstrap reconstructs t's keys");
}
