//! `walcast backup`: a durable consumer of a relay that writes a consistent baseline and then
//! every committed transaction into immutable, checksummed objects, and acknowledges a
//! position to the relay only once the objects holding everything up to it are fsynced.
//!
//! Resuming is reading the destination: the newest complete baseline, and the chain of log
//! objects after it. The last object's end is where the stream resumes (the relay sends
//! again whatever comes after it, so a crash between writing and acknowledging loses nothing).

use std::time::{Duration, Instant};

use bytes::Bytes;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use super::assemble::{AssembleError, Assembler, Unit};
use super::layout::{self, Manifest, ObjectBuilder, PartEntry};
use super::store::{Destination, StoreError};
use crate::client::{ClientError, Compression, Delivery, Subscription, Transport};
use crate::source::{Backoff, BackoffConfig};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error("the backup at {dest} is broken: {why}")]
    Broken { dest: String, why: String },
}

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub transport: Transport,
    pub tables: Vec<(String, String)>,
    /// The durable consumer this backup is on the relay.
    pub consumer: String,
    pub compression: Compression,
    /// Start a new log object once the current one holds this many bytes…
    pub object_bytes: usize,
    /// …or once its oldest transaction waited this long (the ack lags at most about this).
    pub flush_every: Duration,
    /// Stop (exit 0) once a transaction ending at or past this LSN is durable.
    pub until: Option<Lsn>,
}

/// Where a destination stands: its newest complete baseline and how far its log reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupState {
    pub baseline: Lsn,
    /// Every transaction ending at or before this is in the baseline or the log.
    pub covered: Lsn,
    pub log_objects: usize,
}

/// Reads `dest`: the newest baseline with a manifest, and the contiguous chain of log objects
/// after it. `None` when there is no complete baseline yet.
pub async fn state_of(dest: &Destination) -> Result<Option<BackupState>, BackupError> {
    let Some(baseline) = newest_baseline(dest).await? else {
        return Ok(None);
    };
    let chain = log_chain(dest, baseline).await?;
    Ok(Some(BackupState {
        baseline,
        covered: chain.last().map_or(baseline, |(_, last, _)| *last),
        log_objects: chain.len(),
    }))
}

/// The consistent point of the newest baseline whose manifest exists.
pub async fn newest_baseline(dest: &Destination) -> Result<Option<Lsn>, BackupError> {
    Ok(complete_baselines(dest).await?.into_iter().next_back())
}

/// Consistent points of every baseline with a manifest, oldest first.
pub async fn complete_baselines(dest: &Destination) -> Result<Vec<Lsn>, BackupError> {
    let mut cps: Vec<Lsn> = dest
        .list("baseline")
        .await?
        .iter()
        .filter_map(|n| {
            let dir = n
                .strip_prefix("baseline/")?
                .strip_suffix("/manifest.json")?;
            layout::parse_baseline_dir(dir)
        })
        .collect();
    cps.sort();
    Ok(cps)
}

/// The log objects that continue the baseline at `cp` without a gap: `(prev, last, name)`.
pub async fn log_chain(
    dest: &Destination,
    cp: Lsn,
) -> Result<Vec<(Lsn, Lsn, String)>, BackupError> {
    let mut objects: Vec<(Lsn, Lsn, String)> = dest
        .list("log")
        .await?
        .into_iter()
        .filter_map(|n| {
            let (prev, last) = layout::parse_segment_name(n.strip_prefix("log/")?)?;
            Some((prev, last, n))
        })
        .collect();
    objects.sort();
    let mut chain = Vec::new();
    let mut at = cp;
    for (prev, last, name) in objects {
        // Objects of an older baseline end before `cp`; a later one must start where we are.
        if prev < at && last <= at {
            continue;
        }
        if prev != at {
            return Err(BackupError::Broken {
                dest: format!("{dest:?}"),
                why: format!(
                    "the log has a gap: {name} starts at {prev}, the objects before reach {at}"
                ),
            });
        }
        at = last;
        chain.push((prev, last, name));
    }
    Ok(chain)
}

/// Runs the backup until `until`, a fatal error, or `stop` resolves (then it writes what it
/// holds of complete transactions and returns).
pub async fn run(
    cfg: BackupConfig,
    dest: Destination,
    stop: impl std::future::Future<Output = ()>,
) -> Result<BackupState, BackupError> {
    let control = Subscription::new(cfg.transport.clone(), None, Vec::new())
        .with_consumer(cfg.consumer.clone());
    let mut state = match state_of(&dest).await? {
        Some(s) => {
            let s = drop_torn_tail(&dest, s).await?;
            tracing::info!(dest = ?dest, baseline = %s.baseline, covered = %s.covered, log_objects = s.log_objects, "resuming the backup");
            control.register(Some(s.covered)).await?;
            if let Some(until) = cfg.until.filter(|u| s.covered >= *u) {
                // An earlier run got there (it was stopped after writing `until`, before exiting).
                tracing::info!(%until, covered = %s.covered, "the backup already reaches --until");
                return Ok(s);
            }
            s
        }
        None => {
            // Hold everything the relay has from now on: the image's consistent point comes later.
            let acked = control.register(None).await?;
            tracing::info!(dest = ?dest, consumer = %cfg.consumer, acked = %acked, "starting a new backup: baseline first");
            BackupState {
                baseline: Lsn::ZERO,
                covered: Lsn::ZERO,
                log_objects: 0,
            }
        }
    };
    tokio::pin!(stop);
    let mut sub = if state.covered == Lsn::ZERO {
        let (sub, cp) = loop {
            tokio::select! {
                r = write_baseline(&cfg, &dest) => match r {
                    Ok(v) => break v,
                    Err(BackupError::Client(ClientError::BootstrapInterrupted(why))) => {
                        tracing::warn!(reason = %why, "the baseline was interrupted; starting it again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e),
                },
                _ = &mut stop => {
                    return Err(BackupError::Broken { dest: format!("{dest:?}"), why: "stopped before the baseline was complete; run again to start it anew".into() });
                }
            }
        };
        ack(&control, cp).await?;
        state = BackupState {
            baseline: cp,
            covered: cp,
            log_objects: 0,
        };
        sub
    } else {
        Subscription::new(
            cfg.transport.clone(),
            Some(state.covered),
            cfg.tables.clone(),
        )
        .with_compression(cfg.compression)
    };

    let mut asm = Assembler::new();
    let mut object = ObjectBuilder::new();
    let mut txns_in_object = 0usize;
    let mut last_end = state.covered;
    let mut oldest_unwritten: Option<Instant> = None;
    let mut last_flush = Instant::now();
    loop {
        let delivery = tokio::select! {
            d = sub.next() => Some(d?),
            _ = &mut stop => None,
        };
        let mut flush_now = false;
        let mut done = false;
        match delivery {
            None => {
                tracing::info!("stopping: writing what is complete");
                flush_now = true;
                done = true;
            }
            Some(Delivery::Reset) => asm.reset(),
            Some(Delivery::Heartbeat(_)) => {
                // Idle: write what waits, or, after a long quiet spell, record how far the
                // stream is complete so the relay can let go of it.
                let covered = covered_now(&sub, &asm, last_end);
                // Heartbeats vouch that nothing commits before them: they can reach `until`
                // too, when its last commit came before this run resumed.
                done = cfg.until.is_some_and(|u| covered >= u);
                flush_now = txns_in_object > 0
                    || done
                    || (last_flush.elapsed() >= cfg.flush_every * 30 && covered > state.covered);
            }
            Some(Delivery::Frame(f)) => match asm.push(f)? {
                None => {}
                Some(Unit::Loose(f)) => object.push_frame(&f),
                Some(Unit::Txn { frames, end_lsn }) => {
                    frames.iter().for_each(|f| object.push_frame(f));
                    txns_in_object += 1;
                    last_end = end_lsn;
                    let since = *oldest_unwritten.get_or_insert_with(Instant::now);
                    flush_now =
                        object.bytes() >= cfg.object_bytes || since.elapsed() >= cfg.flush_every;
                    done = cfg.until.is_some_and(|u| end_lsn >= u);
                    flush_now |= done;
                }
            },
        }
        if flush_now {
            let covered = covered_now(&sub, &asm, last_end);
            if covered > state.covered {
                let name = layout::segment_name(state.covered, covered);
                let full = std::mem::take(&mut object);
                let bytes = full.bytes();
                let (data, _) = full.seal();
                put_retrying(&dest, &name, data).await?;
                tracing::info!(object = %name, transactions = txns_in_object, bytes, "log object written");
                state.covered = covered;
                state.log_objects += 1;
                txns_in_object = 0;
                oldest_unwritten = None;
                last_flush = Instant::now();
                ack(&control, covered).await?;
            }
        }
        if done {
            sub.close().await;
            return Ok(state);
        }
    }
}

/// How far the written stream is complete: past the last transaction taken, and, when nothing
/// is in flight, as far as the relay's heartbeats vouch for.
fn covered_now(sub: &Subscription, asm: &Assembler, last_end: Lsn) -> Lsn {
    match sub.resume_lsn() {
        Some(r) if asm.is_idle() => r.max(last_end),
        _ => last_end,
    }
}

/// A crash can leave the newest log object torn (written but not synced when the power went):
/// check it, and if it is damaged, drop it so the stream resumes before it.
async fn drop_torn_tail(dest: &Destination, s: BackupState) -> Result<BackupState, BackupError> {
    let chain = log_chain(dest, s.baseline).await?;
    let Some((prev, _, name)) = chain.last() else {
        return Ok(s);
    };
    let data = dest.get(name).await?;
    match layout::read_object(name, &data) {
        Ok(_) => Ok(s),
        Err(e) => {
            tracing::warn!(object = %name, error = %e, "the newest log object is damaged; removing it and resuming before it");
            dest.delete(name).await?;
            Ok(BackupState {
                covered: *prev,
                log_objects: s.log_objects - 1,
                ..s
            })
        }
    }
}

/// Bootstraps and writes the image as baseline parts, then its manifest. Returns the
/// subscription (which goes on with the changes after the image) and the consistent point.
async fn write_baseline(
    cfg: &BackupConfig,
    dest: &Destination,
) -> Result<(Subscription, Lsn), BackupError> {
    let mut sub = Subscription::new(cfg.transport.clone(), None, cfg.tables.clone())
        .with_compression(cfg.compression)
        .with_bootstrap();
    let mut parts: Vec<(Bytes, PartEntry)> = Vec::new();
    let mut part = ObjectBuilder::new();
    let mut part_rows = 0u64;
    let (mut rows, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut shown = Instant::now();
    let seal = |part: ObjectBuilder, rows: u64, n: usize| {
        let len = part.bytes() as u64;
        let (data, sha256) = part.seal();
        let entry = PartEntry {
            name: format!("part-{n:05}.wcf"),
            bytes: len + layout::TRAILER_LEN as u64,
            sha256,
            rows,
        };
        (data, entry)
    };
    let cp = loop {
        match sub.next().await? {
            Delivery::Frame(f) => {
                if f.kind == FrameKind::Bootstrap {
                    rows += 1;
                    part_rows += 1;
                }
                bytes += f.payload.len() as u64;
                part.push_frame(&f);
                if part.bytes() >= cfg.object_bytes {
                    let n = parts.len();
                    parts.push(seal(std::mem::take(&mut part), part_rows, n));
                    part_rows = 0;
                }
                if shown.elapsed() >= Duration::from_secs(5) {
                    shown = Instant::now();
                    tracing::info!(rows, bytes, elapsed = ?started.elapsed(), "baseline: receiving the image");
                }
            }
            Delivery::Heartbeat(cp) => break cp,
            Delivery::Reset => {}
        }
    };
    if part.frames() > 0 || parts.is_empty() {
        let n = parts.len();
        parts.push(seal(part, part_rows, n));
    }
    // Parts go under the consistent point's name, which is known only now; the image is held
    // in memory until then (bounded by the published tables' size).
    let mut entries = Vec::new();
    for (data, entry) in parts {
        let name = format!("{}/{}", layout::baseline_dir(cp), entry.name);
        put_retrying(dest, &name, data).await?;
        entries.push(entry);
    }
    let manifest = Manifest {
        format: layout::MANIFEST_FORMAT.into(),
        version: layout::MANIFEST_VERSION,
        consistent_point: cp,
        rows,
        parts: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    put_retrying(dest, &layout::baseline_manifest(cp), Bytes::from(json)).await?;
    tracing::info!(consistent_point = %cp, rows, bytes, parts = manifest.parts.len(), elapsed = ?started.elapsed(), "baseline written");
    Ok((sub, cp))
}

/// Writes an object, retrying with backoff: a full disk or an unreachable bucket holds the
/// backup (and, through its ack, the relay's log), it never skips a change.
async fn put_retrying(dest: &Destination, name: &str, data: Bytes) -> Result<(), BackupError> {
    let mut backoff = Backoff::with_entropy(BackoffConfig::default());
    loop {
        match dest.put_durable(name, data.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, next_delay = ?delay, "could not write to the backup destination; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Acknowledges `lsn`. If the relay cannot be reached now, the next ack covers this one; if it
/// refuses (the consumer was removed), the backup stops: the relay no longer holds its changes.
async fn ack(control: &Subscription, lsn: Lsn) -> Result<(), BackupError> {
    match control.ack(lsn).await {
        Ok(_) => Ok(()),
        Err(ClientError::Transport(e)) if e.is_transient() => {
            tracing::warn!(error = %e, lsn = %lsn, "could not acknowledge to the relay; the next acknowledgement covers it");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
