//! `--fail-on` on real captures: each policy on a capture that triggers it and on one that
//! does not. A triggered policy still writes the whole report, names the sessions on
//! stderr and exits 1.

use crate::util::{root, run, udp_only_pcap, Table, TempDir};

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";
const CLEAN: &str = "fixtures/captures/real-py-clean.pcap";
const NODE: &str = "fixtures/captures/real-node-clean.pcap";
const GAP: &str = "fixtures/captures/real-gap.pcap";
const LOSSY: &str = "fixtures/captures/real-lossy.pcap";
const DEFLATE: &str = "fixtures/captures/real-deflate.pcap";

/// `sessions CAPTURE ARGS…` against the same without its `--fail-on`s: the same report on
/// stdout; returns (stderr lines that name policies, exit code).
fn gate(capture: &str, args: &[&str]) -> (Vec<String>, i32) {
    let mut plain_args = vec!["sessions", "-q", capture];
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--fail-on" {
            i += 2;
        } else {
            plain_args.push(args[i]);
            i += 1;
        }
    }
    let (plain, _, code) = run(&plain_args);
    assert_eq!(code, 0);
    let mut a = vec!["sessions", "-q", capture];
    a.extend_from_slice(args);
    let (out, err, code) = run(&a);
    assert_eq!(
        out, plain,
        "{args:?}: the whole report is written, unchanged"
    );
    let lines = err
        .lines()
        .filter(|l| l.starts_with("wsclose: --fail-on "))
        .map(String::from)
        .collect();
    (lines, code)
}

#[test]
fn each_policy_where_it_triggers() {
    let table: &[(&str, &[&str], &str)] = &[
        (MIXED, &["--fail-on", "abnormal"], "abnormal: 6 sessions: 7, 8, 9, 10, 12, 14"),
        (MIXED, &["--fail-on", "reset"], "reset: 2 sessions: 9, 10"),
        (MIXED, &["--fail-on", "no_close_frame"], "no_close_frame: 3 sessions: 7, 8, 14"),
        (MIXED, &["--fail-on", "no-close-frame"], "no_close_frame: 3 sessions: 7, 8, 14"),
        (MIXED, &["--fail-on", "rejected"], "rejected: 1 session: 13"),
        (
            MIXED,
            &["--fail-on", "error_code"],
            "error_code: 9 sessions: 3, 4, 7, 8, 9, 10, 12, 13, 14 (allowed codes: 1000,1001,1005)",
        ),
        (
            MIXED,
            &["--fail-on", "error-code", "--allow-codes", "1000,1001,1011,4000,4001"],
            "error_code: 7 sessions: 5, 7, 8, 9, 10, 13, 14 (allowed codes: 1000,1001,1011,4000,4001)",
        ),
        (
            NODE,
            &["--fail-on", "error_code", "--allow-codes", "1000"],
            "error_code: 1 session: 1 (allowed codes: 1000)",
        ),
        (GAP, &["--fail-on", "anomaly"], "anomaly: 1 session: 1"),
        (GAP, &["--fail-on", "anomaly=gap"], "anomaly=gap: 1 session: 1"),
        (GAP, &["--fail-on", "anomaly=framing-resync"], "anomaly=framing_resync: 1 session: 1"),
    ];
    for (cap, args, line) in table {
        let (lines, code) = gate(cap, args);
        assert_eq!(code, 1, "{cap} {args:?}");
        assert_eq!(
            lines,
            [format!("wsclose: --fail-on {line}")],
            "{cap} {args:?}"
        );
    }
}

#[test]
fn each_policy_where_it_does_not_trigger() {
    let table: &[(&str, &[&str])] = &[
        (
            CLEAN,
            &[
                "--fail-on",
                "abnormal,reset,no_close_frame,rejected,error_code,anomaly,empty",
            ],
        ),
        (
            DEFLATE,
            &[
                "--fail-on",
                "abnormal",
                "--fail-on",
                "no_close_frame",
                "--fail-on",
                "error_code",
            ],
        ),
        (NODE, &["--fail-on", "error_code"]),
        (MIXED, &["--fail-on", "anomaly", "--fail-on", "empty"]),
        (
            MIXED,
            &[
                "--fail-on",
                "error_code",
                "--allow-codes",
                "1000,1001,1005,1006,1011,4000,4001",
            ],
        ),
        (LOSSY, &["--fail-on", "anomaly,abnormal,error_code"]),
        (GAP, &["--fail-on", "anomaly=cut_off_packet,abnormal"]),
    ];
    for (cap, args) in table {
        let (lines, code) = gate(cap, args);
        assert_eq!(code, 0, "{cap} {args:?}: {lines:?}");
        assert!(lines.is_empty(), "{cap} {args:?}: {lines:?}");
    }
}

#[test]
fn several_policies_each_say_what_matched() {
    let (lines, code) = gate(
        MIXED,
        &["--fail-on", "reset,rejected", "--fail-on", "anomaly"],
    );
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            "wsclose: --fail-on reset: 2 sessions: 9, 10",
            "wsclose: --fail-on rejected: 1 session: 13",
        ]
    );
}

#[test]
fn empty_capture() {
    let dir = TempDir::new("policy-empty");
    let p = dir.0.join("udp.pcap");
    std::fs::write(&p, udp_only_pcap()).unwrap();
    let p = p.to_str().unwrap();
    let (lines, code) = gate(p, &["--fail-on", "empty"]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        ["wsclose: --fail-on empty: no WebSocket session in the capture"]
    );
    let (lines, code) = gate(p, &["--fail-on", "abnormal,error_code,anomaly"]);
    assert_eq!((lines.len(), code), (0, 0));
}

#[test]
fn usage_errors() {
    for args in [
        &["--fail-on", "finding"][..],
        &["--fail-on", "finding=idle_timeout"],
        &["--fail-on", "nonsense"],
        &["--fail-on", "anomaly=nonsense"],
        &["--fail-on", "reset=3"],
        &["--fail-on", "error_code", "--allow-codes", "x"],
        &["--fail-on", "error_code", "--allow-codes", "70000"],
    ] {
        let mut a = vec!["sessions", CLEAN];
        a.extend_from_slice(args);
        let (out, err, code) = run(&a);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: nothing read");
        assert!(!err.is_empty());
    }
    let (_, err, _) = run(&["sessions", CLEAN, "--fail-on", "finding"]);
    assert!(err.contains("findings are in the summary report"), "{err}");
}

/// A truncated capture: the sessions before the cut are written, the policies judge them,
/// and the input error's 2 wins over the policy's 1.
#[test]
fn input_error_wins_over_a_policy() {
    let dir = TempDir::new("policy-trunc");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let cut = dir.0.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).unwrap();
    let cut = cut.to_str().unwrap();
    let (plain, _, code) = run(&["sessions", "-q", cut]);
    assert_eq!(code, 2);
    let (out, err, code) = run(&["sessions", "-q", cut, "--fail-on", "reset,abnormal,empty"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, plain, "the partial report");
    assert_eq!(
        out.lines().count(),
        15,
        "header and 14 sessions before the cut"
    );
    assert!(err.contains("truncated capture"), "{err}");
    assert!(
        err.contains("wsclose: --fail-on reset: 2 sessions: 9, 10\n"),
        "{err}"
    );
    assert!(
        err.contains("wsclose: --fail-on abnormal: 5 sessions: 7, 8, 9, 10, 12\n"),
        "{err}"
    );
    assert!(!err.contains("--fail-on empty"), "{err}");

    let bad = "fixtures/synthetic/bad/record-cut-off.pcap";
    let (out, err, code) = run(&["sessions", bad, "--fail-on", "empty"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out.lines().count(), 2, "the session before the cut: {out}");
}

/// `--allow-codes` is one rule for the `error_code` column and the `error_code` policy.
#[test]
fn the_error_code_column_and_policy_agree() {
    for allow in [None, Some("1000,1001,1011,4000,4001"), Some("1000")] {
        let mut a = vec!["sessions", "-q", MIXED, "--fail-on", "error_code"];
        if let Some(codes) = allow {
            a.extend_from_slice(&["--allow-codes", codes]);
        }
        let (out, err, code) = run(&a);
        let t = Table::parse(&out);
        let (s, e) = (t.col("session"), t.col("error_code"));
        let flagged: Vec<&str> = t
            .rows
            .iter()
            .filter(|r| r[e] == "true")
            .map(|r| r[s].as_str())
            .collect();
        assert_eq!(code, 1);
        let line = format!(": {} session", flagged.len());
        let list = format!(": {} (allowed codes", flagged.join(", "));
        assert!(
            err.contains(&line) && err.contains(&list),
            "{allow:?}: {flagged:?}\n{err}"
        );
    }
}
