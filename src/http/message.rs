//! HTTP/1.1 message framing (RFC 9112 §6): where a message's body ends, so that the
//! requests and responses of a keep-alive connection can be passed over until an Upgrade.
//! Pure rules over a parsed head ([`request_body`], [`response_body`]) and a streaming
//! reader that passes over a body without copying it ([`BodyReader`]).

use super::head::Head;

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// No body (or an empty one).
    #[default]
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (a response with neither): nothing follows it.
    UntilClose,
    /// The message cannot be framed (conflicting or invalid lengths, §6.3 items 4-5).
    Invalid,
}

/// `Content-Length` as one number; repeated equal values are allowed (RFC 9110 §8.6).
fn content_length(head: &Head<'_>) -> Option<Result<u64, ()>> {
    let mut found: Option<u64> = None;
    for (n, v) in &head.fields {
        if !n.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        for part in v.split(|&c| c == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 18 {
                return Some(Err(()));
            }
            let n = part.iter().fold(0u64, |a, &d| a * 10 + (d - b'0') as u64);
            match found {
                Some(f) if f != n => return Some(Err(())),
                _ => found = Some(n),
            }
        }
    }
    found.map(Ok)
}

/// Whether `Transfer-Encoding` is present, and whether chunked is its final coding.
fn transfer_encoding(head: &Head<'_>) -> Option<bool> {
    let mut last: Option<&[u8]> = None;
    for (n, v) in &head.fields {
        if n.eq_ignore_ascii_case(b"transfer-encoding") {
            if let Some(c) = v.split(|&c| c == b',').map(<[u8]>::trim_ascii).next_back() {
                last = Some(c);
            }
        }
    }
    last.map(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// The body of a request (§6.3 items 3, 4, 6, 7): chunked, Content-Length, or none.
pub fn request_body(head: &Head<'_>) -> Body {
    match (transfer_encoding(head), content_length(head)) {
        (Some(true), _) => Body::Chunked,
        // A request whose final coding is not chunked cannot be framed (§6.3 item 4).
        (Some(false), _) => Body::Invalid,
        (None, Some(Ok(n))) => Body::Length(n),
        (None, Some(Err(()))) => Body::Invalid,
        (None, None) => Body::None,
    }
}

/// The body of a response to a request with method `method` (§6.3 items 1-7): none after
/// HEAD and for 1xx, 204 and 304; the tunnel after a 2xx to CONNECT is not HTTP any more
/// ([`Body::UntilClose`]).
pub fn response_body(method: &[u8], status: u16, head: &Head<'_>) -> Body {
    if method.eq_ignore_ascii_case(b"HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Body::None;
    }
    if method.eq_ignore_ascii_case(b"CONNECT") && (200..300).contains(&status) {
        return Body::UntilClose;
    }
    match (transfer_encoding(head), content_length(head)) {
        (Some(true), _) => Body::Chunked,
        (Some(false), _) => Body::UntilClose,
        (None, Some(Ok(n))) => Body::Length(n),
        (None, Some(Err(()))) => Body::Invalid,
        (None, None) => Body::UntilClose,
    }
}

/// Where a chunked body is (§7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Hex digits of a chunk size (the value so far, and whether a digit was seen).
    Size(u64, bool),
    /// A chunk extension or whitespace, up to the end of the size line.
    SizeLine(u64),
    /// Chunk data still to pass over.
    Data(u64),
    /// The CRLF after chunk data (`true` once the CR was seen).
    DataEnd(bool),
    /// A trailer line (`true` while the line is still empty: its end ends the message).
    Trailer(bool),
}

/// What passing over body bytes came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyProgress {
    /// All of the bytes were body; more is expected.
    More,
    /// The body ended after this many of the bytes (the rest is the next message).
    Done(usize),
    /// Not a well-formed body.
    Invalid,
}

/// Passes over one message body as it arrives, without copying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyReader {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

impl BodyReader {
    /// A reader for `body`; `None` when there is nothing to read (or it cannot be framed).
    pub fn new(body: Body) -> Option<BodyReader> {
        match body {
            Body::None | Body::Length(0) | Body::Invalid => None,
            Body::Length(n) => Some(BodyReader::Length(n)),
            Body::Chunked => Some(BodyReader::Chunked(Chunk::Size(0, false))),
            Body::UntilClose => Some(BodyReader::UntilClose),
        }
    }

    /// Passes over `d`.
    pub fn data(&mut self, d: &[u8]) -> BodyProgress {
        match self {
            BodyReader::UntilClose => BodyProgress::More,
            BodyReader::Length(n) => {
                if (d.len() as u64) < *n {
                    *n -= d.len() as u64;
                    BodyProgress::More
                } else {
                    let used = *n as usize;
                    *n = 0;
                    BodyProgress::Done(used)
                }
            }
            BodyReader::Chunked(c) => chunked(c, d),
        }
    }

    /// `n` bytes of the body are missing from the capture: passed over when their place
    /// is known (inside a length or a chunk's data), else the framing is lost (`false`).
    pub fn gap(&mut self, n: u64) -> bool {
        match self {
            BodyReader::UntilClose => true,
            BodyReader::Length(left) if n < *left => {
                *left -= n;
                true
            }
            BodyReader::Chunked(Chunk::Data(left)) if n <= *left => {
                *left -= n;
                true
            }
            _ => false,
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// The chunked-body state machine over `d` (§7.1: size line, data, CRLF, …, last chunk,
/// trailer section, empty line).
fn chunked(c: &mut Chunk, d: &[u8]) -> BodyProgress {
    let mut i = 0;
    while i < d.len() {
        let b = d[i];
        match *c {
            Chunk::Size(v, seen) => match hex(b) {
                Some(h) => {
                    if v > (u64::MAX >> 8) {
                        return BodyProgress::Invalid;
                    }
                    *c = Chunk::Size(v * 16 + h, true);
                }
                None if seen && b == b'\n' => *c = end_of_size_line(v),
                None if seen => *c = Chunk::SizeLine(v),
                None => return BodyProgress::Invalid,
            },
            Chunk::SizeLine(v) => {
                if b == b'\n' {
                    *c = end_of_size_line(v);
                }
            }
            Chunk::Data(left) => {
                let take = left.min((d.len() - i) as u64);
                i += take as usize;
                *c = if left == take {
                    Chunk::DataEnd(false)
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            Chunk::DataEnd(cr) => match b {
                b'\r' if !cr => *c = Chunk::DataEnd(true),
                b'\n' => *c = Chunk::Size(0, false),
                _ => return BodyProgress::Invalid,
            },
            Chunk::Trailer(empty) => match b {
                b'\n' if empty => return BodyProgress::Done(i + 1),
                b'\n' => *c = Chunk::Trailer(true),
                b'\r' if empty => {}
                _ => *c = Chunk::Trailer(false),
            },
        }
        i += 1;
    }
    BodyProgress::More
}

fn end_of_size_line(size: u64) -> Chunk {
    if size == 0 {
        Chunk::Trailer(true)
    } else {
        Chunk::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_head;

    fn head(raw: &[u8]) -> Head<'_> {
        parse_head(raw).unwrap().unwrap().1
    }

    #[test]
    fn framing_rules_of_rfc_9112_section_6_3() {
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request_body(&h), Body::None);
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(request_body(&h), Body::Length(12));
        let h = head(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(request_body(&h), Body::Chunked);
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(request_body(&h), Body::Invalid);
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(response_body(b"GET", 200, &h), Body::Length(5));
        assert_eq!(response_body(b"HEAD", 200, &h), Body::None);
        assert_eq!(response_body(b"GET", 304, &h), Body::None);
        assert_eq!(response_body(b"GET", 204, &h), Body::None);
        assert_eq!(response_body(b"GET", 100, &h), Body::None);
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(response_body(b"GET", 200, &h), Body::UntilClose);
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(response_body(b"GET", 200, &h), Body::Chunked);
    }

    const CHUNKED: &[u8] =
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";

    #[test]
    fn a_chunked_body_ends_where_it_ends_whatever_the_splits() {
        let body_len = CHUNKED.len() - 4;
        for cut in 0..CHUNKED.len() {
            let mut r = BodyReader::new(Body::Chunked).unwrap();
            let end = match r.data(&CHUNKED[..cut]) {
                BodyProgress::Done(n) => n,
                BodyProgress::More => match r.data(&CHUNKED[cut..]) {
                    BodyProgress::Done(n) => cut + n,
                    other => panic!("cut {cut}: {other:?}"),
                },
                BodyProgress::Invalid => panic!("cut {cut}: invalid"),
            };
            assert_eq!(end, body_len, "cut {cut}");
        }
        let mut r = BodyReader::new(Body::Chunked).unwrap();
        assert_eq!(r.data(b"zz\r\n"), BodyProgress::Invalid);
    }

    #[test]
    fn lengths_and_gaps() {
        let mut r = BodyReader::new(Body::Length(10)).unwrap();
        assert_eq!(r.data(b"12345"), BodyProgress::More);
        assert!(r.gap(3));
        assert_eq!(r.data(b"90GET"), BodyProgress::Done(2));
        let mut r = BodyReader::new(Body::Chunked).unwrap();
        assert_eq!(r.data(b"10\r\n"), BodyProgress::More);
        assert!(r.gap(16));
        assert!(!r.gap(1), "a gap over the chunk's end loses the framing");
        assert_eq!(BodyReader::new(Body::Length(0)), None);
    }
}
