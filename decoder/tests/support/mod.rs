//! Shared test support: the test-only pgoutput encoder.
pub mod encoder;
