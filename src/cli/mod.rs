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
    /// Memory for the buffers of all connections together (out-of-order data, handshake
    /// heads being gathered): bytes, or a number with K, M or G. Past it the connections
    /// that started first give theirs up (anomaly memory_budget) [default: 256M].
    #[arg(long, value_name = "SIZE", value_parser = wsclose::config::parse_size)]
    pub memory: Option<usize>,
    /// Connections tracked at once; past it the longest-idle tenth is evicted (anomaly
    /// evicted) [default: 1048576].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Row order: `first` (the order of the connections' first packets; rows flow as soon
    /// as every session that started earlier is written) or `end` (each session as it
    /// ends, for live captures; tcp_stream is the stable key).
    #[arg(long, value_enum, default_value_t = Order::First)]
    pub order: Order,
}

/// `--order`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    First,
    End,
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
