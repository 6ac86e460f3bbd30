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

/// Runs `wsclose` with `args`; returns (stdout, stderr, exit code).
pub fn run(args: &[&str]) -> (String, String, i32) {
    let out = wsclose(args);
    (
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A fresh temporary directory for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("wsclose-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes `text` to `name` in the directory; returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CSV report as a header and rows, to edit by column name.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn parse(text: &str) -> Table {
        let mut all = parse_csv(text);
        let header = all.remove(0);
        Table { header, rows: all }
    }

    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// The row whose `session` is `n`.
    pub fn row(&mut self, n: u64) -> &mut Vec<String> {
        let c = self.col("session");
        self.rows
            .iter_mut()
            .find(|r| r[c] == n.to_string())
            .unwrap_or_else(|| panic!("no session {n}"))
    }

    /// Sets column `name` of session `n`.
    pub fn set(&mut self, n: u64, name: &str, value: &str) -> &mut Table {
        let c = self.col(name);
        self.row(n)[c] = value.to_string();
        self
    }

    pub fn get(&self, n: u64, name: &str) -> String {
        let (s, c) = (self.col("session"), self.col(name));
        self.rows.iter().find(|r| r[s] == n.to_string()).unwrap()[c].clone()
    }

    /// Removes column `name` from the header and every row.
    pub fn drop_column(&mut self, name: &str) -> &mut Table {
        let c = self.col(name);
        self.header.remove(c);
        for r in &mut self.rows {
            r.remove(c);
        }
        self
    }

    /// Keeps only these columns, in this order.
    pub fn select(&self, names: &[&str]) -> Table {
        let idx: Vec<usize> = names.iter().map(|n| self.col(n)).collect();
        Table {
            header: names.iter().map(|s| s.to_string()).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
                .collect(),
        }
    }

    /// The CSV text, written as `wsclose sessions` writes it.
    pub fn text(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(&self.header).unwrap();
        for r in &self.rows {
            w.write_record(r).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }
}

/// A pcap with one UDP packet: a capture without any WebSocket session.
pub fn udp_only_pcap() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0,
    ]);
    let ip: [u8; 28] = [
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0,
        0,
    ];
    f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28, 0, 0, 0]);
    f.extend_from_slice(&ip);
    f
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
