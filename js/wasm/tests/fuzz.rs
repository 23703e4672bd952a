//! The `core` fuzz target's body (src/fuzzing.rs) on stable Rust, over what the fuzzer starts
//! from and more: every capture's message sequence, deterministic mutations of them (bytes
//! flipped, cut, dropped and repeated; messages dropped and repeated), and every input a fuzz
//! run ever crashed on (js/wasm/fuzz/regressions).

use walcast_wasm::fuzzing::{core_everything, core_messages};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each capture's messages, at most `max` of them.
fn captures(max: usize) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures", "decoder/tests/fixtures/pg15"] {
        let mut paths: Vec<_> = std::fs::read_dir(root().join(dir))
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "hex"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("fixture");
            out.push(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(max)
                    .map(|l| walcast_decoder::output::parse_bytea_hex(l).expect("hex"))
                    .collect(),
            );
        }
    }
    assert!(out.len() >= 9, "found {} captures", out.len());
    out
}

fn run(msgs: &[Vec<u8>]) -> usize {
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    core_messages(&refs, &msgs.concat())
}

#[test]
fn captures_decode_the_same_every_way() {
    for msgs in captures(400) {
        assert_eq!(run(&msgs), msgs.len(), "a capture failed to decode");
        assert!(msgs.len() > 20);
    }
}

/// xorshift64: the same mutations on every run, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, msgs: &mut Vec<Vec<u8>>) {
    let i = rng.below(msgs.len());
    let m = &mut msgs[i];
    let at = rng.below(m.len());
    match rng.below(7) {
        _ if m.is_empty() => m.push(rng.next() as u8),
        0 => m[at] = rng.next() as u8,
        1 => m[at] ^= 1 << rng.below(8),
        2 => m.truncate(at),
        3 => {
            m.remove(at);
        }
        4 => {
            let end = (at + 1 + rng.below(16)).min(m.len());
            let piece = m[at..end].to_vec();
            m.splice(at..at, piece);
        }
        5 => {
            msgs.remove(i);
        }
        _ => {
            let copy = m.clone();
            msgs.insert(rng.below(msgs.len()), copy);
        }
    }
}

#[test]
fn mutated_captures_never_break_the_contracts() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut runs, mut failed) = (0, 0);
    for base in captures(30) {
        for _ in 0..300 {
            let mut msgs = base.clone();
            for _ in 0..1 + rng.below(3) {
                if !msgs.is_empty() {
                    mutate(&mut rng, &mut msgs);
                }
            }
            runs += 1;
            failed += usize::from(run(&msgs) < msgs.len());
        }
    }
    // Both sides of the contracts get exercised: batches that fail part-way, and that decode.
    assert!(runs >= 3000);
    assert!(
        failed > runs / 10 && failed < runs * 9 / 10,
        "{failed} of {runs} failed"
    );
}

#[test]
fn past_fuzz_crashes_stay_fixed() {
    let dir = root().join("js/wasm/fuzz/regressions");
    for entry in std::fs::read_dir(&dir)
        .expect("regressions directory")
        .flatten()
    {
        if entry.path().is_file() && entry.file_name() != "README" {
            core_everything(&std::fs::read(entry.path()).expect("input"));
        }
    }
}
