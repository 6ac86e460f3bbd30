//! The handshake's header fields as an open session keeps them until its record is made:
//! the record's [`Fields`] encoding with the common names and values of an Upgrade (RFC
//! 6455 §4.1, §4.2.2; RFC 7692) as one-character tokens, values equal to a text the session
//! keeps anyway (host, origin, user agent, subprotocol …) as a reference to it, and a
//! Sec-WebSocket-Accept computed from the request's key as a mark. A million open sessions
//! keep about 120 bytes each instead of about 500 (a browser's request and its answer).
//!
//! Each part (a name or a value) ends with NUL, as in [`Fields`]; it starts with
//! `DICT_TAG` and a token, `TEXT_TAG` and a slot, `ACCEPT_TAG` alone, or is literal
//! (`LITERAL_TAG` first when it starts with one of the tags). [`unpack`] gives back
//! exactly the fields [`pack`] was given.

use crate::record::Fields;

const DICT_TAG: char = '\u{1}';
const TEXT_TAG: char = '\u{2}';
const LITERAL_TAG: char = '\u{3}';
const ACCEPT_TAG: char = '\u{4}';

/// Names and values common in Upgrade requests and responses, as browsers, Go, Node,
/// Python and proxies send them. A token is `' '` plus the index (printable ASCII).
const DICT: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Accept",
    "Origin",
    "User-Agent",
    "websocket",
    "13",
    "Cache-Control",
    "Pragma",
    "no-cache",
    "Accept-Encoding",
    "Accept-Language",
    "gzip, deflate, br",
    "gzip, deflate, br, zstd",
    "Accept",
    "*/*",
    "Cookie",
    "Authorization",
    "Sec-Fetch-Dest",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Site",
    "same-origin",
    "same-site",
    "cross-site",
    "keep-alive, Upgrade",
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "Date",
    "Server",
    "Content-Type",
    "Content-Length",
    "Set-Cookie",
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "origin",
    "user-agent",
    "WebSocket",
    "Websocket",
    "en-US,en;q=0.9",
    "Sec-WebSocket-Key1",
    "Sec-WebSocket-Key2",
    "Via",
];

const _: () = assert!(DICT.len() <= 95);

/// What a value may refer to instead of repeating it (at most 10 slots).
pub type TextSlots<'a> = &'a [&'a str];

fn token(part: &str) -> Option<char> {
    DICT.iter()
        .position(|d| *d == part)
        .map(|i| char::from(b' ' + i as u8))
}

fn push_part(out: &mut String, part: &str, texts: TextSlots<'_>, accept: Option<&str>) {
    if !part.is_empty() {
        if let Some(t) = token(part) {
            out.push(DICT_TAG);
            out.push(t);
        } else if let Some(i) = texts.iter().position(|t| *t == part) {
            out.push(TEXT_TAG);
            out.push(char::from(b'0' + i as u8));
        } else if accept == Some(part) {
            out.push(ACCEPT_TAG);
        } else {
            if part.starts_with([DICT_TAG, TEXT_TAG, LITERAL_TAG, ACCEPT_TAG]) {
                out.push(LITERAL_TAG);
            }
            out.push_str(part);
        }
    }
    out.push('\0');
}

/// `fields` packed: values equal to one of `texts` refer to it; a value equal to `accept`
/// (the Sec-WebSocket-Accept the request's key calls for) is a mark.
pub fn pack(fields: &Fields, texts: TextSlots<'_>, accept: Option<&str>) -> String {
    debug_assert!(texts.len() <= 10);
    let mut out = String::new();
    for (name, value) in fields.iter() {
        push_part(&mut out, name, &[], None);
        push_part(&mut out, value, texts, accept);
    }
    out
}

/// The fields [`pack`] was given, with the same `texts` and `accept`.
pub fn unpack(packed: &str, texts: TextSlots<'_>, accept: Option<&str>) -> Fields {
    let mut enc = String::with_capacity(packed.len() * 2);
    for part in packed.split_terminator('\0') {
        let mut chars = part.chars();
        match chars.next() {
            Some(DICT_TAG) => {
                let i = chars.next().map_or(0, |c| c as usize - ' ' as usize);
                enc.push_str(DICT.get(i).copied().unwrap_or(""));
            }
            Some(TEXT_TAG) => {
                let i = chars.next().map_or(0, |c| c as usize - '0' as usize);
                enc.push_str(texts.get(i).copied().unwrap_or(""));
            }
            Some(ACCEPT_TAG) => enc.push_str(accept.unwrap_or("")),
            Some(LITERAL_TAG) => enc.push_str(chars.as_str()),
            _ => enc.push_str(part),
        }
        enc.push('\0');
    }
    Fields::from_encoded(enc)
}

/// The value of the first field named `name` (ASCII case-insensitive, RFC 9110 §5.1).
pub fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let mut f = Fields::default();
        for (n, v) in pairs {
            f.push(n, v);
        }
        f
    }

    #[test]
    fn a_browser_request_packs_small_and_comes_back() {
        let f = fields(&[
            ("Host", "chat.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "http://chat.example.com"),
            (
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            ),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ]);
        let texts = [
            "chat.example.com",
            "http://chat.example.com",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ];
        let p = pack(&f, &texts, None);
        assert!(p.len() <= 72, "{} bytes: {p:?}", p.len());
        assert_eq!(unpack(&p, &texts, None), f);
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let r = fields(&[("Upgrade", "websocket"), ("Sec-WebSocket-Accept", accept)]);
        let p = pack(&r, &[], Some(accept));
        assert_eq!(p.len(), 11);
        assert_eq!(unpack(&p, &[], Some(accept)), r);
        assert_eq!(
            field(&f, "sec-websocket-key"),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
    }

    proptest! {
        /// Any fields (tags, tokens and texts in names and values among them) come back.
        #[test]
        fn any_fields_come_back(
            pairs in prop::collection::vec(
                (
                    prop_oneof![Just("Host".to_string()), Just("\u{1}x".to_string()), ".{0,6}"],
                    prop_oneof![Just("13".to_string()), Just("t0".to_string()),
                        Just("\u{3}".to_string()), Just("acc".to_string()), ".{0,6}"],
                ),
                0..8,
            ),
            accept in prop::option::of(Just("acc")),
        ) {
            let mut f = Fields::default();
            for (n, v) in &pairs {
                f.push(n, v);
            }
            let texts = ["t0", "", "\u{2}1"];
            let p = pack(&f, &texts, accept);
            prop_assert_eq!(unpack(&p, &texts, accept), f);
        }
    }
}
