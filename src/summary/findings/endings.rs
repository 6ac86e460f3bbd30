//! How connections ended: `abrupt_disconnect` (FIN or RST without any Close frame),
//! `unanswered_close` (one Close frame, never answered, then FIN/RST), `half_open` (one
//! side ended, the other kept the connection long after), `capture_cut` (still open at the
//! end), `heartbeat_timeout` (pings without pongs, then the end) and `network_loss`
//! (retransmitted, out-of-order or missing segments, or data left unacknowledged at an
//! abnormal end).

use super::timers::end_label;
use super::{secs, sessions, Cause, Context, Ev, Finding, Named, Probe, Tally};
use crate::record::Side;
use crate::summary::dist::LogHist;
use crate::summary::row::{idx, Row, NONE};
use crate::verdict::{Outcome, TcpEnd};

/// The other side kept the connection this long after one side ended it (µs).
pub const HALF_OPEN_US: i64 = 2_000_000;
/// A heartbeat failure: the oldest unanswered ping waited at least this long (µs)...
pub const HEARTBEAT_MIN_WAIT_US: i64 = 500_000;
/// ...and at least this many times the session's median round trip.
pub const HEARTBEAT_RTT_FACTOR: i64 = 4;
/// Network loss: retransmitted segments (TCP's repairs: retransmissions, duplicates,
/// late arrivals) at least this share of a direction's payload segments...
pub const LOSS_SHARE: f64 = 0.01;
/// ...over at least this many segments, and at least this many repairs (one
/// retransmission is not a lossy path)...
pub const LOSS_MIN_SEGMENTS: u64 = 20;
pub const LOSS_MIN_RETRANSMITTED: u64 = 3;
/// ...in at least this many sessions (or this share of them, if fewer).
pub const LOSS_MIN_SESSIONS: u64 = 3;
pub const LOSS_MIN_SHARE_OF_SESSIONS: f64 = 0.2;

pub fn probes() -> Vec<Box<dyn Probe>> {
    vec![
        Box::new(Abrupt::default()),
        Box::new(Unanswered::default()),
        Box::new(HalfOpen::default()),
        Box::new(CaptureCut::default()),
        Box::new(Heartbeat::default()),
        Box::new(Loss::default()),
    ]
}

fn closes(r: &Row) -> usize {
    (r.close_code[0] != 0) as usize + (r.close_code[1] != 0) as usize
}

fn finding(
    cause: Cause,
    title: String,
    named: Named,
    evidence: Vec<(&'static str, Ev)>,
    advice: String,
) -> Option<Finding> {
    Some(Finding {
        cause,
        severity: cause.severity(),
        title,
        sessions: named.refs,
        sessions_total: named.total,
        evidence,
        advice,
    })
}

#[derive(Default)]
struct Abrupt {
    how: Tally,
}

impl Probe for Abrupt {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let abrupt = r.upgraded()
            && closes(r) == 0
            && matches!(r.outcome, Outcome::Reset | Outcome::NoCloseFrame);
        if abrupt {
            self.how.add(end_label(r));
        }
        abrupt
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        finding(
            Cause::AbruptDisconnect,
            format!(
                "{} ended without any Close frame: {}",
                sessions(named.total),
                self.how.text()
            ),
            named,
            vec![("ended_by", self.how.ev())],
            "TCP ended with no closing handshake (both endpoints report 1006). A FIN without a \
             Close frame: a process killed or an application that closes the socket instead of \
             the WebSocket; a RST: an abort (SO_LINGER 0, ws.terminate() with unread data, a \
             crash) or a middlebox. The side named sent the first FIN/RST."
                .to_string(),
        )
    }
}

#[derive(Default)]
struct Unanswered {
    who: Tally,
}

impl Probe for Unanswered {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        if !r.upgraded() || closes(r) != 1 || r.tcp_end == TcpEnd::Open {
            return false;
        }
        let s = if r.close_code[0] != 0 {
            Side::Client
        } else {
            Side::Server
        };
        let end = match r.tcp_end {
            TcpEnd::Rst => "RST",
            _ => "FIN",
        };
        self.who.add(format!(
            "{} sent Close {}, the {} never answered ({end} by {})",
            s.as_str(),
            r.close_code[idx(s)],
            s.other().as_str(),
            r.tcp_end_by.map_or("?", |b| b.as_str())
        ));
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        finding(
            Cause::UnansweredClose,
            format!(
                "{} with a Close frame never answered before TCP ended",
                sessions(named.total)
            ),
            named,
            vec![("closing", self.who.ev())],
            "RFC 6455 §7.1.4: an endpoint that receives a Close frame must answer with one. \
             The peer named did not (a client that drops the socket on a Close, a frozen \
             process, a proxy in between) — or the closing side dropped TCP without waiting \
             for the answer."
                .to_string(),
        )
    }
}

#[derive(Default)]
struct HalfOpen {
    kept: LogHist,
    who: Tally,
    to_end: u64,
}

impl HalfOpen {
    /// (the side that kept the connection, how long (µs), kept to the capture's end).
    fn kept(r: &Row, capture_end: i64) -> Option<(Side, i64, bool)> {
        if !r.upgraded() {
            return None;
        }
        // The first side to end: a Close frame or a FIN (a RST releases everything).
        let first = |s: usize| {
            [r.close_at[s], r.fin[s]]
                .into_iter()
                .filter(|&t| t != NONE)
                .min()
        };
        let (a, t1) = match (first(0), first(1)) {
            (Some(c), Some(s)) if s < c => (1, s),
            (Some(c), _) => (0, c),
            (None, Some(s)) => (1, s),
            (None, None) => return None,
        };
        let b = 1 - a;
        let release = [r.fin[b], r.rst[b], r.rst[a]]
            .into_iter()
            .filter(|&t| t != NONE)
            .min();
        let (until, open) = match release {
            Some(t) => (t, false),
            None => (capture_end.max(r.last), true),
        };
        let kept = until - t1;
        let side = if b == 0 { Side::Client } else { Side::Server };
        (kept >= HALF_OPEN_US).then_some((side, kept, open))
    }
}

impl Probe for HalfOpen {
    fn pick(&mut self, r: &Row, cx: &Context<'_>) -> bool {
        let Some((side, kept, open)) = Self::kept(r, cx.capture_end) else {
            return false;
        };
        self.kept.add(kept as u64);
        self.who.add(format!("{} kept it open", side.as_str()));
        if open {
            self.to_end += 1;
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        finding(
            Cause::HalfOpen,
            format!(
                "{} stayed open {} or more after one side ended them",
                sessions(named.total),
                secs(self.kept.min as i64)
            ),
            named,
            vec![
                ("kept_open_s", Ev::MicrosSpread(self.kept.clone())),
                ("who", self.who.ev()),
                ("open_at_capture_end", Ev::Count(self.to_end)),
            ],
            "One side sent its Close frame or FIN and the other kept the TCP connection: \
             sockets, memory and file descriptors not released. The side named should close \
             its socket after the closing handshake (a server closes first, §7.1.1), or use a \
             close timeout."
                .to_string(),
        )
    }
}

#[derive(Default)]
struct CaptureCut {
    open_for: LogHist,
}

impl Probe for CaptureCut {
    fn pick(&mut self, r: &Row, cx: &Context<'_>) -> bool {
        if r.outcome != Outcome::OpenAtEnd {
            return false;
        }
        self.open_for
            .add((cx.capture_end.max(r.last) - r.start).max(0) as u64);
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        finding(
            Cause::CaptureCut,
            format!(
                "{} still open when the capture ended",
                sessions(named.total)
            ),
            named,
            vec![("open_for_s", Ev::MicrosSpread(self.open_for.clone()))],
            "Their end is not in the capture (information, not a failure): capture longer, or \
             start the capture before the problem and stop it after."
                .to_string(),
        )
    }
}

#[derive(Default)]
struct Heartbeat {
    who: Tally,
    ends: Tally,
    waited: LogHist,
    unanswered: u64,
}

/// The side whose pings went unanswered before the end, and how long its oldest waiting
/// ping waited: the session's heartbeat failed.
pub fn heartbeat_failed(r: &Row) -> Option<(Side, i64)> {
    if r.ended == NONE || !r.upgraded() {
        return None;
    }
    // An end by a normal Close frame is someone's decision, not a heartbeat's.
    let normal = matches!(r.first_close(), Some((_, 1000 | 1001 | 1005)))
        && r.ended_by.is_some_and(|s| r.close_at[idx(s)] == r.ended);
    if normal {
        return None;
    }
    [Side::Client, Side::Server].into_iter().find_map(|s| {
        let i = idx(s);
        let first = r.first_unanswered[i];
        if r.pings_unanswered[i] == 0 || first == NONE || first > r.ended {
            return None;
        }
        let waited = r.ended - first;
        let rtt = if r.pings_answered[i] > 0 {
            r.rtt_p50[i]
        } else {
            0
        };
        (waited >= HEARTBEAT_MIN_WAIT_US && waited >= HEARTBEAT_RTT_FACTOR * rtt)
            .then_some((s, waited))
    })
}

impl Probe for Heartbeat {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let Some((s, waited)) = heartbeat_failed(r) else {
            return false;
        };
        self.who.add(format!("{}'s pings unanswered", s.as_str()));
        self.ends.add(end_label(r));
        self.waited.add(waited as u64);
        self.unanswered += r.pings_unanswered[idx(s)];
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        finding(
            Cause::HeartbeatTimeout,
            format!(
                "{} ended after pings went unanswered for {} or more",
                sessions(named.total),
                secs(self.waited.min as i64)
            ),
            named,
            vec![
                ("pinging", self.who.ev()),
                ("unanswered_pings", Ev::Count(self.unanswered)),
                ("waited_s", Ev::MicrosSpread(self.waited.clone())),
                ("ended_with", self.ends.ev()),
            ],
            "A side pinged and no pong came: the peer stopped reading (blocked event loop, \
             paused socket, overload), the path lost packets, or the peer was gone. Python \
             websockets closes with 1011 \"keepalive ping timeout\" after ping_timeout (20 s \
             by default); Node ws has no heartbeat unless the application adds one. Check the \
             peer's event loop and the network at these times."
                .to_string(),
        )
    }
}

#[derive(Default)]
struct Loss {
    segs: [u64; 2],
    retrans: [u64; 2],
    ooo: [u64; 2],
    gaps: [u64; 2],
    by_rate: u64,
    dead_peer: Tally,
}

impl Loss {
    /// Segments missing from the capture but acknowledged by the receiver (gaps) are the
    /// capture's loss, not the network's: only TCP's repairs count.
    fn rate_hit(r: &Row) -> bool {
        (0..2).any(|d| {
            r.segments[d] >= LOSS_MIN_SEGMENTS
                && r.retransmitted[d] >= LOSS_MIN_RETRANSMITTED
                && r.retransmitted[d] as f64 >= LOSS_SHARE * r.segments[d] as f64
        })
    }

    /// A side that kept sending data the peer never acknowledged, just before an abnormal
    /// end: it retransmitted after the peer's last payload and still had bytes unacknowledged.
    fn dead_peer(r: &Row) -> Option<Side> {
        if !r.outcome.is_abnormal() {
            return None;
        }
        [Side::Client, Side::Server].into_iter().find(|&s| {
            let (i, o) = (idx(s), idx(s.other()));
            r.unacked[i] > 0
                && r.last_retransmission[i] != NONE
                && r.last_retransmission[i] >= r.last_payload[o]
        })
    }
}

impl Probe for Loss {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let rate = Self::rate_hit(r);
        let dead = Self::dead_peer(r);
        if !rate && dead.is_none() {
            return false;
        }
        for d in 0..2 {
            self.segs[d] += r.segments[d];
            self.retrans[d] += r.retransmitted[d];
            self.ooo[d] += r.out_of_order[d];
            self.gaps[d] += r.gaps[d];
        }
        if rate {
            self.by_rate += 1;
        }
        if let Some(s) = dead {
            self.dead_peer.add(format!(
                "{} retransmitted unacknowledged data at the end",
                s.as_str()
            ));
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, cx: &Context<'_>) -> Option<Finding> {
        let enough = (LOSS_MIN_SESSIONS as f64)
            .min(LOSS_MIN_SHARE_OF_SESSIONS * cx.sessions as f64)
            .max(1.0);
        if (self.by_rate as f64) < enough && self.dead_peer.is_empty() {
            return None;
        }
        let share = |n: u64, d: usize| {
            if self.segs[d] == 0 {
                0.0
            } else {
                n as f64 / self.segs[d] as f64
            }
        };
        let mut evidence = Vec::new();
        let keys = [
            [
                "client_to_server_segments",
                "client_to_server_retransmitted",
                "client_to_server_out_of_order",
                "client_to_server_missing_from_capture",
            ],
            [
                "server_to_client_segments",
                "server_to_client_retransmitted",
                "server_to_client_out_of_order",
                "server_to_client_missing_from_capture",
            ],
        ];
        for (d, k) in keys.iter().enumerate() {
            evidence.push((k[0], Ev::Count(self.segs[d])));
            evidence.push((k[1], Ev::Share(share(self.retrans[d], d))));
            evidence.push((k[2], Ev::Share(share(self.ooo[d], d))));
            evidence.push((k[3], Ev::Count(self.gaps[d])));
        }
        evidence.push(("sessions_over_threshold", Ev::Count(self.by_rate)));
        if !self.dead_peer.is_empty() {
            evidence.push(("unanswered_data_at_end", self.dead_peer.ev()));
        }
        let worst = (0..2)
            .map(|d| share(self.retrans[d], d))
            .fold(0.0, f64::max);
        finding(
            Cause::NetworkLoss,
            format!(
                "{} saw packet loss: TCP retransmitted up to {:.1}% of a direction's segments",
                sessions(named.total),
                worst * 100.0
            ),
            named,
            evidence,
            format!(
                "TCP had to repair the path (threshold: {:.0}% of a direction's segments over at \
                 least {LOSS_MIN_SEGMENTS}, {LOSS_MIN_RETRANSMITTED} or more; segments missing from the capture but acknowledged \
                 are the capture's loss and do not count). Loss delays messages and heartbeats and can end \
                 sessions by timeouts; data left unacknowledged at an abnormal end means the \
                 peer or the path was gone. Check links, Wi-Fi, overloaded middleboxes; a \
                 capture on the other side tells where the loss happens.",
                LOSS_SHARE * 100.0
            ),
        )
    }
}
