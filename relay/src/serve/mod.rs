//! Serving clients: each client reads the log at its own pace, through its own table filter.

pub mod filter;
pub mod request;
