//! Calendar arithmetic and the printed forms of PostgreSQL's date/time types.
//!
//! The Julian-day routines are PostgreSQL's own (`date2j`/`j2date` in `datetime.c`), so dates,
//! including BC dates (year 0 is 1 BC), land on exactly the same days as in the server.
//! Printing follows `EncodeDateOnly`/`EncodeDateTime`/`EncodeTimeOnly`/`EncodeInterval`.

use super::fmt::{push_int, push_zero_padded};

/// Two zero-padded digits, the overwhelmingly common case of every date/time field.
#[inline]
fn push_2(out: &mut String, v: u64) {
    if v < 100 {
        out.push((b'0' + (v / 10) as u8) as char);
        out.push((b'0' + (v % 10) as u8) as char);
    } else {
        push_zero_padded(out, v, 2);
    }
}

/// Julian day of 2000-01-01, PostgreSQL's epoch for date, timestamp and timestamptz.
pub const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
pub const USECS_PER_SEC: i64 = 1_000_000;
pub const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
pub const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
pub const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;

/// Julian day number of a proleptic Gregorian date (`year` 0 is 1 BC). PostgreSQL's `date2j`.
pub fn date2j(year: i64, month: i64, day: i64) -> i64 {
    let (month, year) = if month > 2 {
        (month + 1, year + 4800)
    } else {
        (month + 13, year + 4799)
    };
    let century = year / 100;
    let mut julian = year * 365 - 32167;
    julian += year / 4 - century + century / 4;
    julian += 7834 * month / 256 + day;
    julian
}

/// [`date2j`] for the four-digit years of the fast timestamp parser, in i32 arithmetic: in WASM
/// a constant i64 division is a slow instruction (no 64-bit multiply-high), an i32 one is not.
fn date2j_small(year: u16, month: u8, day: u8) -> i64 {
    let (year, month, day) = (i32::from(year), i32::from(month), i32::from(day));
    let (month, year) = if month > 2 {
        (month + 1, year + 4800)
    } else {
        (month + 13, year + 4799)
    };
    let century = year / 100;
    let julian = year * 365 - 32167 + year / 4 - century + century / 4 + 7834 * month / 256 + day;
    i64::from(julian)
}

/// The inverse of [`date2j`], PostgreSQL's `j2date`. Valid for Julian days ≥ 0 (4714-11-24 BC).
pub fn j2date(jd: i64) -> (i64, u32, u32) {
    let mut julian = jd + 32044;
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y - 4800;
    let quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month as u32, day as u32)
}

/// `YYYY-MM-DD` with at least 4 year digits; BC years are returned as `true` so callers can
/// put the ` BC` suffix where PostgreSQL does (after the time zone).
fn push_ymd(out: &mut String, jd: i64) -> bool {
    let (year, month, day) = j2date(jd);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    let shown = shown.unsigned_abs();
    if shown < 10_000 {
        push_2(out, shown / 100);
        push_2(out, shown % 100);
    } else {
        push_zero_padded(out, shown, 4);
    }
    out.push('-');
    push_2(out, month as u64);
    out.push('-');
    push_2(out, day as u64);
    bc
}

/// `HH:MM:SS[.ffffff]` with trailing fractional zeros trimmed (`AppendSeconds`).
/// Hours are not wrapped: `time '24:00'` prints `24:00:00`.
pub fn push_hms(out: &mut String, micros: u64) {
    let hours = micros / USECS_PER_HOUR as u64;
    let rest = micros % USECS_PER_HOUR as u64;
    push_2(out, hours);
    out.push(':');
    push_2(out, rest / USECS_PER_MINUTE as u64);
    out.push(':');
    push_seconds(out, rest % USECS_PER_MINUTE as u64);
}

/// `SS[.ffffff]` from microseconds within a minute.
fn push_seconds(out: &mut String, micros: u64) {
    push_2(out, micros / USECS_PER_SEC as u64);
    let mut frac = micros % USECS_PER_SEC as u64;
    if frac != 0 {
        out.push('.');
        let mut width = 6;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        push_zero_padded(out, frac, width);
    }
}

/// A zone offset as `EncodeTimezone` prints it for timetz (`+02`, `-05:30`, `+00:19:32`).
/// `offset_east` is seconds east of UTC. (`to_json` of timetz keeps this short form; only
/// timestamptz gets the XSD `+00:00`, written by [`push_timestamp`].)
pub fn push_tz(out: &mut String, offset_east: i32) {
    out.push(if offset_east >= 0 { '+' } else { '-' });
    let abs = offset_east.unsigned_abs() as u64;
    let (hours, minutes, seconds) = (abs / 3600, abs / 60 % 60, abs % 60);
    push_zero_padded(out, hours, 2);
    if seconds != 0 || minutes != 0 {
        out.push(':');
        push_zero_padded(out, minutes, 2);
    }
    if seconds != 0 {
        out.push(':');
        push_zero_padded(out, seconds, 2);
    }
}

/// A date as `to_json` (and `date_out` under DateStyle=ISO) prints it, without quotes.
pub fn push_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        _ => {
            if push_ymd(out, days as i64 + POSTGRES_EPOCH_JDATE) {
                out.push_str(" BC");
            }
        }
    }
}

/// A timestamp in `to_json`'s XSD form: `2024-05-01T12:00:00.5`, with `+00:00` when `utc_zone`
/// (timestamptz in a UTC session), ` BC` last, or `infinity`/`-infinity`.
pub fn push_timestamp(out: &mut String, micros: i64, utc_zone: bool) {
    match micros {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        _ => {
            let date = micros.div_euclid(USECS_PER_DAY);
            let time = micros.rem_euclid(USECS_PER_DAY);
            let bc = push_ymd(out, date + POSTGRES_EPOCH_JDATE);
            out.push('T');
            push_hms(out, time as u64);
            if utc_zone {
                out.push_str("+00:00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// An interval as `interval_out` prints it under IntervalStyle=postgres
/// (`1 year 2 mons -3 days +04:05:06.5`), PostgreSQL 15's `EncodeInterval`.
pub fn push_interval(out: &mut String, months: i32, days: i32, micros: i64) {
    if months == i32::MAX && days == i32::MAX && micros == i64::MAX {
        out.push_str("infinity");
        return;
    }
    if months == i32::MIN && days == i32::MIN && micros == i64::MIN {
        out.push_str("-infinity");
        return;
    }
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        push_int(out, value);
        out.push(' ');
        out.push_str(unit);
        if value != 1 {
            out.push('s');
        }
        is_before = value < 0;
        is_zero = false;
    };
    part(out, (months / 12) as i64, "year");
    part(out, (months % 12) as i64, "mon");
    part(out, days as i64, "day");
    if is_zero || micros != 0 {
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let abs = micros.unsigned_abs();
        push_zero_padded(out, abs / USECS_PER_HOUR as u64, 2);
        out.push(':');
        push_zero_padded(
            out,
            abs % USECS_PER_HOUR as u64 / USECS_PER_MINUTE as u64,
            2,
        );
        out.push(':');
        push_seconds(out, abs % USECS_PER_MINUTE as u64);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing the ISO text forms (DateStyle=ISO, IntervalStyle=postgres).
// Each parser returns `None` on anything it does not recognise; callers turn that into a typed error.

/// A cursor over ASCII text.
struct Cur<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// Unsigned decimal digits (at least one, at most 18 so it cannot overflow).
    fn digits(&mut self) -> Option<(i64, usize)> {
        let start = self.pos;
        let mut v: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.pos - start >= 18 {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
            self.pos += 1;
        }
        let n = self.pos - start;
        (n > 0).then_some((v, n))
    }
    fn done(&self) -> bool {
        self.pos == self.s.len()
    }
    fn rest(&self) -> &'a [u8] {
        &self.s[self.pos..]
    }
}

/// `YYYY-MM-DD` → (year, month, day) as printed (no BC adjustment).
fn parse_ymd(c: &mut Cur<'_>) -> Option<(i64, i64, i64)> {
    let (y, _) = c.digits()?;
    if !c.eat(b'-') {
        return None;
    }
    let (m, mn) = c.digits()?;
    if !c.eat(b'-') {
        return None;
    }
    let (d, dn) = c.digits()?;
    if mn != 2 || dn != 2 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((y, m, d))
}

/// `HH:MM:SS[.f{1,6}]` → microseconds (hours up to 24 for `time`; larger for intervals).
fn parse_hms(c: &mut Cur<'_>) -> Option<i64> {
    let (h, _) = c.digits()?;
    if !c.eat(b':') {
        return None;
    }
    let (m, mn) = c.digits()?;
    if !c.eat(b':') {
        return None;
    }
    let (s, sn) = c.digits()?;
    if mn != 2 || sn != 2 || m > 59 || s > 60 {
        return None;
    }
    let mut frac = 0;
    if c.eat(b'.') {
        let (f, n) = c.digits()?;
        if n > 6 {
            return None;
        }
        frac = f * 10i64.pow(6 - n as u32);
    }
    h.checked_mul(USECS_PER_HOUR)?
        .checked_add(m * USECS_PER_MINUTE + s * USECS_PER_SEC + frac)
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_tz(c: &mut Cur<'_>) -> Option<i32> {
    let neg = match c.peek()? {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    c.pos += 1;
    let (h, hn) = c.digits()?;
    let mut secs = h * 3600;
    if c.eat(b':') {
        let (m, _) = c.digits()?;
        secs += m * 60;
        if c.eat(b':') {
            let (s, _) = c.digits()?;
            secs += s;
        }
    }
    if hn > 2 || secs > 24 * 3600 {
        return None;
    }
    Some(if neg { -secs as i32 } else { secs as i32 })
}

/// Consumes an optional ` BC` and turns the printed year into PostgreSQL's (1 BC is year 0).
fn era(c: &mut Cur<'_>, year: i64) -> Option<i64> {
    if c.rest() == b" BC" {
        c.pos += 3;
        Some(1 - year)
    } else {
        Some(year)
    }
}

/// date text → days since 2000-01-01 (`i32::MAX`/`MIN` for ±infinity).
pub fn parse_date(s: &[u8]) -> Option<i32> {
    match s {
        b"infinity" => return Some(i32::MAX),
        b"-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let mut c = Cur { s, pos: 0 };
    let (y, m, d) = parse_ymd(&mut c)?;
    let y = era(&mut c, y)?;
    if !c.done() {
        return None;
    }
    i32::try_from(date2j(y, m, d) - POSTGRES_EPOCH_JDATE)
        .ok()
        .filter(|d| *d != i32::MAX && *d != i32::MIN)
}

/// time text → microseconds since midnight.
pub fn parse_time(s: &[u8]) -> Option<i64> {
    let mut c = Cur { s, pos: 0 };
    let t = parse_hms(&mut c)?;
    (c.done() && t <= USECS_PER_DAY).then_some(t)
}

/// timetz text → (microseconds, seconds east of UTC).
pub fn parse_timetz(s: &[u8]) -> Option<(i64, i32)> {
    let mut c = Cur { s, pos: 0 };
    let t = parse_hms(&mut c)?;
    let tz = parse_tz(&mut c)?;
    (c.done() && t <= USECS_PER_DAY).then_some((t, tz))
}

/// timestamp / timestamptz text → microseconds since 2000-01-01 (UTC for timestamptz).
/// A zone offset is required for timestamptz and refused for timestamp.
#[inline]
pub fn parse_timestamp(s: &[u8], with_tz: bool) -> Option<i64> {
    if let Some(v) = parse_timestamp_fast(s, with_tz) {
        return Some(v);
    }
    parse_timestamp_general(s, with_tz)
}

/// Every form [`parse_timestamp`] accepts: infinities, fractional and minute/second zones, BC,
/// years beyond 9999. The fast path is a subset of it. Kept out of line so the fast path's
/// caller stays small.
#[inline(never)]
fn parse_timestamp_general(s: &[u8], with_tz: bool) -> Option<i64> {
    match s {
        b"infinity" => return Some(i64::MAX),
        b"-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let mut c = Cur { s, pos: 0 };
    let (y, m, d) = parse_ymd(&mut c)?;
    if !c.eat(b' ') {
        return None;
    }
    let t = parse_hms(&mut c)?;
    let tz = if with_tz { parse_tz(&mut c)? } else { 0 };
    let y = era(&mut c, y)?;
    if !c.done() || t >= USECS_PER_DAY {
        return None;
    }
    let days = date2j(y, m, d).checked_sub(POSTGRES_EPOCH_JDATE)?;
    let v = days
        .checked_mul(USECS_PER_DAY)?
        .checked_add(t)?
        .checked_sub(tz as i64 * USECS_PER_SEC)?;
    (v != i64::MAX && v != i64::MIN).then_some(v)
}

/// The common shape `YYYY-MM-DD HH:MM:SS[.f{1,6}][+HH]` (AD, 4-digit year, whole-hour zone) at
/// fixed positions, without the general parser's bookkeeping. `None` means "use the general parser".
/// Whether `word` equals `template` outside `digit_mask` and holds ASCII digits (0x30..=0x39)
/// in every byte of `digit_mask`. `template` has `0` at the digit positions.
#[inline(always)]
fn swar_digits(word: u64, template: u64, digit_mask: u64) -> bool {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const SIX: u64 = 0x0606_0606_0606_0606;
    let seps_ok = (word & !digit_mask) == (template & !digit_mask);
    let digits = word & digit_mask;
    let zeros = template & digit_mask;
    // High nibble 3 everywhere, and still 3 after adding 6 (so the low nibble is ≤ 9). Bytes
    // stay ≤ 0x3f + 6 < 0x100, so no carry crosses into the next byte.
    seps_ok && digits & HIGH == zeros && (digits + (SIX & digit_mask)) & HIGH == zeros
}

#[inline]
fn parse_timestamp_fast(s: &[u8], with_tz: bool) -> Option<i64> {
    // `YYYY-MM-DD HH:MM:SS` as one fixed-size array, so every index below is checked at
    // compile time and the digit tests fold into straight-line code.
    let head: &[u8; 19] = s.get(..19)?.try_into().ok()?;
    // Little-endian words over `YYYY-MM-`, `DD ` and `HH:MM:SS`, each compared against its
    // template in one go: digit positions must hold 0x30..=0x39, separators must match exactly.
    let w0 = u64::from_le_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    let w1 = u64::from_le_bytes([
        head[11], head[12], head[13], head[14], head[15], head[16], head[17], head[18],
    ]);
    let w2 = u32::from_le_bytes([head[8], head[9], head[10], b' ']);
    if !swar_digits(w0, u64::from_le_bytes(*b"0000-00-"), 0x00ff_ff00_ffff_ffff)
        || !swar_digits(w1, u64::from_le_bytes(*b"00:00:00"), 0xffff_00ff_ff00_ffff)
        || !swar_digits(
            u64::from(w2),
            u64::from(u32::from_le_bytes(*b"00  ")),
            0x0000_ffff,
        )
    {
        return None;
    }
    let d = |i: usize| i64::from(head[i] - b'0');
    let d2 = |i: usize| d(i) * 10 + d(i + 1);
    let year = d2(0) * 100 + d2(2);
    let (month, day) = (d2(5), d2(8));
    let (h, m, sec) = (d2(11), d2(14), d2(17));
    // Anything unusual (a leap second, which can roll into the next day) is left to the
    // general parser, so the fast path stays a strict subset of it.
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() && i - start < 6 {
            frac = frac * 10 + (s[i] - b'0') as i64;
            i += 1;
        }
        if i == start || s.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        frac *= [1, 100_000, 10_000, 1_000, 100, 10, 1][i - start];
    }
    let mut tz = 0;
    if with_tz {
        let &[sign, t0, t1]: &[u8; 3] = s.get(i..)?.try_into().ok()?;
        let (t0, t1) = (t0.wrapping_sub(b'0'), t1.wrapping_sub(b'0'));
        if t0 > 9 || t1 > 9 {
            return None;
        }
        let hours = i64::from(t0) * 10 + i64::from(t1);
        if hours > 24 {
            return None;
        }
        tz = match sign {
            b'+' => hours * 3600,
            b'-' => -hours * 3600,
            _ => return None,
        };
    } else if s.len() != i {
        return None;
    }
    // Four digits each, and month and day checked above: the narrow types hold them.
    let days = date2j_small(year as u16, month as u8, day as u8) - POSTGRES_EPOCH_JDATE;
    let t = h * USECS_PER_HOUR + m * USECS_PER_MINUTE + sec * USECS_PER_SEC + frac;
    Some(days * USECS_PER_DAY + t - tz * USECS_PER_SEC)
}

/// interval text (IntervalStyle=postgres) → (months, days, microseconds).
pub fn parse_interval(s: &[u8]) -> Option<(i32, i32, i64)> {
    match s {
        b"infinity" => return Some((i32::MAX, i32::MAX, i64::MAX)),
        b"-infinity" => return Some((i32::MIN, i32::MIN, i64::MIN)),
        _ => {}
    }
    let mut c = Cur { s, pos: 0 };
    let (mut months, mut days, mut micros) = (0i32, 0i32, 0i64);
    let mut seen_time = false;
    loop {
        let neg = match c.peek()? {
            b'-' => {
                c.pos += 1;
                true
            }
            b'+' => {
                c.pos += 1;
                false
            }
            _ => false,
        };
        let start = c.pos;
        let (n, _) = c.digits()?;
        if c.peek() == Some(b':') {
            if seen_time {
                return None;
            }
            c.pos = start;
            let t = parse_hms(&mut c)?;
            micros = if neg { -t } else { t };
            seen_time = true;
        } else {
            let n = if neg { -n } else { n };
            if !c.eat(b' ') {
                return None;
            }
            let unit_start = c.pos;
            while matches!(c.peek(), Some(b'a'..=b'z')) {
                c.pos += 1;
            }
            let n32 = i32::try_from(n).ok()?;
            match &s[unit_start..c.pos] {
                b"year" | b"years" => months = months.checked_add(n32.checked_mul(12)?)?,
                b"mon" | b"mons" => months = months.checked_add(n32)?,
                b"day" | b"days" => days = days.checked_add(n32)?,
                _ => return None,
            }
        }
        if c.done() {
            return Some((months, days, micros));
        }
        if !c.eat(b' ') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date2j_small_is_date2j_for_four_digit_years() {
        for year in 0..=9999u16 {
            for month in 1..=12u8 {
                for day in [1u8, 2, 15, 28, 29, 30, 31] {
                    let want = date2j(year.into(), month.into(), day.into());
                    assert_eq!(date2j_small(year, month, day), want, "{year}-{month}-{day}");
                }
            }
        }
    }

    /// Found by the fuzzer: non-digits where the fast path expects digits must be rejected,
    /// not multiplied (u8 overflow).
    #[test]
    fn fast_path_rejects_non_digits_without_overflow() {
        for text in [
            &b"\xfa000-01-01 00:00:00+00"[..],
            b"2024-\xff\xff-01 00:00:00+00",
            b"2024-01-01 \xf0\xf0:00:00",
        ] {
            assert_eq!(parse_timestamp_fast(text, true), None);
            assert_eq!(parse_timestamp_fast(text, false), None);
        }
    }

    proptest::proptest! {
        /// The fast path returns what the general parser returns, whenever it answers at all,
        /// on valid timestamps and on ones with a byte replaced anywhere.
        #[test]
        fn fast_path_agrees_with_general_parser(
            y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61,
            sec in 0u32..60, frac in proptest::option::of("[0-9]{1,7}"),
            tz in proptest::option::of(-15i32..16), pos in 0usize..32, byte in proptest::num::u8::ANY,
            mutate in proptest::bool::ANY,
        ) {
            let mut s = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}");
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some(tz) = tz {
                s.push_str(&format!("{}{:02}", if tz < 0 { '-' } else { '+' }, tz.abs()));
            }
            let mut b = s.into_bytes();
            if mutate && pos < b.len() {
                b[pos] = byte;
            }
            for with_tz in [false, true] {
                if let Some(v) = parse_timestamp_fast(&b, with_tz) {
                    proptest::prop_assert_eq!(Some(v), parse_timestamp_general(&b, with_tz));
                }
            }
        }
    }

    #[test]
    fn julian_round_trip_spans_bc_and_far_future() {
        for jd in [
            0,
            1,
            1_721_425,
            1_721_426,
            POSTGRES_EPOCH_JDATE,
            5_000_000,
            109_203_528,
        ] {
            let (y, m, d) = j2date(jd);
            assert_eq!(date2j(y, m as i64, d as i64), jd, "jd {jd}");
        }
        assert_eq!(j2date(POSTGRES_EPOCH_JDATE), (2000, 1, 1));
    }

    #[test]
    fn interval_prints_like_postgres() {
        let mut s = String::new();
        push_interval(
            &mut s,
            14,
            3,
            4 * USECS_PER_HOUR + 5 * USECS_PER_MINUTE + 6_500_000,
        );
        assert_eq!(s, "1 year 2 mons 3 days 04:05:06.5");
        s.clear();
        push_interval(&mut s, 0, -1, 2 * USECS_PER_HOUR);
        assert_eq!(s, "-1 days +02:00:00");
        s.clear();
        push_interval(&mut s, 0, 0, 0);
        assert_eq!(s, "00:00:00");
        assert_eq!(
            parse_interval(b"-1 days +02:00:00"),
            Some((0, -1, 2 * USECS_PER_HOUR))
        );
        assert_eq!(
            parse_interval(b"1 year 2 mons 3 days 04:05:06.5"),
            Some((14, 3, 14_706_500_000))
        );
    }
}
