//! What the fuzz target runs, shared with the regression test over `decoder/fuzz/regressions`
//! (inputs the fuzzer once crashed on), so a fixed crash stays fixed on stable Rust too.

use crate::frame::{self, v2, FrameKind, FrameReader};
use crate::output::{jsonl, msgpack::MsgpackEncoder};
use crate::Lsn;
use crate::{parse_envelope, pgoutput, Decoder, Envelope};

/// Arbitrary bytes into every decoder entry point. Panics (which the fuzzer reports) if an
/// error's offset lies outside its input; anything else must simply not panic.
pub fn decode_everything(data: &[u8]) {
    if let Err(e) = parse_envelope(data) {
        assert!(e.offset <= data.len());
    }
    for in_stream in [false, true] {
        if let Err(e) = pgoutput::parse(data, in_stream) {
            assert!(e.offset <= data.len());
        }
    }
    // The frame layer, as a relay stream: whole, and pushed in small uneven chunks.
    if let Err(e) = frame::parse_frame(data) {
        assert!(e.offset <= data.len());
    }
    let mut reader = FrameReader::new();
    for chunk in data.chunks(7) {
        reader.push(chunk);
        while let Ok(Some(f)) = reader.next_frame() {
            let _ = (f.kind, f.lsn, f.payload.len());
        }
    }
    // Frame versions 2 and 3: arbitrary records after the header are an error or incomplete,
    // never a panic; and any sequence of payloads comes back exactly through the transcoder.
    for version in [v2::VERSION_2, v2::VERSION_3] {
        let mut stream = Vec::new();
        v2::encode_header_version(version, &mut stream);
        stream.extend_from_slice(data);
        let mut d = v2::Decoder::new();
        for chunk in stream.chunks(5) {
            d.push(chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.offset <= stream.len());
                        break;
                    }
                }
            }
        }
        let mut v1 = Vec::new();
        frame::encode_header(&mut v1);
        for (i, payload) in data.split(|&b| b == 0xA5).enumerate() {
            let kind = if i % 5 == 4 {
                FrameKind::Bootstrap
            } else {
                FrameKind::Wal
            };
            frame::encode_frame(kind, Lsn(i as u64 * 40), payload, &mut v1);
        }
        let compact = v2::Transcoder::with_version(version)
            .push(&v1)
            .expect("the transcoder reads its own v1");
        let mut d = v2::Decoder::new();
        d.push(&compact);
        let (mut back, mut header) = (Vec::new(), false);
        d.to_v1(&mut back, &mut header)
            .expect("a transcoded stream decodes");
        assert!(back == v1, "version {version} did not round-trip");
    }
    for chunk in data.split(|&b| b == 0xA5) {
        floats_read_as_std_reads_them(chunk);
    }
    // A sequence: split on a separator byte so the fuzzer can build Relation-then-row
    // sequences, stream blocks and aborts. Messages wrapped in XLogData are unwrapped first.
    let mut decoder = Decoder::new();
    let mut encoder = MsgpackEncoder::new();
    let mut json = String::new();
    let mut packed = Vec::new();
    for chunk in data.split(|&b| b == 0xA5) {
        let msg = match parse_envelope(chunk) {
            Ok(Envelope::XLogData { data, .. }) => data,
            _ => chunk,
        };
        match decoder.decode(msg) {
            Ok(event) => {
                json.clear();
                packed.clear();
                jsonl::write_event(&event, None, &mut json);
                // The JSON-lines contract: whatever decodes is one valid JSON value a line.
                if let Err(at) = crate::value::json_syntax::check(json.as_bytes()) {
                    panic!("invalid JSON line at byte {at}: {json}");
                }
                let _ = encoder.encode(&event, None, &mut packed);
            }
            Err(e) => assert!(e.offset <= msg.len()),
        }
    }
}

/// The float reader (`value::nearest_float`, used instead of core's parser) against
/// `str::parse`: the same bits for anything either accepts, apart from the spellings of
/// infinity and NaN, which the reader leaves to its caller.
fn floats_read_as_std_reads_them(text: &[u8]) {
    use crate::value::nearest_float::{parse_f32, parse_f64};
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    if s.bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return;
    }
    let std = s.parse::<f64>().ok().map(f64::to_bits);
    assert_eq!(parse_f64(text).map(f64::to_bits), std, "f64 {s:?}");
    let std = s.parse::<f32>().ok().map(f32::to_bits);
    assert_eq!(parse_f32(text).map(f32::to_bits), std, "f32 {s:?}");
}
