//! The parallel streaming pipeline.
//!
//! ```text
//! reader thread: files -> chunks -> records framed -> each packet decoded at once (while
//!                it is in cache) -> segments bucketed by shard (bounded queue of 2 batches)
//! other threads: shards, each over its own segments in capture order -> sessions
//! per batch:     boundary (sequential, deterministic): tcp_stream numbers, expiry,
//!                eviction, recognition window, memory budget, records written in
//!                first-packet order up to the watermark (or as they end, `Order::End`)
//! ```
//!
//! Every decision that changes output is made either inside one connection (which one
//! shard owns) or at a batch boundary from data that does not depend on the shard count,
//! so the report is byte-identical for every `--threads`.
//!
//! Streaming: in first-packet order a record is written as soon as no connection that
//! started before it is or may become a session. A connection stops holding the report
//! back once it is a non-session (its first payload was not an Upgrade request), or
//! when it is the oldest one waited for and has shown no handshake within the
//! recognition window (`Limits::recognise_ns`, `recognise_bytes`). At the end of the
//! input, connections are retired oldest first and each record is written at once.

use std::io;
use std::sync::mpsc;

use rayon::prelude::*;

use crate::capture::{Batch, Capture, Fill, Packet};
use crate::config::Limits;
use crate::decode::{decode, TcpSegment};
use crate::error::InputError;
use crate::flow::Shard;
use crate::record::{At, SessionRecord};
use crate::reorder::Reorder;
use crate::stats::Stats;

/// The order in which records are handed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// The order of the connections' first packets (deterministic; the default).
    #[default]
    FirstPacket,
    /// As sessions end (are retired: closed and quiet for the linger time, evicted, or at
    /// the end of the input); records that end at the same batch boundary in first-packet
    /// order. For live use: a session is not held back by an older one still open.
    End,
}

/// How to run the analysis.
#[derive(Clone, Debug)]
pub struct Options {
    /// Threads in all: 1 runs everything on the calling thread; N > 1 runs a reader thread
    /// (read, frame, decode) and N - 1 threads of shards. The report is the same for all N.
    pub threads: usize,
    pub limits: Limits,
    pub order: Order,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
            order: Order::default(),
        }
    }
}

/// Where records go: each record in report order, and a word after each batch boundary
/// that handed some over (a writer flushes there, so that the rows of a live capture
/// appear as they are found). Any `FnMut(SessionRecord) -> io::Result<()>` is one.
pub trait RecordSink {
    fn record(&mut self, rec: SessionRecord) -> io::Result<()>;

    /// The records handed over so far are all the report has up to this point of the input.
    fn written(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(SessionRecord) -> io::Result<()>> RecordSink for F {
    fn record(&mut self, rec: SessionRecord) -> io::Result<()> {
        self(rec)
    }
}

/// What the analysis read, and the inputs that could not be read to their end.
#[derive(Debug, Default)]
pub struct Summary {
    pub stats: Stats,
    pub errors: Vec<InputError>,
    /// The buffers under the memory budget (`Limits::memory_budget`).
    pub buffered: Buffered,
}

/// What the per-connection buffers held together, at batch boundaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Buffered {
    /// The most they held at a boundary, before the budget was enforced.
    pub peak: usize,
    /// The most they held once it was enforced (at most the budget).
    pub peak_within_budget: usize,
}

/// A decoded segment with what the shards need of its packet, so that they read one
/// sequential stream of items and the payloads, not the packet table.
#[derive(Clone, Copy)]
struct Item {
    hash: u64,
    packet: u64,
    ts_ns: i64,
    /// Chunk of the batch holding the payload; `seg.payload_off` is an offset in it.
    chunk: u32,
    seg: TcpSegment,
}

/// A batch's segments, decoded as they were read, bucketed by shard.
#[derive(Default)]
struct Decoded {
    batch: Batch,
    buckets: Vec<Vec<Item>>,
    stats: Stats,
    max_ts: Option<i64>,
}

impl Decoded {
    fn clear(&mut self, n_shards: usize) {
        self.batch.clear();
        self.buckets.resize_with(n_shards, Vec::new);
        for b in &mut self.buckets {
            b.clear();
        }
        self.max_ts = None;
    }
}

/// Decodes one packet into the buckets of `n_shards` shards.
#[inline]
fn decode_into(
    buckets: &mut [Vec<Item>],
    stats: &mut Stats,
    max_ts: &mut Option<i64>,
    pkt: &Packet,
    data: &[u8],
) {
    *max_ts = Some(max_ts.map_or(pkt.ts_ns, |m| m.max(pkt.ts_ns)));
    match decode(pkt.linktype, data) {
        Ok(mut seg) => {
            // Hashed here, on the reader thread: the shards reuse it for lookups.
            let hash = seg.key.shard_hash();
            let n = buckets.len();
            let s = if n == 1 {
                0
            } else {
                ((hash >> 32) % n as u64) as usize
            };
            seg.payload_off += pkt.off;
            buckets[s].push(Item {
                hash,
                packet: pkt.number,
                ts_ns: pkt.ts_ns,
                chunk: pkt.chunk,
                seg,
            });
        }
        Err(skip) => stats.skip(skip),
    }
}

use crate::config::BATCHES_IN_FLIGHT;

/// Reads the next batch of `capture` into `d`, decoding as it goes.
fn read_batch(capture: &mut Capture, d: &mut Decoded, n_shards: usize) -> Fill {
    d.clear(n_shards);
    let Decoded {
        batch,
        buckets,
        stats,
        max_ts,
    } = d;
    capture.fill_with(batch, |pkt, data| {
        decode_into(buckets, stats, max_ts, pkt, data)
    })
}

/// Runs every shard over a decoded batch: each shard takes its own segments, in order.
fn run_shards(shards: &mut [Shard], d: &Decoded, parallel: bool) {
    // Distances (in segments) of the two prefetch stages: the flow cache line first,
    // then the connection and the payload once the cache line is there.
    const FAR: usize = 16;
    const NEAR: usize = 8;
    let chunks = &d.batch.chunks;
    let run = |(s, shard): (usize, &mut Shard)| {
        let items = &d.buckets[s];
        for (i, it) in items.iter().enumerate() {
            if let Some(f) = items.get(i + FAR) {
                shard.prefetch_cache(f.hash);
            }
            if let Some(n) = items.get(i + NEAR) {
                shard.prefetch_conn(&n.seg.key, n.hash);
                if let Some(b) = chunks[n.chunk as usize].get(n.seg.payload_off as usize) {
                    crate::flow::prefetch(b);
                }
            }
            let off = it.seg.payload_off as usize;
            let payload = &chunks[it.chunk as usize][off..off + it.seg.payload_len as usize];
            let at = At {
                packet: it.packet,
                ts_ns: it.ts_ns,
            };
            shard.segment(&it.seg, it.hash, payload, at);
        }
    };
    if parallel {
        shards.par_iter_mut().enumerate().for_each(run);
    } else {
        shards.iter_mut().enumerate().for_each(run);
    }
}

struct Engine {
    shards: Vec<Shard>,
    pending: Reorder,
    next_stream: u64,
    now: i64,
    max_connections: usize,
    memory_budget: usize,
    order: Order,
    buffered: Buffered,
    stats: Stats,
}

impl Engine {
    fn new(n_shards: usize, opts: &Options) -> Self {
        let limits = &opts.limits;
        Engine {
            shards: (0..n_shards).map(|_| Shard::new(limits)).collect(),
            pending: Reorder::new(limits.max_pending_bytes),
            next_stream: 0,
            now: i64::MIN,
            max_connections: limits.max_connections,
            memory_budget: limits.memory_budget,
            order: opts.order,
            buffered: Buffered::default(),
            stats: Stats::default(),
        }
    }

    /// Runs the shards over a decoded batch and advances the capture clock.
    fn shards_over(&mut self, d: &Decoded, parallel: bool) {
        run_shards(&mut self.shards, d, parallel);
        if let Some(t) = d.max_ts {
            self.now = self.now.max(t);
        }
    }

    /// Adds a processed batch's decode counters to the totals.
    fn take_stats(&mut self, d: &mut Decoded) {
        self.stats.add(&d.stats);
        d.stats = Stats::default();
    }

    /// Batch boundary: everything here is decided from shard-independent data.
    fn boundary(&mut self, out: &mut dyn RecordSink) -> io::Result<()> {
        // tcp.stream: connections are numbered in the order of their first packet.
        let mut firsts: Vec<u64> = self
            .shards
            .iter()
            .flat_map(|s| s.new_conns.iter().map(|r| r.first_packet))
            .collect();
        firsts.sort_unstable();
        // A connection promoted to the full table in its first batch is listed twice.
        firsts.dedup();
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
                .flat_map(|(i, s)| s.idle_order().map(move |(t, r)| (t, r.first_packet, i, r)))
                .collect();
            all.sort_unstable_by_key(|&(t, f, _, _)| (t, f));
            let n_evict = live - self.max_connections + self.max_connections / 10;
            for &(_, _, i, r) in all.iter().take(n_evict) {
                self.shards[i].evict(r);
            }
        }
        self.recognition_window(now);
        self.memory_budget();
        if self.emit(out)? > 0 {
            out.written()?;
        }
        Ok(())
    }

    /// The connection the report waits for (the earliest first packet of a connection
    /// that is or may become a session, over all shards): (first packet, shard, id).
    fn front(&self) -> Option<(u64, usize, crate::flow::ConnId)> {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.front().map(|(f, id)| (f, i, id)))
            .min()
    }

    /// While the connection the report waits for has shown no handshake within the
    /// recognition window, it is given up on (in the global first-packet order, so the
    /// same connections for any number of shards).
    fn recognition_window(&mut self, now: i64) {
        while let Some((first, i, id)) = self.front() {
            if !self.shards[i].give_up_if_unrecognised(first, id, now) {
                break;
            }
        }
    }

    /// Past the budget, connections give up their buffers, oldest first packet first,
    /// until what is held is within it.
    fn memory_budget(&mut self) {
        let mut total: usize = self.shards.iter().map(Shard::charged).sum();
        self.buffered.peak = self.buffered.peak.max(total);
        if total > self.memory_budget {
            let mut holders: Vec<(u64, usize, u32)> = self
                .shards
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.holders().map(move |(f, slot)| (f, i, slot)))
                .collect();
            holders.sort_unstable();
            for (_, i, slot) in holders {
                if total <= self.memory_budget {
                    break;
                }
                total -= self.shards[i].release(slot).min(total);
            }
            total = self.shards.iter().map(Shard::charged).sum();
        }
        self.buffered.peak_within_budget = self.buffered.peak_within_budget.max(total);
    }

    /// Hands over finished records: in first-packet order those whose first packet is
    /// before every possible later record; in end order all, as they ended. Returns how
    /// many.
    fn emit(&mut self, out: &mut dyn RecordSink) -> io::Result<usize> {
        let mut n = 0;
        let mut out = |r: SessionRecord| {
            n += 1;
            out.record(r)
        };
        match self.order {
            Order::FirstPacket => {
                let mut watermark = u64::MAX;
                for s in &mut self.shards {
                    for r in s.done.drain(..) {
                        self.pending.push(r)?;
                    }
                    watermark = watermark.min(s.watermark());
                }
                self.pending.emit_below(watermark, &mut out)?;
            }
            Order::End => {
                let mut ended: Vec<SessionRecord> = self
                    .shards
                    .iter_mut()
                    .flat_map(|s| s.done.drain(..))
                    .collect();
                ended.sort_unstable_by_key(|r| r.first_packet);
                ended.into_iter().try_for_each(&mut out)?;
            }
        }
        Ok(n)
    }

    /// End of the input: connections that are or may become sessions are retired oldest
    /// first and each record is written at once (memory stays that of the connections,
    /// not connections and records); then the others.
    fn finish(&mut self, out: &mut dyn RecordSink) -> io::Result<()> {
        while let Some((_, i, _)) = self.front() {
            self.shards[i].retire_front();
            self.emit(out)?;
        }
        for s in &mut self.shards {
            s.finish();
            self.stats.add(&s.stats);
        }
        self.emit(out)?;
        Ok(())
    }
}

/// Runs the analysis over `capture`, handing each session record to `out` in the order of
/// the connections' first packets (or as they end, `Order::End`), as soon as it is known.
pub fn analyze(
    capture: Capture,
    opts: &Options,
    out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
) -> io::Result<Summary> {
    analyze_into(capture, opts, &mut |r| out(r))
}

/// [`analyze`] into a [`RecordSink`], which also hears when a batch boundary has handed
/// records over.
pub fn analyze_into(
    mut capture: Capture,
    opts: &Options,
    out: &mut dyn RecordSink,
) -> io::Result<Summary> {
    let threads = opts.threads.max(1);
    // More shards than threads keeps the threads busy when connections are uneven; the
    // report does not depend on the number.
    let n_shards = if threads <= 2 { 1 } else { (threads - 1) * 4 };
    let mut engine = Engine::new(n_shards, opts);
    let files = capture.n_inputs() as u64;
    if threads == 1 {
        let mut d = Decoded::default();
        loop {
            let fill = read_batch(&mut capture, &mut d, n_shards);
            engine.shards_over(&d, false);
            engine.boundary(out)?;
            engine.take_stats(&mut d);
            if let Fill::End = fill {
                break;
            }
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
                    // A fixed set of batch buffers: the queue of 2 and one in each thread.
                    let mut made = 0;
                    loop {
                        let mut d = match back_rx.try_recv() {
                            Ok(d) => d,
                            Err(_) if made < BATCHES_IN_FLIGHT => {
                                made += 1;
                                Decoded::default()
                            }
                            Err(_) => match back_rx.recv() {
                                Ok(d) => d,
                                Err(_) => break,
                            },
                        };
                        let fill = read_batch(&mut capture, &mut d, n_shards);
                        if tx.send(d).is_err() {
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
                // Let go of the chunks now, so that the reader can reuse them.
                d.batch.clear();
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
        buffered: engine.buffered,
    })
}
