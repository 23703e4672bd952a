//! `serde::Serialize` for [`Value`]: the compact "values v1" forms (see docs/values.md).
//!
//! Numbers stay numbers (floats keep NaN/±Infinity as floats), numeric is its exact decimal
//! string, bytea and unknown binary data are byte strings (MessagePack `bin`), money is its
//! integer number of cents, arrays are nested sequences, and every other type is the same
//! string `to_json()` would print, without the JSON quotes (dates, timestamps, intervals,
//! uuids, addresses, bit strings, unknown-type text). json/jsonb are their JSON text as a string.

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::datetime::{push_date, push_hms, push_interval, push_timestamp, push_tz};
use super::json::{push_inet, push_mac, push_uuid};
use super::{Array, Value};

/// The version of this mapping; bump it when any form changes.
pub const VALUES_FORMAT_VERSION: &str = "values v1";

thread_local! {
    /// Scratch space for the formatted forms, so serializing a timestamp does not allocate.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn text_with<S: Serializer>(s: S, f: impl FnOnce(&mut String)) -> Result<S::Ok, S::Error> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            f(&mut buf);
            s.serialize_str(&buf)
        }
        // Only reachable if a serializer re-entered us mid-string; fall back to a fresh buffer.
        Err(_) => {
            let mut buf = String::with_capacity(32);
            f(&mut buf);
            s.serialize_str(&buf)
        }
    })
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Int2(v) => s.serialize_i16(*v),
            Value::Int4(v) => s.serialize_i32(*v),
            Value::Int8(v) => s.serialize_i64(*v),
            Value::Oid(v) => s.serialize_u32(*v),
            Value::Float4(v) => s.serialize_f32(*v),
            Value::Float8(v) => s.serialize_f64(*v),
            Value::Numeric(v) | Value::Text(v) | Value::Json(v) | Value::Bit(v) => {
                s.serialize_str(v)
            }
            Value::UnknownText { text, .. } => s.serialize_str(text),
            Value::Bytea(b) | Value::UnknownBinary { bytes: b, .. } => s.serialize_bytes(b),
            Value::Uuid(u) => text_with(s, |o| push_uuid(o, u)),
            Value::Date(d) => text_with(s, |o| push_date(o, *d)),
            Value::Time(t) => text_with(s, |o| push_hms(o, (*t).max(0) as u64)),
            Value::TimeTz {
                micros,
                offset_secs,
            } => text_with(s, |o| {
                push_hms(o, (*micros).max(0) as u64);
                push_tz(o, *offset_secs);
            }),
            Value::Timestamp(t) => text_with(s, |o| push_timestamp(o, *t, false)),
            Value::TimestampTz(t) => text_with(s, |o| push_timestamp(o, *t, true)),
            Value::Interval {
                months,
                days,
                micros,
            } => text_with(s, |o| push_interval(o, *months, *days, *micros)),
            Value::Inet { addr, prefix, cidr } => {
                text_with(s, |o| push_inet(o, addr, *prefix, *cidr))
            }
            Value::MacAddr(m) => text_with(s, |o| push_mac(o, m)),
            Value::MacAddr8(m) => text_with(s, |o| push_mac(o, m)),
            // Money keeps its exact integer cents here; JSON prints "$1.00".
            Value::Money(c) => s.serialize_i64(*c),
            Value::Array(a) => {
                if a.dims.is_empty() || a.elements.is_empty() {
                    return s.serialize_seq(Some(0))?.end();
                }
                let mut next = 0;
                ArrayDim {
                    a,
                    dim: 0,
                    start: &mut next,
                }
                .serialize_into(s)
            }
        }
    }
}

/// One dimension of an array, serialized as a nested sequence.
struct ArrayDim<'x, 'a> {
    a: &'x Array<'a>,
    dim: usize,
    start: &'x mut usize,
}

impl ArrayDim<'_, '_> {
    fn serialize_into<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.a.dims[self.dim] as usize;
        let mut seq = s.serialize_seq(Some(n))?;
        if self.dim + 1 == self.a.dims.len() {
            for _ in 0..n {
                seq.serialize_element(self.a.elements.get(*self.start).unwrap_or(&Value::Null))?;
                *self.start += 1;
            }
        } else {
            // Inner dimensions are serialized through a small adapter that borrows the cursor.
            for _ in 0..n {
                let sub = SubDim {
                    a: self.a,
                    dim: self.dim + 1,
                    start: std::cell::Cell::new(*self.start),
                };
                seq.serialize_element(&sub)?;
                *self.start = sub.start.get();
            }
        }
        seq.end()
    }
}

struct SubDim<'x, 'a> {
    a: &'x Array<'a>,
    dim: usize,
    start: std::cell::Cell<usize>,
}

impl Serialize for SubDim<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut cursor = self.start.get();
        let r = ArrayDim {
            a: self.a,
            dim: self.dim,
            start: &mut cursor,
        }
        .serialize_into(s);
        self.start.set(cursor);
        r
    }
}
