//! Command-line interface: the subcommands, the options they share, and one function that
//! runs a report writer over the captures (`run.rs`), so that a new subcommand is a writer
//! and a few lines here. The exit status is chosen in one place (`status.rs`); where the
//! report goes is `output.rs`; SIGINT/SIGTERM are `signals.rs`; the long help texts are
//! written from the tables they explain (`help.rs`).

#[macro_use]
mod help;
mod check;
mod output;
mod progress;
mod run;
mod signals;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use run::{run_records, run_report, run_report_with, usage_error};
use status::Status;
use wsclose::flow::tls::TlsOptions;
use wsclose::policy::{FindingRef, Gate, Gated, Policy, Severity as PolicySeverity};
use wsclose::report::columns::Redact;
use wsclose::report::csv::CsvWriter;
use wsclose::report::html::{ring_spill, HtmlWriter};
use wsclose::report::jsonl::JsonlWriter;
use wsclose::report::summary::{SummaryFormat, SummaryWriter};
use wsclose::report::tls::TlsCsvWriter;
use wsclose::report::RowOptions;
use wsclose::summary::findings::Severity;

const SESSIONS_HELP: &str = concat!(
    "\
EXAMPLES:
    wsclose sessions capture.pcap
    wsclose sessions rotated-1.pcap rotated-2.pcap -o sessions.csv
    tcpdump -i eth0 -w - 'tcp port 8080' | wsclose sessions -
    wsclose sessions --threads 1 big.pcapng > sessions.csv
    wsclose sessions --fail-on abnormal --fail-on error_code ci.pcap -o sessions.csv
    wsclose sessions --format jsonl capture.pcap > sessions.jsonl   # summary --records reads it

TCP END:
    tcp_end is rst when any RST was seen, else fin when any FIN was seen, else open;
    tcp_end_by is the side that sent the first packet of that kind (the first RST when
    tcp_end is rst, else the first FIN).

POLICIES (--fail-on, several allowed; `-` may replace `_`):
    abnormal         a session with abnormal=true
    reset            outcome=reset
    no_close_frame   outcome=no_close_frame
    rejected         outcome=rejected
    error_code       a close code that is set and not allowed: not 1000, 1001 or 1005,
                     or not in --allow-codes when given
    anomaly[=TOKEN]  a session with any anomaly, or with this token (e.g. anomaly=gap)
    empty            no WebSocket session at all
    finding[=CAUSE]  (summary only) a finding with this cause; bare: any warning or error
                     (causes and severities: wsclose summary --help)
    The whole report is written, then stderr names the sessions each policy matched,
    and the exit status is 1.

",
    exit_status_help!()
);

const CHECK_HELP: &str = concat!(
    "\
EXAMPLES:
    wsclose check ci.pcap --expect ci.expected.csv
    wsclose check ci.pcap --expect ci.expected.csv --match path
    wsclose check ci.pcap --expect ci.expected.csv --update     # accept what was found
    wsclose check ci.pcap --expect ci.expected.csv --format json > check.json

EXPECTED REPORT:
    A CSV that `wsclose sessions` wrote, possibly edited by hand. Columns are found by
    name: leave a column out to ignore it. In a cell, `*` accepts any value (a literal
    star is `\\*`); on a numeric column, `A..B` accepts A to B, both included, and
    `..B` and `A..` are open ranges (decimals allowed, e.g. duration_s 0..2.5). A file
    with only a header names the columns; `--update` then fills in the rows.

MATCHING (--match):
    session    by the session number (the default)
    endpoints  by client IP and server ip:port; the client's port is not compared;
               equal keys pair in first-packet order
    path       by the handshake's path; equal paths pair in first-packet order
    With endpoints or path, the session column is not compared.

OUTPUT:
    One block per differing session (column: expected vs found), a line per missing
    and unexpected session, and a last line with the verdict; `--format json` gives
    one JSON object instead. Exit 1 on any difference, 0 when all match; on an input
    error nothing is compared (exit 2). `--update` rewrites the expected file
    atomically: it keeps its columns, its `*` cells and the ranges the found value
    satisfies; every other cell takes the found value; exit 0.

",
    exit_status_help!()
);

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
    #[command(after_help = SESSIONS_HELP)]
    Sessions(SessionsArgs),
    /// A timeline of each session: one line per frame and TCP event (SYN, FIN, RST,
    /// gaps, retransmissions), with previews of the payloads.
    #[command(after_help = help::FRAMES_SHORT)]
    Frames(FramesArgs),
    /// Compare the sessions report of the captures with an expected report (for CI): exit
    /// 1 and a readable diff on any difference.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// One CSV row per TLS connection (any ALPN, decrypted or not): version, cipher suite,
    /// SNI, ALPN, how far decryption got, what it carried, how TCP ended.
    #[command(after_help = TLS_HELP)]
    Tls(TlsArgs),
}

const TLS_HELP: &str = concat!(
    "\
EXAMPLES:
    wsclose tls capture.pcap
    wsclose tls --keylog sslkeys.log capture.pcap
    wsclose tls capture-with-secrets.pcapng     # editcap --inject-secrets tls,KEYS

KEYS:
    --keylog FILE (several allowed) reads an NSS key log (SSLKEYLOGFILE of browsers,
    OpenSSL, Python's keylog_filename, Node's keylog event). Secrets in a pcapng
    Decryption Secrets Block are used without any option, for the connections after
    the block: put it first (editcap --inject-secrets tls,KEYS in.pcap out.pcapng).

",
    exit_status_help!()
);

/// What every subcommand that reads captures takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// pcap or pcapng files (gzip-compressed or not), merged by timestamp into one
    /// capture; `-` reads stdin.
    #[arg(value_name = "CAPTURE")]
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
    /// Print nothing on stderr but errors (no closing line, no notes, no progress).
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
    /// TLS key log (NSS format: SSLKEYLOGFILE) to decrypt wss:// connections; several
    /// allowed. Decryption Secrets Blocks of pcapng inputs are used without it.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
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

/// Which sessions-report rows TLS connections that could not be decrypted get.
#[derive(clap::Args, Debug, Clone)]
pub struct UndecryptedArgs {
    /// No rows for TLS connections that could not be decrypted (by default each gets one,
    /// outcome `undecrypted`, when its ALPN is absent, http/1.1 or unknown).
    #[arg(long = "no-undecrypted")]
    pub no_undecrypted: bool,
}

impl UndecryptedArgs {
    pub(crate) fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            undecrypted_rows: !self.no_undecrypted,
            every_connection: false,
        }
    }
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
    /// Write the report to FILE instead of stdout (`-`: stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

/// How values are read out of the records (every report of session records takes them).
#[derive(clap::Args, Debug, Clone)]
pub struct RowArgs {
    /// Close codes that are not errors, replacing 1000,1001,1005: for the `error_code`
    /// column and the `error_code` policy.
    #[arg(
        long = "allow-codes",
        value_name = "CODES",
        value_delimiter = ',',
        num_args = 1
    )]
    pub allow_codes: Option<Vec<u16>>,
}

impl RowArgs {
    pub fn options(&self) -> RowOptions {
        match &self.allow_codes {
            Some(codes) => RowOptions {
                allowed_codes: codes.clone(),
                ..RowOptions::default()
            },
            None => RowOptions::default(),
        }
    }

    /// The options, with what the outputs hide.
    pub fn with(&self, redact: &RedactArgs) -> RowOptions {
        RowOptions {
            redact: redact.mode(),
            ..self.options()
        }
    }
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
    pub fn mode(&self) -> Redact {
        match (self.redact, self.no_redact) {
            (true, _) => Redact::All,
            (_, true) => Redact::Nothing,
            _ => Redact::Secrets,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SessionsFormat {
    Csv,
    Jsonl,
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
    /// text for people (fits 100 columns), json for programs (one object, schema 1),
    /// html: one self-contained page (timeline, findings, histograms, drill-down) to open
    /// in a browser or attach to a ticket (`-o report.html`).
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
    pub rows: RowArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
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

/// Policies that fail the run (every report of session records takes them).
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Exit 1 (after writing the whole report) when a session matches POLICY: abnormal,
    /// reset, no_close_frame, rejected, error_code, anomaly[=TOKEN], empty, and (summary)
    /// finding[=CAUSE]. Repeat it or separate with commas.
    #[arg(long = "fail-on", value_name = "POLICY", value_delimiter = ',')]
    pub fail_on: Vec<Policy>,
}

#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub rows: RowArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// csv: one row per session; jsonl: one JSON object per session, then one
    /// `"kind": "capture"` object (what `summary --records` reads).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: SessionsFormat,
    #[command(flatten)]
    pub redact: RedactArgs,
    #[command(flatten)]
    pub undecrypted: UndecryptedArgs,
}

#[derive(clap::Args, Debug)]
pub struct TlsArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MatchArg {
    Session,
    Endpoints,
    Path,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub rows: RowArgs,
    #[command(flatten)]
    pub undecrypted: UndecryptedArgs,
    /// The expected report (CSV, as `wsclose sessions` writes it; see EXPECTED REPORT).
    #[arg(long, value_name = "FILE", required = true)]
    pub expect: PathBuf,
    /// How expected and found sessions are paired.
    #[arg(
        long = "match",
        value_enum,
        default_value = "session",
        value_name = "BY"
    )]
    pub match_by: MatchArg,
    /// Rewrite the expected file from what was found (keeping its columns, `*` cells and
    /// the ranges still satisfied).
    #[arg(long)]
    pub update: bool,
    /// The diff as readable text or as one JSON object.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// Write the diff to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<String>,
}

/// The command with its long help texts, which are written from the tables they explain.
pub fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("sessions", |c| {
            c.after_long_help(help::sessions_long(SESSIONS_HELP))
        })
        .mut_subcommand("summary", |c| c.after_long_help(help::summary_long()))
        .mut_subcommand("frames", |c| c.after_long_help(help::frames_long()))
}

const SUBCOMMANDS: [&str; 6] = ["summary", "sessions", "frames", "check", "tls", "help"];

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
        Command::Summary(a) => summary(&a),
        Command::Sessions(a) => sessions(&a),
        Command::Frames(a) => run::run_frames(a),
        Command::Check(a) => check::run(&a),
        Command::Tls(a) => tls(&a),
    }
    .exit_code()
}

/// Prints what each failed policy matched; the status says whether any did.
fn judge(gate: &Gate, row_opts: &RowOptions, mut status: Status) -> Status {
    for r in gate.failures() {
        if r.policy == Policy::ErrorCode {
            let allowed: Vec<String> = row_opts.allowed_codes.iter().map(u16::to_string).collect();
            eprintln!(
                "wsclose: --fail-on {r} (allowed codes: {})",
                allowed.join(",")
            );
        } else {
            eprintln!("wsclose: --fail-on {r}");
        }
    }
    status.failed |= gate.failed();
    status
}

/// Policies that the sessions report can judge.
fn session_policies(args: &PolicyArgs) -> Result<Gate, Status> {
    if let Some(p) = args.fail_on.iter().find(|p| p.needs_findings()) {
        return Err(usage_error(&format!(
            "--fail-on {p}: findings are in the summary report, not in sessions"
        )));
    }
    Ok(Gate::new(&args.fail_on))
}

fn sessions(a: &SessionsArgs) -> Status {
    let mut gate = match session_policies(&a.policy) {
        Ok(g) => g,
        Err(s) => return s,
    };
    let row_opts = a.rows.with(&a.redact);
    let per_file = a.capture.per_file;
    let tls = a.undecrypted.tls_options();
    let status = match a.format {
        SessionsFormat::Csv => run_report(&a.capture, &tls, &a.output, &row_opts, |out| {
            Ok(Gated {
                gate: &mut gate,
                inner: CsvWriter::with_per_file(out, per_file)?,
            })
        }),
        SessionsFormat::Jsonl => run_report(&a.capture, &tls, &a.output, &row_opts, |out| {
            Ok(Gated {
                gate: &mut gate,
                inner: JsonlWriter::with_per_file(out, per_file),
            })
        }),
    };
    judge(&gate, &row_opts, status)
}

fn summary(a: &SummaryArgs) -> Status {
    // `None`: the HTML page (report/html), a writer of its own.
    let format = match a.format {
        SummaryFormatArg::Text => Some(SummaryFormat::Text {
            color: use_color(
                a.color,
                a.output.output.as_deref().is_some_and(|o| o != "-"),
            ),
        }),
        SummaryFormatArg::Json => Some(SummaryFormat::Json),
        SummaryFormatArg::Html => None,
    };
    if !a.records.is_empty() && !a.capture.captures.is_empty() {
        return usage_error("give captures or --records files, not both");
    }
    if format.is_none() && !a.records.is_empty() {
        return usage_error(
            "--format html reads captures (its timeline and drill-down need them); \
             summarize --records as text or json",
        );
    }
    let mut gate = Gate::new(&a.policy.fail_on);
    let row_opts = a.rows.with(&a.redact);
    let tls = TlsOptions::default();
    let (status, report) = match format {
        Some(format) if a.records.is_empty() => {
            let mut w = None;
            let status = run_report(&a.capture, &tls, &a.output, &row_opts, |out| {
                Ok(Gated {
                    gate: &mut gate,
                    inner: w.insert(SummaryWriter::new(out, format)),
                })
            });
            (status, w.and_then(|w| w.report))
        }
        Some(format) => run_records(
            &a.records,
            format,
            &a.output,
            a.capture.quiet,
            &row_opts,
            &mut gate,
        ),
        None => {
            // Each session's ring of last frame events, for the drill-down.
            let spill = match ring_spill() {
                Ok(s) => s,
                Err(e) => return usage_error(&format!("cannot create a temporary file: {e}")),
            };
            let mut w = None;
            let status = run_report_with(
                &a.capture,
                &tls,
                &a.output,
                &row_opts,
                Some(spill.clone()),
                |out| {
                    Ok(Gated {
                        gate: &mut gate,
                        inner: w.insert(HtmlWriter::new(out, Some(spill))),
                    })
                },
            );
            (status, w.and_then(|w| w.report))
        }
    };
    // Findings go to the policies once the summary is written.
    if let Some(report) = &report {
        for f in &report.findings {
            let sessions: Vec<u64> = f.sessions.iter().map(|s| s.session).collect();
            gate.finding(&FindingRef {
                cause: f.cause.token(),
                severity: match f.severity {
                    Severity::Error => PolicySeverity::Error,
                    Severity::Warning => PolicySeverity::Warning,
                    Severity::Info => PolicySeverity::Info,
                },
                sessions: &sessions,
            });
        }
    }
    judge(&gate, &row_opts, status)
}

/// `wsclose tls`: every TLS connection, its own small report.
fn tls(a: &TlsArgs) -> Status {
    let opts = TlsOptions {
        undecrypted_rows: true,
        every_connection: true,
    };
    run_report(
        &a.capture,
        &opts,
        &a.output,
        &RowOptions::default(),
        TlsCsvWriter::new,
    )
}
