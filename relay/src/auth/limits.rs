//! Limits that keep one client, or one token, from crowding out the others: a cap on concurrent
//! streams (overall and per token) and a per-IP request rate (token bucket). Pure state machines:
//! time comes in as an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent stream counts, overall and per token.
#[derive(Debug)]
pub struct Limits {
    max_clients: usize,
    max_per_token: usize,
    state: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_token: HashMap<[u8; 32], usize>,
}

/// Why a stream was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the relay serves its maximum of {0} clients; retry later")]
    TooManyClients(usize),
    #[error("this token already has its maximum of {0} open streams")]
    TooManyForToken(usize),
}

/// One admitted stream; dropping it frees its slot.
#[derive(Debug)]
pub struct StreamPermit {
    state: Arc<Mutex<Counts>>,
    token: Option<[u8; 32]>,
}

impl Limits {
    pub fn new(max_clients: usize, max_per_token: usize) -> Limits {
        Limits {
            max_clients,
            max_per_token,
            state: Arc::default(),
        }
    }

    /// Admits a stream for `token` (a digest of it; `None` when auth is off).
    pub fn acquire(&self, token: Option<[u8; 32]>) -> Result<StreamPermit, LimitError> {
        let mut s = lock(&self.state);
        if s.total >= self.max_clients {
            return Err(LimitError::TooManyClients(self.max_clients));
        }
        if let Some(t) = token {
            let n = s.per_token.entry(t).or_default();
            if *n >= self.max_per_token {
                return Err(LimitError::TooManyForToken(self.max_per_token));
            }
            *n += 1;
        }
        s.total += 1;
        Ok(StreamPermit {
            state: self.state.clone(),
            token,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        lock(&self.state).total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        s.total = s.total.saturating_sub(1);
        if let Some(t) = self.token {
            if let Some(n) = s.per_token.get_mut(&t) {
                *n -= 1;
                if *n == 0 {
                    s.per_token.remove(&t);
                }
            }
        }
    }
}

/// A poisoned lock only means another thread panicked while counting; the counts are still
/// plain integers, so keep going rather than take every client down.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-IP token buckets: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
    /// Most addresses tracked; beyond it, buckets that are full again are forgotten (they carry
    /// no information), and if none is, the new address is refused until some refill.
    max_tracked: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32, max_tracked: usize) -> RateLimiter {
        RateLimiter {
            per_second: per_second.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            max_tracked: max_tracked.max(1),
        }
    }

    /// Whether `ip` may make a request at `now`; takes one token if so.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_tracked {
            let (rate, burst) = (self.per_second, self.burst);
            self.buckets
                .retain(|_, b| refilled(b, rate, burst, now) < burst);
            if self.buckets.len() >= self.max_tracked {
                return false;
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = refilled(b, self.per_second, self.burst, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until `ip` has a token again (for `Retry-After`).
    pub fn retry_after(&self) -> Duration {
        if self.per_second > 0.0 {
            Duration::from_secs_f64((1.0 / self.per_second).min(3600.0))
        } else {
            Duration::from_secs(3600)
        }
    }
}

fn refilled(b: &Bucket, rate: f64, burst: f64, now: Instant) -> f64 {
    let dt = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + dt * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_token_and_frees_on_drop() {
        let l = Limits::new(3, 2);
        let a = [1u8; 32];
        let p1 = l.acquire(Some(a)).unwrap();
        let p2 = l.acquire(Some(a)).unwrap();
        assert_eq!(
            l.acquire(Some(a)).unwrap_err(),
            LimitError::TooManyForToken(2)
        );
        let p3 = l.acquire(None).unwrap();
        assert_eq!(
            l.acquire(Some([2; 32])).unwrap_err(),
            LimitError::TooManyClients(3)
        );
        assert_eq!(l.open(), 3);
        drop(p1);
        let p4 = l.acquire(Some(a)).unwrap();
        drop((p2, p3, p4));
        assert_eq!(l.open(), 0);
        assert!(lock(&l.state).per_token.is_empty());
    }

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut r = RateLimiter::new(2.0, 3, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.allow(ip, t0)));
        assert!(!r.allow(ip, t0));
        // Another address has its own bucket.
        assert!(r.allow(other, t0));
        // Half a second at 2/s gives one token back.
        let t1 = t0 + Duration::from_millis(500);
        assert!(r.allow(ip, t1));
        assert!(!r.allow(ip, t1));
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| r.allow(ip, t2)).count(), 3);
        assert_eq!(r.retry_after(), Duration::from_millis(500));
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let mut r = RateLimiter::new(1.0, 2, 2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert!(r.allow(ip(1), t0));
        assert!(r.allow(ip(2), t0));
        // Both buckets are in use, so a third address waits.
        assert!(!r.allow(ip(3), t0));
        assert!(r.buckets.len() <= 2);
        // Once they refilled they are forgotten, and the newcomer gets a bucket.
        assert!(r.allow(ip(3), t0 + Duration::from_secs(5)));
        assert!(r.buckets.len() <= 2);
    }
}
