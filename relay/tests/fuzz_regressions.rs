//! Every input the relay's fuzz targets ever crashed on (relay/fuzz/regressions/TARGET), and
//! the hand-written seeds (relay/fuzz/seeds/TARGET), run through the targets' bodies on every
//! test run.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_file() {
                body(&std::fs::read(&path).expect("regression input"));
                n += 1;
            }
        }
    }
    n
}

#[test]
fn past_fuzz_crashes_stay_fixed() {
    let n = replay("client_input", walcast_relay::fuzzing::client_input);
    assert!(n >= 5, "client_input inputs found: {n}");
    let n = replay("scope_change", walcast_relay::fuzzing::scope_change);
    assert!(n >= 4, "scope_change inputs found: {n}");
}
