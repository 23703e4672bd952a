//! One client's row scopes: which relation ids are scoped (learned from Relation messages, like
//! the table filter), and what the client receives for each change on them. The change itself is
//! decoded once for all clients ([`RouteMemo`]); per client this is one hash lookup of the
//! decoded value in the client's allowed set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use walcast_decoder::pgoutput::{self, Message};

use walcast_decoder::frame::FrameKind;

use super::memo::{decode, ColumnRef, Decoded, RouteMemo, Side};
use crate::auth::RowScope;
use crate::serve::classify::Classifier;
use crate::serve::filter::FrameClass;

/// What a scoped client gets for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The frame as it is.
    Pass,
    /// Nothing.
    Drop,
    /// This payload instead (an Update re-encoded as a Delete or an Insert).
    Replace(Vec<u8>),
}

/// The allowed values of one scope, shared by the relations that carry its table's name.
#[derive(Debug)]
struct Scope {
    column: String,
    values: HashSet<Box<str>>,
}

#[derive(Debug, Clone)]
struct ScopedRel {
    scope: Arc<Scope>,
    /// `None`: the relation has no column of that name, so no row of it is in scope.
    col: Option<ColumnRef>,
}

/// Row scopes for one client (see the module docs). Memory: the token's scopes and one entry per
/// scoped relation id.
#[derive(Debug)]
pub struct ScopeFilter {
    scopes: HashMap<(String, String), Arc<Scope>>,
    rels: HashMap<u32, ScopedRel>,
    memo: Arc<RouteMemo>,
}

impl ScopeFilter {
    /// `scopes` by `(schema, table)`, as the token grants them.
    pub fn new(
        scopes: impl IntoIterator<Item = ((String, String), RowScope)>,
        memo: Arc<RouteMemo>,
    ) -> ScopeFilter {
        ScopeFilter {
            scopes: scopes
                .into_iter()
                .map(|(t, s)| {
                    let scope = Scope {
                        column: s.column,
                        values: s.equals.into_iter().map(String::into_boxed_str).collect(),
                    };
                    (t, Arc::new(scope))
                })
                .collect(),
            rels: HashMap::new(),
            memo,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Judges one frame. `pos` identifies the frame in the log (its end offset), `in_stream` says
    /// whether it was parsed inside a stream block (see `Classifier::last_in_stream`).
    pub fn judge(
        &mut self,
        class: &FrameClass,
        payload: &[u8],
        in_stream: bool,
        pos: u64,
    ) -> Verdict {
        match class {
            FrameClass::Relation {
                relid,
                schema,
                table,
            } => {
                match self.scopes.get(&(schema.clone(), table.clone())) {
                    Some(scope) => {
                        let col = column_of(payload, in_stream, &scope.column);
                        if col.is_none() {
                            tracing::warn!(relid, schema = %schema, table = %table, column = %scope.column,
                                "a row scope names a column this table does not have; no row of it is delivered");
                        }
                        self.rels.insert(
                            *relid,
                            ScopedRel {
                                scope: scope.clone(),
                                col,
                            },
                        );
                    }
                    None => {
                        self.rels.remove(relid);
                    }
                }
                Verdict::Pass
            }
            FrameClass::Change { relid } => {
                let Some(rel) = self.rels.get(relid) else {
                    return Verdict::Pass;
                };
                let Some(col) = rel.col else {
                    return Verdict::Drop;
                };
                match self.memo.get_or_decode(pos, payload, in_stream, col) {
                    // Never leak what cannot be judged.
                    None => Verdict::Drop,
                    Some(d) => self.verdict(&d, &rel.scope.values),
                }
            }
            _ => Verdict::Pass,
        }
    }

    /// Judges one frame of a bootstrap image (docs/bootstrap.md): a prelude Relation teaches
    /// the scoped relations as a live one does; an image row (an Insert outside any
    /// transaction) passes only if its scoped column holds an allowed value; anything else
    /// passes. Image rows are decoded here rather than through the shared memo, which is keyed
    /// by log position, a thing image frames do not have.
    pub fn keeps_image_frame(&mut self, kind: FrameKind, payload: &[u8]) -> bool {
        match kind {
            FrameKind::Prelude => {
                let class = Classifier::new().classify(kind, payload);
                // Relations only teach; `pos` is not used for them.
                self.judge(&class, payload, false, 0) == Verdict::Pass
            }
            FrameKind::Bootstrap => {
                let Some(relid) = payload
                    .get(1..5)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    return false;
                };
                let Some(rel) = self.rels.get(&relid) else {
                    return true;
                };
                let Some(col) = rel.col else {
                    return false;
                };
                match decode(payload, false, col) {
                    Some(d) if d.kind == pgoutput::TAG_INSERT => {
                        self.verdict(&d, &rel.scope.values) == Verdict::Pass
                    }
                    // Never leak what cannot be judged.
                    _ => false,
                }
            }
            _ => true,
        }
    }

    fn verdict(&self, d: &Decoded, values: &HashSet<Box<str>>) -> Verdict {
        let inside = |s: &Side| matches!(s, Side::Value(v) if values.contains(v));
        match d.kind {
            pgoutput::TAG_INSERT if inside(&d.new) => Verdict::Pass,
            pgoutput::TAG_DELETE if inside(&d.old) => Verdict::Pass,
            pgoutput::TAG_DELETE if d.old == Side::Unknown => {
                self.memo.warn_unknown_old(d.relid);
                Verdict::Drop
            }
            pgoutput::TAG_UPDATE => {
                if d.old == Side::Unknown {
                    self.memo.warn_unknown_old(d.relid);
                    return Verdict::Drop;
                }
                match (inside(&d.old), inside(&d.new)) {
                    (true, true) => Verdict::Pass,
                    (true, false) => d.as_delete.clone().map_or(Verdict::Drop, Verdict::Replace),
                    (false, true) => d.as_insert.clone().map_or(Verdict::Drop, Verdict::Replace),
                    (false, false) => Verdict::Drop,
                }
            }
            _ => Verdict::Drop,
        }
    }
}

/// The scoped column's place in a Relation message.
pub(super) fn column_of(payload: &[u8], in_stream: bool, name: &str) -> Option<ColumnRef> {
    let Ok(Message::Relation(r)) = pgoutput::parse(payload, in_stream) else {
        return None;
    };
    let (index, c) = r.columns.iter().enumerate().find(|(_, c)| c.name == name)?;
    Some(ColumnRef {
        index: u16::try_from(index).ok()?,
        type_oid: c.type_oid,
        in_identity: c.is_key(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REL: u32 = 16384;

    /// A Relation message for `public.t (id int, tenant text, body text)`; `identity` sets the
    /// key flag of (id, tenant, body) and `replident` the identity kind.
    fn relation(identity: [bool; 3], replident: u8) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&REL.to_be_bytes());
        m.extend_from_slice(b"public\0t\0");
        m.push(replident);
        m.extend_from_slice(&3u16.to_be_bytes());
        for ((name, oid), key) in [("id", 23u32), ("tenant", 25), ("body", 25)]
            .into_iter()
            .zip(identity)
        {
            m.push(u8::from(key));
            m.extend_from_slice(name.as_bytes());
            m.push(0);
            m.extend_from_slice(&oid.to_be_bytes());
            m.extend_from_slice(&(-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(cols: &[Option<&str>], m: &mut Vec<u8>) {
        m.extend_from_slice(&(cols.len() as u16).to_be_bytes());
        for c in cols {
            match c {
                None => m.push(b'n'),
                Some(v) => {
                    m.push(b't');
                    m.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    m.extend_from_slice(v.as_bytes());
                }
            }
        }
    }

    fn change(
        tag: u8,
        xid: Option<u32>,
        old: Option<(u8, &[Option<&str>])>,
        new: Option<&[Option<&str>]>,
    ) -> Vec<u8> {
        let mut m = vec![tag];
        if let Some(x) = xid {
            m.extend_from_slice(&x.to_be_bytes());
        }
        m.extend_from_slice(&REL.to_be_bytes());
        if let Some((k, cols)) = old {
            m.push(k);
            tuple(cols, &mut m);
        }
        if let Some(cols) = new {
            m.push(b'N');
            tuple(cols, &mut m);
        }
        m
    }

    fn row(tenant: &str) -> [Option<&str>; 3] {
        [Some("1"), Some(tenant), Some("x")]
    }

    fn filter(values: &[&str], memo: &Arc<RouteMemo>) -> ScopeFilter {
        let scope = RowScope {
            column: "tenant".into(),
            equals: values.iter().map(|v| v.to_string()).collect(),
        };
        ScopeFilter::new([(("public".into(), "t".into()), scope)], memo.clone())
    }

    fn rel_class() -> FrameClass {
        FrameClass::Relation {
            relid: REL,
            schema: "public".into(),
            table: "t".into(),
        }
    }

    const CHANGE: FrameClass = FrameClass::Change { relid: REL };

    fn learn(f: &mut ScopeFilter, identity: [bool; 3], replident: u8) {
        let r = relation(identity, replident);
        assert_eq!(f.judge(&rel_class(), &r, false, 1), Verdict::Pass);
    }

    #[test]
    fn inserts_and_deletes_follow_the_value() {
        let memo = Arc::new(RouteMemo::new());
        let mut f = filter(&["t1"], &memo);
        learn(&mut f, [true; 3], b'f');
        let t1 = change(b'I', None, None, Some(&row("t1")));
        let t2 = change(b'I', None, None, Some(&row("t2")));
        assert_eq!(f.judge(&CHANGE, &t1, false, 10), Verdict::Pass);
        assert_eq!(f.judge(&CHANGE, &t2, false, 11), Verdict::Drop);
        let d1 = change(b'D', None, Some((b'O', &row("t1"))), None);
        let d2 = change(b'D', None, Some((b'O', &row("t2"))), None);
        assert_eq!(f.judge(&CHANGE, &d1, false, 12), Verdict::Pass);
        assert_eq!(f.judge(&CHANGE, &d2, false, 13), Verdict::Drop);
        // NULL is in no scope.
        let null = change(b'I', None, None, Some(&[Some("1"), None, None]));
        assert_eq!(f.judge(&CHANGE, &null, false, 14), Verdict::Drop);
        // Another table passes untouched (the table filter decides about it).
        let other = FrameClass::Change { relid: 99 };
        assert_eq!(f.judge(&other, &t2, false, 15), Verdict::Pass);
    }

    #[test]
    fn image_rows_pass_only_inside_the_scope() {
        let memo = Arc::new(RouteMemo::new());
        let mut f = filter(&["t1"], &memo);
        // The image's Relation arrives as a prelude frame and teaches the scoped relation.
        let rel = relation([true, false, false], b'd');
        assert!(f.keeps_image_frame(FrameKind::Prelude, &rel));
        let t1 = change(b'I', None, None, Some(&row("t1")));
        let t2 = change(b'I', None, None, Some(&row("t2")));
        let null = change(b'I', None, None, Some(&[Some("1"), None, None]));
        assert!(f.keeps_image_frame(FrameKind::Bootstrap, &t1));
        assert!(!f.keeps_image_frame(FrameKind::Bootstrap, &t2));
        assert!(!f.keeps_image_frame(FrameKind::Bootstrap, &null));
        // What cannot be judged is not sent: a truncated row, or one that is not an Insert.
        assert!(!f.keeps_image_frame(FrameKind::Bootstrap, &t1[..t1.len() - 1]));
        assert!(!f.keeps_image_frame(FrameKind::Bootstrap, &t1[..3]));
        let d1 = change(b'D', None, Some((b'O', &row("t1"))), None);
        assert!(!f.keeps_image_frame(FrameKind::Bootstrap, &d1));
        // Rows of an unscoped table, and the closing heartbeat, pass.
        let mut other = t2.clone();
        other[1..5].copy_from_slice(&99u32.to_be_bytes());
        assert!(f.keeps_image_frame(FrameKind::Bootstrap, &other));
        assert!(f.keeps_image_frame(FrameKind::Heartbeat, &[]));
        // The image decodes for itself: nothing lands in the memo keyed by log position.
        assert_eq!(memo.len(), 0);
    }

    #[test]
    fn updates_across_the_boundary_are_re_encoded() {
        let memo = Arc::new(RouteMemo::new());
        let mut f = filter(&["t1"], &memo);
        learn(&mut f, [true; 3], b'f');
        let stay = change(b'U', None, Some((b'O', &row("t1"))), Some(&row("t1")));
        assert_eq!(f.judge(&CHANGE, &stay, false, 20), Verdict::Pass);
        let away = change(b'U', None, Some((b'O', &row("t2"))), Some(&row("t3")));
        assert_eq!(f.judge(&CHANGE, &away, false, 21), Verdict::Drop);

        let out = change(b'U', Some(9), Some((b'O', &row("t1"))), Some(&row("t2")));
        let Verdict::Replace(d) = f.judge(&CHANGE, &out, true, 22) else {
            panic!("moving out must become a delete")
        };
        match pgoutput::parse(&d, true).unwrap() {
            Message::Delete(del) => {
                assert_eq!(del.xid, Some(9));
                let cols: Vec<_> = del.old.tuple().columns().collect();
                assert_eq!(cols[1], pgoutput::Column::Text(b"t1"));
            }
            other => panic!("{other:?}"),
        }
        // The new value never reaches the client.
        assert!(!d.windows(2).any(|w| w == b"t2"));

        let into = change(b'U', None, Some((b'O', &row("t2"))), Some(&row("t1")));
        let Verdict::Replace(i) = f.judge(&CHANGE, &into, false, 23) else {
            panic!("moving in must become an insert")
        };
        match pgoutput::parse(&i, false).unwrap() {
            Message::Insert(ins) => {
                let cols: Vec<_> = ins.new.columns().collect();
                assert_eq!(cols[1], pgoutput::Column::Text(b"t1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_old_value_is_out_of_scope() {
        // DEFAULT identity on (id): the tenant's old value is never sent.
        let memo = Arc::new(RouteMemo::new());
        let mut f = filter(&["t1"], &memo);
        learn(&mut f, [true, false, false], b'd');
        let upd = change(b'U', None, None, Some(&row("t1")));
        assert_eq!(f.judge(&CHANGE, &upd, false, 30), Verdict::Drop);
        let del = change(b'D', None, Some((b'K', &[Some("1"), None, None])), None);
        assert_eq!(f.judge(&CHANGE, &del, false, 31), Verdict::Drop);
        // Inserts carry the whole row and are judged as usual.
        let ins = change(b'I', None, None, Some(&row("t1")));
        assert_eq!(f.judge(&CHANGE, &ins, false, 32), Verdict::Pass);
        assert!(memo.warned(REL), "the relation was warned about");

        // An identity index including the column: no old tuple means the value did not change.
        let memo = Arc::new(RouteMemo::new());
        let mut f = filter(&["t1"], &memo);
        learn(&mut f, [true, true, false], b'i');
        assert_eq!(f.judge(&CHANGE, &upd, false, 40), Verdict::Pass);
        let key_move = change(
            b'U',
            None,
            Some((b'K', &[Some("1"), Some("t1"), None])),
            Some(&row("t2")),
        );
        let Verdict::Replace(d) = f.judge(&CHANGE, &key_move, false, 41) else {
            panic!("moving out must become a delete")
        };
        assert!(matches!(pgoutput::parse(&d, false), Ok(Message::Delete(_))));
    }

    #[test]
    fn each_change_is_decoded_once_for_all_clients() {
        let memo = Arc::new(RouteMemo::new());
        let mut clients: Vec<_> = (0..50)
            .map(|i| filter(&[&format!("t{}", i % 5)], &memo))
            .collect();
        for c in &mut clients {
            learn(c, [true; 3], b'f');
        }
        let ins = change(b'I', None, None, Some(&row("t3")));
        let passed = clients
            .iter_mut()
            .map(|c| c.judge(&CHANGE, &ins, false, 50))
            .filter(|v| *v == Verdict::Pass)
            .count();
        assert_eq!(passed, 10);
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn a_missing_column_delivers_nothing() {
        let memo = Arc::new(RouteMemo::new());
        let scope = RowScope {
            column: "nope".into(),
            equals: vec!["t1".into()],
        };
        let mut f = ScopeFilter::new([(("public".into(), "t".into()), scope)], memo.clone());
        learn(&mut f, [true; 3], b'f');
        let ins = change(b'I', None, None, Some(&row("t1")));
        assert_eq!(f.judge(&CHANGE, &ins, false, 60), Verdict::Drop);
        // Garbage on a scoped relation is never passed.
        let mut f = filter(&["t1"], &memo);
        learn(&mut f, [true; 3], b'f');
        assert_eq!(f.judge(&CHANGE, b"I\0\0@\0N", false, 61), Verdict::Drop);
    }
}
