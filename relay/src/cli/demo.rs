//! `walcast demo`: a throwaway PostgreSQL, a relay in front of it, a small writer, and the live
//! decoded stream on the terminal. Ctrl-C stops everything and deletes the cluster.

use anyhow::{Context, Result};
use std::time::Duration;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::Decoder;

use super::args::{DemoArgs, RelayArgs};
use crate::client::{Delivery, Subscription, Transport};

const SCHEMA: &str = "
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12,2) NOT NULL,
    status text NOT NULL DEFAULT 'new',
    tags text[],
    updated_at timestamptz NOT NULL DEFAULT now()
);";

pub async fn run(args: DemoArgs) -> Result<()> {
    let major = walcast_testkit::available_versions()
        .into_iter()
        .find(|v| *v == 15)
        .or_else(|| walcast_testkit::available_versions().into_iter().last());
    let Some(major) = major else {
        anyhow::bail!(
            "walcast demo needs PostgreSQL server binaries (initdb, pg_ctl, postgres) and found none.\n\
             Install them, e.g. `apt-get install -y postgresql` (Debian/Ubuntu), then run `walcast demo` again."
        );
    };
    eprintln!("walcast demo: starting a throwaway PostgreSQL {major} …");
    let pg = tokio::task::block_in_place(|| walcast_testkit::PgCluster::start(major))
        .context("starting a throwaway PostgreSQL")?;
    pg.psql(SCHEMA)?;
    let data_dir = tempfile::Builder::new().prefix("walcast-demo-").tempdir()?;
    let http = format!("127.0.0.1:{}", args.port);
    let quic = format!("127.0.0.1:{}", args.port + 1);
    let relay_args = RelayArgs {
        postgres: Some(pg.url()),
        slot: Some("walcast_demo".into()),
        publication: Some("walcast_demo".into()),
        tables: vec!["public.orders".into()],
        data_dir: Some(data_dir.path().to_path_buf()),
        http: Some(http.parse()?),
        quic: Some(quic.parse()?),
        ui_dir: ui_dir(),
        ..Default::default()
    };
    let relay = tokio::spawn(super::relay::run(relay_args));
    let base = format!("http://{http}");
    wait_ready(&base).await?;
    eprintln!("walcast demo: PostgreSQL at {}", pg.url());
    match ui_dir() {
        Some(_) => eprintln!("walcast demo: open {base}/demo/index.html?autoconnect in a browser to watch the changes decoded by WASM"),
        None => eprintln!("walcast demo: (build the npm package with scripts/build-js.sh to get the browser page)"),
    }
    eprintln!("walcast demo: open {base}/v1/status, {base}/metrics; stream: {base}/v1/stream");
    eprintln!("walcast demo: try `walcast tail --url {base}` or `walcast status --url {base}` in another terminal");
    eprintln!(
        "walcast demo: writing {} changes/s; Ctrl-C stops everything\n",
        args.rate
    );

    let writer = tokio::spawn(write_forever(pg.url(), args.rate));
    let mut sub = Subscription::new(Transport::from_url(&base, None)?, None, Vec::new());
    let mut decoder = Decoder::new();
    let mut line = String::new();
    let print = async {
        loop {
            match sub.next().await {
                Ok(Delivery::Frame(f)) => match decoder.decode(&f.payload) {
                    Ok(ev) => {
                        line.clear();
                        write_event(&ev, Some(f.lsn), &mut line);
                        println!("{line}");
                    }
                    Err(e) => eprintln!("decode error: {e}"),
                },
                Ok(Delivery::Reset) => decoder.reset(),
                Ok(Delivery::Heartbeat(_)) => {}
                Err(e) => {
                    eprintln!("stream ended: {e}");
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = print => {}
        _ = super::relay::shutdown_signal() => eprintln!("\nwalcast demo: stopping …"),
    }
    writer.abort();
    // The relay listens for the same Ctrl-C or SIGTERM and shuts down by itself.
    match tokio::time::timeout(Duration::from_secs(25), relay).await {
        Ok(Ok(Err(e))) => eprintln!("relay: {e:#}"),
        Err(_) => eprintln!("relay did not stop in time"),
        _ => {}
    }
    drop(pg);
    eprintln!("walcast demo: cleaned up");
    Ok(())
}

/// The npm package directory, when its build (js/dist) is present in this checkout.
fn ui_dir() -> Option<std::path::PathBuf> {
    let js = walcast_testkit::workspace_root().join("js");
    js.join("dist/walcast.wasm").exists().then_some(js)
}

async fn wait_ready(base: &str) -> Result<()> {
    let url = format!("{base}/readyz");
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the relay did not become ready at {url} within 30 s")
}

/// Inserts orders, moves them through statuses and deletes some, each transaction tagged with
/// a logical message saying which "request" made it (see docs on correlation).
async fn write_forever(url: String, rate: u32) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let customers = ["ada", "grace", "linus", "barbara", "ken", "margaret"];
    let mut n: u64 = 0;
    loop {
        n += 1;
        let request = format!("{{\"request_id\":\"req-{n}\",\"route\":\"POST /orders\"}}");
        let sql = match n % 5 {
            0 => "UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = (SELECT min(id) FROM orders WHERE status = 'paid')".to_string(),
            1 | 3 => format!(
                "INSERT INTO orders (customer, amount, tags) VALUES ('{}', {}.{:02}, ARRAY['demo','n{}'])",
                customers[(n as usize) % customers.len()],
                (n * 37) % 500,
                n % 100,
                n % 7
            ),
            2 => "UPDATE orders SET status = 'paid', updated_at = now() WHERE id = (SELECT min(id) FROM orders WHERE status = 'new')".to_string(),
            _ => "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE status = 'shipped')".to_string(),
        };
        let batch = format!(
            "BEGIN; SELECT pg_logical_emit_message(true, 'walcast', '{request}'); {sql}; COMMIT;"
        );
        client.batch_execute(&batch).await?;
        tokio::time::sleep(period).await;
    }
}
