//! One TCP connection: lifecycle (SYN, FIN, RST per side; RFC 9293 §3.5-§3.6), the two
//! reassembled directions, and what the application layer made of them.

use super::reassembly::{Event, HalfStream, ReassemblyLimits};
use crate::decode::{FlowKey, TcpSegment, ACK, FIN, RST, SYN};
use crate::record::{Anomaly, Outcome, SessionRecord, Side, TcpEnd};
use crate::ws::handshake::{self, parse_head};
use crate::ws::WsSession;

/// What the connection carries, as far as we know.
#[derive(Debug)]
pub enum App {
    /// No payload yet.
    Unknown,
    /// The first payload started like `GET `: the request head is arriving.
    Request { client_is_lo: bool, head: Vec<u8> },
    /// An Upgrade request was seen: a WebSocket session.
    WebSocket {
        client_is_lo: bool,
        session: Box<WsSession>,
    },
    /// Anything else: not followed further.
    Other,
}

/// Index of a direction: 0 for packets from `key.lo`, 1 from `key.hi`.
fn dir(from_lo: bool) -> usize {
    if from_lo {
        0
    } else {
        1
    }
}

#[derive(Debug)]
pub struct Conn {
    pub key: FlowKey,
    pub first_frame: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub last_frame: u64,
    pub packets: u64,
    /// Wireshark's `tcp.stream`, assigned at the end of the batch that opened it.
    pub tcp_stream: u64,
    half: [HalfStream; 2],
    /// Wireshark's base sequence number per direction (decides port reuse).
    base_seq: [Option<u32>; 2],
    fin_frame: [Option<u64>; 2],
    rst_frame: [Option<u64>; 2],
    pub app: App,
}

impl Conn {
    pub fn new(key: FlowKey, frame: u64, ts: i64) -> Self {
        Conn {
            key,
            first_frame: frame,
            first_ts: ts,
            last_ts: ts,
            last_frame: frame,
            packets: 0,
            tcp_stream: u64::MAX,
            half: Default::default(),
            base_seq: [None; 2],
            fin_frame: [None; 2],
            rst_frame: [None; 2],
            app: App::Unknown,
        }
    }

    /// A SYN that starts a new connection on this 4-tuple, as Wireshark decides it: a SYN
    /// without ACK whose sequence number differs from the base of its direction.
    pub fn is_reuse(&self, seg: &TcpSegment) -> bool {
        seg.flags & (SYN | ACK) == SYN
            && self.base_seq[dir(seg.from_lo)].is_some_and(|b| b != seg.seq)
    }

    /// FIN both ways, or RST.
    pub fn is_closed(&self) -> bool {
        self.rst_frame.iter().any(Option::is_some) || self.fin_frame.iter().all(Option::is_some)
    }

    /// Could this connection still turn out to be (or is it) a WebSocket session?
    pub fn may_be_session(&self) -> bool {
        !matches!(self.app, App::Other)
    }

    pub fn is_session(&self) -> bool {
        matches!(&self.app, App::WebSocket { session, .. } if session.is_websocket())
    }

    /// One segment of this connection, in capture order.
    pub fn segment(
        &mut self,
        seg: &TcpSegment,
        payload: &[u8],
        frame: u64,
        ts: i64,
        limits: &ReassemblyLimits,
        max_head: usize,
    ) {
        let d = dir(seg.from_lo);
        self.packets += 1;
        self.last_ts = self.last_ts.max(ts);
        self.last_frame = frame;
        if self.base_seq[d].is_none() {
            self.base_seq[d] = Some(if seg.flags & SYN != 0 {
                seg.seq
            } else {
                seg.seq.wrapping_sub(1)
            });
        }
        if seg.flags & RST != 0 && self.rst_frame[d].is_none() {
            self.rst_frame[d] = Some(frame);
        }
        let following = !matches!(self.app, App::Other);
        if !following {
            if seg.flags & FIN != 0 && self.fin_frame[d].is_none() {
                self.fin_frame[d] = Some(frame);
            }
            return;
        }
        let Conn { half, app, .. } = self;
        if seg.flags & SYN != 0 {
            half[d].syn(seg.seq);
        }
        if seg.flags & ACK != 0 {
            let o = 1 - d;
            half[o].acked(seg.ack, limits, &mut |ev| {
                on_event(app, o, ev, frame, max_head)
            });
        }
        if seg.flags & RST == 0 {
            let fin = seg.flags & FIN != 0;
            let missing = seg.payload_missing;
            half[d].segment(seg.seq, payload, missing, fin, limits, &mut |ev| {
                on_event(app, d, ev, frame, max_head)
            });
        }
        if seg.flags & FIN != 0 && self.fin_frame[d].is_none() {
            self.fin_frame[d] = Some(frame);
        }
        if matches!(self.app, App::Other) {
            for h in &mut self.half {
                h.discard_held();
            }
        }
    }

    /// Delivers what is still held (holes become gaps). Called once, at the end.
    pub fn flush(&mut self) {
        let Conn {
            half,
            app,
            last_frame,
            ..
        } = self;
        for (d, h) in half.iter_mut().enumerate() {
            h.flush(&mut |ev| on_event(app, d, ev, *last_frame, usize::MAX));
        }
    }

    /// Gaps declared in both directions, and their bytes.
    pub fn gap_counters(&self) -> (u64, u64) {
        self.half.iter().fold((0, 0), |(g, b), h| {
            (g + h.counters.gaps as u64, b + h.counters.gap_bytes)
        })
    }

    /// The session record, if this connection is a WebSocket session.
    pub fn record(mut self, evicted: bool) -> Option<SessionRecord> {
        self.flush();
        let App::WebSocket {
            client_is_lo,
            session,
        } = self.app
        else {
            return None;
        };
        let s = *session;
        let (c, sv) = if client_is_lo { (0, 1) } else { (1, 0) };
        let side = |d: usize| if d == c { Side::Client } else { Side::Server };
        let (client, server) = if client_is_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };

        let mut anomalies = s.anomalies;
        anomalies.union(s.client.anomalies);
        anomalies.union(s.server.anomalies);
        let mut exact = !s.inexact && !s.client.inexact && !s.server.inexact;
        for h in &self.half {
            let k = &h.counters;
            if k.gaps > 0 {
                anomalies.insert(Anomaly::Gap);
            }
            if k.cut_bytes > 0 {
                anomalies.insert(Anomaly::CutOffPacket);
            }
            if k.ooo_overflows > 0 {
                anomalies.insert(Anomaly::ReassemblyLimit);
            }
            if k.out_of_window > 0 {
                anomalies.insert(Anomaly::OutOfWindow);
                exact = false;
            }
        }
        if evicted {
            anomalies.insert(Anomaly::Evicted);
            exact = false;
        }

        let (client_side, server_side) = (s.client.stats, s.server.stats);
        let first_close_by = match (&client_side.close, &server_side.close) {
            (Some(a), Some(b)) => Some(if a.frame <= b.frame {
                Side::Client
            } else {
                Side::Server
            }),
            (Some(_), None) => Some(Side::Client),
            (None, Some(_)) => Some(Side::Server),
            (None, None) => None,
        };
        // Who ended TCP first: the earliest FIN or RST frame.
        let end_frame = |d: usize| match (self.fin_frame[d], self.rst_frame[d]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let tcp_end_by = match (end_frame(c), end_frame(sv)) {
            (Some(a), Some(b)) => Some(if a <= b { side(c) } else { side(sv) }),
            (Some(_), None) => Some(side(c)),
            (None, Some(_)) => Some(side(sv)),
            (None, None) => None,
        };
        let tcp_end = if self.rst_frame.iter().any(Option::is_some) {
            TcpEnd::Rst
        } else if self.fin_frame.iter().any(Option::is_some) {
            TcpEnd::Fin
        } else {
            TcpEnd::Open
        };
        let http_status = s.response.as_ref().map(|r| r.status);
        let closes = client_side.close.is_some() as u8 + server_side.close.is_some() as u8;
        let outcome = if http_status.is_some_and(|st| st != 101)
            || (http_status.is_none() && tcp_end != TcpEnd::Open)
        {
            Outcome::Rejected
        } else if closes == 2 {
            Outcome::Clean
        } else if tcp_end == TcpEnd::Rst {
            Outcome::Reset
        } else if tcp_end == TcpEnd::Fin {
            if closes == 1 {
                Outcome::UnansweredClose
            } else {
                Outcome::NoCloseFrame
            }
        } else {
            Outcome::OpenAtEnd
        };
        // RFC 6455 §7.1.5: the code of the first Close frame (1005 if it had none), or 1006
        // when the connection closed without any Close frame.
        let first_close = match first_close_by {
            Some(Side::Client) => client_side.close.as_ref(),
            Some(Side::Server) => server_side.close.as_ref(),
            None => None,
        };
        let close_code = match (outcome, first_close) {
            (_, Some(cl)) => Some(cl.code.unwrap_or(1005)),
            (_, None) if tcp_end != TcpEnd::Open => Some(1006),
            _ => None,
        };
        let resp = s.response.unwrap_or_default();
        Some(SessionRecord {
            first_frame: self.first_frame,
            tcp_stream: self.tcp_stream,
            client,
            server,
            start_ns: self.first_ts,
            end_ns: self.last_ts,
            packets: self.packets,
            http_status,
            host: s.request.host,
            path: s.request.path,
            origin: s.request.origin,
            user_agent: s.request.user_agent,
            subprotocol: resp.protocol,
            extensions: resp.extensions,
            client_side,
            server_side,
            first_close_by,
            close_code,
            tcp_end,
            tcp_end_by,
            outcome,
            exact,
            anomalies,
        })
    }
}

/// Hands one reassembled event of direction `d` to the application layer.
fn on_event(app: &mut App, d: usize, ev: Event<'_>, frame: u64, max_head: usize) {
    let from_lo = d == 0;
    match app {
        App::Other => {}
        App::Unknown => match ev {
            Event::Data(bytes) => {
                if handshake::may_be_get(bytes) {
                    *app = App::Request {
                        client_is_lo: from_lo,
                        head: Vec::new(),
                    };
                    on_event(app, d, Event::Data(bytes), frame, max_head);
                } else {
                    *app = App::Other;
                }
            }
            // A connection whose first bytes are missing cannot be recognised.
            Event::Gap(_) => *app = App::Other,
        },
        App::Request { client_is_lo, head } => {
            if *client_is_lo != from_lo {
                // The server spoke before the request was complete: not HTTP as we know it.
                *app = App::Other;
                return;
            }
            let bytes = match ev {
                Event::Data(b) => b,
                Event::Gap(_) => {
                    // The request was cut off: keep what its whole lines say, and let the
                    // response decide.
                    let Some(req) =
                        handshake::parse_head_prefix(head).and_then(|h| handshake::request(&h))
                    else {
                        *app = App::Other;
                        return;
                    };
                    let client_is_lo = *client_is_lo;
                    *app = App::WebSocket {
                        client_is_lo,
                        session: Box::new(WsSession::from_cut_request(req, max_head)),
                    };
                    return;
                }
            };
            let was_empty = head.is_empty();
            if !was_empty {
                head.extend_from_slice(bytes);
            }
            let src: &[u8] = if was_empty { bytes } else { head };
            let parsed = match parse_head(src) {
                Ok(Some((n, h))) => Ok(Some((handshake::request(&h), src[n..].to_vec()))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match parsed {
                Ok(Some((Some(req), rest))) if req.upgrade_websocket => {
                    let client_is_lo = *client_is_lo;
                    let mut session = Box::new(WsSession::new(req, max_head));
                    if !rest.is_empty() {
                        session.client_data(&rest, frame);
                    }
                    *app = App::WebSocket {
                        client_is_lo,
                        session,
                    };
                }
                Ok(Some(_)) | Err(_) => *app = App::Other,
                Ok(None) => {
                    if was_empty {
                        head.extend_from_slice(bytes);
                    }
                    if head.len() > max_head || !handshake::may_be_get(head) {
                        *app = App::Other;
                    }
                }
            }
        }
        App::WebSocket {
            client_is_lo,
            session,
        } => {
            let client = *client_is_lo == from_lo;
            match (ev, client) {
                (Event::Data(b), true) => session.client_data(b, frame),
                (Event::Data(b), false) => session.server_data(b, frame),
                (Event::Gap(n), true) => session.client_gap(n, frame),
                (Event::Gap(n), false) => session.server_gap(n, frame),
            }
        }
    }
}
