//! The verdict: how a session ended, drawn by pure rules from the facts a connection
//! collected (what became of the Upgrade, the Close frames each side sent, the first FIN
//! and RST of each side). Nothing here looks at packets; the rules are tested as a table.

use crate::record::{At, Side, TcpEnds};

/// What became of the Upgrade request (RFC 6455 §4.1, §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upgrade {
    /// The server's answer was seen, with this HTTP status (101: upgraded).
    Answered(u16),
    /// No answer: the server sent no payload (and none is missing from the capture).
    Unanswered,
    /// The answer was not captured (a gap, a snapshot length), but the server then sent
    /// well-formed unmasked frames: the upgrade happened.
    Inferred,
    /// The answer was not captured and nothing after it tells whether it upgraded.
    Unknown,
    /// No handshake in the capture: the session was recognised by its framing.
    Midstream,
    /// TLS that could not be decrypted: what it carried is unknown.
    Undecrypted,
}

/// How the TCP connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEnd {
    Fin,
    Rst,
    Open,
}

impl TcpEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpEnd::Fin => "fin",
            TcpEnd::Rst => "rst",
            TcpEnd::Open => "open",
        }
    }
}

/// The verdict on how the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Both sides sent Close frames (§7.1.4).
    Clean,
    /// RST before the closing handshake completed.
    Reset,
    /// One Close frame, then FIN without the other.
    UnansweredClose,
    /// FIN with no Close frame at all.
    NoCloseFrame,
    /// Neither FIN nor RST before the capture ended.
    OpenAtEnd,
    /// The Upgrade was answered with another status than 101, or never answered before
    /// the connection ended.
    Rejected,
    /// Whether the Upgrade succeeded cannot be told: its answer is missing from the capture
    /// and no frame followed.
    UnknownHandshake,
    /// TLS that could not be decrypted.
    Undecrypted,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Clean,
        Outcome::Reset,
        Outcome::UnansweredClose,
        Outcome::NoCloseFrame,
        Outcome::OpenAtEnd,
        Outcome::Rejected,
        Outcome::UnknownHandshake,
        Outcome::Undecrypted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Reset => "reset",
            Outcome::UnansweredClose => "unanswered_close",
            Outcome::NoCloseFrame => "no_close_frame",
            Outcome::OpenAtEnd => "open_at_end",
            Outcome::Rejected => "rejected",
            Outcome::UnknownHandshake => "unknown_handshake",
            Outcome::Undecrypted => "undecrypted",
        }
    }

    /// What the token means, for README and `sessions --help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Outcome::Clean => "both sides sent a Close frame (the closing handshake, RFC 6455 §7.1.4), whatever TCP did after",
            Outcome::Reset => "a RST before the closing handshake completed",
            Outcome::UnansweredClose => "one side sent a Close frame, the other never answered, and TCP ended with FIN",
            Outcome::NoCloseFrame => "TCP ended with FIN and no Close frame at all",
            Outcome::OpenAtEnd => "neither FIN nor RST before the capture ended",
            Outcome::Rejected => "the Upgrade was answered with another status than 101, or never answered before TCP ended",
            Outcome::UnknownHandshake => "the answer to the Upgrade is missing from the capture and nothing after it tells whether it upgraded",
            Outcome::Undecrypted => "TLS that could not be decrypted",
        }
    }

    pub fn from_token(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The session ended without the closing handshake of §7.1.2 (the `abnormal` column).
    pub fn is_abnormal(self) -> bool {
        matches!(
            self,
            Outcome::Reset | Outcome::UnansweredClose | Outcome::NoCloseFrame
        )
    }
}

/// What the verdict looks at: the facts of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    pub upgrade: Upgrade,
    /// The first Close frame the client sent: when, and its status code (`None`: no code).
    pub client_close: Option<(At, Option<u16>)>,
    pub server_close: Option<(At, Option<u16>)>,
    pub tcp: TcpEnds,
}

/// How the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// RFC 6455 §7.1.5 "The WebSocket Connection Close Code": the code of the first Close
    /// frame (1005 when it had none), 1006 when TCP ended without any Close frame.
    pub close_code: Option<u16>,
    /// The side whose Close frame came first.
    pub first_close_by: Option<Side>,
    /// `rst` when any RST was seen, else `fin` when any FIN was seen, else `open`.
    pub tcp_end: TcpEnd,
    /// The side that sent the first packet of the kind `tcp_end` names: the first RST when
    /// `tcp_end` is `rst`, else the first FIN.
    pub tcp_end_by: Option<Side>,
}

impl Verdict {
    pub fn abnormal(&self) -> bool {
        self.outcome.is_abnormal()
    }
}

/// The side of the earlier of two moments (the client on a tie, which cannot happen for
/// two packets of different directions).
fn earlier(client: Option<At>, server: Option<At>) -> Option<Side> {
    match (client, server) {
        (Some(c), Some(s)) => Some(if c.packet <= s.packet {
            Side::Client
        } else {
            Side::Server
        }),
        (Some(_), None) => Some(Side::Client),
        (None, Some(_)) => Some(Side::Server),
        (None, None) => None,
    }
}

/// The verdict on a session from its facts.
pub fn verdict(f: &SessionFacts) -> Verdict {
    let t = &f.tcp;
    let (tcp_end, tcp_end_by) = if t.client_rst.is_some() || t.server_rst.is_some() {
        (TcpEnd::Rst, earlier(t.client_rst, t.server_rst))
    } else if t.client_fin.is_some() || t.server_fin.is_some() {
        (TcpEnd::Fin, earlier(t.client_fin, t.server_fin))
    } else {
        (TcpEnd::Open, None)
    };
    let first_close_by = earlier(f.client_close.map(|c| c.0), f.server_close.map(|c| c.0));
    let ended = tcp_end != TcpEnd::Open;
    let closes = f.client_close.is_some() as u8 + f.server_close.is_some() as u8;
    let outcome = match f.upgrade {
        Upgrade::Undecrypted => Outcome::Undecrypted,
        Upgrade::Unknown => Outcome::UnknownHandshake,
        Upgrade::Answered(s) if s != 101 => Outcome::Rejected,
        Upgrade::Unanswered if ended => Outcome::Rejected,
        _ if closes == 2 => Outcome::Clean,
        _ if tcp_end == TcpEnd::Rst => Outcome::Reset,
        _ if tcp_end == TcpEnd::Fin && closes == 1 => Outcome::UnansweredClose,
        _ if tcp_end == TcpEnd::Fin => Outcome::NoCloseFrame,
        _ => Outcome::OpenAtEnd,
    };
    let first_close = match first_close_by {
        Some(Side::Client) => f.client_close,
        Some(Side::Server) => f.server_close,
        None => None,
    };
    // §7.1.5; a connection whose handshake was not seen through gets 1006 as browsers
    // report a failed connection, but only where the capture can tell.
    let knowable = !matches!(outcome, Outcome::Undecrypted | Outcome::UnknownHandshake);
    let close_code = match first_close {
        Some((_, code)) => Some(code.unwrap_or(1005)),
        None if ended && knowable => Some(1006),
        None => None,
    };
    Verdict {
        outcome,
        close_code,
        first_close_by,
        tcp_end,
        tcp_end_by,
    }
}

/// Who ended a session: the sender of its earliest Close frame, FIN or RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    Client,
    Server,
    /// A proxy between them: its own packets on either leg (the front leg's server side,
    /// the back leg's client side) came first.
    Proxy,
}

impl ClosedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Server => "server",
            ClosedBy::Proxy => "proxy",
        }
    }
}

/// What ends a session: a Close frame (RFC 6455 §5.5.1), a FIN or a RST (RFC 9293 §3.6,
/// §3.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndKind {
    Close,
    Fin,
    Rst,
}

/// Every ending packet of one leg: (when, kind, sent by the leg's client).
fn endings(f: &SessionFacts) -> impl Iterator<Item = (At, EndKind, bool)> {
    let t = f.tcp;
    [
        (f.client_close.map(|c| c.0), EndKind::Close, true),
        (f.server_close.map(|c| c.0), EndKind::Close, false),
        (t.client_fin, EndKind::Fin, true),
        (t.server_fin, EndKind::Fin, false),
        (t.client_rst, EndKind::Rst, true),
        (t.server_rst, EndKind::Rst, false),
    ]
    .into_iter()
    .filter_map(|(at, k, c)| at.map(|at| (at, k, c)))
}

/// Who ended the session. Alone: the side of its earliest Close frame, FIN or RST. With
/// the other leg of a proxy (`peer`: its facts, and whether `own` is the front leg): the
/// earliest such packet across both legs, where the proxy's own packets (the front leg's
/// server side, the back leg's client side) count as `Proxy` unless the real client or
/// server sent a packet of the same kind no later on the other leg.
pub fn closed_by(own: &SessionFacts, peer: Option<(&SessionFacts, bool)>) -> Option<ClosedBy> {
    let Some((other, own_is_front)) = peer else {
        let first = endings(own).min_by_key(|e| e.0.packet)?;
        return Some(if first.2 {
            ClosedBy::Client
        } else {
            ClosedBy::Server
        });
    };
    let (front, back) = if own_is_front {
        (own, other)
    } else {
        (other, own)
    };
    // (when, kind, who, the leg it was on: true for the front)
    let all = endings(front)
        .map(|(at, k, c)| {
            (
                at,
                k,
                if c { ClosedBy::Client } else { ClosedBy::Proxy },
                true,
            )
        })
        .chain(endings(back).map(|(at, k, c)| {
            (
                at,
                k,
                if c { ClosedBy::Proxy } else { ClosedBy::Server },
                false,
            )
        }));
    let (at, kind, who, on_front) = all.min_by_key(|e| e.0.packet)?;
    if who != ClosedBy::Proxy {
        return Some(who);
    }
    // The proxy relays what an endpoint sent on the other leg.
    let (real, leg) = if on_front {
        (ClosedBy::Server, back)
    } else {
        (ClosedBy::Client, front)
    };
    let real_is_client = real == ClosedBy::Client;
    let relayed =
        endings(leg).any(|(a, k, c)| k == kind && c == real_is_client && a.packet <= at.packet);
    Some(if relayed { real } else { ClosedBy::Proxy })
}

/// Close codes that count as a normal end unless the user says otherwise (`--allow-codes`):
/// 1000 normal closure, 1001 going away, 1005 no status received (§7.4.1).
pub const DEFAULT_ALLOWED_CODES: [u16; 3] = [1000, 1001, 1005];

/// Is this connection close code an error, given the allowed codes? One rule for the
/// `error_code` column, the `--fail-on error_code` policy and the findings.
pub fn is_error_code(close_code: Option<u16>, allowed: &[u16]) -> bool {
    close_code.is_some_and(|c| !allowed.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Facts from a compact description: an upgrade (`101`, `403`, `unanswered`,
    /// `inferred`, `unknown`, `midstream`, `undecrypted`) and events `side:kind@packet`
    /// with kind `close` (`close=CODE` or `close=none`), `fin` or `rst`.
    fn facts(desc: &str) -> SessionFacts {
        let mut words = desc.split_whitespace();
        let upgrade = match words.next().unwrap() {
            "unanswered" => Upgrade::Unanswered,
            "inferred" => Upgrade::Inferred,
            "unknown" => Upgrade::Unknown,
            "midstream" => Upgrade::Midstream,
            "undecrypted" => Upgrade::Undecrypted,
            s => Upgrade::Answered(s.parse().unwrap()),
        };
        let mut f = SessionFacts {
            upgrade,
            client_close: None,
            server_close: None,
            tcp: TcpEnds::default(),
        };
        for w in words {
            let (side, rest) = w.split_once(':').unwrap();
            let (kind, packet) = rest.split_once('@').unwrap();
            let at = At {
                packet: packet.parse().unwrap(),
                ts_ns: 0,
            };
            let client = side == "c";
            match kind.split_once('=') {
                Some(("close", code)) => {
                    let code = (code != "none").then(|| code.parse().unwrap());
                    *(if client {
                        &mut f.client_close
                    } else {
                        &mut f.server_close
                    }) = Some((at, code));
                }
                _ => {
                    let t = &mut f.tcp;
                    let slot = match (kind, client) {
                        ("fin", true) => &mut t.client_fin,
                        ("fin", false) => &mut t.server_fin,
                        ("rst", true) => &mut t.client_rst,
                        ("rst", false) => &mut t.server_rst,
                        _ => panic!("bad event {w}"),
                    };
                    *slot = Some(at);
                }
            }
        }
        f
    }

    fn show(v: &Verdict) -> String {
        let side = |s: Option<Side>| s.map_or("-", Side::as_str);
        format!(
            "{} code={} first_close={} tcp={} by={} abnormal={}",
            v.outcome.as_str(),
            v.close_code.map_or("-".to_string(), |c| c.to_string()),
            side(v.first_close_by),
            v.tcp_end.as_str(),
            side(v.tcp_end_by),
            v.abnormal(),
        )
    }

    fn check(desc: &str, expect: &str) {
        let got = show(&verdict(&facts(desc)));
        assert_eq!(got, expect, "facts: {desc}");
    }

    #[test]
    fn outcomes() {
        // Both Close frames: clean, whatever TCP did after.
        check(
            "101 c:close=1000@5 s:close=1000@6 s:fin@7 c:fin@8",
            "clean code=1000 first_close=client tcp=fin by=server abnormal=false",
        );
        check(
            "101 c:close=1000@5 s:close=1000@6 c:fin@7 c:rst@9",
            "clean code=1000 first_close=client tcp=rst by=client abnormal=false",
        );
        check(
            "101 c:close=1000@5 s:close=1000@6",
            "clean code=1000 first_close=client tcp=open by=- abnormal=false",
        );
        // RST before the closing handshake completed.
        check(
            "101 c:rst@9",
            "reset code=1006 first_close=- tcp=rst by=client abnormal=true",
        );
        check(
            "101 s:close=1011@5 s:rst@6",
            "reset code=1011 first_close=server tcp=rst by=server abnormal=true",
        );
        // One Close frame, then FIN: unanswered (§7.1.4).
        check(
            "101 s:close=4001@5 c:fin@6 s:fin@7",
            "unanswered_close code=4001 first_close=server tcp=fin by=client abnormal=true",
        );
        // FIN without any Close frame.
        check(
            "101 c:fin@6 s:fin@7",
            "no_close_frame code=1006 first_close=- tcp=fin by=client abnormal=true",
        );
        // Nothing ended before the capture did.
        check(
            "101",
            "open_at_end code=- first_close=- tcp=open by=- abnormal=false",
        );
        check(
            "101 c:close=1000@5",
            "open_at_end code=1000 first_close=client tcp=open by=- abnormal=false",
        );
    }

    #[test]
    fn rejected_and_unanswered_upgrades() {
        check(
            "403 s:fin@5 c:fin@6",
            "rejected code=1006 first_close=- tcp=fin by=server abnormal=false",
        );
        // 403 while the connection stays open: still rejected.
        check(
            "403",
            "rejected code=- first_close=- tcp=open by=- abnormal=false",
        );
        // Never answered, connection ended: rejected; still open: open at end.
        check(
            "unanswered c:fin@4 s:fin@5",
            "rejected code=1006 first_close=- tcp=fin by=client abnormal=false",
        );
        check(
            "unanswered",
            "open_at_end code=- first_close=- tcp=open by=- abnormal=false",
        );
    }

    #[test]
    fn handshakes_the_capture_did_not_show() {
        // The 101 was lost but the server's frames followed: the usual rules.
        check(
            "inferred c:close=1000@5 s:close=1000@6 c:fin@7 s:fin@8",
            "clean code=1000 first_close=client tcp=fin by=client abnormal=false",
        );
        check(
            "inferred s:rst@7",
            "reset code=1006 first_close=- tcp=rst by=server abnormal=true",
        );
        // The answer is missing and nothing tells: no guess, and no 1006.
        check(
            "unknown c:fin@7 s:fin@8",
            "unknown_handshake code=- first_close=- tcp=fin by=client abnormal=false",
        );
        // Picked up mid-stream: the usual rules from the frames that were seen.
        check(
            "midstream s:close=1001@3 c:close=1001@4 s:fin@5 c:fin@6",
            "clean code=1001 first_close=server tcp=fin by=server abnormal=false",
        );
        check(
            "midstream c:fin@5",
            "no_close_frame code=1006 first_close=- tcp=fin by=client abnormal=true",
        );
        // TLS without keys: TCP is told, WebSocket is not.
        check(
            "undecrypted s:rst@9",
            "undecrypted code=- first_close=- tcp=rst by=server abnormal=false",
        );
    }

    #[test]
    fn close_codes_follow_section_7_1_5() {
        // A Close frame without a status code gives 1005.
        check(
            "101 c:close=none@5 s:close=none@6 c:fin@7 s:fin@8",
            "clean code=1005 first_close=client tcp=fin by=client abnormal=false",
        );
        // The FIRST Close frame's code, not the answer's.
        check(
            "101 s:close=1001@5 c:close=1000@6 c:fin@7 s:fin@8",
            "clean code=1001 first_close=server tcp=fin by=client abnormal=false",
        );
        check(
            "101 s:close=none@5 c:close=1000@6",
            "clean code=1005 first_close=server tcp=open by=- abnormal=false",
        );
    }

    #[test]
    fn tcp_end_and_tcp_end_by_describe_the_same_packet() {
        // The client's FIN came first, then the server reset: the server reset it.
        check(
            "101 c:fin@5 s:rst@6",
            "reset code=1006 first_close=- tcp=rst by=server abnormal=true",
        );
        // Both reset: the first RST.
        check(
            "101 s:rst@8 c:rst@6",
            "reset code=1006 first_close=- tcp=rst by=client abnormal=true",
        );
        // Both FIN: the first FIN.
        check(
            "101 s:fin@8 c:fin@9",
            "no_close_frame code=1006 first_close=- tcp=fin by=server abnormal=true",
        );
        // A close frame's packet number does not tie with TCP's.
        check(
            "101 c:close=1000@4 s:fin@5 c:rst@6",
            "reset code=1000 first_close=client tcp=rst by=client abnormal=true",
        );
    }

    #[test]
    fn error_codes() {
        let allowed = DEFAULT_ALLOWED_CODES;
        assert!(!is_error_code(None, &allowed));
        assert!(!is_error_code(Some(1000), &allowed));
        assert!(!is_error_code(Some(1001), &allowed));
        assert!(!is_error_code(Some(1005), &allowed));
        assert!(is_error_code(Some(1006), &allowed));
        assert!(is_error_code(Some(1011), &allowed));
        assert!(is_error_code(Some(4001), &allowed));
        assert!(!is_error_code(Some(4001), &[1000, 4001]));
        assert!(is_error_code(Some(1001), &[1000, 4001]));
    }

    fn who(own: &str, peer: Option<(&str, bool)>) -> &'static str {
        let own = facts(own);
        let peer = peer.map(|(p, front)| (facts(p), front));
        closed_by(&own, peer.as_ref().map(|(p, front)| (p, *front))).map_or("-", ClosedBy::as_str)
    }

    #[test]
    fn closed_by_one_leg_and_both() {
        // One leg: the earliest Close frame, FIN or RST.
        assert_eq!(who("101", None), "-");
        assert_eq!(
            who("101 c:close=1000@5 s:close=1000@6 s:fin@7", None),
            "client"
        );
        assert_eq!(who("101 s:fin@7 c:rst@9", None), "server");
        assert_eq!(who("101 c:close=1000@8 s:rst@7", None), "server");
        // Both legs (nginx idle timeout): the proxy's FIN to the server came first.
        let front = "101 s:fin@20 c:fin@21";
        let back = "101 c:fin@19 s:fin@22";
        assert_eq!(who(front, Some((back, true))), "proxy");
        assert_eq!(who(back, Some((front, false))), "proxy");
        // The client's Close frame on the front leg, relayed to the back leg later.
        let front = "101 c:close=1000@10 s:close=1000@13 s:fin@14 c:fin@15";
        let back = "101 c:close=1000@11 s:close=1000@12 s:fin@16 c:fin@17";
        assert_eq!(who(front, Some((back, true))), "client");
        assert_eq!(who(back, Some((front, false))), "client");
        // The server reset the back leg; the proxy then ended the front leg.
        let front = "101 s:fin@31 c:fin@32";
        let back = "101 s:rst@30";
        assert_eq!(who(front, Some((back, true))), "server");
        // Alone, the front leg only shows its server side (the proxy) ending it.
        assert_eq!(who(front, None), "server");
    }

    #[test]
    fn outcome_tokens_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_token(o.as_str()), Some(o));
        }
    }
}
