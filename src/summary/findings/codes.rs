//! What the Close codes and the handshake say: `policy_violation`, `server_error`,
//! `protocol_error`, `handshake_rejected`, and `server_shutdown` (1001/1012 from the
//! server, or many sessions of one server ended by it within seconds).

use std::collections::HashMap;

use super::{sessions, Cause, Context, Ev, Finding, Named, Probe, SessionRef, Tally};
use crate::net::Endpoint;
use crate::record::{Anomaly, Side};
use crate::summary::codes::describe;
use crate::summary::row::{flag, is_violation, Row, NONE};
use crate::verdict::Outcome;

/// Many sessions of one server ended by the server side within this window (µs)...
pub const MASS_END_WINDOW_US: i64 = 1_000_000;
/// Ends are counted in bins of this width (µs); windows slide by a bin.
const MASS_END_BIN_US: i64 = 100_000;
/// ...at least this many...
pub const MASS_END_MIN: u64 = 5;
/// ...and at least this share of the server's sessions alive when the window opened: a
/// restart or a crash.
pub const MASS_END_SHARE: f64 = 0.5;
/// (server, bin) counts remembered for mass ends.
const MAX_END_SECONDS: usize = 1 << 16;

/// Did the server end this session without a normal Close (no Close frame at all, or a
/// code other than 1000/1005)? Those are the ends a restart or a crash leaves.
fn server_side_break(r: &Row) -> bool {
    if r.ended == NONE || r.ended_by != Some(Side::Server) || !r.upgraded() {
        return false;
    }
    !matches!(r.first_close(), Some((Side::Server, 1000 | 1005)))
}

#[derive(Debug, Default)]
pub struct ShutdownScan {
    /// (server, bin) → sessions the server side ended then.
    ends: HashMap<(Endpoint, i64), u64>,
}

impl ShutdownScan {
    pub fn add(&mut self, r: &Row) {
        if server_side_break(r) {
            let k = (r.server, r.ended.div_euclid(MASS_END_BIN_US));
            if self.ends.len() < MAX_END_SECONDS || self.ends.contains_key(&k) {
                *self.ends.entry(k).or_default() += 1;
            }
        }
    }

    /// (server, from, to) windows (µs) in which the server side ended many sessions (at
    /// most one per bin).
    fn windows(&self) -> Vec<(Endpoint, i64, i64)> {
        let mut keys: Vec<&(Endpoint, i64)> = self.ends.keys().collect();
        keys.sort();
        let span = MASS_END_WINDOW_US / MASS_END_BIN_US;
        let mut out: Vec<(Endpoint, i64, i64)> = Vec::new();
        for &&(server, s0) in &keys {
            let n: u64 = (s0..s0 + span)
                .filter_map(|s| self.ends.get(&(server, s)))
                .sum();
            if n >= MASS_END_MIN {
                // Windows overlap (they slide by a bin); each is judged on its own.
                out.push((
                    server,
                    s0 * MASS_END_BIN_US,
                    (s0 + span) * MASS_END_BIN_US - 1,
                ));
            }
        }
        out
    }
}

pub fn probes(shutdown: &ShutdownScan) -> Vec<Box<dyn Probe>> {
    vec![
        Box::new(CodeProbe::new(Cause::PolicyViolation)),
        Box::new(CodeProbe::new(Cause::ServerError)),
        Box::new(CodeProbe::new(Cause::ProtocolError)),
        Box::new(Rejected::default()),
        Box::new(Shutdown::new(shutdown.windows())),
    ]
}

/// A session's policy close: its first Close frame's side and code.
fn policy(r: &Row) -> Option<(Side, u16)> {
    let (side, code) = r.first_close()?;
    let reason_flag = match side {
        Side::Client => flag::POLICY_REASON_CLIENT,
        Side::Server => flag::POLICY_REASON_SERVER,
    };
    let yes =
        matches!(code, 1008 | 3000 | 3003) || ((4000..=4999).contains(&code) && r.has(reason_flag));
    yes.then_some((side, code))
}

fn server_error(r: &Row) -> Option<(Side, u16)> {
    match r.first_close()? {
        (Side::Server, c @ (1011 | 1013 | 1014)) => Some((Side::Server, c)),
        _ => None,
    }
}

/// A protocol error: 1002, 1003 or 1007 in the first Close frame, or RFC 6455 broken in
/// the frames or the handshake.
fn protocol(r: &Row) -> bool {
    matches!(r.first_close(), Some((_, 1002 | 1003 | 1007))) || violations(r).next().is_some()
}

fn violations(r: &Row) -> impl Iterator<Item = Anomaly> + '_ {
    r.anomalies.iter().filter(|a| is_violation(*a))
}

struct CodeProbe {
    cause: Cause,
    codes: Tally,
    anomalies: Tally,
}

impl CodeProbe {
    fn new(cause: Cause) -> Self {
        CodeProbe {
            cause,
            codes: Tally::default(),
            anomalies: Tally::default(),
        }
    }
}

fn code_label(side: Side, code: u16) -> String {
    format!("{} sent {code} {}", side.as_str(), describe(code).name)
}

impl Probe for CodeProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let hit = match self.cause {
            Cause::PolicyViolation => policy(r),
            Cause::ServerError => server_error(r),
            _ => {
                if !protocol(r) {
                    return false;
                }
                for a in violations(r) {
                    self.anomalies.add(a.token());
                }
                match r.first_close() {
                    Some((s, c @ (1002 | 1003 | 1007))) => Some((s, c)),
                    _ => return true,
                }
            }
        };
        let Some((side, code)) = hit else {
            return false;
        };
        self.codes.add(code_label(side, code));
        true
    }

    fn finish(self: Box<Self>, named: Named, cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        let n = sessions(named.total);
        let mut evidence = Vec::new();
        if !self.codes.is_empty() {
            evidence.push(("close_codes", self.codes.ev()));
        }
        // The reasons of the side that sent these codes first (the other side's are
        // usually its echo).
        let sides = match self.cause {
            Cause::ServerError => vec![Side::Server],
            _ => vec![Side::Client, Side::Server],
        };
        let reasons = |pred: &dyn Fn(u16, &str) -> bool| {
            let mut v = Vec::new();
            for s in &sides {
                v.extend(cx.reasons.reasons_of(*s, pred, 5));
            }
            v
        };
        let (title, advice) = match self.cause {
            Cause::PolicyViolation => {
                let r = reasons(&|c, reason| {
                    matches!(c, 1008 | 3000 | 3003)
                        || ((4000..=4999).contains(&c)
                            && crate::summary::row::policy_reason(reason))
                });
                if !r.is_empty() {
                    evidence.push(("reasons", Ev::Tally(r)));
                }
                (
                    format!("{n} closed for a policy: {}", self.codes.text()),
                    "The endpoint refused the peer by policy: authentication (a missing or \
                     expired token), authorization, origin checks, rates or quotas. The reasons \
                     say which; check the credentials and the Origin the clients send, and the \
                     server's limits."
                        .to_string(),
                )
            }
            Cause::ServerError => {
                let r = reasons(&|c, _| matches!(c, 1011 | 1013 | 1014));
                if !r.is_empty() {
                    evidence.push(("reasons", Ev::Tally(r)));
                }
                (
                    format!(
                        "{n} closed by the server with an error: {}",
                        self.codes.text()
                    ),
                    "The server (or a gateway in front of it) failed: 1011 an unexpected \
                     condition, 1013 overloaded or throttling, 1014 a bad answer from upstream. \
                     Look in the server's logs at these times; clients should back off before \
                     reconnecting after 1013."
                        .to_string(),
                )
            }
            _ => {
                if !self.anomalies.is_empty() {
                    evidence.push(("violations", self.anomalies.ev()));
                }
                let what = match (self.codes.is_empty(), self.anomalies.is_empty()) {
                    (false, true) => self.codes.text(),
                    (true, false) => self.anomalies.text(),
                    _ => format!("{}; {}", self.codes.text(), self.anomalies.text()),
                };
                (
                    format!("{n} broke RFC 6455: {what}"),
                    "One endpoint sent what the protocol forbids (or the other refused it with \
                     1002/1003/1007). The violations name the rule (RFC 6455 §5, §7.4); wsclose \
                     frames --session N shows the frames. Fix the sender, or the library \
                     version."
                        .to_string(),
                )
            }
        };
        Some(Finding {
            cause: self.cause,
            severity: self.cause.severity(),
            title,
            sessions: named.refs,
            sessions_total: named.total,
            evidence,
            advice,
        })
    }
}

#[derive(Default)]
struct Rejected {
    statuses: Tally,
    lacks: Tally,
}

impl Probe for Rejected {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        if r.outcome != Outcome::Rejected {
            return false;
        }
        self.statuses.add(match r.http_status {
            0 => "no answer".to_string(),
            s => format!("HTTP {s}"),
        });
        if r.anomalies.contains(Anomaly::MissingKey) {
            self.lacks.add("Sec-WebSocket-Key");
        }
        if r.anomalies.contains(Anomaly::UnsupportedVersion) {
            self.lacks.add("Sec-WebSocket-Version: 13");
        }
        if r.has(flag::NO_ORIGIN) {
            self.lacks.add("Origin");
        }
        if r.has(flag::NO_PROTOCOL_OFFERED) {
            self.lacks.add("Sec-WebSocket-Protocol");
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        let mut evidence = vec![("answers", self.statuses.ev())];
        if !self.lacks.is_empty() {
            evidence.push(("requests_without", self.lacks.ev()));
        }
        Some(Finding {
            cause: Cause::HandshakeRejected,
            severity: Cause::HandshakeRejected.severity(),
            title: format!(
                "{} rejected at the handshake: {}",
                sessions(named.total),
                self.statuses.text()
            ),
            sessions: named.refs,
            sessions_total: named.total,
            evidence,
            advice: "The server answered the Upgrade with another status than 101. 400: a \
                     malformed request (a missing Sec-WebSocket-Key, a version other than 13); \
                     401/403: authentication or Origin checks; 404: the path; 426/503: the \
                     server. requests_without lists what the requests lacked."
                .to_string(),
        })
    }
}

/// A window in which the server side ended many sessions of one server.
struct Window {
    server: Endpoint,
    from: i64,
    to: i64,
    /// Sessions of the server alive when the window opened, and those it ended within.
    alive: u64,
    ended: Named,
}

struct Shutdown {
    windows: Vec<Window>,
    codes: Tally,
    /// Sessions the server said it was going away in (1001, 1012).
    going: Named,
}

impl Shutdown {
    fn new(windows: Vec<(Endpoint, i64, i64)>) -> Self {
        Shutdown {
            windows: windows
                .into_iter()
                .map(|(server, from, to)| Window {
                    server,
                    from,
                    to,
                    alive: 0,
                    ended: Named::default(),
                })
                .collect(),
            codes: Tally::default(),
            going: Named::default(),
        }
    }
}

impl Probe for Shutdown {
    /// The sessions are named in `finish` (a window counts only if it ended most of the
    /// server's sessions alive then, known after the pass): `pick` only looks.
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        for w in &mut self.windows {
            if r.server != w.server || r.start > w.from || !r.upgraded() {
                continue;
            }
            if r.ended == NONE || r.ended >= w.from {
                w.alive += 1;
            }
            if server_side_break(r) && r.ended >= w.from && r.ended <= w.to {
                w.ended.add(r);
            }
        }
        if matches!(r.first_close(), Some((Side::Server, 1001 | 1012))) {
            self.going.add(r);
            self.codes
                .add(crate::summary::findings::timers::end_label(r));
        }
        false
    }

    fn finish(self: Box<Self>, _named: Named, _cx: &Context<'_>) -> Option<Finding> {
        // A restart or a crash takes most of the server's sessions at once; a busy server
        // ending sessions one by one does not.
        let mass: Vec<&Window> = self
            .windows
            .iter()
            .filter(|w| {
                w.ended.total >= MASS_END_MIN
                    && w.ended.total as f64 >= MASS_END_SHARE * w.alive as f64
            })
            .collect();
        let mut refs: Vec<SessionRef> = self.going.refs.clone();
        let mut dropped: Vec<SessionRef> = Vec::new();
        for w in &mass {
            dropped.extend(w.ended.refs.iter().copied());
        }
        dropped.sort();
        dropped.dedup();
        let in_window = dropped.len() as u64;
        refs.extend(dropped);
        refs.sort();
        refs.dedup();
        let mut codes = self.codes;
        if refs.is_empty() {
            return None;
        }
        let total = refs.len() as u64;
        refs.truncate(super::MAX_NAMED);
        let mut evidence = Vec::new();
        if self.going.total > 0 {
            evidence.push(("going_away", codes.ev()));
        }
        if !mass.is_empty() {
            // Overlapping windows of one server are one event: said once, at its largest.
            let mut shown: Vec<&Window> = Vec::new();
            for w in &mass {
                match shown.last_mut() {
                    Some(l) if l.server == w.server && w.from <= l.to => {
                        if w.ended.total > l.ended.total {
                            *l = w;
                        }
                    }
                    _ => shown.push(w),
                }
            }
            let w: Vec<String> = shown
                .iter()
                .map(|w| {
                    let (mut a, mut b) = (String::new(), String::new());
                    crate::time::write_rfc3339_micros(&mut a, w.from * 1000);
                    crate::time::write_rfc3339_micros(&mut b, w.to * 1000);
                    format!(
                        "{}: {} of its {} sessions ended by it from {a} to {b}",
                        w.server, w.ended.total, w.alive
                    )
                })
                .collect();
            evidence.push(("mass_ends", Ev::Text(w.join("; "))));
            evidence.push(("ended_within_window", Ev::Count(in_window)));
            codes.add(format!("{in_window} dropped together"));
        }
        Some(Finding {
            cause: Cause::ServerShutdown,
            severity: Cause::ServerShutdown.severity(),
            title: format!(
                "{} ended by the server going away: {}",
                sessions(total),
                codes.text()
            ),
            sessions: refs,
            sessions_total: total,
            evidence,
            advice: format!(
                "The server said it was going away (1001, 1012), or dropped most of its \
                 sessions within {} s: a restart, a deploy or a crash. Drain connections before \
                 stopping (send 1001/1012 and wait), and let clients reconnect with a random \
                 delay.",
                MASS_END_WINDOW_US / 1_000_000
            ),
        })
    }
}
