//! Mid-stream pickup: a connection whose start was not captured (rotated files, ring
//! buffers, tcpdump started late) is recognised as WebSocket by its framing alone
//! (RFC 6455 §5), strictly enough that HTTP, TLS, SSH, Redis, MQTT and random bytes are
//! not taken for it.
//!
//! Each direction looks for a *chain*: frames that follow one another without a byte
//! between them, starting at the first byte of a segment. A chain breaks at the first
//! header that this side could not have sent:
//!
//! - an undefined opcode, RSV2 or RSV3, RSV1 anywhere but a data message's first frame;
//! - the mask bit not the same on every frame (client frames are masked, server frames
//!   not, §5.1);
//! - a control frame over 125 bytes or fragmented (§5.5), a length not in its minimal
//!   form or with the 64-bit MSB set (§5.2);
//! - fragmentation out of order (§5.4): a new message inside a fragmented one, a
//!   continuation after a final frame;
//! - a Close frame of one byte or with a status code not allowed on the wire (§7.4), or
//!   a data frame after this side's Close (§5.5.1).
//!
//! The connection is WebSocket when, within the first [`MIDSTREAM_PROBE_BYTES`] of each
//! direction, either
//!
//! - one direction has a chain of at least 6 frames, at least 2 of them ending exactly at
//!   a segment's end, and the other direction is silent or has a chain with the other
//!   mask bit (at least 8 and 4 when the other direction spoke without a frame start yet:
//!   it may be inside a long message begun before the capture); or
//! - both directions have chains with opposite mask bits, each with a frame ending at a
//!   segment's end, whose evidence adds up to at least 10 (a frame 1, a frame ending at a
//!   segment's end 2 more, a Close frame with a valid status code 2 more): e.g. a masked
//!   Close answered by an unmasked one, each a segment of its own; or
//! - one direction *ended with its closing handshake*: everything it sent is a chain of
//!   frames whose last is a Close frame with a valid status code and a UTF-8 reason
//!   (§7.1.6), ending with a segment's end, and then its FIN, while the other direction
//!   sent nothing (or a chain with the other mask bit). A connection open before the
//!   capture and closed during it (an idle timeout's Close, answered by a RST) shows only
//!   this.
//!
//! The masked direction is the client. Only connections whose SYN was not captured (or
//! whose first bytes were lost) are probed: a connection seen from its start carries
//! its handshake. The chains' bytes are held (up to the probe's window) and handed to the
//! session once it is recognised, so that counts start at the first frame of the chain.

use super::reassembly::Event;
use crate::config::MIDSTREAM_PROBE_BYTES;
use crate::record::{At, Side};
use crate::ws::close::{is_valid_close_code, unmask, MAX_CONTROL_PAYLOAD};
use crate::ws::frame::{frame_header, opcode, FrameHeader, HeaderCarry};
use crate::ws::session::Lent;
use crate::ws::WsSession;

/// One direction's chain of frames.
#[derive(Debug, Default)]
struct Chain {
    active: bool,
    /// Where it started in the direction (bytes seen before it).
    start: u64,
    masked: bool,
    frames: u32,
    exact_ends: u32,
    valid_closes: u32,
    /// Inside a fragmented message: `None` at the chain's start (unknown).
    in_message: Option<bool>,
    closed: bool,
    /// The current frame, and its payload bytes not yet passed.
    current: Option<FrameHeader>,
    remaining: u64,
    /// The first two payload bytes of a Close frame (its status code), as received.
    close_code: [u8; 2],
    close_have: u8,
    /// Header bytes carried over from the previous segment.
    carry: HeaderCarry,
}

impl Chain {
    /// Evidence this chain gives.
    fn score(&self) -> u32 {
        self.frames + 2 * self.exact_ends + 2 * self.valid_closes
    }

    /// Whether `h` may follow in this chain (see the module's rules).
    fn accepts(&self, h: &FrameHeader) -> bool {
        let control = opcode::is_control(h.opcode);
        if opcode::is_reserved(h.opcode)
            || h.rsv & 0b011 != 0
            || h.len_msb_set
            || h.non_minimal_len
            || (self.frames > 0 && h.masking_key.is_some() != self.masked)
        {
            return false;
        }
        if control {
            return h.fin
                && h.rsv == 0
                && h.payload_len <= MAX_CONTROL_PAYLOAD as u64
                && !(h.opcode == opcode::CLOSE && h.payload_len == 1);
        }
        if self.closed {
            return false;
        }
        match h.opcode {
            opcode::CONTINUATION => h.rsv == 0 && self.in_message != Some(false),
            _ => self.in_message != Some(true),
        }
    }

    /// Passes over one segment's bytes; returns false when the chain breaks.
    fn segment(&mut self, mut d: &[u8]) -> bool {
        while !d.is_empty() {
            if let Some(h) = self.current {
                let n = self.remaining.min(d.len() as u64) as usize;
                if h.opcode == opcode::CLOSE && self.close_have < 2 {
                    let pos = (h.payload_len - self.remaining) as usize;
                    for (i, &b) in d[..n].iter().enumerate() {
                        if pos + i < 2 {
                            self.close_code[pos + i] = b;
                            self.close_have += 1;
                        }
                    }
                }
                self.remaining -= n as u64;
                d = &d[n..];
                if self.remaining == 0 && !self.end_frame(d.is_empty()) {
                    return false;
                }
                continue;
            }
            // A header, perhaps begun in the previous segment.
            let h = if !self.carry.is_empty() {
                match self.carry.complete(&mut d) {
                    Some(h) => h,
                    None => continue,
                }
            } else {
                match frame_header(d) {
                    Ok((rest, h)) => {
                        d = rest;
                        h
                    }
                    Err(_) => {
                        // Judge what is there now: the first byte must already fit.
                        let fits = frame_header(&[d[0], 0]).is_ok_and(|(_, h)| {
                            self.accepts(&FrameHeader {
                                masking_key: if self.frames > 0 && self.masked {
                                    Some([0; 4])
                                } else {
                                    None
                                },
                                ..h
                            })
                        });
                        self.carry.keep(d);
                        return fits;
                    }
                }
            };
            if !self.accepts(&h) {
                return false;
            }
            if self.frames == 0 {
                self.masked = h.masking_key.is_some();
            }
            self.current = Some(h);
            self.remaining = h.payload_len;
            self.close_have = 0;
            if h.payload_len == 0 && !self.end_frame(d.is_empty()) {
                return false;
            }
        }
        true
    }

    /// The current frame ended (`at_segment_end`: with the segment's last byte).
    fn end_frame(&mut self, at_segment_end: bool) -> bool {
        let Some(h) = self.current.take() else {
            return true;
        };
        self.frames += 1;
        self.exact_ends += at_segment_end as u32;
        match h.opcode {
            opcode::CLOSE => {
                self.closed = true;
                if h.payload_len >= 2 {
                    let mut code = self.close_code;
                    if let Some(k) = h.masking_key {
                        code[0] ^= k[0];
                        code[1] ^= k[1];
                    }
                    if !is_valid_close_code(u16::from_be_bytes(code)) {
                        return false;
                    }
                    self.valid_closes += 1;
                }
            }
            opcode::TEXT | opcode::BINARY | opcode::CONTINUATION => {
                self.in_message = Some(!h.fin);
            }
            _ => {}
        }
        true
    }
}

/// One direction of a probed connection.
#[derive(Debug, Default)]
struct Direction {
    /// Bytes of this direction seen (gaps included).
    seen: u64,
    chain: Chain,
    /// The chain's bytes, and where each segment of them ended (and its packet).
    held: Vec<u8>,
    segments: Vec<(usize, At)>,
    /// Every byte up to this direction's FIN has arrived.
    finished: bool,
}

impl Direction {
    fn exhausted(&self) -> bool {
        self.seen >= MIDSTREAM_PROBE_BYTES
    }

    fn data(&mut self, d: &[u8], at: At) {
        if !self.chain.active {
            // A chain may start only where a segment does.
            self.chain = Chain {
                active: true,
                start: self.seen,
                ..Chain::default()
            };
            self.held.clear();
            self.segments.clear();
        }
        self.seen += d.len() as u64;
        // Chains are followed past the window too (bounded), but only for handing their
        // frames to a session recognised by the other direction.
        let fits = self.held.len() + d.len() <= 2 * MIDSTREAM_PROBE_BYTES as usize;
        if fits && self.chain.segment(d) {
            self.held.extend_from_slice(d);
            self.segments.push((self.held.len(), at));
        } else {
            self.chain.active = false;
            self.held = Vec::new();
            self.segments = Vec::new();
        }
    }

    fn gap(&mut self, n: u64) {
        self.seen += n;
        self.chain.active = false;
        self.held = Vec::new();
        self.segments = Vec::new();
    }

    /// The chain, if it is alive and has frames.
    fn chain(&self) -> Option<&Chain> {
        (self.chain.active && self.chain.frames > 0).then_some(&self.chain)
    }

    /// The chain, if it may count as evidence: it started within the window.
    fn evidence(&self) -> Option<&Chain> {
        self.chain().filter(|c| c.start < MIDSTREAM_PROBE_BYTES)
    }

    /// This direction ended with its closing handshake (see the module's rules): all it
    /// sent, from its first byte to its FIN, is one chain, held whole, whose last frame
    /// is a Close with a valid status code and a UTF-8 reason, ending with a segment.
    fn ended_with_close(&self) -> Option<&Chain> {
        let c = self.chain()?;
        if !self.finished || c.start != 0 || !c.closed || c.valid_closes == 0 {
            return None;
        }
        if self.held.len() as u64 != self.seen {
            return None;
        }
        // All it sent is held; `last_close` reads it as whole frames only, so the last
        // one ended with a segment (a byte after it would start another, left open).
        let (code, reason) = last_close(&self.held)?;
        (is_valid_close_code(code) && std::str::from_utf8(&reason).is_ok()).then_some(c)
    }
}

/// The status code and reason of the last frame of `bytes` (whole frames) when it is a
/// Close frame with a status code, unmasked (§5.3).
fn last_close(mut bytes: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut last = None;
    while !bytes.is_empty() {
        let (rest, h) = frame_header(bytes).ok()?;
        let n = usize::try_from(h.payload_len)
            .ok()
            .filter(|&n| n <= rest.len())?;
        last = Some((h, &rest[..n]));
        bytes = &rest[n..];
    }
    let (h, payload) = last?;
    if h.opcode != opcode::CLOSE || payload.len() < 2 {
        return None;
    }
    let mut p = payload.to_vec();
    if let Some(k) = h.masking_key {
        unmask(&mut p, k, 0);
    }
    Some((u16::from_be_bytes([p[0], p[1]]), p.split_off(2)))
}

/// What the probe concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not enough evidence yet.
    Undecided,
    /// WebSocket; the client is the side that sends from `key.lo` when true.
    WebSocket { client_is_lo: bool },
    /// Not WebSocket (or not recognisable within the probe's window).
    Not,
}

/// A connection being probed for WebSocket framing, per direction (0: from `key.lo`).
#[derive(Debug, Default)]
pub struct Probe {
    dirs: [Direction; 2],
}

impl Probe {
    /// Takes one reassembled event of a direction and says what is known now.
    pub fn on_event(&mut self, from_lo: bool, ev: Event<'_>, at: At) -> Decision {
        let d = &mut self.dirs[if from_lo { 0 } else { 1 }];
        match ev {
            Event::Data(b) => d.data(b, at),
            Event::Gap(n) => d.gap(n),
        }
        self.decide()
    }

    /// Every byte of a direction up to its FIN has arrived: a closing handshake may now
    /// decide (see the module's rules).
    pub fn finished(&mut self, from_lo: bool) -> Decision {
        self.dirs[if from_lo { 0 } else { 1 }].finished = true;
        self.decide()
    }

    /// A direction shows recognisable frames: a live chain that started in the probe's
    /// window (the connection is not given up on while it may still decide by it).
    pub fn has_evidence(&self) -> bool {
        self.dirs.iter().any(|d| d.evidence().is_some())
    }

    /// The chains' bytes held (capacity), for the memory budget.
    pub fn memory_charge(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| d.held.capacity() + d.segments.capacity() * std::mem::size_of::<(usize, At)>())
            .sum()
    }

    /// The memory budget is spent: the chains are forgotten with their bytes (as after a
    /// gap); a new chain may start at the next segment.
    pub fn release_memory(&mut self) {
        for d in &mut self.dirs {
            d.chain.active = false;
            d.held = Vec::new();
            d.segments = Vec::new();
        }
    }

    fn decide(&self) -> Decision {
        let [lo, hi] = &self.dirs;
        // Both directions framed, with opposite mask bits.
        if let (Some(a), Some(b)) = (lo.evidence(), hi.evidence()) {
            if a.masked != b.masked
                && a.exact_ends >= 1
                && b.exact_ends >= 1
                && a.score() + b.score() >= 10
            {
                return Decision::WebSocket {
                    client_is_lo: a.masked,
                };
            }
        }
        // One direction alone: 6 frames with 2 ending at a segment's end when the other
        // is silent or framed with the other mask bit; 8 and 4 when the other spoke but
        // shows no frame start yet (it may be inside a long message begun before the
        // capture).
        for (x, y, x_is_lo) in [(lo, hi, true), (hi, lo, false)] {
            let Some(c) = x.evidence() else { continue };
            let strong = match (y.chain(), y.evidence()) {
                (Some(o), _) if o.masked == c.masked => false,
                (_, Some(_)) => c.frames >= 6 && c.exact_ends >= 2,
                _ if y.seen == 0 => c.frames >= 6 && c.exact_ends >= 2,
                _ => c.frames >= 8 && c.exact_ends >= 4,
            };
            if strong {
                return Decision::WebSocket {
                    client_is_lo: c.masked == x_is_lo,
                };
            }
        }
        // One direction ended with its closing handshake; the other sent nothing, or
        // frames with the other mask bit.
        for (x, y, x_is_lo) in [(lo, hi, true), (hi, lo, false)] {
            let Some(c) = x.ended_with_close() else {
                continue;
            };
            let other_fits = match y.chain() {
                Some(o) => o.masked != c.masked && y.evidence().is_some(),
                None => y.seen == 0,
            };
            if other_fits {
                return Decision::WebSocket {
                    client_is_lo: c.masked == x_is_lo,
                };
            }
        }
        // Once both directions are past the window without a live chain, nothing more can
        // be learnt.
        let done = |d: &Direction| d.exhausted() && d.evidence().is_none();
        if done(lo) && done(hi) {
            return Decision::Not;
        }
        Decision::Undecided
    }

    /// The session this probe recognised: its chains' bytes are handed to it, so that
    /// counts start at each chain's first frame.
    /// `at`: the packet that decided it; `tl` what the connection lends to the session.
    pub fn into_session(
        self,
        client_is_lo: bool,
        inflate: bool,
        at: At,
        tl: &mut Lent,
    ) -> WsSession {
        let mut s = WsSession::midstream(inflate, at);
        for (i, d) in self.dirs.into_iter().enumerate() {
            if d.chain().is_none() {
                continue;
            }
            let side = if (i == 0) == client_is_lo {
                Side::Client
            } else {
                Side::Server
            };
            s.start_framing(side);
            let mut from = 0;
            for (end, at) in d.segments {
                let bytes = &d.held[from..end];
                match side {
                    Side::Client => s.client_data(bytes, at, tl),
                    Side::Server => {
                        s.server_data(bytes, at, tl);
                    }
                }
                from = end;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        crate::ws::frame::wire_frame(fin, 0, op, payload, key)
    }

    fn at(p: u64) -> At {
        At {
            packet: p,
            ts_ns: 0,
        }
    }

    /// Feeds (from_lo, segment) in order; returns the last decision.
    fn run(segments: &[(bool, Vec<u8>)]) -> Decision {
        run_then(segments, false)
    }

    /// [`run`], then (`fins`, when still undecided) both directions reach their FIN.
    fn run_then(segments: &[(bool, Vec<u8>)], fins: bool) -> Decision {
        let mut p = Probe::default();
        let mut last = Decision::Undecided;
        for (i, (lo, s)) in segments.iter().enumerate() {
            last = p.on_event(*lo, Event::Data(s), at(i as u64));
            if last != Decision::Undecided {
                return last;
            }
        }
        if fins {
            last = p.finished(true);
            if last == Decision::Undecided {
                last = p.finished(false);
            }
        }
        last
    }

    #[test]
    fn a_close_answered_by_a_close_is_enough() {
        // ndn-tools stream 0: a masked Close (1000) from one side, an unmasked one back.
        let k = Some([1, 2, 3, 4]);
        let got = run(&[
            (false, frame(true, opcode::CLOSE, &1000u16.to_be_bytes(), k)),
            (
                true,
                frame(true, opcode::CLOSE, &1000u16.to_be_bytes(), None),
            ),
        ]);
        assert_eq!(
            got,
            Decision::WebSocket {
                client_is_lo: false
            }
        );
    }

    /// A direction's Close frame and its FIN, the other side silent (an idle timeout's
    /// Close on a connection open before the capture, answered by a RST): WebSocket once
    /// the FIN is reached, not before; not with a reason that is not UTF-8, an invalid
    /// code, bytes before the frame, or a peer that sent something else.
    #[test]
    fn a_close_and_a_fin_alone_are_enough() {
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"Idle for 300204ms > 300000ms");
        let decide = |segments: &[(bool, Vec<u8>)], fin_of: bool| {
            let mut p = Probe::default();
            for (i, (lo, s)) in segments.iter().enumerate() {
                assert_eq!(
                    p.on_event(*lo, Event::Data(s), at(i as u64)),
                    Decision::Undecided
                );
            }
            p.finished(fin_of)
        };
        let server_close = frame(true, opcode::CLOSE, &close, None);
        assert_eq!(
            decide(&[(true, server_close.clone())], true),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        // A client's (masked) Close: the client is that side.
        let k = Some([1, 2, 3, 4]);
        assert_eq!(
            decide(&[(false, frame(true, opcode::CLOSE, &close, k))], false),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        // The other direction's FIN tells nothing.
        assert_eq!(
            decide(&[(true, server_close.clone())], false),
            Decision::Undecided
        );
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(b"\xff\xfe");
        assert_eq!(
            decide(
                &[(true, frame(true, opcode::CLOSE, &bad_reason, None))],
                true
            ),
            Decision::Undecided
        );
        assert_eq!(
            decide(
                &[(
                    true,
                    frame(true, opcode::CLOSE, &1005u16.to_be_bytes(), None)
                )],
                true
            ),
            Decision::Undecided
        );
        // The Close cut in two segments still ends with a segment; bytes before it
        // that are no frame do not.
        let (a, b) = server_close.split_at(10);
        assert_eq!(
            decide(&[(true, a.to_vec()), (true, b.to_vec())], true),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        // A frame left open at the FIN (a Ping's first byte after the Close) is no end.
        let mut open = server_close.clone();
        open.push(0x89);
        assert_ne!(
            decide(&[(true, open)], true),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        let mut junk = b"+OK\r\n".to_vec();
        junk.extend_from_slice(&server_close);
        assert_ne!(
            decide(&[(true, junk)], true),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        assert_ne!(
            decide(&[(false, b"PING\r\n".to_vec()), (true, server_close)], true),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
    }

    #[test]
    fn text_frames_each_way() {
        // ndpi websocket.pcap: server text, client text, server text, …
        let k = Some([9, 9, 9, 9]);
        let got = run(&[
            (
                true,
                frame(true, opcode::TEXT, b"{\"hello\":\"there\"}....", None),
            ),
            (false, frame(true, opcode::TEXT, b"{\"ping\":1}..", k)),
            (true, frame(true, opcode::TEXT, &[b'x'; 50], None)),
            (false, frame(true, opcode::TEXT, &[b'y'; 15], k)),
        ]);
        assert_eq!(
            got,
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        // Three frames in all are not enough.
        let got = run(&[
            (
                true,
                frame(true, opcode::TEXT, b"{\"hello\":\"there\"}....", None),
            ),
            (false, frame(true, opcode::TEXT, b"{\"ping\":1}..", k)),
            (true, frame(true, opcode::TEXT, &[b'x'; 50], None)),
        ]);
        assert_eq!(got, Decision::Undecided);
    }

    #[test]
    fn six_frames_one_way_with_the_other_side_silent() {
        let mut one = Vec::new();
        for i in 0..3 {
            one.extend(frame(true, opcode::BINARY, &[i; 300], None));
        }
        let mut two = Vec::new();
        for i in 0..3 {
            two.extend(frame(true, opcode::TEXT, &[b'a' + i; 20], None));
        }
        assert_eq!(
            run(&[(true, one.clone()), (true, two.clone())]),
            Decision::WebSocket {
                client_is_lo: false
            }
        );
        // Five frames are not enough alone.
        let short = two[..two.len() - 22].to_vec();
        assert_eq!(run(&[(true, one), (true, short)]), Decision::Undecided);
    }

    #[test]
    fn other_protocols_are_not_websocket() {
        let cases: Vec<Vec<u8>> = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            b"\x17\x03\x03\x00\x20abcdefghijabcdefghijabcdefghij12".to_vec(),
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_vec(),
            b"+OK\r\n".to_vec(),
            // MQTT CONNECT, CONNACK, PINGREQ, SUBACK
            b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd".to_vec(),
            b"\x20\x02\x00\x00".to_vec(),
            b"\xc0\x00".to_vec(),
            b"\x90\x03\x00\x01\x00".to_vec(),
        ];
        for c in &cases {
            let segs: Vec<(bool, Vec<u8>)> = (0..8).map(|i| (i % 2 == 0, c.clone())).collect();
            assert!(
                !matches!(run_then(&segs, true), Decision::WebSocket { .. }),
                "{c:?}"
            );
            let one_way: Vec<(bool, Vec<u8>)> = vec![(true, c.clone())];
            assert!(
                !matches!(run_then(&one_way, true), Decision::WebSocket { .. }),
                "{c:?}"
            );
            assert_ne!(
                run(&segs),
                Decision::WebSocket { client_is_lo: true },
                "{c:?}"
            );
            assert_ne!(
                run(&segs),
                Decision::WebSocket {
                    client_is_lo: false
                },
                "{c:?}"
            );
        }
    }

    #[test]
    fn random_bytes_are_not_websocket() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let segs: Vec<(bool, Vec<u8>)> = (0..12)
                .map(|i| {
                    let n = (next() % 1400 + 1) as usize;
                    (i % 3 != 0, (0..n).map(|_| next() as u8).collect())
                })
                .collect();
            assert!(
                !matches!(run_then(&segs, true), Decision::WebSocket { .. }),
                "{segs:?}"
            );
        }
    }
}
