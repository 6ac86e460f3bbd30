//! The timeline's sessions: one compact [`Mark`] per session (its times, close codes, how
//! TCP ended, the endpoints, and its texts as indices into a bounded string dictionary),
//! held by a [`MarkStore`] in memory up to a cap and spilled to an unlinked temporary file
//! past it, as `reorder.rs` does with records. Findings are known only at the end, so the
//! choice of what the page draws one by one is made then, in [`MarkStore::timeline`]: up to
//! [`MAX_KEPT`] sessions individually (those the findings name first, then the abnormal
//! ones, then by first packet), the rest counted into per-lane time bins that say how many
//! sessions they stand for — never dropped.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::net::{Addr, Endpoint};
use crate::record::{Anomaly, SessionRecord, Side};
use crate::report::columns::{redact_query, Redact};
use crate::spill::{FixedCodec, SpillVec};
use crate::verdict::{Outcome, TcpEnd};
use crate::ws::timeline::TimelineRef;

/// Sessions the page draws individually, at most.
pub const MAX_KEPT: usize = 20_000;
/// Lanes per grouping, at most; the least used are merged into one "other" lane.
pub const MAX_LANES: usize = 40;
/// Time bins of the aggregated sessions, over the capture's span.
pub const TIME_BINS: usize = 480;
/// Characters of one text (path, host, reason) kept; longer ones end with `…`.
pub const MAX_TEXT_CHARS: usize = 200;
/// Bytes of distinct texts kept; past it, a new text is shown as [`TEXT_NOT_KEPT`].
pub const MAX_DICT_BYTES: usize = 8 << 20;
/// Distinct lane keys (servers, client addresses) counted; later ones go to "other".
pub const MAX_LANE_KEYS: usize = 1 << 20;
/// Marks kept in memory before they are spilled (bytes).
pub const MAX_MARK_MEMORY: usize = 4 << 20;
/// "No time": the moment did not happen.
pub const NONE: i64 = i64::MIN;
/// What a text past [`MAX_DICT_BYTES`] reads as.
pub const TEXT_NOT_KEPT: &str = "(not kept: too many distinct texts)";

/// Flags of a mark (and of the page's `flags` column).
pub mod flag {
    /// reset, unanswered_close or no_close_frame.
    pub const ABNORMAL: u8 = 1;
    /// A count may be a lower bound.
    pub const INEXACT: u8 = 2;
    /// Bytes of the stream are missing from the capture.
    pub const GAP: u8 = 4;
    /// A finding names the session (set on the page only).
    pub const NAMED: u8 = 8;
}

/// What the timeline needs of one session. Times are µs since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub session: u64,
    pub tcp_stream: u64,
    pub start: i64,
    pub end: i64,
    /// The Close frame of the client, of the server ([`NONE`] without one).
    pub close_at: [i64; 2],
    /// 0 without a Close frame, 1005 for one without a code.
    pub close_code: [u16; 2],
    /// Dictionary indices of the Close reasons.
    pub reason: [u32; 2],
    /// The packet that `tcp_end` names (the first RST, else the first FIN).
    pub tcp_end_at: i64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub messages: [u64; 2],
    pub path: u32,
    pub host: u32,
    /// 0 when no answer was seen.
    pub http_status: u16,
    /// Where the session's last frame events are (the ring kept for the drill-down), when
    /// they were kept.
    pub ring: Option<TimelineRef>,
    /// Index in [`Outcome::ALL`].
    pub outcome: u8,
    /// 0 none, 1 client, 2 server.
    pub first_close_by: u8,
    /// 0 fin, 1 rst, 2 open.
    pub tcp_end: u8,
    pub tcp_end_by: u8,
    pub flags: u8,
}

fn side_code(s: Option<Side>) -> u8 {
    match s {
        None => 0,
        Some(Side::Client) => 1,
        Some(Side::Server) => 2,
    }
}

fn us(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

/// Distinct texts, each kept once, up to [`MAX_DICT_BYTES`]. Index 0 is the empty text,
/// 1 is [`TEXT_NOT_KEPT`].
#[derive(Debug)]
pub struct Dict {
    map: HashMap<Box<str>, u32>,
    bytes: usize,
}

impl Default for Dict {
    fn default() -> Self {
        let mut map = HashMap::new();
        map.insert("".into(), 0);
        map.insert(TEXT_NOT_KEPT.into(), 1);
        Dict { map, bytes: 0 }
    }
}

impl Dict {
    /// The index of `s` (cut to [`MAX_TEXT_CHARS`] characters).
    pub fn intern(&mut self, s: &str) -> u32 {
        let cut;
        let s = match s.char_indices().nth(MAX_TEXT_CHARS) {
            Some((i, _)) => {
                cut = format!("{}…", &s[..i]);
                cut.as_str()
            }
            None => s,
        };
        if let Some(i) = self.map.get(s) {
            return *i;
        }
        if self.bytes + s.len() > MAX_DICT_BYTES {
            return 1;
        }
        let i = self.map.len() as u32;
        self.bytes += s.len();
        self.map.insert(s.into(), i);
        i
    }

    /// Every text by index.
    pub fn texts(&self) -> Vec<&str> {
        let mut v = vec![""; self.map.len()];
        for (s, i) in &self.map {
            v[*i as usize] = s;
        }
        v
    }
}

impl Mark {
    /// The mark of `rec`, numbered `session`; its texts go into `dict`, hidden as `redact`
    /// says (query-string values with `--redact`, as in every output).
    pub fn from_record(
        session: u64,
        rec: &SessionRecord,
        dict: &mut Dict,
        redact: Redact,
        scratch: &mut String,
    ) -> Mark {
        let v = &rec.verdict;
        let sides = [&rec.client_side, &rec.server_side];
        let tcp = &rec.tcp;
        let tcp_end_at = match (v.tcp_end, v.tcp_end_by) {
            (TcpEnd::Rst, Some(Side::Client)) => tcp.client_rst,
            (TcpEnd::Rst, Some(Side::Server)) => tcp.server_rst,
            (TcpEnd::Fin, Some(Side::Client)) => tcp.client_fin,
            (TcpEnd::Fin, Some(Side::Server)) => tcp.server_fin,
            _ => None,
        };
        let mut flags = 0;
        if v.abnormal() {
            flags |= flag::ABNORMAL;
        }
        if !rec.exact {
            flags |= flag::INEXACT;
        }
        if rec.anomalies.contains(Anomaly::Gap) {
            flags |= flag::GAP;
        }
        scratch.clear();
        if redact == Redact::All {
            redact_query(&rec.path, scratch);
        } else {
            scratch.push_str(&rec.path);
        }
        Mark {
            session,
            tcp_stream: rec.tcp_stream,
            start: us(rec.start_ns),
            end: us(rec.end_ns),
            close_at: sides.map(|s| s.close.as_ref().map_or(NONE, |c| us(c.at.ts_ns))),
            close_code: sides.map(|s| s.close.as_ref().map_or(0, |c| c.code.unwrap_or(1005))),
            reason: sides.map(|s| s.close.as_ref().map_or(0, |c| dict.intern(&c.reason))),
            tcp_end_at: tcp_end_at.map_or(NONE, |a| us(a.ts_ns)),
            client: rec.client,
            server: rec.server,
            messages: sides.map(|s| s.messages),
            path: dict.intern(scratch),
            host: dict.intern(&rec.host),
            http_status: rec.http_status().unwrap_or(0),
            ring: rec.timeline,
            outcome: Outcome::ALL
                .iter()
                .position(|o| *o == v.outcome)
                .unwrap_or(0) as u8,
            first_close_by: side_code(v.first_close_by),
            tcp_end: match v.tcp_end {
                TcpEnd::Fin => 0,
                TcpEnd::Rst => 1,
                TcpEnd::Open => 2,
            },
            tcp_end_by: side_code(v.tcp_end_by),
            flags,
        }
    }

    fn abnormal(&self) -> bool {
        self.flags & flag::ABNORMAL != 0
    }
}

// ---------------------------------------------------------------------------------------
// Binary form, for marks spilled to disk (never leaves the process).

/// Bytes of one encoded mark.
pub const ENCODED_LEN: usize =
    8 * 2 + 8 * 2 + 8 * 2 + 2 * 2 + 4 * 2 + 8 + 18 * 2 + 8 * 2 + 4 * 2 + 2 + 1 + 8 * 3 + 5;

/// Appends `m` to `b` ([`ENCODED_LEN`] bytes).
pub fn encode(m: &Mark, b: &mut Vec<u8>) {
    let Mark {
        session,
        tcp_stream,
        start,
        end,
        close_at,
        close_code,
        reason,
        tcp_end_at,
        client,
        server,
        messages,
        path,
        host,
        http_status,
        ring,
        outcome,
        first_close_by,
        tcp_end,
        tcp_end_by,
        flags,
    } = *m;
    for x in [session, tcp_stream] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in [start, end, close_at[0], close_at[1]] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in close_code {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in reason {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&tcp_end_at.to_le_bytes());
    for e in [client, server] {
        b.extend_from_slice(&e.addr.0.to_le_bytes());
        b.extend_from_slice(&e.addr.1.to_le_bytes());
        b.extend_from_slice(&e.port.to_le_bytes());
    }
    for x in messages {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in [path, host] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&http_status.to_le_bytes());
    let r = ring.unwrap_or_default();
    b.push(ring.is_some() as u8);
    for x in [r.last_chunk, r.events, r.omitted] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&[outcome, first_close_by, tcp_end, tcp_end_by, flags]);
}

impl FixedCodec for Mark {
    const ENCODED_LEN: usize = ENCODED_LEN;
    fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out)
    }
    fn decode(b: &[u8]) -> Self {
        decode(b)
    }
}

/// Reads a mark that [`encode`] wrote.
pub fn decode(b: &[u8]) -> Mark {
    let mut p = 0;
    let mut take = |n: usize| {
        let s = &b[p..p + n];
        p += n;
        s
    };
    let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let i64_ = |s: &[u8]| i64::from_le_bytes(s.try_into().expect("8 bytes"));
    let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes"));
    let u16_ = |s: &[u8]| u16::from_le_bytes(s.try_into().expect("2 bytes"));
    let (session, tcp_stream) = (u64_(take(8)), u64_(take(8)));
    let (start, end) = (i64_(take(8)), i64_(take(8)));
    let close_at = [i64_(take(8)), i64_(take(8))];
    let close_code = [u16_(take(2)), u16_(take(2))];
    let reason = [u32_(take(4)), u32_(take(4))];
    let tcp_end_at = i64_(take(8));
    let mut ep = || Endpoint {
        addr: Addr(u64_(take(8)), u64_(take(8))),
        port: u16_(take(2)),
    };
    let (client, server) = (ep(), ep());
    let messages = [u64_(take(8)), u64_(take(8))];
    let (path, host) = (u32_(take(4)), u32_(take(4)));
    let http_status = u16_(take(2));
    let has_ring = take(1)[0] == 1;
    let r = TimelineRef {
        last_chunk: u64_(take(8)),
        events: u64_(take(8)),
        omitted: u64_(take(8)),
    };
    let ring = has_ring.then_some(r);
    let s = take(5);
    Mark {
        session,
        tcp_stream,
        start,
        end,
        close_at,
        close_code,
        reason,
        tcp_end_at,
        client,
        server,
        messages,
        path,
        host,
        http_status,
        ring,
        outcome: s[0],
        first_close_by: s[1],
        tcp_end: s[2],
        tcp_end_by: s[3],
        flags: s[4],
    }
}

/// Sessions of one lane key, for choosing and ordering lanes.
#[derive(Clone, Copy, Debug)]
struct LaneStat {
    count: u64,
    first_start: i64,
}

/// Lane keys with their counts, bounded by [`MAX_LANE_KEYS`].
#[derive(Debug)]
struct LaneCounter<K> {
    keys: HashMap<K, LaneStat>,
    /// Sessions whose key came after the map was full.
    overflow: u64,
}

impl<K> Default for LaneCounter<K> {
    fn default() -> Self {
        LaneCounter {
            keys: HashMap::new(),
            overflow: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy + Ord> LaneCounter<K> {
    fn add(&mut self, k: K, start: i64) {
        let full = self.keys.len() >= MAX_LANE_KEYS;
        match self.keys.get_mut(&k) {
            Some(s) => {
                s.count += 1;
                s.first_start = s.first_start.min(start);
            }
            None if full => self.overflow += 1,
            None => {
                self.keys.insert(
                    k,
                    LaneStat {
                        count: 1,
                        first_start: start,
                    },
                );
            }
        }
    }

    /// The lanes: the most used keys (at most [`MAX_LANES`], the last being "other" when
    /// keys are left over), in order of their first session; and each key's lane.
    fn lanes(&self) -> (Vec<K>, bool, HashMap<K, u16>) {
        let mut v: Vec<(K, LaneStat)> = self.keys.iter().map(|(k, s)| (*k, *s)).collect();
        v.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then(a.1.first_start.cmp(&b.1.first_start))
                .then(a.0.cmp(&b.0))
        });
        let other = v.len() > MAX_LANES || self.overflow > 0;
        let named = if other { MAX_LANES - 1 } else { v.len() };
        v.truncate(named);
        v.sort_by(|a, b| a.1.first_start.cmp(&b.1.first_start).then(a.0.cmp(&b.0)));
        let index = v
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, i as u16))
            .collect();
        (v.into_iter().map(|(k, _)| k).collect(), other, index)
    }
}

/// A grouping of the timeline's sessions into lanes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lanes {
    /// Lane labels, top to bottom.
    pub labels: Vec<String>,
    /// Sessions each lane holds (kept and aggregated).
    pub sessions: Vec<u64>,
    /// The lane of each kept session (empty for the outcome grouping: the outcome's index).
    pub of: Vec<u16>,
    /// Aggregated sessions by lane, bin and outcome: `[lane, bin, outcome, count]` flat,
    /// sorted.
    pub bins: Vec<u64>,
}

/// The kept sessions as columns (the page's compact arrays). Times are µs since the
/// capture's start; moments within a session are µs since its start, -1 when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    pub session: Vec<u64>,
    pub tcp_stream: Vec<u64>,
    pub start: Vec<i64>,
    pub duration: Vec<i64>,
    pub close_at: [Vec<i64>; 2],
    pub close_code: [Vec<u16>; 2],
    pub reason: [Vec<u32>; 2],
    pub tcp_end: Vec<u8>,
    pub tcp_end_by: Vec<u8>,
    pub tcp_end_at: Vec<i64>,
    pub first_close_by: Vec<u8>,
    pub outcome: Vec<u8>,
    pub client: Vec<u32>,
    pub server: Vec<u32>,
    pub path: Vec<u32>,
    pub host: Vec<u32>,
    pub http_status: Vec<u16>,
    pub messages: [Vec<u64>; 2],
    pub flags: Vec<u8>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.session.is_empty()
    }
}

/// What the page draws: the kept sessions, the lanes of each grouping, the bins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The capture's first moment and its length (µs).
    pub t0: i64,
    pub span: i64,
    /// Width of a time bin (µs).
    pub bin_us: i64,
    pub columns: Columns,
    /// The texts the columns point to.
    pub dict: Vec<String>,
    /// Sessions counted into bins instead of drawn one by one.
    pub aggregated: u64,
    /// Sessions a finding names that are drawn individually, and all those named.
    pub named_kept: u64,
    pub named_total: u64,
    /// Groupings: by server, by client address, by outcome.
    pub by_server: Lanes,
    pub by_client: Lanes,
    pub by_outcome: Lanes,
}

/// Keeps `quota` of `n` items seen one by one, evenly spread over them (all when
/// `quota >= n`): the k-th is kept when `k * quota / n` steps up.
#[derive(Clone, Copy, Debug)]
struct Quota {
    n: u64,
    quota: u64,
    seen: u64,
}

impl Quota {
    fn new(n: usize, quota: usize) -> Self {
        Quota {
            n: n as u64,
            quota: quota.min(n) as u64,
            seen: 0,
        }
    }

    fn next(&mut self) -> bool {
        let k = self.seen;
        self.seen += 1;
        if self.n == 0 || k >= self.n {
            return false;
        }
        (k + 1) * self.quota / self.n > k * self.quota / self.n
    }
}

/// Marks in session order, in memory up to a cap, then in an unlinked temporary file.
pub struct MarkStore {
    marks: SpillVec<Mark>,
    pub dict: Dict,
    servers: LaneCounter<Endpoint>,
    clients: LaneCounter<Addr>,
    first: i64,
    last: i64,
    scratch: String,
}

impl Default for MarkStore {
    fn default() -> Self {
        MarkStore::new(MAX_MARK_MEMORY)
    }
}

impl MarkStore {
    /// A store that keeps at most `max_mem_bytes` of marks in memory.
    pub fn new(max_mem_bytes: usize) -> Self {
        MarkStore {
            marks: SpillVec::new(max_mem_bytes),
            dict: Dict::default(),
            servers: LaneCounter::default(),
            clients: LaneCounter::default(),
            first: i64::MAX,
            last: i64::MIN,
            scratch: String::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the session `session` (numbered as the sessions report numbers it).
    pub fn add(&mut self, session: u64, rec: &SessionRecord, redact: Redact) -> io::Result<()> {
        let m = Mark::from_record(session, rec, &mut self.dict, redact, &mut self.scratch);
        self.push(m)
    }

    /// Adds a mark (marks come in session order).
    pub fn push(&mut self, m: Mark) -> io::Result<()> {
        self.first = self.first.min(m.start);
        self.last = self.last.max(m.end);
        self.servers.add(m.server, m.start);
        self.clients.add(m.client.addr, m.start);
        self.marks.push(m)
    }

    /// Every mark, in the order pushed.
    pub fn for_each(&mut self, f: &mut dyn FnMut(&Mark)) -> io::Result<()> {
        self.marks.for_each(f)
    }

    /// The timeline: the sessions `named` first, then the abnormal ones, then the others,
    /// up to `max_kept` in all; where a kind has more than its share, the share is taken
    /// evenly over the capture (in first-packet order), so that the drawn sessions cover
    /// the whole span. The rest are binned. `span` is the capture's first
    /// and last moment (µs) when known; the sessions' own otherwise.
    pub fn timeline(
        &mut self,
        named: &HashSet<u64>,
        span: Option<(i64, i64)>,
        max_kept: usize,
    ) -> io::Result<Timeline> {
        let (t0, t1) = match span {
            Some((a, b)) => (a.min(self.first), b.max(self.last)),
            None if self.is_empty() => (0, 0),
            None => (self.first, self.last),
        };
        let span = (t1 - t0).max(0);
        let bin_us = (span / TIME_BINS as i64 + 1).max(1);
        // First pass: how many of each kind, so that the quotas are known.
        let (mut n_named, mut n_abnormal) = (0usize, 0usize);
        self.for_each(&mut |m| {
            if named.contains(&m.session) {
                n_named += 1;
            } else if m.abnormal() {
                n_abnormal += 1;
            }
        })?;
        let n_rest = self.len() as usize - n_named - n_abnormal;
        let q_named = n_named.min(max_kept);
        let q_abnormal = n_abnormal.min(max_kept - q_named);
        let q_rest = n_rest.min(max_kept - q_named - q_abnormal);
        let mut pick = [
            Quota::new(n_named, q_named),
            Quota::new(n_abnormal, q_abnormal),
            Quota::new(n_rest, q_rest),
        ];
        let (server_keys, server_other, server_lane) = self.servers.lanes();
        let (client_keys, client_other, client_lane) = self.clients.lanes();
        let mut t = Timeline {
            t0,
            span,
            bin_us,
            named_total: n_named as u64,
            ..Timeline::default()
        };
        t.by_server.labels = server_keys.iter().map(|e| e.to_string()).collect();
        if server_other {
            t.by_server.labels.push("other servers".into());
        }
        t.by_client.labels = client_keys
            .iter()
            .map(|a| {
                let s = Endpoint { addr: *a, port: 0 }.to_string();
                s.strip_suffix(":0").map(str::to_string).unwrap_or(s)
            })
            .collect();
        if client_other {
            t.by_client.labels.push("other clients".into());
        }
        t.by_outcome.labels = Outcome::ALL
            .iter()
            .map(|o| o.as_str().to_string())
            .collect();
        for l in [&mut t.by_server, &mut t.by_client, &mut t.by_outcome] {
            l.sessions = vec![0; l.labels.len()];
        }
        let other_server = t.by_server.labels.len().saturating_sub(1) as u16;
        let other_client = t.by_client.labels.len().saturating_sub(1) as u16;
        let mut bins: [HashMap<(u16, u16, u8), u64>; 3] = Default::default();
        // The dictionary is lent out while the marks are read.
        let dict = std::mem::take(&mut self.dict);
        let texts = dict.texts();
        let mut out_dict: HashMap<String, u32> = HashMap::new();
        let mut dict_vec: Vec<String> = Vec::new();
        let mut intern = |s: &str| -> u32 {
            if let Some(i) = out_dict.get(s) {
                return *i;
            }
            let i = dict_vec.len() as u32;
            dict_vec.push(s.to_string());
            out_dict.insert(s.to_string(), i);
            i
        };
        intern("");
        let c = &mut t.columns;
        let mut aggregated = 0u64;
        let mut named_kept = 0u64;
        let rel = |x: i64, base: i64| if x == NONE { -1 } else { (x - base).max(0) };
        let mut lanes_sessions = [
            vec![0u64; t.by_server.labels.len()],
            vec![0u64; t.by_client.labels.len()],
            vec![0u64; Outcome::ALL.len()],
        ];
        let mut of_server = Vec::new();
        let mut of_client = Vec::new();
        let store_texts = &texts;
        let result = self.for_each(&mut |m| {
            let is_named = named.contains(&m.session);
            let keep = pick[if is_named {
                0
            } else if m.abnormal() {
                1
            } else {
                2
            }]
            .next();
            let ls = *server_lane.get(&m.server).unwrap_or(&other_server);
            let lc = *client_lane.get(&m.client.addr).unwrap_or(&other_client);
            let lo = m.outcome as u16;
            lanes_sessions[0][ls as usize] += 1;
            lanes_sessions[1][lc as usize] += 1;
            if let Some(n) = lanes_sessions[2].get_mut(lo as usize) {
                *n += 1;
            }
            if !keep {
                aggregated += 1;
                let bin = (((m.end.max(t0) - t0) / bin_us) as usize).min(TIME_BINS - 1) as u16;
                for (i, lane) in [ls, lc, lo].into_iter().enumerate() {
                    *bins[i].entry((lane, bin, m.outcome)).or_default() += 1;
                }
                return;
            }
            if is_named {
                named_kept += 1;
            }
            let text = |i: u32| store_texts.get(i as usize).copied().unwrap_or("");
            c.session.push(m.session);
            c.tcp_stream.push(m.tcp_stream);
            c.start.push((m.start - t0).max(0));
            c.duration.push((m.end - m.start).max(0));
            for s in 0..2 {
                c.close_at[s].push(rel(m.close_at[s], m.start));
                c.close_code[s].push(m.close_code[s]);
                c.reason[s].push(intern(text(m.reason[s])));
                c.messages[s].push(m.messages[s]);
            }
            c.tcp_end.push(m.tcp_end);
            c.tcp_end_by.push(m.tcp_end_by);
            c.tcp_end_at.push(rel(m.tcp_end_at, m.start));
            c.first_close_by.push(m.first_close_by);
            c.outcome.push(m.outcome);
            c.client.push(intern(&m.client.to_string()));
            c.server.push(intern(&m.server.to_string()));
            c.path.push(intern(text(m.path)));
            c.host.push(intern(text(m.host)));
            c.http_status.push(m.http_status);
            c.flags
                .push(m.flags | if is_named { flag::NAMED } else { 0 });
            of_server.push(ls);
            of_client.push(lc);
        });
        drop(texts);
        self.dict = dict;
        result?;
        t.aggregated = aggregated;
        t.named_kept = named_kept;
        t.dict = dict_vec;
        let [s, cl, o] = lanes_sessions;
        t.by_server.sessions = s;
        t.by_client.sessions = cl;
        t.by_outcome.sessions = o;
        t.by_server.of = of_server;
        t.by_client.of = of_client;
        for (l, b) in [&mut t.by_server, &mut t.by_client, &mut t.by_outcome]
            .into_iter()
            .zip(bins)
        {
            let mut v: Vec<((u16, u16, u8), u64)> = b.into_iter().collect();
            v.sort();
            l.bins = v
                .into_iter()
                .flat_map(|((lane, bin, o), n)| [lane as u64, bin as u64, o as u64, n])
                .collect();
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mark(session: u64, start: i64, outcome: Outcome, client: u8, server_port: u16) -> Mark {
        let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap() as u8;
        Mark {
            session,
            tcp_stream: session - 1,
            start,
            end: start + 1_000_000,
            close_at: [NONE, start + 500_000],
            close_code: [0, 1001],
            reason: [0, 0],
            tcp_end_at: start + 900_000,
            client: Endpoint::v4([10, 0, 0, client], 40000 + session as u16),
            server: Endpoint::v4([10, 0, 0, 1], server_port),
            messages: [session, 2],
            path: 0,
            host: 0,
            http_status: 101,
            ring: None,
            outcome: o,
            first_close_by: 2,
            tcp_end: 0,
            tcp_end_by: 2,
            flags: if outcome.is_abnormal() {
                flag::ABNORMAL
            } else {
                0
            },
        }
    }

    proptest! {
        #[test]
        fn encoded_marks_read_back(
            session in any::<u64>(), start in any::<i64>(), end in any::<i64>(),
            close in any::<[i64; 2]>(), codes in any::<[u16; 2]>(), reason in any::<[u32; 2]>(),
            at in any::<i64>(), a in any::<[u64; 4]>(), ports in any::<[u16; 2]>(),
            msgs in any::<[u64; 2]>(), texts in any::<[u32; 2]>(), status in any::<u16>(),
            small in any::<[u8; 5]>(), ring in proptest::option::of(any::<[u64; 3]>()),
        ) {
            let m = Mark {
                session, tcp_stream: session ^ 7, start, end, close_at: close, close_code: codes,
                reason, tcp_end_at: at,
                client: Endpoint { addr: Addr(a[0], a[1]), port: ports[0] },
                server: Endpoint { addr: Addr(a[2], a[3]), port: ports[1] },
                messages: msgs, path: texts[0], host: texts[1], http_status: status,
                ring: ring.map(|r| TimelineRef { last_chunk: r[0], events: r[1], omitted: r[2] }),
                outcome: small[0], first_close_by: small[1], tcp_end: small[2],
                tcp_end_by: small[3], flags: small[4],
            };
            let mut b = Vec::new();
            encode(&m, &mut b);
            prop_assert_eq!(b.len(), ENCODED_LEN);
            prop_assert_eq!(decode(&b), m);
        }
    }

    #[test]
    fn quotas_spread_evenly_and_keep_exactly_their_share() {
        for (n, q) in [
            (10, 3),
            (87, 7),
            (5, 5),
            (5, 9),
            (0, 3),
            (100_000, 20_000),
            (7, 0),
        ] {
            let mut p = Quota::new(n, q);
            let kept: Vec<usize> = (0..n).filter(|_| p.next()).collect();
            assert_eq!(kept.len(), q.min(n), "{n} {q}");
            if q > 0 && q < n {
                let gaps: Vec<usize> = kept.windows(2).map(|w| w[1] - w[0]).collect();
                let (lo, hi) = (n / q, n.div_ceil(q));
                assert!(
                    gaps.iter().all(|g| *g >= lo && *g <= hi),
                    "{n} {q} {gaps:?}"
                );
            }
            assert!(!p.next() || n == 0 && q == 0);
        }
    }

    #[test]
    fn texts_are_cut_and_bounded() {
        let mut d = Dict::default();
        assert_eq!(d.intern(""), 0);
        let a = d.intern("/a");
        assert_eq!(d.intern("/a"), a);
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        let i = d.intern(&long);
        let t = d.texts()[i as usize];
        assert_eq!(t.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(t.ends_with('…'));
        d.bytes = MAX_DICT_BYTES;
        assert_eq!(d.intern("/new"), 1);
        assert_eq!(d.texts()[1], TEXT_NOT_KEPT);
        assert_eq!(d.intern("/a"), a, "known texts stay known");
    }

    /// Named first, then abnormal, then by first packet; the rest binned, none lost; the
    /// same from memory and from a spilled store.
    #[test]
    fn keeps_named_then_abnormal_then_first_and_bins_the_rest() {
        for mem in [1 << 20, 1] {
            let mut s = MarkStore::new(mem);
            for i in 1..=100u64 {
                let o = if i % 10 == 0 {
                    Outcome::Reset
                } else {
                    Outcome::Clean
                };
                s.push(mark(i, i as i64 * 1_000_000, o, (i % 7) as u8, 80))
                    .unwrap();
            }
            assert_eq!(s.marks.on_disk() > 0, mem == 1);
            let named: HashSet<u64> = [95, 96, 97].into_iter().collect();
            let t = s.timeline(&named, None, 20).unwrap();
            let kept = &t.columns.session;
            assert_eq!(kept.len(), 20);
            // Kept in session order: the 3 named, the 10 abnormal, and 7 of the 87 others
            // spread over the capture.
            for s in [95, 96, 97, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
                assert!(kept.contains(&s), "{s} kept");
            }
            let others: Vec<u64> = kept
                .iter()
                .copied()
                .filter(|s| s % 10 != 0 && !(95..=97).contains(s))
                .collect();
            assert_eq!(others.len(), 7);
            assert!(others[0] <= 15 && others[6] >= 85, "{others:?}");
            assert!(kept.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(t.named_kept, 3);
            assert_eq!(t.aggregated, 80);
            for l in [&t.by_server, &t.by_client, &t.by_outcome] {
                let binned: u64 = l.bins.chunks(4).map(|c| c[3]).sum();
                assert_eq!(binned, 80, "every aggregated session is in a bin");
                assert_eq!(l.sessions.iter().sum::<u64>(), 100);
            }
            assert_eq!(t.by_client.labels.len(), 7);
            assert_eq!(t.by_server.labels, vec!["10.0.0.1:80".to_string()]);
            let flags_named = t
                .columns
                .flags
                .iter()
                .filter(|f| **f & flag::NAMED != 0)
                .count();
            assert_eq!(flags_named, 3);
        }
    }

    #[test]
    fn many_lanes_end_in_an_other_lane() {
        let mut s = MarkStore::default();
        for i in 1..=200u64 {
            s.push(mark(i, i as i64, Outcome::Clean, 1, 1000 + (i % 60) as u16))
                .unwrap();
        }
        let t = s.timeline(&HashSet::new(), None, MAX_KEPT).unwrap();
        assert_eq!(t.by_server.labels.len(), MAX_LANES);
        assert_eq!(t.by_server.labels.last().unwrap(), "other servers");
        assert_eq!(t.by_server.sessions.iter().sum::<u64>(), 200);
        assert!(t.by_server.of.iter().all(|l| (*l as usize) < MAX_LANES));
    }
}
