//! `wsclose check` on real captures against edited copies of their expected reports:
//! the exact diff and exit status for each kind of difference, each `--match` mode,
//! `--update`, `--format json`, and input and usage errors.

use crate::util::{root, run, Table, TempDir};

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";
const MIXED_EXPECTED: &str = "fixtures/expected/real/real-mixed-endings.csv";

const PATH3: &str = "/s?sid=m03&n=2&end=close%3A1011%3Ainternal%20error&sping=0";

fn mixed_expected() -> Table {
    Table::parse(&std::fs::read_to_string(root().join(MIXED_EXPECTED)).unwrap())
}

/// `wsclose check -q MIXED --expect FILE ARGS…`.
fn check(expect: &str, args: &[&str]) -> (String, String, i32) {
    let mut a = vec!["check", "-q", MIXED, "--expect", expect];
    a.extend_from_slice(args);
    run(&a)
}

#[test]
fn identical_report_passes() {
    let (out, err, code) = run(&["check", MIXED, "--expect", MIXED_EXPECTED]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "check passed: 15 matching (15 expected, 15 found, match by session)\n"
    );
    assert!(
        err.contains("15 WebSocket sessions"),
        "the closing line: {err}"
    );
    // every real capture against its own expected report
    for e in std::fs::read_dir(root().join("fixtures/expected/real")).unwrap() {
        let exp = e.unwrap().path();
        let stem = exp.file_stem().unwrap().to_str().unwrap();
        let cap = root().join(format!("fixtures/captures/{stem}.pcap"));
        let (out, _, code) = run(&[
            "check",
            "-q",
            cap.to_str().unwrap(),
            "--expect",
            exp.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stem}: {out}");
    }
}

#[test]
fn a_changed_close_code() {
    let dir = TempDir::new("check-code");
    let mut t = mixed_expected();
    assert_eq!(t.get(3, "close_code"), "1011");
    t.set(3, "close_code", "1000");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "session 3 (expected line 4): 10.79.0.2:34762 -> 10.79.0.1:8080 {PATH3}\n    \
             close_code: expected \"1000\", found \"1011\"\n\
             check failed: 1 differing, 0 missing, 0 unexpected, 14 matching (15 expected, 15 found, match by session)\n"
        )
    );
}

#[test]
fn a_missing_session() {
    let dir = TempDir::new("check-missing");
    let mut t = mixed_expected();
    let mut extra = t.row(15).clone();
    extra[t.col("session")] = "16".into();
    extra[t.col("client")] = "10.79.0.2:35999".into();
    t.rows.push(extra);
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "missing (expected line 17): session 16, 10.79.0.2:35999 -> 10.79.0.1:80 \
         /s?sid=m15&n=3&end=hold&sping=0\n\
         check failed: 0 differing, 1 missing, 0 unexpected, 15 matching (16 expected, 15 found, match by session)\n"
    );
}

#[test]
fn an_unexpected_session() {
    let dir = TempDir::new("check-extra");
    let mut t = mixed_expected();
    t.rows.pop();
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "unexpected session 15: 10.79.0.2:35814 -> 10.79.0.1:80 /s?sid=m15&n=3&end=hold&sping=0 (open_at_end)\n\
         check failed: 0 differing, 0 missing, 1 unexpected, 14 matching (14 expected, 15 found, match by session)\n"
    );
}

#[test]
fn wildcards_accept_any_value_and_an_escaped_star_is_a_star() {
    let dir = TempDir::new("check-wild");
    let mut t = mixed_expected();
    t.set(3, "close_code", "*")
        .set(3, "server_close_reason", "*")
        .set(15, "close_code", "*");
    for n in 1..=15 {
        t.set(n, "start", "*").set(n, "end", "*");
    }
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 0, "{out}");
    t.set(3, "server_close_reason", "\\*");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "session 3 (expected line 4): 10.79.0.2:34762 -> 10.79.0.1:8080 {PATH3}\n    \
             server_close_reason: expected \"\\\\*\", found \"internal error\"\n\
             check failed: 1 differing, 0 missing, 0 unexpected, 14 matching (15 expected, 15 found, match by session)\n"
        )
    );
}

#[test]
fn ranges_on_numeric_columns() {
    let dir = TempDir::new("check-range");
    let mut t = mixed_expected();
    t.set(3, "close_code", "1000..1011")
        .set(1, "client_bytes", "300..")
        .set(2, "packets", "..22")
        .set(1, "duration_s", "0.008..0.009");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 0, "{out}");
    t.set(3, "close_code", "1000..1010")
        .set(1, "duration_s", "0..0.008")
        .set(15, "close_code", "1000..");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "session 1 (expected line 2): 10.79.0.2:44400 -> 10.79.0.1:80 /s?sid=m01&n=3&end=wait&sping=0\n    \
             duration_s: expected \"0..0.008\", found \"0.008795\"\n\
             session 3 (expected line 4): 10.79.0.2:34762 -> 10.79.0.1:8080 {PATH3}\n    \
             close_code: expected \"1000..1010\", found \"1011\"\n\
             session 15 (expected line 16): 10.79.0.2:35814 -> 10.79.0.1:80 /s?sid=m15&n=3&end=hold&sping=0\n    \
             close_code: expected \"1000..\", found \"\"\n\
             check failed: 3 differing, 0 missing, 0 unexpected, 12 matching (15 expected, 15 found, match by session)\n"
        )
    );
    // a range on a text column is text
    t.set(3, "close_code", "1011")
        .set(1, "duration_s", "*")
        .set(15, "close_code", "")
        .set(1, "outcome", "1..2");
    let (out, _, code) = check(&dir.write("e.csv", &t.text()), &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("    outcome: expected \"1..2\", found \"clean\"\n"),
        "{out}"
    );
}

#[test]
fn a_dropped_column_is_not_compared() {
    let dir = TempDir::new("check-drop");
    let mut t = mixed_expected();
    t.set(3, "close_code", "1000").set(9, "outcome", "clean");
    let (_, _, code) = check(&dir.write("e.csv", &t.text()), &[]);
    assert_eq!(code, 1);
    t.drop_column("close_code");
    let (out, _, code) = check(&dir.write("e.csv", &t.text()), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "session 9 (expected line 10): 10.79.0.2:44440 -> 10.79.0.1:80 /s?sid=m09&n=2&end=wait&sping=0\n    \
         outcome: expected \"clean\", found \"reset\"\n\
         check failed: 1 differing, 0 missing, 0 unexpected, 14 matching (15 expected, 15 found, match by session)\n"
    );
    t.drop_column("outcome");
    let (out, _, code) = check(&dir.write("e.csv", &t.text()), &[]);
    assert_eq!(code, 0, "{out}");
    // only a few columns, in another order
    let few = mixed_expected().select(&["outcome", "close_code", "session"]);
    let (out, _, code) = check(&dir.write("e.csv", &few.text()), &[]);
    assert_eq!(code, 0, "{out}");
}

/// A re-recording: other client ports, other session numbers, another order of the rows.
fn rerecorded() -> Table {
    let mut t = mixed_expected();
    let (c, s) = (t.col("client"), t.col("session"));
    for r in &mut t.rows {
        let ip = r[c].rsplit_once(':').unwrap().0.to_string();
        let n: u64 = r[s].parse().unwrap();
        r[c] = format!("{ip}:{}", 50000 + n);
        r[s] = (100 + n).to_string();
    }
    t.rows.reverse();
    for col in ["tcp_stream", "start", "end", "duration_s", "first_frame"] {
        t.drop_column(col);
    }
    t
}

#[test]
fn match_by_endpoints() {
    let dir = TempDir::new("check-endpoints");
    let mut t = rerecorded();
    let e = dir.write("e.csv", &t.text());
    // by session number everything differs…
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 1);
    assert!(
        out.ends_with("(15 expected, 15 found, match by session)\n"),
        "{out}"
    );
    assert!(out.contains("15 missing, 15 unexpected"), "{out}");
    // …by endpoints everything pairs: 8 sessions to 10.79.0.1:80 and 7 to :8080, each
    // in first-packet order; the client's port and the session number are not compared.
    let (out, _, code) = check(&e, &["--match", "endpoints"]);
    assert_eq!(
        code, 1,
        "the reversed order pairs sessions with others of the same key"
    );
    assert!(
        out.contains("session 1 (expected line 2): 10.79.0.2:44400 -> 10.79.0.1:80 /s?sid=m01"),
        "{out}"
    );
    t.rows.reverse();
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--match", "endpoints"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "check passed: 15 matching (15 expected, 15 found, match by endpoints)\n"
    );
    let (s12, c) = (t.col("session"), t.col("close_code"));
    let row = t.rows.iter_mut().find(|r| r[s12] == "112").unwrap();
    row[c] = "4000".into();
    t.rows.remove(13); // m14, to :8080
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--match", "endpoints"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "session 12 (expected line 13): 10.79.0.2:36360 -> 10.79.0.1:8080 /s?sid=m12&n=1&end=close%3A4001%3Akicked&sping=0\n    \
         close_code: expected \"4000\", found \"4001\"\n\
         unexpected session 14: 10.79.0.2:36370 -> 10.79.0.1:8080 /s?sid=m14&n=2&end=fin&sping=0 (no_close_frame)\n\
         check failed: 1 differing, 0 missing, 1 unexpected, 13 matching (14 expected, 15 found, match by endpoints)\n"
    );
}

#[test]
fn match_by_path() {
    let dir = TempDir::new("check-path");
    let mut t = rerecorded();
    t.drop_column("client");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--match", "path"]);
    assert_eq!(
        code, 0,
        "every path is different: order does not matter\n{out}"
    );
    assert_eq!(
        out,
        "check passed: 15 matching (15 expected, 15 found, match by path)\n"
    );
    let p = t.col("path");
    let o = t.col("outcome");
    let row = t
        .rows
        .iter_mut()
        .find(|r| r[p].contains("sid=m09"))
        .unwrap();
    row[o] = "clean".into();
    row[p] = "/s?sid=m99".into();
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--match", "path"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "missing (expected line 8): session 109, /s?sid=m99\n\
         unexpected session 9: 10.79.0.2:44440 -> 10.79.0.1:80 /s?sid=m09&n=2&end=wait&sping=0 (reset)\n\
         check failed: 0 differing, 1 missing, 1 unexpected, 14 matching (15 expected, 15 found, match by path)\n"
    );
}

#[test]
fn update_round_trips() {
    let dir = TempDir::new("check-update");
    // Untouched: the file stays byte for byte.
    let orig = std::fs::read_to_string(root().join(MIXED_EXPECTED)).unwrap();
    let e = dir.write("same.csv", &orig);
    let (out, _, code) = check(&e, &["--update"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{e}: unchanged, every session matches (15 expected, 15 found, match by session)\n"
        )
    );
    assert_eq!(std::fs::read_to_string(&e).unwrap(), orig);

    // Edited: a changed code, a wildcard, a range that still holds and one that does not,
    // a missing and an unexpected session.
    let mut t = mixed_expected().select(&[
        "session",
        "client",
        "close_code",
        "outcome",
        "packets",
        "duration_s",
    ]);
    t.set(3, "close_code", "1000")
        .set(4, "outcome", "*")
        .set(1, "packets", "10..20")
        .set(2, "packets", "1..5")
        .set(5, "duration_s", "*");
    let mut extra = t.row(15).clone();
    extra[0] = "16".into();
    t.rows.push(extra);
    t.rows.remove(9); // session 10
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--update"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with(&format!(
            "{e}: updated: 2 differing, 1 missing, 1 unexpected, 12 matching (15 expected, 15 found, match by session)\n"
        )),
        "{out}"
    );
    let mut want = mixed_expected().select(&[
        "session",
        "client",
        "close_code",
        "outcome",
        "packets",
        "duration_s",
    ]);
    want.set(4, "outcome", "*")
        .set(1, "packets", "10..20")
        .set(5, "duration_s", "*");
    assert_eq!(std::fs::read_to_string(&e).unwrap(), want.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 0, "{out}");
    let (out, _, code) = check(&e, &["--update"]);
    assert_eq!(code, 0);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(std::fs::read_to_string(&e).unwrap(), want.text());

    // A header alone names the columns; --update fills in the rows.
    let e = dir.write("new.csv", "path,close_code,outcome\n");
    let (_, _, code) = check(&e, &["--match", "path"]);
    assert_eq!(code, 1);
    let (_, _, code) = check(&e, &["--match", "path", "--update"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&e).unwrap(),
        mixed_expected()
            .select(&["path", "close_code", "outcome"])
            .text()
    );
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(names.len(), 3, "no temporary file left behind");
}

#[test]
fn json_format() {
    let dir = TempDir::new("check-json");
    let mut t = mixed_expected();
    t.set(3, "close_code", "1000");
    t.rows.pop();
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &["--format", "json"]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "one JSON object on one line");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["schema"], 1);
    assert_eq!(j["result"], "fail");
    assert_eq!(j["match"], "session");
    assert_eq!(j["expected_sessions"], 14);
    assert_eq!(j["found_sessions"], 15);
    assert_eq!(j["matching"], 13);
    assert_eq!(
        j["differing"],
        serde_json::json!([{
            "session": 3, "expected_line": 4, "client": "10.79.0.2:34762",
            "server": "10.79.0.1:8080", "path": PATH3,
            "cells": [{"column": "close_code", "expected": "1000", "found": "1011"}],
        }])
    );
    assert_eq!(j["missing"], serde_json::json!([]));
    assert_eq!(j["unexpected"][0]["session"], 15);
    assert_eq!(j["unexpected"][0]["outcome"], "open_at_end");
    let (out, _, code) = run(&[
        "check",
        "-q",
        MIXED,
        "--expect",
        MIXED_EXPECTED,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["result"], "pass");
    assert_eq!(
        j["columns"].as_array().unwrap().len(),
        wsclose::report::COLUMNS.len()
    );
}

#[test]
fn diff_to_a_file() {
    let dir = TempDir::new("check-o");
    let o = dir.path("diff.txt");
    let (out, _, code) = check(MIXED_EXPECTED, &["-o", &o]);
    assert_eq!(code, 0);
    assert!(out.is_empty());
    assert!(std::fs::read_to_string(&o)
        .unwrap()
        .starts_with("check passed: 15 matching"));
}

/// On an input error nothing is compared (exit 2), even with --update.
#[test]
fn input_error_compares_nothing() {
    let dir = TempDir::new("check-trunc");
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let cut = dir.0.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).unwrap();
    let e = dir.write(
        "e.csv",
        &std::fs::read_to_string(root().join(MIXED_EXPECTED)).unwrap(),
    );
    for extra in [&[][..], &["--update"][..]] {
        let mut a = vec!["check", cut.to_str().unwrap(), "--expect", &e];
        a.extend_from_slice(extra);
        let (out, err, code) = run(&a);
        assert_eq!(code, 2, "{err}");
        assert_eq!(out, "", "nothing compared");
        assert!(err.contains("truncated"), "{err}");
        assert!(err.contains("nothing compared"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&e).unwrap(),
        std::fs::read_to_string(root().join(MIXED_EXPECTED)).unwrap(),
        "--update left the file alone"
    );
    let (_, err, code) = run(&[
        "check",
        "fixtures/synthetic/bad/record-cut-off.pcap",
        "--expect",
        &e,
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn usage_errors() {
    let dir = TempDir::new("check-usage");
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "session,nonsense\n1,x\n",
            &[],
            "unknown column \"nonsense\"",
        ),
        (
            "session,outcome\n1\n",
            &[],
            "line 2: 1 cells where the header has 2",
        ),
        ("session,close_code\n1,9..1\n", &[], "is empty"),
        (
            "outcome\nclean\n",
            &[],
            "--match session needs the column \"session\"",
        ),
        ("session\n*\n", &[], "cannot be `*` there"),
        (
            "path\n/x\n",
            &["--match", "endpoints"],
            "needs the column \"client\"",
        ),
        (
            "session\n1\n",
            &["--match", "nonsense"],
            "invalid value 'nonsense'",
        ),
    ];
    for (text, args, msg) in cases {
        let e = dir.write("e.csv", text);
        let (out, err, code) = check(&e, args);
        assert_eq!(code, 2, "{text:?}: {err}");
        assert_eq!(out, "");
        assert!(err.contains(msg), "{text:?}: {err}");
    }
    let (_, err, code) = run(&["check", MIXED]);
    assert_eq!(code, 2);
    assert!(err.contains("--expect"), "{err}");
    let (_, err, code) = run(&["check", MIXED, "--expect", &dir.path("absent.csv")]);
    assert_eq!(code, 2);
    assert!(err.contains("absent.csv: cannot read"), "{err}");
}

/// `--allow-codes` changes the `error_code` column that check compares.
#[test]
fn allow_codes_reach_the_error_code_column() {
    let dir = TempDir::new("check-allow");
    let t = mixed_expected().select(&["session", "close_code", "error_code"]);
    assert_eq!(t.get(3, "error_code"), "true");
    let e = dir.write("e.csv", &t.text());
    let (out, _, code) = check(&e, &[]);
    assert_eq!(code, 0, "{out}");
    let (out, _, code) = check(&e, &["--allow-codes", "1000,1001,1005,1011"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "session 3 (expected line 4): 10.79.0.2:34762 -> 10.79.0.1:8080 {PATH3}\n    \
             error_code: expected \"true\", found \"false\"\n\
             check failed: 1 differing, 0 missing, 0 unexpected, 14 matching (15 expected, 15 found, match by session)\n"
        )
    );
}
