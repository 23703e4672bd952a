//! The thin integration layer between the decoder and the flat buffers.
//!
//! INTEGRATION POINT: while `walcast_decoder::Decoder` and `walcast_decoder::frame` were being
//! written, this layer drove the stand-in `shim` parser and the local `frames` reader. Once they
//! land, replace `Shim` with `walcast_decoder::Decoder` and map each `Event` to the same `Flat`
//! calls `shim` makes (the layout in js/FLAT.md does not change), and `value_json` with
//! `walcast_decoder::value::json::write_value`.

use crate::flat::{ev, Flat};
use crate::frames::{FrameReader, MAGIC};
use crate::shim::Shim;
use walcast_decoder::Value;

#[derive(Default)]
pub struct Engine {
    pub frames: FrameReader,
    shim: Shim,
    pub out: Flat,
    /// Set after an 'e' frame: the stream is over, later bytes are ignored.
    ended: bool,
}

pub enum Failure {
    Frame(String),
    Message { offset: usize, what: &'static str },
}

impl Engine {
    /// Decodes one raw pgoutput message into `out`.
    pub fn message(&mut self, msg: &[u8]) -> Result<(), Failure> {
        self.shim.message(msg, &mut self.out).map_err(|e| Failure::Message {
            offset: e.1,
            what: e.0,
        })
    }

    /// Feeds one chunk of a walcast frame stream and decodes every complete frame in it.
    pub fn frames(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        if self.ended {
            return Ok(());
        }
        self.frames.push(chunk);
        loop {
            let frame = match self.frames.next() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Failure::Frame(e.message())),
            };
            match frame.kind {
                b'w' => {
                    let r = self.shim.message(frame.payload, &mut self.out);
                    if let Err(e) = r {
                        return Err(Failure::Message {
                            offset: e.1,
                            what: e.0,
                        });
                    }
                }
                b'k' => {
                    self.out.event(ev::HEARTBEAT);
                    self.out.lsn(frame.lsn);
                }
                b'x' => {
                    self.shim.reset();
                    self.out.event(ev::RESET);
                }
                b'e' => {
                    // {"code","message"}: JS parses the JSON; keep the bytes verbatim.
                    let text = String::from_utf8_lossy(frame.payload).into_owned();
                    self.out.event(ev::END);
                    self.out.str(&text);
                    self.ended = true;
                    return Ok(());
                }
                _ => {} // Unknown kinds are skipped: newer relays may add some.
            }
        }
    }

    /// A new connection: its stream starts with the magic again.
    pub fn new_stream(&mut self) {
        self.frames.reset();
        self.shim.reset();
        self.ended = false;
    }
}

/// Exotic values (arrays, intervals, inet, ...) in the native JSON contract.
/// INTEGRATION: becomes `walcast_decoder::value::json::write_value(v, out)`.
pub fn value_json(v: &Value<'_>, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match v {
        Value::UnknownBinary { bytes, .. } | Value::Bytea(bytes) => {
            out.push_str("\"\\\\x");
            for b in bytes.iter() {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
            out.push('"');
        }
        Value::UnknownText { text, .. } => json_string(text, out),
        _ => out.push_str("null"),
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(char::from(b"0123456789abcdef"[(c as usize) >> 4]));
                out.push(char::from(b"0123456789abcdef"[(c as usize) & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[allow(dead_code)]
const _: &[u8; 8] = MAGIC;
