//! What a verified token grants (docs/auth.md, claims v1) and the pure rule that turns a
//! client's stream request into the table filter it may have.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::serve::request::parse_table;

/// Most tables one token may list: bounds the work of checking a request against it.
pub const MAX_GRANTED_TABLES: usize = 4096;
/// Most values one row scope may list.
pub const MAX_SCOPE_VALUES: usize = 4096;

/// The claims version this relay understands (`walcast.v`).
pub const CLAIMS_VERSION: u32 = 1;

/// The `walcast` claim as it appears in a token. Unknown fields are refused: a restriction this
/// relay does not understand must not be silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WalcastClaim {
    #[serde(default)]
    v: Option<u32>,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    scopes: BTreeMap<String, RowScope>,
}

/// The claims walcast reads from a token (the registered ones are checked by the verifier).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenClaims {
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub walcast: Option<WalcastClaim>,
}

/// A row scope: only rows whose `column` equals one of `equals` (as text).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowScope {
    pub column: String,
    pub equals: Vec<String>,
}

/// Which tables a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableGrant {
    /// `"*"`: every published table.
    All,
    /// Exactly these `(schema, table)` pairs.
    Only(BTreeSet<(String, String)>),
}

/// What a verified token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's `sub`, for logs (never the token itself).
    pub subject: Option<String>,
    pub tables: TableGrant,
    /// Row scopes by `(schema, table)`.
    pub scopes: BTreeMap<(String, String), RowScope>,
}

/// The token's walcast claim is not something this relay can honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid walcast claim: {0}")]
pub struct BadClaim(pub String);

/// The request asks for more than the token grants; the message says what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

impl Grant {
    pub(crate) fn from_claims(claims: TokenClaims) -> Result<Grant, BadClaim> {
        let Some(w) = claims.walcast else {
            // A token for another service, or one that grants nothing: it authenticates
            // (e.g. for /v1/status) but reads no table.
            return Ok(Grant {
                subject: claims.sub,
                tables: TableGrant::Only(BTreeSet::new()),
                scopes: BTreeMap::new(),
            });
        };
        match w.v {
            None | Some(CLAIMS_VERSION) => {}
            Some(v) => {
                return Err(BadClaim(format!(
                    "walcast.v = {v}; this relay understands version {CLAIMS_VERSION}"
                )))
            }
        }
        if w.tables.len() > MAX_GRANTED_TABLES {
            return Err(BadClaim(format!(
                "more than {MAX_GRANTED_TABLES} tables in walcast.tables"
            )));
        }
        let tables = if w.tables.iter().any(|t| t == "*") {
            TableGrant::All
        } else {
            let mut set = BTreeSet::new();
            for t in &w.tables {
                set.insert(parse_table(t).map_err(|e| BadClaim(e.0))?);
            }
            TableGrant::Only(set)
        };
        let mut scopes = BTreeMap::new();
        for (name, scope) in w.scopes {
            let table = parse_table(&name).map_err(|e| BadClaim(e.0))?;
            if scope.column.is_empty() {
                return Err(BadClaim(format!("scope on {name}: empty column")));
            }
            if scope.equals.len() > MAX_SCOPE_VALUES {
                return Err(BadClaim(format!(
                    "scope on {name}: more than {MAX_SCOPE_VALUES} values"
                )));
            }
            scopes.insert(table, scope);
        }
        Ok(Grant {
            subject: claims.sub,
            tables,
            scopes,
        })
    }

    /// A grant with no restriction, used when authentication is off.
    pub fn everything() -> Grant {
        Grant {
            subject: None,
            tables: TableGrant::All,
            scopes: BTreeMap::new(),
        }
    }

    fn grants_table(&self, table: &(String, String)) -> bool {
        match &self.tables {
            TableGrant::All => true,
            TableGrant::Only(set) => set.contains(table),
        }
    }

    /// The table filter a client gets for `requested` (empty = "everything I may read").
    /// Returns the tables to filter on; an empty result means every table, which only an
    /// unrestricted grant yields. Row-scoped tables are served; [`Grant::scopes_for`] gives the
    /// scopes the stream must then apply.
    ///
    /// A token that grants `"*"` and scopes some tables must name its tables: "every table" is
    /// served without looking at frames, and scoped tables must be looked at.
    pub fn authorize(
        &self,
        requested: &[(String, String)],
    ) -> Result<Vec<(String, String)>, Forbidden> {
        if !requested.is_empty() {
            for t in requested {
                if !self.grants_table(t) {
                    return Err(Forbidden(format!(
                        "the token does not grant table {}.{}",
                        t.0, t.1
                    )));
                }
            }
            return Ok(requested.to_vec());
        }
        match &self.tables {
            TableGrant::All if self.scopes.is_empty() => Ok(Vec::new()),
            TableGrant::All => Err(Forbidden(
                "the token grants every table but restricts rows of some; name the tables you want with tables="
                    .into(),
            )),
            TableGrant::Only(set) if set.is_empty() => {
                Err(Forbidden("the token grants no table".into()))
            }
            TableGrant::Only(set) => Ok(set.iter().cloned().collect()),
        }
    }

    /// The row scopes that apply to a stream of `tables` (as [`Grant::authorize`] returned them).
    pub fn scopes_for(&self, tables: &[(String, String)]) -> Vec<((String, String), RowScope)> {
        tables
            .iter()
            .filter_map(|t| self.scopes.get(t).map(|s| (t.clone(), s.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> (String, String) {
        parse_table(s).unwrap()
    }

    fn grant(json: serde_json::Value) -> Result<Grant, BadClaim> {
        let claims = serde_json::from_value(json).map_err(|e| BadClaim(e.to_string()))?;
        Grant::from_claims(claims)
    }

    #[test]
    fn parses_tables_and_scopes() {
        let g = grant(serde_json::json!({
            "sub": "svc",
            "walcast": {"v": 1, "tables": ["public.orders", "items"],
                        "scopes": {"public.orders": {"column": "tenant_id", "equals": ["t1"]}}}
        }))
        .unwrap();
        assert_eq!(g.subject.as_deref(), Some("svc"));
        assert_eq!(
            g.tables,
            TableGrant::Only([t("public.orders"), t("public.items")].into())
        );
        assert_eq!(g.scopes[&t("public.orders")].column, "tenant_id");
        let all = grant(serde_json::json!({"walcast": {"tables": ["*", "a.b"]}})).unwrap();
        assert_eq!(all.tables, TableGrant::All);
    }

    #[test]
    fn refuses_claims_it_cannot_honour() {
        for bad in [
            serde_json::json!({"walcast": {"v": 2, "tables": ["*"]}}),
            serde_json::json!({"walcast": {"tables": ["*"], "rows": {}}}),
            serde_json::json!({"walcast": {"tables": ["a.b.c"]}}),
            serde_json::json!({"walcast": {"tables": ["a"], "scopes": {"a": {"column": "", "equals": []}}}}),
        ] {
            assert!(grant(bad.clone()).is_err(), "{bad}");
        }
        // A wrongly typed claim fails already at deserializing.
        assert!(serde_json::from_value::<TokenClaims>(
            serde_json::json!({"walcast": {"tables": "public.a"}})
        )
        .is_err());
    }

    #[test]
    fn no_walcast_claim_grants_nothing() {
        let g = grant(serde_json::json!({"sub": "x"})).unwrap();
        assert!(g.authorize(&[]).is_err());
        assert!(g.authorize(&[t("public.a")]).is_err());
    }

    #[test]
    fn authorize_restricts_and_derives_the_filter() {
        let g =
            grant(serde_json::json!({"walcast": {"tables": ["public.a", "public.b"]}})).unwrap();
        assert_eq!(g.authorize(&[t("public.a")]).unwrap(), vec![t("public.a")]);
        assert_eq!(
            g.authorize(&[]).unwrap(),
            vec![t("public.a"), t("public.b")]
        );
        let err = g.authorize(&[t("public.a"), t("public.c")]).unwrap_err();
        assert!(err.0.contains("public.c"), "{err}");
        let all = Grant::everything();
        assert_eq!(all.authorize(&[]).unwrap(), Vec::<(String, String)>::new());
        assert_eq!(all.authorize(&[t("x.y")]).unwrap(), vec![t("x.y")]);
    }

    #[test]
    fn scoped_tables_are_served_with_their_scopes() {
        let g = grant(
            serde_json::json!({"walcast": {"tables": ["public.a", "public.b"],
            "scopes": {"public.a": {"column": "tenant", "equals": ["t1"]}}}}),
        )
        .unwrap();
        let tables = g.authorize(&[t("public.a")]).unwrap();
        assert_eq!(tables, vec![t("public.a")]);
        let scopes = g.scopes_for(&tables);
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].1.equals, vec!["t1".to_string()]);
        let all = g.authorize(&[]).unwrap();
        assert_eq!(all, vec![t("public.a"), t("public.b")]);
        assert_eq!(g.scopes_for(&all).len(), 1);
        assert!(g.scopes_for(&[t("public.b")]).is_empty());
        // "*" with scopes: the client must name its tables, so the scoped ones are looked at.
        let star = grant(serde_json::json!({"walcast": {"tables": ["*"],
            "scopes": {"public.a": {"column": "tenant", "equals": ["t1"]}}}}))
        .unwrap();
        assert!(star.authorize(&[]).is_err());
        let named = star.authorize(&[t("public.a"), t("public.b")]).unwrap();
        assert_eq!(star.scopes_for(&named).len(), 1);
    }
}
