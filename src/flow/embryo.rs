//! The compact table of connections that have carried no payload yet: SYN-only
//! connections, scans and floods take 64 bytes each here (an IPv6 key 48 more, in a side
//! table) instead of a full [`Conn`](super::conn::Conn).
//!
//! An embryo follows exactly what a `Conn` would do with a segment that carries nothing
//! (RFC 9293 §3.4: the SYN takes one sequence number, the stream starts after it): the
//! base sequence numbers (port reuse), the start of each direction's stream, the first RST
//! of a direction (within 4 s of the first packet), the packet count and times. Anything
//! else — payload, a FIN, an ACK that acknowledges bytes the capture does not hold (a
//! gap), a segment out of the window, RST from both sides or a late one — needs the full
//! state: [`Embryo::try_segment`] then leaves the embryo
//! untouched and the shard promotes it (`Shard::promote`) before the segment is
//! processed, so the result is the same as if the connection had been full from the start.

use super::conn::Embryonic;
use super::reassembly::ReassemblyLimits;
use crate::decode::{TcpSegment, ACK, FIN, RST, SYN};
use crate::net::{Addr, Endpoint, FlowKey};
use crate::record::At;

// Flags, in the top 16 bits of `Embryo::stream`.
const BASE: [u64; 2] = [1 << 48, 1 << 49];
const STARTED: [u64; 2] = [1 << 50, 1 << 51];
const RST_FROM: [u64; 2] = [1 << 52, 1 << 53];
const V6: u64 = 1 << 54;
const GAVE_UP: u64 = 1 << 55;
/// A direction's stream was started by a segment without SYN (`HalfStream`'s tentative
/// base: a keep-alive probe may sit one below the first byte).
const TENTATIVE: [u64; 2] = [1 << 56, 1 << 57];
const SYN_SEEN: u64 = 1 << 58;
/// A segment was analyzed (not only shadow segments of `--filter`).
const ANALYZED: u64 = 1 << 59;
/// The other direction acknowledged this one (`peer_ack` holds the latest number).
const PEER_ACK: [u64; 2] = [1 << 60, 1 << 61];
/// An RST was analyzed (not a shadow segment, not after the connection was given up on):
/// the session's end, for the record's last payload before it.
const ENDED: u64 = 1 << 62;
const STREAM_MASK: u64 = (1 << 48) - 1;

/// One connection without payload (72 bytes).
#[derive(Clone, Copy, Debug)]
pub struct Embryo {
    /// IPv4: `lo` address, `hi` address, `lo` port << 16 | `hi` port. IPv6 (`V6` flag):
    /// word 0 indexes the shard's IPv6 keys.
    key: [u32; 3],
    packets: u32,
    /// 0 marks a free slot (packets are numbered from 1).
    pub first_packet: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// `tcp_stream` (48 bits, all ones until assigned) and the flags above.
    stream: u64,
    base_seq: [u32; 2],
    /// The first RST (its direction in the flags; only one direction's fits here): its
    /// packet and time after the first packet's.
    rst_after: [u32; 2],
    /// The latest acknowledgment number the peer sent for each direction (`PEER_ACK`
    /// says whether there is one): the record's unacknowledged bytes start from it.
    peer_ack: [u32; 2],
}

const _: () = assert!(std::mem::size_of::<Embryo>() == 72);

impl Embryo {
    const FREE: Embryo = Embryo {
        key: [0; 3],
        packets: 0,
        first_packet: 0,
        first_ts: 0,
        last_ts: 0,
        stream: STREAM_MASK,
        base_seq: [0; 2],
        rst_after: [0; 2],
        peer_ack: [0; 2],
    };

    fn has(&self, flag: u64) -> bool {
        self.stream & flag != 0
    }

    /// FIN both ways (never: a FIN makes it full) or RST.
    pub fn is_closed(&self) -> bool {
        self.has(RST_FROM[0] | RST_FROM[1])
    }

    pub fn tcp_stream(&self) -> u64 {
        match self.stream & STREAM_MASK {
            STREAM_MASK => u64::MAX,
            s => s,
        }
    }

    pub fn set_tcp_stream(&mut self, n: u64) {
        debug_assert!(n < STREAM_MASK);
        self.stream = (self.stream & !STREAM_MASK) | (n & STREAM_MASK);
    }

    pub fn gave_up(&self) -> bool {
        self.has(GAVE_UP)
    }

    /// A segment was analyzed (false while `--filter` selected none of its packets).
    pub fn analyzed(&self) -> bool {
        self.has(ANALYZED)
    }

    pub fn give_up_recognition(&mut self) {
        self.stream |= GAVE_UP;
    }

    /// A SYN without ACK that starts a new connection on this 4-tuple (as `Conn::is_reuse`).
    pub fn is_reuse(&self, seg: &TcpSegment) -> bool {
        let d = dir(seg.from_lo);
        seg.flags & (SYN | ACK) == SYN && self.has(BASE[d]) && self.base_seq[d] != seg.seq
    }

    /// What it knows, for the full state.
    pub fn embryonic(&self) -> Embryonic {
        let base = |d: usize| self.has(BASE[d]).then_some(self.base_seq[d]);
        let rst_at = At {
            packet: self.first_packet + self.rst_after[0] as u64,
            ts_ns: self.first_ts + self.rst_after[1] as i64,
        };
        let rst = |d: usize| self.has(RST_FROM[d]).then_some(rst_at);
        Embryonic {
            first: At {
                packet: self.first_packet,
                ts_ns: self.first_ts,
            },
            last_ts: self.last_ts,
            packets: self.packets as u64,
            tcp_stream: self.tcp_stream(),
            base_seq: [base(0), base(1)],
            stream_started: [self.has(STARTED[0]), self.has(STARTED[1])],
            tentative: [self.has(TENTATIVE[0]), self.has(TENTATIVE[1])],
            rst: [rst(0), rst(1)],
            ended: self.has(ENDED),
            peer_ack: [0, 1].map(|d| self.has(PEER_ACK[d]).then_some(self.peer_ack[d])),
            analyzed: self.analyzed(),
            syn_seen: self.has(SYN_SEEN),
            gave_up: self.gave_up(),
        }
    }

    /// One segment that carries no payload (`carries` is false), as `Conn::segment` would
    /// take it; false, and nothing changed, when the result needs the full state.
    #[inline]
    pub fn try_segment(
        &mut self,
        seg: &TcpSegment,
        carries: bool,
        at: At,
        limits: &ReassemblyLimits,
    ) -> bool {
        if carries {
            return false;
        }
        let mut marks = ANALYZED;
        if seg.flags & SYN != 0 {
            marks |= SYN_SEEN;
        }
        self.take(seg, at, limits, !self.gave_up(), marks)
    }

    /// A segment that `--filter` did not select, as `Conn::shadow` would take it (its
    /// payload does not matter); false, and nothing changed, when that needs the full
    /// state.
    #[inline]
    pub fn try_shadow(&mut self, seg: &TcpSegment, at: At, limits: &ReassemblyLimits) -> bool {
        self.take(seg, at, limits, false, 0)
    }

    /// A segment without payload: the lifecycle (base sequence numbers, RST, packets,
    /// times) and, with `streams`, what reassembly would do with it; `marks` are flags to
    /// set.
    #[inline]
    fn take(
        &mut self,
        seg: &TcpSegment,
        at: At,
        limits: &ReassemblyLimits,
        streams: bool,
        marks: u64,
    ) -> bool {
        if seg.flags & FIN != 0 || self.packets == u32::MAX {
            return false;
        }
        let d = dir(seg.from_lo);
        let o = 1 - d;
        let mut stream = self.stream;
        let base_d = if self.has(BASE[d]) {
            self.base_seq[d]
        } else if seg.flags & SYN != 0 {
            seg.seq
        } else {
            seg.seq.wrapping_sub(1)
        };
        stream |= BASE[d];
        let rst = seg.flags & RST != 0 && !self.has(RST_FROM[d]);
        let mut rst_after = self.rst_after;
        let mut peer_ack = self.peer_ack;
        if rst {
            let packet = u32::try_from(at.packet - self.first_packet);
            let ns = u32::try_from(at.ts_ns.wrapping_sub(self.first_ts));
            match (packet, ns) {
                (Ok(p), Ok(t)) if !self.has(RST_FROM[o]) => rst_after = [p, t],
                _ => return false,
            }
            stream |= RST_FROM[d];
        }
        if streams && seg.flags & RST != 0 {
            stream |= ENDED;
        }
        if streams {
            // The stream of a direction starts after its SYN, or at the first sequence
            // number seen (tentatively, without SYN); here that is always base_seq + 1,
            // or the state is not compact.
            let syn = seg.flags & SYN != 0;
            let start = |stream: &mut u64, at_seq: u32| {
                if *stream & STARTED[d] == 0 {
                    if at_seq != base_d.wrapping_add(1) {
                        return false;
                    }
                    *stream |= STARTED[d];
                    if !syn {
                        *stream |= TENTATIVE[d];
                    }
                }
                true
            };
            if seg.flags & SYN != 0 && !start(&mut stream, seg.seq.wrapping_add(1)) {
                return false;
            }
            if seg.flags & ACK != 0 && self.has(STARTED[o]) {
                // Acknowledging bytes of the other direction: a gap (they are not here).
                let to = seg.ack.wrapping_sub(self.base_seq[o].wrapping_add(1)) as i32 as i64;
                if to > 0 && to <= limits.max_seq_ahead as i64 {
                    return false;
                }
                peer_ack[o] = seg.ack;
                stream |= PEER_ACK[o];
            }
            if seg.flags & RST == 0 {
                if !start(&mut stream, seg.seq) {
                    return false;
                }
                let ahead = seg.seq.wrapping_sub(base_d.wrapping_add(1)) as i32 as i64;
                if ahead > limits.max_seq_ahead as i64 {
                    return false;
                }
            }
        }
        self.stream = stream | marks;
        self.base_seq[d] = base_d;
        self.rst_after = rst_after;
        self.peer_ack = peer_ack;
        self.packets += 1;
        self.last_ts = self.last_ts.max(at.ts_ns);
        true
    }
}

fn dir(from_lo: bool) -> usize {
    if from_lo {
        0
    } else {
        1
    }
}

fn v4_of(e: &Endpoint) -> u32 {
    e.addr.1 as u32
}

fn v4_endpoint(a: u32, port: u16) -> Endpoint {
    Endpoint {
        addr: Addr(0, (crate::net::V4_MAPPED as u64) | a as u64),
        port,
    }
}

/// The compact table: embryos by slot, with free slots reused, and the IPv6 keys.
#[derive(Default)]
pub struct Embryos {
    slots: Vec<Embryo>,
    free: Vec<u32>,
    v6_keys: Vec<FlowKey>,
    v6_free: Vec<u32>,
    live: usize,
}

impl Embryos {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The live embryo in `slot` that started at `first_packet`, if any.
    #[inline]
    pub fn get(&self, slot: u32, first_packet: u64) -> Option<&Embryo> {
        self.slots
            .get(slot as usize)
            .filter(|e| e.first_packet == first_packet && first_packet != 0)
    }

    #[inline]
    pub fn at(&mut self, slot: u32) -> &mut Embryo {
        &mut self.slots[slot as usize]
    }

    /// The live embryo in `slot`.
    pub fn live(&self, slot: u32) -> Option<&Embryo> {
        self.slots
            .get(slot as usize)
            .filter(|e| e.first_packet != 0)
    }

    pub fn key(&self, e: &Embryo) -> FlowKey {
        if e.has(V6) {
            self.v6_keys[e.key[0] as usize]
        } else {
            FlowKey {
                lo: v4_endpoint(e.key[0], (e.key[2] >> 16) as u16),
                hi: v4_endpoint(e.key[1], e.key[2] as u16),
            }
        }
    }

    /// A new connection at its first packet.
    pub fn open(&mut self, key: FlowKey, at: At) -> u32 {
        let mut e = Embryo {
            first_packet: at.packet,
            first_ts: at.ts_ns,
            last_ts: at.ts_ns,
            ..Embryo::FREE
        };
        if key.lo.is_v4() && key.hi.is_v4() {
            e.key = [
                v4_of(&key.lo),
                v4_of(&key.hi),
                (key.lo.port as u32) << 16 | key.hi.port as u32,
            ];
        } else {
            let k = match self.v6_free.pop() {
                Some(k) => {
                    self.v6_keys[k as usize] = key;
                    k
                }
                None => {
                    self.v6_keys.push(key);
                    (self.v6_keys.len() - 1) as u32
                }
            };
            e.key[0] = k;
            e.stream |= V6;
        }
        self.live += 1;
        match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = e;
                s
            }
            None => {
                self.slots.push(e);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Takes the embryo out of `slot` (to retire or promote it): its key and its state.
    pub fn take(&mut self, slot: u32) -> (FlowKey, Embryo) {
        let e = self.slots[slot as usize];
        debug_assert!(e.first_packet != 0);
        let key = self.key(&e);
        if e.has(V6) {
            self.v6_free.push(e.key[0]);
        }
        self.slots[slot as usize] = Embryo::FREE;
        self.free.push(slot);
        self.live -= 1;
        (key, e)
    }

    /// Live embryos that had a segment analyzed (see [`Embryo::analyzed`]).
    pub fn analyzed(&self) -> usize {
        self.slots
            .iter()
            .filter(|e| e.first_packet != 0 && e.analyzed())
            .count()
    }

    /// (last packet time, first packet, slot) of every live embryo.
    pub fn idle_order(&self) -> impl Iterator<Item = (i64, u64, u32)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.first_packet != 0)
            .map(|(i, e)| (e.last_ts, e.first_packet, i as u32))
    }

    /// Slots in use (live or free), for a final sweep.
    pub fn slots(&self) -> u32 {
        self.slots.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::conn::Conn;

    const LIMITS: ReassemblyLimits = ReassemblyLimits {
        max_held_bytes: 1 << 20,
        max_held_segments: 64,
        max_seq_ahead: 1 << 30,
    };

    fn key(v6: bool) -> FlowKey {
        if v6 {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = 1;
            let mut b = a;
            b[15] = 2;
            FlowKey::new(Endpoint::v6(a, 40000), Endpoint::v6(b, 80)).0
        } else {
            FlowKey::new(
                Endpoint::v4([10, 0, 0, 1], 40000),
                Endpoint::v4([10, 0, 0, 2], 80),
            )
            .0
        }
    }

    fn seg(k: FlowKey, from_lo: bool, seq: u32, ack: u32, flags: u8) -> TcpSegment {
        TcpSegment {
            key: k,
            from_lo,
            seq,
            ack,
            flags,
            payload_off: 0,
            payload_len: 0,
            payload_missing: 0,
        }
    }

    #[test]
    fn keys_round_trip() {
        let mut t = Embryos::default();
        for v6 in [false, true] {
            let k = key(v6);
            let s = t.open(
                k,
                At {
                    packet: 1,
                    ts_ns: 5,
                },
            );
            let e = *t.live(s).unwrap();
            assert_eq!(t.key(&e), k);
            assert_eq!(t.take(s).0, k);
        }
        assert!(t.is_empty());
    }

    /// Each script of no-payload segments either stays compact or asks for the full
    /// state; either way, the full state promoted from the embryo equals the state of a
    /// `Conn` that took every segment itself.
    #[test]
    fn an_embryo_is_a_conn_without_payload() {
        use crate::decode::{ACK as A, RST as R, SYN as S};
        // (segments: from_lo, seq, ack, flags), and whether the embryo stays compact.
        type Script = (&'static [(bool, u32, u32, u8)], bool);
        let scripts: &[Script] = &[
            (&[(true, 100, 0, S)], true),
            (&[(true, 100, 0, S), (true, 100, 0, S)], true),
            (
                &[
                    (true, 100, 0, S),
                    (false, 500, 101, S | A),
                    (true, 101, 501, A),
                ],
                true,
            ),
            (&[(true, 100, 0, S), (false, 0, 101, R | A)], true),
            (
                &[
                    (true, 100, 0, S),
                    (false, 500, 101, S | A),
                    (true, 101, 0, R),
                ],
                true,
            ),
            // RST from both sides: only one fits.
            (
                &[
                    (true, 100, 0, S),
                    (false, 500, 101, S | A),
                    (true, 101, 0, R),
                    (false, 501, 0, R),
                ],
                false,
            ),
            // An ACK of bytes the capture does not hold: a gap.
            (
                &[
                    (true, 100, 0, S),
                    (false, 500, 101, S | A),
                    (false, 501, 200, A),
                ],
                false,
            ),
            // Mid-stream: no SYN; the stream starts at the first sequence number.
            (&[(true, 7000, 9000, A), (false, 9000, 7000, A)], true),
            // An RST first, then a segment that starts the stream elsewhere.
            (&[(true, 100, 0, R), (true, 300, 0, A)], false),
            (&[(true, 100, 0, R), (true, 100, 0, A)], true),
            // SYN after a bare ACK of the same direction: the stream had started.
            (&[(true, 100, 0, A), (true, 50, 0, S)], true),
            // Out of the window.
            (&[(true, 100, 0, S), (true, 100 + (1 << 31), 0, A)], false),
            // An RST more than 4.29 s after the first packet (see `LATE`).
            (
                &[(true, 100, 0, S), (true, 100, 0, S), (false, 0, 101, R | A)],
                false,
            ),
            // A FIN.
            (
                &[(true, 100, 0, S), (true, 101, 0, crate::decode::FIN | A)],
                false,
            ),
        ];
        const LATE: usize = 12;
        for (n, &(script, compact)) in scripts.iter().enumerate() {
            let step = if n == LATE { 2_500_000_000 } else { 1000 };
            for v6 in [false, true] {
                let k = key(v6);
                let ctx_limits = crate::flow::ConnLimits::new(&crate::config::Limits::default());
                let tls_ctx = crate::flow::tls::TlsCtx::default();
                let mut full = Conn::new(
                    k,
                    At {
                        packet: 1,
                        ts_ns: 1,
                    },
                );
                let mut table = Embryos::default();
                let slot = table.open(
                    k,
                    At {
                        packet: 1,
                        ts_ns: 1,
                    },
                );
                let mut promoted: Option<Conn> = None;
                for (i, &(from_lo, seq, ack, flags)) in script.iter().enumerate() {
                    let at = At {
                        packet: 1 + i as u64,
                        ts_ns: 1 + i as i64 * step,
                    };
                    let sg = seg(k, from_lo, seq, ack, flags);
                    let ctx = crate::flow::SegmentCtx {
                        at,
                        limits: &ctx_limits,
                        tls: &tls_ctx,
                    };
                    full.segment(&sg, &[], &ctx);
                    match promoted.as_mut() {
                        Some(c) => {
                            c.segment(&sg, &[], &ctx);
                        }
                        None => {
                            if !table.at(slot).try_segment(&sg, false, at, &LIMITS) {
                                let (key, e) = table.take(slot);
                                let mut c = Conn::from_embryonic(key, e.embryonic());
                                c.segment(&sg, &[], &ctx);
                                promoted = Some(c);
                            }
                        }
                    }
                }
                assert_eq!(promoted.is_none(), compact, "script {n}");
                let got = match promoted {
                    Some(c) => format!("{c:?}"),
                    None => {
                        let (key, e) = table.take(slot);
                        let mut c = Conn::from_embryonic(key, e.embryonic());
                        // `last` is the latest packet: set by the next segment in real use.
                        c.set_last_for_test(full.last_for_test());
                        format!("{c:?}")
                    }
                };
                assert_eq!(got, format!("{full:?}"), "script {n}, v6 {v6}");
            }
        }
    }
}
