//! The real captures against what the programs that made the traffic say they did
//! (fixtures/captures/*.truth.jsonl, written by fixtures/record/record.sh). This is the
//! proof that the expected reports are right, not just unchanged.

use std::collections::HashMap;

use serde_json::Value;

use crate::util::{captures_in, parse_csv, root, sessions};

fn outcome_of(truth: &str) -> &'static str {
    match truth {
        "clean_close" | "close_then_rst" => "clean",
        "no_close_fin" => "no_close_frame",
        "no_close_rst" => "reset",
        "close_unanswered_fin" => "unanswered_close",
        "rejected_403" => "rejected",
        "open_at_capture_end" => "open_at_end",
        other => panic!("unknown truth outcome {other}"),
    }
}

fn close(v: &Value) -> (String, String) {
    if v.is_null() {
        return (String::new(), String::new());
    }
    let code = v["code"]
        .as_u64()
        .map_or("1005".to_string(), |c| c.to_string());
    (code, v["reason"].as_str().unwrap_or("").to_string())
}

#[test]
fn real_captures_agree_with_the_programs_that_made_them() {
    let mut checked = 0;
    let mut errors = Vec::new();
    for cap in captures_in(&root().join("fixtures/captures")) {
        let truth_path = cap.with_extension("truth.jsonl");
        let truth = std::fs::read_to_string(&truth_path).expect("truth file beside the capture");
        let (report, _, code) = sessions(&[&cap], 2);
        assert_eq!(code, 0);
        let name = cap.file_name().unwrap().to_string_lossy().into_owned();
        checked += check_report(&name, &report, &truth, &mut errors);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(checked >= 25, "only {checked} sessions checked");
}

/// Checks a sessions report against the programs' truth lines (one per session, matched
/// by the client's address): counts, closes, TCP ending, outcome, gaps said; for wss://
/// also the TLS version, suite, SNI and ALPN. Returns the sessions checked.
pub fn check_report(capture: &str, report: &str, truth: &str, errors: &mut Vec<String>) -> usize {
    let mut checked = 0;
    let rows = parse_csv(report);
    let header = &rows[0];
    let by_client: HashMap<&str, HashMap<&str, &str>> = rows[1..]
        .iter()
        .map(|r| {
            let m: HashMap<&str, &str> = header
                .iter()
                .map(String::as_str)
                .zip(r.iter().map(String::as_str))
                .collect();
            (m["client"], m)
        })
        .collect();
    for line in truth.lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        let client = t["client"].as_str().unwrap();
        let name = format!("{capture} {client}");
        let Some(row) = by_client.get(client) else {
            errors.push(format!("{name}: no session reported"));
            continue;
        };
        let exact = row["exact"] == "true";
        let mut want = |col: &str, v: String, lower_bound: bool| {
            let got = row[col];
            let ok = if lower_bound && !exact {
                got.parse::<u64>().unwrap() <= v.parse::<u64>().unwrap()
            } else {
                got == v
            };
            if !ok {
                errors.push(format!("{name}: {col} = {got:?}, the programs say {v:?}"));
            }
        };
        want("server", t["server"].as_str().unwrap().to_string(), false);
        // An answer deleted from the capture (make_lost_response.py) is not reported:
        // the upgrade is inferred from the frames, or said to be unknown.
        let lost = t["response_lost"] == Value::Bool(true);
        let unsaid = lost && !row["anomalies"].contains("response_not_captured");
        if lost {
            want("http_status", String::new(), false);
        } else {
            want("http_status", t["handshake"].to_string(), false);
        }
        for (side, dir) in [("client", "c2s"), ("server", "s2c")] {
            let d = &t[dir];
            want(&format!("{side}_messages"), d["messages"].to_string(), true);
            want(&format!("{side}_pings"), d["pings"].to_string(), true);
            // With permessage-deflate the programs count inflated bytes, we count wire bytes.
            if t["deflate"] != Value::Bool(true) {
                want(
                    &format!("{side}_bytes"),
                    d["payload_bytes"].to_string(),
                    true,
                );
            }
            let (code, reason) = close(&t[format!("{side}_close")]);
            want(&format!("{side}_close_code"), code, false);
            want(&format!("{side}_close_reason"), reason, false);
        }
        want(
            "first_close_by",
            t["first_close"].as_str().unwrap_or("").to_string(),
            false,
        );
        want(
            "tcp_end",
            t["tcp"]["end"].as_str().unwrap().to_string(),
            false,
        );
        want(
            "tcp_end_by",
            t["tcp"]["first"].as_str().unwrap_or("").to_string(),
            false,
        );
        let outcome = match outcome_of(t["outcome"].as_str().unwrap()) {
            // Without its 403 the capture cannot tell a rejection from an upgrade.
            "rejected" if lost => "unknown_handshake",
            o => o,
        };
        want("outcome", outcome.to_string(), false);
        if let Some(tls) = t.get("tls").filter(|v| v.is_object()) {
            for (col, key) in [
                ("tls", "version"),
                ("tls_cipher", "cipher"),
                ("sni", "sni"),
                ("alpn", "alpn"),
            ] {
                want(col, tls[key].as_str().unwrap_or("").to_string(), false);
            }
        }
        if unsaid {
            errors.push(format!(
                "{name}: the answer is missing, and the row does not say so"
            ));
        }
        let gaps = t["gaps"].as_array().map_or(0, Vec::len);
        if gaps > 0 && !row["anomalies"].contains("gap") {
            errors.push(format!(
                "{name}: {gaps} gaps cut into the capture, none reported"
            ));
        }
        checked += 1;
    }
    if rows.len() - 1 != truth.lines().count() {
        errors.push(format!(
            "{capture}: {} sessions reported, the programs logged {}",
            rows.len() - 1,
            truth.lines().count()
        ));
    }
    checked
}

/// The synthetic captures against what their generator says each session must show
/// (fixtures/synthetic/*.expected-truth.csv; `*` marks a value nobody can know).
#[test]
fn synthetic_captures_agree_with_their_generator() {
    let dir = root().join("fixtures/synthetic");
    let mut errors = Vec::new();
    let mut checked = 0;
    for cap in captures_in(&dir) {
        let stem = cap.file_stem().unwrap().to_str().unwrap();
        let truth = std::fs::read_to_string(dir.join(format!("{stem}.expected-truth.csv")))
            .unwrap_or_else(|_| panic!("{stem} has no truth file"));
        let (report, _, code) = sessions(&[&cap], 2);
        assert_eq!(code, 0, "{stem}");
        let (got, want) = (parse_csv(&report), parse_csv(&truth));
        if got.len() != want.len() {
            errors.push(format!(
                "{stem}: {} sessions, the generator made {}",
                got.len() - 1,
                want.len() - 1
            ));
            continue;
        }
        let col = |name: &str| got[0].iter().position(|c| c == name).unwrap();
        for (g, w) in got[1..].iter().zip(&want[1..]) {
            for (name, v) in want[0].iter().zip(w) {
                if v != "*" && &g[col(name)] != v {
                    errors.push(format!(
                        "{stem} {}: {name} = {:?}, the generator says {v:?}",
                        w[0],
                        g[col(name)]
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(checked >= 24, "only {checked} sessions checked");
}

/// A capture split into two files reads as the unsplit one.
#[test]
fn rotated_files_give_the_same_report_as_the_merged_one() {
    let dir = root().join("fixtures/synthetic");
    let (whole, _, c1) = sessions(&[&dir.join("rotated.pcap")], 2);
    let (parts, _, c2) = sessions(
        &[
            &dir.join("rotated/file-2.pcap"),
            &dir.join("rotated/file-1.pcap"),
        ],
        2,
    );
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(whole, parts);
    assert!(whole.lines().count() > 1);
}
