# The part the three fuzz crates' run.sh scripts (decoder/fuzz, relay/fuzz, js/wasm/fuzz) share:
# how long a run lasts, and building and running libFuzzer targets. Each run.sh seeds its own
# corpora first, then sources this file and calls `fuzz_run`.
#
#   fuzz_run SECS CI_RUNS MAX_LEN TARGET...
#
# Under CI (CI set) each target does CI_RUNS runs from a fixed seed, so a change lands or not on
# its own merits, not on the fuzzer's luck that day; outside CI each explores freely for SECS
# seconds. Target T reads corpus/T and its regression inputs, regressions/T when that folder
# exists, else regressions/ (a crate with one target keeps them there), and writes crashes to
# artifacts/T/.
# Needs a nightly toolchain. Uses cargo-fuzz when it is installed; otherwise builds the
# libFuzzer binaries with the flags cargo-fuzz passes. Each crate keeps a Cargo.lock (not part
# of the main workspace, whose lock does not cover it), so CI builds the same dependencies
# every time; the libFuzzer build (what CI runs here) passes `--locked`, which fails when
# Cargo.toml and the lock disagree.

fuzz_run() {
  local secs=$1 ci_runs=$2 max_len=$3
  shift 3
  local limit
  if [ -n "${CI:-}" ]; then
    limit=(-seed=1 -runs="$ci_runs")
  else
    limit=(-max_total_time="$secs")
  fi
  local t
  for t in "$@"; do mkdir -p "corpus/$t" "artifacts/$t"; done
  if command -v cargo-fuzz >/dev/null 2>&1; then
    for t in "$@"; do
      cargo +nightly fuzz run "$t" "corpus/$t" "$(fuzz_regressions "$t")" -- "${limit[@]}" -max_len="$max_len"
    done
    return
  fi
  export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  # An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, as cargo-fuzz does.
  local host
  host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
  cargo +nightly build --locked --release --bins --target "$host"
  for t in "$@"; do
    "./target/$host/release/$t" "corpus/$t" "$(fuzz_regressions "$t")" -artifact_prefix="artifacts/$t/" \
      "${limit[@]}" -max_len="$max_len"
  done
}

# The regression inputs of target $1: regressions/$1 when it exists, else regressions/.
fuzz_regressions() {
  if [ -d "regressions/$1" ]; then echo "regressions/$1"; else echo regressions; fi
}
