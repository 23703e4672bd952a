//! SQL that replays pgoutput changes into a database: pure text building, so every shape is
//! unit-tested without a server. Values travel as text parameters cast to the column's type
//! (`$1::text::numeric(10,2)`): pgoutput sends each value in its type's text output form,
//! which is exactly what the type's input function reads back.

use std::sync::Arc;

use walcast_decoder::pgoutput::{Column, TupleData};
use walcast_decoder::{RelationInfo, ReplicaIdentity};

/// One column value of a replayed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    /// An unchanged TOASTed value (not sent): the stored value stands.
    Unchanged,
    Text(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{table}: a column value was sent in binary; restore reads text values only (run the relay without binary mode)")]
    Binary { table: String },
    #[error("{table}: not valid UTF-8 text")]
    NotUtf8 { table: String },
    #[error(
        "{table}: has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be replayed"
    )]
    NoIdentity { table: String },
    #[error("{table}: the message has {got} columns, the relation {want}")]
    Columns {
        table: String,
        got: usize,
        want: usize,
    },
}

pub fn vals(rel: &RelationInfo, t: TupleData<'_>) -> Result<Vec<Val>, SqlError> {
    if t.len() != rel.columns.len() {
        return Err(SqlError::Columns {
            table: qualified(rel),
            got: t.len(),
            want: rel.columns.len(),
        });
    }
    t.columns()
        .map(|c| match c {
            Column::Null => Ok(Val::Null),
            Column::UnchangedToast => Ok(Val::Unchanged),
            Column::Text(b) => {
                String::from_utf8(b.to_vec())
                    .map(Val::Text)
                    .map_err(|_| SqlError::NotUtf8 {
                        table: qualified(rel),
                    })
            }
            Column::Binary(_) => Err(SqlError::Binary {
                table: qualified(rel),
            }),
        })
        .collect()
}

pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn qualified(rel: &RelationInfo) -> String {
    format!("{}.{}", ident(&rel.schema), ident(&rel.table))
}

/// A statement and the values for its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Option<String>>,
}

/// `types[i]` is column i's SQL type as the target spells it.
pub fn insert(rel: &RelationInfo, types: &[String], new: &[Val]) -> Stmt {
    let mut cols = Vec::new();
    let mut exprs = Vec::new();
    let mut params = Vec::new();
    for (i, v) in new.iter().enumerate() {
        let p = match v {
            Val::Unchanged => continue,
            Val::Null => None,
            Val::Text(s) => Some(s.clone()),
        };
        cols.push(ident(&rel.columns[i].name));
        params.push(p);
        exprs.push(format!("${}::text::{}", params.len(), types[i]));
    }
    Stmt {
        sql: format!(
            "INSERT INTO {} ({}) VALUES ({})",
            qualified(rel),
            cols.join(", "),
            exprs.join(", ")
        ),
        params,
    }
}

/// The row an Update or Delete names: the old key or old row when sent, else the new row's
/// key columns (an Update that kept its key).
fn identity<'v>(
    rel: &RelationInfo,
    old: Option<&'v [Val]>,
    new: Option<&'v [Val]>,
) -> Result<Vec<(usize, &'v Val)>, SqlError> {
    if rel.replica_identity == ReplicaIdentity::Nothing {
        return Err(SqlError::NoIdentity {
            table: qualified(rel),
        });
    }
    let full = rel.replica_identity == ReplicaIdentity::Full;
    let row = old.or(new).unwrap_or_default();
    Ok(row
        .iter()
        .enumerate()
        .filter(|(i, v)| **v != Val::Unchanged && (full && old.is_some() || rel.columns[*i].is_key))
        .collect())
}

/// `WHERE …` for the identity columns, numbering parameters after `params`.
fn where_clause(
    rel: &RelationInfo,
    types: &[String],
    ident_cols: &[(usize, &Val)],
    params: &mut Vec<Option<String>>,
) -> String {
    let full = rel.replica_identity == ReplicaIdentity::Full;
    let conds: Vec<String> = ident_cols
        .iter()
        .map(|(i, v)| {
            let col = ident(&rel.columns[*i].name);
            match v {
                Val::Text(s) => {
                    params.push(Some(s.clone()));
                    let op = if full { "IS NOT DISTINCT FROM" } else { "=" };
                    format!("{col} {op} ${}::text::{}", params.len(), types[*i])
                }
                _ => format!("{col} IS NULL"),
            }
        })
        .collect();
    let conds = conds.join(" AND ");
    if full {
        // Without a key, identical rows are possible: touch exactly one of them.
        format!(
            "ctid = (SELECT ctid FROM {} WHERE {conds} LIMIT 1)",
            qualified(rel)
        )
    } else {
        conds
    }
}

pub fn update(
    rel: &RelationInfo,
    types: &[String],
    old: Option<&[Val]>,
    new: &[Val],
) -> Result<Stmt, SqlError> {
    let ident_cols = identity(rel, old, Some(new))?;
    let mut params = Vec::new();
    let sets: Vec<String> = new
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != Val::Unchanged)
        .map(|(i, v)| {
            params.push(match v {
                Val::Text(s) => Some(s.clone()),
                _ => None,
            });
            format!(
                "{} = ${}::text::{}",
                ident(&rel.columns[i].name),
                params.len(),
                types[i]
            )
        })
        .collect();
    let cond = where_clause(rel, types, &ident_cols, &mut params);
    Ok(Stmt {
        sql: format!(
            "UPDATE {} SET {} WHERE {cond}",
            qualified(rel),
            sets.join(", ")
        ),
        params,
    })
}

pub fn delete(rel: &RelationInfo, types: &[String], old: &[Val]) -> Result<Stmt, SqlError> {
    let ident_cols = identity(rel, Some(old), None)?;
    let mut params = Vec::new();
    let cond = where_clause(rel, types, &ident_cols, &mut params);
    Ok(Stmt {
        sql: format!("DELETE FROM {} WHERE {cond}", qualified(rel)),
        params,
    })
}

/// `CREATE TABLE` for a relation as pgoutput describes it, with its replica identity as the
/// primary key (DEFAULT) or a unique constraint (INDEX).
pub fn create_table(rel: &RelationInfo, types: &[String]) -> String {
    let mut parts: Vec<String> = rel
        .columns
        .iter()
        .zip(types)
        .map(|(c, t)| format!("{} {t}", ident(&c.name)))
        .collect();
    let keys: Vec<String> = rel
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| ident(&c.name))
        .collect();
    match rel.replica_identity {
        ReplicaIdentity::Default if !keys.is_empty() => {
            parts.push(format!("PRIMARY KEY ({})", keys.join(", ")))
        }
        ReplicaIdentity::Index if !keys.is_empty() => {
            parts.push(format!("UNIQUE ({})", keys.join(", ")))
        }
        _ => {}
    }
    format!("CREATE TABLE {} ({})", qualified(rel), parts.join(", "))
}

/// `COPY … FROM STDIN` (text format) for every column of `rel`.
pub fn copy_in(rel: &RelationInfo) -> String {
    let cols: Vec<String> = rel.columns.iter().map(|c| ident(&c.name)).collect();
    format!("COPY {} ({}) FROM STDIN", qualified(rel), cols.join(", "))
}

/// Appends one row in COPY text format (tab-separated, `\N` for NULL, backslash escapes).
pub fn copy_row(out: &mut Vec<u8>, row: &[Val]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            Val::Null | Val::Unchanged => out.extend_from_slice(b"\\N"),
            Val::Text(s) => {
                for b in s.bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

pub type Rel = Arc<RelationInfo>;

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::ColumnInfo;

    fn rel(identity: ReplicaIdentity) -> RelationInfo {
        let col = |name: &str, is_key: bool| ColumnInfo {
            name: name.into(),
            type_oid: 23,
            type_modifier: -1,
            is_key,
            type_name: None,
            decode_oid: 23,
        };
        RelationInfo {
            id: 1,
            schema: "public".into(),
            table: "we\"ird".into(),
            replica_identity: identity,
            columns: vec![col("id", true), col("big", false), col("n", false)],
        }
    }

    fn t(s: &str) -> Val {
        Val::Text(s.into())
    }

    #[test]
    fn statements_skip_unchanged_toast_and_use_the_identity() {
        let r = rel(ReplicaIdentity::Default);
        let ty = vec!["integer".to_string(), "text".into(), "numeric(4,1)".into()];
        let s = update(&r, &ty, None, &[t("7"), Val::Unchanged, Val::Null]).unwrap();
        assert_eq!(
            s.sql,
            "UPDATE \"public\".\"we\"\"ird\" SET \"id\" = $1::text::integer, \"n\" = $2::text::numeric(4,1) WHERE \"id\" = $3::text::integer"
        );
        assert_eq!(s.params, [Some("7".into()), None, Some("7".into())]);
        // A key change names the old key.
        let old = [t("6"), Val::Null, Val::Null];
        let s = update(&r, &ty, Some(&old), &[t("7"), t("x"), t("1")]).unwrap();
        assert!(
            s.sql.ends_with("WHERE \"id\" = $4::text::integer"),
            "{}",
            s.sql
        );
        assert_eq!(s.params[3], Some("6".into()));
        let d = delete(&r, &ty, &old).unwrap();
        assert_eq!(
            d.sql,
            "DELETE FROM \"public\".\"we\"\"ird\" WHERE \"id\" = $1::text::integer"
        );
        let i = insert(&r, &ty, &[t("1"), t("a\tb"), Val::Null]);
        assert_eq!(i.params, [Some("1".into()), Some("a\tb".into()), None]);
        assert!(create_table(&r, &ty).ends_with("PRIMARY KEY (\"id\"))"));
    }

    #[test]
    fn full_identity_matches_one_row_by_every_sent_column() {
        let r = rel(ReplicaIdentity::Full);
        let ty = vec!["integer".to_string(), "text".into(), "integer".into()];
        let d = delete(&r, &ty, &[t("1"), Val::Unchanged, Val::Null]).unwrap();
        assert_eq!(
            d.sql,
            "DELETE FROM \"public\".\"we\"\"ird\" WHERE ctid = (SELECT ctid FROM \"public\".\"we\"\"ird\" WHERE \"id\" IS NOT DISTINCT FROM $1::text::integer AND \"n\" IS NULL LIMIT 1)"
        );
        assert!(matches!(
            delete(&rel(ReplicaIdentity::Nothing), &ty, &[]),
            Err(SqlError::NoIdentity { .. })
        ));
    }

    #[test]
    fn copy_rows_escape_what_copy_text_format_reads_specially() {
        let mut out = Vec::new();
        copy_row(&mut out, &[t("a\\b\tc\nd\re"), Val::Null, t("\\N")]);
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re\t\\N\t\\\\N\n");
    }
}
