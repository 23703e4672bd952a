//! Built-in type OIDs (from PostgreSQL's `pg_type.dat`; stable across versions).
//!
//! Only the types this decoder understands are listed; anything else decodes to
//! `Value::UnknownText` / `Value::UnknownBinary`.

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
/// The one-byte internal type `"char"` (not `char(n)`, which is [`BPCHAR`]).
pub const CHAR: u32 = 18;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const JSON: u32 = 114;
pub const CIDR: u32 = 650;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const MACADDR8: u32 = 774;
pub const MONEY: u32 = 790;
pub const MACADDR: u32 = 829;
pub const INET: u32 = 869;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const DATE: u32 = 1082;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const INTERVAL: u32 = 1186;
pub const TIMETZ: u32 = 1266;
pub const BIT: u32 = 1560;
pub const VARBIT: u32 = 1562;
pub const NUMERIC: u32 = 1700;
pub const UUID: u32 = 2950;
pub const JSONB: u32 = 3802;

pub const BOOL_ARRAY: u32 = 1000;
pub const BYTEA_ARRAY: u32 = 1001;
pub const CHAR_ARRAY: u32 = 1002;
pub const NAME_ARRAY: u32 = 1003;
pub const INT2_ARRAY: u32 = 1005;
pub const INT4_ARRAY: u32 = 1007;
pub const TEXT_ARRAY: u32 = 1009;
pub const BPCHAR_ARRAY: u32 = 1014;
pub const VARCHAR_ARRAY: u32 = 1015;
pub const INT8_ARRAY: u32 = 1016;
pub const FLOAT4_ARRAY: u32 = 1021;
pub const FLOAT8_ARRAY: u32 = 1022;
pub const OID_ARRAY: u32 = 1028;
pub const JSON_ARRAY: u32 = 199;
pub const CIDR_ARRAY: u32 = 651;
pub const MACADDR8_ARRAY: u32 = 775;
pub const MONEY_ARRAY: u32 = 791;
pub const MACADDR_ARRAY: u32 = 1040;
pub const INET_ARRAY: u32 = 1041;
pub const DATE_ARRAY: u32 = 1182;
pub const TIME_ARRAY: u32 = 1183;
pub const TIMESTAMP_ARRAY: u32 = 1115;
pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
pub const INTERVAL_ARRAY: u32 = 1187;
pub const TIMETZ_ARRAY: u32 = 1270;
pub const BIT_ARRAY: u32 = 1561;
pub const VARBIT_ARRAY: u32 = 1563;
pub const NUMERIC_ARRAY: u32 = 1231;
pub const UUID_ARRAY: u32 = 2951;
pub const JSONB_ARRAY: u32 = 3807;

/// `(type oid, name, array type oid)` for every scalar type this decoder understands.
pub const SCALARS: &[(u32, &str, u32)] = &[
    (BOOL, "bool", BOOL_ARRAY),
    (BYTEA, "bytea", BYTEA_ARRAY),
    (CHAR, "char", CHAR_ARRAY),
    (NAME, "name", NAME_ARRAY),
    (INT8, "int8", INT8_ARRAY),
    (INT2, "int2", INT2_ARRAY),
    (INT4, "int4", INT4_ARRAY),
    (TEXT, "text", TEXT_ARRAY),
    (OID, "oid", OID_ARRAY),
    (JSON, "json", JSON_ARRAY),
    (CIDR, "cidr", CIDR_ARRAY),
    (FLOAT4, "float4", FLOAT4_ARRAY),
    (FLOAT8, "float8", FLOAT8_ARRAY),
    (MACADDR8, "macaddr8", MACADDR8_ARRAY),
    (MONEY, "money", MONEY_ARRAY),
    (MACADDR, "macaddr", MACADDR_ARRAY),
    (INET, "inet", INET_ARRAY),
    (BPCHAR, "bpchar", BPCHAR_ARRAY),
    (VARCHAR, "varchar", VARCHAR_ARRAY),
    (DATE, "date", DATE_ARRAY),
    (TIME, "time", TIME_ARRAY),
    (TIMESTAMP, "timestamp", TIMESTAMP_ARRAY),
    (TIMESTAMPTZ, "timestamptz", TIMESTAMPTZ_ARRAY),
    (INTERVAL, "interval", INTERVAL_ARRAY),
    (TIMETZ, "timetz", TIMETZ_ARRAY),
    (BIT, "bit", BIT_ARRAY),
    (VARBIT, "varbit", VARBIT_ARRAY),
    (NUMERIC, "numeric", NUMERIC_ARRAY),
    (UUID, "uuid", UUID_ARRAY),
    (JSONB, "jsonb", JSONB_ARRAY),
];

/// The element type of a known array type, e.g. `1007` (int4[]) → `Some(23)`.
pub fn array_element(array_oid: u32) -> Option<u32> {
    SCALARS
        .iter()
        .find(|(_, _, arr)| *arr == array_oid)
        .map(|(elem, _, _)| *elem)
}

/// The array type of a known scalar type, e.g. `23` → `Some(1007)`.
pub fn array_of(elem_oid: u32) -> Option<u32> {
    SCALARS
        .iter()
        .find(|(elem, _, _)| *elem == elem_oid)
        .map(|(_, _, arr)| *arr)
}

/// The `pg_type.typname` of a known type (arrays as `_int4`-style names are not listed; see [`array_element`]).
pub fn name(type_oid: u32) -> Option<&'static str> {
    SCALARS
        .iter()
        .find(|(oid, _, _)| *oid == type_oid)
        .map(|(_, name, _)| *name)
}

/// The OID of a built-in type by its `pg_type.typname` (`int4`, or `_int4` for its array).
pub fn by_name(typname: &str) -> Option<u32> {
    match typname.strip_prefix('_') {
        Some(elem) => by_name(elem).and_then(array_of),
        None => SCALARS
            .iter()
            .find(|(_, name, _)| *name == typname)
            .map(|(oid, _, _)| *oid),
    }
}
