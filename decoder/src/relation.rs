//! What the decoder knows about a table: the latest Relation (`R`) message for it, with the
//! names of user-defined column types from Type (`Y`) messages.

use serde::Serialize;

/// `relreplident`: which old values an Update/Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: the whole old row.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From the `relreplident` byte; `None` for a byte PostgreSQL does not send.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }

    /// The lowercase name used in the JSON output: `default`, `nothing`, `full`, `index`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Nothing => "nothing",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Index => "index",
        }
    }
}

/// A relation as last described by PostgreSQL in this walsender session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationInfo {
    /// The relation's OID on the publisher.
    pub id: u32,
    /// Schema name (`pg_catalog` when PostgreSQL sent an empty namespace).
    pub schema: String,
    pub table: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<ColumnInfo>,
}

impl RelationInfo {
    /// Index of the column named `name`, if any.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`, -1 when the type has none.
    pub type_modifier: i32,
    /// Part of the replica identity (every column under REPLICA IDENTITY FULL).
    pub is_key: bool,
    /// `schema.name` of a user-defined type, from the Type message PostgreSQL sent before the relation.
    pub type_name: Option<String>,
    /// The built-in type whose codec decodes this column: `type_oid` itself, or, for a domain
    /// over a built-in type, that base type (pgoutput's Type message for a domain names its base
    /// type, e.g. `pg_catalog.int4`). Not part of the output formats.
    #[serde(skip)]
    pub decode_oid: u32,
}
