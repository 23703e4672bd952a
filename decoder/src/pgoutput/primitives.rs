//! The wire primitives of pgoutput (big-endian integers, NUL-terminated strings, counted bytes),
//! as nom parsers whose errors carry a typed [`ErrorKind`] and the position of the failure.
//!
//! Positions are kept as "bytes remaining" while parsing, because that is what a nom parser
//! sees; [`PErr::into_decode_error`] turns them into offsets from the start of the message.

use nom::IResult;

use crate::{DecodeError, ErrorKind};

/// A parse failure `remaining` bytes before the end of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PErr {
    pub remaining: usize,
    pub kind: ErrorKind,
    pub context: &'static str,
}

impl PErr {
    pub fn at(input: &[u8], kind: ErrorKind, context: &'static str) -> nom::Err<PErr> {
        nom::Err::Error(PErr {
            remaining: input.len(),
            kind,
            context,
        })
    }

    pub fn into_decode_error(self, total_len: usize) -> DecodeError {
        DecodeError::new(
            total_len.saturating_sub(self.remaining),
            self.kind,
            self.context,
        )
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for PErr {
    fn from_error_kind(input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        PErr {
            remaining: input.len(),
            kind: ErrorKind::Truncated { needed: 1 },
            context: "",
        }
    }

    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type IRes<'a, T> = IResult<&'a [u8], T, PErr>;

/// Converts a nom result's error into a [`DecodeError`] with an offset into a message of `total_len` bytes.
pub(crate) fn finish<T>(res: Result<T, nom::Err<PErr>>, total_len: usize) -> crate::Result<T> {
    res.map_err(|e| match e {
        nom::Err::Error(p) | nom::Err::Failure(p) => p.into_decode_error(total_len),
        // Only streaming parsers report Incomplete; we use complete ones, but stay total.
        nom::Err::Incomplete(n) => DecodeError::new(
            total_len,
            ErrorKind::Truncated {
                needed: match n {
                    nom::Needed::Size(s) => s.get(),
                    nom::Needed::Unknown => 1,
                },
            },
            "",
        ),
    })
}

#[inline]
fn need(i: &[u8], n: usize, context: &'static str) -> nom::Err<PErr> {
    PErr::at(
        i,
        ErrorKind::Truncated {
            needed: n - i.len(),
        },
        context,
    )
}

#[inline]
pub(crate) fn take<'a>(i: &'a [u8], n: usize, context: &'static str) -> IRes<'a, &'a [u8]> {
    if i.len() < n {
        return Err(need(i, n, context));
    }
    let (head, rest) = i.split_at(n);
    Ok((rest, head))
}

#[inline]
pub(crate) fn u8_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, u8> {
    nom::number::complete::be_u8::<_, PErr>(i).map_err(|_| need(i, 1, context))
}

#[inline]
pub(crate) fn u16_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, u16> {
    nom::number::complete::be_u16::<_, PErr>(i).map_err(|_| need(i, 2, context))
}

#[inline]
pub(crate) fn u32_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, u32> {
    nom::number::complete::be_u32::<_, PErr>(i).map_err(|_| need(i, 4, context))
}

#[inline]
pub(crate) fn i32_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, i32> {
    nom::number::complete::be_i32::<_, PErr>(i).map_err(|_| need(i, 4, context))
}

#[inline]
pub(crate) fn u64_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, u64> {
    nom::number::complete::be_u64::<_, PErr>(i).map_err(|_| need(i, 8, context))
}

#[inline]
pub(crate) fn i64_<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, i64> {
    nom::number::complete::be_i64::<_, PErr>(i).map_err(|_| need(i, 8, context))
}

#[inline]
pub(crate) fn lsn<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, crate::Lsn> {
    let (i, v) = u64_(i, context)?;
    Ok((i, crate::Lsn(v)))
}

/// A NUL-terminated UTF-8 string, borrowed from the input without its terminator.
pub(crate) fn cstr<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, &'a str> {
    let Some(nul) = i.iter().position(|&b| b == 0) else {
        return Err(PErr::at(
            &i[i.len()..],
            ErrorKind::UnterminatedString,
            context,
        ));
    };
    let bytes = &i[..nul];
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((&i[nul + 1..], s)),
        Err(e) => Err(PErr::at(
            &i[e.valid_up_to()..],
            ErrorKind::InvalidUtf8,
            context,
        )),
    }
}

/// The rest of the input must be empty.
pub(crate) fn end<'a>(i: &'a [u8], context: &'static str) -> IRes<'a, ()> {
    if i.is_empty() {
        Ok((i, ()))
    } else {
        Err(PErr::at(i, ErrorKind::TrailingBytes(i.len()), context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_integer_names_needed_bytes_and_position() {
        let msg = [1u8, 2, 3];
        let e = finish(u32_(&msg[1..], "x"), msg.len()).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(1, ErrorKind::Truncated { needed: 2 }, "x")
        );
    }

    #[test]
    fn cstr_borrows_and_reports_bad_input() {
        let (rest, s) = cstr(b"ab\0c", "s").unwrap();
        assert_eq!((s, rest), ("ab", &b"c"[..]));
        let msg = b"abc";
        let e = finish(cstr(msg, "s"), msg.len()).unwrap_err();
        assert_eq!((e.offset, e.kind), (3, ErrorKind::UnterminatedString));
        let msg = b"a\xffb\0";
        let e = finish(cstr(msg, "s"), msg.len()).unwrap_err();
        assert_eq!((e.offset, e.kind), (1, ErrorKind::InvalidUtf8));
    }
}
