//! Stream compression end to end (docs/frames.md, "Compression"): against a real relay and a
//! real PostgreSQL, a zstd stream carries exactly the plain stream's bytes, over HTTP (query
//! option and Accept-Encoding) and QUIC, and `walcast tail --compression zstd` prints exactly
//! what it prints without compression.

use futures_util::StreamExt;
use std::process::Command;
use std::time::{Duration, Instant};
use walcast_decoder::frame::{FrameKind, FrameReader};
use walcast_decoder::Lsn;
use walcast_relay::client::{Compression, Framing, Inflater};
use walcast_testkit::PgCluster;
use walcast_tests::relay::*;

const TABLES: &[&str] = &["public.t", "public.fence", "public.wide"];

fn setup() -> (PgCluster, Relay) {
    let pg = PgCluster::start_with(15, &["logical_decoding_work_mem = '64kB'"]).unwrap();
    create_tables(&pg).unwrap();
    pg.psql("CREATE TABLE wide (id int PRIMARY KEY, body text, n int)")
        .unwrap();
    let relay = Relay::start(&pg, TABLES, &["--quic", "127.0.0.1:0"]).unwrap();
    (pg, relay)
}

/// Regular transactions, TOASTed rows with unchanged-TOAST updates, and one transaction large
/// enough to be streamed in blocks.
fn workload(pg: &PgCluster) -> Lsn {
    write_txns(pg, 1..=60).unwrap();
    pg.psql(
        "INSERT INTO wide SELECT g, (SELECT string_agg(md5(g || '/' || i), '') FROM generate_series(1, 200) i), 0 \
         FROM generate_series(1, 30) g; \
         UPDATE wide SET n = n + 1 WHERE id <= 10; \
         INSERT INTO t SELECT g, g, repeat('s', 50) FROM generate_series(1000, 6000) g",
    )
    .unwrap();
    fence(pg).unwrap()
}

/// `(kind, lsn, payload)` of every frame of one HTTP stream from the start, up to the first
/// commit ending after `until`; also the Content-Encoding and the body bytes received.
async fn read_http(
    url: &str,
    query: &str,
    accept_encoding: Option<&str>,
    until: Lsn,
) -> (Vec<(FrameKind, Lsn, Vec<u8>)>, Option<String>, usize) {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{url}/v1/stream{query}"));
    if let Some(ae) = accept_encoding {
        req = req.header("accept-encoding", ae);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let encoding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        resp.headers()
            .get("vary")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("accept-encoding".into())
    );
    let mut body = resp.bytes_stream();
    let mut inflater = Inflater::new();
    let mut framing = Framing::new();
    let mut reader = FrameReader::new();
    let mut frames = Vec::new();
    let mut wire = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "stream did not reach {until}");
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("stream stalled")
            .expect("stream ended")
            .unwrap();
        wire += chunk.len();
        inflater.push(chunk).unwrap();
        while inflater.pending() {
            framing.feed(inflater.step().unwrap(), &mut reader).unwrap();
            while let Some(f) = reader.next_frame().unwrap() {
                frames.push((f.kind, f.lsn, f.payload.to_vec()));
                let done = f.kind == FrameKind::Wal
                    && f.payload.first() == Some(&b'C')
                    && Lsn(u64::from_be_bytes(f.payload[10..18].try_into().unwrap())) > until;
                if done {
                    return (frames, encoding, wire);
                }
            }
        }
    }
}

fn tail(url: &str, cert: Option<&str>, until: Lsn, compression: &str, version: u16) -> String {
    let mut cmd = Command::new(walcast_bin());
    cmd.args(["tail", "--url", url, "--until", &until.to_string()])
        .args(["--compression", compression])
        .args(["--frame-version", &version.to_string()]);
    if let Some(fp) = cert {
        cmd.args(["--cert-sha256", fp]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tail --compression {compression} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn compressed_streams_carry_exactly_the_plain_stream() {
    let (pg, relay) = setup();
    let until = workload(&pg);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = relay.url();
    let (plain, enc, plain_wire) = rt.block_on(read_http(&url, "", None, until));
    assert_eq!(enc, None);
    assert!(
        plain.iter().any(|f| f.2.first() == Some(&b'S')),
        "a streamed transaction"
    );
    assert!(plain.len() > 5000, "{} frames", plain.len());

    let (z, enc, z_wire) = rt.block_on(read_http(&url, "?compression=zstd", None, until));
    assert_eq!(enc.as_deref(), Some("zstd"));
    assert!(z == plain, "zstd stream differs from the plain one");
    assert!(
        z_wire * 3 < plain_wire,
        "zstd {z_wire} B vs plain {plain_wire} B"
    );

    // What a browser sends: Accept-Encoding alone turns zstd on, and the query option wins.
    let (ae, enc, _) = rt.block_on(read_http(&url, "", Some("gzip, deflate, br, zstd"), until));
    assert_eq!(enc.as_deref(), Some("zstd"));
    assert!(ae == plain);
    let (off, enc, _) = rt.block_on(read_http(
        &url,
        "?compression=none",
        Some("gzip, zstd"),
        until,
    ));
    assert_eq!(enc, None);
    assert!(off == plain);
    let (_, enc, _) = rt.block_on(read_http(&url, "", Some("gzip, zstd;q=0"), until));
    assert_eq!(enc, None);
    let (status, body) = http_get(relay.http, "/v1/stream?compression=brotli").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown compression"), "{body}");

    // The native client and the CLI, over HTTP and QUIC: identical output either way.
    let reference = tail(&url, None, until, "none", 1);
    assert!(reference.lines().count() > 5000);
    assert_eq!(tail(&url, None, until, "zstd", 1), reference);
    assert_eq!(tail(&url, None, until, "zstd", 2), reference);
    let (quic_url, fp) = relay.quic_url().unwrap();
    assert_eq!(tail(&quic_url, Some(&fp), until, "zstd", 1), reference);
    assert_eq!(tail(&quic_url, Some(&fp), until, "none", 1), reference);
    assert_eq!(tail(&quic_url, Some(&fp), until, "zstd", 2), reference);
    assert_eq!(tail(&quic_url, Some(&fp), until, "none", 2), reference);

    // Frame version 2 carries exactly the v1 frames, and is smaller, compressed or not.
    let (v2, _, v2_wire) = rt.block_on(read_http(&url, "?v=2", None, until));
    assert!(v2 == plain, "v2 stream differs from v1");
    assert!(v2_wire < plain_wire, "v2 {v2_wire} B vs v1 {plain_wire} B");
    let (v2z, enc, v2z_wire) = rt.block_on(read_http(&url, "?v=2&compression=zstd", None, until));
    assert_eq!(enc.as_deref(), Some("zstd"));
    assert!(v2z == plain, "v2+zstd stream differs from v1");
    assert!(
        v2z_wire < z_wire,
        "v2+zstd {v2z_wire} B vs v1+zstd {z_wire} B"
    );
    // Version 3 (rows coded against the previous row of their table) also carries exactly the
    // v1 frames (a streamed transaction, TOAST, updates and deletes included), and is smaller.
    let (v3, _, v3_wire) = rt.block_on(read_http(&url, "?v=3", None, until));
    assert!(v3 == plain, "v3 stream differs from v1");
    assert!(v3_wire < v2_wire, "v3 {v3_wire} B vs v2 {v2_wire} B");
    let (v3z, enc, v3z_wire) = rt.block_on(read_http(&url, "?v=3&compression=zstd", None, until));
    assert_eq!(enc.as_deref(), Some("zstd"));
    assert!(v3z == plain, "v3+zstd stream differs from v1");
    assert!(
        v3z_wire < v2z_wire,
        "v3+zstd {v3z_wire} B vs v2+zstd {v2z_wire} B"
    );
    assert_eq!(tail(&url, None, until, "zstd", 3), reference);
    assert_eq!(tail(&quic_url, Some(&fp), until, "zstd", 3), reference);
    let (status, body) = http_get(relay.http, "/v1/stream?v=4").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("supported: 1, 2, 3"), "{body}");
}

#[test]
fn a_refused_compressed_quic_request_is_readable() {
    let (pg, relay) = setup();
    let _ = pg;
    let (quic_url, fp) = relay.quic_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A position from another log: the relay refuses it with an 'e' frame, compressed as asked.
    let err = rt.block_on(async {
        let transport = walcast_relay::client::Transport::from_url(&quic_url, Some(&fp)).unwrap();
        let mut sub =
            walcast_relay::client::Subscription::new(transport, Some(Lsn(0xFF_0000_0000)), vec![])
                .with_compression(Compression::Zstd)
                .with_frame_version(2);
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(e) = sub.next().await {
                    return e;
                }
            }
        })
        .await
        .expect("the refusal arrives")
    });
    assert!(
        matches!(
            err,
            walcast_relay::client::ClientError::ResyncRequired { .. }
        ),
        "{err}"
    );
}
