//! The opening handshake (RFC 6455 §4): what the report needs of the client's HTTP/1.1
//! Upgrade request and of the server's response, read out of HTTP heads (`http::head`).

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::config::{MAX_KEPT_HEADERS, MAX_KEPT_HEADER_VALUE};
use crate::record::Fields;

pub use crate::http::head::{parse_head, parse_head_prefix, Head, HeadError};

/// The GUID of RFC 6455 §1.3, appended to Sec-WebSocket-Key to form Sec-WebSocket-Accept.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Could `prefix` be the start of an HTTP GET request line? (Used to recognise the client
/// side from the first bytes of a connection.)
pub fn may_be_get(prefix: &[u8]) -> bool {
    let n = prefix.len().min(4);
    prefix[..n] == b"GET "[..n]
}

/// Could `prefix` be the start of an HTTP/1.1 request line (a method token of capital
/// letters, then a space)? Recognises the client side of an HTTP connection from its
/// first bytes (keep-alive requests may come before the Upgrade).
pub fn may_be_request(prefix: &[u8]) -> bool {
    const LONGEST_METHOD: usize = 16;
    for (i, &b) in prefix.iter().enumerate().take(LONGEST_METHOD + 1) {
        if b == b' ' {
            return i > 0;
        }
        if !b.is_ascii_uppercase() {
            return false;
        }
    }
    prefix.len() <= LONGEST_METHOD
}

/// Whether `prefix` (a direction's first bytes) may be an HTTP/1.x 101 answer: the
/// start of `HTTP/1.1 101 ` (or 1.0), as far as the bytes go.
pub fn may_be_switching_protocols(prefix: &[u8]) -> bool {
    [&b"HTTP/1.1 101 "[..], b"HTTP/1.0 101 "]
        .iter()
        .any(|line| {
            let n = prefix.len().min(line.len());
            n > 0 && prefix[..n] == line[..n]
        })
}

/// Whether `prefix` (bytes where a head may start) may be an HTTP/1.x response: the start
/// of `HTTP/`, as far as the bytes go.
pub fn may_be_response(prefix: &[u8]) -> bool {
    let n = prefix.len().min(5);
    n > 0 && prefix[..n] == b"HTTP/"[..n]
}

/// What the report needs from the Upgrade request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub host: String,
    pub origin: String,
    pub user_agent: String,
    pub key: Option<String>,
    pub version: String,
    pub protocols: String,
    pub extensions: String,
    /// `Upgrade: websocket` is present (§4.1 item 5).
    pub upgrade_websocket: bool,
    /// `Connection: Upgrade` is present (§4.1 item 6).
    pub connection_upgrade: bool,
    /// The header fields as sent (bounded; see [`kept_headers`]).
    pub headers: Fields,
}

/// What the report needs from the handshake response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub accept: Option<String>,
    pub protocol: String,
    pub extensions: String,
    pub upgrade_websocket: bool,
    /// How its body is delimited (the Upgrade is a GET): where the connection's next
    /// response starts when this one is not 101 (keep-alive, RFC 9112 §6.3).
    pub body: crate::http::message::Body,
    /// The header fields as sent (bounded; see [`kept_headers`]).
    pub headers: Fields,
}

/// A head's fields as text, for the report: at most [`MAX_KEPT_HEADERS`], each value cut
/// to [`MAX_KEPT_HEADER_VALUE`] bytes (at a character boundary, marked with `…`).
pub fn kept_headers(head: &Head<'_>) -> Fields {
    let mut f = Fields::default();
    for (n, v) in head.fields.iter().take(MAX_KEPT_HEADERS) {
        let mut v = String::from_utf8_lossy(v).into_owned();
        if v.len() > MAX_KEPT_HEADER_VALUE {
            let mut cut = MAX_KEPT_HEADER_VALUE;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
            v.push('…');
        }
        f.push(&String::from_utf8_lossy(n), &v);
    }
    f
}

fn text(v: Option<&[u8]>) -> String {
    v.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Reads an Upgrade request out of a head; `None` if the start line is not a request.
pub fn request(head: &Head<'_>) -> Option<Request> {
    let mut parts = head
        .start_line
        .split(|&c| c == b' ')
        .filter(|p| !p.is_empty());
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/") {
        return None;
    }
    Some(Request {
        method: String::from_utf8_lossy(method).into_owned(),
        path: String::from_utf8_lossy(target).into_owned(),
        host: text(head.field("host")),
        origin: text(
            head.field("origin")
                .or_else(|| head.field("sec-websocket-origin")),
        ),
        user_agent: text(head.field("user-agent")),
        key: head
            .field("sec-websocket-key")
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        version: text(head.field("sec-websocket-version")),
        protocols: head
            .field_joined("sec-websocket-protocol")
            .unwrap_or_default(),
        extensions: head
            .field_joined("sec-websocket-extensions")
            .unwrap_or_default(),
        upgrade_websocket: head.has_token("upgrade", "websocket"),
        connection_upgrade: head.has_token("connection", "upgrade"),
        headers: kept_headers(head),
    })
}

/// Reads a response out of a head; `None` if the start line is not an HTTP status line.
pub fn response(head: &Head<'_>) -> Option<Response> {
    let l = head.start_line;
    if !l.starts_with(b"HTTP/") {
        return None;
    }
    let mut parts = l.split(|&c| c == b' ').filter(|p| !p.is_empty());
    parts.next()?;
    let code = parts.next()?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |a, &d| a * 10 + (d - b'0') as u16);
    Some(Response {
        status,
        accept: head
            .field("sec-websocket-accept")
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        protocol: head
            .field_joined("sec-websocket-protocol")
            .unwrap_or_default(),
        extensions: head
            .field_joined("sec-websocket-extensions")
            .unwrap_or_default(),
        upgrade_websocket: head.has_token("upgrade", "websocket"),
        headers: kept_headers(head),
        body: crate::http::message::response_body(b"GET", status, head),
    })
}

/// The Sec-WebSocket-Accept value a server must send for `key` (§4.2.2 item 5.4).
pub fn accept_for_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] =
        b"GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n\
Sec-WebSocket-Version: 13\r\n\r\n\x81\x85";

    #[test]
    fn rfc6455_accept_example() {
        assert_eq!(
            accept_for_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn request_fields() {
        let (n, head) = parse_head(REQ).unwrap().unwrap();
        assert_eq!(&REQ[n..], b"\x81\x85");
        let r = request(&head).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat?x=1");
        assert_eq!(r.host, "server.example.com");
        assert_eq!(r.protocols, "chat, superchat");
        assert!(r.upgrade_websocket && r.connection_upgrade);
        assert_eq!(r.key.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn every_split_is_incomplete_until_the_end() {
        let end = REQ.len() - 2;
        for n in 0..end {
            assert!(matches!(parse_head(&REQ[..n]), Ok(None)), "prefix {n}");
        }
        assert!(parse_head(&REQ[..end]).unwrap().is_some());
    }

    #[test]
    fn response_status_and_accept() {
        let raw =
            b"HTTP/1.1 101 Switching Protocols\nUpgrade: WebSocket\nSec-WebSocket-Accept: abc\n\n";
        let (n, head) = parse_head(raw).unwrap().unwrap();
        assert_eq!(n, raw.len());
        let r = response(&head).unwrap();
        assert_eq!(
            (r.status, r.accept.as_deref(), r.upgrade_websocket),
            (101, Some("abc"), true)
        );
        assert!(parse_head(b"\x16\x03\x01 binary\n\0\n").is_err());
    }

    #[test]
    fn cut_heads_keep_their_whole_lines() {
        let h = parse_head_prefix(&REQ[..60]).unwrap();
        assert_eq!(h.start_line, b"GET /chat?x=1 HTTP/1.1");
        assert_eq!(h.fields.len(), 1);
        assert_eq!(request(&h).unwrap().host, "server.example.com");
        assert!(parse_head_prefix(b"GET /chat?x=1 HTT").is_none());
    }

    #[test]
    fn request_prefix() {
        assert!(may_be_request(b"GE"));
        assert!(may_be_request(b"POST /x HTTP/1.1"));
        assert!(may_be_request(b"OPTIONS "));
        assert!(!may_be_request(b" GET"));
        assert!(!may_be_request(b"\x16\x03"));
        assert!(!may_be_request(b"get / HTTP/1.1"));
        assert!(!may_be_request(b"ABCDEFGHIJKLMNOPQ "));
    }

    #[test]
    fn get_prefix() {
        assert!(may_be_get(b"GE"));
        assert!(may_be_get(b"GET /"));
        assert!(!may_be_get(b"POST"));
        assert!(!may_be_get(b"\x16\x03"));
    }
}
