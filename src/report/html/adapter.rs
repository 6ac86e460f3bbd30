//! The one adapter from the summary to the page: [`page_data`] reads the summary's report
//! (totals, close codes, who ended, distributions, reconnects, findings), asks the marks
//! for the timeline with the findings' sessions first, and takes the drill-down events of
//! the sessions the findings name. Nothing else builds a [`PageData`].

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;

pub use super::marks::MAX_KEPT;
use super::marks::{Mark, MarkStore};
use super::page::{
    CaptureFacts, CodeRow, Drill, FindingView, Histogram, Interval, PageData, ReasonRow,
    Reconnects, Totals, Who, MAX_CODES, MAX_REASONS,
};
use crate::summary::codes::describe;
use crate::summary::dist::{bucket_low, LogHist};
use crate::summary::findings::{Ev, Finding};
use crate::summary::{CodeLine, Report};
use crate::verdict::Outcome;

/// Bins of a histogram on the page, at most.
pub const HIST_BINS: usize = 40;
/// Sessions whose last frames are embedded, at most (the first ones each finding names,
/// in turn).
pub const MAX_DRILL: usize = 500;

/// The frame events kept for a session (and how many before them were not).
pub type Rings<'a> = dyn Fn(&Mark) -> io::Result<Option<(Vec<super::page::DrillEvent>, u64)>> + 'a;

/// What the page is built from, beside the summary.
pub struct Inputs<'a> {
    /// The inputs as named on the command line.
    pub names: &'a [String],
    /// The last frame events of a session, read from where its mark says its ring was
    /// kept; the page falls back to the record's own moments for sessions without.
    /// With the events, how many earlier ones were not kept.
    pub rings: &'a Rings<'a>,
    /// Sessions drawn one by one, at most ([`MAX_KEPT`]).
    pub max_kept: usize,
}

/// The page of `report`, with the timeline of `marks`.
pub fn page_data(
    report: &Report,
    marks: &mut MarkStore,
    inputs: &Inputs<'_>,
) -> io::Result<PageData> {
    let named: HashSet<u64> = report
        .findings
        .iter()
        .flat_map(|f| f.sessions.iter().map(|s| s.session))
        .collect();
    let (first_us, last_us) = capture_span(report);
    let span = first_us.zip(last_us);
    let timeline = marks.timeline(&named, span, inputs.max_kept)?;
    let mut notes = report.notes.clone();
    if timeline.aggregated > 0 {
        notes.push(format!(
            "{} sessions are drawn one by one ({} named by findings, then abnormal ones, then \
             in capture order); {} more are counted in time bins under each lane",
            timeline.columns.len(),
            timeline.named_kept,
            timeline.aggregated
        ));
    }
    if timeline.named_kept < timeline.named_total {
        notes.push(format!(
            "findings name {} sessions; {} of them are drawn one by one",
            timeline.named_total, timeline.named_kept
        ));
    }
    if report.reasons_others > 0 {
        notes.push(format!(
            "{} close reasons beyond the distinct ones kept are counted as others",
            report.reasons_others
        ));
    }
    let by_outcome = Outcome::ALL
        .iter()
        .map(|o| {
            let k = report
                .by_outcome
                .iter()
                .find(|(x, _)| x == o)
                .map_or(0, |(_, k)| *k);
            (*o, k)
        })
        .collect();
    let mut reasons: Vec<ReasonRow> = report
        .reasons
        .iter()
        .map(|(side, code, reason, count)| ReasonRow {
            side: *side,
            code: *code,
            reason: reason.clone(),
            count: *count,
        })
        .collect();
    let reasons_others = report.reasons_others
        + reasons
            .iter()
            .skip(MAX_REASONS)
            .map(|r| r.count)
            .sum::<u64>();
    reasons.truncate(MAX_REASONS);
    let (close_codes, close_codes_others) = codes(report);
    let w = &report.who;
    let r = &report.reconnects;
    Ok(PageData {
        generator: format!("wsclose {}", env!("CARGO_PKG_VERSION")),
        inputs: inputs.names.to_vec(),
        capture: CaptureFacts {
            first_us,
            last_us,
            read: report.stats.to_string(),
        },
        totals: Totals {
            sessions: report.sessions,
            abnormal: report.abnormal,
            inexact: report.inexact,
            by_outcome,
        },
        close_codes,
        close_codes_others,
        reasons,
        reasons_others,
        who: Who {
            first_close: w.first_close,
            ended_by: w.ended_by,
            fin_by: w.fin_by,
            rst_by: w.rst_by,
            open: w.open,
        },
        findings: report.findings.iter().map(finding).collect(),
        distributions: report
            .distributions
            .iter()
            .map(|d| histogram(d.name, d.meaning, d.seconds, &d.hist))
            .collect(),
        reconnects: Reconnects {
            count: r.count,
            clients: r.clients as u64,
            storms: r
                .storms
                .iter()
                .map(|s| (s.from, s.to, s.reconnects, s.clients as u64))
                .collect(),
        },
        drill: drill(&report.findings, marks, inputs.rings)?,
        timeline,
        notes,
    })
}

/// The capture's first and last packet (µs), when the counters know them.
fn capture_span(report: &Report) -> (Option<i64>, Option<i64>) {
    let us = |t: Option<i64>| t.map(|t| t.div_euclid(1000));
    (us(report.stats.first_ts_ns), us(report.stats.last_ts_ns))
}

/// The close codes: the [`MAX_CODES`] most used, in code order, and what the others add up
/// to.
fn codes(report: &Report) -> (Vec<CodeRow>, (u64, u64, u64)) {
    let mut v: Vec<&CodeLine> = report.close_codes.iter().collect();
    v.sort_by(|a, b| {
        (b.client + b.server)
            .cmp(&(a.client + a.server))
            .then(a.code.cmp(&b.code))
    });
    let mut others = (0, 0, 0);
    for c in v.iter().skip(MAX_CODES) {
        others.0 += 1;
        others.1 += c.client;
        others.2 += c.server;
    }
    v.truncate(MAX_CODES);
    v.sort_by_key(|c| c.code);
    let rows = v
        .into_iter()
        .map(|c| {
            let info = describe(c.code);
            CodeRow {
                code: c.code,
                name: info.name.into(),
                meaning: info.meaning.into(),
                client: c.client,
                server: c.server,
            }
        })
        .collect();
    (rows, others)
}

/// The sessions whose last frames the page embeds: the first sessions of each finding in
/// turn, up to [`MAX_DRILL`].
fn drill_sessions(findings: &[Finding]) -> HashSet<u64> {
    let mut seen = HashSet::new();
    let longest = findings.iter().map(|f| f.sessions.len()).max().unwrap_or(0);
    for i in 0..longest {
        for f in findings {
            if seen.len() >= MAX_DRILL {
                return seen;
            }
            if let Some(s) = f.sessions.get(i) {
                seen.insert(s.session);
            }
        }
    }
    seen
}

/// The drill-down: the frame events of the sessions [`drill_sessions`] picks, those that
/// have a ring, in session order.
fn drill(findings: &[Finding], marks: &mut MarkStore, rings: &Rings<'_>) -> io::Result<Vec<Drill>> {
    let want = drill_sessions(findings);
    let mut out = Vec::new();
    let mut err = None;
    if !want.is_empty() {
        marks.for_each(&mut |m| {
            if err.is_some() || !want.contains(&m.session) {
                return;
            }
            match rings(m) {
                Ok(Some((events, omitted))) => out.push(Drill {
                    session: m.session,
                    events,
                    omitted,
                }),
                Ok(None) => {}
                Err(e) => err = Some(e),
            }
        })?;
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Seconds for people: `60.0 s`, `2.50 s`, `0.120 s`.
pub fn secs(us: f64) -> String {
    let s = us / 1e6;
    if s.abs() >= 100.0 {
        format!("{s:.0} s")
    } else if s.abs() >= 10.0 {
        format!("{s:.1} s")
    } else if s.abs() >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.3} s")
    }
}

/// Bytes for people: `1048576 bytes (1.0 MiB)`.
fn bytes(n: u64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = None;
    for u in units {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = Some(u);
    }
    match unit {
        Some(u) => format!("{n} bytes ({v:.1} {u})"),
        None => format!("{n} bytes"),
    }
}

/// One piece of evidence as text.
pub fn evidence_text(ev: &Ev) -> String {
    let spread = |h: &LogHist, fmt: &dyn Fn(u64) -> String| {
        if h.is_empty() {
            "none".to_string()
        } else if h.min == h.max {
            fmt(h.min)
        } else {
            format!(
                "min {} · median {} · max {} ({} values)",
                fmt(h.min),
                fmt(h.quantile(0.5)),
                fmt(h.max),
                h.count
            )
        }
    };
    match ev {
        Ev::Count(n) => n.to_string(),
        Ev::Bytes(n) => bytes(*n),
        Ev::Micros(us) => secs(*us as f64),
        Ev::MicrosSpread(h) => spread(h, &|v| secs(v as f64)),
        Ev::Spread(h) => spread(h, &|v| v.to_string()),
        Ev::Share(x) => format!("{:.2}%", x * 100.0),
        Ev::Text(t) => t.clone(),
        Ev::Tally(v) => {
            let mut s = String::new();
            for (i, (k, n)) in v.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(k);
                if *n != 1 {
                    let _ = write!(s, " ×{n}");
                }
            }
            s
        }
    }
}

/// Which histogram a cause's evidence marks: (cause, evidence key, distribution; for a
/// count, the distribution's name is prefixed by the side the evidence `messages_from`
/// names).
const MARKS: [(&str, &str, &str); 3] = [
    ("idle_timeout", "idle_spread_s", "idle_before_end_s"),
    ("lifetime_limit", "age_spread_s", "duration_s"),
    (
        "message_limit",
        "messages_before_close",
        "_messages_before_close",
    ),
];

/// The interval a finding marks on a histogram, when it has one.
fn interval(f: &Finding) -> Option<Interval> {
    let token = f.cause.token();
    let (_, key, dist) = MARKS.iter().find(|(c, _, _)| *c == token)?;
    let ev = &f.evidence.iter().find(|(k, _)| k == key)?.1;
    let (lo, hi, dist) = match ev {
        Ev::MicrosSpread(h) if !h.is_empty() => {
            (h.min as f64 / 1e6, h.max as f64 / 1e6, dist.to_string())
        }
        Ev::Micros(us) => (*us as f64 / 1e6, *us as f64 / 1e6, dist.to_string()),
        Ev::Count(n) => {
            let side = f.evidence.iter().find_map(|(k, v)| match (k, v) {
                (&"messages_from", Ev::Text(t)) => Some(t.as_str()),
                _ => None,
            })?;
            (*n as f64, *n as f64, format!("{side}{dist}"))
        }
        _ => return None,
    };
    Some(Interval {
        label: format!("{token}: {}", evidence_text(ev)),
        dist,
        lo,
        hi,
    })
}

fn finding(f: &Finding) -> FindingView {
    FindingView {
        cause: f.cause.token().into(),
        severity: f.severity.as_str().into(),
        title: f.title.clone(),
        advice: f.advice.clone(),
        sessions: f.sessions.iter().map(|s| s.session).collect(),
        tcp_streams: f.sessions.iter().map(|s| s.tcp_stream).collect(),
        sessions_total: f.sessions_total,
        evidence: f
            .evidence
            .iter()
            .map(|(k, v)| (k.to_string(), evidence_text(v)))
            .collect(),
        mark: interval(f),
    }
}

/// A histogram of `h` (µs when `seconds`, else counts) in at most [`HIST_BINS`] log-spaced
/// bins from its minimum to its maximum; zeros are counted apart.
pub fn histogram(name: &str, meaning: &str, seconds: bool, h: &LogHist) -> Histogram {
    let unit = if seconds { 1e6 } else { 1.0 };
    let mut out = Histogram {
        name: name.into(),
        meaning: meaning.into(),
        seconds,
        count: h.count,
        ..Histogram::default()
    };
    if h.is_empty() {
        return out;
    }
    out.min = h.min as f64 / unit;
    out.p50 = h.quantile(0.5) as f64 / unit;
    out.p90 = h.quantile(0.9) as f64 / unit;
    out.max = h.max as f64 / unit;
    let in_buckets: u64 = h.buckets().map(|(_, k)| k).sum();
    out.zeros = h.count - in_buckets;
    if in_buckets == 0 {
        return out;
    }
    let lo = (h.min.max(1) as f64).ln();
    // The top of the maximum's bucket, so that the maximum falls inside.
    let hi = (h.max.max(1) as f64 * bucket_low(1)).ln();
    let bins = if h.min == h.max { 1 } else { HIST_BINS };
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for (i, k) in h.buckets() {
        let v = bucket_low(i).max(h.min.max(1) as f64);
        let j = if width > 0.0 {
            (((v.ln() - lo) / width) as usize).min(bins - 1)
        } else {
            0
        };
        counts[j] += k;
    }
    out.bins = counts
        .into_iter()
        .enumerate()
        .map(|(j, k)| {
            let a = (lo + width * j as f64).exp() / unit;
            let b = (lo + width * (j + 1) as f64).exp() / unit;
            (a, if bins == 1 { a * bucket_low(1) } else { b }, k)
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::findings::{Cause, SessionRef, Severity};

    fn hist(values: &[u64]) -> LogHist {
        let mut h = LogHist::default();
        for v in values {
            h.add(*v);
        }
        h
    }

    #[test]
    fn histograms_keep_every_value() {
        let h = hist(&[
            0,
            0,
            1_000_000,
            2_000_000,
            60_000_000,
            60_500_000,
            3_600_000_000,
        ]);
        let g = histogram("idle_before_end_s", "", true, &h);
        assert_eq!(g.count, 7);
        assert_eq!(g.zeros, 2);
        assert_eq!(g.bins.iter().map(|b| b.2).sum::<u64>(), 5);
        assert!(g.bins.len() <= HIST_BINS);
        assert!(g.bins[0].0 <= 1.0 && g.bins.last().unwrap().1 >= 3600.0);
        for w in g.bins.windows(2) {
            assert!((w[0].1 - w[1].0).abs() < 1e-6, "bins touch");
        }
        let one = histogram("x", "", false, &hist(&[1000, 1000]));
        assert_eq!(one.bins.len(), 1);
        assert_eq!(one.bins[0].2, 2);
        assert!(histogram("e", "", true, &LogHist::default())
            .bins
            .is_empty());
    }

    fn finding(cause: Cause, evidence: Vec<(&'static str, Ev)>) -> Finding {
        Finding {
            cause,
            severity: Severity::Warning,
            title: "t".into(),
            sessions: vec![SessionRef {
                source: 0,
                session: 4,
                tcp_stream: 3,
            }],
            sessions_total: 1,
            evidence,
            advice: "a".into(),
        }
    }

    #[test]
    fn findings_mark_their_interval() {
        let f = finding(
            Cause::IdleTimeout,
            vec![
                ("idle_s", Ev::Micros(60_000_000)),
                (
                    "idle_spread_s",
                    Ev::MicrosSpread(hist(&[59_500_000, 60_400_000])),
                ),
            ],
        );
        let m = interval(&f).unwrap();
        assert_eq!(m.dist, "idle_before_end_s");
        assert!((m.lo - 59.5).abs() < 1e-9 && (m.hi - 60.4).abs() < 1e-9);
        assert!(
            m.label.starts_with("idle_timeout: min 59.5 s · median"),
            "{}",
            m.label
        );
        let f = finding(
            Cause::MessageLimit,
            vec![
                ("closed_by", Ev::Text("server".into())),
                ("messages_from", Ev::Text("client".into())),
                ("messages_before_close", Ev::Count(1000)),
            ],
        );
        let m = interval(&f).unwrap();
        assert_eq!(m.dist, "client_messages_before_close");
        assert_eq!((m.lo, m.hi), (1000.0, 1000.0));
        assert!(interval(&finding(Cause::ServerError, vec![])).is_none());
    }

    #[test]
    fn the_drill_down_takes_each_finding_in_turn() {
        let named = |cause, v: Vec<u64>| Finding {
            sessions: v
                .iter()
                .map(|s| SessionRef {
                    source: 0,
                    session: *s,
                    tcp_stream: *s,
                })
                .collect(),
            ..finding(cause, vec![])
        };
        let big: Vec<u64> = (1000..1000 + MAX_DRILL as u64 * 2).collect();
        let findings = vec![
            named(Cause::IdleTimeout, big),
            named(Cause::ServerError, vec![7, 8, 1000]),
        ];
        let s = drill_sessions(&findings);
        // 7 and 8 come from the second finding although the first names 1,000 sessions.
        assert!(s.contains(&7) && s.contains(&8) && s.contains(&1000));
        assert_eq!(s.len(), MAX_DRILL);
        assert!(!s.contains(&(1000 + MAX_DRILL as u64)));
    }

    #[test]
    fn evidence_reads_as_text() {
        assert_eq!(evidence_text(&Ev::Share(0.125)), "12.50%");
        assert_eq!(
            evidence_text(&Ev::Bytes(1 << 20)),
            "1048576 bytes (1.0 MiB)"
        );
        assert_eq!(
            evidence_text(&Ev::Tally(vec![("a".into(), 3), ("b".into(), 1)])),
            "a ×3, b"
        );
        assert_eq!(evidence_text(&Ev::Micros(60_000_000)), "60.0 s");
    }
}
