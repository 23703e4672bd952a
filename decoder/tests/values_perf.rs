//! Throughput of value decoding on the 7-column row shape of the product brief
//! (int4, text, timestamptz, numeric, bool, int8, float8). Ignored by default: run with
//! `cargo test --release -p walcast-decoder --test values_perf -- --ignored --nocapture`.

use std::time::{Duration, Instant};

/// CPU time of this thread (Linux schedstat), so the figure is not skewed by other processes
/// sharing the machine's cores; wall time elsewhere.
struct Clock(Option<u64>, Instant);

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Clock {
    fn now() -> Clock {
        Clock(thread_cpu_ns(), Instant::now())
    }
    fn elapsed(&self) -> Duration {
        match (self.0, thread_cpu_ns()) {
            (Some(a), Some(b)) => Duration::from_nanos(b - a),
            _ => self.1.elapsed(),
        }
    }
    fn as_secs_f64(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }
}
use walcast_decoder::value::{decode_binary, decode_text, json::write_json, oid};

const TYPES: [u32; 7] = [
    oid::INT4,
    oid::TEXT,
    oid::TIMESTAMPTZ,
    oid::NUMERIC,
    oid::BOOL,
    oid::INT8,
    oid::FLOAT8,
];

fn text_row(i: u32) -> [Vec<u8>; 7] {
    [
        i.to_string().into_bytes(),
        format!("user-{i}@example.com").into_bytes(),
        format!(
            "2024-05-{:02} 12:{:02}:{:02}.{:06}+00",
            i % 28 + 1,
            i % 60,
            i % 59,
            i % 999_999
        )
        .into_bytes(),
        format!("{}.{:02}", i * 7, i % 100).into_bytes(),
        b"t".to_vec(),
        (i as i64 * 1_000_003).to_string().into_bytes(),
        format!("{}", i as f64 * 0.25).into_bytes(),
    ]
}

fn binary_row(i: u32) -> [Vec<u8>; 7] {
    let numeric = {
        // i*7 + (i%100)/100 as numeric_send: weight 0/1 groups, dscale 2.
        let int = i * 7;
        let mut b = Vec::new();
        let groups: Vec<u16> = if int >= 10_000 {
            vec![
                (int / 10_000) as u16,
                (int % 10_000) as u16,
                (i % 100) as u16 * 100,
            ]
        } else {
            vec![int as u16, (i % 100) as u16 * 100]
        };
        b.extend((groups.len() as u16).to_be_bytes());
        b.extend(((groups.len() - 2) as i16).to_be_bytes());
        b.extend(0u16.to_be_bytes());
        b.extend(2u16.to_be_bytes());
        groups.iter().for_each(|g| b.extend(g.to_be_bytes()));
        b
    };
    [
        (i as i32).to_be_bytes().to_vec(),
        format!("user-{i}@example.com").into_bytes(),
        (768_000_000_000_000i64 + i as i64 * 1_000_117)
            .to_be_bytes()
            .to_vec(),
        numeric,
        vec![1],
        (i as i64 * 1_000_003).to_be_bytes().to_vec(),
        (i as f64 * 0.25).to_be_bytes().to_vec(),
    ]
}

type Decode = for<'a> fn(u32, &'a [u8]) -> walcast_decoder::Result<walcast_decoder::Value<'a>>;

/// All rows' column bytes in one buffer, as they sit in a pgoutput message, plus their ranges.
struct Rows {
    buf: Vec<u8>,
    cols: Vec<[(usize, usize); 7]>,
}

impl Rows {
    fn new(n: u32, make: fn(u32) -> [Vec<u8>; 7]) -> Rows {
        let mut buf = Vec::new();
        let mut cols = Vec::new();
        for i in 0..n {
            let row = make(i);
            let mut r = [(0, 0); 7];
            for (k, c) in row.iter().enumerate() {
                r[k] = (buf.len(), buf.len() + c.len());
                buf.extend(c);
            }
            cols.push(r);
        }
        Rows { buf, cols }
    }
}

/// Decodes every column of every row `rounds` times; returns rows per second.
fn decode_rate(rows: &Rows, decode: Decode, rounds: usize) -> f64 {
    let start = Clock::now();
    let mut nulls = 0usize;
    let mut values = Vec::with_capacity(7);
    for _ in 0..rounds {
        for row in &rows.cols {
            values.clear();
            for (ty, (a, b)) in TYPES.iter().zip(row) {
                values.push(decode(*ty, &rows.buf[*a..*b]).expect("valid test data"));
            }
            nulls += values
                .iter()
                .filter(|v| matches!(v, walcast_decoder::Value::Null))
                .count();
            std::hint::black_box(&values);
        }
    }
    assert_eq!(nulls, 0);
    (rows.cols.len() * rounds) as f64 / start.as_secs_f64()
}

fn json_rate(rows: &Rows, decode: Decode) -> f64 {
    let start = Clock::now();
    let mut out = String::with_capacity(1 << 10);
    let mut bytes = 0;
    for row in &rows.cols {
        for (ty, (a, b)) in TYPES.iter().zip(row) {
            write_json(
                &decode(*ty, &rows.buf[*a..*b]).expect("valid test data"),
                &mut out,
            );
            out.push(',');
        }
        bytes += out.len();
        out.clear();
    }
    assert!(bytes > rows.cols.len() * 7);
    rows.cols.len() as f64 / start.as_secs_f64()
}

#[test]
#[ignore = "throughput measurement; run in release mode"]
fn seven_column_rows_per_second() {
    // Both encodings of a row must decode to the same values before their speed means anything.
    for i in [0u32, 1, 12_345, 199_999] {
        let (t, b) = (text_row(i), binary_row(i));
        for k in [0, 1, 3, 4, 5, 6] {
            assert_eq!(
                decode_text(TYPES[k], &t[k]).unwrap(),
                decode_binary(TYPES[k], &b[k]).unwrap(),
                "row {i} col {k}"
            );
        }
    }
    let text = Rows::new(200_000, text_row);
    let binary = Rows::new(200_000, binary_row);
    let rt = decode_rate(&text, decode_text, 5);
    let rb = decode_rate(&binary, decode_binary, 5);
    let jt = json_rate(&text, decode_text);
    let jb = json_rate(&binary, decode_binary);
    eprintln!("decode text:   {:.2} M rows/s", rt / 1e6);
    eprintln!("decode binary: {:.2} M rows/s", rb / 1e6);
    eprintln!("decode text + to_json:   {:.2} M rows/s", jt / 1e6);
    eprintln!("decode binary + to_json: {:.2} M rows/s", jb / 1e6);
    for k in 0..7 {
        let col = |rows: &Rows, decode: Decode| {
            let start = Clock::now();
            for row in &rows.cols {
                let (a, b) = row[k];
                std::hint::black_box(decode(TYPES[k], &rows.buf[a..b]).expect("valid test data"));
            }
            rows.cols.len() as f64 / start.as_secs_f64() / 1e6
        };
        let json = |rows: &Rows, decode: Decode| {
            let start = Clock::now();
            let mut out = String::with_capacity(64);
            for row in &rows.cols {
                let (a, b) = row[k];
                out.clear();
                write_json(
                    &decode(TYPES[k], &rows.buf[a..b]).expect("valid test data"),
                    &mut out,
                );
            }
            rows.cols.len() as f64 / start.as_secs_f64() / 1e6
        };
        eprintln!(
            "type {:>5}: text {:6.1} M/s, binary {:6.1} M/s, text+json {:6.1} M/s, binary+json {:6.1} M/s",
            TYPES[k],
            col(&text, decode_text),
            col(&binary, decode_binary),
            json(&text, decode_text),
            json(&binary, decode_binary)
        );
    }
    if !cfg!(debug_assertions) {
        assert!(
            rt > 1e6 && rb > 1e6,
            "value decoding slower than 1 M rows/s"
        );
    }
}
