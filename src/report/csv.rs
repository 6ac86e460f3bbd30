//! The sessions report as CSV: a fixed header, one row per session.

use std::io::Write;

use crate::record::{SessionRecord, SideStats};
use crate::time::{write_rfc3339_micros, write_seconds_micros};

/// The columns, in order. The first 33 are the documented report; the rest follow.
pub const COLUMNS: &[&str] = &[
    "session",
    "tcp_stream",
    "client",
    "server",
    "start",
    "end",
    "duration_s",
    "http_status",
    "host",
    "path",
    "subprotocol",
    "extensions",
    "client_messages",
    "server_messages",
    "client_bytes",
    "server_bytes",
    "client_pings",
    "server_pings",
    "client_pongs",
    "server_pongs",
    "first_close_by",
    "client_close_code",
    "client_close_reason",
    "server_close_code",
    "server_close_reason",
    "close_code",
    "tcp_end",
    "tcp_end_by",
    "outcome",
    "abnormal",
    "exact",
    "anomalies",
    "first_frame",
    "packets",
    "client_missing_bytes",
    "server_missing_bytes",
    "origin",
    "user_agent",
];

/// Writes the CSV report, numbering sessions as they come.
pub struct CsvReport<W: Write> {
    w: ::csv::Writer<W>,
    n: u64,
    fields: Vec<String>,
}

impl<W: Write> CsvReport<W> {
    pub fn new(out: W) -> ::csv::Result<Self> {
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(out);
        w.write_record(COLUMNS)?;
        Ok(CsvReport {
            w,
            n: 0,
            fields: vec![String::new(); COLUMNS.len()],
        })
    }

    /// Sessions written so far.
    pub fn sessions(&self) -> u64 {
        self.n
    }

    pub fn write(&mut self, r: &SessionRecord) -> ::csv::Result<()> {
        self.n += 1;
        for f in &mut self.fields {
            f.clear();
        }
        let f = &mut self.fields;
        use std::fmt::Write as _;
        let _ = write!(f[0], "{}", self.n);
        let _ = write!(f[1], "{}", r.tcp_stream);
        let _ = write!(f[2], "{}", r.client);
        let _ = write!(f[3], "{}", r.server);
        write_rfc3339_micros(&mut f[4], r.start_ns);
        write_rfc3339_micros(&mut f[5], r.end_ns);
        write_seconds_micros(&mut f[6], r.end_ns - r.start_ns);
        if let Some(s) = r.http_status {
            let _ = write!(f[7], "{s}");
        }
        f[8].push_str(&r.host);
        f[9].push_str(&r.path);
        f[10].push_str(&r.subprotocol);
        f[11].push_str(&r.extensions);
        let (c, s): (&SideStats, &SideStats) = (&r.client_side, &r.server_side);
        let _ = write!(f[12], "{}", c.messages);
        let _ = write!(f[13], "{}", s.messages);
        let _ = write!(f[14], "{}", c.bytes);
        let _ = write!(f[15], "{}", s.bytes);
        let _ = write!(f[16], "{}", c.pings);
        let _ = write!(f[17], "{}", s.pings);
        let _ = write!(f[18], "{}", c.pongs);
        let _ = write!(f[19], "{}", s.pongs);
        if let Some(side) = r.first_close_by {
            f[20].push_str(side.as_str());
        }
        for (side, code_i, reason_i) in [(c, 21, 22), (s, 23, 24)] {
            if let Some(cl) = &side.close {
                let _ = write!(f[code_i], "{}", cl.code.unwrap_or(1005));
                f[reason_i].push_str(&cl.reason);
            }
        }
        if let Some(cc) = r.close_code {
            let _ = write!(f[25], "{cc}");
        }
        f[26].push_str(r.tcp_end.as_str());
        if let Some(side) = r.tcp_end_by {
            f[27].push_str(side.as_str());
        }
        f[28].push_str(r.outcome.as_str());
        f[29].push_str(if r.outcome.is_abnormal() {
            "true"
        } else {
            "false"
        });
        f[30].push_str(if r.exact { "true" } else { "false" });
        for (i, a) in r.anomalies.iter().enumerate() {
            if i > 0 {
                f[31].push(';');
            }
            f[31].push_str(a.token());
        }
        let _ = write!(f[32], "{}", r.first_frame);
        let _ = write!(f[33], "{}", r.packets);
        let _ = write!(f[34], "{}", c.missing_bytes);
        let _ = write!(f[35], "{}", s.missing_bytes);
        f[36].push_str(&r.origin);
        f[37].push_str(&r.user_agent);
        self.w.write_record(&self.fields)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        self.w.into_inner().map_err(|e| e.into_error())
    }
}
