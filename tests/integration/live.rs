//! Live captures: a FIFO or a pipe that stays open, SIGINT and SIGTERM.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{root, rows_by_name, run, temp_dir};

const MIXED: &str = "fixtures/captures/real-mixed-endings.pcap";

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sends a signal to our own child, by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Starts `wsclose sessions FIFO ARGS` and opens the FIFO for writing (which waits until
/// wsclose has opened it: its signal handlers are installed by then).
fn start_on_fifo(dir: &Path, args: &[&str]) -> (Child, std::fs::File, PathBuf) {
    let fifo = dir.join("live.fifo");
    mkfifo(&fifo);
    let child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("sessions")
        .arg(&fifo)
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let w = OpenOptions::new().write(true).open(&fifo).unwrap();
    (child, w, fifo)
}

fn finish(mut child: Child) -> (String, String, i32) {
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (out, err, status.code().unwrap_or(-1))
}

/// The report of the first `n` bytes of MIXED as a file (which ends in a cut record).
fn report_of_prefix(dir: &Path, n: usize) -> String {
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let p = dir.join("prefix.pcap");
    std::fs::write(&p, &bytes[..n]).unwrap();
    let (out, _, code) = run(&["sessions", p.to_str().unwrap()]);
    assert_eq!(code, 2, "the prefix ends inside a record");
    out
}

/// SIGINT while the writer keeps the FIFO open: wsclose reads on for a second, then ends
/// as at the end of the capture: every session written (the last one open_at_end), the
/// cut record not an error, exit 130; -o is put in place.
#[test]
fn sigint_on_a_fifo_writes_every_session_and_exits_130() {
    let dir = temp_dir("sigint");
    let out_csv = dir.join("report.csv");
    std::fs::write(&out_csv, "old report\n").unwrap();
    let (child, mut w, _) = start_on_fifo(&dir, &["-o", out_csv.to_str().unwrap()]);
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let n = bytes.len() * 2 / 3 + 5;
    w.write_all(&bytes[..n]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    signal(&child, libc::SIGINT);
    let (stdout, err, code) = finish(child);
    let waited = t.elapsed();
    drop(w);
    assert_eq!(code, 130, "{err}");
    assert!(stdout.is_empty());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "read on for about a second after the signal: {waited:?}"
    );
    assert!(err.contains("stopped by SIGINT"), "{err}");
    assert!(
        !err.contains("truncated capture"),
        "a record cut by the stop is no error: {err}"
    );
    let report = std::fs::read_to_string(&out_csv).unwrap();
    assert_eq!(report, report_of_prefix(&dir, n));
    let rows = rows_by_name(&report);
    assert!(rows.len() > 5, "{report}");
    assert_eq!(rows.last().unwrap()["outcome"], "open_at_end", "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM: the same, with 143; what the writer sends after the signal is still read (the
/// whole capture is reported), up to the pipe's end.
#[test]
fn sigterm_on_stdin_reads_to_the_end_and_exits_143() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sessions", "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let half = bytes.len() / 2;
    stdin.write_all(&bytes[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // What a stopped tcpdump flushes arrives after the signal, and then its end.
    stdin.write_all(&bytes[half..]).unwrap();
    drop(stdin);
    let t = Instant::now();
    let (out, err, code) = finish(child);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "ends at the pipe's end"
    );
    assert_eq!(code, 143, "{err}");
    let (whole, _, _) = run(&["sessions", MIXED]);
    assert_eq!(out, whole);
    assert!(err.contains("stopped by SIGTERM"), "{err}");
}

/// A second signal flushes what was written and exits at once (not a second later).
#[test]
fn a_second_signal_exits_at_once() {
    let dir = temp_dir("sigint2");
    let out_csv = dir.join("report.csv");
    let (child, mut w, _) = start_on_fifo(&dir, &["-o", out_csv.to_str().unwrap()]);
    let bytes = std::fs::read(root().join(MIXED)).unwrap();
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGINT);
    let (_, err, code) = finish(child);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    drop(w);
    assert_eq!(code, 130, "{err}");
    // What was written is there, whole rows (here the header: sessions are written at
    // the end of the capture, which the second signal did not wait for).
    let report = std::fs::read_to_string(&out_csv).unwrap();
    assert!(report.starts_with("session,tcp_stream,"), "{report}");
    assert!(report.ends_with('\n'));
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
