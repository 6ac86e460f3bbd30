//! Findings: a cause, the evidence (numbers and the sessions), and what to check. Each is
//! detected from the rows, never from names or fixed lists: a first pass gathers bounded
//! statistics ([`Scan`]: histograms, counts per value, reconnect seconds), which decide
//! what to look for; a second pass over the same rows names the sessions ([`Probe`]s).
//! A finding with too little evidence is not shown.
//!
//! Families: `timers.rs` (idle and lifetime timers), `limits.rs` (message limits, message
//! too big), `codes.rs` (what the Close codes and the handshake say), `endings.rs` (how
//! the connections ended, heartbeats, loss), and the reconnect storm (`storm.rs`).

pub mod codes;
pub mod endings;
pub mod limits;
pub mod storm;
pub mod timers;

use std::collections::BTreeMap;

use super::dist::LogHist;
use super::reconnect::Reconnects;
use super::row::Row;
use super::ReasonTable;

/// Sessions a finding lists at most (the count is always given).
pub const MAX_NAMED: usize = 10_000;

/// Why sessions closed: the stable tokens of the findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Cause {
    HandshakeRejected,
    HeartbeatTimeout,
    ServerError,
    ProtocolError,
    NetworkLoss,
    IdleTimeout,
    LifetimeLimit,
    MessageLimit,
    MessageTooBig,
    PolicyViolation,
    ServerShutdown,
    ReconnectStorm,
    UnansweredClose,
    HalfOpen,
    AbruptDisconnect,
    CaptureCut,
}

/// How bad a cause is: fixed per cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl Cause {
    pub const ALL: [Cause; 16] = [
        Cause::HandshakeRejected,
        Cause::HeartbeatTimeout,
        Cause::ServerError,
        Cause::ProtocolError,
        Cause::NetworkLoss,
        Cause::IdleTimeout,
        Cause::LifetimeLimit,
        Cause::MessageLimit,
        Cause::MessageTooBig,
        Cause::PolicyViolation,
        Cause::ServerShutdown,
        Cause::ReconnectStorm,
        Cause::UnansweredClose,
        Cause::HalfOpen,
        Cause::AbruptDisconnect,
        Cause::CaptureCut,
    ];

    pub fn token(self) -> &'static str {
        match self {
            Cause::MessageLimit => "message_limit",
            Cause::IdleTimeout => "idle_timeout",
            Cause::LifetimeLimit => "lifetime_limit",
            Cause::HeartbeatTimeout => "heartbeat_timeout",
            Cause::MessageTooBig => "message_too_big",
            Cause::PolicyViolation => "policy_violation",
            Cause::ServerError => "server_error",
            Cause::ServerShutdown => "server_shutdown",
            Cause::AbruptDisconnect => "abrupt_disconnect",
            Cause::NetworkLoss => "network_loss",
            Cause::ProtocolError => "protocol_error",
            Cause::HandshakeRejected => "handshake_rejected",
            Cause::UnansweredClose => "unanswered_close",
            Cause::HalfOpen => "half_open",
            Cause::ReconnectStorm => "reconnect_storm",
            Cause::CaptureCut => "capture_cut",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Cause::HandshakeRejected
            | Cause::HeartbeatTimeout
            | Cause::ServerError
            | Cause::ProtocolError => Severity::Error,
            Cause::CaptureCut => Severity::Info,
            _ => Severity::Warning,
        }
    }

    pub fn from_token(t: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.token() == t)
    }
}

/// A session named by a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionRef {
    /// Index of the input (`summary --records` with several files; 0 otherwise).
    pub source: u32,
    pub session: u64,
    pub tcp_stream: u64,
}

/// One piece of evidence.
#[derive(Clone, Debug, PartialEq)]
pub enum Ev {
    Count(u64),
    /// Bytes.
    Bytes(u64),
    /// A duration (µs), shown in seconds.
    Micros(i64),
    /// Min, median and max of durations (µs).
    MicrosSpread(LogHist),
    /// Min, median and max of byte sizes or counts.
    Spread(LogHist),
    /// A share (0..=1), shown as a percentage.
    Share(f64),
    Text(String),
    /// Labels with counts, in order.
    Tally(Vec<(String, u64)>),
}

/// A finding: the cause, the evidence, the sessions, and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub cause: Cause,
    pub severity: Severity,
    pub title: String,
    /// At most [`MAX_NAMED`], in report order.
    pub sessions: Vec<SessionRef>,
    pub sessions_total: u64,
    pub evidence: Vec<(&'static str, Ev)>,
    pub advice: String,
}

/// The sessions a probe named.
#[derive(Clone, Debug, Default)]
pub struct Named {
    pub refs: Vec<SessionRef>,
    pub total: u64,
}

impl Named {
    fn add(&mut self, r: &Row) {
        self.total += 1;
        if self.refs.len() < MAX_NAMED {
            self.refs.push(SessionRef {
                source: r.source,
                session: r.session,
                tcp_stream: r.tcp_stream,
            });
        }
    }
}

/// What every probe may need beyond the rows.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The capture's last packet time (µs), for "to the end of the capture".
    pub capture_end: i64,
    /// Sessions in all, and those whose upgrade succeeded.
    pub sessions: u64,
    pub upgraded: u64,
    pub reasons: &'a ReasonTable,
}

/// A finding being looked for in the second pass.
pub trait Probe {
    /// Does this session belong to the finding? (It notes the session's evidence.)
    fn pick(&mut self, r: &Row, cx: &Context<'_>) -> bool;
    /// The finding, from the named sessions, or `None` when the evidence is too thin.
    fn finish(self: Box<Self>, named: Named, cx: &Context<'_>) -> Option<Finding>;
}

/// The first pass: bounded statistics that decide which patterns to look for.
#[derive(Debug, Default)]
pub struct Scan {
    timers: timers::Scan,
    limits: limits::Scan,
    shutdown: codes::ShutdownScan,
    pub reconnects: Reconnects,
}

impl Scan {
    pub fn add(&mut self, r: &Row) {
        self.timers.add(r);
        self.limits.add(r);
        self.shutdown.add(r);
        self.reconnects.add(r);
    }

    /// The probes of the second pass: patterns found in the first, and one per
    /// per-session cause.
    pub fn probes(&self) -> Vec<Box<dyn Probe>> {
        let mut p: Vec<Box<dyn Probe>> = Vec::new();
        p.extend(self.timers.probes());
        p.extend(self.limits.probes());
        p.extend(codes::probes(&self.shutdown));
        p.extend(endings::probes());
        p.extend(storm::probes(&self.reconnects));
        p
    }
}

/// Calls its argument once per row, in order (a pass over the rows).
pub type EachRow<'a> = dyn FnMut(&mut dyn FnMut(&Row)) -> std::io::Result<()> + 'a;

/// Runs the probes over the rows (`each` makes one pass) and returns the findings shown:
/// by severity, then cause, then first session.
pub fn find(
    scan: &Scan,
    cx: &Context<'_>,
    each: &mut EachRow<'_>,
) -> std::io::Result<Vec<Finding>> {
    let mut probes: Vec<(Box<dyn Probe>, Named)> = scan
        .probes()
        .into_iter()
        .map(|p| (p, Named::default()))
        .collect();
    each(&mut |r: &Row| {
        for (p, named) in probes.iter_mut() {
            if p.pick(r, cx) {
                named.add(r);
            }
        }
    })?;
    let mut out: Vec<Finding> = probes
        .into_iter()
        .filter_map(|(p, named)| p.finish(named, cx))
        .collect();
    out.sort_by(|a, b| {
        (a.severity, a.cause, a.sessions.first()).cmp(&(b.severity, b.cause, b.sessions.first()))
    });
    Ok(out)
}

/// Labels counted, kept in first-seen order for the report.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally(BTreeMap<String, u64>);

impl Tally {
    pub(crate) fn add(&mut self, label: impl Into<String>) {
        *self.0.entry(label.into()).or_default() += 1;
    }

    /// Most frequent first (ties by label).
    pub(crate) fn ev(&self) -> Ev {
        let mut v: Vec<(String, u64)> = self.0.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ev::Tally(v)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `a ×2, b` (most frequent first; a count of one is not written).
    pub(crate) fn text(&self) -> String {
        let mut v: Vec<(&String, &u64)> = self.0.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        v.iter()
            .map(|(k, n)| match n {
                1 => k.to_string(),
                n => format!("{k} ×{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Seconds for titles: `3 s`, `2.5 s`, `0.120 s`.
pub(crate) fn secs(us: i64) -> String {
    let s = us as f64 / 1e6;
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.3} s")
    }
}

/// "1 session" / "5 sessions".
pub(crate) fn sessions(n: u64) -> String {
    if n == 1 {
        "1 session".into()
    } else {
        format!("{n} sessions")
    }
}

#[cfg(test)]
mod tests;
