//! Exit status of every subcommand: a failed output write is 2, a reader that closed the
//! pipe is not a failure (0, or what was decided before), `--help` documents it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{root, run, wsclose};

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";
const MIXED_EXPECTED: &str = "fixtures/expected/real/real-mixed-endings.csv";

/// Runs wsclose with `args` (reading the capture from stdin, `-`) with its stdout a pipe
/// whose reader is gone before anything is written; returns (stderr, exit code).
fn with_closed_stdout(args: &[&str], capture: &str) -> (String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away first
    let bytes = std::fs::read(root().join(capture)).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join().unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn a_closed_pipe_is_not_a_failure() {
    let (err, code) = with_closed_stdout(&["sessions", "-q", "-"], MIXED);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("error"), "quietly: {err}");
    let (err, code) = with_closed_stdout(&["check", "-q", "-", "--expect", MIXED_EXPECTED], MIXED);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("error"), "quietly: {err}");
    let (err, code) = with_closed_stdout(
        &[
            "check",
            "-q",
            "-",
            "--expect",
            MIXED_EXPECTED,
            "--format",
            "json",
        ],
        MIXED,
    );
    assert_eq!(code, 0, "{err}");
}

/// What was decided before the pipe closed still counts: a check that found differences,
/// a policy that matched.
#[test]
fn a_closed_pipe_keeps_what_was_decided() {
    let other = "fixtures/expected/real/real-py-clean.csv";
    let (err, code) = with_closed_stdout(&["check", "-q", "-", "--expect", other], MIXED);
    assert_eq!(code, 1, "{err}");
    // The report's rows go out as they are written (a live input): whether the policy
    // had matched when the pipe was found closed depends on when the reader left. Either
    // way nothing is said of the pipe, and a 1 comes with the sessions it matched.
    let (err, code) = with_closed_stdout(&["sessions", "-q", "-", "--fail-on", "reset"], MIXED);
    match code {
        0 => assert!(err.is_empty(), "{err}"),
        1 => assert!(err.contains("--fail-on reset: 2 sessions: 9, 10"), "{err}"),
        _ => panic!("exit {code}: {err}"),
    }
}

#[test]
fn a_failed_write_is_2() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let (_, err, code) = run(&["sessions", MIXED, "-o", "/dev/full"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot write the report"), "{err}");
    let (_, err, code) = run(&[
        "check",
        MIXED,
        "--expect",
        MIXED_EXPECTED,
        "-o",
        "/dev/full",
    ]);
    assert_eq!(code, 2, "{err}");
    let (_, err, code) = run(&["sessions", MIXED, "-o", "/nonexistent-dir/x.csv"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn help_of_every_subcommand_documents_the_exit_status() {
    for args in [
        &["--help"][..],
        &["sessions", "--help"],
        &["check", "--help"],
    ] {
        let out = wsclose(args);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8(out.stdout).unwrap();
        for needle in [
            "EXIT STATUS",
            "130",
            "143",
            "first of 130/143, 2, 1, 0",
            "pipe",
        ] {
            assert!(help.contains(needle), "{args:?} has no {needle:?}:\n{help}");
        }
    }
    let out = wsclose(&["sessions", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for p in [
        "abnormal",
        "no_close_frame",
        "error_code",
        "anomaly[=TOKEN]",
        "finding[=CAUSE]",
        "empty",
    ] {
        assert!(help.contains(p), "sessions --help names the policy {p}");
    }
    let out = wsclose(&["check", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for p in [
        "--expect",
        "--match",
        "endpoints",
        "--update",
        "--format",
        "EXAMPLES",
    ] {
        assert!(help.contains(p), "check --help has {p}");
    }
}

#[test]
fn readme_documents_the_exit_status() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for needle in ["130", "143", "first of 130/143, 2, 1, 0", "closed the pipe"] {
        assert!(readme.contains(needle), "README has no {needle:?}");
    }
}
