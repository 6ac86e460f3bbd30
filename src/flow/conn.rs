//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::memory::MemoryCharge;
use super::reassembly::{Carried, Event, HalfStream};
use super::tls::{deliver, TlsCtx, TlsLayer};
use super::{ConnLimits, SegmentCtx};
use crate::bits::Bits;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{
    Anomalies, Anomaly, AnomalyMarks, At, HandshakeHeaders, SessionRecord, TcpDir, TcpEnds, TlsInfo,
};
use crate::verdict::verdict;
use crate::ws::session::Lent;
use crate::ws::timeline::{Kind, Timeline};

/// A moment kept as a plain value (packet 0: none) as an option.
fn some_at(at: At) -> Option<At> {
    (at.packet != 0).then_some(at)
}

/// Hands one segment to reassembly (its direction's bytes, and what its ACK says of the
/// other's); in-order events of direction `d` go to `sink(d, event)`. Returns what the
/// segment carried.
#[inline(always)]
fn reassemble(
    half: &mut [HalfStream; 2],
    seg: &TcpSegment,
    payload: &[u8],
    limits: &super::reassembly::ReassemblyLimits,
    sink: &mut impl FnMut(usize, super::reassembly::Event<'_>),
) -> Carried {
    let d = dir(seg.from_lo);
    if seg.flags & SYN != 0 {
        half[d].syn(seg.seq);
    }
    if seg.flags & ACK != 0 {
        let o = 1 - d;
        half[o].acked(seg.ack, limits, &mut |ev| sink(o, ev));
    }
    let carries = !payload.is_empty() || seg.payload_missing > 0;
    if seg.flags & (RST | FIN) == 0 && !carries {
        // A bare ACK (half the packets of a chat capture): no delivery to try.
        half[d].bare(seg.seq, limits);
    } else if seg.flags & RST == 0 {
        let fin = seg.flags & FIN != 0;
        let missing = seg.payload_missing;
        return half[d].segment(seg.seq, payload, missing, fin, limits, &mut |ev| {
            sink(d, ev)
        });
    }
    Carried::Nothing
}

/// Whether a FIN or RST slot holds a packet (packets are numbered from 1).
fn seen(at: &At) -> bool {
    at.packet != 0
}

/// The first FIN and the first RST of each direction, allocated at the first of them
/// (most of an open connection's life has none; packet 0 in a slot: none yet).
#[derive(Clone, Debug, Default)]
struct Ends(Option<Box<EndPackets>>);

#[derive(Clone, Copy, Debug, Default)]
struct EndPackets {
    fin: [At; 2],
    rst: [At; 2],
}

impl Ends {
    #[inline]
    fn get(&self) -> EndPackets {
        self.0.as_deref().copied().unwrap_or_default()
    }

    fn fin(&self, d: usize) -> At {
        self.get().fin[d]
    }

    fn rst(&self, d: usize) -> At {
        self.get().rst[d]
    }

    /// Notes the FIN (`rst` false) or RST of direction `d` at `at`, if it is the first.
    fn note(&mut self, rst: bool, d: usize, at: At) {
        let e = self.0.get_or_insert_with(Box::default);
        let slot = if rst { &mut e.rst[d] } else { &mut e.fin[d] };
        if !seen(slot) {
            *slot = at;
        }
    }
}

/// Index of a direction: 0 for packets from `key.lo`, 1 from `key.hi`.
fn dir(from_lo: bool) -> usize {
    if from_lo {
        0
    } else {
        1
    }
}

/// Where reassembly's events go.
type EventSink<'a> = &'a mut dyn FnMut(Event<'_>);

#[derive(Debug)]
pub struct Conn {
    pub key: FlowKey,
    pub first_packet: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// The connection's latest packet (where events delivered at the end are noticed).
    last: At,
    pub packets: u64,
    /// Wireshark's `tcp.stream`, assigned at the end of the batch that opened it.
    pub tcp_stream: u64,
    half: [HalfStream; 2],
    /// Wireshark's base sequence number per direction (decides port reuse; known when
    /// [`Flags::BASE_KNOWN`] says so).
    base_seq: [u32; 2],
    /// The first FIN and the first RST of each direction.
    ends: Ends,
    pub app: App,
    /// The connection's yes/no facts, a bit each.
    flags: Bits,
    /// The TLS layer between reassembly and `app`, when the connection starts with a
    /// ClientHello (`tls.rs`).
    pub tls: Option<Box<TlsLayer>>,
    /// What the application layer (and TLS) held after its last event (kept here so that
    /// a segment that reaches no event costs nothing to account).
    app_charge: u32,
    /// The charge the shard counts for this connection (see `flow::memory`).
    pub charged: u32,
    /// The last segment of each direction that carried payload (packet 0: none yet; plain
    /// values, so that keeping them costs no branch per segment). The later of the two is
    /// the last of either.
    last_payload: [At; 2],
    /// The sum of the TCP-level anomaly counters when last looked at.
    tcp_events: u32,
    /// What only some connections need: where TCP-level anomalies were first seen, cut
    /// packets, retransmissions, the end (allocated at the first of them).
    facts: Option<Box<RareFacts>>,
    /// The connection's timeline (kept only for `frames` and the HTML page), lent to its
    /// session's calls with the first-Close flag ([`Lent`]).
    pub timeline: Option<Box<Timeline>>,
}

/// The bits of a connection's yes/no facts (`Bits`: nine `bool`s took nine bytes and,
/// beside the lent timeline, eight more of padding).
struct Flags;

impl Flags {
    /// Whether each direction's `base_seq` is known.
    const BASE_KNOWN: [u16; 2] = [1, 1 << 1];
    /// A segment was analyzed (not while `--filter` selected none of its packets).
    const ANALYZED: u16 = 1 << 2;
    /// A SYN was captured: the connection's first bytes are its application's first.
    const SYN_SEEN: u16 = 1 << 3;
    /// Given up on: no handshake within the recognition window. Not followed further.
    const GAVE_UP: u16 = 1 << 4;
    /// Payload arrived after it was given up on (not analyzed; counted).
    const IGNORED_PAYLOAD: u16 = 1 << 5;
    /// The memory budget made it give up buffers (anomaly `memory_budget`).
    const OVER_BUDGET: u16 = 1 << 6;
    /// The first Close frame, FIN or RST has been seen (the last payload before it is in
    /// `facts`).
    const ENDED: u16 = 1 << 7;
    /// The session's first Close frame was seen (set from what the session's calls were
    /// lent).
    const CLOSE_SEEN: u16 = 1 << 8;
}

/// The facts of the record that most of an open connection's life has none of.
#[derive(Clone, Debug, Default)]
struct RareFacts {
    /// Where the TCP-level anomalies were first seen (gap, reassembly limit, out of
    /// window).
    tcp_firsts: [Option<u64>; 3],
    /// Packets whose payload the snapshot length cut, and the first of them.
    cut_packets: u64,
    first_cut: Option<u64>,
    /// The last retransmitted segment of each direction (packet 0: none).
    last_retransmission: [At; 2],
    /// The last payload before the session's end (first Close frame, FIN or RST).
    payload_before_end: At,
    /// The packet where the memory budget first made it give up buffers (0: never).
    budget_packet: u64,
}

/// What a connection that carried no payload knows, to become a full [`Conn`].
#[derive(Clone, Copy, Debug)]
pub struct Embryonic {
    pub first: At,
    pub last_ts: i64,
    pub packets: u64,
    pub tcp_stream: u64,
    pub base_seq: [Option<u32>; 2],
    /// Whether each direction's stream start is known: it is then `base_seq + 1`.
    pub stream_started: [bool; 2],
    /// Whether that start came from a segment without SYN (`HalfStream`'s tentative base).
    pub tentative: [bool; 2],
    pub rst: [Option<At>; 2],
    /// The latest acknowledgment number the peer sent for each direction.
    pub peer_ack: [Option<u32>; 2],
    /// An RST was analyzed: the session (if any) ended there.
    pub ended: bool,
    pub analyzed: bool,
    pub syn_seen: bool,
    pub gave_up: bool,
}

impl Conn {
    pub fn new(key: FlowKey, at: At) -> Self {
        Conn {
            key,
            first_packet: at.packet,
            first_ts: at.ts_ns,
            last_ts: at.ts_ns,
            last: at,
            packets: 0,
            tcp_stream: u64::MAX,
            half: Default::default(),
            base_seq: [0; 2],
            ends: Ends::default(),
            app: App::Unknown,
            flags: Bits::default(),
            tls: None,
            app_charge: 0,
            charged: 0,
            last_payload: [At::default(); 2],
            tcp_events: 0,
            facts: None,
            timeline: None,
        }
    }

    /// The full state of a connection that carried no payload so far (`embryo.rs`),
    /// exactly as if it had been a `Conn` from its first packet.
    pub fn from_embryonic(key: FlowKey, e: Embryonic) -> Self {
        let half = |d: usize| {
            HalfStream::starting_at(
                e.stream_started[d].then(|| e.base_seq[d].unwrap_or(0).wrapping_add(1)),
                e.tentative[d],
                e.peer_ack[d],
            )
        };
        Conn {
            first_ts: e.first.ts_ns,
            last_ts: e.last_ts,
            packets: e.packets,
            tcp_stream: e.tcp_stream,
            half: [half(0), half(1)],
            base_seq: e.base_seq.map(|b| b.unwrap_or(0)),
            ends: Ends(e.rst.iter().any(Option::is_some).then(|| {
                Box::new(EndPackets {
                    rst: e.rst.map(Option::unwrap_or_default),
                    ..EndPackets::default()
                })
            })),
            flags: Bits::of(&[
                (Flags::BASE_KNOWN[0], e.base_seq[0].is_some()),
                (Flags::BASE_KNOWN[1], e.base_seq[1].is_some()),
                (Flags::ANALYZED, e.analyzed),
                (Flags::SYN_SEEN, e.syn_seen),
                (Flags::GAVE_UP, e.gave_up),
                (Flags::ENDED, e.ended),
            ]),
            ..Conn::new(key, e.first)
        }
    }

    /// A segment was analyzed (false while `--filter` selected none of its packets).
    pub fn analyzed(&self) -> bool {
        self.flags.has(Flags::ANALYZED)
    }

    /// Payload arrived after it was given up on (not analyzed; counted).
    pub fn ignored_payload(&self) -> bool {
        self.flags.has(Flags::IGNORED_PAYLOAD)
    }

    /// The memory budget made it give up buffers (anomaly `memory_budget`).
    pub fn over_budget(&self) -> bool {
        self.flags.has(Flags::OVER_BUDGET)
    }

    /// The counters behind the TCP-level anomalies, summed over both directions:
    /// gaps, out-of-order overflows, out-of-window segments.
    fn tcp_counters(&self) -> [u64; 3] {
        let mut n = [0u64; 3];
        for h in &self.half {
            let k = &h.counters;
            n[0] += k.gaps as u64;
            n[1] += k.ooo_overflows as u64;
            n[2] += k.out_of_window as u64;
        }
        n
    }

    /// Notes the packet where a TCP-level anomaly first showed, if one just did.
    #[inline]
    fn note_tcp_anomalies(&mut self, packet: u64) {
        let sum = self.half[0].counters.anomalies + self.half[1].counters.anomalies;
        if sum != self.tcp_events {
            self.tcp_events = sum;
            let n = self.tcp_counters();
            let f = self.facts.get_or_insert_with(Box::default);
            for (first, count) in f.tcp_firsts.iter_mut().zip(n) {
                if count > 0 && first.is_none() {
                    *first = Some(packet);
                }
            }
        }
    }

    /// A SYN that starts a new connection on this 4-tuple, as Wireshark decides it: a SYN
    /// without ACK whose sequence number differs from the base of its direction.
    pub fn is_reuse(&self, seg: &TcpSegment) -> bool {
        seg.flags & (SYN | ACK) == SYN && {
            let d = dir(seg.from_lo);
            self.flags.has(Flags::BASE_KNOWN[d]) && self.base_seq[d] != seg.seq
        }
    }

    /// FIN both ways, or RST.
    pub fn is_closed(&self) -> bool {
        self.ends
            .0
            .as_ref()
            .is_some_and(|e| e.rst.iter().any(seen) || e.fin.iter().all(seen))
    }

    /// Could this connection still turn out to be (or is it) a WebSocket session, or give a
    /// row of its own (TLS that could not be decrypted)?
    #[inline]
    pub fn may_be_session(&self) -> bool {
        !self.flags.has(Flags::GAVE_UP)
            && match &self.tls {
                None => self.app.may_be_session(),
                Some(t) => t.may_be_session(),
            }
    }

    /// Not yet known to be a session (or to give a row) or not, and not given up on: no
    /// payload, an HTTP connection without an Upgrade so far, a connection being probed
    /// for mid-stream framing without a chain of frames, a TLS handshake (see
    /// [`App::undecided`]).
    pub fn undecided(&self) -> bool {
        !self.flags.has(Flags::GAVE_UP)
            && match &self.tls {
                None => self.app.undecided(),
                Some(t) => t.undecided(&self.app),
            }
    }

    /// No handshake within the recognition window: not a session. What it holds is
    /// dropped and its later payload is not followed (counted if there is any).
    pub fn give_up_recognition(&mut self) {
        self.flags.set(Flags::GAVE_UP);
        if !matches!(self.app, App::Unknown) || self.tls.is_some() {
            self.flags.set(Flags::IGNORED_PAYLOAD);
        }
        if !matches!(self.app, App::Unknown) {
            self.app = App::Other;
        }
        if let Some(t) = &mut self.tls {
            // Its own row is given up too (not a session, and nothing to hold the report
            // back for); its facts still count in the TLS statistics.
            t.give_up();
        }
        for h in &mut self.half {
            h.discard_held();
        }
        self.app_charge = self.layers_charge();
    }

    /// What the application layer, the TLS layer and the timeline hold now.
    #[inline]
    fn layers_charge(&self) -> u32 {
        let tls = self.tls.as_ref().map_or(0, |t| t.held_bytes());
        let timeline = self.timeline.as_ref().map_or(0, |t| t.held_bytes());
        u32::try_from(self.app.memory_charge() + tls + timeline).unwrap_or(u32::MAX)
    }

    /// What this connection's buffers hold now (held segments, and the application and
    /// TLS layers' charge after their last event).
    #[inline]
    pub fn memory_charge(&self) -> u32 {
        let n = self.half[0].memory_charge() + self.half[1].memory_charge();
        u32::try_from(n)
            .unwrap_or(u32::MAX)
            .saturating_add(self.app_charge)
    }

    /// Frees buffers that hold nothing now (spare capacity, scratch space): nothing is
    /// lost. Returns the bytes released.
    pub fn trim_memory(&mut self) -> usize {
        let before = self.memory_charge();
        if let Some(t) = &mut self.tls {
            t.trim_memory();
        }
        if let Some(t) = &mut self.timeline {
            // `frames`: the events go to the spill file early, nothing is lost.
            t.trim_memory();
        }
        self.app_charge = self.layers_charge();
        before.saturating_sub(self.memory_charge()) as usize
    }

    /// The memory budget is spent: holes before held data become gaps and the held bytes
    /// are delivered, heads being gathered are read as cut off, the TLS layer lets go of
    /// partial records, the application layer's consumers give up theirs. Returns the
    /// bytes released.
    pub fn release_memory(&mut self, limits: &ConnLimits, tls_ctx: &TlsCtx) -> usize {
        let before = self.memory_charge();
        let ctx = SegmentCtx {
            at: self.last,
            limits,
            tls: tls_ctx,
        };
        self.deliver_held(&ctx, |h, mut sink| {
            h.release_held(&mut sink);
        });
        if let Some(t) = &mut self.tls {
            t.release_memory(&self.app, &ctx);
        }
        self.app.release_memory(&ctx);
        if let Some(t) = &mut self.timeline {
            // A ring of last frames (`--tail`, the HTML drill-down) forgets its oldest.
            t.release_memory();
        }
        if !self.may_be_session() {
            for h in &mut self.half {
                h.discard_held();
            }
        }
        self.app_charge = self.layers_charge();
        if !self.over_budget() {
            self.flags.set(Flags::OVER_BUDGET);
            self.facts.get_or_insert_with(Box::default).budget_packet = self.last.packet;
        }
        before.saturating_sub(self.memory_charge()) as usize
    }

    pub fn is_session(&self) -> bool {
        self.app.is_session()
    }

    /// One segment of this connection, in capture order: `payload` is what the capture
    /// holds of it, `ctx` its packet and the limits. Returns whether what its buffers hold
    /// may have changed ([`memory_charge`](Self::memory_charge)).
    #[inline]
    pub fn segment(&mut self, seg: &TcpSegment, payload: &[u8], ctx: &SegmentCtx<'_>) -> bool {
        let mut charge_moved = false;
        let d = dir(seg.from_lo);
        let at = ctx.at;
        self.lifecycle(seg, d, at);
        self.flags.set(Flags::ANALYZED);
        if seg.flags & SYN != 0 {
            self.flags.set(Flags::SYN_SEEN);
        }
        if self.flags.has(Flags::GAVE_UP)
            && (!payload.is_empty() || seg.payload_missing > 0)
            && matches!(self.app, App::Unknown)
        {
            self.app = App::Other;
            self.flags.set(Flags::IGNORED_PAYLOAD);
        }
        if !self.may_be_session() {
            if seg.flags & FIN != 0 {
                self.ends.note(false, d, at);
            }
            return charge_moved;
        }
        // Every event delivered moves a direction's position: that is how the
        // application layer's charge is known to be worth a look (the closures stay as
        // small as they were, for the inliner).
        let before = self.half[0].position() + self.half[1].position();
        let held = self.half[d].memory_charge();
        let started = self.flags.has(Flags::SYN_SEEN);
        let limits = &ctx.limits.reassembly;
        if seg.flags & SYN != 0 {
            if let Some(t) = &mut self.timeline {
                t.tcp(Kind::Syn, d == 0, at);
            }
        }
        let Conn {
            half,
            app,
            tls,
            timeline,
            flags,
            ..
        } = self;
        let lent = &mut Lent::new(timeline.take());
        let carried = if tls.is_none() && !matches!(app, App::Unknown) {
            // Plaintext, application known (the hot path): straight to the app.
            reassemble(half, seg, payload, limits, &mut |d, ev| {
                app.on_event(d == 0, ev, started, ctx, lent)
            })
        } else {
            // The first bytes (is it TLS?) or TLS.
            reassemble(half, seg, payload, limits, &mut |d, ev| {
                deliver(tls, app, d == 0, ev, started, ctx, lent)
            })
        };
        if matches!(app, App::Probe(_)) && tls.is_none() && half[d].finished() {
            app.direction_finished(d == 0, ctx, lent);
        }
        *timeline = lent.timeline.take();
        if lent.close_seen {
            flags.set(Flags::CLOSE_SEEN);
        }
        if seg.payload_missing > 0 && seg.flags & RST == 0 {
            let f = self.facts.get_or_insert_with(Box::default);
            f.cut_packets += 1;
            f.first_cut.get_or_insert(at.packet);
        }
        self.note_tcp_anomalies(at.packet);
        charge_moved = self.half[d].memory_charge() != held;
        if self.half[0].position() + self.half[1].position() != before {
            charge_moved = true;
            self.app_charge = self.layers_charge();
            // A probe for mid-stream framing has a window of its own (the same bytes per
            // direction, from where each direction's chain may start): it decides, and is
            // not given up on, by bytes.
            if self.undecided()
                && !matches!(self.app, App::Probe(_))
                && self
                    .half
                    .iter()
                    .any(|h| h.position() > ctx.limits.recognise_bytes)
            {
                self.give_up_recognition();
            }
        }
        if !self.may_be_session() {
            for h in &mut self.half {
                h.discard_held();
            }
            // Not a session: nobody will read its timeline.
            self.timeline = None;
            self.app_charge = self.layers_charge();
            charge_moved = true;
        }
        if seg.flags & FIN != 0 {
            self.ends.note(false, d, at);
        }
        // FIN, RST, a retransmission or the session's first Close frame: the rare path.
        let ends = seg.flags & (FIN | RST) != 0
            || (self.flags.has(Flags::CLOSE_SEEN) && !self.flags.has(Flags::ENDED));
        if ends || carried == Carried::Retransmitted {
            self.rare(seg.flags, d, at, carried);
        }
        if carried != Carried::Nothing {
            self.last_payload[d] = at;
        }
        if seg.flags & (FIN | RST) != 0 {
            // A closed connection lingers for late segments before it is retired: free
            // what only more bytes of an ended direction would need.
            for (i, h) in self.half.iter().enumerate() {
                if h.finished() || self.ends.get().rst.iter().any(seen) {
                    self.app.direction_ended(i == 0);
                }
            }
            self.app_charge = self.layers_charge();
            charge_moved = true;
        }
        charge_moved
    }

    /// What a segment with FIN or RST, a retransmitted one, or the one that brought the
    /// first Close frame adds: the timeline's TCP events, the session's end (the last payload
    /// before it is the one before this packet).
    #[cold]
    #[inline(never)]
    fn rare(&mut self, flags: u8, d: usize, at: At, carried: Carried) {
        if let Some(t) = &mut self.timeline {
            if carried == Carried::Retransmitted {
                t.tcp(Kind::Retransmission, d == 0, at);
            }
            if flags & FIN != 0 {
                t.tcp(Kind::Fin, d == 0, at);
            }
            if flags & RST != 0 {
                t.tcp(Kind::Rst, d == 0, at);
            }
        }
        if carried == Carried::Retransmitted {
            self.facts
                .get_or_insert_with(Box::default)
                .last_retransmission[d] = at;
        }
        if !self.flags.has(Flags::ENDED)
            && (flags & (FIN | RST) != 0 || self.flags.has(Flags::CLOSE_SEEN))
        {
            self.flags.set(Flags::ENDED);
            let last = self.last_payload_any();
            if last.packet != 0 {
                self.facts
                    .get_or_insert_with(Box::default)
                    .payload_before_end = last;
            }
            if let App::WebSocket { session, .. } = &mut self.app {
                session.consumers.facts.ended();
            }
        }
    }

    /// A segment that `--filter` did not select: it counts for the connection's identity and
    /// TCP lifecycle (packets, times, base sequence numbers, FIN, RST), not its payload.
    pub fn shadow(&mut self, seg: &TcpSegment, at: At) {
        let d = dir(seg.from_lo);
        self.lifecycle(seg, d, at);
        if seg.flags & FIN != 0 {
            self.ends.note(false, d, at);
        }
    }

    /// What every packet of the connection tells (the FIN is noted after the payload).
    #[inline(always)]
    fn lifecycle(&mut self, seg: &TcpSegment, d: usize, at: At) {
        self.packets += 1;
        self.last_ts = self.last_ts.max(at.ts_ns);
        self.last = at;
        if !self.flags.has(Flags::BASE_KNOWN[d]) {
            self.flags.set(Flags::BASE_KNOWN[d]);
            self.base_seq[d] = if seg.flags & SYN != 0 {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            };
        }
        if seg.flags & RST != 0 {
            self.ends.note(true, d, at);
        }
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self, limits: &ConnLimits, tls_ctx: &TlsCtx) {
        let ctx = SegmentCtx {
            at: self.last,
            limits,
            tls: tls_ctx,
        };
        self.deliver_held(&ctx, |h, mut sink| h.flush(&mut sink));
        self.note_tcp_anomalies(self.last.packet);
    }

    /// Hands the application what each direction lets go of (`take`: held segments, holes
    /// as gaps), as though it came with the connection's latest packet.
    fn deliver_held(&mut self, ctx: &SegmentCtx<'_>, take: fn(&mut HalfStream, EventSink<'_>)) {
        let started = self.flags.has(Flags::SYN_SEEN);
        let Conn {
            half,
            app,
            tls,
            timeline,
            flags,
            ..
        } = self;
        let lent = &mut Lent::new(timeline.take());
        for (d, h) in half.iter_mut().enumerate() {
            take(h, &mut |ev| {
                deliver(tls, app, d == 0, ev, started, ctx, lent)
            });
        }
        for (d, h) in half.iter().enumerate() {
            if matches!(app, App::Probe(_)) && tls.is_none() && h.finished() {
                app.direction_finished(d == 0, ctx, lent);
            }
        }
        *timeline = lent.timeline.take();
        if lent.close_seen {
            flags.set(Flags::CLOSE_SEEN);
        }
    }

    /// What TCP says of this connection, the same for every session of it: its anomalies
    /// with where they were first seen, and whether its counts are exact.
    fn tcp_anomalies(&self, evicted: bool) -> (Anomalies, AnomalyMarks, bool) {
        let mut anomalies = Anomalies::default();
        let mut marks = AnomalyMarks::default();
        let mut exact = true;
        let last = self.last.packet;
        let [gaps, overflows, out_of_window] = self.tcp_counters();
        let f = self.facts.as_deref().cloned().unwrap_or_default();
        let counted = [
            (Anomaly::Gap, gaps, f.tcp_firsts[0]),
            (Anomaly::ReassemblyLimit, overflows, f.tcp_firsts[1]),
            (Anomaly::OutOfWindow, out_of_window, f.tcp_firsts[2]),
        ];
        for (a, count, first) in counted {
            if count > 0 {
                anomalies.insert(a);
                marks.add(a, first.unwrap_or(last), count);
            }
        }
        if out_of_window > 0 {
            exact = false;
        }
        if self.half.iter().any(|h| h.counters.cut_bytes > 0) {
            anomalies.insert(Anomaly::CutOffPacket);
            marks.add(
                Anomaly::CutOffPacket,
                f.first_cut.unwrap_or(last),
                f.cut_packets.max(1),
            );
        }
        if evicted {
            anomalies.insert(Anomaly::Evicted);
            marks.add(Anomaly::Evicted, last, 1);
            exact = false;
        }
        if self.over_budget() {
            anomalies.insert(Anomaly::MemoryBudget);
            let at = if f.budget_packet != 0 {
                f.budget_packet
            } else {
                last
            };
            marks.add(Anomaly::MemoryBudget, at, 1);
            exact = false;
        }
        (anomalies, marks, exact)
    }

    /// The TCP facts of direction `d` (0: from `key.lo`).
    fn tcp_dir(&self, d: usize) -> TcpDir {
        let h = &self.half[d];
        let k = &h.counters;
        TcpDir {
            segments: k.segments,
            retransmitted: k.retransmitted,
            out_of_order: k.out_of_order,
            gaps: k.gaps as u64,
            last_retransmission: self
                .facts
                .as_ref()
                .and_then(|f| some_at(f.last_retransmission[d])),
            unacked_bytes: h.unacked_bytes(),
            last_payload: some_at(self.last_payload[d]),
        }
    }

    /// The last segment of either direction that carried payload (packets are numbered in
    /// capture order: the later direction's).
    fn last_payload_any(&self) -> At {
        let [a, b] = self.last_payload;
        if a.packet >= b.packet {
            a
        } else {
            b
        }
    }

    /// The last packet with payload before the session's end (before the capture's end
    /// when it never ended).
    fn last_payload_before_end(&self) -> Option<At> {
        some_at(if self.flags.has(Flags::ENDED) {
            self.facts
                .as_ref()
                .map_or(At::default(), |f| f.payload_before_end)
        } else {
            self.last_payload_any()
        })
    }

    #[cfg(test)]
    pub(crate) fn last_for_test(&self) -> At {
        self.last
    }

    #[cfg(test)]
    pub(crate) fn set_last_for_test(&mut self, at: At) {
        self.last = at;
    }

    /// Gaps declared in both directions, and their bytes.
    pub fn gap_counters(&self) -> (u64, u64) {
        self.half.iter().fold((0, 0), |(g, b), h| {
            (g + h.counters.gaps as u64, b + h.counters.gap_bytes)
        })
    }

    /// The session records of this connection (one per WebSocket session: usually one,
    /// several when a rejected Upgrade was followed by another, over TLS or not; or, for a
    /// TLS connection that could not be decrypted, one of its own), appended to `out`.
    /// Returns how many.
    pub fn records(
        mut self,
        evicted: bool,
        limits: &ConnLimits,
        tls_ctx: &TlsCtx,
        out: &mut Vec<SessionRecord>,
    ) -> usize {
        self.flush(limits, tls_ctx);
        let tls = self.tls.take();
        if tls.as_ref().is_some_and(|t| !t.may_be_session()) {
            return 0;
        }
        let tls_info = tls.as_ref().map(|t| (t.info(&self.app), t.anomalies()));
        let own = tls.as_ref().is_some_and(|t| t.gives_own_record(&self.app));
        let (client_is_lo, sessions) = std::mem::take(&mut self.app).into_sessions();
        if sessions.is_empty() {
            return match (tls, tls_info) {
                (Some(t), Some((info, _))) if own => {
                    out.push(self.tls_record(&t, info, evicted));
                    1
                }
                _ => 0,
            };
        }
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };
        // What TCP says, the same for every session of the connection.
        let (tcp_anomalies, tcp_marks, tcp_exact) = self.tcp_anomalies(evicted);
        let last_payload_before_end = self.last_payload_before_end();
        let tcp = TcpEnds {
            client_fin: Some(self.ends.fin(c)).filter(seen),
            server_fin: Some(self.ends.fin(sv)).filter(seen),
            client_rst: Some(self.ends.rst(c)).filter(seen),
            server_rst: Some(self.ends.rst(sv)).filter(seen),
        };
        let n = sessions.len();
        // The timeline goes with the last session (the one its frames belong to).
        let mut timeline = self.timeline.take().map(|t| t.finish());
        for (i, s) in sessions.into_iter().enumerate() {
            let s = *s;
            let (mut client_side, mut server_side, mut anomalies, mut marks, exact) = s.outcome();
            anomalies.union(tcp_anomalies);
            marks.merge(&tcp_marks);
            client_side.tcp = self.tcp_dir(c);
            server_side.tcp = self.tcp_dir(sv);
            client_side.in_progress_at_end = s.in_progress(crate::record::Side::Client);
            server_side.in_progress_at_end = s.in_progress(crate::record::Side::Server);
            let upgrade = s.upgrade();
            let verdict = verdict(&crate::record::facts(
                upgrade,
                &client_side,
                &server_side,
                tcp,
            ));
            out.push(SessionRecord {
                first_packet: self.first_packet,
                tcp_stream: self.tcp_stream,
                client,
                server,
                start_ns: self.first_ts,
                end_ns: self.last_ts,
                packets: self.packets,
                upgrade,
                host: s.host().to_string(),
                path: s.path().to_string(),
                origin: s.origin().to_string(),
                user_agent: s.user_agent().to_string(),
                subprotocol: s.subprotocol().to_string(),
                extensions: s.extensions().to_string(),
                client_side,
                server_side,
                tcp,
                exact: exact && tcp_exact,
                anomalies,
                requests_before_upgrade: s.requests_before_upgrade(),
                peer: s.peer(),
                peer_session: None,
                closed_by: None,
                file: None,
                tls: None,
                anomaly_marks: marks,
                last_payload_before_end,
                timeline: if i + 1 == n { timeline.take() } else { None },
                handshake_headers: s.handshake_headers(),
                verdict,
            });
            if let Some((info, tls_anomalies)) = &tls_info {
                let r = out.last_mut().expect("just pushed");
                r.anomalies.union(*tls_anomalies);
                r.exact &= tls_anomalies.is_empty();
                r.tls = Some(Box::new(info.clone()));
            }
        }
        n
    }

    /// The row of a TLS connection that carried no session that could be read: not
    /// decrypted (outcome `undecrypted`, WebSocket columns empty), or, for `wsclose tls`,
    /// whatever it carried.
    fn tls_record(&mut self, t: &TlsLayer, info: TlsInfo, evicted: bool) -> SessionRecord {
        let client_is_lo = t.client_is_lo();
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };
        let mut anomalies = t.anomalies();
        let (tcp_anomalies, anomaly_marks, _) = self.tcp_anomalies(evicted);
        anomalies.union(tcp_anomalies);
        let side = |d: usize| {
            let k = &self.half[d].counters;
            crate::record::SideStats {
                missing_bytes: k.gap_bytes + k.cut_bytes,
                tcp: self.tcp_dir(d),
                ..Default::default()
            }
        };
        let (client_side, server_side) = (side(c), side(sv));
        let tcp = TcpEnds {
            client_fin: Some(self.ends.fin(c)).filter(seen),
            server_fin: Some(self.ends.fin(sv)).filter(seen),
            client_rst: Some(self.ends.rst(c)).filter(seen),
            server_rst: Some(self.ends.rst(sv)).filter(seen),
        };
        // What it carried is unknown (or, for `wsclose tls`, not a WebSocket session).
        let upgrade = crate::verdict::Upgrade::Undecrypted;
        let verdict = verdict(&crate::record::facts(
            upgrade,
            &client_side,
            &server_side,
            tcp,
        ));
        SessionRecord {
            first_packet: self.first_packet,
            tcp_stream: self.tcp_stream,
            client,
            server,
            start_ns: self.first_ts,
            end_ns: self.last_ts,
            packets: self.packets,
            upgrade,
            host: String::new(),
            path: String::new(),
            origin: String::new(),
            user_agent: String::new(),
            subprotocol: String::new(),
            extensions: String::new(),
            client_side,
            server_side,
            tcp,
            exact: false,
            anomalies,
            requests_before_upgrade: 0,
            peer: None,
            peer_session: None,
            closed_by: None,
            file: None,
            tls: Some(Box::new(info)),
            anomaly_marks,
            last_payload_before_end: self.last_payload_before_end(),
            handshake_headers: HandshakeHeaders::default(),
            timeline: self.timeline.take().map(|t| t.finish()),
            verdict,
        }
    }
}
