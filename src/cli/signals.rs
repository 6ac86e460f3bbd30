//! SIGINT and SIGTERM: the first asks the capture to stop (it then ends as at the end of
//! its input, and every session is written); the second flushes what was written and
//! exits at once.
//!
//! `signal-hook` runs the handlers: its iterator turns a signal into a message for a
//! thread of ours (the handler itself only writes to a pipe), and it tells SIGINT from
//! SIGTERM, which the exit status needs (130 or 143).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wsclose::capture::Stop;

use super::output::Output;
use super::status::Signal;

/// The signal that stopped the run, if any.
pub struct Watch {
    first: Arc<AtomicU8>,
}

const NONE: u8 = 0;
const INT: u8 = 1;
const TERM: u8 = 2;

impl Watch {
    pub fn signal(&self) -> Option<Signal> {
        match self.first.load(Ordering::SeqCst) {
            INT => Some(Signal::Int),
            TERM => Some(Signal::Term),
            _ => None,
        }
    }
}

/// Installs the handlers: the first signal requests `stop`; the second finishes `output`
/// (within half a second) and exits with 130 or 143.
#[cfg(unix)]
pub fn watch(stop: Arc<Stop>, output: Output) -> std::io::Result<Watch> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let first = Arc::new(AtomicU8::new(NONE));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let seen = Arc::clone(&first);
    std::thread::Builder::new()
        .name("wsclose-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let this = if sig == SIGTERM { TERM } else { INT };
                match seen.compare_exchange(NONE, this, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => stop.request(),
                    Err(first) => {
                        output.finish_now(Duration::from_millis(500));
                        std::process::exit(if first == TERM { 143 } else { 130 });
                    }
                }
            }
        })?;
    Ok(Watch { first })
}

#[cfg(not(unix))]
pub fn watch(_stop: Arc<Stop>, _output: Output) -> std::io::Result<Watch> {
    Ok(Watch {
        first: Arc::new(AtomicU8::new(NONE)),
    })
}
