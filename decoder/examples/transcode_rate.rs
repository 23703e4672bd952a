//! Frame re-encoding speed, what the relay spends per client asking for `v=2` or `v=3`:
//! a capture framed as version 1, transcoded (and read back) `rounds` times, per CPU-second.
//!
//! `cargo run --release -p walcast-decoder --example transcode_rate -- narrow7_text 3 200`

use std::path::Path;
use std::time::Instant;
use walcast_decoder::frame::v2::{Decoder as CompactReader, Transcoder};
use walcast_decoder::frame::{encode_frame, encode_header, FrameKind};
use walcast_decoder::output::parse_bytea_hex;
use walcast_decoder::Lsn;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "narrow7_text".into());
    let version: u16 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/{name}.hex"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut v1 = Vec::new();
    encode_header(&mut v1);
    for (i, l) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let m = parse_bytea_hex(l).expect("hex");
        encode_frame(
            FrameKind::Wal,
            Lsn(0x1_0000_0000 + 128 * i as u64),
            &m,
            &mut v1,
        );
    }
    let (mut out_bytes, mut frames) = (0, 0);
    let (mut encoding, mut decoding) = (0.0, 0.0);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut t = Transcoder::with_version(version);
        let mut compact = Vec::new();
        for chunk in v1.chunks(32 << 10) {
            compact.extend(t.push(chunk).expect("valid"));
        }
        encoding += start.elapsed().as_secs_f64();
        out_bytes += compact.len();
        let start = Instant::now();
        let mut r = CompactReader::new();
        r.push(&compact);
        while r.next_frame().expect("valid").is_some() {
            frames += 1;
        }
        decoding += start.elapsed().as_secs_f64();
    }
    let mb = (v1.len() * rounds) as f64 / 1e6;
    println!(
        "{name} v{version}: {mb:.0} MB of v1: encode {encoding:.2} s ({:.0} MB/s), decode {decoding:.2} s ({:.0} MB/s); {:.0}% of v1 size; {frames} frames",
        mb / encoding,
        mb / decoding,
        100.0 * out_bytes as f64 / (v1.len() * rounds) as f64
    );
}
