//! Running a report writer over the captures: options, the capture, the analysis, the
//! closing line on stderr and the run's status — the same for every subcommand.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use wsclose::capture::Capture;
use wsclose::pipeline::Options;
use wsclose::report::{write_report, ReportWriter, RowOptions};

use super::status::Status;
use super::{CaptureArgs, OutputArgs};

pub fn usage_error(msg: &str) -> Status {
    eprintln!("wsclose: {msg}");
    Status::error()
}

/// The status after a failed write: a closed pipe is not an error of ours (the reader
/// went away, as `| head` does); anything else is.
pub fn write_failed(e: &io::Error) -> Status {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Status {
            pipe_closed: true,
            ..Status::default()
        };
    }
    eprintln!("wsclose: error: writing the report: {e}");
    Status::error()
}

/// stdout, or the file `-o` names, buffered.
pub fn open_output(args: &OutputArgs) -> Result<BufWriter<Box<dyn Write>>, Status> {
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => return Err(usage_error(&format!("{path}: cannot create: {e}"))),
        },
        None => Box::new(io::stdout().lock()),
    };
    Ok(BufWriter::with_capacity(1 << 16, sink))
}

/// The analysis options and the opened capture of `args`.
fn open_capture(args: &CaptureArgs) -> Result<(Options, Capture), Status> {
    let mut opts = Options {
        inflate: !args.no_inflate,
        midstream: !args.no_midstream,
        ..Options::default()
    };
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(usage_error("--threads must be at least 1"));
        }
        opts.threads = t;
    }
    if args.captures.iter().filter(|c| *c == "-").count() > 1 {
        return Err(usage_error("stdin (-) can be read only once"));
    }
    let mut capture = Capture::open(&args.captures, &opts.limits);
    if let Some(expr) = &args.filter {
        #[cfg(feature = "libpcap")]
        match wsclose::filter::BpfFilter::new(expr) {
            Ok(mut f) => {
                capture.set_filter(Box::new(move |lt, data, len| f.matches(lt, data, len)))
            }
            Err(e) => return Err(usage_error(&format!("--filter: {e}"))),
        }
        #[cfg(not(feature = "libpcap"))]
        {
            let _ = (expr, &mut capture);
            return Err(usage_error(
                "--filter needs a build with the libpcap feature: \
                 apt-get install libpcap-dev && cargo build --release --features libpcap",
            ));
        }
    }
    Ok((opts, capture))
}

/// Runs `writer` over the captures of `args`: sessions numbered 1, 2, 3 … in report
/// order, then the end of the run; the closing line on stderr. The status says whether
/// an input could not be read to its end or the output could not be written (`error`),
/// or the reader closed the pipe (`pipe_closed`: the run stopped there).
pub fn run_report(
    args: &CaptureArgs,
    row_opts: &RowOptions,
    writer: &mut dyn ReportWriter,
) -> Status {
    let (opts, capture) = match open_capture(args) {
        Ok(x) => x,
        Err(status) => return status,
    };
    let summary = match write_report(capture, &opts, row_opts, writer) {
        Ok(s) => s,
        Err(e) => return write_failed(&e),
    };
    for e in &summary.errors {
        eprintln!("wsclose: error: {e}");
    }
    if !args.quiet {
        eprintln!("wsclose: {}", summary.stats);
        if summary.stats.sessions == 0 {
            eprintln!(
                "wsclose: no WebSocket session (no HTTP Upgrade: websocket request) in the capture"
            );
        }
    }
    Status {
        error: !summary.errors.is_empty(),
        ..Status::default()
    }
}
