//! `summary --format html`: the summary as one self-contained HTML page — findings at the
//! top, a timeline of every session (bars over capture time, coloured by outcome, with
//! markers for the first Close frame, FIN/RST and gaps), histograms with the findings'
//! intervals marked, close codes, who ended the sessions, and a drill-down into the last
//! frames of the sessions the findings name.
//!
//! - `page.rs`: [`PageData`], exactly what the page shows.
//! - `adapter.rs`: [`page_data`], the one function that builds it from the summary.
//! - `marks.rs`: one compact mark per session, spilled past a cap; the sessions kept one by
//!   one and the per-lane time bins of the rest.
//! - `render.rs`: [`render`], the HTML with its data, script, style and
//!   Content-Security-Policy; `page.js` and `page.css` are the page's own code.
//! - `stub.rs`: the summary's shape, until the summary itself lands.

pub mod adapter;
pub mod marks;
pub mod page;
pub mod render;
pub mod stub;

use std::io::{self, Write};

pub use adapter::page_data;
pub use page::PageData;
pub use render::render;

use super::{ReportWriter, Row, RunEnd};
use marks::{MarkStore, NoRedaction, Redaction};

/// Collects the sessions of a run and writes the page at the end.
pub struct HtmlWriter<W: Write> {
    out: W,
    summary: Option<stub::Builder>,
    marks: MarkStore,
    inputs: Vec<String>,
    redact: Box<dyn Redaction>,
}

impl<W: Write> HtmlWriter<W> {
    /// A writer of the page of `inputs` (as named on the command line).
    pub fn new(out: W, inputs: Vec<String>) -> Self {
        HtmlWriter {
            out,
            summary: Some(stub::Builder::default()),
            marks: MarkStore::default(),
            inputs,
            redact: Box::new(NoRedaction),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> ReportWriter for HtmlWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        if let Some(b) = &mut self.summary {
            b.add(row.rec);
        }
        self.marks.add(row.session, row.rec, self.redact.as_ref())
    }

    fn finish(&mut self, end: &RunEnd<'_>) -> io::Result<()> {
        let Some(b) = self.summary.take() else {
            return Ok(());
        };
        let report = b.finish(end.stats.clone());
        let page = page_data(
            &report,
            &mut self.marks,
            &adapter::Inputs {
                names: &self.inputs,
                rings: &|_| None,
            },
        )?;
        render(&page, &mut self.out)?;
        self.out.flush()
    }
}
