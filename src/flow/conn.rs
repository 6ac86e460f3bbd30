//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::reassembly::{Carried, HalfStream};
use super::tls::{deliver, TlsCtx, TlsLayer};
use super::SegmentCtx;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{
    Anomalies, Anomaly, AnomalyMarks, At, HandshakeHeaders, SessionRecord, TcpDir, TcpEnds, TlsInfo,
};
use crate::verdict::verdict;
use crate::ws::session::Lent;
use crate::ws::timeline::Kind;

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

/// Index of a direction: 0 for packets from `key.lo`, 1 from `key.hi`.
fn dir(from_lo: bool) -> usize {
    if from_lo {
        0
    } else {
        1
    }
}

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
    /// Wireshark's base sequence number per direction (decides port reuse).
    base_seq: [Option<u32>; 2],
    /// The first FIN and the first RST of each direction.
    fin: [Option<At>; 2],
    rst: [Option<At>; 2],
    pub app: App,
    /// A segment was analyzed (false while `--filter` selected none of its packets).
    pub analyzed: bool,
    /// A SYN was captured: the connection's first bytes are its application's first.
    syn_seen: bool,
    /// The TLS layer between reassembly and `app`, when the connection starts with a
    /// ClientHello (`tls.rs`).
    pub tls: Option<Box<TlsLayer>>,
    /// The last segment of each direction, and of either, that carried payload (packet 0:
    /// none yet; plain values, so that keeping them costs no branch per segment).
    last_payload: [At; 2],
    last_payload_any: At,
    /// The first Close frame, FIN or RST has been seen; the last payload before it.
    ended: bool,
    payload_before_end: At,
    /// Where the TCP-level anomalies were first seen (gap, reassembly limit, out of
    /// window), and the sum of their counters when last looked at.
    tcp_firsts: [Option<u64>; 3],
    tcp_events: u32,
    /// Packets whose payload the snapshot length cut, and the first of them.
    cut_packets: u64,
    first_cut: Option<u64>,
    /// The last retransmitted segment of each direction (packet 0: none).
    last_retransmission: [At; 2],
    /// What the connection lends to its session's calls (the timeline, the Close flag).
    pub lent: Lent,
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
            base_seq: [None; 2],
            fin: [None; 2],
            rst: [None; 2],
            app: App::Unknown,
            analyzed: false,
            syn_seen: false,
            tls: None,
            last_payload: [At::default(); 2],
            last_payload_any: At::default(),
            ended: false,
            payload_before_end: At::default(),
            tcp_firsts: [None; 3],
            tcp_events: 0,
            cut_packets: 0,
            first_cut: None,
            last_retransmission: [At::default(); 2],
            lent: Lent::default(),
        }
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
            for (first, count) in self.tcp_firsts.iter_mut().zip(n) {
                if count > 0 && first.is_none() {
                    *first = Some(packet);
                }
            }
        }
    }

    /// A SYN that starts a new connection on this 4-tuple, as Wireshark decides it: a SYN
    /// without ACK whose sequence number differs from the base of its direction.
    pub fn is_reuse(&self, seg: &TcpSegment) -> bool {
        seg.flags & (SYN | ACK) == SYN
            && self.base_seq[dir(seg.from_lo)].is_some_and(|b| b != seg.seq)
    }

    /// FIN both ways, or RST.
    pub fn is_closed(&self) -> bool {
        self.rst.iter().any(Option::is_some) || self.fin.iter().all(Option::is_some)
    }

    /// Could this connection still turn out to be (or is it) a WebSocket session, or give a
    /// row of its own (TLS that could not be decrypted)?
    #[inline]
    pub fn may_be_session(&self) -> bool {
        match &self.tls {
            None => self.app.may_be_session(),
            Some(t) => t.may_be_session(),
        }
    }

    pub fn is_session(&self) -> bool {
        self.app.is_session()
    }

    /// One segment of this connection, in capture order: `payload` is what the capture
    /// holds of it, `ctx` its packet and the limits.
    pub fn segment(&mut self, seg: &TcpSegment, payload: &[u8], ctx: &SegmentCtx<'_>) {
        let d = dir(seg.from_lo);
        let at = ctx.at;
        self.lifecycle(seg, d, at);
        self.analyzed = true;
        if seg.flags & SYN != 0 {
            self.syn_seen = true;
        }
        if !self.may_be_session() {
            if seg.flags & FIN != 0 && self.fin[d].is_none() {
                self.fin[d] = Some(at);
            }
            return;
        }
        let Conn {
            half,
            app,
            syn_seen,
            tls,
            lent,
            ..
        } = self;
        let started = *syn_seen;
        let limits = &ctx.limits.reassembly;
        if seg.flags & SYN != 0 {
            if let Some(t) = &mut lent.timeline {
                t.tcp(Kind::Syn, d == 0, at);
            }
        }
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
        if seg.payload_missing > 0 && seg.flags & RST == 0 {
            self.cut_packets += 1;
            self.first_cut.get_or_insert(at.packet);
        }
        self.note_tcp_anomalies(at.packet);
        if !self.may_be_session() {
            for h in &mut self.half {
                h.discard_held();
            }
            // Not a session: nobody will read its timeline.
            self.lent.timeline = None;
        }
        if seg.flags & FIN != 0 && self.fin[d].is_none() {
            self.fin[d] = Some(at);
        }
        // FIN, RST, a retransmission or the session's first Close frame: the rare path.
        let ends = seg.flags & (FIN | RST) != 0 || (self.lent.close_seen && !self.ended);
        if ends || carried == Carried::Retransmitted {
            self.rare(seg.flags, d, at, carried);
        }
        if carried != Carried::Nothing {
            self.last_payload[d] = at;
            self.last_payload_any = at;
        }
        if seg.flags & (FIN | RST) != 0 {
            // A closed connection lingers for late segments before it is retired: free
            // what only more bytes of an ended direction would need.
            for (i, h) in self.half.iter().enumerate() {
                if h.finished() || self.rst.iter().any(Option::is_some) {
                    self.app.direction_ended(i == 0);
                }
            }
        }
    }

    /// What a segment with FIN or RST, a retransmitted one, or the one that brought the
    /// first Close frame adds: the timeline's TCP events, the session's end (the last payload
    /// before it is the one before this packet).
    #[cold]
    #[inline(never)]
    fn rare(&mut self, flags: u8, d: usize, at: At, carried: Carried) {
        if let Some(t) = &mut self.lent.timeline {
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
            self.last_retransmission[d] = at;
        }
        if !self.ended && (flags & (FIN | RST) != 0 || self.lent.close_seen) {
            self.ended = true;
            self.payload_before_end = self.last_payload_any;
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
        if seg.flags & FIN != 0 && self.fin[d].is_none() {
            self.fin[d] = Some(at);
        }
    }

    /// What every packet of the connection tells (the FIN is noted after the payload).
    #[inline(always)]
    fn lifecycle(&mut self, seg: &TcpSegment, d: usize, at: At) {
        self.packets += 1;
        self.last_ts = self.last_ts.max(at.ts_ns);
        self.last = at;
        if self.base_seq[d].is_none() {
            self.base_seq[d] = Some(if seg.flags & SYN != 0 {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            });
        }
        if seg.flags & RST != 0 && self.rst[d].is_none() {
            self.rst[d] = Some(at);
        }
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self, limits: &super::ConnLimits, tls_ctx: &TlsCtx) {
        let ctx = SegmentCtx {
            at: self.last,
            limits,
            tls: tls_ctx,
        };
        let Conn {
            half,
            app,
            syn_seen,
            tls,
            lent,
            ..
        } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| deliver(tls, app, d == 0, ev, *syn_seen, &ctx, lent));
        }
        self.note_tcp_anomalies(self.last.packet);
    }

    /// What TCP says of this connection, the same for every session of it: its anomalies
    /// with where they were first seen, and whether its counts are exact.
    fn tcp_anomalies(&self, evicted: bool) -> (Anomalies, AnomalyMarks, bool) {
        let mut anomalies = Anomalies::default();
        let mut marks = AnomalyMarks::default();
        let mut exact = true;
        let last = self.last.packet;
        let [gaps, overflows, out_of_window] = self.tcp_counters();
        let counted = [
            (Anomaly::Gap, gaps, self.tcp_firsts[0]),
            (Anomaly::ReassemblyLimit, overflows, self.tcp_firsts[1]),
            (Anomaly::OutOfWindow, out_of_window, self.tcp_firsts[2]),
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
                self.first_cut.unwrap_or(last),
                self.cut_packets.max(1),
            );
        }
        if evicted {
            anomalies.insert(Anomaly::Evicted);
            marks.add(Anomaly::Evicted, last, 1);
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
            last_retransmission: some_at(self.last_retransmission[d]),
            unacked_bytes: h.unacked_bytes(),
            last_payload: some_at(self.last_payload[d]),
        }
    }

    /// The last packet with payload before the session's end (before the capture's end
    /// when it never ended).
    fn last_payload_before_end(&self) -> Option<At> {
        some_at(if self.ended {
            self.payload_before_end
        } else {
            self.last_payload_any
        })
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
        limits: &super::ConnLimits,
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
            client_fin: self.fin[c],
            server_fin: self.fin[sv],
            client_rst: self.rst[c],
            server_rst: self.rst[sv],
        };
        let n = sessions.len();
        // The timeline goes with the last session (the one its frames belong to).
        let mut timeline = self.lent.timeline.take().map(|t| t.finish());
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
            let resp = s.response.unwrap_or_default();
            out.push(SessionRecord {
                first_packet: self.first_packet,
                tcp_stream: self.tcp_stream,
                client,
                server,
                start_ns: self.first_ts,
                end_ns: self.last_ts,
                packets: self.packets,
                upgrade,
                host: s.request.host,
                path: s.request.path,
                origin: s.request.origin,
                user_agent: s.request.user_agent,
                subprotocol: resp.protocol,
                extensions: resp.extensions,
                client_side,
                server_side,
                tcp,
                exact: exact && tcp_exact,
                anomalies,
                requests_before_upgrade: s.requests_before_upgrade,
                peer: s.peer,
                peer_session: None,
                closed_by: None,
                file: None,
                tls: None,
                anomaly_marks: marks,
                last_payload_before_end,
                timeline: if i + 1 == n { timeline.take() } else { None },
                handshake_headers: HandshakeHeaders {
                    request: s.request.headers,
                    response: resp.headers,
                },
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
            client_fin: self.fin[c],
            server_fin: self.fin[sv],
            client_rst: self.rst[c],
            server_rst: self.rst[sv],
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
            timeline: self.lent.timeline.take().map(|t| t.finish()),
            verdict,
        }
    }
}
