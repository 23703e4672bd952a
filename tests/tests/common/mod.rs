//! The decoder, driven the way every client drives it: one pgoutput message per call, each event
//! printed as one JSON line.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use walcast_decoder::decoder::Decoder;
use walcast_decoder::output::jsonl::write_event;
use walcast_decoder::Lsn;

/// Decodes `msgs` (optionally with the LSN PostgreSQL reported for each) into JSON lines.
/// A decode error names the message index and shows its bytes.
pub fn decode_to_lines<'m>(
    msgs: impl IntoIterator<Item = (Option<Lsn>, &'m [u8])>,
) -> Result<Vec<String>, String> {
    let mut decoder = Decoder::new();
    let mut lines = Vec::new();
    for (i, (lsn, bytes)) in msgs.into_iter().enumerate() {
        let event = decoder.decode(bytes).map_err(|e| {
            let shown: String = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
            format!("message #{i} (\\x{shown}…): {e}")
        })?;
        let mut line = String::new();
        write_event(&event, lsn, &mut line);
        let line = line.trim_end_matches('\n');
        if line.contains('\n') {
            return Err(format!(
                "message #{i}: write_event produced more than one line: {line}"
            ));
        }
        lines.push(line.to_owned());
    }
    Ok(lines)
}

/// The first line where two decodings differ, for assertion messages.
pub fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        return Some(format!("line {i}:\n  {}\n  {}", a[i], b[i]));
    }
    (a.len() != b.len()).then(|| format!("{} lines vs {} lines", a.len(), b.len()))
}
