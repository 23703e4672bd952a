//! Which LSN may be confirmed to PostgreSQL, and when to say so.
//!
//! A pure state machine: events and the current time go in, a standby status to send comes out.
//! No IO, no clock of its own. The one rule that matters: the flush LSN sent to the server never
//! passes a commit that is not yet durable in the log (fsynced) and acknowledged by every
//! registered durable consumer, because PostgreSQL forgets everything before it.
//!
//! - flush = min(durable commit end LSN, min consumer ack), never 0, never backwards;
//! - when no transaction is open and everything received is durable, a keepalive's `wal_end`
//!   may be confirmed too, so an idle slot does not retain WAL (consumers that acked every
//!   commit received do not hold it back; a consumer behind does);
//! - a keepalive with `reply_requested` is answered at once;
//! - otherwise a status goes out every `status_interval`, and soon after flush advanced
//!   (at most once per `min_interval`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use walcast_decoder::Lsn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackConfig {
    /// Send a status at least this often (keep well under `wal_sender_timeout`).
    pub status_interval: Duration,
    /// Rate limit for statuses sent because flush advanced.
    pub min_interval: Duration,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            status_interval: Duration::from_secs(10),
            min_interval: Duration::from_millis(100),
        }
    }
}

/// A standby status update to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The highest position received (for `pg_stat_replication`; logical slots ignore it).
    pub write: Lsn,
    /// What the slot may forget up to: `confirmed_flush_lsn` becomes this.
    pub flush: Lsn,
    pub apply: Lsn,
    /// We never ask the server to reply.
    pub reply_requested: bool,
}

/// What the relay saw, in stream order, plus durability news from the log and consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// XLogData arrived with this `wal_end` (the received position).
    Received { wal_end: Lsn },
    /// `B` (or `b`, begin prepare).
    Begin,
    /// `C` (or `P` prepare, `K` commit prepared, `r` rollback prepared): the transaction ends at
    /// `end_lsn`.
    Commit { end_lsn: Lsn },
    /// `S` stream start of top-level transaction `xid`.
    StreamStart { xid: u32 },
    /// `E` stream stop.
    StreamStop,
    /// `c` stream commit (or `p` stream prepare).
    StreamCommit { xid: u32, end_lsn: Lsn },
    /// `A` stream abort; the whole transaction ends when `subxid == xid`.
    StreamAbort { xid: u32, subxid: u32 },
    /// `k` keepalive.
    Keepalive { wal_end: Lsn, reply_requested: bool },
    /// The log fsynced everything up to this commit end LSN.
    Durable { lsn: Lsn },
    /// The lowest LSN acknowledged by all registered durable consumers (`None`: no such
    /// consumer, only the log counts).
    ConsumerAck { min: Option<Lsn> },
}

/// Classifies a pgoutput message (the XLogData payload) into the event feedback cares about,
/// through the log's field peeker (tag and fixed offsets only); anything else, or anything
/// too short, is `None`.
pub fn classify(data: &[u8]) -> Option<Event> {
    use crate::log::pgoutput_peek::{peek, Peeked};
    // Transaction boundaries never carry a stream xid, so the block state does not matter.
    Some(match peek(data, false).ok()? {
        Peeked::Begin { .. } | Peeked::BeginPrepare { .. } => Event::Begin,
        Peeked::Commit { end_lsn, .. }
        | Peeked::Prepare { end_lsn, .. }
        | Peeked::CommitPrepared { end_lsn, .. }
        | Peeked::RollbackPrepared { end_lsn, .. } => Event::Commit { end_lsn },
        Peeked::StreamStart { xid, .. } => Event::StreamStart { xid },
        Peeked::StreamStop => Event::StreamStop,
        Peeked::StreamCommit { xid, end_lsn, .. } | Peeked::StreamPrepare { xid, end_lsn, .. } => {
            Event::StreamCommit { xid, end_lsn }
        }
        Peeked::StreamAbort { xid, subxid } => Event::StreamAbort { xid, subxid },
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub struct Feedback {
    cfg: FeedbackConfig,
    /// Highest position received from the server.
    received: Lsn,
    /// Inside B…C of a non-streamed transaction.
    in_txn: bool,
    /// Inside an S…E block.
    in_stream_block: bool,
    /// Streamed transactions started but neither committed nor aborted.
    open_streams: BTreeSet<u32>,
    /// Highest commit end LSN received.
    last_commit: Lsn,
    /// Highest durable commit end LSN reported by the log.
    durable: Lsn,
    /// An idle keepalive position, confirmable once the log has `needs` durable.
    idle: Option<(Lsn, Lsn)>,
    /// Highest idle position whose condition has been met.
    idle_ok: Lsn,
    consumer_min: Option<Lsn>,
    /// The flush LSN last sent (or the slot's confirmed position at start).
    sent_flush: Lsn,
    last_sent: Option<Instant>,
    reply_due: bool,
}

impl Feedback {
    /// `start`: the slot's confirmed_flush_lsn (or the consistent point of a new slot). It is
    /// already confirmed, so re-sending it is always safe.
    pub fn new(start: Lsn, cfg: FeedbackConfig) -> Feedback {
        Feedback {
            cfg,
            received: start,
            in_txn: false,
            in_stream_block: false,
            open_streams: BTreeSet::new(),
            last_commit: start,
            durable: start,
            idle: None,
            idle_ok: start,
            consumer_min: None,
            sent_flush: start,
            last_sent: None,
            reply_due: false,
        }
    }

    /// When streaming starts past the slot's confirmed position (the log already holds more
    /// than the slot confirmed, e.g. after a crash or while a durable consumer held the slot
    /// back), `confirmed` is the slot's position: nothing above it counts as confirmed yet, so
    /// consumer acks still bound the flush sent. `start` (given to [`Feedback::new`]) stays the
    /// log's last durable commit.
    pub fn with_confirmed(mut self, confirmed: Lsn) -> Feedback {
        if !confirmed.is_zero() && confirmed < self.sent_flush {
            self.sent_flush = confirmed;
        }
        self
    }

    pub fn on(&mut self, ev: Event) {
        match ev {
            Event::Received { wal_end } => self.received = self.received.max(wal_end),
            Event::Begin => self.in_txn = true,
            Event::Commit { end_lsn } => {
                self.in_txn = false;
                self.last_commit = self.last_commit.max(end_lsn);
            }
            Event::StreamStart { xid } => {
                self.in_stream_block = true;
                self.open_streams.insert(xid);
            }
            Event::StreamStop => self.in_stream_block = false,
            Event::StreamCommit { xid, end_lsn } => {
                self.open_streams.remove(&xid);
                self.last_commit = self.last_commit.max(end_lsn);
            }
            Event::StreamAbort { xid, subxid } => {
                if xid == subxid {
                    self.open_streams.remove(&xid);
                }
            }
            Event::Keepalive {
                wal_end,
                reply_requested,
            } => {
                self.received = self.received.max(wal_end);
                self.reply_due |= reply_requested;
                // Mid-transaction keepalives say nothing about what is complete.
                if !self.in_txn && !self.in_stream_block && self.open_streams.is_empty() {
                    let needs = self.last_commit;
                    self.idle = Some(match self.idle {
                        Some((w, n)) if w >= wal_end => (w, n),
                        _ => (wal_end, needs),
                    });
                }
            }
            Event::Durable { lsn } => self.durable = self.durable.max(lsn),
            Event::ConsumerAck { min } => self.consumer_min = min,
        }
        if let Some((w, needs)) = self.idle {
            if self.durable >= needs {
                self.idle_ok = self.idle_ok.max(w);
                self.idle = None;
            }
        }
    }

    /// Feeds one XLogData: its received position and the pgoutput event it carries.
    pub fn on_xlog(&mut self, wal_end: Lsn, data: &[u8]) {
        self.on(Event::Received { wal_end });
        if let Some(ev) = classify(data) {
            self.on(ev);
        }
    }

    /// The flush LSN the rules allow right now (not necessarily sent yet).
    pub fn allowed_flush(&self) -> Lsn {
        // Durable commits, or an idle point behind which everything received is durable.
        let mut f = self.durable.max(self.idle_ok);
        if let Some(ack) = self.consumer_min {
            // Consumers can only ack what the log holds. Once they have acked every commit
            // received, they are caught up and must not pin an idle slot at their last commit.
            if ack < self.last_commit {
                f = f.min(ack);
            }
        }
        f.max(self.sent_flush)
    }

    /// The highest position received from the server.
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// The flush LSN last sent.
    pub fn sent_flush(&self) -> Lsn {
        self.sent_flush
    }

    /// Decides whether to send a status at `now`. When it returns `Some`, the caller must send
    /// it (the state assumes so).
    /// Whether the server asked for a reply that has not been sent yet.
    pub fn reply_pending(&self) -> bool {
        self.reply_due
    }

    pub fn poll(&mut self, now: Instant) -> Option<Status> {
        let flush = self.allowed_flush();
        let since = self.last_sent.map(|t| now.saturating_duration_since(t));
        let due = self.reply_due
            || since.map_or(true, |s| s >= self.cfg.status_interval)
            || (flush > self.sent_flush && since.map_or(true, |s| s >= self.cfg.min_interval));
        if !due {
            return None;
        }
        self.reply_due = false;
        self.last_sent = Some(now);
        self.sent_flush = flush;
        Some(Status {
            write: self.received.max(flush),
            flush,
            apply: flush,
            reply_requested: false,
        })
    }

    /// When `poll` should be called next at the latest, if nothing else happens.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        match self.last_sent {
            None => now,
            Some(t) if self.reply_due => t.min(now),
            Some(t) if self.allowed_flush() > self.sent_flush => t + self.cfg.min_interval,
            Some(t) => t + self.cfg.status_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn commit_msg(end: u64) -> Vec<u8> {
        let mut v = vec![b'C', 0];
        v.extend_from_slice(&(end - 8).to_be_bytes());
        v.extend_from_slice(&end.to_be_bytes());
        v.extend_from_slice(&0u64.to_be_bytes());
        v
    }

    fn fresh(start: u64) -> (Feedback, Instant) {
        let t0 = Instant::now();
        let mut f = Feedback::new(Lsn(start), FeedbackConfig::default());
        // The first poll always sends (announces us); take it out of the way.
        assert_eq!(f.poll(t0).unwrap().flush, Lsn(start));
        (f, t0)
    }

    #[test]
    fn classifies_commit_and_stream_messages() {
        assert_eq!(
            classify(&commit_msg(0x50)),
            Some(Event::Commit { end_lsn: Lsn(0x50) })
        );
        assert_eq!(
            classify(&crate::log::pgoutput_peek::build::begin(0x50, 7)),
            Some(Event::Begin)
        );
        assert_eq!(classify(b"B"), None, "short begin is ignored, not a panic");
        assert_eq!(
            classify(b"C\0\0"),
            None,
            "short commit is ignored, not a panic"
        );
        let mut s = vec![b'S'];
        s.extend_from_slice(&9u32.to_be_bytes());
        s.push(1);
        assert_eq!(classify(&s), Some(Event::StreamStart { xid: 9 }));
        let mut c = vec![b'c'];
        c.extend_from_slice(&9u32.to_be_bytes());
        c.push(0);
        c.extend_from_slice(&1u64.to_be_bytes());
        c.extend_from_slice(&0x77u64.to_be_bytes());
        assert_eq!(
            classify(&c),
            Some(Event::StreamCommit {
                xid: 9,
                end_lsn: Lsn(0x77)
            })
        );
        assert_eq!(classify(b"I..."), None);
    }

    #[test]
    fn flush_waits_for_durability() {
        let (mut f, t0) = fresh(0x10);
        f.on(Event::Begin);
        f.on_xlog(Lsn(0x40), &commit_msg(0x40));
        assert_eq!(
            f.poll(t0 + 200 * MS),
            None,
            "nothing durable yet, nothing due"
        );
        f.on(Event::Durable { lsn: Lsn(0x40) });
        let s = f.poll(t0 + 300 * MS).unwrap();
        assert_eq!(
            (s.flush, s.write, s.apply, s.reply_requested),
            (Lsn(0x40), Lsn(0x40), Lsn(0x40), false)
        );
    }

    #[test]
    fn consumer_acks_bound_flush() {
        let (mut f, t0) = fresh(0x10);
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x20)),
        });
        f.on(Event::Begin);
        f.on(Event::Commit { end_lsn: Lsn(0x40) });
        f.on(Event::Durable { lsn: Lsn(0x40) });
        assert_eq!(f.poll(t0 + 200 * MS).unwrap().flush, Lsn(0x20));
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x40)),
        });
        assert_eq!(f.poll(t0 + 400 * MS).unwrap().flush, Lsn(0x40));
    }

    #[test]
    fn never_backwards_never_zero() {
        let (mut f, t0) = fresh(0x100);
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x50)),
        });
        f.on(Event::Durable { lsn: Lsn(0x30) });
        let s = f.poll(t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(s.flush, Lsn(0x100), "start position is the floor");
        let mut g = Feedback::new(Lsn(0x10), FeedbackConfig::default());
        g.on(Event::Durable { lsn: Lsn(0x90) });
        assert_eq!(g.poll(t0).unwrap().flush, Lsn(0x90));
        g.on(Event::ConsumerAck {
            min: Some(Lsn(0x20)),
        });
        assert_eq!(
            g.poll(t0 + Duration::from_secs(20)).unwrap().flush,
            Lsn(0x90)
        );
    }

    #[test]
    fn idle_keepalive_advances_flush() {
        let (mut f, t0) = fresh(0x10);
        f.on(Event::Begin);
        f.on(Event::Commit { end_lsn: Lsn(0x40) });
        f.on(Event::Keepalive {
            wal_end: Lsn(0x90),
            reply_requested: false,
        });
        assert_eq!(
            f.allowed_flush(),
            Lsn(0x10),
            "commit 0x40 not durable: may not pass it"
        );
        f.on(Event::Durable { lsn: Lsn(0x40) });
        assert_eq!(f.allowed_flush(), Lsn(0x90));
        assert_eq!(f.poll(t0 + 200 * MS).unwrap().flush, Lsn(0x90));
        // bounded by consumer acks
        f.on(Event::Keepalive {
            wal_end: Lsn(0xA0),
            reply_requested: false,
        });
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x30)),
        });
        assert_eq!(
            f.allowed_flush(),
            Lsn(0x90),
            "never backwards, never past the ack"
        );
    }

    #[test]
    fn caught_up_consumers_do_not_pin_an_idle_slot() {
        let (mut f, t0) = fresh(0x10);
        f.on(Event::Begin);
        f.on(Event::Commit { end_lsn: Lsn(0x40) });
        f.on(Event::Durable { lsn: Lsn(0x40) });
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x40)),
        });
        f.on(Event::Keepalive {
            wal_end: Lsn(0x900),
            reply_requested: false,
        });
        assert_eq!(f.allowed_flush(), Lsn(0x900));
        assert_eq!(f.poll(t0 + 200 * MS).unwrap().flush, Lsn(0x900));
        // a consumer behind the last commit bounds it again
        f.on(Event::Begin);
        f.on(Event::Commit {
            end_lsn: Lsn(0x950),
        });
        f.on(Event::Durable { lsn: Lsn(0x950) });
        f.on(Event::Keepalive {
            wal_end: Lsn(0xA00),
            reply_requested: false,
        });
        assert_eq!(
            f.allowed_flush(),
            Lsn(0x900),
            "ack 0x40 < commit 0x950: no advance"
        );
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x950)),
        });
        assert_eq!(f.allowed_flush(), Lsn(0xA00));
    }

    #[test]
    fn resuming_ahead_of_the_slot_keeps_consumers_bound() {
        // The log holds up to 0x90, the slot confirmed only 0x40 (a consumer acked 0x40).
        let t0 = Instant::now();
        let mut f = Feedback::new(Lsn(0x90), FeedbackConfig::default()).with_confirmed(Lsn(0x40));
        f.on(Event::Durable { lsn: Lsn(0x90) });
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x40)),
        });
        assert_eq!(f.poll(t0).unwrap().flush, Lsn(0x40), "not past the ack");
        f.on(Event::Keepalive {
            wal_end: Lsn(0x100),
            reply_requested: false,
        });
        assert_eq!(
            f.allowed_flush(),
            Lsn(0x40),
            "idle, but the consumer is behind"
        );
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x60)),
        });
        assert_eq!(f.allowed_flush(), Lsn(0x60));
        f.on(Event::ConsumerAck {
            min: Some(Lsn(0x90)),
        });
        assert_eq!(
            f.allowed_flush(),
            Lsn(0x100),
            "caught up: the idle slot advances"
        );
        // without consumers, the log's position is confirmed at once
        let mut g = Feedback::new(Lsn(0x90), FeedbackConfig::default()).with_confirmed(Lsn(0x40));
        g.on(Event::Durable { lsn: Lsn(0x90) });
        g.on(Event::ConsumerAck { min: None });
        assert_eq!(g.poll(t0).unwrap().flush, Lsn(0x90));
    }

    #[test]
    fn keepalive_inside_a_transaction_is_not_confirmed() {
        let (mut f, _) = fresh(0x10);
        f.on(Event::Begin);
        f.on(Event::Keepalive {
            wal_end: Lsn(0x90),
            reply_requested: false,
        });
        f.on(Event::Durable { lsn: Lsn(0x20) });
        assert_eq!(f.allowed_flush(), Lsn(0x20));
        // open streamed transaction between stream blocks
        let (mut g, _) = fresh(0x10);
        g.on(Event::StreamStart { xid: 5 });
        g.on(Event::StreamStop);
        g.on(Event::Keepalive {
            wal_end: Lsn(0x90),
            reply_requested: false,
        });
        assert_eq!(g.allowed_flush(), Lsn(0x10));
        g.on(Event::StreamCommit {
            xid: 5,
            end_lsn: Lsn(0xA0),
        });
        g.on(Event::Keepalive {
            wal_end: Lsn(0xB0),
            reply_requested: false,
        });
        assert_eq!(
            g.allowed_flush(),
            Lsn(0x10),
            "stream commit 0xA0 not durable yet"
        );
        g.on(Event::Durable { lsn: Lsn(0xA0) });
        assert_eq!(g.allowed_flush(), Lsn(0xB0));
        // an aborted subtransaction keeps the top-level one open
        let (mut h, _) = fresh(0x10);
        h.on(Event::StreamStart { xid: 5 });
        h.on(Event::StreamStop);
        h.on(Event::StreamAbort { xid: 5, subxid: 6 });
        h.on(Event::Keepalive {
            wal_end: Lsn(0x90),
            reply_requested: false,
        });
        assert_eq!(h.allowed_flush(), Lsn(0x10));
        h.on(Event::StreamAbort { xid: 5, subxid: 5 });
        h.on(Event::Keepalive {
            wal_end: Lsn(0x90),
            reply_requested: false,
        });
        assert_eq!(h.allowed_flush(), Lsn(0x90));
    }

    #[test]
    fn reply_requested_is_answered_at_once() {
        let (mut f, t0) = fresh(0x10);
        assert_eq!(f.poll(t0 + MS), None);
        f.on(Event::Keepalive {
            wal_end: Lsn(0x10),
            reply_requested: true,
        });
        let s = f
            .poll(t0 + 2 * MS)
            .expect("answer right away, no rate limit");
        assert!(!s.reply_requested);
        assert_eq!(f.poll(t0 + 3 * MS), None, "answered once");
    }

    #[test]
    fn periodic_and_rate_limited() {
        let (mut f, t0) = fresh(0x10);
        assert_eq!(f.poll(t0 + Duration::from_secs(9)), None);
        assert_eq!(f.next_deadline(t0), t0 + Duration::from_secs(10));
        assert!(f.poll(t0 + Duration::from_secs(10)).is_some());
        let t1 = t0 + Duration::from_secs(10);
        f.on(Event::Durable { lsn: Lsn(0x20) });
        assert_eq!(f.next_deadline(t1), t1 + 100 * MS);
        assert_eq!(f.poll(t1 + 50 * MS), None, "rate limited");
        assert_eq!(f.poll(t1 + 100 * MS).unwrap().flush, Lsn(0x20));
        let mut g = Feedback::new(
            Lsn(1),
            FeedbackConfig {
                status_interval: Duration::from_secs(2),
                ..Default::default()
            },
        );
        g.poll(t0);
        assert!(g.poll(t0 + Duration::from_secs(2)).is_some());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Txn { size: u64, streamed: bool },
        Keepalive { gap: u64, reply: bool },
        Durable { upto: usize },
        Ack { upto: Option<usize> },
        Tick { ms: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u64..500, any::<bool>()).prop_map(|(size, streamed)| Step::Txn { size, streamed }),
            (0u64..100, any::<bool>()).prop_map(|(gap, reply)| Step::Keepalive { gap, reply }),
            (0usize..40).prop_map(|upto| Step::Durable { upto }),
            proptest::option::of(0usize..40).prop_map(|upto| Step::Ack { upto }),
            (0u64..20_000).prop_map(|ms| Step::Tick { ms }),
        ]
    }

    proptest! {
        /// Every commit at or below a sent flush LSN is durable and acked by consumers; flush
        /// never goes backwards and is never zero.
        #[test]
        fn never_confirms_past_what_is_durable(steps in proptest::collection::vec(step(), 1..80)) {
            let start = 0x1000u64;
            let t0 = Instant::now();
            let mut now = t0;
            let mut f = Feedback::new(Lsn(start), FeedbackConfig::default());
            let mut pos = start;
            let mut commits: Vec<u64> = Vec::new();
            let mut durable = start;
            let mut ack: Option<u64> = None;
            let mut last_flush = start;
            let mut xid = 100u32;
            for s in steps {
                match s {
                    Step::Txn { size, streamed } => {
                        xid += 1;
                        if streamed {
                            f.on(Event::StreamStart { xid });
                            pos += size / 2 + 1;
                            f.on(Event::Received { wal_end: Lsn(pos) });
                            f.on(Event::StreamStop);
                            // a keepalive between stream blocks must not count
                            f.on(Event::Keepalive { wal_end: Lsn(pos + 1), reply_requested: false });
                            pos += size / 2 + 2;
                            f.on(Event::StreamCommit { xid, end_lsn: Lsn(pos) });
                        } else {
                            f.on(Event::Begin);
                            pos += size;
                            f.on(Event::Keepalive { wal_end: Lsn(pos), reply_requested: false });
                            f.on_xlog(Lsn(pos), &commit_msg(pos));
                        }
                        commits.push(pos);
                    }
                    Step::Keepalive { gap, reply } => {
                        pos += gap;
                        f.on(Event::Keepalive { wal_end: Lsn(pos), reply_requested: reply });
                    }
                    Step::Durable { upto } => {
                        if let Some(&c) = commits.get(upto.min(commits.len().saturating_sub(1))) {
                            durable = durable.max(c);
                            f.on(Event::Durable { lsn: Lsn(durable) });
                        }
                    }
                    Step::Ack { upto } => {
                        ack = upto.map(|u| commits.get(u.min(commits.len().saturating_sub(1))).copied().unwrap_or(start));
                        f.on(Event::ConsumerAck { min: ack.map(Lsn) });
                    }
                    Step::Tick { ms } => now += Duration::from_millis(ms),
                }
                if let Some(st) = f.poll(now) {
                    let fl = st.flush.0;
                    prop_assert!(fl != 0);
                    prop_assert!(fl >= last_flush, "flush went backwards {fl:#x} < {last_flush:#x}");
                    if fl > last_flush {
                        for &c in &commits {
                            if c <= fl {
                                prop_assert!(c <= durable, "commit {c:#x} confirmed by flush {fl:#x} but durable only {durable:#x}");
                            }
                        }
                        if let Some(a) = ack {
                            for &c in commits.iter().filter(|&&c| c > last_flush && c <= fl) {
                                prop_assert!(c <= a, "commit {c:#x} confirmed by flush {fl:#x} but consumers acked only {a:#x}");
                            }
                        }
                    }
                    prop_assert!(st.write >= st.flush);
                    last_flush = fl;
                }
            }
        }
    }
}
