//! Built-in types outside the decoder's typed set (geometry, ranges, multiranges, text search,
//! xml, pg_lsn, reg*, xid, tid, jsonpath, int2vector/oidvector, arrays of those), on PostgreSQL 15.
//!
//! Text mode: each must print exactly as `to_json()` (the text output as a JSON string), except
//! the known gaps below. Binary mode: pgoutput sends their binary send format, which the decoder
//! does not parse; each must still decode (to `to_json()` or to some string), never fail.

mod common;

use common::decode_to_lines;
use walcast_testkit::PgCluster;
use walcast_tests::pg::{create_slots, peek_pgoutput, query_rows, run_script};
use walcast_tests::rawjson::{member_object, members};

const SCHEMA: &str = r#"
CREATE TABLE x (id int PRIMARY KEY, c_xml xml, c_tsv tsvector, c_tsq tsquery, c_point point,
  c_line line, c_lseg lseg, c_box box, c_path path, c_poly polygon, c_circle circle,
  c_r int4range, c_tr tstzrange, c_mr int4multirange, c_lsn pg_lsn, c_snap pg_snapshot,
  c_jp jsonpath, c_regclass regclass, c_regtype regtype, c_xid xid, c_xid8 xid8, c_cid cid,
  c_tid tid, c_i2v int2vector, c_oidv oidvector, c_ts_arr tstzrange[], c_point_arr point[]);
CREATE PUBLICATION p FOR TABLE x;
"#;

const ROWS: &str = r#"
INSERT INTO x VALUES (1, '<a>b</a>', 'a fat cat', 'fat & cat', '(1,2)', '{1,2,3}',
  '[(1,2),(3,4)]', '(1,2),(3,4)', '[(1,2),(3,4)]', '((1,2),(3,4),(5,6))', '<(1,2),3>', '[1,5)',
  '[2024-01-01,2024-02-01)', '{[1,2),[5,6)}', '16/B374D848', '10:20:10,14,15', '$.a[*] ? (@ > 1)',
  'pg_class', 'int4', '42', '42', '7', '(1,2)', '1 2', '1 2', '{"[2024-01-01,2024-02-01)"}',
  '{"(1,2)",NULL}');
INSERT INTO x (id) VALUES (2);
"#;

/// Text-mode values that differ from `to_json()`: `to_json()` prints int2vector/oidvector and
/// arrays of types the decoder doesn't know as JSON arrays; the decoder can't parse them from
/// the text form without knowing the element type, so it keeps the text as a string.
const KNOWN_TEXT_GAPS: [&str; 4] = ["c_i2v", "c_oidv", "c_ts_arr", "c_point_arr"];

#[test]
fn other_builtin_types_decode() {
    let pg = PgCluster::start(15).unwrap();
    run_script(&pg, SCHEMA).unwrap();
    create_slots(&pg, "s", None).unwrap();
    run_script(&pg, ROWS).unwrap();
    let expected: Vec<_> = query_rows(&pg, "SELECT to_json(x) FROM x ORDER BY id")
        .unwrap()
        .into_iter()
        .map(|r| members(&r[0]).unwrap())
        .collect();
    for binary in [false, true] {
        let msgs = peek_pgoutput(&pg, "s", "p", binary).unwrap();
        let lines = decode_to_lines(msgs.iter().map(|m| (None, m.bytes.as_slice())))
            .unwrap_or_else(|e| panic!("binary={binary}: {e}"));
        let inserts: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(r#"{"type":"insert""#))
            .collect();
        assert_eq!(inserts.len(), expected.len(), "binary={binary}");
        let mut problems = Vec::new();
        for (line, want) in inserts.into_iter().zip(&expected) {
            let got = member_object(line, "new").unwrap().unwrap_or_default();
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            for (col, w) in want {
                let g = &got[col];
                let ok = g == w
                    || (w == "null" && g == "null")
                    || (binary || KNOWN_TEXT_GAPS.contains(&col.as_str())) && g.starts_with('"');
                if !ok {
                    problems.push(format!("{col}: got {g}, expected {w}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "binary={binary}:\n{}",
            problems.join("\n")
        );
    }
}
