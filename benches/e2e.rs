//! End to end: `pipeline::analyze` over captures generated in memory by `synth::generate`,
//! with 1 and 2 threads.
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench -j 2 --bench e2e [-- FILTER]
//!
//! Sizes can be changed with E2E_CHAT_MB / E2E_BULK_MB (defaults 64 and 96). The TLS
//! cases (`e2e_chat_tls`, `e2e_bulk_tls`) are the same sessions as `wss://` (TLS 1.3,
//! AES-128-GCM), decrypted with the generator's key log.
//!
//! Before timing, the answer is checked: the CSV report is compared column by column with
//! the generator's ground truth (the columns of `synth::COLUMNS`, `*` = not compared), and
//! the 1-thread and 2-thread reports must be byte-identical.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use wsclose::capture::{Capture, FileReader};
use wsclose::config::Limits;
use wsclose::pipeline::{analyze, Options};
use wsclose::record::SessionRecord;
use wsclose::report::csv::CsvWriter;
use wsclose::report::{ReportWriter, Row};
use wsclose::tls::KeyLog;
use wsclose_synth::{generate_with_keylog, ExpectedSession, GenConfig, Mix, COLUMNS};

struct Input {
    name: &'static str,
    bytes: &'static [u8],
    expected: Vec<ExpectedSession>,
    /// The key log of a TLS capture (empty for plaintext).
    keys: Arc<KeyLog>,
}

fn env_mb(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn make_input(name: &'static str, mix: Mix, sessions: u64, mb: u64, seed: u64, tls: bool) -> Input {
    let cfg = GenConfig {
        seed,
        sessions,
        mix,
        target_bytes: mb << 20,
        tls,
        ..GenConfig::default()
    };
    let t = Instant::now();
    let mut bytes = Vec::with_capacity((mb as usize + 8) << 20);
    let mut expected = Vec::new();
    let mut keylog = Vec::new();
    generate_with_keylog(&cfg, &mut bytes, &mut keylog, |e| {
        expected.push(e);
        Ok(())
    })
    .expect("generate");
    let mut keys = KeyLog::new();
    keys.add_text(&keylog);
    eprintln!(
        "e2e/{name}: generated {:.1} MB, {} sessions in {:.1}s",
        bytes.len() as f64 / 1e6,
        expected.len(),
        t.elapsed().as_secs_f64()
    );
    // Leaked so every iteration can read it through a 'static Cursor without a copy.
    Input {
        name,
        bytes: Vec::leak(bytes),
        expected,
        keys: Arc::new(keys),
    }
}

fn capture(bytes: &'static [u8], limits: &Limits) -> Capture {
    let r = FileReader::from_reader("gen.pcap".into(), Box::new(Cursor::new(bytes)), limits)
        .expect("pcap header");
    Capture::from_readers(vec![r], vec![], limits)
}

fn run(input: &Input, threads: usize) -> Vec<SessionRecord> {
    let bytes = input.bytes;
    let opts = Options {
        threads,
        limits: Limits::default(),
        keylog: Arc::clone(&input.keys),
        ..Options::default()
    };
    let mut records = Vec::new();
    let summary = analyze(capture(bytes, &opts.limits), &opts, &mut |r| {
        records.push(r);
        Ok(())
    })
    .expect("analyze");
    assert!(
        summary.errors.is_empty(),
        "input errors: {:?}",
        summary.errors
    );
    records
}

fn render(records: &[SessionRecord]) -> Vec<u8> {
    let mut rep = CsvWriter::new(Vec::new()).expect("csv");
    for (i, rec) in records.iter().enumerate() {
        let row = Row {
            session: i as u64 + 1,
            rec,
            opts: &Default::default(),
        };
        rep.session(&row).expect("csv row");
    }
    rep.into_inner().expect("csv finish")
}

/// Compares the report with the ground truth; panics with every mismatch (up to 30).
fn check(name: &str, csv: &[u8], expected: &[ExpectedSession]) {
    let mut rd = csv::ReaderBuilder::new().from_reader(csv);
    let header = rd.headers().expect("header").clone();
    let idx: Vec<usize> = COLUMNS
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == *c)
                .unwrap_or_else(|| panic!("{name}: report has no column {c:?}"))
        })
        .collect();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("csv row")).collect();
    let mut errs = Vec::new();
    if rows.len() != expected.len() {
        errs.push(format!(
            "{} sessions reported, {} expected",
            rows.len(),
            expected.len()
        ));
    }
    for (i, (row, exp)) in rows.iter().zip(expected).enumerate() {
        for (k, col) in COLUMNS.iter().enumerate() {
            let want = exp.values[k].as_str();
            let got = row.get(idx[k]).unwrap_or("<missing>");
            if want != "*" && want != got {
                errs.push(format!(
                    "session #{} ({} -> {}): {col}: expected {want:?}, got {got:?}",
                    i + 1,
                    exp.values[0],
                    exp.values[1]
                ));
            }
        }
    }
    if !errs.is_empty() {
        let n = errs.len();
        errs.truncate(30);
        panic!(
            "e2e/{name}: the report does not match the generator's ground truth ({n} mismatches):\n  {}",
            errs.join("\n  ")
        );
    }
}

fn bench_e2e(c: &mut Criterion) {
    let (chat, bulk) = (env_mb("E2E_CHAT_MB", 64), env_mb("E2E_BULK_MB", 96));
    let inputs = [
        make_input("chat", Mix::CHAT, 600, chat, 21, false),
        make_input("bulk", Mix::BULK, 16, bulk, 22, false),
        make_input("chat_tls", Mix::CHAT, 600, chat, 21, true),
        make_input("bulk_tls", Mix::BULK, 16, bulk, 22, true),
    ];
    for input in &inputs {
        let one = render(&run(input, 1));
        check(input.name, &one, &input.expected);
        let two = render(&run(input, 2));
        assert!(
            one == two,
            "e2e/{}: threads=1 and threads=2 reports differ ({} vs {} bytes)",
            input.name,
            one.len(),
            two.len()
        );
        eprintln!(
            "e2e/{}: checked {} sessions against the ground truth; 1 and 2 threads identical",
            input.name,
            input.expected.len()
        );
        let mut g = c.benchmark_group(format!("e2e_{}", input.name));
        g.throughput(Throughput::Bytes(input.bytes.len() as u64));
        // Each iteration takes 0.05-0.5 s: the same number of iterations in every sample.
        g.sampling_mode(SamplingMode::Flat);
        for threads in [1, 2] {
            g.bench_function(format!("threads{threads}"), |b| {
                b.iter(|| run(input, threads).len())
            });
        }
        g.finish();
    }
}

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_e2e
}
criterion_main!(benches);
