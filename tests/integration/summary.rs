//! The summary: the same from a capture and from the JSON Lines of its sessions report,
//! the findings the recorded scenarios were designed to produce (and no others), the
//! JSON form, several record files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{captures_in, root, wsclose};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsclose-summary-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn run_ok(args: &[&str]) -> String {
    let out = wsclose(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "wsclose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The summary of `cap` as JSON.
pub fn summary_json(cap: &Path) -> Value {
    let s = run_ok(&["summary", "-q", "--format", "json", cap.to_str().unwrap()]);
    serde_json::from_str(&s).expect("one JSON object")
}

/// The causes named and their sessions.
pub fn named(summary: &Value) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in summary["findings"].as_array().unwrap() {
        let s = m
            .entry(f["cause"].as_str().unwrap().to_string())
            .or_default();
        for n in f["sessions"].as_array().unwrap() {
            s.push(n.as_u64().unwrap());
        }
        s.sort();
    }
    m
}

fn all_captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in [
        "fixtures/captures",
        "fixtures/proxy",
        "fixtures/why",
        "fixtures/reach",
        "fixtures/tls",
        "fixtures/synthetic",
    ] {
        v.extend(captures_in(&root().join(d)));
    }
    v
}

#[test]
fn the_summary_of_records_is_the_summary_of_the_capture() {
    let caps = all_captures();
    assert!(caps.len() >= 30, "{} captures", caps.len());
    for cap in caps {
        let c = cap.to_str().unwrap();
        let jsonl = tmp("records.jsonl");
        run_ok(&[
            "sessions",
            "-q",
            "--format",
            "jsonl",
            c,
            "-o",
            jsonl.to_str().unwrap(),
        ]);
        let r = jsonl.to_str().unwrap();
        let mut from_records: Value = serde_json::from_str(&run_ok(&[
            "summary",
            "-q",
            "--format",
            "json",
            "--records",
            r,
        ]))
        .unwrap();
        // The only difference allowed: the records file is named.
        from_records["totals"]
            .as_object_mut()
            .unwrap()
            .remove("records");
        assert_eq!(summary_json(&cap), from_records, "{c}");
        let text = |args: &[&str]| run_ok(args);
        assert_eq!(
            text(&["summary", "-q", "--color", "never", c]),
            text(&["summary", "-q", "--color", "never", "--records", r]),
            "{c}"
        );
    }
}

/// Every real capture of fixtures/captures, and what its recording shows (see
/// fixtures/README.md): the causes named and their sessions — and nothing else.
#[test]
fn real_captures_name_what_they_show() {
    let abrupt = vec![7, 8, 9, 10, 14];
    let mixed: BTreeMap<&str, Vec<u64>> = [
        // m13: 403 from process_request.
        ("handshake_rejected", vec![13]),
        // m03: the server closes first with 1011 "internal error".
        ("server_error", vec![3]),
        // m12: the raw client never answers the server's 4001.
        ("unanswered_close", vec![12]),
        // m07, m08 (FIN), m09, m10 (RST), m14 (server FIN): no Close frame.
        ("abrupt_disconnect", abrupt.clone()),
        // m15: still open when tcpdump stopped.
        ("capture_cut", vec![15]),
    ]
    .into_iter()
    .collect();
    let lossy: BTreeMap<&str, Vec<u64>> = [("network_loss", vec![1, 2, 3])].into_iter().collect();
    let expected: Vec<(&str, BTreeMap<&str, Vec<u64>>)> = vec![
        ("real-py-clean.pcap", BTreeMap::new()),
        // The server closes first with 1001 "going away" (its farewell).
        (
            "real-node-clean.pcap",
            [("server_shutdown", vec![1])].into_iter().collect(),
        ),
        ("real-deflate.pcap", BTreeMap::new()),
        ("real-ipv6.pcap", BTreeMap::new()),
        // Two segments deleted from the capture, but the receivers acknowledged them:
        // the capture's loss, not the network's.
        ("real-gap.pcap", BTreeMap::new()),
        // 3% dropped, 5% held back, 2% duplicated by the bridge.
        ("real-lossy.pcap", lossy.clone()),
        ("real-lossy-client.pcap", lossy),
        ("real-mixed-endings.pcap", mixed.clone()),
        ("real-lost-response.pcap", {
            let mut m = mixed.clone();
            // Its 403 answer is the one whose response went missing.
            m.remove("handshake_rejected");
            m
        }),
    ];
    let on_disk: BTreeSet<String> = captures_in(&root().join("fixtures/captures"))
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = expected.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every real capture has its expectation here"
    );
    let mut failures = String::new();
    for (name, want) in expected {
        let got = named(&summary_json(&root().join("fixtures/captures").join(name)));
        let want: BTreeMap<String, Vec<u64>> =
            want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if got != want {
            failures += &format!("{name}: expected {want:?}\n   got {got:?}\n");
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

/// fixtures/proxy/EXPECT.json: the causes each proxy scenario was designed to produce,
/// with exactly their sessions; the allowed ones may appear; nothing else.
#[test]
fn proxy_captures_name_the_designed_causes() {
    let expect: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/proxy/EXPECT.json")).unwrap(),
    )
    .unwrap();
    let caps = expect["captures"].as_object().unwrap();
    assert!(caps.len() >= 8);
    let mut failures = String::new();
    for (name, e) in caps {
        let got = named(&summary_json(
            &root().join("fixtures/proxy").join(format!("{name}.pcap")),
        ));
        let f = &e["findings"];
        let mut must: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for x in f["expect"].as_array().unwrap() {
            let mut s: Vec<u64> = x["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            s.sort();
            must.insert(x["cause"].as_str().unwrap().to_string(), s);
        }
        let allow: BTreeSet<&str> = f["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for (cause, sessions) in &must {
            if got.get(cause) != Some(sessions) {
                failures += &format!(
                    "{name}: {cause} should name {sessions:?}, got {:?}\n",
                    got.get(cause)
                );
            }
        }
        for cause in got.keys() {
            if !must.contains_key(cause) && !allow.contains(cause.as_str()) {
                failures += &format!("{name}: {cause} named, not designed: {:?}\n", got[cause]);
            }
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

/// fixtures/why/EXPECT.json (one JSON object per line, sessions by client ip:port): each
/// cause that must be named names exactly its sessions; causes that may appear name only
/// theirs; nothing else is named.
#[test]
fn why_captures_name_the_designed_causes() {
    let path = root().join("fixtures/why/EXPECT.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: no {}", path.display());
        return;
    };
    let mut failures = String::new();
    let mut n = 0;
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        if !line.starts_with('{') {
            continue;
        }
        let e: Value = serde_json::from_str(line).unwrap();
        let cap = e["capture"].as_str().unwrap();
        let file = root().join("fixtures/why").join(cap);
        let summary = summary_json(&file);
        // Session numbers by client ip:port, from the sessions report.
        let jsonl = run_ok(&[
            "sessions",
            "-q",
            "--format",
            "jsonl",
            file.to_str().unwrap(),
        ]);
        let mut by_client: BTreeMap<String, u64> = BTreeMap::new();
        for l in jsonl.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["kind"] == "session" {
                by_client.insert(
                    v["client"].as_str().unwrap().to_string(),
                    v["session"].as_u64().unwrap(),
                );
            }
        }
        let sessions_of = |list: &Value| -> Vec<u64> {
            let mut s: Vec<u64> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    *by_client
                        .get(c.as_str().unwrap())
                        .unwrap_or_else(|| panic!("{cap}: no session of {c}"))
                })
                .collect();
            s.sort();
            s
        };
        assert_eq!(
            e["sessions"].as_u64(),
            Some(by_client.len() as u64),
            "{cap}: sessions"
        );
        let got = named(&summary);
        let must = e["must"].as_object().unwrap();
        let may = e["may"].as_object().unwrap();
        for (cause, clients) in must {
            let want = sessions_of(clients);
            if got.get(cause) != Some(&want) {
                failures += &format!(
                    "{cap}: {cause} should name {want:?}, got {:?}\n",
                    got.get(cause)
                );
            }
        }
        for (cause, sessions) in &got {
            if must.contains_key(cause) {
                continue;
            }
            match may.get(cause) {
                Some(clients) => {
                    let allowed = sessions_of(clients);
                    if !sessions.iter().all(|s| allowed.contains(s)) {
                        failures +=
                            &format!("{cap}: {cause} may name {allowed:?}, named {sessions:?}\n");
                    }
                }
                None => failures += &format!("{cap}: {cause} named, not designed: {sessions:?}\n"),
            }
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} scenarios");
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn the_json_form_has_its_sections_and_filters() {
    let s = summary_json(&root().join("fixtures/captures/real-mixed-endings.pcap"));
    assert_eq!(s["schema"], 1);
    for k in [
        "totals",
        "close_codes",
        "who_ended",
        "distributions",
        "reconnects",
        "findings",
        "notes",
    ] {
        assert!(!s[k].is_null(), "{k}");
    }
    assert_eq!(s["totals"]["sessions"], 15);
    assert_eq!(s["totals"]["by_outcome"]["clean"], 7);
    let rejected = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "handshake_rejected")
        .unwrap();
    assert_eq!(rejected["severity"], "error");
    assert_eq!(rejected["sessions"], serde_json::json!([13]));
    assert_eq!(rejected["sessions_total"], 1);
    assert_eq!(rejected["tcp_streams"], serde_json::json!([12]));
    assert_eq!(rejected["filter"], "tcp.stream eq 12");
    assert_eq!(rejected["evidence"]["answers"]["HTTP 403"], 1);
    let codes = s["close_codes"].as_array().unwrap();
    let c4001 = codes.iter().find(|c| c["code"] == 4001).unwrap();
    assert_eq!(c4001["name"], "(application)");
    assert_eq!(c4001["reasons"][0]["reason"], "kicked");
    assert_eq!(s["distributions"]["duration_s"]["count"], 14);
}

#[test]
fn several_record_files_name_sessions_by_file_and_number() {
    let a = tmp("a.jsonl");
    let b = tmp("b.jsonl");
    run_ok(&[
        "sessions",
        "-q",
        "--format",
        "jsonl",
        "fixtures/captures/real-mixed-endings.pcap",
        "-o",
        a.to_str().unwrap(),
    ]);
    run_ok(&[
        "sessions",
        "-q",
        "--format",
        "jsonl",
        "fixtures/proxy/proxy-nginx-idle.pcap",
        "-o",
        b.to_str().unwrap(),
    ]);
    let s: Value = serde_json::from_str(&run_ok(&[
        "summary",
        "-q",
        "--format",
        "json",
        "--records",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(s["totals"]["sessions"], 27);
    let idle = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "idle_timeout")
        .unwrap();
    assert!(idle["sessions"].is_null());
    let refs = idle["session_refs"].as_array().unwrap();
    assert_eq!(refs.len(), 12);
    assert!(refs
        .iter()
        .all(|r| r["source"] == b.to_str().unwrap() && r["session"].as_u64().is_some()));
    let rejected = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "handshake_rejected")
        .unwrap();
    assert_eq!(
        rejected["session_refs"],
        serde_json::json!([{"source": a.to_str().unwrap(), "session": 13, "tcp_stream": 12}])
    );
}

/// Rows spilled to disk (a cap of one row) give the same summary.
#[test]
fn spilled_rows_give_the_same_summary() {
    use wsclose::capture::Capture;
    use wsclose::pipeline::{analyze, Options};
    use wsclose::report::summary::{render, SummaryFormat};
    use wsclose::summary::{Builder, Source};
    for cap in [
        "fixtures/proxy/proxy-nginx-idle.pcap",
        "fixtures/captures/real-mixed-endings.pcap",
    ] {
        let run = |max_row_memory: usize| {
            let opts = Options::default();
            let path = root().join(cap).display().to_string();
            let capture = Capture::open(&[path], &opts.limits);
            let mut b = Builder::new(max_row_memory);
            let mut n = 0;
            let s = analyze(capture, &opts, &mut |rec| {
                n += 1;
                b.add(0, n, &rec)
            })
            .unwrap();
            let report = b
                .finish(vec![Source {
                    stats: s.stats,
                    ..Source::default()
                }])
                .unwrap();
            render(&report, SummaryFormat::Json)
        };
        assert_eq!(run(1), run(64 << 20), "{cap}");
    }
}

#[test]
fn wsclose_capture_is_the_summary_and_double_dash_reads_a_file_named_like_a_subcommand() {
    let cap = "fixtures/captures/real-py-clean.pcap";
    let plain = run_ok(&["-q", cap]);
    assert_eq!(plain, run_ok(&["summary", "-q", cap]));
    assert!(
        plain.starts_with("wsclose summary: 1 WebSocket session"),
        "{plain}"
    );
    // A capture named "sessions" in the working directory.
    let dir = tmp("dd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(root().join(cap), dir.join("sessions")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["--", "sessions"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("wsclose summary: 1 WebSocket session")
    );
}

#[test]
fn help_explains_every_column_outcome_anomaly_and_cause() {
    let help = |args: &[&str]| String::from_utf8(wsclose(args).stdout).unwrap();
    let sessions = help(&["sessions", "--help"]);
    for c in wsclose::report::columns::COLUMNS {
        assert!(
            sessions.contains(c.name),
            "sessions --help lacks {}",
            c.name
        );
    }
    for o in wsclose::verdict::Outcome::ALL {
        assert!(sessions.contains(o.as_str()), "{}", o.as_str());
    }
    for a in wsclose::record::Anomaly::ALL {
        assert!(sessions.contains(a.token()), "{}", a.token());
    }
    let summary = help(&["summary", "--help"]);
    for c in wsclose::summary::findings::Cause::ALL {
        assert!(
            summary.contains(c.token()),
            "summary --help lacks {}",
            c.token()
        );
    }
    for s in [&sessions, &summary, &help(&["frames", "--help"])] {
        assert!(s.contains("EXAMPLES") && s.contains("EXIT STATUS"), "{s}");
    }
    // Thresholds are the code's: the idle tolerance, the half-open time.
    assert!(
        summary.contains("±10%") && summary.contains("2 s or more"),
        "{summary}"
    );
}

#[test]
fn text_fits_100_columns_and_has_no_colour_unless_asked() {
    for cap in all_captures() {
        let t = run_ok(&["summary", "-q", cap.to_str().unwrap()]);
        for l in t.lines() {
            assert!(l.chars().count() <= 100, "{}: {l:?}", cap.display());
        }
        assert!(!t.contains('\x1b'));
    }
    let c = run_ok(&[
        "summary",
        "-q",
        "--color",
        "always",
        "fixtures/captures/real-mixed-endings.pcap",
    ]);
    assert!(c.contains("\x1b[1;31merror"), "{c}");
}

#[test]
fn sessions_jsonl_has_every_column_typed_and_a_closing_capture_line() {
    let cap = "fixtures/captures/real-mixed-endings.pcap";
    let out = run_ok(&["sessions", "-q", "--format", "jsonl", cap]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 16);
    let csv = crate::util::parse_csv(&run_ok(&["sessions", "-q", cap]));
    for (row, l) in csv[1..].iter().zip(&lines) {
        assert_eq!(l["kind"], "session");
        for (name, cell) in csv[0].iter().zip(row) {
            let v = &l[name.as_str()];
            let as_text = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(";"),
                Value::Number(n) if name == "duration_s" => format!("{:.6}", n.as_f64().unwrap()),
                other => other.to_string(),
            };
            assert_eq!(&as_text, cell, "{name}");
        }
        assert_eq!(
            l["filter"],
            format!("tcp.stream eq {}", l["tcp_stream"].as_u64().unwrap())
        );
    }
    let m13 = &lines[12];
    assert_eq!(m13["http_status"], 403);
    assert_eq!(m13["handshake"], "answered");
    assert!(m13["anomalies"].as_array().unwrap().is_empty());
    let m12 = &lines[11];
    assert_eq!(m12["server_close"]["code"], 4001);
    assert!(m12["client_close"].is_null());
    let capture = lines.last().unwrap();
    assert_eq!(capture["kind"], "capture");
    assert_eq!(capture["schema"], 1);
    assert_eq!(capture["sessions"], 15);
    assert_eq!(capture["packets"], 258);
    assert_eq!(capture["inputs"], serde_json::json!([cap]));
    // The capture starts with two non-IP packets, just before session 1.
    let first = capture["first_packet_time"]
        .as_str()
        .expect("a first packet time");
    assert!(first <= lines[0]["start"].as_str().unwrap(), "{first}");
    // With one thread too (the reader is the caller then).
    let one = run_ok(&["sessions", "-q", "-t", "1", "--format", "jsonl", cap]);
    let one: Value = serde_json::from_str(one.lines().last().unwrap()).unwrap();
    assert_eq!(one["first_packet_time"], first);
    assert_eq!(capture["last_packet_time"], lines[14]["end"]);
}

/// A capture of one session whose request carries a cookie, a bearer token and a query.
fn secret_capture() -> PathBuf {
    use wsclose_synth::pcap::{Link, PcapOpts, PcapWriter};
    use wsclose_synth::tcp::{Side, TcpSim};
    use wsclose_synth::ws;
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut t = TcpSim::new(
        "10.9.0.2:40000".parse().unwrap(),
        "10.9.0.1:80".parse().unwrap(),
        1000,
        5000,
        1_700_000_000_000_000_000,
    );
    t.handshake();
    let req = format!(
        "GET /feed?token=abc123&room=7 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: sid=s3cr3t\r\nAuthorization: Bearer xyz\r\n\r\n"
    );
    t.send(Side::Client, req.as_bytes());
    t.send(Side::Server, &ws::server_accept(key, None));
    t.send(
        Side::Client,
        &ws::encode_frame(true, 0, 1, Some([1, 2, 3, 4]), b"secret message"),
    );
    let close = ws::close_payload(Some(1000), "bye");
    t.send(
        Side::Client,
        &ws::encode_frame(true, 0, 8, Some([1, 2, 3, 4]), &close),
    );
    t.send(Side::Server, &ws::encode_frame(true, 0, 8, None, &close));
    t.fin(Side::Server);
    t.fin(Side::Client);
    let link = Link::ethernet();
    let mut w = PcapWriter::new(Vec::new(), link.linktype(), PcapOpts::default()).unwrap();
    while let Some(seg) = t.pop() {
        let ip = t.ip_packet(&seg);
        w.write_packet(seg.ts_ns, &link.frame(&ip, seg.from == Side::Client))
            .unwrap();
    }
    let path = tmp("secret.pcap");
    std::fs::write(&path, w.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn secrets_in_handshake_headers_are_redacted_in_every_output() {
    let cap = secret_capture();
    let c = cap.to_str().unwrap();
    let outputs = |extra: &[&str]| -> String {
        let mut all = String::new();
        for args in [
            vec!["sessions", "-q"],
            vec!["sessions", "-q", "--format", "jsonl"],
            vec!["summary", "-q"],
            vec!["summary", "-q", "--format", "json"],
            vec!["frames", "-q"],
            vec!["frames", "-q", "--format", "jsonl"],
        ] {
            let mut a = args.clone();
            a.extend_from_slice(extra);
            a.push(c);
            all += &run_ok(&a);
        }
        all
    };
    let default = outputs(&[]);
    assert!(!default.contains("s3cr3t") && !default.contains("Bearer xyz"));
    assert!(
        default.contains("<redacted 10 bytes>"),
        "the cookie's length"
    );
    assert!(
        default.contains("token=abc123"),
        "queries only with --redact"
    );
    assert!(
        default.contains("secret message"),
        "previews only with --redact"
    );
    let red = outputs(&["--redact"]);
    for s in ["s3cr3t", "Bearer xyz", "abc123", "secret message"] {
        assert!(!red.contains(s), "{s} in --redact output");
    }
    assert!(red.contains("/feed?token=<redacted>&room=<redacted>"));
    let all = outputs(&["--no-redact"]);
    assert!(all.contains("sid=s3cr3t") && all.contains("Bearer xyz"));
    let out = wsclose(&["sessions", "--redact", "--no-redact", c]);
    assert_eq!(out.status.code(), Some(2), "the two flags conflict");
}

#[test]
fn fail_on_findings_judges_the_summary() {
    let run = |args: &[&str]| {
        let out = wsclose(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let idle = "fixtures/proxy/proxy-nginx-idle.pcap";
    let (code, err) = run(&["summary", "-q", "--fail-on", "finding=idle_timeout", idle]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("finding=idle_timeout: findings: idle_timeout"),
        "{err}"
    );
    let (code, _) = run(&[
        "summary",
        "-q",
        "--fail-on",
        "finding=heartbeat_timeout",
        idle,
    ]);
    assert_eq!(code, 0);
    // Bare `finding`: any warning or error; an info alone (capture_cut) does not fail.
    let (code, _) = run(&["summary", "-q", "--fail-on", "finding", idle]);
    assert_eq!(code, 1);
    let (code, _) = run(&[
        "summary",
        "-q",
        "--fail-on",
        "finding",
        "fixtures/proxy/proxy-nginx-active.pcap",
    ]);
    assert_eq!(code, 0);
    // Session policies work on summaries too, from captures and from records.
    let (code, err) = run(&["summary", "-q", "--fail-on", "abnormal", idle]);
    assert_eq!(code, 1, "{err}");
    let jsonl = tmp("idle.jsonl");
    run_ok(&[
        "sessions",
        "-q",
        "--format",
        "jsonl",
        idle,
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    let (code, err2) = run(&[
        "summary",
        "-q",
        "--fail-on",
        "abnormal,finding=idle_timeout",
        "--records",
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err2.contains("abnormal: 12 sessions"), "{err2}");
}

#[test]
fn undecrypted_tls_rows_are_counted_and_judged_by_nothing() {
    let cap = "fixtures/tls/tls12.pcap";
    let plain = run_ok(&["-q", "--color", "never", cap]);
    assert!(
        plain.starts_with(
            "wsclose summary: 0 WebSocket sessions and 6 TLS connections not decrypted"
        ),
        "{plain}"
    );
    assert!(plain.contains("FINDINGS\n  none"), "{plain}");
    assert!(plain.contains("sessions 6: undecrypted 6"), "{plain}");
    // With the keys, the sessions inside are judged.
    let keys = run_ok(&[
        "-q",
        "--color",
        "never",
        "--keylog",
        "fixtures/tls/tls12.keys",
        cap,
    ]);
    assert!(
        keys.starts_with("wsclose summary: 6 WebSocket sessions in"),
        "{keys}"
    );
    assert!(keys.contains("server_error"), "{keys}");
}
