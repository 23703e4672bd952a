//! Property: for any relation and any tuple that fits it, every column kind maps to the right
//! cell — NULL to `Value::Null`, `u` to `UnchangedToast`, `n` on a non-key column of a key
//! tuple to `NotInKey` — and text columns to the value layer's own result.

mod support;

use proptest::collection::vec;
use proptest::prelude::*;
use support::encoder::{relation, Col, Msg, RelCol};
use walcast_decoder::value::decode_text;
use walcast_decoder::{Cell, Decoder, Event, Value};

const TEXT: u32 = 25;

fn col() -> impl Strategy<Value = Col> {
    prop_oneof![
        Just(Col::Null),
        Just(Col::Toast),
        "[a-z0-9 ]{0,8}".prop_map(|s| Col::Text(s.into_bytes()))
    ]
}

/// The cell a non-text column must become.
fn expected(c: &Col, key_tuple: bool, is_key: bool) -> Cell<'static> {
    match c {
        Col::Null if key_tuple && !is_key => Cell::NotInKey,
        Col::Null => Cell::Value(Value::Null),
        Col::Toast => Cell::UnchangedToast,
        Col::Text(_) | Col::Binary(_) => unreachable!("compared through the value layer"),
    }
}

fn cells_match(
    got: &[Cell<'_>],
    cols: &[Col],
    key_tuple: bool,
    keys: &[bool],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), cols.len());
    for ((g, c), &is_key) in got.iter().zip(cols).zip(keys) {
        match c {
            Col::Text(b) => {
                prop_assert_eq!(g, &Cell::Value(decode_text(TEXT, b).expect("text decodes")))
            }
            other => prop_assert_eq!(g, &expected(other, key_tuple, is_key)),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cells_follow_column_kinds(keys in vec(any::<bool>(), 1..10), seed in vec(col(), 10), streamed in any::<bool>()) {
        let n = keys.len();
        let cols: Vec<Col> = seed.into_iter().take(n).collect();
        let rel_cols = keys.iter().enumerate().map(|(i, &k)| RelCol { flags: u8::from(k), name: format!("c{i}"), type_oid: TEXT, type_modifier: -1 }).collect();
        let mut d = Decoder::new();
        let xid = if streamed {
            d.decode(&Msg::StreamStart { xid: 1, first: true }.encode()).unwrap();
            Some(1)
        } else {
            None
        };
        d.decode(&relation(xid, 7, "t", b'd', rel_cols).encode()).unwrap();

        let ins = Msg::Insert { xid, rel: 7, new: cols.clone() }.encode();
        let Event::Insert(c) = d.decode(&ins).unwrap() else { panic!("insert") };
        prop_assert_eq!(c.xid, xid);
        cells_match(&c.new.unwrap().cells, &cols, false, &keys)?;

        let del = Msg::Delete { xid, rel: 7, kind: b'K', old: cols.clone() }.encode();
        let Event::Delete(c) = d.decode(&del).unwrap() else { panic!("delete") };
        cells_match(&c.key.unwrap().cells, &cols, true, &keys)?;

        let upd = Msg::Update { xid, rel: 7, old: Some((b'O', cols.clone())), new: cols.clone() }.encode();
        let Event::Update(c) = d.decode(&upd).unwrap() else { panic!("update") };
        cells_match(&c.old.unwrap().cells, &cols, false, &keys)?;
    }
}
