//! Spilling to disk. `SpillVec`: items in arrival order, in memory up to a cap, then
//! appended to an unlinked temporary file in a fixed-size binary form; read back in the
//! same order, as many times as the passes need (the summary's rows, the HTML page's marks).
//! `unlinked_temp_file`: the file every spill of the program writes to (also the sorted
//! runs of `reorder` and the timelines of `frames`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new file in the temporary directory, open for reading and writing, already unlinked:
/// its space goes when it is closed, even on a crash. `what` names it while it exists
/// (`wsclose-PID-WHAT-N.tmp`, N unique in the process; a leftover of an earlier process
/// with the same PID is stepped over, never written to).
pub fn unlinked_temp_file(what: &str) -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wsclose-{}-{what}-{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An item with a fixed-size binary form.
pub trait FixedCodec: Sized {
    /// Bytes of the form.
    const ENCODED_LEN: usize;
    /// Appends the form of `self` to `out` (exactly [`ENCODED_LEN`](Self::ENCODED_LEN) bytes).
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads back what `encode` wrote.
    fn decode(b: &[u8]) -> Self;
}

/// Items in memory up to `max_mem`, the rest in an unlinked temporary file.
pub struct SpillVec<T> {
    mem: Vec<T>,
    max_mem: usize,
    file: Option<BufWriter<File>>,
    on_disk: u64,
    buf: Vec<u8>,
}

impl<T: FixedCodec> SpillVec<T> {
    /// A store that keeps at most `max_mem_bytes` of items in memory.
    pub fn new(max_mem_bytes: usize) -> Self {
        SpillVec {
            mem: Vec::new(),
            max_mem: (max_mem_bytes / std::mem::size_of::<T>().max(1)).max(1),
            file: None,
            on_disk: 0,
            buf: Vec::with_capacity(T::ENCODED_LEN),
        }
    }

    pub fn len(&self) -> u64 {
        self.on_disk + self.mem.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items written to the file so far.
    pub fn on_disk(&self) -> u64 {
        self.on_disk
    }

    /// Adds an item at the end.
    pub fn push(&mut self, x: T) -> io::Result<()> {
        self.mem.push(x);
        if self.mem.len() >= self.max_mem {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let f = unlinked_temp_file("spill")?;
            self.file = Some(BufWriter::with_capacity(1 << 16, f));
        }
        let w = self.file.as_mut().expect("opened above");
        for x in self.mem.drain(..) {
            self.buf.clear();
            x.encode(&mut self.buf);
            debug_assert_eq!(self.buf.len(), T::ENCODED_LEN);
            w.write_all(&self.buf)?;
            self.on_disk += 1;
        }
        Ok(())
    }

    /// Every item, in the order pushed.
    pub fn for_each(&mut self, f: &mut dyn FnMut(&T)) -> io::Result<()> {
        if let Some(w) = &mut self.file {
            w.flush()?;
            let mut file = w.get_ref().try_clone()?;
            file.seek(SeekFrom::Start(0))?;
            let mut r = BufReader::with_capacity(1 << 16, file);
            let mut b = vec![0u8; T::ENCODED_LEN];
            for _ in 0..self.on_disk {
                r.read_exact(&mut b)?;
                f(&T::decode(&b));
            }
            // Appends continue at the end.
            w.get_mut().seek(SeekFrom::End(0))?;
        }
        for x in &self.mem {
            f(x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[derive(Debug, PartialEq)]
    struct Pair(u32, u64);

    impl FixedCodec for Pair {
        const ENCODED_LEN: usize = 12;
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_le_bytes());
            out.extend_from_slice(&self.1.to_le_bytes());
        }
        fn decode(b: &[u8]) -> Self {
            Pair(
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                u64::from_le_bytes(b[4..12].try_into().unwrap()),
            )
        }
    }

    #[test]
    fn temp_files_are_unlinked_and_distinct() {
        let mut a = unlinked_temp_file("test").unwrap();
        let mut b = unlinked_temp_file("test").unwrap();
        a.write_all(b"a").unwrap();
        b.write_all(b"bb").unwrap();
        assert_eq!(a.metadata().unwrap().len(), 1);
        assert_eq!(b.metadata().unwrap().len(), 2);
        assert_eq!(a.metadata().unwrap().nlink(), 0, "unlinked");
    }

    /// Items past the cap go to disk and come back in order, pass after pass, with pushes
    /// in between.
    #[test]
    fn items_come_back_in_order_across_the_spill() {
        let mut v = SpillVec::<Pair>::new(3 * std::mem::size_of::<Pair>());
        let mut expect = Vec::new();
        for round in 0..3u32 {
            for i in 0..10u32 {
                let n = round * 10 + i;
                v.push(Pair(n, u64::from(n) << 33)).unwrap();
                expect.push(n);
            }
            let mut got = Vec::new();
            v.for_each(&mut |p| {
                assert_eq!(p.1, u64::from(p.0) << 33);
                got.push(p.0)
            })
            .unwrap();
            assert_eq!(got, expect);
            assert_eq!(v.len(), expect.len() as u64);
        }
        assert!(v.on_disk > 0 && v.mem.len() < 3);
    }
}
