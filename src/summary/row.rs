//! One compact row per session: what the findings look at, drawn from the session record
//! (times in microseconds, so that rows drawn from a capture and from the JSON Lines the
//! same run wrote are equal). Rows wait for the second pass in a [`RowStore`], which
//! spills them to an unlinked temporary file past a cap, as `reorder.rs` does records.

use crate::net::{Addr, Endpoint};
use crate::record::{Anomalies, Anomaly, At, SessionRecord, Side};
use crate::spill::{FixedCodec, SpillVec};
use crate::verdict::{Outcome, TcpEnd};

/// "No time": the field's moment did not happen.
pub const NONE: i64 = i64::MIN;

/// Flags of a row.
pub mod flag {
    /// permessage-deflate (or another extension) was negotiated: sizes are compressed.
    pub const DEFLATE: u32 = 1;
    /// The client's / server's Close reason mentions auth, token, rate, quota, origin...
    pub const POLICY_REASON_CLIENT: u32 = 1 << 1;
    pub const POLICY_REASON_SERVER: u32 = 1 << 2;
    /// The request had no Origin header.
    pub const NO_ORIGIN: u32 = 1 << 3;
    /// The request offered no subprotocol.
    pub const NO_PROTOCOL_OFFERED: u32 = 1 << 4;
    /// Every count of the row is exact.
    pub const EXACT: u32 = 1 << 5;
    /// The Upgrade was answered 101, or inferred from the server's frames.
    pub const UPGRADED: u32 = 1 << 6;
}

/// What the findings need of one session (a few hundred bytes; spilled past a cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Which input (`summary --records` with several files), and the session's number
    /// and tcp.stream there.
    pub source: u32,
    pub session: u64,
    pub tcp_stream: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    /// First and last packet.
    pub start: i64,
    pub last: i64,
    /// The end: the first Close frame, FIN or RST ([`NONE`] while open), and who sent it.
    pub ended: i64,
    pub ended_by: Option<Side>,
    /// The last packet with payload before the end (or before the capture's end).
    pub idle_from: i64,
    /// Per side (client, server).
    pub last_data: [i64; 2],
    pub close_at: [i64; 2],
    /// Close code per side: 0 without a Close frame, 1005 for one without a code.
    pub close_code: [u16; 2],
    pub fin: [i64; 2],
    pub rst: [i64; 2],
    pub messages: [u64; 2],
    pub messages_before_close: [u64; 2],
    pub bytes_before_close: [u64; 2],
    pub largest: [u64; 2],
    /// Announced bytes of a message left unfinished (0: none).
    pub unfinished: [u64; 2],
    pub pings: [u64; 2],
    pub pings_answered: [u64; 2],
    pub pings_unanswered: [u64; 2],
    pub first_unanswered: [i64; 2],
    pub rtt_p50: [i64; 2],
    pub rtt_max: [i64; 2],
    pub segments: [u64; 2],
    pub retransmitted: [u64; 2],
    pub out_of_order: [u64; 2],
    pub gaps: [u64; 2],
    pub unacked: [u64; 2],
    pub last_retransmission: [i64; 2],
    pub last_payload: [i64; 2],
    pub http_status: u16,
    pub first_close_by: Option<Side>,
    pub outcome: Outcome,
    pub tcp_end: TcpEnd,
    pub tcp_end_by: Option<Side>,
    pub anomalies: Anomalies,
    pub flags: u32,
}

/// Word starts that make a Close reason a policy matter (authentication, permissions,
/// rates and quotas, origins).
pub const POLICY_WORDS: [&str; 9] = [
    "auth",
    "token",
    "unauthori",
    "forbidden",
    "rate",
    "quota",
    "origin",
    "permission",
    "denied",
];

/// Does a Close reason speak of a policy: does one of its words start with one of
/// [`POLICY_WORDS`] ("rate-limited" does, "generated" does not)?
pub fn policy_reason(reason: &str) -> bool {
    reason
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .any(|w| {
            let w = w.to_lowercase();
            POLICY_WORDS.iter().any(|p| w.starts_with(p))
        })
}

fn us(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

fn at_us(a: Option<At>) -> i64 {
    a.map_or(NONE, |a| us(a.ts_ns))
}

impl Row {
    pub fn from_record(source: u32, session: u64, r: &SessionRecord) -> Row {
        let sides = [&r.client_side, &r.server_side];
        let per = |f: &dyn Fn(&crate::record::SideStats) -> u64| [f(sides[0]), f(sides[1])];
        let per_t = |f: &dyn Fn(&crate::record::SideStats) -> Option<At>| {
            [at_us(f(sides[0])), at_us(f(sides[1]))]
        };
        let t = &r.tcp;
        let ended_at = r.ended_at();
        let ended_by = ended_at.map(|e| {
            // The side of the packet that ended it (a Close frame, a FIN or a RST).
            let c = [
                r.client_side.close.as_ref().map(|c| c.at),
                t.client_fin,
                t.client_rst,
            ];
            if c.contains(&Some(e)) {
                Side::Client
            } else {
                Side::Server
            }
        });
        let mut flags = 0;
        if !r.extensions.is_empty() {
            flags |= flag::DEFLATE;
        }
        for (side, f) in [
            (&r.client_side, flag::POLICY_REASON_CLIENT),
            (&r.server_side, flag::POLICY_REASON_SERVER),
        ] {
            if side
                .close
                .as_ref()
                .is_some_and(|c| policy_reason(&c.reason))
            {
                flags |= f;
            }
        }
        if r.origin.is_empty() {
            flags |= flag::NO_ORIGIN;
        }
        let offered = r
            .handshake_headers
            .request
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"));
        if !offered {
            flags |= flag::NO_PROTOCOL_OFFERED;
        }
        if r.exact {
            flags |= flag::EXACT;
        }
        if matches!(
            r.upgrade,
            crate::verdict::Upgrade::Answered(101) | crate::verdict::Upgrade::Inferred
        ) {
            flags |= flag::UPGRADED;
        }
        Row {
            source,
            session,
            tcp_stream: r.tcp_stream,
            client: r.client,
            server: r.server,
            start: us(r.start_ns),
            last: us(r.end_ns),
            ended: at_us(ended_at),
            ended_by,
            idle_from: at_us(r.last_payload_before_end),
            last_data: per_t(&|s| s.last_data),
            close_at: per_t(&|s| s.close.as_ref().map(|c| c.at)),
            close_code: [sides[0], sides[1]]
                .map(|s| s.close.as_ref().map_or(0, |c| c.code.unwrap_or(1005))),
            fin: [at_us(t.client_fin), at_us(t.server_fin)],
            rst: [at_us(t.client_rst), at_us(t.server_rst)],
            messages: per(&|s| s.messages),
            messages_before_close: per(&|s| s.messages_before_close),
            bytes_before_close: per(&|s| s.bytes_before_close),
            largest: per(&|s| s.largest_message.unwrap_or(0)),
            unfinished: per(&|s| s.unfinished_message.unwrap_or(0)),
            pings: per(&|s| s.pings),
            pings_answered: per(&|s| s.ping_rtt.answered),
            pings_unanswered: per(&|s| s.ping_rtt.unanswered),
            first_unanswered: per_t(&|s| s.ping_rtt.first_unanswered),
            rtt_p50: [sides[0], sides[1]].map(|s| s.ping_rtt.p50_ns / 1000),
            rtt_max: [sides[0], sides[1]].map(|s| s.ping_rtt.max_ns / 1000),
            segments: per(&|s| s.tcp.segments),
            retransmitted: per(&|s| s.tcp.retransmitted),
            out_of_order: per(&|s| s.tcp.out_of_order),
            gaps: per(&|s| s.tcp.gaps),
            unacked: per(&|s| s.tcp.unacked_bytes),
            last_retransmission: per_t(&|s| s.tcp.last_retransmission),
            last_payload: per_t(&|s| s.tcp.last_payload),
            http_status: r.http_status().unwrap_or(0),
            first_close_by: r.verdict.first_close_by,
            outcome: r.verdict.outcome,
            tcp_end: r.verdict.tcp_end,
            tcp_end_by: r.verdict.tcp_end_by,
            anomalies: r.anomalies,
            flags,
        }
    }

    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Time from the last payload to the end (µs), when the session ended.
    pub fn idle_before_end(&self) -> Option<i64> {
        (self.ended != NONE && self.idle_from != NONE).then(|| self.ended - self.idle_from)
    }

    /// Time from the last data frame (either side) before the end, to the end (µs); `None`
    /// without an end or without data. Data that came after the end counts as none idle.
    pub fn data_idle_before_end(&self) -> Option<i64> {
        let last = self.last_data[0].max(self.last_data[1]);
        (self.ended != NONE && last != NONE).then(|| (self.ended - last).max(0))
    }

    /// Age at the end (µs).
    pub fn age_at_end(&self) -> Option<i64> {
        (self.ended != NONE).then(|| self.ended - self.start)
    }

    /// The Close code of the session's first Close frame and its side.
    pub fn first_close(&self) -> Option<(Side, u16)> {
        self.first_close_by.map(|s| (s, self.close_code[idx(s)]))
    }

    /// Did the session end by a normal Close frame (1000, 1001, 1005) from the client
    /// that began the end? Such ends are the client's own choice, not a timer's.
    pub fn normal_client_close(&self) -> bool {
        self.ended_by == Some(Side::Client)
            && self.close_at[0] == self.ended
            && matches!(self.close_code[0], 1000 | 1001 | 1005)
    }

    pub fn upgraded(&self) -> bool {
        self.has(flag::UPGRADED)
    }
}

/// Index of a side in the per-side arrays.
pub fn idx(s: Side) -> usize {
    match s {
        Side::Client => 0,
        Side::Server => 1,
    }
}

// ---------------------------------------------------------------------------------------
// Binary form, for rows spilled to disk (never leaves the process).

fn side_code(s: Option<Side>) -> u8 {
    match s {
        None => 0,
        Some(Side::Client) => 1,
        Some(Side::Server) => 2,
    }
}

fn side_of(b: u8) -> Option<Side> {
    match b {
        1 => Some(Side::Client),
        2 => Some(Side::Server),
        _ => None,
    }
}

fn tcp_end_code(e: TcpEnd) -> u8 {
    match e {
        TcpEnd::Fin => 0,
        TcpEnd::Rst => 1,
        TcpEnd::Open => 2,
    }
}

/// Appends `r` to `b` (a fixed number of bytes).
pub fn encode(r: &Row, b: &mut Vec<u8>) {
    let Row {
        source,
        session,
        tcp_stream,
        client,
        server,
        start,
        last,
        ended,
        ended_by,
        idle_from,
        last_data,
        close_at,
        close_code,
        fin,
        rst,
        messages,
        messages_before_close,
        bytes_before_close,
        largest,
        unfinished,
        pings,
        pings_answered,
        pings_unanswered,
        first_unanswered,
        rtt_p50,
        rtt_max,
        segments,
        retransmitted,
        out_of_order,
        gaps,
        unacked,
        last_retransmission,
        last_payload,
        http_status,
        first_close_by,
        outcome,
        tcp_end,
        tcp_end_by,
        anomalies,
        flags,
    } = *r;
    b.extend_from_slice(&source.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    for e in [client, server] {
        b.extend_from_slice(&e.addr.0.to_le_bytes());
        b.extend_from_slice(&e.addr.1.to_le_bytes());
        b.extend_from_slice(&e.port.to_le_bytes());
    }
    for x in [session, tcp_stream, anomalies.bits()] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in [start, last, ended, idle_from] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for pair in [
        last_data,
        close_at,
        fin,
        rst,
        first_unanswered,
        rtt_p50,
        rtt_max,
        last_retransmission,
        last_payload,
    ] {
        for x in pair {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    for pair in [
        messages,
        messages_before_close,
        bytes_before_close,
        largest,
        unfinished,
        pings,
        pings_answered,
        pings_unanswered,
        segments,
        retransmitted,
        out_of_order,
        gaps,
        unacked,
    ] {
        for x in pair {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    for x in [close_code[0], close_code[1], http_status] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let outcome = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0) as u8;
    b.extend_from_slice(&[
        side_code(ended_by),
        side_code(first_close_by),
        outcome,
        tcp_end_code(tcp_end),
        side_code(tcp_end_by),
    ]);
}

/// Bytes of one encoded row.
pub const ENCODED_LEN: usize = 4 + 4 + 2 * 18 + 3 * 8 + 4 * 8 + 9 * 16 + 13 * 16 + 3 * 2 + 5;

/// Reads a row that [`encode`] wrote.
pub fn decode(b: &[u8]) -> Row {
    let mut p = 0;
    let mut take = |n: usize| {
        let s = &b[p..p + n];
        p += n;
        s
    };
    let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
    let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
    let i64_ = |s: &[u8]| i64::from_le_bytes(s.try_into().unwrap());
    let u16_ = |s: &[u8]| u16::from_le_bytes(s.try_into().unwrap());
    let source = u32_(take(4));
    let flags = u32_(take(4));
    let mut ep = || Endpoint {
        addr: Addr(u64_(take(8)), u64_(take(8))),
        port: u16_(take(2)),
    };
    let (client, server) = (ep(), ep());
    let (session, tcp_stream, bits) = (u64_(take(8)), u64_(take(8)), u64_(take(8)));
    let (start, last, ended, idle_from) =
        (i64_(take(8)), i64_(take(8)), i64_(take(8)), i64_(take(8)));
    let mut ti = || [i64_(take(8)), i64_(take(8))];
    let (last_data, close_at, fin, rst, first_unanswered) = (ti(), ti(), ti(), ti(), ti());
    let (rtt_p50, rtt_max, last_retransmission, last_payload) = (ti(), ti(), ti(), ti());
    let mut tu = || [u64_(take(8)), u64_(take(8))];
    let (messages, messages_before_close, bytes_before_close, largest, unfinished) =
        (tu(), tu(), tu(), tu(), tu());
    let (pings, pings_answered, pings_unanswered) = (tu(), tu(), tu());
    let (segments, retransmitted, out_of_order, gaps, unacked) = (tu(), tu(), tu(), tu(), tu());
    let close_code = [u16_(take(2)), u16_(take(2))];
    let http_status = u16_(take(2));
    let s = take(5);
    Row {
        source,
        session,
        tcp_stream,
        client,
        server,
        start,
        last,
        ended,
        ended_by: side_of(s[0]),
        idle_from,
        last_data,
        close_at,
        close_code,
        fin,
        rst,
        messages,
        messages_before_close,
        bytes_before_close,
        largest,
        unfinished,
        pings,
        pings_answered,
        pings_unanswered,
        first_unanswered,
        rtt_p50,
        rtt_max,
        segments,
        retransmitted,
        out_of_order,
        gaps,
        unacked,
        last_retransmission,
        last_payload,
        http_status,
        first_close_by: side_of(s[1]),
        outcome: Outcome::ALL[(s[2] as usize).min(Outcome::ALL.len() - 1)],
        tcp_end: match s[3] {
            0 => TcpEnd::Fin,
            1 => TcpEnd::Rst,
            _ => TcpEnd::Open,
        },
        tcp_end_by: side_of(s[4]),
        anomalies: Anomalies::from_bits(bits),
        flags,
    }
}

/// Rows in arrival order, in memory up to a cap, then on disk (`spill`); read back in the
/// same order, as many times as the passes need.
pub type RowStore = SpillVec<Row>;

impl FixedCodec for Row {
    const ENCODED_LEN: usize = ENCODED_LEN;
    fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out)
    }
    fn decode(b: &[u8]) -> Self {
        decode(b)
    }
}

/// Whether an anomaly is a violation of RFC 6455 by a peer (not a capture limitation).
pub fn is_violation(a: Anomaly) -> bool {
    use Anomaly::*;
    matches!(
        a,
        MissingUpgradeHeader
            | MissingAccept
            | InvalidAccept
            | UnmaskedClientFrame
            | MaskedServerFrame
            | ReservedBitsSet
            | ReservedOpcode
            | InvalidPayloadLength
            | NonMinimalLength
            | ControlFrameTooLong
            | FragmentedControlFrame
            | UnexpectedContinuation
            | UnfinishedMessage
            | CloseTooShort
            | InvalidCloseCode
            | InvalidUtf8CloseReason
            | DataAfterClose
            | FrameBeforeUpgrade
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encoded_rows_read_back(rec in crate::record::codec::tests::record(), s in any::<u64>(), src in any::<u32>()) {
            let row = Row::from_record(src, s, &rec);
            let mut b = Vec::new();
            encode(&row, &mut b);
            prop_assert_eq!(b.len(), ENCODED_LEN);
            prop_assert_eq!(decode(&b), row);
        }
    }

    #[test]
    fn spilled_rows_come_back_in_order_twice() {
        let rec = SessionRecord::example();
        let mut store = RowStore::new(1);
        for i in 0..10 {
            store.push(Row::from_record(0, i, &rec)).unwrap();
        }
        assert!(store.on_disk() > 0);
        for _ in 0..2 {
            let mut got = Vec::new();
            store.for_each(&mut |r| got.push(r.session)).unwrap();
            assert_eq!(got, (0..10).collect::<Vec<_>>());
        }
        store.push(Row::from_record(0, 10, &rec)).unwrap();
        let mut n = 0;
        store.for_each(&mut |_| n += 1).unwrap();
        assert_eq!(n, 11);
    }

    #[test]
    fn policy_words() {
        assert!(policy_reason("Unauthorized: bad token"));
        assert!(policy_reason("forbidden: origin not allowed"));
        assert!(!policy_reason("custom: état"));
        assert!(!policy_reason("kicked"));
        assert!(policy_reason("rate-limited"));
        assert!(!policy_reason("generated separately"));
    }
}
