//! What a TCP connection carries, decided from its first reassembled bytes: HTTP/1.1
//! (keep-alive requests followed until an Upgrade, then a WebSocket session; a rejected
//! Upgrade and the next one give a session each), a WebSocket session picked up
//! mid-stream by its framing (`midstream.rs`), or anything else (not followed further).
//! This is the room where the application layer is recognised and dispatched; TCP
//! (`conn.rs`) only hands it in-order bytes and gaps per direction.

use std::collections::VecDeque;

use super::memory::MemoryCharge;
use super::midstream::{Decision, Probe};
use super::reassembly::Event;
use super::SegmentCtx;
use crate::config::{MAX_PIPELINED_REQUESTS, MAX_UPGRADES_PER_CONNECTION};
use crate::http::head::{HeadBuffer, HeadProgress};
use crate::http::message::{self, BodyProgress, BodyReader};
use crate::record::{At, Side};
use crate::ws::handshake::{self, Request};
use crate::ws::session::Lent;
use crate::ws::WsSession;

/// What the connection carries, as far as we know. (Sessions stay boxed in vectors: they
/// move between a variant's box and the list of earlier ones without being copied.)
#[derive(Debug, Default)]
#[allow(clippy::vec_box)]
pub enum App {
    /// No payload yet.
    #[default]
    Unknown,
    /// HTTP/1.1 requests and responses, before (or between) Upgrades.
    Http(Box<Http>),
    /// No handshake in the capture: looking for WebSocket framing.
    Probe(Box<Probe>),
    /// A WebSocket session: upgraded (or recognised mid-stream, or after a request cut
    /// off). The sessions of rejected Upgrades before it on this connection are in its
    /// `earlier` (kept out of this enum, which every packet of the connection reads).
    WebSocket {
        client_is_lo: bool,
        session: Box<WsSession>,
    },
    /// Anything else: not followed further.
    Other,
}

/// A request sent and not answered yet.
#[derive(Debug)]
struct Pending {
    head_method: bool,
    /// It was an Upgrade request: its answer goes to the session.
    upgrade: bool,
}

/// What one direction of an HTTP connection is reading.
#[derive(Debug)]
enum Reading {
    Head(HeadBuffer),
    Body(BodyReader),
    /// Bytes that belong to the session (the client's after its Upgrade request).
    Session,
}

/// An HTTP/1.1 connection before its Upgrade (RFC 9112): requests and their responses
/// are passed over by their framing (§6), and counted.
#[derive(Debug)]
#[allow(clippy::vec_box)]
pub struct Http {
    client_is_lo: bool,
    client: Reading,
    server: Reading,
    pending: VecDeque<Pending>,
    /// Requests seen before the current one.
    requests: u64,
    /// The Upgrade request waiting for its answer.
    session: Option<Box<WsSession>>,
    /// Sessions of Upgrades answered with another status than 101.
    finished: Vec<Box<WsSession>>,
    /// The connection can no longer be followed (its sessions so far stay).
    lost: bool,
    /// The packet that completed the current Upgrade request, until the pipeline has
    /// taken note of it (for pairing the legs of a proxy); packet 0 when there is none.
    upgrade_at: At,
}

impl Http {
    fn new(client_is_lo: bool) -> Self {
        Http {
            client_is_lo,
            client: Reading::Head(HeadBuffer::default()),
            server: Reading::Head(HeadBuffer::default()),
            pending: VecDeque::new(),
            requests: 0,
            session: None,
            finished: Vec::new(),
            lost: false,
            upgrade_at: At::default(),
        }
    }

    /// A connection whose first bytes are the server's 101: an Upgrade request is taken
    /// to be pending, whose session is recognised by the answer
    /// (`WsSession::from_lost_request`).
    fn answer_first(client_is_lo: bool, ctx: &SegmentCtx<'_>) -> Self {
        let mut h = Http::new(client_is_lo);
        h.pending.push_back(Pending {
            head_method: false,
            upgrade: true,
        });
        h.session = Some(Box::new(WsSession::from_lost_request(
            ctx.limits.max_head,
            ctx.limits.inflate,
            ctx.at,
        )));
        h.client = Reading::Session;
        h.upgrade_at = ctx.at;
        h
    }

    /// Sessions this connection has produced so far (finished, then the current one).
    fn sessions(&self) -> impl Iterator<Item = &WsSession> {
        self.finished
            .iter()
            .map(|b| &**b)
            .chain(self.session.as_deref())
    }

    fn lose(&mut self) {
        self.lost = true;
        self.client = Reading::Session;
        self.server = Reading::Session;
    }

    /// The client's bytes.
    fn client_data(&mut self, d: &[u8], ctx: &SegmentCtx<'_>, tl: &mut Lent) {
        let mut rest = self.client_step(d, ctx, tl);
        while let Some(r) = rest {
            rest = self.client_step(&r, ctx, tl);
        }
    }

    /// Reads the client's bytes up to the end of a head: returns the bytes after it.
    fn client_step(
        &mut self,
        mut d: &[u8],
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) -> Option<Vec<u8>> {
        while !d.is_empty() && !self.lost {
            match &mut self.client {
                Reading::Session => {
                    if let Some(s) = &mut self.session {
                        s.client_data(d, ctx.at, tl);
                    }
                    return None;
                }
                Reading::Body(b) => match b.data(d) {
                    BodyProgress::More => return None,
                    BodyProgress::Done(n) => {
                        d = &d[n..];
                        self.client = Reading::Head(HeadBuffer::default());
                    }
                    BodyProgress::Invalid => {
                        self.lose();
                        return None;
                    }
                },
                Reading::Head(buf) => {
                    if buf.held().is_empty() && !handshake::may_be_request(d) {
                        self.lose();
                        return None;
                    }
                    let progress = buf.push(d, ctx.limits.max_head, |h| {
                        (handshake::request(h), message::request_body(h))
                    });
                    match progress {
                        HeadProgress::Complete((Some(req), body), rest) => {
                            if !self.request(req, body, ctx.at, ctx) {
                                self.lose();
                                return None;
                            }
                            return (!rest.is_empty()).then_some(rest);
                        }
                        HeadProgress::Incomplete => {
                            if !handshake::may_be_request(buf.held()) {
                                self.lose();
                            }
                            return None;
                        }
                        HeadProgress::TooLong => {
                            // A head that never ends: still a session if its first bytes
                            // were an Upgrade request.
                            let rest = buf.overflow();
                            let req = buf.prefix().and_then(|h| handshake::request(&h));
                            match req {
                                Some(req) if req.upgrade_websocket && self.pending.is_empty() => {
                                    let mut s = Box::new(WsSession::from_long_request(
                                        req,
                                        ctx.limits.max_head,
                                        rest,
                                        ctx.at,
                                        ctx.limits.inflate,
                                        tl,
                                    ));
                                    s.set_requests_before_upgrade(self.requests);
                                    self.pending.push_back(Pending {
                                        head_method: false,
                                        upgrade: true,
                                    });
                                    self.session = Some(s);
                                    self.client = Reading::Session;
                                    self.requests += 1;
                                }
                                _ => self.lose(),
                            }
                            return None;
                        }
                        _ => {
                            self.lose();
                            return None;
                        }
                    }
                }
            }
        }
        None
    }

    /// A complete request head; false when the connection cannot be followed further.
    fn request(&mut self, req: Request, body: message::Body, at: At, ctx: &SegmentCtx<'_>) -> bool {
        if self.pending.len() >= MAX_PIPELINED_REQUESTS
            || body == message::Body::Invalid
            || self.session.is_some()
        {
            return false;
        }
        let upgrade = req.upgrade_websocket;
        if upgrade && self.finished.len() >= MAX_UPGRADES_PER_CONNECTION {
            return false;
        }
        self.pending.push_back(Pending {
            head_method: req.method.eq_ignore_ascii_case("HEAD"),
            upgrade,
        });
        if upgrade {
            let mut s = Box::new(WsSession::new(
                req,
                ctx.limits.max_head,
                ctx.limits.inflate,
                at,
            ));
            s.set_requests_before_upgrade(self.requests);
            self.upgrade_at = at;
            self.session = Some(s);
            self.client = Reading::Session;
        } else {
            self.client = match BodyReader::new(body) {
                Some(b) => Reading::Body(b),
                None => Reading::Head(HeadBuffer::default()),
            };
        }
        self.requests += 1;
        true
    }

    /// The server's bytes. Returns true once the current session is upgraded (the
    /// connection is WebSocket from here on).
    fn server_data(&mut self, d: &[u8], ctx: &SegmentCtx<'_>, tl: &mut Lent) -> bool {
        let mut step = self.server_step(d, ctx, tl);
        while let Err(rest) = step {
            step = self.server_step(&rest, ctx, tl);
        }
        step.unwrap_or(false)
    }

    /// Reads the server's bytes up to the end of a head: `Err` holds the bytes after it.
    fn server_step(
        &mut self,
        mut d: &[u8],
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) -> Result<bool, Vec<u8>> {
        while !d.is_empty() && !self.lost {
            if self.pending.front().is_some_and(|p| p.upgrade)
                && matches!(self.server, Reading::Head(_))
            {
                // The answer to the Upgrade: the session reads it.
                let s = self.session.as_mut().expect("an Upgrade is pending");
                let rest = s.server_data(d, ctx.at, tl);
                if s.reads_server_frames() {
                    // Upgraded (or its answer was lost and frames will tell).
                    return Ok(true);
                }
                match rest {
                    None => {
                        if s.status().is_none() && !s.is_reading_response() {
                            // The answer could not be read: nothing more to follow.
                            self.lose();
                        }
                        return Ok(false);
                    }
                    Some(rest) => {
                        // Rejected: the connection goes on as HTTP after this answer.
                        let s = self.session.take().expect("session");
                        let body = s.response_body();
                        self.finished.push(s);
                        self.pending.pop_front();
                        self.client = Reading::Head(HeadBuffer::default());
                        self.server = match BodyReader::new(body) {
                            Some(b) => Reading::Body(b),
                            None => Reading::Head(HeadBuffer::default()),
                        };
                        if rest.is_empty() {
                            return Ok(false);
                        }
                        return Err(rest);
                    }
                }
            }
            match &mut self.server {
                Reading::Session => return Ok(false),
                Reading::Body(b) => match b.data(d) {
                    BodyProgress::More => return Ok(false),
                    BodyProgress::Done(n) => {
                        d = &d[n..];
                        self.server = Reading::Head(HeadBuffer::default());
                    }
                    BodyProgress::Invalid => {
                        self.lose();
                        return Ok(false);
                    }
                },
                Reading::Head(buf) => {
                    let Some(p) = self.pending.front() else {
                        // The server spoke without a request to answer.
                        self.lose();
                        return Ok(false);
                    };
                    let method: &[u8] = if p.head_method { b"HEAD" } else { b"GET" };
                    let progress = buf.push(d, ctx.limits.max_head, |h| {
                        handshake::response(h)
                            .map(|r| (r.status, message::response_body(method, r.status, h)))
                    });
                    match progress {
                        HeadProgress::Complete(Some((status, body)), rest) => {
                            if !(100..200).contains(&status) {
                                self.pending.pop_front();
                            }
                            self.server = match BodyReader::new(body) {
                                Some(b) => Reading::Body(b),
                                None => Reading::Head(HeadBuffer::default()),
                            };
                            if rest.is_empty() {
                                return Ok(false);
                            }
                            return Err(rest);
                        }
                        HeadProgress::Incomplete => return Ok(false),
                        _ => {
                            self.lose();
                            return Ok(false);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Missing bytes in the client's direction.
    fn client_gap(&mut self, n: u64, at: At, ctx: &SegmentCtx<'_>, tl: &mut Lent) -> Option<App> {
        match &mut self.client {
            Reading::Session => {
                if let Some(s) = &mut self.session {
                    s.client_gap(n, at, tl);
                }
            }
            Reading::Body(b) => {
                if !b.gap(n) {
                    self.lose();
                }
            }
            Reading::Head(_) => return self.cut_request(ctx),
        }
        None
    }

    /// The request head being gathered ends here (a gap, or the memory budget): keep
    /// what its whole lines say, and let the response decide whether it was an Upgrade.
    fn cut_request(&mut self, ctx: &SegmentCtx<'_>) -> Option<App> {
        let Reading::Head(buf) = &self.client else {
            return None;
        };
        let req = buf.prefix().and_then(|h| handshake::request(&h));
        match req {
            Some(req) if self.pending.is_empty() && self.session.is_none() => {
                let mut s = Box::new(WsSession::from_cut_request(
                    req,
                    ctx.limits.max_head,
                    ctx.limits.inflate,
                    ctx.at,
                ));
                s.set_requests_before_upgrade(self.requests);
                s.set_earlier(std::mem::take(&mut self.finished));
                return Some(App::WebSocket {
                    client_is_lo: self.client_is_lo,
                    session: s,
                });
            }
            _ => self.lose(),
        }
        None
    }

    /// Missing bytes in the server's direction (`None`: the memory budget gave up the head
    /// being gathered). Returns true once the current session is upgraded.
    fn server_gap(&mut self, n: Option<u64>, at: At, tl: &mut Lent) -> bool {
        if self.pending.front().is_some_and(|p| p.upgrade)
            && matches!(self.server, Reading::Head(_))
        {
            let s = self.session.as_mut().expect("an Upgrade is pending");
            match n {
                Some(n) => s.server_gap(n, at, tl),
                None => s.response_cut_off(at),
            }
            if s.reads_server_frames() {
                return true;
            }
            if s.status().is_some() || !s.is_reading_response() {
                // Rejected or unknown: where the next response starts is lost.
                self.lose();
            }
            return false;
        }
        match &mut self.server {
            Reading::Body(b) => {
                if n.is_some_and(|n| !b.gap(n)) {
                    self.lose();
                }
            }
            Reading::Session => {}
            Reading::Head(_) => self.lose(),
        }
        false
    }

    /// The heads being gathered, and the pending session's response head.
    fn head_bytes(&self) -> usize {
        let head = |r: &Reading| match r {
            Reading::Head(b) => b.memory_charge(),
            _ => 0,
        };
        head(&self.client) + head(&self.server)
    }
}

impl App {
    /// After an HTTP connection's event: upgraded (a WebSocket connection from here on),
    /// or lost without a session (nothing more to follow).
    fn http_moved_on(&mut self, upgraded: bool) {
        if upgraded {
            let App::Http(h) = std::mem::take(self) else {
                unreachable!()
            };
            let h = *h;
            let mut session = h.session.expect("upgraded session");
            session.set_earlier(h.finished);
            *self = App::WebSocket {
                client_is_lo: h.client_is_lo,
                session,
            };
        } else if let App::Http(h) = self {
            if h.lost && h.session.is_none() && h.finished.is_empty() {
                *self = App::Other;
            }
        }
    }

    /// Not yet known to be a session or not: no payload; HTTP without an Upgrade request
    /// so far; probed for mid-stream framing without a chain of frames yet in the probe's
    /// window. Such a connection may be given up on (`ConnLimits::recognise_bytes`,
    /// `Limits::recognise_ns`); a probe with a chain is left to decide.
    pub fn undecided(&self) -> bool {
        match self {
            App::Unknown => true,
            App::Http(h) => h.session.is_none() && h.finished.is_empty() && !h.lost,
            App::Probe(p) => !p.has_evidence(),
            App::WebSocket { .. } | App::Other => false,
        }
    }

    /// Could this connection still turn out to be (or is it) a WebSocket session?
    pub fn may_be_session(&self) -> bool {
        match self {
            App::Other => false,
            App::Http(h) => !h.lost || h.sessions().next().is_some(),
            _ => true,
        }
    }

    pub fn is_session(&self) -> bool {
        self.sessions().next().is_some()
    }

    /// The WebSocket sessions of this connection, in the order of their requests.
    pub fn sessions(&self) -> Box<dyn Iterator<Item = &WsSession> + '_> {
        match self {
            App::WebSocket { session, .. } => Box::new(
                session
                    .earlier()
                    .iter()
                    .map(|b| &**b)
                    .chain(std::iter::once(&**session))
                    .filter(|s| s.is_websocket()),
            ),
            App::Http(h) => Box::new(h.sessions().filter(|s| s.is_websocket())),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Takes the sessions out, with whether the client sends from `key.lo`.
    #[allow(clippy::vec_box)]
    pub fn into_sessions(self) -> (bool, Vec<Box<WsSession>>) {
        let client_is_lo_and_sessions = match self {
            App::WebSocket {
                client_is_lo,
                mut session,
            } => {
                let mut earlier = session.take_earlier();
                earlier.push(session);
                (client_is_lo, earlier)
            }
            App::Http(h) => {
                let mut v = h.finished;
                v.extend(h.session);
                (h.client_is_lo, v)
            }
            _ => (true, Vec::new()),
        };
        // A cut request that was not upgraded is not a session.
        let (client_is_lo, mut v) = (client_is_lo_and_sessions.0, client_is_lo_and_sessions.1);
        v.retain(|s| s.is_websocket());
        (client_is_lo, v)
    }

    /// The current session, mutably (for pairing).
    pub fn session_mut(&mut self, requests_before_upgrade: u64) -> Option<&mut WsSession> {
        match self {
            App::WebSocket { session, .. } => {
                if session.requests_before_upgrade() == requests_before_upgrade {
                    return Some(&mut **session);
                }
                session
                    .earlier_mut()
                    .iter_mut()
                    .map(|b| &mut **b)
                    .find(|s| s.requests_before_upgrade() == requests_before_upgrade)
            }
            App::Http(h) => h
                .session
                .iter_mut()
                .chain(h.finished.iter_mut())
                .map(|b| &mut **b)
                .find(|s| s.requests_before_upgrade() == requests_before_upgrade),
            _ => None,
        }
    }

    /// The direction from `key.lo` (`from_lo`) ended: its FIN was reached or a RST came.
    pub fn direction_ended(&mut self, from_lo: bool) {
        if let App::WebSocket {
            client_is_lo,
            session,
            ..
        } = self
        {
            session.direction_ended(side_of(*client_is_lo, from_lo));
        }
    }

    /// An Upgrade request completed since the last call: its key, packet and place.
    #[inline]
    pub fn take_new_upgrade(&mut self) -> Option<(String, At, u64)> {
        // Only an HTTP connection completes Upgrade requests (a WebSocket one is past its
        // handshake): the common case reads nothing behind a pointer.
        let App::Http(h) = self else {
            return None;
        };
        h.take_new_upgrade()
    }
}

impl Http {
    #[cold]
    fn take_new_upgrade(&mut self) -> Option<(String, At, u64)> {
        if self.upgrade_at.packet == 0 {
            return None;
        }
        let at = std::mem::take(&mut self.upgrade_at);
        let s = self.session.as_deref()?;
        let key = s.key()?.to_string();
        Some((key.trim().to_string(), at, s.requests_before_upgrade()))
    }
}

impl App {
    /// Hands one reassembled event of the direction from `key.lo` (`from_lo`) or `key.hi`
    /// to the application layer. `started`: the connection's SYN was captured, so its
    /// first bytes are its application's first bytes. `tl` is what the connection lends to
    /// the session's calls.
    #[inline(always)]
    pub fn on_event(
        &mut self,
        from_lo: bool,
        ev: Event<'_>,
        started: bool,
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) {
        // The common case, without a call: a session's server sending frames.
        if let (
            App::WebSocket {
                client_is_lo,
                session,
            },
            Event::Data(b),
        ) = (&mut *self, &ev)
        {
            if *client_is_lo != from_lo && session.server_frames(b, ctx.at, tl) {
                return;
            }
        }
        self.dispatch(from_lo, ev, started, ctx, tl)
    }

    /// [`on_event`](Self::on_event) for every case.
    fn dispatch(
        &mut self,
        from_lo: bool,
        ev: Event<'_>,
        started: bool,
        ctx: &SegmentCtx<'_>,
        tl: &mut Lent,
    ) {
        match self {
            App::Other => {}
            App::Unknown => {
                let probe = ctx.limits.midstream && !(started && matches!(ev, Event::Data(_)));
                match ev {
                    Event::Data(bytes) if handshake::may_be_request(bytes) => {
                        *self = App::Http(Box::new(Http::new(from_lo)));
                        self.on_event(from_lo, Event::Data(bytes), started, ctx, tl);
                    }
                    // A 101 first: the request was not captured.
                    Event::Data(bytes) if handshake::may_be_switching_protocols(bytes) => {
                        *self = App::Http(Box::new(Http::answer_first(!from_lo, ctx)));
                        self.on_event(from_lo, Event::Data(bytes), started, ctx, tl);
                    }
                    // No handshake here: its start was not captured, or was lost.
                    ev if probe => {
                        *self = App::Probe(Box::default());
                        self.on_event(from_lo, ev, started, ctx, tl);
                    }
                    _ => *self = App::Other,
                }
            }
            App::Probe(p) => {
                let decision = p.on_event(from_lo, ev, ctx.at);
                self.probe_decided(decision, ctx, tl);
            }
            App::Http(h) => {
                let client = h.client_is_lo == from_lo;
                let upgraded = match (ev, client) {
                    (Event::Data(b), true) => {
                        h.client_data(b, ctx, tl);
                        false
                    }
                    (Event::Data(b), false) => h.server_data(b, ctx, tl),
                    (Event::Gap(n), true) => {
                        if let Some(app) = h.client_gap(n, ctx.at, ctx, tl) {
                            *self = app;
                        }
                        false
                    }
                    (Event::Gap(n), false) => h.server_gap(Some(n), ctx.at, tl),
                };
                self.http_moved_on(upgraded);
            }
            App::WebSocket {
                client_is_lo,
                session,
                ..
            } => {
                let client = *client_is_lo == from_lo;
                match (ev, client) {
                    (Event::Data(b), true) => session.client_data(b, ctx.at, tl),
                    (Event::Data(b), false) => {
                        session.server_data(b, ctx.at, tl);
                    }
                    (Event::Gap(n), true) => session.client_gap(n, ctx.at, tl),
                    (Event::Gap(n), false) => session.server_gap(n, ctx.at, tl),
                }
            }
        }
    }
}

impl App {
    /// Every byte a direction sent up to its FIN has arrived: a connection probed for
    /// mid-stream framing may be recognised by its closing handshake.
    pub fn direction_finished(&mut self, from_lo: bool, ctx: &SegmentCtx<'_>, tl: &mut Lent) {
        if let App::Probe(p) = self {
            let decision = p.finished(from_lo);
            self.probe_decided(decision, ctx, tl);
        }
    }

    /// What the probe's `decision` makes of this connection.
    fn probe_decided(&mut self, decision: Decision, ctx: &SegmentCtx<'_>, tl: &mut Lent) {
        match decision {
            Decision::Undecided => {}
            Decision::Not => *self = App::Other,
            Decision::WebSocket { client_is_lo } => {
                let App::Probe(p) = std::mem::take(self) else {
                    unreachable!("only a probe decides")
                };
                *self = App::WebSocket {
                    client_is_lo,
                    session: Box::new(p.into_session(client_is_lo, ctx.limits.inflate, ctx.at, tl)),
                };
            }
        }
    }

    /// How many of the next bytes from `from_lo` will be passed over unread: all of them
    /// for a connection not followed, the rest of a payload nobody reads in a session
    /// (`WsSession::unread`). A wss:// record wholly inside them is authenticated but not
    /// decrypted (`tls::PlaintextSink`).
    pub fn unread(&self, from_lo: bool, tl: &Lent) -> u64 {
        match self {
            App::Other => u64::MAX,
            App::WebSocket {
                client_is_lo,
                session,
            } => session.unread(side_of(*client_is_lo, from_lo), tl),
            App::Unknown | App::Http(_) | App::Probe(_) => 0,
        }
    }

    /// `n` bytes from `from_lo` (at most [`unread`](Self::unread)) passed over.
    pub fn pass_over(&mut self, from_lo: bool, n: u64, ctx: &SegmentCtx<'_>, tl: &mut Lent) {
        if let App::WebSocket {
            client_is_lo,
            session,
        } = self
        {
            session.pass_over(side_of(*client_is_lo, from_lo), n, ctx.at, tl);
        }
    }
}

/// The session's side of the bytes from `key.lo` (`from_lo`).
#[inline]
fn side_of(client_is_lo: bool, from_lo: bool) -> Side {
    if client_is_lo == from_lo {
        Side::Client
    } else {
        Side::Server
    }
}

impl MemoryCharge for App {
    #[inline]
    fn memory_charge(&self) -> usize {
        match self {
            App::WebSocket { session, .. } => session.memory_charge(),
            App::Http(h) => h.head_bytes() + h.session.as_ref().map_or(0, |s| s.memory_charge()),
            App::Probe(p) => p.memory_charge(),
            App::Unknown | App::Other => 0,
        }
    }

    /// Heads being gathered are read as cut off where they are (a request head as by a
    /// gap; a response head as cut off, or lost); a probe forgets its chains; a session
    /// gives up what its consumers hold.
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>) {
        match self {
            App::WebSocket { session, .. } => session.release_memory(ctx),
            App::Probe(p) => p.release_memory(),
            App::Http(h) => {
                if matches!(&h.client, Reading::Head(b) if b.memory_charge() > 0) {
                    if let Some(app) = h.cut_request(ctx) {
                        *self = app;
                        return self.release_memory(ctx);
                    }
                }
                let answering_upgrade = h.pending.front().is_some_and(|p| p.upgrade)
                    && matches!(h.server, Reading::Head(_));
                let mut upgraded = false;
                if answering_upgrade {
                    if h.session
                        .as_ref()
                        .is_some_and(|s| s.response_head_bytes() > 0)
                    {
                        upgraded = h.server_gap(None, ctx.at, &mut Lent::default());
                    }
                } else if matches!(&h.server, Reading::Head(b) if b.memory_charge() > 0) {
                    h.lose();
                }
                if let Some(s) = &mut h.session {
                    s.release_memory(ctx);
                }
                self.http_moved_on(upgraded);
            }
            App::Unknown | App::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::flow::ConnLimits;
    use proptest::prelude::*;

    const UPGRADE: &[u8] =
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    const POST: &[u8] = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    const OK_LEN: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    const OK_CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    const REJECT: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope";
    const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    const SERVER_TEXT: &[u8] = b"\x81\x02hi";
    const CLIENT_TEXT: &[u8] = b"\x81\x82\x01\x02\x03\x04ik";

    fn ctx(limits: &ConnLimits) -> SegmentCtx<'_> {
        SegmentCtx {
            at: At::default(),
            limits,
            tls: Box::leak(Box::default()),
        }
    }

    /// Feeds `(from client, bytes)` to a connection whose client sends from `key.lo`.
    fn run(events: &[(bool, &[u8])]) -> App {
        let limits = ConnLimits::new(&Limits::default());
        let mut app = App::Unknown;
        for (client, b) in events {
            app.on_event(
                *client,
                Event::Data(b),
                true,
                &ctx(&limits),
                &mut Lent::default(),
            );
        }
        app
    }

    #[test]
    fn keep_alive_requests_then_a_rejected_upgrade_then_a_session() {
        let app = run(&[
            (true, GET),
            (false, OK_LEN),
            (true, POST),
            (false, CONTINUE),
            (false, OK_CHUNKED),
            (true, UPGRADE),
            (false, REJECT),
            (true, UPGRADE),
            (false, SWITCH),
            (false, SERVER_TEXT),
            (true, CLIENT_TEXT),
        ]);
        let sessions: Vec<_> = app.sessions().collect();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].requests_before_upgrade(), 2);
        assert_eq!(sessions[0].status(), Some(401));
        assert_eq!(sessions[1].requests_before_upgrade(), 3);
        assert!(sessions[1].upgraded());
        let c = &sessions[1].consumers.counts;
        assert_eq!((c.client.stats.messages, c.server.stats.messages), (1, 1));
    }

    /// The memory budget (`flow::memory`): a request head split over segments is charged
    /// and, given up, read as cut off where it is (its whole lines make the session); a
    /// response head likewise (its status line decides); a probe's chains are charged and
    /// forgotten.
    #[test]
    fn heads_and_probes_are_charged_and_given_up_under_the_memory_budget() {
        let limits = ConnLimits::new(&Limits::default());
        let c = ctx(&limits);
        // The request: 60 bytes, whole lines up to `Upgrade: websocket`.
        let mut app = App::Unknown;
        app.on_event(
            true,
            Event::Data(&UPGRADE[..60]),
            true,
            &c,
            &mut Lent::default(),
        );
        assert!(app.memory_charge() > 0 && app.undecided());
        app.release_memory(&c);
        assert_eq!(app.memory_charge(), 0);
        assert!(matches!(app, App::WebSocket { .. }) && !app.undecided());
        app.on_event(false, Event::Data(SWITCH), true, &c, &mut Lent::default());
        app.on_event(
            false,
            Event::Data(SERVER_TEXT),
            true,
            &c,
            &mut Lent::default(),
        );
        let s = app
            .sessions()
            .next()
            .expect("a session from the cut request");
        assert!(s.request_cut() && s.upgraded());
        assert_eq!(s.consumers.counts.server.stats.messages, 1);

        // The response: its status line is whole when it is given up.
        let mut app = run(&[(true, UPGRADE)]);
        assert!(!app.undecided(), "an Upgrade request was made");
        app.on_event(
            false,
            Event::Data(&SWITCH[..40]),
            true,
            &c,
            &mut Lent::default(),
        );
        assert!(app.memory_charge() > 0);
        app.release_memory(&c);
        assert_eq!(app.memory_charge(), 0);
        assert!(matches!(app, App::WebSocket { .. }));
        app.on_event(
            false,
            Event::Data(SERVER_TEXT),
            true,
            &c,
            &mut Lent::default(),
        );
        let s = app.sessions().next().unwrap();
        assert_eq!(
            (s.status(), s.consumers.counts.server.stats.messages),
            (Some(101), 1)
        );

        // A connection picked up mid-stream: the probe holds its chain until it decides.
        let mut app = App::Unknown;
        for _ in 0..2 {
            app.on_event(
                true,
                Event::Data(CLIENT_TEXT),
                false,
                &c,
                &mut Lent::default(),
            );
        }
        assert!(matches!(app, App::Probe(_)) && app.memory_charge() > 0);
        assert!(!app.undecided(), "a chain of frames is being followed");
        app.release_memory(&c);
        assert_eq!(app.memory_charge(), 0);
        assert!(matches!(app, App::Probe(_)) && app.undecided());
    }

    /// (client, server) data messages counted.
    fn messages(s: &WsSession) -> (u64, u64) {
        let c = &s.consumers.counts;
        (c.client.stats.messages, c.server.stats.messages)
    }

    /// The request not captured (one direction only, or the capture began after it): a
    /// 101 naming WebSocket as the first bytes makes a session; the request captured after
    /// its answer is passed over, not read as frames; another answer makes none.
    #[test]
    fn a_101_first_is_a_session_whose_request_was_not_captured() {
        let app = run(&[(false, SWITCH), (false, SERVER_TEXT), (false, SERVER_TEXT)]);
        let s: Vec<_> = app.sessions().collect();
        assert_eq!(s.len(), 1);
        assert!(s[0].is_websocket() && s[0].upgraded());
        assert!(s[0]
            .anomalies
            .contains(crate::record::Anomaly::RequestNotCaptured));
        assert_eq!(messages(s[0]), (0, 2));

        let app = run(&[
            (false, SWITCH),
            (true, UPGRADE),
            (false, SERVER_TEXT),
            (true, CLIENT_TEXT),
        ]);
        let s: Vec<_> = app.sessions().collect();
        assert_eq!(s.len(), 1);
        assert!(!s[0]
            .anomalies
            .contains(crate::record::Anomaly::UnmaskedClientFrame));
        assert_eq!(messages(s[0]), (1, 1));

        let h2c: &[u8] =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        for first in [OK_LEN, h2c] {
            let app = run(&[(false, first), (false, SERVER_TEXT)]);
            assert!(!app.is_session(), "{:?}", String::from_utf8_lossy(first));
            assert!(app.sessions().all(|s| !s.is_websocket()));
        }
    }

    /// A 101 without `Upgrade: websocket`: RFC 6455 §4.1 has the client fail the
    /// connection. HTTP after it (a test server answering one bad Upgrade after another)
    /// is not read as frames; frames after it still are.
    #[test]
    fn after_a_101_that_names_no_websocket_http_is_not_frames() {
        let no_upgrade: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websockets\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let app = run(&[
            (true, UPGRADE),
            (false, no_upgrade),
            (true, UPGRADE),
            (false, no_upgrade),
            (true, CLIENT_TEXT),
        ]);
        let s: Vec<_> = app.sessions().collect();
        assert_eq!(s.len(), 1);
        let a = s[0].anomalies;
        assert!(a.contains(crate::record::Anomaly::MissingUpgradeHeader));
        assert!(!a.contains(crate::record::Anomaly::UnmaskedClientFrame));
        assert!(!a.contains(crate::record::Anomaly::InvalidCloseCode));
        assert_eq!(messages(s[0]), (0, 0));
        assert!(!s[0].consumers.facts.close_seen_yet());
        // The server's next response first, in the same segment as the 101.
        let both = [no_upgrade, no_upgrade].concat();
        let app = run(&[(true, UPGRADE), (false, &both), (true, CLIENT_TEXT)]);
        assert_eq!(messages(app.sessions().next().unwrap()), (0, 0));
        // Frames after it are frames.
        let app = run(&[
            (true, UPGRADE),
            (false, no_upgrade),
            (false, SERVER_TEXT),
            (true, CLIENT_TEXT),
        ]);
        let s: Vec<_> = app.sessions().collect();
        assert!(s[0]
            .anomalies
            .contains(crate::record::Anomaly::MissingUpgradeHeader));
        assert_eq!(messages(s[0]), (1, 1));
    }

    #[test]
    fn a_server_speaking_first_is_not_http() {
        let app = run(&[(false, OK_LEN), (true, UPGRADE), (false, SWITCH)]);
        assert!(!app.is_session());
    }

    proptest! {
        /// Any order and any cut of HTTP and WebSocket pieces, with gaps, from either side:
        /// followed without a panic (the `expect`s on pending Upgrades hold).
        #[test]
        fn any_mix_of_pieces_and_gaps_is_followed_without_panic(
            steps in proptest::collection::vec((0usize..11, any::<bool>(), 0usize..40, 0u8..8), 0..24)
        ) {
            let pieces: [&[u8]; 11] = [
                UPGRADE, GET, POST, OK_LEN, OK_CHUNKED, CONTINUE, REJECT, SWITCH,
                SERVER_TEXT, CLIENT_TEXT, b"\x16\x03\x01\x00",
            ];
            let limits = ConnLimits::new(&Limits::default());
            let mut app = App::Unknown;
            for (piece, client, cut, gap) in steps {
                let p = pieces[piece];
                let cut = cut.min(p.len());
                let started = piece != 10;
                if gap == 0 {
                    let ev = Event::Gap(cut as u64 + 1);
                    app.on_event(client, ev, started, &ctx(&limits), &mut Lent::default());
                }
                for part in [&p[..cut], &p[cut..]] {
                    if !part.is_empty() {
                        let ev = Event::Data(part);
                        app.on_event(client, ev, started, &ctx(&limits), &mut Lent::default());
                    }
                }
                let _ = app.take_new_upgrade();
            }
            let _ = app.sessions().count();
            let _ = app.into_sessions();
        }
    }
}
