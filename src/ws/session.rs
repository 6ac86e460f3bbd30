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
#[derive(Debug)]
enum DirState {
    /// An HTTP head, buffered while incomplete.
    Head(HeadBuffer),
    Frames,
    /// Nothing more to learn from this direction.
    Ignore,
}

/// Both directions of an upgraded (or upgrading) connection.
#[derive(Debug)]
pub struct WsSession {
    pub request: Request,
    pub response: Option<Response>,
    client: FrameStream,
    server: FrameStream,
    client_state: DirState,
    server_state: DirState,
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
    max_head: usize,
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
            request,
            response: None,
            client: FrameStream::new(Side::Client),
            server: FrameStream::new(Side::Server),
            client_state: DirState::Frames,
            server_state: DirState::Head(HeadBuffer::default()),
            counts: Counts::default(),
            anomalies,
            inexact: false,
            request_cut,
            response_cut: false,
            max_head,
        }
    }

    /// Is this a WebSocket session: an Upgrade request, or (when the request was cut off)
    /// a 101 answer?
    pub fn is_websocket(&self) -> bool {
        self.request.upgrade_websocket || (self.request_cut && self.upgraded())
    }

    pub fn upgraded(&self) -> bool {
        self.response.as_ref().is_some_and(|r| r.status == 101)
    }

    /// In-order bytes from the client, delivered in packet `at`.
    pub fn client_data(&mut self, d: &[u8], at: At) {
        if let DirState::Frames = self.client_state {
            if self.response.is_none() && !d.is_empty() {
                self.anomalies.insert(Anomaly::FrameBeforeUpgrade);
            }
            self.client.data(d, at, &mut self.counts);
        }
    }

    /// In-order bytes from the server, delivered in packet `at`.
    pub fn server_data(&mut self, d: &[u8], at: At) {
        let progress = match &mut self.server_state {
            DirState::Frames => return self.server.data(d, at, &mut self.counts),
            DirState::Ignore => return,
            DirState::Head(buf) => buf.push(d, self.max_head, handshake::response),
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
            }
            HeadProgress::Incomplete => {}
            HeadProgress::TooLong => {
                self.anomalies.insert(Anomaly::HandshakeTooLong);
                self.server_state = DirState::Ignore;
            }
        }
    }

    fn accept_response(&mut self, resp: Response) {
        if resp.status == 101 {
            let whole_heads = !self.request_cut && !self.response_cut;
            if !resp.upgrade_websocket && whole_heads {
                self.anomalies.insert(Anomaly::MissingUpgradeHeader);
            }
            match (&resp.accept, &self.request.key) {
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
        self.response = Some(resp);
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
        match &self.server_state {
            DirState::Frames => return self.server.gap(n, at, &mut self.counts),
            DirState::Ignore => return self.unframed_gap(Side::Server, n, at),
            DirState::Head(_) => {}
        }
        self.unframed_gap(Side::Server, n, at);
        self.response_cut_off();
    }

    /// The response head being gathered ends here (a gap, or the memory budget): its
    /// status line and whole fields may still be readable.
    fn response_cut_off(&mut self) {
        let DirState::Head(buf) = &self.server_state else {
            return;
        };
        match buf.prefix().and_then(|h| handshake::response(&h)) {
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
            }
        }
    }
}

impl MemoryCharge for WsSession {
    #[inline]
    fn memory_charge(&self) -> usize {
        let head = match &self.server_state {
            DirState::Head(b) => b.memory_charge(),
            _ => 0,
        };
        head + self.counts.memory_charge()
    }

    /// A response head being gathered is read as cut off; the consumers give up theirs.
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>) {
        if matches!(&self.server_state, DirState::Head(b) if b.memory_charge() > 0) {
            self.response_cut_off();
        }
        self.counts.release_memory(ctx.at);
    }
}
