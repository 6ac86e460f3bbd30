//! Many inputs: the merge order, files opened one after the other, gzip, --per-file
//! numbers, and a rotated set of 25,000 files.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::util::{root, rows_by_name, run, split_pcap, temp_dir};

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";

fn strs(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

fn sessions_of(files: &[String], extra: &[&str]) -> (String, String, i32) {
    let mut args = vec!["sessions"];
    args.extend(extra);
    args.extend(files.iter().map(String::as_str));
    run(&args)
}

/// A rotated set gives the merged capture's report, whatever the order of the arguments:
/// files are merged in the order of their first packets.
#[test]
fn argument_order_never_changes_the_report() {
    let dir = temp_dir("order");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let files = strs(&split_pcap(&bytes, 23, &dir));
    assert!(files.len() > 10);
    let (whole, _, code) = run(&["sessions", MIXED]);
    assert_eq!(code, 0);
    let mut orders = vec![files.clone()];
    let mut rev = files.clone();
    rev.reverse();
    orders.push(rev);
    // A fixed shuffle: every third file first.
    let mut mixed: Vec<String> = files.iter().step_by(3).cloned().collect();
    mixed.extend(
        files
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, f)| f.clone()),
    );
    orders.push(mixed);
    for (n, order) in orders.iter().enumerate() {
        for threads in ["1", "2"] {
            let (out, err, code) = sessions_of(order, &["--threads", threads]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(out, whole, "order {n}, --threads {threads}");
            assert!(
                err.contains(&format!("from {} inputs", files.len())),
                "{err}"
            );
        }
    }
    // One of them on stdin (a file there too: it cannot be opened a second time).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("sessions")
        .args(&files[..4])
        .arg("-")
        .args(&files[5..])
        .stdin(std::fs::File::open(&files[4]).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap() == whole);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The TCP connections of one classic pcap of Ethernet/IPv4 packets, as Wireshark numbers
/// them when it opens the file (no port reuse here): for each connection's sorted pair of
/// endpoints, (tcp.stream, frame number of its first packet).
fn streams_of_file(path: &str) -> HashMap<(String, String), (u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let (_, recs) = crate::util::pcap_records(&bytes);
    let mut streams = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        let f = &r[16..];
        // Ethernet, IPv4, TCP.
        if f.len() < 14 + 20 + 4 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 6 {
            continue;
        }
        let ihl = (f[14] & 0x0f) as usize * 4;
        let ep = |ip: &[u8], port: &[u8]| {
            format!(
                "{}.{}.{}.{}:{}",
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                u16::from_be_bytes([port[0], port[1]])
            )
        };
        let t = 14 + ihl;
        let a = ep(&f[26..30], &f[t..t + 2]);
        let b = ep(&f[30..34], &f[t + 2..t + 4]);
        let key = if a < b { (a, b) } else { (b, a) };
        let n = streams.len() as u64;
        streams.entry(key).or_insert((n, i as u64 + 1));
    }
    streams
}

/// --per-file: for every session, `file` is the file that holds its first packet, and
/// `file_tcp_stream` / `file_first_frame` are what that file alone shows (counted here
/// independently: a connection carried over from an earlier file takes a number in each
/// file it has packets in). The other columns are the merged report's; the same for
/// every thread count.
#[test]
fn per_file_numbers_are_those_of_the_file_alone() {
    let dir = temp_dir("perfile");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let files = strs(&split_pcap(&bytes, 20, &dir));
    let (whole, _, _) = run(&["sessions", MIXED]);
    let (out, err, code) = sessions_of(&files, &["--per-file", "--threads", "2"]);
    assert_eq!(code, 0, "{err}");
    for t in ["1", "3"] {
        assert_eq!(sessions_of(&files, &["--per-file", "--threads", t]).0, out);
    }
    let (rows, whole_rows) = (rows_by_name(&out), rows_by_name(&whole));
    assert_eq!(rows.len(), whole_rows.len());
    let mut later_file_starts = 0;
    let mut carried_over_before = 0;
    for (r, w) in rows.iter().zip(&whole_rows) {
        for (k, v) in w {
            assert_eq!(&r[k], v, "column {k} differs from the merged report");
        }
        let (streams, key, stream) = check_file_numbers(r);
        // The session's first packet is the first of its connection in the whole set.
        let before: Vec<_> = files.iter().take_while(|f| **f != r["file"]).collect();
        assert!(
            before
                .iter()
                .all(|f| !streams_of_file(f).contains_key(&key)),
            "{}: the connection has packets in an earlier file",
            r["client"]
        );
        if r["file"] != files[0] {
            later_file_starts += 1;
            // A connection numbered before this one in its file started in an earlier file.
            let earlier: Vec<_> = before.iter().map(|f| streams_of_file(f)).collect();
            if streams
                .iter()
                .any(|(k, &(s, _))| s < stream && earlier.iter().any(|e| e.contains_key(k)))
            {
                carried_over_before += 1;
            }
        }
    }
    assert!(
        later_file_starts > 5,
        "the split puts session starts in later files"
    );
    assert!(
        carried_over_before > 0,
        "some file starts with a connection carried over"
    );
    // Without --per-file the columns are not there.
    let (plain, _, _) = sessions_of(&files, &[]);
    assert_eq!(plain, whole);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `file_tcp_stream` and `file_first_frame` of row `r` against its file, counted here;
/// returns that file's connections, the row's connection and its tcp.stream there.
#[allow(clippy::type_complexity)]
fn check_file_numbers(
    r: &HashMap<String, String>,
) -> (HashMap<(String, String), (u64, u64)>, (String, String), u64) {
    let streams = streams_of_file(&r["file"]);
    let key = if r["client"] < r["server"] {
        (r["client"].clone(), r["server"].clone())
    } else {
        (r["server"].clone(), r["client"].clone())
    };
    let &(stream, first) = streams
        .get(&key)
        .unwrap_or_else(|| panic!("{}: {} not in that file", r["file"], r["client"]));
    assert_eq!(r["file_tcp_stream"], stream.to_string(), "{}", r["client"]);
    assert_eq!(r["file_first_frame"], first.to_string(), "{}", r["client"]);
    (streams, key, stream)
}

/// Files that interleave (packets dealt round-robin over 7 files, as captures of one
/// traffic on several interfaces): every file holds a part of every connection.
#[test]
fn per_file_numbers_of_interleaved_files() {
    let dir = temp_dir("perfile-rr");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let (header, recs) = crate::util::pcap_records(&bytes);
    let mut files = Vec::new();
    for i in 0..7 {
        let mut f = header.clone();
        for r in recs.iter().skip(i).step_by(7) {
            f.extend_from_slice(r);
        }
        let p = dir.join(format!("if{i}.pcap"));
        std::fs::write(&p, f).unwrap();
        files.push(p.display().to_string());
    }
    let (whole, _, _) = run(&["sessions", MIXED]);
    let (out, err, code) = sessions_of(&files, &["--per-file"]);
    assert_eq!(code, 0, "{err}");
    let rows = rows_by_name(&out);
    assert_eq!(rows.len(), rows_by_name(&whole).len());
    let mut files_used = std::collections::HashSet::new();
    for r in &rows {
        check_file_numbers(r);
        files_used.insert(r["file"].clone());
    }
    assert!(files_used.len() > 3, "{files_used:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// gzip-compressed captures, found by their magic whatever their name, alone or in a set.
#[test]
fn gzip_captures_read_like_plain_ones() {
    use std::io::Write;
    let dir = temp_dir("gzip");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let gz = |data: &[u8], name: &str| -> String {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        p.display().to_string()
    };
    let (whole, _, _) = run(&["sessions", MIXED]);
    let one = gz(&bytes, "all.pcap.gz");
    let (out, err, code) = run(&["sessions", &one]);
    assert_eq!((code, out.as_str()), (0, whole.as_str()), "{err}");
    // A rotated set, half of it compressed (one under a misleading name).
    let parts = split_pcap(&bytes, 40, &dir);
    let mut set = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 0 {
            set.push(gz(&std::fs::read(p).unwrap(), &format!("z{i}.pcap")));
        } else {
            set.push(p.display().to_string());
        }
    }
    let (out, err, code) = sessions_of(&set, &[]);
    assert_eq!((code, out.as_str()), (0, whole.as_str()), "{err}");
    // Cut short: the packets before the cut are reported, the error names the
    // decompressed offset.
    let full = std::fs::read(&one).unwrap();
    let cut = dir.join("cut.pcap.gz");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let (out, err, code) = run(&["sessions", cut.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(out.lines().count() > 3, "{out}");
    assert!(err.contains("of the decompressed data)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `wsclose sessions EXTRA FILES` with at most `nofile` open files (`ulimit -n`);
/// returns (stdout, stderr, code, its peak RSS in KiB).
// The child is waited for with wait4 (for its own rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn with_nofile(nofile: u64, files: &[PathBuf], extra: &[&str]) -> (String, String, i32, i64) {
    use std::io::Read;
    // A shell sets the limit and becomes wsclose (spawned without a fork of this large
    // test process, whose memory would otherwise count in the child's peak).
    let script = format!(
        "ulimit -n {nofile} && exec \"$0\" sessions {} \"$@\"",
        extra.join(" ")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_wsclose"))
        .args(files)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        so.read_to_string(&mut s).unwrap();
        s
    });
    let mut err = String::new();
    se.read_to_string(&mut err).unwrap();
    let (mut status, mut usage) = (0i32, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child by its pid; wait4 gives its own resource usage.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (out.join().unwrap(), err, code, usage.ru_maxrss)
}

/// More files than open files allowed: inputs are opened one after the other.
#[test]
fn more_files_than_file_descriptors() {
    let dir = temp_dir("nofile");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let files = split_pcap(&bytes, 1, &dir);
    assert!(files.len() > 200);
    let (whole, _, _) = run(&["sessions", MIXED]);
    let (out, err, code, _) = with_nofile(32, &files, &["--threads", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, whole);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A rotated set of 25,000 files in one run, under `ulimit -n 256`: the report is the
/// merged file's. Ignored by default (about half a minute); CI runs it with --ignored.
#[test]
#[ignore]
fn rotated_set_of_25000_files() {
    let dir = temp_dir("25000");
    let cfg = wsclose_synth::scenario::GenConfig {
        seed: 9,
        sessions: 2_000,
        mix: wsclose_synth::scenario::Mix::parse("chat").unwrap(),
        concurrency: 64,
        ..Default::default()
    };
    let mut whole = Vec::new();
    wsclose_synth::scenario::generate(&cfg, &mut whole).unwrap();
    let n_packets = crate::util::pcap_records(&whole).1.len();
    let per_file = (n_packets / 25_000).max(1);
    let files = split_pcap(&whole, per_file, &dir);
    assert!(files.len() >= 25_000, "{} files", files.len());
    let all = dir.join("all.pcap");
    std::fs::write(&all, &whole).unwrap();
    let (expected, _, code) = run(&["sessions", "--threads", "2", all.to_str().unwrap()]);
    assert_eq!(code, 0);
    std::fs::remove_file(&all).unwrap();
    let t = std::time::Instant::now();
    let (out, err, code, rss) = with_nofile(256, &files, &["--threads", "2"]);
    // The child's peak counts the memory of this process when it was spawned (Linux keeps
    // the high-water mark across exec): an upper bound. `/usr/bin/time -f %M` gives
    // wsclose's own (README's Limits table).
    // SAFETY: getrusage fills the struct it is given.
    let own = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    };
    eprintln!(
        "{} files, {} packets: {:.1} s, peak RSS at most {} MiB (this test process: {} MiB)",
        files.len(),
        n_packets,
        t.elapsed().as_secs_f64(),
        rss / 1024,
        own / 1024
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("from {} inputs", files.len())),
        "{err}"
    );
    assert!(
        out == expected,
        "the rotated set's report differs from the merged file's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
