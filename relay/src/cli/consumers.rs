//! `walcast consumers list|inspect NAME|remove NAME`: the durable consumers of a running relay,
//! from its `/v1/consumers` API. A dead consumer shows as growing lag and time since its last ack.

use anyhow::{bail, Context, Result};

use super::args::{ConsumersAction, ConsumersArgs};
use crate::consumers::{validate_name, ConsumerView};

pub async fn run(args: ConsumersArgs) -> Result<()> {
    let base = args.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    match &args.action {
        ConsumersAction::List => {
            let url = format!("{base}/v1/consumers");
            let body: serde_json::Value = get_json(&client, &url).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let views: Vec<ConsumerView> =
                serde_json::from_value(body["consumers"].clone()).context("unexpected answer")?;
            print!("{}", render_list(&views));
        }
        ConsumersAction::Inspect { name } => {
            validate_name(name)?;
            let url = format!("{base}/v1/consumers/{name}");
            let body: serde_json::Value = get_json(&client, &url).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let v: ConsumerView = serde_json::from_value(body).context("unexpected answer")?;
            print!("{}", render_one(&v));
        }
        ConsumersAction::Remove { name } => {
            validate_name(name)?;
            let url = format!("{base}/v1/consumers/{name}");
            let resp = client
                .delete(&url)
                .send()
                .await
                .with_context(|| format!("cannot reach the relay at {url}"))?;
            if !resp.status().is_success() {
                bail!(
                    "{}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
            }
            if args.json {
                println!("{}", serde_json::json!({ "removed": name }));
            } else {
                println!("removed consumer {name}: it no longer holds the slot or the log back");
            }
        }
    }
    Ok(())
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach the relay at {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    serde_json::from_str(&text).context("the relay's answer is not JSON")
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1024.0 && i < units.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", units[i])
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The table `walcast consumers list` prints (pure, tested without a relay).
pub fn render_list(views: &[ConsumerView]) -> String {
    if views.is_empty() {
        return "no durable consumers\n".into();
    }
    let mut out = format!(
        "{:<24} {:>20} {:>12} {:>10} {:>9}\n",
        "NAME", "ACKED", "LAG", "LAST ACK", "CONNECTED"
    );
    for v in views {
        out.push_str(&format!(
            "{:<24} {:>20} {:>12} {:>10} {:>9}\n",
            v.name,
            v.acked_lsn.to_string(),
            human_bytes(v.lag_bytes),
            last_ack(v),
            if v.connected > 0 { "yes" } else { "no" },
        ));
    }
    out
}

fn last_ack(v: &ConsumerView) -> String {
    match v.last_ack_unix_ms {
        Some(_) => format!("{} ago", human_secs(v.secs_since_ack)),
        None => "never".into(),
    }
}

pub fn render_one(v: &ConsumerView) -> String {
    format!(
        "consumer   {}\nacked      {}\nlag        {} ({} bytes)\nlast ack   {}\nregistered {}s ago\nconnected  {}\n",
        v.name,
        v.acked_lsn,
        human_bytes(v.lag_bytes),
        v.lag_bytes,
        match v.last_ack_unix_ms {
            Some(_) => format!("{} ago", human_secs(v.secs_since_ack)),
            None => format!("never ({} since registration)", human_secs(v.secs_since_ack)),
        },
        crate::consumers::now_unix_ms().saturating_sub(v.created_unix_ms) / 1000,
        match v.connected {
            0 => "no".to_string(),
            n => format!("yes ({n} stream{})", if n == 1 { "" } else { "s" }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::Lsn;

    #[test]
    fn renders_a_dead_consumer_visibly() {
        let v = ConsumerView {
            name: "billing".into(),
            acked_lsn: Lsn(0x1_0000_0000),
            lag_bytes: 3 << 30,
            created_unix_ms: 0,
            last_ack_unix_ms: Some(5),
            secs_since_ack: 3 * 86_400,
            connected: 0,
        };
        let t = render_list(std::slice::from_ref(&v));
        assert!(t.contains("billing"), "{t}");
        assert!(t.contains("1/0"), "{t}");
        assert!(t.contains("3.0 GiB"), "{t}");
        assert!(t.contains("3d ago"), "{t}");
        assert!(t.contains(" no\n"), "{t}");
        let one = render_one(&v);
        assert!(one.contains("3221225472 bytes"), "{one}");
        assert_eq!(render_list(&[]), "no durable consumers\n");
    }
}
