//! The client side of stream compression: turns the bytes a relay sends into the plain frame
//! stream, whatever compression the relay chose. Pure and bounded: it hands out at most
//! [`STEP`] decompressed bytes at a time, so a small compressed chunk that expands a lot (zstd
//! can reach ratios in the thousands) never becomes one huge allocation.

use bytes::Bytes;
use std::io;
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::DParameter;

/// Most decompressed bytes handed out per step.
pub const STEP: usize = 256 * 1024;
/// Largest zstd window accepted: 8 MiB, what RFC 8878 lets HTTP decoders require at most.
/// The relay uses 128 KiB (`serve::compress::ZSTD_WINDOW_LOG`).
pub const MAX_WINDOW_LOG: u32 = 23;

/// zstd's frame magic, little-endian 0xFD2FB528.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Which encoding the stream turned out to have, told by its first bytes.
enum Mode {
    /// Fewer than 4 bytes seen so far.
    Sniffing(Vec<u8>),
    Plain,
    Zstd(Box<Decoder<'static>>),
}

/// Decodes one stream. Feed it chunks in order with [`push`](Self::push) whenever
/// [`pending`](Self::pending) is false; take the plain bytes with [`step`](Self::step).
pub struct Inflater {
    mode: Mode,
    input: Bytes,
    pos: usize,
    /// The last step filled its output: the decoder may hold more for the same input.
    more: bool,
    out: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            mode: Mode::Sniffing(Vec::new()),
            input: Bytes::new(),
            pos: 0,
            more: false,
            out: Vec::new(),
        }
    }

    /// Whether the stream is zstd-compressed (`None` until 4 bytes arrived).
    pub fn is_compressed(&self) -> Option<bool> {
        match self.mode {
            Mode::Sniffing(_) => None,
            Mode::Plain => Some(false),
            Mode::Zstd(_) => Some(true),
        }
    }

    /// Whether bytes from an earlier [`push`](Self::push) are still to be stepped through.
    pub fn pending(&self) -> bool {
        self.pos < self.input.len() || self.more
    }

    /// Adds the next chunk received. Call only when nothing is [`pending`](Self::pending).
    pub fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        debug_assert!(!self.pending());
        if let Mode::Sniffing(seen) = &mut self.mode {
            seen.extend_from_slice(&chunk);
            if seen.len() < ZSTD_MAGIC.len() {
                return Ok(());
            }
            let seen = std::mem::take(seen);
            self.mode = if seen[..4] == ZSTD_MAGIC {
                let mut d = Decoder::new()?;
                d.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))?;
                Mode::Zstd(Box::new(d))
            } else {
                Mode::Plain
            };
            self.input = Bytes::from(seen);
        } else {
            self.input = chunk;
        }
        self.pos = 0;
        Ok(())
    }

    /// The next plain bytes (at most [`STEP`]); empty when everything pushed was consumed.
    pub fn step(&mut self) -> io::Result<&[u8]> {
        match &mut self.mode {
            Mode::Sniffing(_) => Ok(&[]),
            Mode::Plain => {
                let end = self.input.len().min(self.pos + STEP);
                let s = &self.input[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            Mode::Zstd(dec) => {
                self.out.clear();
                self.out.reserve(STEP);
                let mut input = InBuffer::around(&self.input[self.pos..]);
                let mut ob = OutBuffer::around_pos(&mut self.out, 0);
                dec.run(&mut input, &mut ob)?;
                let written = ob.pos();
                let full = written == ob.capacity();
                self.pos += input.pos();
                self.more = full;
                Ok(&self.out[..written])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::compress::StreamEncoder;
    use crate::serve::request::Compression;
    use proptest::prelude::*;

    fn drain(inf: &mut Inflater, chunk: Bytes, out: &mut Vec<u8>) {
        inf.push(chunk).unwrap();
        while inf.pending() {
            let s = inf.step().unwrap();
            assert!(s.len() <= STEP);
            out.extend_from_slice(s);
        }
    }

    proptest! {
        /// Whatever the chunking on either side, the client gets back exactly the plain stream.
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000),
                      cuts in proptest::collection::vec(0usize..20_000, 0..8),
                      recut in 1usize..5000,
                      zstd in any::<bool>()) {
            let mut plain = b"WALCAST\0\0\x01\0\0".to_vec();
            plain.extend_from_slice(&data);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (plain.len() + 1)).collect();
            cuts.sort();
            let compression = if zstd { Compression::Zstd } else { Compression::None };
            let mut enc = StreamEncoder::new(compression).unwrap();
            let mut wire = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([plain.len()]) {
                wire.extend(enc.encode(&plain[prev..c], false).unwrap());
                prev = c;
            }
            let mut inf = Inflater::new();
            let mut out = Vec::new();
            for piece in wire.chunks(recut) {
                drain(&mut inf, Bytes::copy_from_slice(piece), &mut out);
            }
            prop_assert_eq!(inf.is_compressed(), Some(zstd));
            prop_assert_eq!(out, plain);
        }
    }

    #[test]
    fn a_bomb_comes_out_in_bounded_steps() {
        let big = vec![0u8; 16 << 20];
        let z = zstd::stream::encode_all(&big[..], 3).unwrap();
        assert!(z.len() < 4096);
        let mut inf = Inflater::new();
        inf.push(Bytes::from(z)).unwrap();
        let mut total = 0;
        while inf.pending() {
            let n = inf.step().unwrap().len();
            assert!(n <= STEP);
            total += n;
        }
        assert_eq!(total, big.len());
    }

    #[test]
    fn garbage_after_the_magic_is_an_error() {
        let mut inf = Inflater::new();
        let mut bad = ZSTD_MAGIC.to_vec();
        bad.extend_from_slice(&[0xff; 64]);
        inf.push(Bytes::from(bad)).unwrap();
        let mut failed = false;
        while inf.pending() {
            if inf.step().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
