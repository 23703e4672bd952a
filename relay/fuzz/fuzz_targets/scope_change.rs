//! Arbitrary pgoutput changes through the row-scope decoder and re-encoder: nothing panics and
//! every re-encoded Delete/Insert parses again. Body in `walcast_relay::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| walcast_relay::fuzzing::scope_change(data));
