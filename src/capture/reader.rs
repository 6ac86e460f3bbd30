//! One capture file (or stdin) read record by record out of large reusable chunks: pcap
//! records framed by hand, pcapng blocks through `pcapng.rs`.

use std::io::{self, Read};
use std::sync::Arc;

use super::pcapng;
use super::source::Source;
use crate::config::Limits;
use crate::error::{InputError, InputErrorKind};

/// Smallest read chunk: below it, the system calls cost more than the memory saves.
pub const MIN_CHUNK: usize = 16 * 1024;

/// One packet located in the reader's current chunk.
#[derive(Clone, Copy, Debug)]
pub(super) struct RawRecord {
    pub ts_ns: i64,
    pub linktype: u16,
    pub off: usize,
    pub caplen: u32,
    pub origlen: u32,
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
    pub(super) buf: Arc<Vec<u8>>,
    /// Bytes of `buf` that hold file data.
    filled: usize,
    /// Parse position in `buf`.
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// Increases each time `buf` is replaced, so batches know when to take the new chunk.
    pub(super) chunk_id: u64,
    format: Format,
    pool: Vec<Arc<Vec<u8>>>,
    chunk_bytes: usize,
    max_record: usize,
    /// The bytes come through a gzip decoder (offsets are decompressed offsets).
    gzip: bool,
    /// Not a regular file: it cannot be opened twice, and reads wait for the writer.
    live: bool,
    /// A read error met after bytes that are still to be framed: said once they are.
    failed: Option<InputError>,
    /// About how many bytes the input has (see [`Source::size_hint`]).
    size_hint: Option<u64>,
    /// Decryption Secrets Blocks were read and not taken yet (see `take_secrets`).
    got_secrets: bool,
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;

impl FileReader {
    /// Opens `path` (`-` is stdin) and reads its file header.
    pub fn open(path: &str, limits: &Limits) -> Result<FileReader, InputError> {
        let ctl = Arc::new(super::source::LiveCtl::default());
        let src = super::source::open(path, &ctl)
            .map_err(|e| InputError::new(path, 0, InputErrorKind::Open(e)))?;
        Self::from_source(display_name(path), src, limits.chunk_bytes, limits)
    }

    /// Reads a capture from any byte source; `name` is used in error messages.
    pub fn from_reader(
        name: String,
        src: Box<dyn Read + Send>,
        limits: &Limits,
    ) -> Result<FileReader, InputError> {
        let src = Source {
            read: src,
            live: false,
            gzip: false,
            size_hint: None,
        };
        Self::from_source(name, src, limits.chunk_bytes, limits)
    }

    /// Reads a capture from an opened source with chunks of `chunk_bytes`.
    pub(super) fn from_source(
        name: String,
        src: Source,
        chunk_bytes: usize,
        limits: &Limits,
    ) -> Result<FileReader, InputError> {
        let mut r = FileReader {
            name,
            src: src.read,
            buf: Arc::new(Vec::new()),
            filled: 0,
            pos: 0,
            base: 0,
            eof: false,
            chunk_id: 0,
            format: Format::Pcapng(pcapng::Section::default()),
            pool: Vec::new(),
            chunk_bytes: chunk_bytes.max(MIN_CHUNK),
            max_record: limits.max_record_bytes,
            gzip: src.gzip,
            live: src.live,
            failed: None,
            size_hint: src.size_hint,
            got_secrets: false,
        };
        // The file header is read whole, waiting on a live input if need be.
        let ok = loop {
            match r.ensure(4) {
                Err(e) if e.is_would_block() => continue,
                x => break x?,
            }
        };
        if !ok {
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
        let ok = loop {
            match r.ensure(24) {
                Err(e) if e.is_would_block() => continue,
                x => break x?,
            }
        };
        if !ok {
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

    /// File offset of the next unread byte (in the decompressed data for gzip).
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Not a regular file (stdin, a pipe, a FIFO).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether Decryption Secrets Blocks were read (before the record just returned, or
    /// at the end) that were not taken yet.
    #[inline(always)]
    pub(super) fn has_secrets(&self) -> bool {
        self.got_secrets
    }

    /// Moves the Decryption Secrets Blocks read so far to `out`.
    pub(super) fn take_secrets(&mut self, out: &mut Vec<super::DecryptionSecrets>) {
        self.got_secrets = false;
        if let Format::Pcapng(s) = &mut self.format {
            s.got_secrets = false;
            for (secrets_type, data, after_packets) in s.secrets.drain(..) {
                out.push(super::DecryptionSecrets {
                    file: self.name.clone(),
                    secrets_type,
                    data,
                    after_packets,
                });
            }
        }
    }

    /// Bytes of each chunk read from now on.
    pub(super) fn set_chunk_bytes(&mut self, n: usize) {
        self.chunk_bytes = n.max(MIN_CHUNK);
    }

    fn err(&self, kind: InputErrorKind) -> InputError {
        let mut e = InputError::new(&self.name, self.offset(), kind);
        e.decompressed = self.gzip;
        e
    }

    /// Makes `n` bytes from `pos` available in `buf`. Returns false at end of file
    /// with fewer bytes present. A live input with nothing more to read yet gives a
    /// `WouldBlock` error (see [`InputError::is_would_block`]); what was read is kept.
    #[inline]
    fn ensure(&mut self, n: usize) -> Result<bool, InputError> {
        if self.filled - self.pos >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    #[inline(never)]
    fn refill(&mut self, n: usize) -> Result<bool, InputError> {
        if let Some(e) = self.failed.take() {
            self.eof = true;
            return Err(e);
        }
        if self.eof {
            return Ok(false);
        }
        // Start a new chunk holding the unread tail of the current one; no larger than what
        // is left of a small file (a rotated set of tiny files must not take 2 MiB each).
        let mut want = self.chunk_bytes;
        if let Some(len) = self.size_hint {
            let left = len.saturating_sub(self.base + self.pos as u64);
            want = want.min(left.max(MIN_CHUNK as u64) as usize);
        }
        let want = want.max(n);
        let mut next = match self.pool.iter().position(|c| Arc::strong_count(c) == 1) {
            // A chunk much larger than the chunk size now (more inputs are open) is let go.
            Some(i) if self.pool[i].len() > 2 * want => {
                self.pool.swap_remove(i);
                Arc::new(Vec::new())
            }
            Some(i) => self.pool.swap_remove(i),
            None => Arc::new(Vec::new()),
        };
        let mut failed = None;
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
                        let mut err = InputError::new(
                            &self.name,
                            self.base + self.pos as u64 + filled as u64,
                            InputErrorKind::Io(e),
                        );
                        err.decompressed = self.gzip;
                        failed = Some(err);
                        break;
                    }
                }
                // A live input hands on what it has as soon as the record is there.
                if filled >= n && (self.live || filled >= self.chunk_bytes / 2) {
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
        if let Some(e) = failed {
            if self.filled >= n && !e.is_would_block() {
                // The records before the error are read first.
                self.failed = Some(e);
                return Ok(true);
            }
            return Err(e);
        }
        Ok(self.filled >= n)
    }

    /// The next packet record, or `None` at a clean end of file.
    // Inlined into the batch loop: returned through memory, the record was stored in
    // pieces and reloaded whole, a store-forwarding stall on every packet.
    #[inline(always)]
    pub(super) fn next_record(&mut self) -> Result<Option<RawRecord>, InputError> {
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
            Err(kind) => return Err(self.err(kind)),
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
            Err(kind) => {
                let mut e = InputError::new(&self.name, offset, kind);
                e.decompressed = self.gzip;
                Err(e)
            }
        }
    }
}

/// The name an input goes by in messages: the path as given, `<stdin>` for `-`.
pub fn display_name(path: &str) -> String {
    if path == "-" {
        "<stdin>".to_string()
    } else {
        path.to_string()
    }
}
