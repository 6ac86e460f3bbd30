//! The `wsclose tls` report: one CSV row per TLS connection (any ALPN), decrypted or not —
//! version, suite, SNI, ALPN, how far decryption got, what the plaintext was, how TCP
//! ended. Its own small column table, read the same way as the sessions report's.

use std::io::{self, Write};

use super::columns::{column, Column, Row, Value};
use super::csv::io_error;
use super::{ReportWriter, RunEnd};
use crate::record::{TlsInfo, TlsState};

fn tls<'a>(r: &Row<'a>) -> &'a TlsInfo {
    r.rec
        .tls
        .as_deref()
        .expect("the tls report has TLS records only")
}

/// The sessions report's column `name`, reused here.
fn same(name: &str) -> for<'a> fn(&Row<'a>) -> Value<'a> {
    column(name).expect("a sessions column").value
}

/// How far decryption got, in the report's words.
pub fn decryption(s: TlsState) -> &'static str {
    match s {
        TlsState::Decrypting => "decrypted",
        TlsState::NoKey => "no_key",
        TlsState::DecryptFailed => "decrypt_failed",
        TlsState::UnsupportedCipher => "unsupported_cipher",
        TlsState::HandshakeMissing => "handshake_not_captured",
        TlsState::Handshake => "handshake_not_finished",
        TlsState::NotTls => "not_tls",
    }
}

/// Every column of the `tls` report, in order.
pub static TLS_COLUMNS: &[Column] = &[
    Column {
        name: "connection",
        value: |r| Value::Count(r.session),
        meaning: "1, 2, 3 … in the order of the connections' first packets",
    },
    Column {
        name: "tcp_stream",
        value: |r| Value::Count(r.rec.tcp_stream),
        meaning: "Wireshark's tcp.stream",
    },
    Column {
        name: "client",
        value: |r| Value::Endpoint(r.rec.client),
        meaning: "the side that sent the ClientHello (or the Upgrade request), ip:port",
    },
    Column {
        name: "server",
        value: |r| Value::Endpoint(r.rec.server),
        meaning: "the other side, ip:port",
    },
    Column {
        name: "start",
        value: |r| Value::Time(r.rec.start_ns),
        meaning: "time of the connection's first packet",
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
        name: "tls",
        value: |r| (same("tls"))(r),
        meaning: "the negotiated version (1.2, 1.3; 1.0, 1.1, ssl3 are named, not decrypted); empty without a ServerHello",
    },
    Column {
        name: "tls_cipher",
        value: |r| match tls(r).cipher {
            Some(c) => c.name().map_or(Value::Empty, Value::Text),
            None => Value::Empty,
        },
        meaning: "the cipher suite, by its IANA name as Wireshark shows it",
    },
    Column {
        name: "sni",
        value: |r| Value::Text(&tls(r).sni),
        meaning: "server_name of the ClientHello",
    },
    Column {
        name: "alpn",
        value: |r| tls(r).alpn.as_deref().map_or(Value::Empty, Value::Text),
        meaning: "the protocol the server selected; empty when none, or not knowable (TLS 1.3 without keys)",
    },
    Column {
        name: "alpn_offered",
        value: |r| Value::Text(&tls(r).alpn_offered),
        meaning: "the protocols the client offered, comma-separated",
    },
    Column {
        name: "resumed",
        value: |r| Value::Bool(tls(r).resumed),
        meaning: "an abbreviated TLS 1.2 handshake or a TLS 1.3 PSK handshake",
    },
    Column {
        name: "decryption",
        value: |r| Value::Text(decryption(tls(r).state)),
        meaning: "decrypted | no_key | decrypt_failed | unsupported_cipher | handshake_not_captured | handshake_not_finished",
    },
    Column {
        name: "carries",
        value: |r| Value::Text(tls(r).carries.as_str()),
        meaning: "what the plaintext was: websocket | http (HTTP/1.1 without an Upgrade) | other (HTTP/2, another protocol) | nothing | unknown (not decrypted)",
    },
    Column {
        name: "ws_outcome",
        value: |r| match r.rec.upgrade {
            crate::verdict::Upgrade::Undecrypted => Value::Empty,
            _ => Value::Text(r.rec.verdict.outcome.as_str()),
        },
        meaning: "the WebSocket session's outcome (as in the sessions report) when it carried one",
    },
    Column {
        name: "records",
        value: |r| Value::Count(tls(r).records),
        meaning: "TLS records seen, both directions",
    },
    Column {
        name: "decrypted_records",
        value: |r| Value::Count(tls(r).decrypted_records),
        meaning: "TLS records decrypted, both directions",
    },
    Column {
        name: "tcp_end",
        value: |r| (same("tcp_end"))(r),
        meaning: "rst when any RST was seen, else fin when any FIN was seen, else open",
    },
    Column {
        name: "tcp_end_by",
        value: |r| (same("tcp_end_by"))(r),
        meaning: "who sent the first packet of the kind tcp_end names",
    },
    Column {
        name: "anomalies",
        value: |r| Value::Tokens(r.rec.anomalies),
        meaning: ";-separated tokens, as in the sessions report (tls_no_key, tls_decrypt_failed, tls_unsupported_cipher, tls_gap, gap, …)",
    },
    Column {
        name: "first_frame",
        value: |r| Value::Count(r.rec.first_packet),
        meaning: "number of the connection's first packet",
    },
    Column {
        name: "packets",
        value: |r| Value::Count(r.rec.packets),
        meaning: "packets of the connection",
    },
];

/// Writes the `tls` report: records without TLS facts (plaintext sessions) are skipped,
/// and connections are numbered among themselves.
pub struct TlsCsvWriter<W: Write> {
    w: ::csv::Writer<W>,
    fields: Vec<String>,
    n: u64,
}

impl<W: Write> TlsCsvWriter<W> {
    /// A writer that has written the header.
    pub fn new(out: W) -> io::Result<Self> {
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(out);
        w.write_record(TLS_COLUMNS.iter().map(|c| c.name))
            .map_err(io_error)?;
        Ok(TlsCsvWriter {
            w,
            fields: vec![String::new(); TLS_COLUMNS.len()],
            n: 0,
        })
    }

    /// The output, flushed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> ReportWriter for TlsCsvWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        if row.rec.tls.is_none() {
            return Ok(());
        }
        self.n += 1;
        let row = Row {
            session: self.n,
            ..*row
        };
        for (f, c) in self.fields.iter_mut().zip(TLS_COLUMNS) {
            f.clear();
            (c.value)(&row).write_text(f);
        }
        self.w.write_record(&self.fields).map_err(io_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn finish(&mut self, _end: &RunEnd<'_>) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for c in TLS_COLUMNS {
            assert!(seen.insert(c.name), "{} twice", c.name);
            assert!(!c.meaning.is_empty(), "{} has no meaning", c.name);
        }
    }
}
