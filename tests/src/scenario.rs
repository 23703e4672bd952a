//! The SQL the tests and fixtures run: schemas (created before the slot, with their
//! publications) and workloads (run after it, so the slot sees them).

/// Every built-in type the decoder handles, an enum, domains, 1-D and 2-D arrays.
pub const TYPES_SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy "very"');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN short_text AS varchar(20);
CREATE TABLE t_types (
  id int PRIMARY KEY,
  c_bool bool, c_int2 int2, c_int4 int4, c_int8 int8, c_oid oid,
  c_float4 float4, c_float8 float8, c_numeric numeric, c_numeric_s numeric(20,6),
  c_text text, c_varchar varchar(40), c_bpchar char(6), c_name name, c_char "char",
  c_bytea bytea, c_json json, c_jsonb jsonb, c_uuid uuid,
  c_date date, c_time time, c_timetz timetz, c_timestamp timestamp, c_timestamptz timestamptz,
  c_interval interval, c_inet inet, c_cidr cidr, c_macaddr macaddr, c_macaddr8 macaddr8,
  c_money money, c_bit bit(8), c_varbit varbit,
  c_mood mood, c_posint posint, c_short_text short_text,
  a_bool bool[], a_int2 int2[], a_int4 int4[], a_int8 int8[], a_oid oid[],
  a_float4 float4[], a_float8 float8[], a_numeric numeric[],
  a_text text[], a_varchar varchar(10)[], a_bpchar char(3)[], a_name name[], a_char "char"[],
  a_bytea bytea[], a_json json[], a_jsonb jsonb[], a_uuid uuid[],
  a_date date[], a_time time[], a_timetz timetz[], a_timestamp timestamp[], a_timestamptz timestamptz[],
  a_interval interval[], a_inet inet[], a_cidr cidr[], a_macaddr macaddr[], a_macaddr8 macaddr8[],
  a_money money[], a_bit bit(4)[], a_varbit varbit[], a_mood mood[],
  m_int4 int4[][], m_text text[][], m_float8 float8[][], m_numeric numeric[][], m_timestamptz timestamptz[][]
);
"#;

/// Rows for `t_types`: ordinary values, edge values, extremes, and one row of NULLs.
pub const TYPES_ROWS: &str = r#"
INSERT INTO t_types VALUES (1,
  true, 12, 1234, 1234567890123, 42,
  1.5, 3.14159, 12.340, 12.5,
  'hello', 'varchar', 'ab', 'a_name', 'x',
  '\x0001feff', '{"a": 1, "b": [true, null]}', '{"b": [1, 2.50], "a": "x"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '2024-02-29', '13:45:30.5', '13:45:30+02', '2024-02-29 13:45:30.123456', '2024-02-29 13:45:30.123456+02',
  '1 year 2 mons 3 days 04:05:06.789', '192.168.1.10/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
  '1234.56', B'10101010', B'101',
  'ok', 7, 'domain text',
  '{true,false,NULL}', '{1,-2,NULL}', '{1,2,3}', '{9223372036854775807,NULL}', '{1,4294967295}',
  '{1.5,NaN,Infinity,-Infinity,NULL}', '{0.1,-0,1e300,NULL}', '{1.50,NaN,-0.001,NULL}',
  '{"plain","with space","with,comma","with \"quote\"","back\\slash",NULL,"NULL",""}', '{a,b}', '{ab,"c "}', '{n1,n2}', '{a,b}',
  '{"\\x00ff",NULL,"\\x"}', ARRAY['{"a":1}'::json, '[1, 2]'::json, NULL], '{"{\"k\": [1, 2]}",NULL,"3"}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
  '{2024-01-01,infinity,NULL}', '{00:00:00,23:59:59.999999}', '{"01:02:03+05:30",NULL}', '{"2024-01-01 00:00:00",NULL}', '{"2024-01-01 00:00:00+00","2000-06-30 12:00:00.5-07"}',
  '{"1 day","-00:00:01",NULL}', '{::1,10.1.2.3/16,NULL}', '{192.168.0.0/16,2001:db8::/32}', '{08:00:2b:01:02:03,NULL}', '{08:00:2b:01:02:03:04:05}',
  '{1.00,-2.50,NULL}', '{1010,NULL}', '{"",1,0101}', '{sad,"happy \"very\"",NULL}',
  '{{1,2,3},{4,NULL,6}}', '{{a,b},{"c d",NULL}}', '{{1.5,NaN},{-Infinity,0}}', '{{1.10,2},{NULL,-3.000}}', '{{"2024-01-01 00:00:00+00"},{NULL}}'
);
INSERT INTO t_types VALUES (2,
  false, -32768, -2147483648, -9223372036854775808, 4294967295,
  'NaN', 'Infinity', 'NaN', -99999999999999.999999,
  E'tab\there\nnewline "quotes" back\\slash \u00e9\u4e2d\U0001F600 ctrl\x01', '', 'a', '', E'\\',
  '\x', '  {"spaced" :  [1, 2.50, "x"] }', '{"nested": {"deep": [null, {"x": "y\u00e9"}]}, "num": 1.0e3}', '00000000-0000-0000-0000-000000000000',
  'infinity', '24:00:00', '00:00:00-15:59', 'infinity', '-infinity',
  '-1 years -2 mons +3 days -04:05:06.789', '::ffff:1.2.3.4/128', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:00',
  '-92233720368547758.08', B'00000000', B'',
  'happy "very"', 2147483647, '',
  '{}', '{}', '[0:2]={7,8,9}', '{}', '{}',
  '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}'
);
INSERT INTO t_types (id) VALUES (3);
INSERT INTO t_types VALUES (4,
  true, 32767, 2147483647, 9223372036854775807, 0,
  '-Infinity', '-Infinity', '-Infinity', 0.000001,
  'x', 'y', 'abcdef', repeat('n', 63), E'\x7f',
  '\xdeadbeef', 'null', '"just a string"', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '0044-03-15 BC', '00:00:00', '23:59:59.999999+15:59', '0044-03-15 12:00:00 BC', '0001-01-01 00:00:00+00 BC',
  '-178000000 years', '255.255.255.255', '0.0.0.0/0', '01:23:45:67:89:ab', 'ff:ff:ff:ff:ff:ff:ff:ff',
  '92233720368547758.07', B'11111111', B'1',
  'sad', 1, 'zz',
  '{NULL}', '{NULL,NULL}', '{-1}', '{-9223372036854775808}', '{0}',
  '{-0,1.17549435e-38,3.4028235e+38}', '{5e-324,1.7976931348623157e308,0.30000000000000004}', '{Infinity,-Infinity}',
  '{NULL}', '{""}', '{"   "}', '{""}', '{"\\"}',
  '{NULL}', '{null}', '{"null","[]"}', '{NULL}',
  '{-infinity,"0044-03-15 BC"}', '{24:00:00}', '{"00:00:00+00"}', '{infinity,-infinity}', '{infinity,"0001-01-01 00:00:00+00 BC"}',
  '{"-178000000 years","1 mon -1 days"}', '{NULL}', '{NULL}', '{NULL}', '{NULL}',
  '{NULL}', '{NULL}', '{NULL}', '{NULL}',
  '{{NULL}}', '{{"{","}"},{",",""}}', '{{1}}', '{{0.000000001}}', '{{-infinity}}'
);
INSERT INTO t_types (id, c_float4, c_float8, c_numeric, c_numeric_s, c_timestamptz, c_timestamp, c_date, c_time, c_interval, c_money, c_text)
VALUES
  (5, 1.17549435e-38, 1.7976931348623157e308, 123456789012345678901234567890.123456789012345678901234567890, 0,
   '1999-12-31 23:59:59.999999+00', '2000-01-01 00:00:00', '2000-01-01', '00:00:00.000001', '00:00:00', '0', 'unicode ☃'),
  (6, 3.4028235e+38, 5e-324, -0.000100, -1.5, '1970-01-01 00:00:00+00', '1899-12-31 23:59:59.999999', '1970-01-01', '12:00:00', '1000000 hours', '-0.01', ''),
  (7, -0, -0, 1e-20, 99999999999999.999999, '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31', '23:59:59', '178000000 years 11 mons 30 days 23:59:59.999999', '0.99', ' '),
  (8, 0.1, 0.1, 1e20, -0.000001, '4714-11-24 00:00:00+00 BC', '4714-11-24 00:00:00 BC', '4714-11-24 BC', '00:00:01', '-00:00:00.000001', '-92233720368547758.08', 'x');
"#;

/// Publication covering the types table (used by the `types_*` fixtures).
pub const TYPES_PUBLICATION: &str = "CREATE PUBLICATION pub_types FOR TABLE t_types;";

/// Tables for replica identities, TOAST, TRUNCATE, streaming. Only int/text columns, so that
/// test_decoding's literals and the decoder's JSON can be compared value by value.
pub const OPS_SCHEMA: &str = r#"
CREATE TABLE t_def (id int PRIMARY KEY, a text, b int);
CREATE TABLE t_full (id int, a text, b int);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_idx (id int NOT NULL, code text NOT NULL, a text);
CREATE UNIQUE INDEX t_idx_code ON t_idx (code);
ALTER TABLE t_idx REPLICA IDENTITY USING INDEX t_idx_code;
CREATE TABLE t_nothing (id int, a text);
ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;
CREATE TABLE t_toast (id int PRIMARY KEY, big text, small int);
ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE t_parent (id int PRIMARY KEY);
CREATE TABLE t_child (id int PRIMARY KEY, pid int REFERENCES t_parent);
CREATE TABLE t_seq (id serial PRIMARY KEY, a text);
CREATE TABLE t_stream (id int PRIMARY KEY, payload text);
CREATE TABLE t_prep (id int PRIMARY KEY, payload text);
CREATE TABLE t_alter (id int PRIMARY KEY, a text);
CREATE TABLE t_full_toast (id int, big text, small int);
ALTER TABLE t_full_toast REPLICA IDENTITY FULL;
ALTER TABLE t_full_toast ALTER COLUMN big SET STORAGE EXTERNAL;
"#;

/// Publications for the ops tables. A table with REPLICA IDENTITY NOTHING can only be in a
/// publication that doesn't publish UPDATE/DELETE (PostgreSQL rejects those statements otherwise).
pub const OPS_PUBLICATIONS: &str = r#"
CREATE PUBLICATION pub_ops FOR TABLE t_def, t_full, t_idx, t_toast, t_parent, t_child, t_seq, t_stream, t_prep, t_full_toast, t_alter;
CREATE PUBLICATION pub_ins FOR TABLE t_nothing WITH (publish = 'insert');
"#;

/// Replica identities, unchanged TOAST, TRUNCATE, logical messages, two-phase commit (one
/// prepared transaction large enough to be streamed: Stream Prepare), origin.
pub const OPS_WORKLOAD: &str = r#"
INSERT INTO t_def VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', NULL);
UPDATE t_def SET a = 'a2' WHERE id = 1;
UPDATE t_def SET id = 10, b = 20 WHERE id = 2;
DELETE FROM t_def WHERE id = 3;

INSERT INTO t_full VALUES (1, 'x', 1), (2, NULL, 2);
UPDATE t_full SET a = 'y' WHERE id = 1;
UPDATE t_full SET b = 3 WHERE id = 2;
DELETE FROM t_full WHERE id = 2;

INSERT INTO t_idx VALUES (1, 'k1', 'a'), (2, 'k2', 'b');
UPDATE t_idx SET a = 'a2' WHERE id = 1;
UPDATE t_idx SET code = 'k3' WHERE id = 2;
DELETE FROM t_idx WHERE code = 'k1';

INSERT INTO t_nothing VALUES (1, 'n');
UPDATE t_nothing SET a = 'n2';
DELETE FROM t_nothing;

INSERT INTO t_toast VALUES (1, repeat(md5(random()::text), 150), 1), (2, repeat(md5(random()::text), 150), 2);
UPDATE t_toast SET small = 10 WHERE id = 1;
UPDATE t_toast SET big = 'short now', small = 20 WHERE id = 2;
UPDATE t_toast SET small = 11 WHERE id = 2;
DELETE FROM t_toast WHERE id = 1;
INSERT INTO t_alter VALUES (1, 'before');
ALTER TABLE t_alter ADD COLUMN b int DEFAULT 5;
INSERT INTO t_alter VALUES (2, 'added b', 6);
UPDATE t_alter SET a = 'after add' WHERE id = 1;
ALTER TABLE t_alter DROP COLUMN a;
INSERT INTO t_alter VALUES (3, 7);
ALTER TABLE t_alter ALTER COLUMN b TYPE bigint;
INSERT INTO t_alter VALUES (4, 9000000000);
BEGIN;
ALTER TABLE t_alter RENAME COLUMN b TO c;
INSERT INTO t_alter VALUES (5, 1);
COMMIT;
INSERT INTO t_full_toast VALUES (1, repeat(md5(random()::text), 150), 1);
UPDATE t_full_toast SET small = 2;
DELETE FROM t_full_toast;

BEGIN;
INSERT INTO t_def VALUES (4, 'with message', 4);
SELECT pg_logical_emit_message(true, 'walcast', '{"req":"abc"}');
COMMIT;
SELECT pg_logical_emit_message(false, 'walcast', 'non-transactional ünïcode');

INSERT INTO t_parent VALUES (1), (2);
INSERT INTO t_child VALUES (1, 1);
TRUNCATE t_parent CASCADE;
INSERT INTO t_seq (a) VALUES ('s1'), ('s2');
TRUNCATE t_seq RESTART IDENTITY;
TRUNCATE t_parent, t_child;

BEGIN;
INSERT INTO t_def VALUES (5, 'prepared', 5);
PREPARE TRANSACTION 'walcast_gid_1';
COMMIT PREPARED 'walcast_gid_1';
BEGIN;
INSERT INTO t_def VALUES (6, 'prepared then rolled back', 6);
PREPARE TRANSACTION 'walcast_gid_2';
ROLLBACK PREPARED 'walcast_gid_2';
BEGIN;
INSERT INTO t_prep SELECT g, repeat('p', 60) || g FROM generate_series(1, 800) g;
PREPARE TRANSACTION 'walcast_gid_3';
COMMIT PREPARED 'walcast_gid_3';

SELECT pg_replication_origin_create('walcast_origin');
SELECT pg_replication_origin_session_setup('walcast_origin');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-01 00:00:00+00');
INSERT INTO t_def VALUES (7, 'from origin', 7);
COMMIT;
SELECT pg_replication_origin_session_reset();
"#;

/// A committed transaction big enough to be streamed (logical_decoding_work_mem is 64kB in the
/// testkit), with a rolled-back and a released subtransaction, followed by an aborted streamed
/// transaction, and a schema change inside it (a Relation message only valid if it commits).
/// `rows` scales the first part.
pub fn streamed_workload(rows: u32) -> String {
    let sub_lo = rows + 1;
    let sub_hi = rows + rows / 2;
    let kept_lo = sub_hi + 1;
    let kept_hi = sub_hi + 50;
    let del_lo = rows.saturating_sub(10);
    format!(
        r#"
BEGIN;
INSERT INTO t_stream SELECT g, repeat('x', 60) || g FROM generate_series(1, {rows}) g;
SAVEPOINT s1;
INSERT INTO t_stream SELECT g, repeat('y', 60) || g FROM generate_series({sub_lo}, {sub_hi}) g;
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO t_stream SELECT g, 'kept' FROM generate_series({kept_lo}, {kept_hi}) g;
RELEASE SAVEPOINT s2;
ALTER TABLE t_stream ADD COLUMN extra int DEFAULT 42;
INSERT INTO t_stream VALUES (-1, 'after the schema change', 43);
UPDATE t_stream SET payload = 'updated' WHERE id <= 10;
DELETE FROM t_stream WHERE id > {del_lo} AND id <= {rows};
SELECT pg_logical_emit_message(true, 'walcast', 'inside the streamed transaction');
COMMIT;
BEGIN;
INSERT INTO t_stream SELECT g, repeat('z', 60) FROM generate_series(1000001, 1000000 + {rows}) g;
ROLLBACK;
INSERT INTO t_stream VALUES (0, 'after the aborted one');
"#
    )
}

/// The 7-column benchmark shape.
pub const NARROW7_SCHEMA: &str = r#"
CREATE TABLE narrow7 (id int PRIMARY KEY, name text, email text, ts timestamptz, amount numeric, active bool, score float8);
CREATE PUBLICATION pub_narrow7 FOR TABLE narrow7;
"#;

/// `inserts` rows in transactions of `batch` (small enough not to be streamed), then `updates`
/// and `deletes` single-row transactions.
pub fn narrow7_workload(inserts: u32, batch: u32, updates: u32, deletes: u32) -> String {
    let mut sql = String::new();
    let mut lo = 1;
    while lo <= inserts {
        let hi = (lo + batch - 1).min(inserts);
        sql.push_str(&format!(
            "INSERT INTO narrow7 SELECT g, 'user ' || g, 'user' || g || '@example.com', \
             '2024-01-01 00:00:00+00'::timestamptz + g * interval '37 seconds', \
             round((g * 7.31)::numeric % 10000, 2), g % 3 = 0, g / 7.0 \
             FROM generate_series({lo}, {hi}) g;\n"
        ));
        lo = hi + 1;
    }
    for i in 0..updates {
        let id = (i * 7919) % inserts + 1;
        sql.push_str(&format!(
            "UPDATE narrow7 SET amount = amount + 1, score = score * 1.5, active = NOT active WHERE id = {id};\n"
        ));
    }
    for i in 0..deletes {
        sql.push_str(&format!(
            "DELETE FROM narrow7 WHERE id = {};\n",
            inserts - i
        ));
    }
    sql
}

/// A 30-column table with two large text columns: one stored out of line uncompressed, one
/// compressible. Updates that leave them alone produce unchanged-TOAST markers.
pub fn wide_toast_schema() -> String {
    let mut cols = vec![
        "id int PRIMARY KEY".to_owned(),
        "big_ext text".to_owned(),
        "big_cmp text".to_owned(),
    ];
    for i in 1..=9 {
        cols.push(format!("i{i} int"));
        cols.push(format!("s{i} text"));
        cols.push(format!("n{i} numeric"));
    }
    format!(
        "CREATE TABLE wide_toast ({});\n\
         ALTER TABLE wide_toast ALTER COLUMN big_ext SET STORAGE EXTERNAL;\n\
         CREATE PUBLICATION pub_wide FOR TABLE wide_toast;\n",
        cols.join(", ")
    )
}

/// `rows` rows inserted 5 per transaction (so they are not streamed), then updates that leave the
/// large columns alone, one that shrinks a large value, and deletes.
pub fn wide_toast_workload(rows: u32) -> String {
    let mut vals = vec![
        "g".to_owned(),
        "repeat(md5(g::text), 80)".to_owned(),
        "repeat('compressible ', 200) || g".to_owned(),
    ];
    for i in 1..=9 {
        vals.push(format!("g * {i}"));
        vals.push(format!("'s{i}-' || g"));
        vals.push(format!("(g * {i})::numeric / 8"));
    }
    let vals = vals.join(", ");
    let mut sql = String::new();
    let mut lo = 1;
    while lo <= rows {
        let hi = (lo + 4).min(rows);
        sql.push_str(&format!(
            "INSERT INTO wide_toast SELECT {vals} FROM generate_series({lo}, {hi}) g;\n"
        ));
        lo = hi + 1;
    }
    sql.push_str(
        "UPDATE wide_toast SET i1 = i1 + 1, s2 = 'changed' WHERE id % 2 = 0;\n\
         UPDATE wide_toast SET big_cmp = 'now small' WHERE id % 5 = 0;\n\
         DELETE FROM wide_toast WHERE id % 10 = 0;\n",
    );
    sql
}
