//! Native reference for the JS conformance test: reads a fixture (one `\x…` hex pgoutput
//! message per line) and prints the native JSON lines contract for it, one line per message,
//! or with `--msgpack` the native MessagePack records of the whole fixture, as one hex line.
//! With `--transcode V` it instead turns a version 1 frame stream on stdin into frame version V
//! (2 or 3) on stdout, as the relay does for a client that asks for `v=V`.
//!
//!     cargo run -q -p walcast-wasm --example fixture_jsonl -- [--msgpack] FILE.hex
//!     cargo run -q -p walcast-wasm --example fixture_jsonl -- --transcode 3 < v1.bin > v3.bin

use std::io::{Read, Write};
use std::process::ExitCode;

use walcast_decoder::frame::v2::Transcoder;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::output::msgpack::MsgpackEncoder;
use walcast_decoder::Decoder;

fn transcode(version: &str) -> ExitCode {
    let version = match version.parse::<u16>() {
        Ok(v @ 2..=3) => v,
        _ => {
            eprintln!("--transcode takes 2 or 3, not {version:?}");
            return ExitCode::from(2);
        }
    };
    let mut v1 = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut v1) {
        eprintln!("stdin: {e}");
        return ExitCode::from(1);
    }
    match Transcoder::with_version(version).push(&v1) {
        Ok(out) if std::io::stdout().write_all(&out).is_ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("stdin: {e}");
            ExitCode::from(1)
        }
    }
}

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--transcode") {
        return transcode(args.get(i + 1).map_or("", String::as_str));
    }
    let msgpack = args.iter().any(|a| a == "--msgpack");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")).cloned() else {
        eprintln!("usage: fixture_jsonl [--msgpack] FILE.hex");
        return ExitCode::from(2);
    };
    let mut enc = MsgpackEncoder::new();
    let mut packed = Vec::new();
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
            Ok(event) if msgpack => {
                if let Err(e) = enc.encode(&event, None, &mut packed) {
                    eprintln!("{path}:{}: {e}", n + 1);
                    return ExitCode::from(1);
                }
            }
            Ok(event) => write_event(&event, None, &mut out),
            Err(e) => {
                eprintln!("{path}:{}: {e}", n + 1);
                return ExitCode::from(1);
            }
        }
        out.push('\n');
    }
    if msgpack {
        out.clear();
        for b in packed {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}
