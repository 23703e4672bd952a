//! One run of every scenario on one major: the raw pgoutput stream in text and binary mode, what
//! test_decoding says was committed, and `to_json()` of every row of the types table.

use crate::pg::{
    create_slots, peek_pgoutput, peek_pgoutput_with, peek_test_decoding, query_rows, run_script,
    RawMessage, Streaming, TextChange,
};
use crate::scenario;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use walcast_testkit::PgCluster;

pub const PGOUTPUT_SLOT: &str = "walcast_po";
pub const TEST_DECODING_SLOT: &str = "walcast_td";
pub const PUBLICATIONS: &str = "pub_types,pub_ops,pub_ins,pub_narrow7";
/// Inserts into `narrow7` in the ground-truth run: many distinct floats, numerics, timestamps.
pub const NARROW7_ROWS: u32 = 600;
/// Rows of the streamed transaction in the ground-truth run (enough to exceed 64kB several times).
pub const STREAMED_ROWS: u32 = 800;

pub struct GroundTruth {
    pub major: u32,
    pub text: Vec<RawMessage>,
    pub binary: Vec<RawMessage>,
    /// PG16+: text mode with `streaming 'parallel'` (Stream Abort then carries LSN and time).
    pub parallel: Option<Vec<RawMessage>>,
    pub test_decoding: Vec<TextChange>,
    /// `t_types.id` → `to_json(t_types row)` under the relay's session settings.
    pub types_json: BTreeMap<i64, String>,
    /// `narrow7.id` → `to_json(narrow7 row)` (insert-only there).
    pub narrow7_json: BTreeMap<i64, String>,
    /// (`t_types.id`, column) → PostgreSQL's text output, for the user-typed columns (non-NULL only).
    pub user_typed_text: BTreeMap<(i64, String), String>,
    /// Kept alive so a failing test can print its server log.
    pub pg: PgCluster,
}

/// Starts a cluster of `major`, runs the types and ops scenarios and the streamed transactions,
/// and reads everything back.
pub fn collect(major: u32) -> Result<GroundTruth> {
    let pg = PgCluster::start(major)?;
    run_script(&pg, scenario::TYPES_SCHEMA).context("types schema")?;
    run_script(&pg, scenario::TYPES_PUBLICATION)?;
    run_script(&pg, scenario::OPS_SCHEMA).context("ops schema")?;
    run_script(&pg, scenario::OPS_PUBLICATIONS)?;
    run_script(&pg, scenario::NARROW7_SCHEMA)?;
    create_slots(&pg, PGOUTPUT_SLOT, Some(TEST_DECODING_SLOT))?;
    run_script(&pg, scenario::TYPES_ROWS).context("types rows")?;
    run_script(&pg, scenario::OPS_WORKLOAD).context("ops workload")?;
    run_script(&pg, &scenario::narrow7_workload(NARROW7_ROWS, 100, 0, 0))?;
    run_script(&pg, &scenario::streamed_workload(STREAMED_ROWS)).context("streamed workload")?;
    let text = peek_pgoutput(&pg, PGOUTPUT_SLOT, PUBLICATIONS, false)?;
    let binary = peek_pgoutput(&pg, PGOUTPUT_SLOT, PUBLICATIONS, true)?;
    let parallel = if major >= 16 {
        Some(peek_pgoutput_with(
            &pg,
            PGOUTPUT_SLOT,
            PUBLICATIONS,
            false,
            Streaming::Parallel,
        )?)
    } else {
        None
    };
    let test_decoding = peek_test_decoding(&pg, TEST_DECODING_SLOT)?;
    let types_json = rows_to_json(&pg, "t_types")?;
    let narrow7_json = rows_to_json(&pg, "narrow7")?;
    let mut user_typed_text = BTreeMap::new();
    for row in query_rows(
        &pg,
        "SELECT id, c, v FROM t_types, LATERAL (VALUES ('c_mood', c_mood::text), ('c_posint', c_posint::text), \
         ('c_short_text', c_short_text::text), ('a_mood', a_mood::text)) AS x(c, v) WHERE v IS NOT NULL",
    )? {
        let [id, col, text] = <[String; 3]>::try_from(row).map_err(|r| anyhow::anyhow!("bad row {r:?}"))?;
        user_typed_text.insert((id.parse()?, col), text);
    }
    Ok(GroundTruth {
        major,
        text,
        binary,
        parallel,
        test_decoding,
        types_json,
        narrow7_json,
        user_typed_text,
        pg,
    })
}

/// `id` → `to_json(row)` for every row of `table`, under the relay's session settings.
fn rows_to_json(pg: &PgCluster, table: &str) -> Result<BTreeMap<i64, String>> {
    let mut out = BTreeMap::new();
    for row in query_rows(
        pg,
        &format!("SELECT id, to_json(t) FROM {table} t ORDER BY id"),
    )? {
        let [id, json] =
            <[String; 2]>::try_from(row).map_err(|r| anyhow::anyhow!("bad row {r:?}"))?;
        out.insert(id.parse()?, json);
    }
    Ok(out)
}
