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
    assert!(err.contains("1 WebSocket sessions"), "{err}");
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
    assert!(err.contains("1 non-TCP packets"), "{err}");
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
    assert!(err.contains(&format!("{}: offset ", p.display())), "{err}");
    assert!(err.contains("truncated"), "{err}");
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
/// the Python server on port 80); without it, --filter says how to get it.
#[test]
fn filter_by_bpf_expression() {
    let mixed = "fixtures/captures/real-mixed-endings.pcap";
    let out = wsclose(&["sessions", "--filter", "tcp port 80", mixed]);
    if cfg!(feature = "libpcap") {
        assert_eq!(out.status.code(), Some(0));
        let report = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<&str> = report.lines().skip(1).collect();
        assert_eq!(rows.len(), 8, "{report}");
        assert!(rows.iter().all(|r| r.contains(":80,")), "{report}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("packets filtered out"), "{err}");
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
        assert!(
            err.contains(&format!("{}: offset ", p.display())),
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
