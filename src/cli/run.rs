//! Running a report writer over the captures: options, the capture, the analysis, the
//! closing line on stderr and the exit status — the same for every subcommand.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use wsclose::capture::Capture;
use wsclose::pipeline::Options;
use wsclose::report::{write_report, ReportWriter};

use super::{CaptureArgs, OutputArgs};

pub fn usage_error(msg: &str) -> ExitCode {
    eprintln!("wsclose: {msg}");
    ExitCode::from(2)
}

pub fn write_failed(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (e.g. `| head`): not an error of ours.
        return ExitCode::SUCCESS;
    }
    eprintln!("wsclose: error: writing the report: {e}");
    ExitCode::from(2)
}

/// stdout, or the file `-o` names, buffered.
pub fn open_output(args: &OutputArgs) -> Result<BufWriter<Box<dyn Write>>, ExitCode> {
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
fn open_capture(args: &CaptureArgs) -> Result<(Options, Capture), ExitCode> {
    let mut opts = Options::default();
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(usage_error("--threads must be at least 1"));
        }
        opts.threads = t;
    }
    if let Some(m) = args.memory {
        opts.limits.memory_budget = m;
    }
    if let Some(n) = args.max_connections {
        opts.limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    opts.order = match args.order {
        super::Order::First => wsclose::pipeline::Order::FirstPacket,
        super::Order::End => wsclose::pipeline::Order::End,
    };
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
/// order, then the end of the run; the closing line on stderr; the exit status.
pub fn run_report(args: &CaptureArgs, writer: &mut dyn ReportWriter) -> ExitCode {
    let (opts, capture) = match open_capture(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let summary = match write_report(capture, &opts, writer) {
        Ok(s) => s,
        Err(e) => return write_failed(e),
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
    if summary.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
