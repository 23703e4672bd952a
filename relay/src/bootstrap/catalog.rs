//! What to copy: the publication's tables, read from pg_catalog under the imported snapshot,
//! described the way pgoutput describes them in its Relation message.

use super::pgoutput::{Column, RelationDesc};
use crate::source::SourceError;

/// Type OIDs below this are built in; pgoutput sends a Type message only for the others
/// (`FirstGenbkiObjectId`).
pub const FIRST_NON_BUILTIN_OID: u32 = 10_000;

/// One table to copy.
#[derive(Debug, Clone)]
pub struct Table {
    pub desc: RelationDesc,
    /// `relkind`: `r` plain (read with `ONLY`, children are listed on their own), `p`
    /// partitioned (read through the root, as `publish_via_partition_root` publishes it).
    pub relkind: u8,
    /// The publication's row filter (PG15+), as SQL.
    pub row_filter: Option<String>,
    /// pg_class.reltuples: the estimate behind the progress ETA (-1 when never analyzed).
    pub estimated_rows: f64,
    /// pg_class.relpages (an estimate): how to split a large table into CTID ranges.
    pub pages: i64,
}

/// A block range of a table: `ctid >= (start,0)` and, unless open-ended, `ctid < (end,0)`.
pub type BlockRange = (u32, Option<u32>);

impl Table {
    /// How to read this table in parallel: block ranges of at least `pages_per_range` pages
    /// (at most `max_ranges`), the last one open-ended because `relpages` is only an estimate.
    /// `[None]` (the whole table) for small and partitioned tables (a partitioned root has no
    /// blocks of its own).
    pub fn ranges(&self, pages_per_range: i64, max_ranges: usize) -> Vec<Option<BlockRange>> {
        let per = pages_per_range.max(1);
        if self.relkind == b'p' || self.pages < 2 * per || max_ranges < 2 {
            return vec![None];
        }
        let n = (self.pages / per).min(max_ranges as i64);
        let step = (self.pages + n - 1) / n;
        (0..n)
            .map(|i| {
                let start = (i * step).min(u32::MAX as i64) as u32;
                let end = (i + 1 < n).then(|| ((i + 1) * step).min(u32::MAX as i64) as u32);
                Some((start, end))
            })
            .collect()
    }

    /// `COPY (SELECT … ) TO STDOUT` for this table (or one block range of it): text format, the
    /// published columns in attribute order, the row filter applied (what pgoutput would
    /// publish for an insert). A CTID range is a TID range scan (PG14+): it reads only those
    /// blocks.
    pub fn copy_sql(&self, range: Option<BlockRange>) -> String {
        let cols = self
            .desc
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let only = if self.relkind == b'p' { "" } else { "ONLY " };
        let ns = if self.desc.namespace.is_empty() {
            "pg_catalog"
        } else {
            &self.desc.namespace
        };
        let mut sql = format!(
            "COPY (SELECT {cols} FROM {only}{}.{}",
            quote_ident(ns),
            quote_ident(&self.desc.name)
        );
        let mut conds = Vec::new();
        if let Some(f) = &self.row_filter {
            conds.push(format!("({f})"));
        }
        if let Some((start, end)) = range {
            conds.push(format!("ctid >= '({start},0)'::tid"));
            if let Some(end) = end {
                conds.push(format!("ctid < '({end},0)'::tid"));
            }
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(") TO STDOUT");
        sql
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The tables of `publication` and their published columns, as of the transaction's snapshot.
pub async fn published_tables(
    client: &tokio_postgres::Client,
    major: u32,
    publication: &str,
) -> Result<Vec<Table>, SourceError> {
    // Column lists and row filters exist from PG15 on.
    let (rowfilter, attnames) = if major >= 15 {
        ("pt.rowfilter", "pt.attnames::text[]")
    } else {
        ("NULL::text", "NULL::text[]")
    };
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text, c.relkind::text, \
                {rowfilter}, {attnames}, c.reltuples::float8, c.relpages::int8 \
         FROM pg_publication_tables pt \
         JOIN pg_namespace n ON n.nspname = pt.schemaname \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename \
         WHERE pt.pubname = $1 ORDER BY 2, 3"
    );
    let rows = client.query(&sql, &[&publication]).await?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let oid: u32 = row.get(0);
        let namespace: String = row.get(1);
        let replident: String = row.get(3);
        let relkind: String = row.get(4);
        let attnames: Option<Vec<String>> = row.get(6);
        let columns = client
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod, \
                        CASE c.relreplident \
                          WHEN 'f' THEN true \
                          WHEN 'n' THEN false \
                          ELSE EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
                                 AND (CASE c.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END) \
                                 AND a.attnum = ANY (i.indkey)) \
                        END \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' \
                 ORDER BY a.attnum",
                &[&oid],
            )
            .await?
            .iter()
            .map(|r| Column {
                name: r.get(0),
                type_oid: r.get(1),
                type_modifier: r.get(2),
                key: r.get(3),
            })
            .filter(|c| attnames.as_ref().map_or(true, |l| l.contains(&c.name)))
            .collect();
        tables.push(Table {
            desc: RelationDesc {
                id: oid,
                namespace: if namespace == "pg_catalog" {
                    String::new()
                } else {
                    namespace
                },
                name: row.get(2),
                replica_identity: replident.bytes().next().unwrap_or(b'd'),
                columns,
            },
            relkind: relkind.bytes().next().unwrap_or(b'r'),
            row_filter: row.get(5),
            estimated_rows: row.get(7),
            pages: row.get(8),
        });
    }
    Ok(tables)
}

/// `(oid, namespace, name)` of every non-built-in column type, as pgoutput's Type message
/// names it: a domain is sent under its own OID with its base type's namespace and name.
pub async fn user_types(
    client: &tokio_postgres::Client,
    tables: &[Table],
) -> Result<Vec<(u32, String, String)>, SourceError> {
    let mut oids: Vec<u32> = tables
        .iter()
        .flat_map(|t| t.desc.columns.iter().map(|c| c.type_oid))
        .filter(|o| *o >= FIRST_NON_BUILTIN_OID)
        .collect();
    oids.sort_unstable();
    oids.dedup();
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT t.oid, CASE WHEN bn.nspname = 'pg_catalog' THEN '' ELSE bn.nspname::text END, \
                    bt.typname::text \
             FROM pg_type t \
             JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             JOIN pg_namespace bn ON bn.oid = bt.typnamespace \
             WHERE t.oid = ANY ($1) ORDER BY 1",
            &[&oids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sql_quotes_and_filters() {
        let t = Table {
            desc: RelationDesc {
                id: 1,
                namespace: "s".into(),
                name: "We\"ird".into(),
                replica_identity: b'd',
                columns: vec![Column {
                    name: "a".into(),
                    type_oid: 23,
                    type_modifier: -1,
                    key: true,
                }],
            },
            relkind: b'r',
            row_filter: Some("(a > 1)".into()),
            estimated_rows: -1.0,
            pages: 1000,
        };
        assert_eq!(
            t.copy_sql(None),
            "COPY (SELECT \"a\" FROM ONLY \"s\".\"We\"\"ird\" WHERE ((a > 1))) TO STDOUT"
        );
        assert_eq!(
            t.copy_sql(Some((10, Some(20)))),
            "COPY (SELECT \"a\" FROM ONLY \"s\".\"We\"\"ird\" WHERE ((a > 1)) AND ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT"
        );
        // 1000 pages in ranges of at least 300: 3 ranges covering every block, the last open.
        assert_eq!(
            t.ranges(300, 8),
            vec![
                Some((0, Some(334))),
                Some((334, Some(668))),
                Some((668, None))
            ]
        );
        assert_eq!(
            t.ranges(300, 2),
            vec![Some((0, Some(500))), Some((500, None))]
        );
        assert_eq!(t.ranges(600, 8), vec![None], "small tables are read whole");
        let p = Table { relkind: b'p', ..t };
        assert_eq!(
            p.ranges(10, 8),
            vec![None],
            "partitioned roots are read whole"
        );
    }
}
