//! Ground truth ([`ExpectedSession`]), a WebSocket-over-TCP session builder
//! ([`WsConn`]) and the streaming scenario generator ([`generate`]).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::packet::{self, IpOpts};
use super::pcap::{Link, PcapOpts, PcapWriter};
use super::tcp::{Impair, Side, TcpSim};
use super::ws::{self, ClientHandshake, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};
use super::Rng;

/// CSV column names of the ground truth, in order.
pub const COLUMNS: [&str; 22] = [
    "client",
    "server",
    "http_status",
    "client_messages",
    "server_messages",
    "client_bytes",
    "server_bytes",
    "client_pings",
    "server_pings",
    "client_pongs",
    "server_pongs",
    "first_close_by",
    "client_close_code",
    "client_close_reason",
    "server_close_code",
    "server_close_reason",
    "close_code",
    "tcp_end",
    "tcp_end_by",
    "outcome",
    "abnormal",
    "exact",
];

/// What a correct analyzer must report for one WebSocket session.
/// `values[i]` belongs to `COLUMNS[i]`; `*` means "cannot be known, don't compare".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedSession {
    /// One string per entry of [`COLUMNS`].
    pub values: Vec<String>,
}

impl ExpectedSession {
    /// Value of a column by name.
    pub fn get(&self, col: &str) -> Option<&str> {
        COLUMNS
            .iter()
            .position(|c| *c == col)
            .map(|i| self.values[i].as_str())
    }

    /// One CSV line (with trailing newline).
    pub fn csv_row(&self) -> String {
        let mut s = self
            .values
            .iter()
            .map(|v| csv_field(v))
            .collect::<Vec<_>>()
            .join(",");
        s.push('\n');
        s
    }
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// CSV header line (with trailing newline).
pub fn csv_header() -> String {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    s
}

/// Header + one row per session.
pub fn expected_csv(sessions: &[ExpectedSession]) -> String {
    let mut s = csv_header();
    for e in sessions {
        s.push_str(&e.csv_row());
    }
    s
}

/// Accumulates the ground truth of one session from the frames and TCP
/// events that are put on the wire.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// Status of the HTTP response to the upgrade request.
    pub http_status: Option<u16>,
    /// Per side (client, server): the byte stream lost a frame header in
    /// the capture, so its counts cannot be known.
    pub unknown: [bool; 2],
    msgs: [u64; 2],
    bytes: [u64; 2],
    pending: [u64; 2],
    pings: [u64; 2],
    pongs: [u64; 2],
    close: [Option<(Option<u16>, String)>; 2],
    first_close: Option<Side>,
    rst: bool,
    fin: bool,
    end_by: Option<Side>,
}

impl Tracker {
    /// Empty tracker.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        Tracker {
            client,
            server,
            http_status: None,
            unknown: [false; 2],
            msgs: [0; 2],
            bytes: [0; 2],
            pending: [0; 2],
            pings: [0; 2],
            pongs: [0; 2],
            close: [None, None],
            first_close: None,
            rst: false,
            fin: false,
            end_by: None,
        }
    }

    /// Records a frame sent by `side`; `payload` is only inspected for close
    /// frames (unmasked close payload).
    pub fn on_frame(&mut self, side: Side, fin: bool, opcode: u8, len: u64, payload: &[u8]) {
        let i = side.idx();
        match opcode {
            OP_TEXT | OP_BINARY | OP_CONT => {
                if opcode != OP_CONT {
                    self.pending[i] = 0;
                }
                self.pending[i] += len;
                if fin {
                    self.msgs[i] += 1;
                    self.bytes[i] += self.pending[i];
                    self.pending[i] = 0;
                }
            }
            OP_PING => self.pings[i] += 1,
            OP_PONG => self.pongs[i] += 1,
            OP_CLOSE if self.close[i].is_none() => {
                let c = if payload.len() >= 2 {
                    (
                        Some(u16::from_be_bytes([payload[0], payload[1]])),
                        String::from_utf8_lossy(&payload[2..]).into_owned(),
                    )
                } else {
                    (None, String::new())
                };
                self.close[i] = Some(c);
                self.first_close.get_or_insert(side);
            }
            _ => {}
        }
    }

    /// Records a FIN sent by `side`.
    pub fn on_fin(&mut self, side: Side) {
        self.fin = true;
        self.end_by.get_or_insert(side);
    }

    /// Records a RST sent by `side`.
    pub fn on_rst(&mut self, side: Side) {
        self.rst = true;
        self.end_by.get_or_insert(side);
    }

    /// The expected analyzer output.
    pub fn expected(&self) -> ExpectedSession {
        let any_unknown = self.unknown[0] || self.unknown[1];
        let side_val = |i: usize, v: String| if self.unknown[i] { "*".to_string() } else { v };
        let derived = |v: String| if any_unknown { "*".to_string() } else { v };
        let status = self.http_status.map(|s| s.to_string()).unwrap_or_default();
        let nclose = self.close.iter().filter(|c| c.is_some()).count();
        let outcome = if self.http_status.is_some_and(|s| s != 101) {
            "rejected"
        } else if nclose == 2 {
            "clean"
        } else if self.rst {
            "reset"
        } else if self.fin {
            if nclose == 1 {
                "unanswered_close"
            } else {
                "no_close_frame"
            }
        } else {
            "open_at_end"
        };
        let abnormal = matches!(outcome, "reset" | "unanswered_close" | "no_close_frame");
        let close_code = match self.first_close {
            Some(s) => self.close[s.idx()]
                .as_ref()
                .unwrap()
                .0
                .unwrap_or(1005)
                .to_string(),
            None if self.rst || self.fin => "1006".to_string(),
            None => String::new(),
        };
        let code = |i: usize| match &self.close[i] {
            Some((c, _)) => c.unwrap_or(1005).to_string(),
            None => String::new(),
        };
        let reason = |i: usize| {
            self.close[i]
                .as_ref()
                .map(|c| c.1.clone())
                .unwrap_or_default()
        };
        let tcp_end = if self.rst {
            "rst"
        } else if self.fin {
            "fin"
        } else {
            "open"
        };
        let values = vec![
            self.client.to_string(),
            self.server.to_string(),
            status,
            side_val(0, self.msgs[0].to_string()),
            side_val(1, self.msgs[1].to_string()),
            side_val(0, self.bytes[0].to_string()),
            side_val(1, self.bytes[1].to_string()),
            side_val(0, self.pings[0].to_string()),
            side_val(1, self.pings[1].to_string()),
            side_val(0, self.pongs[0].to_string()),
            side_val(1, self.pongs[1].to_string()),
            derived(
                self.first_close
                    .map(|s| s.name().to_string())
                    .unwrap_or_default(),
            ),
            side_val(0, code(0)),
            side_val(0, reason(0)),
            side_val(1, code(1)),
            side_val(1, reason(1)),
            derived(close_code),
            tcp_end.to_string(),
            self.end_by
                .map(|s| s.name().to_string())
                .unwrap_or_default(),
            derived(outcome.to_string()),
            derived(abnormal.to_string()),
            (!any_unknown).to_string(),
        ];
        ExpectedSession { values }
    }
}

/// A WebSocket session over a simulated TCP connection, tracking the truth.
#[derive(Clone, Debug)]
pub struct WsConn {
    /// The TCP connection.
    pub tcp: TcpSim,
    /// Ground truth.
    pub track: Tracker,
    /// Randomness (masking keys, payloads).
    pub rng: Rng,
}

impl WsConn {
    /// Wraps a TCP connection.
    pub fn new(tcp: TcpSim, rng: Rng) -> Self {
        let track = Tracker::new(tcp.client.addr, tcp.server.addr);
        WsConn { tcp, track, rng }
    }

    /// Masking key for frames sent by `side` (clients always mask).
    pub fn mask_for(&mut self, side: Side) -> Option<[u8; 4]> {
        match side {
            Side::Client => Some((self.rng.next_u64() as u32).to_be_bytes()),
            Side::Server => None,
        }
    }

    /// Encodes a frame from `side` and records it in the truth.
    pub fn encode(&mut self, side: Side, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        self.track
            .on_frame(side, fin, opcode, payload.len() as u64, payload);
        let m = self.mask_for(side);
        ws::encode_frame(fin, 0, opcode, m, payload)
    }

    /// Encodes and sends one frame.
    pub fn send_frame(
        &mut self,
        side: Side,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        impairs: &[Impair],
    ) {
        let f = self.encode(side, fin, opcode, payload);
        self.tcp.send_impaired(side, &f, impairs);
    }

    /// Sends a complete single-frame message.
    pub fn message(&mut self, side: Side, opcode: u8, payload: &[u8]) {
        self.send_frame(side, true, opcode, payload, &[]);
    }

    /// Sends a text message.
    pub fn text(&mut self, side: Side, s: &str) {
        self.message(side, OP_TEXT, s.as_bytes());
    }

    /// Sends a ping.
    pub fn ping(&mut self, side: Side, payload: &[u8]) {
        self.message(side, OP_PING, payload);
    }

    /// Sends a pong.
    pub fn pong(&mut self, side: Side, payload: &[u8]) {
        self.message(side, OP_PONG, payload);
    }

    /// Sends a close frame (`None` = empty payload).
    pub fn close(&mut self, side: Side, code: Option<u16>, reason: &str) {
        let p = ws::close_payload(code, reason);
        self.message(side, OP_CLOSE, &p);
    }

    /// Client sends the upgrade request.
    pub fn request(&mut self, hs: &ClientHandshake) {
        self.tcp.send(Side::Client, &hs.to_bytes());
    }

    /// Server answers 101.
    pub fn accept(&mut self, hs: &ClientHandshake) {
        self.track.http_status = Some(101);
        let proto = hs
            .protocol
            .as_deref()
            .map(|p| p.split(',').next().unwrap_or(p).trim().to_string());
        self.tcp
            .send(Side::Server, &ws::server_accept(&hs.key, proto.as_deref()));
    }

    /// Server rejects the upgrade.
    pub fn reject(&mut self, status: u16, body: &str) {
        self.track.http_status = Some(status);
        self.tcp
            .send(Side::Server, &ws::server_reject(status, body));
    }

    /// FIN from `side`.
    pub fn fin(&mut self, side: Side) {
        self.track.on_fin(side);
        self.tcp.fin(side);
    }

    /// RST from `side`.
    pub fn rst(&mut self, side: Side) {
        self.track.on_rst(side);
        self.tcp.rst(side);
    }

    /// Expected analyzer output.
    pub fn expected(&self) -> ExpectedSession {
        self.track.expected()
    }
}

// ---------------------------------------------------------------------------
// Scenario generator
// ---------------------------------------------------------------------------

/// Relative weights of chat-like and bulk sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Weight of chat sessions (small text messages, pings).
    pub chat: u32,
    /// Weight of bulk sessions (64 KiB - 4 MiB binary messages).
    pub bulk: u32,
}

impl Mix {
    /// Only chat sessions.
    pub const CHAT: Mix = Mix { chat: 1, bulk: 0 };
    /// Only bulk sessions.
    pub const BULK: Mix = Mix { chat: 0, bulk: 1 };
    /// 3 chat : 1 bulk.
    pub const MIXED: Mix = Mix { chat: 3, bulk: 1 };

    /// Parses `chat`, `bulk`, `mixed` or `C:B` weights.
    pub fn parse(s: &str) -> Option<Mix> {
        match s {
            "chat" => Some(Mix::CHAT),
            "bulk" => Some(Mix::BULK),
            "mixed" => Some(Mix::MIXED),
            _ => {
                let (c, b) = s.split_once(':')?;
                let m = Mix {
                    chat: c.parse().ok()?,
                    bulk: b.parse().ok()?,
                };
                (m.chat + m.bulk > 0).then_some(m)
            }
        }
    }
}

/// Generator configuration.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Seed: same config = byte-identical output.
    pub seed: u64,
    /// Number of WebSocket sessions.
    pub sessions: u64,
    /// Chat vs bulk weights.
    pub mix: Mix,
    /// Approximate total capture size; 0 = natural session sizes. When set,
    /// each session gets a share of the budget (bulk sessions 8x a chat
    /// session's); once the output reaches it, sessions go to their ending
    /// (all `sessions` are still created, the late ones nearly empty).
    pub target_bytes: u64,
    /// Maximum number of concurrently active connections.
    pub concurrency: usize,
    /// Fraction of WS sessions with a capture gap inside a frame payload
    /// (counts stay exact).
    pub gap_fraction: f64,
    /// Fraction of WS sessions with a gap over a frame header (exact=false).
    pub header_gap_fraction: f64,
    /// Fraction of sessions with reordered / duplicated / retransmitted segments.
    pub reorder_fraction: f64,
    /// Fraction of connections over IPv6.
    pub ipv6_fraction: f64,
    /// Plain HTTP connections per WS session.
    pub http_fraction: f64,
    /// UDP flows per WS session.
    pub udp_fraction: f64,
    /// `wss://`: every TCP connection (WebSocket and HTTP) is TLS 1.3 with
    /// `TLS_AES_128_GCM_SHA256`; [`generate_with_keylog`] writes the key log. No capture
    /// gaps are made (the plaintext of a lost record would not be the truth's); everything
    /// else is the plaintext capture's, session for session.
    pub tls: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            sessions: 100,
            mix: Mix::MIXED,
            target_bytes: 0,
            concurrency: 24,
            gap_fraction: 0.03,
            header_gap_fraction: 0.01,
            reorder_fraction: 0.05,
            ipv6_fraction: 0.1,
            http_fraction: 0.05,
            udp_fraction: 0.05,
            tls: false,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Bytes written.
    pub bytes: u64,
    /// Packets written.
    pub packets: u64,
    /// WebSocket sessions (rows of the expected CSV).
    pub ws_sessions: u64,
    /// Plain HTTP (non-WebSocket) TCP connections.
    pub http_connections: u64,
    /// UDP packets.
    pub udp_packets: u64,
}

/// Writes a classic pcap (Ethernet, µs) capture to `out` and returns the
/// expected sessions in order of their first packet.
pub fn generate(cfg: &GenConfig, out: &mut impl Write) -> io::Result<Vec<ExpectedSession>> {
    let mut v = Vec::new();
    generate_with(cfg, out, |e| {
        v.push(e);
        Ok(())
    })?;
    Ok(v)
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const BASE_TS: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;
const CHUNK: usize = 44 * 1448;
const BULK_SHARE: f64 = 8.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gap {
    None,
    Payload,
    Header,
}

#[derive(Clone, Debug)]
enum Ending {
    Clean {
        first: Side,
        code: Option<u16>,
        fin_first: Side,
        rst_after: bool,
        no_fin: bool,
    },
    Reset(Side),
    FinNoClose(Side, bool),
    Unanswered {
        by: Side,
        code: Option<u16>,
        fin_by: Side,
    },
    OpenAfterClose(Side, Option<u16>),
    OpenAtEnd,
    Rejected(u16),
    NoResponse,
}

struct CurFrame {
    len: u64,
    sent: u64,
    mask: Option<[u8; 4]>,
    header: Vec<u8>,
}

struct BigMsg {
    side: Side,
    frames: VecDeque<u64>,
    first: bool,
    cur: Option<CurFrame>,
    ping_between: bool,
}

struct WsGen {
    ws: WsConn,
    idx: u64,
    bulk: bool,
    ending: Ending,
    hs: ClientHandshake,
    msgs_left: u64,
    budget: Option<i64>,
    big: Option<BigMsg>,
    gap: Gap,
    reorder: bool,
    think: (u64, u64),
    phase: u8,
}

fn close_reason(code: Option<u16>) -> &'static str {
    match code {
        Some(1000) => "bye",
        Some(1001) => "going away",
        Some(1011) => "internal error",
        Some(_) => "session expired",
        None => "",
    }
}

const WORDS: &[&str] = &[
    "hello",
    "world",
    "ok",
    "sure",
    "lol",
    "meeting",
    "at",
    "noon",
    "the",
    "build",
    "is",
    "green",
    "ship",
    "it",
    "ping",
    "latency",
    "deploy",
    "coffee",
    "thanks",
    "see",
    "you",
    "tomorrow",
    "websocket",
    "frame",
    "close",
    "packet",
];

fn chat_text(rng: &mut Rng, len: usize) -> String {
    let mut s = format!("{{\"user\":\"u{}\",\"msg\":\"", rng.below(1000));
    while s.len() < len.saturating_sub(2) {
        s.push_str(rng.pick::<&str>(WORDS));
        s.push(' ');
    }
    s.truncate(len.saturating_sub(2));
    s.push_str("\"}");
    s
}

impl WsGen {
    fn step(&mut self, wrap_up: bool) {
        match self.phase {
            0 => self.start(),
            1 => {
                let done_msgs = match self.budget {
                    Some(b) => b <= 0,
                    None => self.msgs_left == 0,
                };
                if self.big.is_some() {
                    self.big_step();
                } else if self.gap != Gap::None {
                    let len = self.ws.rng.range(20_000, 200_000);
                    let side = if self.ws.rng.chance(0.5) {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    self.start_big(side, len, 1);
                } else if wrap_up || done_msgs {
                    self.phase = 2;
                } else if self.bulk && self.ws.rng.chance(0.75) {
                    let len = self.ws.rng.log_range(64 << 10, 4 << 20);
                    let side = if self.ws.rng.chance(0.7) {
                        Side::Server
                    } else {
                        Side::Client
                    };
                    let nfrag = if self.ws.rng.chance(0.3) {
                        self.ws.rng.range(2, 6) as usize
                    } else {
                        1
                    };
                    self.start_big(side, len, nfrag);
                    if let Some(b) = self.budget.as_mut() {
                        *b -= (len + len / 12) as i64;
                    }
                    self.msgs_left = self.msgs_left.saturating_sub(1);
                } else {
                    self.chat_step();
                }
            }
            2 => self.finish(),
            _ => {}
        }
    }

    fn start(&mut self) {
        let syns = if self.ws.rng.chance(0.01) { 2 } else { 1 };
        self.ws.tcp.handshake_with(syns);
        self.ws.tcp.wait(self.ws.rng.range(1, 20) * MS);
        self.ws.request(&self.hs.clone());
        self.ws.tcp.wait(self.ws.rng.range(1, 30) * MS);
        self.phase = 1;
        match self.ending {
            Ending::Rejected(st) => {
                self.ws.reject(st, "websocket upgrade refused\n");
                self.ws.tcp.wait(MS);
                self.ws.fin(Side::Server);
                self.ws.tcp.wait(MS);
                self.ws.fin(Side::Client);
                self.phase = 3;
            }
            Ending::NoResponse => self.phase = 3,
            _ => {
                let hs = self.hs.clone();
                self.ws.accept(&hs);
            }
        }
    }

    fn chat_step(&mut self) {
        let r = self.ws.rng.unit();
        let side = if self.ws.rng.chance(0.5) {
            Side::Client
        } else {
            Side::Server
        };
        if r < 0.08 {
            let mut p = vec![0u8; self.ws.rng.below(17) as usize];
            self.ws.rng.fill(&mut p);
            self.ws.ping(side, &p);
            self.ws.tcp.wait(self.ws.rng.range(1, 40) * MS);
            self.ws.pong(side.other(), &p);
        } else if r < 0.095 {
            let one = self.ws.rng.chance(0.5);
            self.ws.tcp.keepalive(side, one);
        } else {
            let n = *self.ws.rng.pick(&[1usize, 1, 1, 2, 2, 3]);
            let mut frames = Vec::with_capacity(n);
            for _ in 0..n {
                let len = self.ws.rng.range(20, 500) as usize;
                let t = chat_text(&mut self.ws.rng, len);
                frames.push(self.ws.encode(side, true, OP_TEXT, t.as_bytes()));
                if let Some(b) = self.budget.as_mut() {
                    *b -= len as i64 + 165;
                }
            }
            let mut imp = Vec::new();
            if self.reorder && self.ws.rng.chance(0.3) {
                imp.push(match (n, self.ws.rng.below(3)) {
                    (1, _) => Impair::Duplicate(0),
                    (_, 0) => Impair::Reorder(0),
                    (_, 1) => Impair::Duplicate(n - 1),
                    _ => Impair::DropRetransmit(0),
                });
            }
            let segs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            self.ws.tcp.send_segments(side, &segs, &imp);
            self.msgs_left = self.msgs_left.saturating_sub(n as u64);
        }
        let (lo, hi) = self.think;
        self.ws.tcp.wait(self.ws.rng.range(lo, hi));
    }

    fn start_big(&mut self, side: Side, len: u64, nfrag: usize) {
        let frames = if nfrag <= 1 {
            vec![len]
        } else {
            ws::fragment_sizes(len, nfrag, &mut self.ws.rng)
        };
        let ping_between = frames.len() > 1 && self.ws.rng.chance(0.5);
        self.big = Some(BigMsg {
            side,
            frames: frames.into(),
            first: true,
            cur: None,
            ping_between,
        });
    }

    fn big_step(&mut self) {
        let mut big = self.big.take().unwrap();
        let side = big.side;
        if big.cur.is_none() {
            let len = big.frames.pop_front().unwrap();
            let fin = big.frames.is_empty();
            let op = if big.first { OP_BINARY } else { OP_CONT };
            big.first = false;
            self.ws.track.on_frame(side, fin, op, len, &[]);
            let mask = self.ws.mask_for(side);
            big.cur = Some(CurFrame {
                len,
                sent: 0,
                mask,
                header: ws::frame_header(fin, 0, op, mask, len),
            });
        }
        let cur = big.cur.as_mut().unwrap();
        let first_chunk = cur.sent == 0;
        let mut chunk = std::mem::take(&mut cur.header);
        let n = ((CHUNK - chunk.len()) as u64).min(cur.len - cur.sent) as usize;
        let start = chunk.len();
        chunk.resize(start + n, 0);
        self.ws.rng.fill(&mut chunk[start..]);
        if let Some(k) = cur.mask {
            ws::apply_mask(&mut chunk[start..], k, cur.sent);
        }
        cur.sent += n as u64;
        let nsegs = self.ws.tcp.segment_count(chunk.len());
        let mut imp = Vec::new();
        match self.gap {
            Gap::Payload if nsegs >= 2 || !first_chunk => {
                let lo = if first_chunk { 1 } else { 0 };
                imp.push(Impair::CaptureLoss(
                    self.ws.rng.range(lo, nsegs as u64 - 1) as usize
                ));
                self.gap = Gap::None;
            }
            Gap::Header if first_chunk && nsegs >= 2 => {
                imp.push(Impair::CaptureLoss(0));
                self.ws.track.unknown[side.idx()] = true;
                self.gap = Gap::None;
            }
            _ => {
                if self.reorder && nsegs >= 4 && self.ws.rng.chance(0.3) {
                    let k = self.ws.rng.range(0, nsegs as u64 - 3) as usize;
                    imp.push(match self.ws.rng.below(4) {
                        0 => Impair::Reorder(k),
                        1 => Impair::Duplicate(k),
                        2 => Impair::DropRetransmit(k),
                        _ => Impair::OverlapRetransmit(k),
                    });
                }
            }
        }
        self.ws.tcp.send_impaired(side, &chunk, &imp);
        if cur.sent == cur.len {
            big.cur = None;
            if big.frames.is_empty() {
                let (lo, hi) = self.think;
                self.ws.tcp.wait(self.ws.rng.range(lo, hi));
                return;
            }
            if big.ping_between {
                self.ws.ping(side, b"hb");
                self.ws.tcp.wait(MS);
                self.ws.pong(side.other(), b"hb");
            }
        }
        self.big = Some(big);
    }

    fn finish(&mut self) {
        let rtt = self.ws.rng.range(1, 50) * MS;
        match self.ending.clone() {
            Ending::Clean {
                first,
                code,
                fin_first,
                rst_after,
                no_fin,
            } => {
                self.ws.close(first, code, close_reason(code));
                self.ws.tcp.wait(rtt);
                self.ws.close(first.other(), code, "");
                self.ws.tcp.wait(rtt / 4);
                if rst_after {
                    self.ws.rst(fin_first);
                } else if !no_fin {
                    self.ws.fin(fin_first);
                    self.ws.tcp.wait(rtt / 2);
                    self.ws.fin(fin_first.other());
                }
            }
            Ending::Reset(by) => self.ws.rst(by),
            Ending::FinNoClose(by, both) => {
                self.ws.fin(by);
                if both {
                    self.ws.tcp.wait(rtt);
                    self.ws.fin(by.other());
                }
            }
            Ending::Unanswered { by, code, fin_by } => {
                self.ws.close(by, code, close_reason(code));
                self.ws.tcp.wait(self.ws.rng.range(1000, 5000) * MS);
                self.ws.fin(fin_by);
                self.ws.tcp.wait(rtt);
                self.ws.fin(fin_by.other());
            }
            Ending::OpenAfterClose(by, code) => self.ws.close(by, code, close_reason(code)),
            Ending::OpenAtEnd | Ending::Rejected(_) | Ending::NoResponse => {}
        }
        self.phase = 3;
    }
}

fn pick_ending(rng: &mut Rng) -> Ending {
    let side = |rng: &mut Rng| {
        if rng.chance(0.5) {
            Side::Client
        } else {
            Side::Server
        }
    };
    let code = |rng: &mut Rng, server: bool| match rng.below(10) {
        0..=3 => Some(1000),
        4 | 5 => Some(1001),
        6 if server => Some(1011),
        6 => Some(1000),
        7 | 8 => Some(4000 + rng.below(1000) as u16),
        _ => None,
    };
    let r = rng.below(1000);
    match r {
        0..=549 => {
            let first = if r < 300 { Side::Client } else { Side::Server };
            let code = code(rng, first == Side::Server);
            let fin_first = if rng.chance(0.8) {
                Side::Server
            } else {
                Side::Client
            };
            Ending::Clean {
                first,
                code,
                fin_first,
                rst_after: rng.chance(0.05),
                no_fin: false,
            }
        }
        550..=649 => Ending::Reset(side(rng)),
        650..=729 => {
            let by = side(rng);
            Ending::FinNoClose(by, rng.chance(0.7))
        }
        730..=799 => {
            let by = side(rng);
            let c = code(rng, by == Side::Server);
            let fin_by = if rng.chance(0.7) { by } else { by.other() };
            Ending::Unanswered {
                by,
                code: c,
                fin_by,
            }
        }
        800..=869 => Ending::OpenAtEnd,
        870..=889 => {
            let by = side(rng);
            let c = code(rng, by == Side::Server);
            Ending::OpenAfterClose(by, c)
        }
        890..=949 => Ending::Rejected(*rng.pick(&[403, 403, 403, 404, 401, 400, 503])),
        950..=959 => Ending::NoResponse,
        _ => {
            let code = code(rng, true);
            Ending::Clean {
                first: Side::Server,
                code,
                fin_first: Side::Server,
                rst_after: false,
                no_fin: true,
            }
        }
    }
}

struct HttpGen {
    tcp: TcpSim,
    rng: Rng,
    done: bool,
}

impl HttpGen {
    fn step(&mut self) {
        self.tcp.handshake();
        let n = if self.rng.chance(0.3) { 2 } else { 1 };
        for i in 0..n {
            self.tcp.wait(self.rng.range(1, 10) * MS);
            let req = format!(
                "GET /static/page{i}.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.4.0\r\nAccept: */*\r\n\r\n"
            );
            self.tcp.send(Side::Client, req.as_bytes());
            self.tcp.wait(self.rng.range(1, 20) * MS);
            let len = self.rng.range(100, 30_000) as usize;
            let body = chat_text(&mut self.rng, len);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n{body}"
            );
            self.tcp.send(Side::Server, resp.as_bytes());
        }
        self.tcp.wait(self.rng.range(1, 100) * MS);
        let by = if self.rng.chance(0.5) {
            Side::Client
        } else {
            Side::Server
        };
        self.tcp.fin(by);
        self.tcp.wait(MS);
        self.tcp.fin(by.other());
        self.done = true;
    }
}

enum Kind {
    Ws(Box<WsGen>),
    Http(Box<HttpGen>),
    Udp(VecDeque<(u64, bool, Vec<u8>)>),
}

struct Conn {
    id: u64,
    kind: Kind,
}

impl Conn {
    fn peek_ts(&self) -> Option<u64> {
        match &self.kind {
            Kind::Ws(w) => w.ws.tcp.peek_ts(),
            Kind::Http(h) => h.tcp.peek_ts(),
            Kind::Udp(q) => q.front().map(|p| p.0),
        }
    }

    fn pop(&mut self) -> Option<(u64, bool, Vec<u8>)> {
        let tcp = match &mut self.kind {
            Kind::Ws(w) => &mut w.ws.tcp,
            Kind::Http(h) => &mut h.tcp,
            Kind::Udp(q) => return q.pop_front(),
        };
        let s = tcp.pop()?;
        Some((s.ts_ns, s.from == Side::Client, tcp.ip_packet(&s)))
    }

    /// Runs steps until something is queued; false when finished.
    fn refill(&mut self, wrap_up: bool) -> bool {
        loop {
            if self.peek_ts().is_some() {
                return true;
            }
            match &mut self.kind {
                Kind::Ws(w) if w.phase < 3 => w.step(wrap_up),
                Kind::Http(h) if !h.done => h.step(),
                _ => return false,
            }
        }
    }
}

struct Factory {
    rng: Rng,
    cfg: GenConfig,
    next_id: u64,
    ws_made: u64,
    ws_total: u64,
    http_left: u64,
    udp_left: u64,
    committed: u64,
    last_start: u64,
    /// Key log lines of the connections made since the last write.
    keylog: String,
}

impl Factory {
    fn remaining(&self) -> u64 {
        (self.ws_total - self.ws_made) + self.http_left + self.udp_left
    }

    fn addrs(&mut self, id: u64, rng: &mut Rng) -> (SocketAddr, SocketAddr, bool) {
        let n = (id % (1 << 24)) as u32 + 1;
        let v6 = rng.chance(self.cfg.ipv6_fraction);
        let port = 32768 + rng.below(28000) as u16;
        let sport = *rng.pick(&[80u16, 80, 8080, 8000, 9000]);
        let srv = rng.below(8) as u16;
        if v6 {
            let c = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (n >> 16) as u16, n as u16);
            let s = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10 + srv);
            (
                SocketAddr::new(IpAddr::V6(c), port),
                SocketAddr::new(IpAddr::V6(s), sport),
                true,
            )
        } else {
            let c = Ipv4Addr::from(0x0a00_0000 | n);
            let s = Ipv4Addr::new(192, 0, 2, 10 + srv as u8);
            (
                SocketAddr::new(IpAddr::V4(c), port),
                SocketAddr::new(IpAddr::V4(s), sport),
                false,
            )
        }
    }

    fn make(&mut self, now: u64, written: u64) -> Conn {
        let id = self.next_id;
        self.next_id += 1;
        let mut rng = Rng::new(
            self.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93),
        );
        let start = now.max(self.last_start) + self.rng.range(100_000, 20 * MS);
        self.last_start = start;
        let pick = self.rng.below(self.remaining());
        let ws_left = self.ws_total - self.ws_made;
        let (client, server, v6) = self.addrs(id, &mut rng);
        let mut tcp = TcpSim::new(
            client,
            server,
            rng.next_u64() as u32,
            rng.next_u64() as u32,
            start,
        );
        tcp.ip = IpOpts {
            ttl: if rng.chance(0.5) { 64 } else { 128 },
            ip_id: rng.next_u64() as u16,
            ipv6_hop_by_hop: v6 && rng.chance(0.05),
        };
        tcp.gap_ns = rng.range(8_000, 40_000);
        if self.cfg.tls && pick < ws_left + self.http_left {
            // Its own generator, so that the sessions are the plaintext capture's.
            let mut trng = Rng::new(
                self.cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ id.wrapping_mul(0x9E37_79B9),
            );
            let sni = match server.ip() {
                IpAddr::V4(a) => format!("ws{}.example.com", a.octets()[3]),
                IpAddr::V6(a) => format!("ws{}.example.com", a.segments()[7]),
            };
            let t = crate::tls::TlsConn::new(&mut trng, &sni);
            self.keylog.push_str(&t.keylog_lines());
            tcp.tls = Some(Box::new(t));
        }
        if pick < ws_left {
            let idx = self.ws_made;
            self.ws_made += 1;
            let w = u64::from(self.cfg.mix.chat + self.cfg.mix.bulk).max(1);
            let bulk = rng.below(w) >= u64::from(self.cfg.mix.chat);
            let budget = (self.cfg.target_bytes > 0).then(|| {
                // bulk sessions get BULK_SHARE times the budget of a chat session
                let (c, b) = (f64::from(self.cfg.mix.chat), f64::from(self.cfg.mix.bulk));
                let avg_w = (c + BULK_SHARE * b) / (c + b).max(1.0);
                let my_w = if bulk { BULK_SHARE } else { 1.0 };
                let left = self
                    .cfg
                    .target_bytes
                    .saturating_sub(self.committed.max(written));
                let per = left as f64 * my_w / (avg_w * (self.ws_total - idx).max(1) as f64);
                let b = (per * (0.5 + rng.unit())) as u64;
                self.committed += b;
                b as i64
            });
            let msgs_left = if bulk {
                rng.range(1, 3)
            } else {
                rng.range(3, 40)
            };
            let gap = if rng.chance(self.cfg.header_gap_fraction) {
                Gap::Header
            } else if rng.chance(self.cfg.gap_fraction) {
                Gap::Payload
            } else {
                Gap::None
            };
            let gap = if self.cfg.tls { Gap::None } else { gap };
            let host = format!("{server}");
            let path = *rng.pick(&[
                "/ws",
                "/chat",
                "/socket.io/?EIO=4&transport=websocket",
                "/api/stream",
                "/live",
            ]);
            let hs = if rng.chance(0.5) {
                ClientHandshake::browser(&host, path, &mut rng)
            } else {
                ClientHandshake::new(&host, path, &mut rng)
            };
            let ending = pick_ending(&mut rng);
            let reorder = rng.chance(self.cfg.reorder_fraction);
            let think = if bulk {
                (MS, 50 * MS)
            } else {
                (2 * MS, 400 * MS)
            };
            let ws = WsConn::new(tcp, rng.fork());
            Conn {
                id,
                kind: Kind::Ws(Box::new(WsGen {
                    ws,
                    idx,
                    bulk,
                    ending,
                    hs,
                    msgs_left,
                    budget,
                    big: None,
                    gap,
                    reorder,
                    think,
                    phase: 0,
                })),
            }
        } else if pick < ws_left + self.http_left {
            self.http_left -= 1;
            Conn {
                id,
                kind: Kind::Http(Box::new(HttpGen {
                    tcp,
                    rng,
                    done: false,
                })),
            }
        } else {
            self.udp_left -= 1;
            let mut q = VecDeque::new();
            let mut t = start;
            let dns = SocketAddr::new(
                if v6 {
                    server.ip()
                } else {
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))
                },
                53,
            );
            for _ in 0..rng.range(1, 3) {
                let name = *rng.pick::<&str>(&[
                    "example.com",
                    "www.example.org",
                    "chat.example.net",
                    "cdn.example.com",
                ]);
                let txid = rng.next_u64() as u16;
                let (qry, ans) = dns_pair(txid, name, rng.next_u64() as u32);
                q.push_back((
                    t,
                    true,
                    packet::build_udp(client, dns, &qry, &IpOpts::default()),
                ));
                t += rng.range(1, 30) * MS;
                q.push_back((
                    t,
                    false,
                    packet::build_udp(dns, client, &ans, &IpOpts::default()),
                ));
                t += rng.range(1, 200) * MS;
            }
            Conn {
                id,
                kind: Kind::Udp(q),
            }
        }
    }
}

/// A DNS A query for `name` and its answer (`addr`).
fn dns_pair(id: u16, name: &str, addr: u32) -> (Vec<u8>, Vec<u8>) {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut a = q.clone();
    a[2..4].copy_from_slice(&[0x81, 0x80]);
    a[6..8].copy_from_slice(&[0, 1]);
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
    a.extend_from_slice(&addr.to_be_bytes());
    (q, a)
}

/// Streaming generator: writes the capture to `out` (bounded memory) and
/// calls `on_session` for every WebSocket session in order of its first
/// packet.
pub fn generate_with<W: Write, F: FnMut(ExpectedSession) -> io::Result<()>>(
    cfg: &GenConfig,
    out: &mut W,
    on_session: F,
) -> io::Result<GenSummary> {
    generate_with_keylog(cfg, out, &mut io::sink(), on_session)
}

/// [`generate_with`], and the key log of the TLS connections (with `cfg.tls`) to
/// `keylog`, in the NSS key log format, as the connections start.
pub fn generate_with_keylog<W: Write, K: Write, F: FnMut(ExpectedSession) -> io::Result<()>>(
    cfg: &GenConfig,
    out: &mut W,
    keylog: &mut K,
    mut on_session: F,
) -> io::Result<GenSummary> {
    let counting = Counting { inner: out, n: 0 };
    let mut w = PcapWriter::new(counting, Link::ethernet().linktype(), PcapOpts::default())?;
    let link = Link::ethernet();
    let mut f = Factory {
        rng: Rng::new(cfg.seed),
        cfg: cfg.clone(),
        next_id: 0,
        ws_made: 0,
        ws_total: cfg.sessions,
        http_left: (cfg.sessions as f64 * cfg.http_fraction).round() as u64,
        udp_left: (cfg.sessions as f64 * cfg.udp_fraction).round() as u64,
        committed: 0,
        last_start: BASE_TS,
        keylog: String::new(),
    };
    let mut sum = GenSummary::default();
    let mut active: Vec<Conn> = Vec::new();
    let mut now = BASE_TS;
    let mut finished: BTreeMap<u64, ExpectedSession> = BTreeMap::new();
    let mut next_emit = 0u64;
    let conc = cfg.concurrency.max(1);
    loop {
        let written = w.get_ref().n;
        let wrap_up = cfg.target_bytes > 0 && written >= cfg.target_bytes;
        while active.len() < conc && f.remaining() > 0 {
            let mut c = f.make(now, written);
            if !f.keylog.is_empty() {
                keylog.write_all(f.keylog.as_bytes())?;
                f.keylog.clear();
            }
            match &c.kind {
                Kind::Http(_) => sum.http_connections += 1,
                Kind::Ws(_) => sum.ws_sessions += 1,
                Kind::Udp(_) => {}
            }
            if c.refill(wrap_up) {
                active.push(c);
            }
        }
        // earliest packet (ties: older connection first)
        let Some(i) = (0..active.len())
            .min_by_key(|&i| (active[i].peek_ts().unwrap_or(u64::MAX), active[i].id))
        else {
            break;
        };
        let c = &mut active[i];
        let (ts, from_client, ip) = c.pop().expect("active connection has a packet");
        now = ts;
        if matches!(c.kind, Kind::Udp(_)) {
            sum.udp_packets += 1;
        }
        w.write_packet(ts, &link.frame(&ip, from_client))?;
        sum.packets += 1;
        if !c.refill(wrap_up) {
            let c = active.swap_remove(i);
            if let Kind::Ws(g) = c.kind {
                finished.insert(g.idx, g.ws.expected());
                while let Some(e) = finished.remove(&next_emit) {
                    on_session(e)?;
                    next_emit += 1;
                }
            }
        }
    }
    // sessions that never produced a packet cannot happen, but flush anyway
    for (_, e) in std::mem::take(&mut finished) {
        on_session(e)?;
    }
    let c = w.into_inner()?;
    sum.bytes = c.n;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> GenConfig {
        GenConfig {
            seed,
            sessions: 40,
            mix: Mix::MIXED,
            concurrency: 8,
            gap_fraction: 0.2,
            header_gap_fraction: 0.1,
            reorder_fraction: 0.3,
            ..GenConfig::default()
        }
    }

    #[test]
    fn deterministic() {
        let mut a = Vec::new();
        let ea = generate(&small(5), &mut a).unwrap();
        let mut b = Vec::new();
        let eb = generate(&small(5), &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(ea, eb);
        assert_eq!(ea.len(), 40);
        let mut c = Vec::new();
        generate(&small(6), &mut c).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn capture_is_well_formed() {
        let mut a = Vec::new();
        let exp = generate(&small(9), &mut a).unwrap();
        let mut off = 24;
        let mut last = 0u64;
        let mut n = 0;
        let mut seen: Vec<String> = Vec::new();
        while off < a.len() {
            let h = &a[off..off + 16];
            let ts = u64::from(u32::from_le_bytes(h[0..4].try_into().unwrap())) * 1_000_000
                + u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
            assert!(ts >= last, "timestamps must not decrease");
            last = ts;
            let cap = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
            let frame = &a[off + 16..off + 16 + cap];
            let et = u16::from_be_bytes([frame[12], frame[13]]);
            let ip = &frame[14..];
            assert!(et == 0x0800 || et == 0x86dd);
            packet::verify_checksums(ip).unwrap();
            let (src, l4): (IpAddr, &[u8]) = if et == 0x0800 {
                let a: [u8; 4] = ip[12..16].try_into().unwrap();
                (a.into(), &ip[20..])
            } else {
                let a: [u8; 16] = ip[8..24].try_into().unwrap();
                let ext = if ip[6] == 0 { 8 } else { 0 };
                (a.into(), &ip[40 + ext..])
            };
            let sa = SocketAddr::new(src, u16::from_be_bytes([l4[0], l4[1]])).to_string();
            if !seen.contains(&sa) {
                seen.push(sa);
            }
            off += 16 + cap;
            n += 1;
        }
        assert_eq!(off, a.len());
        assert!(n > 100);
        // expected sessions are in order of their first packet
        let pos: Vec<usize> = exp
            .iter()
            .map(|e| {
                seen.iter()
                    .position(|s| Some(s.as_str()) == e.get("client"))
                    .unwrap()
            })
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        let csv = expected_csv(&exp);
        assert_eq!(csv.lines().count(), 41);
        assert!(exp.iter().any(|e| e.get("exact") == Some("false")));
        assert!(exp
            .iter()
            .all(|e| e.get("exact") == Some("false") || e.get("client_messages") != Some("*")));
    }

    #[test]
    fn tls_is_the_same_sessions_with_a_key_log() {
        let plain = small(9);
        let tls = GenConfig {
            tls: true,
            gap_fraction: 0.0,
            header_gap_fraction: 0.0,
            ..small(9)
        };
        let run = |cfg: &GenConfig| {
            let (mut cap, mut keys, mut exp) = (Vec::new(), Vec::new(), Vec::new());
            let s = generate_with_keylog(cfg, &mut cap, &mut keys, |e| {
                exp.push(e);
                Ok(())
            })
            .unwrap();
            (cap, keys, exp, s)
        };
        let (a, ka, ea, sa) = run(&tls);
        let (b, kb, eb, _) = run(&tls);
        assert!(a == b && ka == kb && ea == eb, "deterministic");
        let keys = String::from_utf8(ka).unwrap();
        // Four secrets per TLS connection (WebSocket and HTTP alike).
        assert_eq!(
            keys.lines().count() as u64,
            4 * (sa.ws_sessions + sa.http_connections)
        );
        // Without gaps, the truth is the plaintext capture's, session for session.
        let plain_nogap = GenConfig {
            gap_fraction: 0.0,
            header_gap_fraction: 0.0,
            ..plain
        };
        let (_, kp, ep, _) = run(&plain_nogap);
        assert!(kp.is_empty());
        assert_eq!(ea, ep);
    }

    #[test]
    fn target_bytes_is_approximate() {
        let cfg = GenConfig {
            seed: 3,
            sessions: 20,
            mix: Mix::CHAT,
            target_bytes: 2_000_000,
            ..GenConfig::default()
        };
        let mut sink = io::sink();
        let s = generate_with(&cfg, &mut sink, |_| Ok(())).unwrap();
        assert!(s.bytes > 1_000_000 && s.bytes < 3_000_000, "{}", s.bytes);
    }

    #[test]
    fn tracker_outcomes() {
        let c: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let s: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        let mut t = Tracker::new(c, s);
        t.http_status = Some(101);
        t.on_frame(Side::Client, false, OP_TEXT, 10, &[]);
        t.on_frame(Side::Client, false, OP_PING, 0, &[]);
        t.on_frame(Side::Client, true, OP_CONT, 5, &[]);
        t.on_frame(Side::Server, true, OP_CLOSE, 0, &[]);
        t.on_fin(Side::Server);
        let e = t.expected();
        assert_eq!(e.get("server"), Some("[2001:db8::1]:80"));
        assert_eq!(e.get("client_messages"), Some("1"));
        assert_eq!(e.get("client_bytes"), Some("15"));
        assert_eq!(e.get("close_code"), Some("1005"));
        assert_eq!(e.get("outcome"), Some("unanswered_close"));
        assert_eq!(e.get("abnormal"), Some("true"));
        assert_eq!(e.get("tcp_end_by"), Some("server"));
        t.on_frame(Side::Client, true, OP_CLOSE, 5, &[3, 232, b'b', b'y', b'e']);
        t.on_rst(Side::Client);
        let e = t.expected();
        assert_eq!(e.get("outcome"), Some("clean"));
        assert_eq!(e.get("client_close_code"), Some("1000"));
        assert_eq!(e.get("tcp_end"), Some("rst"));
        assert_eq!(e.get("tcp_end_by"), Some("server"));
        let mut o = Tracker::new(c, s);
        o.http_status = Some(101);
        assert_eq!(o.expected().get("outcome"), Some("open_at_end"));
        assert_eq!(o.expected().get("close_code"), Some(""));
        o.on_fin(Side::Client);
        assert_eq!(o.expected().get("close_code"), Some("1006"));
        assert_eq!(o.expected().get("outcome"), Some("no_close_frame"));
    }
}
