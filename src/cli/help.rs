//! Help texts. The long ones (`--help`) are written from the tables they explain: the
//! column table, the outcome and anomaly tokens, the findings' thresholds.

use std::fmt::Write as _;

/// One entry of a help table: `name` in a column of `width`, then `text` wrapped to 98
/// columns under itself (clap would wrap it flush left).
fn entry(out: &mut String, name: &str, width: usize, text: &str) {
    let indent = 4 + width + 1;
    let mut line = format!("    {name:<width$} ");
    if line.chars().count() > indent {
        line.push('\n');
        out.push_str(&line);
        line = " ".repeat(indent);
    }
    let mut col = line.chars().count();
    let mut first = true;
    for w in text.split_whitespace() {
        let n = w.chars().count();
        if !first && col + 1 + n > 98 {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
            col = indent;
        } else if !first {
            line.push(' ');
            col += 1;
        }
        line.push_str(w);
        col += n;
        first = false;
    }
    out.push_str(&line);
    out.push('\n');
}

use wsclose::record::Anomaly;
use wsclose::report::columns::{COLUMNS, EXTRAS};
use wsclose::summary::findings::{codes, endings, limits, timers, Cause};
use wsclose::summary::reconnect;
use wsclose::verdict::Outcome;

/// The exit status of every subcommand (README says the same).
macro_rules! exit_status_help {
    () => {
        "\
EXIT STATUS:
    0    ok
    1    a check or a --fail-on policy failed (the report is still written in full)
    2    usage error, an input that could not be read to its end (the sessions seen
         before the error are still written), or a failed output write
    130  stopped by SIGINT; 143 stopped by SIGTERM
    When several apply, the first of 130/143, 2, 1, 0 wins. A reader that closes the
    pipe (as `| head` does) is not a failure: wsclose stops quietly, and the status is
    what was decided before (a check's result, policies already matched)."
    };
}

pub const TOP: &str = concat!(
    "\
EXAMPLES:
    wsclose capture.pcap                     the summary (same as wsclose summary capture.pcap)
    wsclose sessions capture.pcap -o s.csv   one row per session
    wsclose frames --session 3 capture.pcap  the frames of session 3
    wsclose check ci.pcap --expect ci.csv    compare with an expected report
    wsclose -- summary                       a capture file named like a subcommand
Run `wsclose help SUBCOMMAND` for its examples.

",
    exit_status_help!()
);

pub const SUMMARY_SHORT: &str = concat!(
    "\
EXAMPLES:
    wsclose capture.pcap
    wsclose summary --format json capture.pcap > summary.json
    wsclose summary --format html -o report.html capture.pcap   (open it in a browser)
    wsclose sessions --format jsonl a.pcap > a.jsonl; wsclose summary --records a.jsonl
    wsclose summary --fail-on finding=idle_timeout ci.pcap
    tcpdump -i eth0 -w - 'tcp port 443' | wsclose summary -

Findings, their thresholds and severities: see --help.

",
    exit_status_help!()
);

pub const FRAMES_SHORT: &str = concat!(
    "\
EXAMPLES:
    wsclose frames --session 3 capture.pcap
    wsclose frames --tail 20 --format jsonl capture.pcap > frames.jsonl
    wsclose frames --client 10.0.0.7 --format csv capture.pcap

",
    exit_status_help!()
);

/// `sessions --help`: its short help, then every column, outcome and anomaly.
pub fn sessions_long(short: &str) -> String {
    let mut s = String::from(short.split("EXIT STATUS").next().unwrap_or(""));
    s.push_str("COLUMNS (CSV and JSON Lines; match them by name, later versions add columns at the end):\n");
    for c in COLUMNS {
        entry(&mut s, c.name, 34, c.meaning);
    }
    s.push_str("\nJSON LINES ONLY (after the columns):\n");
    for e in EXTRAS {
        entry(&mut s, e.name, 34, e.meaning);
    }
    s.push_str(
        "    a last line {\"kind\": \"capture\", ...}: the counters of the closing line, the \
         first and last packet times and the inputs\n",
    );
    s.push_str("\nOUTCOMES (decided in this order):\n");
    for o in Outcome::ALL {
        entry(&mut s, o.as_str(), 18, o.meaning());
    }
    s.push_str("\nANOMALIES (the anomalies column):\n");
    for a in Anomaly::ALL {
        entry(&mut s, a.token(), 26, a.meaning());
    }
    s.push_str(
        "\nSECRETS:\n    Cookie, Set-Cookie, Authorization and Proxy-Authorization values are \
         written as\n    <redacted N bytes>; --redact also masks query-string values; \
         --no-redact keeps all.\n\n",
    );
    s.push_str(exit_status_help!());
    s
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn s(us: i64) -> String {
    format!("{} s", us as f64 / 1e6)
}

pub fn summary_long() -> String {
    let mut h = String::from(SUMMARY_SHORT.split("Findings, their").next().unwrap_or(""));
    h.push_str(
        "POLICIES: --fail-on as for sessions (see wsclose sessions --help), and \
         finding[=CAUSE]: a\nfinding with this cause, or (bare) any warning or error.\n\n",
    );
    let _ = write!(
        h,
        "FINDINGS (cause token, severity: what shows it). A finding lists its sessions (at most
10,000, plus sessions_total) and their tcp.stream numbers; one with too little evidence is
not shown. Idle before the end = time from the last TCP segment with payload in either
direction (control frames included) to the first Close frame, FIN or RST.
"
    );
    let rules: Vec<(Cause, String)> = vec![
        (Cause::HandshakeRejected, "an Upgrade answered with another status than 101 (or never), with what the requests lacked".into()),
        (Cause::HeartbeatTimeout, format!("a side's oldest unanswered ping waited at least {} and {}x the session's median round trip before an end that was not a normal Close (1000/1001/1005)", s(endings::HEARTBEAT_MIN_WAIT_US), endings::HEARTBEAT_RTT_FACTOR)),
        (Cause::ServerError, "the server's Close frame came first with 1011, 1013 or 1014".into()),
        (Cause::ProtocolError, "a first Close frame with 1002, 1003 or 1007, or RFC 6455 violations in the frames or handshake".into()),
        (Cause::NetworkLoss, format!("retransmitted segments (retransmissions, duplicates, late arrivals), at least {} and >= {} of a direction's payload segments (at least {}), in at least {} sessions (or {} of them), or data retransmitted and left unacknowledged just before an abnormal end; segments missing from the capture but acknowledged are the capture's loss and do not count", endings::LOSS_MIN_RETRANSMITTED, pct(endings::LOSS_SHARE), endings::LOSS_MIN_SEGMENTS, endings::LOSS_MIN_SESSIONS, pct(endings::LOSS_MIN_SHARE_OF_SESSIONS))),
        (Cause::IdleTimeout, format!("at least {} sessions ended after the same idle time (±{}), at least {} and at least {} of those idle between half and twice as long; not counting ends by the client's normal Close. Known defaults are named", timers::MIN_SESSIONS, pct(timers::IDLE_TOLERANCE), s(timers::MIN_TIMER_US), pct(timers::DOMINANCE))),
        (Cause::LifetimeLimit, format!("at least {} sessions ended at the same age (±{}), the same dominance, at least {} of them busy near their end (idle below {} of their age); not when their idle times themselves agree (an idle timer)", timers::MIN_SESSIONS, pct(timers::LIFETIME_TOLERANCE), pct(timers::BUSY_SESSIONS), pct(timers::ACTIVE_SHARE))),
        (Cause::MessageLimit, format!("at least {} sessions closed by one side right after exactly the same number (>= {}) of the other side's messages, at least {} of those closed after half to twice as many; or a 1009 at the same cumulative bytes (±{}) while every message was below {} of them", limits::MIN_SESSIONS, limits::MIN_LIMIT_MESSAGES, pct(limits::DOMINANCE), pct(limits::VOLUME_TOLERANCE), pct(limits::SMALL_MESSAGE_SHARE))),
        (Cause::MessageTooBig, "a 1009 Close frame after a message larger than the rest (the refused size, the suggested limit; inflated sizes under permessage-deflate)".into()),
        (Cause::PolicyViolation, "a first Close frame with 1008, 3000, 3003, or 4000-4999 whose reason has a word starting with auth, token, unauthori, forbidden, rate, quota, origin, permission or denied".into()),
        (Cause::ServerShutdown, format!("the server's first Close frame is 1001 or 1012, or at least {} sessions of one server, and {} of those alive then, ended by the server side without a normal Close within {}", codes::MASS_END_MIN, pct(codes::MASS_END_SHARE), s(codes::MASS_END_WINDOW_US))),
        (Cause::ReconnectStorm, format!("at least {} distinct clients reconnected (a new session within {} of one of theirs ending) within {}, at least {}x the capture's usual reconnects per {}", reconnect::STORM_MIN_CLIENTS, s(reconnect::RECONNECT_WINDOW_US), s(reconnect::STORM_WINDOW_US), reconnect::STORM_FACTOR, s(reconnect::STORM_WINDOW_US))),
        (Cause::UnansweredClose, "exactly one Close frame, then TCP ended (FIN or RST)".into()),
        (Cause::HalfOpen, format!("one side sent a Close frame or FIN and the other released TCP (FIN/RST) {} or more later, or never", s(endings::HALF_OPEN_US))),
        (Cause::AbruptDisconnect, "FIN or RST with no Close frame at all".into()),
        (Cause::CaptureCut, "sessions still open when the capture ended".into()),
    ];
    for c in Cause::ALL {
        let rule = rules
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, r)| r.as_str())
            .unwrap_or("");
        entry(
            &mut h,
            &format!("{:<19} {}", c.token(), c.severity().as_str()),
            27,
            rule,
        );
    }
    let _ = write!(
        h,
        "
RECONNECTS: a client (by IP) opening a new session within {} after one of its sessions
ended.

JSON (--format json): one object with schema (1), totals, close_codes, who_ended,
distributions, reconnects, findings [{{cause, severity, title, sessions, sessions_total,
tcp_streams, filter, evidence, advice}}] (session_refs [{{source, session, tcp_stream}}]
instead of sessions with several --records files), notes.

",
        s(reconnect::RECONNECT_WINDOW_US)
    );
    h.push_str(exit_status_help!());
    h
}

pub fn frames_long() -> String {
    let mut h = String::from(FRAMES_SHORT.split("EXIT STATUS").next().unwrap_or(""));
    h.push_str(
        "LINES: grouped by session in the sessions report's order, each session's lines in \
         capture order.\n    kind        frame, syn, fin, rst, gap, retransmission\n    t           \
         seconds since the session's first packet\n    dir         client or server (who sent \
         it)\n    opcode      text, binary, continuation, close, ping, pong, or the number of a \
         reserved opcode\n    fin, rsv1, len, masked, close_code, close_reason\n    preview     the \
         start of the payload where the capture has it: text as text, binary as hex \
         (masked with --redact)\n\n",
    );
    h.push_str(exit_status_help!());
    h
}
