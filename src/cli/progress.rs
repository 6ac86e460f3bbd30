//! Progress on stderr while captures are read: bytes, rate and (for files) the ETA, drawn
//! by `indicatif` only when stderr is a terminal and `-q` was not given.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Does the file at `path` start with the gzip magic (RFC 1952 §2.3.1)?
fn is_gzip(path: &str) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// A progress display fed by the pipeline's byte counter.
pub struct Progress {
    pub bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// A display for reading `inputs`, or `None` when it should not be drawn.
    pub fn start(inputs: &[String], quiet: bool) -> Option<Progress> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        // The total is known when every input is a regular file, not gzip-compressed
        // (bytes read are counted decompressed).
        let total: Option<u64> = inputs
            .iter()
            .map(|p| {
                (p != "-")
                    .then(|| {
                        std::fs::metadata(p)
                            .ok()
                            .filter(|m| m.is_file() && !is_gzip(p))
                            .map(|m| m.len())
                    })
                    .flatten()
            })
            .sum();
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bytes.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("wsclose-progress".into())
            .spawn(move || {
                // Nothing is drawn for runs shorter than this.
                std::thread::sleep(Duration::from_millis(300));
                while !s.load(Ordering::Relaxed) {
                    bar.set_position(b.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
            .ok()?;
        Some(Progress {
            bytes,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and clears the display.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
