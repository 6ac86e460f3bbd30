//! Report writers. They see finished records in their final order, nothing else: the
//! pipeline produces records, a writer turns each into output (ripgrep's searcher/printer
//! split). Every writer reads a record through the one column table, `columns.rs`.

pub mod columns;
pub mod csv;
pub mod frames;
pub mod html;
pub mod json;
pub mod jsonl;
pub mod summary;
pub mod summary_json;
pub mod summary_text;
pub mod tls;

use std::io;

use crate::error::InputError;
use crate::stats::Stats;
pub use columns::{Column, Row, RowOptions, Value, COLUMNS, PER_FILE_COLUMNS};

/// What the run read, for writers that end with it.
#[derive(Clone, Copy, Debug)]
pub struct RunEnd<'a> {
    pub stats: &'a Stats,
    /// Inputs that could not be read to their end.
    pub errors: &'a [InputError],
    /// The inputs, as named on the command line (`-` for stdin).
    pub inputs: &'a [String],
}

/// A report: one call per session in report order, then one at the end.
pub trait ReportWriter {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()>;
    /// The rows so far are all the report has up to this point of the input: a writer
    /// to a pipe or a terminal lets them out here (live captures).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The end of the run. Writers flush here.
    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()>;
}

/// A writer lent out is a writer.
impl<W: ReportWriter + ?Sized> ReportWriter for &mut W {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        (**self).session(row)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        (**self).finish(end)
    }
}

/// Runs the analysis over `capture` into `writer`: sessions numbered 1, 2, 3 … in report
/// order, then the end of the run. An error is the writer's (the inputs' errors are in
/// the summary).
pub fn write_report(
    capture: crate::capture::Capture,
    opts: &crate::pipeline::Options,
    row_opts: &RowOptions,
    writer: &mut dyn ReportWriter,
) -> io::Result<crate::pipeline::Summary> {
    /// Numbers the rows and hands them to the writer.
    struct Rows<'a> {
        session: u64,
        writer: &'a mut dyn ReportWriter,
        opts: &'a RowOptions,
    }
    impl crate::pipeline::RecordSink for Rows<'_> {
        fn record(&mut self, rec: crate::record::SessionRecord) -> io::Result<()> {
            self.session += 1;
            self.writer.session(&Row {
                session: self.session,
                rec: &rec,
                opts: self.opts,
            })
        }
        fn written(&mut self) -> io::Result<()> {
            self.writer.flush()
        }
    }
    let inputs: Vec<String> = capture.input_paths().map(str::to_string).collect();
    let mut rows = Rows {
        session: 0,
        writer,
        opts: row_opts,
    };
    let summary = crate::pipeline::analyze_into(capture, opts, &mut rows)?;
    let writer = rows.writer;
    writer.finish(&RunEnd {
        stats: &summary.stats,
        errors: &summary.errors,
        inputs: &inputs,
    })?;
    Ok(summary)
}
