//! `PageData`: exactly what the HTML page shows, nothing more — the totals, the close
//! codes, who ended the sessions, the findings with what to mark, the histograms, the
//! timeline's sessions as columns, and the drill-down events. `adapter.rs` builds it from
//! the summary; `render.rs` writes it. Its JSON form (`to_json`) is what the page's script
//! reads; the server-rendered text is written from the same fields.

use serde_json::{json, Value};

use super::marks::Timeline;
use crate::record::Side;
use crate::verdict::Outcome;

/// The page's data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageData {
    /// `wsclose VERSION`.
    pub generator: String,
    /// The inputs as named on the command line.
    pub inputs: Vec<String>,
    pub capture: CaptureFacts,
    pub totals: Totals,
    /// The most used close codes (at most [`MAX_CODES`]), in code order.
    pub close_codes: Vec<CodeRow>,
    /// The codes not listed: how many, and their Close frames from the client, the server.
    pub close_codes_others: (u64, u64, u64),
    /// Close reasons by side and code, most frequent first (at most [`MAX_REASONS`]).
    pub reasons: Vec<ReasonRow>,
    /// Reasons not listed.
    pub reasons_others: u64,
    pub who: Who,
    pub findings: Vec<FindingView>,
    pub distributions: Vec<Histogram>,
    pub reconnects: Reconnects,
    pub timeline: Timeline,
    /// The last frame events of sessions the findings name.
    pub drill: Vec<Drill>,
    pub notes: Vec<String>,
}

/// Close codes listed on the page, at most.
pub const MAX_CODES: usize = 40;
/// Reasons listed on the page, at most.
pub const MAX_REASONS: usize = 50;
/// Session numbers a finding lists as text, at most (the page highlights all it has).
pub const MAX_LISTED: usize = 50;

/// What was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureFacts {
    /// First and last packet (µs since the epoch), when any was read.
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    /// What was read and what was not analyzed, as the closing line on stderr says it.
    pub read: String,
}

/// Session counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sessions: u64,
    pub abnormal: u64,
    pub inexact: u64,
    /// Every outcome, in [`Outcome::ALL`] order, zeros included.
    pub by_outcome: Vec<(Outcome, u64)>,
}

/// One close code, with its registered name and meaning, and the frames per side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeRow {
    pub code: u16,
    pub name: String,
    pub meaning: String,
    pub client: u64,
    pub server: u64,
}

/// One close reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonRow {
    pub side: Side,
    pub code: u16,
    pub reason: String,
    pub count: u64,
}

/// Who ended the sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Who {
    /// First Close frame from the client, the server, none.
    pub first_close: [u64; 3],
    /// The packet that ended the session came from the client, the server.
    pub ended_by: [u64; 2],
    pub fin_by: [u64; 2],
    pub rst_by: [u64; 2],
    pub open: u64,
}

/// A finding as the page shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FindingView {
    pub cause: String,
    pub severity: String,
    pub title: String,
    pub advice: String,
    /// The sessions named (at most what the summary lists), and their tcp.stream.
    pub sessions: Vec<u64>,
    pub tcp_streams: Vec<u64>,
    pub sessions_total: u64,
    /// (name, value as text), in the summary's order.
    pub evidence: Vec<(String, String)>,
    /// The interval to mark on a histogram.
    pub mark: Option<Interval>,
}

/// A range of a distribution to mark (in the distribution's unit: seconds or a count).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interval {
    pub dist: String,
    pub lo: f64,
    pub hi: f64,
    pub label: String,
}

/// A histogram ready to draw: log-spaced bins over the values' range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub name: String,
    pub meaning: String,
    /// Values are seconds (else counts).
    pub seconds: bool,
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
    /// Values of 0 (drawn apart).
    pub zeros: u64,
    /// (low, high, count) of each bin, increasing.
    pub bins: Vec<(f64, f64, u64)>,
}

/// Reconnects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconnects {
    pub count: u64,
    pub clients: u64,
    /// Bursts: (from, to) µs since the epoch, reconnects, clients.
    pub storms: Vec<(i64, i64, u64, u64)>,
}

/// The last frame events of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drill {
    pub session: u64,
    pub events: Vec<DrillEvent>,
    /// Events before these that were not kept.
    pub omitted: u64,
}

/// One frame or TCP event (as `frames --format jsonl` names them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrillEvent {
    /// µs since the session's first packet.
    pub t_us: i64,
    /// The packet, as Wireshark numbers it.
    pub packet: u64,
    /// `client` or `server`.
    pub dir: String,
    /// `frame`, `syn`, `fin`, `rst`, `gap`, `retransmission`.
    pub kind: String,
    /// For frames: `text`, `binary`, `continuation`, `close`, `ping`, `pong` or a number.
    pub opcode: String,
    pub fin: bool,
    pub len: u64,
    pub close_code: Option<u16>,
    pub close_reason: String,
    pub preview: String,
}

/// A number JSON can hold exactly in a browser (integers up to 2^53).
fn n(x: u64) -> Value {
    json!(x)
}

/// Seconds and counts rounded to µs, so that the file does not carry float noise.
fn f(x: f64) -> Value {
    json!((x * 1e6).round() / 1e6)
}

impl PageData {
    /// The JSON the page's script reads (not yet escaped for HTML: `render` does that).
    pub fn to_json(&self) -> String {
        let t = &self.timeline;
        let c = &t.columns;
        let lanes = |l: &super::marks::Lanes| json!({"labels": l.labels, "sessions": l.sessions, "of": l.of, "bins": l.bins});
        let v = json!({
            "schema": 1,
            "generator": self.generator,
            "inputs": self.inputs,
            "outcomes": Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "totals": {
                "sessions": n(self.totals.sessions),
                "abnormal": n(self.totals.abnormal),
                "by_outcome": self.totals.by_outcome.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
            },
            "findings": self.findings.iter().map(|x| json!({
                "cause": x.cause,
                "severity": x.severity,
                "title": x.title,
                "sessions": x.sessions,
                "sessions_total": n(x.sessions_total),
                "mark": x.mark.as_ref().map(|m| json!({
                    "dist": m.dist, "lo": f(m.lo), "hi": f(m.hi), "label": m.label,
                })),
            })).collect::<Vec<_>>(),
            "distributions": self.distributions.iter().map(|h| json!({
                "name": h.name,
                "seconds": h.seconds,
                "count": n(h.count),
                "zeros": n(h.zeros),
                "bins": h.bins.iter().map(|(lo, hi, k)| json!([f(*lo), f(*hi), k])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "timeline": {
                "t0_us": t.t0,
                "span_us": t.span,
                "bin_us": t.bin_us,
                "aggregated": n(t.aggregated),
                "dict": t.dict,
                "session": c.session,
                "tcp_stream": c.tcp_stream,
                "start": delta(&c.start),
                "duration": c.duration,
                "close_at_c": c.close_at[0],
                "close_at_s": c.close_at[1],
                "code_c": c.close_code[0],
                "code_s": c.close_code[1],
                "reason_c": c.reason[0],
                "reason_s": c.reason[1],
                "tcp_end": c.tcp_end,
                "tcp_end_by": c.tcp_end_by,
                "tcp_end_at": c.tcp_end_at,
                "first_close_by": c.first_close_by,
                "outcome": c.outcome,
                "client": c.client,
                "server": c.server,
                "path": c.path,
                "host": c.host,
                "http_status": c.http_status,
                "messages_c": c.messages[0],
                "messages_s": c.messages[1],
                "flags": c.flags,
                "lanes": {
                    "server": lanes(&t.by_server),
                    "client": lanes(&t.by_client),
                    "outcome": lanes(&t.by_outcome),
                },
            },
            "drill": self.drill.iter().map(|d| json!({
                "session": n(d.session),
                "omitted": n(d.omitted),
                "events": d.events.iter().map(|e| json!([
                    e.t_us, e.dir, e.kind, e.opcode, e.fin, e.len, e.close_code,
                    e.close_reason, e.preview, e.packet,
                ])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        v.to_string()
    }
}

/// Each value minus the one before (the first as is): starts in session order are small
/// steps.
fn delta(v: &[i64]) -> Vec<i64> {
    let mut prev = 0;
    v.iter()
        .map(|x| {
            let d = x - prev;
            prev = *x;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_written_as_steps() {
        assert_eq!(delta(&[5, 7, 7, 20]), vec![5, 2, 0, 13]);
        assert_eq!(delta(&[]), Vec::<i64>::new());
    }

    #[test]
    fn json_has_the_script_s_keys() {
        let p = PageData {
            totals: Totals {
                sessions: 3,
                by_outcome: Outcome::ALL.iter().map(|o| (*o, 0)).collect(),
                ..Totals::default()
            },
            ..PageData::default()
        };
        let v: Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["totals"]["sessions"], 3);
        assert_eq!(v["outcomes"].as_array().unwrap().len(), Outcome::ALL.len());
        for k in ["session", "start", "duration", "lanes", "dict", "flags"] {
            assert!(v["timeline"].get(k).is_some(), "{k}");
        }
    }
}
