//! The session record's facts beyond the report's counters, as one consumer of frame
//! events: when each side last sent a data frame, how many messages each side had sent
//! when the first Close frame came, the largest message, ping→pong round trips, and where
//! each anomaly of the frames was first seen. The summary's findings are drawn from these.

use std::collections::VecDeque;

use super::events::{FrameConsumer, StreamEvent};
use super::frame::opcode;
use crate::config::{MAX_PENDING_PINGS, MAX_RTT_SAMPLES};
use crate::record::{AnomalyMarks, At, PingRtt, Side};

/// Round trips of one side's pings, with bounded memory: exact up to
/// [`MAX_RTT_SAMPLES`] samples, then a regular subsample (every `stride`-th answer).
#[derive(Clone, Debug, Default)]
struct Rtt {
    samples: Vec<i64>,
    stride: u64,
    answered: u64,
    min: i64,
    max: i64,
}

impl Rtt {
    fn add(&mut self, ns: i64) {
        if self.answered == 0 {
            self.min = ns;
            self.max = ns;
            self.stride = 1;
        } else {
            self.min = self.min.min(ns);
            self.max = self.max.max(ns);
        }
        if self.answered.is_multiple_of(self.stride) {
            if self.samples.len() == MAX_RTT_SAMPLES {
                // Keep every other sample (those at multiples of the doubled stride).
                let mut i = 0;
                self.samples.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
            if self.answered.is_multiple_of(self.stride) {
                self.samples.push(ns);
            }
        }
        self.answered += 1;
    }

    fn median(&self) -> i64 {
        if self.samples.is_empty() {
            return 0;
        }
        let mut s = self.samples.clone();
        s.sort_unstable();
        s[(s.len() - 1) / 2]
    }
}

/// The pings of one side: those waiting for a pong, and the round trips of the answered.
#[derive(Clone, Debug, Default)]
struct Pings {
    /// Pings this side sent that wait for the other side's pong, oldest first.
    pending: VecDeque<At>,
    /// Pings beyond `MAX_PENDING_PINGS` waiting at once (their times are not kept).
    pending_untimed: u64,
    /// The pings waiting when the session ended (its first Close frame, FIN or RST):
    /// how many, and the oldest. A pong that comes later does not answer them in time.
    pending_at_end: Option<(u64, Option<At>)>,
    rtt: Rtt,
}

impl Pings {
    /// The pings waiting now: how many, and the oldest.
    fn pending_now(&self) -> (u64, Option<At>) {
        (
            self.pending.len() as u64 + self.pending_untimed,
            self.pending.front().copied(),
        )
    }
}

/// What one side's frames showed.
#[derive(Clone, Debug, Default)]
pub struct SideFacts {
    /// This side's last data frame (packet 0: none yet; packets are numbered from 1).
    last_data: At,
    /// Allocated at this side's first ping (most sessions' state stays small).
    pings: Option<Box<Pings>>,
}

impl SideFacts {
    /// Where this side's last data frame ended, if it sent one.
    pub fn last_data(&self) -> Option<At> {
        (self.last_data.packet != 0).then_some(self.last_data)
    }

    /// The round trips of this side's pings, and the pings unanswered when the session
    /// ended (or when the capture ended, if it never did).
    pub fn ping_rtt(&self) -> PingRtt {
        let Some(p) = &self.pings else {
            return PingRtt::default();
        };
        let (unanswered, first_unanswered) = p.pending_at_end.unwrap_or(p.pending_now());
        PingRtt {
            answered: p.rtt.answered,
            min_ns: p.rtt.min,
            p50_ns: p.rtt.median(),
            max_ns: p.rtt.max,
            unanswered,
            first_unanswered,
        }
    }

    fn ping(&mut self, at: At) {
        let p = self.pings.get_or_insert_with(Default::default);
        if p.pending.len() < MAX_PENDING_PINGS && p.pending_untimed == 0 {
            p.pending.push_back(at);
        } else {
            p.pending_untimed += 1;
        }
    }

    /// The peer's pong answers this side's oldest waiting ping.
    fn pong(&mut self, at: At) {
        let Some(p) = &mut self.pings else { return };
        if let Some(ping) = p.pending.pop_front() {
            p.rtt.add(at.ts_ns - ping.ts_ns);
        } else if p.pending_untimed > 0 {
            p.pending_untimed -= 1;
        }
    }

    fn ended(&mut self) {
        if let Some(p) = &mut self.pings {
            if p.pending_at_end.is_none() {
                p.pending_at_end = Some(p.pending_now());
            }
        }
    }
}

/// Both sides' facts, and the anomalies of the frames with their first packet.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub client: SideFacts,
    pub server: SideFacts,
    /// (messages, bytes) the client and the server had sent when the session's first
    /// Close frame was seen (taken from the report's counters, see [`Facts::close_seen`]);
    /// allocated then (an open session carries 8 bytes for it, not 48).
    before_close: Option<Box<[(u64, u64); 2]>>,
    pub marks: AnomalyMarks,
}

impl Facts {
    /// The first Close frame of the session: `counts` are (messages, bytes) of the
    /// client and of the server at that moment.
    #[inline]
    pub fn close_seen(&mut self, counts: [(u64, u64); 2]) {
        if self.before_close.is_none() {
            self.before_close = Some(Box::new(counts));
        }
        self.ended();
    }

    /// Whether the session's first Close frame has been seen.
    #[inline(always)]
    pub fn close_seen_yet(&self) -> bool {
        self.before_close.is_some()
    }

    /// (messages, bytes) `side` had sent when the session's first Close frame was seen.
    pub fn before_close(&self, side: Side) -> Option<(u64, u64)> {
        self.before_close.as_deref().map(|b| b[side as usize])
    }

    /// The session ended (its first Close frame, FIN or RST): the pings waiting now were
    /// not answered in time.
    pub fn ended(&mut self) {
        self.client.ended();
        self.server.ended();
    }

    /// A frame of `side` ended in packet `at`.
    #[inline(always)]
    pub fn frame(&mut self, side: Side, at: At, op: u8) {
        match op {
            opcode::TEXT | opcode::BINARY | opcode::CONTINUATION => {
                self.side_mut(side).last_data = at
            }
            opcode::PING => self.side_mut(side).ping(at),
            opcode::PONG => self.side_mut(side.other()).pong(at),
            _ => {}
        }
    }

    pub fn side(&self, side: Side) -> &SideFacts {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    #[inline(always)]
    fn side_mut(&mut self, side: Side) -> &mut SideFacts {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }
}

/// What the counters do not keep. The messages before the first Close frame are taken
/// from the counters by the session's consumers ([`Facts::close_seen`]).
impl FrameConsumer for Facts {
    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        match ev {
            StreamEvent::Frame(f) => self.frame(side, at, f.header.opcode),
            StreamEvent::Anomaly(a) => self.marks.note(a, at.packet),
            StreamEvent::Message { .. } | StreamEvent::Close(_) | StreamEvent::Gap { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_median_is_exact_then_subsampled() {
        let mut r = Rtt::default();
        for ns in [5, 1, 9, 3, 7] {
            r.add(ns);
        }
        assert_eq!((r.min, r.median(), r.max, r.answered), (1, 5, 9, 5));
        let mut r = Rtt::default();
        for ns in 0..1000 {
            r.add(ns);
        }
        assert!(r.samples.len() <= MAX_RTT_SAMPLES);
        assert_eq!((r.min, r.max, r.answered), (0, 999, 1000));
        let m = r.median();
        assert!(
            (450..=550).contains(&m),
            "median of a regular subsample: {m}"
        );
    }

    #[test]
    fn pongs_answer_pings_in_order_and_unanswered_are_counted() {
        let mut f = Facts::default();
        let at = |packet: u64, ms: i64| At {
            packet,
            ts_ns: ms * 1_000_000,
        };
        let h = |op: u8| {
            StreamEvent::Frame(crate::ws::events::FrameEvent {
                header: crate::ws::frame::FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: op,
                    masking_key: None,
                    payload_len: 0,
                    header_len: 2,
                    non_minimal_len: false,
                    len_msb_set: false,
                },
                damaged: false,
            })
        };
        f.event(Side::Client, at(1, 0), h(opcode::PING));
        f.event(Side::Client, at(2, 10), h(opcode::PING));
        f.event(Side::Server, at(3, 4), h(opcode::PONG));
        f.event(Side::Client, at(4, 30), h(opcode::PING));
        // An unsolicited pong from the client answers nothing of the server's.
        f.event(Side::Client, at(5, 31), h(opcode::PONG));
        let r = f.client.ping_rtt();
        assert_eq!((r.answered, r.min_ns, r.unanswered), (1, 4_000_000, 2));
        assert_eq!(r.first_unanswered, Some(at(2, 10)));
        assert_eq!(f.server.ping_rtt().answered, 0);
    }
}
