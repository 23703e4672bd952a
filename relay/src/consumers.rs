//! Durable consumers: named clients whose acknowledgements bound what the relay confirms to
//! PostgreSQL and what log retention may delete.
//!
//! A consumer's ack `L` means "I have durably applied every transaction whose commit end LSN is
//! <= L". The registry keeps, per consumer, the highest ack (acks never move backwards), and
//! persists the set in `<data-dir>/consumers.json` atomically (write a temporary file, fsync,
//! rename, fsync the directory) *before* an ack takes effect, so what the slot confirms is
//! never ahead of an ack a restarted relay would remember.
//!
//! The rules ([`Consumers`]) are pure; [`Registry`] adds the file and a lock around them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use walcast_decoder::Lsn;

/// The registry file's name inside the data directory.
pub const FILE_NAME: &str = "consumers.json";

/// Longest consumer name.
pub const MAX_NAME_LEN: usize = 64;

/// At most this many consumers (each one can pin the slot; thousands would be a mistake).
pub const MAX_CONSUMERS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("invalid consumer name {0:?}: use 1 to 64 of A-Z a-z 0-9 _ . -")]
    InvalidName(String),
    #[error("no consumer named {0:?}")]
    NotFound(String),
    #[error("{ack} is beyond the relay's durable position {durable} (the relay never sent it)")]
    AheadOfDurable { ack: Lsn, durable: Lsn },
    #[error("start position {from} is no longer in the relay's log (oldest available: {oldest_available})")]
    TooOld { from: Lsn, oldest_available: Lsn },
    #[error("too many consumers (at most {MAX_CONSUMERS})")]
    TooMany,
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt consumer registry {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl ConsumerError {
    /// Stable code for the `{"code","message"}` error body.
    pub fn code(&self) -> &'static str {
        match self {
            ConsumerError::InvalidName(_)
            | ConsumerError::AheadOfDurable { .. }
            | ConsumerError::TooMany => "bad_request",
            ConsumerError::NotFound(_) => "unknown_consumer",
            ConsumerError::TooOld { .. } => "resync_required",
            ConsumerError::Io { .. } | ConsumerError::Corrupt { .. } => "internal",
        }
    }

    /// The HTTP status that goes with [`Self::code`].
    pub fn http_status(&self) -> u16 {
        match self {
            ConsumerError::InvalidName(_)
            | ConsumerError::AheadOfDurable { .. }
            | ConsumerError::TooMany => 400,
            ConsumerError::NotFound(_) => 404,
            ConsumerError::TooOld { .. } => 410,
            ConsumerError::Io { .. } | ConsumerError::Corrupt { .. } => 500,
        }
    }
}

/// `[A-Za-z0-9_.-]{1,64}`.
pub fn validate_name(name: &str) -> Result<(), ConsumerError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConsumerError::InvalidName(
            name.chars().take(MAX_NAME_LEN + 1).collect(),
        ))
    }
}

/// One consumer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Every transaction whose commit end LSN is <= this has been applied by the consumer.
    #[serde(with = "lsn_text")]
    pub acked: Lsn,
    pub created_unix_ms: u64,
    /// `None` until the first ack.
    pub last_ack_unix_ms: Option<u64>,
}

/// The registry's rules, without IO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumers {
    version: u32,
    consumers: BTreeMap<String, Consumer>,
}

/// What [`Consumers::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// The name was taken: registration is idempotent and keeps the existing position.
    Existed,
}

impl Consumers {
    pub fn get(&self, name: &str) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Consumer)> {
        self.consumers.iter()
    }

    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// The lowest ack of all consumers: what the slot and the log must keep (`None`: none).
    pub fn min_ack(&self) -> Option<Lsn> {
        self.consumers.values().map(|c| c.acked).min()
    }

    /// Registers `name` starting after `from` (the consumer has applied nothing newer).
    pub fn register(
        &mut self,
        name: &str,
        from: Lsn,
        now_ms: u64,
    ) -> Result<Registered, ConsumerError> {
        validate_name(name)?;
        if self.consumers.contains_key(name) {
            return Ok(Registered::Existed);
        }
        if self.consumers.len() >= MAX_CONSUMERS {
            return Err(ConsumerError::TooMany);
        }
        self.consumers.insert(
            name.to_string(),
            Consumer {
                acked: from,
                created_unix_ms: now_ms,
                last_ack_unix_ms: None,
            },
        );
        Ok(Registered::Created)
    }

    /// Records an ack. An ack at or below the current one changes nothing (acks never move
    /// backwards; a client resending an old ack after a reconnect is normal). Returns the
    /// consumer's ack afterwards and whether it changed.
    pub fn ack(
        &mut self,
        name: &str,
        lsn: Lsn,
        durable: Lsn,
        now_ms: u64,
    ) -> Result<(Lsn, bool), ConsumerError> {
        validate_name(name)?;
        let c = self
            .consumers
            .get_mut(name)
            .ok_or_else(|| ConsumerError::NotFound(name.to_string()))?;
        if lsn > durable {
            // The relay never sent it: acking it would let the slot skip what was never logged.
            return Err(ConsumerError::AheadOfDurable { ack: lsn, durable });
        }
        c.last_ack_unix_ms = Some(now_ms);
        if lsn <= c.acked {
            return Ok((c.acked, false));
        }
        c.acked = lsn;
        Ok((lsn, true))
    }

    pub fn remove(&mut self, name: &str) -> Result<Consumer, ConsumerError> {
        validate_name(name)?;
        self.consumers
            .remove(name)
            .ok_or_else(|| ConsumerError::NotFound(name.to_string()))
    }
}

/// A consumer as shown to operators (`GET /v1/consumers/{name}`, `walcast consumers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerView {
    pub name: String,
    #[serde(with = "lsn_text")]
    pub acked_lsn: Lsn,
    /// The relay's durable LSN minus the ack: how much of the log this consumer has not applied.
    pub lag_bytes: u64,
    pub created_unix_ms: u64,
    pub last_ack_unix_ms: Option<u64>,
    /// Seconds since the last ack (since registration if it never acked).
    pub secs_since_ack: u64,
    /// Streams currently open under this consumer's name.
    pub connected: u32,
}

/// The registry: [`Consumers`] behind a lock, persisted in the data directory, plus which
/// consumers have a stream open right now.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    state: Mutex<State>,
    /// Serializes changes, so the state lock is never held across an fsync (the replication
    /// session reads the minimum ack through it).
    writes: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    consumers: Consumers,
    connected: BTreeMap<String, u32>,
}

impl Registry {
    /// Loads `<dir>/consumers.json` (an absent file is an empty registry).
    pub fn open(dir: &Path) -> Result<Arc<Registry>, ConsumerError> {
        let path = dir.join(FILE_NAME);
        let consumers = match std::fs::read(&path) {
            Ok(bytes) => {
                let c: Consumers =
                    serde_json::from_slice(&bytes).map_err(|e| ConsumerError::Corrupt {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                for name in c.consumers.keys() {
                    validate_name(name).map_err(|e| ConsumerError::Corrupt {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                }
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Consumers {
                version: 1,
                ..Default::default()
            },
            Err(source) => return Err(ConsumerError::Io { path, source }),
        };
        Ok(Arc::new(Registry {
            path,
            state: Mutex::new(State {
                consumers,
                connected: BTreeMap::new(),
            }),
            writes: Mutex::new(()),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a copy, persists the copy, and only then makes it current: a failed
    /// write leaves the registry as it was on disk. Blocks on fsync.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Consumers) -> Result<(T, bool), ConsumerError>,
    ) -> Result<T, ConsumerError> {
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.lock().consumers.clone();
        let (out, changed) = change(&mut next)?;
        if changed {
            write_atomically(&self.path, &next)?;
        }
        // Also keeps last-ack times of no-op acks in memory (they are not worth an fsync).
        self.lock().consumers = next;
        Ok(out)
    }

    pub fn register(
        &self,
        name: &str,
        from: Lsn,
        now_ms: u64,
    ) -> Result<Registered, ConsumerError> {
        self.update(|c| {
            let r = c.register(name, from, now_ms)?;
            Ok((r, r == Registered::Created))
        })
    }

    /// See [`Consumers::ack`]; persisted before it returns.
    pub fn ack(
        &self,
        name: &str,
        lsn: Lsn,
        durable: Lsn,
        now_ms: u64,
    ) -> Result<Lsn, ConsumerError> {
        self.update(|c| c.ack(name, lsn, durable, now_ms))
    }

    pub fn remove(&self, name: &str) -> Result<(), ConsumerError> {
        self.update(|c| c.remove(name).map(|_| ((), true)))
    }

    pub fn get(&self, name: &str) -> Option<Consumer> {
        self.lock().consumers.get(name).cloned()
    }

    pub fn min_ack(&self) -> Option<Lsn> {
        self.lock().consumers.min_ack()
    }

    pub fn len(&self) -> usize {
        self.lock().consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every consumer as operators see it, against the relay's durable LSN at `now_ms`.
    pub fn views(&self, durable: Lsn, now_ms: u64) -> Vec<ConsumerView> {
        let st = self.lock();
        st.consumers
            .iter()
            .map(|(name, c)| view(name, c, st.connected.get(name).copied(), durable, now_ms))
            .collect()
    }

    pub fn view(&self, name: &str, durable: Lsn, now_ms: u64) -> Option<ConsumerView> {
        let st = self.lock();
        let c = st.consumers.get(name)?;
        Some(view(
            name,
            c,
            st.connected.get(name).copied(),
            durable,
            now_ms,
        ))
    }

    /// Counts a stream open under `name` until the guard drops.
    pub fn connect(self: &Arc<Self>, name: &str) -> Result<(Consumer, Connected), ConsumerError> {
        let mut st = self.lock();
        let c = st
            .consumers
            .get(name)
            .cloned()
            .ok_or_else(|| ConsumerError::NotFound(name.to_string()))?;
        *st.connected.entry(name.to_string()).or_default() += 1;
        Ok((
            c,
            Connected {
                registry: self.clone(),
                name: name.to_string(),
            },
        ))
    }
}

fn view(
    name: &str,
    c: &Consumer,
    connected: Option<u32>,
    durable: Lsn,
    now_ms: u64,
) -> ConsumerView {
    let since = c.last_ack_unix_ms.unwrap_or(c.created_unix_ms);
    ConsumerView {
        name: name.to_string(),
        acked_lsn: c.acked,
        lag_bytes: durable.0.saturating_sub(c.acked.0),
        created_unix_ms: c.created_unix_ms,
        last_ack_unix_ms: c.last_ack_unix_ms,
        secs_since_ack: now_ms.saturating_sub(since) / 1000,
        connected: connected.unwrap_or(0),
    }
}

/// A stream open under a consumer's name; dropping it marks the stream closed.
#[derive(Debug)]
pub struct Connected {
    registry: Arc<Registry>,
    name: String,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut st = self.registry.lock();
        if let Some(n) = st.connected.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.connected.remove(&self.name);
            }
        }
    }
}

/// Wall-clock Unix milliseconds (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// tmp file, fsync, rename over the old file, fsync the directory: after a crash the file is
/// either the old or the new registry, never a torn one.
fn write_atomically(path: &Path, consumers: &Consumers) -> Result<(), ConsumerError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConsumerError::Io { path: p, source }
    };
    let tmp = path.with_extension("json.tmp");
    let mut body = serde_json::to_vec_pretty(consumers).map_err(|e| ConsumerError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    body.push(b'\n');
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&body).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// LSNs are stored as PostgreSQL prints them (`16/B374D848`), like everywhere else in walcast.
mod lsn_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use walcast_decoder::Lsn;

    pub fn serialize<S: Serializer>(lsn: &Lsn, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(lsn)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "billing-sync", "x.y_z-9", &"n".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a\n", &"n".repeat(65), "..%2f"] {
            assert!(
                matches!(validate_name(bad), Err(ConsumerError::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn acks_are_monotonic_and_bounded_by_durable() {
        let mut c = Consumers::default();
        assert_eq!(c.min_ack(), None);
        assert_eq!(c.register("a", Lsn(0x10), 1).unwrap(), Registered::Created);
        assert_eq!(
            c.register("a", Lsn(0x99), 2).unwrap(),
            Registered::Existed,
            "idempotent"
        );
        assert_eq!(
            c.get("a").unwrap().acked,
            Lsn(0x10),
            "re-registering keeps the ack"
        );
        c.register("b", Lsn(0x20), 3).unwrap();
        assert_eq!(c.min_ack(), Some(Lsn(0x10)));
        assert_eq!(
            c.ack("a", Lsn(0x40), Lsn(0x50), 4).unwrap(),
            (Lsn(0x40), true)
        );
        assert_eq!(
            c.ack("a", Lsn(0x30), Lsn(0x50), 5).unwrap(),
            (Lsn(0x40), false),
            "never backwards"
        );
        assert_eq!(c.get("a").unwrap().last_ack_unix_ms, Some(5));
        assert!(matches!(
            c.ack("a", Lsn(0x51), Lsn(0x50), 6),
            Err(ConsumerError::AheadOfDurable { .. })
        ));
        assert_eq!(c.get("a").unwrap().acked, Lsn(0x40));
        assert_eq!(c.min_ack(), Some(Lsn(0x20)));
        assert!(matches!(
            c.ack("zz", Lsn(1), Lsn(2), 7),
            Err(ConsumerError::NotFound(_))
        ));
        c.remove("b").unwrap();
        assert_eq!(c.min_ack(), Some(Lsn(0x40)));
        assert!(c.remove("b").is_err());
        assert!(c.register("bad name", Lsn(1), 1).is_err());
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        assert!(r.is_empty());
        r.register("a", Lsn(0x10), 1).unwrap();
        r.register("b", Lsn(0x10), 1).unwrap();
        assert_eq!(r.ack("a", Lsn(0x30), Lsn(0x40), 2).unwrap(), Lsn(0x30));
        r.remove("b").unwrap();
        drop(r);
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.len(), 1);
        let a = r.get("a").unwrap();
        assert_eq!((a.acked, a.last_ack_unix_ms), (Lsn(0x30), Some(2)));
        assert!(!dir.path().join("consumers.json.tmp").exists());
        // a torn or foreign file is an error, not an empty registry (that would unpin the slot)
        std::fs::write(dir.path().join(FILE_NAME), b"{\"consumers\": 5").unwrap();
        assert!(matches!(
            Registry::open(dir.path()),
            Err(ConsumerError::Corrupt { .. })
        ));
    }

    #[test]
    fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        r.register("a", Lsn(0x10), 1).unwrap();
        // A directory where the temporary file goes makes the write fail.
        std::fs::create_dir(dir.path().join("consumers.json.tmp")).unwrap();
        assert!(matches!(
            r.ack("a", Lsn(0x20), Lsn(0x40), 2),
            Err(ConsumerError::Io { .. })
        ));
        assert_eq!(
            r.min_ack(),
            Some(Lsn(0x10)),
            "an ack that is not on disk does not count"
        );
    }

    #[test]
    fn views_and_connections() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        r.register("a", Lsn(0x10), 1_000).unwrap();
        let v = r.view("a", Lsn(0x110), 11_000).unwrap();
        assert_eq!((v.lag_bytes, v.secs_since_ack, v.connected), (0x100, 10, 0));
        let (c, g1) = r.connect("a").unwrap();
        assert_eq!(c.acked, Lsn(0x10));
        let (_, g2) = r.connect("a").unwrap();
        assert_eq!(r.views(Lsn(0x10), 1_000)[0].connected, 2);
        drop((g1, g2));
        assert_eq!(r.view("a", Lsn(0x10), 1_000).unwrap().connected, 0);
        assert!(r.connect("nope").is_err());
    }
}
