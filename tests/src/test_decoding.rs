//! Reads test_decoding's text output (PostgreSQL's own reference plugin) into committed
//! [`Unit`]s: the oracle for which changes a stream must deliver, in which order.
//!
//! Formats, from contrib/test_decoding/test_decoding.c: `BEGIN xid`, `COMMIT xid`,
//! `table s.t: INSERT: col[type]:value …`, `UPDATE: [old-key: … new-tuple:] …`, `DELETE: …`,
//! `table s.a, s.b: TRUNCATE: [restart_seqs] [cascade] | (no-flags)`,
//! `message: transactional: 0|1 prefix: p, sz: n content:…`. Old keys skip NULL columns.

use crate::ops::{Op, Tuple, Unit, Val};
use crate::pg::TextChange;
use anyhow::{bail, Context, Result};

/// Groups test_decoding rows into committed transactions and non-transactional messages.
pub fn units(rows: &[TextChange]) -> Result<Vec<Unit>> {
    let mut out = Vec::new();
    let mut current: Option<Unit> = None;
    for row in rows {
        let data = row.data.as_str();
        if data.starts_with("BEGIN") {
            current = Some(Vec::new());
        } else if data.starts_with("COMMIT") {
            out.push(
                current
                    .take()
                    .with_context(|| format!("COMMIT without BEGIN at {}", row.lsn))?,
            );
        } else {
            let op = parse_op(data)
                .with_context(|| format!("test_decoding line at {}: {data:?}", row.lsn))?;
            match (&mut current, &op) {
                (Some(unit), _) => unit.push(op),
                (
                    None,
                    Op::Message {
                        transactional: false,
                        ..
                    },
                ) => out.push(vec![op]),
                (None, _) => bail!("change outside a transaction at {}: {data:?}", row.lsn),
            }
        }
    }
    Ok(out)
}

/// Parses one change or message line.
pub fn parse_op(line: &str) -> Result<Op> {
    if let Some(rest) = line.strip_prefix("message: transactional: ") {
        let (flag, rest) = rest
            .split_once(" prefix: ")
            .context("message without prefix")?;
        let (prefix, rest) = rest.split_once(", sz: ").context("message without size")?;
        let (_, content) = rest
            .split_once(" content:")
            .context("message without content")?;
        return Ok(Op::Message {
            transactional: flag == "1",
            prefix: prefix.to_owned(),
            content: content.to_owned(),
        });
    }
    let rest = line.strip_prefix("table ").context("not a change line")?;
    let (tables, rest) = rest.split_once(": ").context("no table name")?;
    let (action, body) = rest.split_once(':').context("no action")?;
    match action {
        "TRUNCATE" => {
            let mut tables: Vec<String> = tables.split(", ").map(str::to_owned).collect();
            tables.sort();
            Ok(Op::Truncate {
                tables,
                cascade: body.contains(" cascade"),
                restart_identity: body.contains(" restart_seqs"),
            })
        }
        "INSERT" => Ok(Op::Insert {
            table: tables.to_owned(),
            new: parse_tuple(body)?,
        }),
        "UPDATE" => {
            let (old, new) = match body.strip_prefix(" old-key:") {
                Some(both) => {
                    let (old, new) = both
                        .split_once(" new-tuple:")
                        .context("old-key without new-tuple")?;
                    (Some(parse_tuple(old)?), parse_tuple(new)?)
                }
                None => (None, parse_tuple(body)?),
            };
            Ok(Op::Update {
                table: tables.to_owned(),
                old,
                new,
            })
        }
        "DELETE" => Ok(Op::Delete {
            table: tables.to_owned(),
            old: parse_tuple(body)?,
        }),
        other => bail!("unknown action {other:?}"),
    }
}

/// Parses ` name[type]:value name[type]:value …` where a value is `null`,
/// `unchanged-toast-datum`, a bare literal (numbers, booleans) or a `'quoted'` literal with `''`.
pub fn parse_tuple(s: &str) -> Result<Tuple> {
    let mut tuple = Tuple::new();
    let s = s.trim_start();
    if s == "(no-tuple-data)" {
        return Ok(tuple);
    }
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('[').context("column without [type]")?;
        // Array types end in `[]`, so the type ends at the first `]:`, not the first `]`.
        let (_ty, after) = after.split_once("]:").context("column without ]:")?;
        let name = name.trim_matches('"').to_owned();
        let (val, after) = if let Some(q) = after.strip_prefix('\'') {
            let mut text = String::new();
            let mut chars = q.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if let Some((_, '\'')) = chars.peek() {
                        chars.next();
                        text.push('\'');
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    text.push(c);
                }
            }
            let end = end.context("unterminated quoted value")?;
            (Val::Text(text), &q[end..])
        } else {
            let (tok, after) = after.split_once(' ').unwrap_or((after, ""));
            let val = match tok {
                "null" => Val::Null,
                "unchanged-toast-datum" => Val::Unchanged,
                t => Val::Text(t.to_owned()),
            };
            (val, after)
        };
        tuple.insert(name, val);
        rest = after.trim_start();
    }
    Ok(tuple)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Val {
        Val::Text(s.to_owned())
    }

    #[test]
    fn parses_an_update_with_old_key() {
        let op = parse_op(
            "table public.t_def: UPDATE: old-key: id[integer]:2 new-tuple: id[integer]:10 a[text]:'it''s b' b[integer]:null c[integer[]]:'{1,2}'",
        )
        .unwrap();
        let Op::Update { table, old, new } = op else {
            panic!("{op:?}")
        };
        assert_eq!(table, "public.t_def");
        assert_eq!(old.unwrap(), Tuple::from([("id".to_owned(), text("2"))]));
        assert_eq!(new["a"], text("it's b"));
        assert_eq!(new["b"], Val::Null);
        assert_eq!(new["c"], text("{1,2}"));
    }

    #[test]
    fn parses_truncate_and_messages() {
        assert_eq!(
            parse_op("table public.b, public.a: TRUNCATE: restart_seqs cascade").unwrap(),
            Op::Truncate {
                tables: vec!["public.a".into(), "public.b".into()],
                cascade: true,
                restart_identity: true
            }
        );
        assert_eq!(
            parse_op("message: transactional: 0 prefix: walcast, sz: 5 content:a b:c").unwrap(),
            Op::Message {
                transactional: false,
                prefix: "walcast".into(),
                content: "a b:c".into()
            }
        );
        let Op::Update { new, .. } =
            parse_op("table public.t: UPDATE: id[integer]:1 big[text]:unchanged-toast-datum")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(new["big"], Val::Unchanged);
    }
}
