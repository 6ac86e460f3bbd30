//! The session record: plain data, one per WebSocket session — what each side did, how
//! the connection ended (the facts), and the verdict drawn from them (`verdict.rs`).
//! Writers only read it. A field added here touches this file, its codec (`codec.rs`) and
//! the column table (`report/columns.rs`) — nothing else.

pub mod codec;

use std::sync::Arc;

use crate::net::Endpoint;
pub use crate::tls::{CipherSuite, TlsState, TlsVersion};
pub use crate::verdict::{ClosedBy, Outcome, TcpEnd, Upgrade, Verdict};

/// What was seen that breaks RFC 6455 or TCP, or that makes counts uncertain.
/// The order here is the order of the `anomalies` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum Anomaly {
    /// Bytes of the TCP stream are missing from the capture.
    Gap,
    /// Packets were cut short by the capture's snapshot length.
    CutOffPacket,
    /// Out-of-order data exceeded the reassembly cap; a hole was given up on.
    ReassemblyLimit,
    /// Segments far outside the expected sequence space were ignored.
    OutOfWindow,
    /// A gap hit frame headers: frame boundaries were lost.
    FramingLost,
    /// Framing was found again after a gap (counts after it are a lower bound).
    Resync,
    /// The handshake head exceeded the buffering cap.
    HandshakeTooLong,
    /// The response to the Upgrade request was not HTTP.
    BadHandshakeResponse,
    /// 101 without `Upgrade: websocket` (§4.1, client step 2 of response validation).
    MissingUpgradeHeader,
    /// No Sec-WebSocket-Key in the request (§4.1 item 7).
    MissingKey,
    /// 101 without Sec-WebSocket-Accept (§4.1).
    MissingAccept,
    /// Sec-WebSocket-Accept does not match the key (§4.2.2 item 5.4).
    InvalidAccept,
    /// Sec-WebSocket-Version other than 13 (§4.1 item 9).
    UnsupportedVersion,
    /// A frame from the client without a masking key (§5.1).
    UnmaskedClientFrame,
    /// A frame from the server with a masking key (§5.1).
    MaskedServerFrame,
    /// RSV bits set without an extension that defines them (§5.2).
    ReservedBitsSet,
    /// Opcode 0x3-0x7 or 0xB-0xF (§5.2).
    ReservedOpcode,
    /// 64-bit payload length with the most significant bit set (§5.2).
    InvalidPayloadLength,
    /// Payload length not in its minimal encoding (§5.2).
    NonMinimalLength,
    /// Control frame payload over 125 bytes (§5.5).
    ControlFrameTooLong,
    /// Control frame with FIN clear (§5.5).
    FragmentedControlFrame,
    /// Continuation frame with no message to continue (§5.4).
    UnexpectedContinuation,
    /// A new data message started before the previous fragmented one ended (§5.4).
    UnfinishedMessage,
    /// Close payload of exactly one byte (§5.5.1).
    CloseTooShort,
    /// Close status code not allowed on the wire (§7.4).
    InvalidCloseCode,
    /// Close reason that is not UTF-8 (§5.5.1).
    InvalidUtf8CloseReason,
    /// Data frames after this side's Close frame (§5.5.1).
    DataAfterClose,
    /// Frames sent by the client before the server accepted the upgrade (§4.1).
    FrameBeforeUpgrade,
    /// The connection was evicted because too many were open at once.
    Evicted,
    /// No handshake in the capture: the session was recognised by its framing; counts
    /// start at the first frame of the recognised chain.
    Midstream,
    /// RSV1 frames in a session whose handshake was not seen: they may be compressed
    /// (RFC 7692) but the negotiated parameters are unknown, so they cannot be inflated.
    CompressedContextUnknown,
    /// A compressed message could not be inflated (RFC 7692 §7.2.2): corrupt data, or a
    /// window lost in a gap.
    InflateError,
    /// Inflation stopped at a cap (a message or a direction inflated past it): sizes
    /// from there are lower bounds.
    InflateLimit,
    /// A text message that is not UTF-8 (§5.6, §8.1: the peer must fail with 1007).
    InvalidUtf8Text,
    /// The answer to the Upgrade request is missing from the capture (a gap, a snapshot
    /// length); whether it upgraded is inferred from the server's frames, if any.
    ResponseNotCaptured,
    /// TLS: the key log has no secrets for this connection (at least not when they were
    /// needed: a Decryption Secrets Block after the connection's handshake).
    TlsNoKey,
    /// TLS: secrets were found but records do not authenticate with them (a key log of
    /// another capture), or a record failed after others had decrypted.
    TlsDecryptFailed,
    /// TLS: a cipher suite (or protocol version) that is not decrypted; named on stderr.
    TlsUnsupportedCipher,
    /// TLS: ciphertext was missing (a TCP gap) or had to be skipped; the plaintext after it
    /// was found again by trial decryption, or not at all (RFC 8446 §5.3).
    TlsGap,
    /// The memory budget was spent: buffers of this connection were given up (held
    /// out-of-order data became a gap, a handshake head was read as cut off, a probe or
    /// TLS layer let go of what it held).
    MemoryBudget,
    /// The Upgrade request is not in the capture (a capture of the server's direction
    /// only, or one that started between the request and its answer): the session was
    /// recognised by its 101 answer with `Upgrade: websocket`; the request's fields are
    /// unknown, and so is what the client sent when its direction is not captured.
    RequestNotCaptured,
}

impl Anomaly {
    pub const ALL: [Anomaly; 41] = [
        Anomaly::Gap,
        Anomaly::CutOffPacket,
        Anomaly::ReassemblyLimit,
        Anomaly::OutOfWindow,
        Anomaly::FramingLost,
        Anomaly::Resync,
        Anomaly::HandshakeTooLong,
        Anomaly::BadHandshakeResponse,
        Anomaly::MissingUpgradeHeader,
        Anomaly::MissingKey,
        Anomaly::MissingAccept,
        Anomaly::InvalidAccept,
        Anomaly::UnsupportedVersion,
        Anomaly::UnmaskedClientFrame,
        Anomaly::MaskedServerFrame,
        Anomaly::ReservedBitsSet,
        Anomaly::ReservedOpcode,
        Anomaly::InvalidPayloadLength,
        Anomaly::NonMinimalLength,
        Anomaly::ControlFrameTooLong,
        Anomaly::FragmentedControlFrame,
        Anomaly::UnexpectedContinuation,
        Anomaly::UnfinishedMessage,
        Anomaly::CloseTooShort,
        Anomaly::InvalidCloseCode,
        Anomaly::InvalidUtf8CloseReason,
        Anomaly::DataAfterClose,
        Anomaly::FrameBeforeUpgrade,
        Anomaly::Evicted,
        Anomaly::Midstream,
        Anomaly::CompressedContextUnknown,
        Anomaly::InflateError,
        Anomaly::InflateLimit,
        Anomaly::InvalidUtf8Text,
        Anomaly::ResponseNotCaptured,
        Anomaly::TlsNoKey,
        Anomaly::TlsDecryptFailed,
        Anomaly::TlsUnsupportedCipher,
        Anomaly::TlsGap,
        Anomaly::MemoryBudget,
        Anomaly::RequestNotCaptured,
    ];

    /// What the token means, for README and `sessions --help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Anomaly::Gap => "bytes of the TCP stream are missing from the capture (counted in *_missing_bytes)",
            Anomaly::CutOffPacket => "packets were cut short by the capture's snapshot length",
            Anomaly::ReassemblyLimit => "out-of-order data exceeded the reassembly cap; a hole was given up on",
            Anomaly::OutOfWindow => "segments far outside the expected sequence space were ignored",
            Anomaly::FramingLost => "a gap hit frame headers: frame boundaries were lost (counts become lower bounds)",
            Anomaly::Resync => "framing was found again after a gap",
            Anomaly::HandshakeTooLong => "an Upgrade request or response head exceeded the buffering cap",
            Anomaly::BadHandshakeResponse => "the answer to the Upgrade request was not HTTP",
            Anomaly::MissingUpgradeHeader => "a 101 without Upgrade: websocket (RFC 6455 §4.1)",
            Anomaly::MissingKey => "the request had no Sec-WebSocket-Key (§4.1)",
            Anomaly::MissingAccept => "a 101 without Sec-WebSocket-Accept (§4.1)",
            Anomaly::InvalidAccept => "Sec-WebSocket-Accept does not match the key (§4.2.2)",
            Anomaly::UnsupportedVersion => "Sec-WebSocket-Version other than 13 (§4.1)",
            Anomaly::UnmaskedClientFrame => "a client frame without a masking key (§5.1)",
            Anomaly::MaskedServerFrame => "a server frame with a masking key (§5.1)",
            Anomaly::ReservedBitsSet => "RSV bits set without an extension that defines them (§5.2)",
            Anomaly::ReservedOpcode => "opcode 0x3-0x7 or 0xB-0xF (§5.2)",
            Anomaly::InvalidPayloadLength => "a 64-bit payload length with its top bit set (§5.2)",
            Anomaly::NonMinimalLength => "a payload length not in its shortest form (§5.2)",
            Anomaly::ControlFrameTooLong => "a control frame payload over 125 bytes (§5.5)",
            Anomaly::FragmentedControlFrame => "a control frame with FIN clear (§5.5)",
            Anomaly::UnexpectedContinuation => "a continuation frame with no message to continue (§5.4)",
            Anomaly::UnfinishedMessage => "a new data message began inside a fragmented one (§5.4)",
            Anomaly::CloseTooShort => "a Close payload of exactly one byte (§5.5.1)",
            Anomaly::InvalidCloseCode => "a Close status code not allowed on the wire (§7.4)",
            Anomaly::InvalidUtf8CloseReason => "a Close reason that is not UTF-8 (§5.5.1)",
            Anomaly::DataAfterClose => "data frames after this side's Close frame (§5.5.1)",
            Anomaly::FrameBeforeUpgrade => "client frames before the server accepted the upgrade (§4.1)",
            Anomaly::Evicted => "the connection was evicted because too many were open at once",
            Anomaly::Midstream => "no handshake in the capture: the session was recognised by its framing; counts start at the first frame of the recognised chain",
            Anomaly::CompressedContextUnknown => "RSV1 frames in a session whose handshake was not seen: maybe compressed (RFC 7692), but the parameters are unknown, so not inflated",
            Anomaly::InflateError => "a compressed message could not be inflated (RFC 7692 §7.2.2): corrupt data, or a window lost in a gap",
            Anomaly::InflateLimit => "inflation stopped at a cap: sizes from there are lower bounds",
            Anomaly::InvalidUtf8Text => "a text message that is not UTF-8 (§5.6, §8.1: the peer must fail with 1007)",
            Anomaly::TlsNoKey => "TLS: the key log has no secrets for this connection (at least not when they were needed)",
            Anomaly::TlsDecryptFailed => "TLS: secrets were found but records do not authenticate with them (a key log of another capture)",
            Anomaly::TlsUnsupportedCipher => "TLS: a cipher suite or version that is not decrypted (named on stderr)",
            Anomaly::TlsGap => "TLS: ciphertext was missing (a TCP gap) or skipped; the plaintext after it was found again by trial decryption, or not at all",
            Anomaly::MemoryBudget => "the memory budget (--memory) made the connection give up what it held (out-of-order data, a head being gathered, inflater windows, TLS records, its ring of last frames): counts become lower bounds",
            Anomaly::ResponseNotCaptured => "the answer to the Upgrade is missing from the capture (lost or cut): whether it upgraded is told by the server's frames",
            Anomaly::RequestNotCaptured => "the Upgrade request is not in the capture (only the server's direction captured, or the capture began after it): the session was recognised by its 101 with Upgrade: websocket",
        }
    }

    /// The token written in the `anomalies` column.
    pub fn token(self) -> &'static str {
        match self {
            Anomaly::Gap => "gap",
            Anomaly::CutOffPacket => "cut_off_packet",
            Anomaly::ReassemblyLimit => "reassembly_limit",
            Anomaly::OutOfWindow => "out_of_window_segment",
            Anomaly::FramingLost => "framing_lost",
            Anomaly::Resync => "framing_resync",
            Anomaly::HandshakeTooLong => "handshake_too_long",
            Anomaly::BadHandshakeResponse => "bad_handshake_response",
            Anomaly::MissingUpgradeHeader => "missing_upgrade_header",
            Anomaly::MissingKey => "missing_key",
            Anomaly::MissingAccept => "missing_accept",
            Anomaly::InvalidAccept => "invalid_accept",
            Anomaly::UnsupportedVersion => "unsupported_version",
            Anomaly::UnmaskedClientFrame => "unmasked_client_frame",
            Anomaly::MaskedServerFrame => "masked_server_frame",
            Anomaly::ReservedBitsSet => "reserved_bits_set",
            Anomaly::ReservedOpcode => "reserved_opcode",
            Anomaly::InvalidPayloadLength => "invalid_payload_length",
            Anomaly::NonMinimalLength => "non_minimal_length",
            Anomaly::ControlFrameTooLong => "control_frame_too_long",
            Anomaly::FragmentedControlFrame => "fragmented_control_frame",
            Anomaly::UnexpectedContinuation => "unexpected_continuation",
            Anomaly::UnfinishedMessage => "unfinished_message",
            Anomaly::CloseTooShort => "close_payload_too_short",
            Anomaly::InvalidCloseCode => "invalid_close_code",
            Anomaly::InvalidUtf8CloseReason => "invalid_utf8_close_reason",
            Anomaly::DataAfterClose => "data_after_close",
            Anomaly::FrameBeforeUpgrade => "frame_before_upgrade",
            Anomaly::Evicted => "evicted",
            Anomaly::Midstream => "midstream",
            Anomaly::CompressedContextUnknown => "compressed_context_unknown",
            Anomaly::InflateError => "inflate_error",
            Anomaly::InflateLimit => "inflate_limit",
            Anomaly::InvalidUtf8Text => "invalid_utf8_text",
            Anomaly::ResponseNotCaptured => "response_not_captured",
            Anomaly::TlsNoKey => "tls_no_key",
            Anomaly::TlsDecryptFailed => "tls_decrypt_failed",
            Anomaly::TlsUnsupportedCipher => "tls_unsupported_cipher",
            Anomaly::TlsGap => "tls_gap",
            Anomaly::MemoryBudget => "memory_budget",
            Anomaly::RequestNotCaptured => "request_not_captured",
        }
    }
}

/// A set of anomalies, in a fixed order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies(u64);

impl Anomalies {
    pub fn insert(&mut self, a: Anomaly) {
        self.0 |= 1 << a as u8;
    }
    pub fn contains(&self, a: Anomaly) -> bool {
        self.0 & (1 << a as u8) != 0
    }
    pub fn union(&mut self, other: Anomalies) {
        self.0 |= other.0;
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn bits(&self) -> u64 {
        self.0
    }
    pub fn from_bits(bits: u64) -> Self {
        Anomalies(bits)
    }
    pub fn iter(&self) -> impl Iterator<Item = Anomaly> + '_ {
        Anomaly::ALL.into_iter().filter(|a| self.contains(*a))
    }
}

/// Which side of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// A moment of the capture: a packet's number (1-based, as Wireshark counts) and its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct At {
    pub packet: u64,
    pub ts_ns: i64,
}

/// A Close frame as one side sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// Status code; `None` when the frame carried none (reported as 1005, §7.1.5).
    pub code: Option<u16>,
    /// Reason as text, invalid UTF-8 bytes written as `\xNN`.
    pub reason: String,
    /// The packet that completed the Close frame.
    pub at: At,
}

/// The first FIN and the first RST each side sent (RFC 9293 §3.6 closing, §3.5.2 reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpEnds {
    pub client_fin: Option<At>,
    pub server_fin: Option<At>,
    pub client_rst: Option<At>,
    pub server_rst: Option<At>,
}

/// Round trips of the Ping frames one side sent, each answered by the other side's next
/// Pong (RFC 6455 §5.5.3: pongs answer pings in order; unsolicited pongs answer none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingRtt {
    /// Pings answered by a pong.
    pub answered: u64,
    /// Shortest, median and longest round trip (ns); 0 when none was answered. The median
    /// is exact up to [`crate::config::MAX_RTT_SAMPLES`] answered pings, then taken from a
    /// regular subsample of them.
    pub min_ns: i64,
    pub p50_ns: i64,
    pub max_ns: i64,
    /// Pings still waiting for their pong when the session ended (its first Close frame,
    /// FIN or RST), or when the capture ended if it never did.
    pub unanswered: u64,
    /// The oldest of them.
    pub first_unanswered: Option<At>,
}

/// What TCP showed of one direction (the segments this side sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpDir {
    /// Segments that carried payload (keep-alive probes not counted).
    pub segments: u64,
    /// Of those, segments that repeated or filled sequence space already passed:
    /// retransmissions and duplicates.
    pub retransmitted: u64,
    /// Of those, segments that jumped ahead of bytes not seen yet (a "previous segment
    /// not captured"): the segment before was lost before the capture point, or comes late.
    pub out_of_order: u64,
    /// Holes never filled: bytes the capture missed (counted in `missing_bytes`).
    pub gaps: u64,
    /// The last retransmitted segment.
    pub last_retransmission: Option<At>,
    /// Bytes sent that the peer had not acknowledged at the end.
    pub unacked_bytes: u64,
    /// The last segment that carried payload.
    pub last_payload: Option<At>,
}

/// What one side sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Complete data messages (text + binary); a fragmented message counts once.
    pub messages: u64,
    /// Payload bytes of the frames of those messages, as on the wire.
    pub bytes: u64,
    pub pings: u64,
    pub pongs: u64,
    /// The first Close frame this side sent.
    pub close: Option<Close>,
    /// Bytes of this direction's stream missing from the capture.
    pub missing_bytes: u64,
    /// Application payload bytes of the complete data messages with permessage-deflate
    /// (RFC 7692): inflated size of compressed messages plus wire size of the others.
    /// `None` without the extension, without a seen handshake, or with `--no-inflate`.
    pub bytes_inflated: Option<u64>,
    /// The largest complete data message in application bytes (inflated when
    /// compressed; the wire size without the extension). `None` when not knowable.
    pub largest_message: Option<u64>,
    /// Messages and their bytes this side had sent when the session's first Close frame
    /// (from either side) was seen; all of them when there was none.
    pub messages_before_close: u64,
    pub bytes_before_close: u64,
    /// A data message still unfinished at the end: its bytes announced so far by frame
    /// headers (the whole length of the frame in progress included).
    pub unfinished_message: Option<u64>,
    /// The last data frame (text, binary, continuation) this side completed.
    pub last_data: Option<At>,
    /// Round trips of this side's pings.
    pub ping_rtt: PingRtt,
    pub tcp: TcpDir,
    /// A frame or fragmented message was started and not finished when the connection or
    /// the capture ended; `None` when frame boundaries were not known then (or no frames).
    pub in_progress_at_end: Option<bool>,
}

/// The first packet and the number of occurrences of one anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnomalyMark {
    pub anomaly: Anomaly,
    pub first_packet: u64,
    pub count: u64,
}

/// Where each anomaly of a session was first seen, and how often: at most one entry per
/// token, in token order. (Boxed, and absent while empty: every open session keeps two,
/// and most have no anomaly.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)]
pub struct AnomalyMarks(Option<Box<Vec<AnomalyMark>>>);

impl AnomalyMarks {
    /// One more occurrence of `a`, in `packet`.
    pub fn note(&mut self, a: Anomaly, packet: u64) {
        self.add(a, packet, 1);
    }

    /// `count` occurrences of `a`, the first in `packet`.
    pub fn add(&mut self, a: Anomaly, packet: u64, count: u64) {
        let marks = self.0.get_or_insert_with(Box::default);
        match marks.binary_search_by_key(&a, |m| m.anomaly) {
            Ok(i) => {
                let m = &mut marks[i];
                m.count += count;
                m.first_packet = m.first_packet.min(packet);
            }
            Err(i) => marks.insert(
                i,
                AnomalyMark {
                    anomaly: a,
                    first_packet: packet,
                    count,
                },
            ),
        }
    }

    pub fn merge(&mut self, other: &AnomalyMarks) {
        for m in other.iter() {
            self.add(m.anomaly, m.first_packet, m.count);
        }
    }

    pub fn get(&self, a: Anomaly) -> Option<&AnomalyMark> {
        self.iter().find(|m| m.anomaly == a)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AnomalyMark> + '_ {
        self.0.iter().flat_map(|v| v.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// The handshake's header fields as sent, for the JSON report: at most
/// [`crate::config::MAX_KEPT_HEADERS`] per head, each value cut to
/// [`crate::config::MAX_KEPT_HEADER_VALUE`] bytes. Secrets are kept here and redacted by
/// the writers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeHeaders {
    pub request: Fields,
    pub response: Fields,
}

/// Header fields (name, value) in order, kept in one string: one allocation per head, as
/// long as the session lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(String);

impl Fields {
    /// Appends a field (a NUL, which no HTTP field holds, is written as U+FFFD).
    pub fn push(&mut self, name: &str, value: &str) {
        for part in [name, value] {
            if part.contains('\0') {
                self.0.push_str(&part.replace('\0', "\u{fffd}"));
            } else {
                self.0.push_str(part);
            }
            self.0.push('\0');
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut parts = self.0.split_terminator('\0');
        std::iter::from_fn(move || Some((parts.next()?, parts.next().unwrap_or(""))))
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields' encoded form (for the record's codec).
    pub fn encoded(&self) -> &str {
        &self.0
    }

    /// Fields from their encoded form (as [`Fields::encoded`] gave it).
    pub fn from_encoded(s: String) -> Fields {
        Fields(s)
    }

    /// Bytes held.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Fields {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(it: I) -> Self {
        let mut f = Fields::default();
        for (n, v) in it {
            f.push(n, v);
        }
        f
    }
}

/// The other leg of a session through a proxy (both legs in the capture): the order key
/// of its record, and which leg this one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// First packet of the other leg's connection.
    pub first_packet: u64,
    /// The other leg's `requests_before_upgrade` (with `first_packet`, its record's key).
    pub requests_before_upgrade: u64,
    /// This leg is the front one (client → proxy): its request came first.
    pub front: bool,
}

/// What the plaintext of a TLS connection was, as far as it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsCarries {
    /// Not decrypted: unknown.
    Unknown,
    /// Decrypted, no application data.
    Nothing,
    /// HTTP/1.1 without a WebSocket Upgrade (keep-alive requests followed).
    Http,
    /// A WebSocket session (an Upgrade request).
    WebSocket,
    /// Something else (HTTP/2, another protocol): not followed further.
    Other,
}

impl TlsCarries {
    pub const ALL: [TlsCarries; 5] = [
        TlsCarries::Unknown,
        TlsCarries::Nothing,
        TlsCarries::Http,
        TlsCarries::WebSocket,
        TlsCarries::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsCarries::Unknown => "unknown",
            TlsCarries::Nothing => "nothing",
            TlsCarries::Http => "http",
            TlsCarries::WebSocket => "websocket",
            TlsCarries::Other => "other",
        }
    }
}

/// What the TLS layer learned of a `wss://` connection (RFC 8446, RFC 5246): the
/// record's `tls*`, `sni` and `alpn` columns and the `tls` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The negotiated version; `None` when no ServerHello was seen.
    pub version: Option<TlsVersion>,
    pub cipher: Option<CipherSuite>,
    /// `server_name` of the ClientHello (empty when none was sent).
    pub sni: String,
    /// The protocol the server selected (`None`: none, or not knowable: TLS 1.3 without
    /// keys, where it is encrypted).
    pub alpn: Option<String>,
    /// The protocols the client offered, comma-separated.
    pub alpn_offered: String,
    /// How far decryption got.
    pub state: TlsState,
    /// An abbreviated TLS 1.2 handshake or a TLS 1.3 PSK handshake.
    pub resumed: bool,
    pub carries: TlsCarries,
    /// Records seen and records decrypted, both directions.
    pub records: u64,
    pub decrypted_records: u64,
}

/// One WebSocket session: an Upgrade request and what followed it (or, picked up
/// mid-stream, a connection recognised by its framing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Number of the connection's first packet (orders the report; the `first_frame` column).
    pub first_packet: u64,
    /// Wireshark's `tcp.stream` of the connection.
    pub tcp_stream: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub start_ns: i64,
    pub end_ns: i64,
    pub packets: u64,
    /// What became of the Upgrade request.
    pub upgrade: Upgrade,
    pub host: String,
    pub path: String,
    pub origin: String,
    pub user_agent: String,
    pub subprotocol: String,
    pub extensions: String,
    pub client_side: SideStats,
    pub server_side: SideStats,
    pub tcp: TcpEnds,
    pub exact: bool,
    pub anomalies: Anomalies,
    /// HTTP requests on the connection before this session's Upgrade request (a rejected
    /// Upgrade counts); 0 when the Upgrade came first. Records of one connection are
    /// ordered by it.
    pub requests_before_upgrade: u64,
    /// The other leg, when this session was paired with one through a proxy.
    pub peer: Option<Peer>,
    /// The other leg's session number (set where records are numbered, `legs.rs`).
    pub peer_session: Option<u64>,
    /// Who ended it, across both legs when paired (set in `legs.rs`, from the facts of
    /// both legs by [`crate::verdict::closed_by`]).
    pub closed_by: Option<ClosedBy>,
    /// The first packet and count of each anomaly (where the analysis can place it).
    pub anomaly_marks: AnomalyMarks,
    /// The last packet that carried payload, in either direction, before the session's
    /// end (its first Close frame, FIN or RST); before the capture's end when it never
    /// ended. Control frames count: a ping resets a proxy's idle timer.
    pub last_payload_before_end: Option<At>,
    pub handshake_headers: HandshakeHeaders,
    /// Where the session's timeline of frames and TCP events was kept (`frames` only);
    /// not a fact of the session, and not in the reports.
    pub timeline: Option<crate::ws::timeline::TimelineRef>,
    /// The TLS layer's facts, for `wss://` (and for TLS connections that could not be
    /// decrypted, whose record has `Upgrade::Undecrypted`); `None` for plaintext.
    pub tls: Option<Box<TlsInfo>>,
    /// Drawn from the facts above by [`crate::verdict::verdict`]; never set by hand.
    pub verdict: Verdict,
    /// With `--per-file`: the numbers of the file that holds the first packet.
    pub file: Option<FileNumbers>,
}

/// Where a session starts in the one input file that holds its first packet: the numbers
/// Wireshark shows when it opens that file alone (`--per-file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileNumbers {
    /// The path as given.
    pub file: Arc<str>,
    /// `tcp.stream` of the connection in that file.
    pub tcp_stream: u64,
    /// Frame number of the connection's first packet in that file.
    pub first_frame: u64,
}

impl SessionRecord {
    /// The handshake's text fields, in a fixed order (host, path, origin, user agent,
    /// subprotocol, extensions).
    pub fn texts(&self) -> [&String; 6] {
        [
            &self.host,
            &self.path,
            &self.origin,
            &self.user_agent,
            &self.subprotocol,
            &self.extensions,
        ]
    }

    /// The HTTP status of the answer to the Upgrade request, when one was seen.
    pub fn http_status(&self) -> Option<u16> {
        match self.upgrade {
            Upgrade::Answered(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the opening handshake was in the capture (false: picked up mid-stream).
    pub fn handshake_seen(&self) -> bool {
        self.upgrade != Upgrade::Midstream
    }

    /// The key that orders records: the connection's first packet, then the Upgrade's
    /// place on the connection.
    pub fn order_key(&self) -> (u64, u64) {
        (self.first_packet, self.requests_before_upgrade)
    }

    /// The side's stats.
    pub fn side(&self, side: Side) -> &SideStats {
        match side {
            Side::Client => &self.client_side,
            Side::Server => &self.server_side,
        }
    }

    /// The moment the session ended: its first Close frame, FIN or RST, whichever came
    /// first; `None` while it was open.
    pub fn ended_at(&self) -> Option<At> {
        let t = &self.tcp;
        [
            self.client_side.close.as_ref().map(|c| c.at),
            self.server_side.close.as_ref().map(|c| c.at),
            t.client_fin,
            t.server_fin,
            t.client_rst,
            t.server_rst,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// The facts the verdict is drawn from, out of a record's parts.
pub fn facts(
    upgrade: Upgrade,
    client: &SideStats,
    server: &SideStats,
    tcp: TcpEnds,
) -> crate::verdict::SessionFacts {
    let close = |s: &SideStats| s.close.as_ref().map(|c| (c.at, c.code));
    crate::verdict::SessionFacts {
        upgrade,
        client_close: close(client),
        server_close: close(server),
        tcp,
    }
}

impl SessionRecord {
    /// The facts the verdict is drawn from.
    pub fn facts(&self) -> crate::verdict::SessionFacts {
        facts(self.upgrade, &self.client_side, &self.server_side, self.tcp)
    }

    /// A record of a clean session with a little of everything, for tests.
    #[cfg(test)]
    pub(crate) fn example() -> SessionRecord {
        let client_side = SideStats {
            messages: 3,
            bytes: 4,
            pings: 5,
            pongs: 6,
            close: Some(Close {
                code: None,
                reason: "bye, \"x\"".into(),
                at: At {
                    packet: 9,
                    ts_ns: 1_700_000_000_500_000_000,
                },
            }),
            missing_bytes: 7,
            bytes_inflated: Some(40),
            largest_message: Some(30),
            messages_before_close: 2,
            bytes_before_close: 3,
            unfinished_message: Some(70_000),
            last_data: Some(At {
                packet: 8,
                ts_ns: 1_700_000_000_400_000_000,
            }),
            ping_rtt: PingRtt {
                answered: 4,
                min_ns: 1_000_000,
                p50_ns: 2_000_000,
                max_ns: 3_500_000,
                unanswered: 1,
                first_unanswered: Some(At {
                    packet: 7,
                    ts_ns: 1_700_000_000_300_000_000,
                }),
            },
            tcp: TcpDir {
                segments: 9,
                retransmitted: 2,
                out_of_order: 1,
                gaps: 1,
                last_retransmission: Some(At {
                    packet: 9,
                    ts_ns: 1_700_000_000_500_000_000,
                }),
                unacked_bytes: 10,
                last_payload: Some(At {
                    packet: 9,
                    ts_ns: 1_700_000_000_500_000_000,
                }),
            },
            in_progress_at_end: Some(false),
        };
        let server_side = SideStats {
            close: Some(Close {
                code: Some(1000),
                reason: "ok".into(),
                at: At {
                    packet: 10,
                    ts_ns: 1_700_000_000_600_000_000,
                },
            }),
            ..SideStats::default()
        };
        let upgrade = Upgrade::Answered(101);
        let tcp = TcpEnds {
            server_rst: Some(At {
                packet: 11,
                ts_ns: 1_700_000_000_700_000_000,
            }),
            ..TcpEnds::default()
        };
        let mut anomalies = Anomalies::default();
        anomalies.insert(Anomaly::Gap);
        let mut anomaly_marks = AnomalyMarks::default();
        anomaly_marks.add(Anomaly::Gap, 5, 2);
        SessionRecord {
            first_packet: 1,
            tcp_stream: 0,
            client: Endpoint::v4([10, 0, 0, 1], 40000),
            server: Endpoint::v6([0xfd, 0x79, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 80),
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_700_000_000,
            packets: 12,
            upgrade,
            host: "h".into(),
            path: "/p?x=ü".into(),
            origin: String::new(),
            user_agent: "ua".into(),
            subprotocol: "chat".into(),
            extensions: "permessage-deflate".into(),
            verdict: crate::verdict::verdict(&facts(upgrade, &client_side, &server_side, tcp)),
            client_side,
            server_side,
            tcp,
            exact: false,
            anomalies,
            requests_before_upgrade: 2,
            peer: None,
            peer_session: Some(8),
            closed_by: Some(ClosedBy::Proxy),
            file: Some(FileNumbers {
                file: "rotated/file-2.pcap".into(),
                tcp_stream: 3,
                first_frame: 4,
            }),
            anomaly_marks,
            last_payload_before_end: Some(At {
                packet: 8,
                ts_ns: 1_700_000_000_400_000_000,
            }),
            handshake_headers: HandshakeHeaders {
                request: [("Host", "h"), ("Cookie", "sid=secret")]
                    .into_iter()
                    .collect(),
                response: [("Upgrade", "websocket")].into_iter().collect(),
            },
            timeline: None,
            tls: None,
        }
    }
}
