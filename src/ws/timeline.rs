//! The per-frame timeline of one connection, for `frames`: every frame (with a short
//! preview of its payload where the capture has it) and the TCP events (SYN, FIN, RST,
//! gaps, retransmissions), in capture order.
//!
//! Memory is bounded like the report's: a connection keeps at most
//! [`CHUNK_BYTES`] of encoded events; fuller chunks go to one shared, unlinked temporary
//! file ([`TimelineSpill`]), chained backwards, so that the session record only carries a
//! [`TimelineRef`] (where its last chunk is) and the writer reads the events back when the
//! session's row is written. With `--tail N` a connection keeps only a ring of its last N
//! events before its end (first Close frame, FIN or RST) and N after.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::close::unmask;
use super::events::{FrameConsumer, StreamEvent};
use super::frame::{opcode, FrameHeader};
use crate::record::{At, Side};

/// Encoded events a connection keeps in memory before they go to the spill file.
pub const CHUNK_BYTES: usize = 8 * 1024;
/// Payload bytes kept per frame for its preview.
pub const PREVIEW_BYTES: usize = 32;
/// Close reason bytes kept per Close frame (a valid one has at most 123).
const REASON_BYTES: usize = 123;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Frame,
    Syn,
    Fin,
    Rst,
    Gap,
    Retransmission,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Frame => "frame",
            Kind::Syn => "syn",
            Kind::Fin => "fin",
            Kind::Rst => "rst",
            Kind::Gap => "gap",
            Kind::Retransmission => "retransmission",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Kind> {
        [
            Kind::Frame,
            Kind::Syn,
            Kind::Fin,
            Kind::Rst,
            Kind::Gap,
            Kind::Retransmission,
        ]
        .get(c as usize)
        .copied()
    }
}

/// Who sent it: a side of the session, or (for TCP events seen before the session was
/// recognised) the lower or higher endpoint of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Side(Side),
    /// From the connection key's lower endpoint (`true`) or higher.
    Endpoint(bool),
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlEvent {
    pub kind: Kind,
    pub dir: Dir,
    pub at: At,
    /// Frames: opcode, FIN, RSV1, masked; the message it belongs to is text (for the
    /// preview of continuations).
    pub opcode: u8,
    pub fin: bool,
    pub rsv1: bool,
    pub masked: bool,
    pub text: bool,
    /// Frames: payload length; gaps: bytes missing.
    pub len: u64,
    /// Close frames: the code (`None`: no code) and reason.
    pub close: Option<(Option<u16>, String)>,
    /// The payload's first bytes, unmasked, as far as the capture has them.
    pub preview: Vec<u8>,
}

impl TlEvent {
    fn tcp(kind: Kind, from_lo: bool, at: At) -> Self {
        TlEvent {
            kind,
            dir: Dir::Endpoint(from_lo),
            at,
            opcode: 0,
            fin: false,
            rsv1: false,
            masked: false,
            text: false,
            len: 0,
            close: None,
            preview: Vec::new(),
        }
    }

    fn encode(&self, b: &mut Vec<u8>) {
        let dir = match self.dir {
            Dir::Side(Side::Client) => 0,
            Dir::Side(Side::Server) => 1,
            Dir::Endpoint(true) => 2,
            Dir::Endpoint(false) => 3,
        };
        let flags = self.fin as u8
            | (self.rsv1 as u8) << 1
            | (self.masked as u8) << 2
            | (self.text as u8) << 3
            | (self.close.is_some() as u8) << 4;
        b.extend_from_slice(&[self.kind.code(), dir, self.opcode, flags]);
        b.extend_from_slice(&self.at.packet.to_le_bytes());
        b.extend_from_slice(&self.at.ts_ns.to_le_bytes());
        b.extend_from_slice(&self.len.to_le_bytes());
        if let Some((code, reason)) = &self.close {
            b.extend_from_slice(&code.map_or(0u32, |c| 0x1_0000 | c as u32).to_le_bytes());
            let r = &reason.as_bytes()[..reason.len().min(255)];
            b.push(r.len() as u8);
            b.extend_from_slice(r);
        }
        b.push(self.preview.len() as u8);
        b.extend_from_slice(&self.preview);
    }

    /// Reads one event from the front of `b`; returns it and the bytes it took.
    fn decode(b: &[u8]) -> Option<(TlEvent, usize)> {
        let mut p = 0;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(p..p + n)?;
            p += n;
            Some(s)
        };
        let h = take(4)?;
        let (kind, dir, op, flags) = (Kind::from_code(h[0])?, h[1], h[2], h[3]);
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
        let packet = u64_(take(8)?);
        let ts_ns = u64_(take(8)?) as i64;
        let len = u64_(take(8)?);
        let close = if flags & 16 != 0 {
            let c = u32::from_le_bytes(take(4)?.try_into().unwrap());
            let n = take(1)?[0] as usize;
            let r = String::from_utf8_lossy(take(n)?).into_owned();
            Some(((c & 0x1_0000 != 0).then_some(c as u16), r))
        } else {
            None
        };
        let n = take(1)?[0] as usize;
        let preview = take(n)?.to_vec();
        let dir = match dir {
            0 => Dir::Side(Side::Client),
            1 => Dir::Side(Side::Server),
            2 => Dir::Endpoint(true),
            _ => Dir::Endpoint(false),
        };
        Some((
            TlEvent {
                kind,
                dir,
                at: At { packet, ts_ns },
                opcode: op,
                fin: flags & 1 != 0,
                rsv1: flags & 2 != 0,
                masked: flags & 4 != 0,
                text: flags & 8 != 0,
                len,
                close,
                preview,
            },
            p,
        ))
    }
}

/// Where a session's timeline is: its last chunk in the spill file (chunks are chained
/// backwards), how many events it kept, and how many `--tail` left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineRef {
    /// Offset of the last chunk, plus one (0: no chunk).
    pub last_chunk: u64,
    pub events: u64,
    pub omitted: u64,
}

/// The file every connection's full chunks go to (unlinked at once), shared by the
/// shards; and what the timelines keep.
#[derive(Debug)]
pub struct TimelineSpill {
    file: Mutex<(File, u64)>,
    reader: File,
    /// `--tail N`: the last N events before the end, and N after.
    pub tail: Option<usize>,
}

impl TimelineSpill {
    pub fn new(tail: Option<usize>) -> io::Result<Arc<Self>> {
        let f = crate::spill::unlinked_temp_file("timeline")?;
        let reader = f.try_clone()?;
        Ok(Arc::new(TimelineSpill {
            file: Mutex::new((f, 0)),
            reader,
            tail,
        }))
    }

    /// Appends a chunk that follows the chunk at `prev` (0: none); returns its reference.
    fn append(&self, prev: u64, bytes: &[u8]) -> io::Result<u64> {
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let at = g.1;
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&prev.to_le_bytes());
        head[8..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        g.0.write_all(&head)?;
        g.0.write_all(bytes)?;
        g.1 += 12 + bytes.len() as u64;
        Ok(at + 1)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.reader.read_exact_at(buf, off)
    }

    /// Every event of a timeline, in order.
    pub fn read(&self, r: &TimelineRef) -> io::Result<Vec<TlEvent>> {
        let mut chunks = Vec::new();
        let mut at = r.last_chunk;
        while at != 0 {
            let mut head = [0u8; 12];
            self.read_at(&mut head, at - 1)?;
            let prev = u64::from_le_bytes(head[..8].try_into().unwrap());
            let len = u32::from_le_bytes(head[8..].try_into().unwrap()) as usize;
            let mut b = vec![0u8; len];
            self.read_at(&mut b, at - 1 + 12)?;
            chunks.push(b);
            at = prev;
        }
        let mut out = Vec::new();
        for c in chunks.iter().rev() {
            let mut s = &c[..];
            while !s.is_empty() {
                let Some((e, n)) = TlEvent::decode(s) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad timeline chunk",
                    ));
                };
                out.push(e);
                s = &s[n..];
            }
        }
        Ok(out)
    }
}

/// A frame whose payload is being previewed (one per side).
#[derive(Debug, Default)]
struct Partial {
    preview: Vec<u8>,
}

/// One connection's timeline.
#[derive(Debug)]
pub struct Timeline {
    spill: Arc<TimelineSpill>,
    buf: Vec<u8>,
    last_chunk: u64,
    events: u64,
    /// `--tail`: the events before the end (a ring), and after it.
    before: VecDeque<TlEvent>,
    after: Vec<TlEvent>,
    omitted: u64,
    ended: bool,
    partial: [Partial; 2],
    /// The message in progress per side is text.
    text: [bool; 2],
    /// A Close frame waits for its code and reason (the Close event follows its frame).
    pending_close: Option<TlEvent>,
    /// The spill file could not be written: the timeline stops there (said at the end).
    pub failed: bool,
}

fn side_idx(s: Side) -> usize {
    match s {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl Timeline {
    pub fn new(spill: Arc<TimelineSpill>) -> Self {
        Timeline {
            spill,
            buf: Vec::new(),
            last_chunk: 0,
            events: 0,
            before: VecDeque::new(),
            after: Vec::new(),
            omitted: 0,
            ended: false,
            partial: Default::default(),
            text: [false; 2],
            pending_close: None,
            failed: false,
        }
    }

    fn push(&mut self, e: TlEvent) {
        if let Some(c) = self.pending_close.take() {
            self.keep(c);
        }
        self.keep(e);
    }

    fn keep(&mut self, e: TlEvent) {
        let ends = matches!(e.kind, Kind::Fin | Kind::Rst) || e.close.is_some();
        match self.spill.tail {
            Some(n) => {
                if !self.ended {
                    if ends {
                        self.ended = true;
                        self.after.push(e);
                    } else {
                        self.before.push_back(e);
                        if self.before.len() > n {
                            self.before.pop_front();
                            self.omitted += 1;
                        }
                    }
                } else if self.after.len() < n.max(1) {
                    self.after.push(e);
                } else {
                    self.omitted += 1;
                }
            }
            None => {
                self.ended |= ends;
                e.encode(&mut self.buf);
                self.events += 1;
                if self.buf.len() >= CHUNK_BYTES {
                    self.flush_chunk();
                }
            }
        }
    }

    fn flush_chunk(&mut self) {
        if self.buf.is_empty() || self.failed {
            self.buf.clear();
            return;
        }
        match self.spill.append(self.last_chunk, &self.buf) {
            Ok(at) => self.last_chunk = at,
            Err(_) => self.failed = true,
        }
        self.buf.clear();
    }

    /// A TCP event of the direction from the key's lower endpoint (`from_lo`) or higher.
    pub fn tcp(&mut self, kind: Kind, from_lo: bool, at: At) {
        self.push(TlEvent::tcp(kind, from_lo, at));
    }

    /// Bytes this timeline holds in memory (counted against the memory budget): the chunk
    /// not yet written out, and the events of a ring (each with room for its preview).
    pub fn held_bytes(&self) -> usize {
        let event = std::mem::size_of::<TlEvent>() + PREVIEW_BYTES;
        self.buf.capacity()
            + (self.before.capacity() + self.after.capacity()) * event
            + usize::from(self.pending_close.is_some()) * (event + REASON_BYTES)
    }

    /// The memory budget is spent: a timeline kept whole writes its chunk out now (nothing
    /// is lost); a ring keeps what it has.
    pub fn trim_memory(&mut self) {
        if self.spill.tail.is_none() {
            self.flush_chunk();
            self.buf = Vec::new();
        }
    }

    /// The memory budget is spent and this connection gives up what it holds: a ring
    /// forgets the events it keeps before the end (counted as omitted); a timeline kept
    /// whole writes its chunk out.
    pub fn release_memory(&mut self) {
        if self.spill.tail.is_some() {
            self.omitted += self.before.len() as u64;
            self.before = VecDeque::new();
        } else {
            self.trim_memory();
        }
    }

    /// Everything kept, written out; where it is.
    pub fn finish(mut self) -> TimelineRef {
        if let Some(c) = self.pending_close.take() {
            self.keep(c);
        }
        if self.spill.tail.is_some() {
            let kept: Vec<TlEvent> = self.before.drain(..).chain(self.after.drain(..)).collect();
            for e in &kept {
                e.encode(&mut self.buf);
            }
            self.events = kept.len() as u64;
        }
        self.flush_chunk();
        TimelineRef {
            last_chunk: self.last_chunk,
            events: self.events,
            omitted: self.omitted,
        }
    }
}

impl FrameConsumer for Timeline {
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        let i = side_idx(side);
        match ev {
            StreamEvent::Frame(f) => {
                let h = f.header;
                match h.opcode {
                    opcode::TEXT => self.text[i] = true,
                    opcode::BINARY => self.text[i] = false,
                    _ => {}
                }
                let e = TlEvent {
                    kind: Kind::Frame,
                    dir: Dir::Side(side),
                    at,
                    opcode: h.opcode,
                    fin: h.fin,
                    rsv1: h.rsv & 0b100 != 0,
                    masked: h.masking_key.is_some(),
                    text: match h.opcode {
                        opcode::TEXT => true,
                        opcode::CONTINUATION => self.text[i],
                        _ => false,
                    },
                    len: h.payload_len,
                    close: None,
                    preview: std::mem::take(&mut self.partial[i].preview),
                };
                if h.opcode == opcode::CLOSE {
                    if let Some(c) = self.pending_close.take() {
                        self.keep(c);
                    }
                    self.pending_close = Some(e);
                } else {
                    self.push(e);
                }
            }
            StreamEvent::Close(c) => {
                if let Some(mut f) = self.pending_close.take() {
                    let mut r = c.reason.clone();
                    if r.len() > REASON_BYTES {
                        let mut cut = REASON_BYTES;
                        while !r.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        r.truncate(cut);
                    }
                    f.close = Some((c.code, r));
                    self.keep(f);
                }
            }
            StreamEvent::Gap { bytes, .. } => {
                let mut e = TlEvent::tcp(Kind::Gap, false, at);
                e.dir = Dir::Side(side);
                e.len = bytes;
                self.push(e);
            }
            StreamEvent::Message { .. } | StreamEvent::Anomaly(_) => {}
        }
    }

    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        let p = &mut self.partial[side_idx(side)];
        if offset as usize >= PREVIEW_BYTES || p.preview.len() != offset as usize {
            return;
        }
        let n = (PREVIEW_BYTES - offset as usize).min(bytes.len());
        let start = p.preview.len();
        p.preview.extend_from_slice(&bytes[..n]);
        if let Some(k) = header.masking_key {
            unmask(&mut p.preview[start..], k, offset as usize);
        }
    }

    fn wants_payload(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> TlEvent {
        TlEvent {
            kind: Kind::Frame,
            dir: Dir::Side(Side::Client),
            at: At {
                packet: n,
                ts_ns: n as i64 * 1000,
            },
            opcode: 1,
            fin: true,
            rsv1: false,
            masked: true,
            text: true,
            len: n,
            close: n
                .is_multiple_of(5)
                .then(|| (Some(1000), format!("bye {n}"))),
            preview: b"hello".to_vec(),
        }
    }

    /// Under the memory budget a whole timeline writes its chunk out early and loses
    /// nothing; a ring gives up the events it keeps before the end, counted as omitted.
    #[test]
    fn the_memory_budget_spills_a_timeline_and_shortens_a_ring() {
        let spill = TimelineSpill::new(None).unwrap();
        let mut t = Timeline::new(spill.clone());
        for n in 1..=50 {
            t.keep(ev(n));
            if n % 20 == 0 {
                assert!(t.held_bytes() > 0);
                t.trim_memory();
                assert_eq!(t.held_bytes(), 0);
            }
        }
        t.release_memory();
        assert_eq!(t.held_bytes(), 0);
        let r = t.finish();
        assert_eq!(
            spill.read(&r).unwrap(),
            (1..=50).map(ev).collect::<Vec<_>>()
        );
        assert_eq!(r.omitted, 0);

        let ring = TimelineSpill::new(Some(3)).unwrap();
        let mut t = Timeline::new(ring.clone());
        for n in 1..=5 {
            t.keep(ev(n * 10 + 1));
        }
        let held = t.held_bytes();
        assert!(held > 0);
        t.trim_memory();
        assert_eq!(t.held_bytes(), held, "a ring loses nothing on trim");
        t.release_memory();
        assert!(t.held_bytes() < held);
        t.keep(ev(99));
        let r = t.finish();
        let got: Vec<u64> = ring.read(&r).unwrap().iter().map(|e| e.at.packet).collect();
        assert_eq!(got, [99]);
        assert_eq!(r.omitted, 2 + 3);
    }

    #[test]
    fn chunks_chain_and_read_back_in_order() {
        let spill = TimelineSpill::new(None).unwrap();
        let mut a = Timeline::new(spill.clone());
        let mut b = Timeline::new(spill.clone());
        for n in 1..=2000 {
            a.keep(ev(n));
            if n % 3 == 0 {
                b.keep(ev(n));
            }
        }
        let (ra, rb) = (a.finish(), b.finish());
        let got = spill.read(&ra).unwrap();
        assert_eq!(got.len(), 2000);
        assert_eq!(got, (1..=2000).map(ev).collect::<Vec<_>>());
        assert_eq!(spill.read(&rb).unwrap().len(), 666);
    }

    #[test]
    fn tail_keeps_the_last_before_the_end_and_some_after() {
        let spill = TimelineSpill::new(Some(3)).unwrap();
        let mut t = Timeline::new(spill.clone());
        for n in 1..=9 {
            t.keep(ev(n * 10 + 1));
        }
        t.tcp(
            Kind::Fin,
            true,
            At {
                packet: 200,
                ts_ns: 0,
            },
        );
        for n in 0..10 {
            t.keep(ev(300 + n));
        }
        let r = t.finish();
        let got: Vec<u64> = spill
            .read(&r)
            .unwrap()
            .iter()
            .map(|e| e.at.packet)
            .collect();
        assert_eq!(got, [71, 81, 91, 200, 300, 301]);
        assert_eq!(r.omitted, 6 + 8);
    }
}
