//! The "values v1" serde forms, checked on the MessagePack bytes rmp-serde writes.

use walcast_decoder::value::{decode_binary, decode_text, oid, VALUES_FORMAT_VERSION};
use walcast_decoder::Value;

fn mp(v: &Value<'_>) -> Vec<u8> {
    rmp_serde::to_vec(v).expect("serialize")
}

#[test]
fn scalars_use_compact_native_forms() {
    assert_eq!(VALUES_FORMAT_VERSION, "values v1");
    assert_eq!(mp(&Value::Null), [0xc0]);
    assert_eq!(mp(&Value::Bool(true)), [0xc3]);
    assert_eq!(mp(&Value::Int4(5)), [0x05]);
    assert_eq!(mp(&Value::Int8(-1)), [0xff]);
    assert_eq!(mp(&Value::Int8(1 << 40)), [0xcf, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        mp(&Value::Float8(1.5)),
        [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(mp(&Value::Float4(1.5)), [0xca, 0x3f, 0xc0, 0, 0]);
    // NaN stays a float, not a string.
    assert_eq!(mp(&Value::Float8(f64::NAN))[0], 0xcb);
    assert_eq!(mp(&Value::Money(-150)), [0xd1, 0xff, 0x6a]);
    assert_eq!(mp(&Value::Oid(7)), [0x07]);
    // bytea is bin 8, not an array of numbers.
    assert_eq!(
        mp(&decode_text(oid::BYTEA, b"\\x0102").unwrap()),
        [0xc4, 2, 1, 2]
    );
    assert_eq!(mp(&decode_binary(9999, &[0xab]).unwrap()), [0xc4, 1, 0xab]);
}

#[test]
fn text_like_types_are_strings() {
    let s = |v: &Value<'_>| -> String {
        rmp_serde::from_slice::<String>(&mp(v)).expect("a msgpack string")
    };
    assert_eq!(
        s(&decode_text(oid::NUMERIC, b"-12.3400").unwrap()),
        "-12.3400"
    );
    assert_eq!(s(&decode_text(oid::TEXT, b"h\xc3\xa9").unwrap()), "hé");
    assert_eq!(
        s(&decode_text(oid::JSONB, br#"{"a": 1}"#).unwrap()),
        r#"{"a": 1}"#
    );
    assert_eq!(
        s(&decode_text(oid::TIMESTAMPTZ, b"2024-05-01 12:00:00.5+02").unwrap()),
        "2024-05-01T10:00:00.5+00:00"
    );
    assert_eq!(
        s(&decode_text(oid::TIMESTAMP, b"0044-03-15 12:00:00 BC").unwrap()),
        "0044-03-15T12:00:00 BC"
    );
    assert_eq!(s(&decode_text(oid::DATE, b"infinity").unwrap()), "infinity");
    assert_eq!(
        s(&decode_text(oid::TIMETZ, b"12:00:00+05:30").unwrap()),
        "12:00:00+05:30"
    );
    assert_eq!(
        s(&decode_text(oid::INTERVAL, b"1 year 2 mons").unwrap()),
        "1 year 2 mons"
    );
    assert_eq!(
        s(&decode_text(oid::UUID, b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    assert_eq!(
        s(&decode_text(oid::INET, b"::ffff:1.2.3.4/120").unwrap()),
        "::ffff:1.2.3.4/120"
    );
    assert_eq!(
        s(&decode_text(oid::MACADDR, b"08:00:2b:01:02:03").unwrap()),
        "08:00:2b:01:02:03"
    );
    assert_eq!(s(&decode_text(oid::VARBIT, b"101").unwrap()), "101");
    assert_eq!(s(&decode_text(99_999, b"happy").unwrap()), "happy");
}

#[test]
fn arrays_nest_by_dimension() {
    let v = decode_text(oid::INT4_ARRAY, b"[0:1][1:2]={{1,2},{3,NULL}}").unwrap();
    let back: Vec<Vec<Option<i32>>> = rmp_serde::from_slice(&mp(&v)).unwrap();
    assert_eq!(back, vec![vec![Some(1), Some(2)], vec![Some(3), None]]);
    let v = decode_text(oid::TEXT_ARRAY, b"{}").unwrap();
    assert_eq!(mp(&v), [0x90]);
    let v = decode_text(oid::INT4_ARRAY, b"{{{1},{2}},{{3},{4}}}").unwrap();
    let back: Vec<Vec<Vec<i32>>> = rmp_serde::from_slice(&mp(&v)).unwrap();
    assert_eq!(back, vec![vec![vec![1], vec![2]], vec![vec![3], vec![4]]]);
    // serde_json sees the same structure as to_json (minus lower bounds).
    let v = decode_text(oid::FLOAT8_ARRAY, b"{1.5,NULL}").unwrap();
    assert_eq!(serde_json::to_string(&v).unwrap(), "[1.5,null]");
}

#[test]
fn owned_copies_outlive_the_buffer() {
    let owned = {
        let buf = b"{\"a b\",c}".to_vec();
        decode_text(oid::TEXT_ARRAY, &buf)
            .unwrap()
            .to_owned_static()
    };
    assert_eq!(owned.to_json_string(), r#"["a b","c"]"#);
    assert_eq!(owned.clone().into_owned(), owned);
}
