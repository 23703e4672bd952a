//! The committed fixture files themselves, without the decoder: well-formed, complete, small.

use walcast_tests::fixtures::{fixtures_dir, list, read_hex};

#[test]
fn fixture_files_are_well_formed_and_small() {
    let dir = fixtures_dir();
    let names = list(&dir).unwrap();
    assert!(names.len() >= 6, "{names:?}");
    let mut total = 0;
    for name in &names {
        let msgs = read_hex(&dir, name).unwrap();
        assert!(!msgs.is_empty(), "{name}.hex is empty");
        // Every message starts with a pgoutput message tag.
        for (i, m) in msgs.iter().enumerate() {
            assert!(
                m.first()
                    .is_some_and(|t| b"BCOYRIUDTMSEcAbPKrp".contains(t)),
                "{name}.hex:{}: not a pgoutput message: {m:02x?}",
                i + 1
            );
        }
        // Whole transactions only: the stream starts with BEGIN/RELATION/STREAM START and ends
        // with a commit of some kind.
        let last = msgs.last().and_then(|m| m.first()).copied();
        assert!(
            matches!(last, Some(b'C' | b'c' | b'K' | b'r')),
            "{name}.hex ends mid-transaction"
        );
        total += std::fs::metadata(dir.join(format!("{name}.hex")))
            .unwrap()
            .len();
        if let Ok(expected) = std::fs::read_to_string(dir.join(format!("{name}.expected.jsonl"))) {
            total += expected.len() as u64;
            assert_eq!(
                expected.lines().count(),
                msgs.len(),
                "{name}: one expected line per message"
            );
        }
    }
    assert!(
        total < 4_500_000,
        "fixtures total {total} bytes; keep them under ~4 MB"
    );
}

#[test]
fn streamed_fixture_streams_and_aborts() {
    let msgs = read_hex(&fixtures_dir(), "streamed").unwrap();
    let tags: Vec<u8> = msgs.iter().map(|m| m[0]).collect();
    let count = |t: u8| tags.iter().filter(|&&x| x == t).count();
    assert!(count(b'S') >= 3, "several stream blocks");
    assert_eq!(count(b'S'), count(b'E'), "every stream block is closed");
    assert_eq!(count(b'c'), 1, "one streamed commit");
    assert_eq!(
        count(b'A'),
        2,
        "a subtransaction abort and a top-level abort"
    );
}
