//! The sessions report as CSV: a header of the column names, one row per session.
//!
//! Each row reaches the output in one `write_all`, whole: an output that is cut short (a
//! second Ctrl-C flushes what was written and exits) never ends inside a row.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use super::{Column, ReportWriter, Row, RunEnd, COLUMNS, PER_FILE_COLUMNS};

/// The csv crate wraps I/O errors; unwrap them so that a closed pipe stays a closed pipe.
pub(crate) fn io_error(e: ::csv::Error) -> io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Where the csv crate formats a row before it goes out whole.
#[derive(Clone, Default)]
struct RowBuf(Rc<RefCell<Vec<u8>>>);

impl Write for RowBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the CSV report.
pub struct CsvWriter<W: Write> {
    w: ::csv::Writer<RowBuf>,
    row: RowBuf,
    out: W,
    columns: Vec<&'static Column>,
    fields: Vec<String>,
}

impl<W: Write> CsvWriter<W> {
    /// A writer that has written the header.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_per_file(out, false)
    }

    /// A writer that has written the header; with `per_file`, the columns of
    /// [`PER_FILE_COLUMNS`] come last.
    pub fn with_per_file(out: W, per_file: bool) -> io::Result<Self> {
        let row = RowBuf::default();
        let w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(row.clone());
        let extra: &[Column] = if per_file { PER_FILE_COLUMNS } else { &[] };
        let columns: Vec<&'static Column> = COLUMNS.iter().chain(extra).collect();
        let mut c = CsvWriter {
            w,
            row,
            out,
            fields: vec![String::new(); columns.len()],
            columns,
        };
        c.w.write_record(c.columns.iter().map(|c| c.name))
            .map_err(io_error)?;
        c.row_out()?;
        Ok(c)
    }

    /// Moves the row just formatted to the output, in one write.
    fn row_out(&mut self) -> io::Result<()> {
        self.w.flush()?;
        let mut row = self.row.0.borrow_mut();
        let r = self.out.write_all(&row);
        row.clear();
        r
    }

    /// The output, flushed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> ReportWriter for CsvWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        for (f, c) in self.fields.iter_mut().zip(&self.columns) {
            f.clear();
            (c.value)(row).write_text(f);
        }
        self.w.write_record(&self.fields).map_err(io_error)?;
        self.row_out()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, _end: &RunEnd<'_>) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SessionRecord;

    /// Counts the writes it gets.
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            self.write(buf).map(|_| ())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_row_is_one_write_and_per_file_columns_come_last() {
        let rec = SessionRecord::example();
        let mut w = CsvWriter::with_per_file(Writes(Vec::new()), true).unwrap();
        for session in 1..=3 {
            w.session(&Row {
                session,
                rec: &rec,
                opts: &Default::default(),
            })
            .unwrap();
        }
        let out = w.into_inner().unwrap().0;
        assert_eq!(out.len(), 4, "header and three rows");
        for row in &out {
            assert_eq!(row.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(row.ends_with(b"\n"));
        }
        let header = String::from_utf8(out[0].clone()).unwrap();
        let last = COLUMNS.last().unwrap().name;
        assert!(header.ends_with(&format!(",{last},file,file_tcp_stream,file_first_frame\n")));
        let row = String::from_utf8(out[1].clone()).unwrap();
        assert!(row.ends_with(",rotated/file-2.pcap,3,4\n"), "{row}");

        let w = CsvWriter::new(Vec::new()).unwrap();
        let header = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(header.ends_with(&format!(",{last}\n")), "{header}");
    }
}
