//! walcast-wasm: the WASM side of the `walcast` npm package.
//!
//! It exposes one class, `Core`, whose calls each take a whole chunk (frames from the relay, or
//! packed raw pgoutput messages), decode it with walcast-decoder, and leave the result in flat
//! buffers (js/FLAT.md) that the package's JS reads in place. That keeps the WASM boundary at one
//! crossing per chunk instead of one per field, which is what makes decoding in JS fast.
//! Nothing here is public API: the JS package is.

mod engine;
mod flat;
mod frames;
mod shim;

use wasm_bindgen::prelude::*;

/// Status codes returned by the decode calls.
const OK: u32 = 0;
const ERR_FRAME: u32 = 1;
const ERR_MESSAGE: u32 = 2;

#[wasm_bindgen]
pub struct Core {
    engine: engine::Engine,
    error: String,
    /// words ptr, words len, nums ptr, nums len, text ptr, text len, blob ptr, blob len, events.
    meta: Box<[u32; 9]>,
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Core {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Core {
        Core {
            engine: engine::Engine::default(),
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
    pub fn push_messages(&mut self, packed: &[u8]) -> u32 {
        self.engine.out.clear();
        let mut rest = packed;
        let mut base = 0usize;
        let mut r = Ok(());
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() - 4 < len {
                r = Err(engine::Failure::Frame("packed message length out of range".into()));
                break;
            }
            if let Err(e) = self.engine.message(&rest[4..4 + len]) {
                r = Err(match e {
                    engine::Failure::Message { offset, what } => engine::Failure::Message {
                        offset: offset + base + 4,
                        what,
                    },
                    f => f,
                });
                break;
            }
            base += 4 + len;
            rest = &rest[4 + len..];
        }
        self.finish(r)
    }

    /// The next bytes pushed start a new frame stream (after a reconnect).
    pub fn new_stream(&mut self) {
        self.engine.new_stream();
    }

    /// Text of the last error.
    pub fn error(&self) -> String {
        self.error.clone()
    }

    fn finish(&mut self, r: Result<(), engine::Failure>) -> u32 {
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
            Err(engine::Failure::Frame(m)) => {
                self.error = m;
                ERR_FRAME
            }
            Err(engine::Failure::Message { offset, what }) => {
                let mut m = String::from(what);
                m.push_str(" at byte ");
                frames::push_u64(&mut m, offset as u64);
                self.error = m;
                ERR_MESSAGE
            }
        }
    }
}
