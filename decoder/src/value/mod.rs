//! Typed column values, decoded from pgoutput text (`t`) or binary (`b`) tuple data.
//!
//! Text and binary forms of the same datum decode to the same [`Value`]; `json::write_value`
//! prints it exactly as PostgreSQL's `to_json()` would in a UTC session.
//!
//! Text-mode parsing assumes the walsender session runs with `DateStyle=ISO`,
//! `IntervalStyle=postgres`, `bytea_output=hex` and `extra_float_digits>=1` (the relay sets these
//! in its startup packet; see docs/output.md). Values the parser cannot read under those settings
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
    /// text, varchar, bpchar, name, "char", citext-like and enum labels.
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
    Array(Array<'a>),
    /// A type this decoder does not know, in text mode: PostgreSQL's text output.
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
pub mod json;
mod text;

pub use binary::decode_binary;
pub use text::decode_text;
