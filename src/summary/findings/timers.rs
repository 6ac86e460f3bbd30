//! Timers: `idle_timeout` (sessions ended after the same silence, ±10%) and
//! `lifetime_limit` (sessions ended at the same age, ±5%, whatever the traffic).

use super::{secs, sessions, Cause, Context, Ev, Finding, Named, Probe, Tally};
use crate::summary::dist::{bucket, densest, Cluster, LogHist};
use crate::summary::row::{idx, Row, NONE};

/// Silence or age below this is not taken for a timer (µs).
pub const MIN_TIMER_US: i64 = 1_000_000;
/// Idle timers: the same silence within ±10%.
pub const IDLE_TOLERANCE: f64 = 0.10;
/// Lifetime caps count from the connection's start and are exact: ±5%.
pub const LIFETIME_TOLERANCE: f64 = 0.05;
/// A timer names at least this many sessions...
pub const MIN_SESSIONS: u64 = 3;
/// ...which are at least this share of the candidates between half and twice its value.
pub const DOMINANCE: f64 = 0.6;
/// A session was busy near its end when its silence before the end was below this share
/// of its age...
pub const ACTIVE_SHARE: f64 = 0.5;
/// ...and a lifetime cap ends busy sessions too: at least this share of its sessions were
/// busy (else an idle timer explains the ends better).
pub const BUSY_SESSIONS: f64 = 0.5;
/// Distinct timers reported per kind at most.
const MAX_CLUSTERS: usize = 3;

/// Known defaults of intermediaries and libraries (DIAGNOSIS.md), in seconds.
pub const IDLE_DEFAULTS: &[(f64, &str)] = &[
    (55.0, "Heroku router (55 s without data)"),
    (60.0, "nginx / ingress-nginx proxy_read_timeout (60 s)"),
    (60.0, "AWS ALB idle timeout (60 s)"),
    (60.0, "Oracle Cloud LB, HTTP (60 s)"),
    (100.0, "Cloudflare (100 s)"),
    (300.0, "Azure Front Door idle (5 min)"),
    (300.0, "Oracle Cloud LB, TCP (300 s)"),
    (350.0, "AWS NLB idle (350 s)"),
    (600.0, "AWS API Gateway WebSocket idle (10 min)"),
    (600.0, "CloudFront origin idle (10 min)"),
];

pub const LIFETIME_DEFAULTS: &[(f64, &str)] = &[
    (
        30.0,
        "GCP external HTTP(S) load balancer backend timeout (30 s)",
    ),
    (3600.0, "OpenAI realtime sessions (60 min)"),
    (7200.0, "AWS API Gateway WebSocket maximum (2 h)"),
    (7200.0, "Oracle Cloud LB maximum (7200 s)"),
    (14400.0, "Azure Front Door maximum (4 h)"),
    (86400.0, "Binance streams (24 h)"),
];

/// The defaults within ±10% of `us`.
fn matching(defaults: &'static [(f64, &'static str)], us: i64) -> Vec<&'static str> {
    let s = us as f64 / 1e6;
    defaults
        .iter()
        .filter(|(d, _)| (s / d - 1.0).abs() <= 0.10)
        .map(|(_, n)| *n)
        .collect()
}

/// Could a timer have ended this session? Upgraded, ended, not by the client's own
/// normal Close (1000, 1001, 1005), and not after unanswered pings (the silence before
/// such an end is a heartbeat's wait: `heartbeat_timeout`).
fn candidate(r: &Row) -> bool {
    r.upgraded()
        && r.ended != NONE
        && !r.normal_client_close()
        && super::endings::heartbeat_failed(r).is_none()
}

fn lifetime_candidate(r: &Row) -> Option<i64> {
    let age = r.age_at_end()?;
    (candidate(r) && age >= MIN_TIMER_US).then_some(age)
}

/// Was the session busy near its end (its silence before the end short for its age)?
fn busy(r: &Row) -> bool {
    match (r.age_at_end(), r.idle_before_end()) {
        (Some(age), Some(idle)) => (idle as f64) < ACTIVE_SHARE * age as f64,
        _ => false,
    }
}

fn idle_candidate(r: &Row) -> Option<i64> {
    let idle = r.idle_before_end()?;
    (candidate(r) && idle >= MIN_TIMER_US).then_some(idle)
}

#[derive(Debug, Default)]
pub struct Scan {
    idle: LogHist,
    age: LogHist,
}

impl Scan {
    pub fn add(&mut self, r: &Row) {
        if let Some(i) = idle_candidate(r) {
            self.idle.add(i as u64);
        }
        if let Some(a) = lifetime_candidate(r) {
            self.age.add(a as u64);
        }
    }

    pub fn probes(&self) -> Vec<Box<dyn Probe>> {
        let mut p: Vec<Box<dyn Probe>> = Vec::new();
        for c in clusters(&self.idle, IDLE_TOLERANCE) {
            p.push(Box::new(TimerProbe::new(Cause::IdleTimeout, c)));
        }
        for c in clusters(&self.age, LIFETIME_TOLERANCE) {
            p.push(Box::new(TimerProbe::new(Cause::LifetimeLimit, c)));
        }
        p
    }
}

/// The dense windows of a histogram that pass the thresholds, densest first.
fn clusters(h: &LogHist, tol: f64) -> Vec<Cluster> {
    let mut h = h.clone();
    let mut out = Vec::new();
    while out.len() < MAX_CLUSTERS {
        let Some(c) = densest(&h, tol) else { break };
        if c.count < MIN_SESSIONS || (c.count as f64) < DOMINANCE * c.neighbourhood as f64 {
            break;
        }
        h.clear_buckets(c.lo_bucket, c.hi_bucket);
        out.push(c);
    }
    out
}

/// How a session ended, for the evidence: who sent the packet that ended it, and what.
pub(crate) fn end_label(r: &Row) -> String {
    let Some(side) = r.ended_by else {
        return "still open".into();
    };
    let i = idx(side);
    let what = if r.close_at[i] == r.ended {
        format!("Close {}", r.close_code[i])
    } else if r.rst[i] == r.ended {
        "RST".into()
    } else {
        "FIN".into()
    };
    format!("{} {what}", side.as_str())
}

struct TimerProbe {
    cause: Cause,
    cluster: Cluster,
    values: LogHist,
    idle: LogHist,
    data_idle: LogHist,
    ended_by: Tally,
    /// The addresses that sent the packet that ended each session.
    enders: Tally,
    close_frames: u64,
    by_side: [u64; 2],
    busy: u64,
}

impl TimerProbe {
    fn new(cause: Cause, cluster: Cluster) -> Self {
        TimerProbe {
            cause,
            cluster,
            values: LogHist::default(),
            idle: LogHist::default(),
            data_idle: LogHist::default(),
            ended_by: Tally::default(),
            enders: Tally::default(),
            close_frames: 0,
            by_side: [0; 2],
            busy: 0,
        }
    }
}

impl Probe for TimerProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let v = match self.cause {
            Cause::IdleTimeout => idle_candidate(r),
            _ => lifetime_candidate(r),
        };
        let Some(v) = v else { return false };
        let b = bucket(v.max(1) as u64);
        if b < self.cluster.lo_bucket || b > self.cluster.hi_bucket {
            return false;
        }
        self.values.add(v as u64);
        if let Some(i) = r.idle_before_end() {
            self.idle.add(i.max(0) as u64);
        }
        if let Some(d) = r.data_idle_before_end() {
            self.data_idle.add(d as u64);
        }
        self.ended_by.add(end_label(r));
        if r.close_code[0] != 0 || r.close_code[1] != 0 {
            self.close_frames += 1;
        }
        if let Some(s) = r.ended_by {
            self.by_side[idx(s)] += 1;
            let ep = match s {
                crate::record::Side::Client => r.client,
                crate::record::Side::Server => r.server,
            };
            let ip = ep.to_string();
            let ip = ip
                .rsplit_once(':')
                .map_or(ip.as_str(), |(a, _)| a)
                .to_string();
            self.enders.add(ip);
        }
        if busy(r) {
            self.busy += 1;
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total < MIN_SESSIONS {
            return None;
        }
        let interval = self.values.quantile(0.5) as i64;
        let n = named.total;
        let without_close = n - self.close_frames;
        let closer = match self.by_side {
            [c, 0] if c > 0 => "the client side".to_string(),
            [0, s] if s > 0 => "the server side".to_string(),
            [c, s] => format!("the client side ({c}) and the server side ({s})"),
        };
        let how = if self.close_frames == 0 {
            "no Close frame came first: TCP was just closed, as a proxy or load balancer does \
             (both endpoints then see 1006)"
                .to_string()
        } else if without_close == 0 {
            "each end began with a Close frame: an endpoint's own timer".to_string()
        } else {
            format!(
                "{without_close} ended without a Close frame, {} with one",
                self.close_frames
            )
        };
        let (defaults, kind, what) = match self.cause {
            Cause::IdleTimeout => (
                IDLE_DEFAULTS,
                "idle",
                format!(
                    "{} ended after {} without any payload in either direction (no data, no \
                     ping or pong)",
                    sessions(n),
                    secs(interval)
                ),
            ),
            _ => (
                LIFETIME_DEFAULTS,
                "lifetime",
                format!(
                    "{} ended at the same age, {}, whatever their traffic",
                    sessions(n),
                    secs(interval)
                ),
            ),
        };
        let m = matching(defaults, interval);
        let suspects = if m.is_empty() {
            match self.cause {
                Cause::IdleTimeout => format!(
                    "no common default is {}: look for an idle timeout configured to about that \
                     (nginx proxy_read_timeout, HAProxy timeout tunnel, a load balancer's idle \
                     timeout, the server's own)",
                    secs(interval)
                ),
                _ => format!(
                    "no common default is {}: look for a maximum connection age configured to \
                     about that (a load balancer's backend timeout, a proxy's session limit, \
                     the server's maxLifetime)",
                    secs(interval)
                ),
            }
        } else {
            format!("{} is the default of {}", secs(interval), m.join("; "))
        };
        let mut evidence = vec![
            (
                if self.cause == Cause::IdleTimeout {
                    "idle_s"
                } else {
                    "age_s"
                },
                Ev::Micros(interval),
            ),
            (
                if self.cause == Cause::IdleTimeout {
                    "idle_spread_s"
                } else {
                    "age_spread_s"
                },
                Ev::MicrosSpread(self.values.clone()),
            ),
            (
                "tolerance",
                Ev::Text(format!(
                    "±{:.0}%",
                    if self.cause == Cause::IdleTimeout {
                        IDLE_TOLERANCE * 100.0
                    } else {
                        LIFETIME_TOLERANCE * 100.0
                    }
                )),
            ),
            ("ended_by", self.ended_by.ev()),
            ("ended_from_address", self.enders.ev()),
            ("with_close_frame", Ev::Count(self.close_frames)),
            ("without_close_frame", Ev::Count(without_close)),
            ("intermediary", Ev::Text(suspects.clone())),
        ];
        if self.cause == Cause::LifetimeLimit {
            evidence.push(("idle_before_end_s", Ev::MicrosSpread(self.idle.clone())));
            evidence.push(("busy_near_end", Ev::Count(self.busy)));
        }
        if !self.data_idle.is_empty() {
            evidence.push((
                "idle_since_data_s",
                Ev::MicrosSpread(self.data_idle.clone()),
            ));
        }
        if self.cause == Cause::LifetimeLimit {
            // An idle timer ending sessions that went quiet at the same point of their
            // life looks the same: leave it to idle_timeout. A cap also ends busy sessions.
            if (self.busy as f64) < BUSY_SESSIONS * named.total as f64 {
                return None;
            }
            if let Some(c) = densest(&self.idle, IDLE_TOLERANCE) {
                let quiet = (c.lo as i64) >= MIN_TIMER_US;
                if quiet && c.count as f64 >= DOMINANCE * named.total as f64 {
                    return None;
                }
            }
        }
        let advice = match self.cause {
            Cause::IdleTimeout => format!(
                "An {kind} timer ends connections that carry nothing for {}: the first FIN/RST \
                 came from {closer} (ended_from_address names who sent it); {how}. Suspects: \
                 {suspects}. Keep traffic flowing more often than every {} (WebSocket pings \
                 from either side reset a proxy's idle timer), or raise that timeout.",
                secs(interval),
                secs(interval),
            ),
            _ => format!(
                "A {kind} cap ends connections {} after they opened, busy or not: the first \
                 FIN/RST came from {closer} (ended_from_address names who sent it); {how}. \
                 Suspects: {suspects}. Reconnect before the cap (and expect it), or raise it.",
                secs(interval),
            ),
        };
        Some(Finding {
            cause: self.cause,
            severity: self.cause.severity(),
            title: what,
            sessions: named.refs,
            sessions_total: named.total,
            evidence,
            advice,
        })
    }
}
