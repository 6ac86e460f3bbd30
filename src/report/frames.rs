//! The timeline (`frames`): one line per frame and TCP event of each selected session,
//! grouped by session in report order, each block written when the session's row would
//! be (the events were kept in the timeline spill, `ws/timeline.rs`). As a table, CSV or
//! JSON Lines.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;

use super::columns::Redact;
use super::json::Json;
use super::{ReportWriter, Row, RunEnd};
use crate::net::Endpoint;
use crate::record::{SessionRecord, Side};
use crate::time::{write_rfc3339_micros, write_seconds_micros};
use crate::ws::frame::opcode;
use crate::ws::timeline::{Dir, Kind, TimelineSpill, TlEvent};

/// Which sessions to show: any that matches one selector (all without selectors).
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub sessions: Vec<u64>,
    pub tcp_streams: Vec<u64>,
    /// `ip` or `ip:port` of the client.
    pub clients: Vec<String>,
}

impl Selectors {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.tcp_streams.is_empty() && self.clients.is_empty()
    }

    fn client_matches(&self, c: &Endpoint) -> bool {
        let full = c.to_string();
        let ip = full
            .rsplit_once(':')
            .map_or(full.as_str(), |(ip, _)| ip)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        self.clients.iter().any(|s| {
            let s = s.trim_start_matches('[').trim_end_matches(']');
            s == full || s == ip || format!("[{s}") == full
        })
    }

    pub fn matches(&self, session: u64, rec: &SessionRecord) -> bool {
        self.is_empty()
            || self.sessions.contains(&session)
            || self.tcp_streams.contains(&rec.tcp_stream)
            || self.client_matches(&rec.client)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramesFormat {
    Table,
    Csv,
    Jsonl,
}

/// Writes the timelines of the selected sessions.
pub struct FramesWriter<W: Write> {
    out: W,
    spill: Arc<TimelineSpill>,
    pub selectors: Selectors,
    format: FramesFormat,
    redact: Redact,
    csv_header: bool,
    /// Sessions written.
    pub shown: u64,
    /// Selected session numbers seen (to say which were not).
    pub seen_sessions: Vec<u64>,
}

const CSV_COLUMNS: [&str; 15] = [
    "kind",
    "session",
    "tcp_stream",
    "packet",
    "ts",
    "t",
    "dir",
    "opcode",
    "fin",
    "rsv1",
    "len",
    "masked",
    "close_code",
    "close_reason",
    "preview",
];

/// The opcode's name, or its number when reserved.
pub fn opcode_name(op: u8) -> String {
    match op {
        opcode::CONTINUATION => "continuation".into(),
        opcode::TEXT => "text".into(),
        opcode::BINARY => "binary".into(),
        opcode::CLOSE => "close".into(),
        opcode::PING => "ping".into(),
        opcode::PONG => "pong".into(),
        n => n.to_string(),
    }
}

/// Who sent the event.
fn side_of(e: &TlEvent, rec: &SessionRecord) -> Side {
    match e.dir {
        Dir::Side(s) => s,
        Dir::Endpoint(from_lo) => {
            // The connection key puts the lower endpoint first.
            let client_is_lo = rec.client <= rec.server;
            if from_lo == client_is_lo {
                Side::Client
            } else {
                Side::Server
            }
        }
    }
}

/// The preview: text as text (escaped), binary as hex, compressed payloads not shown; a
/// trailing `…` when the payload is longer than what is shown.
pub fn preview(e: &TlEvent, redact: Redact) -> Option<String> {
    if e.kind != Kind::Frame || e.len == 0 {
        return None;
    }
    if redact == Redact::All {
        return Some(format!("<redacted {} bytes>", e.len));
    }
    if e.rsv1 {
        return Some("(compressed)".into());
    }
    if e.preview.is_empty() {
        return Some("(not captured)".into());
    }
    let mut s = String::new();
    let text = e.text && !matches!(e.opcode, opcode::BINARY);
    if text {
        for chunk in e.preview.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    let _ = write!(s, "\\u{{{:x}}}", c as u32);
                } else {
                    s.push(c);
                }
            }
            for b in chunk.invalid() {
                let _ = write!(s, "\\x{b:02X}");
            }
        }
    } else {
        for b in &e.preview {
            let _ = write!(s, "{b:02x}");
        }
    }
    if (e.preview.len() as u64) < e.len {
        s.push('…');
    }
    Some(s)
}

impl<W: Write> FramesWriter<W> {
    pub fn new(
        out: W,
        spill: Arc<TimelineSpill>,
        selectors: Selectors,
        format: FramesFormat,
        redact: Redact,
    ) -> Self {
        FramesWriter {
            out,
            spill,
            selectors,
            format,
            redact,
            csv_header: false,
            shown: 0,
            seen_sessions: Vec::new(),
        }
    }

    fn table(&mut self, row: &Row<'_>, events: &[TlEvent], omitted: u64) -> io::Result<()> {
        let rec = row.rec;
        let mut s = String::new();
        let close = rec
            .verdict
            .close_code
            .map_or(String::new(), |c| format!(", close code {c}"));
        let _ = writeln!(
            s,
            "session {}  [tcp.stream eq {}]  {} -> {}  {}{close}",
            row.session,
            rec.tcp_stream,
            rec.client,
            rec.server,
            rec.verdict.outcome.as_str()
        );
        let _ = writeln!(
            s,
            "  {:>10} {:>8}  {:<6} {:<14} {:<5} {:>9} close / preview",
            "t", "packet", "dir", "event", "flags", "len"
        );
        if omitted > 0 {
            let _ = writeln!(s, "  … {omitted} events not kept (--tail)");
        }
        for e in events {
            let mut t = String::new();
            write_seconds_micros(&mut t, e.at.ts_ns - rec.start_ns);
            let (event, flags, len) = match e.kind {
                Kind::Frame => {
                    let mut f = String::new();
                    if e.fin {
                        f.push('F');
                    }
                    if e.rsv1 {
                        f.push('C');
                    }
                    if e.masked {
                        f.push('M');
                    }
                    (opcode_name(e.opcode), f, e.len.to_string())
                }
                Kind::Gap => ("gap".into(), String::new(), e.len.to_string()),
                k => (k.as_str().to_string(), String::new(), String::new()),
            };
            let mut tail = match &e.close {
                Some((code, reason)) => format!(
                    "{} \"{}\"",
                    code.map_or("(no code)".to_string(), |c| c.to_string()),
                    reason
                ),
                None => preview(e, self.redact).unwrap_or_default(),
            };
            let room = 100usize.saturating_sub(2 + 10 + 1 + 8 + 2 + 6 + 1 + 14 + 1 + 5 + 1 + 9 + 1);
            if tail.chars().count() > room {
                tail = tail
                    .chars()
                    .take(room.saturating_sub(1))
                    .collect::<String>()
                    + "…";
            }
            let _ = writeln!(
                s,
                "  {t:>10} {:>8}  {:<6} {event:<14} {flags:<5} {len:>9} {tail}",
                e.at.packet,
                side_of(e, rec).as_str(),
            );
        }
        s.push('\n');
        self.out.write_all(s.as_bytes())
    }

    fn csv(&mut self, row: &Row<'_>, events: &[TlEvent]) -> io::Result<()> {
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        if !self.csv_header {
            w.write_record(CSV_COLUMNS).map_err(super::csv::io_error)?;
            self.csv_header = true;
        }
        for e in events {
            let f = fields(row, e, self.redact);
            w.write_record(f.iter().map(|x| x.as_deref().unwrap_or("")))
                .map_err(super::csv::io_error)?;
        }
        let b = w.into_inner().map_err(|e| e.into_error())?;
        self.out.write_all(&b)
    }

    fn jsonl(&mut self, row: &Row<'_>, events: &[TlEvent]) -> io::Result<()> {
        let mut j = Json::new();
        for e in events {
            j.clear();
            let rec = row.rec;
            j.obj()
                .key("kind")
                .str(e.kind.as_str())
                .key("session")
                .u64(row.session)
                .key("tcp_stream")
                .u64(rec.tcp_stream)
                .key("packet")
                .u64(e.at.packet)
                .key("ts")
                .time(e.at.ts_ns)
                .key("t")
                .seconds(e.at.ts_ns - rec.start_ns)
                .key("dir")
                .str(side_of(e, rec).as_str());
            match e.kind {
                Kind::Frame => {
                    j.key("opcode");
                    match e.opcode {
                        opcode::CONTINUATION
                        | opcode::TEXT
                        | opcode::BINARY
                        | opcode::CLOSE
                        | opcode::PING
                        | opcode::PONG => j.str(&opcode_name(e.opcode)),
                        n => j.u64(n as u64),
                    };
                    j.key("fin")
                        .bool(e.fin)
                        .key("rsv1")
                        .bool(e.rsv1)
                        .key("len")
                        .u64(e.len)
                        .key("masked")
                        .bool(e.masked)
                        .key("close_code");
                    match &e.close {
                        Some((Some(c), _)) => j.u64(*c as u64),
                        Some((None, _)) => j.u64(1005),
                        None => j.null(),
                    };
                    j.key("close_reason");
                    match &e.close {
                        Some((_, r)) => j.str(r),
                        None => j.null(),
                    };
                    j.key("preview");
                    match preview(e, self.redact) {
                        Some(p) => j.str(&p),
                        None => j.null(),
                    };
                }
                Kind::Gap => {
                    j.key("len").u64(e.len);
                }
                _ => {}
            }
            j.end_obj();
            j.out.push('\n');
            self.out.write_all(j.out.as_bytes())?;
        }
        Ok(())
    }
}

/// The CSV fields of an event (`None`: empty).
fn fields(row: &Row<'_>, e: &TlEvent, redact: Redact) -> [Option<String>; 15] {
    let rec = row.rec;
    let mut ts = String::new();
    write_rfc3339_micros(&mut ts, e.at.ts_ns);
    let mut t = String::new();
    write_seconds_micros(&mut t, e.at.ts_ns - rec.start_ns);
    let frame = e.kind == Kind::Frame;
    let b = |x: bool| Some(x.to_string());
    [
        Some(e.kind.as_str().into()),
        Some(row.session.to_string()),
        Some(rec.tcp_stream.to_string()),
        Some(e.at.packet.to_string()),
        Some(ts),
        Some(t),
        Some(side_of(e, rec).as_str().into()),
        frame.then(|| opcode_name(e.opcode)),
        if frame { b(e.fin) } else { None },
        if frame { b(e.rsv1) } else { None },
        (frame || e.kind == Kind::Gap).then(|| e.len.to_string()),
        if frame { b(e.masked) } else { None },
        e.close.as_ref().map(|(c, _)| c.unwrap_or(1005).to_string()),
        e.close.as_ref().map(|(_, r)| r.clone()),
        preview(e, redact),
    ]
}

impl<W: Write> ReportWriter for FramesWriter<W> {
    fn session(&mut self, row: &Row<'_>) -> io::Result<()> {
        if !self.selectors.matches(row.session, row.rec) {
            return Ok(());
        }
        if self.selectors.sessions.contains(&row.session) {
            self.seen_sessions.push(row.session);
        }
        let Some(r) = row.rec.timeline else {
            return Ok(());
        };
        let events = self.spill.read(&r)?;
        self.shown += 1;
        match self.format {
            FramesFormat::Table => self.table(row, &events, r.omitted),
            FramesFormat::Csv => self.csv(row, &events),
            FramesFormat::Jsonl => self.jsonl(row, &events),
        }
    }

    fn finish(&mut self, _end: &RunEnd<'_>) -> io::Result<()> {
        if self.format == FramesFormat::Csv && !self.csv_header {
            let mut w = ::csv::WriterBuilder::new()
                .terminator(::csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            w.write_record(CSV_COLUMNS).map_err(super::csv::io_error)?;
            let b = w.into_inner().map_err(|e| e.into_error())?;
            self.out.write_all(&b)?;
        }
        self.out.flush()
    }
}
