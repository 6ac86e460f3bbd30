//! A WebSocket session over one TCP connection: the opening handshake in both directions
//! (RFC 6455 §4), then a [`FrameStream`] per direction whose events go to the session's
//! consumers (today the report's counters).

use super::counts::Counts;
use super::events::{FrameConsumer, GapEffect, StreamEvent};
use super::handshake::{self, Request, Response};
use super::stream::FrameStream;
use crate::flow::memory::MemoryCharge;
use crate::flow::SegmentCtx;
use crate::http::head::{HeadBuffer, HeadProgress};
use crate::record::{Anomalies, Anomaly, At, Side};

/// What a direction's bytes are being read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirState {
    /// An HTTP head (the server's: `WsSession::server_head`), buffered while incomplete.
    Head,
    Frames,
    /// Nothing more to learn from this direction.
    Ignore,
}

/// Short texts in one allocation: a session keeps its handshake's texts for its whole
/// life, and a million open sessions should not pay for six strings each.
#[derive(Debug, Default)]
struct Texts {
    buf: Box<str>,
    ends: [u32; TEXTS],
}

const TEXTS: usize = 6;
const HOST: usize = 0;
const PATH: usize = 1;
const ORIGIN: usize = 2;
const USER_AGENT: usize = 3;
const SUBPROTOCOL: usize = 4;
const EXTENSIONS: usize = 5;

impl Texts {
    fn new(parts: [&str; TEXTS]) -> Self {
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; TEXTS];
        for (e, p) in ends.iter_mut().zip(parts) {
            buf.push_str(p);
            *e = buf.len() as u32;
        }
        Texts {
            buf: buf.into_boxed_str(),
            ends,
        }
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start as usize..self.ends[i] as usize]
    }

    /// The same texts with `i` set to `v`.
    fn with(&self, i: usize, v: &str) -> Self {
        let mut parts: [&str; TEXTS] = std::array::from_fn(|k| self.get(k));
        parts[i] = v;
        Texts::new(parts)
    }
}

/// Both directions of an upgraded (or upgrading) connection.
#[derive(Debug)]
pub struct WsSession {
    /// Host, path, origin, user agent of the request; subprotocol and extensions of the
    /// response.
    texts: Texts,
    /// The request's Sec-WebSocket-Key, until the response is checked against it.
    key: Option<Box<str>>,
    /// The request has `Upgrade: websocket`.
    upgrade_requested: bool,
    /// The status of the response, once seen.
    status: Option<u16>,
    client: FrameStream,
    server: FrameStream,
    client_state: DirState,
    server_state: DirState,
    server_head: HeadBuffer,
    /// What the frames add up to, per direction.
    pub counts: Counts,
    /// Handshake anomalies (the frame streams' go to `counts`).
    pub anomalies: Anomalies,
    /// Something the report depends on could not be read (handshake lost in a gap).
    pub inexact: bool,
    /// The request head was cut off (gap or snapshot length): only its first lines are known.
    pub request_cut: bool,
    /// The response head was cut off: fields after the cut are unknown, not missing.
    response_cut: bool,
    max_head: u32,
}

impl WsSession {
    /// A session from a complete Upgrade request; the client's bytes after it are frames.
    pub fn new(request: Request, max_head: usize) -> Self {
        Self::with_request(request, max_head, false)
    }

    /// A session from a request head that was cut off: its start line and first fields
    /// are known. The client's next bytes should be frames. Whether it is a WebSocket
    /// session at all is decided by the request's fields if they were seen, else by the
    /// response (101).
    pub fn from_cut_request(request: Request, max_head: usize) -> Self {
        let mut s = Self::with_request(request, max_head, true);
        s.client.expect_frame_start();
        s
    }

    fn with_request(request: Request, max_head: usize, request_cut: bool) -> Self {
        let mut anomalies = Anomalies::default();
        // Fields after a cut are unknown, not missing.
        if !request_cut {
            if request.key.is_none() {
                anomalies.insert(Anomaly::MissingKey);
            }
            if request.version.trim() != "13" {
                anomalies.insert(Anomaly::UnsupportedVersion);
            }
        }
        WsSession {
            texts: Texts::new([
                &request.host,
                &request.path,
                &request.origin,
                &request.user_agent,
                "",
                "",
            ]),
            key: request.key.map(String::into_boxed_str),
            upgrade_requested: request.upgrade_websocket,
            status: None,
            client: FrameStream::new(Side::Client),
            server: FrameStream::new(Side::Server),
            client_state: DirState::Frames,
            server_state: DirState::Head,
            server_head: HeadBuffer::default(),
            counts: Counts::default(),
            anomalies,
            inexact: false,
            request_cut,
            response_cut: false,
            max_head: max_head.min(u32::MAX as usize) as u32,
        }
    }

    /// The request's Host.
    pub fn host(&self) -> &str {
        self.texts.get(HOST)
    }

    /// The request target (path and query).
    pub fn path(&self) -> &str {
        self.texts.get(PATH)
    }

    /// The request's Origin.
    pub fn origin(&self) -> &str {
        self.texts.get(ORIGIN)
    }

    /// The request's User-Agent.
    pub fn user_agent(&self) -> &str {
        self.texts.get(USER_AGENT)
    }

    /// Sec-WebSocket-Protocol of the response.
    pub fn subprotocol(&self) -> &str {
        self.texts.get(SUBPROTOCOL)
    }

    /// Sec-WebSocket-Extensions of the response.
    pub fn extensions(&self) -> &str {
        self.texts.get(EXTENSIONS)
    }

    /// The status of the response to the Upgrade request, once seen.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Is this a WebSocket session: an Upgrade request, or (when the request was cut off)
    /// a 101 answer?
    pub fn is_websocket(&self) -> bool {
        self.upgrade_requested || (self.request_cut && self.upgraded())
    }

    pub fn upgraded(&self) -> bool {
        self.status == Some(101)
    }

    /// In-order bytes from the client, delivered in packet `at`.
    pub fn client_data(&mut self, d: &[u8], at: At) {
        if let DirState::Frames = self.client_state {
            if self.status.is_none() && !d.is_empty() {
                self.anomalies.insert(Anomaly::FrameBeforeUpgrade);
            }
            self.client.data(d, at, &mut self.counts);
        }
    }

    /// In-order bytes from the server, delivered in packet `at`.
    pub fn server_data(&mut self, d: &[u8], at: At) {
        let progress = match self.server_state {
            DirState::Frames => return self.server.data(d, at, &mut self.counts),
            DirState::Ignore => return,
            DirState::Head => self
                .server_head
                .push(d, self.max_head as usize, handshake::response),
        };
        match progress {
            HeadProgress::Complete(Some(resp), rest) => {
                self.accept_response(resp);
                if matches!(self.server_state, DirState::Frames) && !rest.is_empty() {
                    self.server.data(&rest, at, &mut self.counts);
                }
            }
            HeadProgress::Complete(None, _) | HeadProgress::Invalid(_) => {
                self.anomalies.insert(Anomaly::BadHandshakeResponse);
                self.server_state = DirState::Ignore;
                self.server_head = HeadBuffer::default();
            }
            HeadProgress::Incomplete => {}
            HeadProgress::TooLong => {
                self.anomalies.insert(Anomaly::HandshakeTooLong);
                self.server_state = DirState::Ignore;
                self.server_head = HeadBuffer::default();
            }
        }
    }

    fn accept_response(&mut self, resp: Response) {
        if resp.status == 101 {
            let whole_heads = !self.request_cut && !self.response_cut;
            if !resp.upgrade_websocket && whole_heads {
                self.anomalies.insert(Anomaly::MissingUpgradeHeader);
            }
            match (&resp.accept, &self.key) {
                (None, _) if !self.response_cut => self.anomalies.insert(Anomaly::MissingAccept),
                (Some(a), Some(k)) if a.trim() != handshake::accept_for_key(k) => {
                    self.anomalies.insert(Anomaly::InvalidAccept)
                }
                _ => {}
            }
            if !resp.extensions.is_empty() {
                // Extensions negotiated by the server may define RSV1 (RFC 7692 §6).
                self.client.allow_rsv1();
                self.server.allow_rsv1();
            }
            self.server_state = DirState::Frames;
        } else {
            // Not upgraded: nothing after this is WebSocket.
            self.server_state = DirState::Ignore;
            self.client_state = DirState::Ignore;
        }
        self.status = Some(resp.status);
        self.key = None;
        self.server_head = HeadBuffer::default();
        if !resp.protocol.is_empty() || !resp.extensions.is_empty() {
            self.texts = self
                .texts
                .with(SUBPROTOCOL, &resp.protocol)
                .with(EXTENSIONS, &resp.extensions);
        }
    }

    /// A gap outside the frames: counted as missing, nothing else.
    fn unframed_gap(&mut self, side: Side, n: u64, at: At) {
        self.counts.event(
            side,
            at,
            StreamEvent::Gap {
                bytes: n,
                effect: GapEffect::NotFramed,
            },
        );
    }

    /// Missing bytes in the client's direction, noticed at packet `at`.
    pub fn client_gap(&mut self, n: u64, at: At) {
        match self.client_state {
            DirState::Frames => self.client.gap(n, at, &mut self.counts),
            _ => self.unframed_gap(Side::Client, n, at),
        }
    }

    /// Missing bytes in the server's direction, noticed at packet `at`.
    pub fn server_gap(&mut self, n: u64, at: At) {
        match self.server_state {
            DirState::Frames => return self.server.gap(n, at, &mut self.counts),
            DirState::Ignore => return self.unframed_gap(Side::Server, n, at),
            DirState::Head => {}
        }
        self.unframed_gap(Side::Server, n, at);
        self.response_cut_off();
    }

    /// The response head being gathered ends here (a gap, or the memory budget): its
    /// status line and whole fields may still be readable.
    fn response_cut_off(&mut self) {
        if self.server_state != DirState::Head {
            return;
        }
        match self
            .server_head
            .prefix()
            .and_then(|h| handshake::response(&h))
        {
            Some(r) => {
                self.response_cut = true;
                let upgraded = r.status == 101;
                self.accept_response(r);
                if upgraded {
                    self.server.expect_frame_start();
                }
            }
            None => {
                // Whether it upgraded is unknown.
                self.inexact = true;
                self.server_state = DirState::Ignore;
                self.client_state = DirState::Ignore;
                self.server_head = HeadBuffer::default();
            }
        }
    }
}

impl MemoryCharge for WsSession {
    #[inline]
    fn memory_charge(&self) -> usize {
        self.server_head.memory_charge() + self.counts.memory_charge()
    }

    /// A response head being gathered is read as cut off; the consumers give up theirs.
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>) {
        if self.server_head.memory_charge() > 0 {
            self.response_cut_off();
        }
        self.counts.release_memory(ctx.at);
    }
}
