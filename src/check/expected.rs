//! Reading an expected report: a CSV that `wsclose sessions` wrote, maybe edited by hand.
//! Columns are found by name in the column table; a column left out is not compared.

use std::path::Path;

use super::cell::Cell;
use crate::report::columns::{column, names, Column};

/// An expected report: its columns (in its order) and its rows.
#[derive(Debug)]
pub struct Expected {
    pub columns: Vec<&'static Column>,
    pub rows: Vec<ExpectedRow>,
}

/// One row of the expected report.
#[derive(Clone, Debug)]
pub struct ExpectedRow {
    /// Line of the file where the row starts (1-based; the header is line 1).
    pub line: u64,
    /// One cell per column of [`Expected::columns`].
    pub cells: Vec<Cell>,
}

impl Expected {
    /// Reads the expected report at `path`; errors name the file and the line.
    pub fn read(path: &Path) -> Result<Expected, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Expected::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses an expected report; errors name the line.
    pub fn parse(text: &str) -> Result<Expected, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut r = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let header = r.headers().map_err(|e| csv_error(&e))?.clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err("line 1: no header (the first line names the columns)".into());
        }
        let mut columns: Vec<&'static Column> = Vec::with_capacity(header.len());
        for name in header.iter() {
            let c = column(name.trim()).ok_or_else(|| {
                format!(
                    "line 1: unknown column {name:?}; the report's columns are: {}",
                    names().collect::<Vec<_>>().join(", ")
                )
            })?;
            if columns.iter().any(|x| x.name == c.name) {
                return Err(format!("line 1: column {name:?} twice"));
            }
            columns.push(c);
        }
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| csv_error(&e))?;
            let line = rec.position().map_or(0, |p| p.line());
            let cells = rec
                .iter()
                .zip(&columns)
                .map(|(raw, c)| {
                    Cell::parse(raw).map_err(|e| format!("line {line}, column {}: {e}", c.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(ExpectedRow { line, cells });
        }
        Ok(Expected { columns, rows })
    }

    /// Position of the column named `name` in this file.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

fn csv_error(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} cells where the header has {expected_len}",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        ::csv::ErrorKind::Utf8 { pos, .. } => {
            format!("line {}: not UTF-8", pos.as_ref().map_or(0, |p| p.line()))
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cell::Matcher;

    #[test]
    fn columns_by_name_in_the_files_order() {
        let e =
            Expected::parse("outcome,session,close_code\nclean,1,1000..1001\nreset,2,*\n").unwrap();
        let names: Vec<&str> = e.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, ["outcome", "session", "close_code"]);
        assert_eq!(e.rows.len(), 2);
        assert_eq!(e.rows[0].line, 2);
        assert_eq!(e.rows[1].line, 3);
        assert_eq!(e.rows[1].cells[2].matcher, Matcher::Any);
        assert_eq!(e.index("session"), Some(1));
        assert_eq!(e.index("client"), None);
    }

    #[test]
    fn header_only_means_no_session() {
        let e = Expected::parse("session,outcome\n").unwrap();
        assert!(e.rows.is_empty());
        let e = Expected::parse("\u{feff}session,outcome\r\n1,clean\r\n").unwrap();
        assert_eq!(e.columns[0].name, "session");
        assert_eq!(e.rows[0].cells[1].raw, "clean");
    }

    #[test]
    fn errors_name_the_line() {
        let err = |t: &str| Expected::parse(t).unwrap_err();
        assert!(err("").contains("no header"), "{}", err(""));
        assert!(err("session,nonsense\n").contains("unknown column \"nonsense\""));
        assert!(err("session,session\n").contains("twice"));
        assert_eq!(
            err("session,outcome\n1,clean\n2\n"),
            "line 3: 1 cells where the header has 2"
        );
        assert_eq!(
            err("session,close_code\n1,1011..1000\n"),
            "line 2, column close_code: range \"1011..1000\" is empty (its start is above its end)"
        );
    }
}
