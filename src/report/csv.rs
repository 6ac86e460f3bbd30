//! The sessions report as CSV: a header of the column names, one row per session.

use std::io::{self, Write};

use super::{ReportWriter, Row, RunEnd, COLUMNS};

/// The csv crate wraps I/O errors; unwrap them so that a closed pipe stays a closed pipe.
pub(crate) fn io_error(e: ::csv::Error) -> io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Writes the CSV report.
pub struct CsvWriter<W: Write> {
    w: ::csv::Writer<W>,
    fields: Vec<String>,
}

impl<W: Write> CsvWriter<W> {
    /// A writer that has written the header.
    pub fn new(out: W) -> io::Result<Self> {
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(out);
        w.write_record(COLUMNS.iter().map(|c| c.name))
            .map_err(io_error)?;
        Ok(CsvWriter {
            w,
            fields: vec![String::new(); COLUMNS.len()],
        })
    }

    /// The output, flushed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> ReportWriter for CsvWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        for (f, c) in self.fields.iter_mut().zip(COLUMNS) {
            f.clear();
            (c.value)(row).write_text(f);
        }
        self.w.write_record(&self.fields).map_err(io_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn finish(&mut self, _end: &RunEnd<'_>) -> io::Result<()> {
        self.w.flush()
    }
}
