//! Native reference for the JS conformance test: reads a fixture (one `\x…` hex pgoutput
//! message per line) and prints the native JSON lines contract for it, one line per message.
//!
//!     cargo run -q -p walcast-wasm --example fixture_jsonl -- FILE.hex

use std::process::ExitCode;

use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::Decoder;

fn unhex(line: &str) -> Option<Vec<u8>> {
    let h = line.trim().strip_prefix("\\x").unwrap_or(line.trim());
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fixture_jsonl FILE.hex");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut decoder = Decoder::new();
    let mut out = String::new();
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let Some(msg) = unhex(line) else {
            eprintln!("{path}:{}: not a hex line", n + 1);
            return ExitCode::from(1);
        };
        match decoder.decode(&msg) {
            Ok(event) => write_event(&event, None, &mut out),
            Err(e) => {
                eprintln!("{path}:{}: {e}", n + 1);
                return ExitCode::from(1);
            }
        }
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}
