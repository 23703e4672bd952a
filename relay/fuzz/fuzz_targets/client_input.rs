//! Every byte a client can send before admission: HTTP query string, QUIC request JSON (stream
//! or control), bearer token and token claims. The body lives in `walcast_relay::fuzzing` so
//! `relay/tests/fuzz_regressions.rs` replays past crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| walcast_relay::fuzzing::client_input(data));
