//! The counters of the sessions report, as one consumer of frame events: messages, bytes,
//! pings, pongs, the first Close frame, missing bytes, anomalies, and whether every count
//! is exact — for each direction.

use super::events::{FrameConsumer, GapEffect, StreamEvent};
use super::frame::opcode;
use crate::record::{Anomalies, Anomaly, At, Close, Side, SideStats};

/// What one direction's frames add up to: the fields of [`SideStats`], with the Close
/// frame boxed (most of a session's life has none, and a million open sessions should
/// not carry room for two each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideCounts {
    pub messages: u64,
    pub bytes: u64,
    pub pings: u64,
    pub pongs: u64,
    pub close: Option<Box<Close>>,
    pub missing_bytes: u64,
    pub anomalies: Anomalies,
    /// A count of this direction is a lower bound.
    pub inexact: bool,
    /// The largest complete data message's payload bytes on the wire.
    pub largest_message: u64,
}

impl SideCounts {
    /// What this direction sent, as the record has it.
    pub fn stats(&self) -> SideStats {
        SideStats {
            messages: self.messages,
            bytes: self.bytes,
            pings: self.pings,
            pongs: self.pongs,
            close: self.close.as_deref().cloned(),
            missing_bytes: self.missing_bytes,
            ..SideStats::default()
        }
    }

    fn event(&mut self, ev: StreamEvent<'_>) {
        match ev {
            StreamEvent::Frame(f) => match f.header.opcode {
                opcode::PING => self.pings += 1,
                opcode::PONG => self.pongs += 1,
                _ => {}
            },
            StreamEvent::Message { bytes, .. } => {
                self.messages += 1;
                self.bytes += bytes;
                self.largest_message = self.largest_message.max(bytes);
            }
            StreamEvent::Close(c) => {
                if self.close.is_none() {
                    self.close = Some(Box::new(c.clone()));
                }
            }
            StreamEvent::Gap { bytes, effect } => {
                self.missing_bytes += bytes;
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
