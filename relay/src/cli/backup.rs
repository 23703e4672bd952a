//! `walcast backup` and `walcast restore`: flags to [`crate::backup`], and the summary.

use anyhow::{Context, Result};
use walcast_decoder::Lsn;

use super::args::{BackupArgs, RestoreArgs};
use crate::backup::{self, BackupConfig, Destination};
use crate::client::Transport;
use crate::serve::request::parse_table;
use crate::source::config::SourceConfig;
use crate::source::slot::SqlConnection;

fn lsn_arg(v: &Option<String>, flag: &str) -> Result<Option<Lsn>> {
    v.as_deref()
        .map(str::parse::<Lsn>)
        .transpose()
        .with_context(|| format!("{flag}: expected an LSN like 0/16B3748"))
}

pub async fn backup(args: BackupArgs) -> Result<()> {
    crate::consumers::validate_name(&args.consumer)?;
    let mut transport = Transport::from_url(&args.url, args.cert_sha256.as_deref())?;
    if let Some(token) = &args.token {
        transport = transport.with_bearer_token(token)?;
    }
    let tables = args
        .tables
        .iter()
        .map(|t| parse_table(t))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = BackupConfig {
        transport,
        tables,
        consumer: args.consumer.clone(),
        compression: args.compression,
        object_bytes: super::relay::parse_size(&args.object_bytes).context("--object-bytes")?
            as usize,
        flush_every: humantime::parse_duration(&args.flush_every).context("--flush-every")?,
        until: lsn_arg(&args.until, "--until")?,
    };
    let dest = Destination::open(&args.to)?;
    let state = backup::run(cfg, dest, super::relay::shutdown_signal())
        .await
        .with_context(|| format!("backing up to {}", args.to))?;
    println!(
        "walcast backup: baseline {}, complete through {} ({} log objects)",
        state.baseline, state.covered, state.log_objects
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<()> {
    let until = lsn_arg(&args.until, "--until")?;
    let dest = Destination::open(&args.from)?;
    let cfg = SourceConfig::from_url(&args.postgres).context("--postgres")?;
    let mut conn = SqlConnection::connect(&cfg)
        .await
        .context("connecting to the target database")?;
    let summary = backup::restore(&dest, &mut conn.client, until)
        .await
        .with_context(|| format!("restoring from {}", args.from))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "walcast restore: {} tables restored to {} (baseline {} with {} rows, then {} transactions, {} changes)",
            summary.tables.len(),
            summary.restored_to,
            summary.baseline,
            summary.baseline_rows,
            summary.transactions,
            summary.changes
        );
    }
    Ok(())
}
