//! The client side of the frame version: a stream's header says whether it is v1 (read as is)
//! or v2/v3 (`walcast_decoder::frame::v2`, turned back into the exact v1 frames), so
//! everything after this point reads v1 only.

use walcast_decoder::frame::v2;
use walcast_decoder::frame::FrameReader;
use walcast_decoder::DecodeError;

enum State {
    /// Fewer than the 10 bytes that hold the version so far.
    Head(Vec<u8>),
    V1,
    /// Version 2 or 3.
    V2 {
        version: u16,
        decoder: Box<v2::Decoder>,
        header_out: bool,
        out: Vec<u8>,
    },
}

/// Feeds a [`FrameReader`] with v1 bytes, whichever version the relay sent.
pub struct Framing(State);

impl Default for Framing {
    fn default() -> Self {
        Self::new()
    }
}

impl Framing {
    pub fn new() -> Self {
        Framing(State::Head(Vec::new()))
    }

    /// The stream's version once known.
    pub fn version(&self) -> Option<u16> {
        match self.0 {
            State::Head(_) => None,
            State::V1 => Some(1),
            State::V2 { version, .. } => Some(version),
        }
    }

    /// Hands the next plain (decompressed) bytes to `reader`, as v1.
    pub fn feed(&mut self, plain: &[u8], reader: &mut FrameReader) -> Result<(), DecodeError> {
        if let State::Head(head) = &mut self.0 {
            head.extend_from_slice(plain);
            if head.len() < 10 {
                return Ok(());
            }
            let head = std::mem::take(head);
            // A header that is not walcast's is reported by the v1 reader, with its offset.
            self.0 = if let Some(version) = v2::compact_version(&head) {
                State::V2 {
                    version,
                    decoder: Box::default(),
                    header_out: false,
                    out: Vec::new(),
                }
            } else {
                State::V1
            };
            return self.feed(&head, reader);
        }
        match &mut self.0 {
            State::Head(_) => Ok(()),
            State::V1 => {
                reader.push(plain);
                Ok(())
            }
            State::V2 {
                decoder,
                header_out,
                out,
                ..
            } => {
                decoder.push(plain);
                out.clear();
                decoder.to_v1(out, header_out)?;
                reader.push(out);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walcast_decoder::frame::{encode_frame, encode_header, FrameKind};
    use walcast_decoder::Lsn;

    #[test]
    fn both_versions_reach_the_reader_as_the_same_frames() {
        let mut v1 = Vec::new();
        encode_header(&mut v1);
        for i in 0..20u64 {
            encode_frame(FrameKind::Wal, Lsn(1000 + i * 10), &[b'I'; 30], &mut v1);
        }
        encode_frame(FrameKind::Heartbeat, Lsn(5000), &[], &mut v1);
        let v2 = v2::Transcoder::new().push(&v1).unwrap();
        let v3 = v2::Transcoder::with_version(3).push(&v1).unwrap();
        assert!(v2.len() < v1.len());
        for (bytes, version) in [(&v1, 1), (&v2, 2), (&v3, 3)] {
            let mut framing = Framing::new();
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            for b in bytes.chunks(3) {
                framing.feed(b, &mut reader).unwrap();
                while let Some(f) = reader.next_frame().unwrap() {
                    got.push((f.kind, f.lsn, f.payload.to_vec()));
                }
            }
            assert_eq!(framing.version(), Some(version));
            assert_eq!(got.len(), 21);
            assert_eq!(got[20], (FrameKind::Heartbeat, Lsn(5000), vec![]));
        }
    }
}
