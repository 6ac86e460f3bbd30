//! Memory and streaming (issue 9): the memory budget, the compact table of connections
//! without payload, the recognition window, `--order end`, and records written while
//! the input is still being read.
//!
//! Heap bytes are counted per thread by a counting allocator (deterministic, cheap, run
//! in CI); peak RSS for a million connections is measured by ignored tests that run in a
//! child process of their own:
//!
//!     cargo test --release --test integration memory::rss -- --ignored --nocapture

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wsclose::capture::{Capture, FileReader};
use wsclose::config::Limits;
use wsclose::pipeline::{analyze, Options, Order, Summary};
use wsclose::record::SessionRecord;
use wsclose::report::csv::CsvWriter;
use wsclose::report::write_report;
use wsclose_synth::crowd::{Crowd, CrowdCapture, CrowdKind};
use wsclose_synth::pcap::{Link, PcapOpts, PcapWriter};
use wsclose_synth::tcp::{Side, TcpSim};
use wsclose_synth::ws::ClientHandshake;
use wsclose_synth::{Rng, WsConn};

use crate::util::{parse_csv, root, wsclose};

// ---------------------------------------------------------------------------------------
// Heap bytes of the current thread
// ---------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static NET: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(d: isize) {
    let _ = NET.try_with(|n| {
        let v = n.get() + d;
        n.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        count(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            count(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the most heap it held on this thread at once
/// beyond what was held before it started.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NET.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, (PEAK.with(Cell::get) - base).max(0) as usize)
}

// ---------------------------------------------------------------------------------------
// Running the analysis
// ---------------------------------------------------------------------------------------

fn capture_of(reader: Box<dyn Read + Send>, limits: &Limits) -> Capture {
    let r = FileReader::from_reader("test.pcap".into(), reader, limits).expect("pcap header");
    Capture::from_readers(vec![r], vec![], limits)
}

/// The records and the summary of one run over `bytes`.
fn run(bytes: &[u8], opts: &Options) -> (Vec<SessionRecord>, Summary) {
    let mut records = Vec::new();
    let summary = analyze(
        capture_of(Box::new(Cursor::new(bytes.to_vec())), &opts.limits),
        opts,
        &mut |r| {
            records.push(r);
            Ok(())
        },
    )
    .unwrap();
    (records, summary)
}

/// The CSV report of one run over `bytes`.
fn report(bytes: &[u8], opts: &Options) -> (String, Summary) {
    let mut w = CsvWriter::new(Vec::new()).unwrap();
    let capture = capture_of(Box::new(Cursor::new(bytes.to_vec())), &opts.limits);
    let summary = write_report(capture, opts, &Default::default(), &mut w).unwrap();
    (String::from_utf8(w.into_inner().unwrap()).unwrap(), summary)
}

fn opts(threads: usize) -> Options {
    Options {
        threads,
        ..Options::default()
    }
}

fn crowd_bytes(kind: CrowdKind, connections: u64) -> Vec<u8> {
    let mut v = Vec::new();
    CrowdCapture::new(Crowd {
        kind,
        connections,
        v6_every: 10,
        seed: 3,
    })
    .read_to_end(&mut v)
    .unwrap();
    v
}

// ---------------------------------------------------------------------------------------
// The memory budget
// ---------------------------------------------------------------------------------------

/// 24 sessions all hold ~20 KB of out-of-order data at once; a budget for about 8 of them
/// makes the oldest give theirs up: those, and only those, say `memory_budget` and
/// exact=false; the others are exact; the same for every thread count; and what is held
/// after each boundary is within the budget.
#[test]
fn the_budget_gives_up_the_oldest_holders_first() {
    const N: u64 = 24;
    const MSG: u32 = 20_000;
    let bytes = crowd_bytes(CrowdKind::Holding { bytes: MSG }, N);
    let with = |threads: usize, budget: usize| {
        let mut o = opts(threads);
        o.limits.memory_budget = budget;
        // Many boundaries while the data is held.
        o.limits.batch_packets = 64;
        report(&bytes, &o)
    };

    let (free, s) = with(2, 256 << 20);
    let rows = parse_csv(&free);
    let col = |n: &str| rows[0].iter().position(|c| c == n).unwrap();
    assert_eq!(rows.len() as u64, N + 1);
    for r in &rows[1..] {
        assert_eq!(r[col("exact")], "true", "{free}");
        assert_eq!(r[col("client_messages")], "1");
        assert_eq!(r[col("client_bytes")], MSG.to_string());
        assert_eq!(r[col("outcome")], "clean");
    }
    assert_eq!(s.stats.memory_budget, 0);
    assert!(s.buffered.peak > 8 * MSG as usize, "{:?}", s.buffered);

    let budget = 8 * MSG as usize;
    let (tight, s) = with(1, budget);
    let rows = parse_csv(&tight);
    let marked: Vec<bool> = rows[1..]
        .iter()
        .map(|r| r[col("anomalies")].contains("memory_budget"))
        .collect();
    let k = marked.iter().filter(|&&m| m).count();
    assert!(k > 0 && k < N as usize, "{tight}");
    assert!(
        marked.iter().take(k).all(|&m| m),
        "the oldest sessions give up first: {marked:?}"
    );
    for r in &rows[1..=k] {
        assert_eq!(r[col("exact")], "false");
    }
    for r in &rows[k + 1..] {
        assert_eq!(r[col("exact")], "true");
        assert_eq!(r[col("client_bytes")], MSG.to_string());
    }
    assert_eq!(s.stats.memory_budget, k as u64);
    assert!(s.stats.memory_budget_bytes > 0);
    assert!(
        s.stats.to_string().contains("over the memory budget"),
        "{}",
        s.stats
    );
    assert!(s.buffered.peak > budget);
    assert!(s.buffered.peak_within_budget <= budget, "{:?}", s.buffered);
    for t in [2, 3, 4] {
        assert_eq!(with(t, budget).0, tight, "threads {t}");
    }
}

/// An HTTP head being gathered is under the budget too: given up, it is read as cut off
/// where it was (the session is still reported, with `memory_budget`).
#[test]
fn a_head_being_gathered_is_given_up_as_cut() {
    let mut pk = Vec::new();
    let mut ws = conn("10.0.0.1:40000", "10.0.0.2:80", 0, 1);
    ws.tcp.handshake();
    let hs = ClientHandshake::new("h.example", "/slow", &mut ws.rng);
    let req = hs.to_bytes();
    // The request without its last CRLF, then many packets of nothing new.
    ws.tcp.send(Side::Client, &req[..req.len() - 2]);
    drain(&mut ws, &mut pk);
    let mut filler = conn("10.0.0.3:40000", "10.0.0.2:80", 1_000_000, 2);
    filler.tcp.handshake();
    for _ in 0..40 {
        filler.tcp.send(Side::Client, b"x");
    }
    drain(&mut filler, &mut pk);
    ws.tcp.wait(1_000_000_000);
    ws.tcp.send(Side::Client, b"\r\n");
    ws.accept(&hs);
    ws.text(Side::Client, "after");
    drain(&mut ws, &mut pk);
    let bytes = pcap(pk);

    let mut o = opts(1);
    o.limits.batch_packets = 8;
    let (free, _) = run(&bytes, &o);
    assert_eq!(free.len(), 1);
    assert!(free[0].exact && free[0].anomalies.is_empty());
    o.limits.memory_budget = 64;
    let (tight, s) = run(&bytes, &o);
    assert_eq!(tight.len(), 1, "the session is still reported");
    let r = &tight[0];
    assert!(
        r.anomalies
            .iter()
            .any(|a| a == wsclose::record::Anomaly::MemoryBudget),
        "{r:?}"
    );
    assert!(!r.exact);
    assert_eq!(r.path, "/slow", "the whole lines before the cut are kept");
    assert_eq!(s.stats.memory_budget, 1);
}

/// The header fields a session keeps for its record count against the budget past 1 KiB
/// (long heads: up to 32 fields of 256 bytes): given up, the record's handshake headers are
/// empty and the session says `memory_budget`; a browser's handshake is never charged.
#[test]
fn long_kept_headers_are_under_the_budget() {
    let mut pk = Vec::new();
    let mut ws = conn("10.0.0.1:40000", "10.0.0.2:80", 0, 1);
    ws.tcp.handshake();
    let hs = ClientHandshake::browser("h.example", "/long", &mut ws.rng);
    let mut req = hs.to_bytes();
    req.truncate(req.len() - 2);
    for i in 0..8 {
        req.extend_from_slice(format!("X-Long-{i}: {}\r\n", "v".repeat(200)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    ws.tcp.send(Side::Client, &req);
    ws.accept(&hs);
    ws.text(Side::Client, "hi");
    drain(&mut ws, &mut pk);
    let mut short = conn("10.0.0.3:40000", "10.0.0.2:80", 1_000_000, 2);
    open(&mut short);
    drain(&mut short, &mut pk);
    let bytes = pcap(pk);

    let mut o = opts(1);
    o.limits.batch_packets = 4;
    let (free, _) = run(&bytes, &o);
    assert_eq!(free.len(), 2);
    assert_eq!(free[0].handshake_headers.request.len(), 17, "{:?}", free[0]);
    assert!(free.iter().all(|r| r.exact && r.anomalies.is_empty()));
    o.limits.memory_budget = 1024;
    for threads in [1, 2, 3] {
        o.threads = threads;
        let (tight, s) = run(&bytes, &o);
        assert_eq!(tight.len(), 2);
        let (long, short) = (&tight[0], &tight[1]);
        assert!(long.handshake_headers.request.is_empty(), "{long:?}");
        assert!(long
            .anomalies
            .iter()
            .any(|a| a == wsclose::record::Anomaly::MemoryBudget));
        assert_eq!(long.path, "/long");
        assert_eq!(short.handshake_headers, free[1].handshake_headers);
        assert!(short.exact && short.anomalies.is_empty());
        assert_eq!(s.stats.memory_budget, 1);
    }
}

#[test]
fn memory_option_on_the_command_line() {
    let dir = std::env::temp_dir().join(format!("wsclose-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("holding.pcap");
    // 3 MB: more than one batch of 2 MiB, so the data is held at a boundary.
    std::fs::write(&file, crowd_bytes(CrowdKind::Holding { bytes: 60_000 }, 48)).unwrap();
    let f = file.to_str().unwrap();
    let out = wsclose(&["sessions", "--memory", "64K", f]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("over the memory budget"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("memory_budget"));
    let out = wsclose(&["sessions", f]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("memory_budget"));
    for bad in ["12X", "1.5G", ""] {
        let out = wsclose(&["sessions", "--memory", bad, f]);
        assert_eq!(out.status.code(), Some(2), "--memory {bad:?}");
    }
    assert_eq!(
        wsclose(&["sessions", "--max-connections", "0", f])
            .status
            .code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Bytes per connection
// ---------------------------------------------------------------------------------------

/// The most heap one run over `n` connections of `kind` held at once (one thread).
fn peak_heap_of(kind: CrowdKind, n: u64) -> (usize, Summary) {
    let o = opts(1);
    let capture = capture_of(
        Box::new(CrowdCapture::new(Crowd {
            kind,
            connections: n,
            v6_every: 10,
            seed: 3,
        })),
        &o.limits,
    );
    let (summary, peak) = peak_heap(|| analyze(capture, &o, &mut |_| Ok(())).unwrap());
    (peak, summary)
}

/// Heap per connection while many connections of `kind` are open at once: the growth
/// from `base` to `n` connections (powers of two, so that every table is as full as it
/// gets; `base` large enough to fill a batch of 16 Ki packets), which leaves out what
/// does not depend on the connections (batch buffers).
fn heap_per_connection(kind: CrowdKind, base: u64, n: u64) -> (usize, Summary) {
    let (small, _) = peak_heap_of(kind, base);
    let (large, summary) = peak_heap_of(kind, n);
    ((large - small) / (n - base) as usize, summary)
}

/// A connection without payload (a SYN, 10% of them IPv6): 64 bytes in the compact
/// table, 16 as a candidate, 5 to 10 in the hash table (48 more for an IPv6 key). The
/// heap counts capacity, growth included (RSS only what is touched: 95 bytes a
/// connection at 1 M); 128 bytes a connection is 128 MiB a million.
#[test]
fn a_syn_only_connection_takes_tens_of_bytes() {
    let (per, s) = heap_per_connection(CrowdKind::SynOnly, 1 << 14, 1 << 17);
    assert_eq!(s.stats.tcp_connections, 1 << 17);
    assert_eq!(s.stats.no_payload, 1 << 17);
    eprintln!("heap per SYN-only connection: {per} bytes");
    assert!(per <= 128, "{per} bytes per SYN-only connection");
}

/// An open WebSocket session (browser-like handshake, a message each way): issue 9 asks for
/// 1 GiB a million, i.e. about 1 KiB a session; measured 1,468 bytes after main's record
/// facts were merged, 1,317 since the rarely used TCP counters and the messages-before-close
/// facts are boxed, 1,177 since the payload consumer is inline and its inflation state boxed
/// only with permessage-deflate, 1,076 since the counters, the texts' offsets and the
/// pairing window's entries shrank, 942 since the handshake texts that sessions share are
/// interned and the yes/no facts packed (the TCP state 336, the session 424, its own texts
/// 120, the tables). Guarded at 960 bytes.
#[test]
fn an_open_session_takes_about_a_kilobyte() {
    let (per, s) = heap_per_connection(CrowdKind::OpenSessions, 1 << 12, 1 << 14);
    assert_eq!(s.stats.sessions, 1 << 14);
    eprintln!("heap per open WebSocket session: {per} bytes");
    assert!(per <= 960, "{per} bytes per open session");
}

// ---------------------------------------------------------------------------------------
// Peak RSS for a million connections (ignored: run with --release, see the module doc)
// ---------------------------------------------------------------------------------------

const RSS_CHILD: &str = "WSCLOSE_RSS_CHILD";

/// Peak RSS in KiB of a child process that analyzes `n` connections of `kind`.
fn child_peak_rss_kib(kind: &str, n: u64) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "memory::rss_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_CHILD, format!("{kind}:{n}"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("child VmHWM: "))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM from the child: {text}"))
}

/// The child side of the RSS tests: analyzes the crowd named in `WSCLOSE_RSS_CHILD` as
/// the command line would (2 threads), then prints its peak RSS.
#[test]
#[ignore = "run by the rss_* tests in a process of its own"]
fn rss_child() {
    let Ok(spec) = std::env::var(RSS_CHILD) else {
        return;
    };
    let (kind, n) = spec.split_once(':').unwrap();
    let kind = match kind {
        "syn" => CrowdKind::SynOnly,
        _ => CrowdKind::OpenSessions,
    };
    let o = opts(2);
    let capture = capture_of(
        Box::new(CrowdCapture::new(Crowd {
            kind,
            connections: n.parse().unwrap(),
            v6_every: 0,
            seed: 1,
        })),
        &o.limits,
    );
    let mut w = CsvWriter::new(std::io::sink()).unwrap();
    let s = write_report(capture, &o, &Default::default(), &mut w).unwrap();
    println!("child: {}", s.stats);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    println!("child VmHWM: {}", hwm["VmHWM:".len()..].trim());
}

#[test]
#[ignore = "1 M connections; run with --release (see the module doc)"]
fn rss_1m_syn_only_connections_under_128_mib() {
    let kib = child_peak_rss_kib("syn", 1_000_000);
    println!(
        "1,000,000 SYN-only connections: peak RSS {} MiB",
        kib / 1024
    );
    assert!(kib < 128 * 1024, "{kib} KiB");
}

#[test]
#[ignore = "1 M sessions; run with --release (see the module doc)"]
/// Issue 9's target is 1 GiB; measured 1.41 GiB after main's record facts were merged,
/// 1,297 MiB since the rarely used facts are boxed, 1,161 MiB since the payload consumer was
/// split, 1,081 MiB since the counters, the texts' offsets and the pairing window's entries
/// shrank, 942 MiB since the handshake texts that sessions share are interned and the
/// yes/no facts packed: the target is met.
fn rss_1m_open_sessions_under_1_gib() {
    let kib = child_peak_rss_kib("open", 1_000_000);
    println!(
        "1,000,000 open WebSocket sessions: peak RSS {} MiB",
        kib / 1024
    );
    assert!(kib < 1024 * 1024, "{kib} KiB");
}

// ---------------------------------------------------------------------------------------
// Order and streaming
// ---------------------------------------------------------------------------------------

const T0: u64 = 1_700_000_000_000_000_000;
const S: u64 = 1_000_000_000;

fn conn(client: &str, server: &str, start: u64, seed: u64) -> WsConn {
    let c: SocketAddr = client.parse().unwrap();
    let s: SocketAddr = server.parse().unwrap();
    let t = TcpSim::new(
        c,
        s,
        1000 * seed as u32,
        7_000_000 + seed as u32,
        T0 + start,
    );
    WsConn::new(t, Rng::new(seed))
}

fn drain(ws: &mut WsConn, out: &mut Vec<(u64, bool, Vec<u8>)>) {
    while let Some(s) = ws.tcp.pop() {
        out.push((s.ts_ns, s.from == Side::Client, ws.tcp.ip_packet(&s)));
    }
}

/// A session: handshake, a message each way.
fn open(ws: &mut WsConn) {
    ws.tcp.handshake();
    let hs = ClientHandshake::new("example.com", "/", &mut ws.rng);
    ws.request(&hs);
    ws.accept(&hs);
    ws.text(Side::Client, "hi");
    ws.text(Side::Server, "hello");
}

fn close(ws: &mut WsConn) {
    ws.close(Side::Client, Some(1000), "bye");
    ws.close(Side::Server, Some(1000), "bye");
    ws.fin(Side::Client);
    ws.fin(Side::Server);
}

fn pcap(mut pk: Vec<(u64, bool, Vec<u8>)>) -> Vec<u8> {
    pk.sort_by_key(|p| p.0);
    let link = Link::ethernet();
    let mut w = PcapWriter::new(Vec::new(), link.linktype(), PcapOpts::default()).unwrap();
    for (ts, from_client, ip) in pk {
        w.write_packet(ts, &link.frame(&ip, from_client)).unwrap();
    }
    w.into_inner().unwrap()
}

/// A (starts first, open 300 s) and B (starts at 1 s, done at 2 s), then quiet traffic.
fn long_and_short() -> Vec<u8> {
    let mut pk = Vec::new();
    let mut a = conn("10.0.0.1:40001", "10.0.0.9:80", 0, 1);
    open(&mut a);
    drain(&mut a, &mut pk);
    let mut b = conn("10.0.0.2:40002", "10.0.0.9:80", S, 2);
    open(&mut b);
    close(&mut b);
    drain(&mut b, &mut pk);
    a.tcp.wait(300 * S);
    close(&mut a);
    drain(&mut a, &mut pk);
    pcap(pk)
}

/// `--order end`: each session when it ends (B, closed long before A), rows numbered in
/// that order; the default keeps first-packet order. The same sessions either way.
#[test]
fn order_end_writes_each_session_when_it_ends() {
    let dir = std::env::temp_dir().join(format!("wsclose-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("long-and-short.pcap");
    std::fs::write(&file, long_and_short()).unwrap();
    let f = file.to_str().unwrap();
    let rows = |args: &[&str]| {
        let out = wsclose(&[&["sessions"], args, &[f]].concat());
        assert_eq!(out.status.code(), Some(0));
        parse_csv(&String::from_utf8(out.stdout).unwrap())
    };
    let first = rows(&[]);
    let end = rows(&["--order", "end"]);
    let pick = |r: &[Vec<String>]| {
        r[1..]
            .iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pick(&first),
        [
            ("1".into(), "0".into(), "10.0.0.1:40001".into()),
            ("2".into(), "1".into(), "10.0.0.2:40002".into())
        ]
    );
    assert_eq!(
        pick(&end),
        [
            ("1".into(), "1".into(), "10.0.0.2:40002".into()),
            ("2".into(), "0".into(), "10.0.0.1:40001".into())
        ]
    );
    assert_eq!(first[1][3..], end[2][3..]);
    assert_eq!(first[2][3..], end[1][3..]);
    assert_eq!(rows(&["--order", "end", "--threads", "1"]), end);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that counts the bytes handed out, to see when records are written.
struct Counted(Cursor<Vec<u8>>, Arc<AtomicU64>);

impl Read for Counted {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(b)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// For each record, how much of the input had been read when it was written.
fn written_at(bytes: &[u8], o: &Options) -> Vec<(u64, u64)> {
    let read = Arc::new(AtomicU64::new(0));
    let capture = capture_of(
        Box::new(Counted(Cursor::new(bytes.to_vec()), read.clone())),
        &o.limits,
    );
    let mut at = Vec::new();
    analyze(capture, o, &mut |r| {
        at.push((r.tcp_stream, read.load(Ordering::Relaxed)));
        Ok(())
    })
    .unwrap();
    at
}

/// Filler: `n` short sessions, one every `every` ns from `start`.
fn filler(pk: &mut Vec<(u64, bool, Vec<u8>)>, n: u64, start: u64, every: u64) {
    for i in 0..n {
        let mut f = conn(
            &format!("10.1.{}.{}:5000", i / 200, i % 200 + 1),
            "10.0.0.9:80",
            start + i * every,
            100 + i,
        );
        open(&mut f);
        close(&mut f);
        drain(&mut f, pk);
    }
}

/// In first-packet order, a finished session is written while the input is still being
/// read: once closed and quiet for the linger time (120 s of capture time), when nothing
/// older is still open. Even behind a connection that never carried payload (a SYN
/// nobody answered): it stops holding the report back after 10 s without a handshake.
#[test]
fn records_flow_before_the_end_of_the_input() {
    let mut pk = Vec::new();
    let mut syn = conn("10.0.0.5:40005", "10.0.0.9:80", 0, 5);
    syn.tcp.emit(
        Side::Client,
        5000,
        wsclose_synth::packet::SYN,
        65535,
        vec![],
        vec![],
    );
    drain(&mut syn, &mut pk);
    let mut b = conn("10.0.0.2:40002", "10.0.0.9:80", S, 2);
    open(&mut b);
    close(&mut b);
    drain(&mut b, &mut pk);
    // 400 s of other sessions afterwards.
    filler(&mut pk, 400, 10 * S, S);
    let bytes = pcap(pk);
    let total = bytes.len() as u64;
    let small = |threads: usize| {
        let mut o = opts(threads);
        o.limits.batch_packets = 256;
        // Small reads, so that how much was read says when a record was written.
        o.limits.chunk_bytes = 64 << 10;
        o.limits.max_record_bytes = 64 << 10;
        o
    };
    for threads in [1, 2] {
        let at = written_at(&bytes, &small(threads));
        assert_eq!(at.len(), 401);
        let (stream, read) = at[0];
        assert_eq!(stream, 1, "B, after the SYN-only connection (tcp.stream 0)");
        assert!(read < total / 2, "B written after {read} of {total} bytes");
        // Every filler session ends within a second; all but those of the last 120 s
        // (the linger time) are written before the end.
        let early = at.iter().filter(|&&(_, r)| r < total).count();
        assert!(
            early > 200,
            "{early} of {} records before the end",
            at.len()
        );
    }
    // With the window as long as the capture, the SYN holds everything back.
    let mut o = small(1);
    o.limits.recognise_ns = 1000 * S as i64;
    let at = written_at(&bytes, &o);
    assert!(at.iter().all(|&(_, r)| r == total), "{at:?}");
}

/// The recognition window applies to the connection the report waits for: a connection
/// that sends its Upgrade request 11 s after its SYN is given up on (counted) when it is
/// the oldest one waited for, and followed when an older session is still open (it holds
/// nothing back then). The same for every thread count.
#[test]
fn a_late_handshake_is_followed_unless_it_held_the_report_back() {
    let late = |with_older: bool| {
        let mut pk = Vec::new();
        if with_older {
            let mut a = conn("10.0.0.1:40001", "10.0.0.9:80", 0, 1);
            open(&mut a);
            drain(&mut a, &mut pk);
            a.tcp.wait(60 * S);
            close(&mut a);
            drain(&mut a, &mut pk);
        }
        let mut l = conn("10.0.0.3:40003", "10.0.0.9:80", S, 3);
        l.tcp.handshake();
        drain(&mut l, &mut pk);
        l.tcp.wait(11 * S);
        let hs = ClientHandshake::new("late.example", "/", &mut l.rng);
        l.request(&hs);
        l.accept(&hs);
        close(&mut l);
        drain(&mut l, &mut pk);
        // Traffic that makes boundaries happen while it waits.
        filler(&mut pk, 30, 2 * S, S / 2);
        pcap(pk)
    };
    for threads in [1, 2, 3] {
        let mut o = opts(threads);
        o.limits.batch_packets = 32;
        let (recs, s) = run(&late(false), &o);
        assert!(recs.iter().all(|r| r.host != "late.example"));
        assert_eq!(s.stats.unrecognised, 1, "threads {threads}");
        let (recs, s) = run(&late(true), &o);
        assert!(recs.iter().any(|r| r.host == "late.example"));
        assert_eq!(s.stats.unrecognised, 0);
    }
}

/// Every fixture gives the same sessions in end order as in first-packet order.
#[test]
fn end_order_holds_the_same_sessions_as_first_packet_order() {
    for dir in ["fixtures/captures", "fixtures/synthetic"] {
        for cap in crate::util::captures_in(&root().join(dir)) {
            let bytes = std::fs::read(&cap).unwrap();
            let mut o = opts(2);
            let (first, _) = run(&bytes, &o);
            o.order = Order::End;
            let (mut end, _) = run(&bytes, &o);
            end.sort_by_key(|r| r.first_packet);
            assert_eq!(first, end, "{}", cap.display());
        }
    }
}

/// Past `--max-connections`, connections are evicted whatever table they are in (here
/// SYN-only ones, in the compact table): counted, the same for every thread count, and
/// the sessions around them still reported.
#[test]
fn max_connections_evicts_connections_without_payload_too() {
    let mut pk = Vec::new();
    let mut a = conn("10.0.0.1:40001", "10.0.0.9:80", 0, 1);
    open(&mut a);
    drain(&mut a, &mut pk);
    for i in 0..2000u32 {
        if i % 50 == 0 {
            // A stays busy, so it is never the longest idle.
            a.tcp.clock_ns = a.tcp.clock_ns.max(T0 + S + i as u64 * 1000);
            a.ping(Side::Client, b"k");
            a.pong(Side::Server, b"k");
        }
        let mut s = conn(
            &format!("10.2.{}.{}:6000", i / 250, i % 250 + 1),
            "10.0.0.9:80",
            S + i as u64 * 1000,
            7000 + i as u64,
        );
        s.tcp.emit(
            Side::Client,
            i * 7,
            wsclose_synth::packet::SYN,
            65535,
            vec![],
            vec![],
        );
        drain(&mut s, &mut pk);
    }
    a.tcp.wait(2 * S);
    close(&mut a);
    drain(&mut a, &mut pk);
    let bytes = pcap(pk);
    let run_with = |threads: usize| {
        let mut o = opts(threads);
        o.limits.max_connections = 100;
        o.limits.batch_packets = 128;
        report(&bytes, &o)
    };
    let (one, s) = run_with(1);
    assert!(s.stats.evicted >= 1900, "{}", s.stats);
    assert_eq!(s.stats.tcp_connections, 2001);
    let rows = parse_csv(&one);
    assert_eq!(rows.len(), 2, "{one}");
    let col = |n: &str| rows[0].iter().position(|c| c == n).unwrap();
    assert_eq!(rows[1][col("client_pings")], "40");
    assert_eq!(rows[1][col("exact")], "true", "{one}");
    for t in [2, 3] {
        let (other, so) = run_with(t);
        assert_eq!(other, one, "threads {t}");
        assert_eq!(so.stats, s.stats);
    }
    let dir = std::env::temp_dir().join(format!("wsclose-maxconn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("syns.pcap");
    std::fs::write(&file, &bytes).unwrap();
    let out = wsclose(&[
        "sessions",
        "--max-connections",
        "100",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connections evicted"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The byte side of the recognition window: a request head that grows past
/// `recognise_bytes` (while still under the head's own cap) is given up on.
#[test]
fn a_head_past_the_recognition_bytes_is_given_up() {
    let mut pk = Vec::new();
    let mut ws = conn("10.0.0.1:40000", "10.0.0.2:80", 0, 1);
    ws.tcp.handshake();
    ws.tcp.send(Side::Client, b"GET /never-ending HTTP/1.1\r\n");
    for _ in 0..10 {
        ws.tcp.send(
            Side::Client,
            &[b"X-Pad: ", &[b'a'; 90][..], b"\r\n"].concat(),
        );
    }
    drain(&mut ws, &mut pk);
    let bytes = pcap(pk);
    let mut o = opts(1);
    let (recs, s) = run(&bytes, &o);
    assert!(recs.is_empty());
    assert_eq!(s.stats.unrecognised, 0, "still a head being gathered");
    o.limits.recognise_bytes = 512;
    let (recs, s) = run(&bytes, &o);
    assert!(recs.is_empty());
    assert_eq!(s.stats.unrecognised, 1);
    assert!(s.stats.to_string().contains("given up on"), "{}", s.stats);
}

/// On a pipe that stays open, rows appear as they are found: `wsclose sessions -` writes
/// (and flushes) a finished session while its input is still open.
#[test]
fn rows_appear_on_a_pipe_before_it_closes() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut pk = Vec::new();
    let mut b = conn("10.0.0.2:40002", "10.0.0.9:80", 0, 2);
    open(&mut b);
    close(&mut b);
    drain(&mut b, &mut pk);
    // 300 s of sessions with 20 KB messages afterwards: several batches past the linger.
    for i in 0..300u64 {
        let mut f = conn(
            &format!("10.3.{}.{}:5000", i / 200, i % 200 + 1),
            "10.0.0.9:80",
            S + i * S,
            500 + i,
        );
        open(&mut f);
        f.message(Side::Server, wsclose_synth::ws::OP_BINARY, &[7u8; 20_000]);
        close(&mut f);
        drain(&mut f, &mut pk);
    }
    let bytes = pcap(pk);
    assert!(bytes.len() > 6 << 20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sessions", "--threads", "2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    // The input is still open: the header and B's row must come anyway.
    let wait = std::time::Duration::from_secs(20);
    let header = rx
        .recv_timeout(wait)
        .expect("the header while the input is open");
    assert!(header.starts_with("session,"));
    let first = rx
        .recv_timeout(wait)
        .expect("a row while the input is open");
    assert!(first.contains("10.0.0.2:40002"), "{first}");
    drop(stdin);
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(rest.len(), 300);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
}

/// With no budget at all and small batches (buffers given up at every boundary), every
/// fixture gives the same report for any number of threads, in both orders.
#[test]
fn a_zero_budget_is_deterministic_on_every_fixture() {
    let mut marked = 0;
    for dir in ["fixtures/captures", "fixtures/synthetic"] {
        for cap in crate::util::captures_in(&root().join(dir)) {
            let bytes = std::fs::read(&cap).unwrap();
            for order in [Order::FirstPacket, Order::End] {
                let with = |threads: usize| {
                    let mut o = opts(threads);
                    o.order = order;
                    o.limits.memory_budget = 0;
                    o.limits.batch_packets = 8;
                    report(&bytes, &o)
                };
                let (one, s) = with(1);
                assert_eq!(s.buffered.peak_within_budget, 0, "{}", cap.display());
                marked += one.matches("memory_budget").count();
                for t in [2, 3, 4] {
                    let (other, so) = with(t);
                    assert_eq!(other, one, "{} threads {t} {order:?}", cap.display());
                    assert_eq!(so.stats, s.stats);
                }
            }
        }
    }
    assert!(marked > 0, "no fixture held anything at a boundary");
}

/// The buffers of the later layers are under the budget too: with no budget at all and
/// small batches, the TLS layer (partial records, handshake messages, its plaintext
/// buffer), the permessage-deflate windows and inflaters and the mid-stream pickup are
/// given up at every boundary — the reports say so (`memory_budget`, exact=false), stay
/// the same for any number of threads in both orders, and nothing is held past a
/// boundary.
#[test]
fn a_zero_budget_covers_tls_inflation_and_midstream() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    // (fixture group, rows marked memory_budget, the most held at a boundary)
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for dir in ["fixtures/reach", "fixtures/tls", "fixtures/proxy"] {
        for cap in crate::util::captures_in(&root().join(dir)) {
            let bytes = std::fs::read(&cap).unwrap();
            let keys = cap.with_extension("keys");
            let mut log = wsclose::tls::KeyLog::new();
            if keys.exists() {
                log.add_file(&keys).unwrap();
            }
            let log = Arc::new(log);
            for order in [Order::FirstPacket, Order::End] {
                let with = |threads: usize| {
                    let mut o = opts(threads);
                    o.order = order;
                    o.keylog = Arc::clone(&log);
                    o.limits.memory_budget = 0;
                    o.limits.batch_packets = 8;
                    report(&bytes, &o)
                };
                let (one, s) = with(1);
                let name = cap.display().to_string();
                assert_eq!(s.buffered.peak_within_budget, 0, "{name}");
                let (other, so) = with(3);
                assert_eq!(other, one, "{name} {order:?}");
                assert_eq!(so.stats, s.stats, "{name}");
                let stem = cap.file_stem().unwrap().to_string_lossy().into_owned();
                let group = stem.split('-').take(2).collect::<Vec<_>>().join("-");
                let e = seen.entry(group).or_default();
                e.0 += one.matches("memory_budget").count();
                e.1 = e.1.max(s.buffered.peak);
            }
        }
    }
    eprintln!("{seen:?}");
    // (What only spare space held, as tls-resume's plaintext buffer, is freed without a
    // mark: nothing was lost. Heads split over segments and a probe's chains alone are
    // covered by the unit tests of `flow/app.rs`.)
    for (group, what) in [
        ("tls12", "TLS partial records"),
        ("tls13-suites", "TLS partial records"),
        ("deflate-py", "inflater windows"),
        ("deflate-node", "inflater windows"),
        ("midstream", "a mid-stream session's buffers"),
    ] {
        let (marked, peak) = seen[group];
        assert!(
            marked > 0 && peak > 0,
            "{group}: {what} not under the budget ({marked} rows marked, {peak} bytes held)"
        );
    }
}

/// A connection picked up mid-stream (its handshake not in the capture): a session of
/// `n` text messages each way, one every `every` ns from `start`; its first `skip`
/// packets (the TCP and WebSocket handshakes) are left out.
fn midstream_session(pk: &mut Vec<(u64, bool, Vec<u8>)>, start: u64, n: u32, every: u64) {
    let mut m = conn("10.0.0.7:40007", "10.0.0.9:80", start, 7);
    let mut own = Vec::new();
    open(&mut m);
    drain(&mut m, &mut own);
    let skip = own.len();
    for i in 0..n {
        if i > 0 {
            m.tcp.wait(every);
        }
        m.text(Side::Client, &format!("{{\"n\":{i}}}"));
        m.text(Side::Server, &format!("{{\"ok\":{i}}}"));
    }
    close(&mut m);
    drain(&mut m, &mut own);
    pk.extend(own.into_iter().skip(skip));
}

/// The recognition window and mid-stream pickup: a probe that follows a chain of frames
/// is not given up on, however slowly the frames come (here one each way every 11 s: the
/// evidence suffices at the second pair, after the 10 s); one that sees no frames (a client sending text lines, the server
/// silent, so the probe's own window never closes) stops holding the report back after
/// 10 s. The same for any number of threads.
#[test]
fn a_midstream_probe_is_given_up_on_only_without_frames() {
    // The slow mid-stream session, and a short session B that starts after it.
    let mut pk = Vec::new();
    midstream_session(&mut pk, 0, 4, 11 * S);
    let mut b = conn("10.0.0.2:40002", "10.0.0.9:80", S, 2);
    open(&mut b);
    close(&mut b);
    drain(&mut b, &mut pk);
    filler(&mut pk, 300, 2 * S, S);
    let slow = pcap(pk);
    for threads in [1, 3] {
        let mut o = opts(threads);
        o.limits.batch_packets = 8;
        let (recs, s) = run(&slow, &o);
        let m = recs
            .iter()
            .find(|r| r.client.port == 40007)
            .expect("the mid-stream session is reported");
        assert!(m.anomalies.contains(wsclose::record::Anomaly::Midstream));
        assert!(m.client_side.messages >= 3, "{m:?}");
        assert_eq!(s.stats.unrecognised, 0, "threads {threads}");
    }

    // A client sending lines of text mid-stream (no frames), the server silent.
    let mut pk = Vec::new();
    let mut t = conn("10.0.0.8:40008", "10.0.0.9:80", 0, 8);
    for i in 0..60u64 {
        t.tcp.clock_ns = T0 + i * S / 2;
        t.tcp.send(
            Side::Client,
            format!("line {i}: nothing framed here\r\n").as_bytes(),
        );
    }
    let mut own = Vec::new();
    drain(&mut t, &mut own);
    pk.extend(own);
    let mut b = conn("10.0.0.2:40002", "10.0.0.9:80", S, 2);
    open(&mut b);
    close(&mut b);
    drain(&mut b, &mut pk);
    filler(&mut pk, 300, 2 * S, S);
    let lines = pcap(pk);
    let total = lines.len() as u64;
    for threads in [1, 2] {
        let mut o = opts(threads);
        o.limits.batch_packets = 256;
        o.limits.chunk_bytes = 64 << 10;
        o.limits.max_record_bytes = 64 << 10;
        let at = written_at(&lines, &o);
        let (stream, read) = at[0];
        assert_eq!(stream, 1, "B, after the probed connection (tcp.stream 0)");
        // B ends at 2 s and lingers 120 s; the capture goes on to 302 s.
        assert!(
            read < total * 3 / 4,
            "B written after {read} of {total} bytes"
        );
        let (_, s) = run(&lines, &o);
        assert_eq!(s.stats.unrecognised, 1, "its later payload is not followed");
        // With the window as long as the capture, the probe holds everything back.
        o.limits.recognise_ns = 1000 * S as i64;
        assert!(written_at(&lines, &o).iter().all(|&(_, r)| r == total));
    }
}

/// `--order end` with both legs of a proxy in the capture: every row of the default
/// order is there (as the same row but for its number and its peer's), numbered in the
/// order written, and each leg names its peer's row, which names it back.
#[test]
fn order_end_pairs_proxy_legs_by_the_rows_written() {
    let rows = |args: &[&str], f: &str| {
        let out = wsclose(&[&["sessions"], args, &[f]].concat());
        assert_eq!(out.status.code(), Some(0));
        crate::util::rows_by_name(&String::from_utf8(out.stdout).unwrap())
    };
    let mut paired = 0;
    for cap in crate::util::captures_in(&root().join("fixtures/proxy")) {
        let f = cap.to_str().unwrap();
        let first = rows(&[], f);
        let end = rows(&["--order", "end"], f);
        assert_eq!(end.len(), first.len(), "{f}");
        for (i, r) in end.iter().enumerate() {
            assert_eq!(r["session"], (i + 1).to_string(), "{f}");
            if !r["peer_session"].is_empty() {
                let p: usize = r["peer_session"].parse().unwrap();
                assert_eq!(end[p - 1]["peer_session"], r["session"], "{f}");
                paired += 1;
            }
        }
        let key = |r: &std::collections::HashMap<String, String>| {
            let mut r = r.clone();
            r.remove("session");
            let p = r.remove("peer_session").unwrap();
            (
                r["tcp_stream"].clone(),
                !p.is_empty(),
                format!("{:?}", {
                    let mut v: Vec<_> = r.into_iter().collect();
                    v.sort();
                    v
                }),
            )
        };
        let mut a: Vec<_> = first.iter().map(key).collect();
        let mut b: Vec<_> = end.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{f}");
    }
    assert!(paired > 0, "no proxy legs paired");
}
