//! Values printed exactly as PostgreSQL's `to_json()` prints them in a UTC session.
use super::Value;

/// Appends the JSON form of `value` to `out`.
pub fn write_json(value: &Value<'_>, out: &mut String) {
    let _ = (value, out);
    todo!("values issue")
}
