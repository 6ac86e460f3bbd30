//! `PageData`: exactly what the HTML page shows, nothing more — the totals, the close
//! codes, who ended the sessions, the findings with what to mark, the histograms, the
//! timeline's sessions as columns, and the drill-down events. `adapter.rs` builds it from
//! the summary; `render.rs` writes it. Its JSON form (`to_json`) is what the page's script
//! reads; the server-rendered text is written from the same fields.

use super::marks::{Lanes, Timeline};
use crate::record::Side;
use crate::report::json::Json;
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

/// Seconds and counts rounded to µs, so that the file does not carry float noise.
fn f(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A key and what writes its value.
type Writes<'a> = (&'a str, &'a dyn Fn(&mut Json));

/// An array of integers.
fn ints<T: Copy + Into<i128>>(j: &mut Json, v: &[T]) {
    j.arr();
    for x in v {
        let x: i128 = (*x).into();
        match u64::try_from(x) {
            Ok(u) => j.u64(u),
            Err(_) => j.i64(x as i64),
        };
    }
    j.end_arr();
}

fn strs<S: AsRef<str>>(j: &mut Json, v: &[S]) {
    j.arr();
    for x in v {
        j.str(x.as_ref());
    }
    j.end_arr();
}

fn lanes(j: &mut Json, l: &Lanes) {
    j.obj().key("labels");
    strs(j, &l.labels);
    j.key("sessions");
    ints(j, &l.sessions);
    j.key("of");
    ints(j, &l.of);
    j.key("bins");
    ints(j, &l.bins);
    j.end_obj();
}

impl PageData {
    /// The JSON the page's script reads (not yet escaped for HTML: `render` does that).
    /// Written as it goes (no tree of values: the columns of 20,000 sessions stay flat).
    pub fn to_json(&self) -> String {
        let mut j = Json::new();
        j.obj().key("schema").u64(1);
        j.key("generator").str(&self.generator);
        j.key("inputs");
        strs(&mut j, &self.inputs);
        j.key("outcomes");
        strs(&mut j, &Outcome::ALL.map(|o| o.as_str()));
        j.key("totals").obj();
        j.key("sessions").u64(self.totals.sessions);
        j.key("abnormal").u64(self.totals.abnormal);
        j.key("by_outcome").arr();
        for (_, k) in &self.totals.by_outcome {
            j.u64(*k);
        }
        j.end_arr().end_obj();
        j.key("findings").arr();
        for x in &self.findings {
            j.obj();
            j.key("cause").str(&x.cause);
            j.key("severity").str(&x.severity);
            j.key("title").str(&x.title);
            j.key("sessions");
            ints(&mut j, &x.sessions);
            j.key("sessions_total").u64(x.sessions_total);
            j.key("mark");
            match &x.mark {
                Some(m) => {
                    j.obj().key("dist").str(&m.dist);
                    j.key("lo").f64(f(m.lo)).key("hi").f64(f(m.hi));
                    j.key("label").str(&m.label).end_obj();
                }
                None => {
                    j.null();
                }
            }
            j.end_obj();
        }
        j.end_arr();
        j.key("distributions").arr();
        for h in &self.distributions {
            j.obj().key("name").str(&h.name);
            j.key("seconds").bool(h.seconds);
            j.key("count").u64(h.count);
            j.key("zeros").u64(h.zeros);
            j.key("bins").arr();
            for (lo, hi, k) in &h.bins {
                j.arr().f64(f(*lo)).f64(f(*hi)).u64(*k).end_arr();
            }
            j.end_arr().end_obj();
        }
        j.end_arr();
        let t = &self.timeline;
        let c = &t.columns;
        j.key("timeline").obj();
        j.key("t0_us").i64(t.t0);
        j.key("span_us").i64(t.span);
        j.key("bin_us").i64(t.bin_us);
        j.key("aggregated").u64(t.aggregated);
        j.key("dict");
        strs(&mut j, &t.dict);
        let cols: [Writes<'_>; 26] = [
            ("session", &|j| ints(j, &c.session)),
            ("tcp_stream", &|j| ints(j, &c.tcp_stream)),
            ("start", &|j| ints(j, &delta(&c.start))),
            ("duration", &|j| ints(j, &c.duration)),
            ("close_at_c", &|j| ints(j, &c.close_at[0])),
            ("close_at_s", &|j| ints(j, &c.close_at[1])),
            ("code_c", &|j| ints(j, &c.close_code[0])),
            ("code_s", &|j| ints(j, &c.close_code[1])),
            ("reason_c", &|j| ints(j, &c.reason[0])),
            ("reason_s", &|j| ints(j, &c.reason[1])),
            ("tcp_end", &|j| ints(j, &c.tcp_end)),
            ("tcp_end_by", &|j| ints(j, &c.tcp_end_by)),
            ("tcp_end_at", &|j| ints(j, &c.tcp_end_at)),
            ("first_close_by", &|j| ints(j, &c.first_close_by)),
            ("outcome", &|j| ints(j, &c.outcome)),
            ("client", &|j| ints(j, &c.client)),
            ("server", &|j| ints(j, &c.server)),
            ("path", &|j| ints(j, &c.path)),
            ("host", &|j| ints(j, &c.host)),
            ("http_status", &|j| ints(j, &c.http_status)),
            ("messages_c", &|j| ints(j, &c.messages[0])),
            ("messages_s", &|j| ints(j, &c.messages[1])),
            ("flags", &|j| ints(j, &c.flags)),
            ("lanes", &|j| {
                j.obj().key("server");
                lanes(j, &t.by_server);
                j.key("client");
                lanes(j, &t.by_client);
                j.key("outcome");
                lanes(j, &t.by_outcome);
                j.end_obj();
            }),
            ("named_kept", &|j| {
                j.u64(t.named_kept);
            }),
            ("named_total", &|j| {
                j.u64(t.named_total);
            }),
        ];
        for (k, w) in cols {
            j.key(k);
            w(&mut j);
        }
        j.end_obj();
        j.key("drill").arr();
        for d in &self.drill {
            j.obj().key("session").u64(d.session);
            j.key("omitted").u64(d.omitted);
            j.key("events").arr();
            for e in &d.events {
                j.arr().i64(e.t_us).str(&e.dir).str(&e.kind).str(&e.opcode);
                j.bool(e.fin).u64(e.len);
                match e.close_code {
                    Some(c) => j.u64(c as u64),
                    None => j.null(),
                };
                j.str(&e.close_reason).str(&e.preview).u64(e.packet);
                j.end_arr();
            }
            j.end_arr().end_obj();
        }
        j.end_arr();
        j.end_obj();
        j.out
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
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["totals"]["sessions"], 3);
        assert_eq!(v["outcomes"].as_array().unwrap().len(), Outcome::ALL.len());
        for k in ["session", "start", "duration", "lanes", "dict", "flags"] {
            assert!(v["timeline"].get(k).is_some(), "{k}");
        }
    }
}
