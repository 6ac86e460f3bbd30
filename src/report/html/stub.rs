//! A stand-in for the summary of issue 7 (`crate::summary`), with the same type and field
//! names, so that the adapter (`adapter.rs`) is written once against the shape it will read.
//! It computes only what the records on this branch hold (outcomes, close codes and
//! reasons, who ended, durations) and never finds anything. It goes away when the real
//! summary lands: the adapter then imports `crate::summary` instead.

use std::collections::BTreeMap;

use crate::record::{SessionRecord, Side};
use crate::stats::Stats;
use crate::verdict::{Outcome, TcpEnd};

/// Buckets per factor of e: each spans 1%.
const PER_E: f64 = 100.5;

/// The bucket of a value ≥ 1.
pub fn bucket(v: u64) -> usize {
    ((v as f64).ln() * PER_E) as usize
}

/// The lowest value of bucket `i`.
pub fn bucket_low(i: usize) -> f64 {
    (i as f64 / PER_E).exp()
}

/// A log-scale histogram of non-negative integers (µs, counts), buckets 1% wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHist {
    zeros: u64,
    buckets: Vec<u64>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
}

impl LogHist {
    pub fn add(&mut self, v: u64) {
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            (self.min, self.max) = (self.min.min(v), self.max.max(v));
        }
        self.count += 1;
        if v == 0 {
            self.zeros += 1;
            return;
        }
        let b = bucket(v);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile, within 1%.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q <= 0.0 {
            return self.min;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = self.zeros;
        if seen >= rank {
            return 0;
        }
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let mid = (bucket_low(i) * bucket_low(1).sqrt()).round() as u64;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The nonzero buckets: (index, count).
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
    }
}

/// A close code's registered name and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub name: &'static str,
    pub meaning: &'static str,
}

/// The name and meaning of a close code (the real registry is issue 7's `codes.rs`).
pub fn describe(code: u16) -> CodeInfo {
    let (name, meaning) = match code {
        1000 => (
            "Normal Closure",
            "the purpose of the connection was fulfilled",
        ),
        1001 => (
            "Going Away",
            "a server going down, or a browser leaving the page",
        ),
        1002 => ("Protocol error", "the peer broke RFC 6455"),
        1005 => ("No Status Rcvd", "a Close frame without a status code"),
        1006 => (
            "Abnormal Closure",
            "no Close frame: the TCP connection just ended",
        ),
        1008 => ("Policy Violation", "a policy of the endpoint"),
        1009 => (
            "Message Too Big",
            "a message over the receiver's size limit",
        ),
        1011 => ("Internal Error", "an unexpected condition in the endpoint"),
        1012 => ("Service Restart", "the server is restarting"),
        4000..=4999 => ("(application)", "private use: the application's own code"),
        _ => ("(other)", ""),
    };
    CodeInfo { name, meaning }
}

/// Why sessions closed (the stable tokens).
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

impl Cause {
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
}

/// How bad a cause is.
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

/// A session named by a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionRef {
    pub source: u32,
    pub session: u64,
    pub tcp_stream: u64,
}

/// One piece of evidence.
#[derive(Clone, Debug, PartialEq)]
pub enum Ev {
    Count(u64),
    Bytes(u64),
    Micros(i64),
    MicrosSpread(LogHist),
    Spread(LogHist),
    Share(f64),
    Text(String),
    Tally(Vec<(String, u64)>),
}

/// A finding: the cause, the evidence, the sessions, and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub cause: Cause,
    pub severity: Severity,
    pub title: String,
    pub sessions: Vec<SessionRef>,
    pub sessions_total: u64,
    pub evidence: Vec<(&'static str, Ev)>,
    pub advice: String,
}

/// One line of the close codes table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeLine {
    pub code: u16,
    pub client: u64,
    pub server: u64,
}

/// Who ended the sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhoEnded {
    /// The first Close frame came from the client, from the server, or none came.
    pub first_close: [u64; 3],
    /// The packet that ended the session (first Close frame, FIN or RST): client, server.
    pub ended_by: [u64; 2],
    pub fin_by: [u64; 2],
    pub rst_by: [u64; 2],
    pub open: u64,
}

/// A named distribution (durations in µs, or counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Distribution {
    pub name: &'static str,
    pub seconds: bool,
    pub meaning: &'static str,
    pub hist: LogHist,
}

/// A burst of reconnecting clients.
#[derive(Clone, Debug, PartialEq)]
pub struct Storm {
    /// Window of reconnect times (µs, inclusive).
    pub from: i64,
    pub to: i64,
    pub reconnects: u64,
    pub clients: usize,
}

/// What the reconnects section says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReconnectSummary {
    pub count: u64,
    pub clients: usize,
    pub delays: LogHist,
    pub storms: Vec<Storm>,
}

/// The whole summary.
#[derive(Clone, Debug)]
pub struct Report {
    pub stats: Stats,
    pub sessions: u64,
    pub by_outcome: Vec<(Outcome, u64)>,
    pub abnormal: u64,
    pub inexact: u64,
    pub close_codes: Vec<CodeLine>,
    pub reasons: Vec<(Side, u16, String, u64)>,
    pub reasons_others: u64,
    pub who: WhoEnded,
    pub distributions: Vec<Distribution>,
    pub reconnects: ReconnectSummary,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Builds the stand-in summary from records.
#[derive(Default)]
pub struct Builder {
    sessions: u64,
    by_outcome: BTreeMap<usize, u64>,
    abnormal: u64,
    inexact: u64,
    codes: BTreeMap<u16, [u64; 2]>,
    reasons: BTreeMap<(u8, u16, String), u64>,
    who: WhoEnded,
    duration: LogHist,
    messages: [LogHist; 2],
}

impl Builder {
    pub fn add(&mut self, rec: &SessionRecord) {
        self.sessions += 1;
        let v = &rec.verdict;
        let o = Outcome::ALL
            .iter()
            .position(|x| *x == v.outcome)
            .unwrap_or(0);
        *self.by_outcome.entry(o).or_default() += 1;
        self.abnormal += u64::from(v.abnormal());
        self.inexact += u64::from(!rec.exact);
        for (i, s) in [&rec.client_side, &rec.server_side].into_iter().enumerate() {
            if let Some(c) = &s.close {
                let code = c.code.unwrap_or(1005);
                self.codes.entry(code).or_default()[i] += 1;
                *self
                    .reasons
                    .entry((i as u8, code, c.reason.clone()))
                    .or_default() += 1;
            }
        }
        self.who.first_close[match v.first_close_by {
            Some(Side::Client) => 0,
            Some(Side::Server) => 1,
            None => 2,
        }] += 1;
        let side = |s: Option<Side>| usize::from(s == Some(Side::Server));
        match v.tcp_end {
            TcpEnd::Fin => self.who.fin_by[side(v.tcp_end_by)] += 1,
            TcpEnd::Rst => self.who.rst_by[side(v.tcp_end_by)] += 1,
            TcpEnd::Open => self.who.open += 1,
        }
        if let Some(s) = v.first_close_by.or(v.tcp_end_by) {
            self.who.ended_by[side(Some(s))] += 1;
        }
        self.duration
            .add(((rec.end_ns - rec.start_ns) / 1000).max(0) as u64);
        self.messages[0].add(rec.client_side.messages);
        self.messages[1].add(rec.server_side.messages);
    }

    pub fn finish(self, stats: Stats) -> Report {
        let side = |s: u8| if s == 0 { Side::Client } else { Side::Server };
        let mut reasons: Vec<(Side, u16, String, u64)> = self
            .reasons
            .into_iter()
            .map(|((s, c, r), n)| (side(s), c, r, n))
            .collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.3));
        let [client_messages, server_messages] = self.messages;
        Report {
            stats,
            sessions: self.sessions,
            by_outcome: self
                .by_outcome
                .iter()
                .map(|(o, n)| (Outcome::ALL[*o], *n))
                .collect(),
            abnormal: self.abnormal,
            inexact: self.inexact,
            close_codes: self
                .codes
                .iter()
                .map(|(c, n)| CodeLine {
                    code: *c,
                    client: n[0],
                    server: n[1],
                })
                .collect(),
            reasons,
            reasons_others: 0,
            who: self.who,
            distributions: vec![
                Distribution {
                    name: "duration_s",
                    seconds: true,
                    meaning: "session duration (first to last packet)",
                    hist: self.duration,
                },
                Distribution {
                    name: "client_messages_before_close",
                    seconds: false,
                    meaning: "data messages the client sent",
                    hist: client_messages,
                },
                Distribution {
                    name: "server_messages_before_close",
                    seconds: false,
                    meaning: "data messages the server sent",
                    hist: server_messages,
                },
            ],
            reconnects: ReconnectSummary::default(),
            findings: Vec::new(),
            notes: vec![
                "findings, idle times and ping round trips come with the summary (issue 7)".into(),
            ],
        }
    }
}
