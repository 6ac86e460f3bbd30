//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::reassembly::HalfStream;
use super::tls::{deliver, TlsCtx, TlsLayer};
use super::SegmentCtx;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{Anomaly, At, SessionRecord, TcpEnds};
use crate::verdict::verdict;

/// Hands one segment to reassembly (its direction's bytes, and what its ACK says of the
/// other's); in-order events of direction `d` go to `sink(d, event)`.
#[inline(always)]
fn reassemble(
    half: &mut [HalfStream; 2],
    seg: &TcpSegment,
    payload: &[u8],
    limits: &super::reassembly::ReassemblyLimits,
    sink: &mut impl FnMut(usize, super::reassembly::Event<'_>),
) {
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
        half[d].segment(seg.seq, payload, missing, fin, limits, &mut |ev| {
            sink(d, ev)
        });
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
    /// The TLS layer between reassembly and `app`, when the connection starts with a
    /// ClientHello (`tls.rs`).
    pub tls: Option<Box<TlsLayer>>,
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
            tls: None,
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
        if self.may_be_session() {
            let limits = &ctx.limits.reassembly;
            let Conn { half, app, tls, .. } = self;
            if tls.is_none() && !matches!(app, App::Unknown) {
                // Plaintext, application known (the hot path): straight to the app.
                reassemble(half, seg, payload, limits, &mut |d, ev| {
                    app.on_event(d == 0, ev, ctx)
                });
            } else {
                // The first bytes (is it TLS?) or TLS.
                reassemble(half, seg, payload, limits, &mut |d, ev| {
                    deliver(tls, app, d == 0, ev, ctx)
                });
            }
            if !self.may_be_session() {
                for h in &mut self.half {
                    h.discard_held();
                }
            }
        }
        if seg.flags & FIN != 0 && self.fin[d].is_none() {
            self.fin[d] = Some(at);
        }
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self, limits: &super::ConnLimits, tls_ctx: &TlsCtx) {
        let ctx = SegmentCtx {
            at: self.last,
            limits,
            tls: tls_ctx,
        };
        let Conn { half, app, tls, .. } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| deliver(tls, app, d == 0, ev, &ctx));
        }
    }

    /// Gaps declared in both directions, and their bytes.
    pub fn gap_counters(&self) -> (u64, u64) {
        self.half.iter().fold((0, 0), |(g, b), h| {
            (g + h.counters.gaps as u64, b + h.counters.gap_bytes)
        })
    }

    /// The session record, if this connection is a WebSocket session (over TLS or not), or
    /// a TLS connection that gives a row of its own.
    pub fn record(
        mut self,
        evicted: bool,
        limits: &super::ConnLimits,
        tls_ctx: &TlsCtx,
    ) -> Option<SessionRecord> {
        self.flush(limits, tls_ctx);
        if let Some(t) = self.tls.take() {
            return self.tls_record(*t, evicted);
        }
        self.ws_record(evicted)
    }

    /// The record of a TLS connection: its WebSocket session's with the TLS facts, or one
    /// of its own when it was not decrypted (outcome `undecrypted`, WebSocket columns
    /// empty) or `wsclose tls` asks for every TLS connection.
    fn tls_record(mut self, t: TlsLayer, evicted: bool) -> Option<SessionRecord> {
        let info = Box::new(t.info(&self.app));
        let tls_anomalies = t.anomalies();
        let own = t.gives_own_record(&self.app);
        if !own && !t.may_be_session() {
            return None;
        }
        if let Some(mut r) = self.ws_record_ref(evicted) {
            r.anomalies.union(tls_anomalies);
            r.exact &= tls_anomalies.is_empty();
            r.tls = Some(info);
            return Some(r);
        }
        if !own {
            return None;
        }
        let client_is_lo = t.client_is_lo();
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };
        let mut anomalies = tls_anomalies;
        let mut side = |d: usize| {
            let k = &self.half[d].counters;
            if k.gaps > 0 {
                anomalies.insert(Anomaly::Gap);
            }
            if k.cut_bytes > 0 {
                anomalies.insert(Anomaly::CutOffPacket);
            }
            if k.ooo_overflows > 0 {
                anomalies.insert(Anomaly::ReassemblyLimit);
            }
            if k.out_of_window > 0 {
                anomalies.insert(Anomaly::OutOfWindow);
            }
            crate::record::SideStats {
                missing_bytes: k.gap_bytes + k.cut_bytes,
                ..Default::default()
            }
        };
        let (client_side, server_side) = (side(c), side(sv));
        if evicted {
            anomalies.insert(Anomaly::Evicted);
        }
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
        self.app = App::Other;
        Some(SessionRecord {
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
            tls: Some(info),
            verdict,
        })
    }

    /// The WebSocket session's record, taking the session out of `app`.
    fn ws_record_ref(&mut self, evicted: bool) -> Option<SessionRecord> {
        let app = std::mem::take(&mut self.app);
        let App::WebSocket {
            client_is_lo,
            session,
        } = app
        else {
            self.app = app;
            return None;
        };
        if !session.is_websocket() {
            self.app = App::WebSocket {
                client_is_lo,
                session,
            };
            return None;
        }
        Some(self.session_record(client_is_lo, *session, evicted))
    }

    fn ws_record(mut self, evicted: bool) -> Option<SessionRecord> {
        self.ws_record_ref(evicted)
    }

    fn session_record(
        &self,
        client_is_lo: bool,
        s: crate::ws::WsSession,
        evicted: bool,
    ) -> SessionRecord {
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

        let counts = s.counts;
        let mut anomalies = s.anomalies;
        anomalies.union(counts.client.anomalies);
        anomalies.union(counts.server.anomalies);
        let mut exact = !s.inexact && !counts.client.inexact && !counts.server.inexact;
        for h in &self.half {
            let k = &h.counters;
            if k.gaps > 0 {
                anomalies.insert(Anomaly::Gap);
            }
            if k.cut_bytes > 0 {
                anomalies.insert(Anomaly::CutOffPacket);
            }
            if k.ooo_overflows > 0 {
                anomalies.insert(Anomaly::ReassemblyLimit);
            }
            if k.out_of_window > 0 {
                anomalies.insert(Anomaly::OutOfWindow);
                exact = false;
            }
        }
        if evicted {
            anomalies.insert(Anomaly::Evicted);
            exact = false;
        }
        let tcp = TcpEnds {
            client_fin: self.fin[c],
            server_fin: self.fin[sv],
            client_rst: self.rst[c],
            server_rst: self.rst[sv],
        };
        let (mut client_side, mut server_side) = (counts.client.stats, counts.server.stats);
        client_side.in_progress_at_end = in_progress[0];
        server_side.in_progress_at_end = in_progress[1];
        let verdict = verdict(&crate::record::facts(
            upgrade,
            &client_side,
            &server_side,
            tcp,
        ));
        let resp = s.response.unwrap_or_default();
        SessionRecord {
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
            tls: None,
            verdict,
        }
    }
}
