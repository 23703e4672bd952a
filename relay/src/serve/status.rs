//! The relay's current state, as `walcast status` and `/v1/status` show it. The source, the log
//! and the monitor publish into one board; readers take a snapshot.

use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::metrics::Metrics;

/// Facts that change rarely, set by whoever learns them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceFacts {
    pub slot: String,
    pub publication: String,
    pub postgres: String,
    pub server_version: Option<String>,
    pub proto_version: Option<u32>,
    pub binary: bool,
    /// `connecting`, `streaming`, `reconnecting` or `failed`.
    pub state: String,
    pub last_error: Option<String>,
    pub wal_status: Option<String>,
    pub slot_restart_lsn: Option<String>,
}

pub struct StatusBoard {
    pub metrics: Arc<Metrics>,
    started: Instant,
    facts: Mutex<SourceFacts>,
    log_dir: String,
}

/// Anything the HTTP layer can ask for status.
pub trait StatusSource: Send + Sync {
    fn status_json(&self) -> serde_json::Value;
    /// `None` when ready to serve.
    fn not_ready_reason(&self) -> Option<String>;
}

impl StatusBoard {
    pub fn new(metrics: Arc<Metrics>, facts: SourceFacts, log_dir: String) -> Self {
        StatusBoard {
            metrics,
            started: Instant::now(),
            facts: Mutex::new(facts),
            log_dir,
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut SourceFacts)) {
        let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut facts);
    }

    pub fn facts(&self) -> SourceFacts {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn lsn(v: u64) -> String {
    walcast_decoder::Lsn(v).to_string()
}

impl StatusSource for StatusBoard {
    fn status_json(&self) -> serde_json::Value {
        let m = &self.metrics;
        let facts = self.facts();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "source": facts,
            "positions": {
                "durable_lsn": lsn(m.durable_lsn.load(Relaxed)),
                "confirmed_flush_lsn": lsn(m.confirmed_flush_lsn.load(Relaxed)),
                "server_wal_lsn": lsn(m.server_wal_lsn.load(Relaxed)),
                "slot_lag_bytes": m.slot_lag_bytes.load(Relaxed),
                "slot_retained_wal_bytes": m.slot_retained_wal_bytes.load(Relaxed),
            },
            "log": {
                "dir": self.log_dir,
                "bytes": m.log_bytes.load(Relaxed),
                "segments": m.log_segments.load(Relaxed),
                "transactions_logged": m.transactions_logged.load(Relaxed),
                "duplicates_dropped": m.duplicates_dropped.load(Relaxed),
            },
            "clients": {
                "http": m.clients_http.load(Relaxed),
                "quic": m.clients_quic.load(Relaxed),
                "total_accepted": m.clients_total.load(Relaxed),
                "rejected": m.clients_rejected.load(Relaxed),
                "frames_out": m.frames_out.load(Relaxed),
                "bytes_out": m.bytes_out.load(Relaxed),
            },
            "source_reconnects": m.source_reconnects.load(Relaxed),
        })
    }

    fn not_ready_reason(&self) -> Option<String> {
        let facts = self.facts();
        match facts.state.as_str() {
            "streaming" => None,
            other => Some(match facts.last_error {
                Some(e) => format!("source {other}: {e}"),
                None => format!("source {other}"),
            }),
        }
    }
}
