//! What a frame stream tells its consumers: one event per frame, message, Close frame,
//! gap and anomaly (a resync is the anomaly `framing_resync`), each with the packet (number and time) that completed it.
//!
//! Consumers are generic parameters of the stream's methods (static dispatch: no dynamic
//! call per frame). The counters of the sessions report are one consumer
//! (`counts.rs`); the per-frame timeline, permessage-deflate and the summary's statistics
//! are others.

use super::frame::FrameHeader;
use crate::record::{Anomaly, At, Close, Side};

/// One complete frame (RFC 6455 §5.2), without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEvent {
    pub header: FrameHeader,
    /// Some of its payload fell into a gap: only its length is known for those bytes.
    pub damaged: bool,
}

/// What happened in one direction's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// A frame ended.
    Frame(FrameEvent),
    /// A data message (text or binary, §5.6) ended with this frame: its payload bytes on
    /// the wire over all its frames (a lower bound when its start was lost in a gap).
    Message { opcode: u8, bytes: u64 },
    /// The first Close frame of this direction (§5.5.1).
    Close(&'a Close),
    /// `bytes` of the stream are missing from the capture.
    Gap { bytes: u64, effect: GapEffect },
    /// A protocol violation, or something that makes counts uncertain.
    Anomaly(Anomaly),
}

/// What a gap did to the frame stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapEffect {
    /// Before framing started (in a handshake head), or while framing was already lost.
    NotFramed,
    /// Inside a data or control payload that is only counted: nothing is lost.
    InsidePayload,
    /// Inside a Close frame's payload: its code or reason is partly unknown.
    InsideClosePayload,
    /// Frame boundaries went with it: counts from here are lower bounds until a resync.
    FramingLost,
}

/// Receives a direction's events. Every method has a default that ignores it.
pub trait FrameConsumer {
    /// An event of `side`'s stream, completed by the packet `at`.
    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        let _ = (side, at, ev);
    }

    /// Payload bytes of the current frame as on the wire (still masked for client frames),
    /// starting at `offset` in the frame's payload. Called only when
    /// [`wants_payload`](FrameConsumer::wants_payload) is true.
    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        let _ = (side, header, offset, bytes);
    }

    /// Whether [`payload`](FrameConsumer::payload) should be called (most consumers only count).
    #[inline]
    fn wants_payload(&self) -> bool {
        false
    }

    /// Whether [`payload`](FrameConsumer::payload) would do anything with `side`'s bytes of
    /// the frame `header` now. `false` lets the bytes be passed over unread
    /// (`FrameStream::unread`); the default, [`wants_payload`](FrameConsumer::wants_payload),
    /// is always safe.
    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        let _ = (side, header);
        self.wants_payload()
    }

    /// Bytes this consumer holds in buffers that can grow (an inflater window, a frame
    /// ring): counted against the memory budget (`flow::memory`).
    #[inline]
    fn memory_charge(&self) -> usize {
        0
    }

    /// The memory budget is spent: give up what is held and go on with less, saying in
    /// what this consumer reports that it did (the session gets `memory_budget` and
    /// `exact=false`). `at` is the connection's latest packet.
    #[inline]
    fn release_memory(&mut self, at: At) {
        let _ = at;
    }
}

/// Ignores everything.
impl FrameConsumer for () {}

/// A borrowed consumer.
impl<C: FrameConsumer + ?Sized> FrameConsumer for &mut C {
    #[inline(always)]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        (**self).event(side, at, ev);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        (**self).payload(side, header, offset, bytes);
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        (**self).wants_payload()
    }

    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        (**self).payload_wanted(side, header)
    }

    #[inline]
    fn memory_charge(&self) -> usize {
        (**self).memory_charge()
    }

    #[inline]
    fn release_memory(&mut self, at: At) {
        (**self).release_memory(at);
    }
}

/// A boxed consumer.
impl<C: FrameConsumer + ?Sized> FrameConsumer for Box<C> {
    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        (**self).event(side, at, ev);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        (**self).payload(side, header, offset, bytes);
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        (**self).wants_payload()
    }

    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        (**self).payload_wanted(side, header)
    }

    #[inline]
    fn memory_charge(&self) -> usize {
        (**self).memory_charge()
    }

    #[inline]
    fn release_memory(&mut self, at: At) {
        (**self).release_memory(at);
    }
}

/// Both consumers get every event, the first one first.
impl<A: FrameConsumer, B: FrameConsumer> FrameConsumer for (A, B) {
    #[inline(always)]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        self.0.event(side, at, ev);
        self.1.event(side, at, ev);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        if self.0.wants_payload() {
            self.0.payload(side, header, offset, bytes);
        }
        if self.1.wants_payload() {
            self.1.payload(side, header, offset, bytes);
        }
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        self.0.wants_payload() || self.1.wants_payload()
    }

    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        (self.0.wants_payload() && self.0.payload_wanted(side, header))
            || (self.1.wants_payload() && self.1.payload_wanted(side, header))
    }

    #[inline]
    fn memory_charge(&self) -> usize {
        self.0.memory_charge() + self.1.memory_charge()
    }

    #[inline]
    fn release_memory(&mut self, at: At) {
        self.0.release_memory(at);
        self.1.release_memory(at);
    }
}

/// An optional consumer: absent costs one branch per event.
impl<C: FrameConsumer> FrameConsumer for Option<C> {
    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        if let Some(c) = self {
            c.event(side, at, ev);
        }
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        if let Some(c) = self {
            c.payload(side, header, offset, bytes);
        }
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        self.as_ref().is_some_and(|c| c.wants_payload())
    }

    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        self.as_ref()
            .is_some_and(|c| c.payload_wanted(side, header))
    }

    #[inline]
    fn memory_charge(&self) -> usize {
        self.as_ref().map_or(0, |c| c.memory_charge())
    }

    #[inline]
    fn release_memory(&mut self, at: At) {
        if let Some(c) = self {
            c.release_memory(at);
        }
    }
}
