//! Values from pgoutput text (`t`) tuple data: PostgreSQL's output functions' text.
use super::Value;
use crate::Result;

/// Decodes the text form of a datum of built-in type `type_oid`. Offsets in errors are relative to `raw`.
pub fn decode_text(type_oid: u32, raw: &[u8]) -> Result<Value<'_>> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        crate::DecodeError::new(e.valid_up_to(), crate::ErrorKind::InvalidUtf8, "text value")
    })?;
    Ok(Value::UnknownText {
        type_oid,
        text: text.into(),
    })
}
