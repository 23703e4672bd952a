//! `walcast status`: a one-screen summary of a running relay, from its `/v1/status`.

use anyhow::{Context, Result};
use serde_json::Value;

use super::args::StatusArgs;

pub async fn run(args: StatusArgs) -> Result<()> {
    let url = format!("{}/v1/status", args.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .with_context(|| format!("cannot reach the relay at {url}"))?
        .error_for_status()?
        .json()
        .await
        .context("the relay's status is not JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print!("{}", render(&body));
    Ok(())
}

fn bytes(v: &Value) -> String {
    let n = v.as_i64().unwrap_or(0) as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut i = 0;
    let mut x = n.abs();
    while x >= 1024.0 && i < units.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!("{}{x:.1} {}", if n < 0.0 { "-" } else { "" }, units[i])
}

/// The summary text (pure, so it is tested without a relay).
pub fn render(s: &Value) -> String {
    let src = &s["source"];
    let pos = &s["positions"];
    let log = &s["log"];
    let cl = &s["clients"];
    let t = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = String::new();
    out.push_str(&format!(
        "walcast relay {}  up {}s\n",
        t(&s["version"]),
        s["uptime_secs"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "source     {}  slot {}  publication {}  server {}  proto {}\n",
        t(&src["state"]),
        t(&src["slot"]),
        t(&src["publication"]),
        t(&src["server_version"]),
        t(&src["proto_version"]),
    ));
    if let Some(e) = src["last_error"].as_str() {
        out.push_str(&format!("last error {e}\n"));
    }
    out.push_str(&format!(
        "positions  durable {}  confirmed {}  server {}\n",
        t(&pos["durable_lsn"]),
        t(&pos["confirmed_flush_lsn"]),
        t(&pos["server_wal_lsn"])
    ));
    out.push_str(&format!(
        "slot       lag {}  retained WAL {}  wal_status {}\n",
        bytes(&pos["slot_lag_bytes"]),
        bytes(&pos["slot_retained_wal_bytes"]),
        t(&src["wal_status"])
    ));
    out.push_str(&format!(
        "log        {} in {} segments at {}  ({} transactions, {} resent messages dropped)\n",
        bytes(&log["bytes"]),
        log["segments"],
        t(&log["dir"]),
        log["transactions_logged"],
        log["duplicates_dropped"]
    ));
    out.push_str(&format!(
        "clients    {} http, {} quic  ({} accepted, {} refused; {} sent)\n",
        cl["http"],
        cl["quic"],
        cl["total_accepted"],
        cl["rejected"],
        bytes(&cl["bytes_out"])
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_summary() {
        let s = serde_json::json!({
            "version": "0.1.0", "uptime_secs": 5,
            "source": {"state": "streaming", "slot": "s", "publication": "p", "server_version": "150004", "proto_version": 3, "wal_status": "reserved"},
            "positions": {"durable_lsn": "0/16B3748", "confirmed_flush_lsn": "0/16B3748", "server_wal_lsn": "0/16B3800", "slot_lag_bytes": 184, "slot_retained_wal_bytes": 2048},
            "log": {"dir": "/d/log", "bytes": 3145728, "segments": 1, "transactions_logged": 7, "duplicates_dropped": 0},
            "clients": {"http": 2, "quic": 0, "total_accepted": 3, "rejected": 1, "bytes_out": 10}
        });
        let text = render(&s);
        assert!(text.contains("source     streaming  slot s"), "{text}");
        assert!(text.contains("lag 184.0 B  retained WAL 2.0 KiB"), "{text}");
        assert!(text.contains("3.0 MiB in 1 segments"), "{text}");
        assert!(text.contains("2 http, 0 quic"), "{text}");
    }
}
