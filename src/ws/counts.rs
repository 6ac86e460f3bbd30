//! The counters of the sessions report, as one consumer of frame events: messages, bytes,
//! pings, pongs, the first Close frame, missing bytes, anomalies, and whether every count
//! is exact — for each direction.

use super::events::{FrameConsumer, GapEffect, StreamEvent};
use super::frame::opcode;
use crate::record::{Anomalies, Anomaly, At, Close, Side};

/// The report's counts of one direction (the record's `SideStats` takes them over).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideTotals {
    /// Complete data messages (text + binary); a fragmented message counts once.
    pub messages: u64,
    /// Payload bytes of the frames of those messages, as on the wire.
    pub bytes: u64,
    pub pings: u64,
    pub pongs: u64,
    /// The first Close frame this side sent (boxed: most of a session's life has none, and
    /// a million open sessions should not carry room for two each).
    pub close: Option<Box<Close>>,
    /// Bytes of this direction's stream missing from the capture.
    pub missing_bytes: u64,
}

/// What one direction's frames add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideCounts {
    pub stats: SideTotals,
    pub anomalies: Anomalies,
    /// A count of this direction is a lower bound.
    pub inexact: bool,
    /// The largest complete data message's payload bytes on the wire.
    pub largest_message: u64,
}

impl SideCounts {
    #[inline(always)]
    pub(crate) fn event(&mut self, ev: StreamEvent<'_>) {
        match ev {
            StreamEvent::Frame(f) => match f.header.opcode {
                opcode::PING => self.stats.pings += 1,
                opcode::PONG => self.stats.pongs += 1,
                _ => {}
            },
            StreamEvent::Message { bytes, .. } => {
                self.stats.messages += 1;
                self.stats.bytes += bytes;
                self.largest_message = self.largest_message.max(bytes);
            }
            StreamEvent::Close(c) => {
                if self.stats.close.is_none() {
                    self.stats.close = Some(Box::new(c.clone()));
                }
            }
            StreamEvent::Gap { bytes, effect } => {
                self.stats.missing_bytes += bytes;
                if matches!(
                    effect,
                    GapEffect::InsideClosePayload | GapEffect::FramingLost
                ) {
                    self.inexact = true;
                }
            }
            StreamEvent::Anomaly(a) => {
                self.anomalies.insert(a);
                if a == Anomaly::FramingLost {
                    self.inexact = true;
                }
            }
        }
    }
}

/// Both directions' counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub client: SideCounts,
    pub server: SideCounts,
}

impl Counts {
    #[inline(always)]
    pub fn side(&mut self, side: Side) -> &mut SideCounts {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }
}

impl FrameConsumer for Counts {
    #[inline]
    fn event(&mut self, side: Side, _at: At, ev: StreamEvent<'_>) {
        self.side(side).event(ev);
    }
}
