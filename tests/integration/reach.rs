//! Issue 10 against what the programs that made the traffic logged: permessage-deflate
//! (inflated sizes, largest message, a 1009 on an inflated size), mid-stream starts,
//! keep-alive requests before an Upgrade, the negatives (other protocols, whole and cut),
//! both legs of real proxies (pairing, closed_by), and the public corpus's mid-stream
//! sessions against tshark.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{captures_in, parse_csv, root, sessions, wsclose};

type Row = HashMap<String, String>;

fn rows(report: &str) -> Vec<Row> {
    let r = parse_csv(report);
    r[1..]
        .iter()
        .map(|x| r[0].iter().cloned().zip(x.iter().cloned()).collect())
        .collect()
}

/// `sessions -q` on `cap`, which must exit 0: its rows, and the report for messages.
fn session_rows(cap: &str) -> (Vec<Row>, String) {
    let (report, _, code) = crate::util::run(&["sessions", "-q", cap]);
    assert_eq!(code, 0, "{report}");
    (rows(&report), report)
}

fn truth(cap: &Path) -> Vec<Value> {
    let t = std::fs::read_to_string(cap.with_extension("truth.jsonl")).expect("truth file");
    t.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn outcome_of(truth: &str) -> &'static str {
    match truth {
        "clean_close" | "close_then_rst" => "clean",
        "no_close_fin" => "no_close_frame",
        "no_close_rst" => "reset",
        "close_unanswered_fin" => "unanswered_close",
        "rejected_401" | "rejected_403" => "rejected",
        "open_at_capture_end" => "open_at_end",
        other => panic!("unknown truth outcome {other}"),
    }
}

fn code(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    v["code"].as_u64().map_or("1005".into(), |c| c.to_string())
}

/// Compares `col` of `row` with `want`, collecting differences.
fn want(errors: &mut Vec<String>, name: &str, row: &Row, col: &str, want: String) {
    let got = row.get(col).map_or("<missing column>", String::as_str);
    if got != want {
        errors.push(format!(
            "{name}: {col} = {got:?}, the programs say {want:?}"
        ));
    }
}

/// One side's counts (`c2s`/`s2c` of a truth line) against a row.
fn side_counts(errors: &mut Vec<String>, name: &str, row: &Row, t: &Value, deflate: bool) {
    for (side, dir) in [("client", "c2s"), ("server", "s2c")] {
        let d = &t[dir];
        want(
            errors,
            name,
            row,
            &format!("{side}_messages"),
            d["messages"].to_string(),
        );
        want(
            errors,
            name,
            row,
            &format!("{side}_pings"),
            d["pings"].to_string(),
        );
        // The keep-alive truth keeps pongs beside the counts (`client_pongs`).
        let pongs = d.get("pongs").unwrap_or(&t[format!("{side}_pongs")]);
        want(
            errors,
            name,
            row,
            &format!("{side}_pongs"),
            pongs.to_string(),
        );
        let wire = d.get("wire_payload_bytes").unwrap_or(&d["payload_bytes"]);
        want(
            errors,
            name,
            row,
            &format!("{side}_bytes"),
            wire.to_string(),
        );
        let inflated = if deflate {
            d["payload_bytes"].to_string()
        } else {
            String::new()
        };
        want(
            errors,
            name,
            row,
            &format!("{side}_bytes_inflated"),
            inflated,
        );
        if let Some(l) = d.get("largest") {
            want(
                errors,
                name,
                row,
                &format!("{side}_largest_message"),
                l.to_string(),
            );
        }
    }
}

#[test]
fn reach_captures_agree_with_the_programs_that_made_them() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for cap in captures_in(&root().join("fixtures/reach")) {
        let file = cap.file_name().unwrap().to_string_lossy().to_string();
        let (report, stderr, code_) = sessions(&[&cap], 2);
        assert_eq!(code_, 0, "{file}: {stderr}");
        let got = rows(&report);
        let lines = truth(&cap);
        if lines.iter().all(|t| t.get("websocket_sessions").is_some()) {
            // Negatives: other protocols, from their start and cut mid-connection. A TLS
            // connection seen from its ClientHello, without keys, gets a row of its own
            // (outcome undecrypted, issue 11): it is not a session.
            let (undecrypted, sessions): (Vec<_>, Vec<_>) =
                got.iter().partition(|r| r["outcome"] == "undecrypted");
            if !sessions.is_empty() {
                errors.push(format!(
                    "{file}: {} sessions reported, none exist",
                    sessions.len()
                ));
            }
            if undecrypted.iter().any(|r| r["tls"].is_empty()) {
                errors.push(format!("{file}: an undecrypted row without TLS facts"));
            }
            let not_ws = match lines.len() - undecrypted.len() {
                0 => String::new(),
                1 => "1 connection not WebSocket".to_string(),
                n => format!("{n} connections not WebSocket"),
            };
            // A TLS connection seen from its ClientHello is counted as such.
            let tls = match lines.len() {
                1 => "1 TLS connection (encrypted)".to_string(),
                n => format!("{n} TLS connections (encrypted)"),
            };
            let tls = file.starts_with("neg-tls") && stderr.contains(&tls);
            if !stderr.contains(&not_ws) && !tls {
                errors.push(format!("{file}: stderr lacks {not_ws:?}: {stderr}"));
            }
            checked += lines.len();
            continue;
        }
        if lines[0].get("request_index").is_some() {
            // Keep-alive: one row per Upgrade request, in order.
            if got.len() != lines.len() {
                errors.push(format!(
                    "{file}: {} rows, {} Upgrades",
                    got.len(),
                    lines.len()
                ));
            }
            for (i, (t, row)) in lines.iter().zip(&got).enumerate() {
                let name = format!("{file} row {}", i + 1);
                want(
                    &mut errors,
                    &name,
                    row,
                    "client",
                    t["client"].as_str().unwrap().into(),
                );
                want(
                    &mut errors,
                    &name,
                    row,
                    "tcp_stream",
                    t["tcp"]["stream"].to_string(),
                );
                want(
                    &mut errors,
                    &name,
                    row,
                    "http_status",
                    t["handshake"].to_string(),
                );
                let rbu = t["requests_before_upgrade"].to_string();
                want(&mut errors, &name, row, "requests_before_upgrade", rbu);
                want(
                    &mut errors,
                    &name,
                    row,
                    "outcome",
                    outcome_of(t["outcome"].as_str().unwrap()).into(),
                );
                if t["handshake"] == 101 {
                    side_counts(&mut errors, &name, row, t, false);
                    want(
                        &mut errors,
                        &name,
                        row,
                        "client_close_code",
                        code(&t["client_close"]),
                    );
                    want(
                        &mut errors,
                        &name,
                        row,
                        "server_close_code",
                        code(&t["server_close"]),
                    );
                }
                checked += 1;
            }
            continue;
        }
        let by_client: HashMap<&str, &Row> =
            got.iter().map(|r| (r["client"].as_str(), r)).collect();
        if got.len() != lines.len() {
            errors.push(format!(
                "{file}: {} rows, {} sessions",
                got.len(),
                lines.len()
            ));
        }
        for t in &lines {
            let client = t["client"].as_str().unwrap();
            let name = format!("{file} {}", t["sid"].as_str().unwrap_or(client));
            let Some(row) = by_client.get(client) else {
                errors.push(format!("{name}: no session reported"));
                continue;
            };
            let outcome = outcome_of(t["outcome"].as_str().unwrap()).to_string();
            want(&mut errors, &name, row, "outcome", outcome);
            if let Some(after) = t.get("after_capture_start") {
                // Mid-stream: what was sent after the capture began, no handshake.
                want(&mut errors, &name, row, "handshake_seen", "false".into());
                want(&mut errors, &name, row, "exact", "false".into());
                want(&mut errors, &name, row, "http_status", String::new());
                if !row["anomalies"].split(';').any(|a| a == "midstream") {
                    errors.push(format!(
                        "{name}: anomalies {:?} lack midstream",
                        row["anomalies"]
                    ));
                }
                let deflate = t["deflate"] == true;
                let mut a = after.clone();
                for dir in ["c2s", "s2c"] {
                    if deflate {
                        // Compressed without the handshake: sizes are not knowable.
                        a[dir].as_object_mut().unwrap().remove("largest");
                    }
                }
                side_counts(&mut errors, &name, row, &a, false);
                if deflate && !row["anomalies"].contains("compressed_context_unknown") {
                    errors.push(format!("{name}: RSV1 without the handshake not said"));
                }
                want(
                    &mut errors,
                    &name,
                    row,
                    "client_close_code",
                    code(&after["client_close"]),
                );
                want(
                    &mut errors,
                    &name,
                    row,
                    "server_close_code",
                    code(&after["server_close"]),
                );
            } else {
                want(&mut errors, &name, row, "handshake_seen", "true".into());
                want(&mut errors, &name, row, "exact", "true".into());
                want(
                    &mut errors,
                    &name,
                    row,
                    "extensions",
                    t["extensions"].as_str().unwrap_or("").into(),
                );
                side_counts(&mut errors, &name, row, t, t["deflate"] == true);
                want(
                    &mut errors,
                    &name,
                    row,
                    "client_close_code",
                    code(&t["client_close"]),
                );
                want(
                    &mut errors,
                    &name,
                    row,
                    "server_close_code",
                    code(&t["server_close"]),
                );
                if let Some(max) = t.get("server_max_size").or(t.get("server_max_payload")) {
                    // The 1009 is explained: the largest message, inflated, is over the limit.
                    let largest: u64 = row["client_largest_message"].parse().unwrap();
                    if largest <= max.as_u64().unwrap() || row["close_code"] != "1009" {
                        errors.push(format!("{name}: 1009 not explained by {largest} > {max}"));
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(
        checked >= 40,
        "only {checked} sessions and connections checked"
    );
}

fn run(args: &[&str]) -> (Vec<Row>, String) {
    let out = wsclose(args);
    assert!(out.status.success(), "{args:?}");
    (
        rows(&String::from_utf8(out.stdout).unwrap()),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_midstream_and_no_inflate_turn_the_features_off() {
    let (mid, _) = run(&["sessions", "fixtures/reach/midstream.pcap"]);
    assert_eq!(mid.len(), 7);
    let (off, stderr) = run(&[
        "sessions",
        "--no-midstream",
        "fixtures/reach/midstream.pcap",
    ]);
    assert!(off.is_empty());
    assert!(stderr.contains("7 connections not WebSocket"), "{stderr}");

    let (on, _) = run(&["sessions", "fixtures/reach/deflate-node.pcap"]);
    let (off, _) = run(&[
        "sessions",
        "--no-inflate",
        "fixtures/reach/deflate-node.pcap",
    ]);
    assert_eq!(on.len(), off.len());
    for (a, b) in on.iter().zip(&off) {
        for (k, v) in a {
            if k.ends_with("_inflated") || k.ends_with("_largest_message") {
                assert_ne!(v, "", "{k} with inflation");
                assert_eq!(b[k], "", "{k} without inflation");
            } else {
                assert_eq!(&b[k], v, "{k} must not depend on inflation");
            }
        }
    }
}

#[test]
fn both_legs_of_real_proxies_are_paired_and_closed_by_is_taken_across_them() {
    let expect: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/proxy/EXPECT.json")).unwrap(),
    )
    .unwrap();
    let mut errors = Vec::new();
    let mut checked = 0;
    for cap in captures_in(&root().join("fixtures/proxy")) {
        let stem = cap.file_stem().unwrap().to_string_lossy().to_string();
        let exp = &expect["captures"][&stem]["sessions"];
        let (report, _, _) = sessions(&[&cap], 2);
        let got = rows(&report);
        let exp = exp.as_array().unwrap();
        assert_eq!(got.len(), exp.len(), "{stem}");
        for (e, row) in exp.iter().zip(&got) {
            let name = format!("{stem} session {}", e["session"]);
            let peer = e["peer_session"]
                .as_u64()
                .map_or(String::new(), |p| p.to_string());
            want(&mut errors, &name, row, "peer_session", peer);
            want(
                &mut errors,
                &name,
                row,
                "closed_by",
                e["closed_by"].as_str().unwrap().into(),
            );
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(checked >= 80, "only {checked} legs checked");
}

/// tshark's view of a connection forced to WebSocket from its first byte: data frames,
/// pings and close codes per source address.
fn tshark_frames(
    cap: &Path,
    port: u16,
    stream: u64,
) -> Option<HashMap<String, (u64, u64, String)>> {
    let out = Command::new("tshark")
        .args([
            "-r",
            cap.to_str().unwrap(),
            "-d",
            &format!("tcp.port=={port},websocket"),
        ])
        .args(["-Y", &format!("tcp.stream=={stream} && websocket")])
        .args(["-T", "fields", "-e", "ip.src", "-e", "tcp.srcport"])
        .args([
            "-e",
            "websocket.opcode",
            "-e",
            "websocket.payload.close.status_code",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut m: HashMap<String, (u64, u64, String)> = HashMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let e = m.entry(format!("{}:{}", f[0], f[1])).or_default();
        for op in f[2].split(',') {
            match op {
                "1" | "2" => e.0 += 1,
                "9" => e.1 += 1,
                _ => {}
            }
        }
        if !f[3].is_empty() {
            e.2 = f[3].into();
        }
    }
    Some(m)
}

#[test]
fn the_public_corpus_mid_stream_sessions_agree_with_tshark() {
    let corpus = root().join("../shared/corpus/public");
    if !corpus.is_dir() {
        eprintln!("skipped: {} is not present", corpus.display());
        return;
    }
    let mut found = 0;
    for cap in [
        corpus.join("ndpi/websocket.pcap"),
        corpus.join("ndn-tools/ipv4-websocket-segmented.pcap"),
    ] {
        let (report, _, _) = sessions(&[&cap], 2);
        for row in rows(&report)
            .iter()
            .filter(|r| r["handshake_seen"] == "false")
        {
            found += 1;
            let server_port: u16 = row["server"].rsplit(':').next().unwrap().parse().unwrap();
            let stream: u64 = row["tcp_stream"].parse().unwrap();
            let Some(t) = tshark_frames(&cap, server_port, stream) else {
                eprintln!("skipped the tshark comparison: tshark did not run");
                continue;
            };
            for side in ["client", "server"] {
                let (msgs, pings, close) = t.get(&row[side]).cloned().unwrap_or_default();
                let name = format!("{} {side}", cap.display());
                assert_eq!(row[&format!("{side}_messages")], msgs.to_string(), "{name}");
                assert_eq!(row[&format!("{side}_pings")], pings.to_string(), "{name}");
                assert_eq!(row[&format!("{side}_close_code")], close, "{name}");
            }
        }
    }
    assert_eq!(found, 2, "the two mid-stream sessions of the corpus");
}

/// `row` has these values in these columns.
fn has(row: &Row, pairs: &[(&str, &str)]) {
    for (col, v) in pairs {
        assert_eq!(row[*col], *v, "{col} of {row:?}");
    }
}

/// A frame as it goes on the wire (RFC 6455 §5.2), masked with `key` when given.
fn wire(opcode: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    wsclose_synth::ws::encode_frame(true, 0, opcode, key, payload)
}

/// A Close payload: the status code, then the reason.
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    wsclose_synth::ws::close_payload(Some(code), reason)
}

/// A capture made packet by packet (Ethernet, one microsecond apart).
struct Packets {
    w: wsclose_synth::pcap::PcapWriter<Vec<u8>>,
    link: wsclose_synth::pcap::Link,
    t: u64,
}

impl Packets {
    fn new() -> Packets {
        use wsclose_synth::pcap::{Link, PcapOpts, PcapWriter};
        let link = Link::ethernet();
        Packets {
            w: PcapWriter::new(Vec::new(), link.linktype(), PcapOpts::default()).unwrap(),
            link,
            t: 1_700_000_000_000_000_000,
        }
    }

    /// One TCP segment of the connection between `client` and `server`.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        from_client: bool,
        client: &str,
        server: &str,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        use wsclose_synth::packet::{build_tcp, IpOpts, TcpFields};
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        let f = TcpFields {
            seq,
            ack,
            flags,
            window: 512,
            options: Vec::new(),
        };
        let ip = build_tcp(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            &f,
            payload,
            &IpOpts::default(),
        );
        self.t += 1_000;
        let frame = self.link.frame(&ip, from_client);
        self.w.write_packet(self.t, &frame).unwrap();
    }

    /// Written to `name` in `dir`; returns its path.
    fn write(self, dir: &crate::util::TempDir, name: &str) -> String {
        let path = dir.path(name);
        std::fs::write(&path, self.w.into_inner().unwrap()).unwrap();
        path
    }
}

#[test]
fn connections_that_show_only_their_closing_handshake_are_sessions() {
    use wsclose_synth::packet::{ACK, FIN, PSH, RST};
    let mut p = Packets::new();
    let mut put = |from_client: bool, c: &str, s: &str, seq: u32, ack: u32, flags: u8, b: &[u8]| {
        p.put(from_client, c, s, seq, ack, flags, b)
    };
    let (c1, s1) = ("192.168.2.146:57501", "194.145.124.68:8089");
    let idle = wire(
        0x8,
        &close_payload(1000, "Idle for 300204ms > 300000ms"),
        None,
    );
    put(false, c1, s1, 5000, 700, PSH | ACK, &idle);
    put(false, c1, s1, 5000 + idle.len() as u32, 700, FIN | ACK, &[]);
    put(true, c1, s1, 700, 0, RST, &[]);
    put(true, c1, s1, 700, 0, RST, &[]);
    let (c2, s2) = ("192.168.2.78:54322", "194.145.124.68:8089");
    let idle = wire(
        0x8,
        &close_payload(1000, "Idle for 600685ms > 600000ms"),
        None,
    );
    let fin_at = 9000 + idle.len() as u32;
    put(false, c2, s2, fin_at, 300, FIN | ACK, &[]);
    put(false, c2, s2, 9000, 300, PSH | ACK, &idle);
    put(true, c2, s2, 300, fin_at + 1, ACK, &[]);
    let answer = wire(
        0x8,
        &close_payload(1000, ""),
        Some([0x97, 0x61, 0x1a, 0xc5]),
    );
    put(true, c2, s2, 300, fin_at + 1, PSH | ACK, &answer);
    put(
        true,
        c2,
        s2,
        300 + answer.len() as u32,
        fin_at + 1,
        FIN | ACK,
        &[],
    );
    put(
        false,
        c2,
        s2,
        fin_at + 1,
        300 + answer.len() as u32 + 1,
        ACK,
        &[],
    );
    let dir = crate::util::TempDir::new("closing-only");
    let cap = p.write(&dir, "closing-only.pcap");
    let (r, report) = session_rows(&cap);
    assert_eq!(r.len(), 2, "{report}");
    has(
        &r[0],
        &[
            ("client", c1),
            ("server", s1),
            ("handshake_seen", "false"),
            ("server_close_code", "1000"),
            ("server_close_reason", "Idle for 300204ms > 300000ms"),
            ("client_close_code", ""),
            ("first_close_by", "server"),
            ("tcp_end", "rst"),
            ("outcome", "reset"),
            ("anomalies", "midstream"),
        ],
    );
    has(
        &r[1],
        &[
            ("client", c2),
            ("server", s2),
            ("handshake_seen", "false"),
            ("server_close_code", "1000"),
            ("server_close_reason", "Idle for 600685ms > 600000ms"),
            ("client_close_code", "1000"),
            ("first_close_by", "server"),
            ("outcome", "clean"),
        ],
    );
    // The summary says who ended them (sessions picked up mid-stream count there).
    let (summary, _, _) = crate::util::run(&["summary", "-q", &cap]);
    assert!(
        summary.contains("first Close frame: client 0 · server 2 · none 0"),
        "{summary}"
    );
    // The Close captured after its FIN is new data, not a retransmission.
    let (timeline, _, _) = crate::util::run(&["frames", "-q", "--tcp-stream", "1", &cap]);
    assert!(timeline.contains("Idle for 600685ms"), "{timeline}");
    assert!(!timeline.contains("retransmission"), "{timeline}");
    let (report, _, _) = crate::util::run(&["sessions", "-q", "--no-midstream", &cap]);
    assert_eq!(rows(&report).len(), 0, "{report}");
}

/// A capture of the server's direction only (an asymmetric route, a one-way tap): a 101
/// naming WebSocket is a session whose request was not captured (`exact=false`, the
/// request's columns empty); a 200 and a 101 to `h2c` are not.
#[test]
fn a_101_without_its_request_is_a_session_and_other_answers_are_not() {
    use wsclose_synth::packet::{ACK, PSH};
    let mut p = Packets::new();
    let client = "10.0.0.1:61608";
    let answers: [(&str, &[u8]); 3] = [
        (
            "192.118.82.227:80",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: N44lKR48dtulGnBYCp2i7yExiNA=\r\n\r\n",
        ),
        (
            "192.118.82.228:80",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "192.118.82.229:80",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        ),
    ];
    for (server, answer) in answers {
        p.put(false, client, server, 1000, 1, PSH | ACK, answer);
        let text = wire(0x1, b"{\"hello\":1}", None);
        p.put(
            false,
            client,
            server,
            1000 + answer.len() as u32,
            1,
            PSH | ACK,
            &text,
        );
    }
    let dir = crate::util::TempDir::new("answer-only");
    let cap = p.write(&dir, "answer-only.pcap");
    let (r, report) = session_rows(&cap);
    assert_eq!(r.len(), 1, "{report}");
    has(
        &r[0],
        &[
            ("server", "192.118.82.227:80"),
            ("http_status", "101"),
            ("host", ""),
            ("server_messages", "1"),
            ("client_messages", "0"),
            ("exact", "false"),
            ("anomalies", "request_not_captured"),
            ("handshake_seen", "true"),
            ("requests_before_upgrade", ""),
            ("outcome", "open_at_end"),
        ],
    );
}
