//! The parallel streaming pipeline.
//!
//! ```text
//! reader thread: files -> chunks -> Batch (bounded queue of 2)
//! per batch:     decode in parallel (pieces of the batch) -> segments bucketed by shard
//!                shards in parallel, each in capture order -> flow tables, sessions
//!                batch boundary (sequential, deterministic): tcp_stream numbers, expiry,
//!                eviction, records written in first-packet order up to the watermark
//! ```
//!
//! Every decision that changes output is made either inside one connection (which one
//! shard owns) or at a batch boundary from data that does not depend on the shard count,
//! so the report is byte-identical for every `--threads`.

use std::io;
use std::sync::mpsc;

use rayon::prelude::*;

use crate::capture::{Batch, Capture, Fill};
use crate::config::Limits;
use crate::decode::{decode, TcpSegment};
use crate::error::InputError;
use crate::flow::Shard;
use crate::record::SessionRecord;
use crate::reorder::Reorder;
use crate::stats::Stats;

/// How to run the analysis.
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads (and shards); 1 runs everything on the calling thread.
    pub threads: usize,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
        }
    }
}

/// What the analysis read, and the inputs that could not be read to their end.
#[derive(Debug, Default)]
pub struct Summary {
    pub stats: Stats,
    pub errors: Vec<InputError>,
}

/// A decoded segment and the packet it came from.
#[derive(Clone, Copy)]
struct Item {
    packet: u32,
    hash: u64,
    seg: TcpSegment,
}

/// One slice of a batch, decoded by one task, with its segments bucketed by shard.
#[derive(Default)]
struct Piece {
    start: usize,
    end: usize,
    buckets: Vec<Vec<Item>>,
    stats: Stats,
}

/// Packets per decode task.
const PIECE: usize = 1024;

struct Engine {
    shards: Vec<Shard>,
    pending: Reorder,
    next_stream: u64,
    now: i64,
    max_connections: usize,
    stats: Stats,
    /// Piece buffers kept for reuse.
    spare: Vec<Vec<Piece>>,
}

/// A batch whose packets are decoded and bucketed by shard, waiting for the shards.
struct Decoded {
    batch: Batch,
    pieces: Vec<Piece>,
}

/// Decodes `batch` into `pieces` (in parallel when `parallel`).
fn decode_batch(batch: &Batch, pieces: &mut Vec<Piece>, n_shards: usize, parallel: bool) {
    let n = batch.packets.len();
    let n_pieces = n.div_ceil(PIECE);
    pieces.resize_with(n_pieces, Piece::default);
    for (i, p) in pieces.iter_mut().enumerate() {
        p.start = i * PIECE;
        p.end = ((i + 1) * PIECE).min(n);
        p.buckets.resize_with(n_shards, Vec::new);
    }
    let decode_piece = |p: &mut Piece| {
        for b in &mut p.buckets {
            b.clear();
        }
        for i in p.start..p.end {
            let pkt = &batch.packets[i];
            match decode(pkt.linktype, batch.data(pkt)) {
                Ok(seg) => {
                    // Hashed here, on the reader thread: the shards reuse it for lookups.
                    let hash = seg.key.shard_hash();
                    let s = if n_shards == 1 {
                        0
                    } else {
                        ((hash >> 32) % n_shards as u64) as usize
                    };
                    p.buckets[s].push(Item {
                        packet: i as u32,
                        hash,
                        seg,
                    });
                }
                Err(skip) => p.stats.skip(skip),
            }
        }
    };
    if parallel {
        pieces.par_iter_mut().for_each(decode_piece);
    } else {
        pieces.iter_mut().for_each(decode_piece);
    }
}

/// Runs every shard over a decoded batch: each shard takes its own segments, in order.
fn run_shards(shards: &mut [Shard], d: &Decoded, parallel: bool) {
    // Distances (in segments) of the two prefetch stages: the flow cache line first,
    // then the connection and the payload once the cache line is there.
    const FAR: usize = 16;
    const NEAR: usize = 8;
    let run = |(s, shard): (usize, &mut Shard)| {
        for p in &d.pieces {
            let items = &p.buckets[s];
            for (i, it) in items.iter().enumerate() {
                if let Some(f) = items.get(i + FAR) {
                    shard.prefetch_cache(f.hash);
                }
                if let Some(n) = items.get(i + NEAR) {
                    shard.prefetch_conn(&n.seg.key, n.hash);
                    let pkt = &d.batch.packets[n.packet as usize];
                    let data = d.batch.data(pkt);
                    if let Some(b) = data.get(n.seg.payload_off as usize) {
                        crate::flow::prefetch(b);
                    }
                }
                let pkt = &d.batch.packets[it.packet as usize];
                let data = d.batch.data(pkt);
                let off = it.seg.payload_off as usize;
                let payload = &data[off..off + it.seg.payload_len as usize];
                shard.segment(&it.seg, it.hash, payload, pkt.frame, pkt.ts_ns);
            }
        }
    };
    if parallel {
        shards.par_iter_mut().enumerate().for_each(run);
    } else {
        shards.iter_mut().enumerate().for_each(run);
    }
}

impl Engine {
    fn new(n_shards: usize, limits: &Limits) -> Self {
        Engine {
            shards: (0..n_shards).map(|_| Shard::new(limits)).collect(),
            pending: Reorder::new(limits.max_pending_bytes),
            next_stream: 0,
            now: i64::MIN,
            max_connections: limits.max_connections,
            stats: Stats::default(),
            spare: Vec::new(),
        }
    }

    /// One step of the pipeline: decodes `next` while the shards run over `prev` (both
    /// in parallel when `parallel`). Returns `next`, decoded.
    fn step(
        &mut self,
        prev: Option<&Decoded>,
        next: Option<Batch>,
        parallel: bool,
    ) -> Option<Decoded> {
        let n_shards = self.shards.len();
        let mut pieces = self.spare.pop().unwrap_or_default();
        let shards = &mut self.shards;
        let decode_next = |pieces: &mut Vec<Piece>| {
            if let Some(b) = &next {
                decode_batch(b, pieces, n_shards, parallel);
            }
        };
        let shard_prev = |shards: &mut [Shard]| {
            if let Some(d) = prev {
                run_shards(shards, d, parallel);
            }
        };
        if parallel {
            rayon::join(|| decode_next(&mut pieces), || shard_prev(shards));
        } else {
            shard_prev(shards);
            decode_next(&mut pieces);
        }
        if let Some(d) = prev {
            if let Some(max_ts) = d.batch.packets.iter().map(|p| p.ts_ns).max() {
                self.now = self.now.max(max_ts);
            }
        }
        next.map(|batch| Decoded { batch, pieces })
    }

    /// Runs the shards over a decoded batch and advances the capture clock.
    fn shards_over(&mut self, d: &Decoded, parallel: bool) {
        run_shards(&mut self.shards, d, parallel);
        if let Some(max_ts) = d.batch.packets.iter().map(|p| p.ts_ns).max() {
            self.now = self.now.max(max_ts);
        }
    }

    /// Adds a processed batch's decode counters to the totals.
    fn take_stats(&mut self, d: &mut Decoded) {
        for p in &mut d.pieces {
            self.stats.add(&p.stats);
            p.stats = Stats::default();
        }
    }

    /// Takes back a processed batch's buffers; returns the batch for reuse.
    fn recycle(&mut self, mut d: Decoded) -> Batch {
        self.take_stats(&mut d);
        self.spare.push(d.pieces);
        d.batch
    }

    /// Batch boundary: everything here is decided from shard-independent data.
    fn boundary(&mut self, out: &mut dyn FnMut(SessionRecord) -> io::Result<()>) -> io::Result<()> {
        // tcp.stream: connections are numbered in the order of their first packet.
        let mut firsts: Vec<u64> = self
            .shards
            .iter()
            .flat_map(|s| s.new_conns.iter().map(|r| r.first_frame))
            .collect();
        firsts.sort_unstable();
        let base = self.next_stream;
        for s in &mut self.shards {
            s.assign_streams(|f| base + firsts.binary_search(&f).expect("new connection") as u64);
        }
        self.next_stream += firsts.len() as u64;

        let now = self.now;
        for s in &mut self.shards {
            s.expire(now);
        }
        let live: usize = self.shards.iter().map(Shard::len).sum();
        if live > self.max_connections {
            // Evict the longest-idle tenth, chosen over all shards at once.
            let mut all: Vec<(i64, u64, usize, crate::flow::ConnRef)> = self
                .shards
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.idle_order().map(move |(t, r)| (t, r.first_frame, i, r)))
                .collect();
            all.sort_unstable_by_key(|&(t, f, _, _)| (t, f));
            let n_evict = live - self.max_connections + self.max_connections / 10;
            for &(_, _, i, r) in all.iter().take(n_evict) {
                self.shards[i].evict(r);
            }
        }
        self.emit(out)
    }

    /// Writes finished records whose first frame is before every possible later record.
    fn emit(&mut self, out: &mut dyn FnMut(SessionRecord) -> io::Result<()>) -> io::Result<()> {
        let mut watermark = u64::MAX;
        for s in &mut self.shards {
            for r in s.done.drain(..) {
                self.pending.push(r)?;
            }
            watermark = watermark.min(s.watermark());
        }
        self.pending.emit_below(watermark, out)
    }

    fn finish(&mut self, out: &mut dyn FnMut(SessionRecord) -> io::Result<()>) -> io::Result<()> {
        for s in &mut self.shards {
            s.finish();
            self.stats.add(&s.stats);
        }
        self.emit(out)
    }
}

/// Runs the analysis over `capture`, handing each session record to `out` in the order of
/// the connections' first packets.
pub fn analyze(
    mut capture: Capture,
    opts: &Options,
    out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
) -> io::Result<Summary> {
    let threads = opts.threads.max(1);
    // More shards than threads keeps the threads busy when connections are uneven; the
    // report does not depend on the number.
    let n_shards = if threads <= 2 { 1 } else { (threads - 1) * 4 };
    let mut engine = Engine::new(n_shards, &opts.limits);
    let files = capture.n_inputs() as u64;
    if threads == 1 {
        let mut spare = Batch::default();
        let mut prev: Option<Decoded> = None;
        loop {
            let mut batch = std::mem::take(&mut spare);
            batch.clear();
            let fill = capture.fill(&mut batch);
            let next = engine.step(prev.as_ref(), Some(batch), false);
            if let Some(d) = prev.take() {
                engine.boundary(out)?;
                spare = engine.recycle(d);
            }
            prev = next;
            if let Fill::End = fill {
                break;
            }
        }
        if let Some(d) = prev.take() {
            engine.step(Some(&d), None, false);
            engine.boundary(out)?;
            engine.recycle(d);
        }
    } else {
        // The reader thread reads, frames and decodes each batch while its bytes are hot in
        // that core's cache; the shards run on the other threads (a pool of threads - 1).
        let pool = if threads > 2 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads - 1)
                    .build()
                    .map_err(io::Error::other)?,
            )
        } else {
            None
        };
        capture = std::thread::scope(|scope| -> io::Result<Capture> {
            let (tx, rx) = mpsc::sync_channel::<Decoded>(2);
            let (back_tx, back_rx) = mpsc::channel::<Decoded>();
            let reader = std::thread::Builder::new()
                .name("wsclose-reader".into())
                .spawn_scoped(scope, move || {
                    loop {
                        let (mut batch, mut pieces) = match back_rx.try_recv() {
                            Ok(d) => (d.batch, d.pieces),
                            Err(_) => (Batch::default(), Vec::new()),
                        };
                        batch.clear();
                        let fill = capture.fill(&mut batch);
                        decode_batch(&batch, &mut pieces, n_shards, false);
                        if tx.send(Decoded { batch, pieces }).is_err() {
                            break;
                        }
                        if let Fill::End = fill {
                            break;
                        }
                    }
                    capture
                })?;
            let mut result = Ok(());
            for d in rx.iter() {
                match &pool {
                    Some(p) => p.install(|| engine.shards_over(&d, true)),
                    None => engine.shards_over(&d, false),
                }
                result = engine.boundary(out);
                let mut d = d;
                engine.take_stats(&mut d);
                let _ = back_tx.send(d);
                if result.is_err() {
                    break;
                }
            }
            // Unblocks the reader if we stopped early.
            drop(rx);
            let capture = reader.join().expect("reader thread");
            result.map(|_| capture)
        })?;
    }
    engine.finish(out)?;
    let mut stats = engine.stats;
    stats.packets = capture.packets_read;
    stats.filtered = capture.packets_filtered;
    stats.bytes = capture.bytes_read();
    stats.files = files;
    Ok(Summary {
        stats,
        errors: capture.take_errors(),
    })
}
