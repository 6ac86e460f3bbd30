//! The found side of a check: a report writer that keeps, per session, the cells of the
//! expected file's columns (nothing else), and what names the session in a diff.

use std::io;

use super::cell::{scaled_count, scaled_nanos, FoundCell};
use crate::report::columns::{column, Column};
use crate::report::{ReportWriter, Row, RunEnd, Value};

/// One session of the found report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundRow {
    pub session: u64,
    /// One cell per expected column.
    pub cells: Vec<FoundCell>,
    /// What names the session in a diff and pairs it (`client`, `server`, `path`, `outcome`).
    pub client: String,
    pub server: String,
    pub path: String,
    pub outcome: String,
}

/// A found cell from a column's typed value.
pub fn found_cell(c: &Column, row: &Row<'_>) -> FoundCell {
    let v = (c.value)(row);
    let mut text = String::new();
    v.write_text(&mut text);
    let num = match v {
        Value::Count(n) => Some(scaled_count(n)),
        Value::Seconds(ns) => Some(scaled_nanos(ns)),
        _ => None,
    };
    debug_assert_eq!(num.is_some(), v.is_numeric(), "{}", c.name);
    FoundCell { text, num }
}

fn text_of(name: &str, row: &Row<'_>) -> String {
    column(name).map_or_else(String::new, |c| found_cell(c, row).text)
}

/// Collects the found report (a [`ReportWriter`]).
pub struct Collector {
    columns: Vec<&'static Column>,
    pub rows: Vec<FoundRow>,
}

impl Collector {
    pub fn new(columns: &[&'static Column]) -> Collector {
        Collector {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }
}

impl ReportWriter for Collector {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.rows.push(FoundRow {
            session: row.session,
            cells: self.columns.iter().map(|c| found_cell(c, row)).collect(),
            client: text_of("client", row),
            server: text_of("server", row),
            path: text_of("path", row),
            outcome: text_of("outcome", row),
        });
        Ok(())
    }

    fn finish(&mut self, _end: &RunEnd<'_>) -> io::Result<()> {
        Ok(())
    }
}
