//! A WebSocket session over one TCP connection: the opening handshake in both directions
//! (RFC 6455 §4), then a [`FrameStream`] per direction whose events go to the session's
//! consumers (the report's counters, the record's facts, and the payload consumer:
//! permessage-deflate and the UTF-8 check), and (for `frames`) the connection's timeline,
//! which the TCP connection owns and lends to each call.

use super::counts::Counts;
use super::deflate::Payloads;
use super::events::{FrameConsumer, GapEffect, StreamEvent};
use super::extensions;
use super::facts::Facts;
use super::frame::FrameHeader;
use super::handshake::{self, Request, Response};
use super::packed;
use super::stream::FrameStream;
use super::texts::{
    Texts, EXTENSIONS, HOST, ORIGIN, PATH, REQUEST_HEADERS, RESPONSE_HEADERS, SUBPROTOCOL,
    USER_AGENT,
};
use super::timeline::Timeline;
use crate::bits::Bits;
use crate::flow::memory::MemoryCharge;
use crate::flow::SegmentCtx;
use crate::http::head::{HeadBuffer, HeadProgress, HeadSkip};
use crate::http::message::Body;
use crate::record::{
    Anomalies, Anomaly, AnomalyMarks, At, Fields, HandshakeHeaders, Peer, Side, SideStats,
};
use crate::verdict::Upgrade;

/// The consumers of a session's frame events.
#[derive(Debug, Default)]
pub struct Consumers {
    /// The report's counters.
    pub counts: Counts,
    /// The record's other facts (times, round trips, anomaly packets).
    pub facts: Facts,
    /// Message payloads (absent with `--no-inflate`, or before the upgrade). Inline (48
    /// bytes): a box would cost every open session an allocation and its overhead; what
    /// only permessage-deflate needs is boxed inside.
    pub payloads: Option<Payloads>,
}

/// One match per event for the counters and the facts (an event per frame: this is the
/// hot path).
impl FrameConsumer for Consumers {
    #[inline(always)]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        self.counts.side(side).event(ev);
        match ev {
            StreamEvent::Frame(f) => self.facts.frame(side, at, f.header.opcode),
            StreamEvent::Close(_) => {
                let (c, s) = (&self.counts.client.stats, &self.counts.server.stats);
                self.facts
                    .close_seen([(c.messages, c.bytes), (s.messages, s.bytes)]);
            }
            StreamEvent::Anomaly(a) => self.facts.marks.note(a, at.packet),
            StreamEvent::Message { .. } | StreamEvent::Gap { .. } => {}
        }
        // The largest message is kept in the counters only: sized by the payload consumer
        // where there is one (inflated), else as on the wire.
        let size = match &mut self.payloads {
            Some(p) => {
                let size = p.sized_event(side, at, ev);
                // What inflation found (in this event or in the payload before it) is
                // marked at the packet that completed the event.
                let marks = &mut self.facts.marks;
                p.take_raised(side, |a| marks.note(a, at.packet));
                size
            }
            None => match ev {
                StreamEvent::Message { bytes, .. } => bytes,
                _ => 0,
            },
        };
        let c = self.counts.side(side);
        c.largest_message = c.largest_message.max(size);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        self.payloads.payload(side, header, offset, bytes);
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        self.payloads.is_some()
    }

    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        self.payloads.payload_wanted(side, header)
    }

    #[inline]
    fn memory_charge(&self) -> usize {
        self.counts.memory_charge() + self.payloads.memory_charge()
    }

    fn release_memory(&mut self, at: At) {
        self.counts.release_memory(at);
        self.payloads.release_memory(at);
    }
}

/// What a TCP connection lends to each call into its session: its timeline (kept only
/// for `frames`), and a flag that the first Close frame sets, so that the connection learns
/// when the session ended without looking into it.
#[derive(Debug, Default)]
pub struct Lent {
    pub timeline: Option<Box<Timeline>>,
    pub close_seen: bool,
}

impl Lent {
    /// What a connection lends to its session's calls for one delivery: its timeline
    /// (given back after it), the first-Close flag not set yet (the connection keeps its own
    /// once set).
    #[inline(always)]
    pub fn new(timeline: Option<Box<Timeline>>) -> Self {
        Lent {
            timeline,
            close_seen: false,
        }
    }
}

impl FrameConsumer for Lent {
    #[inline(always)]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        if let StreamEvent::Close(_) = ev {
            self.close_seen = true;
        }
        self.timeline.event(side, at, ev);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        self.timeline.payload(side, header, offset, bytes);
    }

    #[inline(always)]
    fn wants_payload(&self) -> bool {
        self.timeline.wants_payload()
    }
}

/// Frames of one direction to the session's consumers and what the connection lends. Without
/// a timeline (every run but `frames`) the lent part is only the first-Close flag, read from
/// the facts after the call: the hot loop sees the session's own consumers alone.
#[inline(always)]
fn feed(stream: &mut FrameStream, d: &[u8], at: At, consumers: &mut Consumers, tl: &mut Lent) {
    if tl.timeline.is_none() {
        stream.data(d, at, consumers);
        tl.close_seen |= consumers.facts.close_seen_yet();
    } else {
        stream.data(d, at, &mut (consumers, tl));
    }
}

/// What a direction's bytes are being read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirState {
    /// An HTTP head: the server's, the response in `WsSession::response_head`, buffered
    /// while incomplete; the client's, only when its request was not captured
    /// (`from_lost_request`): its first bytes tell whether that request comes late (passed
    /// over) or frames do.
    Head,
    /// The rest of a head too long to buffer: passed over until its end.
    SkipHead(HeadSkip),
    Frames,
    /// After a 101 that did not name WebSocket (`missing_upgrade_header`): RFC 6455 §4.1
    /// has the client fail the connection, so the first bytes after it tell — an HTTP
    /// request from the client or a response from the server means the connection did not
    /// switch (both directions are then ignored), anything else is frames.
    Doubtful,
    /// Nothing more to learn from this direction.
    Ignore,
}

/// The Sec-WebSocket-Accept that the request's key calls for (RFC 6455 §4.2.2), from its
/// header fields as kept.
fn accept_of(request: &Fields) -> Option<String> {
    packed::field(request, "Sec-WebSocket-Key").map(|k| handshake::accept_for_key(k.trim()))
}

/// Both directions of an upgraded (or upgrading) connection. What the report needs of
/// the handshake is kept compact (the texts in two allocations, one of them shared with
/// the sessions that have the same host, origin, user agent …: `texts.rs`; the status): a
/// session may stay open for the whole capture, and a million of them should fit in a
/// gigabyte.
#[derive(Debug)]
#[allow(clippy::vec_box)]
pub struct WsSession {
    /// Host, path, origin, user agent of the request; subprotocol and extensions of the
    /// response.
    texts: Texts,
    /// The session's yes/no facts, a bit each.
    flags: Bits,
    /// The status of the response, once seen (0 before: statuses are 100 to 599).
    status: u16,
    /// What only some sessions need, or only during the handshake.
    rare: Option<Box<Rare>>,
    client: FrameStream,
    server: FrameStream,
    client_state: DirState,
    server_state: DirState,
    /// What the frames add up to, per direction, their payloads, and the rest of the
    /// record's facts.
    pub consumers: Consumers,
    /// Handshake anomalies (the frame streams' go to `consumers`); where they were seen
    /// is marked with the frames' (`consumers.facts.marks`: the record merges them anyway).
    pub anomalies: Anomalies,
}

/// The bits of a session's yes/no facts (`Bits`: nine `bool`s took nine bytes, and a
/// session 8 bytes more than a malloc size class allows).
struct Flags;

impl Flags {
    /// The request has `Upgrade: websocket`.
    const UPGRADE_REQUESTED: u16 = 1;
    /// The request offered extensions (Sec-WebSocket-Extensions).
    const OFFERED_EXTENSIONS: u16 = 1 << 1;
    /// Something the report depends on could not be read (handshake lost in a gap).
    const INEXACT: u16 = 1 << 2;
    /// The request head was cut off (gap or snapshot length): only its first lines are
    /// known.
    const REQUEST_CUT: u16 = 1 << 3;
    /// The response head was cut off: fields after the cut are unknown, not missing.
    const RESPONSE_CUT: u16 = 1 << 4;
    /// The response head is missing (bytes not captured) or unreadable (too long before
    /// its status line ended): whether it upgraded is told by the server's frames, if any.
    const RESPONSE_LOST: u16 = 1 << 5;
    /// Inflate compressed messages and check text (off with `--no-inflate`).
    const INFLATE: u16 = 1 << 6;
    /// The response negotiated permessage-deflate.
    const DEFLATE: u16 = 1 << 7;
    /// Picked up mid-stream: no handshake was seen.
    const MIDSTREAM: u16 = 1 << 8;
}

/// What a session keeps only during its handshake (the key, the response head) or only
/// in some cases (a rejected Upgrade's body, earlier sessions on the connection, a proxy
/// peer): boxed, and dropped when it holds nothing.
#[derive(Debug, Default)]
#[allow(clippy::vec_box)]
struct Rare {
    /// Bytes of the response head buffered while incomplete (`Limits::max_handshake_bytes`).
    max_head: u32,
    /// The request's Sec-WebSocket-Key, until the response is checked against it.
    key: Option<Box<str>>,
    /// The response head while it is gathered (`server_state` is `Head`).
    response_head: HeadBuffer,
    /// How the response's body is delimited, when not the default (a rejected Upgrade:
    /// where the connection's next response starts, RFC 9112 §6.3).
    response_body: Option<Body>,
    /// Sessions of rejected Upgrades before this one on the connection (keep-alive).
    earlier: Vec<Box<WsSession>>,
    /// The other leg through a proxy, once paired.
    peer: Option<Peer>,
    /// HTTP requests on the connection before this Upgrade (keep-alive; most have none).
    requests_before_upgrade: u64,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.max_head == 0
            && self.key.is_none()
            && self.response_head.memory_charge() == 0
            && self.response_body.is_none()
            && self.earlier.is_empty()
            && self.peer.is_none()
            && self.requests_before_upgrade == 0
    }
}

impl WsSession {
    /// A session from a complete Upgrade request, completed in packet `at`; the client's
    /// bytes after it are frames.
    pub fn new(request: Request, max_head: usize, inflate: bool, at: At) -> Self {
        Self::with_request(request, max_head, inflate, false, at)
    }

    /// A session from a request head that was cut off: its start line and first fields
    /// are known. The client's next bytes should be frames. Whether it is a WebSocket
    /// session at all is decided by the request's fields if they were seen, else by the
    /// response (101).
    pub fn from_cut_request(request: Request, max_head: usize, inflate: bool, at: At) -> Self {
        let mut s = Self::with_request(request, max_head, inflate, true, at);
        s.client.expect_frame_start();
        s
    }

    /// A session whose Upgrade request is not in the capture, recognised by its answer
    /// (a capture of the server's direction only, or one that began after the request):
    /// it is a WebSocket session if the answer is a 101 with `Upgrade: websocket`. What
    /// the client sent is not known to be all there (`exact=false`); its next bytes, if
    /// any, should be frames.
    pub fn from_lost_request(max_head: usize, inflate: bool, at: At) -> Self {
        let mut s = Self::with_request(Request::default(), max_head, inflate, true, at);
        s.flag(Anomaly::RequestNotCaptured, at);
        s.flags.set(Flags::INEXACT);
        s.client.expect_frame_start();
        // The client's first bytes decide: the request captured late, or frames.
        s.client_state = DirState::Head;
        s
    }

    /// A session from the start of an Upgrade request whose head outgrew the buffer cap:
    /// the fields in its first bytes are known. `rest` is what came after the head if its
    /// end was seen (frames), else where the search for its end stands.
    pub fn from_long_request(
        request: Request,
        max_head: usize,
        rest: Result<Vec<u8>, HeadSkip>,
        at: At,
        inflate: bool,
        tl: &mut Lent,
    ) -> Self {
        let mut s = Self::with_request(request, max_head, inflate, true, at);
        s.flag(Anomaly::HandshakeTooLong, at);
        match rest {
            Ok(frames) => s.client_data(&frames, at, tl),
            Err(skip) => s.client_state = DirState::SkipHead(skip),
        }
        s
    }

    /// A session recognised by its framing, without a handshake (RFC 6455 §5 only): no
    /// request, no response, RSV1 of unknown meaning. Each direction starts with framing
    /// lost until [`start_framing`](Self::start_framing) says where frames begin. `at`: the
    /// packet that decided it.
    pub fn midstream(inflate: bool, at: At) -> Self {
        let mut s = Self::with_request(Request::default(), 0, inflate, true, at);
        s.flags.set(Flags::MIDSTREAM);
        s.flag(Anomaly::Midstream, at);
        // Counts start at the first frame of the recognised chain: a message in flight
        // before it is not counted.
        s.flags.set(Flags::INEXACT);
        s.server_state = DirState::Frames;
        for fs in [&mut s.client, &mut s.server] {
            fs.rsv1_unknown();
            fs.start_lost();
        }
        if inflate {
            s.consumers.payloads = Some(Payloads::new(None));
        }
        s.tidy();
        s
    }

    /// Mid-stream: `side`'s next bytes start a frame.
    pub fn start_framing(&mut self, side: Side) {
        match side {
            Side::Client => self.client.start_known(),
            Side::Server => self.server.start_known(),
        }
    }

    fn with_request(
        request: Request,
        max_head: usize,
        inflate: bool,
        request_cut: bool,
        at: At,
    ) -> Self {
        let missing_key = request.key.is_none();
        let bad_version = request.version.trim() != "13";
        let mut s = WsSession {
            texts: Texts::new([
                &request.host,
                &request.path,
                &request.origin,
                &request.user_agent,
                "",
                "",
                &packed::pack(
                    &request.headers,
                    &[
                        &request.host,
                        &request.origin,
                        &request.user_agent,
                        &request.path,
                    ],
                    None,
                ),
                "",
            ]),
            flags: Bits::of(&[
                (Flags::UPGRADE_REQUESTED, request.upgrade_websocket),
                (Flags::OFFERED_EXTENSIONS, !request.extensions.is_empty()),
                (Flags::REQUEST_CUT, request_cut),
                (Flags::INFLATE, inflate),
            ]),
            status: 0,
            rare: Some(Box::new(Rare {
                max_head: max_head.min(u32::MAX as usize) as u32,
                key: request.key.map(String::into_boxed_str),
                ..Rare::default()
            })),
            client: FrameStream::new(Side::Client),
            server: FrameStream::new(Side::Server),
            client_state: DirState::Frames,
            server_state: DirState::Head,
            consumers: Consumers::default(),
            anomalies: Anomalies::default(),
        };
        // Fields after a cut are unknown, not missing.
        if !request_cut {
            if missing_key {
                s.flag(Anomaly::MissingKey, at);
            }
            if bad_version {
                s.flag(Anomaly::UnsupportedVersion, at);
            }
        }
        s
    }

    /// A handshake anomaly, seen in packet `at`.
    fn flag(&mut self, a: Anomaly, at: At) {
        self.anomalies.insert(a);
        self.consumers.facts.marks.note(a, at.packet);
    }

    /// The message each side has in progress (see [`FrameStream::unfinished_message`]).
    pub fn unfinished_messages(&self) -> (Option<u64>, Option<u64>) {
        (
            self.client.unfinished_message(),
            self.server.unfinished_message(),
        )
    }

    /// Is this a WebSocket session: an Upgrade request, or (when the request was cut off)
    /// a 101 answer?
    pub fn is_websocket(&self) -> bool {
        self.flags.has(Flags::MIDSTREAM)
            || self.flags.has(Flags::UPGRADE_REQUESTED)
            || (self.flags.has(Flags::REQUEST_CUT) && self.upgraded())
    }

    /// The request head was cut off (gap or snapshot length): only its first lines are
    /// known.
    pub fn request_cut(&self) -> bool {
        self.flags.has(Flags::REQUEST_CUT)
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

    /// The header fields of the request and of the response (once seen), as sent
    /// (bounded, see `handshake::kept_headers`).
    pub fn handshake_headers(&self) -> HandshakeHeaders {
        let request = self.request_headers();
        let accept = accept_of(&request);
        let response = packed::unpack(
            self.texts.get(RESPONSE_HEADERS),
            &[self.subprotocol(), self.extensions()],
            accept.as_deref(),
        );
        HandshakeHeaders { request, response }
    }

    /// The request's header fields, as sent (bounded).
    fn request_headers(&self) -> Fields {
        packed::unpack(
            self.texts.get(REQUEST_HEADERS),
            &[self.host(), self.origin(), self.user_agent(), self.path()],
            None,
        )
    }

    /// The request's Sec-WebSocket-Key (until the response has been checked against it).
    pub fn key(&self) -> Option<&str> {
        self.rare.as_ref()?.key.as_deref()
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// HTTP requests on the connection before this Upgrade.
    pub fn requests_before_upgrade(&self) -> u64 {
        self.rare.as_ref().map_or(0, |r| r.requests_before_upgrade)
    }

    /// Sets [`requests_before_upgrade`](Self::requests_before_upgrade).
    pub fn set_requests_before_upgrade(&mut self, n: u64) {
        if n != self.requests_before_upgrade() {
            self.rare().requests_before_upgrade = n;
            self.tidy();
        }
    }

    /// Drops what the session keeps in `rare` once none of it is needed.
    fn tidy(&mut self) {
        if self.rare.as_ref().is_some_and(|r| r.is_empty()) {
            self.rare = None;
        }
    }

    /// The sessions of rejected Upgrades before this one on the connection.
    pub fn earlier(&self) -> &[Box<WsSession>] {
        self.rare.as_ref().map_or(&[], |r| &r.earlier[..])
    }

    /// Those sessions, mutably.
    pub fn earlier_mut(&mut self) -> &mut [Box<WsSession>] {
        match &mut self.rare {
            Some(r) => &mut r.earlier[..],
            None => &mut [],
        }
    }

    /// Sets the sessions of rejected Upgrades before this one.
    #[allow(clippy::vec_box)]
    pub fn set_earlier(&mut self, earlier: Vec<Box<WsSession>>) {
        if !earlier.is_empty() || self.rare.is_some() {
            self.rare().earlier = earlier;
            self.tidy();
        }
    }

    /// Takes the sessions of rejected Upgrades before this one.
    #[allow(clippy::vec_box)]
    pub fn take_earlier(&mut self) -> Vec<Box<WsSession>> {
        let Some(r) = &mut self.rare else {
            return Vec::new();
        };
        let v = std::mem::take(&mut r.earlier);
        self.tidy();
        v
    }

    /// The other leg through a proxy, once paired.
    pub fn peer(&self) -> Option<Peer> {
        self.rare.as_ref()?.peer
    }

    /// Pairs this session with its other leg through a proxy.
    pub fn set_peer(&mut self, peer: Peer) {
        self.rare().peer = Some(peer);
    }

    /// The status of the response to the Upgrade request, once seen.
    pub fn status(&self) -> Option<u16> {
        (self.status != 0).then_some(self.status)
    }

    /// How the body of the response is delimited (once seen; until the connection
    /// closes before).
    pub fn response_body(&self) -> Body {
        self.rare
            .as_ref()
            .and_then(|r| r.response_body)
            .unwrap_or(Body::UntilClose)
    }

    /// `side`'s stream ended (its FIN was reached, or a RST): per-direction memory that
    /// only later bytes would need is freed.
    pub fn direction_ended(&mut self, side: Side) {
        if let Some(p) = &mut self.consumers.payloads {
            p.release(side);
        }
    }

    /// The server's bytes are read as frames: upgraded, or the answer was lost and its
    /// frames are looked for (`upgrade()` tells which).
    pub fn reads_server_frames(&self) -> bool {
        matches!(self.server_state, DirState::Frames | DirState::Doubtful)
    }

    /// A direction's first bytes after a doubtful 101 ([`DirState::Doubtful`]): `http`
    /// when they are an HTTP head (the connection did not switch protocols: nothing of it
    /// is WebSocket), else frames from here on both ways.
    fn settle_doubt(&mut self, http: bool) {
        let next = if http {
            DirState::Ignore
        } else {
            DirState::Frames
        };
        for state in [&mut self.client_state, &mut self.server_state] {
            if *state == DirState::Doubtful {
                *state = next;
            }
        }
    }

    /// The response head is still being read.
    pub fn is_reading_response(&self) -> bool {
        matches!(self.server_state, DirState::Head)
    }

    pub fn upgraded(&self) -> bool {
        self.status == 101
    }

    /// What became of the Upgrade request, as far as the capture tells.
    pub fn upgrade(&self) -> Upgrade {
        match self.status() {
            _ if self.flags.has(Flags::MIDSTREAM) => Upgrade::Midstream,
            Some(status) => Upgrade::Answered(status),
            None if self.flags.has(Flags::RESPONSE_LOST) && self.server.framing_found() => {
                Upgrade::Inferred
            }
            None if self.flags.has(Flags::RESPONSE_LOST) => Upgrade::Unknown,
            None => Upgrade::Unanswered,
        }
    }

    /// Whether a frame or message of `side` was left unfinished (see [`FrameStream::in_progress`]);
    /// `None` when that side was not reading frames.
    pub fn in_progress(&self, side: Side) -> Option<bool> {
        let (state, stream) = match side {
            Side::Client => (&self.client_state, &self.client),
            Side::Server => (&self.server_state, &self.server),
        };
        match state {
            DirState::Frames => stream.in_progress(),
            _ => None,
        }
    }

    /// In-order bytes from the client, delivered in packet `at`.
    pub fn client_data(&mut self, mut d: &[u8], at: At, tl: &mut Lent) {
        if self.client_state == DirState::Doubtful {
            self.settle_doubt(handshake::may_be_request(d));
        }
        if self.client_state == DirState::Head {
            // The request was not captured (`from_lost_request`): the client's first bytes
            // are that request, captured after its answer (passed over), or frames.
            self.client_state = if handshake::may_be_request(d) {
                DirState::SkipHead(HeadSkip::default())
            } else {
                DirState::Frames
            };
        }
        if let DirState::SkipHead(skip) = &mut self.client_state {
            match skip.scan(d) {
                Some(n) => {
                    d = &d[n..];
                    self.client_state = DirState::Frames;
                }
                None => return,
            }
        }
        if let DirState::Frames = self.client_state {
            if self.frames_would_precede_upgrade() && !d.is_empty() {
                self.flag(Anomaly::FrameBeforeUpgrade, at);
            }
            feed(&mut self.client, d, at, &mut self.consumers, tl);
        }
    }

    /// In-order bytes from the server while it sends frames (the common case, inlined
    /// into the connection's delivery); `false`, and nothing done, while its bytes are
    /// read otherwise (see [`server_data`](Self::server_data)).
    #[inline(always)]
    pub fn server_frames(&mut self, d: &[u8], at: At, tl: &mut Lent) -> bool {
        if self.server_state != DirState::Frames {
            return false;
        }
        feed(&mut self.server, d, at, &mut self.consumers, tl);
        true
    }

    /// In-order bytes from the server, delivered in packet `at`. When they complete an
    /// answer other than 101, returns the bytes after its head: the connection goes on as
    /// HTTP (RFC 9112 keep-alive), not as this session.
    pub fn server_data(&mut self, d: &[u8], at: At, tl: &mut Lent) -> Option<Vec<u8>> {
        let progress = match &mut self.server_state {
            DirState::Frames => {
                feed(&mut self.server, d, at, &mut self.consumers, tl);
                return None;
            }
            DirState::Doubtful => {
                self.settle_doubt(handshake::may_be_response(d));
                return self.server_data(d, at, tl);
            }
            DirState::Ignore => return None,
            DirState::SkipHead(skip) => {
                if let Some(n) = skip.scan(d) {
                    self.server_state = DirState::Frames;
                    self.server
                        .data(&d[n..], at, &mut (&mut self.consumers, tl));
                }
                return None;
            }
            DirState::Head => {
                let max_head = self.rare.as_ref().map_or(0, |r| r.max_head as usize);
                let buf = &mut self.rare.get_or_insert_with(Box::default).response_head;
                let progress = buf.push(d, max_head, handshake::response);
                if let HeadProgress::TooLong = progress {
                    // Read what the head's first bytes say, and pass over the rest.
                    let cut = buf.prefix().and_then(|h| handshake::response(&h));
                    let rest = buf.overflow();
                    self.free_response_head();
                    self.flag(Anomaly::HandshakeTooLong, at);
                    match cut {
                        Some(r) => {
                            self.flags.set(Flags::RESPONSE_CUT);
                            self.accept_response(r, at);
                            if let DirState::Frames = self.server_state {
                                match rest {
                                    Ok(frames) => self.server.data(
                                        &frames,
                                        at,
                                        &mut (&mut self.consumers, tl),
                                    ),
                                    Err(skip) => self.server_state = DirState::SkipHead(skip),
                                }
                            }
                        }
                        None => self.lose_response(at),
                    }
                    return None;
                }
                progress
            }
        };
        match progress {
            HeadProgress::Complete(Some(resp), rest) => {
                self.accept_response(resp, at);
                if matches!(self.server_state, DirState::Frames) {
                    if !rest.is_empty() {
                        self.server.data(&rest, at, &mut (&mut self.consumers, tl));
                    }
                } else if self.server_state == DirState::Doubtful {
                    if !rest.is_empty() {
                        self.server_data(&rest, at, tl);
                    }
                } else {
                    return Some(rest);
                }
            }
            HeadProgress::Complete(None, _) | HeadProgress::Invalid(_) => {
                self.flag(Anomaly::BadHandshakeResponse, at);
                self.server_state = DirState::Ignore;
                self.free_response_head();
            }
            HeadProgress::Incomplete | HeadProgress::TooLong => {}
        }
        None
    }

    /// The response head is read (or given up): its buffer goes.
    fn free_response_head(&mut self) {
        if let Some(r) = &mut self.rare {
            r.response_head = HeadBuffer::default();
            r.max_head = 0;
        }
        self.tidy();
    }

    /// The response head cannot be read: what follows decides. The server's frames, once
    /// a segment is a run of whole, well-formed unmasked frames (§5.1), mean it upgraded.
    fn lose_response(&mut self, at: At) {
        self.free_response_head();
        self.flags.set(Flags::INEXACT);
        self.flags.set(Flags::RESPONSE_LOST);
        self.flag(Anomaly::ResponseNotCaptured, at);
        if self.flags.has(Flags::OFFERED_EXTENSIONS) {
            // An extension may have been accepted (RFC 7692 §6: RSV1).
            self.client.allow_rsv1();
            self.server.allow_rsv1();
        }
        self.server.find_framing();
        self.server_state = DirState::Frames;
    }

    fn accept_response(&mut self, resp: Response, at: At) {
        // Without its request, only an answer that names WebSocket makes a session (a 101
        // may switch to another protocol: `Upgrade: h2c`).
        let websocket =
            resp.upgrade_websocket || !self.anomalies.contains(Anomaly::RequestNotCaptured);
        if resp.status == 101 && websocket {
            let whole_heads =
                !self.flags.has(Flags::REQUEST_CUT) && !self.flags.has(Flags::RESPONSE_CUT);
            let doubtful = !resp.upgrade_websocket && whole_heads;
            if doubtful {
                self.flag(Anomaly::MissingUpgradeHeader, at);
            }
            match (&resp.accept, self.key()) {
                (None, _) if !self.flags.has(Flags::RESPONSE_CUT) => {
                    self.flag(Anomaly::MissingAccept, at)
                }
                (Some(a), Some(k)) if a.trim() != handshake::accept_for_key(k) => {
                    self.flag(Anomaly::InvalidAccept, at)
                }
                _ => {}
            }
            if !resp.extensions.is_empty() {
                // Extensions negotiated by the server may define RSV1 (RFC 7692 §6).
                self.client.allow_rsv1();
                self.server.allow_rsv1();
            } else if self.flags.has(Flags::RESPONSE_CUT) {
                // The field may have been after the cut.
                self.client.rsv1_unknown();
                self.server.rsv1_unknown();
            }
            let deflate = extensions::permessage_deflate(&resp.extensions);
            self.flags.set_to(Flags::DEFLATE, deflate.is_some());
            if self.flags.has(Flags::INFLATE) {
                self.consumers.payloads = Some(Payloads::new(deflate));
            }
            self.server_state = DirState::Frames;
            if doubtful {
                self.server_state = DirState::Doubtful;
                if self.client_state == DirState::Frames {
                    self.client_state = DirState::Doubtful;
                }
            }
        } else {
            // Not upgraded: nothing after this is WebSocket.
            self.server_state = DirState::Ignore;
            self.client_state = DirState::Ignore;
            if !websocket {
                // Without its request, a 101 to another protocol makes no session at all
                // (`is_websocket`).
                self.flags.set_to(Flags::REQUEST_CUT, false);
            }
        }
        self.status = resp.status;
        if let Some(r) = &mut self.rare {
            r.key = None;
            r.response_head = HeadBuffer::default();
            r.max_head = 0;
        }
        if resp.status != 101 && resp.body != Body::UntilClose {
            // Where the connection's next response starts (keep-alive after a rejection).
            self.rare().response_body = Some(resp.body);
        }
        self.tidy();
        if !resp.protocol.is_empty() || !resp.extensions.is_empty() || !resp.headers.is_empty() {
            let accept = accept_of(&self.request_headers());
            let headers = packed::pack(
                &resp.headers,
                &[&resp.protocol, &resp.extensions],
                accept.as_deref(),
            );
            self.texts = self.texts.with(&[
                (SUBPROTOCOL, &resp.protocol),
                (EXTENSIONS, &resp.extensions),
                (RESPONSE_HEADERS, &headers),
            ]);
        }
    }

    /// A gap outside the frames: counted as missing, nothing else.
    fn unframed_gap(&mut self, side: Side, n: u64, at: At, tl: &mut Lent) {
        let ev = StreamEvent::Gap {
            bytes: n,
            effect: GapEffect::NotFramed,
        };
        (&mut self.consumers, tl).event(side, at, ev);
    }

    /// Client frames now would come before the server's 101 (`frame_before_upgrade`): no
    /// answer yet, and it was neither lost nor skipped (mid-stream).
    fn frames_would_precede_upgrade(&self) -> bool {
        self.status == 0
            && !self.flags.has(Flags::RESPONSE_LOST)
            && !self.flags.has(Flags::MIDSTREAM)
    }

    /// How many of `side`'s next bytes will be passed over unread (`FrameStream::unread`):
    /// 0 with a timeline (`frames` shows payloads), or where the bytes are read for more
    /// than frames (a head, a frame before the upgrade to flag).
    pub fn unread(&self, side: Side, tl: &Lent) -> u64 {
        if tl.timeline.is_some() {
            return 0;
        }
        match side {
            Side::Client => {
                if self.client_state == DirState::Frames && !self.frames_would_precede_upgrade() {
                    self.client.unread(&self.consumers)
                } else {
                    0
                }
            }
            Side::Server => match self.server_state {
                DirState::Frames => self.server.unread(&self.consumers),
                DirState::Ignore => u64::MAX,
                _ => 0,
            },
        }
    }

    /// `n` of `side`'s bytes (at most [`unread`](Self::unread)) passed over, completed by
    /// the packet `at`.
    pub fn pass_over(&mut self, side: Side, n: u64, at: At, tl: &mut Lent) {
        let stream = match (side, self.server_state) {
            (Side::Client, _) => &mut self.client,
            (Side::Server, DirState::Frames) => &mut self.server,
            (Side::Server, _) => return,
        };
        stream.pass_over(n, at, &mut self.consumers);
        tl.close_seen |= self.consumers.facts.close_seen_yet();
    }

    /// Missing bytes in the client's direction, noticed at packet `at`.
    pub fn client_gap(&mut self, n: u64, at: At, tl: &mut Lent) {
        match self.client_state {
            DirState::Frames => self.client.gap(n, at, &mut (&mut self.consumers, tl)),
            DirState::SkipHead(_) | DirState::Head | DirState::Doubtful => {
                // Where the head ended may be in the gap (or, the request not captured,
                // or the 101 doubtful, the client's first bytes are lost): find the
                // frames after it.
                self.settle_doubt(false);
                self.unframed_gap(Side::Client, n, at, tl);
                self.client.find_framing();
                self.client_state = DirState::Frames;
            }
            _ => self.unframed_gap(Side::Client, n, at, tl),
        }
    }

    /// Missing bytes in the server's direction, noticed at packet `at`.
    pub fn server_gap(&mut self, n: u64, at: At, tl: &mut Lent) {
        match &self.server_state {
            DirState::Frames => return self.server.gap(n, at, &mut (&mut self.consumers, tl)),
            DirState::Ignore => return self.unframed_gap(Side::Server, n, at, tl),
            DirState::SkipHead(_) | DirState::Doubtful => {
                self.settle_doubt(false);
                self.unframed_gap(Side::Server, n, at, tl);
                self.server.find_framing();
                self.server_state = DirState::Frames;
                return;
            }
            DirState::Head => {}
        }
        self.unframed_gap(Side::Server, n, at, tl);
        self.response_cut_off(at);
    }

    /// The response head being gathered ends here, in packet `at` (a gap, or the memory
    /// budget): its status line and whole fields may still be readable; if not, whether
    /// it upgraded is told by the server's frames, if any.
    pub fn response_cut_off(&mut self, at: At) {
        if self.server_state != DirState::Head {
            return;
        }
        let cut = self
            .rare
            .as_ref()
            .and_then(|r| r.response_head.prefix())
            .and_then(|h| handshake::response(&h));
        match cut {
            Some(r) => {
                self.flags.set(Flags::RESPONSE_CUT);
                let upgraded = r.status == 101;
                self.accept_response(r, at);
                if upgraded {
                    self.server.expect_frame_start();
                }
            }
            None => self.lose_response(at),
        }
    }

    /// Bytes of the response head being gathered (its buffer's capacity).
    pub fn response_head_bytes(&self) -> usize {
        self.rare
            .as_ref()
            .map_or(0, |r| r.response_head.memory_charge())
    }

    /// What the session adds to its record: each side's stats (client, server; their TCP
    /// facts are the connection's to fill), the anomalies of the handshake and both streams
    /// with where they were seen, and whether every count is exact.
    pub fn outcome(&self) -> (SideStats, SideStats, Anomalies, AnomalyMarks, bool) {
        let counts = &self.consumers.counts;
        let facts = &self.consumers.facts;
        let mut anomalies = self.anomalies;
        anomalies.union(counts.client.anomalies);
        anomalies.union(counts.server.anomalies);
        let marks = facts.marks.clone();
        let mut exact =
            !self.flags.has(Flags::INEXACT) && !counts.client.inexact && !counts.server.inexact;
        let (client_unfinished, server_unfinished) = self.unfinished_messages();
        let mut side = |side: Side| {
            let (c, f, unfinished_message) = match side {
                Side::Client => (&counts.client, &facts.client, client_unfinished),
                Side::Server => (&counts.server, &facts.server, server_unfinished),
            };
            let t = &c.stats;
            let (messages_before_close, bytes_before_close) =
                facts.before_close(side).unwrap_or((t.messages, t.bytes));
            let mut stats = SideStats {
                messages: t.messages,
                bytes: t.bytes,
                pings: t.pings.into(),
                pongs: t.pongs.into(),
                close: t.close().cloned(),
                missing_bytes: t.missing_bytes(),
                bytes_inflated: None,
                largest_message: None,
                messages_before_close,
                bytes_before_close,
                unfinished_message,
                last_data: f.last_data(),
                ping_rtt: f.ping_rtt(),
                tcp: Default::default(),
                in_progress_at_end: None,
            };
            match &self.consumers.payloads {
                Some(p) => {
                    let t = p.totals(side, c.largest_message);
                    stats.bytes_inflated = t.bytes_inflated;
                    stats.largest_message = t.largest_message;
                    anomalies.union(t.anomalies);
                    exact &= !t.inexact;
                }
                None => {
                    // Without inflation, sizes are known only where nothing is compressed.
                    let compressed = self.flags.has(Flags::DEFLATE)
                        || c.anomalies.contains(Anomaly::CompressedContextUnknown);
                    stats.largest_message = (!compressed).then_some(c.largest_message);
                }
            }
            stats
        };
        let client = side(Side::Client);
        let server = side(Side::Server);
        (client, server, anomalies, marks, exact)
    }
}

/// Bytes of kept header fields (both heads, packed) that a session holds without charge:
/// a browser's handshake packs to about 100; long heads (up to 32 fields of 256 bytes
/// each) count against the memory budget.
const HEADERS_UNCHARGED: usize = 1024;

impl WsSession {
    /// Bytes of the kept header fields, when more than [`HEADERS_UNCHARGED`].
    #[inline]
    fn headers_charge(&self) -> usize {
        let n = self.texts.headers_len();
        if n > HEADERS_UNCHARGED {
            n
        } else {
            0
        }
    }
}

impl MemoryCharge for WsSession {
    #[inline]
    fn memory_charge(&self) -> usize {
        self.response_head_bytes() + self.consumers.memory_charge() + self.headers_charge()
    }

    /// A response head being gathered is read as cut off; the payload consumer gives up
    /// its inflater windows (later compressed messages' sizes become lower bounds); long
    /// kept header fields are dropped (the record's `handshake_headers` are then empty).
    fn release_memory(&mut self, ctx: &SegmentCtx<'_>) {
        if self.response_head_bytes() > 0 {
            self.response_cut_off(ctx.at);
        }
        if self.headers_charge() > 0 {
            self.texts = self
                .texts
                .with(&[(REQUEST_HEADERS, ""), (RESPONSE_HEADERS, "")]);
        }
        self.consumers.release_memory(ctx.at);
    }
}
