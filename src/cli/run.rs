//! Running a report writer over the captures: options, the capture, the analysis, the
//! closing line on stderr and the run's status — the same for every subcommand.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use wsclose::capture::Capture;
use wsclose::pipeline::Options;
use wsclose::policy::Gate;
use wsclose::report::frames::{FramesFormat, FramesWriter, Selectors};
use wsclose::report::jsonl::read_jsonl;
use wsclose::report::summary::{render, SummaryFormat};
use wsclose::report::{write_report, ReportWriter, Row, RowOptions};
use wsclose::summary::{Builder, Report, Source};
use wsclose::ws::timeline::TimelineSpill;

use super::progress::Progress;
use super::status::Status;
use super::{CaptureArgs, FramesArgs, OutputArgs};

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
    let mut opts = Options::default();
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
    run_report_with(args, row_opts, None, writer)
}

/// [`run_report`], keeping every session's timeline in `timeline` (`frames`).
pub fn run_report_with(
    args: &CaptureArgs,
    row_opts: &RowOptions,
    timeline: Option<Arc<TimelineSpill>>,
    writer: &mut dyn ReportWriter,
) -> Status {
    if args.captures.is_empty() {
        return usage_error("no CAPTURE given (a pcap or pcapng file, or - for stdin)");
    }
    let (mut opts, capture) = match open_capture(args) {
        Ok(x) => x,
        Err(status) => return status,
    };
    opts.timeline = timeline;
    let progress = Progress::start(&args.captures, args.quiet);
    opts.progress = progress.as_ref().map(|p| p.bytes.clone());
    let result = write_report(capture, &opts, row_opts, writer);
    if let Some(p) = progress {
        p.finish();
    }
    let summary = match result {
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

/// `summary --records FILE...`: the summary of JSON Lines that `sessions --format jsonl`
/// wrote. Each session is shown to `gate` (policies over sessions); the report is
/// returned for the findings' policies.
pub fn run_records(
    files: &[String],
    format: SummaryFormat,
    mut out: impl Write,
    quiet: bool,
    row_opts: &RowOptions,
    gate: &mut Gate,
) -> (Status, Option<Report>) {
    let mut builder = Builder::default();
    let mut sources = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let reader: Box<dyn io::BufRead> = if path == "-" {
            Box::new(io::BufReader::new(io::stdin().lock()))
        } else {
            match File::open(path) {
                Ok(f) => Box::new(io::BufReader::with_capacity(1 << 16, f)),
                Err(e) => return (usage_error(&format!("{path}: cannot open: {e}")), None),
            }
        };
        let mut n = 0u64;
        let capture = read_jsonl(reader, &mut |session, rec| {
            n += 1;
            gate.session(&Row {
                session,
                rec: &rec,
                opts: row_opts,
            });
            builder.add(i as u32, session, &rec)
        });
        match capture {
            Ok(Some(c)) => sources.push(Source {
                name: path.clone(),
                stats: c.stats,
                inputs: c.inputs,
                errors: c.errors,
            }),
            Ok(None) => {
                eprintln!(
                    "wsclose: {path}: no \"kind\": \"capture\" line (cut short?): totals count \
                     only its {n} sessions"
                );
                sources.push(Source {
                    name: path.clone(),
                    stats: wsclose::stats::Stats {
                        sessions: n,
                        ..Default::default()
                    },
                    ..Source::default()
                });
            }
            Err(e) => {
                eprintln!("wsclose: error: {path}: {e}");
                return (Status::error(), None);
            }
        }
    }
    gate.finish();
    let report = match builder.finish(sources) {
        Ok(r) => r,
        Err(e) => return (write_failed(&e), None),
    };
    if let Err(e) = out
        .write_all(render(&report, format).as_bytes())
        .and_then(|_| out.flush())
    {
        return (write_failed(&e), Some(report));
    }
    if !quiet {
        eprintln!(
            "wsclose: read {} sessions from {} record file(s)",
            report.sessions,
            files.len()
        );
    }
    (Status::default(), Some(report))
}

/// `frames`: the timeline of the selected sessions.
pub fn run_frames(a: FramesArgs) -> Status {
    if a.tail == Some(0) {
        return usage_error("--tail must be at least 1");
    }
    let spill = match TimelineSpill::new(a.tail) {
        Ok(s) => s,
        Err(e) => return usage_error(&format!("cannot create a temporary file: {e}")),
    };
    let out = match open_output(&a.output) {
        Ok(o) => o,
        Err(s) => return s,
    };
    let format = match a.format {
        super::FramesFormat::Table => FramesFormat::Table,
        super::FramesFormat::Csv => FramesFormat::Csv,
        super::FramesFormat::Jsonl => FramesFormat::Jsonl,
    };
    let selectors = Selectors {
        sessions: a.session.clone(),
        tcp_streams: a.tcp_stream.clone(),
        clients: a.client.clone(),
    };
    let row_opts = RowOptions {
        redact: a.redact.mode(),
        ..RowOptions::default()
    };
    let mut w = FramesWriter::new(out, spill.clone(), selectors, format, row_opts.redact);
    let status = run_report_with(&a.capture, &row_opts, Some(spill), &mut w);
    if !status.error && !status.pipe_closed {
        for s in &a.session {
            if !w.seen_sessions.contains(s) {
                eprintln!("wsclose: no session {s} in the capture");
            }
        }
    }
    status
}
