//! The summary as one JSON object (`summary --format json`): `schema`, `totals`,
//! `close_codes`, `who_ended`, `distributions`, `reconnects`, `findings`, `notes`.
//! Durations are in seconds (numbers), times RFC 3339, counts integers.

use super::json::Json;
use super::jsonl::SCHEMA;
use crate::summary::codes::describe;
use crate::summary::dist::LogHist;
use crate::summary::findings::{Ev, Finding};
use crate::summary::Report;

/// `{"count", "min", "p50", "p90", "p99", "max"}` of a histogram (seconds or plain).
pub fn dist_json(j: &mut Json, h: &LogHist, seconds: bool) {
    j.obj().key("count").u64(h.count);
    for (k, q) in [
        ("min", 0.0),
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("max", 1.0),
    ] {
        j.key(k);
        if h.is_empty() {
            j.null();
        } else if seconds {
            j.seconds(h.quantile(q) as i64 * 1000);
        } else {
            j.u64(h.quantile(q));
        }
    }
    j.end_obj();
}

fn spread(j: &mut Json, h: &LogHist, seconds: bool) {
    j.obj();
    for (k, q) in [("min", 0.0), ("p50", 0.5), ("max", 1.0)] {
        j.key(k);
        if h.is_empty() {
            j.null();
        } else if seconds {
            j.seconds(h.quantile(q) as i64 * 1000);
        } else {
            j.u64(h.quantile(q));
        }
    }
    j.end_obj();
}

fn evidence_json(j: &mut Json, ev: &Ev) {
    match ev {
        Ev::Count(n) | Ev::Bytes(n) => {
            j.u64(*n);
        }
        Ev::Micros(us) => {
            j.seconds(us * 1000);
        }
        Ev::MicrosSpread(h) => spread(j, h, true),
        Ev::Spread(h) => spread(j, h, false),
        Ev::Share(x) => {
            j.f64((x * 1e6).round() / 1e6);
        }
        Ev::Text(t) => {
            j.str(t);
        }
        Ev::Tally(v) => {
            j.obj();
            for (k, n) in v {
                j.key(k).u64(*n);
            }
            j.end_obj();
        }
    }
}

/// The Wireshark display filter of a set of tcp.stream numbers.
pub fn stream_filter(streams: &[u64]) -> String {
    match streams {
        [one] => format!("tcp.stream eq {one}"),
        _ => {
            let v: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
            format!("tcp.stream in {{{}}}", v.join(" "))
        }
    }
}

fn finding_json(j: &mut Json, f: &Finding, report: &Report) {
    j.obj()
        .key("cause")
        .str(f.cause.token())
        .key("severity")
        .str(f.severity.as_str())
        .key("title")
        .str(&f.title);
    if report.multi_source() {
        j.key("session_refs").arr();
        for s in &f.sessions {
            let src = report
                .sources
                .get(s.source as usize)
                .map_or("", |x| x.name.as_str());
            j.obj()
                .key("source")
                .str(src)
                .key("session")
                .u64(s.session)
                .key("tcp_stream")
                .u64(s.tcp_stream)
                .end_obj();
        }
        j.end_arr();
    } else {
        j.key("sessions").arr();
        for s in &f.sessions {
            j.u64(s.session);
        }
        j.end_arr();
    }
    j.key("sessions_total").u64(f.sessions_total);
    let streams: Vec<u64> = f.sessions.iter().map(|s| s.tcp_stream).collect();
    j.key("tcp_streams").arr();
    for s in &streams {
        j.u64(*s);
    }
    j.end_arr();
    if !report.multi_source() && !streams.is_empty() {
        j.key("filter").str(&stream_filter(&streams));
    }
    j.key("evidence").obj();
    for (k, v) in &f.evidence {
        j.key(k);
        evidence_json(j, v);
    }
    j.end_obj().key("advice").str(&f.advice).end_obj();
}

/// The summary as one JSON document (no trailing newline).
pub fn write(report: &Report, j: &mut Json) {
    let st = &report.stats;
    j.obj().key("schema").u64(SCHEMA);
    // Totals.
    j.key("totals")
        .obj()
        .key("sessions")
        .u64(report.sessions)
        .key("by_outcome")
        .obj();
    for (o, n) in &report.by_outcome {
        j.key(o.as_str()).u64(*n);
    }
    j.end_obj()
        .key("abnormal")
        .u64(report.abnormal)
        .key("inexact")
        .u64(report.inexact)
        .key("capture")
        .obj()
        .key("first_packet_time");
    match st.first_ts_ns {
        Some(t) => j.time(t),
        None => j.null(),
    };
    j.key("last_packet_time");
    match st.last_ts_ns {
        Some(t) => j.time(t),
        None => j.null(),
    };
    j.key("span_s");
    match (st.first_ts_ns, st.last_ts_ns) {
        (Some(a), Some(b)) => j.seconds(b - a),
        _ => j.null(),
    };
    j.end_obj().key("read").obj();
    for (k, v) in st.counters() {
        j.key(k).u64(v);
    }
    j.end_obj().key("inputs").arr();
    for s in &report.sources {
        for i in &s.inputs {
            j.str(i);
        }
    }
    j.end_arr();
    if report.sources.iter().any(|s| !s.name.is_empty()) {
        j.key("records").arr();
        for s in &report.sources {
            j.str(&s.name);
        }
        j.end_arr();
    }
    j.key("errors").arr();
    for s in &report.sources {
        for e in &s.errors {
            j.str(e);
        }
    }
    j.end_arr().end_obj();
    // Close codes, with their reasons.
    j.key("close_codes").arr();
    for c in &report.close_codes {
        let d = describe(c.code);
        j.obj()
            .key("code")
            .u64(c.code as u64)
            .key("name")
            .str(d.name)
            .key("meaning")
            .str(d.meaning)
            .key("client")
            .u64(c.client)
            .key("server")
            .u64(c.server)
            .key("reasons")
            .arr();
        for (side, code, reason, n) in &report.reasons {
            if *code == c.code {
                j.obj()
                    .key("side")
                    .str(side.as_str())
                    .key("reason")
                    .str(reason)
                    .key("count")
                    .u64(*n)
                    .end_obj();
            }
        }
        j.end_arr().end_obj();
    }
    j.end_arr();
    // Who ended it.
    let w = &report.who;
    j.key("who_ended")
        .obj()
        .key("first_close")
        .obj()
        .key("client")
        .u64(w.first_close[0])
        .key("server")
        .u64(w.first_close[1])
        .key("none")
        .u64(w.first_close[2])
        .end_obj()
        .key("ended_by")
        .obj()
        .key("client")
        .u64(w.ended_by[0])
        .key("server")
        .u64(w.ended_by[1])
        .end_obj()
        .key("tcp")
        .obj()
        .key("fin_by_client")
        .u64(w.fin_by[0])
        .key("fin_by_server")
        .u64(w.fin_by[1])
        .key("rst_by_client")
        .u64(w.rst_by[0])
        .key("rst_by_server")
        .u64(w.rst_by[1])
        .key("open")
        .u64(w.open)
        .end_obj()
        .end_obj();
    j.key("distributions").obj();
    for d in &report.distributions {
        j.key(d.name);
        dist_json(j, &d.hist, d.seconds);
    }
    j.end_obj();
    let r = &report.reconnects;
    j.key("reconnects")
        .obj()
        .key("count")
        .u64(r.count)
        .key("clients")
        .u64(r.clients as u64)
        .key("delay_s");
    dist_json(j, &r.delays, true);
    j.key("storms").arr();
    for s in &r.storms {
        j.obj()
            .key("from")
            .time(s.from * 1000)
            .key("to")
            .time(s.to * 1000)
            .key("reconnects")
            .u64(s.reconnects)
            .key("clients_at_least")
            .u64(s.clients as u64)
            .end_obj();
    }
    j.end_arr().end_obj();
    j.key("findings").arr();
    for f in &report.findings {
        finding_json(j, f, report);
    }
    j.end_arr().key("notes").arr();
    for n in &report.notes {
        j.str(n);
    }
    j.end_arr().end_obj();
}
