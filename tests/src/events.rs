//! Replays the decoder's JSON lines the way a subscriber applies them — transactions at COMMIT,
//! streamed transactions at STREAM COMMIT after STREAM ABORT discards, prepared transactions at
//! COMMIT PREPARED — and reduces the result to committed [`Unit`]s.

use crate::ops::{without_nulls, Op, Tuple, Unit, Val};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A parsed JSON line.
pub type Event = Map<String, Value>;

pub fn parse_lines(lines: &[String]) -> Result<Vec<Event>> {
    lines
        .iter()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => bail!("JSON line is not an object: {other}"),
            Err(e) => bail!("JSON line does not parse ({e}): {l}"),
        })
        .collect()
}

pub fn kind(ev: &Event) -> &str {
    ev.get("type").and_then(Value::as_str).unwrap_or("")
}

fn u64_field(ev: &Event, name: &str) -> Result<u64> {
    ev.get(name)
        .and_then(Value::as_u64)
        .with_context(|| format!("{} event without numeric {name:?}: {ev:?}", kind(ev)))
}

fn str_field<'a>(ev: &'a Event, name: &str) -> Result<&'a str> {
    ev.get(name)
        .and_then(Value::as_str)
        .with_context(|| format!("{} event without string {name:?}: {ev:?}", kind(ev)))
}

/// Reduces one JSON value to what test_decoding would print for a simple column.
pub fn val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::String(s) => Val::Text(s.clone()),
        Value::Bool(b) => Val::Text(b.to_string()),
        Value::Number(n) => Val::Text(n.to_string()),
        other => Val::Text(other.to_string()),
    }
}

fn tuple(ev: &Event, field: &str, with_unchanged: bool) -> Result<Option<Tuple>> {
    let Some(obj) = ev.get(field) else {
        return Ok(None);
    };
    let obj = obj
        .as_object()
        .with_context(|| format!("{field:?} is not an object: {ev:?}"))?;
    let mut t: Tuple = obj.iter().map(|(k, v)| (k.clone(), val(v))).collect();
    if with_unchanged {
        if let Some(names) = ev.get("unchanged_toast").and_then(Value::as_array) {
            for n in names {
                t.insert(
                    n.as_str()
                        .context("unchanged_toast entry is not a string")?
                        .to_owned(),
                    Val::Unchanged,
                );
            }
        }
    }
    Ok(Some(t))
}

pub fn table_name(ev: &Event) -> Result<String> {
    Ok(format!(
        "{}.{}",
        str_field(ev, "schema")?,
        str_field(ev, "table")?
    ))
}

/// The operation an event describes, if it is a change or a message.
pub fn op(ev: &Event) -> Result<Option<Op>> {
    Ok(Some(match kind(ev) {
        "insert" => Op::Insert {
            table: table_name(ev)?,
            new: tuple(ev, "new", true)?.context("insert without new")?,
        },
        "update" => {
            let old = match tuple(ev, "key", false)? {
                Some(k) => Some(k),
                None => tuple(ev, "old", false)?,
            };
            Op::Update {
                table: table_name(ev)?,
                old: old.map(without_nulls),
                new: tuple(ev, "new", true)?.context("update without new")?,
            }
        }
        "delete" => {
            let old = match tuple(ev, "key", false)? {
                Some(k) => k,
                None => tuple(ev, "old", false)?.context("delete without key or old")?,
            };
            Op::Delete {
                table: table_name(ev)?,
                old: without_nulls(old),
            }
        }
        "truncate" => {
            let rels = ev
                .get("relations")
                .and_then(Value::as_array)
                .context("truncate without relations")?;
            let mut tables = rels
                .iter()
                .map(|r| {
                    r.as_object()
                        .context("relation is not an object")
                        .and_then(table_name)
                })
                .collect::<Result<Vec<_>>>()?;
            tables.sort();
            Op::Truncate {
                tables,
                cascade: ev
                    .get("cascade")
                    .and_then(Value::as_bool)
                    .context("truncate without cascade")?,
                restart_identity: ev
                    .get("restart_identity")
                    .and_then(Value::as_bool)
                    .context("truncate without restart_identity")?,
            }
        }
        "message" => Op::Message {
            transactional: ev
                .get("transactional")
                .and_then(Value::as_bool)
                .context("message without transactional")?,
            prefix: str_field(ev, "prefix")?.to_owned(),
            content: str_field(ev, "content")?.to_owned(),
        },
        _ => return Ok(None),
    }))
}

/// Applies the events in order and returns what a subscriber ends up having committed.
pub fn committed_units(events: &[Event]) -> Result<Vec<Unit>> {
    let mut out: Vec<Unit> = Vec::new();
    let mut txn: Option<Unit> = None;
    // Streamed transactions by top-level xid: each change with the (sub)transaction xid it carries.
    let mut streams: HashMap<u64, Vec<(u64, Op)>> = HashMap::new();
    let mut in_stream: Option<u64> = None;
    let mut prepared: HashMap<String, Unit> = HashMap::new();
    for (i, ev) in events.iter().enumerate() {
        let ctx = || format!("event #{i}: {ev:?}");
        match kind(ev) {
            "begin" | "begin_prepare" => {
                if txn.is_some() || in_stream.is_some() {
                    bail!("{} inside a transaction or stream, {}", kind(ev), ctx());
                }
                txn = Some(Vec::new());
            }
            "commit" => out.push(
                txn.take()
                    .with_context(|| format!("commit without begin, {}", ctx()))?,
            ),
            "prepare" => {
                let unit = txn
                    .take()
                    .with_context(|| format!("prepare without begin_prepare, {}", ctx()))?;
                prepared.insert(str_field(ev, "gid")?.to_owned(), unit);
            }
            "commit_prepared" => {
                let gid = str_field(ev, "gid")?;
                out.push(
                    prepared
                        .remove(gid)
                        .with_context(|| format!("commit_prepared of unknown gid, {}", ctx()))?,
                );
            }
            "rollback_prepared" => {
                prepared.remove(str_field(ev, "gid")?);
            }
            "stream_start" => {
                if in_stream.is_some() {
                    bail!("nested stream_start, {}", ctx());
                }
                let xid = u64_field(ev, "xid")?;
                streams.entry(xid).or_default();
                in_stream = Some(xid);
            }
            "stream_stop" => {
                in_stream
                    .take()
                    .with_context(|| format!("stream_stop outside a stream, {}", ctx()))?;
            }
            "stream_commit" => {
                let xid = u64_field(ev, "xid")?;
                let changes = streams
                    .remove(&xid)
                    .with_context(|| format!("stream_commit of unknown xid, {}", ctx()))?;
                out.push(changes.into_iter().map(|(_, op)| op).collect());
            }
            "stream_prepare" => {
                let xid = u64_field(ev, "xid")?;
                let changes = streams
                    .remove(&xid)
                    .with_context(|| format!("stream_prepare of unknown xid, {}", ctx()))?;
                prepared.insert(
                    str_field(ev, "gid")?.to_owned(),
                    changes.into_iter().map(|(_, op)| op).collect(),
                );
            }
            "stream_abort" => {
                let xid = u64_field(ev, "xid")?;
                let subxid = u64_field(ev, "subxid")?;
                if xid == subxid {
                    streams.remove(&xid);
                } else if let Some(changes) = streams.get_mut(&xid) {
                    // As the apply worker does: drop the subtransaction's changes and everything
                    // after its first one (later subtransactions nested in it).
                    if let Some(first) = changes.iter().position(|(x, _)| *x == subxid) {
                        changes.truncate(first);
                    }
                }
            }
            _ => {
                let Some(op) = op(ev).with_context(ctx)? else {
                    continue;
                };
                if let Some(top) = in_stream {
                    let xid = u64_field(ev, "xid").with_context(ctx)?;
                    streams.entry(top).or_default().push((xid, op));
                } else if let Some(unit) = &mut txn {
                    unit.push(op);
                } else if matches!(
                    op,
                    Op::Message {
                        transactional: false,
                        ..
                    }
                ) {
                    out.push(vec![op]);
                } else {
                    bail!("change outside a transaction, {}", ctx());
                }
            }
        }
    }
    if let Some(t) = txn {
        bail!("stream ends inside a transaction ({} changes)", t.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evs(lines: &[&str]) -> Vec<Event> {
        parse_lines(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ins(xid: Option<u32>, id: u32) -> String {
        let xid = xid.map(|x| format!(r#","xid":{x}"#)).unwrap_or_default();
        format!(r#"{{"type":"insert"{xid},"schema":"public","table":"t","new":{{"id":{id}}}}}"#)
    }

    fn ids(units: &[Unit]) -> Vec<Vec<String>> {
        units
            .iter()
            .map(|u| {
                u.iter()
                    .map(|op| match op {
                        Op::Insert { new, .. } => match &new["id"] {
                            Val::Text(t) => t.clone(),
                            other => format!("{other:?}"),
                        },
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn stream_abort_of_a_subtransaction_drops_it_and_what_followed() {
        let lines = [
            r#"{"type":"stream_start","xid":10}"#.to_owned(),
            ins(Some(10), 1),
            ins(Some(11), 2),
            ins(Some(12), 3),
            r#"{"type":"stream_stop"}"#.to_owned(),
            r#"{"type":"stream_start","xid":10}"#.to_owned(),
            ins(Some(10), 4),
            r#"{"type":"stream_stop"}"#.to_owned(),
            r#"{"type":"stream_abort","xid":10,"subxid":11}"#.to_owned(),
            r#"{"type":"stream_start","xid":10}"#.to_owned(),
            ins(Some(13), 5),
            r#"{"type":"stream_stop"}"#.to_owned(),
            r#"{"type":"stream_commit","xid":10}"#.to_owned(),
            r#"{"type":"stream_start","xid":20}"#.to_owned(),
            ins(Some(20), 6),
            r#"{"type":"stream_stop"}"#.to_owned(),
            r#"{"type":"stream_abort","xid":20,"subxid":20}"#.to_owned(),
            r#"{"type":"begin","xid":30}"#.to_owned(),
            ins(None, 7),
            r#"{"type":"commit"}"#.to_owned(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let units = committed_units(&evs(&refs)).unwrap();
        assert_eq!(ids(&units), [vec!["1", "5"], vec!["7"]]);
    }

    #[test]
    fn prepared_transactions_count_at_commit_prepared_only() {
        let lines = [
            r#"{"type":"begin_prepare","xid":1,"gid":"a"}"#.to_owned(),
            ins(None, 1),
            r#"{"type":"prepare","xid":1,"gid":"a"}"#.to_owned(),
            r#"{"type":"begin_prepare","xid":2,"gid":"b"}"#.to_owned(),
            ins(None, 2),
            r#"{"type":"prepare","xid":2,"gid":"b"}"#.to_owned(),
            r#"{"type":"message","transactional":false,"prefix":"p","content":"c"}"#.to_owned(),
            r#"{"type":"rollback_prepared","xid":2,"gid":"b"}"#.to_owned(),
            r#"{"type":"commit_prepared","xid":1,"gid":"a"}"#.to_owned(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let units = committed_units(&evs(&refs)).unwrap();
        assert_eq!(units.len(), 2);
        assert!(matches!(
            &units[0][0],
            Op::Message {
                transactional: false,
                ..
            }
        ));
        assert_eq!(ids(&units[1..]), [vec!["1"]]);
    }

    #[test]
    fn unchanged_toast_and_keys_reduce_to_vals() {
        let e = evs(&[
            r#"{"type":"update","schema":"s","table":"t","key":{"id":1,"x":null},"new":{"id":2,"b":true},"unchanged_toast":["big"]}"#,
        ]);
        let Some(Op::Update { table, old, new }) = op(&e[0]).unwrap() else {
            panic!()
        };
        assert_eq!(table, "s.t");
        assert_eq!(
            old.unwrap(),
            Tuple::from([("id".to_owned(), Val::Text("1".into()))])
        );
        assert_eq!(new["big"], Val::Unchanged);
        assert_eq!(new["b"], Val::Text("true".into()));
        assert!(
            committed_units(&e).is_err(),
            "a change outside a transaction is an error"
        );
    }
}
