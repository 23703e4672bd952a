//! A decimal's nearest f64 or f32 (ties to even), bit for bit what `str::parse` gives, without
//! core's float parser.
//!
//! Why not `str::parse`: core's parser carries a 10 KB table of 128-bit powers of five, which
//! barely compresses. In the .wasm that parser was ~15 KB of the gzipped size (#4). This module
//! is a small fraction of that, and slower, which matters little: the plain decimals float8out
//! prints most take the fast path of `text::float` first, so this only sees exponent forms,
//! float4s and the float formatter's round-trip checks.
//!
//! Method: a first guess in f64 arithmetic, a few ulps off at most; then exact comparisons of the
//! decimal with the halfway points on either side of the guess, in big integers, stepping one
//! ulp at a time until the guess lies between them.

use std::cmp::Ordering;

/// A binary floating-point format: a value is `m · 2^k` with `m < 2^precision` and
/// `min_exp ≤ k ≤ max_exp`; normal when `m ≥ 2^(precision - 1)`.
#[derive(Clone, Copy)]
pub(crate) struct Format {
    precision: u32,
    min_exp: i32,
    max_exp: i32,
    /// A decimal below 10^tiny_decade rounds to zero, one at or above 10^huge_decade to infinity.
    tiny_decade: i64,
    huge_decade: i64,
}

/// f64: the largest value is (2^53 − 1) · 2^971 ≈ 1.8e308, the smallest 2^-1074 ≈ 4.9e-324
/// (so anything below 10^-324, less than half of it, is zero).
pub(crate) const F64: Format = Format {
    precision: 53,
    min_exp: -1074,
    max_exp: 971,
    tiny_decade: -324,
    huge_decade: 309,
};

/// f32: the largest value is (2^24 − 1) · 2^104 ≈ 3.4e38, the smallest 2^-149 ≈ 1.4e-45.
pub(crate) const F32: Format = Format {
    precision: 24,
    min_exp: -149,
    max_exp: 104,
    tiny_decade: -46,
    huge_decade: 39,
};

impl Format {
    fn infinity(self) -> u64 {
        let exponent_field = (self.max_exp - self.min_exp + 2) as u64;
        exponent_field << (self.precision - 1)
    }

    /// The IEEE bits of `m · 2^k` (a valid pair, see [`Format`]).
    fn bits(self, m: u64, k: i32) -> u64 {
        let hidden = 1 << (self.precision - 1);
        if m < hidden {
            m // subnormal (or zero): the exponent field is 0
        } else {
            ((k - self.min_exp + 1) as u64) << (self.precision - 1) | (m - hidden)
        }
    }
}

/// `[+-]?digits[.digits][(e|E)[+-]?digits]` (at least one mantissa digit, either side of the
/// point) as `str::parse::<f64>` reads it; `None` if the text is not of that form (the
/// specials, `NaN` and `Infinity`, are the caller's).
pub(crate) fn parse_f64(raw: &[u8]) -> Option<f64> {
    let (negative, bits) = parse(raw, F64)?;
    let v = f64::from_bits(bits);
    Some(if negative { -v } else { v })
}

/// The same for f32, as `str::parse::<f32>` reads it.
pub(crate) fn parse_f32(raw: &[u8]) -> Option<f32> {
    let (negative, bits) = parse(raw, F32)?;
    let v = f32::from_bits(bits as u32);
    Some(if negative { -v } else { v })
}

/// The text's sign and the IEEE bits of its magnitude in `format`.
fn parse(raw: &[u8], format: Format) -> Option<(bool, u64)> {
    let (negative, rest) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, raw),
    };
    let split = rest
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(split);
    let exponent = match exponent.split_first() {
        None => 0,
        Some((_, digits)) => parse_exponent(digits)?,
    };
    let mut any_digit = false;
    let mut point = false;
    let mut after_point = 0i64;
    let mut significant = 0i64;
    let mut leading = 0u64;
    for &b in mantissa {
        if b == b'.' && !point {
            point = true;
            continue;
        }
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            return None;
        }
        any_digit = true;
        after_point += i64::from(point);
        if significant == 0 && d == 0 {
            continue;
        }
        if significant < 19 {
            leading = leading * 10 + u64::from(d);
        }
        significant += 1;
    }
    if !any_digit {
        return None;
    }
    if significant == 0 {
        return Some((negative, 0));
    }
    // The value is all the mantissa's digits as an integer, times 10^scale; its leading digit
    // is in the decade 10^(significant - 1 + scale).
    let scale = exponent - after_point;
    let decade = significant - 1 + scale;
    if decade < format.tiny_decade {
        return Some((negative, 0));
    }
    if decade >= format.huge_decade {
        return Some((negative, format.infinity()));
    }
    if significant <= 19 {
        if let Some(bits) = clinger(leading, scale, format) {
            return Some((negative, bits));
        }
    }
    // In range, so the exponents below are a few thousand at most.
    let guess_scale = (scale + (significant - 19).max(0)) as i32;
    let exact = Decimal::from_digits(mantissa, scale as i32);
    Some((
        negative,
        nearest(&exact, guess(leading, guess_scale), format),
    ))
}

/// The bits of the nearest `format` value to `digits · 10^scale`.
pub(crate) fn nearest_of(digits: u64, scale: i32, format: Format) -> u64 {
    if let Some(bits) = clinger(digits, i64::from(scale), format) {
        return bits;
    }
    let exact = Decimal::new(Big::from_u64(digits), scale, false);
    nearest(&exact, guess(digits, scale), format)
}

/// Clinger's fast path: `digits · 10^scale` when both are exact in f64, so the one rounding of
/// the one operation is the only one. An f32 is that double rounded again, which is the same
/// as rounding the decimal once unless the double lies exactly halfway between two f32s.
fn clinger(digits: u64, scale: i64, format: Format) -> Option<u64> {
    if digits > 1 << 53 || !(-22..=22).contains(&scale) {
        return None;
    }
    let power = POW10[scale.unsigned_abs() as usize];
    let x = if scale >= 0 {
        digits as f64 * power
    } else {
        digits as f64 / power
    };
    if format.precision == 53 {
        return Some(x.to_bits());
    }
    let y = x as f32;
    let exact = f64::from(y);
    if exact != x {
        let other = if exact < x {
            f32::from_bits(y.to_bits() + 1)
        } else {
            f32::from_bits(y.to_bits() - 1)
        };
        if (exact + f64::from(other)) / 2.0 == x {
            return None;
        }
    }
    Some(u64::from(y.to_bits()))
}

/// An exponent's digits, saturated far beyond any finite float's range.
fn parse_exponent(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, raw),
    };
    if digits.is_empty() {
        return None;
    }
    let mut e = 0i64;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            return None;
        }
        e = (e * 10 + i64::from(d)).min(1 << 40);
    }
    Some(if negative { -e } else { e })
}

/// Exact powers of ten in f64, for the guess.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits · 10^scale` in f64 arithmetic: at most ~17 roundings, so a few ulps off. Steps by
/// 10^22 towards the result so no intermediate overflows or underflows before the result does.
fn guess(digits: u64, mut scale: i32) -> f64 {
    let mut x = digits as f64;
    if scale >= 0 {
        while scale > 22 {
            x *= 1e22;
            scale -= 22;
        }
        x * POW10[scale as usize]
    } else {
        let mut down = scale.unsigned_abs();
        x /= POW10[(down % 22) as usize];
        down -= down % 22;
        while down > 0 {
            x /= 1e22;
            down -= 22;
        }
        x
    }
}

/// The nearest `format` value to `exact`, from a guess that is close to it.
fn nearest(exact: &Decimal, guess: f64, format: Format) -> u64 {
    let p = format.precision;
    let hidden = 1u64 << (p - 1);
    let (mut m, mut k) = split(guess, format);
    // Each pass moves one ulp towards the value; the guess is a few ulps off, so this ends fast.
    // The bound only keeps a logic error from looping forever.
    for _ in 0..4096 {
        // Above the halfway point to the next value up: step up.
        match exact.cmp_scaled(2 * m + 1, k - 1) {
            Ordering::Greater => {
                (m, k) = up(m, k, format);
                if k > format.max_exp {
                    return format.infinity();
                }
                continue;
            }
            // A tie goes to the even one of the two.
            Ordering::Equal if m % 2 == 1 => {
                let (m, k) = up(m, k, format);
                return if k > format.max_exp {
                    format.infinity()
                } else {
                    format.bits(m, k)
                };
            }
            _ if m == 0 => return 0,
            _ => {}
        }
        // Below the halfway point to the next value down: step down. Just above a power of two
        // (not at the bottom of the range) the gap down is half as wide.
        let lower = if m == hidden && k > format.min_exp {
            exact.cmp_scaled(4 * m - 1, k - 2)
        } else {
            exact.cmp_scaled(2 * m - 1, k - 1)
        };
        match lower {
            Ordering::Less => (m, k) = down(m, k, format),
            Ordering::Equal if m % 2 == 1 => {
                let (m, k) = down(m, k, format);
                return format.bits(m, k);
            }
            _ => return format.bits(m, k),
        }
    }
    format.bits(m, k)
}

fn up(m: u64, k: i32, format: Format) -> (u64, i32) {
    if m + 1 == 1 << format.precision {
        (1 << (format.precision - 1), k + 1)
    } else {
        (m + 1, k)
    }
}

fn down(m: u64, k: i32, format: Format) -> (u64, i32) {
    let hidden = 1 << (format.precision - 1);
    if m == hidden && k > format.min_exp {
        ((1 << format.precision) - 1, k - 1)
    } else {
        (m - 1, k)
    }
}

/// A non-negative f64 (the guess) as `m · 2^k` in `format`, truncating extra bits.
fn split(x: f64, format: Format) -> (u64, i32) {
    if x.is_infinite() {
        return ((1 << format.precision) - 1, format.max_exp);
    }
    let bits = x.to_bits();
    let biased = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut m, mut k) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    let drop = 53 - format.precision;
    m >>= drop;
    k += drop as i32;
    if k < format.min_exp {
        m = m.checked_shr((format.min_exp - k) as u32).unwrap_or(0);
        k = format.min_exp;
    }
    if k > format.max_exp {
        return ((1 << format.precision) - 1, format.max_exp);
    }
    (m, k)
}

/// Significant decimal digits kept exactly. A halfway point between two doubles has at most
/// 768, so digits past these can only say "a little more than", which `more` records.
const MAX_DIGITS: usize = 800;

/// `digits · 10^scale`, plus a little more if `more`; kept as `scaled / fives · 2^scale`, the
/// powers of five on whichever side keeps them whole, computed once for all the comparisons.
struct Decimal {
    /// digits · 5^scale when scale ≥ 0, else digits.
    scaled: Big,
    /// 5^−scale when scale < 0, else 1.
    fives: Big,
    scale: i32,
    more: bool,
}

impl Decimal {
    /// A mantissa's digits (with at most one point, already checked) times 10^scale, where
    /// `scale` counts from the last digit.
    fn from_digits(mantissa: &[u8], mut scale: i32) -> Decimal {
        let mut digits = Big::from_u64(0);
        let mut kept = 0;
        let mut more = false;
        let mut chunk = 0u32;
        let mut chunk_len = 0;
        for &b in mantissa.iter().filter(|&&b| b != b'.') {
            let d = u32::from(b - b'0');
            if kept == 0 && d == 0 {
                continue;
            }
            if kept == MAX_DIGITS {
                more |= d != 0;
                scale += 1;
                continue;
            }
            kept += 1;
            chunk = chunk * 10 + d;
            chunk_len += 1;
            if chunk_len == 9 {
                digits.mul_add(1_000_000_000, chunk);
                (chunk, chunk_len) = (0, 0);
            }
        }
        if chunk_len > 0 {
            digits.mul_add(10u32.pow(chunk_len), chunk);
        }
        Decimal::new(digits, scale, more)
    }

    fn new(mut scaled: Big, scale: i32, more: bool) -> Decimal {
        let mut fives = Big::from_u64(1);
        if scale >= 0 {
            scaled.mul_pow5(scale.unsigned_abs());
        } else {
            fives.mul_pow5(scale.unsigned_abs());
        }
        Decimal {
            scaled,
            fives,
            scale,
            more,
        }
    }

    /// This decimal against `n · 2^e`, exactly: `scaled · 2^scale` vs `n · fives · 2^e`.
    fn cmp_scaled(&self, n: u64, e: i32) -> Ordering {
        let mut lhs = self.scaled.clone();
        let mut rhs = self.fives.times(n);
        let twos = self.scale - e;
        if twos >= 0 {
            lhs.shl(twos.unsigned_abs());
        } else {
            rhs.shl(twos.unsigned_abs());
        }
        match lhs.cmp(&rhs) {
            Ordering::Equal if self.more => Ordering::Greater,
            ord => ord,
        }
    }
}

/// An unsigned big integer, 32-bit limbs, least significant first.
#[derive(Clone)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        Big(vec![v as u32, (v >> 32) as u32])
    }

    /// self · factor + add.
    fn mul_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let t = u64::from(*limb) * u64::from(factor) + carry;
            *limb = t as u32;
            carry = t >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    /// self · n.
    fn times(&self, n: u64) -> Big {
        let len = self.0.len();
        let mut out = vec![0u32; len + 2];
        for (j, b) in [n as u32, (n >> 32) as u32].into_iter().enumerate() {
            let mut carry = 0u64;
            for (i, &a) in self.0.iter().enumerate() {
                // At most (2^32 − 1)^2 + 2 · (2^32 − 1) = 2^64 − 1.
                let t = u64::from(a) * u64::from(b) + u64::from(out[i + j]) + carry;
                out[i + j] = t as u32;
                carry = t >> 32;
            }
            out[len + j] = carry as u32;
        }
        Big(out)
    }

    fn mul_pow5(&mut self, mut e: u32) {
        // 5^13 is the largest power of five below 2^32.
        while e >= 13 {
            self.mul_add(1_220_703_125, 0);
            e -= 13;
        }
        self.mul_add(5u32.pow(e), 0);
    }

    fn shl(&mut self, bits: u32) {
        let (limbs, bits) = ((bits / 32) as usize, bits % 32);
        let mut shifted = vec![0; limbs];
        shifted.reserve(self.0.len() + 1);
        let mut carry = 0;
        for &limb in &self.0 {
            let t = (u64::from(limb) << bits) | carry;
            shifted.push(t as u32);
            carry = t >> 32;
        }
        shifted.push(carry as u32);
        self.0 = shifted;
    }

    fn cmp(&self, other: &Big) -> Ordering {
        let len = |b: &Big| b.0.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
        let (a, b) = (&self.0[..len(self)], &other.0[..len(other)]);
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(s: &str) {
        let std64 = s.parse::<f64>().ok().map(f64::to_bits);
        assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), std64, "f64 {s}");
        let std32 = s.parse::<f32>().ok().map(f32::to_bits);
        assert_eq!(parse_f32(s.as_bytes()).map(f32::to_bits), std32, "f32 {s}");
    }

    #[test]
    fn edges() {
        for s in [
            "0",
            "-0",
            "0e999999999999",
            "1e308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792",
            "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791",
            "1e309",
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "2.2250738585072014e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "2.470328229206232720882538e-324",
            "1e-324",
            "3e-324",
            "1e-400",
            "3.4028235e38",
            "3.40282356779733661637539395458142568448e38",
            "3.40282366920938463463374607431768211455e38",
            "1.17549435e-38",
            "1.4e-45",
            "7.006492321624085354618647916449580656401309709382578858785341419448955413429303e-46",
            "7.006492321624085354618647916449580656401309709382578858785341419448955413429304e-46",
            "9007199254740993",
            "9007199254740993.0000000000000000000000000000000000001",
            "16777217",
            "16777217.000000000000000001",
            "1.5e-07",
            "1e+100",
            "-1.2345678901234567e+20",
            "0.000000000000000000000000000000000000000000001",
            ".5",
            "5.",
            "+1",
            "1E5",
            "00000000000000000000000000000000000001.5",
        ] {
            check(s);
        }
        for s in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "--1", "1 ", " 1", "1e5.5", "0x10",
        ] {
            assert_eq!(parse(s.as_bytes(), F64), None, "{s}");
        }
    }

    #[test]
    fn many_digits_are_bounded() {
        let long = format!("1.{}e-300", "3".repeat(100_000));
        check(&long);
        let zeros = format!("{}1", "0".repeat(100_000));
        check(&zeros);
    }

    /// The exact decimal of (2m + 1) · 2^(e - 1), a halfway point between two doubles, for
    /// −30 ≤ e − 1 ≤ 10; and the same digits with the last one set to `last`, just above or
    /// below it.
    pub(crate) fn halfway_and_near(m: u64, e: i32, last: u8) -> [String; 2] {
        let n = u128::from(2 * m + 1);
        let h = if e > 0 {
            (n << (e - 1)).to_string()
        } else {
            let k = (1 - e) as u32;
            let s = format!("{:0>w$}", n * 5u128.pow(k), w = k as usize + 1);
            let (int, frac) = s.split_at(s.len() - k as usize);
            format!("{int}.{frac}")
        };
        let mut near = h.clone().into_bytes();
        let len = near.len();
        near[len - 1] = b'0' + last;
        [h, String::from_utf8(near).unwrap()]
    }

    /// Not a check: `cargo test --release -p walcast-decoder speed -- --ignored --nocapture`
    /// prints this parser's time per value next to `str::parse`'s, by kind of input.
    #[test]
    #[ignore]
    fn speed() {
        type Make = fn(u64) -> String;
        let kinds: [(&str, Make); 4] = [
            ("float4 digits", |i| format!("0.{}", 12345679 + i)),
            ("short exponent", |i| format!("{}e-07", 1.5 + i as f64)),
            ("17 digits, exponent", |i| {
                format!("1.{:016}e+20", 2345678901234567 + i)
            }),
            ("exponent beyond 22", |i| format!("{i}e+100")),
        ];
        for (kind, make) in kinds {
            let inputs: Vec<String> = (0..100_000).map(make).collect();
            let t = std::time::Instant::now();
            let mut x = 0u64;
            for s in &inputs {
                x ^= parse(s.as_bytes(), F64).unwrap().1;
            }
            let ours = t.elapsed() / 100_000;
            let t = std::time::Instant::now();
            for s in &inputs {
                x ^= s.parse::<f64>().unwrap().to_bits();
            }
            eprintln!(
                "{kind}: {ours:?} vs {:?} per value ({x})",
                t.elapsed() / 100_000
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn any_double_in_every_notation(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            if f.is_finite() {
                check(&f.to_string());
                check(&format!("{f:e}"));
                check(&format!("{f:.16e}"));
                check(&format!("{f:.25e}"));
            }
        }

        #[test]
        fn any_float_in_every_notation(bits in any::<u32>()) {
            let f = f32::from_bits(bits);
            if f.is_finite() {
                check(&f.to_string());
                check(&format!("{f:e}"));
                check(&format!("{f:.8e}"));
                // Also halfway between f and its neighbour up: exact in f64.
                let next = f32::from_bits(bits.wrapping_add(1));
                if next.is_finite() && f >= 0.0 {
                    let h = (f64::from(f) + f64::from(next)) / 2.0;
                    let exact = format!("{h:.1100e}");
                    let (digits, exp) = exact.split_once('e').unwrap();
                    check(&format!("{}e{exp}", digits.trim_end_matches('0')));
                    // Nearby decimals short enough for the fast path, and one that is not.
                    for digits in [14, 15, 16, 60] {
                        check(&format!("{h:.digits$e}"));
                    }
                }
            }
        }

        #[test]
        fn random_decimals(s in "[+-]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{1,3})?") {
            check(&s);
        }

        #[test]
        fn halfway_points_and_neighbours(m in (1u64 << 52)..(1 << 53), e in -29i32..=11, last in 0u8..10) {
            for s in halfway_and_near(m, e, last) {
                check(&s);
            }
        }

        #[test]
        fn nearest_of_matches(d in any::<u64>(), e in -360i32..330) {
            let s = format!("{d}e{e}");
            let std: f64 = s.parse().unwrap();
            prop_assert_eq!(nearest_of(d, e, F64), std.to_bits());
            let std: f32 = s.parse().unwrap();
            prop_assert_eq!(nearest_of(d, e, F32), u64::from(std.to_bits()));
        }
    }
}
