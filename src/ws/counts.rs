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
    /// Ping and Pong frames: 32 bits (a million open sessions should not carry 16 bytes
    /// for counts that never get near 4 billion); a count that would pass `u32::MAX` stays
    /// there and makes this direction's counts inexact (a lower bound), never wrong.
    pub pings: u32,
    pub pongs: u32,
    /// The first Close frame and the missing bytes, boxed at the first of them: most of a
    /// session's life has neither, and a million open sessions should not carry room for
    /// them.
    rare: Option<Box<SideRare>>,
}

/// What [`SideTotals`] keeps boxed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SideRare {
    close: Option<Close>,
    missing_bytes: u64,
}

impl SideTotals {
    /// The first Close frame this side sent.
    pub fn close(&self) -> Option<&Close> {
        self.rare.as_ref().and_then(|r| r.close.as_ref())
    }

    /// Bytes of this direction's stream missing from the capture.
    pub fn missing_bytes(&self) -> u64 {
        self.rare.as_ref().map_or(0, |r| r.missing_bytes)
    }

    fn rare(&mut self) -> &mut SideRare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// What one direction's frames add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideCounts {
    pub stats: SideTotals,
    pub anomalies: Anomalies,
    /// A count of this direction is a lower bound.
    pub inexact: bool,
    /// The largest complete data message: its payload bytes on the wire, or in application
    /// bytes where the payload consumer sizes messages (it is kept here only, once, by
    /// [`Consumers`](super::session::Consumers)).
    pub largest_message: u64,
}

impl SideCounts {
    #[inline(always)]
    pub(crate) fn event(&mut self, ev: StreamEvent<'_>) {
        match ev {
            StreamEvent::Frame(f) => match f.header.opcode {
                opcode::PING => count_control(&mut self.stats.pings, &mut self.inexact),
                opcode::PONG => count_control(&mut self.stats.pongs, &mut self.inexact),
                _ => {}
            },
            StreamEvent::Message { bytes, .. } => {
                self.stats.messages += 1;
                self.stats.bytes += bytes;
            }
            StreamEvent::Close(c) => {
                if self.stats.close().is_none() {
                    self.stats.rare().close = Some(c.clone());
                }
            }
            StreamEvent::Gap { bytes, effect } => {
                if bytes > 0 {
                    self.stats.rare().missing_bytes += bytes;
                }
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

/// One more Ping or Pong in a 32-bit count: saturated at `u32::MAX`, which makes the
/// direction's counts a lower bound (`inexact`).
#[inline(always)]
fn count_control(n: &mut u32, inexact: &mut bool) {
    match n.checked_add(1) {
        Some(m) => *n = m,
        None => *inexact = true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_count_at_its_limit_stays_there_and_says_it_is_a_lower_bound() {
        let (mut n, mut inexact) = (u32::MAX - 1, false);
        count_control(&mut n, &mut inexact);
        assert_eq!((n, inexact), (u32::MAX, false));
        count_control(&mut n, &mut inexact);
        assert_eq!((n, inexact), (u32::MAX, true));
    }
}
