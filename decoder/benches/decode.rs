//! Decoder throughput over synthetic 7-column rows (real captured fixtures come later).
//!
//! Targets: parse ≥ 1 GB/s; typed rows ≥ 5 M rows/s on one core.
//! Run: `cargo bench -p walcast-decoder --bench decode`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use walcast_decoder::{pgoutput, Decoder, Event};

const ROWS: usize = 10_000;
const REL: u32 = 16384;

fn relation_message() -> Vec<u8> {
    let cols: [(&str, u32, bool); 7] = [
        ("id", 23, true),
        ("name", 25, false),
        ("email", 25, false),
        ("created_at", 1184, false),
        ("amount", 1700, false),
        ("active", 16, false),
        ("counter", 20, false),
    ];
    let mut m = vec![b'R'];
    m.extend_from_slice(&REL.to_be_bytes());
    m.extend_from_slice(b"public\0users\0d");
    m.extend_from_slice(&(cols.len() as u16).to_be_bytes());
    for (name, oid, key) in cols {
        m.push(u8::from(key));
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.extend_from_slice(&oid.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
    }
    m
}

/// Text-mode Insert messages shaped like the brief's measured workload (~80 bytes per row).
fn insert_messages() -> Vec<Vec<u8>> {
    (0..ROWS)
        .map(|i| {
            let values = [
                i.to_string(),
                format!("user number {i}"),
                format!("user{i}@example.com"),
                "2024-05-01 12:00:00.123456+00".to_string(),
                format!("{}.{:02}", i % 1000, i % 100),
                if i % 2 == 0 { "t" } else { "f" }.to_string(),
                (i * 7919).to_string(),
            ];
            let mut m = vec![b'I'];
            m.extend_from_slice(&REL.to_be_bytes());
            m.push(b'N');
            m.extend_from_slice(&(values.len() as u16).to_be_bytes());
            for v in values {
                m.push(b't');
                m.extend_from_slice(&(v.len() as u32).to_be_bytes());
                m.extend_from_slice(v.as_bytes());
            }
            m
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rel = relation_message();
    let msgs = insert_messages();
    let bytes: usize = msgs.iter().map(Vec::len).sum();

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("pgoutput::parse 7-col inserts", |b| {
        b.iter(|| {
            for m in &msgs {
                let parsed = pgoutput::parse(black_box(m), false).expect("valid message");
                if let pgoutput::Message::Insert(i) = parsed {
                    // Walk the columns, as any consumer of a parsed row does.
                    black_box(i.new.columns().count());
                }
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("Decoder::decode typed 7-col rows", |b| {
        let mut d = Decoder::new();
        d.decode(&rel).expect("relation");
        b.iter(|| {
            for m in &msgs {
                match d.decode(black_box(m)).expect("valid row") {
                    Event::Insert(c) => {
                        black_box(c.new.map(|r| r.cells.len()));
                    }
                    _ => unreachable!("only inserts"),
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
