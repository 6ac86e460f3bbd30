//! The command-line contract: exit codes, stdout vs stderr, -o, stdin, bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{root, sessions, udp_only_pcap, wsclose};

const CLEAN: &str = "fixtures/captures/real-py-clean.pcap";

#[test]
fn help_has_examples_and_exit_status() {
    let out = wsclose(&["sessions", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("EXAMPLES"), "{help}");
    assert!(help.contains("EXIT STATUS"), "{help}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(wsclose(&["sessions"]).status.code(), Some(2));
    assert_eq!(wsclose(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        wsclose(&["sessions", "--threads", "0", CLEAN])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn report_on_stdout_summary_on_stderr() {
    let (out, err, code) = sessions(&[&root().join(CLEAN)], 2);
    assert_eq!(code, 0);
    assert!(out.starts_with(
        "session,tcp_stream,client,server,start,end,duration_s,http_status,host,path,"
    ));
    assert_eq!(out.lines().count(), 2);
    assert!(err.contains("1 WebSocket session;"), "{err}");
    assert!(!out.contains("wsclose:"));
}

#[test]
fn output_file_and_stdin_give_the_same_report() {
    let dir = std::env::temp_dir().join(format!("wsclose-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("r.csv");
    let out = wsclose(&["sessions", CLEAN, "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let from_file = std::fs::read_to_string(&file).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sessions", "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(root().join(CLEAN)).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), from_file);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_websocket_gives_header_and_says_so() {
    let dir = std::env::temp_dir().join(format!("wsclose-nows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("udp.pcap");
    std::fs::write(&p, udp_only_pcap()).unwrap();
    let (out, err, code) = sessions(&[&p], 1);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    assert!(err.contains("no WebSocket session"), "{err}");
    assert!(err.contains("not analyzed: 1 non-TCP packet\n"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A capture cut off in the middle of a record: exit 2, the error names the file and the
/// offset, and the sessions seen before it are still reported.
#[test]
fn truncated_capture_reports_what_it_saw_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("wsclose-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(root().join("fixtures/captures/real-mixed-endings.pcap")).unwrap();
    let cut = bytes.len() * 2 / 3 + 5;
    let p = dir.join("cut.pcap");
    std::fs::write(&p, &bytes[..cut]).unwrap();
    let (out, err, code) = sessions(&[&p], 2);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("wsclose: {}: truncated capture: ", p.display())),
        "{err}"
    );
    assert!(err.contains(" (offset "), "{err}");
    assert!(
        out.lines().count() > 5,
        "sessions before the cut are reported:\n{out}"
    );

    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").unwrap();
    let (out, err, code) = sessions(&[&junk], 1);
    assert_eq!(code, 2);
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    assert_eq!(out.lines().count(), 1, "header only");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the libpcap feature, --filter keeps only matching packets (here: the sessions of
/// the Python server on port 80), and every number stays that of the unfiltered capture
/// (tcp_stream, first_frame, and --per-file's); without it, --filter says how to get it.
#[test]
fn filter_by_bpf_expression() {
    let mixed = "fixtures/captures/real-mixed-endings.pcap";
    let out = wsclose(&["sessions", "--filter", "tcp port 80", "--per-file", mixed]);
    if cfg!(feature = "libpcap") {
        assert_eq!(out.status.code(), Some(0));
        let report = String::from_utf8(out.stdout).unwrap();
        let rows = crate::util::rows_by_name(&report);
        assert_eq!(rows.len(), 8, "{report}");
        assert!(
            rows.iter().all(|r| r["server"].ends_with(":80")),
            "{report}"
        );
        let (all, _, _) = crate::util::run(&["sessions", "--per-file", mixed]);
        let all = crate::util::rows_by_name(&all);
        for r in &rows {
            let w = all.iter().find(|w| w["client"] == r["client"]).unwrap();
            for k in [
                "tcp_stream",
                "first_frame",
                "file_tcp_stream",
                "file_first_frame",
            ] {
                assert_eq!(r[k], w[k], "{k} of {}", r["client"]);
            }
            assert_eq!(r["packets"], w["packets"], "{}", r["client"]);
        }
        // Not the first connections of the capture: the numbering is not the filtered one.
        assert!(rows.iter().any(|r| r["tcp_stream"]
            != r["session"]
                .parse::<u64>()
                .map(|n| (n - 1).to_string())
                .unwrap()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("packets filtered out (7 connections)"),
            "{err}"
        );
        assert!(
            err.contains(": 8 TCP connections, 8 WebSocket sessions"),
            "{err}"
        );
        let bad = wsclose(&["sessions", "--filter", "tcp port", mixed]);
        assert_eq!(bad.status.code(), Some(2));
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--features libpcap"));
    }
}

/// Every bad input in fixtures/synthetic/bad: exit 2, and the error names the file and a
/// byte offset.
#[test]
fn bad_inputs_name_file_and_offset() {
    let dir = root().join("fixtures/synthetic/bad");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let (out, err, code) = sessions(&[&p], 2);
        assert_eq!(code, 2, "{}: {err}", p.display());
        // One line per error, in one style: `wsclose: FILE: what is wrong (offset N)`.
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("wsclose: {}: ", p.display())))
            .unwrap_or_else(|| panic!("{}: no error line: {err}", p.display()));
        assert!(
            line.ends_with(')') && line.contains(" (offset "),
            "{}: {line}",
            p.display()
        );
        assert!(
            !err.contains("everything was analyzed"),
            "{}: {err}",
            p.display()
        );
        assert!(
            out.starts_with("session,"),
            "{}: the header is still written",
            p.display()
        );
        n += 1;
    }
    assert_eq!(n, 5);
}

/// `-o`: checked before any input is read, never an input, replaced by rename whenever a
/// report was produced, left untouched by a usage error.
#[test]
fn output_file_rules() {
    use crate::util::{run, temp_dir};
    let dir = temp_dir("output");
    let target = dir.join("report.csv");
    let t = target.to_str().unwrap();

    // An unwritable -o is said at once, even with a stdin that never sends anything.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sessions", "-", "-o", "/nonexistent-dir/r.csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("wsclose: /nonexistent-dir/r.csv: cannot write the report there: "),
        "{err}"
    );

    // An input named as -o is refused and stays as it was.
    let input = dir.join("in.pcap");
    std::fs::copy(root().join(CLEAN), &input).unwrap();
    let i = input.to_str().unwrap();
    let (_, err, code) = run(&["sessions", i, "-o", i]);
    assert_eq!(code, 2);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(root().join(CLEAN)).unwrap()
    );

    // A usage error leaves an existing file untouched, and no temporary file behind.
    std::fs::write(&target, "old\n").unwrap();
    let (_, _, code) = run(&["sessions", CLEAN, "--threads", "0", "-o", t]);
    assert_eq!(code, 2);
    let (_, _, code) = run(&["sessions", "-", "-", "-o", t]);
    assert_eq!(code, 2);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");

    // An input error still produces a report: it replaces the file (exit 2).
    let bytes = std::fs::read(root().join("fixtures/captures/real-mixed-endings.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (stdout, _, code) = run(&["sessions", cut.to_str().unwrap(), "-o", t]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    let (expected, _, _) = run(&["sessions", cut.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);

    // `-o -` is stdout; a device is written directly.
    let (stdout, _, code) = run(&["sessions", CLEAN, "-o", "-"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2);
    let (stdout, _, code) = run(&["sessions", CLEAN, "-o", "/dev/null"]);
    assert_eq!((code, stdout.as_str()), (0, ""));

    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `wsclose sessions x.pcap | head -1`: the reader goes away; wsclose exits 0, quietly.
#[test]
fn closed_pipe_exits_0_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = crate::util::temp_dir("pipe");
    let cfg = wsclose_synth::scenario::GenConfig {
        seed: 5,
        sessions: 1_500,
        mix: wsclose_synth::scenario::Mix::parse("chat").unwrap(),
        target_bytes: 8 << 20,
        ..Default::default()
    };
    let mut pcap = Vec::new();
    wsclose_synth::scenario::generate(&cfg, &mut pcap).unwrap();
    let p = dir.join("many.pcap");
    std::fs::write(&p, pcap).unwrap();
    let (whole, _, _) = crate::util::run(&["sessions", p.to_str().unwrap()]);
    assert!(
        whole.len() > 4 * 65536,
        "more than a pipe holds: {}",
        whole.len()
    );
    for threads in ["1", "2"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["sessions", "--threads", threads, p.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The pipe is closed here, long before the report (some 400 KB) is written.
        assert!(first.starts_with("session,"));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quietly");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// More threads than cores: clamped, with a note (not under -q); the same report.
#[test]
fn threads_above_the_cores_are_clamped() {
    use crate::util::run;
    let (out, err, code) = run(&["sessions", "--threads", "100000", CLEAN]);
    assert_eq!(code, 0);
    assert!(
        err.starts_with("wsclose: note: --threads 100000 is more than the "),
        "{err}"
    );
    let (plain, _, _) = run(&["sessions", CLEAN]);
    assert_eq!(out, plain);
    let (_, err, _) = run(&["sessions", "-q", "--threads", "100000", CLEAN]);
    assert_eq!(err, "");
}

/// Packets of a link type wsclose does not decode are counted under its name.
#[test]
fn unsupported_link_types_are_named() {
    let dir = crate::util::temp_dir("linktype");
    let mut f = Vec::new();
    f.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 147, 0, 0, 0]);
    for _ in 0..2 {
        f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0]);
        f.extend_from_slice(b"user");
    }
    let p = dir.join("user0.pcap");
    std::fs::write(&p, f).unwrap();
    let (_, err, code) = sessions(&[&p], 1);
    assert_eq!(code, 0);
    assert!(
        err.contains("read 2 packets (64 bytes) from 1 input: 0 TCP connections, 0 WebSocket sessions; not analyzed: 2 packets of unsupported link type 147 (USER0)\n"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An input that cannot be opened is one line, without an offset (nothing was read).
#[test]
fn inputs_that_cannot_be_opened() {
    let (out, err, code) = crate::util::run(&["sessions", "fixtures", "no/such.pcap", CLEAN]);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 2, "the readable input is reported");
    assert!(
        err.contains("wsclose: fixtures: cannot open: is a directory\n"),
        "{err}"
    );
    assert!(
        err.contains("wsclose: no/such.pcap: cannot open: "),
        "{err}"
    );
    assert!(
        err.contains("not analyzed: 2 non-IP packets, 2 inputs not read to their end"),
        "{err}"
    );
}
