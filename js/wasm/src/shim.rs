//! TEMPORARY stand-in pgoutput parser, used only until `walcast_decoder::Decoder` lands.
//!
//! INTEGRATION: delete this module and route `engine::Engine::message` through
//! `walcast_decoder::Decoder::decode` + `Event` (see engine.rs). It understands protocol 1–4
//! messages well enough for the JS package's own tests and benchmark (B C O R Y I U D T M S E c A,
//! text tuples for common types) and never panics on bad input.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::flat::{cell, ev, Flat};
use walcast_decoder::Value;

pub struct ShimError(pub &'static str, pub usize);

type R<T> = Result<T, ShimError>;

struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.b.len() - self.p < n {
            return Err(ShimError("input ends early", self.p));
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn cstr(&mut self) -> R<&'a str> {
        let rest = &self.b[self.p..];
        let n = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(ShimError("string is not NUL-terminated", self.p))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| ShimError("invalid UTF-8", self.p))?;
        self.p += n + 1;
        Ok(s)
    }
}

#[derive(Default)]
pub struct Shim {
    types: HashMap<u32, Vec<u32>>,
    in_stream: bool,
}

/// Microseconds between 1970-01-01 and 2000-01-01 is not needed: PostgreSQL's epoch is 2000.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468 - 10957
}

fn num(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]` → microseconds since 2000-01-01 (UTC if zoned).
fn parse_ts(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(' ')?;
    let mut d = date.splitn(3, '-');
    let days = days_from_civil(num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let tz_at = rest.find(['+', '-']).unwrap_or(rest.len());
    let (time, tz) = rest.split_at(tz_at);
    let mut t = time.splitn(3, ':');
    let h = num(t.next()?)?;
    let mi = num(t.next()?)?;
    let sec = t.next()?;
    let (s_whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let mut micros = 0i64;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |c| i64::from(c - b'0'));
    }
    let mut off = 0i64;
    if !tz.is_empty() {
        let sign = if tz.starts_with('-') { -1 } else { 1 };
        let mut z = tz[1..].split(':');
        off = sign * (num(z.next()?)? * 3600 + z.next().and_then(num).unwrap_or(0) * 60);
    }
    let secs = days * 86400 + h * 3600 + mi * 60 + num(s_whole)? - off;
    Some(secs * 1_000_000 + micros)
}

fn text_value(oid: u32, s: &str) -> Value<'_> {
    let parsed = match oid {
        16 => Some(Value::Bool(s == "t")),
        20 => s.parse().ok().map(Value::Int8),
        21 => s.parse().ok().map(Value::Int2),
        23 => s.parse().ok().map(Value::Int4),
        26 => s.parse().ok().map(Value::Oid),
        700 => s.parse().ok().map(Value::Float4),
        701 => s.parse().ok().map(Value::Float8),
        1700 => Some(Value::Numeric(Cow::Borrowed(s))),
        114 | 3802 => Some(Value::Json(Cow::Borrowed(s))),
        1114 => parse_ts(s).map(Value::Timestamp),
        1184 => parse_ts(s).map(Value::TimestampTz),
        1082 => {
            let mut d = s.splitn(3, '-');
            (|| {
                Some(Value::Date(days_from_civil(
                    num(d.next()?)?,
                    num(d.next()?)?,
                    num(d.next()?)?,
                ) as i32))
            })()
        }
        _ => None,
    };
    parsed.unwrap_or(Value::Text(Cow::Borrowed(s)))
}

impl Shim {
    pub fn reset(&mut self) {
        self.in_stream = false;
    }

    fn tuple(&self, c: &mut Cur<'_>, relid: u32, key: bool, out: &mut Flat) -> R<()> {
        let n = usize::from(c.u16()?);
        let types = self
            .types
            .get(&relid)
            .ok_or(ShimError("relation not described before use", c.p))?;
        if types.len() != n {
            return Err(ShimError("tuple column count differs from relation", c.p));
        }
        out.word(n as u32);
        for &oid in types {
            match c.u8()? {
                b'n' => out.cell_tag(if key { cell::NOT_IN_KEY } else { cell::NULL }),
                b'u' => out.cell_tag(cell::UNCHANGED_TOAST),
                b't' => {
                    let len = c.u32()? as usize;
                    let s = std::str::from_utf8(c.take(len)?)
                        .map_err(|_| ShimError("invalid UTF-8", c.p))?;
                    out.value(&text_value(oid, s));
                }
                b'b' => {
                    let len = c.u32()? as usize;
                    let b = c.take(len)?;
                    out.value(&Value::UnknownBinary {
                        type_oid: oid,
                        bytes: Cow::Borrowed(b),
                    });
                }
                _ => return Err(ShimError("unknown tuple column kind", c.p - 1)),
            }
        }
        Ok(())
    }

    fn xid(&self, c: &mut Cur<'_>) -> R<u32> {
        if self.in_stream {
            c.u32()
        } else {
            Ok(0)
        }
    }

    pub fn message(&mut self, msg: &[u8], out: &mut Flat) -> R<()> {
        let mut c = Cur { b: msg, p: 0 };
        match c.u8()? {
            b'B' => {
                let lsn = c.u64()?;
                let ts = c.u64()? as i64;
                let xid = c.u32()?;
                out.event(ev::BEGIN);
                out.lsn(lsn);
                out.word(xid);
                out.num(ts as f64);
            }
            b'C' => {
                let flags = c.u8()?;
                let lsn = c.u64()?;
                let end = c.u64()?;
                let ts = c.u64()? as i64;
                out.event(ev::COMMIT);
                out.word(u32::from(flags));
                out.lsn(lsn);
                out.lsn(end);
                out.num(ts as f64);
            }
            b'O' => {
                let lsn = c.u64()?;
                let name = c.cstr()?;
                out.event(ev::ORIGIN);
                out.lsn(lsn);
                out.str(name);
            }
            b'R' => {
                let xid = self.xid(&mut c)?;
                let relid = c.u32()?;
                let ns = c.cstr()?;
                let name = c.cstr()?;
                let ident = c.u8()?;
                let n = c.u16()?;
                out.event(ev::RELATION);
                out.word(xid);
                out.word(relid);
                out.str(ns);
                out.str(name);
                out.word(u32::from(ident));
                out.word(u32::from(n));
                let mut types = Vec::with_capacity(usize::from(n).min(1664));
                for _ in 0..n {
                    let flags = c.u8()?;
                    let cname = c.cstr()?;
                    let oid = c.u32()?;
                    let typmod = c.u32()?;
                    out.word(u32::from(flags));
                    out.str(cname);
                    out.word(oid);
                    out.word(typmod);
                    types.push(oid);
                }
                self.types.insert(relid, types);
            }
            b'Y' => {
                let xid = self.xid(&mut c)?;
                let oid = c.u32()?;
                let ns = c.cstr()?;
                let name = c.cstr()?;
                out.event(ev::TYPE);
                out.word(xid);
                out.word(oid);
                out.str(ns);
                out.str(name);
            }
            b'I' => {
                let xid = self.xid(&mut c)?;
                let relid = c.u32()?;
                if c.u8()? != b'N' {
                    return Err(ShimError("expected N", c.p - 1));
                }
                out.event(ev::INSERT);
                out.word(xid);
                out.word(relid);
                self.tuple(&mut c, relid, false, out)?;
            }
            b'U' => {
                let xid = self.xid(&mut c)?;
                let relid = c.u32()?;
                out.event(ev::UPDATE);
                out.word(xid);
                out.word(relid);
                let mut t = c.u8()?;
                if t == b'K' || t == b'O' {
                    out.word(u32::from(t));
                    self.tuple(&mut c, relid, t == b'K', out)?;
                    t = c.u8()?;
                } else {
                    out.word(0);
                }
                if t != b'N' {
                    return Err(ShimError("expected N", c.p - 1));
                }
                self.tuple(&mut c, relid, false, out)?;
            }
            b'D' => {
                let xid = self.xid(&mut c)?;
                let relid = c.u32()?;
                let t = c.u8()?;
                if t != b'K' && t != b'O' {
                    return Err(ShimError("expected K or O", c.p - 1));
                }
                out.event(ev::DELETE);
                out.word(xid);
                out.word(relid);
                out.word(u32::from(t));
                self.tuple(&mut c, relid, t == b'K', out)?;
            }
            b'T' => {
                let xid = self.xid(&mut c)?;
                let n = c.u32()?;
                let options = c.u8()?;
                out.event(ev::TRUNCATE);
                out.word(xid);
                out.word(u32::from(options));
                // Each relid is 4 bytes: bound the count by the input before trusting it.
                if (n as usize).saturating_mul(4) > msg.len() - c.p {
                    return Err(ShimError("truncate relation count too large", c.p));
                }
                out.word(n);
                for _ in 0..n {
                    let r = c.u32()?;
                    out.word(r);
                }
            }
            b'M' => {
                let xid = self.xid(&mut c)?;
                let flags = c.u8()?;
                let lsn = c.u64()?;
                let prefix = c.cstr()?;
                let len = c.u32()? as usize;
                let content = c.take(len)?;
                out.event(ev::MESSAGE);
                out.word(xid);
                out.word(u32::from(flags & 1));
                out.lsn(lsn);
                out.str(prefix);
                out.bytes(content);
            }
            b'S' => {
                let xid = c.u32()?;
                let first = c.u8()?;
                self.in_stream = true;
                out.event(ev::STREAM_START);
                out.word(xid);
                out.word(u32::from(first));
            }
            b'E' => {
                self.in_stream = false;
                out.event(ev::STREAM_STOP);
            }
            b'c' => {
                let xid = c.u32()?;
                let flags = c.u8()?;
                let lsn = c.u64()?;
                let end = c.u64()?;
                let ts = c.u64()? as i64;
                out.event(ev::STREAM_COMMIT);
                out.word(xid);
                out.word(u32::from(flags));
                out.lsn(lsn);
                out.lsn(end);
                out.num(ts as f64);
            }
            b'A' => {
                let xid = c.u32()?;
                let sub = c.u32()?;
                out.event(ev::STREAM_ABORT);
                out.word(xid);
                out.word(sub);
            }
            // Two-phase messages are not needed by the package's own tests.
            _ => return Err(ShimError("unknown pgoutput message tag", 0)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_from_2000() {
        assert_eq!(parse_ts("2000-01-01 00:00:00+00"), Some(0));
        assert_eq!(parse_ts("2000-01-01 01:00:00.5+01"), Some(500_000));
        assert_eq!(parse_ts("1999-12-31 23:59:59"), Some(-1_000_000));
    }
}
