//! What the `core` fuzz target (js/wasm/fuzz) runs, shared with js/wasm/tests/fuzz.rs, which
//! replays the seeds, past crashes and mutated captures on stable Rust.
//!
//! walcast-decoder is fuzzed on its own (decoder/fuzz); this drives the layer the npm package
//! adds on top, through the same `Core` calls JS makes: the fast path that types rows straight
//! into the flat buffers, the flat writer, the packed-message splitter and the MessagePack
//! writer. Besides "never panics" it checks the contracts JS relies on:
//! - a failed batch keeps exactly one whole event per message before the failing one (JS hands
//!   them to the caller as `err.events`), and the error points inside that message;
//! - the same messages give the same flat output as packed raw messages and as a version 1 or
//!   version 3 (compact) frame stream, and the same events with the stream split anywhere.

use walcast_decoder::frame::{self, v2, FrameKind};
use walcast_decoder::Lsn;

use crate::{Core, ERR, OK};

/// The separator the fuzzer learns to put between messages.
const SEPARATOR: u8 = 0xA5;

/// Arbitrary bytes, split into messages on 0xA5, into every `Core` call (see `core_messages`).
pub fn core_everything(data: &[u8]) {
    let msgs: Vec<&[u8]> = data.split(|&b| b == SEPARATOR).collect();
    core_messages(&msgs, data);
}

/// A sequence of messages into every `Core` call, and `raw` as a frame stream. Panics (which
/// the fuzzer reports) if a contract above is broken; anything else must simply not panic.
/// Returns how many of the messages decoded.
pub fn core_messages(msgs: &[&[u8]], raw: &[u8]) -> usize {
    let mut packed = Vec::new();
    for m in msgs {
        packed.extend_from_slice(&(m.len() as u32).to_be_bytes());
        packed.extend_from_slice(m);
    }

    let mut direct = Core::new();
    let len = direct.set_input(&packed);
    let status = direct.push_messages(len);
    let events = direct.meta[8] as usize;
    // How many messages decoded: the frame streams below must give exactly their output.
    let decoded = if status == OK {
        assert_eq!(events, msgs.len(), "one event per message");
        msgs.len()
    } else {
        assert_eq!(status, ERR);
        let nums = direct.error_nums();
        let failed = nums[5] as usize;
        assert!(
            failed < msgs.len(),
            "error in message {failed} of {}",
            msgs.len()
        );
        assert!(
            nums[1] as usize <= msgs[failed].len(),
            "error offset past its message"
        );
        assert_eq!(
            events, failed,
            "a whole event per message before the failing one"
        );
        let _ = direct.error_text();
        failed
    };

    // The messages as WAL frames, in version 1 and version 3 framing.
    let mut v1 = Vec::new();
    frame::encode_header(&mut v1);
    for (i, m) in msgs.iter().enumerate() {
        frame::encode_frame(FrameKind::Wal, Lsn(i as u64 * 40), m, &mut v1);
    }
    let v3 = v2::Transcoder::with_version(v2::VERSION_3)
        .push(&v1)
        .expect("the transcoder reads its own v1");
    for stream in [&v1, &v3] {
        // Whole: the same flat output, word for word.
        let (whole, events) = framed(stream, stream.len());
        same_output(&direct, decoded, status, &whole, events);
        // Split anywhere: the same events (string offsets count within each call's output).
        for step in [1, 7] {
            let (split, split_events) = framed(stream, step);
            assert_eq!(split_events, events, "a split stream decoded other events");
            assert_eq!(split.error.is_some(), whole.error.is_some());
        }
    }

    // Arbitrary bytes as a frame stream of either version, and after a v1 header.
    let mut after_header = Vec::new();
    frame::encode_header(&mut after_header);
    after_header.extend_from_slice(raw);
    for stream in [raw, &after_header[..]] {
        let (core, _) = framed(stream, 11);
        if let Some(e) = &core.error {
            assert!(
                e.offset <= stream.len(),
                "frame error offset past the stream"
            );
            assert_eq!(
                core.error_nums()[5],
                u32::MAX,
                "a frame stream has no message index"
            );
        }
    }

    #[cfg(feature = "msgpack")]
    {
        let mut c = Core::new();
        let len = c.set_input(&packed);
        if c.messages_to_msgpack(len).is_none() {
            assert!(c.error.is_some());
        }
        for stream in [&v1[..], &v3[..]] {
            let mut c = Core::new();
            let len = c.set_input(stream);
            let _ = c.frames_to_msgpack(len);
        }
    }
    #[cfg(feature = "jsonl")]
    {
        let mut c = Core::new();
        let len = c.set_input(&packed);
        if c.messages_to_jsonl(len).is_none() {
            assert!(c.error.is_some());
        }
    }
    decoded
}

/// A Core fed `stream` in `step`-byte chunks, as the relay's bytes arrive, and the number of
/// events all the calls decoded. Stops at the first error.
fn framed(stream: &[u8], step: usize) -> (Core, usize) {
    let mut core = Core::new();
    let mut events = 0;
    for chunk in stream.chunks(step.max(1)) {
        let len = core.set_input(chunk);
        let status = core.push_frames(len);
        events += core.meta[8] as usize;
        if status != OK {
            break;
        }
    }
    (core, events)
}

/// A whole frame stream decoded what the packed messages did: the same output, or, when a
/// message failed, the same events before it and then the failure.
fn same_output(direct: &Core, decoded: usize, status: u32, framed: &Core, events: usize) {
    let (a, b) = (&direct.engine.out, &framed.engine.out);
    if status == OK {
        assert!(
            framed.error.is_none(),
            "frames failed where messages decoded"
        );
        assert_eq!(events, decoded);
        assert_eq!(a.words, b.words, "frames and messages differ");
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.nums), bits(&b.nums));
        assert_eq!(a.text, b.text);
        assert_eq!(a.blob, b.blob);
    } else {
        assert!(
            framed.error.is_some(),
            "frames decoded a message that failed"
        );
        assert_eq!(events, decoded, "frames failed elsewhere");
        assert_eq!(a.words, b.words, "frames and messages differ");
    }
}
