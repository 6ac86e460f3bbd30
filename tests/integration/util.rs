//! Running the built binary, and comparing reports with readable differences.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `wsclose` with `args` from the crate root.
pub fn wsclose(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run wsclose")
}

/// `wsclose sessions` on `captures`, with `threads`; returns (stdout, stderr, exit code).
pub fn sessions(captures: &[&Path], threads: usize) -> (String, String, i32) {
    let t = threads.to_string();
    let mut args = vec!["sessions", "--threads", &t];
    let caps: Vec<String> = captures.iter().map(|p| p.display().to_string()).collect();
    args.extend(caps.iter().map(String::as_str));
    let out = wsclose(&args);
    (
        String::from_utf8(out.stdout).expect("UTF-8 report"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Whether expected files should be (re)written instead of compared.
pub fn bless() -> bool {
    std::env::var_os("WSCLOSE_BLESS").is_some()
}

/// Parses a CSV report into rows of fields (header first).
pub fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(s.as_bytes());
    r.records()
        .map(|rec| rec.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// Compares two reports; on difference, names every differing row and column.
pub fn diff_reports(name: &str, expected: &str, actual: &str) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let (e, a) = (parse_csv(expected), parse_csv(actual));
    let mut msg = format!("{name}: report differs from the expected one\n");
    let header = e.first().cloned().unwrap_or_default();
    if e.len() != a.len() {
        msg += &format!("  rows: expected {}, got {}\n", e.len(), a.len());
    }
    for (i, (er, ar)) in e.iter().zip(a.iter()).enumerate() {
        for (j, (ef, af)) in er.iter().zip(ar.iter()).enumerate() {
            if ef != af {
                let col = header.get(j).map_or("?", String::as_str);
                msg += &format!("  row {i} column {col}: expected {ef:?}, got {af:?}\n");
            }
        }
        if er.len() != ar.len() {
            msg += &format!(
                "  row {i}: expected {} fields, got {}\n",
                er.len(),
                ar.len()
            );
        }
    }
    for (i, r) in a.iter().enumerate().skip(e.len()) {
        msg += &format!("  extra row {i}: {}\n", r.join(","));
    }
    for (i, r) in e.iter().enumerate().skip(a.len()) {
        msg += &format!("  missing row {i}: {}\n", r.join(","));
    }
    msg += "  (set WSCLOSE_BLESS=1 to accept the new report after checking it)\n";
    Err(msg)
}

/// Capture files in `dir` (not recursive), sorted.
pub fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// A fresh, empty directory for one test (`name` keeps tests apart).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsclose-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `wsclose ARGS` from the crate root: (stdout, stderr, exit code).
pub fn run(args: &[&str]) -> (String, String, i32) {
    let out = wsclose(args);
    (
        String::from_utf8(out.stdout).expect("UTF-8 report"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The records of a classic pcap file: (global header, records with their headers).
pub fn pcap_records(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let be = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        m => panic!("not a classic pcap: {m:?}"),
    };
    let mut recs = Vec::new();
    let mut i = 24;
    while i + 16 <= bytes.len() {
        let b: [u8; 4] = bytes[i + 8..i + 12].try_into().unwrap();
        let caplen = if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        } as usize;
        recs.push(bytes[i..i + 16 + caplen].to_vec());
        i += 16 + caplen;
    }
    (bytes[..24].to_vec(), recs)
}

/// Splits a classic pcap into files of `per_file` records in `dir` (as a capture tool
/// rotating its output would): `part-00001.pcap`, … in order.
pub fn split_pcap(bytes: &[u8], per_file: usize, dir: &Path) -> Vec<PathBuf> {
    let (header, recs) = pcap_records(bytes);
    recs.chunks(per_file)
        .enumerate()
        .map(|(i, c)| {
            let p = dir.join(format!("part-{:05}.pcap", i + 1));
            let mut f = header.clone();
            for r in c {
                f.extend_from_slice(r);
            }
            std::fs::write(&p, f).unwrap();
            p
        })
        .collect()
}

/// Rows of a CSV report as maps from column name to value (header first in `s`).
pub fn rows_by_name(s: &str) -> Vec<std::collections::HashMap<String, String>> {
    let rows = parse_csv(s);
    let header = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}
