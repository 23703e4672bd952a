//! Allocation-free number formatting into a `String`, the way PostgreSQL prints numbers.

use std::fmt::Write as _;

/// Appends a signed integer in decimal.
pub fn push_int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_uint(out, v.unsigned_abs());
}

/// Appends an unsigned integer in decimal.
pub fn push_uint(out: &mut String, v: u64) {
    push_zero_padded(out, v, 1);
}

/// Appends `v` in decimal, left-padded with zeros to at least `width` digits.
pub fn push_zero_padded(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let width = width.min(buf.len());
    let start = i.min(buf.len() - width);
    // SAFETY-free: the buffer only holds ASCII digits.
    for &b in &buf[start..] {
        out.push(b as char);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends lowercase hex digits of `bytes`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// A fixed stack buffer implementing `fmt::Write`, so `{:e}` needs no heap.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends a finite float as PostgreSQL's `float8out`/`float4out` print it with
/// `extra_float_digits > 0`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in `-4..max_fixed_exp` (15 for float8, 6 for float4, like `%g`),
/// otherwise as `d.ddde+XX` with at least two exponent digits.
///
/// `shortest` is Rust's `{:e}` rendering of the value, which is the shortest round-trip
/// digit string, as PostgreSQL's Ryu-based output is.
fn push_pg_float(out: &mut String, sci: &str, max_fixed_exp: i32) {
    let (neg, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // The significant digits without the decimal point.
    let mut digits = [0u8; 40];
    let mut n = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let digits = &digits[..n.max(1)];
    if neg {
        out.push('-');
    }
    if digits == b"0" {
        out.push('0');
        return;
    }
    if (-4..max_fixed_exp).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            digits.iter().for_each(|&d| out.push(d as char));
        } else {
            let int_len = exp as usize + 1;
            for i in 0..int_len.max(digits.len()) {
                if i == int_len {
                    out.push('.');
                }
                out.push(digits.get(i).copied().unwrap_or(b'0') as char);
            }
        }
    } else {
        out.push(digits[0] as char);
        if digits.len() > 1 {
            out.push('.');
            digits[1..].iter().for_each(|&d| out.push(d as char));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        push_zero_padded(out, exp.unsigned_abs() as u64, 2);
    }
}

/// The IEEE parts of a positive finite float: `v = m · 2^k`, and whether the gap below `v` is
/// half the gap above (an exact power of two that is not the smallest normal).
struct Parts {
    m: u64,
    k: i32,
    asymmetric: bool,
}

fn parts_f64(v: f64) -> Parts {
    let bits = v.to_bits();
    let (exp, frac) = (((bits >> 52) & 0x7ff) as i32, bits & ((1 << 52) - 1));
    if exp == 0 {
        Parts {
            m: frac,
            k: -1074,
            asymmetric: false,
        }
    } else {
        Parts {
            m: frac | 1 << 52,
            k: exp - 1075,
            asymmetric: frac == 0 && exp > 1,
        }
    }
}

fn parts_f32(v: f32) -> Parts {
    let bits = v.to_bits();
    let (exp, frac) = (
        ((bits >> 23) & 0xff) as i32,
        (bits & ((1 << 23) - 1)) as u64,
    );
    if exp == 0 {
        Parts {
            m: frac,
            k: -149,
            asymmetric: false,
        }
    } else {
        Parts {
            m: frac | 1 << 23,
            k: exp - 150,
            asymmetric: frac == 0 && exp > 1,
        }
    }
}

/// Is the decimal `d · 10^e` exactly `n · 2^t` (`n` odd)? Compared through odd parts and
/// powers of two, so no big integers are needed: an odd part `< 2^57` rules out large powers of 5.
fn decimal_equals(d: u64, e: i32, n: u64, t: i32) -> bool {
    if d == 0 {
        return false;
    }
    let tz = d.trailing_zeros() as i32;
    let odd = (d >> tz) as u128;
    let lhs_odd = if e >= 0 {
        if e > 27 {
            return false;
        }
        odd * 5u128.pow(e as u32)
    } else {
        if -e > 27 {
            return false;
        }
        let p = 5u128.pow((-e) as u32);
        if odd % p != 0 {
            return false;
        }
        odd / p
    };
    lhs_odd == n as u128 && tz + e == t
}

/// Whether `d · 10^e` sits exactly on the rounding boundary between `v` and a neighbour.
/// PostgreSQL's Ryu (`d2s.c`/`f2s.c`) treats the interval of round-tripping decimals as open,
/// so such a decimal is never printed there, even where round-half-even would read it back as `v`.
fn on_boundary(p: &Parts, d: u64, e: i32) -> bool {
    let upper = decimal_equals(d, e, 2 * p.m + 1, p.k - 1);
    let lower = if p.asymmetric {
        decimal_equals(d, e, 4 * p.m - 1, p.k - 2)
    } else {
        p.m > 0 && decimal_equals(d, e, 2 * p.m - 1, p.k - 1)
    };
    upper || lower
}

/// Splits `{:e}` output (`-1.25e-3`) into significant digits `d`, their count, and `e` so that
/// the magnitude is `d · 10^e`; trailing zeros are dropped.
fn sci_parts(sci: &str) -> Option<(u64, u32, i32)> {
    let sci = sci.strip_prefix('-').unwrap_or(sci);
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits = mantissa.bytes().filter(u8::is_ascii_digit);
    let mut d: u64 = 0;
    let mut n = 0u32;
    for b in digits {
        d = d.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        n += 1;
    }
    let mut e = exp - (n as i32 - 1);
    while d != 0 && d % 10 == 0 {
        d /= 10;
        n -= 1;
        e += 1;
    }
    Some((d, n.max(1), e))
}

/// Shortest round-trip digits of a non-negative `v` as PostgreSQL chooses them, in `{:e}` form, into `b`.
///
/// Rust's `{:e}` gives the shortest digits in the *closed* interval of decimals that read back as
/// `v`, and may break an exact tie between two equally close candidates upwards. PostgreSQL's Ryu
/// uses the open interval and breaks ties to even. Both differences only arise for decimals
/// that are exact binary fractions, which [`decimal_equals`] detects without big integers.
fn shortest_sci<T>(b: &mut StackBuf, v: T, parts: Parts, max_digits: usize)
where
    T: std::fmt::LowerExp + Copy + PartialEq + std::str::FromStr,
{
    let _ = write!(b, "{v:e}");
    let Some((mut d, n, mut e)) = sci_parts(b.as_str()) else {
        return;
    };
    let inside = |d: u64, e: i32| -> bool {
        let mut c = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        write_sci(&mut c, d, e);
        c.as_str().parse::<T>().is_ok_and(|back| back == v) && !on_boundary(&parts, d, e)
    };
    let mut changed = false;
    if on_boundary(&parts, d, e) {
        for prec in n as usize..=max_digits {
            let mut c = StackBuf {
                buf: [0; 64],
                len: 0,
            };
            let _ = write!(c, "{:.*e}", prec - 1, v);
            if let Some((cd, _, ce)) = sci_parts(c.as_str()) {
                if inside(cd, ce) {
                    (d, e) = (cd, ce);
                    changed = true;
                    break;
                }
            }
        }
    }
    // A tie: v is exactly halfway between d and d±1 (in units of 10^e). Prefer the even one.
    if d % 2 == 1 && parts.m != 0 {
        let tz = parts.m.trailing_zeros() as i32;
        let (odd, t) = (parts.m >> tz, parts.k + tz);
        for alt in [d - 1, d + 1] {
            let twice = 2 * d.min(alt) + 1;
            if decimal_equals(twice, e, odd, t + 1) && inside(alt, e) {
                d = alt;
                changed = true;
                break;
            }
        }
    }
    if changed {
        *b = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        write_sci(b, d, e);
    }
}

/// Writes `d · 10^e` as `{:e}` would (`1.25e-3`).
fn write_sci(b: &mut StackBuf, d: u64, e: i32) {
    let mut digits = StackBuf {
        buf: [0; 64],
        len: 0,
    };
    let _ = write!(digits, "{d}");
    let ds = &digits.buf[..digits.len];
    let _ = b.write_str(std::str::from_utf8(&ds[..1]).unwrap_or("0"));
    if ds.len() > 1 {
        let _ = b.write_str(".");
        let _ = b.write_str(std::str::from_utf8(&ds[1..]).unwrap_or(""));
    }
    let _ = write!(b, "e{}", e + ds.len() as i32 - 1);
}

impl StackBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

/// float8 as PostgreSQL prints it (`NaN`, `Infinity`, `-Infinity` for the specials).
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        if v.is_sign_negative() {
            out.push('-');
        }
        let v = v.abs();
        let mut b = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        shortest_sci(&mut b, v, parts_f64(v), 17);
        push_pg_float(out, b.as_str(), 15);
    }
}

/// float4 as PostgreSQL prints it.
pub fn push_f32(out: &mut String, v: f32) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        if v.is_sign_negative() {
            out.push('-');
        }
        let v = v.abs();
        let mut b = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        shortest_sci(&mut b, v, parts_f32(v), 9);
        push_pg_float(out, b.as_str(), 6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64) -> String {
        let mut s = String::new();
        push_f64(&mut s, v);
        s
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(f8(1e20), "1e+20");
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(0.1), "0.1");
        assert_eq!(f8(-0.0), "-0");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(123456789012345.0), "123456789012345");
        assert_eq!(f8(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(f8(1e100), "1e+100");
        assert_eq!(f8(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        // Exactly on the rounding boundary: PostgreSQL prints one more digit than Rust's `{:e}`.
        assert_eq!(f8(3.172230058817275e16), "3.1722300588172752e+16");
        // An exact tie between two 8-digit candidates: PostgreSQL rounds to even.
        let mut s = String::new();
        push_f32(&mut s, -3.2689043e6);
        assert_eq!(s, "-3.2689042e+06");
        let mut s = String::new();
        push_f32(&mut s, 1_000_000.0);
        assert_eq!(s, "1e+06");
    }

    #[test]
    fn zero_padding() {
        let mut s = String::new();
        push_zero_padded(&mut s, 7, 4);
        push_zero_padded(&mut s, 12345, 2);
        push_int(&mut s, i64::MIN);
        assert_eq!(s, "000712345-9223372036854775808");
    }
}
