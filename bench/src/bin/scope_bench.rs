//! Row-scope routing cost (issue #6): relay CPU per change with 10 scoped clients vs 10,000
//! scoped clients spread over 1,000 tenants.
//!
//! In-process, no sockets, no disk: the frames of a mixed workload (inserts, updates, updates
//! that move rows between tenants, deletes; REPLICA IDENTITY FULL) are fed, in log order, to N
//! clients that each run exactly the relay's per-client path (`serve::session::fill`): copy the
//! frame out of the log buffer, classify it, judge it against the client's row scope (the
//! change itself is decoded once for all clients through the shared `RouteMemo`), pass it
//! through the table filter, and encode what is delivered into the client's chunk.
//! CPU time is this thread's (`/proc/thread-self/schedstat`), not wall-clock time.
//!
//! `cargo run --release -p walcast-bench --bin scope_bench` (CHANGES_10, CHANGES_10K override
//! how many changes each run routes).

use anyhow::{Context, Result};
use std::sync::Arc;
use walcast_bench::env_num;
use walcast_decoder::frame::{self, FrameKind};
use walcast_decoder::Lsn;
use walcast_relay::auth::RowScope;
use walcast_relay::log::pgoutput_peek::build;
use walcast_relay::log::OwnedFrame;
use walcast_relay::serve::classify::Classifier;
use walcast_relay::serve::filter::TableFilter;
use walcast_relay::serve::scope::memo::decode;
use walcast_relay::serve::scope::{ColumnRef, FanOut, Out, RouteMemo, ScopeFilter, Verdict};

const RELID: u32 = 16384;
const TENANTS: u64 = 1000;
const CHANGES_PER_TXN: u64 = 10;

/// This thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    s.split_whitespace()
        .next()
        .context("schedstat")?
        .parse()
        .context("schedstat ns")
}

fn relation() -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend_from_slice(&RELID.to_be_bytes());
    m.extend_from_slice(b"public\0items\0");
    m.push(b'f');
    m.extend_from_slice(&3u16.to_be_bytes());
    for (name, oid) in [("id", 20u32), ("tenant_id", 25), ("v", 20)] {
        m.push(1);
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.extend_from_slice(&oid.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
    }
    m
}

fn tuple(id: u64, tenant: u64, v: u64, m: &mut Vec<u8>) {
    m.extend_from_slice(&3u16.to_be_bytes());
    for val in [id.to_string(), format!("t{tenant}"), v.to_string()] {
        m.push(b't');
        m.extend_from_slice(&(val.len() as u32).to_be_bytes());
        m.extend_from_slice(val.as_bytes());
    }
}

/// The workload's frames: `changes` changes in transactions of [`CHANGES_PER_TXN`].
/// 70% inserts, 15% updates in place, 10% updates moving a row to another tenant, 5% deletes.
fn workload(changes: u64) -> Vec<OwnedFrame> {
    let mut frames = vec![OwnedFrame {
        kind: FrameKind::Wal,
        lsn: Lsn(0),
        payload: relation(),
    }];
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut lsn = 0x1000u64;
    let mut id = 0u64;
    for txn in 0..changes.div_ceil(CHANGES_PER_TXN) {
        let xid = 1000 + txn as u32;
        frames.push(OwnedFrame {
            kind: FrameKind::Wal,
            lsn: Lsn(lsn),
            payload: build::begin(lsn + 0x100, xid),
        });
        for _ in 0..CHANGES_PER_TXN {
            lsn += 0x10;
            let r = next() % 100;
            let tenant = next() % TENANTS;
            id += 1;
            let mut m = Vec::with_capacity(64);
            match r {
                0..=69 => {
                    m.push(b'I');
                    m.extend_from_slice(&RELID.to_be_bytes());
                    m.push(b'N');
                    tuple(id, tenant, 0, &mut m);
                }
                70..=94 => {
                    let to = if r < 85 { tenant } else { next() % TENANTS };
                    m.push(b'U');
                    m.extend_from_slice(&RELID.to_be_bytes());
                    m.push(b'O');
                    tuple(id, tenant, 1, &mut m);
                    m.push(b'N');
                    tuple(id, to, 2, &mut m);
                }
                _ => {
                    m.push(b'D');
                    m.extend_from_slice(&RELID.to_be_bytes());
                    m.push(b'O');
                    tuple(id, tenant, 1, &mut m);
                }
            }
            frames.push(OwnedFrame {
                kind: FrameKind::Wal,
                lsn: Lsn(lsn),
                payload: m,
            });
        }
        lsn += 0x100;
        frames.push(OwnedFrame {
            kind: FrameKind::Wal,
            lsn: Lsn(lsn),
            payload: build::commit(lsn - 0x10, lsn),
        });
    }
    frames
}

struct Client {
    classifier: Classifier,
    scope: ScopeFilter,
    table: TableFilter<OwnedFrame>,
    scratch: Vec<OwnedFrame>,
    out: Vec<u8>,
    delivered: u64,
}

/// Routes `frames` to `clients` clients, client `i` scoped to tenant `i % tenants`; returns
/// (CPU ns, frames delivered in all).
fn run(frames: &[OwnedFrame], clients: u64, tenants: u64) -> Result<(u64, u64)> {
    let memo = Arc::new(RouteMemo::new());
    let table = ("public".to_string(), "items".to_string());
    let mut cs: Vec<Client> = (0..clients)
        .map(|i| {
            let scope = RowScope {
                column: "tenant_id".into(),
                equals: vec![format!("t{}", i % tenants)],
            };
            Client {
                classifier: Classifier::new(),
                scope: ScopeFilter::new([(table.clone(), scope)], memo.clone()),
                table: TableFilter::new([table.clone()]),
                scratch: Vec::new(),
                out: Vec::new(),
                delivered: 0,
            }
        })
        .collect();
    let start = thread_cpu_ns()?;
    // Frame by frame, every client in turn: the relay's clients when they are caught up.
    for (pos, f) in frames.iter().enumerate() {
        for c in &mut cs {
            // The relay's reader hands each client its own copy of the frame.
            let mut f = f.clone();
            let class = c.classifier.classify(f.kind, &f.payload);
            match c.scope.judge(
                &class,
                &f.payload,
                c.classifier.last_in_stream(),
                pos as u64,
            ) {
                Verdict::Pass => {}
                Verdict::Drop => continue,
                Verdict::Replace(p) => f.payload = p,
            }
            c.table.push(f, &class, &mut c.scratch);
            for f in c.scratch.drain(..) {
                frame::encode_frame(f.kind, f.lsn, &f.payload, &mut c.out);
                c.delivered += 1;
            }
            // The chunk goes to the socket.
            if c.out.len() > 32 * 1024 {
                c.out.clear();
            }
        }
    }
    let cpu = thread_cpu_ns()? - start;
    Ok((cpu, cs.iter().map(|c| c.delivered).sum()))
}

/// The same routing through the fan-out core (`serve::scope::fanout`): one reader, each change
/// decoded once and routed by `(relation, column, value)` to the matching clients, whose chunks
/// get the encoded frames. Returns (CPU ns, frames delivered).
fn run_fanout(frames: &[OwnedFrame], clients: u64, tenants: u64) -> Result<(u64, u64)> {
    let table = ("public".to_string(), "items".to_string());
    let mut fan = FanOut::new();
    let mut outs: Vec<Vec<u8>> = Vec::new();
    for i in 0..clients {
        let scope = RowScope {
            column: "tenant_id".into(),
            equals: vec![format!("t{}", i % tenants)],
        };
        let id = fan.subscribe(vec![(table.clone(), scope)]);
        debug_assert_eq!(id, outs.len());
        outs.push(Vec::new());
    }
    let mut classifier = Classifier::new();
    let mut deliveries = Vec::new();
    let mut delivered = 0u64;
    let start = thread_cpu_ns()?;
    for f in frames {
        let f = f.clone();
        let class = classifier.classify(f.kind, &f.payload);
        fan.push(f, &class, &mut deliveries);
        for (id, out) in deliveries.drain(..) {
            let buf = &mut outs[id];
            let f = match &out {
                Out::Shared(f) => f.as_ref(),
                Out::Own(f) => f,
            };
            frame::encode_frame(f.kind, f.lsn, &f.payload, buf);
            if buf.len() > 32 * 1024 {
                buf.clear();
            }
            delivered += 1;
        }
    }
    let cpu = thread_cpu_ns()? - start;
    Ok((cpu, delivered))
}

/// CPU per change of decoding each change once (the part that does not depend on the number of
/// clients).
fn decode_once(frames: &[OwnedFrame]) -> Result<u64> {
    let col = ColumnRef {
        index: 1,
        type_oid: 25,
        in_identity: true,
    };
    let start = thread_cpu_ns()?;
    let mut n = 0u64;
    for f in frames {
        if matches!(f.payload.first(), Some(b'I' | b'U' | b'D')) {
            n += u64::from(decode(&f.payload, false, col).is_some());
        }
    }
    let cpu = thread_cpu_ns()? - start;
    Ok(cpu / n.max(1))
}

fn main() -> Result<()> {
    let small = env_num("CHANGES_10", 200_000);
    let large = env_num("CHANGES_10K", 2_000);
    let f_small = workload(small);
    let f_large = workload(large);
    let decode_ns = decode_once(&f_small)?;
    let (cpu10, del10) = run(&f_small, 10, 10)?;
    let (cpu10k, del10k) = run(&f_large, 10_000, TENANTS)?;
    let per10 = cpu10 as f64 / small as f64;
    let per10k = cpu10k as f64 / large as f64;
    println!("decode once per change (shared by all clients): {decode_ns} ns");
    println!(
        "10 clients, 10 tenants: {per10:.0} ns CPU per change ({small} changes, {del10} frames delivered), {:.1} ns per client per change",
        per10 / 10.0
    );
    println!(
        "10,000 clients, 1,000 tenants: {per10k:.0} ns CPU per change ({large} changes, {del10k} frames delivered), {:.1} ns per client per change",
        per10k / 10_000.0
    );
    println!(
        "ratio 10,000 / 10 clients: {:.0}x CPU per change",
        per10k / per10
    );
    // The fan-out core gets the same number of changes for both sizes.
    let f_fan = workload(small);
    let (fcpu10, fdel10) = run_fanout(&f_fan, 10, 10)?;
    let (fcpu10k, fdel10k) = run_fanout(&f_fan, 10_000, TENANTS)?;
    let fper10 = fcpu10 as f64 / small as f64;
    let fper10k = fcpu10k as f64 / small as f64;
    println!("fan-out core, 10 clients, 10 tenants: {fper10:.0} ns CPU per change ({small} changes, {fdel10} frames delivered)");
    println!("fan-out core, 10,000 clients, 1,000 tenants: {fper10k:.0} ns CPU per change ({small} changes, {fdel10k} frames delivered)");
    println!(
        "fan-out core ratio 10,000 / 10 clients: {:.2}x CPU per change",
        fper10k / fper10
    );
    Ok(())
}
