//! `walcast decode`: turns what
//! `psql -At -c "SELECT data FROM pg_logical_slot_peek_binary_changes('slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')"`
//! prints (one `\x…` hex bytea per line, in order) into JSON lines, one per pgoutput message,
//! in the decoder's output format v1 (docs/output.md).
//!
//! All lines go through ONE decoder, so Relation/Type descriptions and stream-block state carry
//! over from line to line exactly as they do on a replication connection.

use std::io::{BufRead, Write};

use anyhow::{anyhow, Context};
use walcast_decoder::output::{jsonl::write_event, parse_bytea_hex};
use walcast_decoder::Decoder;

/// Decodes every non-empty line of `input` and writes one JSON line per message to `out`.
/// Returns the number of messages written. A bad line stops with an error naming the line
/// number (1-based) and the byte offset.
pub fn run(input: impl BufRead, mut out: impl Write) -> anyhow::Result<u64> {
    let mut decoder = Decoder::new();
    let mut json = String::new();
    let mut written = 0u64;
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line.with_context(|| format!("reading line {line_no}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let bytes = parse_bytea_hex(&line).map_err(|e| {
            anyhow!(
                "line {line_no}: not a hex bytea (character {}): {e}",
                e.offset
            )
        })?;
        let event = decoder.decode(&bytes).map_err(|e| {
            anyhow!(
                "line {line_no}: bad pgoutput message at byte {}: {e}",
                e.offset
            )
        })?;
        json.clear();
        write_event(&event, None, &mut json);
        json.push('\n');
        out.write_all(json.as_bytes()).context("writing output")?;
        written += 1;
    }
    out.flush().context("flushing output")?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lines_with_one_decoder_and_names_bad_lines() {
        // Stream Start (xid 7), Stream Stop; then a blank line; state must carry over.
        let input = "\\x530000000701\n\n\\x45\n";
        let mut out = Vec::new();
        assert_eq!(run(input.as_bytes(), &mut out).unwrap(), 2);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "{\"type\":\"stream_start\",\"xid\":7,\"first_segment\":true}\n{\"type\":\"stream_stop\"}\n");

        // A Stream Stop without a Stream Start is out of place: line 1, byte 0.
        let err = run("\\x45\n".as_bytes(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 1: bad pgoutput message at byte 0"),
            "{err}"
        );
        let err = run("\n\\x4g\n".as_bytes(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 2: not a hex bytea (character 3)"),
            "{err}"
        );
    }
}
