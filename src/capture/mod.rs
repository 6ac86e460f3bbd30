//! Capture reading: pcap and pcapng files (or stdin), framed in place in large reusable
//! chunks, several files merged by timestamp into one capture.
//!
//! Records are never copied one by one: a chunk of the file is read once, records are
//! located inside it, and a [`Batch`] holds shared references to the chunks its packets
//! live in. Only the unfinished record at the end of a chunk is moved to the next one.

mod pcapng;

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use crate::config::Limits;
use crate::error::{InputError, InputErrorKind};

pub use self::pcapng::Interface;

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
    /// Decryption Secrets Blocks read before the batch's first packet (a batch ends before
    /// a block that follows its packets, so that secrets apply exactly from where they
    /// are in the capture; at the end of the capture, also those after the last packet).
    pub secrets: Vec<DecryptionSecrets>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.packets.clear();
        self.secrets.clear();
    }

    /// The captured bytes of `p`.
    #[inline]
    pub fn data(&self, p: &Packet) -> &[u8] {
        let c = &self.chunks[p.chunk as usize];
        &c[p.off as usize..p.off as usize + p.caplen as usize]
    }
}

/// One packet located in the reader's current chunk.
#[derive(Clone, Copy, Debug)]
struct RawRecord {
    ts_ns: i64,
    linktype: u16,
    off: usize,
    caplen: u32,
    origlen: u32,
}

enum Format {
    /// Classic pcap: byte order, nanosecond timestamps, link type, record header size.
    Pcap {
        big_endian: bool,
        nanos: bool,
        linktype: u16,
        rec_hdr: usize,
    },
    Pcapng(pcapng::Section),
}

/// Reads one capture file (or stdin) record by record out of reusable chunks.
pub struct FileReader {
    name: String,
    src: Box<dyn Read + Send>,
    buf: Arc<Vec<u8>>,
    /// Bytes of `buf` that hold file data.
    filled: usize,
    /// Parse position in `buf`.
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// Increases each time `buf` is replaced, so batches know when to take the new chunk.
    chunk_id: u64,
    format: Format,
    pool: Vec<Arc<Vec<u8>>>,
    chunk_bytes: usize,
    max_record: usize,
    /// Decryption Secrets Blocks were read and not taken yet (see `take_secrets`).
    got_secrets: bool,
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;

impl FileReader {
    /// Opens `path` (`-` is stdin) and reads its file header.
    pub fn open(path: &str, limits: &Limits) -> Result<FileReader, InputError> {
        let src: Box<dyn Read + Send> = if path == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| InputError::new(path, 0, InputErrorKind::Io(e)))?)
        };
        let name = if path == "-" {
            "<stdin>".to_string()
        } else {
            path.to_string()
        };
        Self::from_reader(name, src, limits)
    }

    /// Reads a capture from any byte source; `name` is used in error messages.
    pub fn from_reader(
        name: String,
        src: Box<dyn Read + Send>,
        limits: &Limits,
    ) -> Result<FileReader, InputError> {
        let mut r = FileReader {
            name,
            src,
            buf: Arc::new(Vec::new()),
            filled: 0,
            pos: 0,
            base: 0,
            eof: false,
            chunk_id: 0,
            format: Format::Pcapng(pcapng::Section::default()),
            pool: Vec::new(),
            chunk_bytes: limits.chunk_bytes.max(64 * 1024),
            max_record: limits.max_record_bytes,
            got_secrets: false,
        };
        if !r.ensure(4)? {
            let avail = r.filled - r.pos;
            let mut magic = [0u8; 4];
            magic[..avail].copy_from_slice(&r.buf[r.pos..r.filled]);
            if avail == 0 {
                return Err(r.err(InputErrorKind::Truncated {
                    what: "file header",
                    needed: 4,
                    available: 0,
                }));
            }
            return Err(r.err(InputErrorKind::NotACapture { magic }));
        }
        let m = &r.buf[r.pos..r.pos + 4];
        let magic = [m[0], m[1], m[2], m[3]];
        let le = u32::from_le_bytes(magic);
        if le == PCAPNG_SHB {
            // The first block must be a Section Header Block; the reader loop handles it.
            return Ok(r);
        }
        let (big_endian, nanos, modified) = match le {
            0xa1b2_c3d4 => (false, false, false),
            0xa1b2_3c4d => (false, true, false),
            0xa1b2_cd34 => (false, false, true),
            0xd4c3_b2a1 => (true, false, false),
            0x4d3c_b2a1 => (true, true, false),
            0x34cd_b2a1 => (true, false, true),
            _ => return Err(r.err(InputErrorKind::NotACapture { magic })),
        };
        if !r.ensure(24)? {
            return Err(r.err(InputErrorKind::Truncated {
                what: "pcap file header",
                needed: 24,
                available: r.filled - r.pos,
            }));
        }
        let hdr = &r.buf[r.pos..r.pos + 24];
        let network = if big_endian {
            u32::from_be_bytes([hdr[20], hdr[21], hdr[22], hdr[23]])
        } else {
            u32::from_le_bytes([hdr[20], hdr[21], hdr[22], hdr[23]])
        };
        // Bits 16-31 of the link type field carry FCS information (pcap file format, §"LinkType").
        let linktype = (network & 0xffff) as u16;
        r.pos += 24;
        r.format = Format::Pcap {
            big_endian,
            nanos,
            linktype,
            rec_hdr: if modified { 24 } else { 16 },
        };
        Ok(r)
    }

    /// Display name of the input.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether Decryption Secrets Blocks were read that were not taken yet.
    #[inline(always)]
    fn has_secrets(&self) -> bool {
        self.got_secrets
    }

    /// Moves the Decryption Secrets Blocks read so far to `out`.
    fn take_secrets(&mut self, out: &mut Vec<DecryptionSecrets>) {
        self.got_secrets = false;
        if let Format::Pcapng(s) = &mut self.format {
            s.got_secrets = false;
            for (secrets_type, data, after_packets) in s.secrets.drain(..) {
                out.push(DecryptionSecrets {
                    file: self.name.clone(),
                    secrets_type,
                    data,
                    after_packets,
                });
            }
        }
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn err(&self, kind: InputErrorKind) -> InputError {
        InputError::new(&self.name, self.offset(), kind)
    }

    /// Makes `n` bytes from `pos` available in `buf`. Returns false at end of file
    /// with fewer bytes present.
    fn ensure(&mut self, n: usize) -> Result<bool, InputError> {
        if self.filled - self.pos >= n {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        // Start a new chunk holding the unread tail of the current one.
        let want = self.chunk_bytes.max(n);
        let mut next = match self.pool.iter().position(|c| Arc::strong_count(c) == 1) {
            Some(i) => self.pool.swap_remove(i),
            None => Arc::new(Vec::new()),
        };
        {
            let v = Arc::get_mut(&mut next).expect("pooled chunk is unshared");
            if v.len() < want {
                v.resize(want, 0);
            }
            let tail = self.filled - self.pos;
            v[..tail].copy_from_slice(&self.buf[self.pos..self.filled]);
            let mut filled = tail;
            while filled < v.len() {
                match self.src.read(&mut v[filled..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(InputError::new(
                            &self.name,
                            self.base + self.filled as u64,
                            InputErrorKind::Io(e),
                        ))
                    }
                }
                if filled >= n && filled >= self.chunk_bytes / 2 {
                    break;
                }
            }
            self.base += self.pos as u64;
            self.filled = filled;
            self.pos = 0;
        }
        let old = std::mem::replace(&mut self.buf, next);
        // Spare chunks cover the batches in flight: each may hold one of this file's.
        if self.pool.len() < crate::config::BATCHES_IN_FLIGHT && !old.is_empty() {
            self.pool.push(old);
        }
        self.chunk_id += 1;
        Ok(self.filled >= n)
    }

    /// The next packet record, or `None` at a clean end of file.
    // Inlined into the batch loop: returned through memory, the record was stored in
    // pieces and reloaded whole, a store-forwarding stall on every packet.
    #[inline(always)]
    fn next_record(&mut self) -> Result<Option<RawRecord>, InputError> {
        loop {
            match &mut self.format {
                Format::Pcap {
                    big_endian,
                    nanos,
                    linktype,
                    rec_hdr,
                } => {
                    let (be, nanos, linktype, rec_hdr) = (*big_endian, *nanos, *linktype, *rec_hdr);
                    if !self.ensure(rec_hdr)? {
                        return self.clean_end("pcap record header", rec_hdr);
                    }
                    let h = &self.buf[self.pos..self.pos + 16];
                    let rd = |i: usize| {
                        let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
                        if be {
                            u32::from_be_bytes(b)
                        } else {
                            u32::from_le_bytes(b)
                        }
                    };
                    let (sec, frac, caplen, origlen) = (rd(0), rd(4), rd(8), rd(12));
                    if caplen as usize > self.max_record {
                        return Err(self.err(InputErrorKind::BadLength {
                            what: "pcap record captured",
                            len: caplen as u64,
                            max: self.max_record as u64,
                        }));
                    }
                    let total = rec_hdr + caplen as usize;
                    if !self.ensure(total)? {
                        return Err(self.err(InputErrorKind::Truncated {
                            what: "pcap record",
                            needed: total,
                            available: self.filled - self.pos,
                        }));
                    }
                    let frac_ns = if nanos {
                        frac as i64
                    } else {
                        frac as i64 * 1_000
                    };
                    let rec = RawRecord {
                        ts_ns: sec as i64 * 1_000_000_000 + frac_ns,
                        linktype,
                        off: self.pos + rec_hdr,
                        caplen,
                        origlen: origlen.max(caplen),
                    };
                    self.pos += total;
                    return Ok(Some(rec));
                }
                Format::Pcapng(_) => {
                    if let Some(rec) = self.next_pcapng_record()? {
                        return Ok(Some(rec));
                    }
                    if self.filled == self.pos && self.eof {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// At a record boundary: `None` if the file ended exactly here, else a truncation error.
    fn clean_end(
        &self,
        what: &'static str,
        needed: usize,
    ) -> Result<Option<RawRecord>, InputError> {
        let available = self.filled - self.pos;
        if available == 0 {
            Ok(None)
        } else {
            Err(self.err(InputErrorKind::Truncated {
                what,
                needed,
                available,
            }))
        }
    }

    /// Reads pcapng blocks until a packet block; `Ok(None)` for a block that is not a packet
    /// or at the end of the file.
    fn next_pcapng_record(&mut self) -> Result<Option<RawRecord>, InputError> {
        if !self.ensure(12)? {
            return self.clean_end("pcapng block header", 12);
        }
        let offset = self.offset();
        let Format::Pcapng(section) = &mut self.format else {
            unreachable!()
        };
        let head = &self.buf[self.pos..self.pos + 12];
        let block_len = match pcapng::block_len(section, head) {
            Ok(n) => n,
            Err(kind) => return Err(InputError::new(&self.name, offset, kind)),
        };
        if block_len > self.max_record as u64 + 64 {
            return Err(self.err(InputErrorKind::BadLength {
                what: "pcapng block",
                len: block_len,
                max: self.max_record as u64 + 64,
            }));
        }
        let block_len = block_len as usize;
        if !self.ensure(block_len)? {
            return Err(self.err(InputErrorKind::Truncated {
                what: "pcapng block",
                needed: block_len,
                available: self.filled - self.pos,
            }));
        }
        let start = self.pos;
        let Format::Pcapng(section) = &mut self.format else {
            unreachable!()
        };
        let block = &self.buf[start..start + block_len];
        let res = section.block(block);
        self.got_secrets |= section.got_secrets;
        self.pos += block_len;
        match res {
            Ok(Some(p)) => Ok(Some(RawRecord {
                ts_ns: p.ts_ns,
                linktype: p.linktype,
                off: start + p.data_off,
                caplen: p.caplen,
                origlen: p.origlen.max(p.caplen),
            })),
            Ok(None) => Ok(None),
            Err(kind) => Err(InputError::new(&self.name, offset, kind)),
        }
    }
}

/// A packet filter: `(linktype, captured bytes, original length) -> keep`.
pub type PacketFilter = Box<dyn FnMut(u16, &[u8], u32) -> bool + Send>;

/// Outcome of filling a batch.
pub enum Fill {
    /// The batch is full; more packets follow.
    More,
    /// Every input has been read to its end (the batch may hold the last packets).
    End,
}

/// One or more capture files read as one capture, merged in timestamp order
/// (ties go to the file named first, as mergecap does).
pub struct Capture {
    readers: Vec<FileReader>,
    /// Next record of each reader, not yet handed out.
    heads: Vec<Option<RawRecord>>,
    /// Readers that reached their end or failed.
    done: Vec<bool>,
    /// Per reader: (chunk_id, index in the current batch's chunks) of its chunk.
    batch_chunk: Vec<Option<(u64, u32)>>,
    /// Per reader: Decryption Secrets Blocks read before its head record.
    head_secrets: Vec<Vec<DecryptionSecrets>>,
    /// Decryption Secrets Blocks for the next batch (they came after this one's packets).
    pending_secrets: Vec<DecryptionSecrets>,
    next_number: u64,
    errors: Vec<InputError>,
    batch_packets: usize,
    batch_bytes: usize,
    filter: Option<PacketFilter>,
    /// Packets read (before any filter).
    pub packets_read: u64,
    /// Packets dropped by the filter.
    pub packets_filtered: u64,
}

impl Capture {
    /// Opens every path; a file that cannot be opened is recorded as an error and skipped.
    pub fn open(paths: &[String], limits: &Limits) -> Capture {
        let mut readers = Vec::new();
        let mut errors = Vec::new();
        for p in paths {
            match FileReader::open(p, limits) {
                Ok(r) => readers.push(r),
                Err(e) => errors.push(e),
            }
        }
        Self::from_readers(readers, errors, limits)
    }

    pub fn from_readers(
        readers: Vec<FileReader>,
        errors: Vec<InputError>,
        limits: &Limits,
    ) -> Capture {
        let n = readers.len();
        Capture {
            readers,
            heads: vec![None; n],
            done: vec![false; n],
            batch_chunk: vec![None; n],
            head_secrets: vec![Vec::new(); n],
            pending_secrets: Vec::new(),
            next_number: 1,
            errors,
            batch_packets: limits.batch_packets.max(1),
            batch_bytes: limits.batch_bytes.max(1),
            filter: None,
            packets_read: 0,
            packets_filtered: 0,
        }
    }

    /// Keeps only packets for which `f(linktype, data, origlen)` is true
    /// (frames keep their numbers in the unfiltered capture).
    pub fn set_filter(&mut self, f: PacketFilter) {
        self.filter = Some(f);
    }

    /// Errors met so far (files that could not be read to their end).
    pub fn take_errors(&mut self) -> Vec<InputError> {
        std::mem::take(&mut self.errors)
    }

    /// Pulls the next record of reader `i` into `heads[i]`; drops the reader on error or end.
    fn refill_head(&mut self, i: usize) {
        if self.heads[i].is_some() || self.done[i] {
            return;
        }
        match self.readers[i].next_record() {
            Ok(Some(r)) => self.heads[i] = Some(r),
            Ok(None) => self.done[i] = true,
            Err(e) => {
                self.errors.push(e);
                self.done[i] = true;
            }
        }
        if self.readers[i].has_secrets() {
            self.readers[i].take_secrets(&mut self.head_secrets[i]);
        }
    }

    /// Appends up to one batch of packets to `batch` (which the caller has cleared).
    pub fn fill(&mut self, batch: &mut Batch) -> Fill {
        let mut packets = std::mem::take(&mut batch.packets);
        let fill = self.fill_with(batch, |p, _| packets.push(*p));
        batch.packets = packets;
        fill
    }

    /// Reads up to one batch into `batch`'s chunks and hands each packet kept to `each` as
    /// soon as it is read, while its bytes are still in the cache: `each(&packet, captured
    /// bytes)`. `batch.packets` is left alone (the caller keeps what it needs).
    pub fn fill_with(&mut self, batch: &mut Batch, mut each: impl FnMut(&Packet, &[u8])) -> Fill {
        // Chunks are only valid for one batch: forget which index each reader's chunk had.
        for c in self.batch_chunk.iter_mut() {
            *c = None;
        }
        batch.secrets.append(&mut self.pending_secrets);
        // Packets kept (the filter may drop some) and their captured bytes.
        let (mut kept, mut bytes) = (0usize, 0usize);
        if self.readers.len() == 1 {
            // One input: no merge, records go straight from the reader into the batch.
            while kept < self.batch_packets && bytes < self.batch_bytes {
                let rec = match self.heads[0].take() {
                    Some(r) => r,
                    None if self.done[0] => return Fill::End,
                    None => match self.readers[0].next_record() {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            self.done[0] = true;
                            if self.readers[0].has_secrets() && kept > 0 {
                                // After the last packet: a batch of their own.
                                self.readers[0].take_secrets(&mut self.pending_secrets);
                                return Fill::More;
                            }
                            self.readers[0].take_secrets(&mut batch.secrets);
                            return Fill::End;
                        }
                        Err(e) => {
                            self.errors.push(e);
                            self.done[0] = true;
                            return Fill::End;
                        }
                    },
                };
                if self.readers[0].has_secrets() {
                    // Secrets before this packet: they apply from the next batch on.
                    if kept > 0 {
                        self.readers[0].take_secrets(&mut self.pending_secrets);
                        self.heads[0] = Some(rec);
                        return Fill::More;
                    }
                    self.readers[0].take_secrets(&mut batch.secrets);
                }
                bytes += rec.caplen as usize;
                kept += self.push(0, rec, batch, &mut each) as usize;
            }
            return Fill::More;
        }
        let n = self.readers.len();
        for i in 0..n {
            self.refill_head(i);
        }
        while kept < self.batch_packets && bytes < self.batch_bytes {
            // The reader whose next record has the earliest timestamp.
            let mut best: Option<usize> = None;
            for i in 0..n {
                if let Some(h) = &self.heads[i] {
                    match best {
                        Some(b) if self.heads[b].as_ref().unwrap().ts_ns <= h.ts_ns => {}
                        _ => best = Some(i),
                    }
                }
            }
            let Some(i) = best else {
                let late = self.head_secrets.iter().any(|s| !s.is_empty()) && kept > 0;
                let to = if late {
                    // After the last packet: a batch of their own.
                    &mut self.pending_secrets
                } else {
                    &mut batch.secrets
                };
                for s in &mut self.head_secrets {
                    to.append(s);
                }
                return if late { Fill::More } else { Fill::End };
            };
            if !self.head_secrets[i].is_empty() {
                // Secrets before this packet: they apply from the next batch on.
                if kept > 0 {
                    self.pending_secrets.append(&mut self.head_secrets[i]);
                    return Fill::More;
                }
                batch.secrets.append(&mut self.head_secrets[i]);
            }
            let rec = self.heads[i].take().unwrap();
            bytes += rec.caplen as usize;
            kept += self.push(i, rec, batch, &mut each) as usize;
            self.refill_head(i);
        }
        Fill::More
    }

    /// Numbers a record of reader `i`, filters it, and hands it on; false if filtered out.
    #[inline(always)]
    fn push(
        &mut self,
        i: usize,
        rec: RawRecord,
        batch: &mut Batch,
        each: &mut impl FnMut(&Packet, &[u8]),
    ) -> bool {
        let r = &self.readers[i];
        let chunk = match self.batch_chunk[i] {
            Some((id, idx)) if id == r.chunk_id => idx,
            _ => {
                batch.chunks.push(Arc::clone(&r.buf));
                let idx = (batch.chunks.len() - 1) as u32;
                self.batch_chunk[i] = Some((r.chunk_id, idx));
                idx
            }
        };
        let number = self.next_number;
        self.next_number += 1;
        self.packets_read += 1;
        if let Some(f) = &mut self.filter {
            let data = &r.buf[rec.off..rec.off + rec.caplen as usize];
            if !f(rec.linktype, data, rec.origlen) {
                self.packets_filtered += 1;
                return false;
            }
        }
        let packet = Packet {
            number,
            ts_ns: rec.ts_ns,
            linktype: rec.linktype,
            chunk,
            off: rec.off as u32,
            caplen: rec.caplen,
            origlen: rec.origlen,
        };
        each(&packet, &r.buf[rec.off..rec.off + rec.caplen as usize]);
        true
    }

    /// Bytes read from all inputs so far.
    pub fn bytes_read(&self) -> u64 {
        self.readers.iter().map(|r| r.offset()).sum()
    }

    /// Number of inputs that were opened.
    pub fn n_inputs(&self) -> usize {
        self.readers.len()
    }
}

#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod tests;
