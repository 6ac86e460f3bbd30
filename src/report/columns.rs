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

use super::json::Json;
use crate::net::Endpoint;
use crate::record::{
    Anomalies, Anomaly, AnomalyMarks, At, Close, ClosedBy, Fields, FileNumbers, HandshakeHeaders,
    PingRtt, SessionRecord, Side, SideStats, TcpDir, TcpEnds,
};
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
    /// A request target whose query-string values are masked (`--redact`).
    RedactedQuery(&'a str),
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
            Value::RedactedQuery(path) => redact_query(path, out),
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

/// What the outputs hide (reports get pasted into tickets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Redact {
    /// The values of `Cookie`, `Set-Cookie`, `Authorization` and `Proxy-Authorization`
    /// (the default).
    #[default]
    Secrets,
    /// Those, query-string values (the `path` column included) and payload previews
    /// (`--redact`).
    All,
    /// Nothing (`--no-redact`).
    Nothing,
}

/// Header fields whose values are secrets: written as `<redacted N bytes>`.
pub const SECRET_HEADERS: [&str; 4] = [
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
];

impl Redact {
    /// Appends a header value as the outputs write it.
    pub fn header_value(self, name: &str, value: &str, out: &mut String) {
        let secret = SECRET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name));
        if secret && self != Redact::Nothing {
            let _ = write!(out, "<redacted {} bytes>", value.len());
        } else if self == Redact::All && name.eq_ignore_ascii_case("referer") {
            redact_query(value, out);
        } else {
            out.push_str(value);
        }
    }
}

/// Writes `path` with every query-string value replaced by `<redacted>`.
pub fn redact_query(path: &str, out: &mut String) {
    let Some((p, q)) = path.split_once('?') else {
        out.push_str(path);
        return;
    };
    out.push_str(p);
    out.push('?');
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) => {
                out.push_str(k);
                out.push_str("=<redacted>");
            }
            None => out.push_str(pair),
        }
    }
}

/// Options that change how values are read out of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowOptions {
    /// Close codes that are not errors (`error_code`): 1000, 1001, 1005 unless replaced.
    pub allowed_codes: Vec<u16>,
    pub redact: Redact,
}

impl Default for RowOptions {
    fn default() -> Self {
        RowOptions {
            allowed_codes: DEFAULT_ALLOWED_CODES.to_vec(),
            redact: Redact::default(),
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
        value: |r| match r.opts.redact {
            Redact::All => Value::RedactedQuery(&r.rec.path),
            _ => Value::Text(&r.rec.path),
        },
        meaning: "the request target (path and query; query-string values masked with --redact)",
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
            if r.rec.handshake_seen()
                && r.rec.upgrade != Upgrade::Undecrypted
                && !r.rec.anomalies.contains(Anomaly::RequestNotCaptured)
            {
                Value::Count(r.rec.requests_before_upgrade)
            } else {
                Value::Empty
            }
        },
        meaning: "HTTP requests on the connection before this Upgrade (keep-alive; a rejected Upgrade counts); 0 when the Upgrade came first; empty mid-stream and when the request was not captured",
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

/// A key of the JSON Lines report beyond the columns: facts that do not fit a cell
/// (nested, typed). Written after the columns, in this order.
pub struct Extra {
    pub name: &'static str,
    pub write: fn(&Row<'_>, &mut Json),
    /// One line for README: what the value is.
    pub meaning: &'static str,
}

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn upgrade_token(u: Upgrade) -> &'static str {
    match u {
        Upgrade::Answered(_) => "answered",
        Upgrade::Unanswered => "unanswered",
        Upgrade::Inferred => "inferred",
        Upgrade::Unknown => "unknown",
        Upgrade::Midstream => "midstream",
        Upgrade::Undecrypted => "undecrypted",
    }
}

fn headers_json(j: &mut Json, head: &Fields, redact: Redact) {
    j.arr();
    let mut v = String::new();
    for (n, val) in head.iter() {
        v.clear();
        redact.header_value(n, val, &mut v);
        j.arr().str(n).str(&v).end_arr();
    }
    j.end_arr();
}

fn close_json(j: &mut Json, c: &Option<Close>) {
    match c {
        Some(c) => {
            j.obj().key("code");
            match c.code {
                Some(code) => j.u64(code as u64),
                None => j.null(),
            };
            j.key("reason")
                .str(&c.reason)
                .key("packet")
                .u64(c.at.packet)
                .key("ts")
                .time(c.at.ts_ns)
                .end_obj();
        }
        None => {
            j.null();
        }
    }
}

fn ping_rtt_json(j: &mut Json, r: &PingRtt) {
    j.obj().key("answered").u64(r.answered);
    for (k, ns) in [
        ("min_s", r.min_ns),
        ("p50_s", r.p50_ns),
        ("max_s", r.max_ns),
    ] {
        j.key(k);
        if r.answered > 0 {
            j.seconds(ns);
        } else {
            j.null();
        }
    }
    j.key("unanswered")
        .u64(r.unanswered)
        .key("first_unanswered")
        .at(r.first_unanswered)
        .end_obj();
}

fn tcp_json(j: &mut Json, t: &TcpDir) {
    j.obj()
        .key("segments")
        .u64(t.segments)
        .key("retransmitted")
        .u64(t.retransmitted)
        .key("out_of_order")
        .u64(t.out_of_order)
        .key("gaps")
        .u64(t.gaps)
        .key("unacked_bytes")
        .u64(t.unacked_bytes)
        .key("last_retransmission")
        .at(t.last_retransmission)
        .key("last_payload")
        .at(t.last_payload)
        .end_obj();
}

fn opt_u64_json(j: &mut Json, x: Option<u64>) {
    match x {
        Some(n) => j.u64(n),
        None => j.null(),
    };
}

/// The JSON-only keys, in order. Each side's facts come as `client_*` then `server_*`.
pub static EXTRAS: &[Extra] = &[
    Extra {
        name: "filter",
        write: |r, j| {
            j.str(&format!("tcp.stream eq {}", r.rec.tcp_stream));
        },
        meaning: "Wireshark display filter that opens the session",
    },
    Extra {
        name: "handshake",
        write: |r, j| {
            j.str(upgrade_token(r.rec.upgrade));
        },
        meaning: "what became of the Upgrade: answered (status in http_status), unanswered, inferred (answer not captured, the server's frames followed), unknown, midstream, undecrypted",
    },
    Extra {
        name: "handshake_headers",
        write: |r, j| {
            let h = &r.rec.handshake_headers;
            j.obj().key("request");
            headers_json(j, &h.request, r.opts.redact);
            j.key("response");
            headers_json(j, &h.response, r.opts.redact);
            j.end_obj();
        },
        meaning: "the request's and the response's header fields as [name, value] pairs (at most 32 each, values cut at 256 bytes); Cookie, Set-Cookie, Authorization and Proxy-Authorization values written as <redacted N bytes>",
    },
    Extra {
        name: "anomaly_packets",
        write: |r, j| {
            j.obj();
            for m in r.rec.anomaly_marks.iter() {
                j.key(m.anomaly.token())
                    .obj()
                    .key("first_packet")
                    .u64(m.first_packet)
                    .key("count")
                    .u64(m.count)
                    .end_obj();
            }
            j.end_obj();
        },
        meaning: "per anomaly token: the first packet where it was seen and how many times",
    },
    Extra {
        name: "client_close",
        write: |r, j| close_json(j, &r.rec.client_side.close),
        meaning: "the client's first Close frame: {code (null: none), reason, packet, ts}, or null",
    },
    Extra {
        name: "server_close",
        write: |r, j| close_json(j, &r.rec.server_side.close),
        meaning: "the server's first Close frame, the same way",
    },
    Extra {
        name: "client_fin",
        write: |r, j| {
            j.at(r.rec.tcp.client_fin);
        },
        meaning: "the client's first FIN: {packet, ts}, or null",
    },
    Extra {
        name: "server_fin",
        write: |r, j| {
            j.at(r.rec.tcp.server_fin);
        },
        meaning: "the server's first FIN",
    },
    Extra {
        name: "client_rst",
        write: |r, j| {
            j.at(r.rec.tcp.client_rst);
        },
        meaning: "the client's first RST",
    },
    Extra {
        name: "server_rst",
        write: |r, j| {
            j.at(r.rec.tcp.server_rst);
        },
        meaning: "the server's first RST",
    },
    Extra {
        name: "last_payload_before_end",
        write: |r, j| {
            j.at(r.rec.last_payload_before_end);
        },
        meaning: "the last packet with payload (either side, control frames included) before the first Close frame, FIN or RST (before the capture's end when none came)",
    },
    Extra {
        name: "client_last_data",
        write: |r, j| {
            j.at(r.rec.client_side.last_data);
        },
        meaning: "the client's last data frame (text, binary, continuation)",
    },
    Extra {
        name: "server_last_data",
        write: |r, j| {
            j.at(r.rec.server_side.last_data);
        },
        meaning: "the server's last data frame",
    },
    Extra {
        name: "client_messages_before_close",
        write: |r, j| {
            j.u64(r.rec.client_side.messages_before_close);
        },
        meaning: "data messages the client had sent when the first Close frame (either side) came; all of them without one",
    },
    Extra {
        name: "server_messages_before_close",
        write: |r, j| {
            j.u64(r.rec.server_side.messages_before_close);
        },
        meaning: "the same for the server",
    },
    Extra {
        name: "client_bytes_before_close",
        write: |r, j| {
            j.u64(r.rec.client_side.bytes_before_close);
        },
        meaning: "their payload bytes on the wire",
    },
    Extra {
        name: "server_bytes_before_close",
        write: |r, j| {
            j.u64(r.rec.server_side.bytes_before_close);
        },
        meaning: "the same for the server",
    },
    Extra {
        name: "client_unfinished_message",
        write: |r, j| opt_u64_json(j, r.rec.client_side.unfinished_message),
        meaning: "bytes announced so far of a data message the client left unfinished, or null",
    },
    Extra {
        name: "server_unfinished_message",
        write: |r, j| opt_u64_json(j, r.rec.server_side.unfinished_message),
        meaning: "the same for the server",
    },
    Extra {
        name: "client_ping_rtt",
        write: |r, j| ping_rtt_json(j, &r.rec.client_side.ping_rtt),
        meaning: "round trips of the client's pings, answered by the server's pongs in order: {answered, min_s, p50_s, max_s, unanswered, first_unanswered}",
    },
    Extra {
        name: "server_ping_rtt",
        write: |r, j| ping_rtt_json(j, &r.rec.server_side.ping_rtt),
        meaning: "the same for the server's pings",
    },
    Extra {
        name: "tls_facts",
        write: |r, j| match &r.rec.tls {
            Some(t) => {
                j.obj().key("version");
                match t.version {
                    Some(v) => j.str(v.as_str()),
                    None => j.null(),
                };
                j.key("cipher_suite");
                opt_u64_json(j, t.cipher.map(|c| c.0 as u64));
                j.key("sni").str(&t.sni).key("alpn");
                match &t.alpn {
                    Some(a) => j.str(a),
                    None => j.null(),
                };
                j.key("alpn_offered")
                    .str(&t.alpn_offered)
                    .key("state")
                    .str(t.state.as_str())
                    .key("resumed")
                    .bool(t.resumed)
                    .key("carries")
                    .str(t.carries.as_str())
                    .key("records")
                    .u64(t.records)
                    .key("decrypted_records")
                    .u64(t.decrypted_records)
                    .end_obj();
            }
            None => {
                j.null();
            }
        },
        meaning: "wss://: {version, cipher_suite (number), sni, alpn, alpn_offered, state (decrypting, no_key, decrypt_failed, unsupported_cipher, handshake_missing, handshake), resumed, carries, records, decrypted_records}; null for plaintext",
    },
    Extra {
        name: "client_tcp",
        write: |r, j| tcp_json(j, &r.rec.client_side.tcp),
        meaning: "the client's TCP segments: {segments (with payload), retransmitted, out_of_order, gaps, unacked_bytes at the end, last_retransmission, last_payload}",
    },
    Extra {
        name: "server_tcp",
        write: |r, j| tcp_json(j, &r.rec.server_side.tcp),
        meaning: "the same for the server",
    },
];

/// The `tls_facts` key read back.
fn tls_from_json(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Result<crate::record::TlsInfo, String> {
    use crate::record::{CipherSuite, TlsCarries, TlsInfo, TlsState, TlsVersion};
    use serde_json::Value as J;
    let text = |k: &str| m.get(k).and_then(J::as_str).unwrap_or_default();
    let n = |k: &str| m.get(k).and_then(J::as_u64).unwrap_or(0);
    let version = match m.get("version") {
        Some(J::String(v)) => Some(
            TlsVersion::ALL
                .into_iter()
                .find(|x| x.as_str() == v)
                .ok_or_else(|| format!("unknown TLS version {v:?}"))?,
        ),
        _ => None,
    };
    let state = TlsState::ALL
        .into_iter()
        .find(|x| x.as_str() == text("state"))
        .ok_or_else(|| format!("unknown TLS state {:?}", text("state")))?;
    let carries = TlsCarries::ALL
        .into_iter()
        .find(|x| x.as_str() == text("carries"))
        .ok_or_else(|| format!("unknown TLS carries {:?}", text("carries")))?;
    Ok(TlsInfo {
        version,
        cipher: m
            .get("cipher_suite")
            .and_then(J::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .map(CipherSuite),
        sni: text("sni").to_string(),
        alpn: m.get("alpn").and_then(J::as_str).map(str::to_string),
        alpn_offered: text("alpn_offered").to_string(),
        state,
        resumed: m.get("resumed").and_then(J::as_bool).unwrap_or(false),
        carries,
        records: n("records"),
        decrypted_records: n("decrypted_records"),
    })
}

/// Reads a `"kind": "session"` line of the JSON Lines report back into its session number
/// and record (the verdict drawn again from the facts). Times keep what the report wrote
/// (microseconds). Every field of the record is set here: a field added to the record and
/// forgotten here fails to compile.
pub fn record_from_json(
    o: &serde_json::Map<String, serde_json::Value>,
) -> Result<(u64, SessionRecord), String> {
    use serde_json::Value as J;
    let get = |k: &str| o.get(k).ok_or_else(|| format!("no {k:?}"));
    let u = |k: &str| -> Result<u64, String> {
        get(k)?
            .as_u64()
            .ok_or_else(|| format!("{k:?} is not a count"))
    };
    let opt_u = |k: &str| -> Result<Option<u64>, String> {
        match get(k)? {
            J::Null => Ok(None),
            v => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{k:?} is not a count")),
        }
    };
    let text = |k: &str| -> Result<String, String> {
        match get(k)? {
            J::Null => Ok(String::new()),
            v => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{k:?} is not text")),
        }
    };
    let time = |v: &J, k: &str| -> Result<i64, String> {
        v.as_str()
            .and_then(crate::time::parse_rfc3339)
            .ok_or_else(|| format!("{k:?} is not an RFC 3339 time"))
    };
    let seconds = |v: &J, k: &str| -> Result<i64, String> {
        v.as_f64()
            .map(|x| (x * 1e6).round() as i64 * 1000)
            .ok_or_else(|| format!("{k:?} is not seconds"))
    };
    let at_of = |v: &J, k: &str| -> Result<Option<At>, String> {
        match v {
            J::Null => Ok(None),
            J::Object(m) => Ok(Some(At {
                packet: m
                    .get("packet")
                    .and_then(J::as_u64)
                    .ok_or_else(|| format!("{k:?} has no packet"))?,
                ts_ns: time(m.get("ts").unwrap_or(&J::Null), k)?,
            })),
            _ => Err(format!("{k:?} is not a packet and time")),
        }
    };
    let at = |k: &str| at_of(get(k)?, k);
    let endpoint = |k: &str| -> Result<Endpoint, String> {
        get(k)?
            .as_str()
            .ok_or_else(|| format!("{k:?} is not an endpoint"))?
            .parse()
    };
    let close = |k: &str| -> Result<Option<Close>, String> {
        match get(k)? {
            J::Null => Ok(None),
            v @ J::Object(m) => Ok(Some(Close {
                code: match m.get("code") {
                    Some(J::Null) | None => None,
                    Some(c) => Some(
                        c.as_u64()
                            .and_then(|c| u16::try_from(c).ok())
                            .ok_or_else(|| format!("{k:?} has a bad code"))?,
                    ),
                },
                reason: m
                    .get("reason")
                    .and_then(J::as_str)
                    .unwrap_or_default()
                    .to_string(),
                at: at_of(v, k)?.expect("an object"),
            })),
            _ => Err(format!("{k:?} is not a Close frame")),
        }
    };
    let rtt = |k: &str| -> Result<PingRtt, String> {
        let m = get(k)?
            .as_object()
            .ok_or_else(|| format!("{k:?} is not an object"))?;
        let n = |f: &str| m.get(f).and_then(J::as_u64).unwrap_or(0);
        let s = |f: &str| match m.get(f) {
            Some(J::Null) | None => Ok(0),
            Some(v) => seconds(v, k),
        };
        Ok(PingRtt {
            answered: n("answered"),
            min_ns: s("min_s")?,
            p50_ns: s("p50_s")?,
            max_ns: s("max_s")?,
            unanswered: n("unanswered"),
            first_unanswered: at_of(m.get("first_unanswered").unwrap_or(&J::Null), k)?,
        })
    };
    let tcp_dir = |k: &str| -> Result<TcpDir, String> {
        let m = get(k)?
            .as_object()
            .ok_or_else(|| format!("{k:?} is not an object"))?;
        let n = |f: &str| m.get(f).and_then(J::as_u64).unwrap_or(0);
        let a = |f: &str| at_of(m.get(f).unwrap_or(&J::Null), k);
        Ok(TcpDir {
            segments: n("segments"),
            retransmitted: n("retransmitted"),
            out_of_order: n("out_of_order"),
            gaps: n("gaps"),
            unacked_bytes: n("unacked_bytes"),
            last_retransmission: a("last_retransmission")?,
            last_payload: a("last_payload")?,
        })
    };
    let opt_bool = |k: &str| -> Result<Option<bool>, String> {
        match get(k)? {
            J::Null => Ok(None),
            v => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| format!("{k:?} is not true/false")),
        }
    };
    let side = |p: &str| -> Result<SideStats, String> {
        Ok(SideStats {
            messages: u(&format!("{p}_messages"))?,
            bytes: u(&format!("{p}_bytes"))?,
            pings: u(&format!("{p}_pings"))?,
            pongs: u(&format!("{p}_pongs"))?,
            close: close(&format!("{p}_close"))?,
            missing_bytes: u(&format!("{p}_missing_bytes"))?,
            messages_before_close: u(&format!("{p}_messages_before_close"))?,
            bytes_before_close: u(&format!("{p}_bytes_before_close"))?,
            bytes_inflated: opt_u(&format!("{p}_bytes_inflated"))?,
            largest_message: opt_u(&format!("{p}_largest_message"))?,
            unfinished_message: opt_u(&format!("{p}_unfinished_message"))?,
            last_data: at(&format!("{p}_last_data"))?,
            ping_rtt: rtt(&format!("{p}_ping_rtt"))?,
            tcp: tcp_dir(&format!("{p}_tcp"))?,
            in_progress_at_end: opt_bool(&format!("{p}_message_in_progress_at_end"))?,
        })
    };
    let upgrade = match text("handshake")?.as_str() {
        "answered" => Upgrade::Answered(
            opt_u("http_status")?
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("answered without an http_status")?,
        ),
        "unanswered" => Upgrade::Unanswered,
        "inferred" => Upgrade::Inferred,
        "unknown" => Upgrade::Unknown,
        "midstream" => Upgrade::Midstream,
        "undecrypted" => Upgrade::Undecrypted,
        other => return Err(format!("unknown handshake {other:?}")),
    };
    let mut anomalies = Anomalies::default();
    for t in get("anomalies")?
        .as_array()
        .ok_or("anomalies is not a list")?
    {
        let t = t.as_str().unwrap_or_default();
        let a = Anomaly::ALL
            .into_iter()
            .find(|a| a.token() == t)
            .ok_or_else(|| format!("unknown anomaly {t:?}"))?;
        anomalies.insert(a);
    }
    let mut anomaly_marks = AnomalyMarks::default();
    for (t, m) in get("anomaly_packets")?
        .as_object()
        .ok_or("anomaly_packets is not an object")?
    {
        let a = Anomaly::ALL
            .into_iter()
            .find(|a| a.token() == t)
            .ok_or_else(|| format!("unknown anomaly {t:?}"))?;
        let n = |f: &str| m.get(f).and_then(J::as_u64).unwrap_or(0);
        anomaly_marks.add(a, n("first_packet"), n("count"));
    }
    let head = |k: &str| -> Result<Fields, String> {
        let h = get("handshake_headers")?;
        let list = h
            .get(k)
            .and_then(J::as_array)
            .ok_or("bad handshake_headers")?;
        let mut f = Fields::default();
        for pair in list {
            match pair.as_array().map(Vec::as_slice) {
                Some([n, v]) => f.push(
                    n.as_str().unwrap_or_default(),
                    v.as_str().unwrap_or_default(),
                ),
                _ => return Err("a header is not a [name, value] pair".to_string()),
            }
        }
        Ok(f)
    };
    let (client_side, server_side) = (side("client")?, side("server")?);
    let tcp = TcpEnds {
        client_fin: at("client_fin")?,
        server_fin: at("server_fin")?,
        client_rst: at("client_rst")?,
        server_rst: at("server_rst")?,
    };
    let verdict = crate::verdict::verdict(&crate::record::facts(
        upgrade,
        &client_side,
        &server_side,
        tcp,
    ));
    let rec = SessionRecord {
        first_packet: u("first_frame")?,
        tcp_stream: u("tcp_stream")?,
        client: endpoint("client")?,
        server: endpoint("server")?,
        start_ns: time(get("start")?, "start")?,
        end_ns: time(get("end")?, "end")?,
        packets: u("packets")?,
        upgrade,
        host: text("host")?,
        path: text("path")?,
        origin: text("origin")?,
        user_agent: text("user_agent")?,
        subprotocol: text("subprotocol")?,
        extensions: text("extensions")?,
        client_side,
        server_side,
        tcp,
        exact: get("exact")?.as_bool().ok_or("exact is not true/false")?,
        anomalies,
        anomaly_marks,
        last_payload_before_end: at("last_payload_before_end")?,
        handshake_headers: HandshakeHeaders {
            request: head("request")?,
            response: head("response")?,
        },
        // Where `frames` kept the timeline: not part of the report.
        timeline: None,
        // Mid-stream sessions have none (the column is empty).
        requests_before_upgrade: opt_u("requests_before_upgrade")?.unwrap_or(0),
        // The other leg's order key is not in the report; its session number is.
        peer: None,
        peer_session: opt_u("peer_session")?,
        closed_by: match text("closed_by")?.as_str() {
            "" => None,
            "client" => Some(ClosedBy::Client),
            "server" => Some(ClosedBy::Server),
            "proxy" => Some(ClosedBy::Proxy),
            other => return Err(format!("unknown closed_by {other:?}")),
        },
        tls: match get("tls_facts")? {
            J::Null => None,
            J::Object(m) => Some(Box::new(tls_from_json(m)?)),
            _ => return Err("\"tls_facts\" is not an object".to_string()),
        },
        // Present when `--per-file` wrote them.
        file: match (
            o.get("file"),
            o.get("file_tcp_stream"),
            o.get("file_first_frame"),
        ) {
            (Some(J::String(f)), Some(t), Some(n)) => Some(FileNumbers {
                file: f.as_str().into(),
                tcp_stream: t.as_u64().ok_or("\"file_tcp_stream\" is not a count")?,
                first_frame: n.as_u64().ok_or("\"file_first_frame\" is not a count")?,
            }),
            _ => None,
        },
        verdict,
    };
    Ok((u("session")?, rec))
}

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
