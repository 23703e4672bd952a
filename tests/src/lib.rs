//! Harness for walcast's end-to-end tests against real PostgreSQL 14–18 clusters
//! (`walcast-testkit`): the scenarios, raw pgoutput capture through the SQL slot functions,
//! test_decoding as an oracle, and the captured fixtures under `tests/fixtures/`.
//!
//! Nothing here depends on the decoder's API, so fixtures can be captured without it; the tests
//! in `tests/tests/` put the decoder against this ground truth. [`relay`] runs `walcast relay`
//! as a child process, with clients that apply what it streams.

pub mod background;
pub mod events;
pub mod fixtures;
pub mod ground_truth;
pub mod ops;
pub mod pg;
pub mod rawjson;
pub mod relay;
pub mod scenario;
pub mod test_decoding;
