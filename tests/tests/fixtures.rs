//! Conformance fixtures: decoding each `tests/fixtures/<name>.hex` (no LSNs, as `walcast decode`
//! reads it) must give exactly `<name>.expected.jsonl`. The WASM and Node builds are checked
//! against the same files. `WALCAST_BLESS=1` rewrites the expected files instead (run by
//! scripts/capture-fixtures.sh after a new capture).

mod common;

use common::{decode_to_lines, first_difference};
use walcast_tests::fixtures::{fixtures_dir, list, read_hex};

#[test]
fn fixtures_decode_to_expected_jsonl() {
    let dir = fixtures_dir();
    let names = list(&dir).unwrap();
    for required in [
        "narrow7_binary",
        "narrow7_text",
        "streamed",
        "types_binary",
        "types_text",
        "wide_toast",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "fixture {required}.hex missing"
        );
    }
    let bless = std::env::var_os("WALCAST_BLESS").is_some_and(|v| v == "1");
    for name in names {
        let msgs = read_hex(&dir, &name).unwrap();
        let lines = decode_to_lines(msgs.iter().map(|m| (None, m.as_slice())))
            .unwrap_or_else(|e| panic!("{name}.hex: {e}"));
        assert_eq!(lines.len(), msgs.len(), "{name}: one JSON line per message");
        let path = dir.join(format!("{name}.expected.jsonl"));
        if bless {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run scripts/capture-fixtures.sh)", path.display())
        });
        let expected: Vec<String> = expected.lines().map(str::to_owned).collect();
        if let Some(d) = first_difference(&expected, &lines) {
            panic!("{name}: decoded JSON differs from {name}.expected.jsonl (expected, then decoded) at {d}");
        }
    }
}
