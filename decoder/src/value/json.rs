//! Values printed exactly as PostgreSQL's `to_json()` prints them in a UTC session.
//!
//! The rules are those of `datum_to_json` in PostgreSQL's `json.c`:
//! int2/int4/int8/float4/float8/numeric are bare JSON numbers unless their text is not a valid
//! JSON number (`NaN`, `Infinity`), in which case they are strings; bool is `true`/`false`;
//! date/timestamp/timestamptz use the XSD forms (`2024-05-01T12:00:00+00:00`), time and timetz
//! their output text (`12:00:00+02`);
//! json and jsonb are embedded as their text; arrays become nested JSON arrays (lower bounds
//! are dropped); every other type (oid, money, interval, inet, uuid, bytea, …) is its output
//! text as a JSON string.

use super::datetime::{push_date, push_hms, push_interval, push_timestamp, push_tz};
use super::fmt::{push_f32, push_f64, push_hex, push_int, push_uint, push_zero_padded};
use super::{Array, InetAddr, Value};

/// Appends the JSON form of `value` to `out`.
pub fn write_json(value: &Value<'_>, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int2(v) => push_int(out, *v as i64),
        Value::Int4(v) => push_int(out, *v as i64),
        Value::Int8(v) => push_int(out, *v),
        Value::Oid(v) => {
            out.push('"');
            push_uint(out, *v as u64);
            out.push('"');
        }
        Value::Float4(v) => {
            if v.is_finite() {
                push_f32(out, *v);
            } else {
                quoted(out, |o| push_f32(o, *v));
            }
        }
        Value::Float8(v) => {
            if v.is_finite() {
                push_f64(out, *v);
            } else {
                quoted(out, |o| push_f64(o, *v));
            }
        }
        Value::Numeric(s) => {
            // PostgreSQL's IsValidJsonNumber decides: NaN/Infinity (or any hand-built oddity)
            // become strings.
            if is_json_number(s) {
                out.push_str(s);
            } else {
                escape_json(out, s);
            }
        }
        Value::Text(s) => escape_json(out, s),
        Value::Json(s) => out.push_str(s),
        Value::Bytea(b) => quoted(out, |o| {
            o.push_str("\\\\x");
            push_hex(o, b);
        }),
        Value::Uuid(u) => quoted(out, |o| push_uuid(o, u)),
        Value::Date(d) => quoted(out, |o| push_date(o, *d)),
        Value::Time(t) => quoted(out, |o| push_hms(o, (*t).max(0) as u64)),
        Value::TimeTz {
            micros,
            offset_secs,
        } => quoted(out, |o| {
            push_hms(o, (*micros).max(0) as u64);
            push_tz(o, *offset_secs);
        }),
        Value::Timestamp(t) => quoted(out, |o| push_timestamp(o, *t, false)),
        Value::TimestampTz(t) => quoted(out, |o| push_timestamp(o, *t, true)),
        Value::Interval {
            months,
            days,
            micros,
        } => quoted(out, |o| push_interval(o, *months, *days, *micros)),
        Value::Inet { addr, prefix, cidr } => quoted(out, |o| push_inet(o, addr, *prefix, *cidr)),
        Value::MacAddr(m) => quoted(out, |o| push_mac(o, m)),
        Value::MacAddr8(m) => quoted(out, |o| push_mac(o, m)),
        Value::Money(c) => quoted(out, |o| push_money(o, *c)),
        Value::Bit(s) => escape_json(out, s),
        Value::Array(a) => write_array(a, out),
        Value::UnknownText { text, .. } => escape_json(out, text),
        Value::UnknownBinary { bytes, .. } => quoted(out, |o| {
            o.push_str("\\\\x");
            push_hex(o, bytes);
        }),
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Writes `"…"` around text that never needs escaping (digits, dates, hex, addresses).
fn quoted(out: &mut String, f: impl FnOnce(&mut String)) {
    out.push('"');
    f(out);
    out.push('"');
}

/// PostgreSQL's `escape_json`: `\" \\ \b \f \n \r \t`, other control characters as `\u00xx`;
/// `/` and non-ASCII characters are left alone.
pub fn escape_json(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `get`, not indexing: both ends sit at ASCII bytes, and a str index that could panic
        // would link core's panic formatting (with its Unicode tables) into the .wasm.
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.push_str("\\u00");
            push_hex(out, &[b]);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

fn write_array(a: &Array<'_>, out: &mut String) {
    if a.dims.is_empty() || a.elements.is_empty() {
        out.push_str("[]");
        return;
    }
    let mut next = 0;
    write_dim(a, 0, &mut next, out);
}

fn write_dim(a: &Array<'_>, dim: usize, next: &mut usize, out: &mut String) {
    out.push('[');
    let n = a.dims[dim];
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        if dim + 1 < a.dims.len() {
            write_dim(a, dim + 1, next, out);
        } else {
            // A hand-built Array may be shorter than its dims claim; print null rather than panic.
            write_json(a.elements.get(*next).unwrap_or(&Value::Null), out);
            *next += 1;
        }
    }
    out.push(']');
}

pub(crate) fn push_uuid(out: &mut String, u: &[u8; 16]) {
    for (i, chunk) in [&u[0..4], &u[4..6], &u[6..8], &u[8..10], &u[10..16]]
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        push_hex(out, chunk);
    }
}

pub(crate) fn push_mac(out: &mut String, m: &[u8]) {
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_hex(out, &[*b]);
    }
}

/// cash_out under lc_monetary=C: `-$1,234.56`.
pub(crate) fn push_money(out: &mut String, cents: i64) {
    if cents < 0 {
        out.push('-');
    }
    out.push('$');
    let abs = cents.unsigned_abs();
    let (units, frac) = (abs / 100, abs % 100);
    // Group the integer part in threes.
    let mut buf = [0u8; 20];
    let mut n = 0;
    let mut u = units;
    loop {
        buf[n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(buf[i] as char);
        if i > 0 && i % 3 == 0 {
            out.push(',');
        }
    }
    out.push('.');
    push_zero_padded(out, frac, 2);
}

/// inet_out/cidr_out: PostgreSQL's own `inet_net_ntop` (IPv6 `::` compression of the longest
/// zero run of ≥ 2 groups, embedded IPv4 for `::a.b.c.d` and `::ffff:a.b.c.d`), `/bits` when not
/// a full host mask, and always for cidr.
pub(crate) fn push_inet(out: &mut String, addr: &InetAddr, prefix: u8, cidr: bool) {
    let max = match addr {
        InetAddr::V4(a) => {
            for (i, b) in a.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_uint(out, *b as u64);
            }
            32
        }
        InetAddr::V6(a) => {
            push_ipv6(out, a);
            128
        }
    };
    if prefix != max || cidr {
        out.push('/');
        push_uint(out, prefix as u64);
    }
}

fn push_ipv6(out: &mut String, src: &[u8; 16]) {
    let mut words = [0u16; 8];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u16::from_be_bytes([src[2 * i], src[2 * i + 1]]);
    }
    // Longest run of zero words (first one wins ties), used only if at least 2 long.
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            cur = Some(match cur {
                None => (i, 1),
                Some((b, l)) => (b, l + 1),
            });
        } else if let Some((b, l)) = cur.take() {
            if best_base.is_none() || l > best_len {
                best_base = Some(b);
                best_len = l;
            }
        }
    }
    if let Some((b, l)) = cur {
        if best_base.is_none() || l > best_len {
            best_base = Some(b);
            best_len = l;
        }
    }
    if best_len < 2 {
        best_base = None;
    }
    let in_best = |i: usize| best_base.is_some_and(|b| i >= b && i < b + best_len);
    for i in 0..8 {
        if in_best(i) {
            if Some(i) == best_base {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6
            && best_base == Some(0)
            && (best_len == 6
                || (best_len == 7 && words[7] != 1)
                || (best_len == 5 && words[5] == 0xffff))
        {
            for (k, b) in src[12..16].iter().enumerate() {
                if k > 0 {
                    out.push('.');
                }
                push_uint(out, *b as u64);
            }
            return;
        }
        push_hex_word(out, words[i]);
    }
    if best_base.is_some_and(|b| b + best_len == 8) {
        out.push(':');
    }
}

fn push_hex_word(out: &mut String, w: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let nib = (w >> shift) & 15;
        if nib != 0 || started || shift == 0 {
            out.push(HEX[nib as usize] as char);
            started = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_postgres() {
        let mut s = String::new();
        escape_json(&mut s, "a\"b\\c\n\u{1}/é\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001/é\u{7f}\"");
    }

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-0", "12.3400", "1e5", "-1.5E+3", "100"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "",
            "-",
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "1.",
            ".5",
            "1e",
            "1x",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn money_groups_thousands() {
        let mut s = String::new();
        push_money(&mut s, -123_456);
        push_money(&mut s, 5);
        push_money(&mut s, i64::MIN);
        assert_eq!(s, "-$1,234.56$0.05-$92,233,720,368,547,758.08");
    }
}
