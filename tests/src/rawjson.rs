//! Byte-exact comparison of JSON objects, per member: the decoder's values must print exactly as
//! PostgreSQL's `to_json()` does, so numbers are compared as text, never through f64.

use anyhow::{Context, Result};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Member name → the member's raw JSON text.
pub fn members(object_text: &str) -> Result<BTreeMap<String, String>> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(object_text)
        .with_context(|| format!("not a JSON object: {object_text}"))?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect())
}

/// The members of `field` (an object) inside the JSON object `object_text`, raw.
pub fn member_object(object_text: &str, field: &str) -> Result<Option<BTreeMap<String, String>>> {
    let outer = members(object_text)?;
    outer.get(field).map(|inner| members(inner)).transpose()
}

/// Differences between two raw-member maps, one line each; empty when they are equal.
pub fn diff(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, e) in expected {
        match actual.get(k) {
            None => out.push(format!("{k}: missing, expected {e}")),
            Some(a) if a != e => out.push(format!("{k}: got {a}, expected {e}")),
            _ => {}
        }
    }
    for (k, a) in actual {
        if !expected.contains_key(k) {
            out.push(format!("{k}: unexpected member {a}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_text() {
        let a = members(r#"{"n": 1.10, "f": 1e3, "s": "x"}"#).unwrap();
        let b = members(r#"{"n":1.1,"f":1e3,"s":"x"}"#).unwrap();
        assert_eq!(diff(&a, &b), vec!["n: got 1.1, expected 1.10".to_owned()]);
        assert_eq!(
            member_object(r#"{"new":{"a":[1, 2]}}"#, "new")
                .unwrap()
                .unwrap()["a"],
            "[1, 2]"
        );
    }
}
