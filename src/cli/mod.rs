//! Command-line interface: the subcommands, the options they share, and one function that
//! runs a report writer over the captures (`run.rs`), so that a new subcommand is a writer
//! and a few lines here. `help.rs` writes the long help from the tables it explains.

mod help;
mod progress;
mod run;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use run::{open_output, run_records, run_report};
use wsclose::report::columns::{Redact, RowOptions};
use wsclose::report::csv::CsvWriter;
use wsclose::report::jsonl::JsonlWriter;
use wsclose::report::summary::{SummaryFormat, SummaryWriter};

#[derive(Parser, Debug)]
#[command(
    name = "wsclose",
    version,
    about = "Why did my WebSocket connections close? Reads packet captures and reports every \
             WebSocket session, what ended it, and the patterns behind the endings.",
    after_help = help::TOP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// What went wrong and why: findings (causes with evidence and advice), close codes,
    /// who ended the sessions, distributions, reconnects. The default subcommand.
    #[command(after_help = help::SUMMARY_SHORT)]
    Summary(SummaryArgs),
    /// One row per WebSocket session (CSV or JSON Lines): messages, close codes and
    /// reasons, who closed first, how TCP ended, and whether the counts are exact.
    #[command(after_help = help::SESSIONS_SHORT)]
    Sessions(SessionsArgs),
    /// A timeline of each session: one line per frame and TCP event (SYN, FIN, RST,
    /// gaps, retransmissions), with previews of the payloads.
    #[command(after_help = help::FRAMES_SHORT)]
    Frames(FramesArgs),
}

/// What every subcommand that reads captures takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// pcap or pcapng files, merged by timestamp into one capture; `-` reads stdin.
    #[arg(value_name = "CAPTURE")]
    pub captures: Vec<String>,
    /// Worker threads (default: all cores). The report is the same for every value.
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only analyze packets matching this BPF expression (tcpdump syntax; needs the
    /// `libpcap` build feature).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Print nothing on stderr but errors (no closing line, no progress).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Where a report goes.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the report to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

/// What the outputs hide. Reports get pasted into tickets.
#[derive(clap::Args, Debug, Clone)]
pub struct RedactArgs {
    /// Also mask query-string values (the `path` column included) and payload previews.
    /// Cookie, Set-Cookie, Authorization and Proxy-Authorization values are always
    /// written as `<redacted N bytes>` unless --no-redact.
    #[arg(long, conflicts_with = "no_redact")]
    pub redact: bool,
    /// Keep everything, secrets included.
    #[arg(long)]
    pub no_redact: bool,
}

impl RedactArgs {
    fn mode(&self) -> Redact {
        match (self.redact, self.no_redact) {
            (true, _) => Redact::All,
            (_, true) => Redact::Nothing,
            _ => Redact::Secrets,
        }
    }

    fn row_options(&self) -> RowOptions {
        RowOptions {
            redact: self.mode(),
            ..RowOptions::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SessionsFormat {
    Csv,
    Jsonl,
}

#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// csv: one row per session; jsonl: one JSON object per session, then one
    /// `"kind": "capture"` object (what `summary --records` reads).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: SessionsFormat,
    #[command(flatten)]
    pub redact: RedactArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormatArg {
    Text,
    Json,
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// text for people (fits 100 columns), json for programs (one object, schema 1).
    #[arg(long, value_enum, default_value = "text")]
    pub format: SummaryFormatArg,
    /// Colour in the text form: auto = when stdout is a terminal and NO_COLOR is not set.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorArg,
    /// Summarize JSON Lines that `sessions --format jsonl` wrote (instead of captures):
    /// the same summary as from the capture. With several files, findings name sessions
    /// by file and number.
    #[arg(long, value_name = "FILE.jsonl", num_args = 1..)]
    pub records: Vec<String>,
    #[command(flatten)]
    pub redact: RedactArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FramesFormat {
    Table,
    Csv,
    Jsonl,
}

#[derive(clap::Args, Debug)]
pub struct FramesArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Only the session with this number (as the sessions report numbers them);
    /// repeatable.
    #[arg(long, value_name = "N")]
    pub session: Vec<u64>,
    /// Only the session of this Wireshark tcp.stream; repeatable.
    #[arg(long = "tcp-stream", value_name = "N")]
    pub tcp_stream: Vec<u64>,
    /// Only sessions of this client (an IP address, or ip:port); repeatable.
    #[arg(long, value_name = "ADDR")]
    pub client: Vec<String>,
    /// Keep each session's last N frames and TCP events before its first Close frame,
    /// FIN or RST, and up to N after (default: everything).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FramesFormat,
    #[command(flatten)]
    pub redact: RedactArgs,
}

/// The command with its long help texts, which are written from the tables they explain.
pub fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("sessions", |c| c.after_long_help(help::sessions_long()))
        .mut_subcommand("summary", |c| c.after_long_help(help::summary_long()))
        .mut_subcommand("frames", |c| c.after_long_help(help::frames_long()))
}

const SUBCOMMANDS: [&str; 4] = ["summary", "sessions", "frames", "help"];

/// `wsclose CAPTURE...` means `wsclose summary CAPTURE...`; `wsclose -- FILE` reads a
/// capture named like a subcommand.
pub fn with_default_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(first) = args.get(1).and_then(|a| a.to_str()).map(str::to_string) else {
        return args;
    };
    let top_level = ["-h", "--help", "-V", "--version"];
    if first == "--"
        || (!SUBCOMMANDS.contains(&first.as_str()) && !top_level.contains(&first.as_str()))
    {
        args.insert(1, "summary".into());
    }
    args
}

/// Parses the command line (with the default subcommand).
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let m = command().try_get_matches_from(with_default_subcommand(args))?;
    Cli::from_arg_matches(&m)
}

/// Colour for the text summary: `always`, or `auto` on a terminal without NO_COLOR.
fn use_color(c: ColorArg, to_file: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match c {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => !to_file && !no_color && std::io::stdout().is_terminal(),
    }
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Sessions(a) => {
            let out = match open_output(&a.output) {
                Ok(o) => o,
                Err(code) => return code,
            };
            let opts = a.redact.row_options();
            match a.format {
                SessionsFormat::Csv => match CsvWriter::new(out) {
                    Ok(mut w) => run_report(&a.capture, &opts, &mut w),
                    Err(e) => run::write_failed(e),
                },
                SessionsFormat::Jsonl => run_report(&a.capture, &opts, &mut JsonlWriter::new(out)),
            }
        }
        Command::Summary(a) => {
            let format = match a.format {
                SummaryFormatArg::Text => SummaryFormat::Text {
                    color: use_color(a.color, a.output.output.is_some()),
                },
                SummaryFormatArg::Json => SummaryFormat::Json,
                SummaryFormatArg::Html => {
                    return run::usage_error(
                        "--format html is not available yet (its own issue); use text or json",
                    )
                }
            };
            if !a.records.is_empty() && !a.capture.captures.is_empty() {
                return run::usage_error("give captures or --records files, not both");
            }
            let out = match open_output(&a.output) {
                Ok(o) => o,
                Err(code) => return code,
            };
            if !a.records.is_empty() {
                return run_records(&a.records, format, out, a.capture.quiet);
            }
            let mut w = SummaryWriter::new(out, format);
            run_report(&a.capture, &a.redact.row_options(), &mut w)
        }
        Command::Frames(a) => run::run_frames(a),
    }
}
