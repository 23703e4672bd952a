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

/// float8 as PostgreSQL prints it (`NaN`, `Infinity`, `-Infinity` for the specials).
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let mut b = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        let _ = write!(b, "{v:e}");
        push_pg_float(out, std::str::from_utf8(&b.buf[..b.len]).unwrap_or("0"), 15);
    }
}

/// float4 as PostgreSQL prints it.
pub fn push_f32(out: &mut String, v: f32) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let mut b = StackBuf {
            buf: [0; 64],
            len: 0,
        };
        let _ = write!(b, "{v:e}");
        push_pg_float(out, std::str::from_utf8(&b.buf[..b.len]).unwrap_or("0"), 6);
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
