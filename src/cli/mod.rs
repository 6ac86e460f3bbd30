//! Command-line interface: the subcommands, the options they share, and one function that
//! runs a report writer over the captures (`run.rs`), so that a new subcommand is a writer
//! and a few lines here.

mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use run::{open_output, run_report};
use wsclose::report::csv::CsvWriter;

const SESSIONS_HELP: &str = "\
EXAMPLES:
    wsclose sessions capture.pcap
    wsclose sessions rotated-1.pcap rotated-2.pcap -o sessions.csv
    tcpdump -i eth0 -w - 'tcp port 8080' | wsclose sessions -
    wsclose sessions --threads 1 big.pcapng > sessions.csv

TCP END:
    tcp_end is rst when any RST was seen, else fin when any FIN was seen, else open;
    tcp_end_by is the side that sent the first packet of that kind (the first RST when
    tcp_end is rst, else the first FIN).

EXIT STATUS:
    0  the report was written
    1  a check or policy failed (reserved for checks)
    2  usage error, or an input could not be read to its end (the sessions seen
       before the error are still reported)";

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
    /// pcap or pcapng files, merged by timestamp into one capture; `-` reads stdin.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
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
    /// Do not inflate permessage-deflate messages (nor check text messages for UTF-8):
    /// the *_bytes_inflated columns are then empty, and so are the *_largest_message
    /// columns of compressed sessions.
    #[arg(long)]
    pub no_inflate: bool,
    /// Do not pick up connections whose handshake is not in the capture (recognised by
    /// their WebSocket framing otherwise).
    #[arg(long)]
    pub no_midstream: bool,
}

/// Where a report goes.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the report to FILE instead of stdout.
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
            let out = match open_output(&a.output) {
                Ok(o) => o,
                Err(code) => return code,
            };
            match CsvWriter::new(out) {
                Ok(mut w) => run_report(&a.capture, &mut w),
                Err(e) => run::write_failed(e),
            }
        }
    }
}
