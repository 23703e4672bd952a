//! `walcast tail`: print a relay's stream as JSON lines (the decoder's output contract) or
//! MessagePack, resuming by itself across disconnects.

use anyhow::{Context, Result};
use std::io::Write;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::output::msgpack::MsgpackEncoder;
use walcast_decoder::{Decoder, Event, Lsn};

use super::args::{OutputFormat, TailArgs};
use crate::client::{ClientError, Delivery, Subscription, Transport};
use crate::serve::request::parse_table;

pub async fn run(args: TailArgs) -> Result<()> {
    let from = args
        .from
        .as_deref()
        .map(str::parse::<Lsn>)
        .transpose()
        .context("--from")?;
    let until = args
        .until
        .as_deref()
        .map(str::parse::<Lsn>)
        .transpose()
        .context("--until")?;
    let tables = args
        .tables
        .iter()
        .map(|t| parse_table(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut transport = Transport::from_url(&args.url, args.cert_sha256.as_deref())?;
    if let Some(token) = &args.token {
        transport = transport.with_bearer_token(token)?;
    }
    let mut sub = Subscription::new(transport, from, tables)
        .with_compression(args.compression)
        .with_frame_version(args.frame_version);
    let mut bootstrapping = args.bootstrap;
    if bootstrapping {
        sub = sub.with_bootstrap();
    }
    let mut acks = match &args.consumer {
        Some(name) => {
            crate::consumers::validate_name(name)?;
            sub = sub.with_consumer(name.clone());
            let acked = sub
                .register(from)
                .await
                .with_context(|| format!("registering consumer {name}"))?;
            tracing::info!(consumer = %name, acked = %acked, "streaming as a durable consumer");
            Some(Acker::new(acked))
        }
        None => None,
    };
    let mut decoder = Decoder::new();
    let mut msgpack = MsgpackEncoder::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    let mut bin = Vec::new();
    loop {
        let delivery = sub.next().await?;
        let frame = match delivery {
            Delivery::Frame(f) => f,
            Delivery::Reset => {
                // The stream reconnected: an open transaction, and blocks of in-flight streamed
                // transactions, come again from their start. Say so, since part of them may
                // already be printed (docs/output.md, "Reconnects").
                decoder.reset();
                match args.format {
                    OutputFormat::Jsonl => out.write_all(b"{\"type\":\"reset\"}\n")?,
                    OutputFormat::Msgpack => {
                        bin.clear();
                        msgpack.encode_reset(&mut bin)?;
                        out.write_all(&bin)?;
                    }
                }
                continue;
            }
            Delivery::Heartbeat(lsn) => {
                if std::mem::take(&mut bootstrapping) {
                    tracing::info!(consistent_point = %lsn, "bootstrap complete; changes after it follow");
                }
                out.flush()?;
                if let Some(a) = &mut acks {
                    a.maybe_ack(&sub, true).await?;
                }
                continue;
            }
        };
        let lsn = (frame.kind == FrameKind::Wal).then_some(frame.lsn);
        let event = decoder
            .decode(&frame.payload)
            .with_context(|| format!("decoding the message at {}", frame.lsn))?;
        match args.format {
            OutputFormat::Jsonl => {
                line.clear();
                write_event(&event, lsn, &mut line);
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            OutputFormat::Msgpack => {
                bin.clear();
                msgpack.encode(&event, lsn, &mut bin)?;
                out.write_all(&bin)?;
            }
        }
        let closes = closing_end_lsn(&event).is_some();
        if let Some(until) = until {
            if closes_at_or_past(&event, until) {
                out.flush()?;
                if let Some(a) = &mut acks {
                    a.maybe_ack(&sub, true).await?;
                }
                sub.close().await;
                return Ok(());
            }
        }
        // Flush at transaction ends so a reader of the pipe sees whole transactions promptly.
        if closes {
            out.flush()?;
            // Only now, with the transaction out of our hands, may the relay forget it.
            if let Some(a) = &mut acks {
                a.maybe_ack(&sub, false).await?;
            }
        }
    }
}

/// Acknowledges what `walcast tail --consumer` has written and flushed. Each ack is an fsync on
/// the relay, so during a burst at most one goes out per [`Acker::EVERY`]; the rest is acked
/// at the next transaction after that or when the stream goes idle (heartbeat). Acking later is
/// always safe: after a restart the transactions since the last ack come again.
struct Acker {
    acked: Lsn,
    last: Option<std::time::Instant>,
}

impl Acker {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);

    fn new(acked: Lsn) -> Acker {
        Acker { acked, last: None }
    }

    async fn maybe_ack(&mut self, sub: &Subscription, now: bool) -> Result<()> {
        let Some(target) = sub.resume_lsn() else {
            return Ok(());
        };
        if target <= self.acked {
            return Ok(());
        }
        if !now && self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return Ok(());
        }
        self.last = Some(std::time::Instant::now());
        match sub.ack(target).await {
            Ok(acked) => self.acked = acked,
            // The relay is restarting or the network is down: the stream reconnects by itself,
            // and the next ack covers this one.
            Err(ClientError::Transport(e)) if e.is_transient() => {
                tracing::warn!(error = %e, "could not acknowledge to the relay; will retry");
            }
            Err(e) => return Err(anyhow::Error::new(e).context("acknowledging to the relay")),
        }
        Ok(())
    }
}

/// The end LSN of a transaction-closing event: a commit (plain, streamed or prepared), a
/// prepare, or a rollback of a prepared transaction.
fn closing_end_lsn(event: &Event<'_>) -> Option<Lsn> {
    match event {
        Event::Commit(c) => Some(c.end_lsn),
        Event::StreamCommit(c) => Some(c.end_lsn),
        Event::Prepare(p) | Event::StreamPrepare(p) => Some(p.end_lsn),
        Event::CommitPrepared(c) => Some(c.end_lsn),
        Event::RollbackPrepared(r) => Some(r.rollback_end_lsn),
        _ => None,
    }
}

/// Whether `event` is a commit (plain, streamed or prepared) whose end LSN is at or past
/// `until`. A Prepare is not a commit: `--until` waits for the outcome.
fn closes_at_or_past(event: &Event<'_>, until: Lsn) -> bool {
    !matches!(
        event,
        Event::Prepare(_) | Event::StreamPrepare(_) | Event::RollbackPrepared(_)
    ) && closing_end_lsn(event).is_some_and(|end| end >= until)
}
