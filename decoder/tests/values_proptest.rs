//! Property tests: random values encoded in their text and binary wire forms decode to the same
//! `Value`, print JSON that reads back to the original, and garbage never panics.

use proptest::prelude::*;
use walcast_decoder::value::{decode_binary, decode_text, json::write_json, oid};
use walcast_decoder::Value;

/// Owned decodes, so temporaries in the tests below can be dropped freely.
fn txt(ty: u32, raw: &[u8]) -> walcast_decoder::Result<Value<'static>> {
    decode_text(ty, raw).map(Value::into_owned)
}

fn bin(ty: u32, raw: &[u8]) -> walcast_decoder::Result<Value<'static>> {
    decode_binary(ty, raw).map(Value::into_owned)
}

fn json(v: &Value<'_>) -> String {
    let mut s = String::new();
    write_json(v, &mut s);
    s
}

/// The text form PostgreSQL prints for a value whose JSON is a plain string: the JSON string's
/// content (for the date/time types, with the XSD `T` and `+00:00` turned back into ISO form).
fn unquote(j: &str) -> String {
    serde_json::from_str::<String>(j).expect("a JSON string")
}

/// array_send bytes for a one- or two-dimensional array of optional element payloads.
fn array_send(elem_oid: u32, dims: &[(u32, i32)], elems: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((dims.len() as i32).to_be_bytes());
    b.extend((elems.iter().any(Option::is_none) as i32).to_be_bytes());
    b.extend(elem_oid.to_be_bytes());
    for (len, lb) in dims {
        b.extend((*len as i32).to_be_bytes());
        b.extend(lb.to_be_bytes());
    }
    for e in elems {
        match e {
            None => b.extend((-1i32).to_be_bytes()),
            Some(p) => {
                b.extend((p.len() as i32).to_be_bytes());
                b.extend(p);
            }
        }
    }
    b
}

/// numeric_send bytes for a plain decimal string, the way PostgreSQL builds them
/// (base-10000 groups aligned on the decimal point, leading/trailing zero groups stripped).
fn numeric_send(neg: bool, int: &str, frac: &str) -> Vec<u8> {
    let int = int.trim_start_matches('0');
    let dscale = frac.len() as u16;
    // Pad the integer part on the left and the fraction on the right to whole groups.
    let ipad = (4 - int.len() % 4) % 4;
    let fpad = (4 - frac.len() % 4) % 4;
    let digits_str = format!("{}{}{}{}", "0".repeat(ipad), int, frac, "0".repeat(fpad));
    let mut groups: Vec<u16> = digits_str
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    let mut weight = ((int.len() + ipad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut b = Vec::new();
    b.extend((groups.len() as u16).to_be_bytes());
    b.extend(weight.to_be_bytes());
    b.extend(
        (if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    b.extend(dscale.to_be_bytes());
    for g in groups {
        b.extend(g.to_be_bytes());
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn integers_agree(a in any::<i16>(), b in any::<i32>(), c in any::<i64>(), o in any::<u32>()) {
        let t = txt(oid::INT2, a.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::INT2, &a.to_be_bytes()).unwrap());
        prop_assert_eq!(json(&t), a.to_string());
        let t = txt(oid::INT4, b.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::INT4, &b.to_be_bytes()).unwrap());
        prop_assert_eq!(json(&t), b.to_string());
        let t = txt(oid::INT8, c.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::INT8, &c.to_be_bytes()).unwrap());
        prop_assert_eq!(json(&t), c.to_string());
        let t = txt(oid::OID, o.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::OID, &o.to_be_bytes()).unwrap());
        prop_assert_eq!(json(&t), format!("\"{o}\""));
    }

    #[test]
    fn out_of_range_integers_are_errors(c in any::<i64>()) {
        prop_assume!(c > i32::MAX as i64 || c < i32::MIN as i64);
        prop_assert!(txt(oid::INT4, c.to_string().as_bytes()).is_err());
    }

    #[test]
    fn float8_round_trips(bits in any::<u64>()) {
        let f = f64::from_bits(bits);
        let v = bin(oid::FLOAT8, &f.to_be_bytes()).unwrap();
        let j = json(&v);
        let text = if f.is_finite() { j.clone() } else { unquote(&j) };
        // PostgreSQL's float8out text is exactly the JSON number, so it must parse back.
        let t = txt(oid::FLOAT8, text.as_bytes()).unwrap();
        prop_assert_eq!(format!("{t:?}"), format!("{v:?}"));
        if f.is_finite() {
            let back: f64 = j.parse().unwrap();
            prop_assert_eq!(back.to_bits(), f.to_bits());
            // Must also be a valid JSON number.
            prop_assert!(serde_json::from_str::<serde_json::Value>(&j).unwrap().is_number());
        }
    }

    #[test]
    fn float4_round_trips(bits in any::<u32>()) {
        let f = f32::from_bits(bits);
        let v = bin(oid::FLOAT4, &f.to_be_bytes()).unwrap();
        let j = json(&v);
        let text = if f.is_finite() { j.clone() } else { unquote(&j) };
        let t = txt(oid::FLOAT4, text.as_bytes()).unwrap();
        prop_assert_eq!(format!("{t:?}"), format!("{v:?}"));
        if f.is_finite() {
            prop_assert_eq!(j.parse::<f32>().unwrap().to_bits(), f.to_bits());
        }
    }

    #[test]
    fn strings_agree_and_escape_reversibly(s in any::<String>()) {
        prop_assume!(!s.contains('\0'));
        let t = txt(oid::TEXT, s.as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::TEXT, s.as_bytes()).unwrap());
        prop_assert_eq!(unquote(&json(&t)), s.clone());
        // A one-element text[] with the string quoted as array_out would.
        let quoted = format!("{{\"{}\"}}", s.replace('\\', "\\\\").replace('"', "\\\""));
        let ta = txt(oid::TEXT_ARRAY, quoted.as_bytes()).unwrap();
        let ba = bin(oid::TEXT_ARRAY, &array_send(oid::TEXT, &[(1, 1)], &[Some(s.clone().into_bytes())])).unwrap();
        prop_assert_eq!(&ta, &ba);
        let parsed: Vec<String> = serde_json::from_str(&json(&ta)).unwrap();
        prop_assert_eq!(parsed, vec![s]);
    }

    #[test]
    fn int_arrays_agree(rows in 1usize..4, cols in 1usize..5, seed in proptest::collection::vec(proptest::option::of(any::<i32>()), 20), lb in -3i32..3) {
        let n = rows * cols;
        let elems: Vec<Option<i32>> = seed.into_iter().cycle().take(n).collect();
        let fmt = |e: &Option<i32>| e.map_or("NULL".to_string(), |v| v.to_string());
        let mut text = if lb != 1 { format!("[{}:{}][{}:{}]=", lb, lb + rows as i32 - 1, lb, lb + cols as i32 - 1) } else { String::new() };
        text.push('{');
        for r in 0..rows {
            if r > 0 { text.push(','); }
            text.push('{');
            text.push_str(&elems[r * cols..(r + 1) * cols].iter().map(fmt).collect::<Vec<_>>().join(","));
            text.push('}');
        }
        text.push('}');
        let raw = array_send(oid::INT4, &[(rows as u32, lb), (cols as u32, lb)], &elems.iter().map(|e| e.map(|v| v.to_be_bytes().to_vec())).collect::<Vec<_>>());
        let t = txt(oid::INT4_ARRAY, text.as_bytes()).unwrap();
        let b = bin(oid::INT4_ARRAY, &raw).unwrap();
        prop_assert_eq!(&t, &b);
        let parsed: Vec<Vec<Option<i32>>> = serde_json::from_str(&json(&t)).unwrap();
        prop_assert_eq!(parsed, elems.chunks(cols).map(|c| c.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn numerics_agree(neg in any::<bool>(), int in "[0-9]{0,30}", frac in "[0-9]{0,30}") {
        let int_norm = { let t = int.trim_start_matches('0'); if t.is_empty() { "0".to_string() } else { t.to_string() } };
        let all_zero = int_norm == "0" && frac.chars().all(|c| c == '0');
        let mut expected = String::new();
        if neg && !all_zero { expected.push('-'); }
        expected.push_str(&int_norm);
        if !frac.is_empty() { expected.push('.'); expected.push_str(&frac); }
        let b = bin(oid::NUMERIC, &numeric_send(neg, &int, &frac)).unwrap();
        prop_assert_eq!(&b, &Value::Numeric(expected.clone().into()));
        prop_assert_eq!(&txt(oid::NUMERIC, expected.as_bytes()).unwrap(), &b);
        prop_assert_eq!(json(&b), expected);
    }

    #[test]
    fn timestamps_reparse(micros in -211_813_488_000_000_000i64..9_223_371_331_200_000_000i64) {
        // The full PostgreSQL range, 4713 BC to 294276 AD.
        let b = bin(oid::TIMESTAMPTZ, &micros.to_be_bytes()).unwrap();
        let iso = unquote(&json(&b)).replacen('T', " ", 1).replacen("+00:00", "+00", 1);
        prop_assert_eq!(&txt(oid::TIMESTAMPTZ, iso.as_bytes()).unwrap(), &b);
        let b = bin(oid::TIMESTAMP, &micros.to_be_bytes()).unwrap();
        let iso = unquote(&json(&b)).replacen('T', " ", 1);
        prop_assert_eq!(&txt(oid::TIMESTAMP, iso.as_bytes()).unwrap(), &b);
    }

    #[test]
    fn dates_and_times_reparse(days in -2_451_545i32..2_145_031_948, t in 0i64..=86_400_000_000, tz in -57_599i32..57_600) {
        let b = bin(oid::DATE, &days.to_be_bytes()).unwrap();
        prop_assert_eq!(&txt(oid::DATE, unquote(&json(&b)).as_bytes()).unwrap(), &b);
        let b = bin(oid::TIME, &t.to_be_bytes()).unwrap();
        prop_assert_eq!(&txt(oid::TIME, unquote(&json(&b)).as_bytes()).unwrap(), &b);
        let mut tt = t.to_be_bytes().to_vec();
        tt.extend(tz.to_be_bytes());
        let b = bin(oid::TIMETZ, &tt).unwrap();
        prop_assert_eq!(&txt(oid::TIMETZ, unquote(&json(&b)).as_bytes()).unwrap(), &b);
    }

    #[test]
    fn intervals_reparse(months in any::<i32>(), days in any::<i32>(), micros in any::<i64>()) {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend(days.to_be_bytes());
        raw.extend(months.to_be_bytes());
        let b = bin(oid::INTERVAL, &raw).unwrap();
        prop_assert_eq!(&txt(oid::INTERVAL, unquote(&json(&b)).as_bytes()).unwrap(), &b);
    }

    #[test]
    fn addresses_reparse(v6 in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), p6 in 0u8..=128, p4 in 0u8..=32, cidr in any::<bool>()) {
        for (family, addr, bits) in [(3u8, v6.to_vec(), p6), (2u8, v4.to_vec(), p4)] {
            let mut raw = vec![family, bits, cidr as u8, addr.len() as u8];
            raw.extend(&addr);
            let ty = if cidr { oid::CIDR } else { oid::INET };
            let b = bin(ty, &raw).unwrap();
            let text = unquote(&json(&b));
            prop_assert_eq!(&txt(ty, text.as_bytes()).unwrap(), &b, "{}", text);
            // The printed address must be one the standard library reads as the same bytes.
            let host = text.split('/').next().unwrap();
            let parsed: std::net::IpAddr = host.parse().unwrap();
            let octets = match parsed { std::net::IpAddr::V4(a) => a.octets().to_vec(), std::net::IpAddr::V6(a) => a.octets().to_vec() };
            prop_assert_eq!(octets, addr);
        }
    }

    #[test]
    fn money_reparses(cents in any::<i64>()) {
        let b = bin(oid::MONEY, &cents.to_be_bytes()).unwrap();
        prop_assert_eq!(&txt(oid::MONEY, unquote(&json(&b)).as_bytes()).unwrap(), &b);
    }

    #[test]
    fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64), pick in any::<prop::sample::Index>()) {
        let mut oids: Vec<u32> = oid::SCALARS.iter().flat_map(|(s, _, a)| [*s, *a]).collect();
        oids.push(99_999);
        let ty = oids[pick.index(oids.len())];
        for v in [txt(ty, &raw), bin(ty, &raw)].into_iter().flatten() {
            let _ = json(&v);
            let _ = serde_json::to_string(&v);
            let _ = v.to_owned_static();
        }
    }

    #[test]
    fn array_headers_never_panic_or_overallocate(ndim in -2i32..9, dims in proptest::collection::vec(any::<i32>(), 0..16), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut raw = Vec::new();
        raw.extend(ndim.to_be_bytes());
        raw.extend(0i32.to_be_bytes());
        raw.extend(oid::INT4.to_be_bytes());
        for d in &dims { raw.extend(d.to_be_bytes()); }
        raw.extend(&tail);
        if let Ok(v) = bin(oid::INT4_ARRAY, &raw) {
            let _ = json(&v);
        }
    }

    #[test]
    fn text_arrays_quoted_like_array_out_agree(elems in proptest::collection::vec(proptest::option::of("[a-zA-Z0-9 ,{}\"\\\\\t\né]{0,8}|NULL|null"), 1..8)) {
        // array_out quotes an element only when it must: empty, NULL-like, or holding
        // delimiters, braces, quotes, backslashes or whitespace.
        let quote = |s: &str| -> String {
            let needs = s.is_empty()
                || s.eq_ignore_ascii_case("NULL")
                || s.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
            if needs {
                format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                s.to_string()
            }
        };
        let text = format!(
            "{{{}}}",
            elems.iter().map(|e| e.as_deref().map_or("NULL".to_string(), quote)).collect::<Vec<_>>().join(",")
        );
        let raw = array_send(oid::TEXT, &[(elems.len() as u32, 1)], &elems.iter().map(|e| e.clone().map(String::into_bytes)).collect::<Vec<_>>());
        let t = txt(oid::TEXT_ARRAY, text.as_bytes()).unwrap();
        prop_assert_eq!(&t, &bin(oid::TEXT_ARRAY, &raw).unwrap(), "{}", text);
        let parsed: Vec<Option<String>> = serde_json::from_str(&json(&t)).unwrap();
        prop_assert_eq!(parsed, elems);
    }

    #[test]
    fn array_syntax_garbage_never_panics(s in "[{}\",\\\\ a1NUL\\[\\]:=-]{0,40}") {
        for ty in [oid::TEXT_ARRAY, oid::INT4_ARRAY, oid::NUMERIC_ARRAY] {
            if let Ok(v) = txt(ty, s.as_bytes()) {
                let _ = json(&v);
            }
        }
    }
}
