//! Every capture in fixtures/ against its expected report in fixtures/expected/, byte for
//! byte; the same report for 1, 2 and 3 threads.

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
