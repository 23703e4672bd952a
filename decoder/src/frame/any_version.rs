//! A frame reader for a stream of any frame version (1, 2 or 3): the header says which, and
//! every version yields the same frames. For clients that decode frames in place (the WASM
//! package); the native client turns v2/v3 back into v1 bytes instead (`client::Framing`).

use super::v2;
use super::{Frame, FrameReader};
use crate::Result;

/// The largest payload buffer kept for the next frame; a bigger one is freed.
const KEPT_PAYLOAD_CAPACITY: usize = 1 << 20;

#[derive(Debug)]
enum State {
    /// Fewer than the 10 bytes that hold the version so far.
    Head(Vec<u8>),
    V1(FrameReader),
    Compact {
        reader: Box<v2::Decoder>,
        /// The payload of the frame handed out last, which the returned [`Frame`] borrows;
        /// reused for the next one.
        payload: Vec<u8>,
    },
}

/// Push bytes of a walcast stream in any version, pull frames out (`Ok(None)`: more bytes
/// needed), as with [`FrameReader`]. Errors carry offsets from the start of the stream.
#[derive(Debug)]
pub struct AnyVersionReader(State);

impl Default for AnyVersionReader {
    fn default() -> Self {
        Self::new()
    }
}

impl AnyVersionReader {
    pub fn new() -> Self {
        AnyVersionReader(State::Head(Vec::new()))
    }

    /// The stream's frame version, once its header is in.
    pub fn version(&self) -> Option<u16> {
        match &self.0 {
            State::Head(_) => None,
            State::V1(r) => r.version(),
            State::Compact { reader, .. } => reader.version(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        match &mut self.0 {
            State::V1(r) => r.push(chunk),
            State::Compact { reader, .. } => reader.push(chunk),
            State::Head(head) => {
                head.extend_from_slice(chunk);
                if head.len() < 10 {
                    return;
                }
                let head = std::mem::take(head);
                self.0 = if v2::compact_version(&head).is_some() {
                    let mut reader = Box::<v2::Decoder>::default();
                    reader.push(&head);
                    State::Compact {
                        reader,
                        payload: Vec::new(),
                    }
                } else {
                    let mut reader = FrameReader::new();
                    reader.push(&head);
                    State::V1(reader)
                };
            }
        }
    }

    /// The next complete frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        match &mut self.0 {
            State::Head(_) => Ok(None),
            State::V1(r) => r.next_frame(),
            State::Compact { reader, payload } => {
                // Reuse the buffer, unless one huge frame left it huge.
                if payload.capacity() > KEPT_PAYLOAD_CAPACITY {
                    *payload = Vec::new();
                }
                let frame = reader.next_frame_into(payload)?;
                Ok(frame.map(|(kind, lsn)| Frame { kind, lsn, payload }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, encode_header, FrameKind};
    use crate::Lsn;

    #[test]
    fn every_version_yields_the_same_frames() {
        let mut v1 = Vec::new();
        encode_header(&mut v1);
        for i in 0..50u64 {
            let mut row = b"I\0\0\x40\x00N\0\x01t\0\0\0\x04".to_vec();
            row.extend_from_slice(format!("{:04}", 1000 + i).as_bytes());
            encode_frame(FrameKind::Wal, Lsn(5000 + i * 40), &row, &mut v1);
        }
        encode_frame(FrameKind::Heartbeat, Lsn(9000), &[], &mut v1);
        let v2 = v2::Transcoder::new().push(&v1).unwrap();
        let v3 = v2::Transcoder::with_version(v2::VERSION_3)
            .push(&v1)
            .unwrap();
        let mut want = None;
        for (stream, version) in [(&v1, 1), (&v2, 2), (&v3, 3)] {
            let mut r = AnyVersionReader::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(3) {
                r.push(chunk);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push((f.kind, f.lsn, f.payload.to_vec()));
                }
            }
            assert_eq!(r.version(), Some(version));
            assert_eq!(got.len(), 51);
            assert_eq!(want.get_or_insert_with(|| got.clone()), &got);
        }
    }

    #[test]
    fn a_stream_that_is_not_walcast_is_an_error() {
        let mut r = AnyVersionReader::new();
        r.push(b"HTTP/1.1 200 OK\r\n");
        assert!(r.next_frame().is_err());
    }
}
