//! Rows decoded per CPU-second, for measuring on a loaded machine: run under
//! `perf stat -e task-clock` and divide the printed row count by the task-clock seconds
//! (criterion's wall-clock figures swing with other processes' load).
//!
//! `cargo run --release -p walcast-decoder --example cpu_rate -- narrow7_text 200`

use std::path::Path;
use walcast_decoder::output::parse_bytea_hex;
use walcast_decoder::{Decoder, Event};

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "narrow7_text".into());
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/{name}.hex"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let messages: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_bytea_hex(l).expect("hex"))
        .collect();
    let mut rows = 0usize;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let mut d = Decoder::new();
        for m in &messages {
            if let Event::Insert(c) | Event::Update(c) | Event::Delete(c) =
                d.decode(std::hint::black_box(m)).expect("valid")
            {
                rows += 1;
                std::hint::black_box(&c);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{name}: {rows} rows, {:.2} M rows/s wall",
        rows as f64 / wall / 1e6
    );
}
