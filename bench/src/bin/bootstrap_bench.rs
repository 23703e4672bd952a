//! What simultaneous bootstraps cost PostgreSQL (issue #5, "Load on Postgres"): N clients ask a
//! relay for a bootstrap at the same moment while a writer commits; a sampler watches
//! `pg_stat_activity` for the connections, open transactions and snapshot holders they cause,
//! and for how long. The same N images fetched the naive way (one REPEATABLE READ transaction
//! and COPY per client, which is what a bootstrap without sharing costs) are measured beside it.
//!
//! `cargo build --release -p walcast-relay --bin walcast -p walcast-bench --bins &&
//!  ./target/release/bootstrap_bench` (env: CLIENTS=100,1000, ROWS=20000, WRITE_RATE=100).
//! Prints a Markdown section for BENCHMARKS.md.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use walcast_bench::{http_get, load_average, median, percentile, RelayProcess};
use walcast_decoder::frame::FrameKind;
use walcast_relay::client::{Delivery, Subscription, Transport};
use walcast_testkit::PgCluster;

const TABLE: &str = "CREATE TABLE boot (id bigint PRIMARY KEY, name text NOT NULL, email text, \
                     at timestamptz NOT NULL DEFAULT now(), amount numeric(12,2), flag boolean, ratio float8)";

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The peak of what the sampler saw, beyond the idle baseline taken before the clients start.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    connections: i64,
    transactions: i64,
    snapshot_holders: i64,
    longest_xact_secs: f64,
}

/// The oldest open transaction's backend and query, for the log.
type Oldest = Option<String>;

/// What one `pg_stat_activity` sample counts: backends other than the sampler's own.
const SAMPLE: &str = "SELECT count(*)::int8, \
       count(*) FILTER (WHERE xact_start IS NOT NULL)::int8, \
       count(*) FILTER (WHERE backend_xmin IS NOT NULL)::int8, \
       coalesce(extract(epoch FROM max(now() - xact_start)), 0)::float8, \
       (array_agg(backend_type || ' ' || coalesce(application_name, '') || ': ' || left(query, 80) \
                  ORDER BY xact_start) FILTER (WHERE xact_start IS NOT NULL))[1] \
     FROM pg_stat_activity \
     WHERE pid <> pg_backend_pid() AND backend_type IN ('client backend', 'walsender') \
       AND coalesce(application_name, '') <> 'bench-writer'";

async fn sample(db: &tokio_postgres::Client) -> Result<(Peak, Oldest)> {
    let row = db.query_one(SAMPLE, &[]).await?;
    let peak = Peak {
        connections: row.get(0),
        transactions: row.get(1),
        snapshot_holders: row.get(2),
        longest_xact_secs: row.get(3),
    };
    Ok((peak, row.get(4)))
}

/// Samples every 10 ms until `stop`, returning the maxima minus `idle`.
async fn watch(db: tokio_postgres::Client, idle: Peak, stop: Arc<AtomicBool>) -> Result<Peak> {
    let mut peak = Peak::default();
    let mut oldest = None;
    while !stop.load(Relaxed) {
        let (s, who) = sample(&db).await?;
        if s.longest_xact_secs > peak.longest_xact_secs {
            oldest = who;
        }
        peak.connections = peak.connections.max(s.connections - idle.connections);
        peak.transactions = peak.transactions.max(s.transactions - idle.transactions);
        peak.snapshot_holders = peak
            .snapshot_holders
            .max(s.snapshot_holders - idle.snapshot_holders);
        peak.longest_xact_secs = peak.longest_xact_secs.max(s.longest_xact_secs);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "  longest transaction: {:.0} ms, {}",
        peak.longest_xact_secs * 1000.0,
        oldest.unwrap_or_default()
    );
    Ok(peak)
}

async fn connect(url: &str, app: &str) -> Result<tokio_postgres::Client> {
    let url = format!("{url}?application_name={app}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// One bootstrapping client: the number of image rows, and when its image was complete.
async fn bootstrap_client(http: String) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let transport = Transport::from_url(&http, None)?;
    let mut sub = Subscription::new(transport, None, Vec::new()).with_bootstrap();
    let mut rows = 0;
    loop {
        match sub.next().await? {
            Delivery::Frame(f) if f.kind == FrameKind::Bootstrap => rows += 1,
            Delivery::Heartbeat(_) => break,
            _ => {}
        }
    }
    sub.close().await;
    Ok((rows, start.elapsed()))
}

/// One naive client: its own snapshot transaction and COPY of the table.
async fn naive_client(pg_url: String) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let db = connect(&pg_url, "bench-naive").await?;
    db.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let copy = db.copy_out("COPY boot TO STDOUT").await?;
    futures_util::pin_mut!(copy);
    let mut rows = 0;
    while let Some(chunk) = copy.next().await {
        rows += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
    }
    db.batch_execute("COMMIT").await?;
    Ok((rows, start.elapsed()))
}

struct Run {
    peak: Peak,
    /// Sessions PostgreSQL established during the run (`pg_stat_database.sessions`): exact,
    /// where sampling can miss a connection that lives for a few milliseconds.
    sessions: i64,
    wall: Duration,
    p50: f64,
    p99: f64,
    rows: u64,
}

/// Starts `n` clients at once and watches PostgreSQL until the last one has its image.
async fn fire<F, Fut>(pg: &PgCluster, n: u64, client: F) -> Result<Run>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(u64, Duration)>> + Send + 'static,
{
    let db = connect(&pg.url(), "bench-sampler").await?;
    let counter = connect(&pg.url(), "bench-sampler").await?;
    let sessions_before = sessions(&counter).await?;
    let (idle, _) = sample(&db).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(db, idle, stop.clone()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(client())).collect();
    let mut times = Vec::with_capacity(n as usize);
    let mut rows = u64::MAX;
    for t in tasks {
        let (r, took) = t.await??;
        rows = rows.min(r);
        times.push(took.as_secs_f64() * 1000.0);
    }
    let wall = start.elapsed();
    // Catch what lingers after the last client (a transaction still committing).
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Relaxed);
    let peak = watcher.await??;
    // Session counts reach the shared statistics when a backend exits or, while it runs, at
    // most a second late.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sessions = sessions(&counter).await? - sessions_before;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Run {
        peak,
        sessions,
        wall,
        p50: median(&mut times.clone()),
        p99: percentile(&times, 99.0),
        rows,
    })
}

async fn sessions(db: &tokio_postgres::Client) -> Result<i64> {
    let row = db
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn counter(relay: &RelayProcess, name: &str) -> Result<u64> {
    let body = http_get(relay.http.trim_start_matches("http://"), "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("no metric {name}"))
}

/// A writer committing single-row updates at `rate` per second until `stop`.
async fn writer(pg_url: String, rows: u64, rate: u64, stop: Arc<AtomicBool>) -> Result<u64> {
    let db = connect(&pg_url, "bench-writer").await?;
    let stmt = db
        .prepare("UPDATE boot SET amount = amount + 1, at = now() WHERE id = $1")
        .await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        tick.tick().await;
        db.execute(&stmt, &[&((n % rows) as i64 + 1)]).await?;
        n += 1;
    }
    Ok(n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let counts = env_list("CLIENTS", "100,1000");
    let rows = env_list("ROWS", "20000").first().copied().unwrap_or(20_000);
    let rate = env_list("WRITE_RATE", "100")
        .first()
        .copied()
        .unwrap_or(100);
    let most = counts.iter().copied().max().unwrap_or(0);
    let load_start = load_average();
    // The naive runs need a connection per client.
    let max_conn = format!("max_connections = {}", most + 50);
    let pg = PgCluster::start_with(15, &[&max_conn])?;
    pg.psql(TABLE)?;
    pg.psql(&format!(
        "INSERT INTO boot SELECT g, 'name ' || g, 'user' || g || '@example.com', now(), g * 1.25, g % 2 = 0, g / 3.0 \
         FROM generate_series(1, {rows}) g"
    ))?;
    let image_bytes: u64 = pg
        .psql("SELECT pg_table_size('boot')")?
        .trim()
        .parse()
        .context("table size")?;
    // Images are shared for 5 s, so each round (started after that) needs a job of its own.
    let relay = RelayProcess::start_with(
        &pg.url(),
        "walcast",
        "walcast",
        "public.boot",
        &["--bootstrap-max-age", "5s", "--max-clients", "100000"],
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let write = tokio::spawn(writer(pg.url(), rows, rate, stop.clone()));

    let mut table = Vec::new();
    for &n in &counts {
        tokio::time::sleep(Duration::from_secs(6)).await;
        let jobs_before = counter(&relay, "walcast_bootstrap_jobs_total")?;
        let http = relay.http.clone();
        let shared = fire(&pg, n, || bootstrap_client(http.clone())).await?;
        let jobs = counter(&relay, "walcast_bootstrap_jobs_total")? - jobs_before;
        let url = pg.url();
        let naive = fire(&pg, n, || naive_client(url.clone())).await?;
        for (what, r) in [
            ("walcast (shared image)", &shared),
            ("naive: a snapshot + COPY per client", &naive),
        ] {
            if r.rows < rows {
                bail!("{what}: a client got only {} of {rows} rows", r.rows);
            }
        }
        eprintln!(
            "{n} clients: walcast {jobs} job(s), {:?}; naive {:?}",
            shared.wall, naive.wall
        );
        table.push((n, jobs, shared, naive));
    }
    stop.store(true, Relaxed);
    let writes = write.await??;

    println!("### Bootstrap: what simultaneous bootstraps cost PostgreSQL\n");
    println!(
        "Command: `cargo build --release -p walcast-relay --bin walcast -p walcast-bench --bins && \
         ./target/release/bootstrap_bench` (PostgreSQL 15, one machine, 2 cores; load average {load_start} \
         at start, {} at end). Table: {rows} rows of 7 columns ({:.1} MB on disk), a writer \
         committing {rate} single-row updates/s throughout ({writes} in all). N clients ask for a \
         bootstrap at the same moment; a sampler reads `pg_stat_activity` every 10 ms and reports \
         the peak beyond the idle baseline (the relay's own walsender is in the baseline); \
         *sessions opened* counts every ordinary connection PostgreSQL accepted during the run, \
         however short (`pg_stat_database.sessions`, which leaves out walsenders: add one per \
         walcast job for the replication connection that exports the snapshot). \
         *Naive* is the same N images fetched with one `REPEATABLE READ` transaction and `COPY` \
         per client, which is what a bootstrap costs without sharing.\n",
        load_average(),
        image_bytes as f64 / 1e6
    );
    println!("| clients | method | PG jobs | sessions opened | peak connections | peak open transactions | peak snapshot holders (backend_xmin) | longest transaction | all images complete | per client p50 / p99 |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, jobs, shared, naive) in &table {
        for (what, jobs, r) in [
            ("walcast", jobs.to_string(), shared),
            ("naive", n.to_string(), naive),
        ] {
            println!(
                "| {n} | {what} | {jobs} | {} | {} | {} | {} | {:.0} ms | {:.2} s | {:.0} / {:.0} ms |",
                r.sessions,
                r.peak.connections,
                r.peak.transactions,
                r.peak.snapshot_holders,
                r.peak.longest_xact_secs * 1000.0,
                r.wall.as_secs_f64(),
                r.p50,
                r.p99,
            );
        }
    }
    println!(
        "\nA walcast job is one exported snapshot (a replication connection creating a temporary \
         slot) and two copying connections, whatever the number of clients; the clients stream \
         the job's image file from the relay. Their wait is the relay sending N copies of the \
         image, and this benchmark decoding them, on the same 2 cores; PostgreSQL's part is \
         the longest transaction. See docs/bootstrap.md."
    );
    Ok(())
}
