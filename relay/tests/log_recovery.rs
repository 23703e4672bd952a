//! Crash simulation: the last segment cut at every byte offset, or with one byte flipped at
//! every offset. Recovery must keep every transaction whose commit frame is intact, drop the
//! rest, and leave a log that serves and accepts appends.

use std::path::{Path, PathBuf};

use walcast_decoder::frame::FrameKind;
use walcast_decoder::Lsn;
use walcast_relay::log::pgoutput_peek::build::*;
use walcast_relay::log::{Appended, Log, LogConfig, LogWriter};

fn config(dir: &Path) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes = 1024;
    c.read_buffer = 4096;
    c
}

/// What was appended: (global offset, encoded length, boundary LSN if the frame ends a txn).
struct Written {
    frames: Vec<(u64, u64, Option<Lsn>)>,
}

fn kept(a: Appended) -> u64 {
    match a {
        Appended::Kept { offset } => offset,
        Appended::Dropped => panic!("unexpected drop"),
    }
}

fn add(w: &mut LogWriter, out: &mut Written, lsn: u64, msg: Vec<u8>, boundary: Option<u64>) {
    let off = kept(w.append_wal(Lsn(lsn), &msg).unwrap());
    out.frames
        .push((off, (17 + msg.len()) as u64, boundary.map(Lsn)));
}

fn build_log(dir: &Path) -> Written {
    let (_log, mut w, _) = Log::open(config(dir)).unwrap();
    let mut out = Written { frames: Vec::new() };
    for n in 1..40u64 {
        let c = n * 0x100;
        add(&mut w, &mut out, c - 0x80, begin(c, n as u32), None);
        if n == 1 {
            add(&mut w, &mut out, 0, relation(None, 5, "v1"), None);
        }
        add(&mut w, &mut out, c - 0x40, insert(5, b"row"), None);
        if n % 7 == 0 {
            // A stream chunk between transactions, committed two transactions later.
            add(
                &mut w,
                &mut out,
                c + 0x20,
                stream_start(1000 + n as u32),
                None,
            );
            add(
                &mut w,
                &mut out,
                c + 0x21,
                stream_insert(1000 + n as u32, 5, b"s"),
                None,
            );
            add(&mut w, &mut out, c + 0x22, stream_stop(), None);
        }
        add(&mut w, &mut out, c, commit(c, c + 0x10), Some(c + 0x10));
        if n % 7 == 2 && n > 7 {
            let x = 1000 + n as u32 - 2;
            let cl = c + 0x30;
            add(
                &mut w,
                &mut out,
                cl,
                stream_commit(x, cl, cl + 0x8),
                Some(cl + 0x8),
            );
        }
    }
    w.sync().unwrap();
    out
}

fn last_segment(dir: &Path) -> (PathBuf, u64) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let p = files.pop().unwrap();
    let base = u64::from_str_radix(p.file_stem().unwrap().to_str().unwrap(), 16).unwrap();
    (p, base)
}

/// Restores the directory to the original files except the last segment, which gets `bytes`.
fn restore(dir: &Path, originals: &[(PathBuf, Vec<u8>)], bytes: &[u8]) {
    for e in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (last, rest) = originals.split_last().unwrap();
    for (p, b) in rest {
        std::fs::write(p, b).unwrap();
    }
    std::fs::write(&last.0, bytes).unwrap();
}

/// The boundary LSN recovery must find when valid data ends at global offset `valid_end`.
fn expected(w: &Written, valid_end: u64, segment_start_lsn: Lsn) -> Lsn {
    w.frames
        .iter()
        .filter(|(off, len, b)| b.is_some() && off + len <= valid_end)
        .map(|(_, _, b)| b.unwrap())
        .max()
        .unwrap_or(Lsn::ZERO)
        .max(segment_start_lsn)
}

fn check_recovered(dir: &Path, want: Lsn) {
    let (log, mut w, rec) = Log::open(config(dir)).unwrap();
    assert_eq!(rec.durable.lsn, want);
    assert_eq!(w.durable().lsn, want);
    // Every served commit is at or below `want`, and the highest is `want` (or none).
    let mut r = log.reader(None).unwrap();
    let mut max_end = Lsn::ZERO;
    while let Some(f) = r.next_frame().unwrap() {
        if f.kind == FrameKind::Wal && f.payload[0] == b'C' {
            let end = Lsn(u64::from_be_bytes(f.payload[10..18].try_into().unwrap()));
            assert!(end <= want, "served commit {end} beyond recovered {want}");
            max_end = max_end.max(end);
        }
    }
    // The log accepts appends after recovery.
    let next = 0x10_0000u64;
    w.append_wal(Lsn(next), &begin(next, 1)).unwrap();
    w.append_wal(Lsn(next), &commit(next, next + 0x10)).unwrap();
    assert_eq!(w.sync().unwrap().lsn, Lsn(next + 0x10));
}

#[test]
fn truncation_at_every_tail_offset_keeps_every_complete_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let written = build_log(&dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "want several segments");
    let originals: Vec<_> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let (_, base) = last_segment(&dir);
    let full = originals.last().unwrap().1.clone();
    let (log, _, _) = Log::open(config(&dir)).unwrap();
    let segs = log.segments();
    let last_meta = segs.last().unwrap().meta;
    let prev_start = segs[segs.len() - 2].meta.start_lsn;
    drop(log);

    let mut seen = std::collections::BTreeSet::new();
    for cut in 0..=full.len() {
        restore(&dir, &originals, &full[..cut]);
        let valid_end = base + cut as u64;
        // A torn header/meta deletes the segment: the previous one ends at its start boundary.
        let want = if (cut as u64) < data_start(&full) {
            last_meta.start_lsn.max(prev_start)
        } else {
            expected(&written, valid_end, last_meta.start_lsn)
        };
        seen.insert(want);
        check_recovered(&dir, want);
    }
    assert!(
        seen.len() >= 3,
        "the tail must hold several commits: {seen:?}"
    );
}

/// Offset within a segment file after its header and meta frame.
fn data_start(file: &[u8]) -> u64 {
    let meta_len = u32::from_be_bytes(file[12..16].try_into().unwrap()) as u64;
    12 + 8 + meta_len
}

#[test]
fn a_flipped_byte_truncates_at_the_damaged_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let written = build_log(&dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let originals: Vec<_> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let (_, base) = last_segment(&dir);
    let full = originals.last().unwrap().1.clone();
    let (log, _, _) = Log::open(config(&dir)).unwrap();
    let start_lsn = log.segments().last().unwrap().meta.start_lsn;
    drop(log);

    // Every byte of the data frames (header and meta damage is covered by the truncation test).
    let first_data = base + data_start(&full);
    let frame_starts: Vec<u64> = written
        .frames
        .iter()
        .map(|f| f.0)
        .filter(|&o| o >= first_data)
        .collect();
    assert!(!frame_starts.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    for i in data_start(&full) as usize..full.len() {
        let mut bytes = full.clone();
        bytes[i] ^= 0x5A;
        restore(&dir, &originals, &bytes);
        let at = base + i as u64;
        // Prelude frames sit between the meta and the first data frame: a damaged prelude frame
        // truncates to the segment start.
        let damaged_start = frame_starts
            .iter()
            .rev()
            .find(|&&s| s <= at)
            .copied()
            .unwrap_or(first_data);
        let want = expected(&written, damaged_start, start_lsn);
        seen.insert(want);
        check_recovered(&dir, want);
    }
    assert!(
        seen.len() >= 3,
        "the tail must hold several commits: {seen:?}"
    );
}
