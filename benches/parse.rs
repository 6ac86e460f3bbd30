//! Micro-benchmarks of the parsers and state machines, each fed realistic bytes built here.
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench -j 2 --bench parse [-- FILTER]
//!
//! Throughput is always in input bytes (`Throughput::Bytes`). Every benchmark checks its
//! answer once before timing (frames parsed, messages counted, bytes delivered, segments
//! decoded), so a broken parser cannot look fast.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wsclose::capture::{Batch, Capture, FileReader, Fill};
use wsclose::config::Limits;
use wsclose::decode::decode;
use wsclose::flow::reassembly::{Event, HalfStream, ReassemblyLimits};
use wsclose::record::{At, Side};
use wsclose::ws::counts::{Counts, SideCounts};
use wsclose::ws::events::{FrameConsumer, StreamEvent};
use wsclose::ws::frame::frame_header;
use wsclose::ws::handshake::{parse_head, request, response};
use wsclose::ws::stream::FrameStream;
use wsclose_synth::ws::{encode_frame, frame_header as encode_header, OP_BINARY, OP_PING, OP_TEXT};
use wsclose_synth::{generate_with, GenConfig, Mix, Rng};

/// TCP payload per segment (Ethernet MSS with timestamps).
const MSS: usize = 1448;

fn mask(rng: &mut Rng) -> [u8; 4] {
    (rng.next_u64() as u32).to_be_bytes()
}

fn text_payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "{\"type\":\"msg\"",
        "\"user\":\"alice\"",
        "\"room\":42",
        "hello",
        "world",
        "typing",
        "\"ts\":1732233600123",
        "ok",
        "ack",
        "presence",
        "}",
    ];
    let mut s = Vec::with_capacity(len);
    while s.len() < len {
        s.extend_from_slice(rng.pick(WORDS).as_bytes());
        s.push(b' ');
    }
    s.truncate(len);
    s
}

// ---------------------------------------------------------------------------
// frame_header
// ---------------------------------------------------------------------------

/// Frames as a chat connection carries them: small masked client frames, small unmasked
/// server frames, some 16-bit lengths, pings; payloads present.
fn chat_frames(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..n {
        let masked = rng.chance(0.5);
        let m = masked.then(|| mask(rng));
        let r = rng.below(100);
        let (op, len) = if r < 5 {
            (OP_PING, rng.below(9) as usize)
        } else if r < 85 {
            (OP_TEXT, rng.range(2, 125) as usize)
        } else {
            (OP_TEXT, rng.range(126, 4000) as usize)
        };
        let p = text_payload(rng, len);
        buf.extend_from_slice(&encode_frame(true, 0, op, m, &p));
    }
    buf
}

/// Header-dense frames: 7-, 16- and 64-bit length encodings in equal parts (the longer
/// ones not minimal, so payloads stay tiny), half masked.
fn dense_frames(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..n {
        let m = rng.chance(0.5).then(|| mask(rng));
        let len = rng.below(16) as usize;
        let h = match i % 3 {
            0 => encode_header(true, 0, OP_BINARY, m, len as u64),
            w => {
                // Build a 16-bit (w == 1) or 64-bit (w == 2) length by hand.
                let mut h = vec![0x80 | OP_BINARY, if m.is_some() { 0x80 } else { 0 }];
                if w == 1 {
                    h[1] |= 126;
                    h.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    h[1] |= 127;
                    h.extend_from_slice(&(len as u64).to_be_bytes());
                }
                if let Some(k) = m {
                    h.extend_from_slice(&k);
                }
                h
            }
        };
        buf.extend_from_slice(&h);
        buf.extend(std::iter::repeat_n(b'x', len));
    }
    buf
}

/// Parses every header, skipping payloads; returns (frames, bytes consumed).
fn walk_frames(mut b: &[u8]) -> (u64, u64) {
    let total = b.len();
    let mut frames = 0u64;
    while !b.is_empty() {
        let (rest, h) = frame_header(b).expect("whole header");
        b = &rest[h.payload_len as usize..];
        frames += 1;
    }
    (frames, (total - b.len()) as u64)
}

fn bench_frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    let mut rng = Rng::new(11);
    for (name, n, buf) in [
        ("chat", 20_000, chat_frames(&mut rng, 20_000)),
        ("dense_7_16_64", 60_000, dense_frames(&mut rng, 60_000)),
    ] {
        assert_eq!(
            walk_frames(&buf),
            (n as u64, buf.len() as u64),
            "frame_header/{name}"
        );
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(name, |b| b.iter(|| walk_frames(black_box(&buf))));
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// frame_stream
// ---------------------------------------------------------------------------

struct StreamInput {
    bytes: Vec<u8>,
    from_client: bool,
    messages: u64,
    payload: u64,
    pings: u64,
    frames: u64,
}

/// A chat client's stream: masked text messages (some fragmented), pings.
fn chat_stream(rng: &mut Rng, n: usize) -> StreamInput {
    let mut s = StreamInput {
        bytes: Vec::new(),
        from_client: true,
        messages: 0,
        payload: 0,
        pings: 0,
        frames: 0,
    };
    for _ in 0..n {
        if rng.chance(0.03) {
            s.bytes
                .extend_from_slice(&encode_frame(true, 0, OP_PING, Some(mask(rng)), b"hb"));
            s.pings += 1;
            s.frames += 1;
            continue;
        }
        let len = if rng.chance(0.9) {
            rng.range(10, 300)
        } else {
            rng.range(300, 8000)
        } as usize;
        let p = text_payload(rng, len);
        if rng.chance(0.05) && len > 20 {
            // Fragmented: TEXT (fin=0) + CONTINUATION (fin=1).
            let cut = len / 2;
            s.bytes
                .extend_from_slice(&encode_frame(false, 0, OP_TEXT, Some(mask(rng)), &p[..cut]));
            s.bytes
                .extend_from_slice(&encode_frame(true, 0, 0, Some(mask(rng)), &p[cut..]));
            s.frames += 2;
        } else {
            s.bytes
                .extend_from_slice(&encode_frame(true, 0, OP_TEXT, Some(mask(rng)), &p));
            s.frames += 1;
        }
        s.messages += 1;
        s.payload += len as u64;
    }
    s
}

/// A bulk server's stream: a few huge unmasked binary frames.
fn bulk_stream(rng: &mut Rng, n: usize) -> StreamInput {
    let mut s = StreamInput {
        bytes: Vec::new(),
        from_client: false,
        messages: 0,
        payload: 0,
        pings: 0,
        frames: 0,
    };
    for _ in 0..n {
        let len = rng.range(1 << 20, 4 << 20) as usize;
        let mut p = vec![0u8; len];
        rng.fill(&mut p);
        s.bytes
            .extend_from_slice(&encode_frame(true, 0, OP_BINARY, None, &p));
        s.messages += 1;
        s.payload += len as u64;
        s.frames += 1;
    }
    s
}

/// The report's counters of one direction, and its frames.
#[derive(Default)]
struct Tally {
    counts: Counts,
    frames: u64,
}

impl FrameConsumer for Tally {
    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        if let StreamEvent::Frame(_) = ev {
            self.frames += 1;
        }
        self.counts.event(side, at, ev);
    }
}

fn run_stream(input: &StreamInput) -> (SideCounts, u64) {
    let side = if input.from_client {
        Side::Client
    } else {
        Side::Server
    };
    let mut fs = FrameStream::new(side);
    let mut tally = Tally::default();
    for (i, seg) in input.bytes.chunks(MSS).enumerate() {
        let at = At {
            packet: i as u64 + 1,
            ts_ns: 0,
        };
        fs.data(seg, at, &mut tally);
    }
    (tally.counts.side(side).clone(), tally.frames)
}

fn bench_frame_stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_stream");
    let mut rng = Rng::new(12);
    for (name, input) in [
        ("chat_client", chat_stream(&mut rng, 30_000)),
        ("bulk_server", bulk_stream(&mut rng, 8)),
    ] {
        let (fs, frames) = run_stream(&input);
        assert_eq!(
            (
                frames,
                fs.stats.messages,
                fs.stats.bytes,
                u64::from(fs.stats.pings),
                fs.inexact
            ),
            (
                input.frames,
                input.messages,
                input.payload,
                input.pings,
                false
            ),
            "frame_stream/{name}: (frames, messages, bytes, pings, inexact) wrong; anomalies {:?}",
            fs.anomalies
        );
        g.throughput(Throughput::Bytes(input.bytes.len() as u64));
        g.bench_function(name, |b| b.iter(|| run_stream(black_box(&input)).1));
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// handshake
// ---------------------------------------------------------------------------

const REQUESTS: &[&str] = &[
    // Chrome
    "GET /socket.io/?EIO=4&transport=websocket&sid=q8Yf3kzA0x HTTP/1.1\r\n\
Host: chat.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://chat.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOjQyfQ.abc; _ga=GA1.2.123456789.1700000000; theme=dark\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    // Firefox
    "GET /ws/v2/stream HTTP/1.1\r\n\
Host: api.example.org:8443\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Sec-WebSocket-Version: 13\r\n\
Origin: https://app.example.org\r\n\
Sec-WebSocket-Protocol: graphql-transport-ws\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Connection: keep-alive, Upgrade\r\n\
Cookie: sid=8f14e45fceea167a5a36dedd4bea2543\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: websocket\r\n\
Sec-Fetch-Site: same-site\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
Upgrade: websocket\r\n\r\n",
    // Python websockets
    "GET /feed HTTP/1.1\r\n\
Host: 10.0.0.5:8765\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
User-Agent: Python/3.12 websockets/13.1\r\n\r\n",
];

const RESPONSES: &[&str] = &[
    "HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\n\
Server: nginx/1.27.2\r\n\
Date: Fri, 22 Nov 2024 00:31:51 GMT\r\n\
Connection: upgrade\r\n\
Upgrade: websocket\r\n\
Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\
Sec-WebSocket-Protocol: graphql-transport-ws\r\n\
Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n\
X-Request-Id: 4f1c2a9e-8d3b-4e57-9a61-0c2b7d5e8f90\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: mM1hYQ6sPu0G8BoYhx2bGqqfp3c=\r\n\
Date: Fri, 22 Nov 2024 00:31:51 GMT\r\n\
Server: Python/3.12 websockets/13.1\r\n\r\n",
];

fn parse_requests(heads: &[&str]) -> usize {
    let mut n = 0;
    for h in heads {
        let (len, head) = parse_head(h.as_bytes()).expect("HTTP").expect("complete");
        let r = request(&head).expect("request");
        n += len + r.path.len() + usize::from(r.upgrade_websocket);
    }
    n
}

fn parse_responses(heads: &[&str]) -> usize {
    let mut n = 0;
    for h in heads {
        let (len, head) = parse_head(h.as_bytes()).expect("HTTP").expect("complete");
        let r = response(&head).expect("response");
        n += len + r.status as usize + r.accept.map_or(0, |a| a.len());
    }
    n
}

fn bench_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    // Check the answers once.
    for h in REQUESTS {
        let (len, head) = parse_head(h.as_bytes()).unwrap().unwrap();
        assert_eq!(len, h.len(), "whole request head consumed");
        let r = request(&head).unwrap();
        assert!(
            r.upgrade_websocket && r.connection_upgrade && r.key.is_some(),
            "{r:?}"
        );
        assert_eq!(r.method, "GET");
        assert!(r.path.starts_with('/') && !r.host.is_empty());
    }
    for h in RESPONSES {
        let (len, head) = parse_head(h.as_bytes()).unwrap().unwrap();
        assert_eq!(len, h.len(), "whole response head consumed");
        let r = response(&head).unwrap();
        assert!(
            r.status == 101 && r.upgrade_websocket && r.accept.is_some(),
            "{r:?}"
        );
    }
    let req_bytes: usize = REQUESTS.iter().map(|h| h.len()).sum();
    let resp_bytes: usize = RESPONSES.iter().map(|h| h.len()).sum();
    g.throughput(Throughput::Bytes(req_bytes as u64));
    g.bench_function("request", |b| {
        b.iter(|| parse_requests(black_box(REQUESTS)))
    });
    g.throughput(Throughput::Bytes(resp_bytes as u64));
    g.bench_function("response", |b| {
        b.iter(|| parse_responses(black_box(RESPONSES)))
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// reassembly
// ---------------------------------------------------------------------------

struct Segments {
    stream: Vec<u8>,
    isn: u32,
    /// (stream offset, length) in arrival order.
    order: Vec<(usize, usize)>,
    input_bytes: u64,
}

/// A stream of `n` full segments; ISN just below 2^32 so sequence numbers wrap.
fn segments(rng: &mut Rng, n: usize, shuffle: bool) -> Segments {
    let mut stream = vec![0u8; n * MSS];
    rng.fill(&mut stream);
    let mut order: Vec<(usize, usize)> = (0..n).map(|i| (i * MSS, MSS)).collect();
    if shuffle {
        // Shuffle within windows of 16 segments (Fisher-Yates per window).
        for w in order.chunks_mut(16) {
            for i in (1..w.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                w.swap(i, j);
            }
        }
        // 5% duplicates: a segment from the recent past arrives again.
        let mut with_dups = Vec::with_capacity(order.len() * 21 / 20);
        for i in 0..order.len() {
            with_dups.push(order[i]);
            if rng.chance(0.05) {
                let back = rng.below(16.min(i as u64 + 1)) as usize;
                with_dups.push(order[i - back]);
            }
        }
        order = with_dups;
    }
    let input_bytes = order.iter().map(|&(_, l)| l as u64).sum();
    Segments {
        stream,
        isn: u32::MAX - 3_000_000,
        order,
        input_bytes,
    }
}

fn reassemble(s: &Segments, limits: &ReassemblyLimits) -> (u64, u64) {
    let mut hs = HalfStream::default();
    hs.syn(s.isn);
    let (mut data, mut gaps) = (0u64, 0u64);
    let mut sink = |ev: Event<'_>| match ev {
        Event::Data(d) => data += d.len() as u64,
        Event::Gap(n) => gaps += n,
    };
    let base = s.isn.wrapping_add(1);
    for &(off, len) in &s.order {
        let seq = base.wrapping_add(off as u32);
        hs.segment(seq, &s.stream[off..off + len], 0, false, limits, &mut sink);
    }
    hs.flush(&mut sink);
    (data, gaps)
}

fn bench_reassembly(c: &mut Criterion) {
    let l = Limits::default();
    let limits = ReassemblyLimits {
        max_held_bytes: l.max_ooo_bytes,
        max_held_segments: l.max_ooo_segments,
        max_seq_ahead: l.max_seq_ahead,
    };
    let mut rng = Rng::new(13);
    for (name, shuffle) in [
        ("reassembly_in_order", false),
        ("reassembly_out_of_order", true),
    ] {
        let s = segments(&mut rng, 4096, shuffle);
        assert_eq!(
            reassemble(&s, &limits),
            (s.stream.len() as u64, 0),
            "{name}: (delivered, gap) bytes"
        );
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(s.input_bytes));
        g.bench_function("mss1448", |b| b.iter(|| reassemble(black_box(&s), &limits)));
        g.finish();
    }
}

// ---------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------

fn bench_decode(c: &mut Criterion) {
    // A small generated capture (mixed chat/bulk, IPv4/IPv6, some UDP), read back with
    // wsclose's own reader.
    let cfg = GenConfig {
        seed: 14,
        sessions: 60,
        mix: Mix::MIXED,
        target_bytes: 12 << 20,
        ..GenConfig::default()
    };
    let mut bytes = Vec::new();
    let summary = generate_with(&cfg, &mut bytes, |_| Ok(())).expect("generate");
    let limits = Limits::default();
    let reader = FileReader::from_reader("gen".into(), Box::new(Cursor::new(bytes)), &limits)
        .expect("pcap header");
    let mut capture = Capture::from_readers(vec![reader], vec![], &limits);
    let mut batches = Vec::new();
    loop {
        let mut b = Batch::default();
        let fill = capture.fill(&mut b);
        batches.push(b);
        if let Fill::End = fill {
            break;
        }
    }
    let run = |batches: &[Batch]| {
        let (mut tcp, mut payload) = (0u64, 0u64);
        for b in batches {
            for p in &b.packets {
                if let Ok(seg) = decode(p.linktype, b.data(p)) {
                    tcp += 1;
                    payload += seg.payload_len as u64;
                }
            }
        }
        (tcp, payload)
    };
    let packets: u64 = batches.iter().map(|b| b.packets.len() as u64).sum();
    let input: u64 = batches
        .iter()
        .flat_map(|b| b.packets.iter().map(|p| p.caplen as u64))
        .sum();
    assert_eq!(packets, summary.packets, "decode: packets read back");
    let (tcp, _) = run(&batches);
    assert_eq!(
        tcp,
        summary.packets - summary.udp_packets,
        "decode: TCP segments decoded"
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(input));
    g.bench_function("generated_mixed", |b| b.iter(|| run(black_box(&batches))));
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_frame_header, bench_frame_stream, bench_handshake, bench_reassembly, bench_decode
}
criterion_main!(benches);
