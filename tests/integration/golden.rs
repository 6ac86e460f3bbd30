//! Every capture in fixtures/ against its expected report in fixtures/expected/, byte for
//! byte; the same report for 1, 2 and 3 threads, and for both ways of running two.

use std::path::{Path, PathBuf};

use crate::util::{bless, captures_in, diff_reports, root, sessions};

fn expected_path(group: &str, capture: &Path) -> PathBuf {
    let stem = capture.file_name().unwrap().to_str().unwrap();
    let stem = stem.trim_end_matches(".pcapng").trim_end_matches(".pcap");
    root()
        .join("fixtures/expected")
        .join(group)
        .join(format!("{stem}.csv"))
}

/// Checks each capture of `dir` against fixtures/expected/`group`/; returns how many.
fn check_dir(group: &str, dir: &Path) -> usize {
    let caps = captures_in(dir);
    let mut failures = String::new();
    for cap in &caps {
        let (report, stderr, code) = sessions(&[cap], 2);
        assert_eq!(code, 0, "{}: exit {code}, stderr: {stderr}", cap.display());
        let exp = expected_path(group, cap);
        if bless() {
            std::fs::create_dir_all(exp.parent().unwrap()).unwrap();
            std::fs::write(&exp, &report).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&exp).unwrap_or_else(|_| {
            panic!("{} has no expected report {}", cap.display(), exp.display())
        });
        if let Err(m) = diff_reports(&cap.display().to_string(), &expected, &report) {
            failures += &m;
        }
        for threads in [1, 3] {
            let (other, _, _) = sessions(&[cap], threads);
            assert!(
                other == report,
                "{}: --threads {threads} differs from --threads 2",
                cap.display()
            );
        }
        // Two threads run the shards in one of two ways (pipeline.rs, `Mode`), chosen by
        // the options; each gives the same report.
        for mode in ["pipeline", "join"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsclose"))
                .args(["sessions", "--threads", "2"])
                .arg(cap)
                .env("WSCLOSE_MODE", mode)
                .current_dir(root())
                .output()
                .expect("run wsclose");
            assert!(
                out.stdout == report.as_bytes(),
                "{}: --threads 2 in mode {mode} differs",
                cap.display()
            );
        }
    }
    assert!(failures.is_empty(), "{failures}");
    caps.len()
}

#[test]
fn real_captures_match_expected_reports() {
    let n = check_dir("real", &root().join("fixtures/captures"));
    assert!(n >= 8, "only {n} real captures found");
}

#[test]
fn reach_and_proxy_captures_match_expected_reports() {
    let n = check_dir("reach", &root().join("fixtures/reach"));
    assert!(n >= 17, "only {n} reach captures found");
    let n = check_dir("proxy", &root().join("fixtures/proxy"));
    assert!(n >= 8, "only {n} proxy captures found");
}

#[test]
fn synthetic_captures_match_expected_reports() {
    let n = check_dir("synthetic", &root().join("fixtures/synthetic"));
    assert!(n >= 10, "only {n} synthetic captures found");
}

/// The public third-party captures beside the project (../shared/corpus), when present:
/// they may not be copied into this repository, so only their reports are kept here.
#[test]
fn public_corpus_matches_expected_reports() {
    let corpus = root().join("../shared/corpus/public");
    if !corpus.is_dir() {
        eprintln!("skipped: {} is not present", corpus.display());
        return;
    }
    let mut n = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        let group = format!("corpus/{}", d.file_name().unwrap().to_str().unwrap());
        n += check_dir(&group, d);
    }
    assert!(n >= 30, "only {n} corpus captures found");
}

/// Records that wait for their turn are spilled to disk past a cap; the report must not
/// change. A cap of one byte spills every record.
#[test]
fn spilling_waiting_records_does_not_change_the_report() {
    use wsclose::capture::Capture;
    use wsclose::pipeline::Options;
    use wsclose::report::csv::CsvWriter;
    use wsclose::report::write_report;
    let caps = [
        "fixtures/captures/real-mixed-endings.pcap",
        "fixtures/synthetic/generated-small.pcap",
    ];
    for cap in caps {
        let path = root().join(cap).display().to_string();
        let run = |max_pending_bytes: usize| {
            let mut opts = Options {
                threads: 2,
                ..Options::default()
            };
            opts.limits.max_pending_bytes = max_pending_bytes;
            let capture = Capture::open(std::slice::from_ref(&path), &opts.limits);
            let mut report = CsvWriter::new(Vec::new()).unwrap();
            write_report(capture, &opts, &Default::default(), &mut report).unwrap();
            String::from_utf8(report.into_inner().unwrap()).unwrap()
        };
        let (normal, spilled) = (run(64 << 20), run(1));
        assert!(normal.lines().count() > 2);
        assert_eq!(normal, spilled, "{cap}");
    }
}

/// Past `max_connections`, the longest-idle connections are evicted: each evicted session
/// says so (anomaly `evicted`, exact=false), the count is reported, and the choice is the
/// same for every thread count.
#[test]
fn eviction_is_counted_marked_and_deterministic() {
    use wsclose::capture::Capture;
    use wsclose::pipeline::Options;
    use wsclose::report::csv::CsvWriter;
    use wsclose::report::write_report;
    let path = root()
        .join("fixtures/synthetic/generated-small.pcap")
        .display()
        .to_string();
    let run = |threads: usize| {
        let mut opts = Options {
            threads,
            ..Options::default()
        };
        opts.limits.max_connections = 3;
        opts.limits.batch_packets = 16;
        let capture = Capture::open(std::slice::from_ref(&path), &opts.limits);
        let mut report = CsvWriter::new(Vec::new()).unwrap();
        let summary = write_report(capture, &opts, &Default::default(), &mut report).unwrap();
        (
            String::from_utf8(report.into_inner().unwrap()).unwrap(),
            summary.stats.evicted,
        )
    };
    let (one, evicted) = run(1);
    assert!(evicted > 0, "nothing was evicted");
    let rows = crate::util::parse_csv(&one);
    let col = |n: &str| rows[0].iter().position(|c| c == n).unwrap();
    let marked: Vec<_> = rows[1..]
        .iter()
        .filter(|r| r[col("anomalies")].contains("evicted"))
        .collect();
    assert!(!marked.is_empty(), "{one}");
    assert!(marked.iter().all(|r| r[col("exact")] == "false"), "{one}");
    for t in [2, 3, 4] {
        assert_eq!(run(t), (one.clone(), evicted), "threads {t}");
    }
}
