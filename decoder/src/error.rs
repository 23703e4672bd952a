//! The one error type of the decoder: what went wrong, and at which byte.

use thiserror::Error;

/// Decoding failed at byte `offset` of the input handed to the failing call.
///
/// Offsets count from the start of that input (a pgoutput message, an envelope, a frame),
/// so an operator can find the bad byte in a hex dump of exactly what was fed in.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}{}", context_suffix(.context))]
pub struct DecodeError {
    pub offset: usize,
    pub kind: ErrorKind,
    /// What was being decoded, e.g. "Insert", "TupleData column 3", "numeric".
    pub context: &'static str,
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" (in {context})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("input ends early: {needed} more byte(s) needed")]
    Truncated { needed: usize },
    #[error("unknown pgoutput message tag {0:?}")]
    UnknownMessageTag(char),
    #[error("unknown tuple column kind {0:?}")]
    UnknownColumnKind(char),
    #[error("unexpected byte {found:?}, expected {expected}")]
    Unexpected { found: u8, expected: &'static str },
    #[error("string is not NUL-terminated")]
    UnterminatedString,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("length {0} is negative or larger than the input")]
    BadLength(i64),
    #[error("{0} trailing byte(s) after the message")]
    TrailingBytes(usize),
    #[error("relation {0} was not described by a Relation message before use")]
    UnknownRelation(u32),
    #[error("tuple has {found} columns but relation {relation} has {expected}")]
    ColumnCountMismatch {
        relation: u32,
        expected: usize,
        found: usize,
    },
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    #[error("bad frame checksum")]
    BadChecksum,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    #[error("message out of place: {0}")]
    OutOfPlace(&'static str),
}

impl DecodeError {
    pub fn new(offset: usize, kind: ErrorKind, context: &'static str) -> Self {
        DecodeError {
            offset,
            kind,
            context,
        }
    }

    /// The same error, seen from an enclosing input in which the failing input starts at `base`.
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }
}

pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
