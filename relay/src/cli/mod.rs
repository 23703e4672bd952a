//! The `walcast` command line: one module per subcommand. Binary-only concerns (argument
//! parsing, exit codes, human output) live here; the library parts they drive live elsewhere.

pub mod args;
pub mod backup;
pub mod consumers;
pub mod decode;
pub mod demo;
pub mod relay;
pub mod status;
pub mod tail;
