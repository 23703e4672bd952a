//! The flat output buffers that JS reads after each call (layout: js/FLAT.md).
//!
//! One call decodes a whole chunk and appends every event here; JS then crosses the WASM
//! boundary once to learn where the four buffers are and builds objects from them itself.
//! Per-field crossings (Reflect::set, serde-wasm-bindgen) were measured 5× slower.

use walcast_decoder::Value;

/// Event tags (first word of each event in `words`).
pub mod ev {
    pub const BEGIN: u32 = 1;
    pub const COMMIT: u32 = 2;
    pub const RELATION: u32 = 3;
    pub const INSERT: u32 = 4;
    pub const UPDATE: u32 = 5;
    pub const DELETE: u32 = 6;
    pub const TRUNCATE: u32 = 7;
    pub const MESSAGE: u32 = 8;
    pub const ORIGIN: u32 = 9;
    pub const TYPE: u32 = 10;
    pub const STREAM_START: u32 = 11;
    pub const STREAM_STOP: u32 = 12;
    pub const STREAM_COMMIT: u32 = 13;
    pub const STREAM_ABORT: u32 = 14;
    pub const BEGIN_PREPARE: u32 = 15;
    pub const PREPARE: u32 = 16;
    pub const STREAM_PREPARE: u32 = 17;
    pub const COMMIT_PREPARED: u32 = 18;
    pub const ROLLBACK_PREPARED: u32 = 19;
    pub const HEARTBEAT: u32 = 20;
    pub const RESET: u32 = 21;
    pub const END: u32 = 22;
    /// An event of a newer decoder that this layout does not describe (no payload).
    pub const UNKNOWN: u32 = 23;
}

/// Cell tags (first word of each column value inside a row event).
pub mod cell {
    pub const NULL: u32 = 0;
    pub const UNCHANGED_TOAST: u32 = 1;
    pub const NOT_IN_KEY: u32 = 2;
    pub const FALSE: u32 = 3;
    pub const TRUE: u32 = 4;
    pub const NUM: u32 = 5;
    pub const INT8: u32 = 6;
    pub const INT8_BIG: u32 = 7;
    pub const STR: u32 = 8;
    pub const NUMERIC: u32 = 9;
    pub const JSON: u32 = 10;
    pub const BYTES: u32 = 11;
    pub const DATE: u32 = 12;
    pub const TIMESTAMP: u32 = 13;
    pub const TIMESTAMPTZ: u32 = 14;
    /// Any other value, as the JSON text of the native JSON contract; JS parses it.
    pub const GENERIC: u32 = 15;
}

/// Largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE: i64 = (1 << 53) - 1;

#[derive(Default)]
pub struct Flat {
    pub words: Vec<u32>,
    pub nums: Vec<f64>,
    /// UTF-8 text of every string; JS decodes it once into one string.
    pub text: Vec<u8>,
    /// Length of `text` in UTF-16 code units: string refs are offsets into the JS string.
    text_utf16: u32,
    pub blob: Vec<u8>,
    /// Number of events written since the last `clear`.
    pub events: u32,
    scratch: String,
}

/// Lengths of the buffers at one point, to undo a partly written event.
#[derive(Clone, Copy)]
pub struct Mark {
    words: usize,
    nums: usize,
    text: usize,
    text_utf16: u32,
    blob: usize,
    events: u32,
}

impl Flat {
    pub fn mark(&self) -> Mark {
        Mark {
            words: self.words.len(),
            nums: self.nums.len(),
            text: self.text.len(),
            text_utf16: self.text_utf16,
            blob: self.blob.len(),
            events: self.events,
        }
    }

    /// Drops everything written since `m`.
    pub fn rollback(&mut self, m: Mark) {
        self.words.truncate(m.words);
        self.nums.truncate(m.nums);
        self.text.truncate(m.text);
        self.text_utf16 = m.text_utf16;
        self.blob.truncate(m.blob);
        self.events = m.events;
    }

    pub fn clear(&mut self) {
        self.words.clear();
        self.nums.clear();
        self.text.clear();
        self.text_utf16 = 0;
        self.blob.clear();
        self.events = 0;
    }

    pub fn event(&mut self, tag: u32) {
        self.events += 1;
        self.words.push(tag);
    }

    pub fn word(&mut self, w: u32) {
        self.words.push(w);
    }

    pub fn lsn(&mut self, lsn: u64) {
        self.words.push((lsn >> 32) as u32);
        self.words.push(lsn as u32);
    }

    /// A timestamp in microseconds as two exact numbers: whole seconds and microseconds
    /// (0..1e6). One f64 of microseconds would round beyond ±285 years from 2000.
    pub fn micros(&mut self, t: i64) {
        // One division (in WASM a slow instruction), the floor by hand.
        let (mut secs, mut us) = (t / 1_000_000, t % 1_000_000);
        if us < 0 {
            secs -= 1;
            us += 1_000_000;
        }
        self.nums.push(secs as f64);
        self.nums.push(us as f64);
    }

    /// Appends a string ref: two words, start and end in UTF-16 units of the chunk's string.
    pub fn str(&mut self, s: &str) {
        let start = self.text_utf16;
        let units = if s.is_ascii() {
            s.len()
        } else {
            s.encode_utf16().count()
        };
        self.text.extend_from_slice(s.as_bytes());
        self.text_utf16 = start.saturating_add(units as u32);
        self.words.push(start);
        self.words.push(self.text_utf16);
    }

    /// Appends a byte ref: two words, offset and length in `blob`.
    pub fn bytes(&mut self, b: &[u8]) {
        self.words.push(self.blob.len() as u32);
        self.words.push(b.len() as u32);
        self.blob.extend_from_slice(b);
    }

    pub fn cell_tag(&mut self, tag: u32) {
        self.words.push(tag);
    }

    /// Writes one column value. Common scalars get a typed fast path; the rest go through the
    /// native JSON contract so there is one definition of how exotic types look.
    pub fn value(&mut self, v: &Value<'_>) {
        match v {
            Value::Null => self.words.push(cell::NULL),
            Value::Bool(b) => self.words.push(if *b { cell::TRUE } else { cell::FALSE }),
            Value::Int2(n) => self.numeric_cell(f64::from(*n)),
            Value::Int4(n) => self.numeric_cell(f64::from(*n)),
            Value::Oid(n) => self.numeric_cell(f64::from(*n)),
            // A finite float4 goes through its shortest decimal text, so JS sees 0.1, not
            // 0.10000000149011612.
            Value::Float4(n) if !n.is_finite() => self.numeric_cell(f64::from(*n)),
            Value::Float8(n) => self.numeric_cell(*n),
            Value::Int8(n) => self.int8(*n),
            Value::Numeric(s) => {
                self.words.push(cell::NUMERIC);
                self.str(s);
            }
            Value::Text(s) | Value::Bit(s) => {
                self.words.push(cell::STR);
                self.str(s);
            }
            Value::Json(s) => {
                self.words.push(cell::JSON);
                self.str(s);
            }
            Value::Bytea(b) => {
                self.words.push(cell::BYTES);
                self.bytes(b);
            }
            Value::Uuid(u) => {
                self.words.push(cell::STR);
                let mut buf = [0u8; 36];
                uuid_text(u, &mut buf);
                // Hex digits and dashes only: always valid ASCII.
                self.str(std::str::from_utf8(&buf).unwrap_or_default());
            }
            Value::Date(d) if *d != i32::MAX && *d != i32::MIN => {
                self.words.push(cell::DATE);
                self.nums.push(f64::from(*d));
            }
            Value::Timestamp(t) if *t != i64::MAX && *t != i64::MIN => {
                self.words.push(cell::TIMESTAMP);
                self.micros(*t);
            }
            Value::TimestampTz(t) if *t != i64::MAX && *t != i64::MIN => {
                self.words.push(cell::TIMESTAMPTZ);
                self.micros(*t);
            }
            other => self.generic(other),
        }
    }

    fn numeric_cell(&mut self, n: f64) {
        self.words.push(cell::NUM);
        self.nums.push(n);
    }

    fn int8(&mut self, n: i64) {
        if (-MAX_SAFE..=MAX_SAFE).contains(&n) {
            self.words.push(cell::INT8);
            self.nums.push(n as f64);
        } else {
            self.words.push(cell::INT8_BIG);
            self.lsn(n as u64);
        }
    }

    fn generic(&mut self, v: &Value<'_>) {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        walcast_decoder::value::json::write_json(v, &mut s);
        self.words.push(cell::GENERIC);
        self.str(&s);
        self.scratch = s;
    }
}

pub(crate) fn uuid_text(u: &[u8; 16], out: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut j = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[usize::from(b >> 4)];
        out[j + 1] = HEX[usize::from(b & 15)];
        j += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn string_refs_count_utf16_units() {
        let mut f = Flat::default();
        f.str("ab");
        f.str("é😀");
        f.str("x");
        // "é" is 1 unit, "😀" is 2.
        assert_eq!(f.words, vec![0, 2, 2, 5, 5, 6]);
        assert_eq!(f.text, "abé😀x".as_bytes());
    }

    #[test]
    fn micros_split_into_floored_seconds_and_microseconds() {
        let mut f = Flat::default();
        for t in [1_500_000, 0, -1, -1_000_000, -1_000_001, i64::MIN, i64::MAX] {
            f.nums.clear();
            f.micros(t);
            let want = [
                t.div_euclid(1_000_000) as f64,
                t.rem_euclid(1_000_000) as f64,
            ];
            assert_eq!(f.nums, want, "{t}");
        }
    }

    #[test]
    fn int8_beyond_2_pow_53_is_split_in_words() {
        let mut f = Flat::default();
        f.value(&Value::Int8(42));
        f.value(&Value::Int8(i64::MIN));
        assert_eq!(f.words, vec![cell::INT8, cell::INT8_BIG, 0x8000_0000, 0]);
        assert_eq!(f.nums, vec![42.0]);
    }

    #[test]
    fn uuid_is_lowercase_dashed() {
        let mut f = Flat::default();
        let u = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        f.value(&Value::Uuid(u));
        assert_eq!(f.text, b"12345678-9abc-def0-0123-456789abcdef");
        f.value(&Value::Text(Cow::Borrowed("t")));
        assert_eq!(f.words[3], cell::STR);
    }
}
