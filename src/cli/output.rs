//! Where a report goes: stdout (no `-o`, or `-o -`), a FIFO or device written directly, or
//! a regular file (or new path) written to a temporary file in the same directory and
//! renamed over the target at the end — whenever a report was produced, so that only a
//! usage error or a failed write leaves the old file untouched. Every check that can fail
//! is made before any input is read.
//!
//! The output is shared with the signal watcher: a second SIGINT/SIGTERM flushes what was
//! written (whole rows: writers hand rows over one `write_all` each) and exits at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

/// The temporary file and the path it replaces at the end.
struct Commit {
    tmp: PathBuf,
    target: PathBuf,
}

struct Sink {
    w: BufWriter<Box<dyn Write + Send>>,
    commit: Option<Commit>,
    /// Flush after every row (a live input: rows should not wait in the buffer).
    flush_rows: bool,
}

impl Sink {
    /// Flushes, then renames the temporary file over the target (if any).
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()?;
        if let Some(c) = self.commit.take() {
            if let Err(e) = fs::rename(&c.tmp, &c.target) {
                let _ = fs::remove_file(&c.tmp);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes the temporary file: the target stays as it was.
    fn abandon(&mut self) {
        if let Some(c) = self.commit.take() {
            let _ = fs::remove_file(&c.tmp);
        }
    }
}

/// The report's destination, opened and checked.
#[derive(Clone)]
pub struct Output {
    sink: Arc<Mutex<Sink>>,
    /// The name in messages.
    pub name: String,
}

/// Why `-o` cannot be used (a usage error: nothing was read or written).
#[derive(Debug)]
pub struct Refused(pub String);

impl Output {
    /// Opens the destination `-o` names (`None` or `-`: stdout) for a run over `inputs`.
    pub fn open(path: Option<&str>, inputs: &[String]) -> Result<Output, Refused> {
        let (w, commit, name): (Box<dyn Write + Send>, _, _) = match path {
            None | Some("-") => (Box::new(io::stdout()), None, "<stdout>".to_string()),
            Some(p) => {
                let (w, commit) = open_path(Path::new(p), inputs)?;
                (w, commit, p.to_string())
            }
        };
        Ok(Output {
            sink: Arc::new(Mutex::new(Sink {
                w: BufWriter::with_capacity(1 << 16, w),
                commit,
                flush_rows: false,
            })),
            name,
        })
    }

    /// Rows go out as soon as they are written (for live inputs).
    pub fn flush_rows(&self, on: bool) {
        self.lock().flush_rows = on;
    }

    /// A writer into this output (each `write_all` is one row, kept whole).
    pub fn writer(&self) -> SharedOut {
        SharedOut(Arc::clone(&self.sink))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The end of a run that produced a report: flush, and put the file in place.
    pub fn finish(&self) -> io::Result<()> {
        self.lock().finish()
    }

    /// The end of a run that produced no report (or failed writing it): the target stays
    /// as it was.
    pub fn abandon(&self) {
        self.lock().abandon()
    }

    /// For a second signal: flushes what was written and puts the file in place, unless
    /// the output is stuck (a full pipe) for longer than `wait`.
    pub fn finish_now(&self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            match self.sink.try_lock() {
                Ok(mut s) => {
                    let _ = s.finish();
                    return;
                }
                Err(TryLockError::Poisoned(p)) => {
                    let _ = p.into_inner().finish();
                    return;
                }
                Err(TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(TryLockError::WouldBlock) => return,
            }
        }
    }
}

/// A `Write` into the shared output.
pub struct SharedOut(Arc<Mutex<Sink>>);

impl SharedOut {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().w.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        s.w.write_all(buf)?;
        if s.flush_rows {
            s.w.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().w.flush()
    }
}

/// Opens `-o PATH`: a FIFO or device directly; otherwise a temporary file beside the target.
fn open_path(
    path: &Path,
    inputs: &[String],
) -> Result<(Box<dyn Write + Send>, Option<Commit>), Refused> {
    let show = path.display();
    let refuse = |what: String| Refused(format!("{show}: {what}"));
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(refuse(format!("cannot write the report there: {e}"))),
    };
    if let Some(m) = &meta {
        if m.is_dir() {
            return Err(refuse("is a directory".into()));
        }
        for i in inputs {
            // stdin redirected from the file (`< FILE`) is that file too.
            let input = if i == "-" { "/dev/stdin" } else { i.as_str() };
            if fs::metadata(input).is_ok_and(|im| same_file(m, &im)) {
                return Err(refuse(format!(
                    "is also an input ({i}); refusing to overwrite it"
                )));
            }
        }
        if !m.is_file() {
            // A FIFO, a device (/dev/null), a socket: written directly.
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| refuse(format!("cannot write the report there: {e}")))?;
            return Ok((Box::new(f), None));
        }
        // The file must be writable, though it is replaced rather than written.
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| refuse(format!("cannot write the report there: {e}")))?;
    }
    // A symbolic link keeps pointing where it did: the file it names is replaced.
    let target = match &meta {
        Some(_) => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        None => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let (tmp, f) = create_temp(&dir, &base)
        .map_err(|e| refuse(format!("cannot write the report there: {e}")))?;
    if let Some(m) = &meta {
        // The new file keeps the old one's permissions.
        let _ = fs::set_permissions(&tmp, m.permissions());
    }
    Ok((Box::new(f), Some(Commit { tmp, target })))
}

/// A new file `.BASE.wsclose-PID-N.tmp` in `dir`.
fn create_temp(dir: &Path, base: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    for n in 0.. {
        let tmp = dir.join(format!(".{base}.wsclose-{pid}-{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &fs::Metadata, _b: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wsclose-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_is_replaced_only_when_finished() {
        let d = dir("replace");
        let target = d.join("r.csv");
        fs::write(&target, "old\n").unwrap();
        let t = target.to_str().unwrap();

        let o = Output::open(Some(t), &[]).unwrap();
        o.writer().write_all(b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "old\n");
        o.abandon();
        assert_eq!(fs::read_to_string(&target).unwrap(), "old\n");

        let o = Output::open(Some(t), &[]).unwrap();
        o.writer().write_all(b"new\n").unwrap();
        o.finish().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refusals() {
        let d = dir("refuse");
        let input = d.join("in.pcap");
        fs::write(&input, b"x").unwrap();
        let i = input.to_str().unwrap().to_string();
        let e = Output::open(Some(&i), std::slice::from_ref(&i))
            .err()
            .unwrap();
        assert!(e.0.contains("is also an input"), "{}", e.0);
        let e = Output::open(Some(d.to_str().unwrap()), &[]).err().unwrap();
        assert!(e.0.contains("is a directory"), "{}", e.0);
        let missing = d.join("no/such/dir/r.csv");
        let e = Output::open(Some(missing.to_str().unwrap()), &[])
            .err()
            .unwrap();
        assert!(e.0.contains("cannot write the report there"), "{}", e.0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn devices_are_written_directly() {
        let o = Output::open(Some("/dev/null"), &[]).unwrap();
        o.writer().write_all(b"x\n").unwrap();
        o.finish().unwrap();
        assert!(Path::new("/dev/null").exists());
    }
}
