//! Command-line interface: argument definitions and the `sessions` command.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use wsclose::capture::Capture;
use wsclose::pipeline::{analyze, Options};
use wsclose::report::csv::CsvReport;

const AFTER_HELP: &str = "\
EXAMPLES:
    wsclose sessions capture.pcap
    wsclose sessions rotated-1.pcap rotated-2.pcap -o sessions.csv
    tcpdump -i eth0 -w - 'tcp port 8080' | wsclose sessions -
    wsclose sessions --threads 1 big.pcapng > sessions.csv

EXIT STATUS:
    0  the report was written
    1  a check or policy failed (reserved for checks)
    2  usage error, or an input could not be read to its end (the sessions seen
       before the error are still reported)";

#[derive(Parser, Debug)]
#[command(name = "wsclose", version, about = "Why did my WebSocket connections close? Reports every WebSocket session in packet captures.", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One CSV row per WebSocket session: messages, close codes and reasons, who closed
    /// first, how TCP ended, and whether the counts are exact.
    #[command(after_help = AFTER_HELP)]
    Sessions(SessionsArgs),
}

#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    /// pcap or pcapng files, merged by timestamp into one capture; `-` reads stdin.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
    /// Write the report to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
    /// Worker threads (default: all cores). The report is the same for every value.
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only analyze packets matching this BPF expression (tcpdump syntax; needs the
    /// `libpcap` build feature).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Do not print the summary line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("wsclose: {msg}");
    ExitCode::from(2)
}

pub fn run_sessions(args: SessionsArgs) -> ExitCode {
    let mut opts = Options::default();
    if let Some(t) = args.threads {
        if t == 0 {
            return usage_error("--threads must be at least 1");
        }
        opts.threads = t;
    }
    if args.captures.iter().filter(|c| *c == "-").count() > 1 {
        return usage_error("stdin (-) can be read only once");
    }
    let mut capture = Capture::open(&args.captures, &opts.limits);
    if let Some(expr) = &args.filter {
        #[cfg(feature = "libpcap")]
        match wsclose::filter::BpfFilter::new(expr) {
            Ok(mut f) => {
                capture.set_filter(Box::new(move |lt, data, len| f.matches(lt, data, len)))
            }
            Err(e) => return usage_error(&format!("--filter: {e}")),
        }
        #[cfg(not(feature = "libpcap"))]
        {
            let _ = (expr, &mut capture);
            return usage_error(
                "--filter needs a build with the libpcap feature: \
                 apt-get install libpcap-dev && cargo build --release --features libpcap",
            );
        }
    }
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => return usage_error(&format!("{path}: cannot create: {e}")),
        },
        None => Box::new(io::stdout().lock()),
    };
    let mut report = match CsvReport::new(BufWriter::with_capacity(1 << 16, sink)) {
        Ok(r) => r,
        Err(e) => return write_failed(e.into()),
    };
    let result = analyze(capture, &opts, &mut |rec| {
        report.write(&rec).map_err(io::Error::from)
    });
    let summary = match result {
        Ok(s) => s,
        Err(e) => return write_failed(e),
    };
    if let Err(e) = report.finish() {
        return write_failed(e);
    }
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

fn write_failed(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (e.g. `| head`): not an error of ours.
        return ExitCode::SUCCESS;
    }
    eprintln!("wsclose: error: writing the report: {e}");
    ExitCode::from(2)
}
