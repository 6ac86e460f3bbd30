//! What a TCP connection carries, decided from its first reassembled bytes: an HTTP
//! Upgrade request (then a WebSocket session), or anything else (not followed further).
//! This is the room where the application layer is recognised and dispatched; TCP
//! (`conn.rs`) only hands it in-order bytes and gaps per direction.

use super::reassembly::Event;
use super::SegmentCtx;
use crate::http::head::{HeadBuffer, HeadProgress};
use crate::ws::handshake::{self, Request};
use crate::ws::session::Lent;
use crate::ws::WsSession;

/// What the connection carries, as far as we know.
#[derive(Debug, Default)]
pub enum App {
    /// No payload yet.
    #[default]
    Unknown,
    /// The first payload started like `GET `: the request head is arriving.
    Request {
        client_is_lo: bool,
        head: HeadBuffer,
    },
    /// An Upgrade request was seen: a WebSocket session.
    WebSocket {
        client_is_lo: bool,
        session: Box<WsSession>,
    },
    /// TLS (the first bytes are a handshake record): encrypted, not followed further.
    Tls,
    /// Anything else: not followed further.
    Other,
}

/// Could `prefix` start a TLS handshake record (RFC 8446 §5.1: content type 22, legacy
/// version 3.x)?
fn may_be_tls(prefix: &[u8]) -> bool {
    prefix.len() >= 2 && prefix[0] == 0x16 && prefix[1] == 0x03
}

impl App {
    /// Could this connection still turn out to be (or is it) a WebSocket session?
    pub fn may_be_session(&self) -> bool {
        !matches!(self, App::Other | App::Tls)
    }

    pub fn is_session(&self) -> bool {
        matches!(self, App::WebSocket { session, .. } if session.is_websocket())
    }

    /// Hands one reassembled event of the direction from `key.lo` (`from_lo`) or `key.hi`
    /// to the application layer; `tl` is what the connection lends to the session's calls.
    pub fn on_event(&mut self, from_lo: bool, ev: Event<'_>, ctx: &SegmentCtx<'_>, tl: &mut Lent) {
        match self {
            App::Other | App::Tls => {}
            App::Unknown => match ev {
                Event::Data(bytes) => {
                    if handshake::may_be_get(bytes) {
                        *self = App::Request {
                            client_is_lo: from_lo,
                            head: HeadBuffer::default(),
                        };
                        self.on_event(from_lo, Event::Data(bytes), ctx, tl);
                    } else if may_be_tls(bytes) {
                        *self = App::Tls;
                    } else {
                        *self = App::Other;
                    }
                }
                // A connection whose first bytes are missing cannot be recognised.
                Event::Gap(_) => *self = App::Other,
            },
            App::Request { client_is_lo, head } => {
                if *client_is_lo != from_lo {
                    // The server spoke before the request was complete: not HTTP as we know it.
                    *self = App::Other;
                    return;
                }
                let client_is_lo = *client_is_lo;
                let max_head = ctx.limits.max_head;
                let bytes = match ev {
                    Event::Data(b) => b,
                    Event::Gap(_) => {
                        // The request was cut off: keep what its whole lines say, and let the
                        // response decide.
                        *self = match head.prefix().and_then(|h| handshake::request(&h)) {
                            Some(req) => App::WebSocket {
                                client_is_lo,
                                session: Box::new(WsSession::from_cut_request(
                                    req, max_head, ctx.at,
                                )),
                            },
                            None => App::Other,
                        };
                        return;
                    }
                };
                match head.push(bytes, max_head, handshake::request) {
                    HeadProgress::Complete(Some(req), rest) if req.upgrade_websocket => {
                        *self = App::websocket(client_is_lo, req, &rest, ctx, tl);
                    }
                    HeadProgress::TooLong => {
                        // A head that never ends: still a session if its first bytes were
                        // an Upgrade request.
                        let rest = head.overflow();
                        *self = match head.prefix().and_then(|h| handshake::request(&h)) {
                            Some(req) if req.upgrade_websocket => App::WebSocket {
                                client_is_lo,
                                session: Box::new(WsSession::from_long_request(
                                    req, max_head, rest, ctx.at, tl,
                                )),
                            },
                            _ => App::Other,
                        };
                    }
                    HeadProgress::Complete(..) | HeadProgress::Invalid(_) => *self = App::Other,
                    HeadProgress::Incomplete => {
                        if !handshake::may_be_get(head.held()) {
                            *self = App::Other;
                        }
                    }
                }
            }
            App::WebSocket {
                client_is_lo,
                session,
            } => {
                let client = *client_is_lo == from_lo;
                match (ev, client) {
                    (Event::Data(b), true) => session.client_data(b, ctx.at, tl),
                    (Event::Data(b), false) => session.server_data(b, ctx.at, tl),
                    (Event::Gap(n), true) => session.client_gap(n, ctx.at, tl),
                    (Event::Gap(n), false) => session.server_gap(n, ctx.at, tl),
                }
            }
        }
    }

    /// A session from a complete Upgrade request; `rest` are the client's bytes after it.
    fn websocket(
        client_is_lo: bool,
        req: Request,
        rest: &[u8],
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) -> App {
        let mut session = Box::new(WsSession::new(req, ctx.limits.max_head, ctx.at));
        if !rest.is_empty() {
            session.client_data(rest, ctx.at, tl);
        }
        App::WebSocket {
            client_is_lo,
            session,
        }
    }
}
