//! Findings on hand-made rows: each cause from the pattern that shows it, and nothing
//! from healthy traffic (including traffic whose numbers vary at random).

use super::*;
use crate::net::Endpoint;
use crate::record::{Anomalies, Anomaly, Side};
use crate::summary::row::{flag, NONE};
use crate::verdict::{Outcome, TcpEnd};

const S: i64 = 1_000_000;

/// A healthy session: the client sends `msgs` messages, the server as many, then the
/// client closes 1000 at `start + len` and both send FIN.
fn healthy(n: u64, ip: u8, start: i64, len: i64, msgs: u64) -> Row {
    let end = start + len;
    Row {
        source: 0,
        session: n,
        tcp_stream: n - 1,
        client: Endpoint::v4([10, 0, 0, ip], 40000 + n as u16),
        server: Endpoint::v4([10, 0, 1, 1], 443),
        start,
        last: end + 2_000,
        ended: end,
        ended_by: Some(Side::Client),
        idle_from: end - 50_000,
        last_data: [end - 50_000, end - 60_000],
        close_at: [end, end + 1_000],
        close_code: [1000, 1000],
        fin: [end + 1_500, end + 1_200],
        rst: [NONE, NONE],
        messages: [msgs, msgs],
        messages_before_close: [msgs, msgs],
        bytes_before_close: [msgs * 40, msgs * 40],
        largest: [60, 60],
        unfinished: [0, 0],
        pings: [0, 0],
        pings_answered: [0, 0],
        pings_unanswered: [0, 0],
        first_unanswered: [NONE, NONE],
        rtt_p50: [0, 0],
        rtt_max: [0, 0],
        segments: [msgs + 2, msgs + 2],
        retransmitted: [0, 0],
        out_of_order: [0, 0],
        gaps: [0, 0],
        unacked: [0, 0],
        last_retransmission: [NONE, NONE],
        last_payload: [end, end + 1_000],
        http_status: 101,
        first_close_by: Some(Side::Client),
        outcome: Outcome::Clean,
        tcp_end: TcpEnd::Fin,
        tcp_end_by: Some(Side::Server),
        anomalies: Anomalies::default(),
        flags: flag::UPGRADED | flag::EXACT,
    }
}

/// The same session ended instead by a FIN from `side` with no Close frame, after
/// `idle` of silence.
fn dropped(mut r: Row, side: Side, idle: i64) -> Row {
    let end = r.ended;
    r.close_code = [0, 0];
    r.close_at = [NONE, NONE];
    r.first_close_by = None;
    r.ended_by = Some(side);
    r.idle_from = end - idle;
    r.last_data = [end - idle, end - idle - 10_000];
    r.fin = match side {
        Side::Client => [end, end + 1_000],
        Side::Server => [end + 1_000, end],
    };
    r.outcome = Outcome::NoCloseFrame;
    r.tcp_end_by = Some(side);
    r
}

fn findings(rows: &[Row]) -> Vec<Finding> {
    let mut scan = Scan::default();
    for r in rows {
        scan.add(r);
    }
    let reasons = ReasonTable::default();
    let cx = Context {
        capture_end: rows.iter().map(|r| r.last).max().unwrap_or(0) + S,
        sessions: rows.len() as u64,
        upgraded: rows.len() as u64,
        reasons: &reasons,
    };
    find(&scan, &cx, &mut |f| {
        rows.iter().for_each(&mut *f);
        Ok(())
    })
    .unwrap()
}

fn causes(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.cause.token()).collect()
}

fn named(f: &[Finding], cause: Cause) -> Vec<u64> {
    f.iter()
        .filter(|f| f.cause == cause)
        .flat_map(|f| f.sessions.iter().map(|s| s.session))
        .collect()
}

/// A pseudo-random number generator for varied healthy traffic (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn varied(n: u64, seed: u64) -> Vec<Row> {
    let mut rng = Rng(seed);
    (1..=n)
        .map(|i| {
            let start = i as i64 * 700_000 + rng.below(300_000) as i64;
            let len = S + rng.below(120 * S as u64) as i64;
            healthy(i, (i % 200) as u8 + 1, start, len, 1 + rng.below(2000))
        })
        .collect()
}

#[test]
fn healthy_traffic_names_nothing() {
    for seed in [1, 7, 99] {
        let f = findings(&varied(3000, seed));
        assert!(f.is_empty(), "seed {seed}: {:?}", causes(&f));
    }
}

#[test]
fn the_same_silence_before_a_proxy_fin_is_an_idle_timeout() {
    let mut rows = varied(200, 3);
    for i in 0..6 {
        let n = 201 + i;
        let r = healthy(n, 50 + i as u8, 1000 * S + i as i64 * 7 * S, 75 * S, 12);
        rows.push(dropped(r, Side::Server, 60 * S + i as i64 * 300_000));
    }
    let f = findings(&rows);
    assert_eq!(
        named(&f, Cause::IdleTimeout),
        (201..=206).collect::<Vec<_>>()
    );
    let idle = f.iter().find(|f| f.cause == Cause::IdleTimeout).unwrap();
    let text = format!("{:?}", idle.evidence);
    assert!(text.contains("nginx"), "60 s is nginx's default: {text}");
    assert!(text.contains("server FIN"), "{text}");
    // The same ends, with clients that close normally after their silence: their choice.
    let mut calm = varied(200, 3);
    for i in 0..6 {
        let mut r = healthy(201 + i, 50, 1000 * S + i as i64 * 7 * S, 75 * S, 12);
        r.idle_from = r.ended - 60 * S;
        calm.push(r);
    }
    assert!(named(&findings(&calm), Cause::IdleTimeout).is_empty());
}

#[test]
fn the_same_age_whatever_the_traffic_is_a_lifetime_limit_not_an_idle_timeout() {
    let mut rows = Vec::new();
    for i in 0..8u64 {
        let r = healthy(i + 1, i as u8 + 1, i as i64 * 3 * S, 30 * S, 5 + i * 7);
        // Busy until the cut, except two that went quiet.
        let idle = if i < 2 {
            25 * S
        } else {
            (100 + i as i64 * 40) * 1000
        };
        rows.push(dropped(r, Side::Server, idle));
    }
    let f = findings(&rows);
    assert_eq!(named(&f, Cause::LifetimeLimit), (1..=8).collect::<Vec<_>>());
    assert!(named(&f, Cause::IdleTimeout).is_empty(), "{:?}", causes(&f));
    assert!(
        format!("{:?}", f).contains("GCP"),
        "30 s is GCP's backend timeout"
    );
    // Sessions that all went quiet at the same point of their life: an idle timer.
    let quiet: Vec<Row> = (0..8u64)
        .map(|i| {
            let r = healthy(i + 1, i as u8 + 1, i as i64 * 3 * S, 30 * S, 5);
            dropped(r, Side::Server, 29 * S)
        })
        .collect();
    let f = findings(&quiet);
    assert!(
        named(&f, Cause::LifetimeLimit).is_empty(),
        "{:?}",
        causes(&f)
    );
    assert_eq!(named(&f, Cause::IdleTimeout).len(), 8);
}

#[test]
fn closes_right_after_the_same_message_count_are_a_limit() {
    let mut rows = varied(500, 11);
    for i in 0..5u64 {
        let mut r = healthy(501 + i, 20, 2000 * S + i as i64 * 2 * S, 10 * S, 200);
        r.first_close_by = Some(Side::Server);
        r.ended_by = Some(Side::Server);
        r.close_at = [r.ended + 500, r.ended];
        r.messages_before_close = [1000, 990 + i];
        r.close_code = [1008, 1008];
        rows.push(r);
    }
    let f = findings(&rows);
    assert_eq!(
        named(&f, Cause::MessageLimit),
        (501..=505).collect::<Vec<_>>()
    );
    let limit = f.iter().find(|f| f.cause == Cause::MessageLimit).unwrap();
    assert!(limit.title.contains("1000th"), "{}", limit.title);
    // Random counts do not make a limit, even with thousands of sessions.
    assert!(named(&findings(&varied(5000, 5)), Cause::MessageLimit).is_empty());
}

#[test]
fn a_1009_at_the_same_volume_of_small_messages_is_a_limit_not_too_big() {
    let mut rows = Vec::new();
    for i in 0..4u64 {
        let mut r = healthy(i + 1, 1, i as i64 * 5 * S, 4 * S, 700);
        r.close_code = [1009, 1009];
        r.first_close_by = Some(Side::Server);
        r.ended_by = Some(Side::Server);
        r.close_at = [r.ended + 100, r.ended];
        r.bytes_before_close = [65_536 + i * 40, 0];
        r.largest = [120, 60];
        rows.push(r);
    }
    let mut big = healthy(5, 2, 30 * S, S, 3);
    big.close_code = [1009, 1009];
    big.first_close_by = Some(Side::Server);
    big.ended_by = Some(Side::Server);
    big.close_at = [big.ended + 100, big.ended];
    big.largest = [900_000, 10];
    big.unfinished = [2_000_000, 0];
    rows.push(big);
    let f = findings(&rows);
    assert_eq!(named(&f, Cause::MessageLimit), [1, 2, 3, 4]);
    assert_eq!(named(&f, Cause::MessageTooBig), [5]);
    let too_big = f.iter().find(|f| f.cause == Cause::MessageTooBig).unwrap();
    let ev = format!("{:?}", too_big.evidence);
    assert!(
        ev.contains("between 900000 bytes (accepted) and 2000000 bytes"),
        "{ev}"
    );
}

/// A 1009 with no size to give says why: no data message from the other side (a refused
/// Ping, as in Zeek's message-too-big-status capture), or compressed and not inflated.
#[test]
fn a_1009_without_sizes_says_why() {
    let refused = |n: u64, msgs: u64, flags: u32| {
        let mut r = healthy(n, n as u8, n as i64 * 5 * S, S, msgs);
        r.close_code = [1009, 1000];
        r.largest = [0, 0];
        r.flags |= flags;
        r
    };
    let title = |rows: &[Row]| {
        let f = findings(rows);
        f.iter()
            .find(|f| f.cause == Cause::MessageTooBig)
            .map(|f| f.title.clone())
            .unwrap()
    };
    let ping_only = title(&[refused(1, 0, 0)]);
    assert!(
        ping_only.contains("no data message from the other side"),
        "{ping_only}"
    );
    let compressed = title(&[refused(1, 5, flag::DEFLATE)]);
    assert!(
        compressed.contains("compressed and not inflated"),
        "{compressed}"
    );
    let both = title(&[refused(1, 0, 0), refused(2, 5, flag::DEFLATE)]);
    assert!(both.ends_with("(message sizes unknown)"), "{both}");
}

#[test]
fn unanswered_pings_before_an_abnormal_end_are_a_heartbeat_timeout() {
    let mut r = dropped(healthy(1, 1, 0, 30 * S, 10), Side::Server, 21 * S);
    r.pings = [0, 5];
    r.pings_answered = [0, 4];
    r.rtt_p50 = [0, 2_000];
    r.pings_unanswered = [0, 1];
    r.first_unanswered = [NONE, r.ended - 20 * S];
    // The same, but the ping was sent just before a normal close: no failure.
    let mut ok = healthy(2, 2, 0, 30 * S, 10);
    ok.pings = [3, 0];
    ok.pings_unanswered = [1, 0];
    ok.first_unanswered = [ok.ended - 100_000, NONE];
    let f = findings(&[r, ok]);
    assert_eq!(named(&f, Cause::HeartbeatTimeout), [1]);
    assert!(
        named(&f, Cause::IdleTimeout).is_empty(),
        "the silence was the heartbeat's wait"
    );
}

#[test]
fn codes_name_their_causes() {
    let mut rows = Vec::new();
    let mut close = |n: u64, side: Side, code: u16, policy_reason: bool| {
        let mut r = healthy(n, n as u8, n as i64 * 10 * S, S, 3);
        r.first_close_by = Some(side);
        r.ended_by = Some(side);
        r.close_code = [code, code];
        if policy_reason {
            r.flags |= flag::POLICY_REASON_SERVER | flag::POLICY_REASON_CLIENT;
        }
        rows.push(r);
    };
    close(1, Side::Server, 1008, false);
    close(2, Side::Server, 4001, true);
    close(3, Side::Server, 4000, false);
    close(4, Side::Server, 1011, false);
    close(5, Side::Client, 1011, false);
    close(6, Side::Server, 1012, false);
    close(7, Side::Client, 1002, false);
    close(8, Side::Client, 1001, false);
    let mut bad = healthy(9, 9, 100 * S, S, 3);
    bad.anomalies.insert(Anomaly::UnmaskedClientFrame);
    rows.push(bad);
    let mut rejected = healthy(10, 10, 120 * S, S, 0);
    rejected.outcome = Outcome::Rejected;
    rejected.http_status = 403;
    rejected.flags = flag::NO_ORIGIN;
    rows.push(rejected);
    let f = findings(&rows);
    assert_eq!(named(&f, Cause::PolicyViolation), [1, 2]);
    assert_eq!(
        named(&f, Cause::ServerError),
        [4],
        "1011 from the client is not"
    );
    assert_eq!(
        named(&f, Cause::ServerShutdown),
        [6],
        "1001 from a client is not"
    );
    assert_eq!(named(&f, Cause::ProtocolError), [7, 9]);
    assert_eq!(named(&f, Cause::HandshakeRejected), [10]);
}

#[test]
fn endings_abrupt_unanswered_half_open_capture_cut() {
    let a = dropped(healthy(1, 1, 0, S, 3), Side::Client, 1000);
    let mut u = healthy(2, 2, 10 * S, S, 3);
    u.close_code = [0, 4001];
    u.first_close_by = Some(Side::Server);
    u.ended_by = Some(Side::Server);
    u.close_at = [NONE, u.ended];
    u.outcome = Outcome::UnansweredClose;
    let mut h = healthy(3, 3, 20 * S, S, 3);
    h.fin = [h.ended + 100, h.ended + 5 * S];
    let mut c = healthy(4, 4, 30 * S, S, 3);
    c.outcome = Outcome::OpenAtEnd;
    c.ended = NONE;
    c.ended_by = None;
    c.close_code = [0, 0];
    c.close_at = [NONE, NONE];
    c.fin = [NONE, NONE];
    c.tcp_end = TcpEnd::Open;
    let f = findings(&[a, u, h, c]);
    assert_eq!(named(&f, Cause::AbruptDisconnect), [1]);
    assert_eq!(named(&f, Cause::UnansweredClose), [2]);
    assert_eq!(named(&f, Cause::HalfOpen), [3]);
    assert_eq!(named(&f, Cause::CaptureCut), [4]);
    // Findings come by severity, then cause.
    let sev: Vec<Severity> = f.iter().map(|f| f.severity).collect();
    let mut sorted = sev.clone();
    sorted.sort();
    assert_eq!(sev, sorted);
}

#[test]
fn a_restart_and_the_storm_after_it() {
    let mut rows = Vec::new();
    for i in 0..8u64 {
        let r = healthy(i + 1, i as u8 + 1, i as i64 * 100_000, 60 * S, 30);
        rows.push(dropped(r, Side::Server, 2 * S));
    }
    for i in 0..8u64 {
        rows.push(healthy(
            9 + i,
            i as u8 + 1,
            61 * S + i as i64 * 300_000,
            20 * S,
            4,
        ));
    }
    let f = findings(&rows);
    assert_eq!(
        named(&f, Cause::ServerShutdown),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        named(&f, Cause::ReconnectStorm),
        (9..=16).collect::<Vec<_>>()
    );
}

#[test]
fn loss_needs_retransmissions_in_enough_sessions() {
    let mut rows = varied(20, 4);
    for r in rows.iter_mut().take(2) {
        r.segments = [400, 400];
        r.retransmitted = [30, 2];
    }
    assert!(
        named(&findings(&rows), Cause::NetworkLoss).is_empty(),
        "2 of 20 sessions"
    );
    for r in rows.iter_mut().take(5) {
        r.segments = [400, 400];
        r.retransmitted = [30, 2];
        r.gaps = [3, 0];
    }
    assert_eq!(named(&findings(&rows), Cause::NetworkLoss), [1, 2, 3, 4, 5]);
    // Missing from the capture but acknowledged: the capture's loss, not the network's.
    let mut cap = varied(20, 4);
    for r in cap.iter_mut() {
        r.segments = [400, 400];
        r.gaps = [20, 20];
        r.out_of_order = [20, 20];
    }
    assert!(named(&findings(&cap), Cause::NetworkLoss).is_empty());
}

#[test]
fn a_finding_lists_at_most_max_named_sessions_and_counts_all() {
    let rows: Vec<Row> = (1..=(MAX_NAMED as u64 + 5))
        .map(|i| dropped(healthy(i, 1, i as i64 * S, S, 2), Side::Client, 1000))
        .collect();
    let f = findings(&rows);
    let a = f
        .iter()
        .find(|f| f.cause == Cause::AbruptDisconnect)
        .unwrap();
    assert_eq!(a.sessions.len(), MAX_NAMED);
    assert_eq!(a.sessions_total, MAX_NAMED as u64 + 5);
}

#[test]
fn cause_tokens_are_unique_and_read_back() {
    let mut seen = std::collections::HashSet::new();
    for c in Cause::ALL {
        assert!(seen.insert(c.token()));
        assert_eq!(Cause::from_token(c.token()), Some(c));
    }
}

#[test]
fn a_busy_server_ending_sessions_one_by_one_is_no_restart() {
    // 400 sessions to one server, 100 alive at any time, the server dropping one every
    // 0.25 s, down to the last ones: never most of those alive at once.
    let mut rng = Rng(17);
    let rows: Vec<Row> = (0..400u64)
        .map(|i| {
            let len = 20 * S + rng.below(10 * S as u64) as i64;
            let r = healthy(i + 1, (i % 250) as u8 + 1, i as i64 * 250_000, len, 5 + i);
            dropped(r, Side::Server, 100_000 + rng.below(900_000) as i64)
        })
        .collect();
    let f = findings(&rows);
    assert!(
        named(&f, Cause::ServerShutdown).is_empty(),
        "{:?}",
        f.iter()
            .find(|f| f.cause == Cause::ServerShutdown)
            .map(|f| &f.evidence)
    );
    assert!(
        named(&f, Cause::ReconnectStorm).is_empty(),
        "{:?}",
        causes(&f)
    );
}
