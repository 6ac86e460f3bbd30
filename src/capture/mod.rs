//! Capture reading: pcap and pcapng files (or stdin), framed in place in large reusable
//! chunks, several files merged by timestamp into one capture.
//!
//! Records are never copied one by one: a chunk of the file is read once, records are
//! located inside it, and a [`Batch`] holds shared references to the chunks its packets
//! live in. Only the unfinished record at the end of a chunk is moved to the next one.

mod pcapng;
mod reader;
pub mod source;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::config::{Limits, BATCHES_IN_FLIGHT, INPUT_BUFFER_BYTES};
use crate::error::{InputError, InputErrorKind};

pub use self::pcapng::{ts_resolution, Interface};
use self::reader::RawRecord;
pub use self::reader::{display_name, FileReader, MIN_CHUNK};
pub use self::source::{LiveCtl, Stop};

/// Where one packet's captured bytes are, and what the capture says about it.
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    /// 1-based number of the packet in the (merged) capture, as Wireshark numbers frames.
    pub number: u64,
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// LINKTYPE_* value of the interface the packet was captured on.
    pub linktype: u16,
    /// Index into [`Batch::chunks`].
    pub chunk: u32,
    /// Offset of the packet data inside the chunk.
    pub off: u32,
    /// Bytes captured (present in the file).
    pub caplen: u32,
    /// Bytes the packet had on the wire.
    pub origlen: u32,
    /// `--filter` did not select it: it is only seen for the numbering of connections
    /// (their numbers stay those of the unfiltered capture), never analyzed.
    pub filtered_out: bool,
}

/// Where a packet comes from: its input (in the order the inputs were given) and its
/// number in that input, as Wireshark numbers frames when it opens that file alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub input: u32,
    pub number: u64,
}

/// A pcapng Decryption Secrets Block (a TLS key log put in the capture by `editcap
/// --inject-secrets`), as read.
#[derive(Clone, Debug)]
pub struct DecryptionSecrets {
    /// The input it was read from.
    pub file: String,
    /// `Secrets Type` (`0x544c534b` for a TLS key log).
    pub secrets_type: u32,
    pub data: Vec<u8>,
    /// It came after packets of its file (they could not use it).
    pub after_packets: bool,
}

/// A run of packets in capture order, with the chunks that hold their bytes.
#[derive(Default)]
pub struct Batch {
    pub chunks: Vec<Arc<Vec<u8>>>,
    pub packets: Vec<Packet>,
    /// Number of the first packet read into this batch (filtered out or not).
    pub first_number: u64,
    /// With [`Capture::set_per_file`]: the origin of every packet read into this batch
    /// (filtered out or not), indexed by `number - first_number`.
    pub origins: Vec<Origin>,
    /// Decryption Secrets Blocks read before the batch's first packet (a batch ends before
    /// a block that follows its packets, so that secrets apply exactly from where they are
    /// in the capture; blocks after an input's last packet come in the next batch).
    pub secrets: Vec<DecryptionSecrets>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.packets.clear();
        self.origins.clear();
        self.secrets.clear();
    }

    /// Where packet `number` of this batch comes from (per-file mode only).
    #[inline]
    pub fn origin(&self, number: u64) -> Option<Origin> {
        self.origins
            .get(number.checked_sub(self.first_number)? as usize)
            .copied()
    }

    /// The captured bytes of `p`.
    #[inline]
    pub fn data(&self, p: &Packet) -> &[u8] {
        let c = &self.chunks[p.chunk as usize];
        &c[p.off as usize..p.off as usize + p.caplen as usize]
    }
}

/// A packet filter: `(linktype, captured bytes, original length) -> keep`.
pub type PacketFilter = Box<dyn FnMut(u16, &[u8], u32) -> bool + Send>;

/// Outcome of filling a batch.
pub enum Fill {
    /// More packets may follow (the batch is full, or a live input has nothing more yet).
    More,
    /// Every input has been read to its end, or a stop was requested (the batch may hold
    /// the last packets).
    End,
}

/// One input as given on the command line.
struct Input {
    /// The path as given (`-` for stdin).
    path: String,
    /// The name in messages.
    name: String,
    /// Timestamp of its first record (from the pre-pass); `None`: no packet, or unreadable.
    first_ts: Option<i64>,
    /// Kept open since the pre-pass (stdin, a FIFO, an in-memory reader, a lone input),
    /// with its first record; other inputs are opened again when the merge needs them.
    kept: Option<(FileReader, RawRecord)>,
    /// Decryption Secrets Blocks before the kept first record.
    kept_secrets: Vec<DecryptionSecrets>,
}

/// An input the merge is reading.
struct Open {
    input: u32,
    /// Position in the merge order: ties of timestamps go to the lower rank.
    rank: u32,
    reader: FileReader,
    /// Records handed out so far (the input's own packet numbers).
    numbered: u64,
    /// (chunk_id, index in the current batch's chunks) of its chunk in this batch.
    batch_chunk: Option<(u64, u32)>,
}

/// One or more capture inputs read as one capture, merged in timestamp order.
///
/// A pre-pass reads the first timestamp of every input, one file open at a time; inputs
/// are then merged in the order of their first packets (ties: by path), so the order of
/// the arguments never changes the report, and packets with equal timestamps go to the
/// input that comes first in that order. A file is opened when the merge reaches its first
/// packet and closed at its end, so a rotated set of any length keeps one or two files
/// open; the read buffers of the open inputs share [`INPUT_BUFFER_BYTES`].
pub struct Capture {
    inputs: Vec<Input>,
    /// Inputs with packets, in merge order.
    order: Vec<u32>,
    /// Position in `order` of the next input to open.
    next_open: usize,
    /// Open inputs by slot (slots are reused).
    open: Vec<Option<Open>>,
    n_open: usize,
    /// Next record of every open input that has one: (timestamp, rank, slot).
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
    /// Records of the open inputs, by slot, waiting in the heap.
    heads: Vec<Option<RawRecord>>,
    /// Decryption Secrets Blocks read before each head, by slot.
    head_secrets: Vec<Vec<DecryptionSecrets>>,
    /// Decryption Secrets Blocks for the next batch.
    pending_secrets: Vec<DecryptionSecrets>,
    /// A live input whose next record has not arrived yet: the merge waits for it.
    waiting: Option<u32>,
    next_number: u64,
    errors: Vec<InputError>,
    limits: Limits,
    batch_packets: usize,
    batch_bytes: usize,
    /// Bytes of the chunks the current batch holds, and the most it may hold: with many
    /// small inputs, a batch must not keep a chunk of each alive.
    batch_chunk_bytes: usize,
    max_batch_chunk_bytes: usize,
    filter: Option<PacketFilter>,
    per_file: bool,
    ctl: Arc<LiveCtl>,
    /// The stop request has been acted on.
    stopped: bool,
    /// Bytes read by inputs already closed.
    bytes_closed: u64,
    /// Packets read (before any filter).
    pub packets_read: u64,
    /// Packets dropped by the filter.
    pub packets_filtered: u64,
    /// Inputs whose last record was cut short by a stop (not an input error).
    pub cut_by_stop: Vec<String>,
}

impl Capture {
    /// Opens every path; a file that cannot be opened is recorded as an error and skipped.
    pub fn open(paths: &[String], limits: &Limits) -> Capture {
        Self::open_with(paths, limits, Arc::new(Stop::default()))
    }

    /// Like [`Capture::open`], with a stop request that ends the capture early: regular
    /// files at once, live inputs (pipes, FIFOs) after reading until their end or for
    /// [`source::DRAIN_NS`].
    pub fn open_with(paths: &[String], limits: &Limits, stop: Arc<Stop>) -> Capture {
        let ctl = Arc::new(LiveCtl::new(stop));
        let mut cap = Self::empty(limits, Arc::clone(&ctl));
        let lone = paths.len() == 1;
        for p in paths {
            let name = display_name(p);
            let mut input = Input {
                path: p.clone(),
                name: name.clone(),
                first_ts: None,
                kept: None,
                kept_secrets: Vec::new(),
            };
            if ctl.stop.is_requested() {
                cap.inputs.push(input);
                continue;
            }
            // One file open at a time: the pre-pass reads a small chunk of each.
            let chunk = if lone { limits.chunk_bytes } else { MIN_CHUNK };
            let opened = source::open(p, &ctl)
                .map_err(|e| InputError::new(&name, 0, InputErrorKind::Open(e)))
                .and_then(|src| FileReader::from_source(name.clone(), src, chunk, limits));
            match opened {
                Ok(r) => {
                    // stdin cannot be opened twice, even when it is a file (`< FILE`).
                    let keep = lone || r.is_live() || p == "-";
                    cap.pre_pass(&mut input, r, keep);
                }
                Err(e) => cap.input_error(e),
            }
            cap.inputs.push(input);
        }
        cap.rank();
        cap
    }

    /// A capture of readers already open (each is kept open: in-memory inputs cannot be
    /// opened again), with the errors met opening others.
    pub fn from_readers(
        readers: Vec<FileReader>,
        errors: Vec<InputError>,
        limits: &Limits,
    ) -> Capture {
        let mut cap = Self::empty(limits, Arc::new(LiveCtl::default()));
        cap.errors = errors;
        for r in readers {
            let mut input = Input {
                path: r.name().to_string(),
                name: r.name().to_string(),
                first_ts: None,
                kept: None,
                kept_secrets: Vec::new(),
            };
            cap.pre_pass(&mut input, r, true);
            cap.inputs.push(input);
        }
        cap.rank();
        cap
    }

    fn empty(limits: &Limits, ctl: Arc<LiveCtl>) -> Capture {
        Capture {
            inputs: Vec::new(),
            order: Vec::new(),
            next_open: 0,
            open: Vec::new(),
            n_open: 0,
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            head_secrets: Vec::new(),
            pending_secrets: Vec::new(),
            waiting: None,
            next_number: 1,
            errors: Vec::new(),
            limits: limits.clone(),
            batch_packets: limits.batch_packets.max(1),
            batch_bytes: limits.batch_bytes.max(1),
            batch_chunk_bytes: 0,
            max_batch_chunk_bytes: 4 * limits.batch_bytes.max(limits.chunk_bytes),
            filter: None,
            per_file: false,
            ctl,
            stopped: false,
            bytes_closed: 0,
            packets_read: 0,
            packets_filtered: 0,
            cut_by_stop: Vec::new(),
        }
    }

    /// Reads the first record of `r` into `input`; keeps `r` open if `keep`.
    fn pre_pass(&mut self, input: &mut Input, mut r: FileReader, keep: bool) {
        let first = loop {
            match r.next_record() {
                Err(e) if e.is_would_block() => continue,
                x => break x,
            }
        };
        match first {
            Ok(Some(rec)) => {
                input.first_ts = Some(rec.ts_ns);
                if keep {
                    // (An input opened again reads its secrets again.)
                    r.take_secrets(&mut input.kept_secrets);
                    input.kept = Some((r, rec));
                }
            }
            Ok(None) => self.bytes_closed += r.offset(),
            Err(e) => {
                self.bytes_closed += r.offset();
                self.input_error(e);
            }
        }
    }

    /// The merge order: by first timestamp, then by path (never by argument position).
    fn rank(&mut self) {
        let mut order: Vec<u32> = (0..self.inputs.len() as u32)
            .filter(|&i| self.inputs[i as usize].first_ts.is_some())
            .collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.inputs[a as usize], &self.inputs[b as usize]);
            (a.first_ts, &a.path).cmp(&(b.first_ts, &b.path))
        });
        self.order = order;
    }

    /// Keeps only packets for which `f(linktype, data, origlen)` is true
    /// (frames keep their numbers in the unfiltered capture).
    pub fn set_filter(&mut self, f: PacketFilter) {
        self.filter = Some(f);
    }

    /// Fills [`Batch::origins`]: each packet's input and number in that input.
    pub fn set_per_file(&mut self, on: bool) {
        self.per_file = on;
    }

    /// Whether [`Batch::origins`] are filled.
    pub fn per_file(&self) -> bool {
        self.per_file
    }

    /// The inputs as given (paths; `-` for stdin), indexed by [`Origin::input`].
    pub fn input_paths(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|i| i.path.as_str())
    }

    /// Errors met so far (files that could not be read to their end).
    pub fn take_errors(&mut self) -> Vec<InputError> {
        std::mem::take(&mut self.errors)
    }

    /// Whether a stop request ended the capture.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether an input is live (stdin or a FIFO that is not a regular file).
    pub fn is_live(&self) -> bool {
        self.inputs
            .iter()
            .filter_map(|i| i.kept.as_ref())
            .any(|(r, _)| r.is_live())
            || self.open.iter().flatten().any(|o| o.reader.is_live())
    }

    /// An error of an input; a truncation after a stop request is the stop's doing.
    fn input_error(&mut self, e: InputError) {
        if self.ctl.stop.is_requested() && e.is_truncation() {
            self.cut_by_stop.push(e.path);
        } else {
            self.errors.push(e);
        }
    }

    /// Read chunk size for each of `n_open` inputs open at once.
    fn chunk_for(&self, n_open: usize) -> usize {
        let share = INPUT_BUFFER_BYTES / (n_open.max(1) * (BATCHES_IN_FLIGHT + 1));
        share.clamp(MIN_CHUNK, self.limits.chunk_bytes.max(MIN_CHUNK))
    }

    /// Opens the next input in merge order and puts its first record in the heap.
    fn open_next(&mut self) {
        let input = self.order[self.next_open];
        let rank = self.next_open as u32;
        self.next_open += 1;
        let chunk = self.chunk_for(self.n_open + 1);
        let inp = &mut self.inputs[input as usize];
        let mut secrets = std::mem::take(&mut inp.kept_secrets);
        let (reader, first) = match inp.kept.take() {
            Some(k) => k,
            None => {
                let opened = source::open(&inp.path, &self.ctl)
                    .map_err(|e| InputError::new(&inp.name, 0, InputErrorKind::Open(e)))
                    .and_then(|src| {
                        FileReader::from_source(inp.name.clone(), src, chunk, &self.limits)
                    });
                let mut r = match opened {
                    Ok(r) => r,
                    Err(e) => return self.input_error(e),
                };
                match r.next_record() {
                    Ok(Some(rec)) => {
                        r.take_secrets(&mut secrets);
                        (r, rec)
                    }
                    Ok(None) => {
                        self.bytes_closed += r.offset();
                        return;
                    }
                    Err(e) => {
                        self.bytes_closed += r.offset();
                        return self.input_error(e);
                    }
                }
            }
        };
        let slot = match self.open.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.open.push(None);
                self.heads.push(None);
                self.head_secrets.push(Vec::new());
                self.open.len() - 1
            }
        };
        self.head_secrets[slot] = secrets;
        self.open[slot] = Some(Open {
            input,
            rank,
            reader,
            numbered: 0,
            batch_chunk: None,
        });
        self.n_open += 1;
        self.resize_chunks();
        self.heads[slot] = Some(first);
        self.heap.push(Reverse((first.ts_ns, rank, slot as u32)));
    }

    /// Closes the input in `slot` (its end, an error, or a stop).
    fn close(&mut self, slot: usize) {
        if let Some(o) = self.open[slot].take() {
            self.bytes_closed += o.reader.offset();
            self.n_open -= 1;
            self.resize_chunks();
        }
        self.heads[slot] = None;
        if self.waiting == Some(slot as u32) {
            self.waiting = None;
        }
    }

    /// Shares the read buffers among the open inputs.
    fn resize_chunks(&mut self) {
        let chunk = self.chunk_for(self.n_open);
        for o in self.open.iter_mut().flatten() {
            o.reader.set_chunk_bytes(chunk);
        }
    }

    /// Reads the next record of `slot` into the heap. False if the input has nothing yet
    /// (a live input waiting for its writer).
    fn advance(&mut self, slot: usize) -> bool {
        let Some(o) = self.open[slot].as_mut() else {
            return true;
        };
        match o.reader.next_record() {
            Ok(Some(r)) => {
                let rank = o.rank;
                if o.reader.has_secrets() {
                    o.reader.take_secrets(&mut self.head_secrets[slot]);
                }
                self.heads[slot] = Some(r);
                self.heap.push(Reverse((r.ts_ns, rank, slot as u32)));
                true
            }
            Ok(None) => {
                // Secrets after the input's last packet: for the next batch.
                o.reader.take_secrets(&mut self.pending_secrets);
                self.close(slot);
                true
            }
            Err(e) if e.is_would_block() => {
                self.waiting = Some(slot as u32);
                false
            }
            Err(e) => {
                self.close(slot);
                self.input_error(e);
                true
            }
        }
    }

    /// Acts on a stop request: regular files end here; live inputs are read until their
    /// end or the drain deadline (their reads return the end then).
    fn on_stop(&mut self) {
        self.stopped = true;
        for slot in 0..self.open.len() {
            if self.open[slot]
                .as_ref()
                .is_some_and(|o| !o.reader.is_live())
            {
                self.close(slot);
            }
        }
        self.heap
            .retain(|Reverse((_, _, s))| self.heads[*s as usize].is_some());
        // Inputs not opened yet: live ones are already open (drain them), files are skipped.
        let pending: Vec<u32> = self.order[self.next_open..].to_vec();
        self.order.truncate(self.next_open);
        for i in pending {
            if self.inputs[i as usize]
                .kept
                .as_ref()
                .is_some_and(|(r, _)| r.is_live())
            {
                self.order.push(i);
            }
        }
    }

    /// Appends up to one batch of packets to `batch` (which the caller has cleared): the
    /// packets the filter selected.
    pub fn fill(&mut self, batch: &mut Batch) -> Fill {
        let mut packets = std::mem::take(&mut batch.packets);
        let fill = self.fill_with(batch, |p, _| {
            if !p.filtered_out {
                packets.push(*p)
            }
        });
        batch.packets = packets;
        fill
    }

    /// Reads up to one batch into `batch`'s chunks and hands each packet to `each` as soon
    /// as it is read, while its bytes are still in the cache: `each(&packet, captured
    /// bytes)`; packets the filter did not select come with `filtered_out` set.
    /// `batch.packets` is left alone (the caller keeps what it needs). On a live input,
    /// the batch is handed on when a read would wait past about 100 ms.
    pub fn fill_with(&mut self, batch: &mut Batch, mut each: impl FnMut(&Packet, &[u8])) -> Fill {
        // Chunks are only valid for one batch: forget which index each input's chunk had.
        for o in self.open.iter_mut().flatten() {
            o.batch_chunk = None;
        }
        batch.first_number = self.next_number;
        batch.origins.clear();
        batch.secrets.append(&mut self.pending_secrets);
        self.batch_chunk_bytes = 0;
        if self.ctl.stop.is_requested() && !self.stopped {
            self.on_stop();
        }
        self.ctl.batch_started();
        let fill = self.fill_inner(batch, &mut each);
        self.ctl.no_batch();
        fill
    }

    #[inline(always)]
    fn fill_inner(&mut self, batch: &mut Batch, each: &mut impl FnMut(&Packet, &[u8])) -> Fill {
        if let Some(slot) = self.waiting.take() {
            if !self.advance(slot as usize) {
                return Fill::More;
            }
        }
        // Packets handed on (those the filter did not select too: they reach the flow
        // table) and their captured bytes.
        let (mut kept, mut bytes) = (0usize, 0usize);
        while kept < self.batch_packets
            && bytes < self.batch_bytes
            && self.batch_chunk_bytes < self.max_batch_chunk_bytes
        {
            // Open the inputs whose first packet comes before the earliest record at hand.
            while self.next_open < self.order.len()
                && self.heap.peek().is_none_or(|Reverse((ts, _, _))| {
                    self.inputs[self.order[self.next_open] as usize].first_ts <= Some(*ts)
                })
            {
                self.open_next();
            }
            let Some(Reverse(entry)) = self.heap.pop() else {
                return if self.pending_secrets.is_empty() {
                    Fill::End
                } else {
                    // Secrets after the last packet: a batch of their own.
                    Fill::More
                };
            };
            let slot = entry.2 as usize;
            if !self.head_secrets[slot].is_empty() {
                // Secrets before this packet: they serve it and what follows, so they
                // start a batch.
                if kept > 0 {
                    self.heap.push(Reverse(entry));
                    return Fill::More;
                }
                batch.secrets.append(&mut self.head_secrets[slot]);
            }
            if self.n_open == 1 && self.next_open == self.order.len() {
                // One input left: no merge, records go straight from the reader.
                return self.fill_one(slot, batch, kept, bytes, each);
            }
            let rec = self.heads[slot]
                .take()
                .expect("a head for every heap entry");
            bytes += rec.caplen as usize;
            self.push(slot, rec, batch, each);
            kept += 1;
            if !self.advance(slot) {
                return Fill::More;
            }
        }
        Fill::More
    }

    /// The rest of a batch from the only input left, in `slot`.
    #[inline(always)]
    fn fill_one(
        &mut self,
        slot: usize,
        batch: &mut Batch,
        mut kept: usize,
        mut bytes: usize,
        each: &mut impl FnMut(&Packet, &[u8]),
    ) -> Fill {
        let mut rec = self.heads[slot].take().expect("a head for the heap entry");
        loop {
            bytes += rec.caplen as usize;
            self.push(slot, rec, batch, each);
            kept += 1;
            let o = self.open[slot].as_mut().expect("open input");
            let next = o.reader.next_record();
            match next {
                Ok(Some(r))
                    if kept < self.batch_packets
                        && bytes < self.batch_bytes
                        && self.batch_chunk_bytes < self.max_batch_chunk_bytes
                        && !o.reader.has_secrets() =>
                {
                    rec = r
                }
                Ok(Some(r)) => {
                    // The batch is full, or secrets come before `r` (they start the next).
                    let rank = o.rank;
                    if o.reader.has_secrets() {
                        o.reader.take_secrets(&mut self.head_secrets[slot]);
                    }
                    self.heads[slot] = Some(r);
                    self.heap.push(Reverse((r.ts_ns, rank, slot as u32)));
                    return Fill::More;
                }
                Ok(None) => {
                    // Secrets after the last packet: a batch of their own.
                    o.reader.take_secrets(&mut self.pending_secrets);
                    self.close(slot);
                    return if self.pending_secrets.is_empty() {
                        Fill::End
                    } else {
                        Fill::More
                    };
                }
                Err(e) if e.is_would_block() => {
                    self.waiting = Some(slot as u32);
                    return Fill::More;
                }
                Err(e) => {
                    self.close(slot);
                    self.input_error(e);
                    return Fill::End;
                }
            }
        }
    }

    /// Numbers a record of the input in `slot`, filters it (one the filter does not select
    /// is handed on marked), and hands it on.
    #[inline(always)]
    fn push(
        &mut self,
        slot: usize,
        rec: RawRecord,
        batch: &mut Batch,
        each: &mut impl FnMut(&Packet, &[u8]),
    ) {
        let o = self.open[slot].as_mut().expect("open input");
        let r = &o.reader;
        let chunk = match o.batch_chunk {
            Some((id, idx)) if id == r.chunk_id => idx,
            _ => {
                self.batch_chunk_bytes += r.buf.len();
                batch.chunks.push(Arc::clone(&r.buf));
                let idx = (batch.chunks.len() - 1) as u32;
                o.batch_chunk = Some((r.chunk_id, idx));
                idx
            }
        };
        o.numbered += 1;
        if self.per_file {
            batch.origins.push(Origin {
                input: o.input,
                number: o.numbered,
            });
        }
        let number = self.next_number;
        self.next_number += 1;
        self.packets_read += 1;
        let data = &r.buf[rec.off..rec.off + rec.caplen as usize];
        let filtered_out = match &mut self.filter {
            Some(f) => !f(rec.linktype, data, rec.origlen),
            None => false,
        };
        self.packets_filtered += filtered_out as u64;
        let packet = Packet {
            number,
            ts_ns: rec.ts_ns,
            linktype: rec.linktype,
            chunk,
            off: rec.off as u32,
            caplen: rec.caplen,
            origlen: rec.origlen,
            filtered_out,
        };
        each(&packet, data);
    }

    /// The number the next packet read will have (the next batch's `first_number`).
    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// The most packets a batch holds (`Limits::batch_packets`).
    pub fn batch_packets(&self) -> usize {
        self.batch_packets
    }

    /// Bytes read from all inputs so far (decompressed bytes for gzip inputs).
    pub fn bytes_read(&self) -> u64 {
        let open: u64 = self.open.iter().flatten().map(|o| o.reader.offset()).sum();
        let kept: u64 = self
            .inputs
            .iter()
            .filter_map(|i| i.kept.as_ref())
            .map(|(r, _)| r.offset())
            .sum();
        self.bytes_closed + open + kept
    }

    /// Number of inputs given.
    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Inputs open at this moment (for tests of the lazy opening).
    pub fn n_open(&self) -> usize {
        self.n_open
    }
}

#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod tests;
