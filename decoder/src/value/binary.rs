//! Values from pgoutput binary (`b`) tuple data: the types' `send` functions' bytes.
use super::Value;
use crate::Result;

/// Decodes the binary form of a datum of built-in type `type_oid`. Offsets in errors are relative to `raw`.
pub fn decode_binary(type_oid: u32, raw: &[u8]) -> Result<Value<'_>> {
    Ok(Value::UnknownBinary {
        type_oid,
        bytes: raw.into(),
    })
}
