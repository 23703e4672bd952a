//! The thin integration layer: walcast-decoder's frames and events in, flat buffers out.
//!
//! Frames are read by `walcast_decoder::frame::AnyVersionReader` (frame version 1, 2 or 3, as
//! the stream's header says) and messages decoded by
//! `walcast_decoder::Decoder`, the same code the native clients run; this module only maps each
//! `Event` onto the layout documented in js/FLAT.md.

#[cfg(feature = "msgpack")]
use crate::msgpack;
use walcast_decoder::decoder::{type_tuple, Cell, Change, Event, Row};
use walcast_decoder::frame::{AnyVersionReader, FrameKind};
#[cfg(feature = "jsonl")]
use walcast_decoder::output::jsonl;
use walcast_decoder::pgoutput::{self, Message, OldTuple, TupleData};
use walcast_decoder::RelationInfo;
use walcast_decoder::{DecodeError, Decoder, Lsn};

use crate::flat::{cell, ev, Flat};

#[derive(Default)]
pub struct Engine {
    frames: AnyVersionReader,
    decoder: Decoder,
    pub out: Flat,
    /// Set after an 'e' frame: the stream is over, later bytes are ignored.
    ended: bool,
}

impl Engine {
    /// Decodes one raw pgoutput message into `out`.
    pub fn message(&mut self, msg: &[u8]) -> Result<(), DecodeError> {
        decode_into(&mut self.decoder, &mut self.out, msg)
    }

    #[cfg(feature = "jsonl")]
    /// Decodes one raw pgoutput message and appends its JSON line (the native contract).
    pub fn message_jsonl(&mut self, msg: &[u8], out: &mut String) -> Result<(), DecodeError> {
        let event = self.decoder.decode(msg)?;
        jsonl::write_event(&event, None, out);
        out.push('\n');
        Ok(())
    }

    #[cfg(feature = "msgpack")]
    /// Decodes one raw pgoutput message and appends its MessagePack record(s).
    pub fn message_msgpack(
        &mut self,
        msg: &[u8],
        lsn: Option<Lsn>,
        enc: &mut msgpack::Encoder,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let event = self.decoder.decode(msg)?;
        enc.encode(&event, lsn.map(|l| l.0), out);
        Ok(())
    }

    #[cfg(feature = "msgpack")]
    /// Like `frames`, but appends MessagePack records of the WAL frames' events to `out`.
    /// Control frames have no MessagePack form; a stream end stops decoding.
    pub fn frames_msgpack(
        &mut self,
        chunk: &[u8],
        enc: &mut msgpack::Encoder,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        if self.ended {
            return Ok(());
        }
        self.frames.push(chunk);
        loop {
            let Some(frame) = self.frames.next_frame()? else {
                return Ok(());
            };
            match frame.kind {
                FrameKind::Wal | FrameKind::Prelude | FrameKind::Bootstrap => {
                    let event = self.decoder.decode(frame.payload)?;
                    enc.encode(&event, Some(frame.lsn.0), out);
                }
                FrameKind::Reset => self.decoder.reset(),
                FrameKind::End => {
                    self.ended = true;
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    /// Feeds one chunk of a walcast frame stream and decodes every complete frame in it.
    pub fn frames(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        if self.ended {
            return Ok(());
        }
        self.frames.push(chunk);
        loop {
            let Some(frame) = self.frames.next_frame()? else {
                return Ok(());
            };
            match frame.kind {
                FrameKind::Wal | FrameKind::Prelude | FrameKind::Bootstrap => {
                    decode_into(&mut self.decoder, &mut self.out, frame.payload)?;
                }
                FrameKind::Heartbeat => {
                    self.out.event(ev::HEARTBEAT);
                    self.out.lsn(frame.lsn.0);
                }
                FrameKind::Reset => {
                    // A new walsender session: in-flight streamed transactions are void.
                    self.decoder.reset();
                    self.out.event(ev::RESET);
                }
                FrameKind::End => {
                    // {"code","message"}: JS parses the JSON; keep the text verbatim.
                    let text = String::from_utf8_lossy(frame.payload).into_owned();
                    self.out.event(ev::END);
                    self.out.str(&text);
                    self.ended = true;
                    return Ok(());
                }
                // Disk-only metadata and kinds newer than this client: skipped.
                _ => {}
            }
        }
    }

    /// A new connection: its stream starts with the header again. Relations stay cached (the
    /// relay replays them in its prelude anyway); stream state does not survive.
    pub fn new_stream(&mut self) {
        self.frames = AnyVersionReader::new();
        self.decoder.reset();
        self.ended = false;
    }
}

/// Decodes one pgoutput message into `out`, row changes by the fast path when it applies.
fn decode_into(decoder: &mut Decoder, out: &mut Flat, msg: &[u8]) -> Result<(), DecodeError> {
    if !change_fast(decoder, out, msg) {
        write_event(&decoder.decode(msg)?, out);
    }
    Ok(())
}

/// Insert/Update/Delete outside a stream block, typed straight into `out`: the same values
/// as `Decoder::decode` (the same `pgoutput::parse`, relation cache and value decoders), without
/// building an `Event` with a `Vec` of cells per row and dropping it again. Such messages do
/// not change the decoder's state. Returns false, having written nothing, for any other
/// message and on any error, so that `Decoder::decode` handles it and reports the error.
fn change_fast(decoder: &Decoder, out: &mut Flat, msg: &[u8]) -> bool {
    if !matches!(msg.first(), Some(b'I' | b'U' | b'D')) || decoder.in_stream() {
        return false;
    }
    let Ok(parsed) = pgoutput::parse(msg, false) else {
        return false;
    };
    let (tag, id, new, old) = match parsed {
        Message::Insert(i) => (ev::INSERT, i.relation_id, Some(i.new), None),
        Message::Update(u) => (ev::UPDATE, u.relation_id, Some(u.new), u.old),
        Message::Delete(d) => (ev::DELETE, d.relation_id, None, Some(d.old)),
        _ => return false,
    };
    let Some(rel) = decoder.relation(id) else {
        return false;
    };
    let mark = out.mark();
    out.event(tag);
    out.word(0);
    out.word(id);
    let (full, key) = match old {
        Some(OldTuple::Full(t)) => (Some(t), None),
        Some(OldTuple::Key(t)) => (None, Some(t)),
        None => (None, None),
    };
    out.word(
        u32::from(new.is_some()) | u32::from(full.is_some()) << 1 | u32::from(key.is_some()) << 2,
    );
    let ok = [(new, false), (full, false), (key, true)]
        .into_iter()
        .all(|(t, is_key)| t.map_or(true, |t| typed_row(out, msg, rel, t, is_key)));
    if !ok {
        out.rollback(mark);
    }
    ok
}

/// One tuple typed against its relation by the decoder's own `type_tuple`. False on any
/// mismatch or bad value (the caller rolls `out` back).
fn typed_row(out: &mut Flat, msg: &[u8], rel: &RelationInfo, t: TupleData<'_>, key: bool) -> bool {
    out.word(t.len() as u32);
    type_tuple(msg, rel, t, key, |c| write_cell(out, &c)).is_ok()
}

fn xid(x: Option<u32>) -> u32 {
    x.unwrap_or(0)
}

fn row(out: &mut Flat, r: &Row<'_>) {
    out.word(r.cells.len() as u32);
    for c in &r.cells {
        write_cell(out, c);
    }
}

fn write_cell(out: &mut Flat, c: &Cell<'_>) {
    match c {
        Cell::Value(v) => out.value(v),
        Cell::UnchangedToast => out.cell_tag(cell::UNCHANGED_TOAST),
        Cell::NotInKey => out.cell_tag(cell::NOT_IN_KEY),
    }
}

fn change(out: &mut Flat, tag: u32, c: &Change<'_>) {
    out.event(tag);
    out.word(xid(c.xid));
    out.word(c.relation.id);
    let mask = u32::from(c.new.is_some())
        | u32::from(c.old.is_some()) << 1
        | u32::from(c.key.is_some()) << 2;
    out.word(mask);
    for r in [&c.new, &c.old, &c.key].into_iter().flatten() {
        row(out, r);
    }
}

fn lsn(out: &mut Flat, l: Lsn) {
    out.lsn(l.0);
}

fn write_event(e: &Event<'_>, out: &mut Flat) {
    match e {
        Event::Insert(c) => change(out, ev::INSERT, c),
        Event::Update(c) => change(out, ev::UPDATE, c),
        Event::Delete(c) => change(out, ev::DELETE, c),
        Event::Begin(b) => {
            out.event(ev::BEGIN);
            lsn(out, b.final_lsn);
            out.word(b.xid);
            out.micros(b.commit_time);
        }
        Event::Commit(c) => {
            out.event(ev::COMMIT);
            out.word(xid(c.xid));
            out.word(u32::from(c.flags));
            lsn(out, c.commit_lsn);
            lsn(out, c.end_lsn);
            out.micros(c.commit_time);
        }
        Event::Relation(r) => {
            let rel = &r.relation;
            out.event(ev::RELATION);
            out.word(xid(r.xid));
            out.word(rel.id);
            out.str(&rel.schema);
            out.str(&rel.table);
            out.word(u32::from(rel.replica_identity.as_byte()));
            out.word(rel.columns.len() as u32);
            for c in &rel.columns {
                out.word(u32::from(c.is_key) | u32::from(c.type_name.is_some()) << 1);
                out.str(&c.name);
                out.word(c.type_oid);
                out.word(c.type_modifier as u32);
                if let Some(t) = &c.type_name {
                    out.str(t);
                }
            }
        }
        Event::Truncate(t) => {
            out.event(ev::TRUNCATE);
            out.word(xid(t.xid));
            out.word(u32::from(t.cascade) | u32::from(t.restart_identity) << 1);
            out.word(t.relations.len() as u32);
            for r in &t.relations {
                out.word(r.id);
            }
        }
        Event::Message(m) => {
            out.event(ev::MESSAGE);
            out.word(xid(m.xid));
            out.word(u32::from(m.transactional()));
            lsn(out, m.lsn);
            out.str(m.prefix);
            out.bytes(m.content);
        }
        Event::Origin(o) => {
            out.event(ev::ORIGIN);
            lsn(out, o.commit_lsn);
            out.str(o.name);
        }
        Event::Type(t) => {
            out.event(ev::TYPE);
            out.word(xid(t.xid));
            out.word(t.oid);
            out.str(if t.namespace.is_empty() {
                "pg_catalog"
            } else {
                t.namespace
            });
            out.str(t.name);
        }
        Event::StreamStart(s) => {
            out.event(ev::STREAM_START);
            out.word(s.xid);
            out.word(u32::from(s.first_segment));
        }
        Event::StreamStop => out.event(ev::STREAM_STOP),
        Event::StreamCommit(c) => {
            out.event(ev::STREAM_COMMIT);
            out.word(c.xid);
            out.word(u32::from(c.flags));
            lsn(out, c.commit_lsn);
            lsn(out, c.end_lsn);
            out.micros(c.commit_time);
        }
        Event::StreamAbort(a) => {
            out.event(ev::STREAM_ABORT);
            out.word(a.xid);
            out.word(a.subxid);
            out.word(u32::from(a.abort_lsn.is_some()));
            lsn(out, a.abort_lsn.unwrap_or(Lsn::ZERO));
            out.micros(a.abort_time.unwrap_or(0));
            out.word(a.discarded.len() as u32);
            for x in &a.discarded {
                out.word(*x);
            }
        }
        Event::BeginPrepare(p) | Event::Prepare(p) | Event::StreamPrepare(p) => {
            out.event(match e {
                Event::BeginPrepare(_) => ev::BEGIN_PREPARE,
                Event::Prepare(_) => ev::PREPARE,
                _ => ev::STREAM_PREPARE,
            });
            out.word(p.xid);
            out.str(p.gid);
            lsn(out, p.prepare_lsn);
            lsn(out, p.end_lsn);
            out.micros(p.prepare_time);
        }
        Event::CommitPrepared(c) => {
            out.event(ev::COMMIT_PREPARED);
            out.word(c.xid);
            out.str(c.gid);
            lsn(out, c.commit_lsn);
            lsn(out, c.end_lsn);
            out.micros(c.commit_time);
        }
        Event::RollbackPrepared(r) => {
            out.event(ev::ROLLBACK_PREPARED);
            out.word(r.xid);
            out.str(r.gid);
            lsn(out, r.prepare_end_lsn);
            lsn(out, r.rollback_end_lsn);
            out.micros(r.prepare_time);
            out.micros(r.rollback_time);
        }
        // Event is non_exhaustive: a newer decoder's event this layout does not know yet.
        _ => out.event(ev::UNKNOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Vec<u8>> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../decoder/tests/fixtures/pg15/"
        );
        let text = std::fs::read_to_string(format!("{path}{name}")).expect("fixture present");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let h = l.trim().trim_start_matches("\\x");
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                    .collect()
            })
            .collect()
    }

    fn frame(kind: u8, lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
        let kind = FrameKind::from_byte(kind);
        walcast_decoder::frame::encode_frame(kind, Lsn(lsn), payload, out);
    }

    /// The fast path for row changes writes exactly what the general path writes.
    #[test]
    fn fast_path_matches_decoder_events_on_every_fixture() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
        let mut fast_rows = 0;
        for dir in ["tests/fixtures", "decoder/tests/fixtures/pg15"] {
            let Ok(entries) = std::fs::read_dir(format!("{root}{dir}")) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().map_or(true, |x| x != "hex") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("fixture");
                let mut fast = Engine::default();
                let mut slow = Decoder::default();
                let mut want = Flat::default();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let m = walcast_decoder::output::parse_bytea_hex(line).expect("hex");
                    let before = fast.out.events;
                    let fast_ok = change_fast(&fast.decoder, &mut fast.out, &m);
                    fast_rows += usize::from(fast_ok);
                    if !fast_ok {
                        assert_eq!(fast.out.events, before, "nothing written on fallback");
                        let _ = fast.message(&m);
                    }
                    if let Ok(ev) = slow.decode(&m) {
                        write_event(&ev, &mut want);
                    }
                }
                assert_eq!(fast.out.words, want.words, "{}", path.display());
                // Bit patterns: NaN cells must compare equal.
                let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast.out.nums), bits(&want.nums), "{}", path.display());
                assert_eq!(fast.out.text, want.text, "{}", path.display());
                assert_eq!(fast.out.blob, want.blob, "{}", path.display());
            }
        }
        assert!(fast_rows > 1000, "fast path taken {fast_rows} times");
    }

    #[test]
    fn every_captured_message_becomes_one_flat_event() {
        for name in [
            "basic_text.hex",
            "basic_binary.hex",
            "stream.hex",
            "twophase.hex",
        ] {
            let msgs = fixture(name);
            let mut e = Engine::default();
            for m in &msgs {
                e.message(m).expect("captured messages decode");
            }
            assert_eq!(e.out.events as usize, msgs.len(), "{name}");
            assert!(!e.out.words.is_empty());
        }
    }

    #[test]
    fn frames_give_the_same_words_as_messages_plus_control_events() {
        let msgs = fixture("basic_text.hex");
        let mut direct = Engine::default();
        for m in &msgs {
            direct.message(m).expect("decodes");
        }
        let mut stream = Vec::new();
        walcast_decoder::frame::encode_header(&mut stream);
        for m in &msgs {
            frame(b'w', 0, m, &mut stream);
        }
        frame(b'k', 0x1234_5678_9abc, &[], &mut stream);
        frame(
            b'e',
            0,
            br#"{"code":"shutdown","message":"bye"}"#,
            &mut stream,
        );
        frame(b'w', 0, b"garbage after the end is ignored", &mut stream);
        let mut framed = Engine::default();
        // Split at an awkward size: frames straddle chunks.
        for chunk in stream.chunks(7) {
            framed.frames(chunk).expect("valid stream");
        }
        let n = direct.out.words.len();
        assert_eq!(framed.out.words[..n], direct.out.words[..]);
        assert_eq!(
            framed.out.words[n..n + 3],
            [ev::HEARTBEAT, 0x1234, 0x5678_9abc]
        );
        assert_eq!(framed.out.words[n + 3], ev::END);
        assert_eq!(framed.out.events as usize, msgs.len() + 2);
    }
}
