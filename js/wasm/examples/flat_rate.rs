//! Native profile of the npm package's WASM hot path: decodes the narrow7 capture (the JS
//! benchmark's input) into flat buffers, as raw messages (`Core::push_messages`, behind
//! `Decoder.decodeMessages`) or as a frame stream of version 1 or 3 (`Core::push_frames`,
//! behind `Decoder.push`), and prints rows/s. Native code is not the .wasm, but the hot spots
//! are the same code, so this is where `perf record` finds them:
//!
//!     cargo build --release -p walcast-wasm --example flat_rate
//!     perf record -g target/release/examples/flat_rate [messages|v1|v3] && perf report
//!
//! An optional second argument sets the rows decoded (default 4 M): instruction counts do not
//! depend on the machine's load, so compare builds with e.g.
//! `valgrind --tool=callgrind target/release/examples/flat_rate v3 200000`.

use std::time::Instant;

use walcast_decoder::frame::v2::Transcoder;
use walcast_decoder::frame::{encode_frame, encode_header, FrameKind};
use walcast_decoder::output::parse_bytea_hex;
use walcast_decoder::Lsn;
use walcast_wasm::Core;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/narrow7_text.hex"
    );
    let text = std::fs::read_to_string(path).expect("tests/fixtures/narrow7_text.hex");
    let msgs: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_bytea_hex(l).expect("hex line"))
        .collect();
    // Relations first, then the rest as one packed batch, as core.js packs them.
    let (schema, rest): (Vec<_>, Vec<_>) = msgs.iter().partition(|m| matches!(m[0], b'R' | b'Y'));
    let pack = |ms: &[&Vec<u8>]| {
        let mut out = Vec::new();
        for m in ms {
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    };
    let rows_per_batch = rest.iter().filter(|m| m[0] == b'I').count();
    let mode = std::env::args().nth(1).unwrap_or_else(|| "messages".into());
    // Rows decoded (about): 4 M by default; fewer for instruction counts under callgrind.
    let rows: usize = std::env::args()
        .nth(2)
        .map_or(4_000_000, |n| n.parse().expect("rows: a number"));
    let rounds = (rows / rows_per_batch.max(1)).max(1);
    let mut core = Core::new();
    let start;
    if mode == "messages" {
        let batch = pack(&rest);
        assert_eq!(
            push_messages(&mut core, &pack(&schema)),
            0,
            "relations decode"
        );
        start = Instant::now();
        for _ in 0..rounds {
            assert_eq!(push_messages(&mut core, &batch), 0, "capture decodes");
        }
    } else {
        // One stream: the relations, then the capture's transactions `rounds` times.
        let mut v1 = Vec::new();
        encode_header(&mut v1);
        let all = schema.iter().chain((0..rounds).flat_map(|_| rest.iter()));
        for (i, m) in all.enumerate() {
            encode_frame(FrameKind::Wal, Lsn(0x100_0000 + 64 * i as u64), m, &mut v1);
        }
        let stream = match mode.as_str() {
            "v1" => v1,
            "v3" => Transcoder::with_version(3).push(&v1).expect("transcodes"),
            other => panic!("mode is messages, v1 or v3, not {other:?}"),
        };
        eprintln!("{} stream bytes", stream.len());
        start = Instant::now();
        for chunk in stream.chunks(64 * 1024) {
            assert_eq!(push_frames(&mut core, chunk), 0, "stream decodes");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rows = (rounds * rows_per_batch) as f64;
    println!(
        "{rows} rows in {secs:.3} s: {:.2} M rows/s ({:.0} ns/row)",
        rows / secs / 1e6,
        secs * 1e9 / rows
    );
}

/// `Core::push_messages` on `packed`, given as JS gives it: through the input buffer.
fn push_messages(core: &mut Core, packed: &[u8]) -> u32 {
    let len = core.set_input(packed);
    core.push_messages(len)
}

/// `Core::push_frames` on `chunk`, through the input buffer.
fn push_frames(core: &mut Core, chunk: &[u8]) -> u32 {
    let len = core.set_input(chunk);
    core.push_frames(len)
}
