//! Wire benchmark (issue #7): the bytes per change a client receives, for walcast (with each
//! stream compression) and for the JSON/text plugins a client would otherwise read, on the same
//! workloads against a real PostgreSQL 15. Also the relay's CPU per MB compressed vs the
//! walsender's CPU, and the p99 latency compression adds at 100 and 10,000 commits/s.
//! Prints a Markdown section for BENCHMARKS.md.
//!
//! How each figure is taken:
//! - walcast: a real HTTP client of a real `walcast relay`, streaming from the end of the
//!   previous workload until the workload's last commit; the bytes counted are the response body
//!   as received (compressed when asked), prelude included.
//! - peers: `pg_logical_slot_get_changes` on a slot of that plugin over the same WAL, the rows
//!   joined by newlines as `pg_recvlogical` writes them; "whole-stream" zstd/gzip compress that
//!   whole text at once (the best case for the peer: no flushes at transaction boundaries). The
//!   replication framing a peer's client would also receive (~30 B per message) is not counted.
//!
//! Run through `bench/wire.sh`, which builds in release mode.

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use walcast_bench::{percentile, RelayProcess};
use walcast_decoder::frame::{FrameKind, FrameReader};
use walcast_decoder::{Decoder, Event, Lsn};
use walcast_relay::client::{Compression, Delivery, Framing, Inflater, Subscription, Transport};
use walcast_testkit::PgCluster;

const ITEMS: &str = "CREATE TABLE items (id bigint PRIMARY KEY, name text, email text, \
    ts timestamptz, amount numeric, active bool, score float8)";
const DOCS: &str = "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, n int)";

struct Workload {
    name: &'static str,
    sql: Vec<String>,
    /// Transactions the workload commits (the walcast reader stops after this many).
    commits: u64,
    /// Row changes (I/U/D) it makes: the denominator of "bytes per change".
    changes: u64,
}

fn items_insert(lo: u64, hi: u64) -> String {
    format!(
        "INSERT INTO items SELECT g, 'name ' || g, 'user' || g || '@example.com', \
         '2024-01-01'::timestamptz + g * interval '1 second', g * 1.25, g % 2 = 0, g / 3.0 \
         FROM generate_series({lo}, {hi}) g"
    )
}

/// `n` single-row transactions, one per loop turn (a DO block may COMMIT).
fn each_committed(lo: u64, hi: u64, stmt: &str) -> String {
    format!("DO $$ BEGIN FOR i IN {lo}..{hi} LOOP {stmt}; COMMIT; END LOOP; END $$")
}

fn workloads() -> Vec<Workload> {
    let batches = |lo: u64, n: u64, per: u64| -> Vec<String> {
        (0..n / per)
            .map(|b| items_insert(lo + b * per, lo + (b + 1) * per - 1))
            .collect()
    };
    let update = "UPDATE items SET amount = amount + 1, ts = ts + interval '1 minute' WHERE id = i";
    let mut mixed = batches(200_000, 10_000, 1_000);
    mixed.push(each_committed(200_000, 209_999, update));
    mixed.push(each_committed(
        200_000,
        200_999,
        "DELETE FROM items WHERE id = i",
    ));
    vec![
        Workload {
            name: "bulk inserts (10 × 1,000 rows, 7 columns)",
            sql: batches(1, 10_000, 1_000),
            commits: 10,
            changes: 10_000,
        },
        Workload {
            name: "single-row updates (5,000 transactions)",
            sql: vec![each_committed(1, 5_000, update)],
            commits: 5_000,
            changes: 5_000,
        },
        Workload {
            name: "single-row deletes (1,000 transactions)",
            sql: vec![each_committed(1, 1_000, "DELETE FROM items WHERE id = i")],
            commits: 1_000,
            changes: 1_000,
        },
        Workload {
            name: "wide rows with TOAST (200 inserts of ~5 KB, 500 updates leaving it unchanged)",
            sql: vec![
                "INSERT INTO docs SELECT g, 'title ' || g, \
                 (SELECT string_agg(md5(g::text || '/' || i), ' ') FROM generate_series(1, 150) i), g \
                 FROM generate_series(1, 200) g"
                    .into(),
                each_committed(1, 500, "UPDATE docs SET n = n + 1 WHERE id = 1 + i % 200"),
            ],
            commits: 501,
            changes: 700,
        },
        Workload {
            name: "one streamed transaction (50,000 inserts)",
            sql: vec![items_insert(100_000, 149_999)],
            commits: 1,
            changes: 50_000,
        },
        Workload {
            name: "mixed (10,000 inserts, 10,000 single-row updates, 1,000 deletes)",
            sql: mixed,
            commits: 10 + 10_000 + 1_000,
            changes: 21_000,
        },
    ]
}

/// What a walcast client received for one workload.
#[derive(Default, Clone, Copy)]
struct Received {
    /// Response body bytes, as on the wire.
    wire: u64,
    /// The same stream uncompressed (header + frames).
    plain: u64,
    /// Of `plain`: BEGIN and COMMIT frames.
    begin_commit: u64,
    /// Of `plain`: the 17-byte frame envelopes.
    envelopes: u64,
    /// `plain` compressed whole at once (zstd -3): what flushing costs, by comparison.
    whole_zstd: u64,
    /// Only the row messages' payloads (I/U/D), compressed whole: the floor for any format that
    /// changes envelopes and transaction metadata but keeps rows as pgoutput sends them.
    rows_only_zstd: u64,
    /// Relay CPU (user + system) while serving this stream, seconds.
    relay_cpu: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // (compression, frame version)
    let settings = [
        (Compression::None, 1u16),
        (Compression::Zstd, 1),
        (Compression::None, 2),
        (Compression::Zstd, 2),
        (Compression::None, 3),
        (Compression::Zstd, 3),
    ];
    let pg = PgCluster::start_with(
        15,
        &[
            // Small, so the large transaction is streamed (protocol 2+ `streaming on`).
            "logical_decoding_work_mem = '64kB'",
            "synchronous_commit = on",
        ],
    )?;
    pg.psql(ITEMS)?;
    pg.psql(DOCS)?;
    // Old values of updated rows are not in the stream under REPLICA IDENTITY DEFAULT, for any
    // plugin: the same information reaches every client.
    pg.psql("CREATE PUBLICATION wire FOR TABLE items, docs")?;
    for (slot, plugin) in [
        ("walcast", "pgoutput"),
        ("w2j1", "wal2json"),
        ("w2j2", "wal2json"),
        ("w2j2m", "wal2json"),
        ("td", "test_decoding"),
    ] {
        pg.psql(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', '{plugin}')"
        ))
        .with_context(|| {
            format!("creating a {plugin} slot (scripts/install-deps.sh installs wal2json)")
        })?;
    }
    let relay = RelayProcess::start(&pg.url(), "walcast", "wire", "public.items,public.docs")?;
    let relay_pid = relay.child.id();
    let walsender_pid: u32 = pg
        .psql("SELECT pid FROM pg_stat_replication LIMIT 1")?
        .trim()
        .parse()
        .context("the relay's walsender pid")?;
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir()?;

    let mut rows = Vec::new();
    let mut from: Option<Lsn> = None;
    for w in workloads() {
        let ws_before = cpu_secs(walsender_pid)?;
        for sql in &w.sql {
            pg.psql(sql).with_context(|| w.name)?;
        }
        let end = pg.psql("SELECT pg_current_wal_lsn()")?.trim().to_string();
        let mut got = Vec::new();
        let mut last_end = from;
        for &(c, v) in &settings {
            let (r, e) = read_walcast(&http, &relay.http, relay_pid, from, w.commits, c, v).await?;
            got.push(r);
            last_end = Some(e);
        }
        // The walsender has decoded the workload once the first reader got its last commit.
        let walsender_cpu = cpu_secs(walsender_pid)? - ws_before;
        from = last_end;
        let mut peers = Vec::new();
        for (slot, opts, label) in [
            ("w2j1", ", 'format-version', '1'", "wal2json v1"),
            ("w2j2", ", 'format-version', '2'", "wal2json v2"),
            (
                "w2j2m",
                ", 'format-version', '2', 'include-xids', '1', 'include-timestamp', '1', 'include-lsn', '1'",
                "wal2json v2+meta",
            ),
            ("td", "", "test_decoding"),
        ] {
            let text = peer_text(&pg, slot, &end, opts)?;
            peers.push((
                label,
                text.len() as u64,
                zstd_len(&text)?,
                gzip_len(&text, dir.path())?,
            ));
        }
        rows.push((w, got, peers, walsender_cpu));
    }

    // CPU: the whole stream (every workload) read by CPU_CLIENTS clients at once per setting;
    // the relay's CPU time difference between zstd and none is what compression costs.
    let total_commits: u64 = rows.iter().map(|r| r.0.commits).sum();
    let clients = std::env::var("CPU_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8u32);
    let mut cpu = Vec::new();
    for &(c, v) in &settings {
        let before = cpu_secs(relay_pid)?;
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, base) = (http.clone(), relay.http.clone());
            tasks.push(tokio::spawn(async move {
                read_walcast(&http, &base, relay_pid, None, total_commits, c, v).await
            }));
        }
        let mut plain = 0;
        let mut wire = 0;
        for t in tasks {
            let (r, _) = t.await??;
            plain += r.plain;
            wire += r.wire;
        }
        cpu.push(((c, v), cpu_secs(relay_pid)? - before, plain, wire));
    }
    let walsender_total: f64 = rows.iter().map(|r| r.3).sum();
    let stream_mb = rows.iter().map(|r| r.1[0].plain).sum::<u64>() as f64 / 1e6;

    println!("### Wire: bytes per change a client receives (PostgreSQL 15)\n");
    println!(
        "Command: `bench/wire.sh`. Bytes per change = bytes received / row changes (I/U/D).\n"
    );
    println!("walcast: what an HTTP client of `walcast relay` received (pgoutput text mode, protocol 3 on PG15 with `streaming on`; the schema prelude included). v1 = the frame format as stored; v2 = `v=2`, envelopes and BEGIN/COMMIT re-encoded as deltas (docs/frames.md, \"Version 2\"); v3 = `v=3`, v2 plus each row coded against the previous row of its table (\"Version 3\"); zstd = `compression=zstd` as served: level 1, 128 KiB window, flushed at every chunk (per transaction when the client is caught up). For scale, two offline figures from the received v1 frames (zstd -3, compressed whole at once): the plain stream, and the floor of any format that keeps rows as pgoutput sends them (the row payloads alone).\n");
    println!("| workload | changes | v1 none | v1 zstd | v2 none | v2 zstd | v3 none | **v3 zstd** | v1 whole-stream zstd | floor with rows as sent |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (w, got, _, _) in &rows {
        let per = |b: u64| format!("{:.1}", b as f64 / w.changes as f64);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} |",
            w.name,
            w.changes,
            per(got[0].wire),
            per(got[1].wire),
            per(got[2].wire),
            per(got[3].wire),
            per(got[4].wire),
            per(got[5].wire),
            per(got[0].whole_zstd),
            per(got[0].rows_only_zstd)
        );
    }
    println!("\nPeers on the same WAL: `pg_logical_slot_get_changes` output, rows joined by newlines as `pg_recvlogical` writes them, compressed whole (zstd -3, gzip -6): their best case. Their replication framing (~30 B per message) is not counted. Default options carry no LSN, xid or commit time; \"+meta\" adds `include-xids`, `include-timestamp`, `include-lsn` (closer to what walcast carries: every LSN, xid and commit time, losslessly).\n");
    println!("| workload | wal2json v1 | v1 zstd | v1 gzip | wal2json v2 | **v2 zstd** | v2 gzip | v2+meta | v2+meta zstd | test_decoding | td zstd |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (w, _, peers, _) in &rows {
        let per = |b: u64| format!("{:.1}", b as f64 / w.changes as f64);
        let mut line = format!("| {} |", w.name);
        for (label, raw, z, g) in peers {
            line += &match *label {
                "wal2json v2" => format!(" {} | **{}** | {} |", per(*raw), per(*z), per(*g)),
                "wal2json v1" => format!(" {} | {} | {} |", per(*raw), per(*z), per(*g)),
                _ => format!(" {} | {} |", per(*raw), per(*z)),
            };
        }
        println!("{line}");
    }
    if let Some((_, got, peers, _)) = rows.iter().find(|r| r.0.name.starts_with("mixed")) {
        let ratio = |i: usize, peer: usize| got[i].wire as f64 / peers[peer].2 as f64;
        println!(
            "\nMixed workload, ÷ wal2json v2 whole-stream zstd (target ≤ 0.5×): walcast v1+zstd {:.2}×, v2+zstd {:.2}×, **v3+zstd {:.2}×**. ÷ wal2json v2+meta zstd (which carries the LSNs, xids and times walcast carries): v1+zstd {:.2}×, v3+zstd **{:.2}×**. The floor with rows as pgoutput sends them: {:.2}×.\n",
            ratio(1, 1),
            ratio(3, 1),
            ratio(5, 1),
            ratio(1, 2),
            ratio(5, 2),
            got[0].rows_only_zstd as f64 / peers[1].2 as f64,
        );
    }
    println!("Where walcast's uncompressed bytes go (share of the plain stream):\n");
    println!("| workload | plain bytes | BEGIN + COMMIT frames | frame envelopes (17 B each) |");
    println!("|---|---|---|---|");
    for (w, got, _, _) in &rows {
        let p = got[0].plain as f64;
        println!(
            "| {} | {} | {:.0}% | {:.0}% |",
            w.name,
            got[0].plain,
            100.0 * got[0].begin_commit as f64 / p,
            100.0 * got[0].envelopes as f64 / p
        );
    }
    println!("\nCPU time (user + system from /proc/PID/stat, so other load on the machine does not count; 10 ms ticks). The walsender decoded all six workloads once ({stream_mb:.1} MB of walcast frames); then {clients} clients at once read that whole stream from the relay's log, per setting:\n");
    println!("| what | CPU | plain MB | wire MB | CPU per plain MB |");
    println!("|---|---|---|---|---|");
    println!(
        "| walsender (pgoutput), decoding the workloads | {walsender_total:.2} s | {stream_mb:.1} | – | {:.0} ms/MB |",
        1000.0 * walsender_total / stream_mb
    );
    for ((c, v), secs, plain, wire) in &cpu {
        println!(
            "| relay serving {clients} clients, v{v} {} | {secs:.2} s | {:.1} | {:.1} | {:.1} ms/MB |",
            c.as_str(),
            *plain as f64 / 1e6,
            *wire as f64 / 1e6,
            1000.0 * secs / (*plain as f64 / 1e6)
        );
    }
    if let [(_, none, plain, _), (_, z, _, _), _, (_, z2, _, _), _, (_, z3, _, _)] = cpu[..] {
        let mb = plain as f64 / 1e6;
        println!(
            "\nOver serving v1 uncompressed, zstd costs the relay {:.1} ms of CPU per plain (v1) MB, v2 + zstd {:.1} ms/MB, v3 + zstd {:.1} ms/MB; the walsender spends {:.0} ms per MB producing the stream.\n",
            1000.0 * (z - none).max(0.0) / mb,
            1000.0 * (z2 - none).max(0.0) / mb,
            1000.0 * (z3 - none).max(0.0) / mb,
            1000.0 * walsender_total / stream_mb
        );
    }

    if std::env::var("LATENCY").map_or(true, |v| v != "0") {
        println!("Latency compression adds, at 100 and 10,000 single-row commits/s. Four native clients (`Subscription`, HTTP) read the live stream at once, one per setting; for every commit, each client's arrival time is paired with the `v1 none` client's arrival of the same commit, so PostgreSQL's and the relay's own delays, common to all four, cancel out. Also commit → client (commit_time from PostgreSQL vs the client's clock, same host). At 10,000/s the load runs on 4 connections with `synchronous_commit = off` (logical decoding is the same), and the rate is what the 2-core machine reached with everything on it.\n");
        println!("| target rate | reached | setting | commits | commit → client p50 | p99 | **added p50** | **added p99** |");
        println!("|---|---|---|---|---|---|---|---|");
        let lat_settings = [settings[0], settings[1], settings[3], settings[5]];
        for (rate, secs) in [(100u32, 20u64), (10_000, 5)] {
            let run = latency(
                &pg,
                &relay.http,
                &lat_settings,
                rate,
                Duration::from_secs(secs),
                from,
            )
            .await?;
            for (i, (c, v)) in lat_settings.iter().enumerate() {
                let s = &run.settings[i];
                let ms = |x: f64| {
                    if i == 0 {
                        "–".into()
                    } else {
                        format!("**{x:.2} ms**")
                    }
                };
                let (added, added99): (String, String) = (ms(s.added.0), ms(s.added.1));
                println!(
                    "| {rate}/s | {:.0}/s | v{v} {} | {} | {:.2} ms | {:.2} ms | {added} | {added99} |",
                    run.reached,
                    c.as_str(),
                    s.commits,
                    s.commit_to_client.0,
                    s.commit_to_client.1,
                );
            }
        }
        println!();
    }
    drop(relay);
    per_transaction_cost()?;
    Ok(())
}

/// What compression adds to one small transaction at a low commit rate, where every
/// transaction is its own flushed chunk: relay-side encode and client-side decode, in CPU time
/// of this thread (100,000 transactions, so 10 ms ticks do not matter).
fn per_transaction_cost() -> Result<()> {
    use walcast_decoder::frame::{encode_frame, encode_header};
    use walcast_relay::serve::compress::StreamEncoder;
    const N: u64 = 100_000;
    let row =
        b"U\0\0\x40\x01N\0\x07t\0\0\0\x045001t\0\0\0\x09name 5001t\0\0\0\x15user5001@example.com\
t\0\0\0\x162024-01-01 01:23:21+00t\0\0\0\x076252.25t\0\0\0\x01ft\0\0\0\x101667.000000000000";
    let txn = |i: u64| {
        let lsn = 0x1_0000_0000 + i * 200;
        let mut chunk = Vec::new();
        let mut b = vec![b'B'];
        b.extend_from_slice(&(lsn + 150).to_be_bytes());
        b.extend_from_slice(&(800_000_000_000_000 + i as i64 * 9_000).to_be_bytes());
        b.extend_from_slice(&(1000 + i as u32).to_be_bytes());
        encode_frame(FrameKind::Wal, Lsn(0), &b, &mut chunk);
        encode_frame(FrameKind::Wal, Lsn(lsn + 40), row, &mut chunk);
        let mut c = vec![b'C', 0];
        c.extend_from_slice(&(lsn + 150).to_be_bytes());
        c.extend_from_slice(&(lsn + 198).to_be_bytes());
        c.extend_from_slice(&(800_000_000_000_000 + i as i64 * 9_000).to_be_bytes());
        encode_frame(FrameKind::Wal, Lsn(lsn + 150), &c, &mut chunk);
        chunk
    };
    println!("\nCPU time compression adds per single-row transaction when each is flushed on its own (the low-rate case), {N} transactions, one thread:\n");
    println!("| setting | relay: encode | client: decompress + v2/v3→v1 | bytes on the wire per transaction |");
    println!("|---|---|---|---|");
    for (c, v) in [
        (Compression::None, 1u16),
        (Compression::Zstd, 1),
        (Compression::Zstd, 2),
        (Compression::Zstd, 3),
    ] {
        let mut enc = StreamEncoder::new(c)?.with_version(v);
        let mut head = Vec::new();
        encode_header(&mut head);
        let mut wire = vec![enc.encode(&head, false)?];
        let t0 = thread_cpu()?;
        for i in 0..N {
            wire.push(enc.encode(&txn(i), false)?);
        }
        let enc_us = (thread_cpu()? - t0) * 1e6 / N as f64;
        let bytes: usize = wire[1..].iter().map(Vec::len).sum();
        let (mut inflater, mut framing, mut reader) =
            (Inflater::new(), Framing::new(), FrameReader::new());
        let mut frames = 0u64;
        let t0 = thread_cpu()?;
        for w in wire {
            inflater.push(bytes::Bytes::from(w))?;
            while inflater.pending() {
                framing.feed(inflater.step()?, &mut reader)?;
                while reader.next_frame()?.is_some() {
                    frames += 1;
                }
            }
        }
        let dec_us = (thread_cpu()? - t0) * 1e6 / N as f64;
        anyhow::ensure!(frames == 3 * N, "decoded {frames} frames");
        println!(
            "| v{v} {} | {enc_us:.1} µs | {dec_us:.1} µs | {:.1} |",
            c.as_str(),
            bytes as f64 / N as f64
        );
    }
    Ok(())
}

/// CPU time (user + system) of the calling thread, seconds.
fn thread_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok((f[11].parse::<f64>()? + f[12].parse::<f64>()?) / 100.0)
}

/// Streams from `from` until `commits` transactions ended; returns what was received and the
/// last commit's end LSN.
async fn read_walcast(
    http: &reqwest::Client,
    base: &str,
    relay_pid: u32,
    from: Option<Lsn>,
    commits: u64,
    compression: Compression,
    version: u16,
) -> Result<(Received, Lsn)> {
    let mut url = format!(
        "{base}/v1/stream?compression={}&v={version}",
        compression.as_str()
    );
    if let Some(f) = from {
        url += &format!("&from={f}");
    }
    let cpu_before = cpu_secs(relay_pid)?;
    let resp = http.get(&url).send().await?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!("{url}: {status}: {}", resp.text().await.unwrap_or_default());
    }
    let encoding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    anyhow::ensure!(
        encoding.as_deref() == (compression == Compression::Zstd).then_some("zstd"),
        "Content-Encoding {encoding:?} for {compression:?}"
    );
    let mut body = resp.bytes_stream();
    // WIRE_DUMP=DIR keeps each stream's wire bytes, to try other compressors on them offline.
    let mut dump = std::env::var_os("WIRE_DUMP").map(|_| Vec::new());
    let mut inflater = Inflater::new();
    let mut framing = Framing::new();
    let mut reader = FrameReader::new();
    let mut r = Received {
        plain: walcast_decoder::frame::HEADER_LEN as u64,
        ..Default::default()
    };
    let mut plain = Vec::new();
    let mut rows_only = Vec::new();
    let mut seen = 0;
    let mut last_end = Lsn::ZERO;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < commits {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {seen}/{commits} commits"
        );
        let chunk = body.next().await.context("stream ended")??;
        r.wire += chunk.len() as u64;
        if let Some(d) = &mut dump {
            d.extend_from_slice(&chunk);
        }
        inflater.push(chunk)?;
        while inflater.pending() {
            let step = inflater.step()?;
            plain.extend_from_slice(step);
            framing.feed(step, &mut reader)?;
            while let Some(f) = reader.next_frame()? {
                let len = f.encoded_len() as u64;
                r.plain += len;
                if matches!(f.payload.first(), Some(b'I' | b'U' | b'D')) {
                    put_varint(&mut rows_only, f.payload.len() as u64);
                    rows_only.extend_from_slice(f.payload);
                }
                r.envelopes += 17;
                let tag = f.payload.first().copied();
                if f.kind == FrameKind::Wal && matches!(tag, Some(b'B' | b'C')) {
                    r.begin_commit += len;
                }
                if f.kind == FrameKind::Wal && matches!(tag, Some(b'C' | b'c')) {
                    seen += 1;
                    // Commit: flags, commit_lsn, end_lsn; Stream Commit: xid first.
                    let at = if tag == Some(b'C') { 10 } else { 14 };
                    let b: [u8; 8] = f.payload[at..at + 8].try_into()?;
                    last_end = Lsn(u64::from_be_bytes(b));
                }
            }
        }
    }
    r.relay_cpu = cpu_secs(relay_pid)? - cpu_before;
    if let (Some(d), Some(dir)) = (&dump, std::env::var_os("WIRE_DUMP")) {
        let name = format!(
            "from-{}-{}-v{version}.bin",
            from.map_or("0".into(), |l| l.to_string().replace('/', "_")),
            compression.as_str()
        );
        std::fs::write(std::path::Path::new(&dir).join(name), d)?;
    }
    r.whole_zstd = zstd_len(&plain)?;
    r.rows_only_zstd = zstd_len(&rows_only)?;
    Ok((r, last_end))
}

fn peer_text(pg: &PgCluster, slot: &str, end: &str, opts: &str) -> Result<Vec<u8>> {
    let out = pg
        .psql_command()
        .arg("-c")
        .arg(format!(
            "SELECT data FROM pg_logical_slot_get_changes('{slot}', '{end}', NULL{opts})"
        ))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{slot}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zstd_len(data: &[u8]) -> Result<u64> {
    Ok(zstd::bulk::compress(data, 3)?.len() as u64)
}

fn gzip_len(data: &[u8], dir: &std::path::Path) -> Result<u64> {
    let path = dir.join("peer.txt");
    std::fs::write(&path, data)?;
    let out = std::process::Command::new("gzip")
        .args(["-6", "-c"])
        .arg(&path)
        .output()?;
    anyhow::ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout.len() as u64)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn pg_now_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64;
    unix - 946_684_800_000_000
}

/// One setting's figures in a latency run (ms): (p50, p99) pairs.
struct SettingLatency {
    commits: usize,
    commit_to_client: (f64, f64),
    /// Arrival minus the first setting's arrival of the same commit.
    added: (f64, f64),
}

struct LatencyRun {
    /// Commits per second the load reached.
    reached: f64,
    settings: Vec<SettingLatency>,
}

/// Single-row commits at `rate`/s for `dur`, read live by one client per setting at once.
async fn latency(
    pg: &PgCluster,
    http: &str,
    settings: &[(Compression, u16)],
    rate: u32,
    dur: Duration,
    from: Option<Lsn>,
) -> Result<LatencyRun> {
    let start: Lsn = pg.psql("SELECT pg_current_wal_lsn()")?.trim().parse()?;
    let mut readers = Vec::new();
    for &(c, v) in settings {
        let http = http.to_string();
        readers.push(tokio::spawn(async move {
            // Start after the last workload: the backlog before it is not part of the measurement.
            let mut sub = Subscription::new(Transport::from_url(&http, None)?, from, Vec::new())
                .with_compression(c)
                .with_frame_version(v);
            let mut decoder = Decoder::new();
            // (end_lsn, arrival, commit → client in ms)
            let mut seen = Vec::new();
            let stop_at = Instant::now() + dur + Duration::from_secs(6);
            while Instant::now() < stop_at {
                let Ok(d) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
                else {
                    continue;
                };
                if let Delivery::Frame(f) = d? {
                    if let Event::Commit(c) = decoder.decode(&f.payload)? {
                        if c.end_lsn > start {
                            let ms = (pg_now_micros() - c.commit_time) as f64 / 1000.0;
                            seen.push((c.end_lsn, Instant::now(), ms));
                        }
                    }
                }
            }
            anyhow::Ok(seen)
        }));
    }
    // Let the readers catch up with the backlog before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fast = rate > 1_000;
    let conns = if fast { 4 } else { 1 };
    let tick = Duration::from_micros((1_000_000 / u64::from(rate)).max(1_000));
    let per_tick = (u64::from(rate) * tick.as_micros() as u64 / 1_000_000).max(1) as usize;
    let mut stmts = Vec::new();
    for k in 0..conns {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        if fast {
            client.batch_execute("SET synchronous_commit = off").await?;
        }
        // One row per connection: no lock waits between them.
        let stmt = client
            .prepare(&format!(
                "UPDATE items SET score = score + 1 WHERE id = {}",
                7000 + k
            ))
            .await?;
        stmts.push((client, stmt));
    }
    let mut interval = tokio::time::interval(tick);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        interval.tick().await;
        // Pipelined: each connection has its share of this tick's commits in flight at once.
        let batch = (0..per_tick).map(|i| {
            let (client, stmt) = &stmts[i % conns];
            client.execute(stmt, &[])
        });
        for r in futures_util::future::join_all(batch).await {
            r?;
        }
        sent += per_tick as u64;
    }
    let reached = sent as f64 / t0.elapsed().as_secs_f64();
    let mut per_setting = Vec::new();
    for r in readers {
        per_setting.push(r.await??);
    }
    let base: std::collections::HashMap<Lsn, Instant> =
        per_setting[0].iter().map(|&(l, at, _)| (l, at)).collect();
    let mut out = Vec::new();
    for seen in &per_setting {
        let mut to_client: Vec<f64> = seen.iter().map(|s| s.2).collect();
        to_client.sort_by(|a, b| a.total_cmp(b));
        let mut added: Vec<f64> = seen
            .iter()
            .filter_map(|(l, at, _)| {
                let b = base.get(l)?;
                Some(if at >= b {
                    at.duration_since(*b).as_secs_f64() * 1e3
                } else {
                    -(b.duration_since(*at).as_secs_f64() * 1e3)
                })
            })
            .collect();
        added.sort_by(|a, b| a.total_cmp(b));
        anyhow::ensure!(!to_client.is_empty(), "a reader saw no commits");
        out.push(SettingLatency {
            commits: seen.len(),
            commit_to_client: (percentile(&to_client, 50.0), percentile(&to_client, 99.0)),
            added: (percentile(&added, 50.0), percentile(&added, 99.0)),
        });
    }
    std::io::stdout().flush()?;
    Ok(LatencyRun {
        reached,
        settings: out,
    })
}
