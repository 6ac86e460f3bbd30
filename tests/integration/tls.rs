//! wss:// end to end (issue 11): the real TLS captures of fixtures/tls/ with their key
//! logs, as pcapng with a Decryption Secrets Block, without keys and with wrong keys;
//! their golden reports; the programs' truth; a gap; secrets in the middle of a pcapng;
//! the same report for every thread count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::util::{bless, diff_reports, parse_csv, root, run};

fn dir() -> PathBuf {
    root().join("fixtures/tls")
}

/// The TLS captures (classic pcap, each with NAME.keys and NAME.truth.jsonl beside it).
fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    assert!(v.len() >= 6, "only {} TLS captures", v.len());
    v
}

fn keys(cap: &Path) -> String {
    cap.with_extension("keys").display().to_string()
}

fn stem(cap: &Path) -> String {
    cap.file_stem().unwrap().to_str().unwrap().to_string()
}

/// `wsclose SUBCOMMAND --threads N [ARGS] CAPTURE`: (stdout, stderr, exit code).
fn wsclose(sub: &str, threads: usize, args: &[&str], cap: &Path) -> (String, String, i32) {
    let t = threads.to_string();
    let c = cap.display().to_string();
    let mut all = vec![sub, "--threads", &t];
    all.extend_from_slice(args);
    all.push(&c);
    run(&all)
}

/// Rows of a report as maps from column name to cell.
fn rows(report: &str) -> Vec<HashMap<String, String>> {
    let t = parse_csv(report);
    t[1..]
        .iter()
        .map(|r| t[0].iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

/// Compares `report` with fixtures/expected/tls/`name`.csv (or writes it when blessing).
fn golden(name: &str, report: &str, failures: &mut String) {
    let exp = root()
        .join("fixtures/expected/tls")
        .join(format!("{name}.csv"));
    if bless() {
        std::fs::create_dir_all(exp.parent().unwrap()).unwrap();
        std::fs::write(&exp, report).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&exp)
        .unwrap_or_else(|_| panic!("no expected report {}", exp.display()));
    if let Err(m) = diff_reports(name, &expected, report) {
        *failures += &m;
    }
}

#[test]
fn tls_captures_match_expected_reports() {
    let mut failures = String::new();
    for cap in captures() {
        let name = stem(&cap);
        let k = keys(&cap);
        let (report, stderr, code) = wsclose("sessions", 2, &["--keylog", &k], &cap);
        assert_eq!(code, 0, "{name}: {stderr}");
        golden(&name, &report, &mut failures);
        for threads in [1, 3] {
            let (other, _, _) = wsclose("sessions", threads, &["--keylog", &k], &cap);
            assert!(other == report, "{name}: --threads {threads} differs");
        }
        // The same key log from the pcapng's Decryption Secrets Block, without --keylog.
        let ng = cap.with_extension("pcapng");
        if ng.exists() {
            let (from_block, stderr, _) = wsclose("sessions", 2, &[], &ng);
            assert!(
                from_block == report,
                "{name}.pcapng (Decryption Secrets Block) differs from {name}.pcap --keylog: {stderr}"
            );
            assert!(!stderr.contains("without key"), "{stderr}");
        }
        let (nokey, _, _) = wsclose("sessions", 2, &[], &cap);
        golden(&format!("{name}.nokey"), &nokey, &mut failures);
        let (tls, _, _) = wsclose("tls", 2, &["--keylog", &k], &cap);
        golden(&format!("{name}.tls"), &tls, &mut failures);
    }
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn tls_captures_agree_with_the_programs_that_made_them() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for cap in captures() {
        let truth = std::fs::read_to_string(cap.with_extension("truth.jsonl")).unwrap();
        let (report, _, code) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
        assert_eq!(code, 0);
        let name = cap.file_name().unwrap().to_string_lossy().into_owned();
        checked += crate::truth::check_report(&name, &report, &truth, &mut errors);
        // Sessions are exact unless the capture lost bytes (tls-gap).
        for r in rows(&report) {
            let gapped =
                truth.contains(&format!("\"{}\"", r["client"])) && truth.contains("\"gaps\"");
            if r["exact"] != "true" && !gapped {
                errors.push(format!(
                    "{name} {}: exact={}, {}",
                    r["client"], r["exact"], r["anomalies"]
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(checked >= 20, "only {checked} sessions checked");
}

/// WebSocket columns that must be empty (or 0) on a row of a connection not decrypted.
const WS_TEXT: [&str; 10] = [
    "http_status",
    "host",
    "path",
    "subprotocol",
    "extensions",
    "first_close_by",
    "client_close_code",
    "server_close_code",
    "close_code",
    "client_message_in_progress_at_end",
];
const WS_COUNTS: [&str; 8] = [
    "client_messages",
    "server_messages",
    "client_bytes",
    "server_bytes",
    "client_pings",
    "server_pings",
    "client_pongs",
    "server_pongs",
];

/// Every row is an undecrypted TLS connection with `anomaly`, WebSocket columns empty,
/// TCP and TLS columns as in the decrypted report (same client).
fn all_undecrypted(name: &str, report: &str, anomaly: &str, keyed: &str) {
    let keyed: HashMap<String, HashMap<String, String>> = rows(keyed)
        .into_iter()
        .map(|r| (r["client"].clone(), r))
        .collect();
    let got = rows(report);
    assert!(!got.is_empty(), "{name}: no rows");
    for r in &got {
        let who = format!("{name} {}", r["client"]);
        assert_eq!(r["outcome"], "undecrypted", "{who}");
        assert_eq!(r["exact"], "false", "{who}");
        assert_eq!(r["abnormal"], "false", "{who}");
        assert!(
            r["anomalies"].split(';').any(|a| a == anomaly),
            "{who}: {}",
            r["anomalies"]
        );
        for c in WS_TEXT {
            assert_eq!(r[c], "", "{who}: {c}");
        }
        for c in WS_COUNTS {
            assert_eq!(r[c], "0", "{who}: {c}");
        }
        assert!(!r["tls"].is_empty() && !r["tls_cipher"].is_empty(), "{who}");
        assert_eq!(r["sni"], "wsclose.test", "{who}");
        if let Some(k) = keyed.get(&r["client"]) {
            for c in [
                "server",
                "start",
                "end",
                "packets",
                "tcp_end",
                "tcp_end_by",
                "tls",
                "tls_cipher",
                "tcp_stream",
            ] {
                assert_eq!(r[c], k[c], "{who}: {c}");
            }
            // Without keys, TLS 1.3's ALPN (in EncryptedExtensions) is not knowable.
            let alpn = if r["tls"] == "1.2" {
                k["alpn"].as_str()
            } else {
                ""
            };
            assert_eq!(r["alpn"], alpn, "{who}: alpn");
        }
    }
}

#[test]
fn without_keys_every_tls_connection_is_one_undecrypted_row() {
    for cap in captures() {
        let name = stem(&cap);
        let (keyed, _, _) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
        let (report, stderr, code) = wsclose("sessions", 2, &[], &cap);
        assert_eq!(code, 0, "{name}");
        all_undecrypted(&name, &report, "tls_no_key", &keyed);
        // Each TCP connection of these captures is TLS with http/1.1 offered: one row each.
        let (tls, _, _) = wsclose("tls", 2, &[], &cap);
        assert_eq!(rows(&report).len(), rows(&tls).len(), "{name}");
        let hints: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("no key log"))
            .collect();
        assert_eq!(hints.len(), 1, "{name}: {stderr}");
        assert!(hints[0].contains("--keylog"), "{stderr}");
        let (hidden, _, _) = wsclose("sessions", 2, &["--no-undecrypted"], &cap);
        assert_eq!(rows(&hidden).len(), 0, "{name}: --no-undecrypted\n{hidden}");
    }
}

/// `tls12.keys` with every secret byte inverted: the client randoms are right, the
/// secrets are not.
fn wrong_secrets(cap: &Path) -> PathBuf {
    let text = std::fs::read_to_string(cap.with_extension("keys")).unwrap();
    let flipped: String = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| {
                let s: String = f[2]
                    .chars()
                    .map(|c| char::from_digit(15 - c.to_digit(16).unwrap(), 16).unwrap())
                    .collect();
                format!("{} {} {s}\n", f[0], f[1])
            })
        })
        .collect();
    let out = std::env::temp_dir().join(format!(
        "wsclose-test-{}-{}.wrong.keys",
        std::process::id(),
        stem(cap)
    ));
    std::fs::write(&out, flipped).unwrap();
    out
}

#[test]
fn a_key_log_of_another_capture_decrypts_nothing_and_says_so_once() {
    for name in ["tls12", "tls13-suites", "tls-resume"] {
        let cap = dir().join(format!("{name}.pcap"));
        let (keyed, _, _) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
        // Secrets for these client randoms, but not the right ones.
        let wrong = wrong_secrets(&cap);
        let (report, stderr, code) = wsclose(
            "sessions",
            2,
            &["--keylog", &wrong.display().to_string()],
            &cap,
        );
        std::fs::remove_file(&wrong).unwrap();
        assert_eq!(code, 0);
        all_undecrypted(name, &report, "tls_decrypt_failed", &keyed);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("failed to decrypt:"))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(lines[0].contains("another capture"), "{stderr}");
        // Key material is never written: not one secret of the key log on any output.
        let text = std::fs::read_to_string(cap.with_extension("keys")).unwrap();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 3 && f[2].len() >= 64 {
                assert!(!report.contains(f[2]) && !stderr.contains(f[2]), "{l}");
                assert!(!report.contains(f[1]) && !stderr.contains(f[1]), "{l}");
            }
        }
    }
    // Another capture's key log: other client randoms, so no key at all.
    let cap = dir().join("tls12.pcap");
    let other = keys(&dir().join("tls13-suites.pcap"));
    let (keyed, _, _) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
    let (report, stderr, _) = wsclose("sessions", 2, &["--keylog", &other], &cap);
    all_undecrypted("tls12", &report, "tls_no_key", &keyed);
    assert!(
        stderr.contains("has no secrets for their client random"),
        "{stderr}"
    );
}

#[test]
fn a_gap_costs_the_records_it_touched_and_the_row_says_so() {
    let cap = dir().join("tls-gap.pcap");
    let (report, stderr, code) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
    assert_eq!(code, 0, "{stderr}");
    let got = rows(&report);
    assert_eq!(got.len(), 4);
    let a1 = &got[0];
    assert!(a1["path"].contains("sid=a1"), "{report}");
    assert_eq!(a1["exact"], "false");
    let anomalies: Vec<&str> = a1["anomalies"].split(';').collect();
    assert!(
        anomalies.contains(&"tls_gap") && anomalies.contains(&"gap"),
        "{anomalies:?}"
    );
    // One message each way sat in the records the gaps hit; the close frames after them
    // were found again (the framing of the server's direction by trial decryption).
    assert_eq!(
        (
            a1["client_messages"].as_str(),
            a1["server_messages"].as_str()
        ),
        ("3", "3")
    );
    assert_eq!(a1["outcome"], "clean");
    assert_eq!(
        (
            a1["client_close_code"].as_str(),
            a1["server_close_code"].as_str()
        ),
        ("1000", "1000")
    );
    for r in &got[1..] {
        assert_eq!(r["exact"], "true", "{}", r["path"]);
        assert!(!r["anomalies"].contains("tls_gap"));
    }
    assert!(stderr.contains("1 with gaps"), "{stderr}");
}

/// `NAME.pcapng` (SHB, DSB, IDB, EPB…) with its Decryption Secrets Block moved before the
/// packet numbered `before` (1-based).
fn pcapng_with_late_secrets(name: &str, before: usize) -> Vec<u8> {
    let b = std::fs::read(dir().join(format!("{name}.pcapng"))).unwrap();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        blocks.push(&b[i..i + len]);
        i += len;
    }
    let ty = |blk: &[u8]| u32::from_le_bytes(blk[..4].try_into().unwrap());
    let dsb = blocks
        .iter()
        .position(|blk| ty(blk) == 0x0A)
        .expect("a secrets block");
    let secrets = blocks.remove(dsb);
    let mut packets = 0;
    let mut out = Vec::new();
    for blk in blocks {
        if ty(blk) == 6 {
            packets += 1;
            if packets == before {
                out.extend_from_slice(secrets);
            }
        }
        out.extend_from_slice(blk);
    }
    out
}

#[test]
fn secrets_in_the_middle_of_a_pcapng_serve_the_connections_after_them() {
    // tls13-suites: connections start at packets 3, 69, 152 and 180; the block goes
    // before the third connection's first packet.
    let path =
        std::env::temp_dir().join(format!("wsclose-test-{}-late.pcapng", std::process::id()));
    std::fs::write(&path, pcapng_with_late_secrets("tls13-suites", 152)).unwrap();
    let cap = dir().join("tls13-suites.pcap");
    let (keyed, _, _) = wsclose("sessions", 2, &["--keylog", &keys(&cap)], &cap);
    let (report, stderr, code) = wsclose("sessions", 2, &[], &path);
    assert_eq!(code, 0);
    for t in [1, 3, 4] {
        let (other, _, _) = wsclose("sessions", t, &[], &path);
        assert!(other == report, "--threads {t} differs");
    }
    let (got, want) = (rows(&report), rows(&keyed));
    assert_eq!(got.len(), 4);
    for r in &got[..2] {
        assert_eq!(r["outcome"], "undecrypted");
        assert_eq!(r["anomalies"], "tls_no_key");
    }
    assert_eq!(
        got[2..],
        want[2..],
        "the connections after the block decrypt"
    );
    assert!(stderr.contains("put the secrets first"), "{stderr}");
    assert!(stderr.contains("editcap --inject-secrets"), "{stderr}");

    // Batches of a few packets, any thread count: the block still applies exactly where
    // it is.
    use wsclose::capture::Capture;
    use wsclose::pipeline::Options;
    use wsclose::report::csv::CsvWriter;
    use wsclose::report::write_report;
    let p = path.display().to_string();
    for (batch, threads) in [(1, 1), (5, 2), (7, 3), (64, 4)] {
        let mut opts = Options {
            threads,
            ..Options::default()
        };
        opts.limits.batch_packets = batch;
        let capture = Capture::open(std::slice::from_ref(&p), &opts.limits);
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        write_report(capture, &opts, &Default::default(), &mut w).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(out == report, "batches of {batch}, {threads} threads");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_tls_report_lists_every_connection_whatever_it_carries() {
    let cap = dir().join("tls-browser.pcap");
    let (report, stderr, code) = wsclose("tls", 2, &["--keylog", &keys(&cap)], &cap);
    assert_eq!(code, 0, "{stderr}");
    let conns = rows(&report);
    let cells: Vec<(&str, &str, &str, &str)> = conns
        .iter()
        .map(|r| {
            (
                r["decryption"].as_str(),
                r["carries"].as_str(),
                r["ws_outcome"].as_str(),
                r["resumed"].as_str(),
            )
        })
        .collect();
    // The page load (GET /page, /favicon.ico: HTTP/1.1 without an Upgrade), an unused
    // preconnect, and the WebSocket connection, which resumes the page's TLS session.
    assert_eq!(
        cells,
        [
            ("decrypted", "http", "", "false"),
            ("decrypted", "nothing", "", "false"),
            ("decrypted", "websocket", "clean", "true"),
        ]
    );
    assert!(conns
        .iter()
        .all(|r| r["alpn_offered"] == "h2,http/1.1" || r["alpn_offered"] == "http/1.1"));
    let (nokey, _, _) = wsclose("tls", 2, &[], &cap);
    let nokey = rows(&nokey);
    assert_eq!(nokey.len(), 3);
    assert!(nokey
        .iter()
        .all(|r| r["decryption"] == "no_key" && r["carries"] == "unknown"));
    // A plaintext capture has no TLS connection.
    let plain = root().join("fixtures/captures/real-mixed-endings.pcap");
    let (none, _, code) = wsclose("tls", 2, &[], &plain);
    assert_eq!((rows(&none).len(), code), (0, 0));
}

#[test]
fn every_subcommand_that_reads_captures_takes_keylog() {
    let cap = dir().join("tls12.pcap");
    let k = keys(&cap);
    let expect =
        std::env::temp_dir().join(format!("wsclose-test-{}-expect.csv", std::process::id()));
    std::fs::write(&expect, "path,outcome,tls_cipher\n").unwrap();
    let e = expect.display().to_string();
    let by_path = ["--keylog", &k, "--expect", &e, "--match", "path"];
    let (_, stderr, code) = wsclose("check", 2, &[&by_path[..], &["--update"]].concat(), &cap);
    assert_eq!(code, 0, "{stderr}");
    let (out, stderr, code) = wsclose("check", 2, &by_path, &cap);
    assert_eq!(code, 0, "{out}{stderr}");
    let updated = std::fs::read_to_string(&expect).unwrap();
    std::fs::remove_file(&expect).unwrap();
    assert!(
        updated.contains("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        "{updated}"
    );
    assert!(!updated.contains("undecrypted"), "{updated}");
    // A key log that cannot be read is a usage error.
    let (_, stderr, code) = wsclose("sessions", 2, &["--keylog", "/nonexistent/keys"], &cap);
    assert_eq!(code, 2);
    assert!(stderr.contains("--keylog /nonexistent/keys"), "{stderr}");
}

/// A generated wss:// capture (synth, TLS 1.3 AES-128-GCM, with its key log) against the
/// generator's truth: every column the truth names, for every thread count; and the same
/// sessions as the plaintext capture of the same seed.
#[test]
fn generated_wss_captures_agree_with_their_generator() {
    use wsclose_synth::{generate_with_keylog, GenConfig, Mix};
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let mut reports = Vec::new();
    for tls in [false, true] {
        let cfg = GenConfig {
            seed: 11,
            sessions: 40,
            mix: Mix { chat: 9, bulk: 1 },
            target_bytes: 3 << 20,
            concurrency: 8,
            reorder_fraction: 0.3,
            // Gaps only in the plaintext capture (a TLS one has none): none here, so that
            // the two captures hold the same sessions.
            gap_fraction: 0.0,
            header_gap_fraction: 0.0,
            tls,
            ..GenConfig::default()
        };
        let (mut cap, mut keys, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        generate_with_keylog(&cfg, &mut cap, &mut keys, |e| {
            truth.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(keys.is_empty(), !tls);
        let path = tmp.join(format!("wsclose-test-{pid}-gen-{tls}.pcap"));
        let kpath = tmp.join(format!("wsclose-test-{pid}-gen-{tls}.keys"));
        std::fs::write(&path, &cap).unwrap();
        std::fs::write(&kpath, &keys).unwrap();
        let k = kpath.display().to_string();
        let args: &[&str] = if tls { &["--keylog", &k] } else { &[] };
        let (report, stderr, code) = wsclose("sessions", 2, args, &path);
        assert_eq!(code, 0, "{stderr}");
        for t in [1, 3] {
            assert!(
                wsclose("sessions", t, args, &path).0 == report,
                "--threads {t}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&kpath).unwrap();
        let got = rows(&report);
        assert_eq!(got.len(), truth.len(), "tls={tls}");
        let mut errors = Vec::new();
        for (g, t) in got.iter().zip(&truth) {
            for (col, want) in wsclose_synth::COLUMNS.iter().zip(&t.values) {
                if want != "*" && &g[*col] != want {
                    errors.push(format!(
                        "tls={tls} {}: {col} = {:?}, the generator says {want:?}",
                        g["client"], g[*col]
                    ));
                }
            }
            let tls_cols = (
                g["tls"].as_str(),
                g["tls_cipher"].as_str(),
                g["alpn"].as_str(),
            );
            let want = if tls {
                ("1.3", "TLS_AES_128_GCM_SHA256", "http/1.1")
            } else {
                ("", "", "")
            };
            assert_eq!(tls_cols, want);
        }
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        if tls {
            assert!(
                stderr.contains("TLS connections (") && stderr.contains(" decrypted"),
                "{stderr}"
            );
            assert!(!stderr.contains("without key"), "{stderr}");
        }
        reports.push(report);
    }
    // The same sessions, ending for ending (with a size target, the TLS capture's sessions
    // wrap up a little sooner: its records take more bytes).
    let strip = |r: &str| -> Vec<Vec<String>> {
        rows(r)
            .iter()
            .map(|m| {
                ["client", "path", "close_code", "outcome"]
                    .iter()
                    .map(|c| m[*c].clone())
                    .collect()
            })
            .collect()
    };
    assert_eq!(strip(&reports[0]), strip(&reports[1]));
}
