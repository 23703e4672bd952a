//! Row scopes (docs/auth.md, "Row scopes"): a client whose token scopes a table receives only
//! the changes of rows whose scoped column holds one of its allowed values.
//!
//! - [`memo`]: each change on a scoped table is decoded once for all clients.
//! - [`filter`]: one client's verdict per frame (pass, drop, or a re-encoded message).
//! - [`fanout`]: the routing core for live clients: one reader, changes routed by
//!   `(relation, column, value)` to the matching clients only (pure; `serve::broadcast` runs it).
//! - [`encode`]: the re-encoding of an Update into a Delete or an Insert at the scope boundary.
//!
//! It sits in front of the table filter, which then drops transactions left empty.

pub mod encode;
pub mod fanout;
pub mod filter;
pub mod memo;

pub use fanout::{ClientId, FanOut, Out};
pub use filter::{ScopeFilter, Verdict};
pub use memo::{ColumnRef, Decoded, RouteMemo, Side};
