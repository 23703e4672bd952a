//! Arbitrary bytes into every decoder entry point: nothing may panic, every error's offset must
//! lie within the input, and output writers must accept whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walcast_decoder::output::{jsonl, msgpack::MsgpackEncoder};
use walcast_decoder::{parse_envelope, pgoutput, Decoder, Envelope};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_envelope(data) {
        assert!(e.offset <= data.len());
    }
    for in_stream in [false, true] {
        if let Err(e) = pgoutput::parse(data, in_stream) {
            assert!(e.offset <= data.len());
        }
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
                // Values are printed by the value layer; only events without values are written
                // as JSON here, so this target stays independent of that layer.
                if !matches!(
                    event,
                    walcast_decoder::Event::Insert(_) | walcast_decoder::Event::Update(_) | walcast_decoder::Event::Delete(_)
                ) {
                    jsonl::write_event(&event, None, &mut json);
                }
                let _ = encoder.encode(&event, None, &mut packed);
            }
            Err(e) => assert!(e.offset <= msg.len()),
        }
    }
});
