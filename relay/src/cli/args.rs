//! Command-line arguments of every `walcast` subcommand. Every flag that takes an address or a
//! secret also reads an environment variable, and `walcast relay` also reads a TOML config file.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "walcast",
    version,
    about = "PostgreSQL changes, cast to the edge"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hold a replication slot, keep a durable log, and serve clients over HTTP and QUIC.
    Relay(Box<RelayArgs>),
    /// Stream decoded changes from a relay to stdout (JSON lines or MessagePack).
    Tail(TailArgs),
    /// Decode `pg_logical_slot_peek_binary_changes` output (one `\x…` per line) from stdin to JSON lines.
    Decode,
    /// One-screen summary of a running relay.
    Status(StatusArgs),
    /// List, inspect or remove the durable consumers of a running relay.
    Consumers(ConsumersArgs),
    /// Start a throwaway PostgreSQL, a relay and a writer, and show the live decoded stream.
    Demo(DemoArgs),
    /// Write a consistent baseline and every change after it to a directory or bucket, as a
    /// durable consumer of a relay (docs/backup.md).
    Backup(BackupArgs),
    /// Rebuild a backup's tables into an empty PostgreSQL database at a chosen LSN.
    Restore(RestoreArgs),
}

/// `walcast relay` settings. Command line beats environment beats the config file.
#[derive(Debug, Clone, Args, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RelayArgs {
    /// TOML file with any of these settings (keys spelled like the flags, e.g. `data-dir`).
    #[arg(long, env = "WALCAST_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// PostgreSQL connection URL (postgres://user:pass@host:port/db?sslmode=…); libpq PG* variables fill gaps.
    #[arg(long, env = "WALCAST_POSTGRES", hide_env_values = true)]
    pub postgres: Option<String>,
    /// Replication slot to hold (created if absent).
    #[arg(long, env = "WALCAST_SLOT")]
    pub slot: Option<String>,
    /// Publication to stream (created if --tables or --all-tables is given and it is absent).
    #[arg(long, env = "WALCAST_PUBLICATION")]
    pub publication: Option<String>,
    /// Create the publication for these tables (schema.table, comma-separated).
    #[arg(
        long,
        env = "WALCAST_TABLES",
        value_delimiter = ',',
        conflicts_with = "all_tables"
    )]
    #[serde(default)]
    pub tables: Vec<String>,
    /// Create the publication FOR ALL TABLES.
    #[arg(long, env = "WALCAST_ALL_TABLES")]
    #[serde(default)]
    pub all_tables: bool,
    /// Directory for the durable log and state.
    #[arg(long, env = "WALCAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, env = "WALCAST_HTTP")]
    pub http: Option<SocketAddr>,
    /// QUIC listen address (UDP).
    #[arg(long, env = "WALCAST_QUIC")]
    pub quic: Option<SocketAddr>,
    /// PEM certificate chain for QUIC and HTTPS (without it: plain HTTP, and a self-signed QUIC certificate whose fingerprint is printed).
    #[arg(long, env = "WALCAST_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "WALCAST_TLS_KEY", hide_env_values = true)]
    pub tls_key: Option<PathBuf>,
    /// Ask pgoutput for binary tuple data.
    #[arg(long, env = "WALCAST_BINARY")]
    #[serde(default)]
    pub binary: bool,
    /// Delete the oldest log segments beyond this many bytes (e.g. 10GiB).
    #[arg(long, env = "WALCAST_RETENTION_BYTES")]
    pub retention_bytes: Option<String>,
    /// Delete log segments older than this (e.g. 7d).
    #[arg(long, env = "WALCAST_RETENTION_AGE")]
    pub retention_age: Option<String>,
    /// Serve a bootstrap image to new clients for this long after it was built (default 5m);
    /// later bootstrap requests build a fresh one, so they replay less of the log
    /// (docs/bootstrap.md).
    #[arg(long, env = "WALCAST_BOOTSTRAP_MAX_AGE")]
    pub bootstrap_max_age: Option<String>,
    /// Warn when the slot retains more WAL than this (e.g. 1GiB).
    #[arg(long, env = "WALCAST_WAL_WARN")]
    pub wal_warn: Option<String>,
    /// Serve static files from this directory for paths the API does not use (the demo page).
    #[arg(long, env = "WALCAST_UI_DIR", hide = true)]
    pub ui_dir: Option<PathBuf>,
    /// Start a new log segment after this size (default 64MiB). Smaller segments let retention
    /// free space in finer steps; tests use tiny ones to exercise retention.
    #[arg(long, env = "WALCAST_SEGMENT_BYTES", hide = true)]
    pub segment_bytes: Option<String>,
    /// Authentication (docs/auth.md): file holding the HS256 secret (at least 32 bytes).
    #[arg(long, env = "WALCAST_AUTH_HS256_SECRET_FILE")]
    pub auth_hs256_secret_file: Option<PathBuf>,
    /// Authentication: PEM public key (RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA).
    #[arg(long, env = "WALCAST_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,
    /// Authentication: JWKS JSON file; a token's `kid` picks the key.
    #[arg(long, env = "WALCAST_AUTH_JWKS")]
    pub auth_jwks: Option<PathBuf>,
    /// Authentication: the `aud` every token must carry (required when a key is given).
    #[arg(long, env = "WALCAST_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// Serve a non-loopback address without authentication (anyone who reaches it reads every table).
    #[arg(long, env = "WALCAST_INSECURE_NO_AUTH")]
    #[serde(default)]
    pub insecure_no_auth: bool,
    /// Browser origin allowed to read from the relay (repeatable; `*` for any). Default: any
    /// origin without authentication, none with it.
    #[arg(
        long = "cors-origin",
        env = "WALCAST_CORS_ORIGINS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub cors_origin: Vec<String>,
    /// Most concurrent client streams (HTTP and QUIC together); beyond it requests get 503.
    #[arg(long, env = "WALCAST_MAX_CLIENTS")]
    pub max_clients: Option<usize>,
    /// Most concurrent streams one token may hold open; beyond it requests get 429.
    #[arg(long, env = "WALCAST_MAX_STREAMS_PER_TOKEN")]
    pub max_streams_per_token: Option<usize>,
    /// Stream requests per second allowed per client IP (burst: twice as many).
    #[arg(long, env = "WALCAST_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// Disconnect a client whose connection takes no bytes for this long (e.g. 60s).
    #[arg(long, env = "WALCAST_SLOW_CLIENT_TIMEOUT")]
    pub slow_client_timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Jsonl,
    Msgpack,
}

#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Relay URL: http://host:port or quic://host:port.
    #[arg(long, env = "WALCAST_URL")]
    pub url: String,
    /// Resume after this LSN (every transaction whose commit end LSN is <= it is skipped).
    /// Without it, start at the oldest position the relay still holds.
    #[arg(long)]
    pub from: Option<String>,
    /// Exit 0 after the first commit whose end LSN is at or past this LSN.
    #[arg(long)]
    pub until: Option<String>,
    /// Only these tables (schema.table, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: OutputFormat,
    /// SHA-256 fingerprint (hex) of the relay's self-signed QUIC certificate, as the relay printed it.
    #[arg(long, env = "WALCAST_CERT_SHA256")]
    pub cert_sha256: Option<String>,
    /// Bearer token (JWT) for a relay with authentication (http, https and quic URLs).
    #[arg(long, env = "WALCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Be this durable consumer: register it (if new), start after its ack (unless --from),
    /// and acknowledge each transaction once it is written to stdout and flushed.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Stream compression to ask the relay for: zstd or none (docs/frames.md, "Compression").
    #[arg(long, env = "WALCAST_COMPRESSION", default_value = "none", value_parser = parse_compression)]
    pub compression: crate::serve::request::Compression,
    /// Frame format version to ask for on the wire: 1, 2 or 3 (docs/frames.md, "Version 2",
    /// "Version 3"; 3 is the most compact, especially with --compression zstd).
    #[arg(long, env = "WALCAST_FRAME_VERSION", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=3))]
    pub frame_version: u16,
    /// Start with every row of the tables as of one consistent point (printed as inserts),
    /// then the changes after it (docs/bootstrap.md). Not with --from or --consumer.
    #[arg(long, conflicts_with_all = ["from", "consumer"])]
    pub bootstrap: bool,
}

fn parse_compression(s: &str) -> Result<crate::serve::request::Compression, String> {
    crate::serve::request::Compression::parse(s).map_err(|e| e.0)
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Relay URL: http://host:port or quic://host:port.
    #[arg(long, env = "WALCAST_URL")]
    pub url: String,
    /// Destination: a directory, file:///dir, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix (credentials from the usual AWS_*, GOOGLE_*, AZURE_* variables).
    #[arg(long, env = "WALCAST_BACKUP_TO")]
    pub to: String,
    /// Only these tables (schema.table, comma-separated); all the relay publishes by default.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// The durable consumer this backup is on the relay (one per destination).
    #[arg(long, default_value = "backup")]
    pub consumer: String,
    /// SHA-256 fingerprint (hex) of the relay's self-signed QUIC certificate.
    #[arg(long, env = "WALCAST_CERT_SHA256")]
    pub cert_sha256: Option<String>,
    /// Bearer token (JWT) for a relay with authentication.
    #[arg(long, env = "WALCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Stream compression to ask the relay for: zstd or none.
    #[arg(long, env = "WALCAST_COMPRESSION", default_value = "zstd", value_parser = parse_compression)]
    pub compression: crate::serve::request::Compression,
    /// Start a new log object once the current one holds this much (e.g. 8MiB).
    #[arg(long, default_value = "8MiB")]
    pub object_bytes: String,
    /// Write the current log object once its oldest transaction has waited this long; the
    /// relay's ack lags the database by about this much.
    #[arg(long, default_value = "1s")]
    pub flush_every: String,
    /// Exit 0 once every transaction ending at or before this LSN is durable.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup: a directory or URL, as given to `walcast backup --to`.
    #[arg(long, env = "WALCAST_BACKUP_FROM")]
    pub from: String,
    /// Target database URL (an empty database: restore creates the tables).
    #[arg(long, env = "WALCAST_RESTORE_POSTGRES", hide_env_values = true)]
    pub postgres: String,
    /// Restore the state as of this LSN (every transaction ending at or before it).
    /// Default: as far as the backup reaches.
    #[arg(long)]
    pub until: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumersArgs {
    /// Relay HTTP URL.
    #[arg(
        long,
        env = "WALCAST_URL",
        default_value = "http://127.0.0.1:7400",
        global = true
    )]
    pub url: String,
    /// Print JSON instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: ConsumersAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConsumersAction {
    /// Every durable consumer: acked LSN, lag, time since its last ack, connected or not.
    List,
    /// One consumer in detail.
    Inspect { name: String },
    /// Remove a consumer: it stops holding the slot and the log back.
    Remove { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Relay HTTP URL.
    #[arg(long, env = "WALCAST_URL", default_value = "http://127.0.0.1:7400")]
    pub url: String,
    /// Print the raw JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Bearer token (JWT) for a relay with authentication.
    #[arg(long, env = "WALCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// HTTP port for the demo relay.
    #[arg(long, default_value_t = 7400)]
    pub port: u16,
    /// Writes per second of the demo writer.
    #[arg(long, default_value_t = 5)]
    pub rate: u32,
}
