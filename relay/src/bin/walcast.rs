//! The `walcast` binary: relay, tail, decode, status, consumers, demo, backup, restore.

use anyhow::Result;
use clap::Parser;
use walcast_relay::cli::args::{Cli, Command};
use walcast_relay::cli::{backup, consumers, decode, demo, relay, status, tail};

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.command);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Relay(args) => runtime.block_on(relay::run(*args)),
        Command::Tail(args) => runtime.block_on(tail::run(args)),
        Command::Decode => {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            decode::run(stdin.lock(), std::io::BufWriter::new(stdout.lock()))?;
            Ok(())
        }
        Command::Status(args) => runtime.block_on(status::run(args)),
        Command::Consumers(args) => runtime.block_on(consumers::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Backup(args) => runtime.block_on(backup::backup(args)),
        Command::Restore(args) => runtime.block_on(backup::restore(args)),
    }
}

/// Logs go to stderr (stdout carries data for tail/decode). `RUST_LOG` overrides the level;
/// `WALCAST_LOG_FORMAT=json` gives structured JSON logs.
fn init_tracing(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = match command {
        Command::Relay(_) | Command::Demo(_) | Command::Backup(_) | Command::Restore(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("WALCAST_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
