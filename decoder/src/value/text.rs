//! Values from pgoutput text (`t`) tuple data: PostgreSQL's output functions' text.
//!
//! Assumes the session settings the relay pins (DateStyle=ISO, IntervalStyle=postgres,
//! bytea_output=hex, extra_float_digits≥1, lc_monetary=C, client_encoding=UTF8).
//! Integers, text and numeric borrow from `raw`; nothing here allocates for them.

use std::borrow::Cow;

use super::datetime;
use super::json_syntax::json_str;
use super::nearest_float;
use super::oid;
use super::{utf8, Array, InetAddr, Value};
use crate::{DecodeError, ErrorKind, Result};

mod float;

/// PostgreSQL's MAXDIM: arrays have at most 6 dimensions.
pub(crate) const MAX_DIMS: usize = 6;

#[cold]
fn invalid(ctx: &'static str, what: &'static str) -> DecodeError {
    DecodeError::new(0, ErrorKind::InvalidValue(what), ctx)
}

/// Decodes the text form of a datum of built-in type `type_oid`. Offsets in errors are relative to `raw`.
pub fn decode_text(type_oid: u32, raw: &[u8]) -> Result<Value<'_>> {
    Ok(match type_oid {
        oid::BOOL => match raw {
            // boolout prints t/f; the long forms cost nothing to accept.
            b"t" | b"true" => Value::Bool(true),
            b"f" | b"false" => Value::Bool(false),
            _ => return Err(invalid("bool", "expected t or f")),
        },
        oid::INT2 => Value::Int2(
            parse_int(raw, "int2")?
                .try_into()
                .map_err(|_| invalid("int2", "out of range"))?,
        ),
        oid::INT4 => Value::Int4(
            parse_int(raw, "int4")?
                .try_into()
                .map_err(|_| invalid("int4", "out of range"))?,
        ),
        oid::INT8 => Value::Int8(parse_int(raw, "int8")?),
        oid::OID => Value::Oid(
            parse_int(raw, "oid")?
                .try_into()
                .map_err(|_| invalid("oid", "out of range"))?,
        ),
        oid::FLOAT4 => Value::Float4(parse_float(raw, "float4")?),
        oid::FLOAT8 => Value::Float8(parse_f64(raw)?),
        oid::NUMERIC => Value::Numeric(Cow::Borrowed(parse_numeric(raw)?)),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => {
            Value::Text(Cow::Borrowed(utf8(raw, "text")?))
        }
        oid::JSON | oid::JSONB => Value::Json(Cow::Borrowed(json_str(raw, "json")?)),
        oid::BYTEA => Value::Bytea(Cow::Owned(parse_bytea(raw)?)),
        oid::UUID => Value::Uuid(parse_uuid(raw).ok_or_else(|| invalid("uuid", "malformed uuid"))?),
        oid::DATE => Value::Date(
            datetime::parse_date(raw).ok_or_else(|| invalid("date", "not an ISO date"))?,
        ),
        oid::TIME => Value::Time(
            datetime::parse_time(raw).ok_or_else(|| invalid("time", "not an ISO time"))?,
        ),
        oid::TIMETZ => {
            let (micros, offset_secs) = datetime::parse_timetz(raw)
                .ok_or_else(|| invalid("timetz", "not an ISO time with zone"))?;
            Value::TimeTz {
                micros,
                offset_secs,
            }
        }
        oid::TIMESTAMP => Value::Timestamp(
            datetime::parse_timestamp(raw, false)
                .ok_or_else(|| invalid("timestamp", "not an ISO timestamp"))?,
        ),
        oid::TIMESTAMPTZ => Value::TimestampTz(
            datetime::parse_timestamp(raw, true)
                .ok_or_else(|| invalid("timestamptz", "not an ISO timestamp"))?,
        ),
        oid::INTERVAL => {
            let (months, days, micros) = datetime::parse_interval(raw)
                .ok_or_else(|| invalid("interval", "not a postgres-style interval"))?;
            Value::Interval {
                months,
                days,
                micros,
            }
        }
        oid::INET | oid::CIDR => parse_inet(raw, type_oid == oid::CIDR)?,
        oid::MACADDR => {
            Value::MacAddr(parse_mac(raw).ok_or_else(|| invalid("macaddr", "malformed macaddr"))?)
        }
        oid::MACADDR8 => Value::MacAddr8(
            parse_mac(raw).ok_or_else(|| invalid("macaddr8", "malformed macaddr8"))?,
        ),
        oid::MONEY => Value::Money(
            parse_money(raw).ok_or_else(|| invalid("money", "not a C-locale money value"))?,
        ),
        oid::BIT | oid::VARBIT => {
            if !raw.iter().all(|b| matches!(b, b'0' | b'1')) {
                return Err(invalid("bit", "bit strings hold only 0 and 1"));
            }
            Value::Bit(Cow::Borrowed(utf8(raw, "bit")?))
        }
        _ => match oid::array_element(type_oid) {
            Some(elem) => Value::Array(Box::new(parse_array(elem, raw)?)),
            None => Value::UnknownText {
                type_oid,
                text: Cow::Borrowed(utf8(raw, "unknown type")?),
            },
        },
    })
}

/// Decodes like [`decode_text`] and hands the value to `emit`. The types of typical rows each call
/// `emit` in their own arm, so (once inlined into the row loop) the value is written straight into
/// the row: building it in one shared `Value` temporary and copying that cost a store-forwarding
/// stall per column, the largest single cost of decoding a row. Every arm calls the same parser
/// as `decode_text`; other types go through `decode_text` itself.
#[inline(always)]
pub(crate) fn decode_text_emit<'a>(
    type_oid: u32,
    raw: &'a [u8],
    emit: impl FnOnce(Value<'a>),
) -> Result<()> {
    match type_oid {
        oid::BOOL => match raw {
            b"t" | b"true" => emit(Value::Bool(true)),
            b"f" | b"false" => emit(Value::Bool(false)),
            _ => return Err(invalid("bool", "expected t or f")),
        },
        oid::INT2 => emit(Value::Int2(
            parse_int(raw, "int2")?
                .try_into()
                .map_err(|_| invalid("int2", "out of range"))?,
        )),
        oid::INT4 => emit(Value::Int4(
            parse_int(raw, "int4")?
                .try_into()
                .map_err(|_| invalid("int4", "out of range"))?,
        )),
        oid::INT8 => emit(Value::Int8(parse_int(raw, "int8")?)),
        oid::FLOAT8 => emit(Value::Float8(parse_f64(raw)?)),
        oid::NUMERIC => emit(Value::Numeric(Cow::Borrowed(parse_numeric(raw)?))),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => {
            emit(Value::Text(Cow::Borrowed(utf8(raw, "text")?)))
        }
        oid::JSON | oid::JSONB => emit(Value::Json(Cow::Borrowed(json_str(raw, "json")?))),
        oid::TIMESTAMPTZ => emit(Value::TimestampTz(
            datetime::parse_timestamp(raw, true)
                .ok_or_else(|| invalid("timestamptz", "not an ISO timestamp"))?,
        )),
        oid::TIMESTAMP => emit(Value::Timestamp(
            datetime::parse_timestamp(raw, false)
                .ok_or_else(|| invalid("timestamp", "not an ISO timestamp"))?,
        )),
        oid::DATE => emit(Value::Date(
            datetime::parse_date(raw).ok_or_else(|| invalid("date", "not an ISO date"))?,
        )),
        _ => emit(decode_text(type_oid, raw)?),
    }
    Ok(())
}

/// A decimal integer as `int8out` prints it: optional `-`, digits, no spaces. Overflow is an error.
fn parse_int(raw: &[u8], ctx: &'static str) -> Result<i64> {
    let (neg, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() {
        return Err(invalid(ctx, "empty integer"));
    }
    // Up to 18 digits cannot overflow, so they take no checked arithmetic (which in WASM is a
    // call to a 128-bit multiply per digit); the loop is unswitched on `short`.
    let short = digits.len() <= 18;
    // Accumulate negatively so i64::MIN parses without overflow.
    let mut v: i64 = 0;
    for (i, &b) in digits.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(DecodeError::new(
                i + neg as usize,
                ErrorKind::InvalidValue("not a digit"),
                ctx,
            ));
        }
        v = if short {
            v * 10 - i64::from(d)
        } else {
            v.checked_mul(10)
                .and_then(|v| v.checked_sub(i64::from(d)))
                .ok_or_else(|| invalid(ctx, "out of range"))?
        };
    }
    if neg {
        Ok(v)
    } else {
        v.checked_neg().ok_or_else(|| invalid(ctx, "out of range"))
    }
}

fn parse_float<T: FloatSpecials>(raw: &[u8], ctx: &'static str) -> Result<T> {
    match raw {
        b"NaN" => Ok(T::NAN),
        b"Infinity" => Ok(T::INFINITY),
        b"-Infinity" => Ok(T::NEG_INFINITY),
        _ => (T::READ)(raw).ok_or_else(|| invalid(ctx, "not a float")),
    }
}

/// float8 text: the plain decimals `float8out` prints most take [`float::parse_plain_f64`]
/// (bit-for-bit `str::parse`, without its generality); everything else goes through
/// [`parse_float`].
#[inline]
fn parse_f64(raw: &[u8]) -> Result<f64> {
    match float::parse_plain_f64(raw) {
        Some(v) => Ok(v),
        None => parse_float(raw, "float8"),
    }
}

trait FloatSpecials: Sized {
    const NAN: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    /// The text of a finite float (`value::nearest_float`).
    const READ: fn(&[u8]) -> Option<Self>;
}
impl FloatSpecials for f32 {
    const NAN: f32 = f32::NAN;
    const INFINITY: f32 = f32::INFINITY;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    const READ: fn(&[u8]) -> Option<f32> = nearest_float::parse_f32;
}
impl FloatSpecials for f64 {
    const NAN: f64 = f64::NAN;
    const INFINITY: f64 = f64::INFINITY;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    const READ: fn(&[u8]) -> Option<f64> = nearest_float::parse_f64;
}

/// numeric_out's text: `-?digits(.digits)?`, `NaN`, `Infinity`, `-Infinity`. Kept verbatim.
fn parse_numeric(raw: &[u8]) -> Result<&str> {
    let body = raw.strip_prefix(b"-").unwrap_or(raw);
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let ok = !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.map_or(true, |f| !f.is_empty() && f.iter().all(u8::is_ascii_digit));
    if !ok {
        return parse_numeric_special(raw);
    }
    utf8(raw, "numeric")
}

#[cold]
fn parse_numeric_special(raw: &[u8]) -> Result<&str> {
    if matches!(raw, b"NaN" | b"Infinity" | b"-Infinity") {
        return utf8(raw, "numeric");
    }
    Err(invalid("numeric", "not a plain decimal number"))
}

/// bytea in hex (`\x0102`) or, for old settings, escape format (`a\\b\001`).
fn parse_bytea(raw: &[u8]) -> Result<Vec<u8>> {
    if let Some(hex) = raw.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err(invalid("bytea", "odd number of hex digits"));
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(DecodeError::new(
                        2 + 2 * i,
                        ErrorKind::InvalidValue("bad hex digit"),
                        "bytea",
                    ))
                }
            }
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
        } else if raw.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = raw
                .get(i + 1..i + 4)
                .filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b)));
            let Some(o) = oct else {
                return Err(DecodeError::new(
                    i,
                    ErrorKind::InvalidValue("bad escape"),
                    "bytea",
                ));
            };
            let v = (o[0] - b'0') as u32 * 64 + (o[1] - b'0') as u32 * 8 + (o[2] - b'0') as u32;
            out.push(u8::try_from(v).map_err(|_| {
                DecodeError::new(i, ErrorKind::InvalidValue("bad escape"), "bytea")
            })?);
            i += 4;
        }
    }
    Ok(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as uuid_out prints it.
fn parse_uuid(raw: &[u8]) -> Option<[u8; 16]> {
    if raw.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if raw[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        out[n] = hex_val(raw[i])? << 4 | hex_val(raw[i + 1])?;
        n += 1;
        i += 2;
    }
    Some(out)
}

/// `08:00:2b:01:02:03` (6 or 8 groups, matching `N`).
fn parse_mac<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    if raw.len() != N * 3 - 1 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let p = i * 3;
        if i > 0 && raw[p - 1] != b':' {
            return None;
        }
        *o = hex_val(raw[p])? << 4 | hex_val(raw[p + 1])?;
    }
    Some(out)
}

/// inet/cidr text: an address, then `/bits` (always for cidr, for inet only when not a host mask).
fn parse_inet(raw: &[u8], cidr: bool) -> Result<Value<'static>> {
    let ctx = if cidr { "cidr" } else { "inet" };
    let s = utf8(raw, ctx)?;
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (
            a,
            Some(
                b.parse::<u8>()
                    .map_err(|_| invalid(ctx, "bad prefix length"))?,
            ),
        ),
        None => (s, None),
    };
    let (addr, max) = if let Ok(v4) = addr.parse::<std::net::Ipv4Addr>() {
        (InetAddr::V4(v4.octets()), 32)
    } else if let Ok(v6) = addr.parse::<std::net::Ipv6Addr>() {
        (InetAddr::V6(v6.octets()), 128)
    } else {
        return Err(invalid(ctx, "not an IP address"));
    };
    let prefix = bits.unwrap_or(max);
    if prefix > max {
        return Err(invalid(ctx, "prefix length too large"));
    }
    Ok(Value::Inet { addr, prefix, cidr })
}

/// money under lc_monetary=C: `$1,234.56`, `-$1.00` → cents.
fn parse_money(raw: &[u8]) -> Option<i64> {
    let (neg, rest) = match raw.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let rest = rest.strip_prefix(b"$")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (int, frac) = (&rest[..dot], &rest[dot + 1..]);
    if frac.len() != 2 || int.is_empty() {
        return None;
    }
    let mut v: i128 = 0;
    for &b in int.iter().chain(frac) {
        match b {
            b',' => continue,
            b'0'..=b'9' => v = v * 10 + (b - b'0') as i128,
            _ => return None,
        }
        if v > i64::MAX as i128 + 1 {
            return None;
        }
    }
    i64::try_from(if neg { -v } else { v }).ok()
}

// ---------------------------------------------------------------------------------------------
// Arrays: `{1,2,NULL}`, `{{"a b","c\"d"},{e,f}}`, `[0:1]={1,2}`.

/// Parses array_out's text and decodes each element with [`decode_text`] of `elem_oid`.
fn parse_array(elem_oid: u32, raw: &[u8]) -> Result<Array<'_>> {
    let mut p = ArrayParser { raw, pos: 0 };
    let mut lower_bounds = Vec::new();
    let mut declared: Vec<u32> = Vec::new();
    p.skip_ws();
    if p.peek() == Some(b'[') {
        while p.peek() == Some(b'[') {
            p.pos += 1;
            if declared.len() == MAX_DIMS {
                return Err(p.err("more than 6 dimensions"));
            }
            let lb = p.int()?;
            p.expect(b':')?;
            let ub = p.int()?;
            p.expect(b']')?;
            let len = ub
                .checked_sub(lb)
                .and_then(|d| d.checked_add(1))
                .filter(|l| *l >= 0);
            let len = len
                .and_then(|l| u32::try_from(l).ok())
                .ok_or_else(|| p.err("bad dimension bounds"))?;
            lower_bounds.push(i32::try_from(lb).map_err(|_| p.err("bad lower bound"))?);
            declared.push(len);
        }
        p.expect(b'=')?;
        p.skip_ws();
    }
    // Count the leading braces: that is the number of dimensions.
    let ndim = raw[p.pos..]
        .iter()
        .take_while(|&&b| b == b'{' || b.is_ascii_whitespace())
        .filter(|&&b| b == b'{')
        .count();
    if ndim == 0 {
        return Err(p.err("array must start with '{'"));
    }
    let mut dims: Vec<Option<u32>> = Vec::new();
    let mut elements = Vec::new();
    let empty = {
        let mut q = ArrayParser {
            raw,
            pos: p.pos + 1,
        };
        q.skip_ws();
        q.peek() == Some(b'}')
    };
    if empty {
        p.pos += 1;
        p.skip_ws();
        p.pos += 1;
    } else {
        if ndim > MAX_DIMS {
            return Err(p.err("more than 6 dimensions"));
        }
        dims.resize(ndim, None);
        p.level(0, ndim, elem_oid, &mut dims, &mut elements)?;
    }
    p.skip_ws();
    if p.pos != raw.len() {
        return Err(p.err("junk after array"));
    }
    let dims: Vec<u32> = dims.into_iter().map(|d| d.unwrap_or(0)).collect();
    if !declared.is_empty() && declared != dims {
        return Err(DecodeError::new(
            0,
            ErrorKind::InvalidValue("dimensions do not match the decoration"),
            "array",
        ));
    }
    if lower_bounds.is_empty() {
        lower_bounds = vec![1; dims.len()];
    }
    Ok(Array {
        element_oid: elem_oid,
        dims,
        lower_bounds,
        elements,
    })
}

struct ArrayParser<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> ArrayParser<'a> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::new(self.pos, ErrorKind::InvalidValue(what), "array")
    }
    fn peek(&self) -> Option<u8> {
        self.raw.get(self.pos).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }
    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err("unexpected character"))
        }
    }
    fn int(&mut self) -> Result<i64> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) && self.pos - start < 12 {
            self.pos += 1;
        }
        parse_int(&self.raw[start..self.pos], "array bounds").map_err(|_| self.err("bad bound"))
    }

    /// One `{…}` at depth `depth`; elements sit at depth `ndim - 1`.
    fn level(
        &mut self,
        depth: usize,
        ndim: usize,
        elem_oid: u32,
        dims: &mut [Option<u32>],
        elements: &mut Vec<Value<'a>>,
    ) -> Result<()> {
        self.skip_ws();
        self.expect(b'{')?;
        let mut count: u32 = 0;
        loop {
            self.skip_ws();
            if depth + 1 < ndim {
                self.level(depth + 1, ndim, elem_oid, dims, elements)?;
            } else {
                let v = self.element(elem_oid)?;
                elements.push(v);
            }
            count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        match dims[depth] {
            None => dims[depth] = Some(count),
            Some(c) if c == count => {}
            Some(_) => return Err(self.err("ragged multidimensional array")),
        }
        Ok(())
    }

    /// One element: quoted, or bare up to `,`/`}` (trailing spaces dropped); bare `NULL` is NULL.
    fn element(&mut self, elem_oid: u32) -> Result<Value<'a>> {
        let start = self.pos;
        let raw = self.raw;
        let mut owned: Option<Vec<u8>> = None;
        let quoted = self.peek() == Some(b'"');
        let (text_start, text_end);
        if quoted {
            self.pos += 1;
            text_start = self.pos;
            loop {
                match self.peek() {
                    None => return Err(self.err("unterminated quoted element")),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let buf = owned.get_or_insert_with(|| raw[text_start..self.pos].to_vec());
                        let Some(&c) = raw.get(self.pos + 1) else {
                            return Err(self.err("dangling backslash"));
                        };
                        buf.push(c);
                        self.pos += 2;
                    }
                    Some(c) => {
                        if let Some(buf) = owned.as_mut() {
                            buf.push(c);
                        }
                        self.pos += 1;
                    }
                }
            }
            text_end = self.pos;
            self.pos += 1;
        } else {
            text_start = self.pos;
            let mut last_significant = self.pos;
            let mut owned_sig = 0;
            loop {
                match self.peek() {
                    None => return Err(self.err("unterminated array")),
                    Some(b',' | b'}') => break,
                    Some(b'{' | b'"') => return Err(self.err("unexpected character in element")),
                    Some(b'\\') => {
                        let buf = owned.get_or_insert_with(|| raw[text_start..self.pos].to_vec());
                        let Some(&c) = raw.get(self.pos + 1) else {
                            return Err(self.err("dangling backslash"));
                        };
                        buf.push(c);
                        owned_sig = buf.len();
                        self.pos += 2;
                        last_significant = self.pos;
                    }
                    Some(c) => {
                        if let Some(buf) = owned.as_mut() {
                            buf.push(c);
                            if !c.is_ascii_whitespace() {
                                owned_sig = buf.len();
                            }
                        }
                        self.pos += 1;
                        if !c.is_ascii_whitespace() {
                            last_significant = self.pos;
                        }
                    }
                }
            }
            text_end = last_significant;
            if let Some(buf) = owned.as_mut() {
                buf.truncate(owned_sig);
            }
            if text_start == text_end {
                return Err(self.err("empty unquoted element"));
            }
            if owned.is_none() && raw[text_start..text_end].eq_ignore_ascii_case(b"NULL") {
                return Ok(Value::Null);
            }
        }
        match owned {
            None => {
                decode_text(elem_oid, &raw[text_start..text_end]).map_err(|e| e.shifted(text_start))
            }
            Some(buf) => decode_text(elem_oid, &buf)
                .map(|v| v.to_owned_static())
                .map_err(|e| e.shifted(start)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The unchecked short path and the checked long path agree with `str::parse`
        /// (which also takes a leading '+' that int8out never prints; not generated here).
        #[test]
        fn parse_int_is_str_parse(s in "-?[0-9]{0,21}|-?[0-9]{0,8}[x ][0-9]{0,8}") {
            let ours = parse_int(s.as_bytes(), "int8").ok();
            prop_assert_eq!(ours, s.parse::<i64>().ok());
        }
    }

    #[test]
    fn parse_int_edges() {
        for v in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            i64::MAX,
            999_999_999_999_999_999,
        ] {
            assert_eq!(parse_int(v.to_string().as_bytes(), "int8").ok(), Some(v));
        }
        for bad in [
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "1-",
            "12a",
        ] {
            assert!(parse_int(bad.as_bytes(), "int8").is_err(), "{bad}");
        }
        // The offset of a bad digit counts the sign.
        assert_eq!(parse_int(b"-12x4", "int8").unwrap_err().offset, 3);
    }
}
