//! Preflight checks, the publication and the slot, over an ordinary tokio-postgres connection.
//!
//! Order matters: the publication is created before the slot, or the slot's decoding starts
//! without it and the first changes are lost to "publication does not exist" errors.

use std::time::Duration;

use tokio::task::JoinHandle;
use walcast_decoder::Lsn;

use super::config::{Host, SourceConfig};
use super::error::SourceError;
use super::tls;

/// An ordinary SQL connection to the same server, with the same TLS settings.
pub struct SqlConnection {
    pub client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for SqlConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SqlConnection {
    pub async fn connect(cfg: &SourceConfig) -> Result<SqlConnection, SourceError> {
        let pg = cfg.tokio_postgres_config();
        let tls_cfg = match cfg.host {
            Host::Unix(_) => None,
            Host::Tcp(_) => tls::client_config(cfg)?,
        };
        let fut = async {
            match tls_cfg {
                None => {
                    let (client, conn) = pg.connect(tokio_postgres::NoTls).await?;
                    Ok::<_, SourceError>((client, tokio::spawn(drive(conn))))
                }
                Some(c) => {
                    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*c).clone());
                    let (client, conn) = pg.connect(tls).await?;
                    Ok((client, tokio::spawn(drive(conn))))
                }
            }
        };
        let (client, task) =
            tokio::time::timeout(cfg.connect_timeout + Duration::from_secs(1), fut)
                .await
                .map_err(|_| SourceError::Timeout(cfg.connect_timeout))?
                .map_err(|e| match e {
                    SourceError::Auth { message, .. } => SourceError::Auth {
                        user: cfg.user.clone(),
                        message,
                    },
                    e => e,
                })?;
        Ok(SqlConnection { client, task })
    }
}

async fn drive<S, T>(conn: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "SQL connection ended");
    }
}

/// What preflight learned about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    pub major: u32,
    pub wal_level: String,
    pub role: String,
    pub database: String,
}

/// Checks wal_level, the REPLICATION privilege and the server version, each failing with one
/// error that says how to fix it.
pub async fn preflight(client: &tokio_postgres::Client) -> Result<ServerInfo, SourceError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4, current_setting('wal_level'), \
                    current_user::text, current_database()::text, \
                    r.rolreplication OR r.rolsuper OR EXISTS ( \
                        SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' \
                        AND pg_has_role(current_user, g.oid, 'member')) \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    let version_num: i32 = row.get(0);
    let info = ServerInfo {
        version_num: version_num as u32,
        major: version_num as u32 / 10_000,
        wal_level: row.get(1),
        role: row.get(2),
        database: row.get(3),
    };
    let can_replicate: bool = row.get(4);
    if info.major < 14 {
        return Err(SourceError::UnsupportedVersion(info.major));
    }
    if info.wal_level != "logical" {
        return Err(SourceError::WalLevel {
            current: info.wal_level,
        });
    }
    if !can_replicate {
        return Err(SourceError::NoReplicationPrivilege {
            role: info.role,
            detail: None,
        });
    }
    Ok(info)
}

/// Which tables a publication should cover when walcast has to create it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PublicationSpec {
    /// Use an existing publication; fail if it is missing.
    #[default]
    Existing,
    /// `CREATE PUBLICATION p FOR TABLE …` (names as `schema.table` or `table`).
    Tables(Vec<String>),
    /// `CREATE PUBLICATION p FOR ALL TABLES` (needs superuser).
    AllTables,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationInfo {
    pub name: String,
    /// walcast created it just now.
    pub created: bool,
    pub all_tables: bool,
    /// `schema.table` for every table it publishes now.
    pub tables: Vec<String>,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Makes sure the publication exists (creating it if `spec` says how). An existing publication
/// is left as it is; its tables are reported.
pub async fn ensure_publication(
    client: &tokio_postgres::Client,
    name: &str,
    spec: &PublicationSpec,
) -> Result<PublicationInfo, SourceError> {
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?;
    let created = match (existing, spec) {
        (Some(_), _) => false,
        (None, PublicationSpec::Existing) => {
            return Err(SourceError::Config(format!(
                "publication {name:?} does not exist: create it (CREATE PUBLICATION {} FOR TABLE …) or pass --tables / --all-tables",
                quote_ident(name)
            )))
        }
        (None, PublicationSpec::AllTables) => {
            client.batch_execute(&format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name))).await?;
            true
        }
        (None, PublicationSpec::Tables(tables)) => {
            if tables.is_empty() {
                return Err(SourceError::Config("--tables is empty".into()));
            }
            let mut resolved = Vec::with_capacity(tables.len());
            for t in tables {
                // to_regclass follows SQL identifier rules (unquoted names fold to lower case)
                // and its ::text form comes back correctly quoted.
                let r = client.query_one("SELECT to_regclass($1)::text", &[t]).await;
                let r: Option<String> = match r {
                    Ok(row) => row.get(0),
                    // 3F000 invalid schema name, 42602 invalid name: treat as missing
                    Err(e) if e.code().is_some() => None,
                    Err(e) => return Err(e.into()),
                };
                match r {
                    Some(q) => resolved.push(q),
                    None => return Err(SourceError::MissingTable { table: t.clone() }),
                }
            }
            let sql = format!("CREATE PUBLICATION {} FOR TABLE {}", quote_ident(name), resolved.join(", "));
            match client.batch_execute(&sql).await {
                Ok(()) => true,
                // lost a race with another creator: use theirs
                Err(e) if e.code().map(|c| c.code()) == Some("42710") => false,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let all_tables: bool = client
        .query_one(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?
        .get(0);
    let tables = client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>();
    if !created {
        if let PublicationSpec::Tables(wanted) = spec {
            tracing::info!(
                publication = name,
                ?wanted,
                ?tables,
                "publication exists; leaving its tables as they are"
            );
        }
    }
    Ok(PublicationInfo {
        name: name.to_string(),
        created,
        all_tables,
        tables,
    })
}

/// A row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot_name: String,
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    pub two_phase: bool,
    /// PG16+: invalidated by a recovery conflict.
    pub conflicting: Option<bool>,
    /// PG17+: why it was invalidated.
    pub invalidation_reason: Option<String>,
}

impl SlotInfo {
    /// Why this slot can no longer stream, if it can't.
    pub fn invalidation(&self) -> Option<String> {
        if let Some(r) = &self.invalidation_reason {
            return Some(format!("of {r}"));
        }
        if self.conflicting == Some(true) {
            return Some("of a conflict with recovery (rows it needed were removed)".into());
        }
        if self.wal_status.as_deref() == Some("lost") {
            return Some(
                "the WAL it needed was removed (wal_status=lost: it fell more than max_slot_wal_keep_size behind)"
                    .into(),
            );
        }
        None
    }
}

/// Reads the slot's row, if it exists.
pub async fn slot_info(
    client: &tokio_postgres::Client,
    major: u32,
    name: &str,
) -> Result<Option<SlotInfo>, SourceError> {
    let conflicting = if major >= 16 {
        "conflicting"
    } else {
        "NULL::bool"
    };
    let reason = if major >= 17 {
        "invalidation_reason"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT slot_name::text, plugin::text, slot_type, database::text, active, active_pid, \
                restart_lsn::text, confirmed_flush_lsn::text, wal_status, two_phase, {conflicting}, {reason} \
         FROM pg_replication_slots WHERE slot_name = $1"
    );
    let Some(row) = client.query_opt(&sql, &[&name]).await? else {
        return Ok(None);
    };
    let lsn = |i: usize| {
        row.get::<_, Option<String>>(i)
            .and_then(|s| s.parse::<Lsn>().ok())
    };
    Ok(Some(SlotInfo {
        slot_name: row.get(0),
        plugin: row.get(1),
        slot_type: row.get(2),
        database: row.get(3),
        active: row.get(4),
        active_pid: row.get(5),
        restart_lsn: lsn(6),
        confirmed_flush_lsn: lsn(7),
        wal_status: row.get(8),
        two_phase: row.get(9),
        conflicting: row.get(10),
        invalidation_reason: row.get(11),
    }))
}

/// Rejects a slot walcast cannot use: wrong plugin/database, invalidated, or held by another
/// process.
pub fn check_slot(info: &SlotInfo, database: &str) -> Result<(), SourceError> {
    if info.slot_type != "logical"
        || info.plugin.as_deref() != Some("pgoutput")
        || info.database.as_deref() != Some(database)
    {
        return Err(SourceError::SlotMismatch {
            slot: info.slot_name.clone(),
            plugin: info
                .plugin
                .clone()
                .unwrap_or_else(|| info.slot_type.clone()),
            database: info.database.clone().unwrap_or_default(),
        });
    }
    if let Some(reason) = info.invalidation() {
        return Err(SourceError::SlotInvalidated {
            slot: info.slot_name.clone(),
            reason,
        });
    }
    if info.active {
        return Err(SourceError::SlotActive {
            slot: info.slot_name.clone(),
            pid: info.active_pid.unwrap_or(0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> SlotInfo {
        SlotInfo {
            slot_name: "s".into(),
            plugin: Some("pgoutput".into()),
            slot_type: "logical".into(),
            database: Some("db".into()),
            active: false,
            active_pid: None,
            restart_lsn: Some(Lsn(1)),
            confirmed_flush_lsn: Some(Lsn(2)),
            wal_status: Some("reserved".into()),
            two_phase: false,
            conflicting: None,
            invalidation_reason: None,
        }
    }

    #[test]
    fn slot_checks() {
        assert!(check_slot(&slot(), "db").is_ok());
        assert!(matches!(
            check_slot(&slot(), "other"),
            Err(SourceError::SlotMismatch { .. })
        ));
        let mut s = slot();
        s.plugin = Some("wal2json".into());
        assert!(check_slot(&s, "db").unwrap_err().is_terminal());
        let mut s = slot();
        s.wal_status = Some("lost".into());
        let e = check_slot(&s, "db").unwrap_err();
        assert!(
            matches!(e, SourceError::SlotInvalidated { .. }) && e.is_terminal(),
            "{e}"
        );
        assert!(e.to_string().contains("max_slot_wal_keep_size"));
        let mut s = slot();
        s.invalidation_reason = Some("idle_timeout".into());
        assert!(check_slot(&s, "db")
            .unwrap_err()
            .to_string()
            .contains("idle_timeout"));
        let mut s = slot();
        s.active = true;
        s.active_pid = Some(9);
        assert!(!check_slot(&s, "db").unwrap_err().is_terminal());
    }
}
