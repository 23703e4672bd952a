//! `walcast relay`: open the log, hold the slot, serve HTTP and QUIC, watch the slot, and shut
//! down gracefully on SIGTERM/Ctrl-C.

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::args::RelayArgs;
use crate::auth::{gate, Gate, KeySources, Limits, RateLimiter, Verifier};
use crate::bootstrap::{BaselineSink, Bootstrapper, JobConfig};
use crate::consumers::Registry;
use crate::log::{Log, LogConfig, RetentionPolicy};
use crate::metrics::Metrics;
use crate::pipeline::LogSink;
use crate::serve::http::{self, HttpState};
use crate::serve::listen;
use crate::serve::published::Published;
use crate::serve::quic::{self, Identity};
use crate::serve::session::Hub;
use crate::serve::status::{SourceFacts, StatusBoard};
use crate::source::{
    PublicationSpec, RunError, Session, SessionConfig, SourceConfig, SqlConnection,
};

/// Settings after merging flags, environment and the config file, with defaults applied.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub postgres: Option<String>,
    pub slot: String,
    pub publication: String,
    pub publication_spec: PublicationSpec,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub quic: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub binary: bool,
    pub retention: RetentionPolicy,
    pub wal_warn_bytes: u64,
    pub ui_dir: Option<PathBuf>,
    pub segment_bytes: u64,
    pub bootstrap_max_age: Duration,
    pub auth: AuthSettings,
}

/// Authentication and limits (docs/auth.md).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub hs256_secret_file: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
    pub jwks: Option<PathBuf>,
    pub audience: Option<String>,
    pub insecure_no_auth: bool,
    pub cors_origins: Vec<String>,
    pub max_clients: usize,
    pub max_streams_per_token: usize,
    pub rate_per_sec: f64,
    pub slow_client_timeout: Duration,
}

impl AuthSettings {
    fn sources(&self) -> KeySources<'_> {
        KeySources {
            hs256_secret_file: self.hs256_secret_file.as_deref(),
            public_key_file: self.public_key.as_deref(),
            jwks_file: self.jwks.as_deref(),
            audience: self.audience.as_deref(),
        }
    }
}

/// The gate for these settings, and the CORS origins (`None` = any). Refuses to serve a
/// non-loopback address without authentication unless the operator said so explicitly.
pub fn build_gate(
    auth: &AuthSettings,
    listen: &[SocketAddr],
) -> Result<(Gate, Option<Vec<axum::http::HeaderValue>>)> {
    let verifier = Verifier::load(&auth.sources()).context("authentication keys")?;
    if verifier.is_none() && !auth.insecure_no_auth {
        if let Some(addr) = listen.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "refusing to listen on {addr} (not loopback) without authentication: configure \
                 --auth-hs256-secret-file, --auth-public-key or --auth-jwks with --auth-audience, \
                 or pass --insecure-no-auth to serve every table to anyone who can connect"
            );
        }
    }
    if verifier.is_none() && auth.insecure_no_auth {
        tracing::warn!(
            "authentication is off (--insecure-no-auth): anyone who can connect reads every table"
        );
    }
    let any_origin = auth.cors_origins.iter().any(|o| o == "*")
        || (auth.cors_origins.is_empty() && verifier.is_none());
    let cors = if any_origin {
        None
    } else {
        Some(
            auth.cors_origins
                .iter()
                .map(|o| {
                    axum::http::HeaderValue::from_str(o)
                        .with_context(|| format!("--cors-origin {o:?}"))
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let rate = auth.rate_per_sec;
    let burst = (rate * 2.0).ceil().clamp(1.0, u32::MAX as f64) as u32;
    Ok((
        Gate::new(
            verifier,
            Limits::new(auth.max_clients, auth.max_streams_per_token),
            RateLimiter::new(rate, burst, gate::RATE_TRACKED_IPS),
        )
        .with_slow_client_timeout(auth.slow_client_timeout),
        cors,
    ))
}

/// Merges `args` (flags and env) over the TOML file named by `--config`.
pub fn settings(args: RelayArgs) -> Result<RelaySettings> {
    let file: RelayArgs = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => RelayArgs::default(),
    };
    let tables = if args.tables.is_empty() {
        file.tables
    } else {
        args.tables
    };
    let all_tables = args.all_tables || file.all_tables;
    if all_tables && !tables.is_empty() {
        bail!("give either --tables or --all-tables, not both");
    }
    let publication_spec = if all_tables {
        PublicationSpec::AllTables
    } else if !tables.is_empty() {
        PublicationSpec::Tables(tables)
    } else {
        PublicationSpec::Existing
    };
    let size = |s: Option<String>, what: &str| -> Result<Option<u64>> {
        s.map(|s| {
            parse_size(&s)
                .with_context(|| format!("{what}: {s:?} is not a size like 512MiB or 10GB"))
        })
        .transpose()
    };
    let retention_age = args
        .retention_age
        .or(file.retention_age)
        .map(|s| humantime::parse_duration(&s).with_context(|| format!("--retention-age {s:?}")))
        .transpose()?;
    Ok(RelaySettings {
        postgres: args.postgres.or(file.postgres),
        slot: args.slot.or(file.slot).unwrap_or_else(|| "walcast".into()),
        publication: args
            .publication
            .or(file.publication)
            .unwrap_or_else(|| "walcast".into()),
        publication_spec,
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .context("--data-dir (or WALCAST_DATA_DIR) is required")?,
        http: args
            .http
            .or(file.http)
            .unwrap_or_else(|| "127.0.0.1:7400".parse().expect("literal")),
        quic: args.quic.or(file.quic),
        tls_cert: args.tls_cert.or(file.tls_cert),
        tls_key: args.tls_key.or(file.tls_key),
        binary: args.binary || file.binary,
        retention: RetentionPolicy {
            max_bytes: size(
                args.retention_bytes.or(file.retention_bytes),
                "--retention-bytes",
            )?,
            max_age: retention_age,
        },
        wal_warn_bytes: size(args.wal_warn.or(file.wal_warn), "--wal-warn")?.unwrap_or(1 << 30),
        ui_dir: args.ui_dir.or(file.ui_dir),
        segment_bytes: size(args.segment_bytes.or(file.segment_bytes), "--segment-bytes")?
            .unwrap_or(crate::log::DEFAULT_SEGMENT_BYTES)
            .max(1),
        bootstrap_max_age: args
            .bootstrap_max_age
            .or(file.bootstrap_max_age)
            .map(|s| {
                humantime::parse_duration(&s).with_context(|| format!("--bootstrap-max-age {s:?}"))
            })
            .transpose()?
            .unwrap_or(Duration::from_secs(300)),
        auth: AuthSettings {
            hs256_secret_file: args.auth_hs256_secret_file.or(file.auth_hs256_secret_file),
            public_key: args.auth_public_key.or(file.auth_public_key),
            jwks: args.auth_jwks.or(file.auth_jwks),
            audience: args.auth_audience.or(file.auth_audience),
            insecure_no_auth: args.insecure_no_auth || file.insecure_no_auth,
            cors_origins: if args.cors_origin.is_empty() {
                file.cors_origin
            } else {
                args.cors_origin
            },
            max_clients: args
                .max_clients
                .or(file.max_clients)
                .unwrap_or(gate::DEFAULT_MAX_CLIENTS),
            max_streams_per_token: args
                .max_streams_per_token
                .or(file.max_streams_per_token)
                .unwrap_or(gate::DEFAULT_MAX_STREAMS_PER_TOKEN),
            rate_per_sec: args
                .rate_limit
                .or(file.rate_limit)
                .unwrap_or(gate::DEFAULT_RATE_PER_SEC),
            slow_client_timeout: args
                .slow_client_timeout
                .or(file.slow_client_timeout)
                .map(|s| {
                    humantime::parse_duration(&s)
                        .with_context(|| format!("--slow-client-timeout {s:?}"))
                })
                .transpose()?
                .unwrap_or(Duration::from_secs(60)),
        },
    })
}

/// `512MiB`, `10GB`, `1024` (bytes). Binary and decimal units both mean powers of 1024: an
/// operator sizing a disk means "about this much", and one rule is easier to remember.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().context("no number")?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => bail!("unknown unit {other:?}"),
    };
    n.checked_mul(mult).context("too large")
}

pub async fn run(args: RelayArgs) -> Result<()> {
    let s = settings(args)?;
    let source = SourceConfig::from_url_and_env(s.postgres.as_deref(), |k| std::env::var(k).ok())
        .context("PostgreSQL connection settings")?;
    let listen: Vec<SocketAddr> = std::iter::once(s.http).chain(s.quic).collect();
    let (gate, cors_origins) = build_gate(&s.auth, &listen)?;
    let gate = Arc::new(gate);
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating {}", s.data_dir.display()))?;
    let log_dir = s.data_dir.join("log");
    let mut log_config = LogConfig::new(&log_dir);
    log_config.segment_bytes = s.segment_bytes;
    let (log, writer, recovered) = tokio::task::block_in_place(|| Log::open(log_config))
        .with_context(|| format!("opening the log in {}", log_dir.display()))?;
    tracing::info!(dir = %log_dir.display(), recovered = ?recovered, "log open");
    let consumers = Registry::open(&s.data_dir).context("opening the durable consumer registry")?;

    let metrics = Arc::new(Metrics::default());
    let board = Arc::new(StatusBoard::new(
        metrics.clone(),
        SourceFacts {
            slot: s.slot.clone(),
            publication: s.publication.clone(),
            postgres: source.redacted_url(),
            binary: s.binary,
            state: "connecting".into(),
            ..Default::default()
        },
        log_dir.display().to_string(),
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let bootstrapper = Bootstrapper::new(
        JobConfig {
            source: source.clone(),
            publication: s.publication.clone(),
            parallel: 2,
            max_age: s.bootstrap_max_age,
        },
        s.data_dir.join("bootstrap"),
        log.clone(),
        metrics.clone(),
    )
    .context("preparing the bootstrap directory")?;
    // One memo of scoped decoding for the clients reading on their own and the shared reader.
    let routes: Arc<crate::serve::scope::RouteMemo> = Default::default();
    let hub = Hub {
        log: log.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown_rx.clone(),
        consumers: consumers.clone(),
        routes: routes.clone(),
        bootstrap: Some(bootstrapper.clone()),
        published: Arc::new(Published::new(source.clone(), s.publication.clone())),
        broadcast: Some(crate::serve::broadcast::Broadcast::start(
            log.clone(),
            metrics.clone(),
            routes,
            shutdown_rx.clone(),
        )),
    };

    // HTTP
    let listener = tokio::net::TcpListener::bind(s.http)
        .await
        .with_context(|| format!("binding HTTP on {}", s.http))?;
    let http_addr = listener.local_addr()?;
    let app = http::router_with_ui(
        HttpState {
            hub: hub.clone(),
            status: board.clone(),
            gate: gate.clone(),
            cors_origins,
        },
        s.ui_dir.as_deref(),
    );
    // HTTPS with the same certificate as QUIC when one is given.
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => Some(listen::tls_config(c, k)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen_cfg = listen::ListenConfig {
        slow_client_timeout: s.auth.slow_client_timeout,
        ..Default::default()
    };
    let http_task = tokio::spawn(listen::serve(
        listener,
        app,
        tls,
        listen_cfg,
        shutdown_rx.clone(),
    ));
    println!("walcast relay: HTTP on {scheme}://{http_addr}  (stream: /v1/stream, status: /v1/status, metrics: /metrics)");

    // QUIC
    let quic_endpoint = match s.quic {
        None => None,
        Some(addr) => {
            let identity = match (&s.tls_cert, &s.tls_key) {
                (Some(c), Some(k)) => Identity::from_pem_files(c, k)?,
                (None, None) => Identity::self_signed(vec!["localhost".into(), addr.ip().to_string()])?,
                _ => bail!("give both --tls-cert and --tls-key, or neither (a self-signed certificate is then created)"),
            };
            let fingerprint = identity.sha256_hex.clone();
            let endpoint = quic::bind(addr, identity)?;
            let local = endpoint.local_addr()?;
            println!("walcast relay: QUIC on quic://{local}  certificate SHA-256 {fingerprint}");
            tracing::info!(%local, sha256 = %fingerprint, "QUIC listening");
            tokio::spawn(quic::serve(endpoint.clone(), hub.clone(), gate.clone()));
            Some(endpoint)
        }
    };

    // Retention and log gauges.
    let retention_task = tokio::spawn(retention_loop(
        log.clone(),
        s.retention,
        metrics.clone(),
        shutdown_rx.clone(),
        consumers.clone(),
        s.wal_warn_bytes,
    ));
    // Slot monitoring (lag, retained WAL, warnings).
    let monitor_task = tokio::spawn(monitor_loop(
        source.clone(),
        s.slot.clone(),
        s.wal_warn_bytes,
        metrics.clone(),
        board.clone(),
    ));

    // The replication session.
    let mut cfg = SessionConfig::new(source, s.slot.clone(), s.publication.clone());
    cfg.publication_spec = s.publication_spec.clone();
    cfg.output.binary = s.binary;
    // A new slot's exported snapshot becomes the first bootstrap image (docs/bootstrap.md).
    cfg.export_snapshot = true;
    let floor = consumers.clone();
    let mut sink = BaselineSink::new(
        LogSink::new(writer, metrics.clone(), board.clone(), shutdown_rx.clone())
            .with_consumer_floor(Arc::new(move || floor.min_ack())),
        bootstrapper,
    );
    let mut session = Session::new(cfg);
    let session_task = tokio::spawn(async move {
        let end = session.run(&mut sink).await;
        if let Err(e) = sink.inner().sync().await {
            tracing::error!(error = %e, "final log sync failed");
        }
        end
    });

    // Wait for a signal or for the session to end by itself.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut session_task = session_task;
    let outcome = tokio::select! {
        _ = &mut signal => {
            tracing::info!("shutting down: no new clients, syncing the log, confirming the final position");
            let _ = shutdown_tx.send(true);
            match tokio::time::timeout(Duration::from_secs(20), &mut session_task).await {
                Ok(joined) => joined.ok(),
                Err(_) => {
                    tracing::warn!("replication did not stop within 20 s");
                    None
                }
            }
        }
        joined = &mut session_task => {
            let _ = shutdown_tx.send(true);
            joined.ok()
        }
    };
    if let Some(ep) = quic_endpoint {
        ep.close(0u32.into(), b"relay shutting down; reconnect to resume");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    retention_task.abort();
    monitor_task.abort();
    match outcome {
        Some(RunError::Stopped) | None => Ok(()),
        Some(RunError::Source(e)) => {
            board.update(|f| {
                f.state = "failed".into();
                f.last_error = Some(e.to_string());
            });
            Err(anyhow::Error::new(e).context("replication source stopped"))
        }
        Some(RunError::Sink(e)) => Err(anyhow::anyhow!("the log failed: {e}")),
    }
}

/// Ctrl-C or SIGTERM (what `kill`, systemd and container runtimes send).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn retention_loop(
    log: Log,
    policy: RetentionPolicy,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    consumers: Arc<Registry>,
    lag_warn_bytes: u64,
) {
    let mut lag_warned = std::collections::BTreeSet::new();
    loop {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if policy.max_bytes.is_some() || policy.max_age.is_some() {
            match tokio::task::block_in_place(|| {
                // What durable consumers have not acknowledged stays.
                let keep = consumers.min_ack().unwrap_or(walcast_decoder::Lsn::MAX);
                log.apply_retention(&policy, now_ms, keep)
            }) {
                Ok(report) if !report.deleted.is_empty() => {
                    tracing::info!(?report, "retention deleted old segments")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }
        warn_lagging_consumers(
            &consumers,
            log.durable().lsn,
            now_ms,
            lag_warn_bytes,
            &mut lag_warned,
        );
        metrics.log_bytes.store(log.total_bytes(), Relaxed);
        metrics
            .log_segments
            .store(log.segments().len() as u64, Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Warns once when a durable consumer's lag passes `warn_bytes` (again after it recovered): a
/// dead consumer holds the slot's WAL on PostgreSQL and the relay's log until removed.
fn warn_lagging_consumers(
    consumers: &Registry,
    durable: walcast_decoder::Lsn,
    now_ms: u64,
    warn_bytes: u64,
    warned: &mut std::collections::BTreeSet<String>,
) {
    let views = consumers.views(durable, now_ms);
    warned.retain(|n| {
        views
            .iter()
            .any(|v| &v.name == n && v.lag_bytes > warn_bytes)
    });
    for v in views {
        if v.lag_bytes > warn_bytes && warned.insert(v.name.clone()) {
            tracing::warn!(consumer = %v.name, lag_bytes = v.lag_bytes, acked = %v.acked_lsn,
                secs_since_ack = v.secs_since_ack, connected = v.connected, threshold = warn_bytes,
                "a durable consumer lags more than --wal-warn; it holds the slot's WAL and the relay's log back (`walcast consumers remove NAME` if it is gone for good)");
        }
    }
}

/// Samples the slot every few seconds over an ordinary SQL connection: lag, retained WAL,
/// wal_status. Warns when retained WAL passes the threshold; reconnects quietly on errors.
async fn monitor_loop(
    source: SourceConfig,
    slot: String,
    warn_bytes: u64,
    metrics: Arc<Metrics>,
    board: Arc<StatusBoard>,
) {
    let mut conn: Option<SqlConnection> = None;
    let mut warned = false;
    loop {
        if conn.is_none() {
            conn = SqlConnection::connect(&source).await.ok();
        }
        if let Some(c) = &conn {
            let q = "SELECT (pg_current_wal_lsn() - '0/0')::text, (confirmed_flush_lsn - '0/0')::text, \
                     (restart_lsn - '0/0')::text, wal_status FROM pg_replication_slots WHERE slot_name = $1";
            match c.client.query_opt(q, &[&slot]).await {
                Ok(Some(row)) => {
                    let num = |i: usize| {
                        row.get::<_, Option<String>>(i)
                            .and_then(|s| s.parse::<u64>().ok())
                    };
                    let (cur, confirmed, restart) = (num(0), num(1), num(2));
                    let wal_status: Option<String> = row.get(3);
                    if let Some(cur) = cur {
                        metrics.server_wal_lsn.store(cur, Relaxed);
                        if let Some(cf) = confirmed {
                            metrics.confirmed_flush_lsn.store(cf, Relaxed);
                            metrics
                                .slot_lag_bytes
                                .store(cur as i64 - cf as i64, Relaxed);
                        }
                        if let Some(r) = restart {
                            let retained = cur.saturating_sub(r);
                            metrics
                                .slot_retained_wal_bytes
                                .store(retained as i64, Relaxed);
                            if retained > warn_bytes && !warned {
                                tracing::warn!(%slot, retained_bytes = retained, threshold = warn_bytes,
                                    "the slot retains more WAL than the warning threshold; check that the relay keeps up and that durable consumers acknowledge (set max_slot_wal_keep_size to bound it)");
                                warned = true;
                            } else if retained <= warn_bytes {
                                warned = false;
                            }
                            board.update(|f| {
                                f.wal_status = wal_status.clone();
                                f.slot_restart_lsn = Some(walcast_decoder::Lsn(r).to_string());
                            });
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "slot monitor query failed; reconnecting");
                    conn = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            max_clients: 10,
            max_streams_per_token: 2,
            rate_per_sec: 5.0,
            ..Default::default()
        }
    }

    #[test]
    fn refuses_non_loopback_without_auth() {
        let public: SocketAddr = "0.0.0.0:7400".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:7400".parse().unwrap();
        let err = build_gate(&settings(), &[lo, public]).unwrap_err();
        assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
        let (gate, cors) = build_gate(&settings(), &[lo]).unwrap();
        assert!(!gate.auth_enabled());
        assert!(cors.is_none(), "without auth any origin is allowed");
        let insecure = AuthSettings {
            insecure_no_auth: true,
            ..settings()
        };
        assert!(build_gate(&insecure, &[public]).is_ok());
    }

    #[test]
    fn auth_defaults_to_no_cors_origin() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut secret, &[7u8; 32]).unwrap();
        let s = AuthSettings {
            hs256_secret_file: Some(secret.path().to_path_buf()),
            audience: Some("walcast".into()),
            ..settings()
        };
        let public: SocketAddr = "0.0.0.0:7400".parse().unwrap();
        let (gate, cors) = build_gate(&s, &[public]).unwrap();
        assert!(gate.auth_enabled());
        assert_eq!(cors, Some(vec![]));
        let listed = AuthSettings {
            cors_origins: vec!["https://app.example".into()],
            ..s.clone()
        };
        assert_eq!(build_gate(&listed, &[public]).unwrap().1.unwrap().len(), 1);
        // A key without an audience is a configuration error, not auth off.
        let no_aud = AuthSettings {
            audience: None,
            ..s
        };
        assert!(build_gate(&no_aud, &[public]).is_err());
    }
}
