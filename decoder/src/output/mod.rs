//! Output forms of decoded events: JSON lines ([`jsonl`]) and compact MessagePack ([`msgpack`]),
//! both "output format v1" as documented in `docs/output.md`.

pub mod jsonl;
pub mod msgpack;

use crate::{DecodeError, ErrorKind, Result};

/// The output format version documented in `docs/output.md`.
pub const OUTPUT_FORMAT_VERSION: u32 = 1;

/// Parses one line as `psql -At` prints a `bytea` in hex output: `\x` then hex digit pairs
/// (surrounding whitespace ignored). Error offsets count characters of the trimmed line.
pub fn parse_bytea_hex(line: &str) -> Result<Vec<u8>> {
    let s = line.trim().as_bytes();
    let Some(hex) = s.strip_prefix(b"\\x") else {
        let found = s.first().copied().unwrap_or(0);
        return Err(DecodeError::new(
            0,
            ErrorKind::Unexpected {
                found,
                expected: "\\x (hex bytea)",
            },
            "bytea hex",
        ));
    };
    if hex.len() % 2 != 0 {
        return Err(DecodeError::new(
            s.len(),
            ErrorKind::Truncated { needed: 1 },
            "bytea hex",
        ));
    }
    let digit = |pos: usize| -> Result<u8> {
        let c = hex[pos];
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(DecodeError::new(
                pos + 2,
                ErrorKind::Unexpected {
                    found: c,
                    expected: "hex digit",
                },
                "bytea hex",
            )),
        }
    };
    let mut out = Vec::with_capacity(hex.len() / 2);
    for i in (0..hex.len()).step_by(2) {
        out.push(digit(i)? << 4 | digit(i + 1)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_hex_lines() {
        assert_eq!(parse_bytea_hex("\\x42ff00\n").unwrap(), vec![0x42, 0xff, 0]);
        assert_eq!(parse_bytea_hex("\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_bytea_hex("42").unwrap_err().offset, 0);
        assert_eq!(
            parse_bytea_hex("\\x4").unwrap_err().kind,
            ErrorKind::Truncated { needed: 1 }
        );
        let e = parse_bytea_hex("\\x4g").unwrap_err();
        assert_eq!(
            (e.offset, e.kind),
            (
                3,
                ErrorKind::Unexpected {
                    found: b'g',
                    expected: "hex digit"
                }
            )
        );
    }
}
