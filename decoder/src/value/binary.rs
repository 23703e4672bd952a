//! Values from pgoutput binary (`b`) tuple data: the types' `send` functions' bytes.
//!
//! Every length read from the data is checked against the bytes actually present before it is
//! used, and allocations are bounded by the input size (arrays: one element needs ≥ 4 bytes).

use std::borrow::Cow;

use super::datetime::{POSTGRES_EPOCH_JDATE, USECS_PER_DAY};
use super::json_syntax::json_str;
use super::oid;
use super::text::MAX_DIMS;
use super::{utf8, Array, InetAddr, Value};
use crate::{DecodeError, ErrorKind, Result};

fn truncated(have: usize, need: usize, ctx: &'static str) -> DecodeError {
    DecodeError::new(
        have,
        ErrorKind::Truncated {
            needed: need - have,
        },
        ctx,
    )
}

#[cold]
fn invalid(offset: usize, what: &'static str, ctx: &'static str) -> DecodeError {
    DecodeError::new(offset, ErrorKind::InvalidValue(what), ctx)
}

/// Decodes like [`decode_binary`] and hands the value to `emit`, one `emit` per common type so
/// the value is written straight into the row (see `text::decode_text_emit`).
#[inline(always)]
pub(crate) fn decode_binary_emit<'a>(
    type_oid: u32,
    raw: &'a [u8],
    emit: impl FnOnce(Value<'a>),
) -> Result<()> {
    match type_oid {
        oid::INT2 => emit(Value::Int2(i16::from_be_bytes(exact(raw, "int2")?))),
        oid::INT4 => emit(Value::Int4(i32::from_be_bytes(exact(raw, "int4")?))),
        oid::INT8 => emit(Value::Int8(i64::from_be_bytes(exact(raw, "int8")?))),
        oid::FLOAT8 => emit(Value::Float8(f64::from_be_bytes(exact(raw, "float8")?))),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => {
            emit(Value::Text(Cow::Borrowed(utf8(raw, "text")?)))
        }
        oid::TIMESTAMPTZ => emit(Value::TimestampTz(timestamp(raw, "timestamptz")?)),
        oid::NUMERIC => emit(Value::Numeric(Cow::Owned(numeric_to_string(raw)?))),
        oid::BOOL => emit(Value::Bool(bool_(raw)?)),
        _ => emit(decode_binary(type_oid, raw)?),
    }
    Ok(())
}

fn bool_(raw: &[u8]) -> Result<bool> {
    match exact::<1>(raw, "bool")? {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(invalid(0, "bool byte is not 0 or 1", "bool")),
    }
}

/// Exactly `N` bytes, else a typed error (too short: Truncated; too long: TrailingBytes).
fn exact<const N: usize>(raw: &[u8], ctx: &'static str) -> Result<[u8; N]> {
    match raw.len() {
        n if n < N => Err(truncated(n, N, ctx)),
        n if n > N => Err(DecodeError::new(N, ErrorKind::TrailingBytes(n - N), ctx)),
        _ => {
            let mut a = [0u8; N];
            a.copy_from_slice(raw);
            Ok(a)
        }
    }
}

/// Last valid Julian day of timestamps (294277-01-01) and of dates (5874898-01-01), as in PostgreSQL.
const TIMESTAMP_END_JULIAN: i64 = 109_203_528;
const DATE_END_JULIAN: i64 = 2_147_483_494;

/// Decodes the binary form of a datum of built-in type `type_oid`. Offsets in errors are relative to `raw`.
pub fn decode_binary(type_oid: u32, raw: &[u8]) -> Result<Value<'_>> {
    Ok(match type_oid {
        oid::BOOL => Value::Bool(bool_(raw)?),
        oid::INT2 => Value::Int2(i16::from_be_bytes(exact(raw, "int2")?)),
        oid::INT4 => Value::Int4(i32::from_be_bytes(exact(raw, "int4")?)),
        oid::INT8 => Value::Int8(i64::from_be_bytes(exact(raw, "int8")?)),
        oid::OID => Value::Oid(u32::from_be_bytes(exact(raw, "oid")?)),
        oid::FLOAT4 => Value::Float4(f32::from_be_bytes(exact(raw, "float4")?)),
        oid::FLOAT8 => Value::Float8(f64::from_be_bytes(exact(raw, "float8")?)),
        oid::NUMERIC => Value::Numeric(Cow::Owned(numeric_to_string(raw)?)),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => {
            Value::Text(Cow::Borrowed(utf8(raw, "text")?))
        }
        oid::CHAR => Value::Text(char_text(raw)?),
        oid::JSON => Value::Json(Cow::Borrowed(json_str(raw, "json")?)),
        oid::JSONB => match raw.split_first() {
            Some((1, text)) => Value::Json(Cow::Borrowed(
                json_str(text, "jsonb").map_err(|e| e.shifted(1))?,
            )),
            Some((v, _)) => {
                return Err(DecodeError::new(
                    0,
                    ErrorKind::UnsupportedVersion(*v as u16),
                    "jsonb",
                ))
            }
            None => return Err(truncated(0, 1, "jsonb")),
        },
        oid::BYTEA => Value::Bytea(Cow::Borrowed(raw)),
        oid::UUID => Value::Uuid(exact(raw, "uuid")?),
        oid::DATE => {
            let d = i32::from_be_bytes(exact(raw, "date")?);
            let jd = d as i64 + POSTGRES_EPOCH_JDATE;
            if d != i32::MAX && d != i32::MIN && !(0..DATE_END_JULIAN).contains(&jd) {
                return Err(invalid(0, "date out of range", "date"));
            }
            Value::Date(d)
        }
        oid::TIME => {
            let t = i64::from_be_bytes(exact(raw, "time")?);
            if !(0..=USECS_PER_DAY).contains(&t) {
                return Err(invalid(0, "time out of range", "time"));
            }
            Value::Time(t)
        }
        oid::TIMETZ => {
            let b: [u8; 12] = exact(raw, "timetz")?;
            let micros = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            // The wire carries seconds *west* of UTC (PostgreSQL's internal sign).
            let west = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            if !(0..=USECS_PER_DAY).contains(&micros) || !(-86_400..=86_400).contains(&west) {
                return Err(invalid(0, "timetz out of range", "timetz"));
            }
            Value::TimeTz {
                micros,
                offset_secs: -west,
            }
        }
        oid::TIMESTAMP => Value::Timestamp(timestamp(raw, "timestamp")?),
        oid::TIMESTAMPTZ => Value::TimestampTz(timestamp(raw, "timestamptz")?),
        oid::INTERVAL => {
            let b: [u8; 16] = exact(raw, "interval")?;
            let micros = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let days = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            let months = i32::from_be_bytes([b[12], b[13], b[14], b[15]]);
            Value::Interval {
                months,
                days,
                micros,
            }
        }
        oid::INET | oid::CIDR => inet(raw)?,
        oid::MACADDR => Value::MacAddr(exact(raw, "macaddr")?),
        oid::MACADDR8 => Value::MacAddr8(exact(raw, "macaddr8")?),
        oid::MONEY => Value::Money(i64::from_be_bytes(exact(raw, "money")?)),
        oid::BIT | oid::VARBIT => Value::Bit(Cow::Owned(bits(raw)?)),
        _ => match oid::array_element(type_oid) {
            Some(elem) => Value::Array(Box::new(array(elem, raw)?)),
            None => Value::UnknownBinary {
                type_oid,
                bytes: Cow::Borrowed(raw),
            },
        },
    })
}

fn timestamp(raw: &[u8], ctx: &'static str) -> Result<i64> {
    let t = i64::from_be_bytes(exact(raw, ctx)?);
    if t != i64::MAX && t != i64::MIN {
        let jd = t.div_euclid(USECS_PER_DAY) + POSTGRES_EPOCH_JDATE;
        if !(0..TIMESTAMP_END_JULIAN).contains(&jd) {
            return Err(invalid(0, "timestamp out of range", ctx));
        }
    }
    Ok(t)
}

/// `"char"` sends its one raw byte; charout prints high-bit bytes as `\ooo` octal and NUL as
/// the empty string. Producing that text here makes text and binary decode to the same value.
fn char_text(raw: &[u8]) -> Result<Cow<'static, str>> {
    let b = match raw {
        [] => 0,
        [b] => *b,
        _ => {
            return Err(DecodeError::new(
                1,
                ErrorKind::TrailingBytes(raw.len() - 1),
                "char",
            ))
        }
    };
    Ok(match b {
        0 => Cow::Borrowed(""),
        0x80.. => Cow::Owned(format!("\\{:03o}", b)),
        _ => Cow::Owned((b as char).to_string()),
    })
}

/// numeric_send: ndigits, weight, sign, dscale (all 16-bit), then ndigits base-10000 digits.
/// Printed exactly as numeric_out's `get_str_from_var` does.
fn numeric_to_string(raw: &[u8]) -> Result<String> {
    const CTX: &str = "numeric";
    if raw.len() < 8 {
        return Err(truncated(raw.len(), 8, CTX));
    }
    let ndigits = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err(invalid(4, "bad numeric sign", CTX)),
    }
    if ndigits > 0x7FFF || dscale > 0x3FFF {
        return Err(invalid(0, "numeric header out of range", CTX));
    }
    let need = 8 + 2 * ndigits;
    if raw.len() < need {
        return Err(truncated(raw.len(), need, CTX));
    }
    if raw.len() > need {
        return Err(DecodeError::new(
            need,
            ErrorKind::TrailingBytes(raw.len() - need),
            CTX,
        ));
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            let p = 8 + 2 * i as usize;
            u16::from_be_bytes([raw[p], raw[p + 1]])
        } else {
            0
        }
    };
    for i in 0..ndigits as i32 {
        if digit(i) > 9999 {
            return Err(invalid(8 + 2 * i as usize, "numeric digit above 9999", CTX));
        }
    }
    let dscale = dscale as usize;
    // The exact length, so the string is allocated once. Bounded by the 16-bit header fields
    // (≤ 4·32768 + 16384 characters).
    let int_len = if weight < 0 {
        1
    } else {
        4 * (weight as usize + 1)
    };
    let frac_len = if dscale > 0 { 1 + dscale } else { 0 };
    let mut out = String::with_capacity(1 + int_len + frac_len);
    if sign == 0x4000 {
        out.push('-');
    }
    let mut d: i32;
    if weight < 0 {
        d = weight + 1;
        out.push('0');
    } else {
        // The first group prints without leading zeros.
        let first = digit(0);
        let skip = match first {
            1000.. => 0,
            100.. => 1,
            10.. => 2,
            _ => 3,
        };
        push_digits(&mut out, first, skip, 4);
        d = 1;
        while d <= weight {
            push_digits(&mut out, digit(d), 0, 4);
            d += 1;
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut left = dscale;
        while left > 0 {
            let n = left.min(4);
            push_digits(&mut out, digit(d), 0, n);
            left -= n;
            d += 1;
        }
    }
    Ok(out)
}

/// Appends decimal digits `from..to` (0 = thousands) of the base-10000 digit `v` (≤ 9999).
#[inline]
fn push_digits(out: &mut String, v: u16, from: usize, to: usize) {
    let (hi, lo) = (usize::from(v / 100 % 100), usize::from(v % 100));
    let digits = [
        DIGIT_PAIRS[2 * hi],
        DIGIT_PAIRS[2 * hi + 1],
        DIGIT_PAIRS[2 * lo],
        DIGIT_PAIRS[2 * lo + 1],
    ];
    for &c in &digits[from.min(4)..to.min(4)] {
        out.push(char::from(c));
    }
}

/// "00" "01" … "99", two ASCII digits per value.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// inet_send/cidr_send: family (2 = IPv4, 3 = IPv6), bits, is_cidr, address length, address.
fn inet(raw: &[u8]) -> Result<Value<'static>> {
    const CTX: &str = "inet";
    if raw.len() < 4 {
        return Err(truncated(raw.len(), 4, CTX));
    }
    let (family, bits, is_cidr, nb) = (raw[0], raw[1], raw[2], raw[3] as usize);
    let body = &raw[4..];
    let (addr, max) = match (family, nb) {
        (2, 4) => (
            InetAddr::V4(exact(body, CTX).map_err(|e| e.shifted(4))?),
            32,
        ),
        (3, 16) => (
            InetAddr::V6(exact(body, CTX).map_err(|e| e.shifted(4))?),
            128,
        ),
        _ => return Err(invalid(0, "bad inet family or length", CTX)),
    };
    if bits > max || is_cidr > 1 {
        return Err(invalid(1, "bad inet prefix or flag", CTX));
    }
    Ok(Value::Inet {
        addr,
        prefix: bits,
        cidr: is_cidr == 1,
    })
}

/// bit_send: bit length (int4), then the bits packed MSB-first.
fn bits(raw: &[u8]) -> Result<String> {
    const CTX: &str = "bit";
    if raw.len() < 4 {
        return Err(truncated(raw.len(), 4, CTX));
    }
    let len = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let data = &raw[4..];
    let len = usize::try_from(len)
        .map_err(|_| DecodeError::new(0, ErrorKind::BadLength(len as i64), CTX))?;
    if len.div_ceil(8) != data.len() {
        return Err(DecodeError::new(0, ErrorKind::BadLength(len as i64), CTX));
    }
    let mut out = String::with_capacity(len);
    for i in 0..len {
        out.push(if data[i / 8] & (0x80 >> (i % 8)) != 0 {
            '1'
        } else {
            '0'
        });
    }
    Ok(out)
}

/// array_send: ndim, has-null flag, element oid, (length, lower bound) per dimension, then
/// each element as int4 length (-1 = NULL) and that element type's send bytes.
fn array(expected_elem: u32, raw: &[u8]) -> Result<Array<'_>> {
    const CTX: &str = "array";
    let rd_i32 = |pos: usize| -> Result<i32> {
        raw.get(pos..pos + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| truncated(raw.len(), pos + 4, CTX))
    };
    let ndim = rd_i32(0)?;
    let flags = rd_i32(4)?;
    let elem_oid = rd_i32(8)? as u32;
    if !(0..=MAX_DIMS as i32).contains(&ndim) {
        return Err(invalid(
            0,
            "array has more than 6 dimensions or a negative count",
            CTX,
        ));
    }
    if flags != 0 && flags != 1 {
        return Err(invalid(4, "bad array flags", CTX));
    }
    if elem_oid != expected_elem {
        return Err(invalid(
            8,
            "array element type does not match the column type",
            CTX,
        ));
    }
    let ndim = ndim as usize;
    let mut pos = 12;
    let mut dims = Vec::with_capacity(ndim);
    let mut lower_bounds = Vec::with_capacity(ndim);
    let mut total: u64 = if ndim == 0 { 0 } else { 1 };
    for _ in 0..ndim {
        let len = rd_i32(pos)?;
        let lb = rd_i32(pos + 4)?;
        let len = u32::try_from(len)
            .map_err(|_| DecodeError::new(pos, ErrorKind::BadLength(len as i64), CTX))?;
        total = total.saturating_mul(len as u64);
        dims.push(len);
        lower_bounds.push(lb);
        pos += 8;
    }
    // Each element costs at least its 4-byte length word, so this bounds the allocation.
    let remaining = (raw.len() - pos) as u64;
    if total > remaining / 4 {
        return Err(DecodeError::new(
            pos,
            ErrorKind::BadLength(total.min(i64::MAX as u64) as i64),
            CTX,
        ));
    }
    let mut elements = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let len = rd_i32(pos)?;
        pos += 4;
        if len == -1 {
            elements.push(Value::Null);
            continue;
        }
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::new(pos - 4, ErrorKind::BadLength(len as i64), CTX))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= raw.len())
            .ok_or_else(|| truncated(raw.len(), pos.saturating_add(len), CTX))?;
        elements.push(decode_binary(elem_oid, &raw[pos..end]).map_err(|e| e.shifted(pos))?);
        pos = end;
    }
    if pos != raw.len() {
        return Err(DecodeError::new(
            pos,
            ErrorKind::TrailingBytes(raw.len() - pos),
            CTX,
        ));
    }
    Ok(Array {
        element_oid: elem_oid,
        dims,
        lower_bounds,
        elements,
    })
}
