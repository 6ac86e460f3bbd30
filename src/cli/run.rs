//! Running a report writer over the captures: options, the capture, the analysis, the
//! closing line on stderr and the run's status — the same for every subcommand.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use wsclose::capture::Capture;
use wsclose::flow::tls::TlsOptions;
use wsclose::pipeline::Options;
use wsclose::report::{write_report, ReportWriter, RowOptions};
use wsclose::stats::Stats;
use wsclose::tls::KeyLog;

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
            eprintln!(
                "wsclose: --keylog {name}: {} line{} not in the key log format (the first: line {}); the others are used",
                loaded.malformed,
                if loaded.malformed == 1 { " is" } else { "s are" },
                loaded.first_malformed_line.unwrap_or(0)
            );
        }
        if loaded.secrets == 0 && !args.quiet {
            eprintln!("wsclose: --keylog {name}: no TLS secrets in it");
        }
    }
    Ok(log)
}

/// The analysis options and the opened capture of `args`.
fn open_capture(args: &CaptureArgs, tls: &TlsOptions) -> Result<(Options, Capture), Status> {
    let mut opts = Options {
        keylog: Arc::new(load_keylogs(args)?),
        tls: *tls,
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
    tls: &TlsOptions,
    row_opts: &RowOptions,
    writer: &mut dyn ReportWriter,
) -> Status {
    let (opts, capture) = match open_capture(args, tls) {
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
        if summary.stats.sessions == 0 && summary.stats.tls.rows == 0 && !tls.every_connection {
            eprintln!(
                "wsclose: no WebSocket session (no HTTP Upgrade: websocket request) in the capture"
            );
        }
        for hint in tls_hints(&summary.stats, !opts.keylog.is_empty()) {
            eprintln!("wsclose: {hint}");
        }
    }
    Status {
        error: !summary.errors.is_empty(),
        ..Status::default()
    }
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
