//! One bootstrap job: copy every published table under one exported snapshot into an image file.
//!
//! PostgreSQL's own tablesync method: a temporary slot created with `SNAPSHOT 'export'` (PG15+;
//! `EXPORT_SNAPSHOT` on PG14) gives a consistent point and a snapshot; ordinary connections
//! import the snapshot (`SET TRANSACTION SNAPSHOT`) before the replication connection issues
//! another command, then the slot is dropped and the tables are copied (`COPY`, which takes
//! only ACCESS SHARE locks). See `docs/bootstrap.md` for why the image plus the stream from the
//! consistent point is gap-free and duplicate-free.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use walcast_decoder::frame::{self, FrameKind};
use walcast_decoder::Lsn;

use super::catalog::{self, BlockRange, Table};
use super::pgoutput::{self, CopyRowError};
use super::BootstrapError;
use crate::metrics::Metrics;
use crate::source::{CreateSlotOptions, ReplicationConnection, SourceConfig, SqlConnection};

/// Rows are handed from the copying connections to the file writer in batches of about this
/// many bytes of encoded frames.
const BATCH_BYTES: usize = 256 * 1024;

/// Tables larger than twice this many pages (8 KiB each) are read in CTID ranges, so that
/// the copying connections share a large table.
const PAGES_PER_RANGE: i64 = 128;
/// At most this many ranges per table.
const MAX_RANGES: usize = 16;

/// The pieces still to copy: a table, or one block range of it.
type WorkQueue = VecDeque<(Table, Option<BlockRange>)>;

/// How often a running job logs its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a finished job wrote.
#[derive(Debug, Clone)]
pub struct Built {
    pub consistent_point: Lsn,
    pub tables: usize,
    pub rows: u64,
    /// Size of the image file.
    pub bytes: u64,
}

/// Where a job reads from and what it may use.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub source: SourceConfig,
    pub publication: String,
    /// Ordinary connections importing the snapshot; tables are spread over them.
    pub parallel: usize,
    /// New clients get an image at most this old; after that a new job builds a fresh one.
    pub max_age: Duration,
}

/// Creates a temporary slot with an exported snapshot, imports the snapshot, drops the slot and
/// copies the tables into `path`.
pub async fn run(
    cfg: &JobConfig,
    slot_name: &str,
    path: &Path,
    metrics: &Metrics,
) -> Result<Built, BootstrapError> {
    let mut repl = ReplicationConnection::connect(&cfg.source).await?;
    let created = repl
        .create_slot(
            slot_name,
            CreateSlotOptions {
                temporary: true,
                two_phase: false,
                export_snapshot: true,
            },
        )
        .await?;
    let snapshot = created
        .snapshot_name
        .ok_or_else(|| BootstrapError::Snapshot("the server exported no snapshot".into()))?;
    tracing::info!(slot = slot_name, consistent_point = %created.consistent_point, %snapshot, "bootstrap: temporary slot created");
    // The snapshot lives until the replication connection's next command: import it first.
    let conns = import(&cfg.source, &snapshot, cfg.parallel).await;
    // The imports hold their own snapshot now; the temporary slot has done its job (and would
    // otherwise hold WAL and catalog rows back while the copy runs).
    if let Err(e) = repl.drop_slot(slot_name, false).await {
        tracing::warn!(error = %e, slot = slot_name, "bootstrap: dropping the temporary slot failed; it goes when the connection closes");
    }
    let _ = repl.close().await;
    copy(cfg, conns?, created.consistent_point, path, metrics).await
}

/// Opens `n` connections, each in a REPEATABLE READ transaction on `snapshot`.
pub async fn import(
    source: &SourceConfig,
    snapshot: &str,
    n: usize,
) -> Result<Vec<SqlConnection>, BootstrapError> {
    if snapshot.is_empty() || !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(BootstrapError::Snapshot(format!(
            "unexpected snapshot name {snapshot:?}"
        )));
    }
    let sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
    );
    let opened = futures_util::future::join_all((0..n.max(1)).map(|_| async {
        let c = SqlConnection::connect(source).await?;
        c.client.batch_execute(&sql).await?;
        Ok::<_, BootstrapError>(c)
    }))
    .await;
    opened.into_iter().collect()
}

/// Copies the publication's tables over `conns` (each already on the snapshot) into `path`:
/// Type and Relation messages as `'p'` frames, one `'b'` frame per row, then a `'k'` at the
/// consistent point. Written to a temporary name, fsynced, then renamed.
pub async fn copy(
    cfg: &JobConfig,
    conns: Vec<SqlConnection>,
    consistent_point: Lsn,
    path: &Path,
    metrics: &Metrics,
) -> Result<Built, BootstrapError> {
    let first = conns
        .first()
        .ok_or_else(|| BootstrapError::Snapshot("no connection holds the snapshot".into()))?;
    let major: i32 = first
        .client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    let tables =
        catalog::published_tables(&first.client, major as u32 / 10_000, &cfg.publication).await?;
    let types = catalog::user_types(&first.client, &tables).await?;
    let tmp = path.with_extension("tmp");
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| BootstrapError::io(&tmp, e))?,
    );
    let mut head = Vec::new();
    frame::encode_header(&mut head);
    for (oid, ns, name) in &types {
        let msg = pgoutput::type_message(*oid, ns, name);
        frame::encode_frame(FrameKind::Prelude, consistent_point, &msg, &mut head);
    }
    for t in &tables {
        let msg = pgoutput::relation_message(&t.desc);
        frame::encode_frame(FrameKind::Prelude, consistent_point, &msg, &mut head);
    }
    file.write_all(&head)
        .await
        .map_err(|e| BootstrapError::io(&tmp, e))?;
    let mut bytes = head.len() as u64;

    let estimated: f64 = tables.iter().map(|t| t.estimated_rows.max(0.0)).sum();
    let rows = Arc::new(AtomicU64::new(0));
    let work: WorkQueue = tables
        .iter()
        .flat_map(|t| {
            t.ranges(PAGES_PER_RANGE, MAX_RANGES)
                .into_iter()
                .map(move |r| (t.clone(), r))
        })
        .collect();
    tracing::info!(consistent_point = %consistent_point, tables = tables.len(), pieces = work.len(),
        estimated_rows = estimated as u64, connections = conns.len(), "bootstrap: copying");
    let queue = Arc::new(Mutex::new(work));
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let mut workers = Vec::new();
    for conn in conns {
        let (queue, tx, rows) = (queue.clone(), tx.clone(), rows.clone());
        workers.push(tokio::spawn(async move {
            worker(conn, queue, tx, consistent_point, &rows).await
        }));
    }
    drop(tx);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut counted = 0u64;
    while let Some(batch) = rx.recv().await {
        let now_rows = rows.load(Relaxed);
        metrics
            .bootstrap_rows
            .fetch_add(now_rows.saturating_sub(counted), Relaxed);
        counted = counted.max(now_rows);
        file.write_all(&batch)
            .await
            .map_err(|e| BootstrapError::io(&tmp, e))?;
        bytes += batch.len() as u64;
        metrics
            .bootstrap_bytes
            .fetch_add(batch.len() as u64, Relaxed);
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            report(&rows, bytes, estimated, started, consistent_point);
        }
    }
    for w in workers {
        w.await
            .map_err(|e| BootstrapError::Snapshot(format!("copy task failed: {e}")))??;
    }
    let mut tail = Vec::new();
    frame::encode_frame(FrameKind::Heartbeat, consistent_point, &[], &mut tail);
    file.write_all(&tail)
        .await
        .map_err(|e| BootstrapError::io(&tmp, e))?;
    bytes += tail.len() as u64;
    file.flush()
        .await
        .map_err(|e| BootstrapError::io(&tmp, e))?;
    let file = file.into_inner();
    file.sync_all()
        .await
        .map_err(|e| BootstrapError::io(&tmp, e))?;
    drop(file);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| BootstrapError::io(path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let rows = rows.load(Relaxed);
    metrics
        .bootstrap_rows
        .fetch_add(rows.saturating_sub(counted), Relaxed);
    tracing::info!(consistent_point = %consistent_point, tables = tables.len(), rows, bytes,
        elapsed = ?started.elapsed(), "bootstrap image written");
    Ok(Built {
        consistent_point,
        tables: tables.len(),
        rows,
        bytes,
    })
}

fn report(rows: &AtomicU64, bytes: u64, estimated: f64, started: Instant, cp: Lsn) {
    let done = rows.load(Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let eta = (estimated > done as f64 && rate > 0.0)
        .then(|| Duration::from_secs_f64((estimated - done as f64) / rate));
    tracing::info!(consistent_point = %cp, rows = done, bytes, estimated_rows = estimated as u64,
        rows_per_sec = rate as u64, eta = ?eta, "bootstrap in progress");
}

/// Copies tables from the queue until it is empty, sending encoded frames in batches.
async fn worker(
    conn: SqlConnection,
    queue: Arc<Mutex<WorkQueue>>,
    tx: mpsc::Sender<Vec<u8>>,
    cp: Lsn,
    rows: &AtomicU64,
) -> Result<(), BootstrapError> {
    loop {
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some((table, range)) = next else {
            break;
        };
        copy_table(&conn, &table, range, &tx, cp, rows).await?;
    }
    // End the snapshot transaction; the connection closes when dropped.
    let _ = conn.client.batch_execute("COMMIT").await;
    Ok(())
}

async fn copy_table(
    conn: &SqlConnection,
    table: &Table,
    range: Option<BlockRange>,
    tx: &mpsc::Sender<Vec<u8>>,
    cp: Lsn,
    rows: &AtomicU64,
) -> Result<(), BootstrapError> {
    let sql = table.copy_sql(range);
    let stream = conn.client.copy_out(sql.as_str()).await?;
    futures_util::pin_mut!(stream);
    let ncols = table.desc.columns.len();
    let id = table.desc.id;
    let row_err = |error: CopyRowError| BootstrapError::Row {
        table: format!("{}.{}", table.desc.namespace, table.desc.name),
        error,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut msg = Vec::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(p) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + p];
            msg.clear();
            pgoutput::insert_from_copy_line(id, ncols, line, &mut msg).map_err(row_err)?;
            frame::encode_frame(FrameKind::Bootstrap, cp, &msg, &mut batch);
            n += 1;
            start += p + 1;
        }
        pending.drain(..start);
        if batch.len() >= BATCH_BYTES {
            rows.fetch_add(n, Relaxed);
            n = 0;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                return Err(BootstrapError::Snapshot("the image writer stopped".into()));
            }
        }
    }
    if !pending.is_empty() {
        // COPY ends every row with a newline; a rest is a truncated stream.
        return Err(row_err(CopyRowError::Escape));
    }
    rows.fetch_add(n, Relaxed);
    if !batch.is_empty() && tx.send(batch).await.is_err() {
        return Err(BootstrapError::Snapshot("the image writer stopped".into()));
    }
    Ok(())
}

/// The image file name for a consistent point.
pub fn image_path(dir: &Path, cp: Lsn) -> PathBuf {
    dir.join(format!("image-{:016x}.wcb", cp.0))
}
