//! Every input the fuzzer ever crashed on (decoder/fuzz/regressions) runs through the fuzz
//! target's body on every test run.

#[test]
fn past_fuzz_crashes_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("regression input");
        walcast_decoder::fuzzing::decode_everything(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs found in {}", dir.display());
}
