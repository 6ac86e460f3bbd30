//! Crowds of connections, for memory measurements: many connections open at once, streamed
//! packet by packet as pcap bytes (a [`Read`]), so that a million of them need no file.
//!
//! * [`CrowdKind::SynOnly`]: each connection is one SYN that is never answered (a scan or
//!   a SYN flood), 1 µs apart.
//! * [`CrowdKind::OpenSessions`]: each connection is a WebSocket session that stays open:
//!   the TCP handshake, a browser-like Upgrade request, `101`, one text message each way,
//!   the last ACK; no Close frame, no FIN. Sessions start 10 µs apart, one after the other.
//! * [`CrowdKind::Holding`]: sessions that all hold out-of-order data at once. Three
//!   rounds over all sessions: (1) handshake; (2) the client sends one binary message of
//!   `bytes` in 1000-byte segments, all but the first, which the capture sees late (the
//!   analyzer must hold the rest); (3) the first segment, the server's ACK, a Close each
//!   way (1000), FIN each way. Round `r` of session `i` is at T0 + r s + i·10 µs.
//!
//! * [`CrowdKind::HalfHeads`]: connections whose Upgrade request head never ends: the TCP
//!   handshake, then `bytes` of request head (a `GET` line and `X-Pad` fields), no blank
//!   line, nothing more. 1 µs apart.
//!
//! Every 4-tuple is distinct. Deterministic: the same configuration gives the same bytes.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::packet::{build_tcp, IpOpts, TcpFields, ACK, FIN, PSH, SYN};
use crate::pcap::{pcap_global_header, Link, PcapOpts};
use crate::ws::{self, ClientHandshake};
use crate::Rng;

/// What each connection of the crowd does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrowdKind {
    SynOnly,
    OpenSessions,
    /// As [`CrowdKind::OpenSessions`], but each session's Host is its own (`s{i}.example.com`):
    /// no two sessions share their handshake texts (the worst case for interning them).
    OpenSessionsDistinct,
    /// Each client message has this many payload bytes (1000 of them sent late).
    Holding {
        bytes: u32,
    },
    /// Each request head has this many bytes, and no end.
    HalfHeads {
        bytes: u32,
    },
}

/// A crowd's shape.
#[derive(Clone, Copy, Debug)]
pub struct Crowd {
    pub kind: CrowdKind,
    /// Connections in all.
    pub connections: u64,
    /// Every `v6_every`-th connection is IPv6 (0: none).
    pub v6_every: u64,
    pub seed: u64,
}

/// Capture time of the first packet (2024-01-01T00:00:00Z), in ns.
const T0: u64 = 1_704_067_200_000_000_000;

/// The crowd's capture, as pcap bytes (Ethernet, µs timestamps), produced on demand.
pub struct CrowdCapture {
    crowd: Crowd,
    /// Next (round, connection).
    round: u64,
    next: u64,
    rng: Rng,
    link: Link,
    buf: Vec<u8>,
    pos: usize,
}

impl CrowdCapture {
    pub fn new(crowd: Crowd) -> Self {
        CrowdCapture {
            crowd,
            round: 0,
            next: 0,
            rng: Rng::new(crowd.seed),
            link: Link::ethernet(),
            buf: pcap_global_header(Link::ethernet().linktype(), &PcapOpts::default()),
            pos: 0,
        }
    }

    fn endpoints(&self, i: u64) -> (SocketAddr, SocketAddr) {
        let v6 = self.crowd.v6_every > 0 && i % self.crowd.v6_every == 0;
        let port = 10_000 + (i % 50_000) as u16;
        if v6 {
            let c = Ipv6Addr::from(0x2001_0db8_0001_u128 << 80 | i as u128);
            let s = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
            (
                SocketAddr::new(IpAddr::V6(c), port),
                SocketAddr::new(IpAddr::V6(s), 80),
            )
        } else {
            let c = Ipv4Addr::from(0x6440_0000_u32 + (i / 50_000) as u32);
            (
                SocketAddr::new(IpAddr::V4(c), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
            )
        }
    }

    fn packet(&mut self, ts_ns: u64, from_client: bool, ip: &[u8]) {
        let frame = self.link.frame(ip, from_client);
        let us = ts_ns / 1000;
        self.buf
            .extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&frame);
    }

    fn rounds(&self) -> u64 {
        match self.crowd.kind {
            CrowdKind::Holding { .. } => 3,
            _ => 1,
        }
    }

    /// Appends round `round` of session `i` of a `Holding` crowd.
    fn holding(&mut self, round: u64, i: u64, bytes: u32) {
        let (c, s) = self.endpoints(i);
        let o = IpOpts::default();
        let tcp = |seq: u32, ack: u32, flags: u8| TcpFields {
            seq,
            ack,
            flags,
            window: 65_535,
            options: Vec::new(),
        };
        // Everything of session i follows from i, whatever the round.
        let mut rng = Rng::new(self.crowd.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (cisn, sisn) = (rng.next_u64() as u32, rng.next_u64() as u32);
        let hs = ClientHandshake::new("hold.example", "/h", &mut rng);
        let req = hs.to_bytes();
        let resp = ws::server_accept(&hs.key, None);
        let mask = (rng.next_u64() as u32).to_be_bytes();
        let mut payload = vec![0u8; bytes as usize];
        rng.fill(&mut payload);
        let msg = ws::encode_frame(true, 0, ws::OP_BINARY, Some(mask), &payload);
        let c_close = ws::encode_frame(
            true,
            0,
            ws::OP_CLOSE,
            Some(mask),
            &ws::close_payload(Some(1000), ""),
        );
        let s_close = ws::encode_frame(
            true,
            0,
            ws::OP_CLOSE,
            None,
            &ws::close_payload(Some(1000), ""),
        );
        let (c1, s1) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
        let c2 = c1.wrapping_add(req.len() as u32);
        let s2 = s1.wrapping_add(resp.len() as u32);
        let c3 = c2.wrapping_add(msg.len() as u32);
        let c4 = c3.wrapping_add(c_close.len() as u32);
        let s3 = s2.wrapping_add(s_close.len() as u32);
        let mut pkts: Vec<(bool, TcpFields, Vec<u8>)> = Vec::new();
        match round {
            0 => {
                pkts.push((true, tcp(cisn, 0, SYN), vec![]));
                pkts.push((false, tcp(sisn, c1, SYN | ACK), vec![]));
                pkts.push((true, tcp(c1, s1, ACK), vec![]));
                pkts.push((true, tcp(c1, s1, PSH | ACK), req));
                pkts.push((false, tcp(s1, c2, PSH | ACK), resp));
            }
            1 => {
                for (k, part) in msg.chunks(1000).enumerate().skip(1) {
                    let seq = c2.wrapping_add(k as u32 * 1000);
                    pkts.push((true, tcp(seq, s2, ACK), part.to_vec()));
                }
            }
            _ => {
                let first = msg[..1000.min(msg.len())].to_vec();
                pkts.push((true, tcp(c2, s2, PSH | ACK), first));
                pkts.push((false, tcp(s2, c3, ACK), vec![]));
                pkts.push((true, tcp(c3, s2, PSH | ACK), c_close));
                pkts.push((false, tcp(s2, c4, PSH | ACK), s_close));
                pkts.push((true, tcp(c4, s3, FIN | ACK), vec![]));
                pkts.push((false, tcp(s3, c4.wrapping_add(1), FIN | ACK), vec![]));
                pkts.push((
                    true,
                    tcp(c4.wrapping_add(1), s3.wrapping_add(1), ACK),
                    vec![],
                ));
            }
        }
        let t = T0 + round * 1_000_000_000 + i * 10_000;
        for (k, (from_client, f, payload)) in pkts.iter().enumerate() {
            let (src, dst) = if *from_client { (c, s) } else { (s, c) };
            let ip = build_tcp(src, dst, f, payload, &o);
            self.packet(t + k as u64, *from_client, &ip);
        }
    }

    /// Appends connection `i`'s packets to the buffer.
    fn connection(&mut self, i: u64) {
        let (c, s) = self.endpoints(i);
        let o = IpOpts::default();
        let tcp = |seq: u32, ack: u32, flags: u8| TcpFields {
            seq,
            ack,
            flags,
            window: 65_535,
            options: Vec::new(),
        };
        let cisn = self.rng.next_u64() as u32;
        match self.crowd.kind {
            CrowdKind::SynOnly => {
                let ip = build_tcp(c, s, &tcp(cisn, 0, SYN), &[], &o);
                self.packet(T0 + i * 1_000, true, &ip);
            }
            CrowdKind::Holding { bytes } => self.holding(self.round, i, bytes),
            CrowdKind::HalfHeads { bytes } => {
                let sisn = self.rng.next_u64() as u32;
                let (c1, s1) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
                let mut head = b"GET /slow HTTP/1.1\r\nHost: slow.example\r\n".to_vec();
                while head.len() + 100 <= bytes as usize {
                    head.extend_from_slice(b"X-Pad: ");
                    head.extend_from_slice(&[b'a'; 91]);
                    head.extend_from_slice(b"\r\n");
                }
                let t = T0 + i * 1_000;
                let syn = build_tcp(c, s, &tcp(cisn, 0, SYN), &[], &o);
                let syn_ack = build_tcp(s, c, &tcp(sisn, c1, SYN | ACK), &[], &o);
                let ack = build_tcp(c, s, &tcp(c1, s1, ACK), &[], &o);
                self.packet(t, true, &syn);
                self.packet(t + 1, false, &syn_ack);
                self.packet(t + 2, true, &ack);
                for (k, part) in head.chunks(1400).enumerate() {
                    let seq = c1.wrapping_add(k as u32 * 1400);
                    let ip = build_tcp(c, s, &tcp(seq, s1, PSH | ACK), part, &o);
                    self.packet(t + 3 + k as u64, true, &ip);
                }
            }
            CrowdKind::OpenSessions | CrowdKind::OpenSessionsDistinct => {
                let sisn = self.rng.next_u64() as u32;
                let host = match self.crowd.kind {
                    CrowdKind::OpenSessionsDistinct => format!("s{i}.example.com"),
                    _ => "chat.example.com".to_string(),
                };
                let hs = ClientHandshake::browser(&host, "/socket?room=7", &mut self.rng);
                let req = hs.to_bytes();
                let resp = ws::server_accept(&hs.key, Some("chat"));
                let mask = (self.rng.next_u64() as u32).to_be_bytes();
                let c_msg = ws::encode_frame(true, 0, ws::OP_TEXT, Some(mask), b"{\"join\":7}");
                let s_msg = ws::encode_frame(true, 0, ws::OP_TEXT, None, b"{\"ok\":true}");
                let (c1, s1) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
                let (c2, s2) = (
                    c1.wrapping_add(req.len() as u32),
                    s1.wrapping_add(resp.len() as u32),
                );
                let (c3, s3) = (
                    c2.wrapping_add(c_msg.len() as u32),
                    s2.wrapping_add(s_msg.len() as u32),
                );
                let pkts: [(bool, TcpFields, &[u8]); 8] = [
                    (true, tcp(cisn, 0, SYN), &[]),
                    (false, tcp(sisn, c1, SYN | ACK), &[]),
                    (true, tcp(c1, s1, ACK), &[]),
                    (true, tcp(c1, s1, PSH | ACK), &req),
                    (false, tcp(s1, c2, PSH | ACK), &resp),
                    (true, tcp(c2, s2, PSH | ACK), &c_msg),
                    (false, tcp(s2, c3, PSH | ACK), &s_msg),
                    (true, tcp(c3, s3, ACK), &[]),
                ];
                for (k, (from_client, t, payload)) in pkts.iter().enumerate() {
                    let (src, dst) = if *from_client { (c, s) } else { (s, c) };
                    let ip = build_tcp(src, dst, t, payload, &o);
                    self.packet(T0 + i * 10_000 + k as u64 * 1_000, *from_client, &ip);
                }
            }
        }
    }
}

impl Read for CrowdCapture {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.crowd.connections && self.round + 1 < self.rounds() {
                self.round += 1;
                self.next = 0;
            }
            if self.next == self.crowd.connections {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            // A few hundred connections at a time keeps the buffer small and the calls few.
            let stop = (self.next + 256).min(self.crowd.connections);
            while self.next < stop {
                self.connection(self.next);
                self.next += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(kind: CrowdKind, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        CrowdCapture::new(Crowd {
            kind,
            connections: n,
            v6_every: 3,
            seed: 1,
        })
        .read_to_end(&mut v)
        .unwrap();
        v
    }

    #[test]
    fn deterministic_and_sized() {
        let a = bytes(CrowdKind::SynOnly, 1000);
        assert_eq!(a, bytes(CrowdKind::SynOnly, 1000));
        // Global header, then one SYN record per connection (Ethernet frames of >= 60 bytes).
        assert!(a.len() > 24 + 1000 * (16 + 60));
        let b = bytes(CrowdKind::OpenSessions, 10);
        assert!(b.len() > 10 * 8 * (16 + 60));
        assert_eq!(&b[..24], &a[..24]);
    }
}
