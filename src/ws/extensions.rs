//! The negotiated extensions (RFC 6455 §9.1): the parameters of permessage-deflate
//! (RFC 7692 §7.1) in the server's Sec-WebSocket-Extensions, the only place where they
//! are final (the request only offers).
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" ( token | quoted-string ) ]
//! ```

/// Window bits when a `*_max_window_bits` parameter is absent (RFC 7692 §7.1.2).
pub const DEFAULT_WINDOW_BITS: u8 = 15;

/// The permessage-deflate parameters the server accepted. Each direction has its own:
/// `server_*` govern server→client messages, `client_*` client→server ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    /// §7.1.1.1: the server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// §7.1.1.2: the client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// §7.1.2.1: base-2 logarithm of the server's LZ77 window (8..=15).
    pub server_max_window_bits: u8,
    /// §7.1.2.2: base-2 logarithm of the client's LZ77 window (8..=15).
    pub client_max_window_bits: u8,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: DEFAULT_WINDOW_BITS,
            client_max_window_bits: DEFAULT_WINDOW_BITS,
        }
    }
}

/// Window bits from a parameter value: 8..=15 (§7.1.2), else the largest window, which
/// inflates whatever a smaller one would (a bad value makes the client fail the
/// connection, §7.1.2.2; the report then shows what was sent).
fn window_bits(v: Option<&str>) -> u8 {
    match v.and_then(|v| v.parse::<u8>().ok()) {
        Some(b @ 8..=15) => b,
        _ => DEFAULT_WINDOW_BITS,
    }
}

/// Splits `s` at `sep` outside quoted strings.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// The permessage-deflate parameters of a response's Sec-WebSocket-Extensions value
/// (several header lines joined by ", "), if the server accepted the extension.
pub fn permessage_deflate(value: &str) -> Option<Deflate> {
    for ext in split_unquoted(value, ',') {
        let mut parts = split_unquoted(ext, ';');
        let name = parts.next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("permessage-deflate") {
            continue;
        }
        let mut d = Deflate::default();
        for p in parts {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (p.trim(), None),
            };
            match k.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => d.server_no_context_takeover = true,
                "client_no_context_takeover" => d.client_no_context_takeover = true,
                "server_max_window_bits" => d.server_max_window_bits = window_bits(v),
                "client_max_window_bits" => d.client_max_window_bits = window_bits(v),
                _ => {}
            }
        }
        return Some(d);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_per_direction() {
        let d = permessage_deflate(
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        )
        .unwrap();
        assert_eq!(
            (d.server_max_window_bits, d.client_max_window_bits),
            (12, 12)
        );
        assert!(!d.server_no_context_takeover && !d.client_no_context_takeover);

        let d = permessage_deflate(
            "x-foo, Permessage-Deflate ; client_no_context_takeover;server_max_window_bits=\"10\"",
        )
        .unwrap();
        assert!(d.client_no_context_takeover && !d.server_no_context_takeover);
        assert_eq!(
            (d.server_max_window_bits, d.client_max_window_bits),
            (10, 15)
        );

        let d = permessage_deflate("permessage-deflate").unwrap();
        assert_eq!(d, Deflate::default());
        assert_eq!(
            permessage_deflate("permessage-deflate; server_max_window_bits=99")
                .unwrap()
                .server_max_window_bits,
            15
        );
    }

    #[test]
    fn other_extensions_are_not_deflate() {
        assert_eq!(permessage_deflate(""), None);
        assert_eq!(permessage_deflate("x-webkit-deflate-frame"), None);
        assert_eq!(
            permessage_deflate("foo; bar=\"permessage-deflate, x\""),
            None
        );
    }
}
