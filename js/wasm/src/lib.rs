//! walcast-wasm: the WASM side of the `walcast` npm package.
//!
//! It exposes one class, `Core`, whose calls each take a whole chunk (frames from the relay, or
//! packed raw pgoutput messages), decode it with walcast-decoder, and leave the result in flat
//! buffers (js/FLAT.md) that the package's JS reads in place. That keeps the WASM boundary at one
//! crossing per chunk instead of one per field, which is what makes decoding in JS fast.
//! Nothing here is public API: the JS package is.

// talc instead of std's dlmalloc: ~2.4 KB smaller gzipped, as fast on the decode (Cargo.toml).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

mod engine;
mod flat;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "msgpack")]
mod msgpack;

use walcast_decoder::{DecodeError, ErrorKind};
use wasm_bindgen::prelude::*;

/// Status codes returned by the decode calls.
const OK: u32 = 0;
const ERR: u32 = 1;

/// The largest input buffer kept for the next call; a bigger one is freed after use.
const KEPT_INPUT_CAPACITY: usize = 1 << 20;

#[wasm_bindgen]
pub struct Core {
    engine: engine::Engine,
    /// Remembers which relations the MessagePack output has described (stateful, like the stream).
    #[cfg(feature = "msgpack")]
    msgpack: msgpack::Encoder,
    /// The last error, read by JS through `error_*` (js/src/errors.js formats the message).
    error: Option<DecodeError>,
    /// Which message of a packed batch the last error is in (its offset counts from that
    /// message's first byte, as when the message is decoded alone).
    error_message: Option<u32>,
    /// words ptr, words len, nums ptr, nums len, text ptr, text len, blob ptr, blob len, events.
    meta: Box<[u32; 9]>,
    /// The bytes of the next call: JS writes a chunk (or its packed messages) straight into WASM
    /// memory here (`input_ptr`), so no call allocates, copies and frees an argument, and packed
    /// messages need no JS buffer of their own.
    input: Vec<u8>,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits `u32be length | message` records; a record running past the end is an error (at its
/// offset in the batch: only a packing bug in js/src/core.js can cause one).
fn packed(mut rest: &[u8]) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut base = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 4 {
            rest = &[];
            return Some(Err(bad_packing(base)));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() - 4 < len {
            rest = &[];
            return Some(Err(bad_packing(base)));
        }
        let msg = &rest[4..4 + len];
        rest = &rest[4 + len..];
        base += 4 + len;
        Some(Ok(msg))
    })
}

fn bad_packing(offset: usize) -> DecodeError {
    DecodeError::new(
        offset,
        walcast_decoder::ErrorKind::InvalidValue("packed message length"),
        "walcast-wasm packing",
    )
}

#[wasm_bindgen]
impl Core {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Core {
        Core {
            engine: engine::Engine::default(),
            #[cfg(feature = "msgpack")]
            msgpack: msgpack::Encoder::default(),
            error: None,
            error_message: None,
            meta: Box::new([0; 9]),
            input: Vec::new(),
        }
    }

    /// Makes room for `len` bytes of input and returns where JS writes them. Valid until the
    /// next call on this Core (which may grow the memory).
    pub fn input_ptr(&mut self, len: u32) -> u32 {
        self.input.resize(len as usize, 0);
        self.input.as_mut_ptr() as usize as u32
    }

    /// Runs `f` on the first `len` bytes of input (at most what `input_ptr` made room for).
    fn with_input<T>(&mut self, len: u32, f: impl FnOnce(&mut Self, &[u8]) -> T) -> T {
        let input = std::mem::take(&mut self.input);
        let out = f(self, &input[..(len as usize).min(input.len())]);
        if input.capacity() <= KEPT_INPUT_CAPACITY {
            self.input = input;
        }
        out
    }

    /// Where the 9-word result descriptor lives in WASM memory (stable for this Core's life).
    pub fn meta_ptr(&self) -> u32 {
        self.meta.as_ptr() as usize as u32
    }

    /// Decodes every complete frame of the input's `len` bytes (a piece of a walcast frame
    /// stream).
    pub fn push_frames(&mut self, len: u32) -> u32 {
        self.with_input(len, |core, chunk| {
            core.engine.out.clear();
            core.error_message = None;
            let r = core.engine.frames(chunk);
            core.finish(r)
        })
    }

    /// Decodes raw pgoutput messages, the input's `len` bytes packed as `u32be length |
    /// message` repeated.
    pub fn push_messages(&mut self, len: u32) -> u32 {
        self.with_input(len, |core, data| {
            core.engine.out.clear();
            let mut r = Ok(());
            for (i, item) in packed(data).enumerate() {
                r = item.and_then(|msg| core.engine.message(msg));
                if r.is_err() {
                    core.error_message = Some(i as u32);
                    break;
                }
            }
            core.finish(r)
        })
    }

    #[cfg(feature = "jsonl")]
    /// The native JSON lines contract for packed raw messages (conformance and debugging).
    /// `None` on error (then `error_*` describe it).
    pub fn messages_to_jsonl(&mut self, len: u32) -> Option<String> {
        self.with_input(len, |core, data| {
            let mut out = String::new();
            for (i, item) in packed(data).enumerate() {
                let r = item.and_then(|msg| core.engine.message_jsonl(msg, &mut out));
                core.error_message = Some(i as u32);
                core.fail(r)?;
            }
            Some(out)
        })
    }

    #[cfg(feature = "msgpack")]
    /// The native MessagePack form of packed raw messages, one record per event.
    /// `None` on error (then `error_*` describe it).
    pub fn messages_to_msgpack(&mut self, len: u32) -> Option<Vec<u8>> {
        self.with_input(len, |core, data| {
            let mut out = Vec::new();
            for (i, item) in packed(data).enumerate() {
                let r = item.and_then(|msg| {
                    core.engine
                        .message_msgpack(msg, None, &mut core.msgpack, &mut out)
                });
                core.error_message = Some(i as u32);
                core.fail(r)?;
            }
            Some(out)
        })
    }

    #[cfg(feature = "msgpack")]
    /// The native MessagePack form of a chunk of a frame stream (WAL frames only).
    /// `None` on error (then `error_*` describe it).
    pub fn frames_to_msgpack(&mut self, len: u32) -> Option<Vec<u8>> {
        self.with_input(len, |core, chunk| {
            core.error_message = None;
            let mut out = Vec::new();
            let r = core
                .engine
                .frames_msgpack(chunk, &mut core.msgpack, &mut out);
            core.fail(r)?;
            Some(out)
        })
    }

    /// The next bytes pushed start a new frame stream (after a reconnect).
    pub fn new_stream(&mut self) {
        self.engine.new_stream();
    }

    /// The last error as numbers: kind code (see `kind_code`), byte offset, the kind's numeric
    /// fields (up to three; an i64 as two words hi, lo), and the index of the packed message it
    /// is in (`u32::MAX` for a frame stream). JS builds the message from these
    /// and `error_text`, so the .wasm links no Display formatting.
    pub fn error_nums(&self) -> Vec<u32> {
        let Some(e) = &self.error else {
            return Vec::new();
        };
        let (code, a, b, c) = kind_code(&e.kind);
        let message = self.error_message.unwrap_or(u32::MAX);
        vec![code, e.offset as u32, a, b, c, message]
    }

    /// The last error's strings: its context and the kind's text field, joined by a NUL.
    pub fn error_text(&self) -> String {
        let Some(e) = &self.error else {
            return String::new();
        };
        let text = match e.kind {
            ErrorKind::Unexpected { expected: t, .. }
            | ErrorKind::InvalidValue(t)
            | ErrorKind::OutOfPlace(t) => t,
            _ => "",
        };
        [e.context, "\0", text].concat()
    }

    /// Keeps the error of `r` for `error_*`; `None` if there was one.
    fn fail(&mut self, r: Result<(), DecodeError>) -> Option<()> {
        r.map_err(|e| self.error = Some(e)).ok()
    }

    fn finish(&mut self, r: Result<(), DecodeError>) -> u32 {
        let out = &self.engine.out;
        *self.meta = [
            out.words.as_ptr() as usize as u32,
            out.words.len() as u32,
            out.nums.as_ptr() as usize as u32,
            out.nums.len() as u32,
            out.text.as_ptr() as usize as u32,
            out.text.len() as u32,
            out.blob.as_ptr() as usize as u32,
            out.blob.len() as u32,
            out.events,
        ];
        match self.fail(r) {
            Some(()) => OK,
            None => ERR,
        }
    }
}

/// For Rust callers (tests, examples), which cannot write through `input_ptr`.
impl Core {
    /// Copies `bytes` into the input and returns their length, for the decode calls.
    pub fn set_input(&mut self, bytes: &[u8]) -> u32 {
        self.input.clear();
        self.input.extend_from_slice(bytes);
        bytes.len() as u32
    }
}

/// An error kind as a code (its position in `ErrorKind`, mirrored by js/src/errors.js) and its
/// numeric fields. A kind newer than this crate knows is code 0 (JS prints it generically).
fn kind_code(k: &ErrorKind) -> (u32, u32, u32, u32) {
    let n = |v: usize| v as u32;
    match *k {
        ErrorKind::Truncated { needed } => (1, n(needed), 0, 0),
        ErrorKind::UnknownMessageTag(c) => (2, u32::from(c), 0, 0),
        ErrorKind::UnknownColumnKind(c) => (3, u32::from(c), 0, 0),
        ErrorKind::Unexpected { found, .. } => (4, u32::from(found), 0, 0),
        ErrorKind::UnterminatedString => (5, 0, 0, 0),
        ErrorKind::InvalidUtf8 => (6, 0, 0, 0),
        ErrorKind::BadLength(v) => (7, (v >> 32) as u32, v as u32, 0),
        ErrorKind::TrailingBytes(v) => (8, n(v), 0, 0),
        ErrorKind::UnknownRelation(id) => (9, id, 0, 0),
        ErrorKind::ColumnCountMismatch {
            relation,
            expected,
            found,
        } => (10, relation, n(expected), n(found)),
        ErrorKind::InvalidValue(_) => (11, 0, 0, 0),
        ErrorKind::BadChecksum => (12, 0, 0, 0),
        ErrorKind::UnsupportedVersion(v) => (13, u32::from(v), 0, 0),
        ErrorKind::OutOfPlace(_) => (14, 0, 0, 0),
        _ => (0, 0, 0, 0),
    }
}
