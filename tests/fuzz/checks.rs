//! Invariant checks shared by the cargo-fuzz targets (tests/fuzz/fuzz_targets/*.rs) and the
//! stable smoke tests (tests/props.rs). Each check takes raw bytes, derives whatever
//! structure it needs from them, runs one parser or state machine, and panics (assert!)
//! when an invariant breaks. Seeds in tests/fuzz/seeds/<target>/ are inputs to these
//! functions, byte for byte.
//!
//! Keep this file free of dependencies other than `wsclose` and `std`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Cursor;

use wsclose::capture::{Batch, Capture, FileReader, Fill};
use wsclose::config::Limits;
use wsclose::flow::reassembly::{Event, HalfStream, ReassemblyLimits};
use wsclose::pipeline::{analyze, Options, Order};
use wsclose::record::{Anomalies, At, Side};
use wsclose::ws::counts::Counts;
use wsclose::ws::counts::SideTotals;
use wsclose::ws::events::{FrameConsumer, StreamEvent};
use wsclose::ws::frame::{frame_header as parse_frame_header, header_len_from_prefix};
use wsclose::ws::handshake::{parse_head, parse_head_prefix, request, response};
use wsclose::ws::stream::FrameStream;

/// A frame stream and what its events add up to: the report's counters and the frames.
struct Probe {
    fs: FrameStream,
    side: Side,
    counts: Counts,
    frames: u64,
}

/// Counts frames (and passes everything to the report's counters).
struct Tally<'a>(&'a mut Counts, &'a mut u64);

impl FrameConsumer for Tally<'_> {
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        if let StreamEvent::Frame(_) = ev {
            *self.1 += 1;
        }
        self.0.event(side, at, ev);
    }
}

impl Probe {
    fn data(&mut self, d: &[u8], packet: u64) {
        let at = At { packet, ts_ns: 0 };
        self.fs
            .data(d, at, &mut Tally(&mut self.counts, &mut self.frames));
    }
    fn gap(&mut self, n: u64, packet: u64) {
        let at = At { packet, ts_ns: 0 };
        self.fs
            .gap(n, at, &mut Tally(&mut self.counts, &mut self.frames));
    }
    /// How many of the next bytes nobody reads (the tally reads no payload).
    fn unread(&self) -> u64 {
        self.fs.unread(&())
    }
    fn pass_over(&mut self, n: u64, packet: u64) {
        let at = At { packet, ts_ns: 0 };
        self.fs
            .pass_over(n, at, &mut Tally(&mut self.counts, &mut self.frames));
    }
    fn counts(&self) -> &wsclose::ws::counts::SideCounts {
        match self.side {
            Side::Client => &self.counts.client,
            Side::Server => &self.counts.server,
        }
    }
    fn stats(&self) -> &SideTotals {
        &self.counts().stats
    }
    fn anomalies(&self) -> Anomalies {
        self.counts().anomalies
    }
    fn inexact(&self) -> bool {
        self.counts().inexact
    }
}

/// A little-endian cursor over the fuzz input; reads past the end give zeros.
struct Bytes<'a> {
    d: &'a [u8],
    i: usize,
}

impl<'a> Bytes<'a> {
    fn new(d: &'a [u8]) -> Self {
        Bytes { d, i: 0 }
    }
    fn done(&self) -> bool {
        self.i >= self.d.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = &self.d[self.i.min(self.d.len())..];
        self.i = self.d.len();
        r
    }
}

// ---------------------------------------------------------------------------------------
// frame_header
// ---------------------------------------------------------------------------------------

/// `ws::frame::frame_header`: on Ok the header length is what was consumed, is 2..=14 and
/// agrees with `header_len_from_prefix`; every strict prefix is `Incomplete`.
pub fn frame_header(data: &[u8]) {
    match parse_frame_header(data) {
        Ok((rest, h)) => {
            let consumed = data.len() - rest.len();
            assert_eq!(h.header_len as usize, consumed, "header_len != consumed");
            assert!((2..=14).contains(&consumed), "header_len {consumed}");
            assert_eq!(consumed, header_len_from_prefix([data[0], data[1]]));
            assert!(h.payload_len < 1 << 63, "payload_len keeps the MSB");
            assert_eq!(h.masking_key.is_some(), data[1] & 0x80 != 0);
            assert!(h.rsv < 8 && h.opcode < 16);
            for n in 0..consumed {
                assert!(
                    parse_frame_header(&data[..n]).is_err_and(|e| e.is_incomplete()),
                    "strict prefix {n} of a {consumed}-byte header is not Incomplete"
                );
            }
            // Trailing bytes do not change the header.
            let (_, again) = parse_frame_header(&data[..consumed]).expect("header alone parses");
            assert_eq!(again, h);
        }
        Err(e) if e.is_incomplete() => {
            if data.len() >= 2 {
                assert!(data.len() < header_len_from_prefix([data[0], data[1]]));
            }
        }
        Err(e) => panic!("frame_header returned a hard error: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// handshake
// ---------------------------------------------------------------------------------------

/// `ws::handshake`: a complete head is `Ok(None)` for every strict prefix up to its end,
/// its length is within the input, request/response never panic, and the cut-head parser
/// agrees with the complete one on the lines they share.
pub fn handshake(data: &[u8]) {
    let data = &data[..data.len().min(8192)];
    match parse_head(data) {
        Ok(Some((n, head))) => {
            assert!(
                n > 0 && n <= data.len(),
                "head length {n} of {}",
                data.len()
            );
            // Streaming: no strict prefix of the head is complete, none is an error.
            for m in (0..n).step_by(if n > 2048 { 7 } else { 1 }) {
                assert!(
                    matches!(parse_head(&data[..m]), Ok(None)),
                    "prefix {m} of a {n}-byte head is not Ok(None)"
                );
            }
            // The head alone parses to the same thing.
            let (n2, head2) = parse_head(&data[..n]).unwrap().unwrap();
            assert_eq!(n2, n);
            assert_eq!(head2.start_line, head.start_line);
            assert_eq!(head2.fields, head.fields);
            if let Some(r) = request(&head) {
                assert!(!r.method.is_empty() && !r.path.is_empty());
            }
            if let Some(r) = response(&head) {
                assert!(r.status <= 999);
            }
            let p = parse_head_prefix(data).expect("a complete head has a start line");
            assert_eq!(p.start_line, head.start_line);
            assert!(p.fields.len() <= head.fields.len());
            assert_eq!(p.fields[..], head.fields[..p.fields.len()]);
        }
        Ok(None) => {
            if let Some(p) = parse_head_prefix(data) {
                let _ = request(&p);
                let _ = response(&p);
            }
        }
        Err(_) => {
            if let Some(p) = parse_head_prefix(data) {
                let _ = request(&p);
                let _ = response(&p);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// frame_stream
// ---------------------------------------------------------------------------------------

/// Input: [config] [n_ops] n_ops × [kind, amount] then the stream bytes.
/// `kind & 1`: a gap of `amount` bytes instead of a cut; otherwise a cut after `amount`
/// more bytes. Checks: no panic; without gaps, any split gives the same stats, anomalies,
/// frame count and exactness as one delivery.
pub fn frame_stream(data: &[u8]) {
    let mut b = Bytes::new(data);
    let cfg = b.u8();
    let from_client = cfg & 1 != 0;
    let rsv1 = cfg & 2 != 0;
    let align = cfg & 4 != 0;
    let n_ops = (b.u8() % 32) as usize;
    let ops: Vec<(u8, u8)> = (0..n_ops).map(|_| (b.u8(), b.u8())).collect();
    let stream = b.rest();

    let new = || {
        let side = if from_client {
            Side::Client
        } else {
            Side::Server
        };
        let mut fs = FrameStream::new(side);
        if rsv1 {
            fs.allow_rsv1();
        }
        if align {
            fs.expect_frame_start();
        }
        Probe {
            fs,
            side,
            counts: Counts::default(),
            frames: 0,
        }
    };

    // One piece.
    let mut whole = new();
    whole.data(stream, 1);
    check_stream_bounds(&whole, stream.len() as u64, 0);

    // Split at the cut points, no gaps. (`expect_frame_start` looks at the first delivery
    // only, so after a cut handshake head the split does matter: not compared then.)
    let mut split = new();
    let mut pos = 0usize;
    for &(kind, amount) in &ops {
        if kind & 1 == 0 {
            let end = (pos + amount as usize).min(stream.len());
            split.data(&stream[pos..end], 1);
            pos = end;
        }
    }
    split.data(&stream[pos..], 1);
    if !align {
        compare_streams(&split, &whole, "split");
    }

    // The same pieces, with what nobody reads passed over by count (as a wss:// record
    // wholly inside it is): as reading them. Each piece is two deliveries, split where the
    // unread bytes end, so that a frame must complete in the same one.
    let (mut passing, mut reading) = (new(), new());
    let mut pos = 0usize;
    let mut packet = 0;
    let ends = ops
        .iter()
        .filter(|(kind, _)| kind & 1 == 0)
        .map(|&(_, a)| a as usize);
    for amount in ends.map(Some).chain([None]) {
        let end = amount.map_or(stream.len(), |a| (pos + a).min(stream.len()));
        let piece = &stream[pos..end];
        let n = passing.unread().min(piece.len() as u64) as usize;
        packet += 1;
        if n > 0 {
            passing.pass_over(n as u64, packet);
            reading.data(&piece[..n], packet);
            assert_eq!(
                passing.frames, reading.frames,
                "passing over delayed a frame"
            );
        }
        packet += 1;
        passing.data(&piece[n..], packet);
        reading.data(&piece[n..], packet);
        assert_eq!(
            passing.frames, reading.frames,
            "passing over changed the frames"
        );
        pos = end;
    }
    assert_eq!(
        passing.stats(),
        reading.stats(),
        "passing over changed the stats"
    );
    assert_eq!(
        passing.anomalies(),
        reading.anomalies(),
        "passing over changed the anomalies"
    );
    assert_eq!(
        passing.frames, reading.frames,
        "passing over changed the frame count"
    );
    assert_eq!(
        passing.inexact(),
        reading.inexact(),
        "passing over changed exactness"
    );

    // Byte by byte (for short streams).
    if stream.len() <= 512 && !align {
        let mut bytes = new();
        for c in stream.chunks(1) {
            bytes.data(c, 1);
        }
        compare_streams(&bytes, &whole, "byte by byte");
    }

    // With gaps: only bounds.
    let mut gappy = new();
    let mut pos = 0usize;
    let mut gaps = 0u64;
    for (i, &(kind, amount)) in ops.iter().enumerate() {
        if kind & 1 == 1 {
            let n = if kind & 0x80 != 0 {
                (amount as u64) << (kind >> 2 & 0x1f)
            } else {
                amount as u64
            };
            gappy.gap(n, i as u64 + 1);
            gaps += n;
        } else {
            let end = (pos + amount as usize).min(stream.len());
            gappy.data(&stream[pos..end], i as u64 + 1);
            pos = end;
        }
    }
    gappy.data(&stream[pos..], ops.len() as u64 + 1);
    assert_eq!(gappy.stats().missing_bytes(), gaps);
    check_stream_bounds(&gappy, stream.len() as u64, gaps);
}

fn compare_streams(a: &Probe, whole: &Probe, how: &str) {
    assert_eq!(a.stats(), whole.stats(), "{how} changed the stats");
    assert_eq!(
        a.anomalies(),
        whole.anomalies(),
        "{how} changed the anomalies"
    );
    assert_eq!(a.frames, whole.frames, "{how} changed the frame count");
    assert_eq!(a.inexact(), whole.inexact(), "{how} changed exactness");
    assert!(!whole.inexact(), "no gap, yet inexact");
}

fn check_stream_bounds(fs: &Probe, bytes: u64, gaps: u64) {
    let s = fs.stats();
    // Every counted message, ping and pong is a completed frame.
    assert!(
        s.messages + u64::from(s.pings) + u64::from(s.pongs) <= fs.frames,
        "{} messages + {} pings + {} pongs > {} frames",
        s.messages,
        s.pings,
        s.pongs,
        fs.frames
    );
    // Each frame takes at least two header bytes that were seen.
    assert!(
        fs.frames <= bytes / 2,
        "{} frames from {bytes} bytes",
        fs.frames
    );
    // Payload bytes are only counted when seen or skipped in a gap.
    assert!(
        s.bytes <= bytes + gaps,
        "{} message bytes from {bytes} bytes + {gaps} gap",
        s.bytes
    );
    if let Some(c) = s.close() {
        assert!(
            c.reason.len() <= 4 * 1024,
            "close reason of {} bytes",
            c.reason.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// reassembly
// ---------------------------------------------------------------------------------------

/// One direction's reassembly, against a model that remembers the first bytes seen at each
/// stream offset.
///
/// Input: [config] [base seq: 4] then ops, each [op] + arguments:
/// - op % 4 == 0: segment at base + off (u16), `len` (u8) data bytes, `missing` (u8 & 15)
///   cut-off bytes, FIN if op & 0x10; the data bytes are a function of (segment id, offset)
///   so that overlapping segments disagree.
/// - op % 4 == 1: ACK of base + off (u16).
/// - op % 4 == 2: segment with a raw 32-bit sequence number (wraparound, far away).
/// - op % 4 == 3: ACK with a raw 32-bit number.
///
/// Invariants:
/// - data + gap bytes delivered == position(), always;
/// - every data byte at offset o is the byte of the first segment that carried offset o
///   (first wins), and gaps only cover offsets no segment carried data for; a start set
///   by a segment without payload moves back to a segment of 2+ bytes ending exactly
///   there before any byte came;
/// - after flush nothing is held, every accepted segment's end (and the FIN) is reached;
/// - position() never passes the furthest accepted segment end or acknowledgement;
/// - held bytes stay within the cap plus one segment.
pub fn reassembly(data: &[u8]) {
    reassembly_checked(data, true)
}

/// [`reassembly`], with the held-bytes cap check on or off.
pub fn reassembly_checked(data: &[u8], check_cap: bool) {
    let mut b = Bytes::new(data);
    let cfg = b.u8();
    let base_seq = b.u32();
    let limits = ReassemblyLimits {
        max_held_bytes: [64usize, 300, 1024, 1 << 20][(cfg & 3) as usize],
        max_held_segments: [2usize, 4, 16, 512][(cfg >> 2 & 3) as usize],
        max_seq_ahead: if cfg & 0x10 != 0 { 1 << 30 } else { 5000 },
    };
    let use_syn = cfg & 0x20 != 0;

    let mut h = HalfStream::default();
    // Model.
    let mut first: BTreeMap<u64, Option<u8>> = BTreeMap::new();
    let mut base: Option<u32> = None;
    if use_syn {
        h.syn(base_seq.wrapping_sub(1));
        base = Some(base_seq);
    }
    let mut delivered: u64 = 0; // data + gaps
    let mut max_reach: u64 = 0; // furthest accepted end / ack target / fin
    let mut must_reach: u64 = 0; // furthest accepted segment end
    let mut fin_seen = false;
    // The start was set by a segment without payload, and no segment with bytes came since.
    let mut empty_start = false;
    let mut events: Vec<(u64, Result<Vec<u8>, u64>)> = Vec::new();

    let content = |id: u32, off: u64| -> u8 { (off as u8) ^ (id as u8).wrapping_mul(0x9d) ^ 0x5a };

    let mut id: u32 = 0;
    let mut steps = 0;
    while !b.done() && steps < 4096 {
        steps += 1;
        let op = b.u8();
        match op % 4 {
            0 | 2 => {
                let seq = if op.is_multiple_of(4) {
                    base_seq.wrapping_add(b.u16() as u32)
                } else {
                    b.u32()
                };
                let len = b.u8() as usize;
                let missing = (b.u8() & 15) as u32;
                let fin = op & 0x10 != 0;
                id += 1;
                // Model: where the implementation will put this segment.
                let total = len as i64 + missing as i64;
                if base.is_none() && total == 0 {
                    // A start without payload: bytes ending exactly there may come later.
                    empty_start = true;
                }
                let mut mbase = *base.get_or_insert(seq);
                let next = h.position();
                let expected = mbase.wrapping_add(next as u32);
                let mut start = next as i64 + seq.wrapping_sub(expected) as i32 as i64;
                if empty_start && next == 0 && start < 0 && start + total == 0 && total > 1 {
                    // They are the stream's first bytes (`HalfStream::reach_back`): what was
                    // reached so far (the FIN, acknowledgements) moves with the start.
                    mbase = seq;
                    base = Some(mbase);
                    start = 0;
                    empty_start = false;
                    max_reach += total as u64;
                    must_reach += total as u64;
                }
                if total > 0 {
                    empty_start = false;
                }
                let bytes: Vec<u8> = (0..len as i64)
                    .map(|k| content(id, (start + k) as u64))
                    .collect();
                let accepted = !(start < 0 && start + total <= 0)
                    && start - next as i64 <= limits.max_seq_ahead as i64;
                if accepted {
                    for k in 0..total {
                        let o = start + k;
                        if o < 0 {
                            continue;
                        }
                        let v = if k < len as i64 {
                            Some(bytes[k as usize])
                        } else {
                            None
                        };
                        first.entry(o as u64).or_insert(v);
                    }
                    // An empty segment occupies no sequence space, unless it carries the
                    // connection's first FIN (a later FIN elsewhere is ignored).
                    if total > 0 || (fin && !fin_seen) {
                        let end = (start + total).max(0) as u64;
                        must_reach = must_reach.max(end);
                        max_reach = max_reach.max(end);
                    }
                    if fin {
                        fin_seen = true;
                    }
                }
                let pos0 = h.position();
                let mut off = pos0;
                h.segment(seq, &bytes, missing, fin, &limits, &mut |e| {
                    record(&mut events, &mut off, e)
                });
                delivered += off - pos0;
                if check_cap {
                    assert!(
                        h.held_bytes() <= limits.max_held_bytes + len,
                        "held {} bytes, cap {} (+{len} for this segment)",
                        h.held_bytes(),
                        limits.max_held_bytes
                    );
                }
            }
            _ => {
                let ack = if op % 4 == 1 {
                    base_seq.wrapping_add(b.u16() as u32)
                } else {
                    b.u32()
                };
                if let Some(mbase) = base {
                    let next = h.position();
                    let expected = mbase.wrapping_add(next as u32);
                    let to = next as i64 + ack.wrapping_sub(expected) as i32 as i64;
                    if to > next as i64 && to - next as i64 <= limits.max_seq_ahead as i64 {
                        max_reach = max_reach.max(to as u64);
                    }
                }
                let pos0 = h.position();
                let mut off = pos0;
                h.acked(ack, &limits, &mut |e| record(&mut events, &mut off, e));
                delivered += off - pos0;
            }
        }
        assert_eq!(
            delivered,
            h.position(),
            "events do not add up to position()"
        );
        assert!(
            h.position() <= max_reach,
            "position {} beyond anything seen ({max_reach})",
            h.position()
        );
        check_events(&mut events, &first);
    }
    let pos0 = h.position();
    let mut off = pos0;
    h.flush(&mut |e| record(&mut events, &mut off, e));
    delivered += off - pos0;
    assert_eq!(delivered, h.position());
    check_events(&mut events, &first);
    assert_eq!(h.held_bytes(), 0, "flush left bytes held");
    assert!(
        h.position() >= must_reach,
        "flush stopped at {} before an accepted segment's end {must_reach}",
        h.position()
    );
    if fin_seen {
        assert!(h.finished(), "FIN seen, flushed, yet not finished");
    }
    // A second flush changes nothing.
    let p = h.position();
    h.flush(&mut |_| panic!("second flush delivered something"));
    assert_eq!(p, h.position());
}

fn record(events: &mut Vec<(u64, Result<Vec<u8>, u64>)>, off: &mut u64, e: Event<'_>) {
    match e {
        Event::Data(d) => {
            assert!(!d.is_empty(), "empty Data event");
            events.push((*off, Ok(d.to_vec())));
            *off += d.len() as u64;
        }
        Event::Gap(n) => {
            assert!(n > 0, "empty Gap event");
            events.push((*off, Err(n)));
            *off += n;
        }
    }
}

fn check_events(events: &mut Vec<(u64, Result<Vec<u8>, u64>)>, first: &BTreeMap<u64, Option<u8>>) {
    for (at, ev) in events.drain(..) {
        match ev {
            Ok(d) => {
                for (k, &byte) in d.iter().enumerate() {
                    let o = at + k as u64;
                    assert_eq!(
                        first.get(&o),
                        Some(&Some(byte)),
                        "offset {o}: delivered {byte:#04x}, first seen {:?}",
                        first.get(&o)
                    );
                }
            }
            Err(n) => {
                // Only walk what the model knows about (gaps may be huge).
                for (&o, v) in first.range(at..at + n) {
                    assert!(
                        v.is_none(),
                        "offset {o} declared a gap though {v:?} was seen there first"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------

/// Link types `decode` knows.
pub const LINKTYPES: [u16; 10] = [0, 1, 101, 108, 113, 228, 229, 276, 14, 12];

/// Input: [linktype selector] then the packet. Selector < 0xf0 picks one of `LINKTYPES`;
/// otherwise the next two bytes are a raw link type.
pub fn decode(data: &[u8]) {
    let mut b = Bytes::new(data);
    let sel = b.u8();
    let lt = if sel < 0xf0 {
        LINKTYPES[sel as usize % LINKTYPES.len()]
    } else {
        b.u16()
    };
    let pkt = b.rest();
    let r = wsclose::decode::decode(lt, pkt);
    if let Ok(s) = &r {
        let end = s.payload_off as usize + s.payload_len as usize;
        assert!(
            end <= pkt.len(),
            "payload {}+{} past the packet's {} bytes",
            s.payload_off,
            s.payload_len,
            pkt.len()
        );
        assert!(
            s.payload_off >= 20,
            "payload at {} inside the TCP header",
            s.payload_off
        );
        assert_eq!(s.flags & !0x1f, 0);
        // The key is canonical: lo <= hi.
        assert!(s.key.lo <= s.key.hi);
    }
    // Pure: the same bytes decode the same way.
    let again = wsclose::decode::decode(lt, pkt);
    assert_eq!(format!("{r:?}"), format!("{again:?}"));
}

// ---------------------------------------------------------------------------------------
// capture
// ---------------------------------------------------------------------------------------

/// Small limits so that arbitrary input exercises batching, caps and eviction quickly.
pub fn small_limits() -> Limits {
    Limits {
        max_record_bytes: 64 * 1024,
        chunk_bytes: 64 * 1024,
        batch_packets: 4,
        batch_bytes: 2048,
        max_connections: 4,
        max_ooo_bytes: 2048,
        max_ooo_segments: 8,
        max_handshake_bytes: 512,
        max_seq_ahead: 1 << 20,
        max_pending_bytes: 4096,
        closed_linger_ns: 1_000_000_000,
        memory_budget: 1024,
        recognise_ns: 1_000_000_000,
        recognise_bytes: 1024,
        pair_window_ns: 1_000_000_000,
    }
}

fn reader(data: &[u8], limits: &Limits) -> Result<FileReader, wsclose::error::InputError> {
    FileReader::from_reader(
        "fuzz".to_string(),
        Box::new(Cursor::new(data.to_vec())),
        limits,
    )
}

/// The capture reader (framing, pcapng blocks, batching, merging two inputs), then the
/// whole analysis: never panics, always ends, errors name offsets inside the input.
pub fn capture(data: &[u8]) {
    let limits = small_limits();
    let len = data.len() as u64;
    let check_err = |e: &wsclose::error::InputError| {
        assert!(
            e.offset <= len,
            "error offset {} past the input's {len} bytes: {e}",
            e.offset
        );
        assert_eq!(e.path, "fuzz");
        let _ = e.to_string();
    };

    // 1. Reader + fill loop, one input and the same input twice (merge).
    for copies in [1usize, 2] {
        let mut readers = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..copies {
            match reader(data, &limits) {
                Ok(r) => readers.push(r),
                Err(e) => {
                    check_err(&e);
                    errors.push(e);
                }
            }
        }
        let mut cap = Capture::from_readers(readers, errors, &limits);
        let mut batch = Batch::default();
        let mut packets = 0u64;
        let mut fills = 0u64;
        // Every packet takes at least 12 bytes of the file; a batch is cut after
        // `batch_packets`. So the number of fills is bounded by the input size.
        let max_fills = copies as u64 * (len / 12 + 2);
        let mut last_frame = 0;
        loop {
            batch.clear();
            let fill = cap.fill(&mut batch);
            fills += 1;
            assert!(fills <= max_fills, "fill loop does not end ({fills} fills)");
            for p in &batch.packets {
                let d = batch.data(p);
                assert_eq!(d.len(), p.caplen as usize);
                assert!(p.caplen <= p.origlen);
                assert!(p.caplen as usize <= limits.max_record_bytes);
                assert!(p.number > last_frame, "packet numbers not increasing");
                last_frame = p.number;
                packets += 1;
            }
            if let Fill::End = fill {
                break;
            }
        }
        assert_eq!(packets, cap.packets_read);
        assert!(cap.bytes_read() <= copies as u64 * len);
        for e in cap.take_errors() {
            check_err(&e);
        }
    }

    // 2. The whole pipeline on one thread, in first-packet order and in end order: the
    //    same records (end order only moves them), the buffers within the budget.
    let run = |order: Order| {
        let opts = Options {
            threads: 1,
            limits: limits.clone(),
            order,
            ..Options::default()
        };
        let (readers, errors) = match reader(data, &limits) {
            Ok(r) => (vec![r], vec![]),
            Err(e) => (vec![], vec![e]),
        };
        let cap = Capture::from_readers(readers, errors, &limits);
        let mut csv = wsclose::report::csv::CsvWriter::new(Vec::new()).unwrap();
        let mut records = Vec::new();
        let summary = analyze(cap, &opts, &mut |rec| {
            assert!(rec.start_ns <= rec.end_ns || rec.packets == 0);
            assert_eq!(rec.verdict, wsclose::verdict::verdict(&rec.facts()));
            records.push(rec.clone());
            wsclose::report::ReportWriter::session(
                &mut csv,
                &wsclose::report::Row {
                    session: records.len() as u64,
                    rec: &rec,
                    opts: &Default::default(),
                },
            )
        })
        .expect("analyze writes to memory, it cannot fail");
        (summary, records, csv.into_inner().unwrap())
    };
    let (summary, records, out) = run(Order::FirstPacket);
    for e in &summary.errors {
        check_err(e);
    }
    assert!(summary.stats.packets <= len / 12 + 1);
    assert!(
        summary.buffered.peak_within_budget <= limits.memory_budget,
        "buffers over the budget after it was enforced: {:?}",
        summary.buffered
    );
    assert!(
        records
            .windows(2)
            .all(|w| w[0].first_packet < w[1].first_packet),
        "records not in first-packet order"
    );
    let _ = summary.stats.to_string();
    assert!(std::str::from_utf8(&out).is_ok(), "report is not UTF-8");
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        records.len() + 1,
        "one line per record and the header"
    );
    let (end_summary, mut by_end, _) = run(Order::End);
    // Session numbers follow the write order (`--order end`: as sessions end), so a proxy
    // leg's `peer_session` is compared as its peer's first packet.
    let by_peer = |mut rs: Vec<wsclose::record::SessionRecord>| {
        let firsts: Vec<u64> = rs.iter().map(|r| r.first_packet).collect();
        for r in &mut rs {
            r.peer_session = r.peer_session.map(|n| firsts[n as usize - 1]);
        }
        rs
    };
    let records = by_peer(records);
    by_end = by_peer(by_end);
    by_end.sort_by_key(|r| r.first_packet);
    assert_eq!(by_end, records, "end order holds other records");
    assert_eq!(end_summary.stats, summary.stats);
}

// ---------------------------------------------------------------------------------------
// inflate
// ---------------------------------------------------------------------------------------

/// Input: [cfg] [n_cuts] n_cuts × [amount] then one direction's frame bytes.
/// `cfg & 1`: the client's direction (masked frames); `cfg & 2`: no context takeover;
/// `cfg >> 2 & 7`: window bits 8 + that; `cfg & 0x20`: permessage-deflate not negotiated.
/// `ws::deflate::Payloads` behind a `FrameStream`: no panic, whatever the compressed
/// bytes; any split of the same bytes gives the same totals (sizes, anomalies,
/// exactness: inflation and the UTF-8 check carry their state across deliveries); sizes
/// are exact without gaps unless an anomaly says why.
pub fn inflate(data: &[u8]) {
    use wsclose::ws::deflate::Payloads;
    use wsclose::ws::extensions::Deflate;
    use wsclose::ws::session::Consumers;
    let mut b = Bytes::new(data);
    let cfg = b.u8();
    let side = if cfg & 1 != 0 {
        Side::Client
    } else {
        Side::Server
    };
    let bits = 8 + (cfg >> 2 & 7).min(7);
    let deflate = (cfg & 0x20 == 0).then_some(Deflate {
        server_no_context_takeover: cfg & 2 != 0,
        client_no_context_takeover: cfg & 2 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    });
    let n_cuts = (b.u8() % 16) as usize;
    let cuts: Vec<usize> = (0..n_cuts).map(|_| b.u8() as usize).collect();
    let stream = b.rest();

    // The payloads' totals, and the frame stream's anomalies (a resync loses a message's
    // start: its size is then unknown, and the stream says why).
    let run = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut fs = FrameStream::new(side);
        fs.allow_rsv1();
        let mut c = Consumers {
            payloads: Some(Payloads::new(deflate)),
            ..Consumers::default()
        };
        for (i, piece) in pieces.enumerate() {
            let at = At {
                packet: i as u64 + 1,
                ts_ns: 0,
            };
            fs.data(piece, at, &mut c);
        }
        let largest = c.counts.side(side).largest_message;
        let totals = c.payloads.as_ref().expect("payloads").totals(side, largest);
        let stream_anomalies = match side {
            Side::Client => c.counts.client.anomalies,
            Side::Server => c.counts.server.anomalies,
        };
        (totals, stream_anomalies)
    };
    let (whole, whole_stream) = run(&mut std::iter::once(stream));
    let mut pos = 0;
    let mut pieces = Vec::new();
    for c in &cuts {
        let end = (pos + c).min(stream.len());
        pieces.push(&stream[pos..end]);
        pos = end;
    }
    pieces.push(&stream[pos..]);
    let (split, _) = run(&mut pieces.into_iter());
    assert_eq!(split, whole, "a split changed the payload totals");
    if stream.len() <= 512 {
        let (bytes, _) = run(&mut stream.chunks(1));
        assert_eq!(bytes, whole, "byte by byte changed the payload totals");
    }
    if deflate.is_none() {
        assert_eq!(whole.bytes_inflated, None, "no deflate, yet inflated bytes");
    }
    if let (Some(n), Some(l)) = (whole.bytes_inflated, whole.largest_message) {
        assert!(l <= n, "largest message {l} above the total {n}");
    }
    if whole.inexact {
        use wsclose::record::Anomaly;
        assert!(
            whole.anomalies.contains(Anomaly::InflateError)
                || whole.anomalies.contains(Anomaly::InflateLimit)
                || whole_stream != Anomalies::default(),
            "inexact without a gap, and no anomaly says why: {whole:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// tls
// ---------------------------------------------------------------------------------------

/// Input: [which] then bytes for one TLS parser (`which % 4`): 0 record headers and
/// records, 1 handshake messages (ClientHello, ServerHello, EncryptedExtensions and the
/// extension helpers), 2 the ClientHello probe, 3 a key log's text. No panic; what a
/// parser leaves is a suffix of its input; the probe never changes its mind on more bytes
/// (NotTls stays NotTls, ClientHello stays ClientHello).
pub fn tls(data: &[u8]) {
    use wsclose::tls::handshake::{
        alpn_protocols, client_hello, encrypted_extensions, handshake_header, server_hello,
        server_name_host,
    };
    use wsclose::tls::record::{record, record_header, Alert};
    use wsclose::tls::{probe_client_hello, KeyLog, Probe};
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    let suffix = |rest: &[u8], of: &[u8]| {
        assert!(
            rest.len() <= of.len() && std::ptr::eq(rest.as_ptr_range().end, of.as_ptr_range().end)
        );
    };
    match which % 4 {
        0 => {
            let mut left = input;
            while let Ok((rest, (h, fragment))) = record(left) {
                suffix(rest, left);
                assert_eq!(fragment.len(), h.length as usize);
                let (after_header, h2) = record_header(left).expect("a record has a header");
                suffix(after_header, left);
                assert_eq!(h2.length, h.length);
                let _ = Alert::parse(fragment).map(|a| a.description_name());
                if rest.len() == left.len() {
                    break;
                }
                left = rest;
            }
        }
        1 => {
            if let Ok((rest, (_t, len))) = handshake_header(input) {
                suffix(rest, input);
                assert!(len < 1 << 24);
            }
            for ext in [
                client_hello(input).ok().map(|(r, h)| {
                    suffix(r, input);
                    let _ = h.offers_tls13();
                    h.extensions
                }),
                server_hello(input).ok().map(|(r, h)| {
                    suffix(r, input);
                    let _ = (h.is_hello_retry_request(), h.selected_version());
                    h.extensions
                }),
                encrypted_extensions(input).ok().map(|(r, e)| {
                    suffix(r, input);
                    e
                }),
            ]
            .into_iter()
            .flatten()
            {
                if let Some(sni) = ext.server_name {
                    let _ = server_name_host(sni);
                }
                if let Some(alpn) = ext.alpn {
                    for p in alpn_protocols(alpn) {
                        assert!(p.len() <= alpn.len());
                    }
                }
            }
        }
        2 => {
            let full = probe_client_hello(input);
            for n in 0..input.len().min(16) {
                match (probe_client_hello(&input[..n]), &full) {
                    (Probe::NotTls, f) => assert!(matches!(f, Probe::NotTls), "prefix {n}"),
                    (Probe::ClientHello, f) => {
                        assert!(matches!(f, Probe::ClientHello), "prefix {n}")
                    }
                    (Probe::NeedMore, _) => {}
                }
            }
        }
        _ => {
            let mut log = KeyLog::new();
            let stats = log.add_text(input);
            let lines = input.split(|&b| b == b'\n').count();
            assert!(stats.secrets + stats.ignored + stats.malformed <= lines);
            if let Some(l) = stats.first_malformed_line {
                assert!(l >= 1 && l <= lines);
            }
        }
    }
}
