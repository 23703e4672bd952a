//! What can go wrong talking to PostgreSQL, and whether trying again can help.
//!
//! Every variant that an operator must act on says how to fix it. No variant ever carries the
//! connection password.

use std::fmt;

/// An `ErrorResponse` from the server, with the fields operators need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerError {
    /// `ERROR`, `FATAL`, `PANIC`.
    pub severity: String,
    /// The five-character SQLSTATE, e.g. `55000`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " (detail: {d})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl ServerError {
    /// Parses the body of an `ErrorResponse`/`NoticeResponse` (fields: type byte, C string; then 0).
    pub fn parse(mut body: &[u8]) -> ServerError {
        let mut e = ServerError::default();
        while let Some((&ty, rest)) = body.split_first() {
            if ty == 0 {
                break;
            }
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let value = String::from_utf8_lossy(&rest[..end]).into_owned();
            body = rest.get(end + 1..).unwrap_or(&[]);
            match ty {
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
        }
        e
    }
}

/// What the caller should do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAdvice {
    /// Give up and tell the operator; retrying cannot help.
    Terminal,
    /// Back off and reconnect.
    Retry,
    /// Back off and reconnect, but log loudly: an operator should look (e.g. all walsender
    /// slots are in use).
    RetryLoudly,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("configuration: {0}")]
    Config(String),

    #[error("connecting to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },

    #[error("I/O on the replication connection: {0}")]
    Io(#[from] std::io::Error),

    #[error("TLS: {0}")]
    Tls(String),

    #[error("the server does not accept TLS connections, but sslmode={0} requires TLS; use sslmode=prefer or disable, or enable ssl on the server")]
    TlsUnsupported(&'static str),

    #[error(
        "authentication failed for user {user:?}: {message}; check the password and pg_hba.conf"
    )]
    Auth { user: String, message: String },

    #[error("the server closed the replication connection")]
    Closed,

    #[error("protocol: {0}")]
    Protocol(String),

    #[error("server error: {0}")]
    Server(ServerError),

    #[error("PostgreSQL has wal_level={current}, logical replication needs logical: set wal_level=logical in postgresql.conf (managed services: rds.logical_replication=1, cloudsql.logical_decoding=on) and restart the server")]
    WalLevel { current: String },

    #[error("role {role:?} may not start replication: run ALTER ROLE {role} WITH REPLICATION (managed services: GRANT rds_replication TO {role}), and allow it in pg_hba.conf{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NoReplicationPrivilege {
        role: String,
        detail: Option<String>,
    },

    #[error("table {table} named for the publication does not exist: create it or fix --tables")]
    MissingTable { table: String },

    #[error("slot {slot} was invalidated because {reason}; it can never stream again. Drop it and resync: SELECT pg_drop_replication_slot('{slot}'); then restart walcast so it creates a new slot and re-bootstraps its consumers")]
    SlotInvalidated { slot: String, reason: String },

    #[error("slot {slot} exists but uses plugin {plugin:?} (walcast needs pgoutput) or another database ({database:?}); choose another --slot name or drop it")]
    SlotMismatch {
        slot: String,
        plugin: String,
        database: String,
    },

    #[error("slot {slot} does not exist and slot creation was not allowed; create it or allow walcast to create it")]
    SlotMissing { slot: String },

    #[error(
        "slot {slot} is in use by another process (pid {pid}); only one consumer may hold a slot"
    )]
    SlotActive { slot: String, pid: i32 },

    #[error("PostgreSQL is out of replication resources: {0}; raise max_replication_slots / max_wal_senders (restart needed) or drop unused slots")]
    ResourcesExhausted(ServerError),

    #[error("PostgreSQL {0} is too old: walcast needs 14 or newer")]
    UnsupportedVersion(u32),

    #[error("SQL connection: {0}")]
    Sql(#[source] tokio_postgres::Error),

    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl SourceError {
    pub fn retry_advice(&self) -> RetryAdvice {
        use SourceError::*;
        match self {
            Config(_) | Tls(_) | TlsUnsupported(_) | Auth { .. } | WalLevel { .. } => {
                RetryAdvice::Terminal
            }
            NoReplicationPrivilege { .. } | MissingTable { .. } | SlotInvalidated { .. } => {
                RetryAdvice::Terminal
            }
            SlotMismatch { .. } | SlotMissing { .. } | UnsupportedVersion(_) => {
                RetryAdvice::Terminal
            }
            ResourcesExhausted(_) | SlotActive { .. } => RetryAdvice::RetryLoudly,
            Server(e) => match e.code.get(..2) {
                // 42: syntax/privilege, 28: auth, 3D: no such database, 0A: feature unsupported.
                Some("42" | "28" | "3D" | "0A") => RetryAdvice::Terminal,
                _ => RetryAdvice::Retry,
            },
            Sql(e) => match e.code().map(|c| c.code()) {
                Some(c) if c.starts_with("42") || c.starts_with("28") || c.starts_with("3D") => {
                    RetryAdvice::Terminal
                }
                _ => RetryAdvice::Retry,
            },
            Connect { .. } | Io(_) | Closed | Protocol(_) | Timeout(_) => RetryAdvice::Retry,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.retry_advice() == RetryAdvice::Terminal
    }

    /// The SQLSTATE, when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            SourceError::Server(e) | SourceError::ResourcesExhausted(e) => Some(&e.code),
            SourceError::Sql(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Turns a server error into the specific variant an operator can act on.
    pub(crate) fn classify(e: ServerError, user: &str, slot: Option<&str>) -> SourceError {
        match e.code.as_str() {
            "28P01" | "28000" => SourceError::Auth {
                user: user.to_string(),
                message: e.message,
            },
            "42501" if e.message.contains("replication") || e.message.contains("permission") => {
                SourceError::NoReplicationPrivilege {
                    role: user.to_string(),
                    detail: Some(e.message),
                }
            }
            "53400" | "53300" => SourceError::ResourcesExhausted(e),
            "55000" if e.message.contains("wal_level") => SourceError::WalLevel {
                current: "not logical".into(),
            },
            "55000"
                if e.message.contains("can no longer")
                    || e.message.contains("invalidated")
                    || e.detail
                        .as_deref()
                        .is_some_and(|d| d.contains("invalidated")) =>
            {
                SourceError::SlotInvalidated {
                    slot: slot.unwrap_or("?").to_string(),
                    reason: e.detail.clone().unwrap_or(e.message),
                }
            }
            "55006" => SourceError::SlotActive {
                slot: slot.unwrap_or("?").to_string(),
                pid: pid_in(&e.message),
            },
            "42704" if slot.is_some() && e.message.contains("replication slot") => {
                SourceError::SlotMissing {
                    slot: slot.unwrap_or("?").to_string(),
                }
            }
            _ => SourceError::Server(e),
        }
    }
}

fn pid_in(msg: &str) -> i32 {
    msg.rsplit(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl From<tokio_postgres::Error> for SourceError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code().code() == "53400" || db.code().code() == "53300" => {
                SourceError::ResourcesExhausted(ServerError {
                    severity: db.severity().to_string(),
                    code: db.code().code().to_string(),
                    message: db.message().to_string(),
                    detail: db.detail().map(str::to_string),
                    hint: db.hint().map(str::to_string),
                })
            }
            Some(db) if db.code().code().starts_with("28") => SourceError::Auth {
                user: String::new(),
                message: db.message().to_string(),
            },
            _ => SourceError::Sql(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn se(code: &str, msg: &str) -> ServerError {
        ServerError {
            severity: "ERROR".into(),
            code: code.into(),
            message: msg.into(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_error_fields() {
        let body = b"SERROR\0VERROR\0C55000\0Mcan no longer get changes\0Dthis slot has been invalidated\0Hdo X\0\0";
        let e = ServerError::parse(body);
        assert_eq!(e.code, "55000");
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.detail.as_deref(), Some("this slot has been invalidated"));
        assert_eq!(e.hint.as_deref(), Some("do X"));
        // truncated input must not panic
        let e = ServerError::parse(b"C5500");
        assert_eq!(e.code, "5500");
    }

    #[test]
    fn classification_drives_retry() {
        let inv = SourceError::classify(
            se(
                "55000",
                "can no longer get changes from replication slot \"s\"",
            ),
            "u",
            Some("s"),
        );
        assert!(
            matches!(inv, SourceError::SlotInvalidated { .. }),
            "{inv:?}"
        );
        assert!(inv.is_terminal());
        assert!(inv.to_string().contains("pg_drop_replication_slot('s')"));
        let full =
            SourceError::classify(se("53400", "all replication slots are in use"), "u", None);
        assert_eq!(full.retry_advice(), RetryAdvice::RetryLoudly);
        let auth = SourceError::classify(
            se("28P01", "password authentication failed for user \"u\""),
            "u",
            None,
        );
        assert!(auth.is_terminal());
        let priv_ = SourceError::classify(
            se("42501", "permission denied to start WAL sender"),
            "u",
            None,
        );
        assert!(matches!(priv_, SourceError::NoReplicationPrivilege { .. }));
        assert!(SourceError::Closed.retry_advice() == RetryAdvice::Retry);
        let active = SourceError::classify(
            se("55006", "replication slot \"s\" is active for PID 4242"),
            "u",
            Some("s"),
        );
        assert!(
            matches!(active, SourceError::SlotActive { pid: 4242, .. }),
            "{active:?}"
        );
    }
}
