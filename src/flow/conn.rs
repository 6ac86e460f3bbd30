//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions handed to the application layer (`app.rs`), and the facts of
//! the session record.

use super::app::App;
use super::memory::MemoryCharge;
use super::reassembly::HalfStream;
use super::{ConnLimits, SegmentCtx};
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::FlowKey;
use crate::record::{Anomaly, At, SessionRecord, TcpEnds};
use crate::verdict::{verdict, Upgrade};

/// Whether a FIN or RST slot holds a packet (packet numbers start at 1).
fn seen(at: &At) -> bool {
    at.packet != 0
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
    /// The first FIN and the first RST of each direction (packet 0: none yet; packets are
    /// numbered from 1, and an `Option` would take 8 bytes more each).
    fin: [At; 2],
    rst: [At; 2],
    pub app: App,
    /// What the application layer held after its last event (kept here so that a segment
    /// that reaches no event costs nothing to account).
    app_charge: u32,
    /// The charge the shard counts for this connection (see `flow::memory`).
    pub charged: u32,
    /// Given up on: no handshake within the recognition window. Not followed further.
    gave_up: bool,
    /// Payload arrived after it was given up on (not analyzed; counted).
    pub ignored_payload: bool,
    /// The memory budget made it give up buffers (anomaly `memory_budget`).
    pub over_budget: bool,
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
    pub rst: [Option<At>; 2],
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
            base_seq: [None; 2],
            fin: [At::default(); 2],
            rst: [At::default(); 2],
            app: App::Unknown,
            app_charge: 0,
            charged: 0,
            gave_up: false,
            ignored_payload: false,
            over_budget: false,
        }
    }

    /// The full state of a connection that carried no payload so far (`embryo.rs`),
    /// exactly as if it had been a `Conn` from its first packet.
    pub fn from_embryonic(key: FlowKey, e: Embryonic) -> Self {
        let half = |d: usize| {
            HalfStream::starting_at(
                e.stream_started[d].then(|| e.base_seq[d].unwrap_or(0).wrapping_add(1)),
            )
        };
        Conn {
            first_ts: e.first.ts_ns,
            last_ts: e.last_ts,
            packets: e.packets,
            tcp_stream: e.tcp_stream,
            half: [half(0), half(1)],
            base_seq: e.base_seq,
            rst: e.rst.map(Option::unwrap_or_default),
            gave_up: e.gave_up,
            ..Conn::new(key, e.first)
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
        self.rst.iter().any(seen) || self.fin.iter().all(seen)
    }

    /// Could this connection still turn out to be (or is it) a WebSocket session?
    #[inline]
    pub fn may_be_session(&self) -> bool {
        !self.gave_up && self.app.may_be_session()
    }

    /// Not yet known to be a session or not (and not given up on).
    pub fn undecided(&self) -> bool {
        !self.gave_up && self.app.undecided()
    }

    /// No handshake within the recognition window: not a session. What it holds is
    /// dropped and its later payload is not followed (counted if there is any).
    pub fn give_up_recognition(&mut self) {
        self.gave_up = true;
        if let App::Request { .. } = self.app {
            self.app = App::Other;
            self.ignored_payload = true;
        }
        for h in &mut self.half {
            h.discard_held();
        }
        self.app_charge = u32::try_from(self.app.memory_charge()).unwrap_or(u32::MAX);
    }

    /// What this connection's buffers hold now (held segments, and the application
    /// layer's charge after its last event).
    #[inline]
    pub fn memory_charge(&self) -> u32 {
        let n = self.half[0].memory_charge() + self.half[1].memory_charge();
        u32::try_from(n)
            .unwrap_or(u32::MAX)
            .saturating_add(self.app_charge)
    }

    /// The memory budget is spent: holes before held data become gaps and the held bytes
    /// are delivered, heads being gathered are read as cut off, the application layer's
    /// consumers give up theirs. Returns the bytes released.
    pub fn release_memory(&mut self, limits: &ConnLimits) -> usize {
        let before = self.memory_charge();
        let ctx = SegmentCtx {
            at: self.last,
            limits,
        };
        let Conn { half, app, .. } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.release_held(&mut |ev| app.on_event(d == 0, ev, &ctx));
        }
        app.release_memory(&ctx);
        self.app_charge = u32::try_from(self.app.memory_charge()).unwrap_or(u32::MAX);
        self.over_budget = true;
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
        if seg.flags & RST != 0 && !seen(&self.rst[d]) {
            self.rst[d] = at;
        }
        let carries = !payload.is_empty() || seg.payload_missing > 0;
        if self.gave_up && carries && matches!(self.app, App::Unknown) {
            self.app = App::Other;
            self.ignored_payload = true;
        }
        if self.may_be_session() {
            // Every event delivered moves a direction's position: that is how the
            // application layer's charge is known to be worth a look (the closures stay
            // as small as they were, for the inliner).
            let before = self.half[0].position() + self.half[1].position();
            let Conn { half, app, .. } = self;
            let limits = &ctx.limits.reassembly;
            if seg.flags & SYN != 0 {
                half[d].syn(seg.seq);
            }
            if seg.flags & ACK != 0 {
                let o = 1 - d;
                half[o].acked(seg.ack, limits, &mut |ev| app.on_event(o == 0, ev, ctx));
            }
            if seg.flags & (RST | FIN) == 0 && !carries {
                // A bare ACK (half the packets of a chat capture): no delivery to try.
                half[d].bare(seg.seq, limits);
            } else if seg.flags & RST == 0 {
                let fin = seg.flags & FIN != 0;
                let missing = seg.payload_missing;
                let held = half[d].memory_charge();
                half[d].segment(seg.seq, payload, missing, fin, limits, &mut |ev| {
                    app.on_event(d == 0, ev, ctx)
                });
                charge_moved = half[d].memory_charge() != held;
            }
            if self.half[0].position() + self.half[1].position() != before {
                charge_moved = true;
                self.app_charge = u32::try_from(self.app.memory_charge()).unwrap_or(u32::MAX);
                if self.app.undecided()
                    && self
                        .half
                        .iter()
                        .any(|h| h.position() > ctx.limits.recognise_bytes)
                {
                    self.give_up_recognition();
                }
            }
            if !self.app.may_be_session() {
                for h in &mut self.half {
                    h.discard_held();
                }
                charge_moved = true;
            }
        }
        if seg.flags & FIN != 0 && !seen(&self.fin[d]) {
            self.fin[d] = at;
        }
        charge_moved
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self, limits: &ConnLimits) {
        let ctx = SegmentCtx {
            at: self.last,
            limits,
        };
        let Conn { half, app, .. } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| app.on_event(d == 0, ev, &ctx));
        }
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

    /// The session record, if this connection is a WebSocket session.
    pub fn record(mut self, evicted: bool, limits: &ConnLimits) -> Option<SessionRecord> {
        self.flush(limits);
        let App::WebSocket {
            client_is_lo,
            session,
        } = self.app
        else {
            return None;
        };
        let s = *session;
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };

        let counts = &s.counts;
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
        if self.over_budget {
            anomalies.insert(Anomaly::MemoryBudget);
            exact = false;
        }
        let upgrade = match s.status() {
            Some(status) => Upgrade::Answered(status),
            None => Upgrade::Unanswered,
        };
        let tcp = TcpEnds {
            client_fin: seen(&self.fin[c]).then_some(self.fin[c]),
            server_fin: seen(&self.fin[sv]).then_some(self.fin[sv]),
            client_rst: seen(&self.rst[c]).then_some(self.rst[c]),
            server_rst: seen(&self.rst[sv]).then_some(self.rst[sv]),
        };
        let (client_side, server_side) = (counts.client.stats(), counts.server.stats());
        let verdict = verdict(&crate::record::facts(
            upgrade,
            &client_side,
            &server_side,
            tcp,
        ));
        Some(SessionRecord {
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
            exact,
            anomalies,
            verdict,
        })
    }
}
