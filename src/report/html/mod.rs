//! `summary --format html`: the summary as one self-contained HTML page — findings at the
//! top, a timeline of every session (bars over capture time, coloured by outcome, with
//! markers for the first Close frame, FIN/RST and gaps), histograms with the findings'
//! intervals marked, close codes, who ended the sessions, and a drill-down into the last
//! frames of the sessions the findings name.
//!
//! - `page.rs`: [`PageData`], exactly what the page shows.
//! - `adapter.rs`: [`page_data()`], the one function that builds it from the summary.
//! - `marks.rs`: one compact mark per session, spilled past a cap; the sessions kept one by
//!   one and the per-lane time bins of the rest.
//! - `render.rs`: [`render()`], the HTML with its data, script, style and
//!   Content-Security-Policy; `page.js` and `page.css` are the page's own code.
//!
//! Findings are known only at the end and stdin cannot be read twice, so each session keeps
//! a ring of its last [`RING_EVENTS`] frame events before its end (and as many after) in the
//! timeline spill (`ws/timeline.rs`, on disk); its mark says where, and the rings of the
//! sessions the findings name are read back at the end.

pub mod adapter;
pub mod marks;
pub mod page;
pub mod render;

use std::io::{self, Write};
use std::sync::Arc;

pub use adapter::page_data;
pub use page::PageData;
pub use render::render;

use super::columns::Redact;
use super::frames::{opcode_name, preview};
use super::{ReportWriter, Row, RunEnd};
use crate::record::Side;
use crate::summary::{Builder, Report, Source};
use crate::ws::timeline::{Dir, Kind, TimelineSpill};
use marks::{Mark, MarkStore};
use page::DrillEvent;

/// Frame events kept per session before its end (and at most as many after it).
pub const RING_EVENTS: usize = 20;

/// The spill that keeps each session's ring (give it to the pipeline's options).
pub fn ring_spill() -> io::Result<Arc<TimelineSpill>> {
    TimelineSpill::new(Some(RING_EVENTS))
}

/// Collects the sessions of a run and writes the page at the end.
pub struct HtmlWriter<W: Write> {
    out: W,
    builder: Option<Builder>,
    marks: MarkStore,
    spill: Option<Arc<TimelineSpill>>,
    redact: Redact,
    /// The summary the page shows, kept for callers that look at it (tests, policies).
    pub report: Option<Report>,
}

impl<W: Write> HtmlWriter<W> {
    /// A writer of the page; `spill` is where the pipeline keeps the sessions' rings
    /// ([`ring_spill`]; without one the drill-down shows each record's own moments).
    pub fn new(out: W, spill: Option<Arc<TimelineSpill>>) -> Self {
        HtmlWriter {
            out,
            builder: Some(Builder::default()),
            marks: MarkStore::default(),
            spill,
            redact: Redact::default(),
            report: None,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The frame events of `m`'s ring, as the drill-down shows them.
fn ring_events(
    spill: &TimelineSpill,
    m: &Mark,
    redact: Redact,
) -> io::Result<Option<(Vec<DrillEvent>, u64)>> {
    let Some(r) = m.ring.filter(|r| r.events > 0) else {
        return Ok(None);
    };
    // The connection key puts the lower endpoint first.
    let client_is_lo = m.client <= m.server;
    let events = spill
        .read(&r)?
        .iter()
        .map(|e| {
            let side = match e.dir {
                Dir::Side(s) => s,
                Dir::Endpoint(lo) if lo == client_is_lo => Side::Client,
                Dir::Endpoint(_) => Side::Server,
            };
            let frame = e.kind == Kind::Frame;
            DrillEvent {
                t_us: e.at.ts_ns.div_euclid(1000) - m.start,
                packet: e.at.packet,
                dir: side.as_str().into(),
                kind: e.kind.as_str().into(),
                opcode: if frame {
                    opcode_name(e.opcode)
                } else {
                    String::new()
                },
                fin: e.fin,
                len: e.len,
                close_code: e.close.as_ref().map(|(c, _)| c.unwrap_or(1005)),
                close_reason: e.close.as_ref().map(|(_, r)| r.clone()).unwrap_or_default(),
                preview: preview(e, redact).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Some((events, r.omitted)))
}

impl<W: Write> ReportWriter for HtmlWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.redact = row.opts.redact;
        if let Some(b) = &mut self.builder {
            b.add(0, row.session, row.rec)?;
        }
        self.marks.add(row.session, row.rec, row.opts.redact)
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
        let (spill, redact) = (self.spill.clone(), self.redact);
        let rings = move |m: &Mark| match &spill {
            Some(s) => ring_events(s, m, redact),
            None => Ok(None),
        };
        let page = page_data(
            &report,
            &mut self.marks,
            &adapter::Inputs {
                names: end.inputs,
                rings: &rings,
                max_kept: adapter::MAX_KEPT,
            },
        )?;
        render(&page, &mut self.out)?;
        self.out.flush()?;
        self.report = Some(report);
        Ok(())
    }
}
