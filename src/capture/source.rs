//! Where a capture's bytes come from: a regular file, stdin or a FIFO, gzip-compressed or
//! not (by magic, RFC 1952 §2.3.1), and how a live input is read: a read that would block
//! gives up at the capture's hand-on deadline (so that a partial batch moves on), and a
//! stop request ends the input after the drain time (a pipe is read until its end or for
//! [`DRAIN_NS`], so that what tcpdump flushes when it is stopped too is still read).

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// How long a live input is still read after a stop request.
pub const DRAIN_NS: u64 = 1_000_000_000;

/// How long a read on a live input waits for more bytes before the partial batch is handed
/// on (and how often a waiting read looks at the stop flag).
pub const HAND_ON_NS: u64 = 100_000_000;

/// Nanoseconds on a monotonic clock (since its first use in this process, plus one, so
/// that 0 can mean "never").
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// A request to stop reading, made by whoever watches for signals and checked by the
/// capture, which then reports the end of its input.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    /// [`now_ns`] at the request (0 before it).
    at_ns: AtomicU64,
}

impl Stop {
    /// Asks the capture to end (the first request counts; later ones change nothing).
    pub fn request(&self) {
        if !self.requested.swap(true, Ordering::SeqCst) {
            self.at_ns.store(now_ns(), Ordering::SeqCst);
        }
    }

    #[inline]
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Until when a live input is still read, once a stop was requested.
    fn drain_until(&self) -> Option<u64> {
        if !self.is_requested() {
            return None;
        }
        // The request stores the time just after setting the flag: wait for it.
        loop {
            let at = self.at_ns.load(Ordering::SeqCst);
            if at != 0 {
                return Some(at + DRAIN_NS);
            }
            std::hint::spin_loop();
        }
    }
}

/// What the capture shares with its live inputs.
#[derive(Debug, Default)]
pub struct LiveCtl {
    pub stop: Arc<Stop>,
    /// [`now_ns`] after which a read that would block gives up with `WouldBlock`; 0 while
    /// no batch is being filled (the read then waits).
    hand_on_at: AtomicU64,
    /// Set when a live input was ended by the drain deadline rather than by its writer.
    cut_by_stop: AtomicBool,
}

impl LiveCtl {
    pub fn new(stop: Arc<Stop>) -> Self {
        LiveCtl {
            stop,
            ..LiveCtl::default()
        }
    }

    /// A batch starts: reads give up `HAND_ON_NS` from now.
    pub fn batch_started(&self) {
        self.hand_on_at
            .store(now_ns() + HAND_ON_NS, Ordering::Relaxed);
    }

    /// No batch is being filled: reads wait.
    pub fn no_batch(&self) {
        self.hand_on_at.store(0, Ordering::Relaxed);
    }

    /// Whether a live input was ended by the stop's drain deadline.
    pub fn cut_by_stop(&self) -> bool {
        self.cut_by_stop.load(Ordering::Relaxed)
    }
}

/// An opened input, before any capture format is looked at.
pub struct Source {
    pub read: Box<dyn Read + Send>,
    /// Not a regular file (a pipe, FIFO, socket, terminal or device): it cannot be opened a
    /// second time, and reads on it wait for the writer.
    pub live: bool,
    /// The bytes are gzip-decompressed on the way (offsets are in the decompressed data).
    pub gzip: bool,
    /// About how many bytes there are to read (a regular file's size; for gzip, a guess),
    /// so that a small file does not get a large buffer.
    pub size_hint: Option<u64>,
}

/// Opens `path` (`-` is stdin) and looks for the gzip magic.
pub fn open(path: &str, ctl: &Arc<LiveCtl>) -> io::Result<Source> {
    let file = if path == "-" {
        stdin_file()?
    } else {
        File::open(path)?
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory",
        ));
    }
    let live = !meta.is_file();
    let raw: Box<dyn Read + Send> = if live {
        Box::new(LiveSource::new(file, Arc::clone(ctl)))
    } else {
        Box::new(file)
    };
    let mut src = with_gzip(raw, live)?;
    if !live {
        // A pcap compresses to about a third or a tenth: a first guess, not a limit.
        src.size_hint = Some(if src.gzip {
            meta.len().saturating_mul(8)
        } else {
            meta.len()
        });
    }
    Ok(src)
}

/// Puts a gzip decoder in front of `raw` when it starts with the gzip magic (1f 8b).
pub fn with_gzip(mut raw: Box<dyn Read + Send>, live: bool) -> io::Result<Source> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match raw.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let chained: Box<dyn Read + Send> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(raw));
    if n == 2 && head == [0x1f, 0x8b] {
        // A rotated set compressed member by member is one stream of several members.
        let gz = flate2::read::MultiGzDecoder::new(chained);
        Ok(Source {
            read: Box::new(gz),
            live,
            gzip: true,
            size_hint: None,
        })
    } else {
        Ok(Source {
            read: chained,
            live,
            gzip: false,
            size_hint: None,
        })
    }
}

/// Our own handle on stdin, read without std's buffer (a buffer the poll cannot see).
#[cfg(unix)]
fn stdin_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn stdin_file() -> io::Result<File> {
    use std::os::windows::io::AsHandle;
    Ok(File::from(io::stdin().as_handle().try_clone_to_owned()?))
}

/// A pipe, FIFO or other non-file input: reads wait with `poll(2)` so that they can give
/// up at the hand-on deadline and notice a stop request.
struct LiveSource {
    file: File,
    ctl: Arc<LiveCtl>,
}

impl LiveSource {
    fn new(file: File, ctl: Arc<LiveCtl>) -> Self {
        LiveSource { file, ctl }
    }
}

impl Read for LiveSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let now = now_ns();
            let drain = self.ctl.stop.drain_until();
            let hand_on = self.ctl.hand_on_at.load(Ordering::Relaxed);
            let until = match drain {
                Some(d) if now >= d => {
                    self.ctl.cut_by_stop.store(true, Ordering::Relaxed);
                    return Ok(0);
                }
                Some(d) => d,
                None if hand_on != 0 && now >= hand_on => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                None if hand_on != 0 => hand_on,
                // Waiting for the writer: wake up to look at the stop flag.
                None => now + HAND_ON_NS,
            };
            let wait_ms = (until - now)
                .div_ceil(1_000_000)
                .min(HAND_ON_NS / 1_000_000);
            if readable(&self.file, wait_ms as i32)? {
                match self.file.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                }
            }
        }
    }
}

/// Waits up to `ms` milliseconds for `file` to have bytes (or its end) to read.
#[cfg(unix)]
fn readable(file: &File, ms: i32) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// Without poll, a read simply waits.
#[cfg(not(unix))]
fn readable(_file: &File, _ms: i32) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_found_by_magic() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"hello ").unwrap();
        let mut gz = e.finish().unwrap();
        // A second member: concatenated gzip files are one stream (RFC 1952 §2.2).
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"world").unwrap();
        gz.extend_from_slice(&e.finish().unwrap());
        let mut s = with_gzip(Box::new(io::Cursor::new(gz)), false).unwrap();
        assert!(s.gzip);
        let mut out = String::new();
        s.read.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");

        let mut s = with_gzip(Box::new(io::Cursor::new(b"\x1fplain".to_vec())), false).unwrap();
        assert!(!s.gzip);
        let mut out = Vec::new();
        s.read.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"\x1fplain");

        let mut s = with_gzip(Box::new(io::Cursor::new(vec![0x1f])), false).unwrap();
        let mut out = Vec::new();
        s.read.read_to_end(&mut out).unwrap();
        assert_eq!(out, [0x1f]);
    }

    #[test]
    fn stop_sets_a_drain_deadline_once() {
        let s = Stop::default();
        assert!(s.drain_until().is_none());
        s.request();
        let d = s.drain_until().unwrap();
        s.request();
        assert_eq!(s.drain_until(), Some(d));
    }
}
