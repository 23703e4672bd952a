//! The crash matrix: under a steady write load, faults of every kind at seeded random moments —
//! `kill -9` of the relay, `kill -9` of a durable consumer (`walcast tail --consumer`), a
//! PostgreSQL crash restart (`pg_ctl restart -m immediate`) and client connections cut
//! mid-frame by a proxy. Afterwards:
//!
//! - the durable consumer's output, deduplicated by commit LSN as its documentation says,
//!   rebuilds the table exactly as PostgreSQL has it (no committed change lost);
//! - a library client that went through every cut and restart applied each commit once;
//! - a new client replaying the relay's whole log gets the same transactions (no log
//!   corrupted);
//! - sampled throughout, the slot's `confirmed_flush_lsn` never passed the consumer's ack.
//!
//! `WALCAST_CRASH_SEED=N` replays one schedule; `WALCAST_CRASH_FAULTS=N` sets how many faults.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use walcast_decoder::Lsn;
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const TABLES: &[&str] = &["public.t", "public.hist", "public.fence"];
const CONSUMER: &str = "dc";

/// xorshift64*: a reproducible schedule from one seed, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    KillRelay,
    KillConsumer,
    RestartPostgres,
    CutConnections,
}

/// Every kind of fault equally often, in a seeded random order.
fn schedule(rng: &mut Rng, n: usize) -> Vec<Fault> {
    let kinds = [
        Fault::KillRelay,
        Fault::KillConsumer,
        Fault::RestartPostgres,
        Fault::CutConnections,
    ];
    let mut faults: Vec<Fault> = (0..n).map(|i| kinds[i % kinds.len()]).collect();
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.range(0, i as u64) as usize);
    }
    faults
}

// ---- A TCP proxy that can cut every connection through it mid-frame ----

/// Forwards connections to the relay. [`Proxy::cut_all`] makes every open connection forward
/// a random prefix of its next read from the relay and then close both ways: the client sees
/// its stream end inside a frame (or inside an HTTP chunk header).
struct Proxy {
    addr: SocketAddr,
    generation: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: SocketAddr, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let generation = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let (generation2, cuts2) = (generation.clone(), cuts.clone());
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let (generation, cuts) = (generation2.clone(), cuts2.clone());
                let rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                std::thread::spawn(move || pump(client, upstream, generation, cuts, rng));
            }
        });
        Proxy {
            addr,
            generation,
            cuts,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut_all(&self) {
        self.generation.fetch_add(1, SeqCst);
    }
}

fn pump(
    client: TcpStream,
    upstream: SocketAddr,
    generation: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    mut rng: Rng,
) {
    let born = generation.load(SeqCst);
    let Ok(server) = TcpStream::connect(upstream) else {
        return; // the relay is down: the client sees a refused/closed connection and retries
    };
    let (Ok(mut c2s_from), Ok(mut c2s_to)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2s_from, &mut c2s_to);
        let _ = c2s_to.shutdown(Shutdown::Write);
    });
    let (mut from, mut to) = (server, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if generation.load(SeqCst) != born {
            let keep = rng.range(0, n as u64 - 1) as usize;
            let _ = to.write_all(&buf[..keep]);
            cuts.fetch_add(1, SeqCst);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ---- The durable consumer: `walcast tail --consumer dc`, one output file per run ----

struct Tail {
    url: String,
    dir: PathBuf,
    child: Option<Child>,
    runs: usize,
}

impl Tail {
    fn start(url: String, dir: &Path) -> Tail {
        let mut tail = Tail {
            url,
            dir: dir.to_path_buf(),
            child: None,
            runs: 0,
        };
        tail.spawn();
        tail
    }

    fn output(&self, run: usize) -> PathBuf {
        self.dir.join(format!("tail-{run}.jsonl"))
    }

    fn stderr(&self, run: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("tail-{run}.log"))).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let out = std::fs::File::create(self.output(self.runs)).expect("tail output");
        let err =
            std::fs::File::create(self.dir.join(format!("tail-{}.log", self.runs))).expect("log");
        let child = Command::new(walcast_bin())
            .args(["tail", "--url", &self.url, "--consumer", CONSUMER])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning walcast tail");
        self.child = Some(child);
        self.runs += 1;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Fails if the consumer exited by itself: it must ride out every fault.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "walcast tail exited by itself ({status}); stderr:\n{}",
                    self.stderr(self.runs - 1)
                );
            }
        }
        Ok(())
    }

    fn outputs(&self) -> Vec<PathBuf> {
        (0..self.runs).map(|r| self.output(r)).collect()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        if std::thread::panicking() && self.runs > 0 {
            eprintln!(
                "---- last walcast tail stderr ----\n{}",
                self.stderr(self.runs - 1)
            );
        }
        self.kill9();
    }
}

/// What the durable consumer's runs printed, applied as its documentation says a consumer
/// should: whole transactions only, in order, dropping a commit at or before the last one
/// applied (the transactions after the consumer's ack come again after a restart). A run
/// killed mid-transaction or mid-line left an unfinished tail that the next run repeats.
/// Returns the applied transactions and how many redelivered ones were dropped.
fn apply_tail_outputs(files: &[PathBuf]) -> Result<(Vec<Txn>, usize)> {
    let mut applied: Vec<Txn> = Vec::new();
    let mut dropped = 0;
    for file in files {
        let text = std::fs::read_to_string(file)?;
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let mut open: Option<Vec<Value>> = None;
        let mut previous: Option<Lsn> = None;
        for (n, line) in complete.lines().enumerate() {
            let at = || format!("{}:{}", file.display(), n + 1);
            let v: Value = serde_json::from_str(line).with_context(at)?;
            match v["type"].as_str().unwrap_or("") {
                "begin" => {
                    ensure!(open.is_none(), "{}: begin inside a transaction", at());
                    open = Some(Vec::new());
                }
                // Reconnected: a transaction cut after its begin comes again from its begin.
                "reset" => open = None,
                "insert" | "update" | "delete" | "truncate" => {
                    let mut change = v;
                    // Compared with clients that print changes without their LSN.
                    change.as_object_mut().map(|o| o.remove("lsn"));
                    open.as_mut()
                        .with_context(|| format!("{}: change outside a transaction", at()))?
                        .push(change)
                }
                "commit" => {
                    let end: Lsn = v["end_lsn"].as_str().unwrap_or("").parse()?;
                    let changes = open
                        .take()
                        .with_context(|| format!("{}: commit without begin", at()))?;
                    ensure!(
                        previous < Some(end), // None sorts first
                        "{}: commit {end} after {previous:?} in one run",
                        at()
                    );
                    previous = Some(end);
                    if applied.last().is_some_and(|t| end <= t.end_lsn) {
                        let first =
                            applied.iter().find(|t| t.end_lsn == end).with_context(|| {
                                format!("{}: commit {end} arrived after later ones", at())
                            })?;
                        ensure!(
                            first.changes == changes,
                            "{}: commit {end} came again with other changes",
                            at()
                        );
                        dropped += 1;
                        continue;
                    }
                    applied.push(Txn {
                        end_lsn: end,
                        streamed: false,
                        changes,
                    });
                }
                "relation" | "type" | "origin" | "message" => {}
                other => bail!("{}: unexpected event {other:?}", at()),
            }
        }
    }
    Ok((applied, dropped))
}

/// (commit end LSN, changes) of each transaction: the form two clients are compared in.
fn history(txns: &[Txn]) -> Vec<(Lsn, &[Value])> {
    txns.iter().map(|t| (t.end_lsn, &t.changes[..])).collect()
}

/// The ids in `hist` the transactions inserted, sorted.
fn hist_ids(txns: &[Txn]) -> Vec<i64> {
    let mut ids: Vec<i64> = txns
        .iter()
        .flat_map(|t| t.on("hist"))
        .filter(|c| c["type"] == "insert")
        .map(|c| c["new"]["i"].as_i64().unwrap_or(-1))
        .collect();
    ids.sort_unstable();
    ids
}

fn last_commit_in(file: &Path) -> Option<Lsn> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "commit")
        .and_then(|v| v["end_lsn"].as_str()?.parse().ok())
}

fn consumer_ack(relay: SocketAddr) -> Option<Lsn> {
    let (status, body) = http_get(relay, &format!("/v1/consumers/{CONSUMER}")).ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["acked_lsn"].as_str()?.parse().ok()
}

/// Samples of (confirmed_flush_lsn, the consumer's ack), each ack read after its slot position.
/// The relay may confirm past the ack only where no commit lies in between (an idle slot is
/// let go to the server's WAL position once every consumer acked every commit received), so
/// the check is: no commit end in (ack, confirmed_flush_lsn]. Acks only grow, so an ack read
/// later than the slot position can only hide a violation, never invent one.
fn confirmations_past_ack(samples: &[(Lsn, Lsn)], floor: Lsn, commits: &[Lsn]) -> Vec<String> {
    samples
        .iter()
        .filter_map(|&(cf, ack)| {
            let low = ack.max(floor);
            let first_after = commits.partition_point(|&e| e <= low);
            let passed = commits.get(first_after).filter(|&&e| e <= cf)?;
            Some(format!(
                "confirmed_flush_lsn {cf} passed the consumer's ack {ack}: commit {passed} lies between"
            ))
        })
        .collect()
}

#[test]
fn no_committed_change_is_lost_under_seeded_crashes() {
    let seed: u64 = std::env::var("WALCAST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let faults: usize = std::env::var("WALCAST_CRASH_FAULTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!("crash matrix: seed {seed} (rerun with WALCAST_CRASH_SEED={seed}), {faults} faults");
    let mut rng = Rng(seed);
    let plan = schedule(&mut rng, faults);

    let pg = PgCluster::start(15).expect("cluster");
    create_tables(&pg).expect("tables");
    // Every writer transaction also leaves a row here for good: a lost commit whose changes to
    // `t` were later overwritten still shows as a missing id.
    pg.psql("CREATE TABLE hist (i bigint PRIMARY KEY)").unwrap();
    let mut relay = Relay::start(&pg, TABLES, &[]).expect("relay");
    let relay_addr = relay.http_addr();
    let proxy = Proxy::start(relay_addr, seed);
    let dir = tempfile::tempdir().unwrap();
    let mut tail = Tail::start(proxy.url(), dir.path());
    poll(Duration::from_secs(30), "the consumer to register", || {
        consumer_ack(relay_addr)
    })
    .unwrap();
    // From here on the slot may confirm only what the consumer acked.
    let floor = confirmed_flush(&pg).unwrap().expect("slot exists");
    let live = Consumer::start(&proxy.url(), None, None, &[]);

    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let writer_errors = AtomicU64::new(0);
    let samples: Mutex<Vec<(Lsn, Lsn)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        // The load: 5 transactions per psql call, every 20 ms. A call the server's crash cuts
        // short leaves some of its transactions committed and some not; PostgreSQL's table is
        // the oracle, so the writer just goes on with new ids.
        s.spawn(|| {
            let mut i = 1u64;
            while !stop.load(SeqCst) {
                let mut sql = String::from("SET synchronous_commit = on;\n");
                sql.extend((i..i + 5).map(|i| {
                    txn_sql(i).replace(
                        "COMMIT;",
                        &format!("INSERT INTO hist VALUES ({i}); COMMIT;"),
                    )
                }));
                if pg.psql(&sql).is_err() {
                    writer_errors.fetch_add(1, SeqCst);
                    let _ = pg.wait_ready(Duration::from_secs(60));
                }
                i += 5;
                written.store(i, SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // The invariant, sampled (checked afterwards by `confirmations_past_ack`).
        s.spawn(|| {
            while !stop.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(25));
                let Ok(Some(cf)) = confirmed_flush(&pg) else {
                    continue; // PostgreSQL is restarting
                };
                let Some(ack) = consumer_ack(relay_addr) else {
                    continue; // the relay is restarting
                };
                samples.lock().unwrap().push((cf, ack));
            }
        });

        // Faults, one at a time. Failures stop the load before they propagate, so the scope's
        // threads end and the test reports instead of hanging.
        let started = Instant::now();
        let mut run = || -> Result<()> {
            for (k, fault) in plan.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(rng.range(400, 2500)));
                tail.check_alive()?;
                eprintln!(
                    "{:>6.1} s fault {k}: {fault:?} (writer at {})",
                    started.elapsed().as_secs_f64(),
                    written.load(SeqCst)
                );
                match fault {
                    Fault::KillRelay => {
                        relay.kill9();
                        std::thread::sleep(Duration::from_millis(rng.range(0, 1000)));
                        relay.restart()?;
                    }
                    Fault::KillConsumer => {
                        tail.kill9();
                        std::thread::sleep(Duration::from_millis(rng.range(0, 1000)));
                        tail.spawn();
                    }
                    Fault::RestartPostgres => {
                        pg.restart_immediate()?;
                        pg.wait_ready(Duration::from_secs(60))?;
                    }
                    Fault::CutConnections => proxy.cut_all(),
                }
            }
            std::thread::sleep(Duration::from_millis(rng.range(400, 2500)));
            Ok(())
        };
        let outcome = run();
        stop.store(true, SeqCst);
        outcome.unwrap();
    });
    tail.check_alive().unwrap();

    let until = fence(&pg).unwrap();
    eprintln!(
        "load stopped at {until}: {} transactions attempted, {} psql calls cut short",
        written.load(SeqCst) - 1,
        writer_errors.load(SeqCst)
    );
    let expected = table_map(&pg).unwrap();
    let expected_hist: Vec<i64> = pg
        .psql("SELECT i FROM hist ORDER BY i")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let live_txns = live
        .wait_for(until, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}"));
    poll(
        Duration::from_secs(120),
        "the durable consumer to print the fence commit",
        || {
            tail.check_alive().unwrap();
            let last = tail.outputs().last().and_then(|f| last_commit_in(f))?;
            (last > until).then_some(())
        },
    )
    .unwrap();
    tail.kill9();

    // The durable consumer rebuilt the table exactly.
    let (tail_txns, redelivered) = apply_tail_outputs(&tail.outputs()).unwrap();
    assert_eq!(
        apply_to_map(&tail_txns),
        expected,
        "the durable consumer's rebuilt table differs from PostgreSQL's"
    );
    assert_eq!(
        hist_ids(&tail_txns),
        expected_hist,
        "the durable consumer lost or repeated a committed transaction"
    );
    // The library client through every cut and restart applied the same commits, once each.
    for w in live_txns.windows(2) {
        assert!(w[0].end_lsn < w[1].end_lsn, "a commit applied twice");
    }
    assert_eq!(apply_to_map(&live_txns), expected);
    assert_eq!(history(&live_txns), history(&tail_txns));
    // The relay's log, replayed from its start, holds exactly the same.
    let fresh = Consumer::start(&relay.url(), None, None, &[]);
    let replayed = fresh.wait_for(until, Duration::from_secs(120)).unwrap();
    assert_eq!(history(&replayed), history(&live_txns));

    let samples = samples.into_inner().unwrap();
    let commits: Vec<Lsn> = live_txns.iter().map(|t| t.end_lsn).collect();
    let violations = confirmations_past_ack(&samples, floor, &commits);
    assert!(violations.is_empty(), "{violations:#?}");
    let advanced = samples.iter().filter(|(cf, _)| *cf > floor).count();
    assert!(samples.len() >= 50, "only {} samples", samples.len());
    assert!(
        advanced > 0,
        "the slot never advanced: the invariant was never put to the test"
    );
    let cut_faults = plan.iter().filter(|f| **f == Fault::CutConnections).count() as u64;
    assert!(
        proxy.cuts.load(SeqCst) >= cut_faults,
        "{} connections cut for {cut_faults} cut faults",
        proxy.cuts.load(SeqCst)
    );
    eprintln!(
        "crash matrix seed {seed}: {} writer commits ({} rows in t at the end), {} redelivered to the restarted \
         consumer and dropped by LSN, {} connections cut, {} samples ({} with the slot advanced), \
         {} consumer runs, live client resets: {}",
        expected_hist.len(),
        expected.len(),
        redelivered,
        proxy.cuts.load(SeqCst),
        samples.len(),
        advanced,
        tail.runs,
        live.with(|s| s.resets)
    );
}
