//! Which tables the publication has: a stream request naming a table outside it is a mistake (a
//! typo, the wrong relay or publication) that would otherwise stream nothing, silently and
//! forever, so it is refused with `400 unknown_table`.
//!
//! The list is read from `pg_publication_tables` when a request names a table it does not hold,
//! at most every [`REFRESH_EVERY`]: a request that misses waits for a read made after it
//! arrived, so a table added to the publication is served at once, and a flood of bad requests
//! costs PostgreSQL at most two small queries a second. When PostgreSQL cannot be asked, or the publication does not
//! exist yet (a new relay creates it), requests are let through: only what is known to be
//! missing is refused.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::source::{SourceConfig, SqlConnection};

/// `(schema, table)` of a published table.
pub type Table = (String, String);

/// The shortest time between two reads of the publication's tables.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

struct State {
    known: HashSet<Table>,
    read_at: Option<Instant>,
    conn: Option<SqlConnection>,
}

pub struct Published {
    /// `None`: no PostgreSQL to ask (unit tests); nothing is refused.
    source: Option<(SourceConfig, String)>,
    state: Mutex<State>,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            source: None,
            state: Mutex::new(State {
                known: HashSet::new(),
                read_at: None,
                conn: None,
            }),
        }
    }
}

impl Published {
    pub fn new(source: SourceConfig, publication: String) -> Published {
        Published {
            source: Some((source, publication)),
            ..Default::default()
        }
    }

    /// The requested tables that the publication does not have.
    pub async fn unknown(&self, requested: &[Table]) -> Vec<Table> {
        let Some((source, publication)) = &self.source else {
            return Vec::new();
        };
        // A list read before this request arrived may predate a table just added: wait for
        // the next read (once), without holding the lock that requests for known tables need.
        let mut waited = false;
        loop {
            let mut st = self.state.lock().await;
            if requested.iter().all(|t| st.known.contains(t)) {
                return Vec::new();
            }
            let fresh = st
                .read_at
                .map(|at| at.elapsed())
                .filter(|age| *age < REFRESH_EVERY);
            match fresh {
                Some(age) if !waited => {
                    drop(st);
                    tokio::time::sleep(REFRESH_EVERY - age).await;
                    waited = true;
                    continue;
                }
                // Another request read it meanwhile, after this one arrived.
                Some(_) => {}
                None => match read(&mut st.conn, source, publication).await {
                    Ok(Some(tables)) => {
                        st.known = tables;
                        st.read_at = Some(Instant::now());
                    }
                    // The publication does not exist yet: nothing is known to be missing.
                    Ok(None) => return Vec::new(),
                    Err(e) => {
                        tracing::debug!(error = %e, "reading the publication's tables failed; not checking table names");
                        st.conn = None;
                        return Vec::new();
                    }
                },
            }
            return missing(&st.known, requested);
        }
    }
}

fn missing(known: &HashSet<Table>, requested: &[Table]) -> Vec<Table> {
    requested
        .iter()
        .filter(|t| !known.contains(*t))
        .cloned()
        .collect()
}

/// The publication's tables (`None`: no such publication).
async fn read(
    conn: &mut Option<SqlConnection>,
    source: &SourceConfig,
    publication: &str,
) -> Result<Option<HashSet<Table>>, Box<dyn std::error::Error + Send + Sync>> {
    if conn.is_none() {
        *conn = Some(SqlConnection::connect(source).await?);
    }
    let client = &conn.as_ref().expect("connected above").client;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .await?;
    Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> Table {
        (s.into(), n.into())
    }

    #[test]
    fn only_the_missing_tables_are_named() {
        let known: HashSet<Table> = [t("public", "a"), t("public", "b")].into_iter().collect();
        let asked = [t("public", "a"), t("public", "nope"), t("other", "b")];
        assert_eq!(
            missing(&known, &asked),
            vec![t("public", "nope"), t("other", "b")]
        );
        assert!(missing(&known, &[t("public", "b")]).is_empty());
        assert!(missing(&known, &[]).is_empty());
    }

    #[tokio::test]
    async fn without_postgres_nothing_is_refused() {
        let p = Published::default();
        assert!(p.unknown(&[t("public", "nope")]).await.is_empty());
    }
}
