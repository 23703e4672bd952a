//! The relay's counters and gauges, rendered in the Prometheus text exposition format.
//!
//! A fixed set of atomics rendered by hand: the format is a few lines of text, and a fixed
//! struct keeps every metric name in one place where operators can read them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub transactions_logged: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub source_reconnects: AtomicU64,
    pub durable_lsn: AtomicU64,
    pub confirmed_flush_lsn: AtomicU64,
    pub server_wal_lsn: AtomicU64,
    pub slot_lag_bytes: AtomicI64,
    pub slot_retained_wal_bytes: AtomicI64,
    pub log_bytes: AtomicU64,
    pub log_segments: AtomicU64,
    pub clients_http: AtomicI64,
    pub clients_quic: AtomicI64,
    pub clients_total: AtomicU64,
    pub clients_rejected: AtomicU64,
    pub resync_required: AtomicU64,
    /// Row-scoped clients served by the shared reader (`serve::broadcast`) now; joins accepted
    /// and given up; clients handed back to their own readers.
    pub fanout_clients: AtomicI64,
    pub fanout_joins: AtomicU64,
    pub fanout_joins_refused: AtomicU64,
    pub fanout_releases: AtomicU64,
    pub source_connected: AtomicU64,
    /// Bootstrap (docs/bootstrap.md): jobs started, failed, running now, rows and bytes
    /// copied, client streams served.
    pub bootstrap_jobs: AtomicU64,
    pub bootstrap_failures: AtomicU64,
    pub bootstrap_running: AtomicU64,
    pub bootstrap_rows: AtomicU64,
    pub bootstrap_bytes: AtomicU64,
    pub bootstrap_clients: AtomicU64,
    /// The highest WAL end the walsender reported in XLogData (not rendered: the serving side
    /// uses it to tell a resume position PostgreSQL will send again from a foreign one).
    pub source_wal_end: AtomicU64,
    /// PostgreSQL's commit timestamp → the relay received the Commit message (the walsender's
    /// delay plus the network; assumes the clocks agree, as on one host).
    pub commit_received: Histogram,
    /// The relay received a Commit → clients can be sent it (appended and handed to the
    /// streams). Everything a client waits for on top of the walsender, before the HTTP/QUIC
    /// write.
    pub commit_servable: Histogram,
    /// The relay received a Commit → it is fsynced in the log (and may be confirmed).
    pub commit_durable: Histogram,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        let u = |a: &AtomicU64| a.load(Relaxed);
        let i = |a: &AtomicI64| a.load(Relaxed);
        metric(
            o,
            "walcast_frames_in_total",
            "counter",
            "pgoutput messages received from PostgreSQL.",
            u(&self.frames_in),
        );
        metric(
            o,
            "walcast_bytes_in_total",
            "counter",
            "pgoutput payload bytes received from PostgreSQL.",
            u(&self.bytes_in),
        );
        metric(
            o,
            "walcast_frames_out_total",
            "counter",
            "Frames sent to clients.",
            u(&self.frames_out),
        );
        metric(
            o,
            "walcast_bytes_out_total",
            "counter",
            "Bytes sent to clients.",
            u(&self.bytes_out),
        );
        metric(
            o,
            "walcast_transactions_logged_total",
            "counter",
            "Transactions (and prepared-transaction outcomes) appended to the log.",
            u(&self.transactions_logged),
        );
        metric(
            o,
            "walcast_duplicates_dropped_total",
            "counter",
            "Messages PostgreSQL sent again after a reconnect, dropped as already logged.",
            u(&self.duplicates_dropped),
        );
        metric(
            o,
            "walcast_source_reconnects_total",
            "counter",
            "Reconnections of the replication connection.",
            u(&self.source_reconnects),
        );
        metric(
            o,
            "walcast_source_connected",
            "gauge",
            "1 while the replication connection is streaming.",
            u(&self.source_connected),
        );
        metric(
            o,
            "walcast_durable_lsn",
            "gauge",
            "End LSN of the last commit fsynced in the relay's log.",
            u(&self.durable_lsn),
        );
        metric(
            o,
            "walcast_confirmed_flush_lsn",
            "gauge",
            "Flush LSN last confirmed to PostgreSQL.",
            u(&self.confirmed_flush_lsn),
        );
        metric(
            o,
            "walcast_server_wal_lsn",
            "gauge",
            "The server's current WAL position, as last sampled.",
            u(&self.server_wal_lsn),
        );
        metric(
            o,
            "walcast_slot_lag_bytes",
            "gauge",
            "Server WAL position minus the slot's confirmed_flush_lsn.",
            i(&self.slot_lag_bytes),
        );
        metric(
            o,
            "walcast_slot_retained_wal_bytes",
            "gauge",
            "WAL the slot keeps on the server (current position minus restart_lsn).",
            i(&self.slot_retained_wal_bytes),
        );
        metric(
            o,
            "walcast_log_bytes",
            "gauge",
            "Bytes in the relay's on-disk log.",
            u(&self.log_bytes),
        );
        metric(
            o,
            "walcast_log_segments",
            "gauge",
            "Segment files in the relay's on-disk log.",
            u(&self.log_segments),
        );
        let _ = write!(
            o,
            "# HELP walcast_clients Clients currently streaming.\n# TYPE walcast_clients gauge\n\
             walcast_clients{{transport=\"http\"}} {}\nwalcast_clients{{transport=\"quic\"}} {}\n",
            i(&self.clients_http),
            i(&self.clients_quic)
        );
        metric(
            o,
            "walcast_clients_total",
            "counter",
            "Client streams accepted since start.",
            u(&self.clients_total),
        );
        metric(
            o,
            "walcast_clients_rejected_total",
            "counter",
            "Client requests refused (bad request, limits).",
            u(&self.clients_rejected),
        );
        metric(
            o,
            "walcast_resync_required_total",
            "counter",
            "Clients told to resync because they asked for data past retention.",
            u(&self.resync_required),
        );
        metric(
            o,
            "walcast_fanout_clients",
            "gauge",
            "Row-scoped clients served by the shared reader (routed by scope value) now.",
            i(&self.fanout_clients),
        );
        for (name, kind, help, v) in [
            (
                "walcast_fanout_joins_total",
                "counter",
                "Row-scoped clients that moved to the shared reader.",
                &self.fanout_joins,
            ),
            (
                "walcast_fanout_joins_refused_total",
                "counter",
                "Moves to the shared reader given up (it stayed inside a transaction too long).",
                &self.fanout_joins_refused,
            ),
            (
                "walcast_fanout_releases_total",
                "counter",
                "Clients the shared reader handed back to their own readers.",
                &self.fanout_releases,
            ),
            (
                "walcast_bootstrap_jobs_total",
                "counter",
                "Bootstrap jobs started (snapshot copies).",
                &self.bootstrap_jobs,
            ),
            (
                "walcast_bootstrap_failures_total",
                "counter",
                "Bootstrap jobs that failed.",
                &self.bootstrap_failures,
            ),
            (
                "walcast_bootstrap_running",
                "gauge",
                "Bootstrap jobs running now.",
                &self.bootstrap_running,
            ),
            (
                "walcast_bootstrap_rows_total",
                "counter",
                "Rows copied by bootstrap jobs.",
                &self.bootstrap_rows,
            ),
            (
                "walcast_bootstrap_bytes_total",
                "counter",
                "Bytes of bootstrap images written.",
                &self.bootstrap_bytes,
            ),
            (
                "walcast_bootstrap_clients_total",
                "counter",
                "Client streams that asked for a bootstrap.",
                &self.bootstrap_clients,
            ),
        ] {
            metric(o, name, kind, help, u(v));
        }
        self.commit_received.render(
            o,
            "walcast_commit_received_seconds",
            "Commit timestamp at PostgreSQL to the relay receiving the commit (same clock assumed).",
        );
        self.commit_servable.render(
            o,
            "walcast_commit_servable_seconds",
            "The relay receiving a commit to clients being able to read it.",
        );
        self.commit_durable.render(
            o,
            "walcast_commit_durable_seconds",
            "The relay receiving a commit to the commit being fsynced in its log.",
        );
        out
    }
}

/// Appends `walcast_consumers` and `walcast_consumer_lag_bytes{consumer="…"}` (names are
/// `[A-Za-z0-9_.-]`, so they need no escaping in a label value).
pub fn render_consumers(out: &mut String, consumers: &[crate::consumers::ConsumerView]) {
    metric(
        out,
        "walcast_consumers",
        "gauge",
        "Registered durable consumers.",
        consumers.len(),
    );
    let name = "walcast_consumer_lag_bytes";
    let _ = write!(
        out,
        "# HELP {name} The relay's durable LSN minus the consumer's acknowledged LSN.\n# TYPE {name} gauge\n"
    );
    for c in consumers {
        let _ = writeln!(out, "{name}{{consumer=\"{}\"}} {}", c.name, c.lag_bytes);
    }
    let name = "walcast_consumer_seconds_since_ack";
    let _ = write!(
        out,
        "# HELP {name} Seconds since the consumer last acknowledged (since it registered if never).\n# TYPE {name} gauge\n"
    );
    for c in consumers {
        let _ = writeln!(
            out,
            "{name}{{consumer=\"{}\"}} {}",
            c.name, c.secs_since_ack
        );
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets: fine around the few milliseconds
/// an fsync takes, coarse in the tail.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.004, 0.005, 0.007_5, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.1, 0.25, 1.0,
];

/// A Prometheus histogram of durations over [`LATENCY_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot counts what exceeds every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let m = Metrics::default();
        m.frames_out.store(42, Relaxed);
        m.clients_http.store(3, Relaxed);
        let text = m.render();
        assert!(text.contains("walcast_frames_out_total 42\n"));
        assert!(text.contains("walcast_clients{transport=\"http\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split([' ', '{']).next().unwrap();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|n| text.contains(&format!("# TYPE {n} histogram")))
                })
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} lacks a TYPE line"
            );
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(std::time::Duration::from_micros(800));
        h.observe(std::time::Duration::from_millis(4));
        h.observe(std::time::Duration::from_secs(3));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 0\n"));
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.004\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn renders_consumers() {
        let mut out = String::new();
        let v = crate::consumers::ConsumerView {
            name: "billing".into(),
            acked_lsn: walcast_decoder::Lsn(1),
            lag_bytes: 77,
            created_unix_ms: 0,
            last_ack_unix_ms: None,
            secs_since_ack: 12,
            connected: 0,
        };
        render_consumers(&mut out, &[v]);
        assert!(out.contains("walcast_consumers 1\n"));
        assert!(out.contains("walcast_consumer_lag_bytes{consumer=\"billing\"} 77\n"));
        assert!(out.contains("walcast_consumer_seconds_since_ack{consumer=\"billing\"} 12\n"));
    }
}
