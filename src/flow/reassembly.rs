//! Per-direction TCP reassembly (RFC 9293 §3.4 sequence numbers, §3.10.7.4 segment
//! acceptance): turns segments in capture order into an in-order byte stream of
//! [`Event::Data`] slices and [`Event::Gap`]s.
//!
//! - In-order payload is handed on as a slice of the packet: never copied.
//! - Out-of-order payload is copied and held, up to a per-direction cap.
//! - Overlaps: the bytes seen first win (as Wireshark and Zeek do); retransmitted bytes
//!   already delivered are dropped.
//! - A hole is declared a gap, never filled with invented bytes, when the receiver
//!   acknowledges past it (the bytes were sent but the capture missed them), when the
//!   out-of-order cap is reached, or when the connection is finished.
//! - Sequence numbers are unwrapped to 64-bit stream offsets relative to the current
//!   position, so wraparound at 2^32 needs no special case.

/// What the reassembler hands to the application parser, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Data(&'a [u8]),
    /// `n` bytes of the stream are missing from the capture.
    Gap(u64),
}

/// What a segment carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// No payload (or a keep-alive probe).
    Nothing,
    /// Payload beyond what was seen before (possibly ahead of a hole).
    New,
    /// Payload starting before the highest sequence number already seen: a
    /// retransmission, a duplicate, or bytes that fill a hole.
    Retransmitted,
}

/// Why a gap was declared, and the segments out of the ordinary (for the counters):
/// what most directions never count (boxed in [`LazyCounters`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct HalfCounters {
    /// Gaps declared, and their bytes.
    pub gaps: u32,
    pub gap_bytes: u64,
    /// Bytes cut off by the capture's snapshot length.
    pub cut_bytes: u64,
    /// Times the out-of-order cap forced a gap.
    pub ooo_overflows: u32,
    /// Segments too far from the expected sequence number to be believed.
    pub out_of_window: u32,
    /// Of the segments that carried payload, those that started before the highest
    /// sequence number already seen: retransmissions and duplicates, including those that
    /// fill a hole.
    pub retransmitted: u64,
    /// Of those, segments that jumped ahead of bytes never seen (the segment before them
    /// was lost before the capture point, or comes later).
    pub out_of_order: u64,
    /// Gaps, out-of-order overflows and out-of-window segments together (a change says
    /// one of them just happened).
    pub anomalies: u32,
}

static NO_COUNTERS: HalfCounters = HalfCounters {
    gaps: 0,
    gap_bytes: 0,
    cut_bytes: 0,
    ooo_overflows: 0,
    out_of_window: 0,
    retransmitted: 0,
    out_of_order: 0,
    anomalies: 0,
};

/// A direction's counters: the payload segments inline (every direction of a full
/// connection counts them), the rest ([`HalfCounters`], read through `Deref`) allocated
/// at the first thing counted — a write through `DerefMut` allocates; an open session's
/// directions usually have none (16 bytes each instead of 56).
#[derive(Clone, Debug, Default)]
pub struct LazyCounters {
    /// Segments that carried payload (keep-alive probes not counted).
    pub segments: u64,
    rare: Option<Box<HalfCounters>>,
}

impl std::ops::Deref for LazyCounters {
    type Target = HalfCounters;
    #[inline]
    fn deref(&self) -> &HalfCounters {
        self.rare.as_deref().unwrap_or(&NO_COUNTERS)
    }
}

impl std::ops::DerefMut for LazyCounters {
    #[inline]
    fn deref_mut(&mut self) -> &mut HalfCounters {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// The segments held out of order and their bytes, allocated while there are any (reads
/// of an empty list touch no memory; a write allocates).
#[derive(Debug, Default)]
struct Held(Option<Box<HeldList>>);

#[derive(Debug, Default)]
struct HeldList {
    segs: Vec<HeldSegment>,
    /// Bytes in `segs` (at most `max_held_bytes` plus a segment).
    bytes: u32,
}

static NOT_HELD: Vec<HeldSegment> = Vec::new();

impl Held {
    /// Bytes held.
    #[inline]
    fn bytes(&self) -> u32 {
        self.0.as_ref().map_or(0, |h| h.bytes)
    }

    #[inline]
    fn add_bytes(&mut self, n: u32) {
        self.0.get_or_insert_with(Box::default).bytes += n;
    }

    #[inline]
    fn sub_bytes(&mut self, n: u32) {
        if let Some(h) = &mut self.0 {
            h.bytes -= n;
        }
    }
}

impl std::ops::Deref for Held {
    type Target = Vec<HeldSegment>;
    #[inline]
    fn deref(&self) -> &Vec<HeldSegment> {
        self.0.as_ref().map_or(&NOT_HELD, |h| &h.segs)
    }
}

impl std::ops::DerefMut for Held {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<HeldSegment> {
        &mut self.0.get_or_insert_with(Box::default).segs
    }
}

/// Where a direction's stream starts: the sequence number of stream offset 0, once known,
/// and whether it is tentative (see `HalfStream::settle`). 8 bytes, as an `Option<u32>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Base {
    seq: u32,
    known: bool,
    /// Set from a segment without SYN or payload (a connection picked up mid-stream) and
    /// no byte placed yet: it may be a keep-alive or zero-window probe, sent one below the
    /// next byte (RFC 9293 §3.8.6.1, RFC 1122 §4.2.3.6).
    tentative: bool,
    /// Set from a segment without payload (a bare one, or a FIN) and no byte placed yet:
    /// the capture may hold the bytes just before it later (see `HalfStream::reach_back`).
    empty_start: bool,
}

impl Base {
    #[inline]
    fn get(self) -> Option<u32> {
        self.known.then_some(self.seq)
    }

    #[inline]
    fn is_none(self) -> bool {
        !self.known
    }

    /// The start, set to `seq` if not known yet.
    #[inline]
    fn get_or_insert(&mut self, seq: u32) -> u32 {
        if !self.known {
            self.seq = seq;
            self.known = true;
        }
        self.seq
    }
}

#[derive(Debug)]
struct HeldSegment {
    start: u64,
    data: Vec<u8>,
    /// Bytes after `data` that the capture cut off.
    missing: u32,
}

impl HeldSegment {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64 + self.missing as u64
    }
}

/// Limits of one direction's reassembly.
#[derive(Clone, Copy, Debug)]
pub struct ReassemblyLimits {
    pub max_held_bytes: usize,
    pub max_held_segments: usize,
    pub max_seq_ahead: u32,
}

/// `HalfStream::fin_end` before a FIN is seen.
const NO_FIN: u64 = u64::MAX;

/// One direction of a TCP connection.
#[derive(Debug)]
pub struct HalfStream {
    /// Sequence number of stream offset 0 (ISN + 1, or the first sequence number seen).
    base: Base,
    /// Stream offset of the next byte to deliver.
    next: u64,
    held: Held,
    /// Stream offset of the FIN, once seen ([`NO_FIN`] before).
    fin_end: u64,
    /// Highest stream offset seen sent (the end of the furthest segment).
    max_end: u64,
    /// The latest acknowledgment number the peer sent for this direction, once it sent
    /// one (kept raw: a store per ACK; unwrapped only when asked).
    peer_ack: Option<u32>,
    pub counters: LazyCounters,
}

impl Default for HalfStream {
    fn default() -> Self {
        HalfStream {
            base: Base::default(),
            next: 0,
            held: Held::default(),
            fin_end: NO_FIN,
            max_end: 0,
            peer_ack: None,
            counters: LazyCounters::default(),
        }
    }
}

impl HalfStream {
    /// Stream offset of the FIN, once seen.
    fn fin_at(&self) -> Option<u64> {
        (self.fin_end != NO_FIN).then_some(self.fin_end)
    }

    /// A direction whose stream starts at sequence number `base` (when known; `tentative`
    /// when a segment without SYN set it) and has delivered nothing yet, with the peer's
    /// latest acknowledgment number: what a connection that carried no payload knows of it.
    pub fn starting_at(base: Option<u32>, tentative: bool, peer_ack: Option<u32>) -> Self {
        HalfStream {
            base: Base {
                seq: base.unwrap_or(0),
                known: base.is_some(),
                tentative: tentative && base.is_some(),
                empty_start: tentative && base.is_some(),
            },
            peer_ack,
            ..HalfStream::default()
        }
    }

    /// Sequence number of stream offset 0, once known.
    pub fn base(&self) -> Option<u32> {
        self.base.get()
    }

    /// Stream offset of the next byte to deliver (bytes delivered plus gaps).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Bytes sent that the peer had not acknowledged (0 when it never acknowledged any:
    /// the capture may not see its direction).
    pub fn unacked_bytes(&self) -> u64 {
        match (self.base.get(), self.peer_ack) {
            (Some(base), Some(ack)) => {
                let acked = self.offset(base, ack).max(0) as u64;
                // The FIN takes a sequence number: an ACK of it is one past the data.
                self.max_end.saturating_sub(acked)
            }
            _ => 0,
        }
    }

    /// True once every byte up to the FIN has been delivered or declared a gap.
    pub fn finished(&self) -> bool {
        self.fin_at().is_some_and(|f| self.next >= f)
    }

    /// Unwraps `seq` to a stream offset near the current position.
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let expected = base.wrapping_add(self.next as u32);
        self.next as i64 + seq.wrapping_sub(expected) as i32 as i64
    }

    /// A SYN: the stream starts after it (the SYN occupies one sequence number).
    pub fn syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base.get_or_insert(seq.wrapping_add(1));
        }
    }

    /// A segment that carries nothing (no payload, no SYN, FIN or RST): what
    /// [`segment`](Self::segment) does with it, without the rest — the stream starts at
    /// its sequence number if nothing started it before, and one far out of the window
    /// is counted.
    #[inline]
    pub fn bare(&mut self, seq: u32, limits: &ReassemblyLimits) {
        if self.base.is_none() {
            self.base.tentative = true;
            self.base.empty_start = true;
        }
        let base = self.base.get_or_insert(seq);
        if self.offset(base, seq) - self.next as i64 > limits.max_seq_ahead as i64 {
            self.counters.out_of_window += 1;
            self.counters.anomalies += 1;
        }
    }

    /// One segment in this direction: `data` present in the capture, `missing` bytes
    /// after it cut off by the snapshot length, and whether it carries FIN. Returns
    /// what it carried (a keep-alive probe carries nothing).
    #[inline]
    pub fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        missing: u32,
        fin: bool,
        limits: &ReassemblyLimits,
        sink: &mut impl FnMut(Event<'_>),
    ) -> Carried {
        let fresh = self.base.is_none();
        let mut base = self.base.get_or_insert(seq);
        let mut start = self.offset(base, seq);
        if self.settle(start) {
            base = base.wrapping_add(1);
            start = self.offset(base, seq);
        }
        let len = data.len() as u64 + missing as u64;
        if fresh && len == 0 {
            // A FIN without payload first: like a bare segment, it may have overtaken the
            // bytes before it (it is no probe: `tentative` stays clear).
            self.base.empty_start = true;
        }
        if start < 0 && start + len as i64 == 0 && len > 1 && self.reach_back(len) {
            start = 0;
        }
        if len > 0 {
            self.base.tentative = false;
            self.base.empty_start = false;
        }
        if start < 0 && start + (len as i64) <= 0 {
            // Entirely before the first byte we know of (e.g. a keep-alive probe at ISN).
            return Carried::Nothing;
        }
        if start - self.next as i64 > limits.max_seq_ahead as i64 {
            self.counters.out_of_window += 1;
            self.counters.anomalies += 1;
            return Carried::Nothing;
        }
        // Bytes before offset 0 are not part of the stream we follow.
        let (start, data, missing, len) = if start < 0 {
            let cut = (-start) as u64;
            let skip = cut.min(data.len() as u64) as usize;
            // What is cut from the front beyond the captured bytes comes off `missing`.
            let missing = missing - (cut - skip as u64) as u32;
            (0u64, &data[skip..], missing, len - cut)
        } else {
            (start as u64, data, missing, len)
        };
        let end = start + len;
        if fin && self.fin_at().is_none() {
            self.fin_end = end.max(self.next).min(NO_FIN - 1);
        }
        if len == 0 {
            return Carried::Nothing;
        }
        // A keep-alive probe repeats the last byte before the next one (RFC 9293 §3.8.4).
        let keepalive = len == 1 && end <= self.next;
        if keepalive {
            return Carried::Nothing;
        }
        let k = &mut self.counters;
        k.segments += 1;
        let kind = if start < self.max_end {
            k.retransmitted += 1;
            Carried::Retransmitted
        } else {
            if start > self.max_end {
                // Bytes before it were never seen: lost before the capture point (then
                // retransmitted or given up as a gap) or overtaken.
                k.out_of_order += 1;
            }
            Carried::New
        };
        self.max_end = self.max_end.max(end);
        if end <= self.next {
            return kind;
        }
        if start <= self.next {
            self.deliver_new(start, data, missing, sink);
            return kind;
        }
        self.hold(start, data, missing, limits, sink);
        kind
    }

    /// A tentative base turns out to be later than the stream's start: a segment of `n`
    /// bytes (more than a keep-alive probe's one) ends exactly where the stream was
    /// thought to start, before any byte was placed. The capture saw a FIN (or an ACK)
    /// before the data it follows; the stream starts `n` bytes earlier. Returns whether
    /// it moved.
    fn reach_back(&mut self, n: u64) -> bool {
        if !self.base.empty_start || self.next != 0 || !self.held.is_empty() || n > u32::MAX as u64
        {
            return false;
        }
        self.base.tentative = false;
        self.base.empty_start = false;
        self.base.seq = self.base.seq.wrapping_sub(n as u32);
        if self.fin_end != NO_FIN {
            self.fin_end += n;
        }
        // `max_end` is still 0: no segment with a byte was seen (it would have settled the
        // start).
        debug_assert_eq!(self.max_end, 0);
        true
    }

    /// A tentative base one below the first byte placed (`offset` 1) was a probe's
    /// sequence number: the stream starts one later. Returns whether it moved.
    fn settle(&mut self, offset: i64) -> bool {
        if !self.base.tentative || offset != 1 || self.next != 0 || !self.held.is_empty() {
            return false;
        }
        self.base.tentative = false;
        self.base.seq = self.base.seq.wrapping_add(1);
        true
    }

    /// Delivers a segment that starts at or before `next`; where held bytes (seen earlier)
    /// overlap it, they win.
    #[inline(always)]
    fn deliver_new(
        &mut self,
        start: u64,
        data: &[u8],
        missing: u32,
        sink: &mut impl FnMut(Event<'_>),
    ) {
        let end = start + data.len() as u64 + missing as u64;
        while self.next < end {
            let stop = self
                .held
                .first()
                .map_or(end, |h| h.start.clamp(self.next, end));
            if stop > self.next {
                self.deliver_range(start, data, stop, sink);
            }
            self.drain(sink);
        }
        self.drain(sink);
    }

    /// Delivers bytes `[next, upto)` of a segment starting at `start` whose first
    /// `data.len()` bytes are present (the rest were cut off), and moves `next` to `upto`.
    #[inline(always)]
    fn deliver_range(
        &mut self,
        start: u64,
        data: &[u8],
        upto: u64,
        sink: &mut impl FnMut(Event<'_>),
    ) {
        let data_end = start + data.len() as u64;
        if self.next < data_end {
            let a = (self.next - start) as usize;
            let b = (upto.min(data_end) - start) as usize;
            sink(Event::Data(&data[a..b]));
        }
        if upto > data_end {
            let n = upto - self.next.max(data_end);
            self.counters.cut_bytes += n;
            sink(Event::Gap(n));
        }
        self.next = upto;
    }

    /// Delivers held segments that the stream has reached (held segments never overlap).
    #[inline(always)]
    fn drain(&mut self, sink: &mut impl FnMut(Event<'_>)) {
        // Most deliveries find nothing held: no call then.
        if !self.held.is_empty() {
            self.drain_held(sink);
        }
    }

    #[inline(never)]
    fn drain_held(&mut self, sink: &mut impl FnMut(Event<'_>)) {
        while let Some(first) = self.held.first() {
            if first.start > self.next {
                break;
            }
            let seg = self.held.remove(0);
            self.held.sub_bytes(seg.data.len() as u32);
            if self.held.is_empty() {
                self.free_held();
            }
            if seg.end() > self.next {
                self.deliver_range(seg.start, &seg.data, seg.end(), sink);
            }
        }
    }

    fn hold(
        &mut self,
        start: u64,
        data: &[u8],
        missing: u32,
        limits: &ReassemblyLimits,
        sink: &mut impl FnMut(Event<'_>),
    ) {
        let over = |h: &Self| {
            h.held.bytes() as usize + data.len() > limits.max_held_bytes
                || h.held.len() >= limits.max_held_segments
        };
        if over(self) {
            // Holes have not filled in time: give up on them, oldest first, say so, and
            // move on until this segment fits (or is itself next in the stream).
            self.counters.ooo_overflows += 1;
            self.counters.anomalies += 1;
            while start > self.next && over(self) {
                let to = self.held.first().map_or(start, |h| h.start.min(start));
                self.gap_to(to, sink);
                self.drain(sink);
            }
            if start <= self.next {
                if start + data.len() as u64 + missing as u64 > self.next {
                    self.deliver_new(start, data, missing, sink);
                }
                return;
            }
        }
        // Hold only the ranges no held segment covers yet: bytes seen first win.
        let end = start + data.len() as u64 + missing as u64;
        let data_end = start + data.len() as u64;
        let mut cur = start;
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        for h in self.held.iter() {
            if h.end() <= cur {
                continue;
            }
            if h.start >= end {
                break;
            }
            if h.start > cur {
                pieces.push((cur, h.start));
            }
            cur = cur.max(h.end());
        }
        if cur < end {
            pieces.push((cur, end));
        }
        for (a, b) in pieces {
            let (da, db) = (a.min(data_end), b.min(data_end));
            let bytes = &data[(da - start) as usize..(db - start) as usize];
            let seg = HeldSegment {
                start: a,
                data: bytes.to_vec(),
                missing: (b - a.max(db)) as u32,
            };
            let at = self.held.partition_point(|h| h.start < a);
            self.held.add_bytes(seg.data.len() as u32);
            self.held.insert(at, seg);
        }
    }

    fn gap_to(&mut self, to: u64, sink: &mut impl FnMut(Event<'_>)) {
        if to > self.next {
            let n = to - self.next;
            self.counters.gaps += 1;
            self.counters.anomalies += 1;
            self.counters.gap_bytes += n;
            sink(Event::Gap(n));
            self.next = to;
        }
    }

    /// The peer acknowledged `ack`: bytes before it reached the peer, so a hole before it
    /// will never be filled in this capture.
    #[inline]
    pub fn acked(&mut self, ack: u32, limits: &ReassemblyLimits, sink: &mut impl FnMut(Event<'_>)) {
        let Some(base) = self.base.get() else { return };
        let mut to = self.offset(base, ack);
        self.peer_ack = Some(ack);
        if self.settle(to) {
            return;
        }
        if let Some(f) = self.fin_at() {
            // The FIN occupies one sequence number.
            to = to.min(f as i64);
        }
        if to <= self.next as i64 || to - self.next as i64 > limits.max_seq_ahead as i64 {
            return;
        }
        let to = to as u64;
        while self.next < to {
            let hole_end = self.held.first().map_or(to, |h| h.start.min(to));
            self.gap_to(hole_end, sink);
            self.drain(sink);
        }
    }

    /// End of the connection or of the capture: deliver what is held, declaring the holes;
    /// bytes missing before a seen FIN are a gap too.
    pub fn flush(&mut self, sink: &mut impl FnMut(Event<'_>)) {
        while let Some(first) = self.held.first() {
            let to = first.start;
            self.gap_to(to, sink);
            self.drain(sink);
        }
        if let Some(f) = self.fin_at() {
            self.gap_to(f, sink);
        }
    }

    /// Nothing held: no buffer either (the memory budget counts capacity). Out of line,
    /// so that the delivery path stays small enough to be inlined.
    #[cold]
    #[inline(never)]
    fn free_held(&mut self) {
        self.held = Held::default();
    }

    /// Forgets held data (the application is no longer interested in this stream).
    pub fn discard_held(&mut self) {
        self.held = Held::default();
    }

    /// Bytes currently held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held.bytes() as usize
    }

    /// What the held segments take in memory (their bytes and the list), for the budget.
    #[inline]
    pub fn memory_charge(&self) -> usize {
        self.held.0.as_ref().map_or(0, |h| {
            h.bytes as usize
                + std::mem::size_of::<HeldList>()
                + h.segs.capacity() * std::mem::size_of::<HeldSegment>()
        })
    }

    /// The memory budget is spent: every hole before held data is declared a gap now (as
    /// when the per-direction cap is reached) and the held bytes are delivered, so that
    /// nothing stays held. Returns whether anything was held.
    pub fn release_held(&mut self, sink: &mut impl FnMut(Event<'_>)) -> bool {
        if self.held.is_empty() {
            return false;
        }
        while let Some(first) = self.held.first() {
            let to = first.start;
            self.gap_to(to, sink);
            self.drain(sink);
        }
        self.held = Held::default();
        true
    }
}

#[cfg(test)]
mod tests;
