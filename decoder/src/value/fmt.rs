//! Allocation-free number formatting into a `String`, the way PostgreSQL prints numbers.

use super::nearest_float;

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
    let start = i.min(buf.len() - width.min(buf.len()));
    // The buffer holds only ASCII digits.
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or("0"));
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

/// Appends the decimal `d · 10^e` (`d > 0`, no trailing zeros) as PostgreSQL's `float8out` /
/// `float4out` print it with `extra_float_digits > 0`: fixed notation when the decimal exponent
/// of the first digit is in `-4..max_fixed_exp` (15 for float8, 6 for float4, like `%g`),
/// otherwise `d.ddde+XX` with at least two exponent digits.
fn push_pg_decimal(out: &mut String, d: u64, e: i32, max_fixed_exp: i32) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = d;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    digits[..n].reverse();
    let digits = &digits[..n];
    let exp = e + n as i32 - 1;
    let push = |out: &mut String, ds: &[u8]| out.push_str(std::str::from_utf8(ds).unwrap_or(""));
    if (-4..max_fixed_exp).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            push(out, digits);
        } else {
            let int_len = exp as usize + 1;
            if int_len >= n {
                push(out, digits);
                for _ in n..int_len {
                    out.push('0');
                }
            } else {
                push(out, &digits[..int_len]);
                out.push('.');
                push(out, &digits[int_len..]);
            }
        }
    } else {
        push(out, &digits[..1]);
        if n > 1 {
            out.push('.');
            push(out, &digits[1..]);
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
/// powers of two in plain `u64` arithmetic: both odd parts are below 2^57, which rules out all
/// but small powers of 5.
fn decimal_equals(d: u64, e: i32, n: u64, t: i32) -> bool {
    if d == 0 {
        return false;
    }
    let tz = d.trailing_zeros() as i32;
    if tz + e != t {
        return false;
    }
    let odd = d >> tz;
    let Some(&p) = POW5.get(e.unsigned_abs() as usize) else {
        return false;
    };
    if e >= 0 {
        odd.checked_mul(p) == Some(n)
    } else {
        odd % p == 0 && odd / p == n
    }
}

/// 5^0 … 5^27, every power of 5 that fits in a u64.
const POW5: [u64; 28] = {
    let mut t = [1u64; 28];
    let mut i = 1;
    while i < 28 {
        t[i] = t[i - 1] * 5;
        i += 1;
    }
    t
};

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

/// Reads a plain decimal (`123.45`, `1.5e-7`, `1e20`, `100.0`) into `d · 10^e` with no
/// trailing zeros in `d`. Returns `None` for more than 19 significant digits.
fn decimal_parts(s: &str) -> Option<(u64, i32)> {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, x)) => (m, x.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let mut d: u64 = 0;
    let mut e = exp;
    let mut after_point = false;
    for b in mantissa.bytes() {
        match b {
            b'.' => after_point = true,
            b'0'..=b'9' => {
                d = d.checked_mul(10)?.checked_add((b - b'0') as u64)?;
                if after_point {
                    e -= 1;
                }
            }
            _ => return None,
        }
    }
    while d != 0 && d % 10 == 0 {
        d /= 10;
        e += 1;
    }
    Some((d, e))
}

/// The exact decimal expansion of `m · 2^k` as `(digits, e)`: the value is `digits · 10^e`,
/// `digits` most significant first. Only for the rare boundary case of [`shortest`]; small
/// base-10^9 bignum arithmetic keeps `core::fmt`'s float formatting (`{:.*e}`, ~15 KB of
/// WASM) out of the build. At most ~770 digits (`m · 5^1074`).
fn exact_digits(p: &Parts) -> (Vec<u8>, i32) {
    const BASE: u64 = 1_000_000_000;
    // Little-endian base-10^9 limbs.
    let mut limbs: Vec<u32> = vec![
        (p.m % BASE) as u32,
        (p.m / BASE % BASE) as u32,
        (p.m / BASE / BASE) as u32,
    ];
    let mul = |limbs: &mut Vec<u32>, f: u32| {
        let mut carry = 0u64;
        for l in limbs.iter_mut() {
            let x = u64::from(*l) * u64::from(f) + carry;
            *l = (x % BASE) as u32;
            carry = x / BASE;
        }
        while carry > 0 {
            limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
    };
    // m · 2^k = m · 2^k (k ≥ 0), or m · 5^-k · 10^k (k < 0).
    let (factor, big, small, mut n) = if p.k >= 0 {
        (2u32, 1u32 << 29, 29, p.k)
    } else {
        (5u32, 1_220_703_125, 13, -p.k)
    };
    while n >= small {
        mul(&mut limbs, big);
        n -= small;
    }
    for _ in 0..n {
        mul(&mut limbs, factor);
    }
    let mut digits = Vec::with_capacity(limbs.len() * 9);
    for l in limbs.iter().rev() {
        let mut v = *l;
        let mut chunk = [0u8; 9];
        for c in chunk.iter_mut().rev() {
            *c = (v % 10) as u8;
            v /= 10;
        }
        digits.extend_from_slice(&chunk);
    }
    let lead = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
    digits.drain(..lead);
    (digits, p.k.min(0))
}

/// `digits · 10^e` correctly rounded to `prec` significant digits, ties to even (as Rust's
/// `{:.*e}` rounds), as `d · 10^e` with no trailing zeros in `d`.
fn round_digits((digits, e): &(Vec<u8>, i32), prec: usize) -> Option<(u64, i32)> {
    if digits.is_empty() || prec == 0 || prec > 19 {
        return None;
    }
    let take = prec.min(digits.len());
    let mut d: u64 = 0;
    for &x in &digits[..take] {
        d = d * 10 + u64::from(x);
    }
    let rest = &digits[take..];
    let mut e = *e + rest.len() as i32;
    let up = match rest.split_first() {
        None => false,
        Some((&first, tail)) => {
            first > 5 || (first == 5 && (tail.iter().any(|&x| x != 0) || d % 2 == 1))
        }
    };
    if up {
        d += 1;
        if d.checked_ilog10() == Some(take as u32) {
            // 99…9 rounded up to 10…0: one digit too many.
            d /= 10;
            e += 1;
        }
    }
    while d != 0 && d % 10 == 0 {
        d /= 10;
        e += 1;
    }
    Some((d, e))
}

/// Shortest round-trip digits of a positive finite `v` as PostgreSQL chooses them: `d · 10^e`.
///
/// The `ryu` crate gives the shortest digits in the *closed* interval of decimals that read back
/// as `v` (round-half-even parsing). PostgreSQL's copy of Ryu uses the open interval. The two
/// differ only when the closed interval's choice lies exactly on a boundary, which
/// [`on_boundary`] detects exactly. Then longer, correctly rounded candidates are tried until one
/// is strictly inside. Exact ties between two candidates go to the even one, as in Ryu.
fn shortest(
    (bits, format): (u64, nearest_float::Format),
    shortest_str: &str,
    parts: Parts,
    max_digits: usize,
) -> (u64, i32) {
    let Some((mut d, mut e)) = decimal_parts(shortest_str) else {
        return (0, 0);
    };
    let inside = |d: u64, e: i32| -> bool {
        nearest_float::nearest_of(d, e, format) == bits && !on_boundary(&parts, d, e)
    };
    if on_boundary(&parts, d, e) {
        let n = d.checked_ilog10().unwrap_or(0) as usize + 1;
        let exact = exact_digits(&parts);
        for prec in n..=max_digits {
            if let Some((cd, ce)) = round_digits(&exact, prec) {
                if inside(cd, ce) {
                    (d, e) = (cd, ce);
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
            if decimal_equals(2 * d.min(alt) + 1, e, odd, t + 1) && inside(alt, e) {
                d = alt;
                break;
            }
        }
    }
    while d != 0 && d % 10 == 0 {
        d /= 10;
        e += 1;
    }
    (d, e)
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
        // Whole numbers below 10^15 print as their integer digits (fixed notation).
        if v < 1e15 && v.fract() == 0.0 {
            push_uint(out, v as u64);
            return;
        }
        let mut buf = ryu::Buffer::new();
        let (d, e) = shortest(
            (v.to_bits(), nearest_float::F64),
            buf.format_finite(v),
            parts_f64(v),
            17,
        );
        push_pg_decimal(out, d, e, 15);
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
        if v < 1e6 && v.fract() == 0.0 {
            push_uint(out, v as u64);
            return;
        }
        let mut buf = ryu::Buffer::new();
        let (d, e) = shortest(
            (u64::from(v.to_bits()), nearest_float::F32),
            buf.format_finite(v),
            parts_f32(v),
            9,
        );
        push_pg_decimal(out, d, e, 6);
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

    /// The bignum rounding replaces `{:.*e}`: it must give the same digits at every precision.
    #[test]
    fn exact_rounding_matches_core_fmt() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut f64s: Vec<f64> = vec![
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
            0.5,
            2.5,
            0.125,
            1e23,
            3.172230058817275e16,
        ];
        f64s.extend(
            (0..3000)
                .map(|_| f64::from_bits(next() >> 1))
                .filter(|v| v.is_finite() && *v > 0.0),
        );
        for v in f64s {
            let exact = exact_digits(&parts_f64(v));
            for prec in 1..=17 {
                let want = decimal_parts(&format!("{:.*e}", prec - 1, v));
                assert_eq!(round_digits(&exact, prec), want, "{v:e} at {prec} digits");
            }
        }
        let mut f32s: Vec<f32> = vec![
            f32::MIN_POSITIVE,
            f32::MAX,
            1e-45,
            0.5,
            -3.2689043e6f32.abs(),
        ];
        f32s.extend(
            (0..3000)
                .map(|_| f32::from_bits((next() >> 33) as u32))
                .filter(|v| v.is_finite() && *v > 0.0),
        );
        for v in f32s {
            let exact = exact_digits(&parts_f32(v));
            for prec in 1..=9 {
                let want = decimal_parts(&format!("{:.*e}", prec - 1, v));
                assert_eq!(round_digits(&exact, prec), want, "{v:e} at {prec} digits");
            }
        }
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
