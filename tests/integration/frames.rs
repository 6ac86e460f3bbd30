//! The timeline (`frames`): its lines agree with the sessions report, come grouped by
//! session in report order and in capture order within, and the selectors, `--tail`,
//! the formats and redaction do what they say.

use serde_json::Value;

use crate::util::{parse_csv, wsclose};

fn run(args: &[&str]) -> String {
    let out = wsclose(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn jsonl(args: &[&str]) -> Vec<Value> {
    run(args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";

#[test]
fn every_frame_agrees_with_the_sessions_report() {
    for cap in [
        MIXED,
        "fixtures/captures/real-py-clean.pcap",
        "fixtures/captures/real-node-clean.pcap",
        "fixtures/captures/real-lossy.pcap",
        "fixtures/captures/real-deflate.pcap",
    ] {
        let lines = jsonl(&["frames", "-q", "--format", "jsonl", cap]);
        let report = parse_csv(&run(&["sessions", "-q", cap]));
        let col = |n: &str| report[0].iter().position(|c| c == n).unwrap();
        // Grouped by session in report order, capture order within.
        let mut last = (0u64, 0u64);
        for l in &lines {
            let k = (
                l["session"].as_u64().unwrap(),
                l["packet"].as_u64().unwrap(),
            );
            assert!(k >= last, "{cap}: {k:?} after {last:?}");
            last = k;
        }
        for row in &report[1..] {
            let s: u64 = row[col("session")].parse().unwrap();
            let of = |dir: &str, op: &str| {
                lines
                    .iter()
                    .filter(|l| l["session"] == s && l["dir"] == dir && l["opcode"] == op)
                    .count()
                    .to_string()
            };
            for (dir, op, c) in [
                ("client", "ping", "client_pings"),
                ("server", "ping", "server_pings"),
                ("client", "pong", "client_pongs"),
                ("server", "pong", "server_pongs"),
            ] {
                assert_eq!(of(dir, op), row[col(c)], "{cap} session {s}: {c}");
            }
            let ends = |kind: &str, dir: &str| {
                lines
                    .iter()
                    .any(|l| l["session"] == s && l["kind"] == kind && l["dir"] == dir)
            };
            let tcp_end = &row[col("tcp_end")];
            let by = &row[col("tcp_end_by")];
            if tcp_end != "open" {
                assert!(ends(tcp_end, by), "{cap} session {s}: {tcp_end} by {by}");
            }
            for side in ["client", "server"] {
                let code = &row[col(&format!("{side}_close_code"))];
                let close = lines
                    .iter()
                    .find(|l| l["session"] == s && l["opcode"] == "close" && l["dir"] == side);
                match close {
                    Some(c) => assert_eq!(&c["close_code"].to_string(), code, "{cap} {s}"),
                    None => assert!(code.is_empty(), "{cap} {s}: {side} close {code}"),
                }
            }
        }
    }
}

#[test]
fn selectors_tail_and_formats() {
    let one = jsonl(&["frames", "-q", "--format", "jsonl", "--session", "2", MIXED]);
    assert!(one
        .iter()
        .all(|l| l["session"] == 2 && l["tcp_stream"] == 1));
    let close = one.iter().find(|l| l["opcode"] == "close").unwrap();
    assert_eq!(close["close_reason"], "going away");
    assert_eq!(close["dir"], "client");
    assert_eq!(one[0]["kind"], "syn");
    assert_eq!(one[0]["t"], 0.0);
    let by_stream = jsonl(&[
        "frames",
        "-q",
        "--format",
        "jsonl",
        "--tcp-stream",
        "1",
        MIXED,
    ]);
    assert_eq!(one, by_stream);
    let by_client = jsonl(&[
        "frames",
        "-q",
        "--format",
        "jsonl",
        "--client",
        "10.79.0.2:34748",
        MIXED,
    ]);
    assert_eq!(one, by_client);
    let all_of_ip = jsonl(&[
        "frames",
        "-q",
        "--format",
        "jsonl",
        "--client",
        "10.79.0.2",
        MIXED,
    ]);
    let sessions: std::collections::BTreeSet<u64> = all_of_ip
        .iter()
        .map(|l| l["session"].as_u64().unwrap())
        .collect();
    assert_eq!(sessions.len(), 15);

    // --tail 2: the two events before the first Close frame, FIN or RST, then two.
    let tail = jsonl(&[
        "frames",
        "-q",
        "--format",
        "jsonl",
        "--tail",
        "2",
        "--session",
        "2",
        MIXED,
    ]);
    assert_eq!(tail.len(), 4);
    let first_end = one
        .iter()
        .position(|l| l["opcode"] == "close" || l["kind"] == "fin" || l["kind"] == "rst")
        .unwrap();
    assert_eq!(tail[..], one[first_end - 2..first_end + 2]);

    let csv = parse_csv(&run(&[
        "frames",
        "-q",
        "--format",
        "csv",
        "--session",
        "2",
        MIXED,
    ]));
    assert_eq!(csv[0][0], "kind");
    assert_eq!(csv.len(), one.len() + 1);
    let table = run(&["frames", "-q", "--session", "2", MIXED]);
    assert!(table.starts_with("session 2  [tcp.stream eq 1]"), "{table}");
    assert!(table.contains("1001 \"going away\""), "{table}");
    for l in table.lines() {
        assert!(l.chars().count() <= 100, "{l}");
    }
    // A session that does not exist: nothing, and a word on stderr.
    let out = wsclose(&["frames", "--session", "99", MIXED]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session 99"));
}

#[test]
fn previews_show_text_as_text_and_redact_hides_them() {
    let cap = "fixtures/captures/real-py-clean.pcap";
    let lines = jsonl(&["frames", "-q", "--format", "jsonl", cap]);
    let text = lines.iter().find(|l| l["opcode"] == "text").unwrap();
    let p = text["preview"].as_str().unwrap();
    assert!(p.ends_with('…') && !p.starts_with("00"), "{p}");
    let bin = lines.iter().find(|l| l["opcode"] == "binary").unwrap();
    assert!(bin["preview"]
        .as_str()
        .unwrap()
        .trim_end_matches('…')
        .bytes()
        .all(|b| b.is_ascii_hexdigit()));
    let red = jsonl(&["frames", "-q", "--format", "jsonl", "--redact", cap]);
    assert!(red
        .iter()
        .filter(|l| l["kind"] == "frame" && l["len"].as_u64() > Some(0))
        .all(|l| l["preview"].as_str().unwrap().starts_with("<redacted ")));
}
