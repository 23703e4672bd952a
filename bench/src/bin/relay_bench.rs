//! End-to-end relay benchmark (issue: the relay). Prints a Markdown section for BENCHMARKS.md.
//!
//! 1. Throughput: the same backlog of 7-column inserts is read by `pg_recvlogical` (to
//!    /dev/null: the walsender's own speed) and by `walcast relay` plus one client that decodes
//!    every row to Rust values. Rows/s and the ratio.
//! 2. Latency: commit-to-decoded-row at a steady commit rate, p50/p99 (commit_ts from
//!    PostgreSQL vs the client's clock; same host).
//! 3. Memory: relay RSS growth per idle streaming HTTP client, with 1,000 clients.
//!
//! Run through `bench/run.sh relay`, which builds in release mode and raises the fd limit.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use walcast_bench::{current_lsn, percentile, RelayProcess};
use walcast_decoder::{Decoder, Event, Lsn};
use walcast_relay::client::{Delivery, Subscription, Transport};
use walcast_testkit::PgCluster;

const TABLE: &str =
    "CREATE TABLE bench (id bigint PRIMARY KEY, name text, email text, ts timestamptz, \
                     amount numeric, active bool, score float8)";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pg_now_micros() -> i64 {
    // PostgreSQL timestamps count from 2000-01-01 UTC.
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64;
    unix - 946_684_800_000_000
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
    pg.psql("SELECT pg_create_logical_replication_slot('recv', 'pgoutput')")?;
    pg.psql("SELECT pg_create_logical_replication_slot('walcast', 'pgoutput')")?;

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

    // pg_recvlogical: the walsender streaming the same backlog to /dev/null.
    let t = Instant::now();
    let status = std::process::Command::new(pg.bin("pg_recvlogical"))
        .args([
            "-d",
            &pg.url(),
            "--slot",
            "recv",
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
    let recv_secs = t.elapsed().as_secs_f64();

    // walcast: relay (from its slot's start) + one decoding client.
    let t = Instant::now();
    let relay = RelayProcess::start(&pg.url(), "walcast", "bench", "public.bench")?;
    let ready = Instant::now();
    let decoded = consume_until(&relay.http, end).await?;
    let relay_secs = t.elapsed().as_secs_f64();
    let streaming_secs = ready.elapsed().as_secs_f64();
    anyhow::ensure!(
        decoded.rows == rows,
        "client decoded {} rows, expected {rows}",
        decoded.rows
    );

    // Latency at steady commit rates.
    let mut latency_rows = Vec::new();
    for &rate in &rate_list {
        latency_rows.push((
            rate,
            latency_at(&pg, &relay, rate, Duration::from_secs(8)).await?,
        ));
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

    let recv_rps = rows as f64 / recv_secs;
    let relay_rps = rows as f64 / relay_secs;
    println!("### Relay end to end (PostgreSQL 15, one machine, 2 cores)\n");
    println!(
        "Command: `bench/run.sh relay` (ROWS={rows}, RATES={}, CLIENTS={clients}).\n",
        rate_list
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("| what | figure |\n|---|---|");
    println!("| pg_recvlogical, backlog to /dev/null | {recv_rps:.0} rows/s ({recv_secs:.2} s) |");
    println!("| walcast relay + 1 client decoding every row to Rust values | {relay_rps:.0} rows/s ({relay_secs:.2} s) |");
    println!(
        "| the same, from the relay answering /readyz (process start and slot checks excluded) | {:.0} rows/s ({streaming_secs:.2} s) |",
        rows as f64 / streaming_secs
    );
    println!(
        "| ratio walcast / pg_recvlogical, whole run (target ≥ 0.9) | {:.2} |",
        relay_rps / recv_rps
    );
    for (rate, (p50, p99, n, achieved)) in &latency_rows {
        println!("| commit → decoded row at {rate} commits/s (achieved {achieved:.0}/s, {n} commits) | p50 {p50:.2} ms, p99 {p99:.2} ms |");
    }
    println!("| relay RSS with {clients} idle streaming HTTP clients | {rss_before} KiB → {rss_after} KiB: {per_client_kib:.1} KiB per client (target < 32) |");
    Ok(())
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

/// Single-row insert commits at `rate`/s for `dur` from 4 connections; returns p50, p99 (ms),
/// the number of commits measured and the achieved rate.
async fn latency_at(
    pg: &PgCluster,
    relay: &RelayProcess,
    rate: u64,
    dur: Duration,
) -> Result<(f64, f64, usize, f64)> {
    let start_lsn = current_lsn(pg)?;
    let base: i64 = pg
        .psql("SELECT coalesce(max(id), 0) FROM bench")?
        .trim()
        .parse()?;
    let writers = 4u64;
    let per_writer = Duration::from_secs_f64(writers as f64 / rate as f64);
    let next_id = Arc::new(std::sync::atomic::AtomicI64::new(base + 1));
    let deadline = Instant::now() + dur;
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
                let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                client.execute(&stmt, &[&id]).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
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
        let stop_at = Instant::now() + dur + Duration::from_secs(5);
        while Instant::now() < stop_at {
            let next = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
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
    let mut lat = measuring.await??;
    lat.sort_by(|a, b| a.total_cmp(b));
    let achieved = commits as f64 / dur.as_secs_f64();
    Ok((
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.len(),
        achieved,
    ))
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
