//! Typed column values, decoded from pgoutput text (`t`) or binary (`b`) tuple data.
//!
//! Text and binary forms of the same datum decode to the same [`Value`]; [`json::write_json`]
//! prints it exactly as PostgreSQL's `to_json()` would in a UTC session, and the `Serialize`
//! impl gives the compact "values v1" forms documented in `docs/values.md`.
//!
//! Text-mode parsing assumes the walsender session runs with `DateStyle=ISO`,
//! `IntervalStyle=postgres`, `bytea_output=hex` and `extra_float_digits>=1` (the relay sets these
//! in its startup packet; see docs/values.md). Values the parser cannot read under those settings
//! are a typed error, never a guess.

use std::borrow::Cow;

pub mod oid;

/// One decoded datum. Borrows from the message bytes where it can.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// SQL NULL (as a column, or as an array element).
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Oid(u32),
    Float4(f32),
    Float8(f64),
    /// numeric, exactly as PostgreSQL prints it: `-12.3400`, `NaN`, `Infinity`, `-Infinity`.
    Numeric(Cow<'a, str>),
    /// text, varchar, bpchar (blank-padded, as stored), name and `"char"`. Enum labels and other
    /// non-built-in types arrive as [`Value::UnknownText`], since only their OID is known.
    Text(Cow<'a, str>),
    Bytea(Cow<'a, [u8]>),
    /// json or jsonb, as JSON text.
    Json(Cow<'a, str>),
    Uuid([u8; 16]),
    /// Days since 2000-01-01; `i32::MAX`/`i32::MIN` are `infinity`/`-infinity`.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since midnight, and the zone offset in seconds *east* of UTC (`+02` is 7200).
    TimeTz {
        micros: i64,
        offset_secs: i32,
    },
    /// Microseconds since 2000-01-01 00:00:00 (no zone); `i64::MAX`/`MIN` are ±infinity.
    Timestamp(i64),
    /// Microseconds since 2000-01-01 00:00:00 UTC; `i64::MAX`/`MIN` are ±infinity.
    TimestampTz(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// inet or cidr: address bytes (4 or 16), prefix length, and whether it is cidr.
    Inet {
        addr: InetAddr,
        prefix: u8,
        cidr: bool,
    },
    MacAddr([u8; 6]),
    MacAddr8([u8; 8]),
    /// money in the smallest currency unit (cents under `lc_monetary=C`).
    Money(i64),
    /// bit or varbit, as a string of '0'/'1'.
    Bit(Cow<'a, str>),
    /// Boxed so that the common scalar variants keep `Value` small (32 bytes).
    Array(Box<Array<'a>>),
    /// A type this decoder does not know, in text mode: PostgreSQL's text output
    /// (enums, domains, composite types, ranges, extension types…).
    UnknownText {
        type_oid: u32,
        text: Cow<'a, str>,
    },
    /// A type this decoder does not know, in binary mode: the type's `send` bytes, untouched.
    UnknownBinary {
        type_oid: u32,
        bytes: Cow<'a, [u8]>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InetAddr {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// A PostgreSQL array of any dimension, flattened in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<'a> {
    pub element_oid: u32,
    /// Length of each dimension, outermost first. Empty for an empty array.
    pub dims: Vec<u32>,
    /// Lower bound of each dimension (1 unless the array was built otherwise).
    pub lower_bounds: Vec<i32>,
    pub elements: Vec<Value<'a>>,
}

mod binary;
mod datetime;
mod fmt;
pub mod json;
pub(crate) mod json_syntax;
pub(crate) mod nearest_float;
mod serde_impl;
pub use serde_impl::VALUES_FORMAT_VERSION;
mod text;

pub use binary::decode_binary;
pub(crate) use binary::decode_binary_emit;
pub use text::decode_text;
pub(crate) use text::decode_text_emit;

/// `raw` as UTF-8 text, or an `InvalidUtf8` error at the first bad byte (relative to `raw`).
///
/// Column text is almost always ASCII, and for the short strings of a typical row the std
/// validator's setup costs more than the check itself; `is_ascii` tests a word at a time.
#[inline]
pub(crate) fn utf8<'a>(raw: &'a [u8], ctx: &'static str) -> crate::Result<&'a str> {
    if raw.is_ascii() {
        // SAFETY: every byte is < 0x80, and a run of ASCII bytes is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(raw) });
    }
    utf8_slow(raw, ctx)
}

#[inline(never)]
fn utf8_slow<'a>(raw: &'a [u8], ctx: &'static str) -> crate::Result<&'a str> {
    std::str::from_utf8(raw)
        .map_err(|e| crate::DecodeError::new(e.valid_up_to(), crate::ErrorKind::InvalidUtf8, ctx))
}

fn own_str(c: &str) -> Cow<'static, str> {
    Cow::Owned(c.to_owned())
}

fn own_bytes(c: &[u8]) -> Cow<'static, [u8]> {
    Cow::Owned(c.to_vec())
}

impl Value<'_> {
    /// A copy that owns all its data, for consumers that keep values beyond the message buffer.
    pub fn to_owned_static(&self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(v) => Value::Bool(*v),
            Value::Int2(v) => Value::Int2(*v),
            Value::Int4(v) => Value::Int4(*v),
            Value::Int8(v) => Value::Int8(*v),
            Value::Oid(v) => Value::Oid(*v),
            Value::Float4(v) => Value::Float4(*v),
            Value::Float8(v) => Value::Float8(*v),
            Value::Numeric(v) => Value::Numeric(own_str(v)),
            Value::Text(v) => Value::Text(own_str(v)),
            Value::Bytea(v) => Value::Bytea(own_bytes(v)),
            Value::Json(v) => Value::Json(own_str(v)),
            Value::Uuid(v) => Value::Uuid(*v),
            Value::Date(v) => Value::Date(*v),
            Value::Time(v) => Value::Time(*v),
            Value::TimeTz {
                micros,
                offset_secs,
            } => Value::TimeTz {
                micros: *micros,
                offset_secs: *offset_secs,
            },
            Value::Timestamp(v) => Value::Timestamp(*v),
            Value::TimestampTz(v) => Value::TimestampTz(*v),
            Value::Interval {
                months,
                days,
                micros,
            } => Value::Interval {
                months: *months,
                days: *days,
                micros: *micros,
            },
            Value::Inet { addr, prefix, cidr } => Value::Inet {
                addr: *addr,
                prefix: *prefix,
                cidr: *cidr,
            },
            Value::MacAddr(v) => Value::MacAddr(*v),
            Value::MacAddr8(v) => Value::MacAddr8(*v),
            Value::Money(v) => Value::Money(*v),
            Value::Bit(v) => Value::Bit(own_str(v)),
            Value::Array(a) => Value::Array(Box::new(Array {
                element_oid: a.element_oid,
                dims: a.dims.clone(),
                lower_bounds: a.lower_bounds.clone(),
                elements: a.elements.iter().map(Value::to_owned_static).collect(),
            })),
            Value::UnknownText { type_oid, text } => Value::UnknownText {
                type_oid: *type_oid,
                text: own_str(text),
            },
            Value::UnknownBinary { type_oid, bytes } => Value::UnknownBinary {
                type_oid: *type_oid,
                bytes: own_bytes(bytes),
            },
        }
    }

    /// Same as [`Value::to_owned_static`], consuming `self`.
    pub fn into_owned(self) -> Value<'static> {
        self.to_owned_static()
    }

    /// The JSON text of this value, as PostgreSQL's `to_json()` prints it in a UTC session.
    pub fn to_json_string(&self) -> String {
        let mut s = String::new();
        json::write_json(self, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_stays_small() {
        // Rows are decoded into Vec<Value>; a fat enum costs memory bandwidth on every column.
        assert!(
            std::mem::size_of::<super::Value<'_>>() <= 32,
            "{}",
            std::mem::size_of::<super::Value<'_>>()
        );
    }
}
