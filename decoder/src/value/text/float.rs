//! float8 text → binary, exactly as `str::parse` rounds, fast for the forms PostgreSQL prints
//! most: a decimal (`-?digits(.digits)?(e[+-]digits)?`) of at most 19 digits, scaled by at most
//! 10^-22 or 10^27 in all (`float8out` gives the shortest round-trip digits, e.g.
//! `0.14285714285714285` or `1.2345678901234567e+20`).
//!
//! The result is the correctly rounded (ties-to-even) double, bit for bit what `str::parse::<f64>`
//! gives: either both operands of one IEEE operation are exact (Clinger's fast path), or the
//! exact value is an integer of at most 127 bits (rounded once, to f64), or an approximation is
//! checked against the halfway points around it in exact integer arithmetic and moved by an ulp
//! when needed. Anything else returns `None`, for the general parser (`value::nearest_float`).

/// Powers of ten that are exact in an f64 (10^22 < 2^53 · 2^22, all with ≤ 53 significant bits).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// 10^-k rounded to the nearest f64, for the first guess of [`corrected_quotient`].
const INV_POW10: [f64; 23] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// 5^k for k ≤ 22 (5^22 < 2^52), for the exact comparisons.
const POW5: [u64; 23] = {
    let mut t = [1u64; 23];
    let mut k = 1;
    while k < 23 {
        t[k] = t[k - 1] * 5;
        k += 1;
    }
    t
};

/// The digits of a plain decimal: `mantissa` / 10^`scale`, sign apart.
struct Decimal {
    negative: bool,
    mantissa: u64,
    scale: i32,
}

/// `-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]{1,3})?` with at most 19 digits in all (so the mantissa fits
/// a u64), and a scale (digits after the point, less the exponent) in −27..=22; `None` for
/// anything else.
#[inline]
fn plain_decimal(raw: &[u8]) -> Option<Decimal> {
    let (negative, body) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, raw),
    };
    let mut mantissa = 0u64;
    let mut digits = 0u32;
    let mut point = None;
    let mut exponent = 0;
    for (i, &b) in body.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            digits += 1;
        } else if b == b'.' && point.is_none() && i > 0 {
            point = Some(digits);
        } else if b == b'e' && i > 0 {
            exponent = short_exponent(&body[i + 1..])?;
            break;
        } else {
            return None;
        }
    }
    let after_point = match point {
        Some(p) => digits - p,
        None => 0,
    };
    // 19 digits cannot overflow a u64 (< 10^19 < 2^64), so the wrapping arithmetic was exact.
    if digits == 0 || digits > 19 || (point.is_some() && after_point == 0) {
        return None;
    }
    let scale = after_point as i32 - exponent;
    if !(-27..=22).contains(&scale) {
        return None;
    }
    Some(Decimal {
        negative,
        mantissa,
        scale,
    })
}

/// The correctly rounded f64 of a plain decimal, or `None` to leave it to `str::parse`.
#[inline]
pub(super) fn parse_plain_f64(raw: &[u8]) -> Option<f64> {
    let Decimal {
        negative,
        mantissa,
        scale,
    } = plain_decimal(raw)?;
    let magnitude = if scale == 0 {
        // Integer to float conversion rounds to nearest, ties to even.
        mantissa as f64
    } else if scale < 0 {
        times_pow10(mantissa, scale.unsigned_abs())
    } else if mantissa <= 1 << 53 {
        // Clinger: both operands exact, so the one rounding of the division is the only one.
        mantissa as f64 / POW10[scale as usize]
    } else {
        corrected_quotient(mantissa, scale as u32)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// An exponent of at most three digits, `[+-]?[0-9]{1,3}`.
fn short_exponent(raw: &[u8]) -> Option<i32> {
    let (negative, digits) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let mut e = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            return None;
        }
        e = e * 10 + i32::from(d);
    }
    Some(if negative { -e } else { e })
}

/// mantissa · 10^k for 1 ≤ k ≤ 27, correctly rounded: mantissa · 5^k is exact in a u128
/// (< 2^64 · 2^63), its conversion to f64 is the one rounding, and scaling by 2^k is exact.
fn times_pow10(mantissa: u64, k: u32) -> f64 {
    let exact = u128::from(mantissa) * u128::from(5u64.pow(k));
    exact as f64 * f64::from_bits(u64::from(1023 + k) << 52)
}

/// mantissa / 10^scale for 2^53 < mantissa < 2^64, 1 ≤ scale ≤ 22, correctly rounded.
///
/// The first guess is off by a few ulps at most (the mantissa, the reciprocal and the product
/// are each rounded once); the exact comparisons against the halfway points on either side of the
/// candidate then say whether to keep it or step to a neighbour.
fn corrected_quotient(mantissa: u64, scale: u32) -> Option<f64> {
    // A multiplication by the rounded reciprocal is a few ulps off at most, and much cheaper
    // than a division; the exact checks below fix the last bits either way.
    let mut c = mantissa as f64 * INV_POW10[scale as usize];
    for _ in 0..4 {
        let bits = c.to_bits();
        let biased_exp = (bits >> 52) as i32;
        let frac = bits & ((1 << 52) - 1);
        // The value is at least 2^53 / 10^22 ≈ 9e-7, so c is normal and finite here.
        if biased_exp == 0 || biased_exp == 0x7ff {
            return None;
        }
        let m = frac | 1 << 52;
        // c = m · 2^e.
        let e = biased_exp - 1075;
        let even = m & 1 == 0;
        // Upper halfway point: (2m + 1) · 2^(e - 1).
        match cmp_exact(mantissa, scale, 2 * m + 1, e - 1)? {
            std::cmp::Ordering::Greater => {
                c = f64::from_bits(bits + 1);
                continue;
            }
            std::cmp::Ordering::Equal => {
                return Some(if even { c } else { f64::from_bits(bits + 1) });
            }
            std::cmp::Ordering::Less => {}
        }
        // Lower halfway point; below a power of two the gap to the previous double is half as wide.
        let lower = if frac == 0 {
            cmp_exact(mantissa, scale, 4 * m - 1, e - 2)?
        } else {
            cmp_exact(mantissa, scale, 2 * m - 1, e - 1)?
        };
        match lower {
            std::cmp::Ordering::Less => {
                c = f64::from_bits(bits - 1);
                continue;
            }
            // Ties to even. Below a power of two, c's mantissa (2^52) is the even one.
            std::cmp::Ordering::Equal => {
                return Some(if even { c } else { f64::from_bits(bits - 1) });
            }
            std::cmp::Ordering::Greater => return Some(c),
        }
    }
    None
}

/// Compares mantissa / 10^scale with n · 2^e exactly, in u128; `None` if a side would not fit.
///
/// mantissa / (5^scale · 2^scale) vs n · 2^e  ⟺  mantissa vs n · 5^scale · 2^(e + scale).
fn cmp_exact(mantissa: u64, scale: u32, n: u64, e: i32) -> Option<std::cmp::Ordering> {
    // n < 2^55 and 5^scale < 2^52: the product fits.
    let rhs = u128::from(n) * u128::from(*POW5.get(scale as usize)?);
    let shift = e + scale as i32;
    let lhs = u128::from(mantissa);
    Some(if shift >= 0 {
        let rhs = checked_shl(rhs, shift.unsigned_abs())?;
        lhs.cmp(&rhs)
    } else {
        let lhs = checked_shl(lhs, shift.unsigned_abs())?;
        lhs.cmp(&rhs)
    })
}

/// `v << s`, or `None` if any bit would be shifted out.
fn checked_shl(v: u128, s: u32) -> Option<u128> {
    if s >= 128 || v.leading_zeros() < s {
        None
    } else {
        Some(v << s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::nearest_float::tests::halfway_and_near;
    use proptest::prelude::*;

    fn check(s: &str) {
        let std: f64 = s.parse().expect("std parses every plain decimal");
        if let Some(fast) = parse_plain_f64(s.as_bytes()) {
            assert_eq!(fast.to_bits(), std.to_bits(), "{s}");
        }
    }

    #[test]
    fn known_values() {
        for s in [
            "0.14285714285714285",
            "0.2857142857142857",
            "143.14285714285714",
            "143",
            "-0",
            "0",
            "0.1",
            "9007199254740993",
            "4503599627370497.5",
            "4503599627370496.5",
            "2251799813685248.25",
            "2251799813685248.75",
            "1125899906842624.125",
            "1125899906842624.375",
            "9999999999999999999",
            "1.7976931348623157",
            "2.2250738585072014",
            "1e5",
            "1.2345678901234567e+20",
            "1.2345678901234567e-05",
            "9999999999999999999e+8",
            "1.5e-07",
            "-1e+27",
        ] {
            check(s);
            assert!(
                parse_plain_f64(s.as_bytes()).is_some(),
                "{s} takes the fast path"
            );
        }
        for s in [
            "",
            "-",
            ".5",
            "5.",
            "1e",
            "1e+",
            "1e+1000",
            "1.e5",
            "e5",
            "1E5",
            "1e28",
            "1e-23",
            "1.2.3",
            "--1",
            "+1",
            "12345678901234567890",
            "1 ",
            "0.0000000000000000001",
        ] {
            assert_eq!(parse_plain_f64(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn halfway_points_round_to_even() {
        // Every halfway point with ≤ 3 decimals that also has ≤ 19 digits, around 2^50..2^54.
        for e in -2..=1 {
            for m in [
                1u64 << 52,
                (1 << 52) + 1,
                (1 << 52) + 2,
                (1 << 53) - 1,
                (1 << 53) - 2,
            ] {
                check(&halfway_and_near(m, e, 0)[0]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Shortest round-trip digits of any double, as float8out prints them with
        /// extra_float_digits ≥ 1 (Rust's Display is the same digits, never in exponent form).
        #[test]
        fn shortest_digits_of_any_double(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            if f.is_finite() {
                check(&f.to_string());
                // float8out's exponent form, for values below 10^-4 or from 10^15 on.
                check(&format!("{f:e}"));
            }
        }

        #[test]
        fn random_plain_decimals(s in "-?[0-9]{1,19}(\\.[0-9]{1,22})?(e[+-]?[0-9]{1,2})?") {
            check(&s);
        }

        #[test]
        fn halfway_points_and_neighbours(m in (1u64 << 52)..(1 << 53), e in -2i32..=1, last in 0u8..10) {
            for s in halfway_and_near(m, e, last) {
                check(&s);
            }
        }
    }
}
