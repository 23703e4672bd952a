//! End-to-end relay benchmark (issue: the relay). Prints a Markdown section for BENCHMARKS.md.
//!
//! 1. Throughput: the same backlog of 7-column inserts is read by `pg_recvlogical` (to
//!    /dev/null: the walsender's own speed) and by `walcast relay` plus one client that decodes
//!    every row to Rust values. Rows/s and the ratio.
//! 2. Latency: commit-to-decoded-row at a steady commit rate, p50/p99 (commit_ts from
//!    PostgreSQL vs the client's clock; same host). The floor is the same workload read by a
//!    bare replication client (walcast's source with a sink that only timestamps commits: no
//!    log, no fan-out, no HTTP), i.e. what the walsender itself delivers. The relay's own
//!    latency histograms (`/metrics`) split the relay's share into stages.
//! 3. Memory: relay RSS growth per idle streaming HTTP client, with 1,000 clients.
//!
//! Every throughput and latency figure is measured `REPEAT` times (default 3), interleaved, and
//! the median is reported with the range: on a shared 2-core machine single runs vary a lot.
//! Run through `bench/run.sh relay`, which builds in release mode and raises the fd limit.

use anyhow::{Context, Result};
use bytes::Bytes;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use walcast_bench::{
    current_lsn, env_num, histogram_quantile_ms, load_average, machine_cpu, median, percentile,
    process_cpu_secs, scrape_histogram, RelayProcess,
};
use walcast_decoder::{Decoder, Event, Lsn};
use walcast_relay::client::{Delivery, Subscription, Transport};
use walcast_relay::source::{
    Prepared, ReplicationSink, Session, SessionConfig, SinkError, SourceConfig,
};
use walcast_testkit::PgCluster;

const TABLE: &str =
    "CREATE TABLE bench (id bigint PRIMARY KEY, name text, email text, ts timestamptz, \
                     amount numeric, active bool, score float8)";

/// The relay's latency histograms, in the order of the data path.
const STAGES: [(&str, &str); 3] = [
    (
        "walcast_commit_received_seconds",
        "commit → relay received it (walsender + network)",
    ),
    (
        "walcast_commit_servable_seconds",
        "relay received → clients can read it",
    ),
    (
        "walcast_commit_durable_seconds",
        "relay received → fsynced in its log",
    ),
];

fn pg_now_micros() -> i64 {
    // PostgreSQL timestamps count from 2000-01-01 UTC.
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64;
    unix - 946_684_800_000_000
}

/// "median (min–max)" of a set of figures.
fn spread(v: &[f64], decimals: usize) -> String {
    let mut v = v.to_vec();
    let m = median(&mut v);
    if v.len() < 2 {
        return format!("{m:.decimals$}");
    }
    format!(
        "{m:.decimals$} ({:.decimals$}–{:.decimals$})",
        v[0],
        v[v.len() - 1]
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let rows = env_num("ROWS", 200_000);
    let rate_list: Vec<u64> = std::env::var("RATES")
        .unwrap_or_else(|_| "100,5000".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let clients = env_num("CLIENTS", 1000);
    let repeat = env_num("REPEAT", 3).max(1) as usize;
    let lat_secs = Duration::from_secs(env_num("LAT_SECS", 8));
    let load_start = load_average();
    let pg = PgCluster::start_with(
        15,
        // Commit latency is what a client sees only if commits are flushed when they happen:
        // with synchronous_commit=off the walsender waits for the WAL writer (up to 200 ms).
        &[
            "logical_decoding_work_mem = '256MB'",
            "synchronous_commit = on",
        ],
    )?;
    pg.psql(TABLE)?;
    pg.psql("CREATE PUBLICATION bench FOR TABLE bench")?;
    for i in 0..repeat {
        for s in ["recv", "walcast", "alone"] {
            pg.psql(&format!(
                "SELECT pg_create_logical_replication_slot('{s}{i}', 'pgoutput')"
            ))?;
        }
    }

    // The backlog: `rows` rows in transactions of 1,000.
    let write_start = Instant::now();
    let mut id = 0u64;
    while id < rows {
        let hi = (id + 1000).min(rows);
        pg.psql(&format!(
            "INSERT INTO bench SELECT g, 'name ' || g, 'user' || g || '@example.com', now(), g * 1.25, g % 2 = 0, g / 3.0 \
             FROM generate_series({}, {}) g",
            id + 1,
            hi
        ))?;
        id = hi;
    }
    let end = current_lsn(&pg)?;
    eprintln!(
        "backlog: {rows} rows written in {:?}, end {end}",
        write_start.elapsed()
    );

    // Throughput, `repeat` times, interleaved so that load drift hits every contender alike.
    let (mut recv, mut whole, mut streaming, mut alone, mut logged, mut ratio) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut relay = None;
    for i in 0..repeat {
        let recv_secs = pg_recvlogical(&pg, &format!("recv{i}"), end)?;
        // walcast: relay (from its slot's start) + one decoding client.
        drop(relay.take());
        let t = Instant::now();
        let bench_cpu0 = process_cpu_secs(std::process::id()).unwrap_or(f64::NAN);
        let r = RelayProcess::start(&pg.url(), &format!("walcast{i}"), "bench", "public.bench")?;
        let ready = Instant::now();
        // When the relay has the whole backlog durable in its log (separately from when the
        // client has decoded it), to tell where the time goes.
        let logged_at = wait_logged(&r, end, t);
        let decoded = consume_until(&r.http, end).await?;
        let relay_secs = t.elapsed().as_secs_f64();
        let streaming_secs = ready.elapsed().as_secs_f64();
        // Where the CPU went in this run (the relay's and this client's own CPU seconds).
        let relay_cpu = process_cpu_secs(r.child.id()).unwrap_or(f64::NAN);
        let client_cpu = process_cpu_secs(std::process::id()).unwrap_or(f64::NAN) - bench_cpu0;
        anyhow::ensure!(
            decoded.rows == rows,
            "client decoded {} rows, expected {rows}",
            decoded.rows
        );
        // The relay with no client: its own ingest rate, from another slot over the same backlog.
        let alone_secs = {
            let t = Instant::now();
            let a = RelayProcess::start(&pg.url(), &format!("alone{i}"), "bench", "public.bench")?;
            let secs = wait_logged(&a, end, t).join().ok().flatten();
            drop(a);
            secs
        };
        let rps = |s: f64| rows as f64 / s;
        recv.push(rps(recv_secs));
        whole.push(rps(relay_secs));
        streaming.push(rps(streaming_secs));
        ratio.push(recv_secs / relay_secs);
        if let Some(a) = alone_secs {
            alone.push(rps(a));
        }
        if let Some(l) = logged_at.join().ok().flatten() {
            logged.push(rps(l));
        }
        eprintln!(
            "throughput run {i}: pg_recvlogical {recv_secs:.2} s, relay + client {relay_secs:.2} s (CPU: relay {relay_cpu:.2} s, client {client_cpu:.2} s), relay alone {alone_secs:?} s, load {}",
            load_average()
        );
        relay = Some(r);
    }
    let relay = relay.context("at least one run")?;

    // Latency at steady commit rates: the floor (bare replication client) and the relay, each
    // `repeat` times, interleaved.
    let mut latency_rows = Vec::new();
    for &rate in &rate_list {
        let (mut floor, mut lat) = (Vec::new(), Vec::new());
        for r in 0..repeat {
            floor.push(floor_at(&pg, rate, lat_secs, &format!("floor_{rate}_{r}")).await?);
            lat.push(latency_at(&pg, &relay, rate, lat_secs).await?);
            eprintln!(
                "latency at {rate}/s run {r}: floor p50 {:.2} p99 {:.2} ms; relay p50 {:.2} p99 {:.2} ms; load {}",
                floor[r].0,
                floor[r].1,
                lat[r].p50,
                lat[r].p99,
                load_average()
            );
        }
        latency_rows.push((rate, floor, lat));
    }

    // Memory per idle client.
    // Idle clients start at the relay's durable end (the server's WAL position may be ahead of
    // it, and a position ahead of the log is refused as "resync required").
    let metrics = walcast_bench::http_get(relay.http.trim_start_matches("http://"), "/metrics")?;
    let durable = metrics
        .lines()
        .find_map(|l| l.strip_prefix("walcast_durable_lsn "))
        .context("walcast_durable_lsn in /metrics")?
        .trim()
        .parse::<u64>()?;
    let (rss_before, rss_after) = idle_clients_rss(&relay, clients, Lsn(durable))?;
    let per_client_kib = (rss_after as f64 - rss_before as f64) / clients as f64;

    println!("### Relay end to end (PostgreSQL 15, one machine, 2 cores)\n");
    println!(
        "Command: `bench/run.sh relay` (ROWS={rows}, RATES={}, CLIENTS={clients}, REPEAT={repeat}, LAT_SECS={}). \
         Each figure: median of {repeat} interleaved runs, (min–max). Load average {load_start} at the start, {} at the end.\n",
        rate_list
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(","),
        lat_secs.as_secs(),
        load_average()
    );
    println!("| what | figure |\n|---|---|");
    println!(
        "| pg_recvlogical, backlog to /dev/null | {} rows/s |",
        spread(&recv, 0)
    );
    println!(
        "| walcast relay + 1 client decoding every row to Rust values | {} rows/s |",
        spread(&whole, 0)
    );
    println!(
        "| the same, from the relay answering /readyz (process start and slot checks excluded) | {} rows/s |",
        spread(&streaming, 0)
    );
    if !alone.is_empty() {
        println!(
            "| relay with no client: backlog durable in its log | {} rows/s |",
            spread(&alone, 0)
        );
    }
    if !logged.is_empty() {
        println!(
            "| relay with its client: backlog durable in its log | {} rows/s |",
            spread(&logged, 0)
        );
    }
    println!(
        "| ratio walcast / pg_recvlogical, whole run, per run (target ≥ 0.9) | {} |",
        spread(&ratio, 2)
    );
    for (rate, floor, lat) in &latency_rows {
        let f50: Vec<f64> = floor.iter().map(|f| f.0).collect();
        let f99: Vec<f64> = floor.iter().map(|f| f.1).collect();
        println!(
            "| floor: commit → bare replication client at {rate} commits/s | p50 {} ms, p99 {} ms |",
            spread(&f50, 2),
            spread(&f99, 2)
        );
        let p50: Vec<f64> = lat.iter().map(|l| l.p50).collect();
        let p99: Vec<f64> = lat.iter().map(|l| l.p99).collect();
        let achieved: Vec<f64> = lat.iter().map(|l| l.achieved).collect();
        let n: usize = lat.iter().map(|l| l.n).sum();
        println!(
            "| commit → decoded row at {rate} commits/s (achieved {}/s, {n} commits) | p50 {} ms, p99 {} ms |",
            spread(&achieved, 0),
            spread(&p50, 2),
            spread(&p99, 2)
        );
        for (s, (_, label)) in STAGES.iter().enumerate() {
            let s50: Vec<f64> = lat.iter().map(|l| l.stages[s].0).collect();
            let s99: Vec<f64> = lat.iter().map(|l| l.stages[s].1).collect();
            println!(
                "| &nbsp;&nbsp;stage at {rate}/s: {label} | p50 {} ms, p99 {} ms |",
                spread(&s50, 2),
                spread(&s99, 2)
            );
        }
        let cpu: Vec<String> = lat
            .iter()
            .map(|l| {
                format!(
                    "machine {:.0}%, relay {:.0}%, bench (writers + client) {:.0}%",
                    l.machine_busy * 100.0,
                    l.relay_cpu * 100.0,
                    l.bench_cpu * 100.0
                )
            })
            .collect();
        println!(
            "| &nbsp;&nbsp;CPU at {rate}/s (of one core; machine: of all cores) | {} |",
            cpu.join("; ")
        );
    }
    println!("| relay RSS with {clients} idle streaming HTTP clients | {rss_before} KiB → {rss_after} KiB: {per_client_kib:.1} KiB per client (target < 32) |");
    Ok(())
}

/// pg_recvlogical streaming the backlog on `slot` to /dev/null; seconds.
fn pg_recvlogical(pg: &PgCluster, slot: &str, end: Lsn) -> Result<f64> {
    let t = Instant::now();
    let status = std::process::Command::new(pg.bin("pg_recvlogical"))
        .args([
            "-d",
            &pg.url(),
            "--slot",
            slot,
            "--start",
            "--no-loop",
            "-f",
            "/dev/null",
        ])
        .args([
            "-o",
            "proto_version=3",
            "-o",
            "publication_names=bench",
            "-o",
            "streaming=on",
        ])
        .arg(format!("--endpos={end}"))
        .status()?;
    anyhow::ensure!(status.success(), "pg_recvlogical failed: {status}");
    Ok(t.elapsed().as_secs_f64())
}

struct Consumed {
    rows: u64,
}

/// Decodes the whole stream until a commit ends at or past `end`.
async fn consume_until(http: &str, end: Lsn) -> Result<Consumed> {
    let mut sub = Subscription::new(Transport::from_url(http, None)?, None, Vec::new());
    let mut decoder = Decoder::new();
    let mut out = Consumed { rows: 0 };
    loop {
        match sub.next().await? {
            Delivery::Frame(f) => {
                let ev = decoder
                    .decode(&f.payload)
                    .with_context(|| format!("decoding at {}", f.lsn))?;
                match ev {
                    Event::Insert(c) => {
                        // Touch the values so the decode is not optimized into nothing.
                        std::hint::black_box(&c.new);
                        out.rows += 1;
                    }
                    Event::Commit(c) if c.end_lsn >= end => return Ok(out),
                    _ => {}
                }
            }
            Delivery::Reset => decoder.reset(),
            Delivery::Heartbeat(_) => {}
        }
    }
}

/// Single-row insert commits at `rate`/s until `deadline` from 4 connections; each task
/// returns how many it committed.
async fn start_writers(
    pg: &PgCluster,
    rate: u64,
    deadline: Instant,
) -> Result<Vec<tokio::task::JoinHandle<Result<u64>>>> {
    let base: i64 = pg
        .psql("SELECT coalesce(max(id), 0) FROM bench")?
        .trim()
        .parse()?;
    let writers = 4u64;
    let per_writer = Duration::from_secs_f64(writers as f64 / rate as f64);
    let next_id = Arc::new(std::sync::atomic::AtomicI64::new(base + 1));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let next_id = next_id.clone();
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare("INSERT INTO bench VALUES ($1, 'latency', 'l@example.com', now(), 1.5, true, 0.5)")
                .await?;
            let mut tick = tokio::time::interval(per_writer);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                client.execute(&stmt, &[&id]).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    Ok(tasks)
}

/// A sink that only timestamps commits: the walsender's delivery with nothing behind it.
struct FloorSink {
    lat: Vec<f64>,
    last_commit: Lsn,
    stop: Arc<AtomicBool>,
    started: Arc<tokio::sync::Notify>,
}

impl ReplicationSink for FloorSink {
    async fn prepared(&mut self, _p: &Prepared) -> Result<(), SinkError> {
        self.started.notify_one();
        Ok(())
    }

    async fn xlog(
        &mut self,
        _wal_start: Lsn,
        _wal_end: Lsn,
        _send_time: i64,
        data: Bytes,
    ) -> Result<(), SinkError> {
        // Commit: flags @1, commit_lsn @2, end_lsn @10, timestamp @18.
        if data.first() == Some(&b'C') && data.len() >= 26 {
            let ts = i64::from_be_bytes(data[18..26].try_into()?);
            self.lat.push((pg_now_micros() - ts) as f64 / 1000.0);
            self.last_commit = Lsn(u64::from_be_bytes(data[10..18].try_into()?));
        }
        Ok(())
    }

    fn durable(&mut self) -> (Lsn, Option<Lsn>) {
        (self.last_commit, None)
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The floor: commit → a bare replication client (temporary slot `slot`), p50/p99 in ms.
async fn floor_at(pg: &PgCluster, rate: u64, dur: Duration, slot: &str) -> Result<(f64, f64)> {
    let mut cfg = SessionConfig::new(SourceConfig::from_url(&pg.url())?, slot, "bench");
    cfg.export_snapshot = false;
    cfg.temporary_slot = true;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(tokio::sync::Notify::new());
    let mut sink = FloorSink {
        lat: Vec::new(),
        last_commit: Lsn::ZERO,
        stop: stop.clone(),
        started: started.clone(),
    };
    let session = tokio::spawn(async move {
        let mut session = Session::new(cfg);
        let end = session.run(&mut sink).await;
        (sink.lat, end)
    });
    tokio::time::timeout(Duration::from_secs(30), started.notified())
        .await
        .context("the floor's replication session did not start")?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deadline = Instant::now() + dur;
    for t in start_writers(pg, rate, deadline).await? {
        t.await??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, end) = tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .context("the floor's replication session did not stop")??;
    anyhow::ensure!(
        matches!(end, walcast_relay::source::RunError::Stopped),
        "floor session failed: {end}"
    );
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&lat, 50.0), percentile(&lat, 99.0)))
}

struct Latency {
    p50: f64,
    p99: f64,
    n: usize,
    achieved: f64,
    /// p50, p99 (ms) of each of [`STAGES`], from the relay's histograms.
    stages: Vec<(f64, f64)>,
    /// Busy fraction of the whole machine, CPU of the relay and of this process (cores).
    machine_busy: f64,
    relay_cpu: f64,
    bench_cpu: f64,
}

/// Single-row insert commits at `rate`/s for `dur` from 4 connections, decoded by one client.
async fn latency_at(
    pg: &PgCluster,
    relay: &RelayProcess,
    rate: u64,
    dur: Duration,
) -> Result<Latency> {
    let start_lsn = current_lsn(pg)?;
    let addr = relay.http.trim_start_matches("http://").to_string();
    let scrape = |addr: &str| -> Result<Vec<Vec<(f64, u64)>>> {
        let m = walcast_bench::http_get(addr, "/metrics")?;
        Ok(STAGES
            .iter()
            .map(|(name, _)| scrape_histogram(&m, name))
            .collect())
    };
    let before = scrape(&addr)?;
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("{before:?} {}", walcast_bench::http_get(&addr, "/metrics")?);
    }
    let cpu_before = (
        machine_cpu(),
        process_cpu_secs(relay.child.id()),
        process_cpu_secs(std::process::id()),
    );
    let t = Instant::now();
    let deadline = t + dur;
    let tasks = start_writers(pg, rate, deadline).await?;
    // Consume concurrently with the writers.
    let http = relay.http.clone();
    let measuring = tokio::spawn(async move {
        let mut sub = Subscription::new(
            Transport::from_url(&http, None)?,
            Some(start_lsn),
            Vec::new(),
        );
        let mut decoder = Decoder::new();
        let mut lat = Vec::new();
        let stop_at = deadline + Duration::from_secs(1);
        while Instant::now() < stop_at {
            let next = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
            let Ok(d) = next else { continue };
            if let Delivery::Frame(f) = d? {
                if let Event::Commit(c) = decoder.decode(&f.payload)? {
                    lat.push((pg_now_micros() - c.commit_time) as f64 / 1000.0);
                }
            }
        }
        anyhow::Ok(lat)
    });
    let mut commits = 0;
    for t in tasks {
        commits += t.await??;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let cpu_after = (
        machine_cpu(),
        process_cpu_secs(relay.child.id()),
        process_cpu_secs(std::process::id()),
    );
    let mut lat = measuring.await??;
    let after = scrape(&addr)?;
    lat.sort_by(|a, b| a.total_cmp(b));
    let stages = before
        .iter()
        .zip(&after)
        .map(|(b, a)| {
            (
                histogram_quantile_ms(b, a, 50.0),
                histogram_quantile_ms(b, a, 99.0),
            )
        })
        .collect();
    let machine_busy = match (cpu_before.0, cpu_after.0) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => f64::NAN,
    };
    let per_core = |b: Option<f64>, a: Option<f64>| match (b, a) {
        (Some(b), Some(a)) => (a - b) / elapsed,
        _ => f64::NAN,
    };
    Ok(Latency {
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        n: lat.len(),
        achieved: commits as f64 / dur.as_secs_f64(),
        stages,
        machine_busy,
        relay_cpu: per_core(cpu_before.1, cpu_after.1),
        bench_cpu: per_core(cpu_before.2, cpu_after.2),
    })
}

/// Opens `n` streaming HTTP clients that read their response head and then nothing more.
fn idle_clients_rss(relay: &RelayProcess, n: u64, from: Lsn) -> Result<(u64, u64)> {
    std::thread::sleep(Duration::from_secs(1));
    let before = relay.rss_kib()?;
    let addr = relay.http.trim_start_matches("http://").to_string();
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut s = std::net::TcpStream::connect(&addr)?;
        write!(
            s,
            "GET /v1/stream?from={from} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )?;
        conns.push(s);
    }
    // Make sure every stream is established: read each response head.
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; 512];
        let got = s.read(&mut buf)?;
        anyhow::ensure!(
            String::from_utf8_lossy(&buf[..got]).starts_with("HTTP/1.1 200"),
            "stream not opened"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = relay.rss_kib()?;
    drop(conns);
    Ok((before, after))
}

/// Polls the relay's `/metrics` until its durable LSN reaches `end`; seconds since `t`.
fn wait_logged(relay: &RelayProcess, end: Lsn, t: Instant) -> std::thread::JoinHandle<Option<f64>> {
    let addr = relay.http.trim_start_matches("http://").to_string();
    std::thread::spawn(move || -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let body = walcast_bench::http_get(&addr, "/metrics").ok()?;
            let durable = body
                .lines()
                .find_map(|l| l.strip_prefix("walcast_durable_lsn "))
                .and_then(|v| v.trim().parse::<u64>().ok())?;
            if durable >= end.0 {
                return Some(t.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })
}
