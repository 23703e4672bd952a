//! walcast-wasm: the WASM side of the `walcast` npm package.
//!
//! It exposes one class, `Core`, whose calls each take a whole chunk (frames from the relay, or
//! packed raw pgoutput messages), decode it with walcast-decoder, and leave the result in flat
//! buffers (js/FLAT.md) that the package's JS reads in place. That keeps the WASM boundary at one
//! crossing per chunk instead of one per field, which is what makes decoding in JS fast.
//! Nothing here is public API: the JS package is.

mod engine;
mod flat;
#[cfg(feature = "msgpack")]
mod msgpack;

use walcast_decoder::DecodeError;
use wasm_bindgen::prelude::*;

/// Status codes returned by the decode calls.
const OK: u32 = 0;
const ERR: u32 = 1;

#[wasm_bindgen]
pub struct Core {
    engine: engine::Engine,
    /// Remembers which relations the MessagePack output has described (stateful, like the stream).
    #[cfg(feature = "msgpack")]
    msgpack: msgpack::Encoder,
    error: String,
    /// words ptr, words len, nums ptr, nums len, text ptr, text len, blob ptr, blob len, events.
    meta: Box<[u32; 9]>,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits `u32be length | message` records; a record running past the end is an error.
fn packed(mut rest: &[u8]) -> impl Iterator<Item = Result<(usize, &[u8]), DecodeError>> {
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
        let at = base + 4;
        rest = &rest[4 + len..];
        base += 4 + len;
        Some(Ok((at, msg)))
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
            error: String::new(),
            meta: Box::new([0; 9]),
        }
    }

    /// Where the 9-word result descriptor lives in WASM memory (stable for this Core's life).
    pub fn meta_ptr(&self) -> u32 {
        self.meta.as_ptr() as usize as u32
    }

    /// Decodes every complete frame of `chunk` (a piece of a walcast frame stream).
    pub fn push_frames(&mut self, chunk: &[u8]) -> u32 {
        self.engine.out.clear();
        let r = self.engine.frames(chunk);
        self.finish(r)
    }

    /// Decodes raw pgoutput messages packed as `u32be length | message` repeated.
    pub fn push_messages(&mut self, data: &[u8]) -> u32 {
        self.engine.out.clear();
        let mut r = Ok(());
        for item in packed(data) {
            r = item.and_then(|(at, msg)| self.engine.message(msg).map_err(|e| e.shifted(at)));
            if r.is_err() {
                break;
            }
        }
        self.finish(r)
    }

    #[cfg(feature = "jsonl")]
    /// The native JSON lines contract for packed raw messages (conformance and debugging).
    pub fn messages_to_jsonl(&mut self, data: &[u8]) -> Result<String, String> {
        let mut out = String::new();
        for item in packed(data) {
            let (at, msg) = item.map_err(|e| e.to_string())?;
            self.engine
                .message_jsonl(msg, &mut out)
                .map_err(|e| e.shifted(at).to_string())?;
        }
        Ok(out)
    }

    #[cfg(feature = "msgpack")]
    /// The native MessagePack form of packed raw messages, one record per event.
    pub fn messages_to_msgpack(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for item in packed(data) {
            let (at, msg) = item.map_err(|e| e.to_string())?;
            self.engine
                .message_msgpack(msg, None, &mut self.msgpack, &mut out)
                .map_err(|e| e.shifted(at).to_string())?;
        }
        Ok(out)
    }

    #[cfg(feature = "msgpack")]
    /// The native MessagePack form of a chunk of a frame stream (WAL frames only).
    pub fn frames_to_msgpack(&mut self, chunk: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.engine
            .frames_msgpack(chunk, &mut self.msgpack, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The next bytes pushed start a new frame stream (after a reconnect).
    pub fn new_stream(&mut self) {
        self.engine.new_stream();
    }

    /// Text of the last error.
    pub fn error(&self) -> String {
        self.error.clone()
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
        match r {
            Ok(()) => OK,
            Err(e) => {
                self.error = e.to_string();
                ERR
            }
        }
    }
}
