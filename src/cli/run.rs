//! Running a report writer over the captures: options, the output, the capture, the
//! analysis, the messages on stderr and the run's status — the same for every subcommand.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use wsclose::capture::{Capture, PacketFilter, Stop};
use wsclose::flow::tls::TlsOptions;
use wsclose::pipeline::Options;
use wsclose::policy::Gate;
use wsclose::report::frames::{FramesFormat, FramesWriter, Selectors};
use wsclose::report::jsonl::read_jsonl;
use wsclose::report::summary::{render, SummaryFormat};
use wsclose::report::{write_report, ReportWriter, Row, RowOptions};
use wsclose::stats::Stats;
use wsclose::summary::{Builder, Report, Source};
use wsclose::tls::KeyLog;
use wsclose::ws::timeline::TimelineSpill;

use super::output::{Output, SharedOut};
use super::progress::Progress;
use super::status::{Signal, Status};
use super::{CaptureArgs, FramesArgs, OutputArgs};

/// One line on stderr, in the one style: `wsclose: what`.
pub fn say(msg: &str) {
    eprintln!("wsclose: {msg}");
}

pub fn usage_error(msg: &str) -> Status {
    say(msg);
    Status::error()
}

/// Whether `e` is, or wraps, a closed pipe (the reader went away, as `| head` does).
fn is_broken_pipe(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return true;
    }
    let mut inner: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|x| x as _);
    while let Some(x) = inner {
        if let Some(io) = x.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        inner = x.source();
    }
    false
}

/// The status after a failed write: a closed pipe is not an error of ours; anything
/// else is said, and the output is left as it was.
pub fn write_failed(e: &io::Error, output: &Output) -> Status {
    output.abandon();
    if is_broken_pipe(e) {
        return Status {
            pipe_closed: true,
            ..Status::default()
        };
    }
    say(&format!("{}: cannot write the report: {e}", output.name));
    Status::error()
}

/// The secrets of the `--keylog` files. A line that is not a key log line is counted
/// and said (never shown: it may hold a secret); the others are used.
fn load_keylogs(args: &CaptureArgs) -> Result<KeyLog, Status> {
    let mut log = KeyLog::new();
    for path in &args.keylog {
        let name = path.display();
        let loaded = log
            .add_file(path)
            .map_err(|e| usage_error(&format!("--keylog {name}: cannot read: {e}")))?;
        if loaded.malformed > 0 && !args.quiet {
            say(&format!(
                "--keylog {name}: {} not in the key log format (the first: line {}); the others are used",
                wsclose::stats::plural(loaded.malformed as u64, "line is", "lines are"),
                loaded.first_malformed_line.unwrap_or(0)
            ));
        }
        if loaded.secrets == 0 && !args.quiet {
            say(&format!("--keylog {name}: no TLS secrets in it"));
        }
    }
    Ok(log)
}

/// The analysis options of `args`, checked (nothing is read yet but the key logs).
fn options(args: &CaptureArgs, tls: &TlsOptions) -> Result<Options, Status> {
    let mut opts = Options {
        inflate: !args.no_inflate,
        midstream: !args.no_midstream,
        keylog: Arc::new(load_keylogs(args)?),
        tls: *tls,
        ..Options::default()
    };
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(usage_error("--threads must be at least 1"));
        }
        let cores = opts.threads;
        if t > cores {
            // More threads than cores only costs memory and switches; the report is the
            // same for every count.
            if !args.quiet {
                say(&format!(
                    "note: --threads {t} is more than the {} here; using {cores}",
                    wsclose::stats::plural(cores as u64, "core", "cores")
                ));
            }
        } else {
            opts.threads = t;
        }
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
    Ok(opts)
}

/// The `--filter` of `args`, compiled (a syntax error is a usage error).
fn filter(args: &CaptureArgs) -> Result<Option<PacketFilter>, Status> {
    let Some(expr) = &args.filter else {
        return Ok(None);
    };
    #[cfg(feature = "libpcap")]
    match wsclose::filter::BpfFilter::new(expr) {
        Ok(mut f) => Ok(Some(Box::new(move |lt, data, len| {
            f.matches(lt, data, len)
        }))),
        Err(e) => Err(usage_error(&format!("--filter: {e}"))),
    }
    #[cfg(not(feature = "libpcap"))]
    {
        let _ = expr;
        Err(usage_error(
            "--filter needs a build with the libpcap feature: \
             apt-get install libpcap-dev && cargo build --release --features libpcap",
        ))
    }
}

/// Runs a report writer over the captures of `args` into the output of `out`: every
/// argument is checked and the output opened before any input is read; then the
/// sessions, numbered 1, 2, 3 … in report order, the end of the run, the messages on
/// stderr, and the output put in place.
pub fn run_report<W: ReportWriter>(
    args: &CaptureArgs,
    tls: &TlsOptions,
    out: &OutputArgs,
    row_opts: &RowOptions,
    make_writer: impl FnOnce(SharedOut) -> io::Result<W>,
) -> Status {
    run_report_with(args, tls, out, row_opts, None, make_writer)
}

/// [`run_report`], keeping every session's timeline in `timeline` (`frames`).
pub fn run_report_with<W: ReportWriter>(
    args: &CaptureArgs,
    tls: &TlsOptions,
    out: &OutputArgs,
    row_opts: &RowOptions,
    timeline: Option<Arc<TimelineSpill>>,
    make_writer: impl FnOnce(SharedOut) -> io::Result<W>,
) -> Status {
    if args.captures.is_empty() {
        return usage_error("no CAPTURE given (a pcap or pcapng file, or - for stdin)");
    }
    let mut opts = match options(args, tls) {
        Ok(o) => o,
        Err(s) => return s,
    };
    opts.timeline = timeline;
    let filter = match filter(args) {
        Ok(f) => f,
        Err(s) => return s,
    };
    let output = match Output::open(out.output.as_deref(), &args.captures) {
        Ok(o) => o,
        Err(refused) => return usage_error(&refused.0),
    };
    let stop = Arc::new(Stop::default());
    let watch = match super::signals::watch(Arc::clone(&stop), output.clone()) {
        Ok(w) => w,
        Err(e) => {
            output.abandon();
            return usage_error(&format!("cannot watch for signals: {e}"));
        }
    };

    let mut capture = Capture::open_with(&args.captures, &opts.limits, stop);
    if let Some(f) = filter {
        capture.set_filter(f);
    }
    capture.set_per_file(args.per_file);
    // Rows of a live capture go out as they are written.
    output.flush_rows(capture.is_live());
    let mut writer = match make_writer(output.writer()) {
        Ok(w) => w,
        Err(e) => return write_failed(&e, &output),
    };
    let progress = Progress::start(&args.captures, args.quiet || capture.is_live());
    opts.progress = progress.as_ref().map(|p| p.bytes.clone());
    let result = write_report(capture, &opts, row_opts, &mut writer);
    if let Some(p) = progress {
        p.finish();
    }
    let summary = match result {
        Ok(s) => s,
        Err(e) => return write_failed(&e, &output),
    };
    drop(writer);
    if let Err(e) = output.finish() {
        return write_failed(&e, &output);
    }
    for e in &summary.errors {
        say(&e.to_string());
    }
    let signal = watch.signal();
    if !args.quiet {
        if let Some(s) = signal {
            let cut = &summary.cut_by_stop;
            let name = match s {
                Signal::Int => "SIGINT",
                Signal::Term => "SIGTERM",
            };
            let mut line = format!("stopped by {name}: the capture ends there");
            if !cut.is_empty() {
                line += &format!(
                    " (the last record of {} was cut by the stop and is not counted)",
                    cut.join(", ")
                );
            }
            say(&line);
        }
        say(&summary.stats.closing(summary.errors.len()).to_string());
        if summary.stats.sessions == 0 && summary.stats.tls.rows == 0 && !tls.every_connection {
            say("no WebSocket session (no HTTP Upgrade: websocket request) in the capture");
        }
        for hint in tls_hints(&summary.stats, !opts.keylog.is_empty()) {
            say(&hint);
        }
    }
    Status {
        signal,
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
    out: &OutputArgs,
    quiet: bool,
    row_opts: &RowOptions,
    gate: &mut Gate,
) -> (Status, Option<Report>) {
    if files.iter().filter(|c| *c == "-").count() > 1 {
        return (usage_error("stdin (-) can be read only once"), None);
    }
    let output = match Output::open(out.output.as_deref(), files) {
        Ok(o) => o,
        Err(refused) => return (usage_error(&refused.0), None),
    };
    let mut builder = Builder::default();
    let mut sources = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let reader: Box<dyn io::BufRead> = if path == "-" {
            Box::new(io::BufReader::new(io::stdin().lock()))
        } else {
            match File::open(path) {
                Ok(f) => Box::new(io::BufReader::with_capacity(1 << 16, f)),
                Err(e) => {
                    output.abandon();
                    return (usage_error(&format!("{path}: cannot open: {e}")), None);
                }
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
                say(&format!(
                    "{path}: no \"kind\": \"capture\" line (cut short?): totals count only its \
                     {n} sessions"
                ));
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
                output.abandon();
                say(&format!("{path}: {e}"));
                return (Status::error(), None);
            }
        }
    }
    gate.finish();
    let report = match builder.finish(sources) {
        Ok(r) => r,
        Err(e) => return (write_failed(&e, &output), None),
    };
    let mut w = output.writer();
    if let Err(e) = w
        .write_all(render(&report, format).as_bytes())
        .and_then(|_| output.finish())
    {
        return (write_failed(&e, &output), Some(report));
    }
    if !quiet {
        say(&format!(
            "read {} sessions from {} record file(s)",
            report.sessions,
            files.len()
        ));
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
    let mut w = None;
    let status = run_report_with(
        &a.capture,
        &TlsOptions::default(),
        &a.output,
        &row_opts,
        Some(spill.clone()),
        |out| {
            Ok(w.insert(FramesWriter::new(
                out,
                spill,
                selectors,
                format,
                row_opts.redact,
            )))
        },
    );
    if !status.error && !status.pipe_closed {
        if let Some(w) = &w {
            for s in &a.session {
                if !w.seen_sessions.contains(s) {
                    say(&format!("no session {s} in the capture"));
                }
            }
        }
    }
    status
}

/// What to do about TLS connections that were not decrypted: one line per cause.
fn tls_hints(stats: &Stats, keylog_given: bool) -> Vec<String> {
    let t = &stats.tls;
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut hints = Vec::new();
    if t.no_key > 0 {
        let n = t.no_key;
        hints.push(if t.late_secrets_blocks > 0 {
            format!(
                "{n} TLS connection{} had no key when it was needed; {} Decryption Secrets \
                 Block{} came after packets of the capture and serve{} only the connections \
                 after {}: put the secrets first (editcap --inject-secrets tls,KEYS in.pcap out.pcapng)",
                plural(n),
                t.late_secrets_blocks,
                plural(t.late_secrets_blocks),
                if t.late_secrets_blocks == 1 { "s" } else { "" },
                if t.late_secrets_blocks == 1 { "it" } else { "them" },
            )
        } else if !keylog_given && t.secrets_blocks == 0 {
            format!(
                "{n} TLS connection{} not decrypted: no key log (give one with --keylog FILE, \
                 as SSLKEYLOGFILE writes it, or put it in a pcapng: editcap --inject-secrets tls,FILE)",
                plural(n)
            )
        } else {
            format!(
                "{n} TLS connection{} without key: the key log has no secrets for {} client random",
                plural(n),
                if n == 1 { "its" } else { "their" }
            )
        });
    }
    if t.decrypt_failed > 0 {
        let n = t.decrypt_failed;
        hints.push(format!(
            "{n} TLS connection{} failed to decrypt: {} records do not authenticate with the \
             key log's secrets (a key log of another capture?)",
            plural(n),
            if n == 1 { "its" } else { "their" }
        ));
    }
    hints
}
