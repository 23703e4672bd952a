//! Reconnect delays: exponential, capped, with jitter so many relays restarting together do not
//! hit the server in lockstep, and reset once a connection has stayed healthy for a while.
//! Pure: time comes in as arguments, randomness from a seeded generator.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    /// A connection that lived this long resets the delay to `initial`.
    pub healthy_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    rng: u64,
    connected_at: Option<Instant>,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            cfg,
            attempt: 0,
            rng: seed | 1,
            connected_at: None,
        }
    }

    /// Seeded from the clock and the process id: good enough to de-synchronise relays.
    pub fn with_entropy(cfg: BackoffConfig) -> Backoff {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Backoff::new(cfg, t ^ ((std::process::id() as u64) << 32))
    }

    /// The delay before the next attempt: uniformly in [d/2, d] where d = initial·2^attempt,
    /// capped at `max`.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .cfg
            .initial
            .saturating_mul(1u32 << self.attempt.min(20));
        let d = exp.min(self.cfg.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        let frac = (self.next_rand() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(frac)
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A connection (and replication start) succeeded at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection was lost at `now`: if it had been healthy long enough, start over.
    pub fn disconnected(&mut self, now: Instant) {
        if let Some(t) = self.connected_at.take() {
            if now.saturating_duration_since(t) >= self.cfg.healthy_after {
                self.attempt = 0;
            }
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: tiny, deterministic for tests, plenty for jitter.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let mut b = Backoff::new(BackoffConfig::default(), 42);
        let mut prev_hi = Duration::ZERO;
        for i in 0..12u32 {
            let d = b.next_delay();
            let hi = Duration::from_millis(500)
                .saturating_mul(1 << i)
                .min(Duration::from_secs(30));
            assert!(
                d >= hi / 2 && d <= hi,
                "attempt {i}: {d:?} not in [{:?}, {hi:?}]",
                hi / 2
            );
            assert!(hi >= prev_hi);
            prev_hi = hi;
        }
        assert!(b.next_delay() <= Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let a: Vec<_> = {
            let mut b = Backoff::new(BackoffConfig::default(), 1);
            (0..6).map(|_| b.next_delay()).collect()
        };
        let c: Vec<_> = {
            let mut b = Backoff::new(BackoffConfig::default(), 2);
            (0..6).map(|_| b.next_delay()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn resets_only_after_a_healthy_period() {
        let t0 = Instant::now();
        let mut b = Backoff::new(BackoffConfig::default(), 7);
        for _ in 0..5 {
            b.next_delay();
        }
        b.connected(t0);
        b.disconnected(t0 + Duration::from_secs(5));
        assert_eq!(
            b.attempts(),
            5,
            "a short-lived connection keeps the backoff"
        );
        b.connected(t0 + Duration::from_secs(10));
        b.disconnected(t0 + Duration::from_secs(100));
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_millis(500));
    }
}
