//! `walcast restore`: rebuilds a backup's tables into an empty database, as they stood at a
//! chosen LSN: the newest baseline at or before it (COPY), then every logged transaction
//! whose commit ends at or before it, in commit order, each replayed whole.
//!
//! Every object's checksum is verified before its bytes are used, the log must continue the
//! baseline without a gap, and every replayed Update and Delete must hit exactly one row: a
//! backup that does not add up fails loudly instead of restoring something else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use walcast_decoder::decoder::streamed::StreamedTransactions;
use walcast_decoder::frame::FrameKind;
use walcast_decoder::pgoutput::{self, Message};
use walcast_decoder::{Decoder, Event, Lsn, RelationInfo};

use super::layout::{self, Manifest};
use super::sql::{self, Rel, Val};
use super::store::{Destination, StoreError};
use super::writer::{complete_baselines, log_chain, BackupError};
use crate::client::OwnedFrame;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
    #[error("no complete baseline{}", match .until { Some(u) => format!(" at or before {u}"), None => String::new() })]
    NoBaseline { until: Option<Lsn> },
    #[error("the backup reaches {covered}; it cannot restore to {until}")]
    NotCovered { until: Lsn, covered: Lsn },
    #[error("{name}: {why}")]
    Invalid { name: String, why: String },
    #[error("table {table} already exists: restore writes into an empty database")]
    TableExists { table: String },
    #[error("replaying the transaction ending at {end_lsn} ({what}): {source}")]
    Apply {
        end_lsn: Lsn,
        what: String,
        source: tokio_postgres::Error,
    },
    #[error("replaying the transaction ending at {end_lsn}: {what} matched {rows} rows, not 1: the target does not hold what the backup says")]
    Mismatch {
        end_lsn: Lsn,
        what: String,
        rows: u64,
    },
    #[error("{what}: {source}")]
    Pg {
        what: String,
        source: tokio_postgres::Error,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreSummary {
    pub baseline: Lsn,
    /// The target holds every transaction ending at or before this, and none after.
    pub restored_to: Lsn,
    pub baseline_rows: u64,
    pub transactions: u64,
    pub changes: u64,
    pub tables: Vec<String>,
}

#[derive(Debug)]
enum Change {
    Insert(Rel, Vec<Val>),
    Update(Rel, Option<Vec<Val>>, Vec<Val>),
    Delete(Rel, Vec<Val>),
    Truncate(Vec<Rel>),
}

pub async fn restore(
    dest: &Destination,
    client: &mut tokio_postgres::Client,
    until: Option<Lsn>,
) -> Result<RestoreSummary, RestoreError> {
    let cp = complete_baselines(dest)
        .await?
        .into_iter()
        .rfind(|cp| until.map_or(true, |u| *cp <= u))
        .ok_or(RestoreError::NoBaseline { until })?;
    let chain = log_chain(dest, cp).await?;
    let covered = chain.last().map_or(cp, |(_, last, _)| *last);
    if let Some(u) = until.filter(|u| *u > covered) {
        return Err(RestoreError::NotCovered { until: u, covered });
    }
    let until = until.unwrap_or(covered);
    let mut r = Replayer::new(client, until);
    r.baseline(dest, cp).await?;
    r.summary.restored_to = cp;
    for (prev, _, name) in &chain {
        if *prev >= until {
            break;
        }
        let data = dest.get(name).await?;
        let frames = layout::read_object(name, &data)?;
        if !r.log_object(name, frames).await? {
            break;
        }
    }
    r.flush_batch().await?;
    tracing::info!(restored_to = %r.summary.restored_to, transactions = r.summary.transactions, changes = r.summary.changes, "restore complete");
    Ok(r.summary)
}

struct Replayer<'c> {
    client: &'c mut tokio_postgres::Client,
    until: Lsn,
    decoder: Decoder,
    /// Target SQL type of each column, per relation id, for the relation as last created.
    tables: HashMap<u32, (Rel, Vec<String>)>,
    statements: HashMap<String, tokio_postgres::Statement>,
    streamed: StreamedTransactions<Change>,
    open: Option<Vec<Change>>,
    /// Transactions applied in the open database transaction.
    in_batch: usize,
    summary: RestoreSummary,
    shown: Instant,
}

/// Transactions replayed per database transaction: few commits, bounded work lost on error.
const BATCH: usize = 500;

impl<'c> Replayer<'c> {
    fn new(client: &'c mut tokio_postgres::Client, until: Lsn) -> Self {
        Replayer {
            client,
            until,
            decoder: Decoder::new(),
            tables: HashMap::new(),
            statements: HashMap::new(),
            streamed: StreamedTransactions::new(),
            open: None,
            in_batch: 0,
            summary: RestoreSummary {
                baseline: Lsn::ZERO,
                restored_to: Lsn::ZERO,
                baseline_rows: 0,
                transactions: 0,
                changes: 0,
                tables: Vec::new(),
            },
            shown: Instant::now(),
        }
    }

    async fn baseline(&mut self, dest: &Destination, cp: Lsn) -> Result<(), RestoreError> {
        let name = layout::baseline_manifest(cp);
        let manifest: Manifest =
            serde_json::from_slice(&dest.get(&name).await?).map_err(|e| RestoreError::Invalid {
                name: name.clone(),
                why: e.to_string(),
            })?;
        if manifest.format != layout::MANIFEST_FORMAT
            || manifest.version != layout::MANIFEST_VERSION
        {
            return Err(RestoreError::Invalid {
                name,
                why: format!(
                    "format {} version {}: this walcast reads {} version {}",
                    manifest.format,
                    manifest.version,
                    layout::MANIFEST_FORMAT,
                    layout::MANIFEST_VERSION
                ),
            });
        }
        self.summary.baseline = cp;
        tracing::info!(consistent_point = %cp, rows = manifest.rows, parts = manifest.parts.len(), "restoring the baseline");
        self.begin().await?;
        // Rows of one table arrive together; COPY them in runs.
        let mut run: Option<(Rel, Vec<u8>)> = None;
        for part in &manifest.parts {
            let name = format!("{}/{}", layout::baseline_dir(cp), part.name);
            let data = dest.get(&name).await?;
            let body = layout::verified_body(&name, &data)?;
            if hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
                <sha2::Sha256 as sha2::Digest>::new(),
                body,
            ))) != part.sha256
            {
                return Err(RestoreError::Invalid {
                    name,
                    why: "checksum differs from the manifest's".into(),
                });
            }
            for f in layout::read_object(&name, &data)? {
                let payload = f.payload.clone();
                let ev = self.decode(&name, &f)?;
                match (f.kind, ev) {
                    (FrameKind::Bootstrap, Some(Event::Insert(c))) => {
                        let Message::Insert(i) = pgoutput::parse(&payload, false).map_err(|e| {
                            RestoreError::Invalid {
                                name: name.clone(),
                                why: e.to_string(),
                            }
                        })?
                        else {
                            continue;
                        };
                        let rel = self.table(&c.relation).await?;
                        let vals = sql::vals(&rel, i.new)?;
                        if run.as_ref().is_some_and(|(r, _)| r.id != rel.id) {
                            let (r, buf) = run.take().expect("checked");
                            self.copy(&r, buf).await?;
                        }
                        let (_, buf) = run.get_or_insert_with(|| (rel, Vec::new()));
                        sql::copy_row(buf, &vals);
                        self.summary.baseline_rows += 1;
                        if buf.len() >= 4 << 20 {
                            let (r, buf) = run.take().expect("just filled");
                            self.copy(&r, buf).await?;
                        }
                    }
                    (_, Some(Event::Relation(r))) => {
                        self.table(&r.relation).await?;
                    }
                    _ => {}
                }
            }
        }
        if let Some((r, buf)) = run.take() {
            self.copy(&r, buf).await?;
        }
        if self.summary.baseline_rows != manifest.rows {
            return Err(RestoreError::Invalid {
                name: layout::baseline_manifest(cp),
                why: format!(
                    "the manifest counts {} rows, the parts hold {}",
                    manifest.rows, self.summary.baseline_rows
                ),
            });
        }
        self.commit().await?;
        Ok(())
    }

    /// Replays one log object; false once a transaction past `until` is reached.
    async fn log_object(
        &mut self,
        name: &str,
        frames: Vec<OwnedFrame>,
    ) -> Result<bool, RestoreError> {
        for f in frames {
            let in_stream = self.decoder.stream_xid();
            let payload = f.payload.clone();
            let Some(ev) = self.decode(name, &f)? else {
                continue;
            };
            let raw = || {
                pgoutput::parse(&payload, in_stream.is_some()).map_err(|e| RestoreError::Invalid {
                    name: name.to_string(),
                    why: e.to_string(),
                })
            };
            let change = match (&ev, raw()?) {
                (Event::Insert(c), Message::Insert(m)) => {
                    let rel = self.table(&c.relation).await?;
                    let new = sql::vals(&rel, m.new)?;
                    Some((c.xid, Change::Insert(rel, new)))
                }
                (Event::Update(c), Message::Update(m)) => {
                    let rel = self.table(&c.relation).await?;
                    let old = m.old.map(|o| sql::vals(&rel, o.tuple())).transpose()?;
                    let new = sql::vals(&rel, m.new)?;
                    Some((c.xid, Change::Update(rel, old, new)))
                }
                (Event::Delete(c), Message::Delete(m)) => {
                    let rel = self.table(&c.relation).await?;
                    let old = sql::vals(&rel, m.old.tuple())?;
                    Some((c.xid, Change::Delete(rel, old)))
                }
                (Event::Truncate(t), _) => {
                    let mut rels = Vec::new();
                    for r in &t.relations {
                        rels.push(self.table(r).await?);
                    }
                    Some((t.xid, Change::Truncate(rels)))
                }
                _ => None,
            };
            if let Some((xid, change)) = change {
                match (in_stream, &mut self.open) {
                    (Some(top), _) => self.streamed.push(top, xid.unwrap_or(top), change),
                    (None, Some(open)) => open.push(change),
                    (None, None) => {
                        return Err(RestoreError::Invalid {
                            name: name.into(),
                            why: format!("a change at {} outside any transaction", f.lsn),
                        })
                    }
                }
                continue;
            }
            match ev {
                Event::Begin(_) => self.open = Some(Vec::new()),
                Event::Commit(c) => {
                    let changes = self.open.take().unwrap_or_default();
                    if !self.apply(c.end_lsn, changes).await? {
                        return Ok(false);
                    }
                }
                Event::StreamAbort(a) => {
                    self.streamed.abort(&a);
                }
                Event::StreamCommit(c) => {
                    let changes = self.streamed.commit(c.xid);
                    if !self.apply(c.end_lsn, changes).await? {
                        return Ok(false);
                    }
                }
                _ => {}
            }
        }
        Ok(true)
    }

    fn decode<'f>(
        &mut self,
        name: &str,
        f: &'f OwnedFrame,
    ) -> Result<Option<Event<'f>>, RestoreError> {
        if !matches!(
            f.kind,
            FrameKind::Wal | FrameKind::Prelude | FrameKind::Bootstrap
        ) {
            return Ok(None);
        }
        self.decoder
            .decode(&f.payload)
            .map(Some)
            .map_err(|e| RestoreError::Invalid {
                name: name.into(),
                why: format!("the message at {}: {e}", f.lsn),
            })
    }

    /// The relation as created in the target: created now if new, altered if its columns changed.
    async fn table(&mut self, rel: &Arc<RelationInfo>) -> Result<Rel, RestoreError> {
        if let Some((known, _)) = self.tables.get(&rel.id) {
            if known.columns == rel.columns
                && known.schema == rel.schema
                && known.table == rel.table
            {
                return Ok(known.clone());
            }
        }
        let mut types = Vec::new();
        for c in &rel.columns {
            types.push(self.type_name(c).await?);
        }
        let name = sql::qualified(rel);
        match self.tables.get(&rel.id).cloned() {
            None => {
                let exists = self
                    .client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                    .await
                    .map_err(|source| RestoreError::Pg {
                        what: format!("looking for {name}"),
                        source,
                    })?
                    .get::<_, bool>(0);
                if exists {
                    return Err(RestoreError::TableExists { table: name });
                }
                let ddl = format!(
                    "CREATE SCHEMA IF NOT EXISTS {}; {}",
                    sql::ident(&rel.schema),
                    sql::create_table(rel, &types)
                );
                self.ddl(&ddl).await?;
                tracing::info!(table = %name, "created");
                self.summary
                    .tables
                    .push(format!("{}.{}", rel.schema, rel.table));
            }
            Some((old, _)) => {
                // The table changed on the source (ALTER TABLE): follow it.
                let mut stmts = Vec::new();
                for c in &old.columns {
                    if rel.column_index(&c.name).is_none() {
                        stmts.push(format!(
                            "ALTER TABLE {name} DROP COLUMN {}",
                            sql::ident(&c.name)
                        ));
                    }
                }
                for (c, t) in rel.columns.iter().zip(&types) {
                    match old.columns.iter().find(|o| o.name == c.name) {
                        None => stmts.push(format!(
                            "ALTER TABLE {name} ADD COLUMN {} {t}",
                            sql::ident(&c.name)
                        )),
                        Some(o)
                            if (o.type_oid, o.type_modifier) != (c.type_oid, c.type_modifier) =>
                        {
                            let col = sql::ident(&c.name);
                            stmts.push(format!("ALTER TABLE {name} ALTER COLUMN {col} TYPE {t} USING {col}::text::{t}"))
                        }
                        Some(_) => {}
                    }
                }
                if !stmts.is_empty() {
                    self.ddl(&stmts.join("; ")).await?;
                    tracing::info!(table = %name, "columns changed on the source; altered");
                }
            }
        }
        self.statements.clear();
        self.tables.insert(rel.id, (rel.clone(), types));
        Ok(rel.clone())
    }

    /// A column's type as the target spells it: built-in types by OID (`format_type`), user
    /// types (enums, domains, composites) by the name PostgreSQL sent; they must exist already.
    async fn type_name(&mut self, c: &walcast_decoder::ColumnInfo) -> Result<String, RestoreError> {
        const FIRST_NORMAL_OBJECT_ID: u32 = 16384;
        if let (Some(name), true) = (&c.type_name, c.type_oid >= FIRST_NORMAL_OBJECT_ID) {
            let quoted: Vec<String> = name.split('.').map(sql::ident).collect();
            return Ok(quoted.join("."));
        }
        let row = self
            .client
            .query_one(
                "SELECT format_type($1::oid, $2)",
                &[&c.type_oid, &c.type_modifier],
            )
            .await
            .map_err(|source| RestoreError::Pg {
                what: format!("naming the type of column {}", c.name),
                source,
            })?;
        Ok(row.get(0))
    }

    async fn ddl(&mut self, sql: &str) -> Result<(), RestoreError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|source| RestoreError::Pg {
                what: sql.to_string(),
                source,
            })
    }

    async fn copy(&mut self, rel: &Rel, buf: Vec<u8>) -> Result<(), RestoreError> {
        let what = || format!("copying rows into {}", sql::qualified(rel));
        let sink = self
            .client
            .copy_in(&sql::copy_in(rel))
            .await
            .map_err(|source| RestoreError::Pg {
                what: what(),
                source,
            })?;
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(buf))
            .await
            .map_err(|source| RestoreError::Pg {
                what: what(),
                source,
            })?;
        sink.finish().await.map_err(|source| RestoreError::Pg {
            what: what(),
            source,
        })?;
        Ok(())
    }

    /// Replays one committed transaction; false (and nothing applied) when it ends past `until`.
    async fn apply(&mut self, end_lsn: Lsn, changes: Vec<Change>) -> Result<bool, RestoreError> {
        if end_lsn > self.until {
            return Ok(false);
        }
        if end_lsn <= self.summary.restored_to {
            // Already in the baseline (or a repeat): the log may start before the image's end.
            return Ok(true);
        }
        if self.in_batch == 0 {
            self.begin().await?;
        }
        for change in changes {
            let (stmt, must_hit_one, what) = match &change {
                Change::Insert(rel, new) => {
                    let t = &self.tables[&rel.id].1;
                    (
                        sql::insert(rel, t, new),
                        false,
                        format!("insert into {}", sql::qualified(rel)),
                    )
                }
                Change::Update(rel, old, new) => {
                    let t = &self.tables[&rel.id].1;
                    let s = sql::update(rel, t, old.as_deref(), new)?;
                    (s, true, format!("update of {}", sql::qualified(rel)))
                }
                Change::Delete(rel, old) => {
                    let t = &self.tables[&rel.id].1;
                    (
                        sql::delete(rel, t, old)?,
                        true,
                        format!("delete from {}", sql::qualified(rel)),
                    )
                }
                Change::Truncate(rels) => {
                    let names: Vec<String> = rels.iter().map(|r| sql::qualified(r)).collect();
                    let s = format!("TRUNCATE {}", names.join(", "));
                    self.client
                        .batch_execute(&s)
                        .await
                        .map_err(|source| RestoreError::Apply {
                            end_lsn,
                            what: s.clone(),
                            source,
                        })?;
                    self.summary.changes += 1;
                    continue;
                }
            };
            let statement =
                match self.statements.get(&stmt.sql) {
                    Some(s) => s.clone(),
                    None => {
                        let types = vec![tokio_postgres::types::Type::TEXT; stmt.params.len()];
                        let s = self.client.prepare_typed(&stmt.sql, &types).await.map_err(
                            |source| RestoreError::Apply {
                                end_lsn,
                                what: stmt.sql.clone(),
                                source,
                            },
                        )?;
                        self.statements.insert(stmt.sql.clone(), s.clone());
                        s
                    }
                };
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = stmt
                .params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let rows = self
                .client
                .execute(&statement, &params)
                .await
                .map_err(|source| RestoreError::Apply {
                    end_lsn,
                    what: what.clone(),
                    source,
                })?;
            if must_hit_one && rows != 1 {
                return Err(RestoreError::Mismatch {
                    end_lsn,
                    what,
                    rows,
                });
            }
            self.summary.changes += 1;
        }
        self.summary.transactions += 1;
        self.summary.restored_to = end_lsn;
        self.in_batch += 1;
        if self.in_batch >= BATCH {
            self.flush_batch().await?;
        }
        if self.shown.elapsed() >= Duration::from_secs(5) {
            self.shown = Instant::now();
            tracing::info!(at = %end_lsn, transactions = self.summary.transactions, changes = self.summary.changes, "replaying the log");
        }
        Ok(true)
    }

    async fn begin(&mut self) -> Result<(), RestoreError> {
        self.ddl("BEGIN").await
    }

    async fn commit(&mut self) -> Result<(), RestoreError> {
        self.ddl("COMMIT").await
    }

    async fn flush_batch(&mut self) -> Result<(), RestoreError> {
        if self.in_batch > 0 {
            self.commit().await?;
            self.in_batch = 0;
        }
        Ok(())
    }
}
