//! Per-connection wire encoding: the frame version (v1 as stored, or v2/v3 re-encoded for
//! compression: `walcast_decoder::frame::v2`) and then stream compression (docs/frames.md,
//! "Compression", "Version 2", "Version 3").
//!
//! The compressed stream is one zstd frame that carries exactly the bytes of the plain stream
//! (header, then frames), so a client decompresses and then decodes as usual. The encoder
//! flushes a zstd block at the end of every chunk the session hands out. A caught-up client
//! gets a chunk per durable transaction boundary, so compression adds no waiting at low rates.
//! A client that is behind gets ~32 KiB chunks, so under load the blocks are large and
//! compress well. Pure: bytes in, bytes out.

use std::io;
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd::zstd_safe::{get_error_name, CCtx, CParameter, InBuffer, OutBuffer};

use super::request::Compression;
use walcast_decoder::frame::v2::Transcoder;

/// zstd level 1 with a 128 KiB window and a 32 Ki-entry hash table. Measured on the wire
/// benchmark's streams (BENCHMARKS.md, "wire"), this compresses walcast frames 2–11% *better*
/// than level 3 with a 1 MiB window (their redundancy is row to row, close by), costs less CPU,
/// and holds a fraction of the memory per compressed stream. The window stays far under the
/// 8 MiB that RFC 8878 lets HTTP decoders refuse.
pub const ZSTD_LEVEL: i32 = 1;
/// log2 of the window: 128 KiB.
pub const ZSTD_WINDOW_LOG: u32 = 17;
/// log2 of the match-finder's hash table entries.
pub const ZSTD_HASH_LOG: u32 = 15;

/// Encodes one client stream for the wire.
pub struct StreamEncoder {
    zstd: Option<CCtx<'static>>,
    /// Present when the client asked for frame version 2 or 3.
    v2: Option<Transcoder>,
    finished: bool,
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", get_error_name(code)))
}

impl StreamEncoder {
    pub fn new(compression: Compression) -> io::Result<StreamEncoder> {
        let zstd = match compression {
            Compression::None => None,
            Compression::Zstd => {
                let mut c = CCtx::try_create()
                    .ok_or_else(|| io::Error::other("zstd: cannot allocate a context"))?;
                c.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL))
                    .map_err(zstd_error)?;
                c.set_parameter(CParameter::WindowLog(ZSTD_WINDOW_LOG))
                    .map_err(zstd_error)?;
                c.set_parameter(CParameter::HashLog(ZSTD_HASH_LOG))
                    .map_err(zstd_error)?;
                Some(c)
            }
        };
        Ok(StreamEncoder {
            zstd,
            v2: None,
            finished: false,
        })
    }

    /// Re-encodes the v1 chunks as frame version 2 or 3 before compressing (`version` 1, 2
    /// or 3; the request parser admits no other).
    pub fn with_version(mut self, version: u16) -> Self {
        self.v2 = (version != 1).then(|| Transcoder::with_version(version));
        self
    }

    /// The encoding of one chunk, flushed so the client can decode all of it now. With `last`
    /// the zstd frame is closed too (its epilogue), as when the stream ends with an `'e'`.
    pub fn encode(&mut self, chunk: &[u8], last: bool) -> io::Result<Vec<u8>> {
        let transcoded;
        let chunk = match &mut self.v2 {
            None => chunk,
            Some(t) => {
                // The session's own v1 bytes: an error here is a bug, not bad input.
                transcoded = t.push(chunk).map_err(io::Error::other)?;
                &transcoded[..]
            }
        };
        let Some(zstd) = &mut self.zstd else {
            return Ok(chunk.to_vec());
        };
        if self.finished {
            return Err(io::Error::other("the compressed stream was already closed"));
        }
        let end = if last {
            ZSTD_EndDirective::ZSTD_e_end
        } else {
            ZSTD_EndDirective::ZSTD_e_flush
        };
        let mut out = Vec::with_capacity(chunk.len() / 3 + 64);
        let mut input = InBuffer::around(chunk);
        // With flush/end, zstd consumes all input and returns 0 once everything is written out.
        loop {
            grow(&mut out);
            let len = out.len();
            let mut ob = OutBuffer::around_pos(&mut out, len);
            let remaining = zstd
                .compress_stream2(&mut ob, &mut input, end)
                .map_err(zstd_error)?;
            if remaining == 0 && input.pos() == chunk.len() {
                break;
            }
        }
        self.finished = last;
        Ok(out)
    }

    /// Whether this encoder passes bytes through unchanged.
    pub fn is_identity(&self) -> bool {
        self.zstd.is_none() && self.v2.is_none()
    }

    /// Bytes the zstd context holds now (0 without compression).
    pub fn memory(&self) -> usize {
        self.zstd.as_ref().map_or(0, |c| c.sizeof())
    }
}

/// Makes room for zstd's next step: it needs spare capacity to write into.
fn grow(out: &mut Vec<u8>) {
    if out.capacity() - out.len() < 1024 {
        out.reserve(out.capacity().max(4096));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flushed_chunk_decodes_at_once_and_the_whole_is_one_frame() {
        let mut enc = StreamEncoder::new(Compression::Zstd).unwrap();
        let chunks: Vec<Vec<u8>> = (0..50u8)
            .map(|i| (0..(i as usize * 97)).map(|j| (j % 13) as u8 ^ i).collect())
            .collect();
        let mut wire = Vec::new();
        let mut dec = zstd::stream::raw::Decoder::new().unwrap();
        use zstd::stream::raw::Operation;
        let mut plain = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let z = enc.encode(c, i == chunks.len() - 1).unwrap();
            wire.extend_from_slice(&z);
            // A flush must make everything so far decodable: no bytes held back.
            let mut input = zstd::stream::raw::InBuffer::around(&z);
            loop {
                let mut out = vec![0u8; 1 << 16];
                let mut ob = zstd::stream::raw::OutBuffer::around(&mut out[..]);
                dec.run(&mut input, &mut ob).unwrap();
                let n = ob.pos();
                plain.extend_from_slice(&out[..n]);
                if input.pos() == z.len() && n < out.len() {
                    break;
                }
            }
            let want: Vec<u8> = chunks[..=i].concat();
            assert_eq!(plain, want, "after chunk {i}");
        }
        assert_eq!(
            zstd::stream::decode_all(&wire[..]).unwrap(),
            chunks.concat()
        );
        assert!(enc.encode(b"x", false).is_err());
    }

    #[test]
    fn memory_per_stream_is_bounded() {
        let mut enc = StreamEncoder::new(Compression::Zstd).unwrap();
        let data: Vec<u8> = (0..4_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        for c in data.chunks(32 * 1024) {
            enc.encode(c, false).unwrap();
        }
        let m = enc.memory();
        eprintln!("zstd context: {m} bytes");
        assert!(m < 3 << 19, "{m} bytes");
    }

    #[test]
    fn identity_passes_bytes_through() {
        let mut enc = StreamEncoder::new(Compression::None).unwrap();
        assert!(enc.is_identity());
        assert_eq!(enc.encode(b"WALCAST\0", false).unwrap(), b"WALCAST\0");
    }
}
