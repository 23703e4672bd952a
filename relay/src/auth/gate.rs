//! The one door every stream request passes, whatever the transport: rate limit, token,
//! table grant, stream limits. It returns either a permit and the narrowed request, or a
//! [`Refusal`] with a stable code that HTTP maps to a status and QUIC to an `'e'` frame.

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::claims::{Forbidden, Grant};
use super::limits::{LimitError, Limits, RateLimiter, StreamPermit};
use super::token::{TokenError, Verifier};
use crate::serve::request::StreamRequest;

/// Default `--max-clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Default `--max-streams-per-token`.
pub const DEFAULT_MAX_STREAMS_PER_TOKEN: usize = 16;
/// Default `--rate-limit` (requests per second per IP) and its burst.
pub const DEFAULT_RATE_PER_SEC: f64 = 20.0;
pub const DEFAULT_RATE_BURST: u32 = 40;
/// Most client addresses the rate limiter remembers.
pub const RATE_TRACKED_IPS: usize = 100_000;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Unauthorized(TokenError),
    #[error("{0}")]
    Forbidden(Forbidden),
    #[error("{0}")]
    Limit(LimitError),
    #[error("too many requests from this address; slow down")]
    RateLimited,
}

impl Refusal {
    /// Stable code for the JSON error body and `'e'` frames (docs/auth.md).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Limit(LimitError::TooManyClients(_)) => "too_many_clients",
            Refusal::Limit(LimitError::TooManyForToken(_)) => "too_many_streams",
            Refusal::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status for this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden(_) => 403,
            Refusal::Limit(LimitError::TooManyClients(_)) => 503,
            Refusal::Limit(LimitError::TooManyForToken(_)) | Refusal::RateLimited => 429,
        }
    }
}

/// Authentication and limits, shared by the HTTP and QUIC sides.
#[derive(Debug)]
pub struct Gate {
    verifier: Option<Verifier>,
    limits: Limits,
    rate: Mutex<RateLimiter>,
    slow_client_timeout: std::time::Duration,
}

/// Default `--slow-client-timeout`.
pub const DEFAULT_SLOW_CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Gate {
    pub fn new(verifier: Option<Verifier>, limits: Limits, rate: RateLimiter) -> Gate {
        Gate {
            verifier,
            limits,
            rate: Mutex::new(rate),
            slow_client_timeout: DEFAULT_SLOW_CLIENT_TIMEOUT,
        }
    }

    /// How long a client's connection may take no bytes before it is dropped.
    pub fn with_slow_client_timeout(mut self, timeout: std::time::Duration) -> Gate {
        self.slow_client_timeout = timeout;
        self
    }

    pub fn slow_client_timeout(&self) -> std::time::Duration {
        self.slow_client_timeout
    }

    /// No authentication, default limits (tests, demo, loopback-only relays).
    pub fn open_default() -> Gate {
        Gate::new(
            None,
            Limits::new(DEFAULT_MAX_CLIENTS, DEFAULT_MAX_STREAMS_PER_TOKEN),
            RateLimiter::new(DEFAULT_RATE_PER_SEC, DEFAULT_RATE_BURST, RATE_TRACKED_IPS),
        )
    }

    pub fn auth_enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Counts one request from `ip` against its rate. Loopback is exempt: it is the operator's
    /// own machine (tests, benchmarks, a sidecar), and a reverse proxy in front of the relay
    /// should do its own per-client limiting anyway, since every request then comes from it.
    pub fn check_rate(&self, ip: IpAddr) -> Result<(), Refusal> {
        if ip.is_loopback() {
            return Ok(());
        }
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.allow(ip, Instant::now()) {
            Ok(())
        } else {
            Err(Refusal::RateLimited)
        }
    }

    /// Checks a token when authentication is on; with it off, everything is granted.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Grant, Refusal> {
        let Some(v) = &self.verifier else {
            return Ok(Grant::everything());
        };
        let token = token.ok_or(Refusal::Unauthorized(TokenError::Missing))?;
        v.verify(token).map_err(Refusal::Unauthorized)
    }

    /// Admits a stream: authenticates, narrows `request.tables` to what the token grants, and
    /// takes a stream permit that the caller holds for as long as the stream lives.
    pub fn admit_stream(
        &self,
        token: Option<&str>,
        request: &mut StreamRequest,
    ) -> Result<StreamPermit, Refusal> {
        let grant = self.authenticate(token)?;
        request.tables = grant
            .authorize(&request.tables)
            .map_err(Refusal::Forbidden)?;
        // Scopes come from the token only, never from the request.
        request.scopes = grant.scopes_for(&request.tables);
        // Keyed by a digest: the token itself is not kept around.
        let key = self
            .verifier
            .as_ref()
            .and(token)
            .map(|t| Sha256::digest(t.as_bytes()).into());
        let permit = self.limits.acquire(key).map_err(Refusal::Limit)?;
        tracing::debug!(subject = ?grant.subject, tables = request.tables.len(), scopes = request.scopes.len(), "stream admitted");
        Ok(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::KeySources;
    use std::io::Write;

    const SECRET: &[u8] = b"gate-test-secret-of-at-least-32-bytes";

    fn gate(max_clients: usize, per_token: usize) -> (Gate, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(SECRET).unwrap();
        let v = Verifier::load(&KeySources {
            hs256_secret_file: Some(f.path()),
            audience: Some("aud"),
            ..Default::default()
        })
        .unwrap();
        (
            Gate::new(
                v,
                Limits::new(max_clients, per_token),
                RateLimiter::new(1.0, 2, 10),
            ),
            f,
        )
    }

    fn token(tables: &[&str]) -> String {
        let claims = serde_json::json!({
            "aud": "aud", "exp": jsonwebtoken::get_current_timestamp() + 600,
            "walcast": {"tables": tables}
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn req(tables: &[&str]) -> StreamRequest {
        let q = format!("tables={}", tables.join(","));
        StreamRequest::from_query(Some(&q)).unwrap()
    }

    #[test]
    fn maps_each_refusal_to_its_code() {
        let (g, _f) = gate(10, 1);
        let e = g.admit_stream(None, &mut req(&[])).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("unauthorized", 401));
        let e = g.admit_stream(Some("nope"), &mut req(&[])).unwrap_err();
        assert_eq!(e.code(), "unauthorized");
        let t = token(&["public.a"]);
        let e = g
            .admit_stream(Some(&t), &mut req(&["public.b"]))
            .unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("forbidden", 403));
        let mut r = req(&[]);
        let permit = g.admit_stream(Some(&t), &mut r).unwrap();
        assert_eq!(r.tables, vec![("public".to_string(), "a".to_string())]);
        let e = g.admit_stream(Some(&t), &mut req(&[])).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("too_many_streams", 429));
        drop(permit);
        assert!(g.admit_stream(Some(&t), &mut req(&[])).is_ok());
    }

    #[test]
    fn open_gate_grants_everything_but_still_counts() {
        let g = Gate::new(None, Limits::new(1, 1), RateLimiter::new(1.0, 1, 10));
        let mut r = req(&["x.y"]);
        let p = g.admit_stream(None, &mut r).unwrap();
        assert_eq!(r.tables.len(), 1);
        let e = g.admit_stream(None, &mut req(&[])).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("too_many_clients", 503));
        drop(p);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(g.check_rate(ip).is_ok());
        assert_eq!(g.check_rate(ip).unwrap_err().code(), "rate_limited");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..10).all(|_| g.check_rate(lo).is_ok()));
    }
}
