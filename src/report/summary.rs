//! The summary as a report writer: each session's record goes to a
//! [`crate::summary::Builder`]; at the end the summary is written as text or JSON.

use std::io::{self, Write};

use super::json::Json;
use super::{ReportWriter, Row, RunEnd};
use crate::summary::{Builder, Report, Source};

/// How the summary is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryFormat {
    Text { color: bool },
    Json,
}

/// Writes `report` in `format` into a string.
pub fn render(report: &Report, format: SummaryFormat) -> String {
    match format {
        SummaryFormat::Text { color } => {
            let mut s = String::new();
            super::summary_text::write(report, super::summary_text::Style { color }, &mut s);
            s
        }
        SummaryFormat::Json => {
            let mut j = Json::new();
            super::summary_json::write(report, &mut j);
            j.out.push('\n');
            j.out
        }
    }
}

/// Collects the sessions of a capture run and writes their summary at the end.
pub struct SummaryWriter<W: Write> {
    out: W,
    builder: Option<Builder>,
    format: SummaryFormat,
    /// The summary written, kept for callers that look at it (tests, exit policies).
    pub report: Option<Report>,
}

impl<W: Write> SummaryWriter<W> {
    pub fn new(out: W, format: SummaryFormat) -> Self {
        SummaryWriter {
            out,
            builder: Some(Builder::default()),
            format,
            report: None,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> ReportWriter for SummaryWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        match &mut self.builder {
            Some(b) => b.add(0, row.session, row.rec),
            None => Ok(()),
        }
    }

    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        let Some(b) = self.builder.take() else {
            return Ok(());
        };
        let report = b.finish(vec![Source {
            name: String::new(),
            stats: end.stats.clone(),
            inputs: end.inputs.to_vec(),
            errors: end.errors.iter().map(|e| e.to_string()).collect(),
        }])?;
        self.out
            .write_all(render(&report, self.format).as_bytes())?;
        self.out.flush()?;
        self.report = Some(report);
        Ok(())
    }
}
