//! One direction's frame stream (RFC 6455 §5): frame boundaries, message assembly
//! (§5.4), control frames (§5.5) and the Close frame (§5.5.1), without copying payload.
//! Only Close payloads (at most 125 bytes on a valid frame) are kept, unmasked in place.
//!
//! The state machine takes in-order stream bytes and gaps; it never sees packets. What it
//! finds goes to a consumer as events (`events.rs`).

use std::num::NonZeroU8;

use super::close::{escape_reason, is_valid_close_code, unmask, MAX_CONTROL_PAYLOAD};
use super::events::{FrameConsumer, FrameEvent, GapEffect, StreamEvent};
use super::frame::{frame_header, opcode, FrameHeader, HeaderCarry};
use crate::config::MAX_CLOSE_KEPT;
use crate::record::{Anomaly, At, Close, Side};

/// The frame whose payload is being passed over.
#[derive(Clone, Copy, Debug)]
struct Current {
    header: FrameHeader,
    /// Payload bytes not yet seen.
    remaining: u64,
}

/// Whether frame boundaries are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// Boundaries known.
    Known,
    /// The next bytes should start a frame (after a handshake head that was cut off);
    /// if they do not look like one, framing is lost.
    AlignPending,
    /// Lost in a gap; waiting for a segment boundary where whole frames start again.
    Lost,
    /// Found again: the first frames may continue a message whose start was lost.
    AfterResync,
    /// Picked up mid-stream, before the first frame was found: like `Lost`, but finding
    /// frames is the start, not a resync.
    Unstarted,
    /// Picked up mid-stream at a frame: a message in flight before it is not counted.
    Started,
}

/// What RSV1 may mean in this direction (RFC 6455 §5.2: only an extension defines it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rsv1 {
    /// No extension was negotiated: RSV1 is a violation.
    Reserved,
    /// An extension that uses it was negotiated (RFC 7692 permessage-deflate).
    Negotiated,
    /// The handshake was not seen: RSV1 on a message's first frame may be compression
    /// with unknown parameters (`compressed_context_unknown`).
    Unknown,
}

/// The Close payload bytes kept so far (unmasked).
#[derive(Debug, Default)]
struct KeptClose(Vec<u8>);

/// Frame-level state of one direction.
#[derive(Debug)]
pub struct FrameStream {
    side: Side,
    /// What RSV1 may mean.
    rsv1: Rsv1,
    /// Header bytes carried over from the previous delivery.
    carry: HeaderCarry,
    current: Option<Current>,
    /// Allocated at the first Close frame: most of a session's life has none (boxed, so
    /// that an open session carries 8 bytes for it, not 24).
    close_payload: Option<Box<KeptClose>>,
    close_len: u16,
    /// This side has sent its first Close frame.
    closed: bool,
    /// Some of the current frame's payload fell into a gap (beside `current`, not in it:
    /// the flag would cost 8 bytes there).
    damaged: bool,
    /// Data message being assembled from fragments: its opcode (1 or 2), and its payload
    /// bytes so far in `message_bytes` (apart, so that the opcode packs with the other
    /// bytes: 8 bytes less a direction than a tuple).
    message: Option<NonZeroU8>,
    message_bytes: u64,
    sync: Sync,
}

impl FrameStream {
    pub fn new(side: Side) -> Self {
        FrameStream {
            side,
            rsv1: Rsv1::Reserved,
            carry: HeaderCarry::default(),
            current: None,
            close_payload: None,
            close_len: 0,
            closed: false,
            damaged: false,
            message: None,
            message_bytes: 0,
            sync: Sync::Known,
        }
    }

    fn is_client(&self) -> bool {
        self.side == Side::Client
    }

    /// A data message unfinished at this point: its bytes announced so far (the frames
    /// completed plus the whole length of a data frame in progress). `None` when no data
    /// message is in progress, or when framing is lost.
    pub fn unfinished_message(&self) -> Option<u64> {
        if matches!(self.sync, Sync::Lost) {
            return None;
        }
        let current = self
            .current
            .map(|c| (c.header.opcode, c.header.payload_len));
        let message = self.message.map(|op| (op, self.message_bytes));
        match (message, current) {
            (Some((_, done)), Some((opcode::CONTINUATION, n))) => Some(done + n),
            (Some((_, done)), _) => Some(done),
            (None, Some((opcode::TEXT | opcode::BINARY, n))) => Some(n),
            _ => None,
        }
    }

    pub fn allow_rsv1(&mut self) {
        self.rsv1 = Rsv1::Negotiated;
    }

    /// The handshake was not seen: whether RSV1 was negotiated is unknown.
    pub fn rsv1_unknown(&mut self) {
        self.rsv1 = Rsv1::Unknown;
    }

    /// The stream resumes after a handshake head that was cut off: the next bytes should
    /// start a frame. If they do not look like one, framing is treated as lost.
    pub fn expect_frame_start(&mut self) {
        self.sync = Sync::AlignPending;
    }

    /// Where frames start is unknown (the bytes before were not captured): framing is
    /// found at the first segment that is a run of whole, plausible frames from this side.
    pub fn find_framing(&mut self) {
        self.sync = Sync::Lost;
    }

    /// Whether frame boundaries are known now (framing was found, or never lost).
    pub fn framing_found(&self) -> bool {
        matches!(self.sync, Sync::Known | Sync::AfterResync | Sync::Started)
    }

    /// Whether a frame or a fragmented message was started and not finished; `None` when
    /// frame boundaries are not known.
    pub fn in_progress(&self) -> Option<bool> {
        self.framing_found()
            .then(|| self.current.is_some() || self.message.is_some() || !self.carry.is_empty())
    }

    /// Frame boundaries are not known yet (picked up mid-stream): wait for a segment
    /// boundary where whole frames start.
    pub fn start_lost(&mut self) {
        self.sync = Sync::Unstarted;
    }

    /// The next bytes start a frame (mid-stream, where a chain of frames was recognised).
    pub fn start_known(&mut self) {
        self.sync = Sync::Started;
    }

    /// In-order bytes of this direction, as the reassembler delivers them: each delivery
    /// is (the rest of) one TCP segment, the place where lost framing may resume. `at` is
    /// the packet they came in.
    pub fn data<C: FrameConsumer>(&mut self, mut d: &[u8], at: At, c: &mut C) {
        if self.sync == Sync::AlignPending && !d.is_empty() {
            if self.plausible_header(d) {
                self.sync = Sync::Known;
            } else {
                self.sync = Sync::Lost;
                c.event(self.side, at, StreamEvent::Anomaly(Anomaly::FramingLost));
            }
        }
        if self.sync == Sync::Lost {
            if !self.plausible_framing(d) {
                return;
            }
            self.sync = Sync::AfterResync;
            c.event(self.side, at, StreamEvent::Anomaly(Anomaly::Resync));
        }
        if self.sync == Sync::Unstarted {
            if !self.plausible_framing(d) {
                return;
            }
            self.sync = Sync::Started;
        }
        while !d.is_empty() {
            if self.current.is_some() {
                let n = self.payload(d, c);
                d = &d[n..];
                if self.current.is_some_and(|cur| cur.remaining == 0) {
                    self.complete_frame(at, c);
                }
                continue;
            }
            // A frame header, perhaps continued from the previous delivery.
            let header = if !self.carry.is_empty() {
                match self.carry.complete(&mut d) {
                    Some(h) => h,
                    None => continue,
                }
            } else {
                match frame_header(d) {
                    Ok((rest, h)) => {
                        d = rest;
                        h
                    }
                    Err(_) => {
                        // Incomplete: keep the header bytes for the next delivery.
                        self.carry.keep(d);
                        return;
                    }
                }
            };
            self.start_frame(header, at, c);
            if header.payload_len == 0 {
                self.complete_frame(at, c);
            }
        }
    }

    /// Passes over the current frame's payload in `d`: keeps a Close payload, hands the
    /// bytes to consumers that want them. Returns how many bytes of `d` it took.
    #[inline]
    fn payload<C: FrameConsumer>(&mut self, d: &[u8], c: &mut C) -> usize {
        let Some(cur) = &mut self.current else {
            return 0;
        };
        let n = (cur.remaining.min(d.len() as u64)) as usize;
        let pos = cur.header.payload_len - cur.remaining;
        if cur.header.opcode == opcode::CLOSE {
            let pos = pos as usize;
            let keep = MAX_CLOSE_KEPT.saturating_sub(pos).min(n);
            if keep > 0 {
                let kept = &mut self.close_payload.get_or_insert_with(Box::default).0;
                if kept.len() < pos + keep {
                    kept.resize(pos + keep, 0);
                }
                let dst = &mut kept[pos..pos + keep];
                dst.copy_from_slice(&d[..keep]);
                if let Some(k) = cur.header.masking_key {
                    unmask(dst, k, pos);
                }
                self.close_len = (pos + keep) as u16;
            }
        }
        if c.wants_payload() {
            c.payload(self.side, &cur.header, pos, &d[..n]);
        }
        cur.remaining -= n as u64;
        n
    }

    /// How many of the next bytes will be passed over without being read: the rest of a
    /// frame payload (not a Close frame's) that no consumer wants
    /// ([`FrameConsumer::payload_wanted`]). Such bytes need not be at hand: a wss:// record
    /// wholly inside them is authenticated but not decrypted (`tls::PlaintextSink`).
    pub fn unread<C: FrameConsumer>(&self, c: &C) -> u64 {
        if !self.framing_found() || !self.carry.is_empty() {
            return 0;
        }
        match &self.current {
            Some(cur)
                if cur.header.opcode != opcode::CLOSE
                    && !c.payload_wanted(self.side, &cur.header) =>
            {
                cur.remaining
            }
            _ => 0,
        }
    }

    /// `n` bytes of the current payload (at most [`unread`](Self::unread)), passed over as
    /// [`data`](Self::data) passes over bytes nobody wants, completed by the packet `at`.
    pub fn pass_over<C: FrameConsumer>(&mut self, n: u64, at: At, c: &mut C) {
        let Some(cur) = &mut self.current else {
            debug_assert!(n == 0, "{n} bytes passed over outside a payload");
            return;
        };
        debug_assert!(
            n <= cur.remaining,
            "{n} bytes passed over of {}",
            cur.remaining
        );
        cur.remaining -= n.min(cur.remaining);
        if cur.remaining == 0 {
            self.complete_frame(at, c);
        }
    }

    /// `n` bytes of this direction are missing (noticed at packet `at`).
    pub fn gap<C: FrameConsumer>(&mut self, n: u64, at: At, c: &mut C) {
        if matches!(self.sync, Sync::Lost | Sync::Unstarted) {
            c.event(
                self.side,
                at,
                StreamEvent::Gap {
                    bytes: n,
                    effect: GapEffect::NotFramed,
                },
            );
            return;
        }
        if self.carry.is_empty() {
            if let Some(cur) = &mut self.current {
                if cur.remaining >= n {
                    // The gap lies inside a payload that is only counted: nothing is lost,
                    // unless the payload was a Close frame's.
                    cur.remaining -= n;
                    self.damaged = true;
                    let effect = if cur.header.opcode == opcode::CLOSE {
                        GapEffect::InsideClosePayload
                    } else {
                        GapEffect::InsidePayload
                    };
                    let done = cur.remaining == 0;
                    c.event(self.side, at, StreamEvent::Gap { bytes: n, effect });
                    if done {
                        self.complete_frame(at, c);
                    }
                    return;
                }
            }
        }
        // Frame boundaries are gone: counts from here are lower bounds.
        c.event(
            self.side,
            at,
            StreamEvent::Gap {
                bytes: n,
                effect: GapEffect::FramingLost,
            },
        );
        c.event(self.side, at, StreamEvent::Anomaly(Anomaly::FramingLost));
        self.sync = Sync::Lost;
        self.current = None;
        self.carry.clear();
        self.message = None;
    }

    /// Could `d` start with a frame header from this side? A header cut short is judged
    /// on the bytes it has: the first gives FIN, RSV and the opcode, the second the mask bit.
    fn plausible_header(&self, d: &[u8]) -> bool {
        match frame_header(d) {
            Ok((_, h)) => self.plausible(&h),
            Err(_) => {
                let mut b = [0u8; 2];
                b[..d.len().min(2)].copy_from_slice(&d[..d.len().min(2)]);
                if d.len() < 2 {
                    // Assume the mask bit this side should have.
                    b[1] = if self.is_client() { 0x80 } else { 0 };
                }
                let full = [b[0], b[1] & 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                frame_header(&full).is_ok_and(|(_, h)| self.plausible(&h))
            }
        }
    }

    /// A header this side could send: defined opcode, the right mask bit, RSV only as
    /// negotiated, control frames short and unfragmented, a valid 64-bit length.
    fn plausible(&self, h: &FrameHeader) -> bool {
        let control = opcode::is_control(h.opcode);
        !(opcode::is_reserved(h.opcode)
            || h.masking_key.is_some() != self.is_client()
            || (h.rsv != 0 && !(self.rsv1 != Rsv1::Reserved && h.rsv == 0b100 && !control))
            || (control && (!h.fin || h.payload_len > MAX_CONTROL_PAYLOAD as u64))
            || h.len_msb_set)
    }

    /// Could `d` be a run of whole frames (ending exactly at its end) from this side?
    fn plausible_framing(&self, mut d: &[u8]) -> bool {
        let mut frames = 0;
        while !d.is_empty() {
            let Ok((rest, h)) = frame_header(d) else {
                return false;
            };
            if !self.plausible(&h) || h.payload_len > rest.len() as u64 {
                return false;
            }
            d = &rest[h.payload_len as usize..];
            frames += 1;
        }
        frames > 0
    }

    fn start_frame<C: FrameConsumer>(&mut self, h: FrameHeader, at: At, c: &mut C) {
        let control = opcode::is_control(h.opcode);
        let side = self.side;
        let mut flag = |a: Anomaly| c.event(side, at, StreamEvent::Anomaly(a));
        // §5.5.1: after sending a Close frame, an endpoint sends no more data frames
        // (control frames such as a Pong are not forbidden).
        if self.closed && !control {
            flag(Anomaly::DataAfterClose);
        }
        match (h.masking_key.is_some(), self.side == Side::Client) {
            (false, true) => flag(Anomaly::UnmaskedClientFrame),
            (true, false) => flag(Anomaly::MaskedServerFrame),
            _ => {}
        }
        // RFC 7692 §6.1: RSV1 marks a compressed message, on its first frame only.
        let rsv1_ok = self.rsv1 != Rsv1::Reserved
            && h.rsv == 0b100
            && !control
            && h.opcode != opcode::CONTINUATION;
        if h.rsv != 0 && !rsv1_ok {
            flag(Anomaly::ReservedBitsSet);
        } else if h.rsv != 0 && self.rsv1 == Rsv1::Unknown {
            flag(Anomaly::CompressedContextUnknown);
        }
        if opcode::is_reserved(h.opcode) {
            flag(Anomaly::ReservedOpcode);
        }
        if h.len_msb_set {
            flag(Anomaly::InvalidPayloadLength);
        }
        if h.non_minimal_len {
            flag(Anomaly::NonMinimalLength);
        }
        if control {
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                flag(Anomaly::ControlFrameTooLong);
            }
            if !h.fin {
                flag(Anomaly::FragmentedControlFrame);
            }
        }
        if h.opcode == opcode::CLOSE {
            self.close_len = 0;
        }
        self.current = Some(Current {
            header: h,
            remaining: h.payload_len,
        });
        self.damaged = false;
    }

    fn complete_frame<C: FrameConsumer>(&mut self, at: At, c: &mut C) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let h = cur.header;
        c.event(
            self.side,
            at,
            StreamEvent::Frame(FrameEvent {
                header: h,
                damaged: self.damaged,
            }),
        );
        match h.opcode {
            opcode::TEXT | opcode::BINARY => {
                if self.message.is_some() {
                    // §5.4: a new message may not start inside a fragmented one.
                    c.event(
                        self.side,
                        at,
                        StreamEvent::Anomaly(Anomaly::UnfinishedMessage),
                    );
                }
                if matches!(self.sync, Sync::AfterResync | Sync::Started) {
                    self.sync = Sync::Known;
                }
                self.message = NonZeroU8::new(h.opcode);
                self.message_bytes = h.payload_len;
                if h.fin {
                    self.finish_message(at, c);
                }
            }
            opcode::CONTINUATION => match self.message {
                Some(_) => {
                    self.message_bytes += h.payload_len;
                    if h.fin {
                        self.finish_message(at, c);
                    }
                }
                // Mid-stream: the rest of a message whose start was before the capture's.
                None if self.sync == Sync::Started => {
                    if h.fin {
                        self.sync = Sync::Known;
                    }
                }
                None if self.sync == Sync::AfterResync => {
                    // The start of this message was in the gap: it happened, but its
                    // bytes are only partly known (and so is its type).
                    if h.fin {
                        self.sync = Sync::Known;
                        c.event(
                            self.side,
                            at,
                            StreamEvent::Message {
                                opcode: opcode::CONTINUATION,
                                bytes: h.payload_len,
                            },
                        );
                    }
                }
                None => c.event(
                    self.side,
                    at,
                    StreamEvent::Anomaly(Anomaly::UnexpectedContinuation),
                ),
            },
            opcode::CLOSE => self.close_frame(at, self.damaged, h.payload_len, c),
            _ => {}
        }
    }

    fn finish_message<C: FrameConsumer>(&mut self, at: At, c: &mut C) {
        if let Some(opcode) = self.message.take() {
            let (opcode, bytes) = (opcode.get(), self.message_bytes);
            c.event(self.side, at, StreamEvent::Message { opcode, bytes });
        }
    }

    fn close_frame<C: FrameConsumer>(
        &mut self,
        at: At,
        damaged: bool,
        payload_len: u64,
        c: &mut C,
    ) {
        if self.closed {
            return;
        }
        self.closed = true;
        let kept = self.close_payload.as_deref().map_or(&[][..], |k| &k.0[..]);
        let mut p = &kept[..self.close_len as usize];
        if (p.len() as u64) < payload_len && !damaged {
            // Kept only in part: do not let the cut split a UTF-8 sequence.
            if let Err(e) = std::str::from_utf8(p) {
                if e.error_len().is_none() {
                    p = &p[..e.valid_up_to()];
                }
            }
        }
        let side = self.side;
        let mut flag = |a: Anomaly| c.event(side, at, StreamEvent::Anomaly(a));
        let (code, reason_bytes) = match payload_len {
            0 => (None, &p[..0]),
            1 => {
                flag(Anomaly::CloseTooShort);
                (None, &p[..0])
            }
            _ if p.len() >= 2 => (Some(u16::from_be_bytes([p[0], p[1]])), &p[2..]),
            _ => (None, &p[..0]),
        };
        if let Some(code) = code {
            if !is_valid_close_code(code) {
                flag(Anomaly::InvalidCloseCode);
            }
        }
        let mut reason = String::new();
        if !escape_reason(reason_bytes, &mut reason) && !damaged {
            flag(Anomaly::InvalidUtf8CloseReason);
        }
        let close = Close { code, reason, at };
        c.event(self.side, at, StreamEvent::Close(&close));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::counts::SideTotals;
    use crate::ws::counts::{Counts, SideCounts};

    /// A client stream and what its events add up to.
    struct Probe {
        fs: FrameStream,
        counts: Counts,
    }

    impl Probe {
        fn new(side: Side) -> Self {
            Probe {
                fs: FrameStream::new(side),
                counts: Counts::default(),
            }
        }
        fn at(packet: u64) -> At {
            At {
                packet,
                ts_ns: packet as i64 * 1000,
            }
        }
        fn data(&mut self, d: &[u8], packet: u64) {
            self.fs.data(d, Self::at(packet), &mut self.counts);
        }
        fn gap(&mut self, n: u64, packet: u64) {
            self.fs.gap(n, Self::at(packet), &mut self.counts);
        }
        fn side(&self) -> &SideCounts {
            match self.fs.side {
                Side::Client => &self.counts.client,
                Side::Server => &self.counts.server,
            }
        }
        fn stats(&self) -> &SideTotals {
            &self.side().stats
        }
    }

    fn frame(fin: bool, op: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        crate::ws::frame::wire_frame(fin, 0, op, payload, key)
    }

    fn session_bytes() -> Vec<u8> {
        let k = Some([9, 8, 7, 6]);
        let mut s = Vec::new();
        s.extend(frame(true, opcode::TEXT, b"hello", k));
        s.extend(frame(false, opcode::BINARY, &[1; 300], k));
        s.extend(frame(true, opcode::PING, b"p", k));
        s.extend(frame(true, opcode::CONTINUATION, &[2; 70000], k));
        s.extend(frame(true, opcode::PONG, b"", k));
        let mut close = 4001u16.to_be_bytes().to_vec();
        close.extend_from_slice("bye, \"all\"".as_bytes());
        s.extend(frame(true, opcode::CLOSE, &close, k));
        s
    }

    fn check(fs: &Probe) {
        assert_eq!(fs.stats().messages, 2);
        assert_eq!(fs.stats().bytes, 5 + 300 + 70000);
        assert_eq!((fs.stats().pings, fs.stats().pongs), (1, 1));
        let c = fs.stats().close().unwrap();
        assert_eq!((c.code, c.reason.as_str()), (Some(4001), "bye, \"all\""));
        assert!(fs.side().anomalies.is_empty(), "{:?}", fs.side().anomalies);
    }

    #[test]
    fn counts_messages_across_fragments_and_interleaved_control() {
        let mut fs = Probe::new(Side::Client);
        fs.data(&session_bytes(), 1);
        check(&fs);
    }

    #[test]
    fn every_split_point_gives_the_same_counts() {
        let s = session_bytes();
        for cut in (0..s.len()).step_by(7).chain([1, 2, 3, 13, 14, 15]) {
            let mut fs = Probe::new(Side::Client);
            fs.data(&s[..cut], 1);
            fs.data(&s[cut..], 2);
            check(&fs);
        }
        let mut fs = Probe::new(Side::Client);
        for b in s.chunks(1) {
            fs.data(b, 1);
        }
        check(&fs);
    }

    #[test]
    fn gap_inside_a_payload_keeps_counts_exact() {
        let s = session_bytes();
        // The 70000-byte continuation payload starts after 11+308+7+10 bytes.
        let start = 11 + 308 + 7 + 14;
        let mut fs = Probe::new(Side::Client);
        fs.data(&s[..start + 100], 1);
        fs.gap(5000, 2);
        fs.data(&s[start + 5100..], 2);
        check(&fs);
        assert!(!fs.side().inexact);
    }

    #[test]
    fn gap_over_a_header_loses_then_resyncs_on_segment_boundary() {
        let k = Some([1, 2, 3, 4]);
        let a = frame(true, opcode::TEXT, b"one", k);
        let b = frame(true, opcode::TEXT, b"two", k);
        let c = frame(true, opcode::CLOSE, &1000u16.to_be_bytes(), k);
        let mut fs = Probe::new(Side::Client);
        fs.data(&a, 1);
        fs.gap(b.len() as u64, 2);
        fs.data(&c, 3);
        assert_eq!(fs.stats().messages, 1);
        assert_eq!(fs.stats().close().unwrap().code, Some(1000));
        assert!(fs.side().inexact);
        assert!(fs.side().anomalies.contains(Anomaly::FramingLost));
        assert!(fs.side().anomalies.contains(Anomaly::Resync));
    }

    #[test]
    fn a_frame_or_message_left_unfinished_is_in_progress() {
        let k = Some([1, 2, 3, 4]);
        let whole = frame(true, opcode::TEXT, b"done", k);
        let first = frame(false, opcode::TEXT, b"part one", k);
        let mut fs = Probe::new(Side::Client);
        assert_eq!(fs.fs.in_progress(), Some(false));
        fs.data(&whole, 1);
        assert_eq!(fs.fs.in_progress(), Some(false));
        // Half a frame.
        fs.data(&whole[..3], 2);
        assert_eq!(fs.fs.in_progress(), Some(true));
        fs.data(&whole[3..], 3);
        assert_eq!(fs.fs.in_progress(), Some(false));
        // A fragmented message whose last fragment never came.
        fs.data(&first, 4);
        assert_eq!(fs.fs.in_progress(), Some(true));
        // Frame boundaries lost: not knowable.
        fs.gap(1000, 5);
        assert_eq!(fs.fs.in_progress(), None);
    }

    #[test]
    fn protocol_violations_are_named() {
        let mut fs = Probe::new(Side::Client);
        fs.data(&frame(true, opcode::TEXT, b"x", None), 1);
        fs.data(&frame(true, opcode::CONTINUATION, b"x", Some([0; 4])), 1);
        fs.data(&frame(false, opcode::PING, &[0; 126], Some([0; 4])), 1);
        fs.data(
            &frame(true, opcode::CLOSE, &[0x03, 0xed, 0xff], Some([0; 4])),
            1,
        );
        fs.data(&frame(true, opcode::TEXT, b"late", Some([0; 4])), 1);
        let got: Vec<_> = fs.side().anomalies.iter().map(|a| a.token()).collect();
        assert_eq!(
            got,
            [
                "unmasked_client_frame",
                "control_frame_too_long",
                "fragmented_control_frame",
                "unexpected_continuation",
                "invalid_close_code",
                "invalid_utf8_close_reason",
                "data_after_close"
            ]
        );
        assert_eq!(fs.stats().close().unwrap().reason, "\\xFF");
    }
}
