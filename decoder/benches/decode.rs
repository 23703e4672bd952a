//! Decoder throughput on real captured streams (tests/fixtures, captured from PostgreSQL 15):
//! narrow 7-column rows in text and binary mode, and a wide table with large TOASTed text.
//!
//! Targets (one core): parse ≥ 1 GB/s of pgoutput; decode ≥ 5 M typed 7-column rows/s.
//! Run: `cargo bench -p walcast-decoder --bench decode`, or `bench/run.sh decoder`, which also
//! writes the figures into BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use walcast_decoder::output::{jsonl::write_event, parse_bytea_hex};
use walcast_decoder::{pgoutput, Decoder, Event};

struct Fixture {
    name: &'static str,
    messages: Vec<Vec<u8>>,
    bytes: usize,
    rows: usize,
}

fn load(name: &'static str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let messages: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_bytea_hex(l).expect("fixture line is a hex bytea"))
        .collect();
    let bytes = messages.iter().map(Vec::len).sum();
    let rows = messages
        .iter()
        .filter(|m| matches!(m.first(), Some(b'I' | b'U' | b'D')))
        .count();
    Fixture {
        name,
        messages,
        bytes,
        rows,
    }
}

/// Parses every message, following stream blocks the way a consumer must.
fn parse_all(messages: &[Vec<u8>]) -> usize {
    let mut in_stream = false;
    let mut columns = 0;
    for m in messages {
        match pgoutput::parse(black_box(m), in_stream).expect("valid message") {
            pgoutput::Message::StreamStart(_) => in_stream = true,
            pgoutput::Message::StreamStop => in_stream = false,
            pgoutput::Message::Insert(i) => columns += i.new.columns().count(),
            pgoutput::Message::Update(u) => columns += u.new.columns().count(),
            _ => {}
        }
    }
    columns
}

fn decode_all(messages: &[Vec<u8>]) -> usize {
    let mut d = Decoder::new();
    let mut cells = 0;
    for m in messages {
        match d.decode(black_box(m)).expect("valid message") {
            Event::Insert(c) | Event::Update(c) | Event::Delete(c) => {
                cells += c.new.as_ref().map_or(0, |r| r.cells.len());
                black_box(&c);
            }
            _ => {}
        }
    }
    cells
}

fn json_all(messages: &[Vec<u8>], out: &mut String) -> usize {
    let mut d = Decoder::new();
    let mut n = 0;
    for m in messages {
        let ev = d.decode(black_box(m)).expect("valid message");
        out.clear();
        write_event(&ev, None, out);
        n += out.len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let fixtures = [
        load("narrow7_text"),
        load("narrow7_binary"),
        load("wide_toast"),
    ];
    // Sizes per iteration, for bench/run.sh to turn times into rates.
    let meta: Vec<String> = fixtures
        .iter()
        .map(|f| {
            format!(
                "{{\"name\":\"{}\",\"bytes\":{},\"rows\":{},\"messages\":{}}}",
                f.name,
                f.bytes,
                f.rows,
                f.messages.len()
            )
        })
        .collect();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(
        target.join("walcast-fixtures.json"),
        format!("[{}]", meta.join(",")),
    );

    let mut g = c.benchmark_group("parse");
    for f in &fixtures {
        g.throughput(Throughput::Bytes(f.bytes as u64));
        g.bench_function(f.name, |b| b.iter(|| parse_all(&f.messages)));
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    for f in &fixtures {
        g.throughput(Throughput::Elements(f.rows as u64));
        g.bench_function(f.name, |b| b.iter(|| decode_all(&f.messages)));
    }
    g.finish();

    let mut g = c.benchmark_group("jsonl");
    for f in &fixtures {
        g.throughput(Throughput::Elements(f.rows as u64));
        let mut out = String::new();
        g.bench_function(f.name, |b| b.iter(|| json_all(&f.messages, &mut out)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
