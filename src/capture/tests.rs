//! The capture reader: merge order, lazy opening, live inputs, stop requests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A classic pcap (Ethernet, µs) whose records carry `(ts_us, byte)`: one byte of data.
fn pcap(records: &[(u64, u8)]) -> Vec<u8> {
    let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 0, 0, 0]);
    for &(us, b) in records {
        f.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.push(b);
    }
    f
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsclose-cap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &Path, name: &str, records: &[(u64, u8)]) -> String {
    let p = d.join(name);
    std::fs::write(&p, pcap(records)).unwrap();
    p.to_str().unwrap().to_string()
}

/// Every packet of `cap`: (number, data byte, origin), and the most inputs open at once.
fn drain(cap: &mut Capture) -> (Vec<(u64, u8, Option<Origin>)>, usize) {
    let mut out = Vec::new();
    let mut most_open = 0;
    loop {
        let mut b = Batch::default();
        let fill = cap.fill(&mut b);
        most_open = most_open.max(cap.n_open());
        for p in &b.packets {
            out.push((p.number, b.data(p)[0], b.origin(p.number)));
        }
        if let Fill::End = fill {
            return (out, most_open);
        }
    }
}

fn small_batches() -> Limits {
    Limits {
        batch_packets: 2,
        ..Limits::default()
    }
}

#[test]
fn merge_is_by_first_packet_then_path_whatever_the_argument_order() {
    let d = dir("order");
    // b and c start at the same time: b comes first (by path) on every tie.
    let a = write(&d, "a.pcap", &[(5, b'a'), (30, b'A')]);
    let b = write(&d, "b.pcap", &[(1, b'b'), (10, b'B'), (30, b'X')]);
    let c = write(&d, "c.pcap", &[(1, b'c'), (10, b'C')]);
    let want: Vec<u8> = b"bcaBCXA".to_vec();
    for order in [[&a, &b, &c], [&c, &b, &a], [&b, &a, &c]] {
        let paths: Vec<String> = order.iter().map(|s| s.to_string()).collect();
        let mut cap = Capture::open(&paths, &small_batches());
        cap.set_per_file(true);
        let (got, _) = drain(&mut cap);
        let bytes: Vec<u8> = got.iter().map(|g| g.1).collect();
        assert_eq!(bytes, want, "{paths:?}");
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<_>>()
        );
        // Origins: the input as given, and the packet's number in it.
        let x = got.iter().find(|g| g.1 == b'X').unwrap().2.unwrap();
        assert_eq!(
            (paths[x.input as usize].as_str(), x.number),
            (b.as_str(), 3)
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_rotated_set_keeps_at_most_two_files_open() {
    let d = dir("rotated");
    let paths: Vec<String> = (0..50u64)
        .map(|i| {
            write(
                &d,
                &format!("f{i:02}.pcap"),
                &[(i * 10, i as u8), (i * 10 + 5, i as u8)],
            )
        })
        .collect();
    let mut cap = Capture::open(&paths, &small_batches());
    assert_eq!(cap.n_open(), 0, "the pre-pass closes every file");
    let (got, most_open) = drain(&mut cap);
    assert_eq!(got.len(), 100);
    assert!(most_open <= 2, "{most_open} files open at once");
    assert_eq!(cap.n_open(), 0, "every file is closed at its end");
    assert_eq!(cap.bytes_read(), 50 * (24 + 2 * 17));
    // Overlapping files are open together; the chunk size shrinks with their number.
    assert_eq!(cap.chunk_for(1), Limits::default().chunk_bytes);
    assert!(cap.chunk_for(100) < cap.chunk_for(10));
    assert_eq!(cap.chunk_for(100_000), MIN_CHUNK);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_stop_ends_regular_files_at_the_next_batch() {
    let d = dir("stop");
    let recs: Vec<(u64, u8)> = (0..100).map(|i| (i, i as u8)).collect();
    let p = write(&d, "a.pcap", &recs);
    let stop = Arc::new(Stop::default());
    let mut cap = Capture::open_with(&[p], &small_batches(), Arc::clone(&stop));
    let mut b = Batch::default();
    assert!(matches!(cap.fill(&mut b), Fill::More));
    assert_eq!(b.packets.len(), 2);
    stop.request();
    let mut b = Batch::default();
    assert!(matches!(cap.fill(&mut b), Fill::End));
    assert!(b.packets.is_empty());
    assert!(cap.stopped());
    assert!(cap.take_errors().is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// On a FIFO whose writer stays open, a batch is handed on about 100 ms after the data
/// stops coming, not when the batch is full; a stop then ends the input a second later,
/// and a record cut by it is not an error.
#[test]
fn a_live_input_hands_on_partial_batches_and_drains_after_a_stop() {
    let d = dir("live");
    let fifo = d.join("f");
    mkfifo(&fifo);
    let bytes = pcap(&(0..10).map(|i| (i, i as u8)).collect::<Vec<_>>());
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all(&bytes).unwrap();
        w.write_all(&[1, 0, 0, 0]).unwrap(); // the start of a record header
        std::thread::sleep(Duration::from_secs(3));
    });
    let stop = Arc::new(Stop::default());
    let mut cap = Capture::open_with(
        &[fifo.to_str().unwrap().to_string()],
        &Limits::default(),
        Arc::clone(&stop),
    );
    assert!(cap.is_live());
    let t = Instant::now();
    let mut got = 0;
    while got < 10 {
        let mut b = Batch::default();
        assert!(matches!(cap.fill(&mut b), Fill::More));
        got += b.packets.len();
    }
    // Well before the batch is full (16 Ki packets); the bound leaves room for a busy
    // machine.
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // Nothing more comes: empty batches, about every 100 ms.
    let t = Instant::now();
    let mut b = Batch::default();
    assert!(matches!(cap.fill(&mut b), Fill::More));
    assert!(b.packets.is_empty());
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(80) && idle < Duration::from_millis(600),
        "{idle:?}"
    );
    stop.request();
    let t = Instant::now();
    loop {
        let mut b = Batch::default();
        if let Fill::End = cap.fill(&mut b) {
            break;
        }
    }
    let drained = t.elapsed();
    assert!(
        drained >= Duration::from_millis(900) && drained < Duration::from_secs(4),
        "{drained:?}"
    );
    assert!(cap.take_errors().is_empty());
    assert_eq!(cap.cut_by_stop.len(), 1);
    writer.join().unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn binary_if_tsresol() {
    assert_eq!(ts_resolution(6), Some(1_000_000));
    assert_eq!(ts_resolution(9), Some(1_000_000_000));
    assert_eq!(ts_resolution(0x94), Some(1 << 20));
    assert_eq!(ts_resolution(0x80), Some(1));
    assert_eq!(ts_resolution(0xbf), Some(1 << 63));
    assert_eq!(ts_resolution(0xc0), None);
    assert_eq!(ts_resolution(19), Some(10u64.pow(19)));
    assert_eq!(ts_resolution(20), None);
}
