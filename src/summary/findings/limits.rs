//! Limits: `message_limit` (sessions closed right after the same number of messages from
//! one side, or at the same cumulative bytes with a 1009 while every message was small)
//! and `message_too_big` (1009 after a message larger than the rest).

use std::collections::HashMap;

use super::{sessions, Cause, Context, Ev, Finding, Named, Probe, Tally};
use crate::record::Side;
use crate::summary::dist::{bucket, densest, Cluster, LogHist};
use crate::summary::row::{flag, idx, Row, NONE};

/// A count limit is at least this many messages (scripts that send a handful of
/// messages and stop are not limits).
pub const MIN_LIMIT_MESSAGES: u64 = 10;
/// A limit names at least this many sessions...
pub const MIN_SESSIONS: u64 = 3;
/// ...which are at least this share of the sessions closed by the same side after half to
/// twice as many messages.
pub const DOMINANCE: f64 = 0.5;
/// A volume limit: the cumulative bytes within ±10%...
pub const VOLUME_TOLERANCE: f64 = 0.10;
/// ...while every message was at most this share of them.
pub const SMALL_MESSAGE_SHARE: f64 = 0.10;
/// Distinct message counts remembered per side.
const MAX_COUNTS: usize = 1 << 16;

/// The side whose Close frame (or, without one, FIN or RST) ended the session.
fn closer(r: &Row) -> Option<Side> {
    if r.ended == NONE || !r.upgraded() {
        return None;
    }
    r.first_close_by.or(r.ended_by)
}

/// The first 1009 sent, and its side.
fn too_big_by(r: &Row) -> Option<Side> {
    let c = r.close_code[0] == 1009;
    let s = r.close_code[1] == 1009;
    match (c, s) {
        (true, true) => Some(if r.close_at[0] <= r.close_at[1] {
            Side::Client
        } else {
            Side::Server
        }),
        (true, false) => Some(Side::Client),
        (false, true) => Some(Side::Server),
        _ => None,
    }
}

/// For a 1009: the bytes the other side had sent, if every message was small.
fn volume(r: &Row) -> Option<(Side, u64)> {
    let by = too_big_by(r)?;
    let o = idx(by.other());
    let total = r.bytes_before_close[o];
    let small = r.largest[o] > 0
        && (r.largest[o].max(r.unfinished[o]) as f64) <= SMALL_MESSAGE_SHARE * total as f64;
    small.then_some((by, total))
}

#[derive(Debug, Default)]
pub struct Scan {
    /// (closing side, the other side's messages before the close) → sessions.
    counts: [HashMap<u64, u64>; 2],
    hist: [LogHist; 2],
    volume: LogHist,
}

impl Scan {
    pub fn add(&mut self, r: &Row) {
        if let Some(c) = closer(r) {
            let n = r.messages_before_close[idx(c.other())];
            if n >= MIN_LIMIT_MESSAGES {
                let m = &mut self.counts[idx(c)];
                if m.len() < MAX_COUNTS || m.contains_key(&n) {
                    *m.entry(n).or_default() += 1;
                }
                self.hist[idx(c)].add(n);
            }
        }
        if let Some((_, bytes)) = volume(r) {
            self.volume.add(bytes);
        }
    }

    pub fn probes(&self) -> Vec<Box<dyn Probe>> {
        let mut p: Vec<Box<dyn Probe>> = Vec::new();
        for side in [Side::Client, Side::Server] {
            let i = idx(side);
            let mut counts: Vec<(u64, u64)> =
                self.counts[i].iter().map(|(n, k)| (*n, *k)).collect();
            // Most sessions first, then the smaller count.
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for &(n, k) in counts.iter().take(2) {
                let around = self.hist[i].count_buckets(bucket(n / 2), bucket(n * 2));
                if k >= MIN_SESSIONS && k as f64 >= DOMINANCE * around as f64 {
                    p.push(Box::new(CountProbe {
                        closer: side,
                        n,
                        codes: Tally::default(),
                        code_set: Vec::new(),
                        bytes: LogHist::default(),
                    }));
                }
            }
        }
        let volume = densest(&self.volume, VOLUME_TOLERANCE)
            .filter(|c| c.count >= MIN_SESSIONS && c.count as f64 >= 0.6 * c.neighbourhood as f64);
        if let Some(c) = volume {
            p.push(Box::new(VolumeProbe {
                cluster: c,
                bytes: LogHist::default(),
                largest: LogHist::default(),
                by: Tally::default(),
            }));
        }
        p.push(Box::new(TooBigProbe {
            volume,
            rejected: LogHist::default(),
            accepted: LogHist::default(),
            by: Tally::default(),
            compressed: 0,
            sizes_not_inflated: 0,
            no_data_message: 0,
        }));
        p
    }
}

struct CountProbe {
    closer: Side,
    n: u64,
    codes: Tally,
    /// The closer's codes (for their reasons).
    code_set: Vec<u16>,
    bytes: LogHist,
}

impl Probe for CountProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        if closer(r) != Some(self.closer)
            || r.messages_before_close[idx(self.closer.other())] != self.n
            || volume(r).is_some()
        {
            return false;
        }
        let i = idx(self.closer);
        self.codes.add(match r.close_code[i] {
            0 => crate::summary::findings::timers::end_label(r),
            c => format!("Close {c}"),
        });
        let c = r.close_code[i];
        if c != 0 && !self.code_set.contains(&c) {
            self.code_set.push(c);
        }
        self.bytes
            .add(r.bytes_before_close[idx(self.closer.other())]);
        true
    }

    fn finish(self: Box<Self>, named: Named, cx: &Context<'_>) -> Option<Finding> {
        if named.total < MIN_SESSIONS {
            return None;
        }
        let (closer, other) = (self.closer.as_str(), self.closer.other().as_str());
        let mut evidence = vec![
            ("closed_by", Ev::Text(closer.into())),
            ("messages_from", Ev::Text(other.into())),
            ("messages_before_close", Ev::Count(self.n)),
            ("bytes_before_close", Ev::Spread(self.bytes.clone())),
            ("ended_with", self.codes.ev()),
        ];
        let codes = &self.code_set;
        let reasons = cx
            .reasons
            .reasons_of(self.closer, &|c, _| codes.contains(&c), 3);
        if !reasons.is_empty() {
            evidence.push(("reasons", Ev::Tally(reasons)));
        }
        Some(Finding {
            cause: Cause::MessageLimit,
            severity: Cause::MessageLimit.severity(),
            title: format!(
                "{} closed by the {closer} right after the {other}'s {}th message",
                sessions(named.total),
                self.n
            ),
            sessions: named.refs,
            sessions_total: named.total,
            evidence,
            advice: format!(
                "The same count in every session is a limit, not chance: a counter in the \
                 {closer}, a proxy or a library that stops at {} messages (e.g. Node ws 5.x-7.x \
                 closed every connection with 1008 after 16,384 fragments, a counter never \
                 reset; some apps stop when a sequence id reaches a round number). Find what \
                 counts to {}.",
                self.n, self.n
            ),
        })
    }
}

struct VolumeProbe {
    cluster: Cluster,
    bytes: LogHist,
    largest: LogHist,
    by: Tally,
}

impl VolumeProbe {
    fn matches(c: &Cluster, r: &Row) -> Option<(Side, u64)> {
        let (by, b) = volume(r)?;
        let k = bucket(b.max(1));
        (k >= c.lo_bucket && k <= c.hi_bucket).then_some((by, b))
    }
}

impl Probe for VolumeProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let Some((by, b)) = Self::matches(&self.cluster, r) else {
            return false;
        };
        self.bytes.add(b);
        self.largest.add(r.largest[idx(by.other())]);
        self.by.add(by.as_str());
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total < MIN_SESSIONS {
            return None;
        }
        let at = self.bytes.quantile(0.5);
        Some(Finding {
            cause: Cause::MessageLimit,
            severity: Cause::MessageLimit.severity(),
            title: format!(
                "{} closed with 1009 at the same cumulative volume, about {at} bytes, while \
                 every message was small",
                sessions(named.total)
            ),
            sessions: named.refs,
            sessions_total: named.total,
            evidence: vec![
                ("closed_by", self.by.ev()),
                ("bytes_before_close", Ev::Spread(self.bytes.clone())),
                ("largest_message_bytes", Ev::Spread(self.largest.clone())),
            ],
            advice: format!(
                "1009 names a message too big, but no message was: the limit is on the \
                 volume per connection (about {at} bytes), in the endpoint that closed or a \
                 proxy before it. Raise it, or reconnect before it."
            ),
        })
    }
}

struct TooBigProbe {
    volume: Option<Cluster>,
    rejected: LogHist,
    accepted: LogHist,
    by: Tally,
    compressed: u64,
    /// Sessions whose refused message has no known size: compressed and not inflated
    /// (`--no-inflate`, or inflation failed), or no data message from the other side in
    /// the capture at all (the refused one was a control frame, or not captured).
    sizes_not_inflated: u64,
    no_data_message: u64,
}

impl Probe for TooBigProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let Some(by) = too_big_by(r) else {
            return false;
        };
        if let Some(c) = &self.volume {
            if VolumeProbe::matches(c, r).is_some() {
                return false;
            }
        }
        let o = idx(by.other());
        // The message the receiver refused: one still in progress if larger than every
        // complete one (the receiver closed on its header), else the largest.
        // Sizes unknown (0: compressed and not inflated) are left out.
        if r.unfinished[o] > r.largest[o] {
            self.rejected.add(r.unfinished[o]);
            if r.largest[o] > 0 {
                self.accepted.add(r.largest[o]);
            }
        } else if r.largest[o] > 0 {
            self.rejected.add(r.largest[o]);
        } else if r.messages[o] == 0 && r.unfinished[o] == 0 {
            self.no_data_message += 1;
        } else if r.has(flag::DEFLATE) {
            self.sizes_not_inflated += 1;
        }
        self.by.add(format!(
            "{} refused the {}'s message",
            by.as_str(),
            by.other().as_str()
        ));
        if r.has(flag::DEFLATE) {
            self.compressed += 1;
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        if self.rejected.is_empty() {
            // No size to give: say which of the reasons the sessions show.
            let mut unknown = vec![("refused", self.by.ev())];
            let why = match (self.no_data_message, self.sizes_not_inflated) {
                (n, 0) if n == named.total => {
                    "no data message from the other side before it: the refused one was a \
                     control frame or was not captured"
                }
                (0, n) if n == named.total => "message sizes unknown: compressed and not inflated",
                _ => "message sizes unknown",
            };
            if self.no_data_message > 0 {
                unknown.push((
                    "no_data_message",
                    Ev::Text(format!(
                        "in {} the other side sent no data message before the 1009",
                        sessions(self.no_data_message)
                    )),
                ));
            }
            if self.sizes_not_inflated > 0 {
                unknown.push((
                    "not_inflated",
                    Ev::Text(format!(
                        "{} compressed (permessage-deflate) and not inflated",
                        sessions(self.sizes_not_inflated)
                    )),
                ));
            }
            return Some(Finding {
                cause: Cause::MessageTooBig,
                severity: Cause::MessageTooBig.severity(),
                title: format!(
                    "{} closed with 1009 Message Too Big ({why})",
                    sessions(named.total)
                ),
                sessions: named.refs,
                sessions_total: named.total,
                evidence: unknown,
                advice: if self.sizes_not_inflated > 0 {
                    ADVICE_TOO_BIG_UNKNOWN
                } else {
                    ADVICE_TOO_BIG_NO_MESSAGE
                }
                .to_string(),
            });
        }
        let smallest_rejected = self.rejected.min;
        let mut limit = format!("below {smallest_rejected} bytes (the smallest refused message)");
        if !self.accepted.is_empty() {
            limit = format!(
                "between {} bytes (accepted) and {smallest_rejected} bytes (refused)",
                self.accepted.max
            );
        }
        let mut evidence = vec![
            ("refused", self.by.ev()),
            ("refused_message_bytes", Ev::Spread(self.rejected.clone())),
        ];
        if !self.accepted.is_empty() {
            evidence.push(("largest_accepted_bytes", Ev::Spread(self.accepted.clone())));
        }
        evidence.push(("suggested_limit", Ev::Text(limit.clone())));
        if self.compressed > 0 {
            evidence.push((
                "compressed",
                Ev::Text(format!(
                    "{} used permessage-deflate: complete messages are measured inflated (what \
                     the limit applies to), a message cut short by its frames' wire size",
                    sessions(self.compressed)
                )),
            ));
        }
        Some(Finding {
            cause: Cause::MessageTooBig,
            severity: Cause::MessageTooBig.severity(),
            title: format!(
                "{} closed with 1009 Message Too Big after a message of {}-{} bytes",
                sessions(named.total),
                self.rejected.min,
                self.rejected.max
            ),
            sessions: named.refs,
            sessions_total: named.total,
            evidence,
            advice: format!(
                "The receiver's message size limit is {limit}. It is the receiver's setting: \
                 Python websockets max_size (default 1 MiB), Node ws maxPayload (100 MiB), AWS \
                 API Gateway 128 KB per message. Raise it or split the messages; the sender \
                 usually sees only 1006."
            ),
        })
    }
}

/// The advice of a 1009 before which the other side sent no data message.
const ADVICE_TOO_BIG_NO_MESSAGE: &str = "The receiver refused something over its size limit \
     that is not a data message of the capture: a control frame (a Ping's payload counts \
     against small limits) or a message sent before the capture started. The Close reason \
     often names the size. It is the receiver's setting: Python websockets max_size \
     (default 1 MiB), Node ws maxPayload (100 MiB).";

/// The advice of a 1009 whose message sizes are not known.
const ADVICE_TOO_BIG_UNKNOWN: &str = "The receiver refused a message over its size limit. It \
     is the receiver's setting: Python websockets max_size (default 1 MiB), Node ws \
     maxPayload (100 MiB), AWS API Gateway 128 KB per message. Run without --no-inflate to \
     see the sizes; raise the limit or split the messages.";
