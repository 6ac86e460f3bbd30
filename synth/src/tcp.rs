//! TCP connection simulator producing the segments a capture point sees.
//!
//! Impairments only change what the *capture* shows: the endpoints' state
//! (sequence numbers, ACKs) always reflects a connection where every byte
//! was eventually delivered.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::packet::{self, IpOpts, TcpFields, ACK, FIN, PSH, RST, SYN};

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that sent the SYN / HTTP request.
    Client,
    /// The listening side.
    Server,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// "client" / "server".
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    /// 0 for client, 1 for server.
    pub fn idx(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// A segment as seen by the capture.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Capture timestamp (ns since the Unix epoch).
    pub ts_ns: u64,
    /// Sender.
    pub from: Side,
    /// TCP header fields.
    pub tcp: TcpFields,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Capture impairments applied to one `send_*` call; indices are segment
/// indices within that call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impair {
    /// Lost before the capture point, retransmitted: seen later, out of order.
    DropRetransmit(usize),
    /// Never appears in the capture (the receiver got it and ACKs it).
    CaptureLoss(usize),
    /// Segment `i` and `i + 1` appear swapped.
    Reorder(usize),
    /// Segment `i` appears twice.
    Duplicate(usize),
    /// After segment `i + 1`, a retransmission covering the second half of
    /// `i` and the first half of `i + 1` appears.
    OverlapRetransmit(usize),
}

/// Per-endpoint state.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Address.
    pub addr: SocketAddr,
    /// Initial sequence number.
    pub isn: u32,
    /// Next sequence number to send.
    pub nxt: u32,
    /// Advertised window.
    pub window: u16,
}

/// A simulated TCP connection.
#[derive(Clone, Debug)]
pub struct TcpSim {
    /// Client endpoint.
    pub client: Endpoint,
    /// Server endpoint.
    pub server: Endpoint,
    /// Current time (ns); every emitted packet advances it.
    pub clock_ns: u64,
    /// Spacing between consecutive packets (ns).
    pub gap_ns: u64,
    /// Maximum segment size for data.
    pub mss: usize,
    /// The receiver ACKs after this many data segments.
    pub ack_every: usize,
    /// IP options for every packet.
    pub ip: IpOpts,
    /// TLS 1.3 over this connection (`wss://`): the handshake follows TCP's, and every
    /// `send*` after it carries the data in application data records.
    pub tls: Option<Box<crate::tls::TlsConn>>,
    out: VecDeque<Segment>,
}

#[derive(Clone, Copy)]
struct Ev {
    idx: usize,
    /// byte range within the send call
    start: usize,
    end: usize,
    captured: bool,
    delivers: bool,
}

impl TcpSim {
    /// New connection (nothing emitted yet).
    pub fn new(
        client: SocketAddr,
        server: SocketAddr,
        client_isn: u32,
        server_isn: u32,
        start_ns: u64,
    ) -> Self {
        TcpSim {
            client: Endpoint {
                addr: client,
                isn: client_isn,
                nxt: client_isn,
                window: 65535,
            },
            server: Endpoint {
                addr: server,
                isn: server_isn,
                nxt: server_isn,
                window: 65535,
            },
            clock_ns: start_ns,
            gap_ns: 20_000,
            mss: 1448,
            ack_every: 2,
            ip: IpOpts::default(),
            tls: None,
            out: VecDeque::new(),
        }
    }

    /// Endpoint of `s`.
    pub fn ep(&self, s: Side) -> &Endpoint {
        match s {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn ep_mut(&mut self, s: Side) -> &mut Endpoint {
        match s {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Advances the clock.
    pub fn wait(&mut self, ns: u64) {
        self.clock_ns += ns;
    }

    /// Emits a raw segment with explicit fields (ack = peer's `nxt` if ACK).
    pub fn emit(
        &mut self,
        from: Side,
        seq: u32,
        flags: u8,
        window: u16,
        options: Vec<u8>,
        payload: Vec<u8>,
    ) {
        let ack = if flags & ACK != 0 {
            self.ep(from.other()).nxt
        } else {
            0
        };
        self.emit_ack(from, seq, ack, flags, window, options, payload);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_ack(
        &mut self,
        from: Side,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: Vec<u8>,
        payload: Vec<u8>,
    ) {
        let ts_ns = self.clock_ns;
        self.clock_ns += self.gap_ns;
        self.out.push_back(Segment {
            ts_ns,
            from,
            tcp: TcpFields {
                seq,
                ack,
                flags,
                window,
                options,
            },
            payload,
        });
    }

    /// Pure ACK from `from`.
    pub fn ack(&mut self, from: Side) {
        let e = self.ep(from);
        let (seq, w) = (e.nxt, e.window);
        self.emit(from, seq, ACK, w, Vec::new(), Vec::new());
    }

    /// Three-way handshake; the SYN is sent `syn_count` times (1 s apart).
    pub fn handshake_with(&mut self, syn_count: usize) {
        let cisn = self.client.isn;
        for i in 0..syn_count.max(1) {
            if i > 0 {
                self.wait(1_000_000_000);
            }
            self.emit(
                Side::Client,
                cisn,
                SYN,
                64240,
                packet::mss_option(1460),
                Vec::new(),
            );
        }
        self.client.nxt = cisn.wrapping_add(1);
        self.wait(500_000);
        let sisn = self.server.isn;
        self.emit(
            Side::Server,
            sisn,
            SYN | ACK,
            65160,
            packet::mss_option(1460),
            Vec::new(),
        );
        self.server.nxt = sisn.wrapping_add(1);
        self.wait(500_000);
        self.ack(Side::Client);
        if let Some(mut t) = self.tls.take() {
            // TLS 1.3, 1-RTT (RFC 8446 §2).
            self.wait(200_000);
            let hello = t.client_hello();
            self.send_raw(Side::Client, &hello, &[]);
            self.wait(1_000_000);
            let flight = t.server_flight();
            self.send_raw(Side::Server, &flight, &[]);
            self.wait(1_000_000);
            let finished = t.client_finished();
            self.send_raw(Side::Client, &finished, &[]);
            self.tls = Some(t);
        }
    }

    /// Normal three-way handshake.
    pub fn handshake(&mut self) {
        self.handshake_with(1);
    }

    /// Connection already established when the capture starts: the next
    /// sequence numbers are the ISNs given to [`TcpSim::new`].
    pub fn skip_handshake(&mut self) {}

    /// Sends `data` split into MSS-sized segments.
    pub fn send(&mut self, from: Side, data: &[u8]) {
        self.send_impaired(from, data, &[]);
    }

    /// Number of segments `send` would use for `len` bytes.
    pub fn segment_count(&self, len: usize) -> usize {
        len.div_ceil(self.mss).max(1)
    }

    /// Sends `data` split by MSS with capture impairments (over TLS: sealed first, in
    /// records of at most 2^14 bytes).
    pub fn send_impaired(&mut self, from: Side, data: &[u8], impairs: &[Impair]) {
        match self.tls.as_mut().filter(|t| t.established(from.idx())) {
            Some(t) => {
                let sealed = t.seal(from.idx(), data);
                self.send_raw(from, &sealed, impairs);
            }
            None => self.send_raw(from, data, impairs),
        }
    }

    /// `data` as it is, split by MSS.
    fn send_raw(&mut self, from: Side, data: &[u8], impairs: &[Impair]) {
        let segs: Vec<&[u8]> = data.chunks(self.mss).collect();
        self.send_segments_raw(from, &segs, impairs);
    }

    /// Sends explicitly delimited segments with capture impairments (over TLS: each one
    /// sealed as one record, or more when longer than 2^14 bytes).
    pub fn send_segments(&mut self, from: Side, segs: &[&[u8]], impairs: &[Impair]) {
        match self.tls.as_mut().filter(|t| t.established(from.idx())) {
            Some(t) => {
                let sealed: Vec<Vec<u8>> = segs.iter().map(|s| t.seal(from.idx(), s)).collect();
                let refs: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
                self.send_segments_raw(from, &refs, impairs);
            }
            None => self.send_segments_raw(from, segs, impairs),
        }
    }

    fn send_segments_raw(&mut self, from: Side, segs: &[&[u8]], impairs: &[Impair]) {
        if segs.is_empty() {
            return;
        }
        let mut data = Vec::new();
        let mut evs = Vec::with_capacity(segs.len() + 4);
        for (idx, s) in segs.iter().enumerate() {
            let start = data.len();
            data.extend_from_slice(s);
            evs.push(Ev {
                idx,
                start,
                end: data.len(),
                captured: true,
                delivers: true,
            });
        }
        let n = segs.len();
        let pos = |evs: &Vec<Ev>, i: usize| evs.iter().position(|e| e.idx == i);
        let mut lost = Vec::new();
        for imp in impairs {
            match *imp {
                Impair::CaptureLoss(i) => lost.push(i),
                Impair::DropRetransmit(i) => {
                    if let Some(p) = pos(&evs, i) {
                        let mut re = evs[p];
                        evs[p].captured = false;
                        evs[p].delivers = false;
                        re.delivers = true;
                        let at = (p + 3).min(evs.len());
                        evs.insert(at, re);
                    }
                }
                Impair::Reorder(i) => {
                    if let (Some(a), Some(b)) = (pos(&evs, i), pos(&evs, i + 1)) {
                        evs.swap(a, b);
                    }
                }
                Impair::Duplicate(i) => {
                    if let Some(p) = pos(&evs, i) {
                        let d = evs[p];
                        evs.insert(p + 1, d);
                    }
                }
                Impair::OverlapRetransmit(i) => {
                    if i + 1 < n {
                        if let Some(p) = pos(&evs, i + 1) {
                            let a = evs.iter().find(|e| e.idx == i).copied().unwrap();
                            let b = evs[p];
                            let ov = Ev {
                                idx: usize::MAX,
                                start: (a.start + a.end) / 2,
                                end: (b.start + b.end).div_ceil(2),
                                captured: true,
                                delivers: true,
                            };
                            evs.insert(p + 1, ov);
                        }
                    }
                }
            }
        }
        for e in evs.iter_mut() {
            if lost.contains(&e.idx) {
                e.captured = false;
            }
        }
        let base = self.ep(from).nxt;
        let to = from.other();
        let mut received = vec![false; n];
        let mut contiguous = 0usize; // segments
        let mut acked_bytes = usize::MAX;
        let mut since_ack = 0;
        let wnd = self.ep(from).window;
        let last = evs.len() - 1;
        for (k, e) in evs.iter().enumerate() {
            if e.captured {
                let flags = if e.end == data.len() || k == last {
                    ACK | PSH
                } else {
                    ACK
                };
                let seq = base.wrapping_add(e.start as u32);
                self.emit(
                    from,
                    seq,
                    flags,
                    wnd,
                    Vec::new(),
                    data[e.start..e.end].to_vec(),
                );
            }
            if e.delivers && e.idx < n {
                received[e.idx] = true;
            }
            while contiguous < n && received[contiguous] {
                contiguous += 1;
            }
            since_ack += 1;
            if since_ack >= self.ack_every || k == last {
                since_ack = 0;
                let bytes = if contiguous == n {
                    data.len()
                } else {
                    evs.iter()
                        .find(|x| x.idx == contiguous)
                        .map_or(0, |x| x.start)
                };
                if bytes != acked_bytes && bytes > 0 {
                    acked_bytes = bytes;
                    let seq = self.ep(to).nxt;
                    let w = self.ep(to).window;
                    self.emit_ack(
                        to,
                        seq,
                        base.wrapping_add(bytes as u32),
                        ACK,
                        w,
                        Vec::new(),
                        Vec::new(),
                    );
                }
            }
        }
        self.ep_mut(from).nxt = base.wrapping_add(data.len() as u32);
        if acked_bytes != data.len() {
            self.ack(to);
        }
    }

    /// FIN from `from`, ACKed by the peer.
    pub fn fin(&mut self, from: Side) {
        let (seq, w) = (self.ep(from).nxt, self.ep(from).window);
        self.emit(from, seq, FIN | ACK, w, Vec::new(), Vec::new());
        self.ep_mut(from).nxt = seq.wrapping_add(1);
        self.ack(from.other());
    }

    /// RST from `from` (no answer).
    pub fn rst(&mut self, from: Side) {
        let seq = self.ep(from).nxt;
        self.emit(from, seq, RST | ACK, 0, Vec::new(), Vec::new());
    }

    /// Keep-alive probe from `from` (seq = nxt - 1, 0 or 1 garbage byte),
    /// answered by a duplicate ACK.
    pub fn keepalive(&mut self, from: Side, one_byte: bool) {
        let e = self.ep(from);
        let (seq, w) = (e.nxt.wrapping_sub(1), e.window);
        let payload = if one_byte { vec![0] } else { Vec::new() };
        self.emit(from, seq, ACK, w, Vec::new(), payload);
        self.wait(200_000);
        self.ack(from.other());
    }

    /// Zero-window episode before `from` sends data starting with
    /// `next_byte`: the peer advertises window 0, `from` sends two 1-byte
    /// zero-window probes (the byte is not consumed), then the window opens.
    /// The caller then sends the data normally (first byte retransmitted).
    pub fn zero_window_probe(&mut self, from: Side, next_byte: u8) {
        let to = from.other();
        let saved = self.ep(to).window;
        self.ep_mut(to).window = 0;
        self.ack(to);
        for _ in 0..2 {
            self.wait(200_000_000);
            let seq = self.ep(from).nxt;
            let w = self.ep(from).window;
            self.emit(from, seq, ACK, w, Vec::new(), vec![next_byte]);
            self.wait(100_000);
            self.ack(to);
        }
        self.ep_mut(to).window = saved;
        self.wait(50_000_000);
        self.ack(to);
    }

    /// Earliest queued timestamp.
    pub fn peek_ts(&self) -> Option<u64> {
        self.out.front().map(|s| s.ts_ns)
    }

    /// Pops the next captured segment.
    pub fn pop(&mut self) -> Option<Segment> {
        self.out.pop_front()
    }

    /// Number of queued segments.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Builds the IP packet for a segment of this connection.
    pub fn ip_packet(&self, s: &Segment) -> Vec<u8> {
        let (src, dst) = match s.from {
            Side::Client => (self.client.addr, self.server.addr),
            Side::Server => (self.server.addr, self.client.addr),
        };
        packet::build_tcp(src, dst, &s.tcp, &s.payload, &self.ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> TcpSim {
        TcpSim::new(
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            u32::MAX - 10,
            100,
            0,
        )
    }

    fn collect(t: &mut TcpSim, side: Side) -> Vec<(u32, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(s) = t.pop() {
            if s.from == side && !s.payload.is_empty() {
                v.push((s.tcp.seq, s.payload));
            }
        }
        v
    }

    #[test]
    fn handshake_and_wrap() {
        let mut t = sim();
        t.handshake();
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        t.send(Side::Client, &data);
        let segs = collect(&mut t, Side::Client);
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[0].0, u32::MAX - 9);
        assert_eq!(t.client.nxt, (u32::MAX - 9).wrapping_add(5000));
        let joined: Vec<u8> = segs.into_iter().flat_map(|s| s.1).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn impairments() {
        let mut t = sim();
        t.handshake();
        let data = vec![1u8; 1448 * 6];
        t.send_impaired(
            Side::Server,
            &data,
            &[
                Impair::CaptureLoss(2),
                Impair::Duplicate(4),
                Impair::Reorder(0),
            ],
        );
        let segs = collect(&mut t, Side::Server);
        assert_eq!(segs.len(), 6); // 6 - 1 lost + 1 dup
        assert_eq!(segs[0].0, 101 + 1448);
        let mut t = sim();
        t.handshake();
        t.send_impaired(
            Side::Server,
            &data,
            &[Impair::DropRetransmit(1), Impair::OverlapRetransmit(3)],
        );
        let segs = collect(&mut t, Side::Server);
        assert_eq!(segs.len(), 7);
        assert_eq!(segs[3].0, 101 + 1448); // retransmission seen late
        assert_eq!(t.server.nxt, 101 + 1448 * 6);
    }
}
