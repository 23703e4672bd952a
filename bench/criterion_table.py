"""Turns the decoder's criterion results into a Markdown section for BENCHMARKS.md."""
import json, pathlib

root = pathlib.Path("target/criterion")
fixtures = {f["name"]: f for f in json.loads((root / "walcast-fixtures.json").read_text())}

def mean_secs(group, name):
    est = json.loads((root / group / name / "new" / "estimates.json").read_text())
    return est["mean"]["point_estimate"] / 1e9

print("### Decoder (criterion, one core, captured PostgreSQL 15 streams)\n")
print("Command: `bench/run.sh decoder` (= `cargo bench -p walcast-decoder --bench decode`). Rows are the")
print("Insert/Update/Delete messages of each capture; narrow7 is 7 columns (id, name, email, ts, amount,")
print("active, score), wide_toast is 30 columns with large text.\n")
print("| capture | messages | bytes | parse (target ≥ 1 GB/s) | typed rows (target ≥ 5 M/s for narrow7) | decode + JSON lines |")
print("|---|---|---|---|---|---|")
for name, f in fixtures.items():
    p = mean_secs("parse", name)
    d = mean_secs("decode", name)
    j = mean_secs("jsonl", name)
    print(f"| {name} | {f['messages']} | {f['bytes']} | {f['bytes'] / p / 1e9:.2f} GB/s | "
          f"{f['rows'] / d / 1e6:.2f} M rows/s | {f['rows'] / j / 1e6:.2f} M rows/s |")
