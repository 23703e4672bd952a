//! Built-in type OIDs (from PostgreSQL's `pg_type.dat`; stable across versions).
