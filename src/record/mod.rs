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
}

impl Anomaly {
    pub const ALL: [Anomaly; 40] = [
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
    ];

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
    /// A frame or fragmented message was started and not finished when the connection or
    /// the capture ended; `None` when frame boundaries were not known then (or no frames).
    pub in_progress_at_end: Option<bool>,
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
            tls: None,
        }
    }
}
