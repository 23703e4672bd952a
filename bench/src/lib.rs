//! Shared pieces of walcast's benchmarks: a relay process, a decoding client, percentiles.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/release/walcast`, built by the bench scripts before they run.
pub fn walcast_bin() -> PathBuf {
    walcast_testkit::workspace_root().join("target/release/walcast")
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

/// The p-th percentile (0–100) of `sorted`, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
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
}
