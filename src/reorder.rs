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
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};

use crate::record::codec::{decode, encode};
use crate::record::SessionRecord;

/// A record ordered by its connection's first packet, then by the Upgrade's place on
/// the connection (unique per record).
/// Boxed: the heap then holds pointers, and its growth by doubling costs 8 bytes a slot,
/// not a record.
struct ByFirstPacket(Box<SessionRecord>);

impl PartialEq for ByFirstPacket {
    fn eq(&self, o: &Self) -> bool {
        self.0.order_key() == o.0.order_key()
    }
}
impl Eq for ByFirstPacket {}
impl PartialOrd for ByFirstPacket {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByFirstPacket {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.order_key().cmp(&o.0.order_key())
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
    heap: BinaryHeap<Reverse<ByFirstPacket>>,
    held_bytes: usize,
    max_held_bytes: usize,
    runs: Vec<Run>,
}

impl Reorder {
    pub fn new(max_held_bytes: usize) -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            held_bytes: 0,
            max_held_bytes,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, r: SessionRecord) -> io::Result<()> {
        self.held_bytes += approx_size(&r);
        self.heap.push(Reverse(ByFirstPacket(Box::new(r))));
        if self.held_bytes > self.max_held_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the held records, sorted, to a new run.
    fn spill(&mut self) -> io::Result<()> {
        let file = crate::spill::unlinked_temp_file("run")?;
        let mut w = BufWriter::with_capacity(1 << 16, &file);
        let mut buf = Vec::new();
        while let Some(Reverse(ByFirstPacket(r))) = self.heap.pop() {
            buf.clear();
            encode(&r, &mut buf);
            w.write_all(&buf)?;
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
            let mem = self.heap.peek().map(|Reverse(p)| p.0.order_key());
            let disk = self
                .runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.head.as_ref().map(|h| (h.order_key(), i)))
                .min();
            let take_disk = match (mem, disk) {
                (Some(m), Some((d, _))) => d < m,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if take_disk {
                let (f, i) = disk.unwrap();
                if f.0 >= watermark {
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
                    Some(m) if m.0 < watermark => {
                        let Reverse(ByFirstPacket(r)) = self.heap.pop().unwrap();
                        self.held_bytes = self.held_bytes.saturating_sub(approx_size(&r));
                        out(*r)?;
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
        + 8
        + strings.iter().map(|s| s.capacity()).sum::<usize>()
        + [&r.client_side, &r.server_side]
            .iter()
            .map(|s| s.close.as_ref().map_or(0, |c| c.reason.capacity() + 40))
            .sum::<usize>()
        + r.anomaly_marks.iter().count() * 24
        + r.handshake_headers.request.capacity()
        + r.handshake_headers.response.capacity()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(first_packet: u64) -> SessionRecord {
        SessionRecord {
            first_packet,
            tcp_stream: first_packet * 2,
            ..SessionRecord::example()
        }
    }

    #[test]
    fn spilled_runs_merge_in_order() {
        let mut ro = Reorder::new(1);
        for f in [50, 10, 40, 20, 30, 60] {
            ro.push(rec(f)).unwrap();
        }
        assert!(!ro.runs.is_empty(), "records were spilled");
        let mut got = Vec::new();
        ro.emit_below(45, &mut |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got.iter().map(|r| r.first_packet).collect::<Vec<_>>(),
            [10, 20, 30, 40]
        );
        assert_eq!(
            got[0],
            rec(10),
            "a record read back from a run is the one written"
        );
        ro.emit_below(u64::MAX, &mut |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 6);
        assert_eq!(got[5].first_packet, 60);
    }
}
