//! Who may read what: JWT verification ([`token`]), what a token grants and how a request is
//! narrowed to it ([`claims`]), and the limits that keep one client from harming others
//! ([`limits`]). All of it is pure; the transports call [`Gate`] and map its answers to HTTP
//! statuses or `'e'` frames. The contract is docs/auth.md.

pub mod claims;
pub mod gate;
pub mod limits;
pub mod token;

pub use claims::{Forbidden, Grant, RowScope, TableGrant};
pub use gate::{Gate, Refusal};
pub use limits::{Limits, RateLimiter, StreamPermit};
pub use token::{KeyError, KeySources, TokenError, Verifier, LEEWAY_SECS, MAX_TOKEN_BYTES};
