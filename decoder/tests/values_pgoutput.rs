//! End to end through pgoutput itself: rows inserted into a table with one column per supported
//! type are read back as raw pgoutput Insert messages (text mode and `binary 'true'` mode). Each
//! column's `t`/`b` bytes, decoded here, must print exactly what `to_json(column)` prints.
//! This checks the assumption behind the whole value layer: pgoutput's text columns are the
//! output functions' text, and its binary columns are the `send` functions' bytes.

use walcast_decoder::value::{decode_binary, decode_text, json::write_json};

/// (column type, literals for rows 1..=3). NULLs are skipped by pgoutput as `n` columns.
const COLUMNS: &[(&str, [&str; 3])] = &[
    ("bool", ["true", "false", "true"]),
    ("int2", ["-32768", "0", "32767"]),
    ("int4", ["-2147483648", "7", "2147483647"]),
    ("int8", ["-9223372036854775808", "0", "9223372036854775807"]),
    ("oid", ["0", "1", "4294967295"]),
    ("float4", ["1.5", "NaN", "-1e+30"]),
    ("float8", ["0.1", "-Infinity", "1e-300"]),
    (
        "numeric",
        ["-12.3400", "NaN", "123456789012345678901234567890.000001"],
    ),
    ("text", ["", "a\"b\\c\n\u{1}é", "NULL"]),
    ("varchar(10)", ["x", "", "ü"]),
    ("char(3)", ["a", "", "abc"]),
    ("name", ["n", "", "pg_class"]),
    ("\"char\"", ["x", "\\351", ""]),
    ("json", ["{\"a\" : [1, 2]}", "null", "\"s\""]),
    ("jsonb", ["{\"b\": 1, \"a\": [true, null]}", "[]", "1.50"]),
    ("bytea", ["\\x", "\\x00ff", "abc"]),
    (
        "uuid",
        [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ],
    ),
    ("date", ["2024-02-29", "infinity", "0044-03-15 BC"]),
    ("time", ["00:00:00", "24:00:00", "12:34:56.789"]),
    ("timetz", ["12:00:00+02", "00:00:00-05:30", "23:59:59.5+00"]),
    (
        "timestamp",
        [
            "2024-05-01 12:00:00.123456",
            "-infinity",
            "4713-01-01 00:00:00 BC",
        ],
    ),
    (
        "timestamptz",
        [
            "2024-05-01 12:00:00+02",
            "infinity",
            "0044-03-15 12:00:00+00 BC",
        ],
    ),
    (
        "interval",
        ["1 year 2 mons 3 days 04:05:06.5", "-1 days +02:00:00", "0"],
    ),
    ("inet", ["192.168.0.1/24", "::ffff:1.2.3.4", "2001:db8::1"]),
    ("cidr", ["10.0.0.0/8", "2001:db8::/32", "1.2.3.4/32"]),
    (
        "macaddr",
        [
            "08:00:2b:01:02:03",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ],
    ),
    (
        "macaddr8",
        [
            "08:00:2b:01:02:03:04:05",
            "00:00:00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff:ff:ff",
        ],
    ),
    ("money", ["1234.56", "-0.01", "0"]),
    ("bit(4)", ["1010", "0000", "1111"]),
    ("varbit", ["", "1", "101010101"]),
    ("int4[]", ["{}", "{{1,NULL},{3,4}}", "[0:1]={5,6}"]),
    ("text[]", ["{\"a b\",NULL,\"\\\"\"}", "{}", "{{x},{y}}"]),
    ("numeric[]", ["{1.50,NaN}", "{}", "{-0.001}"]),
    (
        "timestamptz[]",
        ["{\"2024-01-01 00:00:00+00\",infinity}", "{}", "{NULL}"],
    ),
    ("jsonb[]", ["{\"{\\\"a\\\": 1}\"}", "{}", "{null}"]),
    ("bytea[]", ["{\"\\\\x0102\"}", "{}", "{NULL}"]),
    (
        "uuid[]",
        ["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "{}", "{}"],
    ),
    ("interval[]", ["{\"1 day\"}", "{}", "{}"]),
    ("inet[]", ["{::1,10.0.0.1}", "{}", "{}"]),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn quote(lit: &str) -> String {
    format!("'{}'", lit.replace('\'', "''"))
}

/// The columns of a pgoutput Insert message: `I`, relation oid, `N`, column count, then per
/// column a kind byte and, for `t`/`b`, a 4-byte length and the bytes.
fn insert_columns(msg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(msg[0], b'I');
    assert_eq!(msg[5], b'N');
    let n = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut pos = 8;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = msg[pos];
        pos += 1;
        if kind == b't' || kind == b'b' {
            let len =
                u32::from_be_bytes([msg[pos], msg[pos + 1], msg[pos + 2], msg[pos + 3]]) as usize;
            pos += 4;
            cols.push((kind, msg[pos..pos + len].to_vec()));
            pos += len;
        } else {
            cols.push((kind, Vec::new()));
        }
    }
    assert_eq!(pos, msg.len(), "whole Insert consumed");
    cols
}

#[test]
fn pgoutput_text_and_binary_columns_decode_to_to_json() {
    let pg = walcast_testkit::PgCluster::start(15).expect("start PostgreSQL 15");
    let settings = "SET timezone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = 'ISO'; \
                    SET IntervalStyle = 'postgres'; SET bytea_output = 'hex';";
    let cols: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| format!("c{i} {ty}"))
        .collect();
    pg.psql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, {}); CREATE PUBLICATION p FOR TABLE t;",
        cols.join(", ")
    ))
    .unwrap();
    pg.psql("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
        .unwrap();
    // The test cluster runs with synchronous_commit=off, and logical decoding only reads
    // flushed WAL: commit synchronously so the peek below sees all three rows.
    for row in 0..3 {
        let vals: Vec<String> = COLUMNS
            .iter()
            .map(|(ty, lits)| format!("{}::{ty}", quote(lits[row])))
            .collect();
        pg.psql(&format!(
            "SET synchronous_commit = on; INSERT INTO t VALUES ({}, {})",
            row + 1,
            vals.join(", ")
        ))
        .unwrap();
    }
    // Column type OIDs as the Relation message would carry them, and to_json of every cell.
    let oids: Vec<u32> = pg
        .psql("SELECT atttypid FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 ORDER BY attnum")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let json_cols: Vec<String> = (0..COLUMNS.len())
        .map(|i| format!("encode(convert_to(to_json(c{i})::text, 'UTF8'), 'hex')"))
        .collect();
    let expected: Vec<Vec<String>> = pg
        .psql(&format!(
            "{settings} SELECT {} FROM t ORDER BY id",
            json_cols.join(", ")
        ))
        .unwrap()
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            l.split('|')
                .map(|h| String::from_utf8(unhex(h)).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(expected.len(), 3);

    let mut checked = 0;
    for binary in [false, true] {
        let opts = if binary { ", 'binary', 'true'" } else { "" };
        let out = pg
            .psql(&format!(
                "{settings} SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL, \
                 'proto_version', '1', 'publication_names', 'p'{opts})"
            ))
            .unwrap();
        let inserts: Vec<Vec<u8>> = out
            .lines()
            .filter(|l| l.starts_with("49"))
            .map(unhex)
            .collect(); // 0x49 = 'I'
        assert_eq!(inserts.len(), 3, "three Insert messages");
        for (row, msg) in inserts.iter().enumerate() {
            let cells = insert_columns(msg);
            assert_eq!(cells.len(), oids.len());
            // Skip the id column (index 0).
            for (c, ((kind, raw), oid)) in cells.iter().zip(&oids).enumerate().skip(1) {
                let (ty, lits) = COLUMNS[c - 1];
                assert_eq!(*kind, if binary { b'b' } else { b't' }, "{ty}");
                let v = if binary {
                    decode_binary(*oid, raw)
                } else {
                    decode_text(*oid, raw)
                };
                let v = v.unwrap_or_else(|e| panic!("{ty} {:?} (binary={binary}): {e}", lits[row]));
                let mut j = String::new();
                write_json(&v, &mut j);
                assert_eq!(
                    j,
                    expected[row][c - 1],
                    "{ty} {:?} (binary={binary})",
                    lits[row]
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 3 * COLUMNS.len());
    pg.psql("SELECT pg_drop_replication_slot('s')").unwrap();
}
