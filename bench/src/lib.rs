//! Shared pieces of walcast's benchmarks: a relay process, a decoding client, percentiles.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `walcast` binary: `$WALCAST_BIN`, else the one next to this benchmark's own binary (the
/// same target directory and profile, which `bench/run.sh` builds), else
/// `<workspace>/target/release/walcast`. (The workspace root is baked in when the testkit is
/// compiled, and a target directory copied from another checkout would point there.)
pub fn walcast_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WALCAST_BIN") {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("walcast")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| walcast_testkit::workspace_root().join("target/release/walcast"))
}

/// A `walcast relay` child process, killed on drop.
pub struct RelayProcess {
    pub child: Child,
    pub http: String,
    _data: tempfile::TempDir,
}

impl RelayProcess {
    pub fn start(
        pg_url: &str,
        slot: &str,
        publication: &str,
        tables: &str,
    ) -> Result<RelayProcess> {
        Self::start_with(pg_url, slot, publication, tables, &[])
    }

    /// Like [`RelayProcess::start`], with extra `walcast relay` arguments.
    pub fn start_with(
        pg_url: &str,
        slot: &str,
        publication: &str,
        tables: &str,
        extra: &[&str],
    ) -> Result<RelayProcess> {
        let data = tempfile::Builder::new()
            .prefix("walcast-bench-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(walcast_bin())
            .args([
                "relay",
                "--postgres",
                pg_url,
                "--slot",
                slot,
                "--publication",
                publication,
            ])
            .args([
                "--tables",
                tables,
                "--http",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data.path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (run bench/run.sh, which builds it)",
                    walcast_bin().display()
                )
            })?;
        let stdout = child.stdout.take().context("relay stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .context("relay exited before printing its address")??;
        if !line.contains("HTTP on") {
            bail!("unexpected first line from the relay: {line}");
        }
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = format!("http://127.0.0.1:{port}");
        let relay = RelayProcess {
            child,
            http,
            _data: data,
        };
        relay.wait_ready(Duration::from_secs(30))?;
        Ok(relay)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let addr = self.http.trim_start_matches("http://").to_string();
        while start.elapsed() < timeout {
            if let Ok(body) = http_get(&addr, "/readyz") {
                if body.contains("200 OK") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("relay not ready after {timeout:?}")
    }

    /// Resident memory of the relay process, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("VmRSS value")?
            .parse()?)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP/1.1 GET, returning the raw response (status line, headers, body).
pub fn http_get(addr: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// An integer setting from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The p-th percentile (0–100) of `sorted`, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The median of `v` (sorted in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(v, 50.0)
}

/// A Prometheus histogram scraped from `/metrics`: (upper bound in seconds, cumulative count).
pub fn scrape_histogram(metrics: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The p-th percentile (0–100), in milliseconds, of what a histogram counted between two
/// scrapes, interpolated linearly inside the bucket (as Prometheus' `histogram_quantile`).
/// NaN if nothing was counted; the last finite bound if it falls in the `+Inf` bucket.
pub fn histogram_quantile_ms(before: &[(f64, u64)], after: &[(f64, u64)], p: f64) -> f64 {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, c)| {
            let b = before.iter().find(|(l, _)| *l == le).map_or(0, |&(_, c)| c);
            (le, c.saturating_sub(b))
        })
        .collect();
    let total = diff.last().map_or(0, |&(_, c)| c);
    if total == 0 {
        return f64::NAN;
    }
    let rank = p / 100.0 * total as f64;
    let (mut lo, mut below) = (0.0, 0u64);
    for &(le, cum) in &diff {
        if cum as f64 >= rank {
            if le.is_infinite() {
                return lo * 1000.0;
            }
            let in_bucket = (cum - below).max(1) as f64;
            return (lo + (le - lo) * (rank - below as f64) / in_bucket) * 1000.0;
        }
        (lo, below) = (le, cum);
    }
    lo * 1000.0
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds (user + system) a process has used so far.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The whole machine's busy and total CPU time so far (jiffies, from `/proc/stat`).
pub fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// Current WAL position of the server.
pub fn current_lsn(pg: &walcast_testkit::PgCluster) -> Result<walcast_decoder::Lsn> {
    Ok(pg.psql("SELECT pg_current_wal_lsn()")?.trim().parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn histogram_quantiles_from_scrapes() {
        let text = "x_bucket{le=\"0.001\"} 10\nx_bucket{le=\"0.002\"} 20\nx_bucket{le=\"+Inf\"} 21\nx_count 21\n";
        let after = scrape_histogram(text, "x");
        assert_eq!(after, vec![(0.001, 10), (0.002, 20), (f64::INFINITY, 21)]);
        let before = vec![(0.001, 10), (0.002, 10), (f64::INFINITY, 10)];
        // Between the scrapes: 10 in (1, 2] ms and 1 above.
        let p50 = histogram_quantile_ms(&before, &after, 50.0);
        assert!((p50 - 1.55).abs() < 1e-9, "{p50}");
        assert_eq!(histogram_quantile_ms(&before, &after, 100.0), 2.0);
        assert!(histogram_quantile_ms(&after, &after, 50.0).is_nan());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
