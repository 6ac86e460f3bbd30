//! A WebSocket session over one TCP connection: the opening handshake in both directions
//! (RFC 6455 §4), then a [`FrameStream`] per direction.

use super::handshake::{self, parse_head, HeadError, Request, Response};
use super::stream::FrameStream;
use crate::record::{Anomalies, Anomaly};

/// What a direction's bytes are being read as.
#[derive(Debug)]
enum DirState {
    /// An HTTP head, buffered while incomplete.
    Head(Vec<u8>),
    Frames,
    /// Nothing more to learn from this direction.
    Ignore,
}

/// Both directions of an upgraded (or upgrading) connection.
#[derive(Debug)]
pub struct WsSession {
    pub request: Request,
    pub response: Option<Response>,
    pub client: FrameStream,
    pub server: FrameStream,
    client_state: DirState,
    server_state: DirState,
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
            client: FrameStream::new(true),
            server: FrameStream::new(false),
            client_state: DirState::Frames,
            server_state: DirState::Head(Vec::new()),
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

    /// In-order bytes from the client.
    pub fn client_data(&mut self, d: &[u8], frame_no: u64) {
        if let DirState::Frames = self.client_state {
            if self.response.is_none() && !d.is_empty() {
                self.anomalies.insert(Anomaly::FrameBeforeUpgrade);
            }
            self.client.data(d, frame_no);
        }
    }

    /// In-order bytes from the server.
    pub fn server_data(&mut self, d: &[u8], frame_no: u64) {
        match &mut self.server_state {
            DirState::Frames => self.server.data(d, frame_no),
            DirState::Ignore => {}
            DirState::Head(buf) => {
                let was_empty = buf.is_empty();
                if !was_empty {
                    buf.extend_from_slice(d);
                }
                let src: &[u8] = if was_empty { d } else { buf };
                let parsed = match parse_head(src) {
                    Ok(Some((n, head))) => {
                        Ok(Some((handshake::response(&head), src[n..].to_vec())))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                match parsed {
                    Ok(Some((Some(resp), rest))) => {
                        self.accept_response(resp);
                        if matches!(self.server_state, DirState::Frames) && !rest.is_empty() {
                            self.server.data(&rest, frame_no);
                        }
                    }
                    Ok(Some((None, _)))
                    | Err(HeadError::NotHttp)
                    | Err(HeadError::TooManyFields) => {
                        self.anomalies.insert(Anomaly::BadHandshakeResponse);
                        self.server_state = DirState::Ignore;
                    }
                    Ok(None) => {
                        if was_empty {
                            buf.extend_from_slice(d);
                        }
                        if buf.len() > self.max_head {
                            self.anomalies.insert(Anomaly::HandshakeTooLong);
                            self.server_state = DirState::Ignore;
                        }
                    }
                }
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

    /// Missing bytes in the client's direction.
    pub fn client_gap(&mut self, n: u64, frame_no: u64) {
        match self.client_state {
            DirState::Frames => self.client.gap(n, frame_no),
            _ => self.client.stats.missing_bytes += n,
        }
    }

    /// Missing bytes in the server's direction.
    pub fn server_gap(&mut self, n: u64, frame_no: u64) {
        let cut_response = match &self.server_state {
            DirState::Head(buf) => {
                handshake::parse_head_prefix(buf).and_then(|h| handshake::response(&h))
            }
            _ => None,
        };
        match self.server_state {
            DirState::Frames => self.server.gap(n, frame_no),
            DirState::Ignore => self.server.stats.missing_bytes += n,
            DirState::Head(_) => {
                self.server.stats.missing_bytes += n;
                // The response head was cut: its status line may still be whole.
                match cut_response {
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
    }
}
