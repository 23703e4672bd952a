//! Talking to a test cluster the way the relay does: the session settings its walsender uses,
//! and raw pgoutput / test_decoding output read through the SQL slot functions.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};
use walcast_testkit::PgCluster;

/// Session settings the relay sets for its walsender. pgoutput's text mode prints values with the
/// walsender's output functions, and the decoder's text parsing relies on these; `to_json()`
/// ground truth is read under the same settings so both sides see UTC.
pub const SESSION_PGOPTIONS: &str = "-c datestyle=ISO -c intervalstyle=postgres -c timezone=UTC \
     -c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C";

/// Separators for psql's unaligned output. Values printed by test_decoding and `to_json()` can
/// contain newlines and `|`; scenarios never put ASCII US/RS control characters in data.
const FIELD_SEP: &str = "\x1f";
const RECORD_SEP: &str = "\x1e";

/// The highest pgoutput protocol version each major speaks with the options we need:
/// 2 adds streaming (14), 3 adds two-phase (15), 4 adds parallel streaming (16+).
pub fn proto_version(major: u32) -> u32 {
    match major {
        ..=14 => 2,
        15 => 3,
        _ => 4,
    }
}

/// Whether pgoutput on this major can decode two-phase transactions (PG15+, proto 3).
pub fn supports_two_phase(major: u32) -> bool {
    major >= 15
}

/// One row of `pg_logical_slot_peek_binary_changes`: the LSN PostgreSQL reports for the message,
/// the message exactly as psql prints it (`\x…`), and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub lsn: String,
    pub hex: String,
    pub bytes: Vec<u8>,
}

/// One row of `pg_logical_slot_peek_changes` from test_decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChange {
    pub lsn: String,
    pub xid: String,
    pub data: String,
}

/// Runs a multi-statement SQL script in one psql session (so BEGIN/SAVEPOINT/PREPARE and
/// session-level calls like `pg_replication_origin_session_setup` work), stopping at the first error.
pub fn run_script(pg: &PgCluster, sql: &str) -> Result<()> {
    let mut cmd = pg.psql_command();
    // The testkit turns synchronous_commit off for speed, but the slot SQL functions only read
    // WAL that is flushed: commit synchronously so a peek right after sees the whole workload.
    cmd.env("PGOPTIONS", "-c synchronous_commit=on")
        .args(["-q", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning psql")?;
    child
        .stdin
        .take()
        .context("psql stdin")?
        .write_all(sql.as_bytes())
        .context("writing the script to psql")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "psql script failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs a query under [`SESSION_PGOPTIONS`] and returns its rows, each split into fields.
pub fn query_rows(pg: &PgCluster, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut cmd = pg.psql_command();
    cmd.args(["-F", FIELD_SEP, "-R", RECORD_SEP, "-c", sql])
        .env("PGOPTIONS", SESSION_PGOPTIONS);
    let out = cmd.output().context("running psql")?;
    if !out.status.success() {
        bail!(
            "query failed ({}): {sql}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("psql output is not UTF-8")?;
    // psql ends the last record with a newline, not with the record separator.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text
        .split(RECORD_SEP)
        .map(|rec| rec.split(FIELD_SEP).map(str::to_owned).collect())
        .collect())
}

/// Creates the pgoutput slot (with two-phase decoding where pgoutput supports it) and a
/// test_decoding slot at the same point. Call after the publications exist.
pub fn create_slots(
    pg: &PgCluster,
    pgoutput_slot: &str,
    test_decoding_slot: Option<&str>,
) -> Result<()> {
    let two_phase = supports_two_phase(pg.major);
    pg.psql(&format!(
        "SELECT pg_create_logical_replication_slot('{pgoutput_slot}', 'pgoutput', false, {two_phase})"
    ))?;
    if let Some(td) = test_decoding_slot {
        pg.psql(&format!(
            "SELECT pg_create_logical_replication_slot('{td}', 'test_decoding')"
        ))?;
    }
    Ok(())
}

/// pgoutput's `streaming` option. `parallel` (PG16+, proto 4) is meant for parallel apply
/// workers, but the SQL slot functions accept it too; it changes the Stream Abort message
/// (abort LSN and time added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    On,
    Parallel,
}

/// The pgoutput options the relay would use on this major, as `'name','value'` SQL arguments.
pub fn pgoutput_options(major: u32, publications: &str, binary: bool) -> String {
    pgoutput_options_with(major, publications, binary, Streaming::On)
}

pub fn pgoutput_options_with(
    major: u32,
    publications: &str,
    binary: bool,
    streaming: Streaming,
) -> String {
    let streaming = match streaming {
        Streaming::On => "on",
        Streaming::Parallel => "parallel",
    };
    let mut opts = format!(
        "'proto_version','{}','publication_names','{publications}','messages','true','streaming','{streaming}'",
        proto_version(major)
    );
    if supports_two_phase(major) {
        opts.push_str(",'two_phase','true'");
    }
    if binary {
        opts.push_str(",'binary','true'");
    }
    opts
}

/// Waits until all WAL written so far is flushed: the slot SQL functions decode only up to the
/// flush position, and aborts and non-transactional messages don't flush by themselves.
pub fn wait_wal_flushed(pg: &PgCluster, timeout: Duration) -> Result<()> {
    let target = pg.psql("SELECT pg_current_wal_insert_lsn()")?;
    let start = Instant::now();
    loop {
        let done = pg.psql(&format!(
            "SELECT pg_current_wal_flush_lsn() >= '{}'::pg_lsn",
            target.trim()
        ))?;
        if done.trim() == "t" {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("WAL not flushed up to {} after {timeout:?}", target.trim());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every pgoutput message the slot holds, without consuming them.
pub fn peek_pgoutput(
    pg: &PgCluster,
    slot: &str,
    publications: &str,
    binary: bool,
) -> Result<Vec<RawMessage>> {
    peek_pgoutput_with(pg, slot, publications, binary, Streaming::On)
}

pub fn peek_pgoutput_with(
    pg: &PgCluster,
    slot: &str,
    publications: &str,
    binary: bool,
    streaming: Streaming,
) -> Result<Vec<RawMessage>> {
    wait_wal_flushed(pg, Duration::from_secs(30))?;
    let sql = format!(
        "SELECT lsn, data FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, NULL, {})",
        pgoutput_options_with(pg.major, publications, binary, streaming)
    );
    query_rows(pg, &sql)?
        .into_iter()
        .map(|row| match <[String; 2]>::try_from(row) {
            Ok([lsn, hex]) => {
                let bytes = decode_hex_line(&hex)?;
                Ok(RawMessage { lsn, hex, bytes })
            }
            Err(row) => bail!("unexpected peek row {row:?}"),
        })
        .collect()
}

/// Every change test_decoding reports for the slot (committed transactions only, in commit order).
pub fn peek_test_decoding(pg: &PgCluster, slot: &str) -> Result<Vec<TextChange>> {
    wait_wal_flushed(pg, Duration::from_secs(30))?;
    let sql = format!(
        "SELECT lsn, xid, data FROM pg_logical_slot_peek_changes('{slot}', NULL, NULL, \
         'include-xids','1','skip-empty-xacts','1')"
    );
    query_rows(pg, &sql)?
        .into_iter()
        .map(|row| match <[String; 3]>::try_from(row) {
            Ok([lsn, xid, data]) => Ok(TextChange { lsn, xid, data }),
            Err(row) => bail!("unexpected peek row {row:?}"),
        })
        .collect()
}

/// Parses one line as psql prints a bytea in hex output: `\x` then pairs of hex digits.
pub fn decode_hex_line(line: &str) -> Result<Vec<u8>> {
    let digits = line.strip_prefix("\\x").with_context(|| {
        format!(
            "expected \\x…, got {:?}",
            line.chars().take(20).collect::<String>()
        )
    })?;
    hex::decode(digits).context("bad hex digits")
}
