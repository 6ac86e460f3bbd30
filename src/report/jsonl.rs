//! The sessions report as JSON Lines: one `"kind": "session"` object per session — the
//! columns by name with typed values (null for empty, `anomalies` as an array), then the
//! JSON-only keys of [`EXTRAS`] — and one closing `"kind": "capture"` object with the
//! run's counters, the first and last packet times and the inputs, so that a stored file
//! describes itself. [`read_jsonl`] reads such a file back (`summary --records`).

use std::io::{self, BufRead, Write};

use super::columns::{record_from_json, EXTRAS};
use super::json::Json;
use super::{ReportWriter, Row, RunEnd, COLUMNS, PER_FILE_COLUMNS};
use crate::record::SessionRecord;
use crate::stats::Stats;

/// Version of the JSON forms (JSON Lines and the summary's JSON); bumped when a key
/// changes meaning or goes away (keys are only ever added within a version).
pub const SCHEMA: u64 = 1;

/// Writes the JSON Lines report.
pub struct JsonlWriter<W: Write> {
    out: W,
    j: Json,
    /// Write the `--per-file` columns too.
    per_file: bool,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        Self::with_per_file(out, false)
    }

    /// With `per_file`, each session also has the `--per-file` columns (after the others).
    pub fn with_per_file(out: W, per_file: bool) -> Self {
        JsonlWriter {
            out,
            j: Json::new(),
            per_file,
        }
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One session as a JSON object (no newline); with `per_file`, the `--per-file` columns
/// follow the others.
pub fn session_json(row: &Row<'_>, j: &mut Json, per_file: bool) {
    j.obj().key("kind").str("session");
    let per_file_columns: &[_] = if per_file { PER_FILE_COLUMNS } else { &[] };
    for c in COLUMNS.iter().chain(per_file_columns) {
        j.key(c.name).value((c.value)(row));
    }
    for e in EXTRAS {
        j.key(e.name);
        (e.write)(row, j);
    }
    j.end_obj();
}

/// The closing `"kind": "capture"` object (no newline).
pub fn capture_json(end: &RunEnd<'_>, j: &mut Json) {
    j.obj()
        .key("kind")
        .str("capture")
        .key("schema")
        .u64(SCHEMA)
        .key("inputs")
        .arr();
    for i in end.inputs {
        j.str(i);
    }
    j.end_arr().key("first_packet_time");
    match end.stats.first_ts_ns {
        Some(t) => j.time(t),
        None => j.null(),
    };
    j.key("last_packet_time");
    match end.stats.last_ts_ns {
        Some(t) => j.time(t),
        None => j.null(),
    };
    for (name, v) in end.stats.counters() {
        j.key(name).u64(v);
    }
    j.key("errors").arr();
    for e in end.errors {
        j.str(&e.to_string());
    }
    j.end_arr().end_obj();
}

impl<W: Write> ReportWriter for JsonlWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.j.clear();
        session_json(row, &mut self.j, self.per_file);
        self.j.out.push('\n');
        self.out.write_all(self.j.out.as_bytes())
    }

    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        self.j.clear();
        capture_json(end, &mut self.j);
        self.j.out.push('\n');
        self.out.write_all(self.j.out.as_bytes())?;
        self.out.flush()
    }
}

/// What a `"kind": "capture"` line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureLine {
    pub stats: Stats,
    pub inputs: Vec<String>,
    pub errors: Vec<String>,
}

/// Reads a JSON Lines report: each session to `on_session` (its number and record), in
/// file order; returns the capture line, if the file has one. An error names the line.
pub fn read_jsonl(
    r: impl BufRead,
    on_session: &mut dyn FnMut(u64, SessionRecord) -> io::Result<()>,
) -> io::Result<Option<CaptureLine>> {
    let bad = |n: usize, msg: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("line {n}: {msg}"))
    };
    let mut capture = None;
    for (i, line) in r.lines().enumerate() {
        let n = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(n, format!("not JSON: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| bad(n, "not a JSON object".into()))?;
        match o.get("kind").and_then(|k| k.as_str()) {
            Some("session") => {
                let (session, rec) = record_from_json(o).map_err(|e| bad(n, e))?;
                on_session(session, rec)?;
            }
            Some("capture") => {
                let schema = o.get("schema").and_then(|s| s.as_u64());
                if schema != Some(SCHEMA) {
                    return Err(bad(
                        n,
                        format!("schema {schema:?}, this wsclose reads {SCHEMA}"),
                    ));
                }
                let mut c = CaptureLine::default();
                for (k, v) in o {
                    if let Some(x) = v.as_u64() {
                        c.stats.set_counter(k, x);
                    }
                }
                let time = |k: &str| {
                    o.get(k)
                        .and_then(|t| t.as_str())
                        .and_then(crate::time::parse_rfc3339)
                };
                c.stats.first_ts_ns = time("first_packet_time");
                c.stats.last_ts_ns = time("last_packet_time");
                let list = |k: &str| -> Vec<String> {
                    o.get(k)
                        .and_then(|l| l.as_array())
                        .map(|l| {
                            l.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                c.inputs = list("inputs");
                c.errors = list("errors");
                capture = Some(c);
            }
            // Other kinds (from later versions) are not ours to read.
            _ => {}
        }
    }
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::columns::{Redact, RowOptions};
    use proptest::prelude::*;

    /// A record as the JSON report keeps it: times in whole microseconds.
    fn in_micros(mut r: SessionRecord) -> SessionRecord {
        let us = |ns: &mut i64| *ns = ns.div_euclid(1000) * 1000;
        let at = |a: &mut Option<crate::record::At>| {
            if let Some(a) = a {
                a.ts_ns = a.ts_ns.div_euclid(1000) * 1000;
            }
        };
        us(&mut r.start_ns);
        us(&mut r.end_ns);
        for t in [
            &mut r.tcp.client_fin,
            &mut r.tcp.server_fin,
            &mut r.tcp.client_rst,
            &mut r.tcp.server_rst,
            &mut r.last_payload_before_end,
        ] {
            at(t);
        }
        for s in [&mut r.client_side, &mut r.server_side] {
            if let Some(c) = &mut s.close {
                c.at.ts_ns = c.at.ts_ns.div_euclid(1000) * 1000;
            }
            at(&mut s.last_data);
            at(&mut s.ping_rtt.first_unanswered);
            at(&mut s.tcp.last_payload);
            at(&mut s.tcp.last_retransmission);
            for x in [
                &mut s.ping_rtt.min_ns,
                &mut s.ping_rtt.p50_ns,
                &mut s.ping_rtt.max_ns,
            ] {
                *x = if s.ping_rtt.answered == 0 {
                    0
                } else {
                    *x / 1000 * 1000
                };
            }
        }
        r.verdict = crate::verdict::verdict(&r.facts());
        // Where `frames` kept a timeline is not part of the report, nor the other leg's
        // order key; mid-stream and undecrypted sessions, and those whose request was not
        // captured, have no requests before an Upgrade.
        r.timeline = None;
        r.peer = None;
        if !r.handshake_seen()
            || r.upgrade == crate::verdict::Upgrade::Undecrypted
            || r.anomalies
                .contains(crate::record::Anomaly::RequestNotCaptured)
        {
            r.requests_before_upgrade = 0;
        }
        r
    }

    fn json_line(rec: &SessionRecord, session: u64) -> String {
        let opts = RowOptions {
            redact: Redact::Nothing,
            ..RowOptions::default()
        };
        let mut j = Json::new();
        session_json(
            &Row {
                session,
                rec,
                opts: &opts,
            },
            &mut j,
            true,
        );
        j.out
    }

    proptest! {
        #[test]
        fn a_session_line_reads_back_as_its_record(
            rec in crate::record::codec::tests::record(),
            session in 1u64..1_000_000,
        ) {
            // Times within what RFC 3339 years 0000-9999 can say, and every time a
            // plausible capture time.
            let mut rec = rec;
            let clamp = |ns: &mut i64| *ns = ns.rem_euclid(4_000_000_000_000_000_000);
            clamp(&mut rec.start_ns);
            clamp(&mut rec.end_ns);
            let ats = |r: &mut SessionRecord| {
                let mut v: Vec<&mut crate::record::At> = Vec::new();
                for a in [
                    &mut r.tcp.client_fin,
                    &mut r.tcp.server_fin,
                    &mut r.tcp.client_rst,
                    &mut r.tcp.server_rst,
                    &mut r.last_payload_before_end,
                ]
                .into_iter()
                .flatten()
                {
                    v.push(a);
                }
                for s in [&mut r.client_side, &mut r.server_side] {
                    if let Some(c) = &mut s.close {
                        v.push(&mut c.at);
                    }
                    for a in [
                        &mut s.last_data,
                        &mut s.ping_rtt.first_unanswered,
                        &mut s.tcp.last_payload,
                        &mut s.tcp.last_retransmission,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        v.push(a);
                    }
                }
                for a in v {
                    a.ts_ns = a.ts_ns.rem_euclid(4_000_000_000_000_000_000);
                }
            };
            ats(&mut rec);
            for s in [&mut rec.client_side, &mut rec.server_side] {
                for x in [&mut s.ping_rtt.min_ns, &mut s.ping_rtt.p50_ns, &mut s.ping_rtt.max_ns] {
                    *x = x.rem_euclid(1 << 40);
                }
            }
            // The reader needs a status for an answered upgrade: the column holds it.
            let rec = in_micros(rec);
            let line = json_line(&rec, session);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let (n, back) = record_from_json(v.as_object().unwrap()).unwrap();
            prop_assert_eq!(n, session);
            prop_assert_eq!(back, rec);
        }
    }

    #[test]
    fn secrets_are_redacted_unless_asked_not_to() {
        let rec = SessionRecord::example();
        let line = |redact| {
            let opts = RowOptions {
                redact,
                ..RowOptions::default()
            };
            let mut j = Json::new();
            session_json(
                &Row {
                    session: 1,
                    rec: &rec,
                    opts: &opts,
                },
                &mut j,
                false,
            );
            j.out
        };
        let default = line(Redact::Secrets);
        assert!(
            default.contains(r#"["Cookie","<redacted 10 bytes>"]"#),
            "{default}"
        );
        assert!(!default.contains("secret"));
        assert!(default.contains(r#""path":"/p?x=ü""#));
        let all = line(Redact::All);
        assert!(all.contains(r#""path":"/p?x=<redacted>""#), "{all}");
        let none = line(Redact::Nothing);
        assert!(none.contains(r#"["Cookie","sid=secret"]"#), "{none}");
    }
}
