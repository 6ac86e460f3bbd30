//! Finished records, written in the order of their connections' first packet with
//! bounded memory.
//!
//! A record can be written only when no connection that started earlier can still produce
//! one (the watermark). A session that stays open from the start of a capture holds every
//! later record back, so waiting records are kept in memory up to a cap; past it they are
//! sorted and spilled to an unlinked temporary file (a run), and emission merges memory and
//! runs. Memory then depends on the cap, not on the number of sessions in the capture.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::decode::Endpoint;
use crate::record::{Anomalies, Close, Outcome, SessionRecord, Side, SideStats, TcpEnd};

/// A record ordered by its first frame (unique per connection).
struct ByFirstFrame(SessionRecord);

impl PartialEq for ByFirstFrame {
    fn eq(&self, o: &Self) -> bool {
        self.0.first_frame == o.0.first_frame
    }
}
impl Eq for ByFirstFrame {}
impl PartialOrd for ByFirstFrame {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByFirstFrame {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.first_frame.cmp(&o.0.first_frame)
    }
}

/// A sorted run of records on disk, and its next record.
struct Run {
    reader: BufReader<File>,
    head: Option<SessionRecord>,
}

impl Run {
    fn advance(&mut self) -> io::Result<()> {
        self.head = decode(&mut self.reader)?;
        Ok(())
    }
}

pub struct Reorder {
    heap: BinaryHeap<Reverse<ByFirstFrame>>,
    held_bytes: usize,
    max_held_bytes: usize,
    runs: Vec<Run>,
    /// Records spilled to disk (for the counters).
    pub spilled: u64,
}

impl Reorder {
    pub fn new(max_held_bytes: usize) -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            held_bytes: 0,
            max_held_bytes,
            runs: Vec::new(),
            spilled: 0,
        }
    }

    pub fn push(&mut self, r: SessionRecord) -> io::Result<()> {
        self.held_bytes += approx_size(&r);
        self.heap.push(Reverse(ByFirstFrame(r)));
        if self.held_bytes > self.max_held_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the held records, sorted, to a new run.
    fn spill(&mut self) -> io::Result<()> {
        let path = std::env::temp_dir().join(format!(
            "wsclose-{}-{}.run",
            std::process::id(),
            self.runs.len()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unlinked at once: the space is freed when the file is closed, even on a crash.
        std::fs::remove_file(&path)?;
        let mut w = BufWriter::with_capacity(1 << 16, &file);
        let mut buf = Vec::new();
        while let Some(Reverse(ByFirstFrame(r))) = self.heap.pop() {
            buf.clear();
            encode(&r, &mut buf);
            w.write_all(&buf)?;
            self.spilled += 1;
        }
        w.flush()?;
        drop(w);
        let mut file = file;
        file.seek(SeekFrom::Start(0))?;
        let mut run = Run {
            reader: BufReader::with_capacity(1 << 16, file),
            head: None,
        };
        run.advance()?;
        self.runs.push(run);
        self.held_bytes = 0;
        Ok(())
    }

    /// Hands over, in order, every record whose first frame is below `watermark`.
    pub fn emit_below(
        &mut self,
        watermark: u64,
        out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            let mem = self.heap.peek().map(|Reverse(p)| p.0.first_frame);
            let disk = self
                .runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.head.as_ref().map(|h| (h.first_frame, i)))
                .min();
            let take_disk = match (mem, disk) {
                (Some(m), Some((d, _))) => d < m,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if take_disk {
                let (f, i) = disk.unwrap();
                if f >= watermark {
                    return Ok(());
                }
                let run = &mut self.runs[i];
                let r = run.head.take().unwrap();
                run.advance()?;
                if run.head.is_none() {
                    self.runs.swap_remove(i);
                }
                out(r)?;
            } else {
                match mem {
                    Some(m) if m < watermark => {
                        let Reverse(ByFirstFrame(r)) = self.heap.pop().unwrap();
                        self.held_bytes = self.held_bytes.saturating_sub(approx_size(&r));
                        out(r)?;
                    }
                    _ => return Ok(()),
                }
            }
        }
    }
}

fn approx_size(r: &SessionRecord) -> usize {
    let strings = r.texts();
    std::mem::size_of::<SessionRecord>()
        + 16
        + strings.iter().map(|s| s.capacity()).sum::<usize>()
        + [&r.client_side, &r.server_side]
            .iter()
            .map(|s| s.close.as_ref().map_or(0, |c| c.reason.capacity() + 40))
            .sum::<usize>()
}

// A compact binary form of a record, for runs only (never leaves the process).

fn put_u64(b: &mut Vec<u8>, x: u64) {
    b.extend_from_slice(&x.to_le_bytes());
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_opt16(b: &mut Vec<u8>, x: Option<u16>) {
    match x {
        Some(v) => {
            b.push(1);
            b.extend_from_slice(&v.to_le_bytes());
        }
        None => b.push(0),
    }
}

fn side_code(s: Option<Side>) -> u8 {
    match s {
        None => 0,
        Some(Side::Client) => 1,
        Some(Side::Server) => 2,
    }
}

fn put_endpoint(b: &mut Vec<u8>, e: &Endpoint) {
    b.extend_from_slice(&u128::from(e.addr).to_le_bytes());
    b.extend_from_slice(&{ e.port }.to_le_bytes());
}

fn put_side(b: &mut Vec<u8>, s: &SideStats) {
    for x in [s.messages, s.bytes, s.pings, s.pongs, s.missing_bytes] {
        put_u64(b, x);
    }
    match &s.close {
        Some(c) => {
            b.push(1);
            put_opt16(b, c.code);
            put_str(b, &c.reason);
            put_u64(b, c.frame);
        }
        None => b.push(0),
    }
}

fn encode(r: &SessionRecord, b: &mut Vec<u8>) {
    let start = b.len();
    b.extend_from_slice(&[0; 4]);
    for x in [
        r.first_frame,
        r.tcp_stream,
        r.start_ns as u64,
        r.end_ns as u64,
        r.packets,
        r.anomalies.bits(),
    ] {
        put_u64(b, x);
    }
    put_endpoint(b, &r.client);
    put_endpoint(b, &r.server);
    put_opt16(b, r.http_status);
    put_opt16(b, r.close_code);
    for s in r.texts() {
        put_str(b, s);
    }
    put_side(b, &r.client_side);
    put_side(b, &r.server_side);
    b.push(side_code(r.first_close_by));
    b.push(side_code(r.tcp_end_by));
    b.push(r.tcp_end as u8);
    b.push(r.outcome as u8);
    b.push(r.exact as u8);
    let len = (b.len() - start - 4) as u32;
    b[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads back what `encode` wrote.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spilled record is cut short",
            ));
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn opt16(&mut self) -> io::Result<Option<u16>> {
        Ok(if self.u8()? == 1 {
            Some(self.u16()?)
        } else {
            None
        })
    }
    fn string(&mut self) -> io::Result<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
    fn endpoint(&mut self) -> io::Result<Endpoint> {
        let addr = u128::from_le_bytes(self.take(16)?.try_into().unwrap()).into();
        Ok(Endpoint {
            addr,
            port: self.u16()?,
        })
    }
    fn side(&mut self) -> io::Result<Option<Side>> {
        Ok(match self.u8()? {
            1 => Some(Side::Client),
            2 => Some(Side::Server),
            _ => None,
        })
    }
    fn side_stats(&mut self) -> io::Result<SideStats> {
        let (messages, bytes, pings, pongs, missing_bytes) = (
            self.u64()?,
            self.u64()?,
            self.u64()?,
            self.u64()?,
            self.u64()?,
        );
        let close = if self.u8()? == 1 {
            Some(Close {
                code: self.opt16()?,
                reason: self.string()?,
                frame: self.u64()?,
            })
        } else {
            None
        };
        Ok(SideStats {
            messages,
            bytes,
            pings,
            pongs,
            close,
            missing_bytes,
        })
    }
}

fn decode(r: &mut impl Read) -> io::Result<Option<SessionRecord>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    let mut c = Cursor(&buf);
    let (first_frame, tcp_stream, start, end, packets, anomalies) =
        (c.u64()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let (client, server) = (c.endpoint()?, c.endpoint()?);
    let (http_status, close_code) = (c.opt16()?, c.opt16()?);
    let (host, path, origin, user_agent, subprotocol, extensions) = (
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
        c.string()?,
    );
    let (client_side, server_side) = (c.side_stats()?, c.side_stats()?);
    let (first_close_by, tcp_end_by) = (c.side()?, c.side()?);
    let tcp_end = match c.u8()? {
        x if x == TcpEnd::Fin as u8 => TcpEnd::Fin,
        x if x == TcpEnd::Rst as u8 => TcpEnd::Rst,
        _ => TcpEnd::Open,
    };
    let o = c.u8()?;
    let outcome = [
        Outcome::Clean,
        Outcome::Reset,
        Outcome::UnansweredClose,
        Outcome::NoCloseFrame,
        Outcome::OpenAtEnd,
        Outcome::Rejected,
    ]
    .into_iter()
    .find(|x| *x as u8 == o)
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad outcome"))?;
    let exact = c.u8()? == 1;
    Ok(Some(SessionRecord {
        first_frame,
        tcp_stream,
        client,
        server,
        start_ns: start as i64,
        end_ns: end as i64,
        packets,
        http_status,
        host,
        path,
        origin,
        user_agent,
        subprotocol,
        extensions,
        client_side,
        server_side,
        first_close_by,
        close_code,
        tcp_end,
        tcp_end_by,
        outcome,
        exact,
        anomalies: Anomalies::from_bits(anomalies),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Anomaly;

    fn rec(first_frame: u64) -> SessionRecord {
        let mut anomalies = Anomalies::default();
        anomalies.insert(Anomaly::Gap);
        SessionRecord {
            first_frame,
            tcp_stream: first_frame * 2,
            client: Endpoint::v4([10, 0, 0, 1], 40000),
            server: Endpoint::v6([0xfd, 0x79, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 80),
            start_ns: -5,
            end_ns: 1_700_000_000_000_000_000,
            packets: 12,
            http_status: Some(101),
            host: "h".into(),
            path: "/p?x=ü".into(),
            origin: String::new(),
            user_agent: "ua".into(),
            subprotocol: "chat".into(),
            extensions: "permessage-deflate".into(),
            client_side: SideStats {
                messages: 3,
                bytes: 4,
                pings: 5,
                pongs: 6,
                close: Some(Close {
                    code: None,
                    reason: "bye, \"x\"".into(),
                    frame: 9,
                }),
                missing_bytes: 7,
            },
            server_side: SideStats::default(),
            first_close_by: Some(Side::Client),
            close_code: Some(1005),
            tcp_end: TcpEnd::Rst,
            tcp_end_by: Some(Side::Server),
            outcome: Outcome::Reset,
            exact: false,
            anomalies,
        }
    }

    #[test]
    fn spilled_runs_merge_in_order() {
        let mut ro = Reorder::new(1);
        for f in [50, 10, 40, 20, 30, 60] {
            ro.push(rec(f)).unwrap();
        }
        assert!(ro.spilled > 0);
        let mut got = Vec::new();
        ro.emit_below(45, &mut |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got.iter().map(|r| r.first_frame).collect::<Vec<_>>(),
            [10, 20, 30, 40]
        );
        let r = &got[0];
        let want = rec(10);
        assert_eq!(
            (r.client, r.server, &r.path, r.outcome, r.anomalies),
            (
                want.client,
                want.server,
                &want.path,
                want.outcome,
                want.anomalies
            )
        );
        assert_eq!(r.client_side, want.client_side);
        assert_eq!(
            (r.start_ns, r.end_ns, r.close_code, r.tcp_end, r.exact),
            (-5, want.end_ns, Some(1005), TcpEnd::Rst, false)
        );
        ro.emit_below(u64::MAX, &mut |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 6);
        assert_eq!(got[5].first_frame, 60);
    }
}
