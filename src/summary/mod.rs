//! The post-mortem summary: totals, close codes, who ended the sessions, distributions,
//! reconnects and findings, from session records alone — so that the summary of a capture
//! and the summary of the JSON Lines its `sessions` report wrote are the same.
//!
//! Memory is bounded: every record becomes a compact [`row::Row`] kept by a
//! [`row::RowStore`] (spilled to disk past a cap), statistics are bounded histograms
//! ([`dist::LogHist`]) and capped tables; the findings ([`findings`]) take two passes over
//! the rows. The text and JSON forms are in `report/summary_text.rs` and
//! `report/summary_json.rs`.

pub mod codes;
pub mod dist;
pub mod findings;
pub mod reconnect;
pub mod row;

use std::collections::BTreeMap;
use std::io;

use crate::record::{SessionRecord, Side};
use crate::stats::Stats;
use crate::verdict::{Outcome, TcpEnd};
use dist::LogHist;
use findings::{Context, Finding, Scan};
use row::{Row, RowStore};

/// Rows kept in memory before they are spilled (bytes), as the sessions report keeps
/// waiting records (`Limits::max_pending_bytes`).
pub const MAX_ROW_MEMORY: usize = 8 << 20;
/// Distinct (side, code, reason) kept for the reasons table; more are counted as others.
pub const MAX_REASONS: usize = 4096;

/// Close reasons by side and code, with counts (bounded).
#[derive(Debug, Default)]
pub struct ReasonTable {
    map: BTreeMap<(u8, u16, String), u64>,
    /// Reasons not kept (the table was full).
    pub others: u64,
}

impl ReasonTable {
    fn add(&mut self, side: Side, code: u16, reason: &str) {
        let k = (row::idx(side) as u8, code, reason.to_string());
        if self.map.len() < MAX_REASONS || self.map.contains_key(&k) {
            *self.map.entry(k).or_default() += 1;
        } else {
            self.others += 1;
        }
    }

    /// `side code "reason"` labels of `side`'s reasons whose code and text pass `pred`,
    /// most frequent first, at most `max`.
    pub fn reasons_of(
        &self,
        side: Side,
        pred: &dyn Fn(u16, &str) -> bool,
        max: usize,
    ) -> Vec<(String, u64)> {
        let s = row::idx(side) as u8;
        let mut v: Vec<(String, u64)> = self
            .map
            .iter()
            .filter(|((sd, c, r), _)| *sd == s && pred(*c, r))
            .map(|((_, c, r), n)| (format!("{} {c} \"{r}\"", side.as_str()), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(max);
        v
    }

    /// Every (side, code, reason, count), most frequent first.
    pub fn all(&self) -> Vec<(Side, u16, &str, u64)> {
        let mut v: Vec<(Side, u16, &str, u64)> = self
            .map
            .iter()
            .map(|((s, c, r), n)| {
                let side = if *s == 0 { Side::Client } else { Side::Server };
                (side, *c, r.as_str(), *n)
            })
            .collect();
        v.sort_by(|a, b| {
            b.3.cmp(&a.3)
                .then((a.0 as u8, a.1, a.2).cmp(&(b.0 as u8, b.1, b.2)))
        });
        v
    }
}

/// One line of the close codes table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeLine {
    pub code: u16,
    /// Close frames with this code sent by the client, and by the server.
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
    /// TCP: FIN by client/server, RST by client/server, still open.
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

/// What the reconnects section says.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectSummary {
    pub count: u64,
    pub clients: usize,
    pub delays: LogHist,
    pub storms: Vec<reconnect::Storm>,
}

/// One input of the summary: a capture run, or a records file.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The records file (`summary --records`), or empty for captures.
    pub name: String,
    pub stats: Stats,
    pub inputs: Vec<String>,
    pub errors: Vec<String>,
}

/// The whole summary, ready to be written as text or JSON.
#[derive(Clone, Debug)]
pub struct Report {
    pub sources: Vec<Source>,
    /// Every source's counters added up (first/last times: the earliest and latest).
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

impl Report {
    /// Findings name sessions by (source, session) when there are several sources.
    pub fn multi_source(&self) -> bool {
        self.sources.len() > 1
    }
}

/// Builds the summary from records, one at a time.
pub struct Builder {
    rows: RowStore,
    scan: Scan,
    reasons: ReasonTable,
    by_outcome: BTreeMap<usize, u64>,
    sessions: u64,
    upgraded: u64,
    abnormal: u64,
    inexact: u64,
    codes: BTreeMap<u16, [u64; 2]>,
    who: WhoEnded,
    duration: LogHist,
    messages: [LogHist; 2],
    idle: LogHist,
    data_idle: LogHist,
    rtt: LogHist,
    last_row_end: i64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new(MAX_ROW_MEMORY)
    }
}

impl Builder {
    /// A builder that keeps at most `max_row_memory` bytes of rows in memory.
    pub fn new(max_row_memory: usize) -> Self {
        Builder {
            rows: RowStore::new(max_row_memory),
            scan: Scan::default(),
            reasons: ReasonTable::default(),
            by_outcome: BTreeMap::new(),
            sessions: 0,
            upgraded: 0,
            abnormal: 0,
            inexact: 0,
            codes: BTreeMap::new(),
            who: WhoEnded::default(),
            duration: LogHist::default(),
            messages: Default::default(),
            idle: LogHist::default(),
            data_idle: LogHist::default(),
            rtt: LogHist::default(),
            last_row_end: i64::MIN,
        }
    }

    /// One session of source `source`, numbered `session` there.
    pub fn add(&mut self, source: u32, session: u64, rec: &SessionRecord) -> io::Result<()> {
        let r = Row::from_record(source, session, rec);
        self.sessions += 1;
        let o = Outcome::ALL
            .iter()
            .position(|x| *x == r.outcome)
            .unwrap_or(0);
        *self.by_outcome.entry(o).or_default() += 1;
        if r.outcome.is_abnormal() {
            self.abnormal += 1;
        }
        if rec.upgrade == crate::verdict::Upgrade::Undecrypted {
            // A TLS connection that could not be decrypted: no WebSocket facts to judge.
            return Ok(());
        }
        if !r.has(row::flag::EXACT) {
            self.inexact += 1;
        }
        for (i, s) in [(0, &rec.client_side), (1, &rec.server_side)] {
            if let Some(c) = &s.close {
                let code = c.code.unwrap_or(1005);
                self.codes.entry(code).or_default()[i] += 1;
                let side = if i == 0 { Side::Client } else { Side::Server };
                self.reasons.add(side, code, &c.reason);
            }
        }
        // Who ended a session picked up mid-stream is in the capture as much as for any
        // other (its Close frames, FIN and RST); its duration and the rest are not.
        if r.upgraded() || rec.upgrade == crate::verdict::Upgrade::Midstream {
            self.who.first_close[match r.first_close_by {
                Some(Side::Client) => 0,
                Some(Side::Server) => 1,
                None => 2,
            }] += 1;
            if let Some(s) = r.ended_by {
                self.who.ended_by[row::idx(s)] += 1;
            }
            match (r.tcp_end, r.tcp_end_by) {
                (TcpEnd::Fin, Some(s)) => self.who.fin_by[row::idx(s)] += 1,
                (TcpEnd::Rst, Some(s)) => self.who.rst_by[row::idx(s)] += 1,
                _ => self.who.open += 1,
            }
        }
        if r.upgraded() {
            self.upgraded += 1;
            self.duration.add((r.last - r.start).max(0) as u64);
            for i in 0..2 {
                self.messages[i].add(r.messages_before_close[i]);
            }
            if let Some(i) = r.idle_before_end() {
                self.idle.add(i.max(0) as u64);
            }
            if let Some(d) = r.data_idle_before_end() {
                self.data_idle.add(d as u64);
            }
            for i in 0..2 {
                if r.pings_answered[i] > 0 {
                    self.rtt.add(r.rtt_p50[i].max(0) as u64);
                }
            }
        }
        self.last_row_end = self.last_row_end.max(r.last);
        self.scan.add(&r);
        self.rows.push(r)
    }

    /// The summary, given the sources read (their counters and inputs).
    pub fn finish(mut self, sources: Vec<Source>) -> io::Result<Report> {
        let mut stats = Stats::default();
        for s in &sources {
            let (first, last) = (stats.first_ts_ns, stats.last_ts_ns);
            stats.add(&s.stats);
            stats.first_ts_ns = match (first, s.stats.first_ts_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            stats.last_ts_ns = last.max(s.stats.last_ts_ns);
        }
        let capture_end = stats
            .last_ts_ns
            .map_or(self.last_row_end, |t| t.div_euclid(1000))
            .max(self.last_row_end);
        let cx = Context {
            capture_end,
            sessions: self.sessions,
            upgraded: self.upgraded,
            reasons: &self.reasons,
        };
        let rows = &mut self.rows;
        let findings = findings::find(&self.scan, &cx, &mut |f| rows.for_each(f))?;
        let mut notes = Vec::new();
        if self.inexact > 0 {
            notes.push(format!(
                "{} sessions have counts that may be lower bounds (gaps, cut packets; see their \
                 anomalies): findings use what the capture shows",
                self.inexact
            ));
        }
        let undecrypted = stats.tls.no_key
            + stats.tls.decrypt_failed
            + stats.tls.unsupported_cipher
            + stats.tls.handshake_missing;
        if undecrypted > 0 {
            notes.push(format!(
                "{undecrypted} TLS connections were not decrypted (no key, a wrong key log, an \
                 unsupported suite or a handshake not captured): what they carried is not in \
                 the findings, codes and distributions (their rows are counted as undecrypted; \
                 give the key log with --keylog)"
            ));
        }
        if self.scan.reconnects.saturated() {
            notes.push(format!(
                "more than {} distinct clients: reconnects of later clients were not followed",
                reconnect::MAX_TRACKED_CLIENTS
            ));
        }
        if self.reasons.others > 0 {
            notes.push(format!(
                "{} close reasons beyond the first {MAX_REASONS} distinct ones are counted as \
                 others",
                self.reasons.others
            ));
        }
        let r = &self.scan.reconnects;
        let reconnects = ReconnectSummary {
            count: r.count,
            clients: r.clients(),
            delays: r.delays.clone(),
            storms: r.storms(),
        };
        Ok(Report {
            sources,
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
            reasons: self
                .reasons
                .all()
                .into_iter()
                .map(|(s, c, r, n)| (s, c, r.to_string(), n))
                .collect(),
            reasons_others: self.reasons.others,
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
                    meaning: "data messages the client sent before the first Close frame",
                    hist: self.messages[0].clone(),
                },
                Distribution {
                    name: "server_messages_before_close",
                    seconds: false,
                    meaning: "data messages the server sent before the first Close frame",
                    hist: self.messages[1].clone(),
                },
                Distribution {
                    name: "idle_before_end_s",
                    seconds: true,
                    meaning: "last payload (either side, pings included) to the first Close frame, FIN or RST",
                    hist: self.idle,
                },
                Distribution {
                    name: "idle_since_data_s",
                    seconds: true,
                    meaning: "last data frame (either side) to the same end",
                    hist: self.data_idle,
                },
                Distribution {
                    name: "ping_rtt_s",
                    seconds: true,
                    meaning: "ping to pong round trip (median of each session and side)",
                    hist: self.rtt,
                },
            ],
            reconnects,
            findings,
            notes,
        })
    }
}
