//! Row-scoped clients served by the relay's real serving path (issue #6): relay CPU per change
//! and delivery latency with 10 vs 10,000 scoped clients over 1,000 tenants.
//!
//! In-process: a log written by this process, `serve::session::ClientStream`s driven by one
//! tokio task each (what the HTTP/QUIC transports do, minus the socket write), the shared
//! reader (`serve::broadcast`) on or off. The load is a steady stream of transactions of 10
//! changes (7 inserts, 2 updates, 1 delete, tenants drawn at random) at `TXNS_PER_SEC`.
//! CPU is the whole process's (user + system from /proc/self/stat) during the measured load,
//! minus the same load with no client at all (the writer's own cost). Latency is from the
//! moment a transaction is published in the log to the moment its client task holds the chunk
//! with its commit (only clients the transaction touches receive it).
//!
//! `cargo run --release -p walcast-bench --bin fanout_bench` (TXNS_PER_SEC and SECONDS set the
//! load; ONLY=CLIENTS+IDLE-SHARED, e.g. `10+0-true`, runs one row; WITH_OWN_10K=1 adds 10,000
//! own readers).

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use walcast_bench::{env_num, percentile, process_cpu_secs};
use walcast_decoder::frame::{FrameKind, FrameReader};
use walcast_decoder::Lsn;
use walcast_relay::auth::RowScope;
use walcast_relay::consumers::Registry;
use walcast_relay::log::pgoutput_peek::build;
use walcast_relay::log::{Log, LogConfig, LogWriter};
use walcast_relay::metrics::Metrics;
use walcast_relay::serve::broadcast::Broadcast;
use walcast_relay::serve::request::StreamRequest;
use walcast_relay::serve::session::Hub;

const REL: u32 = 16384;

/// User + system CPU of this process, in seconds (10 ms ticks).
fn process_cpu() -> Result<f64> {
    process_cpu_secs(std::process::id()).context("reading /proc/self/stat")
}

struct Load {
    w: LogWriter,
    lsn: u64,
    next_id: u64,
    rng: u64,
    tenants: u64,
    live: Vec<(u64, u64)>,
}

impl Load {
    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    fn next(&mut self) -> u64 {
        self.lsn += 0x40;
        self.lsn
    }

    fn tuple(id: u64, tenant: u64) -> Vec<u8> {
        let mut t = Vec::new();
        build::tenant_tuple(&id.to_string(), &format!("t{tenant}"), &mut t);
        t
    }

    /// One transaction of 10 changes; returns its commit end LSN.
    fn txn(&mut self, xid: u32) -> Result<u64> {
        let b = self.next();
        self.w.append_wal(Lsn(b), &build::begin(b + 0x400, xid))?;
        if xid == 1 {
            self.w.append_wal(Lsn(0), &build::tenant_relation(REL))?;
        }
        for k in 0..10 {
            let mut m;
            if k < 7 || self.live.len() < 10 {
                self.next_id += 1;
                let t = self.rand(self.tenants);
                m = vec![b'I'];
                m.extend_from_slice(&REL.to_be_bytes());
                m.push(b'N');
                m.extend_from_slice(&Self::tuple(self.next_id, t));
                self.live.push((self.next_id, t));
            } else if k < 9 {
                let i = self.rand(self.live.len() as u64) as usize;
                let (id, t) = self.live[i];
                m = vec![b'U'];
                m.extend_from_slice(&REL.to_be_bytes());
                m.push(b'O');
                m.extend_from_slice(&Self::tuple(id, t));
                m.push(b'N');
                m.extend_from_slice(&Self::tuple(id, t));
            } else {
                let i = self.rand(self.live.len() as u64) as usize;
                let (id, t) = self.live.swap_remove(i);
                m = vec![b'D'];
                m.extend_from_slice(&REL.to_be_bytes());
                m.push(b'O');
                m.extend_from_slice(&Self::tuple(id, t));
            }
            let l = self.next();
            self.w.append_wal(Lsn(l), &m)?;
        }
        let c = self.next();
        self.w.append_wal(Lsn(c), &build::commit(c, c + 8))?;
        self.next();
        Ok(c + 8)
    }
}

struct Run {
    cpu: f64,
    changes: u64,
    latencies: Vec<Duration>,
    fanout_clients: i64,
}

/// `idle` more clients are scoped to tenants no transaction writes to.
async fn run(
    clients: u64,
    idle: u64,
    tenants: u64,
    shared: bool,
    txns: u64,
    per_sec: u64,
) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let (log, mut w, _) = Log::open(LogConfig::new(dir.path().join("log")))?;
    let (_stop, shutdown) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let routes: Arc<walcast_relay::serve::scope::RouteMemo> = Default::default();
    let hub = Hub {
        broadcast: shared.then(|| {
            Broadcast::start(
                log.clone(),
                metrics.clone(),
                routes.clone(),
                shutdown.clone(),
            )
        }),
        log: log.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        consumers: Registry::open(dir.path())?,
        routes,
        bootstrap: None,
        published: Default::default(),
    };
    w.set_start_lsn(Lsn(0x10))?;
    let mut load = Load {
        w,
        lsn: 0x1000,
        next_id: 0,
        rng: 0x2545_f491_4f6c_dd1d,
        tenants,
        live: Vec::new(),
    };
    let mut xid = 1;
    load.txn(xid)?;
    load.w.sync()?;
    let published: Arc<RwLock<HashMap<u64, Instant>>> = Default::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Default::default();
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients + idle {
        let tenant = if i < clients {
            format!("t{}", i % tenants)
        } else {
            format!("idle{i}")
        };
        let request = StreamRequest {
            tables: vec![("public".into(), "t".into())],
            scopes: vec![(
                ("public".into(), "t".into()),
                RowScope {
                    column: "tenant".into(),
                    equals: vec![tenant],
                },
            )],
            ..Default::default()
        };
        let mut stream = hub.open(&request).context("opening a client stream")?;
        let (published, latencies, measuring) =
            (published.clone(), latencies.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut reader = FrameReader::new();
            while let Some(chunk) = stream.next_chunk().await {
                let now = Instant::now();
                reader.push(&chunk);
                while let Ok(Some(f)) = reader.next_frame() {
                    if f.kind == FrameKind::Wal && f.payload.first() == Some(&b'C') {
                        let end = u64::from_be_bytes(f.payload[10..18].try_into().unwrap());
                        if measuring.load(Relaxed) {
                            if let Some(t) = published.read().unwrap().get(&end) {
                                latencies.lock().unwrap().push(now - *t);
                            }
                        }
                    }
                }
            }
        }));
    }
    // Warm up: every client catches up (and, with the shared reader, moves to it).
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(60) {
        xid += 1;
        load.txn(xid)?;
        load.w.publish()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !shared || metrics.fanout_clients.load(Relaxed) as u64 >= clients + idle {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Relaxed);
    let cpu0 = process_cpu()?;
    let t0 = Instant::now();
    let every = Duration::from_secs_f64(1.0 / per_sec as f64);
    for n in 0..txns {
        let due = t0 + every * n as u32;
        tokio::time::sleep_until(due.into()).await;
        xid += 1;
        let end = load.txn(xid)?;
        published.write().unwrap().insert(end, Instant::now());
        load.w.publish()?;
    }
    // Let the last deliveries land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = process_cpu()? - cpu0;
    let fanout_clients = metrics.fanout_clients.load(Relaxed);
    for t in tasks {
        t.abort();
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(Run {
        cpu,
        changes: txns * 10,
        latencies,
        fanout_clients,
    })
}

/// The p-th percentile (0–100) of `v`, in milliseconds.
fn pct_ms(v: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    percentile(&ms, p)
}

fn main() -> Result<()> {
    let per_sec = env_num("TXNS_PER_SEC", 100);
    let seconds = env_num("SECONDS", 10);
    let txns = per_sec * seconds;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "load: {per_sec} transactions/s of 10 changes for {seconds} s ({} changes)",
        txns * 10
    );
    let base = rt.block_on(run(0, 0, 1000, true, txns, per_sec))?;
    println!(
        "writer alone (no client): {:.2} s CPU, {:.0} ns per change",
        base.cpu,
        base.cpu * 1e9 / base.changes as f64
    );
    println!("| clients | tenants | serving | clients on the shared reader | relay CPU per change (minus the writer) | transactions delivered | p50 | p99 | max |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for (clients, idle, tenants, shared) in [
        (10u64, 0u64, 10u64, false),
        (10, 0, 10, true),
        (10, 9_990, 10, true),
        (10_000, 0, 1000, true),
        (10_000, 0, 1000, false),
    ] {
        if clients == 10_000 && !shared && std::env::var_os("WITH_OWN_10K").is_none() {
            continue;
        }
        if let Ok(only) = std::env::var("ONLY") {
            if only != format!("{clients}+{idle}-{shared}") {
                continue;
            }
        }
        let r = rt.block_on(run(clients, idle, tenants, shared, txns, per_sec))?;
        let per = (r.cpu - base.cpu).max(0.0) * 1e9 / r.changes as f64;
        let n = r.latencies.len();
        println!(
            "| {} | {tenants} | {} | {} | {per:.0} ns | {n} | {:.2} ms | {:.2} ms | {:.2} ms |",
            if idle > 0 {
                format!("{clients} + {idle} idle")
            } else {
                clients.to_string()
            },
            if shared {
                "shared reader"
            } else {
                "own readers"
            },
            r.fanout_clients,
            pct_ms(&r.latencies, 50.0),
            pct_ms(&r.latencies, 99.0),
            pct_ms(&r.latencies, 100.0),
        );
    }
    Ok(())
}
