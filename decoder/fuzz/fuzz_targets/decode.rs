//! Arbitrary bytes into every decoder entry point: nothing may panic, every error's offset must
//! lie within the input, and output writers must accept whatever decodes. The body lives in
//! `walcast_decoder::fuzzing` so `decoder/tests/fuzz_regressions.rs` replays past crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| walcast_decoder::fuzzing::decode_everything(data));
