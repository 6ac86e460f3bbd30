//! HTTP/1.1 message heads (RFC 9112 §2-§5): a streaming nom parser for a whole head or
//! the whole lines of a cut one, and [`HeadBuffer`], which gathers a head that arrives
//! over several deliveries (one algorithm for requests and responses).

use nom::bytes::streaming::{tag, take_till};
use nom::{IResult, Parser};

use crate::config::MAX_HEADERS;

/// One line of an HTTP head, without its line ending (CRLF, or a bare LF as RFC 9112 §2.2
/// allows recipients to accept).
fn line(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (i, l) = take_till(|c| c == b'\n').parse(i)?;
    let (i, _) = tag(&b"\n"[..]).parse(i)?;
    Ok((i, l.strip_suffix(b"\r").unwrap_or(l)))
}

/// A parsed head: the start line and the header fields, borrowed from the input.
#[derive(Debug)]
pub struct Head<'a> {
    pub start_line: &'a [u8],
    pub fields: Vec<(&'a [u8], &'a [u8])>,
}

impl Head<'_> {
    /// Value of the first field named `name` (case-insensitive), trimmed.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }

    /// All values of fields named `name`, joined by ", " (RFC 9110 §5.3).
    pub fn field_joined(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (n, v) in &self.fields {
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                let s = out.get_or_insert_with(String::new);
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str(&String::from_utf8_lossy(v));
            }
        }
        out
    }

    /// Whether a comma-separated field `name` has the token `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.fields.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(name.as_bytes())
                && v.split(|&c| c == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

/// Why a head cannot be an HTTP/1.x head.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    NotHttp,
    TooManyFields,
}

/// Parses a whole head up to and including the empty line. `Ok(None)` means more bytes
/// are needed; the head is only returned complete.
pub fn parse_head(input: &[u8]) -> Result<Option<(usize, Head<'_>)>, HeadError> {
    let mut fields = Vec::new();
    let (mut i, start_line) = match line(input) {
        Ok(x) => x,
        Err(nom::Err::Incomplete(_)) => return Ok(None),
        Err(_) => return Err(HeadError::NotHttp),
    };
    loop {
        let (rest, l) = match line(i) {
            Ok(x) => x,
            Err(nom::Err::Incomplete(_)) => return Ok(None),
            Err(_) => return Err(HeadError::NotHttp),
        };
        i = rest;
        if l.is_empty() {
            break;
        }
        let colon = l
            .iter()
            .position(|&c| c == b':')
            .ok_or(HeadError::NotHttp)?;
        let name = &l[..colon];
        if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
            return Err(HeadError::NotHttp);
        }
        if fields.len() == MAX_HEADERS {
            return Err(HeadError::TooManyFields);
        }
        fields.push((name, l[colon + 1..].trim_ascii()));
    }
    Ok(Some((input.len() - i.len(), Head { start_line, fields })))
}

/// The complete lines of a head that was cut off (by a gap or the snapshot length): the
/// start line and the fields before the cut. `None` if not even the start line is whole.
pub fn parse_head_prefix(input: &[u8]) -> Option<Head<'_>> {
    let (mut i, start_line) = line(input).ok()?;
    let mut fields = Vec::new();
    while let Ok((rest, l)) = line(i) {
        i = rest;
        if l.is_empty() || fields.len() == MAX_HEADERS {
            break;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else {
            break;
        };
        fields.push((&l[..colon], l[colon + 1..].trim_ascii()));
    }
    Some(Head { start_line, fields })
}

/// What became of a head after a delivery.
#[derive(Debug)]
pub enum HeadProgress<T> {
    /// The head is complete: what `read` made of it, and the bytes after it.
    Complete(T, Vec<u8>),
    /// More bytes are needed.
    Incomplete,
    /// More than the cap was buffered without the head ending, or the head has more
    /// header lines than a head may have.
    TooLong,
    /// Not an HTTP head.
    Invalid(HeadError),
}

/// Gathers one HTTP head over several deliveries of in-order bytes. A head that arrives
/// whole in one delivery is parsed in place, never copied; otherwise the bytes are kept,
/// up to a cap, until the empty line.
#[derive(Debug, Default)]
pub struct HeadBuffer {
    buf: Vec<u8>,
}

impl HeadBuffer {
    /// Bytes held while the head is incomplete.
    pub fn held(&self) -> &[u8] {
        &self.buf
    }

    /// What the buffer takes in memory (its capacity), for the memory budget.
    pub fn memory_charge(&self) -> usize {
        self.buf.capacity()
    }

    /// Adds `d`; when the head is complete, `read` turns it into a value (it borrows the
    /// bytes only while it runs). More than `max` bytes without an end gives `TooLong`.
    pub fn push<T>(
        &mut self,
        d: &[u8],
        max: usize,
        read: impl FnOnce(&Head<'_>) -> T,
    ) -> HeadProgress<T> {
        let was_empty = self.buf.is_empty();
        if !was_empty {
            self.buf.extend_from_slice(d);
        }
        let src: &[u8] = if was_empty { d } else { &self.buf };
        match parse_head(src) {
            Ok(Some((n, head))) => {
                let value = read(&head);
                let rest = src[n..].to_vec();
                self.buf = Vec::new();
                HeadProgress::Complete(value, rest)
            }
            Ok(None) => {
                if was_empty {
                    self.buf.extend_from_slice(d);
                }
                if self.buf.len() > max {
                    HeadProgress::TooLong
                } else {
                    HeadProgress::Incomplete
                }
            }
            Err(HeadError::TooManyFields) => {
                if was_empty {
                    self.buf.extend_from_slice(d);
                }
                HeadProgress::TooLong
            }
            Err(e) => HeadProgress::Invalid(e),
        }
    }

    /// The whole lines of the head so far, when it was cut off (a gap, a snapshot length).
    pub fn prefix(&self) -> Option<Head<'_>> {
        parse_head_prefix(&self.buf)
    }

    /// After `TooLong`: where the head ends, if it ended in what was seen — the bytes
    /// after it — else the state of a [`HeadSkip`] that goes on looking.
    pub fn overflow(&self) -> Result<Vec<u8>, HeadSkip> {
        let mut skip = HeadSkip::default();
        match skip.scan(&self.buf) {
            Some(end) => Ok(self.buf[end..].to_vec()),
            None => Err(skip),
        }
    }
}

/// Passes over the rest of a head that outgrew the buffer cap, looking for its end (the
/// empty line, RFC 9112 §2.1) without keeping its bytes, so that what follows the head can
/// still be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadSkip {
    /// 0: inside a line; 1: just after a LF; 2: just after LF CR.
    state: u8,
}

impl HeadSkip {
    /// Scans `d`; returns the offset just past the head's end if it is in `d`.
    pub fn scan(&mut self, d: &[u8]) -> Option<usize> {
        for (i, &b) in d.iter().enumerate() {
            self.state = match (self.state, b) {
                (1 | 2, b'\n') => return Some(i + 1),
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";

    fn status(h: &Head<'_>) -> Vec<u8> {
        h.start_line.to_vec()
    }

    #[test]
    fn every_split_gives_the_same_head_and_rest() {
        for cut in 0..HEAD.len() {
            let mut b = HeadBuffer::default();
            let first = b.push(&HEAD[..cut], 1024, status);
            let got = match first {
                HeadProgress::Complete(v, mut rest) => {
                    rest.extend_from_slice(&HEAD[cut..]);
                    (v, rest)
                }
                HeadProgress::Incomplete => match b.push(&HEAD[cut..], 1024, status) {
                    HeadProgress::Complete(v, rest) => (v, rest),
                    other => panic!("cut {cut}: {other:?}"),
                },
                other => panic!("cut {cut}: {other:?}"),
            };
            assert_eq!(got.0, b"HTTP/1.1 101 Switching Protocols", "cut {cut}");
            assert_eq!(got.1, b"\x81\x00", "cut {cut}");
        }
    }

    #[test]
    fn too_long_and_invalid() {
        let mut b = HeadBuffer::default();
        assert!(matches!(
            b.push(b"GET / HTTP/1.1\r\nA: b", 10, status),
            HeadProgress::TooLong
        ));
        let mut b = HeadBuffer::default();
        assert!(matches!(
            b.push(b"\x16\x03\x01 binary\n\0\n", 1024, status),
            HeadProgress::Invalid(HeadError::NotHttp)
        ));
    }

    #[test]
    fn the_end_of_a_skipped_head_is_found_across_deliveries() {
        let head = b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaa\r\n\r\nFRAMES";
        let end = head.len() - 6;
        for held in 0..end {
            for cut in held..head.len() {
                let mut s = HeadSkip::default();
                assert_eq!(s.scan(&head[..held]), None);
                let got = match s.scan(&head[held..cut]) {
                    Some(n) => held + n,
                    None => cut + s.scan(&head[cut..]).expect("end found"),
                };
                assert_eq!(got, end, "held {held} cut {cut}");
            }
        }
        let mut s = HeadSkip::default();
        assert_eq!(s.scan(b"HTTP/1.1 101 X\nA: b\n\nrest"), Some(21));
        assert_eq!(HeadSkip::default().scan(b"no end\r\n"), None);
    }

    #[test]
    fn a_head_with_too_many_lines_in_one_delivery_still_ends_where_it_ends() {
        let mut head: Vec<u8> = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\nFRAMES");
        let mut b = HeadBuffer::default();
        assert!(matches!(
            b.push(&head, 1 << 20, status),
            HeadProgress::TooLong
        ));
        assert_eq!(b.overflow().unwrap(), b"FRAMES");
        let mut b = HeadBuffer::default();
        assert!(matches!(
            b.push(&head[..100], 50, status),
            HeadProgress::TooLong
        ));
        let mut skip = b.overflow().unwrap_err();
        assert_eq!(skip.scan(&head[100..]), Some(head.len() - 100 - 6));
    }

    #[test]
    fn a_cut_head_keeps_its_whole_lines() {
        let mut b = HeadBuffer::default();
        assert!(matches!(
            b.push(&HEAD[..50], 1024, status),
            HeadProgress::Incomplete
        ));
        let h = b.prefix().unwrap();
        assert_eq!(h.start_line, b"HTTP/1.1 101 Switching Protocols");
        assert_eq!(h.fields.len(), 0);
    }
}
