//! Policies: `--fail-on POLICY` turns what a report shows into a failed run (exit 1). A
//! policy is named by the report's own tokens (`reset`, `no_close_frame`, `error_code`,
//! `anomaly=gap` …) and is evaluated over the session records as they are written and,
//! for reports that have them, over findings. Nothing here looks at packets: a policy costs
//! one test per session.
//!
//! [`Gate`] keeps, per policy, the sessions that matched; [`Gated`] is a report writer that
//! feeds the gate and passes every row on, so a policy never changes the report.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::record::{Anomaly, Outcome};
use crate::report::{ReportWriter, Row, RunEnd};
use crate::verdict::is_error_code;

/// One `--fail-on` policy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// A session with `abnormal=true`.
    Abnormal,
    /// A session with `outcome=reset`.
    Reset,
    /// A session with `outcome=no_close_frame`.
    NoCloseFrame,
    /// A session with `outcome=rejected`.
    Rejected,
    /// A session whose connection close code is set and not allowed
    /// ([`is_error_code`]).
    ErrorCode,
    /// A session with this anomaly token, or with any when `None`.
    Anomaly(Option<Anomaly>),
    /// A finding with this cause token, or any warning or error when `None` (reports
    /// with findings only: `summary`).
    Finding(Option<String>),
    /// No session at all in the capture.
    Empty,
}

/// The names `--fail-on` takes, as `--help` lists them.
pub const POLICY_NAMES: &str = "abnormal, reset, no_close_frame, rejected, error_code, \
     anomaly[=TOKEN], finding[=CAUSE], empty";

impl Policy {
    /// Whether the policy looks at findings, which only some reports have.
    pub fn needs_findings(&self) -> bool {
        matches!(self, Policy::Finding(_))
    }

    /// Whether `row`'s session matches the policy. `error_code` reads the allowed close
    /// codes from the row's options, as the `error_code` column does.
    pub fn matches_session(&self, row: &Row<'_>) -> bool {
        let v = &row.rec.verdict;
        match self {
            Policy::Abnormal => v.abnormal(),
            Policy::Reset => v.outcome == Outcome::Reset,
            Policy::NoCloseFrame => v.outcome == Outcome::NoCloseFrame,
            Policy::Rejected => v.outcome == Outcome::Rejected,
            Policy::ErrorCode => is_error_code(v.close_code, &row.opts.allowed_codes),
            Policy::Anomaly(None) => !row.rec.anomalies.is_empty(),
            Policy::Anomaly(Some(a)) => row.rec.anomalies.contains(*a),
            Policy::Finding(_) | Policy::Empty => false,
        }
    }

    /// Whether a finding matches the policy.
    pub fn matches_finding(&self, f: &FindingRef<'_>) -> bool {
        match self {
            Policy::Finding(None) => f.severity >= Severity::Warning,
            Policy::Finding(Some(cause)) => f.cause == cause,
            _ => false,
        }
    }
}

/// The report's tokens use `_`; `--fail-on` accepts `-` too.
fn token(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('-', "_")
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = match s.split_once('=') {
            Some((n, a)) => (token(n), Some(token(a))),
            None => (token(s), None),
        };
        let bare = |p: Policy| match &arg {
            None => Ok(p),
            Some(_) => Err(format!("{name} takes no =VALUE")),
        };
        match name.as_str() {
            "abnormal" => bare(Policy::Abnormal),
            "reset" => bare(Policy::Reset),
            "no_close_frame" => bare(Policy::NoCloseFrame),
            "rejected" => bare(Policy::Rejected),
            "error_code" => bare(Policy::ErrorCode),
            "empty" => bare(Policy::Empty),
            "anomaly" => match arg {
                None => Ok(Policy::Anomaly(None)),
                Some(t) => Anomaly::ALL
                    .into_iter()
                    .find(|a| a.token() == t)
                    .map(|a| Policy::Anomaly(Some(a)))
                    .ok_or_else(|| {
                        let all: Vec<&str> = Anomaly::ALL.iter().map(|a| a.token()).collect();
                        format!("unknown anomaly {t:?}; tokens: {}", all.join(", "))
                    }),
            },
            "finding" => match arg {
                Some(c)
                    if c.is_empty()
                        || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Err(format!("{c:?} is not a cause token"))
                }
                c => Ok(Policy::Finding(c)),
            },
            _ => Err(format!("unknown policy {s:?}; policies: {POLICY_NAMES}")),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Abnormal => f.write_str("abnormal"),
            Policy::Reset => f.write_str("reset"),
            Policy::NoCloseFrame => f.write_str("no_close_frame"),
            Policy::Rejected => f.write_str("rejected"),
            Policy::ErrorCode => f.write_str("error_code"),
            Policy::Anomaly(None) => f.write_str("anomaly"),
            Policy::Anomaly(Some(a)) => write!(f, "anomaly={}", a.token()),
            Policy::Finding(None) => f.write_str("finding"),
            Policy::Finding(Some(c)) => write!(f, "finding={c}"),
            Policy::Empty => f.write_str("empty"),
        }
    }
}

/// How much a finding matters; `--fail-on finding` fails on a warning or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// What a policy sees of a finding (the summary report's findings are turned into this).
#[derive(Clone, Copy, Debug)]
pub struct FindingRef<'a> {
    /// The cause token (`idle_timeout`, `server_error` …).
    pub cause: &'a str,
    pub severity: Severity,
    /// Session numbers as in the sessions report.
    pub sessions: &'a [u64],
}

/// Session numbers kept per policy for the message (the count is always exact).
pub const MAX_LISTED: usize = 10_000;

/// One policy and what matched it.
#[derive(Clone, Debug)]
pub struct PolicyResult {
    pub policy: Policy,
    /// Sessions that matched (the first [`MAX_LISTED`]), in report order.
    pub sessions: Vec<u64>,
    /// How many sessions matched.
    pub sessions_total: u64,
    /// Cause tokens of the findings that matched, each once, in the order seen.
    pub findings: Vec<String>,
    /// `empty`: the capture had no session.
    pub empty: bool,
}

impl PolicyResult {
    pub fn failed(&self) -> bool {
        self.sessions_total > 0 || !self.findings.is_empty() || self.empty
    }
}

/// Evaluates a set of policies over a report.
#[derive(Clone, Debug)]
pub struct Gate {
    results: Vec<PolicyResult>,
    sessions: u64,
}

impl Gate {
    /// A gate for these policies (one given twice counts once).
    pub fn new(policies: &[Policy]) -> Gate {
        let mut results: Vec<PolicyResult> = Vec::new();
        for p in policies {
            if results.iter().any(|r| r.policy == *p) {
                continue;
            }
            results.push(PolicyResult {
                policy: p.clone(),
                sessions: Vec::new(),
                sessions_total: 0,
                findings: Vec::new(),
                empty: false,
            });
        }
        Gate {
            results,
            sessions: 0,
        }
    }

    /// Looks at one session of the report.
    pub fn session(&mut self, row: &Row<'_>) {
        // A TLS connection that could not be decrypted is not known to be a session.
        if row.rec.upgrade != crate::verdict::Upgrade::Undecrypted {
            self.sessions += 1;
        }
        for r in &mut self.results {
            if r.policy.matches_session(row) {
                r.sessions_total += 1;
                if r.sessions.len() < MAX_LISTED {
                    r.sessions.push(row.session);
                }
            }
        }
    }

    /// Looks at one finding.
    pub fn finding(&mut self, f: &FindingRef<'_>) {
        for r in &mut self.results {
            if r.policy.matches_finding(f) && !r.findings.iter().any(|c| c == f.cause) {
                r.findings.push(f.cause.to_string());
            }
        }
    }

    /// The end of a report that saw every session (not after a closed pipe): decides
    /// `empty`.
    pub fn finish(&mut self) {
        for r in &mut self.results {
            if r.policy == Policy::Empty {
                r.empty = self.sessions == 0;
            }
        }
    }

    /// Every policy with what matched it, in the order given.
    pub fn results(&self) -> &[PolicyResult] {
        &self.results
    }

    /// The policies that failed.
    pub fn failures(&self) -> impl Iterator<Item = &PolicyResult> {
        self.results.iter().filter(|r| r.failed())
    }

    pub fn failed(&self) -> bool {
        self.failures().next().is_some()
    }
}

impl fmt::Display for PolicyResult {
    /// One line: the policy and what matched it (`reset: 2 sessions: 9, 10`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.policy)?;
        if self.empty {
            f.write_str(": no WebSocket session in the capture")?;
        }
        if self.sessions_total > 0 {
            let n = self.sessions_total;
            write!(f, ": {n} session{}: ", if n == 1 { "" } else { "s" })?;
            const SHOWN: usize = 50;
            for (i, s) in self.sessions.iter().take(SHOWN).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{s}")?;
            }
            if n > SHOWN as u64 {
                write!(f, " … ({} more)", n - SHOWN as u64)?;
            }
        }
        if !self.findings.is_empty() {
            write!(f, ": findings: {}", self.findings.join(", "))?;
        }
        Ok(())
    }
}

/// A report writer that shows every session to a [`Gate`] and passes it on unchanged.
pub struct Gated<'a, W: ReportWriter> {
    pub gate: &'a mut Gate,
    pub inner: W,
}

impl<W: ReportWriter> ReportWriter for Gated<'_, W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.gate.session(row);
        self.inner.session(row)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        // Every session has been seen, even if the inner writer's flush fails now.
        self.gate.finish();
        self.inner.finish(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Anomalies, SessionRecord};
    use crate::report::columns::column;
    use crate::report::{RowOptions, Value};

    /// Row options with these allowed codes (`None`: the default).
    fn opts(allowed: Option<&[u16]>) -> RowOptions {
        match allowed {
            Some(a) => RowOptions {
                allowed_codes: a.to_vec(),
                ..RowOptions::default()
            },
            None => RowOptions::default(),
        }
    }

    /// A record with this outcome, close code and anomalies.
    fn rec(outcome: Outcome, close_code: Option<u16>, anomalies: &[Anomaly]) -> SessionRecord {
        let mut r = SessionRecord::example();
        r.verdict.outcome = outcome;
        r.verdict.close_code = close_code;
        let mut a = Anomalies::default();
        for x in anomalies {
            a.insert(*x);
        }
        r.anomalies = a;
        r
    }

    #[test]
    fn names_and_spellings() {
        let table: &[(&str, Result<Policy, ()>)] = &[
            ("abnormal", Ok(Policy::Abnormal)),
            ("reset", Ok(Policy::Reset)),
            ("no_close_frame", Ok(Policy::NoCloseFrame)),
            ("no-close-frame", Ok(Policy::NoCloseFrame)),
            ("rejected", Ok(Policy::Rejected)),
            ("error_code", Ok(Policy::ErrorCode)),
            ("error-code", Ok(Policy::ErrorCode)),
            ("empty", Ok(Policy::Empty)),
            ("anomaly", Ok(Policy::Anomaly(None))),
            ("anomaly=gap", Ok(Policy::Anomaly(Some(Anomaly::Gap)))),
            (
                "anomaly=framing-lost",
                Ok(Policy::Anomaly(Some(Anomaly::FramingLost))),
            ),
            ("anomaly=nonsense", Err(())),
            ("finding", Ok(Policy::Finding(None))),
            (
                "finding=idle-timeout",
                Ok(Policy::Finding(Some("idle_timeout".into()))),
            ),
            ("finding=", Err(())),
            ("finding=a b", Err(())),
            ("reset=1", Err(())),
            ("frobnicate", Err(())),
            ("", Err(())),
        ];
        for (s, want) in table {
            let got = s.parse::<Policy>().map_err(|_| ());
            assert_eq!(&got, want, "{s:?}");
            if let Ok(p) = got {
                // Display gives the canonical spelling, which parses back.
                assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
            }
        }
    }

    #[test]
    fn sessions_against_every_policy() {
        use Outcome::*;
        let g = Anomaly::Gap;
        // (record, policies that match it with the default allowed codes)
        let table: &[(SessionRecord, &[&str])] = &[
            (rec(Clean, Some(1000), &[]), &[]),
            (rec(Clean, Some(1001), &[]), &[]),
            (rec(Clean, Some(1005), &[]), &[]),
            (rec(Clean, Some(1011), &[]), &["error_code"]),
            (
                rec(Clean, Some(4001), &[g]),
                &["error_code", "anomaly", "anomaly=gap"],
            ),
            (
                rec(Reset, Some(1006), &[]),
                &["abnormal", "reset", "error_code"],
            ),
            (
                rec(NoCloseFrame, Some(1006), &[]),
                &["abnormal", "no_close_frame", "error_code"],
            ),
            (
                rec(UnansweredClose, Some(4001), &[]),
                &["abnormal", "error_code"],
            ),
            (rec(Rejected, Some(1006), &[]), &["rejected", "error_code"]),
            (rec(OpenAtEnd, None, &[]), &[]),
            (rec(OpenAtEnd, None, &[Anomaly::FramingLost]), &["anomaly"]),
            (rec(UnknownHandshake, None, &[]), &[]),
        ];
        let all: Vec<Policy> = [
            "abnormal",
            "reset",
            "no_close_frame",
            "rejected",
            "error_code",
            "anomaly",
            "anomaly=gap",
            "finding",
            "empty",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let o = opts(None);
        for (i, (r, want)) in table.iter().enumerate() {
            let row = Row {
                session: 1,
                rec: r,
                opts: &o,
            };
            let got: Vec<String> = all
                .iter()
                .filter(|p| p.matches_session(&row))
                .map(|p| p.to_string())
                .collect();
            assert_eq!(
                got, *want,
                "case {i}: {:?} {:?}",
                r.verdict.outcome, r.verdict.close_code
            );
        }
    }

    #[test]
    fn allowed_codes_replace_the_default_and_the_column_agrees() {
        let error_code = column("error_code").unwrap();
        // (close code, allowed codes, error)
        type Case = (Option<u16>, Option<&'static [u16]>, bool);
        let table: &[Case] = &[
            (Some(4001), None, true),
            (Some(4001), Some(&[1000, 1001, 4001]), false),
            (Some(1001), Some(&[1000, 4001]), true),
            (Some(1005), None, false),
            (Some(1005), Some(&[1000]), true),
            (Some(1006), None, true),
            (None, Some(&[]), false),
        ];
        for &(code, allowed, want) in table {
            let r = rec(Outcome::UnansweredClose, code, &[]);
            let o = opts(allowed);
            let row = Row {
                session: 1,
                rec: &r,
                opts: &o,
            };
            assert_eq!(
                Policy::ErrorCode.matches_session(&row),
                want,
                "{code:?} {allowed:?}"
            );
            assert_eq!((error_code.value)(&row), Value::Bool(want), "the column");
        }
    }

    #[test]
    fn findings() {
        let f = |cause, severity| FindingRef {
            cause,
            severity,
            sessions: &[],
        };
        let any = Policy::Finding(None);
        let idle = Policy::Finding(Some("idle_timeout".into()));
        assert!(any.matches_finding(&f("server_error", Severity::Error)));
        assert!(any.matches_finding(&f("idle_timeout", Severity::Warning)));
        assert!(!any.matches_finding(&f("capture_cut", Severity::Info)));
        assert!(idle.matches_finding(&f("idle_timeout", Severity::Warning)));
        assert!(!idle.matches_finding(&f("server_error", Severity::Error)));
        assert!(!Policy::Reset.matches_finding(&f("server_error", Severity::Error)));

        let mut gate = Gate::new(&[any, idle, Policy::Reset]);
        gate.finding(&f("capture_cut", Severity::Info));
        gate.finding(&f("server_error", Severity::Error));
        gate.finding(&f("server_error", Severity::Error));
        gate.finish();
        let lines: Vec<String> = gate.failures().map(|r| r.to_string()).collect();
        assert_eq!(lines, ["finding: findings: server_error"]);
    }

    #[test]
    fn gate_counts_lists_and_decides_empty() {
        let reset = rec(Outcome::Reset, Some(1006), &[]);
        let clean = rec(Outcome::Clean, Some(1000), &[]);
        let policies: Vec<Policy> = ["reset", "empty", "reset", "rejected"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut gate = Gate::new(&policies);
        assert_eq!(gate.results().len(), 3, "a policy given twice counts once");
        let o = opts(None);
        for (n, r) in [(1, &clean), (2, &reset), (3, &clean), (4, &reset)] {
            gate.session(&Row {
                session: n,
                rec: r,
                opts: &o,
            });
        }
        gate.finish();
        let lines: Vec<String> = gate.failures().map(|r| r.to_string()).collect();
        assert_eq!(lines, ["reset: 2 sessions: 2, 4"]);

        let mut gate = Gate::new(&policies);
        assert!(!gate.failed(), "empty is decided at the end");
        gate.finish();
        let lines: Vec<String> = gate.failures().map(|r| r.to_string()).collect();
        assert_eq!(lines, ["empty: no WebSocket session in the capture"]);

        // Rows of TLS connections that could not be decrypted are not sessions.
        let mut undecrypted = rec(Outcome::Undecrypted, None, &[Anomaly::TlsNoKey]);
        undecrypted.upgrade = crate::verdict::Upgrade::Undecrypted;
        let mut gate = Gate::new(&[Policy::Empty]);
        gate.session(&Row {
            session: 1,
            rec: &undecrypted,
            opts: &o,
        });
        gate.finish();
        assert!(gate.failed());
    }

    #[test]
    fn long_lists_are_cut_in_the_message_not_in_the_count() {
        let reset = rec(Outcome::Reset, Some(1006), &[]);
        let mut gate = Gate::new(&[Policy::Reset]);
        let o = opts(None);
        for n in 1..=60 {
            gate.session(&Row {
                session: n,
                rec: &reset,
                opts: &o,
            });
        }
        let line = gate.failures().next().unwrap().to_string();
        assert!(line.starts_with("reset: 60 sessions: 1, 2, 3"), "{line}");
        assert!(line.ends_with(", 50 … (10 more)"), "{line}");
    }
}
