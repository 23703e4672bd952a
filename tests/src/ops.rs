//! The committed outcome of a stream, as a list of transactions of operations. Both the oracle
//! (test_decoding's text) and the decoder's JSON lines are reduced to this form and compared.

use std::collections::BTreeMap;

/// A column value, reduced to what both test_decoding and JSON can say about simple columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    Null,
    /// An unchanged TOAST value: its column was not sent (pgoutput `u`, test_decoding
    /// `unchanged-toast-datum`).
    Unchanged,
    /// The value's text: a number's digits, a string's content, `true`/`false`.
    Text(String),
}

/// Column name → value.
pub type Tuple = BTreeMap<String, Val>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Insert {
        table: String,
        new: Tuple,
    },
    /// `old` is the old key or old row when the message carries one (key change under DEFAULT or
    /// USING INDEX, every update under FULL); NULL columns are left out of it.
    Update {
        table: String,
        old: Option<Tuple>,
        new: Tuple,
    },
    /// `old` is the key (DEFAULT, USING INDEX) or the whole old row (FULL), NULLs left out.
    Delete {
        table: String,
        old: Tuple,
    },
    /// Truncated tables, sorted.
    Truncate {
        tables: Vec<String>,
        cascade: bool,
        restart_identity: bool,
    },
    Message {
        transactional: bool,
        prefix: String,
        content: String,
    },
}

impl Op {
    pub fn table(&self) -> Option<&str> {
        match self {
            Op::Insert { table, .. } | Op::Update { table, .. } | Op::Delete { table, .. } => {
                Some(table)
            }
            _ => None,
        }
    }
}

/// One committed transaction's operations in order, or one non-transactional message.
pub type Unit = Vec<Op>;

/// Drops NULL columns, as test_decoding does when it prints old keys and old rows.
pub fn without_nulls(t: Tuple) -> Tuple {
    t.into_iter().filter(|(_, v)| *v != Val::Null).collect()
}

/// Keeps only `columns` of every tuple of `table` (for tables whose other columns have types
/// test_decoding and JSON print differently).
pub fn restrict_columns(units: Vec<Unit>, table: &str, columns: &[&str]) -> Vec<Unit> {
    let keep = |t: &mut Tuple| t.retain(|k, _| columns.contains(&k.as_str()));
    units
        .into_iter()
        .map(|unit| {
            unit.into_iter()
                .map(|mut op| {
                    if op.table() == Some(table) {
                        match &mut op {
                            Op::Insert { new, .. } => keep(new),
                            Op::Update { old, new, .. } => {
                                keep(new);
                                if let Some(o) = old {
                                    keep(o);
                                }
                            }
                            Op::Delete { old, .. } => keep(old),
                            _ => {}
                        }
                    }
                    op
                })
                .collect()
        })
        .collect()
}

/// Removes operations `drop` matches, then transactions left empty (pgoutput on PG14 sends
/// BEGIN/COMMIT for transactions with nothing published; test_decoding is asked to skip them).
pub fn filter_ops(units: Vec<Unit>, drop: impl Fn(&Op) -> bool) -> Vec<Unit> {
    units
        .into_iter()
        .map(|u| u.into_iter().filter(|op| !drop(op)).collect::<Unit>())
        .filter(|u| !u.is_empty())
        .collect()
}
