//! Command-line interface: the subcommands, the options they share, and one function that
//! runs a report writer over the captures (`run.rs`), so that a new subcommand is a writer
//! and a few lines here. The exit status is chosen in one place (`status.rs`); where the
//! report goes is `output.rs`; SIGINT/SIGTERM are `signals.rs`.

mod output;
mod run;
mod signals;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use run::run_report;
use wsclose::report::csv::CsvWriter;

const SESSIONS_HELP: &str = "\
EXAMPLES:
    wsclose sessions capture.pcap
    wsclose sessions rotated-*.pcap.gz -o sessions.csv
    tcpdump -i eth0 -w - 'tcp port 8080' | wsclose sessions -
    wsclose sessions --threads 1 big.pcapng > sessions.csv

INPUTS:
    pcap or pcapng, plain or gzip-compressed (found by magic). Several inputs are one
    capture, merged by timestamp in the order of their first packets (the order of the
    arguments does not matter); numbers are those of the merged capture (`mergecap -w
    all.pcap FILES...`), --per-file adds each file's own. Files are opened one after the
    other as the merge reaches them, so a rotated set of any length works.

LIVE CAPTURES:
    On SIGINT (Ctrl-C) or SIGTERM, a pipe or FIFO is still read until its end or for
    1 s, then the capture ends there: sessions still open are open_at_end, every session
    is written, and the exit status is 130 (SIGINT) or 143 (SIGTERM). A second signal
    flushes what was written and exits at once.

OUTPUT:
    -o FILE writes a temporary file beside FILE and renames it over FILE at the end
    whenever a report was produced (also after an input error or a signal); a usage
    error or a failed write leaves FILE untouched. `-o -` is stdout; FIFOs and devices
    are written directly; an input is never overwritten.

TCP END:
    tcp_end is rst when any RST was seen, else fin when any FIN was seen, else open;
    tcp_end_by is the side that sent the first packet of that kind (the first RST when
    tcp_end is rst, else the first FIN).

EXIT STATUS:
    0    the report was written
    1    a check or policy failed (reserved for checks)
    2    usage error, an input that could not be read to its end (the sessions seen
         before the error are still written), or a failed output write
    130  stopped by SIGINT; 143 stopped by SIGTERM
    When several apply, the first of 130/143, 2, 1, 0 wins. A reader that closes the
    pipe (as `| head` does) is not a failure: wsclose stops quietly.";

#[derive(Parser, Debug)]
#[command(name = "wsclose", version, about = "Why did my WebSocket connections close? Reports every WebSocket session in packet captures.", after_help = SESSIONS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One CSV row per WebSocket session: messages, close codes and reasons, who closed
    /// first, how TCP ended, and whether the counts are exact.
    #[command(after_help = SESSIONS_HELP)]
    Sessions(SessionsArgs),
}

/// What every subcommand that reads captures takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// pcap or pcapng files (gzip-compressed or not), merged by timestamp into one
    /// capture; `-` reads stdin.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
    /// Worker threads (default and most: the number of cores). The report is the same
    /// for every value.
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only analyze packets matching this BPF expression (tcpdump syntax; needs the
    /// `libpcap` build feature). Numbers stay those of the unfiltered capture.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Also give each session's numbers in the input file that holds its first packet:
    /// columns file, file_tcp_stream, file_first_frame.
    #[arg(long)]
    pub per_file: bool,
    /// Do not print the summary line (nor notes) on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Where a report goes.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the report to FILE instead of stdout (`-`: stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Sessions(a) => {
            let per_file = a.capture.per_file;
            run_report(&a.capture, &a.output, |out| {
                CsvWriter::with_per_file(out, per_file)
            })
            .exit_code()
        }
    }
}
