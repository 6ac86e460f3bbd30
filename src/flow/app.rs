//! What a TCP connection carries, decided from its first reassembled bytes: an HTTP
//! Upgrade request (then a WebSocket session), or anything else (not followed further).
//! This is the room where the application layer is recognised and dispatched; TCP
//! (`conn.rs`) only hands it in-order bytes and gaps per direction.

use super::memory::MemoryCharge;
use super::reassembly::Event;
use super::SegmentCtx;
use crate::http::head::{HeadBuffer, HeadProgress};
use crate::ws::handshake::{self, Request};
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
    /// Anything else: not followed further.
    Other,
}

impl App {
    /// Could this connection still turn out to be (or is it) a WebSocket session?
    pub fn may_be_session(&self) -> bool {
        !matches!(self, App::Other)
    }

    pub fn is_session(&self) -> bool {
        matches!(self, App::WebSocket { session, .. } if session.is_websocket())
    }

    /// Not yet known to be a session or not: no payload, or a request head still arriving.
    /// Such a connection may be given up on (`ConnLimits::recognise_*`).
    pub fn undecided(&self) -> bool {
        matches!(self, App::Unknown | App::Request { .. })
    }

    /// What a request head cut off (by a gap, or given up under the memory budget) leaves:
    /// a session from its whole lines, if they make a request, else nothing to follow.
    fn cut_request(client_is_lo: bool, head: &HeadBuffer, max_head: usize) -> App {
        match head.prefix().and_then(|h| handshake::request(&h)) {
            Some(req) => App::WebSocket {
                client_is_lo,
                session: Box::new(WsSession::from_cut_request(req, max_head)),
            },
            None => App::Other,
        }
    }

    /// Hands one reassembled event of the direction from `key.lo` (`from_lo`) or `key.hi`
    /// to the application layer.
    pub fn on_event(&mut self, from_lo: bool, ev: Event<'_>, ctx: &SegmentCtx<'_>) {
        match self {
            App::Other => {}
            App::Unknown => match ev {
                Event::Data(bytes) => {
                    if handshake::may_be_get(bytes) {
                        *self = App::Request {
                            client_is_lo: from_lo,
                            head: HeadBuffer::default(),
                        };
                        self.on_event(from_lo, Event::Data(bytes), ctx);
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
                        *self = App::cut_request(client_is_lo, head, max_head);
                        return;
                    }
                };
                match head.push(bytes, max_head, handshake::request) {
                    HeadProgress::Complete(Some(req), rest) if req.upgrade_websocket => {
                        *self = App::websocket(client_is_lo, req, &rest, ctx);
                    }
                    HeadProgress::Complete(..)
                    | HeadProgress::Invalid(_)
                    | HeadProgress::TooLong => *self = App::Other,
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
                    (Event::Data(b), true) => session.client_data(b, ctx.at),
                    (Event::Data(b), false) => session.server_data(b, ctx.at),
                    (Event::Gap(n), true) => session.client_gap(n, ctx.at),
                    (Event::Gap(n), false) => session.server_gap(n, ctx.at),
                }
            }
        }
    }

    /// A session from a complete Upgrade request; `rest` are the client's bytes after it.
    fn websocket(client_is_lo: bool, req: Request, rest: &[u8], ctx: &SegmentCtx<'_>) -> App {
        let mut session = Box::new(WsSession::new(req, ctx.limits.max_head));
        if !rest.is_empty() {
            session.client_data(rest, ctx.at);
        }
        App::WebSocket {
            client_is_lo,
            session,
        }
    }
}

impl MemoryCharge for App {
    #[inline]
    fn memory_charge(&self) -> usize {
        match self {
            App::Request { head, .. } => head.memory_charge(),
            App::WebSocket { session, .. } => session.memory_charge(),
            App::Unknown | App::Other => 0,
        }
    }

    /// A request head being gathered is read as cut off where it is; a session gives up
    /// what it holds.
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>) {
        match self {
            App::Request { client_is_lo, head } => {
                *self = App::cut_request(*client_is_lo, head, ctx.limits.max_head);
            }
            App::WebSocket { session, .. } => session.release_memory(ctx),
            App::Unknown | App::Other => {}
        }
    }
}
