//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::reassembly::HalfStream;
use super::tls::{deliver, TlsCtx, TlsLayer};
use super::SegmentCtx;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{Anomaly, At, SessionRecord, TcpEnds, TlsInfo};
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
    /// A segment was analyzed (false while `--filter` selected none of its packets).
    pub analyzed: bool,
    /// A SYN was captured: the connection's first bytes are its application's first.
    syn_seen: bool,
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
            analyzed: false,
            syn_seen: false,
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
        self.lifecycle(seg, d, at);
        self.analyzed = true;
        if seg.flags & SYN != 0 {
            self.syn_seen = true;
        }
        if self.may_be_session() {
            let Conn {
                half,
                app,
                syn_seen,
                tls,
                ..
            } = self;
            let started = *syn_seen;
            let limits = &ctx.limits.reassembly;
            if tls.is_none() && !matches!(app, App::Unknown) {
                // Plaintext, application known (the hot path): straight to the app.
                reassemble(half, seg, payload, limits, &mut |d, ev| {
                    app.on_event(d == 0, ev, started, ctx)
                });
            } else {
                // The first bytes (is it TLS?) or TLS.
                reassemble(half, seg, payload, limits, &mut |d, ev| {
                    deliver(tls, app, d == 0, ev, started, ctx)
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
            ..
        } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| deliver(tls, app, d == 0, ev, *syn_seen, &ctx));
        }
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
        let mut tcp_anomalies = crate::record::Anomalies::default();
        let mut tcp_exact = true;
        for h in &self.half {
            let k = &h.counters;
            if k.gaps > 0 {
                tcp_anomalies.insert(Anomaly::Gap);
            }
            if k.cut_bytes > 0 {
                tcp_anomalies.insert(Anomaly::CutOffPacket);
            }
            if k.ooo_overflows > 0 {
                tcp_anomalies.insert(Anomaly::ReassemblyLimit);
            }
            if k.out_of_window > 0 {
                tcp_anomalies.insert(Anomaly::OutOfWindow);
                tcp_exact = false;
            }
        }
        if evicted {
            tcp_anomalies.insert(Anomaly::Evicted);
            tcp_exact = false;
        }
        let tcp = TcpEnds {
            client_fin: self.fin[c],
            server_fin: self.fin[sv],
            client_rst: self.rst[c],
            server_rst: self.rst[sv],
        };
        let n = sessions.len();
        for s in sessions {
            let s = *s;
            let (mut client_side, mut server_side, mut anomalies, exact) = s.outcome();
            anomalies.union(tcp_anomalies);
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
    fn tls_record(&self, t: &TlsLayer, info: TlsInfo, evicted: bool) -> SessionRecord {
        let client_is_lo = t.client_is_lo();
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };
        let mut anomalies = t.anomalies();
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
            verdict,
        }
    }
}
