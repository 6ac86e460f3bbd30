//! The summary for people: findings first, then totals, close codes, who ended the
//! sessions, distributions and reconnects. Fits a 100-column terminal; colour only when
//! asked (`--color`, never when `NO_COLOR` is set).

use std::fmt::Write as _;

use super::summary_json::stream_filter;
use crate::summary::codes::describe;
use crate::summary::dist::LogHist;
use crate::summary::findings::{Ev, Finding, Severity};
use crate::summary::Report;
use crate::time::write_rfc3339_micros;
use crate::verdict::Outcome;

/// Columns the text fits in.
pub const WIDTH: usize = 100;
/// Sessions listed per finding in the text (the JSON lists up to 10,000).
const LISTED: usize = 12;

/// ANSI styles, or nothing.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn severity(&self, s: Severity) -> String {
        let label = format!("{:<7}", s.as_str());
        match s {
            Severity::Error => self.paint("1;31", &label),
            Severity::Warning => self.paint("1;33", &label),
            Severity::Info => self.paint("36", &label),
        }
    }
}

/// Words of `text` in lines of at most `width` columns, each after `indent`.
fn wrap(out: &mut String, text: &str, indent: usize, first_indent: usize, width: usize) {
    let mut col = first_indent;
    let mut first = true;
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if !first && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if !first {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        first = false;
    }
    out.push('\n');
}

fn secs(us: i64) -> String {
    let s = us as f64 / 1e6;
    if s.abs() >= 100.0 {
        format!("{s:.0}")
    } else if s.abs() >= 10.0 {
        format!("{s:.1}")
    } else if s.abs() >= 1.0 {
        format!("{s:.2}")
    } else {
        format!("{s:.3}")
    }
}

/// `1 client`, `3 clients`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", group(n))
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn spread_text(h: &LogHist, seconds: bool) -> String {
    let f = |v: u64| {
        if seconds {
            format!("{} s", secs(v as i64))
        } else {
            group(v)
        }
    };
    if h.count == 0 {
        return "-".into();
    }
    if h.min == h.max {
        return f(h.min);
    }
    format!(
        "{} (min {}, max {})",
        f(h.quantile(0.5)),
        f(h.min),
        f(h.max)
    )
}

fn evidence_text(ev: &Ev) -> String {
    match ev {
        Ev::Count(n) => group(*n),
        Ev::Bytes(n) => format!("{} bytes", group(*n)),
        Ev::Micros(us) => format!("{} s", secs(*us)),
        Ev::MicrosSpread(h) => spread_text(h, true),
        Ev::Spread(h) => spread_text(h, false),
        Ev::Share(x) => format!("{:.2}%", x * 100.0),
        Ev::Text(t) => t.clone(),
        Ev::Tally(v) => v
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn finding_text(out: &mut String, f: &Finding, report: &Report, st: Style) {
    let head = format!(
        "  {} {} ",
        st.severity(f.severity),
        st.bold(f.cause.token())
    );
    out.push_str(&head);
    let used = 2 + 8 + f.cause.token().len() + 1;
    wrap(out, &f.title, 4, used, WIDTH);
    // The sessions, with the display filter that opens them in Wireshark.
    let listed: Vec<String> = f
        .sessions
        .iter()
        .take(LISTED)
        .map(|s| {
            if report.multi_source() {
                let src = report
                    .sources
                    .get(s.source as usize)
                    .map_or("?", |x| x.name.as_str());
                format!("{src}#{}", s.session)
            } else {
                s.session.to_string()
            }
        })
        .collect();
    let more = f.sessions_total.saturating_sub(listed.len() as u64);
    let mut line = format!("sessions: {}", listed.join(" "));
    if more > 0 {
        let _ = write!(line, " and {} more", group(more));
    }
    if !report.multi_source() {
        let streams: Vec<u64> = f
            .sessions
            .iter()
            .take(LISTED)
            .map(|s| s.tcp_stream)
            .collect();
        let _ = write!(line, "  [{}]", stream_filter(&streams));
    }
    out.push_str("    ");
    wrap(out, &line, 6, 4, WIDTH);
    for (k, v) in &f.evidence {
        // Values say their unit: `idle_s` reads "idle: 3.00 s".
        let label = k.strip_suffix("_s").unwrap_or(k).replace('_', " ");
        let t = format!("{label}: {}", evidence_text(v));
        out.push_str("    ");
        wrap(out, &t, 6, 4, WIDTH);
    }
    out.push_str(&format!("    {} ", st.dim("→")));
    wrap(out, &f.advice, 6, 6, WIDTH);
}

fn time(ns: Option<i64>) -> String {
    match ns {
        Some(t) => {
            let mut s = String::new();
            write_rfc3339_micros(&mut s, t);
            s
        }
        None => "-".into(),
    }
}

/// The summary as text.
pub fn write(report: &Report, st: Style, out: &mut String) {
    let s = &report.stats;
    let inputs: Vec<&str> = report
        .sources
        .iter()
        .flat_map(|x| x.inputs.iter().map(String::as_str))
        .collect();
    // Rows of TLS connections that could not be decrypted are not WebSocket sessions.
    let undecrypted = report
        .by_outcome
        .iter()
        .find(|(o, _)| *o == Outcome::Undecrypted)
        .map_or(0, |(_, n)| *n);
    let head = format!(
        "{}{} in {}",
        match report.sessions - undecrypted {
            1 => "1 WebSocket session".to_string(),
            n => format!("{} WebSocket sessions", group(n)),
        },
        match undecrypted {
            0 => String::new(),
            1 => " and 1 TLS connection not decrypted".to_string(),
            n => format!(" and {} TLS connections not decrypted", group(n)),
        },
        if inputs.is_empty() {
            "-".to_string()
        } else {
            inputs.join(", ")
        }
    );
    out.push_str(&st.bold("wsclose summary:"));
    out.push(' ');
    wrap(out, &head, 2, 17, WIDTH);
    let span = match (s.first_ts_ns, s.last_ts_ns) {
        (Some(a), Some(b)) => format!(" ({} s)", secs((b - a) / 1000)),
        _ => String::new(),
    };
    let line = format!(
        "capture {} to {}{span}; {} packets, {} bytes read",
        time(s.first_ts_ns),
        time(s.last_ts_ns),
        group(s.packets),
        group(s.bytes)
    );
    wrap(out, &line, 2, 0, WIDTH);
    let not = not_analyzed(report);
    if !not.is_empty() {
        out.push_str("not analyzed: ");
        wrap(out, &not, 2, 14, WIDTH);
    }
    for src in &report.sources {
        for e in &src.errors {
            let _ = writeln!(out, "input error: {e}");
        }
    }

    let _ = writeln!(out, "\n{}", st.bold("FINDINGS"));
    if report.findings.is_empty() {
        let _ = writeln!(
            out,
            "  none: no pattern, error or abnormal end stands out (see summary --help for what \
             is looked for)"
        );
    }
    for f in &report.findings {
        finding_text(out, f, report, st);
    }

    let _ = writeln!(out, "\n{}", st.bold("TOTALS"));
    let outcomes: Vec<String> = report
        .by_outcome
        .iter()
        .map(|(o, n)| format!("{} {}", o.as_str(), group(*n)))
        .collect();
    let prefix = format!("  sessions {}: ", group(report.sessions));
    out.push_str(&prefix);
    wrap(out, &outcomes.join(" · "), 4, prefix.chars().count(), WIDTH);
    let _ = writeln!(
        out,
        "  abnormal {} (ended without the closing handshake); counts not exact in {}",
        group(report.abnormal),
        group(report.inexact)
    );

    let _ = writeln!(
        out,
        "\n{}{}",
        st.bold("CLOSE CODES"),
        st.dim("                                       client  server")
    );
    if report.close_codes.is_empty() {
        let _ = writeln!(out, "  no Close frame in the capture");
    }
    for c in &report.close_codes {
        let d = describe(c.code);
        let name = format!("{} {}", c.code, d.name);
        let _ = writeln!(
            out,
            "  {name:<46}{:>7} {:>7}",
            group(c.client),
            group(c.server)
        );
        out.push_str("      ");
        wrap(out, d.meaning, 6, 6, WIDTH);
        for (side, code, reason, n) in report.reasons.iter().filter(|r| r.1 == c.code).take(5) {
            let r = if reason.is_empty() {
                "(no reason)".to_string()
            } else {
                format!("\"{reason}\"")
            };
            debug_assert_eq!(*code, c.code);
            out.push_str("      ");
            wrap(out, &format!("{} {r} ×{n}", side.as_str()), 8, 6, WIDTH);
        }
    }

    let w = &report.who;
    let _ = writeln!(out, "\n{}", st.bold("WHO ENDED IT"));
    let _ = writeln!(
        out,
        "  first Close frame: client {} · server {} · none {}",
        group(w.first_close[0]),
        group(w.first_close[1]),
        group(w.first_close[2])
    );
    let _ = writeln!(
        out,
        "  first Close frame, FIN or RST: client {} · server {}",
        group(w.ended_by[0]),
        group(w.ended_by[1])
    );
    let tcp = format!(
        "TCP: FIN by client {} · FIN by server {} · RST by client {} · RST by server {} · \
         open {}",
        group(w.fin_by[0]),
        group(w.fin_by[1]),
        group(w.rst_by[0]),
        group(w.rst_by[1]),
        group(w.open)
    );
    out.push_str("  ");
    wrap(out, &tcp, 4, 2, WIDTH);

    let _ = writeln!(
        out,
        "\n{}{}",
        st.bold("DISTRIBUTIONS"),
        st.dim("                    count       min       p50       p90       p99       max")
    );
    for d in &report.distributions {
        let h = &d.hist;
        let v = |q: f64| {
            if h.is_empty() {
                "-".to_string()
            } else if d.seconds {
                secs(h.quantile(q) as i64)
            } else {
                group(h.quantile(q))
            }
        };
        let name = d.name;
        let _ = writeln!(
            out,
            "  {name:<29}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
            group(h.count),
            v(0.0),
            v(0.5),
            v(0.9),
            v(0.99),
            v(1.0)
        );
    }

    let r = &report.reconnects;
    let _ = writeln!(out, "\n{}", st.bold("RECONNECTS"));
    if r.count == 0 {
        let _ = writeln!(
            out,
            "  none (a client opening a new session within {} s of one of its sessions' end)",
            crate::summary::reconnect::RECONNECT_WINDOW_US / 1_000_000
        );
    } else {
        let _ = writeln!(
            out,
            "  {} by {}; delay after the previous end: {}",
            plural(r.count, "reconnect"),
            plural(r.clients as u64, "client"),
            spread_text(&r.delays, true)
        );
        for s in &r.storms {
            let _ = writeln!(
                out,
                "  storm: {} reconnects between {} and {}",
                s.reconnects,
                time(Some(s.from * 1000)),
                time(Some(s.to * 1000))
            );
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\n{}", st.bold("NOTES"));
        for n in &report.notes {
            out.push_str("  ");
            wrap(out, n, 4, 2, WIDTH);
        }
    }
}

/// What was not analyzed, and why.
fn not_analyzed(report: &Report) -> String {
    let s = &report.stats;
    let mut v = Vec::new();
    let mut add = |n: u64, what: &str| {
        if n > 0 {
            v.push(format!("{} {what}", group(n)));
        }
    };
    add(
        s.tls.no_key + s.tls.decrypt_failed + s.tls.unsupported_cipher + s.tls.handshake_missing,
        "TLS connections not decrypted",
    );
    add(s.not_websocket, "connections not WebSocket");
    add(s.no_payload, "connections without payload");
    add(s.non_tcp, "non-TCP packets");
    add(s.non_ip, "non-IP packets");
    add(s.ip_fragments, "IP fragments");
    add(
        s.cut_headers + s.cut_payload,
        "packets cut off by the snapshot length",
    );
    add(s.malformed + s.unknown_linktype, "undecodable packets");
    add(s.filtered, "packets filtered out");
    add(s.evicted, "connections evicted (too many open)");
    if s.gaps > 0 {
        v.push(format!(
            "{} gaps ({} bytes missing)",
            group(s.gaps),
            group(s.gap_bytes)
        ));
    }
    v.join(", ")
}
