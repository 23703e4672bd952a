//! Harness for walcast's end-to-end tests: throwaway PostgreSQL clusters on their own ports,
//! and (in [`relay`]) a `walcast relay` child process with clients that apply what it streams.

pub mod relay;
