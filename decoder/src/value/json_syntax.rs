//! A syntax check of json/jsonb text, so that corrupt input is a typed error with an offset
//! here, never a JSON line that does not parse (the JSON-lines output embeds the text as is)
//! nor a SyntaxError in the JS package (which parses it).
//!
//! The grammar is RFC 8259's, which is what PostgreSQL's json input accepts: the same four
//! whitespace bytes, escapes and number forms. Like `json` (not `jsonb`), a `\u` escape of a
//! lone surrogate passes. It is a check, not a parser: nothing is built, and nesting of any
//! depth is followed without recursion. serde_json could answer the same yes/no, but would put
//! its whole parser in the .wasm for it (and refuses the lone surrogates json keeps); the tests
//! use it as the reference instead, and real PostgreSQL (decoder/tests/values_vs_postgres.rs).

use super::utf8;
use crate::{DecodeError, ErrorKind, Result};

/// `raw` as a str if it is UTF-8 holding one JSON value; else an error at the first bad byte.
pub(crate) fn json_str<'a>(raw: &'a [u8], ctx: &'static str) -> Result<&'a str> {
    let s = utf8(raw, ctx)?;
    check(raw)
        .map_err(|at| DecodeError::new(at, ErrorKind::InvalidValue("not valid JSON"), ctx))?;
    Ok(s)
}

/// Ok if `s` is exactly one JSON value (with optional surrounding whitespace), else the
/// offset of the first byte that cannot continue one.
pub(crate) fn check(s: &[u8]) -> std::result::Result<(), usize> {
    let mut p = Cursor { s, i: 0 };
    let mut open = Nesting::default();
    p.ws();
    loop {
        // A value starts at p.i.
        match p.peek() {
            Some(b'{') => {
                p.i += 1;
                p.ws();
                if !p.eat(b'}') {
                    open.push(true);
                    p.key()?;
                    continue;
                }
            }
            Some(b'[') => {
                p.i += 1;
                p.ws();
                if !p.eat(b']') {
                    open.push(false);
                    continue;
                }
            }
            Some(b'"') => p.string()?,
            Some(b't') => p.literal(b"true")?,
            Some(b'f') => p.literal(b"false")?,
            Some(b'n') => p.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => p.number()?,
            _ => return Err(p.i),
        }
        // After a value: close what it ends, until the next element starts.
        loop {
            p.ws();
            let Some(object) = open.top() else {
                return if p.i == s.len() { Ok(()) } else { Err(p.i) };
            };
            match p.peek() {
                Some(b',') => {
                    p.i += 1;
                    p.ws();
                    if object {
                        p.key()?;
                    }
                    break;
                }
                Some(b'}') if object => open.pop(),
                Some(b']') if !object => open.pop(),
                _ => return Err(p.i),
            }
            p.i += 1;
        }
    }
}

/// Which containers are open: a bit per level (set for an object), the first 64 inline.
#[derive(Default)]
struct Nesting {
    depth: usize,
    low: u64,
    deep: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            self.low = self.low & !(1 << self.depth) | u64::from(object) << self.depth;
        } else {
            self.deep.push(object);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.deep.pop();
        }
    }

    fn top(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            d @ 1..=64 => Some(self.low >> (d - 1) & 1 == 1),
            _ => self.deep.last().copied(),
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

type Step = std::result::Result<(), usize>;

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// An object member's key and its colon, and the whitespace before its value.
    fn key(&mut self) -> Step {
        if self.peek() != Some(b'"') {
            return Err(self.i);
        }
        self.string()?;
        self.ws();
        if !self.eat(b':') {
            return Err(self.i);
        }
        self.ws();
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        for &b in word {
            if !self.eat(b) {
                return Err(self.i);
            }
        }
        Ok(())
    }

    /// A string, from its opening quote. The bytes are valid UTF-8 already (`json_str`).
    fn string(&mut self) -> Step {
        self.i += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                                    return Err(self.i);
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.i),
                    }
                }
                // Control characters must be escaped; the end of input ends no string.
                Some(0..=0x1F) | None => return Err(self.i),
                Some(_) => self.i += 1,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Step {
        self.eat(b'-');
        if !self.eat(b'0') {
            self.digits()?;
        }
        if self.eat(b'.') {
            self.digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.digits()?;
        }
        Ok(())
    }

    /// One or more digits.
    fn digits(&mut self) -> Step {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            Err(self.i)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use proptest::prelude::*;

    /// serde_json decides, except that it rejects a lone surrogate escape, which json keeps.
    fn reference(s: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(s).is_ok()
    }

    #[test]
    fn accepts_what_postgresql_prints_and_rejects_the_rest() {
        for ok in [
            "0",
            "-0",
            "1.5e-3",
            "-12E+4",
            "true",
            "false",
            "null",
            r#""""#,
            r#""a\"\\\/\b\f\n\r\tz""#,
            r#""\u00e9\uD83D\uDE00""#,
            r#""\ud800""#,
            "[]",
            "{}",
            " [1, [2, {}], {\"a\": [null]}] ",
            r#"{"a": 1, "b": {"c": "d"}, "e": []}"#,
            "\t\r\n[\n1\n]\n",
            "\"é😀\"",
        ] {
            assert_eq!(check(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, at) in [
            ("", 0),
            (" ", 1),
            ("01", 1),
            ("1.", 2),
            (".5", 0),
            ("-", 1),
            ("1e", 2),
            ("+1", 0),
            ("tru", 3),
            ("nul", 3),
            ("[1,]", 3),
            ("[1 2]", 3),
            ("{\"a\"}", 4),
            ("{\"a\":}", 5),
            ("{1: 2}", 1),
            ("{\"a\": 1,}", 8),
            ("[", 1),
            ("[[]", 3),
            ("]", 0),
            ("{]", 1),
            ("[}", 1),
            ("\"abc", 4),
            ("\"\\x\"", 2),
            ("\"\\u12G4\"", 5),
            ("\"a\nb\"", 2),
            ("1 2", 2),
            ("[1]]", 3),
            ("NaN", 0),
            ("\u{a0}1", 0),
        ] {
            assert_eq!(check(bad.as_bytes()), Err(at), "{bad:?}");
        }
    }

    #[test]
    fn a_json_column_that_is_not_json_is_a_typed_error_at_its_offset() {
        use crate::value::{decode_binary, decode_text, oid};
        use crate::ErrorKind;
        for (oid, raw, at) in [(oid::JSON, &b"{\"a\": }"[..], 6), (oid::JSONB, b"[1, 2", 5)] {
            let e = decode_text(oid, raw).unwrap_err();
            assert_eq!(
                (e.offset, e.kind),
                (at, ErrorKind::InvalidValue("not valid JSON"))
            );
        }
        // Binary jsonb: a version byte, then the text (offsets count the version byte).
        let e = decode_binary(oid::JSONB, b"\x01{\"a\" 1}").unwrap_err();
        assert_eq!(
            (e.offset, e.kind),
            (6, ErrorKind::InvalidValue("not valid JSON"))
        );
        assert!(decode_text(oid::JSON, br#"{"a": [1, "x"]}"#).is_ok());
    }

    #[test]
    fn nesting_of_any_depth_without_recursion() {
        for depth in [63, 64, 65, 200, 100_000] {
            let deep = format!("{}1{}", "[{\"k\":".repeat(depth), "}]".repeat(depth));
            assert_eq!(check(deep.as_bytes()), Ok(()), "depth {depth}");
            let unclosed = &deep[..deep.len() - 1];
            assert_eq!(
                check(unclosed.as_bytes()),
                Err(unclosed.len()),
                "depth {depth}"
            );
            // A mismatched closer deep inside.
            let mut wrong = deep.clone().into_bytes();
            wrong[deep.len() - 2 * (depth / 2) - 2] = b']';
            assert!(check(&wrong).is_err(), "depth {depth}");
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "\\PC{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn agrees_with_serde_json_on_values_and_their_mutations(
            v in json_value(), pretty in any::<bool>(), at in any::<prop::sample::Index>(),
            byte in prop::sample::select(&b"{}[]:,\"\\ 0-1.eE+tfnu\n"[..]), op in 0..3u8,
        ) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
            let text = text.unwrap().into_bytes();
            prop_assert_eq!(check(&text), Ok(()));
            let mut m = text.clone();
            let i = at.index(m.len() + 1);
            match op {
                0 => m.insert(i, byte),
                1 if i < m.len() => { m.remove(i); }
                _ if i < m.len() => m[i] = byte,
                _ => m.push(byte),
            }
            // Only where the mutation leaves UTF-8 (the caller checks that first) and no escape
            // of a lone surrogate (serde_json alone refuses those).
            if std::str::from_utf8(&m).is_ok() && !String::from_utf8_lossy(&m).contains("\\u") {
                prop_assert_eq!(check(&m).is_ok(), reference(&m), "{}", String::from_utf8_lossy(&m));
            }
        }
    }
}
