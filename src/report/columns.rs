//! The one column table of the sessions report: each column's name, how its value is
//! read from a record, and what it means. The CSV and JSON writers, the check mode, the
//! help text and the tests all use this table; consumers match columns by name, never by
//! position.
//!
//! Value forms: booleans are `true`/`false`; a count is written whenever it is known, 0
//! included; empty means "not applicable or not knowable".
//!
//! Columns after `closed_by` are added by later work in this order, each with the form
//! given: `tls` (`1.2`/`1.3`; empty for plaintext), `tls_cipher`, `sni`, `alpn` (text).
//! With `--per-file`, the columns of [`PER_FILE_COLUMNS`] come last: `file` (text),
//! `file_tcp_stream`, `file_first_frame` (counts).

use std::fmt::Write as _;

use crate::net::Endpoint;
use crate::record::{Anomalies, Close, SessionRecord, Side, SideStats};
#[cfg(test)]
use crate::record::{CipherSuite, TlsCarries, TlsInfo, TlsState, TlsVersion};
use crate::time::{write_rfc3339_micros, write_seconds_micros};
use crate::verdict::{is_error_code, Upgrade, DEFAULT_ALLOWED_CODES};

/// One cell, typed: text writers format it, JSON keeps its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Not applicable or not knowable (CSV: empty; JSON: null).
    Empty,
    Count(u64),
    Bool(bool),
    Text(&'a str),
    Endpoint(Endpoint),
    /// A capture time (ns since the epoch), written in RFC 3339 with microseconds.
    Time(i64),
    /// A duration (ns), written in seconds with microseconds.
    Seconds(i64),
    /// Anomaly tokens (CSV: `;`-separated; JSON: an array).
    Tokens(Anomalies),
}

impl Value<'_> {
    /// Appends the CSV text form to `out`.
    pub fn write_text(&self, out: &mut String) {
        match *self {
            Value::Empty => {}
            Value::Count(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Value::Text(s) => out.push_str(s),
            Value::Endpoint(e) => {
                let _ = write!(out, "{e}");
            }
            Value::Time(ns) => write_rfc3339_micros(out, ns),
            Value::Seconds(ns) => write_seconds_micros(out, ns),
            Value::Tokens(a) => {
                for (i, t) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(';');
                    }
                    out.push_str(t.token());
                }
            }
        }
    }

    /// Whether the column holds a number that a range (`A..B`) can match.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Value::Count(_) | Value::Seconds(_))
    }
}

/// Options that change how values are read out of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowOptions {
    /// Close codes that are not errors (`error_code`): 1000, 1001, 1005 unless replaced.
    pub allowed_codes: Vec<u16>,
}

impl Default for RowOptions {
    fn default() -> Self {
        RowOptions {
            allowed_codes: DEFAULT_ALLOWED_CODES.to_vec(),
        }
    }
}

/// What a row is made of: the session's number in the report, its record, the options.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    /// 1-based, in report order.
    pub session: u64,
    pub rec: &'a SessionRecord,
    pub opts: &'a RowOptions,
}

/// A column of the sessions report.
pub struct Column {
    pub name: &'static str,
    pub value: for<'a> fn(&Row<'a>) -> Value<'a>,
    /// One line for README and `--help`: what the value means and when it is empty.
    pub meaning: &'static str,
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn opt_bool<'a>(x: Option<bool>) -> Value<'a> {
    x.map_or(Value::Empty, Value::Bool)
}

fn opt_count<'a>(x: Option<u16>) -> Value<'a> {
    x.map_or(Value::Empty, |c| Value::Count(c as u64))
}

fn opt_u64<'a>(x: Option<u64>) -> Value<'a> {
    x.map_or(Value::Empty, Value::Count)
}

fn opt_side<'a>(s: Option<Side>) -> Value<'a> {
    s.map_or(Value::Empty, |s| Value::Text(s.as_str()))
}

fn close_code<'a>(s: &SideStats) -> Value<'a> {
    s.close.as_ref().map_or(
        Value::Empty,
        |c| Value::Count(c.code.unwrap_or(1005) as u64),
    )
}

fn close_reason(s: &SideStats) -> Value<'_> {
    s.close
        .as_ref()
        .map_or(Value::Empty, |c: &Close| Value::Text(&c.reason))
}

/// Every column, in report order.
pub static COLUMNS: &[Column] = &[
    Column {
        name: "session",
        value: |r| Value::Count(r.session),
        meaning: "1, 2, 3 … in the order of the connections' first packets (--order end: in the order written)",
    },
    Column {
        name: "tcp_stream",
        value: |r| Value::Count(r.rec.tcp_stream),
        meaning: "Wireshark's tcp.stream: `tcp.stream eq N` opens the session there",
    },
    Column {
        name: "client",
        value: |r| Value::Endpoint(r.rec.client),
        meaning: "the side that sent the Upgrade request, ip:port ([v6]:port)",
    },
    Column {
        name: "server",
        value: |r| Value::Endpoint(r.rec.server),
        meaning: "the other side, ip:port",
    },
    Column {
        name: "start",
        value: |r| Value::Time(r.rec.start_ns),
        meaning: "time of the connection's first packet (RFC 3339, UTC, µs)",
    },
    Column {
        name: "end",
        value: |r| Value::Time(r.rec.end_ns),
        meaning: "time of the connection's last packet",
    },
    Column {
        name: "duration_s",
        value: |r| Value::Seconds(r.rec.end_ns - r.rec.start_ns),
        meaning: "end - start, in seconds",
    },
    Column {
        name: "http_status",
        value: |r| opt_count(r.rec.http_status()),
        meaning: "status of the answer to the Upgrade (101 = upgraded); empty when none was seen",
    },
    Column {
        name: "host",
        value: |r| Value::Text(&r.rec.host),
        meaning: "the request's Host",
    },
    Column {
        name: "path",
        value: |r| Value::Text(&r.rec.path),
        meaning: "the request target (path and query)",
    },
    Column {
        name: "subprotocol",
        value: |r| Value::Text(&r.rec.subprotocol),
        meaning: "Sec-WebSocket-Protocol of the response",
    },
    Column {
        name: "extensions",
        value: |r| Value::Text(&r.rec.extensions),
        meaning: "Sec-WebSocket-Extensions of the response (e.g. permessage-deflate)",
    },
    Column {
        name: "client_messages",
        value: |r| Value::Count(r.rec.client_side.messages),
        meaning: "complete data messages (text + binary) the client sent; a fragmented message counts once",
    },
    Column {
        name: "server_messages",
        value: |r| Value::Count(r.rec.server_side.messages),
        meaning: "complete data messages the server sent",
    },
    Column {
        name: "client_bytes",
        value: |r| Value::Count(r.rec.client_side.bytes),
        meaning: "payload bytes of the client's data messages, as on the wire",
    },
    Column {
        name: "server_bytes",
        value: |r| Value::Count(r.rec.server_side.bytes),
        meaning: "payload bytes of the server's data messages, as on the wire",
    },
    Column {
        name: "client_pings",
        value: |r| Value::Count(r.rec.client_side.pings),
        meaning: "Ping frames the client sent",
    },
    Column {
        name: "server_pings",
        value: |r| Value::Count(r.rec.server_side.pings),
        meaning: "Ping frames the server sent",
    },
    Column {
        name: "client_pongs",
        value: |r| Value::Count(r.rec.client_side.pongs),
        meaning: "Pong frames the client sent",
    },
    Column {
        name: "server_pongs",
        value: |r| Value::Count(r.rec.server_side.pongs),
        meaning: "Pong frames the server sent",
    },
    Column {
        name: "first_close_by",
        value: |r| opt_side(r.rec.verdict.first_close_by),
        meaning: "the side whose Close frame came first; empty when no Close frame was seen",
    },
    Column {
        name: "client_close_code",
        value: |r| close_code(&r.rec.client_side),
        meaning: "status code of the client's Close frame (1005 when it had none); empty without one",
    },
    Column {
        name: "client_close_reason",
        value: |r| close_reason(&r.rec.client_side),
        meaning: "reason of the client's Close frame (invalid UTF-8 bytes, C0 control characters and DEL as \\xNN)",
    },
    Column {
        name: "server_close_code",
        value: |r| close_code(&r.rec.server_side),
        meaning: "status code of the server's Close frame (1005 when it had none); empty without one",
    },
    Column {
        name: "server_close_reason",
        value: |r| close_reason(&r.rec.server_side),
        meaning: "reason of the server's Close frame (written the same way)",
    },
    Column {
        name: "close_code",
        value: |r| opt_count(r.rec.verdict.close_code),
        meaning: "RFC 6455 §7.1.5 connection close code: the first Close frame's code (1005 without one), 1006 when TCP ended with no Close frame; empty while open or when not knowable",
    },
    Column {
        name: "tcp_end",
        value: |r| Value::Text(r.rec.verdict.tcp_end.as_str()),
        meaning: "rst when any RST was seen, else fin when any FIN was seen, else open",
    },
    Column {
        name: "tcp_end_by",
        value: |r| opt_side(r.rec.verdict.tcp_end_by),
        meaning: "who sent the first packet of the kind tcp_end names (the first RST when rst, else the first FIN); empty when open",
    },
    Column {
        name: "outcome",
        value: |r| Value::Text(r.rec.verdict.outcome.as_str()),
        meaning: "clean | reset | unanswered_close | no_close_frame | open_at_end | rejected | unknown_handshake | undecrypted (see Outcomes)",
    },
    Column {
        name: "abnormal",
        value: |r| Value::Bool(r.rec.verdict.abnormal()),
        meaning: "true when the session ended without the closing handshake: reset, unanswered_close or no_close_frame",
    },
    Column {
        name: "exact",
        value: |r| Value::Bool(r.rec.exact),
        meaning: "false when a count may be a lower bound (the reason is in anomalies)",
    },
    Column {
        name: "anomalies",
        value: |r| Value::Tokens(r.rec.anomalies),
        meaning: ";-separated tokens: protocol violations and what made counts uncertain (see Anomalies)",
    },
    Column {
        name: "first_frame",
        value: |r| Value::Count(r.rec.first_packet),
        meaning: "number of the connection's first packet, as Wireshark numbers frames",
    },
    Column {
        name: "packets",
        value: |r| Value::Count(r.rec.packets),
        meaning: "packets of the connection",
    },
    Column {
        name: "client_missing_bytes",
        value: |r| Value::Count(r.rec.client_side.missing_bytes),
        meaning: "bytes of the client's stream missing from the capture (gaps, cut packets)",
    },
    Column {
        name: "server_missing_bytes",
        value: |r| Value::Count(r.rec.server_side.missing_bytes),
        meaning: "bytes of the server's stream missing from the capture",
    },
    Column {
        name: "origin",
        value: |r| Value::Text(&r.rec.origin),
        meaning: "the request's Origin",
    },
    Column {
        name: "user_agent",
        value: |r| Value::Text(&r.rec.user_agent),
        meaning: "the request's User-Agent",
    },
    Column {
        name: "error_code",
        value: |r| Value::Bool(is_error_code(r.rec.verdict.close_code, &r.opts.allowed_codes)),
        meaning: "true when close_code is set and not an allowed code (1000, 1001, 1005 unless --allow-codes replaces them)",
    },
    Column {
        name: "client_message_in_progress_at_end",
        value: |r| opt_bool(r.rec.client_side.in_progress_at_end),
        meaning: "the client had started a frame or fragmented message and not finished it when the connection or the capture ended; empty when not knowable (framing lost, no frames)",
    },
    Column {
        name: "server_message_in_progress_at_end",
        value: |r| opt_bool(r.rec.server_side.in_progress_at_end),
        meaning: "the same for the server",
    },
    Column {
        name: "handshake_seen",
        value: |r| match r.rec.upgrade {
            // TLS that could not be decrypted: whether it carried a handshake is unknown.
            Upgrade::Undecrypted => Value::Empty,
            _ => Value::Bool(r.rec.handshake_seen()),
        },
        meaning: "false when the session was picked up mid-stream (no handshake in the capture, recognised by its framing; anomaly midstream)",
    },
    Column {
        name: "requests_before_upgrade",
        value: |r| {
            if r.rec.handshake_seen() && r.rec.upgrade != Upgrade::Undecrypted {
                Value::Count(r.rec.requests_before_upgrade)
            } else {
                Value::Empty
            }
        },
        meaning: "HTTP requests on the connection before this Upgrade (keep-alive; a rejected Upgrade counts); 0 when the Upgrade came first; empty mid-stream",
    },
    Column {
        name: "client_bytes_inflated",
        value: |r| opt_u64(r.rec.client_side.bytes_inflated),
        meaning: "with permessage-deflate: application bytes of the client's complete data messages (inflated size when compressed, wire size otherwise); empty without the extension, without a seen handshake, or with --no-inflate",
    },
    Column {
        name: "server_bytes_inflated",
        value: |r| opt_u64(r.rec.server_side.bytes_inflated),
        meaning: "the same for the server's messages",
    },
    Column {
        name: "client_largest_message",
        value: |r| opt_u64(r.rec.client_side.largest_message),
        meaning: "the client's largest complete data message in application bytes (inflated when compressed; wire size without the extension); empty when not knowable",
    },
    Column {
        name: "server_largest_message",
        value: |r| opt_u64(r.rec.server_side.largest_message),
        meaning: "the same for the server's messages",
    },
    Column {
        name: "peer_session",
        value: |r| opt_u64(r.rec.peer_session),
        meaning: "the other leg's session number when both legs of a proxy are in the capture (same Sec-WebSocket-Key, the back leg's request within seconds of the front's); empty when unpaired",
    },
    Column {
        name: "closed_by",
        value: |r| r.rec.closed_by.map_or(Value::Empty, |c| Value::Text(c.as_str())),
        meaning: "client, server or proxy: who sent the earliest Close frame, FIN or RST, across both legs when paired (the proxy's own packets count as proxy); empty when nothing ended",
    },
    Column {
        name: "tls",
        value: |r| {
            r.rec
                .tls
                .as_ref()
                .and_then(|t| t.version)
                .map_or(Value::Empty, |v| Value::Text(v.as_str()))
        },
        meaning: "TLS version of a wss:// connection: 1.2 or 1.3; empty for plaintext (or when no ServerHello was seen)",
    },
    Column {
        name: "tls_cipher",
        value: |r| {
            r.rec
                .tls
                .as_ref()
                .and_then(|t| t.cipher)
                .and_then(|c| c.name())
                .map_or(Value::Empty, Value::Text)
        },
        meaning: "the TLS cipher suite, by its IANA name as Wireshark shows it",
    },
    Column {
        name: "sni",
        value: |r| r.rec.tls.as_ref().map_or(Value::Empty, |t| Value::Text(&t.sni)),
        meaning: "server_name of the TLS ClientHello; empty when none was sent",
    },
    Column {
        name: "alpn",
        value: |r| {
            r.rec
                .tls
                .as_ref()
                .and_then(|t| t.alpn.as_deref())
                .map_or(Value::Empty, Value::Text)
        },
        meaning: "the ALPN protocol the server selected; empty when none, or not knowable (TLS 1.3 without keys)",
    },
];

/// The columns `--per-file` appends after every other: where the session starts in the
/// input file that holds its first packet, as Wireshark numbers it when it opens that file
/// alone. Empty without `--per-file`.
pub static PER_FILE_COLUMNS: &[Column] = &[
    Column {
        name: "file",
        value: |r| {
            r.rec
                .file
                .as_ref()
                .map_or(Value::Empty, |f| Value::Text(&f.file))
        },
        meaning: "(--per-file) the input file that holds the connection's first packet, as given",
    },
    Column {
        name: "file_tcp_stream",
        value: |r| {
            r.rec
                .file
                .as_ref()
                .map_or(Value::Empty, |f| Value::Count(f.tcp_stream))
        },
        meaning: "(--per-file) tcp.stream of the connection when that file is opened alone",
    },
    Column {
        name: "file_first_frame",
        value: |r| {
            r.rec
                .file
                .as_ref()
                .map_or(Value::Empty, |f| Value::Count(f.first_frame))
        },
        meaning: "(--per-file) number of the connection's first packet in that file",
    },
];

/// The column named `name` (the `--per-file` columns included).
pub fn column(name: &str) -> Option<&'static Column> {
    COLUMNS
        .iter()
        .chain(PER_FILE_COLUMNS)
        .find(|c| c.name == name)
}

/// The names of every column, in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_columns_of_a_wss_row() {
        let mut rec = SessionRecord::example();
        rec.tls = Some(Box::new(TlsInfo {
            version: Some(TlsVersion::Tls13),
            cipher: Some(CipherSuite(0x1301)),
            sni: "chat.example.com".into(),
            alpn: Some("http/1.1".into()),
            alpn_offered: "h2,http/1.1".into(),
            state: TlsState::Decrypting,
            resumed: false,
            carries: TlsCarries::WebSocket,
            records: 9,
            decrypted_records: 9,
        }));
        let opts = RowOptions::default();
        let row = Row {
            session: 1,
            rec: &rec,
            opts: &opts,
        };
        let cell = |name: &str| {
            let mut s = String::new();
            (column(name).unwrap().value)(&row).write_text(&mut s);
            s
        };
        assert_eq!(cell("tls"), "1.3");
        assert_eq!(cell("tls_cipher"), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cell("sni"), "chat.example.com");
        assert_eq!(cell("alpn"), "http/1.1");
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COLUMNS.iter().chain(PER_FILE_COLUMNS) {
            assert!(seen.insert(c.name), "{} twice", c.name);
            assert!(!c.meaning.is_empty(), "{} has no meaning", c.name);
        }
    }

    #[test]
    fn every_column_of_an_example_row() {
        let rec = SessionRecord::example();
        let opts = RowOptions::default();
        let row = Row {
            session: 7,
            rec: &rec,
            opts: &opts,
        };
        let text: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let mut s = String::new();
                (c.value)(&row).write_text(&mut s);
                s
            })
            .collect();
        let got: Vec<(&str, &str)> = COLUMNS
            .iter()
            .map(|c| c.name)
            .zip(text.iter().map(String::as_str))
            .collect();
        let want = [
            ("session", "7"),
            ("tcp_stream", "0"),
            ("client", "10.0.0.1:40000"),
            ("server", "[fd79::1]:80"),
            ("start", "2023-11-14T22:13:20.000000Z"),
            ("end", "2023-11-14T22:13:20.700000Z"),
            ("duration_s", "0.700000"),
            ("http_status", "101"),
            ("host", "h"),
            ("path", "/p?x=ü"),
            ("subprotocol", "chat"),
            ("extensions", "permessage-deflate"),
            ("client_messages", "3"),
            ("server_messages", "0"),
            ("client_bytes", "4"),
            ("server_bytes", "0"),
            ("client_pings", "5"),
            ("server_pings", "0"),
            ("client_pongs", "6"),
            ("server_pongs", "0"),
            ("first_close_by", "client"),
            ("client_close_code", "1005"),
            ("client_close_reason", "bye, \"x\""),
            ("server_close_code", "1000"),
            ("server_close_reason", "ok"),
            ("close_code", "1005"),
            ("tcp_end", "rst"),
            ("tcp_end_by", "server"),
            ("outcome", "clean"),
            ("abnormal", "false"),
            ("exact", "false"),
            ("anomalies", "gap"),
            ("first_frame", "1"),
            ("packets", "12"),
            ("client_missing_bytes", "7"),
            ("server_missing_bytes", "0"),
            ("origin", ""),
            ("user_agent", "ua"),
            ("error_code", "false"),
            ("client_message_in_progress_at_end", "false"),
            ("server_message_in_progress_at_end", ""),
            ("handshake_seen", "true"),
            ("requests_before_upgrade", "2"),
            ("client_bytes_inflated", "40"),
            ("server_bytes_inflated", ""),
            ("client_largest_message", "30"),
            ("server_largest_message", ""),
            ("peer_session", "8"),
            ("closed_by", "proxy"),
            ("tls", ""),
            ("tls_cipher", ""),
            ("sni", ""),
            ("alpn", ""),
        ];
        assert_eq!(got, want);
        let per_file: Vec<String> = PER_FILE_COLUMNS
            .iter()
            .map(|c| {
                let mut s = String::new();
                (c.value)(&row).write_text(&mut s);
                s
            })
            .collect();
        assert_eq!(per_file, ["rotated/file-2.pcap", "3", "4"]);
        let rec = SessionRecord { file: None, ..rec };
        let row = Row {
            session: 7,
            rec: &rec,
            opts: &opts,
        };
        for c in PER_FILE_COLUMNS {
            assert_eq!((c.value)(&row), Value::Empty, "{}", c.name);
        }
    }
}
