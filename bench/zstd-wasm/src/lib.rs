//! Benchmark only, never shipped: ruzstd, a pure-Rust zstd decoder, behind a four-function C ABI
//! so a page can time it against the browser's own `Content-Encoding: zstd` decoding
//! (js/bench/zstd_browser.mjs, BENCHMARKS.md "Browser zstd"). No wasm-bindgen, so the module's
//! size is the decoder's own.
//!
//! The page calls `input(len)`, copies the compressed bytes to the returned pointer, calls
//! `decompress()` and reads `decompress()`'s length of bytes at `output()`.

use std::cell::RefCell;
use std::io::Read;

thread_local! {
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Decompresses every complete zstd frame in `input` (back to back, as RFC 8878 allows) into
/// `output`, replacing what it held. `Err` on corrupt or truncated input.
pub fn decompress_into(input: &[u8], output: &mut Vec<u8>) -> std::io::Result<()> {
    output.clear();
    let mut rest = input;
    while !rest.is_empty() {
        let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut rest)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        frame.read_to_end(output)?;
    }
    Ok(())
}

/// Makes room for `len` compressed bytes; returns where to write them.
#[no_mangle]
pub extern "C" fn input(len: usize) -> *mut u8 {
    BUFFERS.with_borrow_mut(|(input, _)| {
        input.resize(len, 0);
        input.as_mut_ptr()
    })
}

/// Decompresses the input; returns the output's length, or -1 on an error.
#[no_mangle]
pub extern "C" fn decompress() -> isize {
    BUFFERS.with_borrow_mut(|(input, output)| match decompress_into(input, output) {
        Ok(()) => output.len() as isize,
        Err(_) => -1,
    })
}

/// Where the last `decompress()` put its output.
#[no_mangle]
pub extern "C" fn output() -> *const u8 {
    BUFFERS.with_borrow(|(_, output)| output.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_what_zstd_compressed_including_flushed_blocks_and_two_frames() {
        let plain: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut stream = zstd::encode_all(&plain[..], 1).unwrap();
        stream.extend(zstd::encode_all(&plain[..1000], 3).unwrap());
        let mut out = Vec::new();
        decompress_into(&stream, &mut out).unwrap();
        assert_eq!(out.len(), plain.len() + 1000);
        assert!(out[..plain.len()] == plain[..] && out[plain.len()..] == plain[..1000]);
        // Truncated: an error, not a panic or a silent short read.
        assert!(decompress_into(&stream[..stream.len() / 2], &mut out).is_err());
    }

    #[test]
    fn the_c_abi_round_trips() {
        let plain = b"walcast walcast walcast walcast".repeat(100);
        let z = zstd::encode_all(&plain[..], 1).unwrap();
        let p = input(z.len());
        unsafe { std::ptr::copy_nonoverlapping(z.as_ptr(), p, z.len()) };
        let n = decompress();
        assert_eq!(n as usize, plain.len());
        let got = unsafe { std::slice::from_raw_parts(output(), n as usize) };
        assert_eq!(got, &plain[..]);
    }
}
