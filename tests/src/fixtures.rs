//! Captured pgoutput streams under `tests/fixtures/`: `<name>.hex` holds one pgoutput message per
//! line exactly as psql prints a bytea (`\x…`), the format `walcast decode` reads;
//! `<name>.expected.jsonl` holds the JSON lines the native decoder produces for it (the WASM and
//! Node builds are conformance-checked against them).

use crate::pg::{create_slots, decode_hex_line, peek_pgoutput, run_script, RawMessage};
use crate::scenario;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use walcast_testkit::{workspace_root, PgCluster};

/// The major the committed fixtures are captured from: Debian's, always installed.
pub const CAPTURE_MAJOR: u32 = 15;

/// Row counts of the captured workloads, sized to keep all fixtures together under ~4 MB.
pub const NARROW7_INSERTS: u32 = 2000;
pub const NARROW7_UPDATES: u32 = 400;
pub const NARROW7_DELETES: u32 = 200;
pub const WIDE_TOAST_ROWS: u32 = 20;
pub const STREAMED_ROWS: u32 = 600;

pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// Names of the captured fixtures (`<name>.hex` files), sorted.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".hex") {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The messages of `<dir>/<name>.hex`.
pub fn read_hex(dir: &Path, name: &str) -> Result<Vec<Vec<u8>>> {
    let path = dir.join(format!("{name}.hex"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| decode_hex_line(l).with_context(|| format!("{}:{}", path.display(), i + 1)))
        .collect()
}

pub fn write_hex(dir: &Path, name: &str, msgs: &[RawMessage]) -> Result<()> {
    let mut text = String::with_capacity(msgs.iter().map(|m| m.hex.len() + 1).sum());
    for m in msgs {
        text.push_str(&m.hex);
        text.push('\n');
    }
    let path = dir.join(format!("{name}.hex"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Runs `schema` (tables and their publication), creates a slot, runs `workload`, and returns
/// the slot's messages in each of `modes` (false = text, true = binary).
fn capture_one(
    pg: &PgCluster,
    slot: &str,
    publication: &str,
    schema: &str,
    workload: &str,
    modes: &[bool],
) -> Result<Vec<Vec<RawMessage>>> {
    run_script(pg, schema)?;
    create_slots(pg, slot, None)?;
    run_script(pg, workload)?;
    let out = modes
        .iter()
        .map(|&binary| peek_pgoutput(pg, slot, publication, binary))
        .collect::<Result<Vec<_>>>()?;
    pg.psql(&format!("SELECT pg_drop_replication_slot('{slot}')"))?;
    Ok(out)
}

/// Captures every fixture from a fresh cluster: (name, messages) pairs.
pub fn capture_all(major: u32) -> Result<Vec<(String, Vec<RawMessage>)>> {
    let pg = PgCluster::start(major)?;
    let mut out = Vec::new();
    let mut push = |base: &str, modes: &[&str], captured: Vec<Vec<RawMessage>>| {
        for (suffix, msgs) in modes.iter().zip(captured) {
            out.push((format!("{base}{suffix}"), msgs));
        }
    };

    let types_schema = format!("{}{}", scenario::TYPES_SCHEMA, scenario::TYPES_PUBLICATION);
    let c = capture_one(
        &pg,
        "fx_types",
        "pub_types",
        &types_schema,
        scenario::TYPES_ROWS,
        &[false, true],
    )?;
    push("types", &["_text", "_binary"], c);

    let narrow = scenario::narrow7_workload(NARROW7_INSERTS, 100, NARROW7_UPDATES, NARROW7_DELETES);
    let c = capture_one(
        &pg,
        "fx_narrow7",
        "pub_narrow7",
        scenario::NARROW7_SCHEMA,
        &narrow,
        &[false, true],
    )?;
    push("narrow7", &["_text", "_binary"], c);

    let wide = scenario::wide_toast_workload(WIDE_TOAST_ROWS);
    let c = capture_one(
        &pg,
        "fx_wide",
        "pub_wide",
        &scenario::wide_toast_schema(),
        &wide,
        &[false],
    )?;
    push("wide_toast", &[""], c);

    let stream_schema = "CREATE TABLE t_stream (id int PRIMARY KEY, payload text);\n\
                         CREATE PUBLICATION pub_stream FOR TABLE t_stream;\n";
    let streamed = scenario::streamed_workload(STREAMED_ROWS);
    let c = capture_one(
        &pg,
        "fx_stream",
        "pub_stream",
        stream_schema,
        &streamed,
        &[false],
    )?;
    push("streamed", &[""], c);
    Ok(out)
}
