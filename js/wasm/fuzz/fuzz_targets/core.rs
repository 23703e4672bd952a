//! Arbitrary bytes into every call of the npm package's WASM `Core`, split into messages on
//! 0xA5: nothing may panic, and the contracts JS relies on must hold. The body lives in
//! `walcast_wasm::fuzzing` so js/wasm/tests/fuzz.rs replays past crashes on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| walcast_wasm::fuzzing::core_everything(data));
