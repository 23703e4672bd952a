//! One shared log reader for the caught-up row-scoped clients: each change is decoded once and
//! routed by `(table, column, value)` to the clients whose scope it touches
//! ([`super::scope::FanOut`]), instead of every client reading, classifying and judging every
//! frame itself. With 10,000 clients over 1,000 tenants a change costs its few recipients, not
//! 10,000 verdicts (BENCHMARKS.md, "Row scopes").
//!
//! A client ([`super::session::ClientStream`]) reads the log with its own reader until it is
//! caught up right after a commit; it then asks to join. The broadcast subscribes it at the
//! first commit boundary it stands at, at or past the client's position: the client goes on
//! with its own reader up to and including that commit, then reads only its feed, which starts
//! right after it. Both readers read the same log, so the stream goes on without a gap or a
//! repeat.
//!
//! The fan-out core routes plain transactions. On anything else (stream blocks, two-phase
//! messages, a source `Reset`, a frame it cannot parse) and when a client's queue grows past
//! [`QUEUE_LIMIT`] bytes, the broadcast *releases* clients: each gets [`FeedItem::Release`]
//! with the last commit routed, and the session turns that into what a reconnect is on the
//! wire: a Reset frame, then its own reader again after that commit. Clients drop what they
//! held of open transactions on Reset, so a release mid-transaction is safe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;

use super::classify::Classifier;
use super::filter::FrameClass;
use super::scope::{ClientId, FanOut, Out, RouteMemo};
use super::session::{commit_end, HEARTBEAT_EVERY};
use crate::auth::RowScope;
use crate::log::{Durable, Log, LogReader, OwnedFrame};
use crate::metrics::Metrics;

/// Bytes a client may have queued before it is released to read at its own pace again.
pub const QUEUE_LIMIT: usize = 256 << 10;

/// Frames routed between two looks at the command queue (joins are settled after every commit
/// regardless).
const BATCH: usize = 512;

/// What a fan-out client receives, in log order.
#[derive(Debug)]
pub enum FeedItem {
    Frame(Out),
    /// Idle: every transaction up to here was routed.
    Heartbeat(Lsn),
    /// Read the log with an own reader again, after the commit ending at `after` (the last one
    /// routed); nothing follows.
    Release {
        after: Lsn,
    },
}

/// A client's subscription to the broadcast. Dropping it leaves.
#[derive(Debug)]
pub struct Feed {
    id: ClientId,
    /// The commit after which the feed starts: the client reads its own reader up to and
    /// including this commit, then only the feed.
    pub switch_at: Lsn,
    rx: mpsc::UnboundedReceiver<FeedItem>,
    queued: Arc<AtomicUsize>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Feed {
    /// The next item if one is queued (`Err(true)`: the broadcast is gone).
    pub fn try_next(&mut self) -> Result<FeedItem, bool> {
        match self.rx.try_recv() {
            Ok(item) => Ok(self.taken(item)),
            Err(mpsc::error::TryRecvError::Empty) => Err(false),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(true),
        }
    }

    /// Waits for the next item (`None`: the broadcast is gone).
    pub async fn next(&mut self) -> Option<FeedItem> {
        let item = self.rx.recv().await?;
        Some(self.taken(item))
    }

    fn taken(&self, item: FeedItem) -> FeedItem {
        self.queued.fetch_sub(cost(&item), Relaxed);
        item
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Leave(self.id));
    }
}

fn cost(item: &FeedItem) -> usize {
    match item {
        FeedItem::Frame(Out::Shared(f)) => f.payload.len() + 32,
        FeedItem::Frame(Out::Own(f)) => f.payload.len() + 32,
        _ => 32,
    }
}

enum Command {
    Join {
        after: Lsn,
        scopes: Vec<((String, String), RowScope)>,
        reply: oneshot::Sender<Option<Feed>>,
    },
    Leave(ClientId),
}

/// The handle the serving side holds (cheap to clone). The task starts with the first join, at
/// that client's position, and runs until shutdown.
#[derive(Clone)]
pub struct Broadcast {
    commands: mpsc::UnboundedSender<Command>,
}

impl Broadcast {
    /// `routes` is the relay's scoped-decoding memo (`Hub::routes`), shared for its warnings.
    pub fn start(
        log: Log,
        metrics: Arc<Metrics>,
        routes: Arc<RouteMemo>,
        shutdown: watch::Receiver<bool>,
    ) -> Broadcast {
        let (tx, rx) = mpsc::unbounded_channel();
        let durable = log.subscribe_visible();
        let task = Task {
            log,
            metrics,
            commands_tx: tx.clone(),
            reader: None,
            classifier: Classifier::new(),
            fan: FanOut::sharing(routes),
            clients: HashMap::new(),
            pending: Vec::new(),
            last_commit: Lsn::ZERO,
            at_commit: false,
            deliveries: Vec::new(),
            next_heartbeat: tokio::time::Instant::now() + HEARTBEAT_EVERY,
        };
        let running = tokio::spawn(task.run(rx, shutdown, durable));
        tokio::spawn(async move {
            if let Err(e) = running.await {
                // Joins fail from now on and fed clients end their streams and reconnect:
                // everyone reads the log on their own again. Never silent.
                tracing::error!(error = %e, "the shared reader for scoped clients stopped; they read the log on their own");
            }
        });
        Broadcast { commands: tx }
    }

    /// Asks to be served by the shared reader, for a client whose own reader stands right
    /// after the commit ending at `after`. The answer comes once the shared reader stands
    /// right after a commit at or past `after` ([`Feed::switch_at`]). `None`: the broadcast
    /// has stopped.
    pub async fn join(
        &self,
        after: Lsn,
        scopes: Vec<((String, String), RowScope)>,
    ) -> Option<Feed> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Join {
                after,
                scopes,
                reply,
            })
            .ok()?;
        answer.await.ok().flatten()
    }
}

struct Subscriber {
    tx: mpsc::UnboundedSender<FeedItem>,
    queued: Arc<AtomicUsize>,
}

impl Subscriber {
    /// Adds `item` to the bytes queued for this client, before it is sent; returns the total.
    fn count(&self, item: &FeedItem) -> usize {
        let c = cost(item);
        self.queued.fetch_add(c, Relaxed).wrapping_add(c)
    }
}

type Pending = (
    Lsn,
    Vec<((String, String), RowScope)>,
    oneshot::Sender<Option<Feed>>,
);

struct Task {
    log: Log,
    metrics: Arc<Metrics>,
    commands_tx: mpsc::UnboundedSender<Command>,
    reader: Option<LogReader>,
    classifier: Classifier,
    fan: FanOut,
    clients: HashMap<ClientId, Subscriber>,
    pending: Vec<Pending>,
    /// The end LSN of the last commit routed: everything up to it reached every client that
    /// wanted it (where released clients resume).
    last_commit: Lsn,
    /// Whether that commit is the last frame routed: clients can join exactly here.
    at_commit: bool,
    deliveries: Vec<(ClientId, Out)>,
    next_heartbeat: tokio::time::Instant,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut shutdown: watch::Receiver<bool>,
        mut durable: watch::Receiver<Durable>,
    ) {
        loop {
            while let Ok(c) = commands.try_recv() {
                self.command(c);
            }
            self.settle();
            if *shutdown.borrow() {
                break; // dropping the senders ends every feed; sessions end their streams
            }
            let routed = match self.route_available() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "the shared reader failed; releasing its clients");
                    self.release_all();
                    // Nobody joins a reader that is gone; the next join reopens it there.
                    for (_, _, reply) in self.pending.drain(..) {
                        let _ = reply.send(None);
                    }
                    self.reader = None;
                    self.at_commit = false;
                    0
                }
            };
            // Due even while busy: a client none of the traffic is for still hears from us.
            if tokio::time::Instant::now() >= self.next_heartbeat {
                self.heartbeat();
            }
            if routed > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => break,
                },
                // A closed log or a dropped shutdown sender: the relay is going away.
                changed = durable.changed() => if changed.is_err() { break },
                changed = shutdown.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(self.next_heartbeat) => self.heartbeat(),
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Join {
                after,
                scopes,
                reply,
            } => {
                if self.reader.is_none() {
                    // Start (or restart after an error) where the first client stands.
                    match self.log.reader(Some(after)) {
                        Ok(r) => {
                            // The fan-out stays (it has no clients now): its ids must never be
                            // reused, or a late Leave would remove a newer client.
                            self.reader = Some(r);
                            self.classifier = Classifier::new();
                            self.last_commit = after;
                            self.at_commit = true;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, %after, "the shared reader could not open there");
                            let _ = reply.send(None);
                            return;
                        }
                    }
                }
                self.pending.push((after, scopes, reply));
            }
            Command::Leave(id) => {
                if self.clients.remove(&id).is_some() {
                    self.fan.unsubscribe(id);
                    self.metrics.fanout_clients.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// Subscribes the clients waiting to join, if the reader stands right after a commit at or
    /// past their position: each switches to its feed once its own reader has read that commit.
    /// Those still ahead of the reader, or waiting for it to finish a transaction, wait.
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut keep = Vec::new();
        for (after, scopes, reply) in std::mem::take(&mut self.pending) {
            if reply.is_closed() {
                continue; // the client gave up waiting
            }
            if self.at_commit && self.last_commit >= after {
                tracing::debug!(%after, switch_at = %self.last_commit, "the shared reader takes a client");
                let feed = self.subscribe(scopes);
                if let Err(Some(feed)) = reply.send(Some(feed)) {
                    drop(feed); // the client gave up meanwhile: it leaves at once
                }
            } else {
                keep.push((after, scopes, reply));
            }
        }
        self.pending = keep;
    }

    fn subscribe(&mut self, scopes: Vec<((String, String), RowScope)>) -> Feed {
        let id = self.fan.subscribe(scopes);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.clients.insert(
            id,
            Subscriber {
                tx,
                queued: queued.clone(),
            },
        );
        self.metrics.fanout_clients.fetch_add(1, Relaxed);
        self.metrics.fanout_joins.fetch_add(1, Relaxed);
        Feed {
            id,
            switch_at: self.last_commit,
            rx,
            queued,
            commands: self.commands_tx.clone(),
        }
    }

    /// Routes the frames available now (at most [`BATCH`]); returns how many.
    fn route_available(&mut self) -> Result<usize, crate::log::LogError> {
        let mut n = 0;
        while n < BATCH {
            let Some(reader) = &mut self.reader else {
                break;
            };
            let Some(frame) = reader.next_frame()? else {
                break;
            };
            n += 1;
            self.route(frame);
            if self.at_commit {
                self.settle();
            }
        }
        Ok(n)
    }

    fn route(&mut self, frame: OwnedFrame) {
        if frame.kind == FrameKind::Heartbeat {
            // The writer logs these only between transactions: pass them on, and stay a join
            // point (a session treats them the same way).
            for sub in self.clients.values() {
                let item = FeedItem::Heartbeat(frame.lsn);
                sub.count(&item);
                let _ = sub.tx.send(item);
            }
            return;
        }
        let class = self.classifier.classify(frame.kind, &frame.payload);
        let routable = matches!(frame.kind, FrameKind::Wal | FrameKind::Prelude)
            && !self.classifier.last_in_stream()
            && matches!(
                class,
                FrameClass::Begin
                    | FrameClass::Commit
                    | FrameClass::Origin
                    | FrameClass::Type
                    | FrameClass::Relation { .. }
                    | FrameClass::Change { .. }
                    | FrameClass::Truncate { .. }
                    | FrameClass::Message { .. }
            );
        if !routable {
            // Not for this core: hand everyone back to their own readers before this frame,
            // and keep it out of the fan-out's state (a Relation inside a stream block has the
            // xid-prefixed layout; it must not describe the relation for plain changes).
            if !self.clients.is_empty() {
                tracing::debug!(kind = ?frame.kind, class = ?class, lsn = %frame.lsn, after = %self.last_commit, clients = self.clients.len(), "the shared reader hands its clients back");
                self.release_all();
            }
            self.at_commit = false;
            return;
        }
        let commit = match class {
            FrameClass::Commit => commit_end(&frame.payload),
            _ => None,
        };
        self.fan.push(frame, &class, &mut self.deliveries);
        self.deliver();
        self.at_commit = commit.is_some();
        if let Some(end) = commit {
            self.last_commit = end;
        }
    }

    fn deliver(&mut self) {
        let mut over = Vec::new();
        for (id, out) in self.deliveries.drain(..) {
            let Some(sub) = self.clients.get(&id) else {
                continue;
            };
            let item = FeedItem::Frame(out);
            // Counted before it is sent: the session subtracts when it takes it.
            let queued = sub.count(&item);
            if sub.tx.send(item).is_err() {
                over.push(id); // the client is gone; its Leave may still be on the way
            } else if queued > QUEUE_LIMIT {
                over.push(id);
            }
        }
        for id in over {
            self.release(id);
        }
    }

    fn release(&mut self, id: ClientId) {
        let Some(sub) = self.clients.remove(&id) else {
            return;
        };
        self.fan.unsubscribe(id);
        self.metrics.fanout_clients.fetch_sub(1, Relaxed);
        self.metrics.fanout_releases.fetch_add(1, Relaxed);
        let item = FeedItem::Release {
            after: self.last_commit,
        };
        sub.count(&item);
        let _ = sub.tx.send(item);
    }

    fn release_all(&mut self) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.release(id);
        }
    }

    /// Tells every client that all transactions up to the last commit were routed, when the
    /// reader stands right after it. (Not the log's visible LSN: frames published after the
    /// reader last looked would then lie below a position the client already passed.)
    fn heartbeat(&mut self) {
        self.next_heartbeat = tokio::time::Instant::now() + HEARTBEAT_EVERY;
        tracing::debug!(last_commit = %self.last_commit, at_commit = self.at_commit, clients = self.clients.len(), pending = self.pending.len(), visible = %self.log.visible().lsn, position = self.reader.as_ref().map(|r| r.position()), "shared reader heartbeat");
        if !self.at_commit {
            return;
        }
        for sub in self.clients.values() {
            let item = FeedItem::Heartbeat(self.last_commit);
            sub.count(&item);
            let _ = sub.tx.send(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::Registry;
    use crate::log::pgoutput_peek::build;
    use crate::log::{LogConfig, LogWriter};
    use crate::serve::request::StreamRequest;
    use crate::serve::session::Hub;
    use std::time::Duration;
    use walcast_decoder::frame::FrameReader;

    const REL: u32 = 16384;

    fn insert(id: u64, tenant: &str) -> Vec<u8> {
        let mut body = Vec::new();
        build::tenant_tuple(&id.to_string(), tenant, &mut body);
        build::insert(REL, &body[..])
    }

    /// Transaction `n`: one row for tenant a, one for tenant b (ids 10n+1, 10n+2).
    fn txn(w: &mut LogWriter, n: u64) {
        let base = n * 0x1000;
        w.append_wal(Lsn(base), &build::begin(base + 0x800, n as u32))
            .unwrap();
        if n == 1 {
            w.append_wal(Lsn(0), &build::tenant_relation(REL)).unwrap();
        }
        w.append_wal(Lsn(base + 0x100), &insert(10 * n + 1, "a"))
            .unwrap();
        w.append_wal(Lsn(base + 0x200), &insert(10 * n + 2, "b"))
            .unwrap();
        w.append_wal(
            Lsn(base + 0x800),
            &build::commit(base + 0x800, base + 0x810),
        )
        .unwrap();
    }

    /// A streamed transaction (for a tenant nobody follows): the shared reader hands its
    /// clients back to their own readers.
    fn streamed(w: &mut LogWriter, n: u64) {
        let base = n * 0x1000;
        let xid = 9000 + n as u32;
        let mut body = Vec::new();
        build::tenant_tuple("999", "z", &mut body);
        w.append_wal(Lsn(base), &build::stream_start(xid)).unwrap();
        w.append_wal(Lsn(base + 0x100), &build::stream_insert(xid, REL, &body))
            .unwrap();
        w.append_wal(Lsn(base + 0x200), &build::stream_stop())
            .unwrap();
        w.append_wal(
            Lsn(base + 0x800),
            &build::stream_commit(xid, base + 0x800, base + 0x810),
        )
        .unwrap();
    }

    fn request(tenant: &str) -> StreamRequest {
        StreamRequest {
            tables: vec![("public".into(), "t".into())],
            scopes: vec![(
                ("public".into(), "t".into()),
                RowScope {
                    column: "tenant".into(),
                    equals: vec![tenant.into()],
                },
            )],
            ..Default::default()
        }
    }

    /// Applies a client's stream as the native client does: inserts held until their commit,
    /// dropped on Reset, commits at or below the last one applied dropped. Returns the ids.
    fn apply(bytes: &[u8]) -> Vec<u64> {
        let mut reader = FrameReader::new();
        reader.push(bytes);
        let (mut applied, mut open, mut last) = (Vec::new(), Vec::new(), Lsn::ZERO);
        while let Some(f) = reader.next_frame().unwrap() {
            match (f.kind, f.payload.first()) {
                (FrameKind::Reset, _) => open.clear(),
                (FrameKind::Wal, Some(b'B')) => open.clear(),
                (FrameKind::Wal, Some(b'I')) => {
                    // 'I', relid, 'N', ncols, 't', len, id...
                    let len = u32::from_be_bytes(f.payload[9..13].try_into().unwrap()) as usize;
                    let id = std::str::from_utf8(&f.payload[13..13 + len]).unwrap();
                    open.push(id.parse().unwrap());
                }
                (FrameKind::Wal, Some(b'C')) => {
                    let end = commit_end(f.payload).unwrap();
                    if end > last {
                        applied.append(&mut open);
                        last = end;
                    }
                    open.clear();
                }
                _ => {}
            }
        }
        applied
    }

    async fn collect_until(
        stream: &mut crate::serve::session::ClientStream,
        got: &mut Vec<u8>,
        want: usize,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while apply(got).len() < want {
            let chunk = tokio::time::timeout_at(deadline, stream.next_chunk())
                .await
                .unwrap_or_else(|_| panic!("the stream stalled at {} of {want}", apply(got).len()))
                .expect("the stream ended");
            got.extend_from_slice(&chunk);
        }
    }

    #[tokio::test]
    async fn scoped_clients_move_to_the_shared_reader_and_back_without_gap_or_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut w, _) = Log::open(LogConfig::new(dir.path().join("log"))).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let hub = Hub {
            broadcast: Some(Broadcast::start(
                log.clone(),
                metrics.clone(),
                Default::default(),
                shutdown.clone(),
            )),
            log,
            metrics: metrics.clone(),
            shutdown,
            consumers: Registry::open(dir.path()).unwrap(),
            routes: Default::default(),
            bootstrap: None,
            published: Default::default(),
        };
        w.set_start_lsn(Lsn(0x10)).unwrap();
        txn(&mut w, 1);
        w.sync().unwrap();
        let mut a = hub.open(&request("a")).unwrap();
        let mut b = hub.open(&request("b")).unwrap();
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        collect_until(&mut a, &mut got_a, 1).await;
        collect_until(&mut b, &mut got_b, 1).await;

        // Caught up after transaction 1: both move to the shared reader, which then serves
        // transactions 2–5; a streamed transaction sends them back; 7–10 after it.
        let joins_before = metrics.fanout_joins.load(Relaxed);
        let (mut n, mut rows) = (2, 1);
        for round in 0..2 {
            for _ in 0..4 {
                txn(&mut w, n);
                w.publish().unwrap();
                n += 1;
                rows += 1;
                collect_until(&mut a, &mut got_a, rows).await;
                collect_until(&mut b, &mut got_b, rows).await;
            }
            if round == 0 {
                assert!(
                    metrics.fanout_joins.load(Relaxed) >= joins_before + 2,
                    "both clients were served by the shared reader"
                );
                assert_eq!(metrics.fanout_clients.load(Relaxed), 2);
                streamed(&mut w, n);
                n += 1;
                w.publish().unwrap();
            }
        }
        w.sync().unwrap();
        let want = |tenant: u64| -> Vec<u64> {
            (1..n)
                .filter(|&t| t != 6)
                .map(|t| 10 * t + tenant)
                .collect()
        };
        assert_eq!(apply(&got_a), want(1));
        assert_eq!(apply(&got_b), want(2));
        assert!(
            metrics.fanout_releases.load(Relaxed) >= 2,
            "released at the stream"
        );
        assert!(
            metrics.fanout_joins.load(Relaxed) >= joins_before + 4,
            "and joined again after it"
        );
        // The shared path sent only the client's own rows (no other tenant's id on its wire).
        let mut reader = FrameReader::new();
        reader.push(&got_a);
        while let Some(f) = reader.next_frame().unwrap() {
            if f.kind == FrameKind::Wal && f.payload.first() == Some(&b'I') {
                assert!(f.payload.ends_with(b"a"), "tenant a sees only its rows");
            }
        }
        drop(a);
        drop(b);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(metrics.fanout_clients.load(Relaxed), 0, "left on drop");
    }

    // ---- Randomized: the shared path serves exactly what a client's own reader would ----

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn tuple_of(id: u64, tenant: &str) -> Vec<u8> {
        let mut t = Vec::new();
        build::tenant_tuple(&id.to_string(), tenant, &mut t);
        t
    }

    /// Reads a `tenant_tuple` at `at`: (id, tenant, the offset after it).
    fn read_tuple(p: &[u8], mut at: usize) -> (u64, String, usize) {
        at += 2;
        let mut vals = Vec::new();
        for _ in 0..2 {
            at += 1;
            let len = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
            at += 4;
            vals.push(String::from_utf8(p[at..at + len].to_vec()).unwrap());
            at += len;
        }
        (vals[0].parse().unwrap(), vals[1].clone(), at)
    }

    /// The row changes of one message: (id, Some(tenant)) sets a row, (id, None) removes it.
    fn changes_of(p: &[u8], in_stream: bool) -> Vec<(u64, Option<String>)> {
        let at = 1 + 4 * usize::from(in_stream) + 4;
        match p[0] {
            b'I' => {
                let (id, t, _) = read_tuple(p, at + 1);
                vec![(id, Some(t))]
            }
            b'U' => {
                let (old, _, next) = read_tuple(p, at + 1);
                let (id, t, _) = read_tuple(p, next + 1);
                vec![(old, None), (id, Some(t))]
            }
            b'D' => vec![(read_tuple(p, at + 1).0, None)],
            _ => vec![],
        }
    }

    /// A careful client: applies at commit, drops open work on Reset, drops a commit at or
    /// below the last one applied.
    fn rebuild(bytes: &[u8]) -> std::collections::BTreeMap<u64, String> {
        let mut reader = FrameReader::new();
        reader.push(bytes);
        let mut rows = std::collections::BTreeMap::new();
        let (mut open, mut last) = (Vec::new(), Lsn::ZERO);
        let mut streams: HashMap<u32, Vec<(u64, Option<String>)>> = HashMap::new();
        let mut block: Option<u32> = None;
        let apply = |ops: Vec<(u64, Option<String>)>,
                     rows: &mut std::collections::BTreeMap<u64, String>| {
            for (id, t) in ops {
                match t {
                    Some(t) => rows.insert(id, t),
                    None => rows.remove(&id),
                };
            }
        };
        while let Some(f) = reader.next_frame().unwrap() {
            let p = f.payload;
            match (f.kind, p.first()) {
                (FrameKind::Reset, _) => {
                    open.clear();
                    streams.clear();
                    block = None;
                }
                (FrameKind::Wal, Some(b'B')) => open.clear(),
                (FrameKind::Wal, Some(b'S')) => {
                    block = Some(u32::from_be_bytes(p[1..5].try_into().unwrap()))
                }
                (FrameKind::Wal, Some(b'E')) => block = None,
                (FrameKind::Wal, Some(b'I' | b'U' | b'D')) => match block {
                    Some(x) => streams.entry(x).or_default().extend(changes_of(p, true)),
                    None => open.extend(changes_of(p, false)),
                },
                (FrameKind::Wal, Some(b'C')) => {
                    let end = commit_end(p).unwrap();
                    if end > last {
                        apply(std::mem::take(&mut open), &mut rows);
                        last = end;
                    }
                    open.clear();
                }
                (FrameKind::Wal, Some(b'c')) => {
                    let x = u32::from_be_bytes(p[1..5].try_into().unwrap());
                    let end = Lsn(u64::from_be_bytes(p[14..22].try_into().unwrap()));
                    let ops = streams.remove(&x).unwrap_or_default();
                    if end > last {
                        apply(ops, &mut rows);
                        last = end;
                    }
                }
                _ => {}
            }
        }
        rows
    }

    #[tokio::test]
    async fn random_loads_the_shared_path_equals_the_own_reader() {
        for seed in 1..=25u64 {
            random_load(seed).await;
        }
    }

    async fn random_load(seed: u64) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let dir = tempfile::tempdir().unwrap();
        let (log, mut w, _) = Log::open(LogConfig::new(dir.path().join("log"))).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let hub = |broadcast: Option<Broadcast>| Hub {
            broadcast,
            log: log.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            consumers: Registry::open(dir.path()).unwrap(),
            routes: Default::default(),
            bootstrap: None,
            published: Default::default(),
        };
        let shared = hub(Some(Broadcast::start(
            log.clone(),
            metrics.clone(),
            Default::default(),
            shutdown.clone(),
        )));
        let own = hub(None);
        let tenants = ["a", "b", "c"];
        // The table as PostgreSQL would have it: id -> tenant.
        let mut table: std::collections::BTreeMap<u64, String> = Default::default();
        let mut lsn = 0x1000u64;
        let mut next = |step: u64| {
            lsn += step;
            lsn
        };
        w.set_start_lsn(Lsn(0x10)).unwrap();
        // The relation in a first transaction.
        let b = next(0x100);
        w.append_wal(Lsn(b), &build::begin(b + 0x80, 1)).unwrap();
        w.append_wal(Lsn(0), &build::tenant_relation(REL)).unwrap();
        w.append_wal(Lsn(b + 0x80), &build::commit(b + 0x80, b + 0x90))
            .unwrap();
        next(0x100);
        w.sync().unwrap();
        let mut clients: Vec<(crate::serve::session::ClientStream, Vec<u8>, &str, bool)> =
            Vec::new();
        for t in ["a", "b"] {
            clients.push((shared.open(&request(t)).unwrap(), Vec::new(), t, true));
            clients.push((own.open(&request(t)).unwrap(), Vec::new(), t, false));
        }
        let mut xid = 10u32;
        let (mut open_stream, mut fresh, mut in_stream): (Option<u32>, u64, Vec<(u64, String)>) =
            (None, 1000, Vec::new());
        for _round in 0..60 {
            // A burst of transactions: inserts, updates (some moving tenants), deletes; now and
            // then a streamed one.
            for _ in 0..rng.next(4) {
                xid += 1;
                // Now and then a block of the open streamed transaction (fresh ids, applied at
                // its commit), interleaved with plain transactions as PostgreSQL streams them.
                if rng.next(5) == 0 {
                    let sx = *open_stream.get_or_insert_with(|| {
                        xid += 1;
                        xid
                    });
                    w.append_wal(Lsn(next(0x10)), &build::stream_start(sx))
                        .unwrap();
                    if rng.next(2) == 0 {
                        // PostgreSQL describes a relation again inside a stream block.
                        w.append_wal(Lsn(0), &build::tenant_relation_in_stream(sx, REL))
                            .unwrap();
                    }
                    for _ in 0..1 + rng.next(3) {
                        fresh += 1;
                        let t = tenants[rng.next(3) as usize];
                        let mut body = Vec::new();
                        build::tenant_tuple(&fresh.to_string(), t, &mut body);
                        w.append_wal(Lsn(next(0x10)), &build::stream_insert(sx, REL, &body))
                            .unwrap();
                        in_stream.push((fresh, t.to_string()));
                    }
                    w.append_wal(Lsn(next(0x10)), &build::stream_stop())
                        .unwrap();
                    if rng.next(3) == 0 {
                        let c = next(0x10);
                        w.append_wal(Lsn(c), &build::stream_commit(sx, c, c + 8))
                            .unwrap();
                        next(0x10);
                        table.extend(in_stream.drain(..));
                        open_stream = None;
                    }
                    continue;
                }
                let mut ops = Vec::new();
                for _ in 0..1 + rng.next(4) {
                    let id = 1 + rng.next(30);
                    let tenant = tenants[rng.next(3) as usize];
                    match table.get(&id).cloned() {
                        None => {
                            ops.push((b'I', id, None, tenant));
                            table.insert(id, tenant.to_string());
                        }
                        Some(old) if rng.next(3) == 0 => {
                            ops.push((b'D', id, Some(old), tenant));
                            table.remove(&id);
                        }
                        Some(old) => {
                            ops.push((b'U', id, Some(old), tenant));
                            table.insert(id, tenant.to_string());
                        }
                    }
                }
                let b = next(0x10);
                let end = b + 0x10 * (ops.len() as u64 + 2);
                w.append_wal(Lsn(b), &build::begin(end, xid)).unwrap();
                for (kind, id, old, tenant) in &ops {
                    let mut m = vec![*kind];
                    m.extend_from_slice(&REL.to_be_bytes());
                    if let Some(o) = old {
                        m.push(b'O');
                        m.extend_from_slice(&tuple_of(*id, o));
                    }
                    if *kind != b'D' {
                        m.push(b'N');
                        m.extend_from_slice(&tuple_of(*id, tenant));
                    }
                    w.append_wal(Lsn(next(0x10)), &m).unwrap();
                }
                let c = next(0x10);
                w.append_wal(Lsn(c), &build::commit(c, c + 8)).unwrap();
                next(0x10);
            }
            w.publish().unwrap();
            // Each client is polled a random number of times (never blocking for long).
            for (client, got, _, _) in clients.iter_mut() {
                for _ in 0..rng.next(4) {
                    match tokio::time::timeout(Duration::from_millis(1), client.next_chunk()).await
                    {
                        Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                        Ok(None) => panic!("seed {seed}: the stream ended"),
                        Err(_) => break,
                    }
                }
            }
            tokio::task::yield_now().await;
        }
        if let Some(sx) = open_stream {
            let c = next(0x10);
            w.append_wal(Lsn(c), &build::stream_commit(sx, c, c + 8))
                .unwrap();
            next(0x10);
            table.extend(in_stream.drain(..));
            w.publish().unwrap();
        }
        w.sync().unwrap();
        assert!(
            metrics.fanout_joins.load(Relaxed) > 0 && metrics.fanout_releases.load(Relaxed) > 0,
            "seed {seed}: the clients moved to the shared reader and back"
        );
        // Drain everything.
        for (stream, got, tenant, is_shared) in clients.iter_mut() {
            let want: std::collections::BTreeMap<u64, String> = table
                .iter()
                .filter(|(_, t)| t.as_str() == *tenant)
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while rebuild(got) != want {
                let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next_chunk()).await
                else {
                    panic!(
                        "seed {seed}: client {tenant} (shared path: {is_shared}) holds {:?}, want {want:?}",
                        rebuild(got)
                    );
                };
                got.extend_from_slice(&chunk);
            }
        }
    }
}
