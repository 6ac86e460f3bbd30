//! `wsclose check`: the sessions report of the captures, compared with an expected report.
//! The found rows are collected as the run goes; at its end the comparison is written to
//! the output (or the expected file is updated) — unless an input could not be read to its
//! end, in which case nothing is compared.

use std::io::{self, Write};

use wsclose::check::update::write_atomically;
use wsclose::check::{Check, Collector, Expected, MatchMode};
use wsclose::report::{ReportWriter, Row, RunEnd};

use super::output::SharedOut;
use super::run::{run_report, usage_error};
use super::status::Status;
use super::{CheckArgs, CheckFormat, MatchArg, OutputArgs};

/// Collects the found rows; at the end of the run, compares and writes the diff.
struct CheckWriter<'a> {
    args: &'a CheckArgs,
    check: &'a Check,
    found: Collector,
    out: SharedOut,
    /// The comparison found a difference (not with `--update`).
    failed: bool,
    /// Why nothing could be compared or updated, said by `run`.
    problem: Option<String>,
}

impl ReportWriter for CheckWriter<'_> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.found.session(row)
    }

    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        self.found.finish(end)?;
        if !end.errors.is_empty() {
            self.problem =
                Some("check: nothing compared (an input could not be read to its end)".into());
            return Ok(());
        }
        let a = self.args;
        let expect = a.expect.display().to_string();
        let cmp = self.check.compare(&self.found.rows);
        if a.update {
            let new = match self.check.updated(&self.found.rows) {
                Ok(b) => b,
                Err(e) => {
                    self.problem = Some(format!("{expect}: {e}"));
                    return Ok(());
                }
            };
            if std::fs::read(&a.expect).ok().as_deref() != Some(&new[..]) {
                if let Err(e) = write_atomically(&a.expect, &new) {
                    self.problem = Some(format!("{expect}: cannot rewrite: {e}"));
                    return Ok(());
                }
            }
        } else {
            self.failed = !cmp.passed();
        }
        let out = &mut self.out;
        match a.format {
            CheckFormat::Text => cmp.write_text(out, a.update.then_some(expect.as_str())),
            CheckFormat::Json => serde_json::to_writer(&mut *out, &cmp.to_json(&expect, a.update))
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out)),
        }?;
        out.flush()
    }
}

/// Runs `wsclose check`.
pub fn run(a: &CheckArgs) -> Status {
    let mode = match a.match_by {
        MatchArg::Session => MatchMode::Session,
        MatchArg::Endpoints => MatchMode::Endpoints,
        MatchArg::Path => MatchMode::Path,
    };
    let expect = a.expect.display().to_string();
    let check = match Expected::read(&a.expect)
        .and_then(|e| Check::new(e, mode).map_err(|m| format!("{expect}: {m}")))
    {
        Ok(c) => c,
        Err(m) => return usage_error(&m),
    };
    let output = OutputArgs {
        output: a.output.clone(),
    };
    let mut writer = None;
    let tls = a.undecrypted.tls_options();
    let mut status = run_report(&a.capture, &tls, &output, &a.rows.options(), |out| {
        Ok(writer.insert(CheckWriter {
            args: a,
            check: &check,
            found: check.collector(),
            out,
            failed: false,
            problem: None,
        }))
    });
    if let Some(w) = writer {
        if let Some(p) = w.problem {
            let s = usage_error(&p);
            status.error |= s.error;
        }
        status.failed |= w.failed;
    }
    status
}
