//! The routing core for live scoped clients: one reader's frames in, deliveries to only the
//! clients whose scope a change touches out. A change is decoded once and routed through a hash
//! map keyed by `(relation, column, value)`; a transaction's Begin (with its Origin and
//! transactional messages) and a relation's description reach a client lazily, just before its
//! first change, and Commit only the clients that received something. So the work per change is
//! the decode plus the matching clients, whatever the number of clients connected.
//!
//! Pure: `serve::broadcast` drives it for the caught-up clients (BENCHMARKS.md, "Row scopes").
//! Scope: plain transactions (B, O, M, R, I/U/D, T, C); for stream blocks and two-phase
//! transactions the broadcast hands its clients back to their own readers.

use std::collections::HashMap;
use std::sync::Arc;

use walcast_decoder::pgoutput;

use super::filter::column_of;
use super::memo::{decode, ColumnRef, RouteMemo, Side};
use crate::auth::RowScope;
use crate::log::OwnedFrame;
use crate::serve::filter::FrameClass;

/// A subscriber of the fan-out.
pub type ClientId = usize;

/// A frame for one client: shared with others, or re-encoded for it (an Update at the boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Shared(Arc<OwnedFrame>),
    Own(OwnedFrame),
}

#[derive(Debug, Default)]
struct Client {
    /// The transaction whose opening frames this client received (0: none).
    txn: u64,
    /// Relation versions this client was sent.
    relations: HashMap<u32, u64>,
    /// Its scopes, to unsubscribe.
    scopes: Vec<((String, String), RowScope)>,
}

/// Subscribers of one scoped table column, by value.
type ByValue = HashMap<Box<str>, Vec<ClientId>>;

#[derive(Debug)]
struct Relation {
    table: (String, String),
    frame: Arc<OwnedFrame>,
    version: u64,
    /// The scoped columns of this relation that some client uses.
    columns: Vec<(String, Option<ColumnRef>)>,
}

/// The fan-out state (see the module docs).
#[derive(Debug, Default)]
pub struct FanOut {
    clients: HashMap<ClientId, Client>,
    /// `(table, column)` → value → clients.
    routes: HashMap<((String, String), String), ByValue>,
    relations: HashMap<u32, Relation>,
    versions: u64,
    /// The current transaction: its number and its opening frames (Begin, Origin, messages).
    txn: u64,
    opening: Vec<Arc<OwnedFrame>>,
    touched: Vec<ClientId>,
    next_id: ClientId,
    /// The relay's memo of scoped decoding, for its once-per-relation warnings.
    memo: Arc<RouteMemo>,
}

impl FanOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fan-out that warns through `memo`, as the clients reading on their own do.
    pub fn sharing(memo: Arc<RouteMemo>) -> Self {
        FanOut {
            memo,
            ..Self::default()
        }
    }

    /// Adds a client with its scopes; it receives changes from the next frame on.
    pub fn subscribe(&mut self, scopes: Vec<((String, String), RowScope)>) -> ClientId {
        let id = self.next_id;
        self.next_id += 1;
        for (table, scope) in &scopes {
            let by_value = self
                .routes
                .entry((table.clone(), scope.column.clone()))
                .or_default();
            for v in &scope.equals {
                let subs = by_value.entry(v.as_str().into()).or_default();
                if !subs.contains(&id) {
                    subs.push(id);
                }
            }
        }
        // Relations already described learn the new client's columns.
        let wanted: Vec<_> = scopes
            .iter()
            .map(|(t, s)| (t.clone(), s.column.clone()))
            .collect();
        for rel in self.relations.values_mut() {
            for (t, c) in &wanted {
                if *t == rel.table && !rel.columns.iter().any(|(n, _)| n == c) {
                    let col = column_of(&rel.frame.payload, false, c);
                    rel.columns.push((c.clone(), col));
                }
            }
        }
        self.clients.insert(
            id,
            Client {
                scopes,
                ..Client::default()
            },
        );
        id
    }

    pub fn unsubscribe(&mut self, id: ClientId) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        for (table, scope) in c.scopes {
            let key = (table, scope.column);
            if let Some(by_value) = self.routes.get_mut(&key) {
                for v in &scope.equals {
                    if let Some(subs) = by_value.get_mut(v.as_str()) {
                        subs.retain(|s| *s != id);
                        if subs.is_empty() {
                            by_value.remove(v.as_str());
                        }
                    }
                }
                if by_value.is_empty() {
                    self.routes.remove(&key);
                }
            }
        }
        self.touched.retain(|t| *t != id);
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Routes one frame (`class` from the `Classifier`), appending `(client, frame)` deliveries.
    pub fn push(&mut self, frame: OwnedFrame, class: &FrameClass, out: &mut Vec<(ClientId, Out)>) {
        match class {
            FrameClass::Begin => {
                self.txn += 1;
                self.opening.clear();
                self.opening.push(Arc::new(frame));
                self.touched.clear();
            }
            FrameClass::Origin
            | FrameClass::Message {
                transactional: true,
            } => {
                self.opening.push(Arc::new(frame));
            }
            FrameClass::Relation {
                relid,
                schema,
                table,
            } => {
                let table = (schema.clone(), table.clone());
                let columns: Vec<_> = self
                    .routes
                    .keys()
                    .filter(|(t, _)| *t == table)
                    .map(|(_, c)| (c.clone(), column_of(&frame.payload, false, c)))
                    .collect();
                self.versions += 1;
                self.relations.insert(
                    *relid,
                    Relation {
                        table,
                        frame: Arc::new(frame),
                        version: self.versions,
                        columns,
                    },
                );
            }
            FrameClass::Change { relid } => self.route_change(*relid, frame, out),
            FrameClass::Truncate { relids } => {
                let frame = Arc::new(frame);
                let mut targets = Vec::new();
                for relid in relids {
                    if let Some(rel) = self.relations.get(relid) {
                        for (c, _) in &rel.columns {
                            if let Some(by_value) = self.routes.get(&(rel.table.clone(), c.clone()))
                            {
                                targets.extend(by_value.values().flatten().copied());
                            }
                        }
                        targets.sort_unstable();
                        targets.dedup();
                        for &t in &targets {
                            self.open_for(t, Some(*relid), out);
                        }
                    }
                }
                for t in targets {
                    out.push((t, Out::Shared(frame.clone())));
                }
            }
            FrameClass::Commit => {
                let frame = Arc::new(frame);
                for &t in &self.touched {
                    out.push((t, Out::Shared(frame.clone())));
                }
                self.touched.clear();
                self.opening.clear();
            }
            // Type messages, non-transactional messages, heartbeats: not routed by this core.
            _ => {}
        }
    }

    fn route_change(&mut self, relid: u32, frame: OwnedFrame, out: &mut Vec<(ClientId, Out)>) {
        let Some(rel) = self.relations.get(&relid) else {
            return;
        };
        let mut deliveries: Vec<(ClientId, Out)> = Vec::new();
        let shared = Arc::new(frame);
        for (column, col) in &rel.columns {
            let Some(col) = col else { continue };
            let Some(by_value) = self.routes.get(&(rel.table.clone(), column.clone())) else {
                continue;
            };
            let Some(d) = decode(&shared.payload, false, *col) else {
                continue;
            };
            let subs = |s: &Side| match s {
                Side::Value(v) => by_value.get(v).map(Vec::as_slice).unwrap_or(&[]),
                _ => &[],
            };
            // Unknown old value: out of scope for everyone (docs/auth.md).
            if d.old == Side::Unknown && d.kind != pgoutput::TAG_INSERT {
                self.memo.warn_unknown_old(relid);
                continue;
            }
            let (old, new) = (subs(&d.old), subs(&d.new));
            match d.kind {
                pgoutput::TAG_INSERT => {
                    deliveries.extend(new.iter().map(|&c| (c, Out::Shared(shared.clone()))))
                }
                pgoutput::TAG_DELETE => {
                    deliveries.extend(old.iter().map(|&c| (c, Out::Shared(shared.clone()))))
                }
                _ => {
                    for &c in old {
                        if new.contains(&c) {
                            deliveries.push((c, Out::Shared(shared.clone())));
                        } else if let Some(p) = &d.as_delete {
                            deliveries.push((c, Out::Own(with_payload(&shared, p))));
                        }
                    }
                    if let Some(p) = &d.as_insert {
                        for &c in new.iter().filter(|c| !old.contains(c)) {
                            deliveries.push((c, Out::Own(with_payload(&shared, p))));
                        }
                    }
                }
            }
        }
        for (c, f) in deliveries {
            self.open_for(c, Some(relid), out);
            out.push((c, f));
        }
    }

    /// Sends `client` the transaction's opening frames and the relation's description, if it
    /// has not had them yet.
    fn open_for(&mut self, client: ClientId, relid: Option<u32>, out: &mut Vec<(ClientId, Out)>) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        if c.txn != self.txn {
            c.txn = self.txn;
            self.touched.push(client);
            out.extend(
                self.opening
                    .iter()
                    .map(|f| (client, Out::Shared(f.clone()))),
            );
        }
        if let Some(rel) = relid.and_then(|r| self.relations.get(&r).map(|rel| (r, rel))) {
            let (r, rel) = rel;
            if c.relations.get(&r) != Some(&rel.version) {
                c.relations.insert(r, rel.version);
                out.push((client, Out::Shared(rel.frame.clone())));
            }
        }
    }
}

fn with_payload(f: &OwnedFrame, payload: &[u8]) -> OwnedFrame {
    OwnedFrame {
        kind: f.kind,
        lsn: f.lsn,
        payload: payload.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::pgoutput_peek::build;
    use crate::serve::classify::Classifier;
    use walcast_decoder::frame::FrameKind;
    use walcast_decoder::Lsn;

    const REL: u32 = 16384;

    fn relation() -> Vec<u8> {
        build::tenant_relation(REL)
    }

    fn tuple(id: &str, tenant: &str, m: &mut Vec<u8>) {
        build::tenant_tuple(id, tenant, m)
    }

    fn insert(id: &str, tenant: &str) -> Vec<u8> {
        let mut m = vec![b'I'];
        m.extend_from_slice(&REL.to_be_bytes());
        m.push(b'N');
        tuple(id, tenant, &mut m);
        m
    }

    fn update(id: &str, from: &str, to: &str) -> Vec<u8> {
        let mut m = vec![b'U'];
        m.extend_from_slice(&REL.to_be_bytes());
        m.push(b'O');
        tuple(id, from, &mut m);
        m.push(b'N');
        tuple(id, to, &mut m);
        m
    }

    fn scope(values: &[&str]) -> Vec<((String, String), RowScope)> {
        vec![(
            ("public".into(), "t".into()),
            RowScope {
                column: "tenant".into(),
                equals: values.iter().map(|v| v.to_string()).collect(),
            },
        )]
    }

    /// Feeds payloads; returns each client's deliveries as tags (re-encoded ones lower-case).
    fn feed(f: &mut FanOut, payloads: &[Vec<u8>]) -> HashMap<ClientId, String> {
        let mut c = Classifier::new();
        let mut out = Vec::new();
        for p in payloads {
            let frame = OwnedFrame {
                kind: FrameKind::Wal,
                lsn: Lsn(1),
                payload: p.clone(),
            };
            let class = c.classify(frame.kind, &frame.payload);
            f.push(frame, &class, &mut out);
        }
        let mut by: HashMap<ClientId, String> = HashMap::new();
        for (id, o) in out {
            let tag = match o {
                Out::Shared(f) => f.payload[0] as char,
                Out::Own(f) => (f.payload[0] as char).to_ascii_lowercase(),
            };
            by.entry(id).or_default().push(tag);
        }
        by
    }

    #[test]
    fn routes_each_change_to_the_matching_clients_only() {
        let mut f = FanOut::new();
        let a = f.subscribe(scope(&["t1"]));
        let b = f.subscribe(scope(&["t2"]));
        let ab = f.subscribe(scope(&["t1", "t2"]));
        let none = f.subscribe(scope(&["t9"]));
        let got = feed(
            &mut f,
            &[
                build::begin(0x100, 1),
                relation(),
                insert("1", "t1"),
                insert("2", "t2"),
                update("1", "t1", "t2"),
                build::commit(0x100, 0x110),
                build::begin(0x200, 2),
                insert("3", "t1"),
                build::commit(0x200, 0x210),
            ],
        );
        // a: Begin, Relation (lazily), Insert, the move out as a Delete, Commit; then the second
        // transaction without the Relation again.
        assert_eq!(got[&a], "BRIdCBIC");
        // b: its first change is the second insert; the move in arrives as an Insert.
        assert_eq!(got[&b], "BRIiC");
        // ab: both tenants: the update stays an update.
        assert_eq!(got[&ab], "BRIIUCBIC");
        assert!(
            !got.contains_key(&none),
            "no frame for a client outside every change"
        );
    }

    #[test]
    fn an_unknown_old_value_reaches_no_client_and_is_warned_about_through_the_memo() {
        // REPLICA IDENTITY DEFAULT on id alone: an update's old tenant is never sent.
        let mut rel = relation();
        let tenant = rel.windows(6).position(|w| w == b"tenant").unwrap();
        rel[tenant - 1] = 0; // not part of the identity
        let identity = rel.windows(9).position(|w| w == b"public\0t\0").unwrap() + 9;
        rel[identity] = b'd';
        let mut upd = vec![b'U'];
        upd.extend_from_slice(&REL.to_be_bytes());
        upd.push(b'N');
        tuple("1", "t1", &mut upd);
        let memo = Arc::new(RouteMemo::new());
        let mut f = FanOut::sharing(memo.clone());
        let a = f.subscribe(scope(&["t1"]));
        let got = feed(
            &mut f,
            &[
                rel,
                build::begin(0x100, 1),
                insert("1", "t1"),
                upd,
                build::commit(0x100, 0x110),
            ],
        );
        assert_eq!(got[&a], "BRIC", "the update is out of scope");
        assert!(memo.warned(REL), "and the relay says so, once per relation");
    }

    #[test]
    fn unsubscribed_clients_receive_nothing_and_routes_are_freed() {
        let mut f = FanOut::new();
        let a = f.subscribe(scope(&["t1"]));
        f.unsubscribe(a);
        assert_eq!(f.clients(), 0);
        assert!(f.routes.is_empty());
        let got = feed(
            &mut f,
            &[
                build::begin(1, 1),
                relation(),
                insert("1", "t1"),
                build::commit(1, 2),
            ],
        );
        assert!(got.is_empty());
        // A client subscribing after the Relation was seen still gets it before its change.
        let b = f.subscribe(scope(&["t1"]));
        let got = feed(
            &mut f,
            &[build::begin(3, 2), insert("2", "t1"), build::commit(3, 4)],
        );
        assert_eq!(got[&b], "BRIC");
    }
}
