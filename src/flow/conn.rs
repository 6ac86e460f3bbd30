//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::reassembly::{Carried, HalfStream};
use super::SegmentCtx;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{Anomaly, At, HandshakeHeaders, SessionRecord, SideStats, TcpDir, TcpEnds};
use crate::verdict::verdict;
use crate::ws::counts::SideTotals;
use crate::ws::facts::SideFacts;
use crate::ws::session::Lent;
use crate::ws::timeline::Kind;

/// A moment kept as a plain value (packet 0: none) as an option.
fn some_at(at: At) -> Option<At> {
    (at.packet != 0).then_some(at)
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
    pub app: App,
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
            last_payload: [At::default(); 2],
            last_payload_any: At::default(),
            ended: false,
            payload_before_end: At::default(),
            tcp_firsts: [None; 3],
            tcp_events: 0,
            cut_packets: 0,
            first_cut: None,
            last_retransmission: [At::default(); 2],
            app: App::Unknown,
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

    /// Could this connection still turn out to be (or is it) a WebSocket session?
    pub fn may_be_session(&self) -> bool {
        self.app.may_be_session()
    }

    pub fn is_session(&self) -> bool {
        self.app.is_session()
    }

    /// One segment of this connection, in capture order: `payload` is what the capture
    /// holds of it, `ctx` its packet and the limits.
    pub fn segment(&mut self, seg: &TcpSegment, payload: &[u8], ctx: &SegmentCtx<'_>) {
        let d = dir(seg.from_lo);
        let at = ctx.at;
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
        if !self.app.may_be_session() {
            if seg.flags & FIN != 0 && self.fin[d].is_none() {
                self.fin[d] = Some(at);
            }
            return;
        }
        let Conn {
            half, app, lent, ..
        } = self;
        let limits = &ctx.limits.reassembly;
        let mut carried = Carried::Nothing;
        if seg.flags & SYN != 0 {
            half[d].syn(seg.seq);
            if let Some(t) = &mut lent.timeline {
                t.tcp(Kind::Syn, d == 0, at);
            }
        }
        if seg.flags & ACK != 0 {
            let o = 1 - d;
            half[o].acked(seg.ack, limits, &mut |ev| {
                app.on_event(o == 0, ev, ctx, lent)
            });
        }
        let carries = !payload.is_empty() || seg.payload_missing > 0;
        if seg.flags & (RST | FIN) == 0 && !carries {
            // A bare ACK (half the packets of a chat capture): no delivery to try.
            half[d].bare(seg.seq, limits);
        } else if seg.flags & RST == 0 {
            let fin = seg.flags & FIN != 0;
            let missing = seg.payload_missing;
            carried = half[d].segment(seg.seq, payload, missing, fin, limits, &mut |ev| {
                app.on_event(d == 0, ev, ctx, lent)
            });
            if seg.payload_missing > 0 {
                self.cut_packets += 1;
                self.first_cut.get_or_insert(at.packet);
            }
        }
        self.note_tcp_anomalies(at.packet);
        if !self.app.may_be_session() {
            for h in &mut self.half {
                h.discard_held();
            }
            // Not a session: nobody will read its timeline.
            self.lent.timeline = None;
        }
        if seg.flags & (FIN | RST) != 0 || carried == Carried::Retransmitted {
            if let Some(t) = &mut self.lent.timeline {
                if carried == Carried::Retransmitted {
                    t.tcp(Kind::Retransmission, d == 0, at);
                }
                if seg.flags & FIN != 0 {
                    t.tcp(Kind::Fin, d == 0, at);
                }
                if seg.flags & RST != 0 {
                    t.tcp(Kind::Rst, d == 0, at);
                }
            }
        }
        if seg.flags & FIN != 0 && self.fin[d].is_none() {
            self.fin[d] = Some(at);
        }
        // The session's end: the last payload before it is the one before this packet.
        if !self.ended && (seg.flags & (FIN | RST) != 0 || self.lent.close_seen) {
            self.ended = true;
            self.payload_before_end = self.last_payload_any;
            if let App::WebSocket { session, .. } = &mut self.app {
                session.consumers.facts.ended();
            }
        }
        if carried != Carried::Nothing {
            self.last_payload[d] = at;
            self.last_payload_any = at;
            if carried == Carried::Retransmitted {
                self.last_retransmission[d] = at;
            }
        }
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self, limits: &super::ConnLimits) {
        let ctx = SegmentCtx {
            at: self.last,
            limits,
        };
        let Conn {
            half, app, lent, ..
        } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| app.on_event(d == 0, ev, &ctx, lent));
        }
        self.note_tcp_anomalies(self.last.packet);
    }

    /// Gaps declared in both directions, and their bytes.
    pub fn gap_counters(&self) -> (u64, u64) {
        self.half.iter().fold((0, 0), |(g, b), h| {
            (g + h.counters.gaps as u64, b + h.counters.gap_bytes)
        })
    }

    /// The session record, if this connection is a WebSocket session.
    pub fn record(mut self, evicted: bool, limits: &super::ConnLimits) -> Option<SessionRecord> {
        self.flush(limits);
        let tcp_counts = self.tcp_counters();
        let App::WebSocket {
            client_is_lo,
            session,
        } = std::mem::take(&mut self.app)
        else {
            return None;
        };
        let s = *session;
        if !s.is_websocket() {
            return None;
        }
        let upgrade = s.upgrade();
        let in_progress = [
            s.in_progress(crate::record::Side::Client),
            s.in_progress(crate::record::Side::Server),
        ];
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };

        let (client_unfinished, server_unfinished) = s.unfinished_messages();
        let counts = s.consumers.counts;
        let facts = s.consumers.facts;
        let mut anomalies = s.anomalies;
        anomalies.union(counts.client.anomalies);
        anomalies.union(counts.server.anomalies);
        let mut marks = s.marks;
        marks.merge(&facts.marks);
        let mut exact = !s.inexact && !counts.client.inexact && !counts.server.inexact;
        let last = self.last.packet;
        let [gaps, overflows, out_of_window] = tcp_counts;
        let tcp_marks = [
            (Anomaly::Gap, gaps, self.tcp_firsts[0]),
            (Anomaly::ReassemblyLimit, overflows, self.tcp_firsts[1]),
            (Anomaly::OutOfWindow, out_of_window, self.tcp_firsts[2]),
        ];
        for (a, count, first) in tcp_marks {
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
        let tcp = TcpEnds {
            client_fin: self.fin[c],
            server_fin: self.fin[sv],
            client_rst: self.rst[c],
            server_rst: self.rst[sv],
        };
        let side = |stats: SideTotals, f: &SideFacts, unfinished: Option<u64>, d: usize| {
            let k = &self.half[d].counters;
            let (messages_before_close, bytes_before_close) =
                f.before_close.unwrap_or((stats.messages, stats.bytes));
            SideStats {
                messages: stats.messages,
                bytes: stats.bytes,
                pings: stats.pings,
                pongs: stats.pongs,
                close: stats.close,
                missing_bytes: stats.missing_bytes,
                messages_before_close,
                bytes_before_close,
                largest_message: f.largest_message,
                unfinished_message: unfinished,
                last_data: f.last_data,
                ping_rtt: f.ping_rtt(),
                tcp: TcpDir {
                    segments: k.segments,
                    retransmitted: k.retransmitted,
                    out_of_order: k.out_of_order,
                    gaps: k.gaps as u64,
                    last_retransmission: some_at(self.last_retransmission[d]),
                    unacked_bytes: self.half[d].unacked_bytes(),
                    last_payload: some_at(self.last_payload[d]),
                },
                in_progress_at_end: None,
            }
        };
        let mut client_side = side(counts.client.stats, &facts.client, client_unfinished, c);
        let mut server_side = side(counts.server.stats, &facts.server, server_unfinished, sv);
        client_side.in_progress_at_end = in_progress[0];
        server_side.in_progress_at_end = in_progress[1];
        let verdict = verdict(&crate::record::facts(
            upgrade,
            &client_side,
            &server_side,
            tcp,
        ));
        let last_payload_before_end = some_at(if self.ended {
            self.payload_before_end
        } else {
            self.last_payload_any
        });
        let resp = s.response.unwrap_or_default();
        Some(SessionRecord {
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
            exact,
            anomalies,
            anomaly_marks: marks,
            last_payload_before_end,
            timeline: self.lent.timeline.take().map(|t| t.finish()),
            handshake_headers: HandshakeHeaders {
                request: s.request.headers,
                response: resp.headers,
            },
            verdict,
        })
    }
}
