//! The parallel streaming pipeline.
//!
//! ```text
//! reader thread: files -> chunks -> records framed -> each packet decoded at once (while
//!                it is in cache) -> segments bucketed by shard (bounded queue of 2 batches)
//! other threads: shards, each over its own segments in capture order -> sessions
//! (two threads with inflation or TLS keys: `rayon::join(read the next batch, the shards
//! of this one)` instead, so that both threads run shards; see `Mode`)
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rayon::prelude::*;

use crate::capture::{Batch, Capture, DecryptionSecrets, Fill, Packet};
use crate::config::Limits;
use crate::decode::{decode, TcpSegment};
use crate::error::InputError;
use crate::flow::tls::{TlsCtx, TlsKeys, TlsOptions};
use crate::flow::{ConnLimits, Shard};
use crate::legs::{peer_of, Legs, Pairing};
use crate::net::{Addr, Endpoint, FlowKey};
use crate::record::{At, SessionRecord};
use crate::reorder::Reorder;
use crate::stats::Stats;
use crate::tls::KeyLog;

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
    /// Bytes of input read so far, updated after every batch (for a progress display).
    pub progress: Option<Arc<AtomicU64>>,
    /// Keep every session's timeline of frames and TCP events there (`frames`).
    pub timeline: Option<Arc<crate::ws::timeline::TimelineSpill>>,
    /// Inflate permessage-deflate messages and check text messages for UTF-8 (RFC 7692,
    /// RFC 6455 §8.1); `--no-inflate` turns it off.
    pub inflate: bool,
    /// Recognise connections whose handshake was not captured by their framing;
    /// `--no-midstream` turns it off.
    pub midstream: bool,
    /// TLS secrets of the `--keylog` files (pcapng Decryption Secrets Blocks are added as
    /// they are read).
    pub keylog: Arc<KeyLog>,
    /// Which TLS connections give a record.
    pub tls: TlsOptions,
    /// Row order (`--order`).
    pub order: Order,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
            order: Order::default(),
            progress: None,
            timeline: None,
            inflate: true,
            midstream: true,
            keylog: Arc::new(KeyLog::new()),
            tls: TlsOptions::default(),
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
    /// Inputs whose last record a stop request cut short (not errors).
    pub cut_by_stop: Vec<String>,
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
/// sequential stream of items and the payloads, not the packet table. Written by the
/// reader and read by the shards for every packet, so it is kept to 56 bytes (a
/// [`TcpSegment`] alone is 72): the packet number relative to the batch's first, and the
/// flow key's two addresses as IPv4 addresses when both are IPv4-mapped and the capture
/// cut none of the payload (else an index in the batch's table of the rest,
/// `Decoded::rare`). Every field is exact: [`Item::segment`] gives back the decoder's
/// segment.
#[derive(Clone, Copy)]
struct Item {
    hash: u64,
    ts_ns: i64,
    seq: u32,
    ack: u32,
    /// Offset of the payload in the chunk `chunk` of the batch.
    payload_off: u32,
    payload_len: u32,
    /// Packet number minus the batch's first (`Batch::first_number`).
    packet: u32,
    /// Chunk of the batch holding the payload.
    chunk: u32,
    /// The lower endpoint's IPv4 address, or with `ITEM_RARE` an index in `Decoded::rare`.
    lo_addr: u32,
    hi_addr: u32,
    lo_port: u16,
    hi_port: u16,
    flags: u8,
    /// `ITEM_FROM_LO`, `ITEM_SHADOW`, `ITEM_RARE`.
    bits: u8,
}

/// The sender is the key's lower endpoint.
const ITEM_FROM_LO: u8 = 1;
/// Not selected by `--filter`: for the connection's numbering and lifecycle only.
const ITEM_SHADOW: u8 = 2;
/// The key is not two IPv4 endpoints, or some payload is missing: the key and the missing
/// bytes are `Decoded::rare[lo_addr]`.
const ITEM_RARE: u8 = 4;

/// What an item does not hold: a flow key other than two IPv4 endpoints, payload bytes
/// the capture cut off.
#[derive(Clone, Copy)]
struct Rare {
    key: FlowKey,
    payload_missing: u32,
}

const _: () = assert!(std::mem::size_of::<Item>() <= 56);

/// The IPv4 address of an IPv4-mapped address (`::ffff:a.b.c.d`), as decode makes them.
#[inline(always)]
fn v4_of(a: Addr) -> Option<u32> {
    (a.0 == 0 && a.1 >> 32 == 0xffff).then_some(a.1 as u32)
}

#[inline(always)]
fn v4_mapped(a: u32) -> Addr {
    Addr(0, 0xffff << 32 | a as u64)
}

impl Item {
    /// The item of a decoded segment (`payload_off` already in the chunk), what it does
    /// not hold going to `rare`.
    #[inline(always)]
    fn new(
        seg: &TcpSegment,
        hash: u64,
        pkt: &Packet,
        first_number: u64,
        shadow: bool,
        rare: &mut Vec<Rare>,
    ) -> Item {
        let (lo_addr, hi_addr, keyed) = match (v4_of(seg.key.lo.addr), v4_of(seg.key.hi.addr)) {
            (Some(lo), Some(hi)) if seg.payload_missing == 0 => (lo, hi, 0),
            _ => {
                rare.push(Rare {
                    key: seg.key,
                    payload_missing: seg.payload_missing,
                });
                ((rare.len() - 1) as u32, 0, ITEM_RARE)
            }
        };
        Item {
            hash,
            ts_ns: pkt.ts_ns,
            seq: seg.seq,
            ack: seg.ack,
            payload_off: seg.payload_off,
            payload_len: seg.payload_len,
            // A batch holds at most `Limits::batch_packets` packets (checked in `read_batch`).
            packet: (pkt.number - first_number) as u32,
            chunk: pkt.chunk,
            lo_addr,
            hi_addr,
            lo_port: seg.key.lo.port,
            hi_port: seg.key.hi.port,
            flags: seg.flags,
            bits: if seg.from_lo { ITEM_FROM_LO } else { 0 }
                | if shadow { ITEM_SHADOW } else { 0 }
                | keyed,
        }
    }

    #[inline(always)]
    fn key(&self, rare: &[Rare]) -> FlowKey {
        if self.bits & ITEM_RARE != 0 {
            rare[self.lo_addr as usize].key
        } else {
            FlowKey {
                lo: Endpoint {
                    addr: v4_mapped(self.lo_addr),
                    port: self.lo_port,
                },
                hi: Endpoint {
                    addr: v4_mapped(self.hi_addr),
                    port: self.hi_port,
                },
            }
        }
    }

    /// The decoder's segment, its payload offset in the chunk.
    #[inline(always)]
    fn segment(&self, rare: &[Rare]) -> TcpSegment {
        TcpSegment {
            key: self.key(rare),
            from_lo: self.bits & ITEM_FROM_LO != 0,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            payload_off: self.payload_off,
            payload_len: self.payload_len,
            payload_missing: if self.bits & ITEM_RARE != 0 {
                rare[self.lo_addr as usize].payload_missing
            } else {
                0
            },
        }
    }
}

/// A batch's segments, decoded as they were read, bucketed by shard.
#[derive(Default)]
struct Decoded {
    batch: Batch,
    buckets: Vec<Vec<Item>>,
    /// What items with `ITEM_RARE` do not hold.
    rare: Vec<Rare>,
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
        self.rare.clear();
        self.max_ts = None;
    }
}

/// The shard of a connection: its hash's high half scaled to `n` (a multiply and a
/// shift, where `%` would divide for every packet).
#[inline]
fn shard_of(hash: u64, n: usize) -> usize {
    (((hash >> 32) * n as u64) >> 32) as usize
}

/// Decodes one packet into the buckets of `n_shards` shards.
#[inline]
fn decode_into(
    buckets: &mut [Vec<Item>],
    rare: &mut Vec<Rare>,
    first_number: u64,
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
            let s = shard_of(hash, buckets.len());
            seg.payload_off += pkt.off;
            // A packet `--filter` did not select is not analyzed, but its connection keeps
            // the number it has in the whole capture.
            let item = Item::new(&seg, hash, pkt, first_number, pkt.filtered_out, rare);
            buckets[s].push(item);
        }
        Err(skip) if !pkt.filtered_out => stats.skip(skip, pkt.linktype),
        Err(_) => {}
    }
}

use crate::config::BATCHES_IN_FLIGHT;

/// Reads the next batch of `capture` into `d`, decoding as it goes. Until `seen_first`, the
/// first packet's time is looked for (then noted in this batch's stats).
fn read_batch(
    capture: &mut Capture,
    d: &mut Decoded,
    n_shards: usize,
    progress: &Option<Arc<AtomicU64>>,
    seen_first: &mut bool,
) -> Fill {
    d.clear(n_shards);
    let Decoded {
        batch,
        buckets,
        rare,
        stats,
        max_ts,
    } = d;
    // Items keep packet numbers relative to the batch's first in 32 bits (a batch ends
    // after `batch_packets` packets, filtered out or not).
    assert!(capture.batch_packets() < u32::MAX as usize / 2);
    let first_number = capture.next_number();
    let fill = if *seen_first {
        capture.fill_with(batch, |pkt, data| {
            decode_into(buckets, rare, first_number, stats, max_ts, pkt, data)
        })
    } else {
        let mut first = None;
        let fill = capture.fill_with(batch, |pkt, data| {
            first = first.or(Some(pkt.ts_ns));
            decode_into(buckets, rare, first_number, stats, max_ts, pkt, data)
        });
        if first.is_some() {
            stats.first_ts_ns = first;
            *seen_first = true;
        }
        fill
    };
    stats.last_ts_ns = stats.last_ts_ns.max(*max_ts);
    if let Some(p) = progress {
        p.store(capture.bytes_read(), Ordering::Relaxed);
    }
    fill
}

/// Runs every shard over a decoded batch: each shard takes its own segments, in order.
fn run_shards(shards: &mut [Shard], d: &Decoded, parallel: bool) {
    // Distances (in segments) of the two prefetch stages: the flow cache line first,
    // then the connection and the payload once the cache line is there.
    const FAR: usize = 16;
    const NEAR: usize = 8;
    let chunks = &d.batch.chunks;
    let rare = &d.rare[..];
    let first_number = d.batch.first_number;
    let per_file = !d.batch.origins.is_empty();
    let run = |(s, shard): (usize, &mut Shard)| {
        let items = &d.buckets[s];
        for (i, it) in items.iter().enumerate() {
            if let Some(f) = items.get(i + FAR) {
                shard.prefetch_cache(f.hash);
            }
            if let Some(n) = items.get(i + NEAR) {
                shard.prefetch_conn(&n.key(rare), n.hash);
                if let Some(b) = chunks[n.chunk as usize].get(n.payload_off as usize) {
                    crate::flow::prefetch(b);
                }
            }
            let seg = it.segment(rare);
            let off = it.payload_off as usize;
            let payload = &chunks[it.chunk as usize][off..off + it.payload_len as usize];
            let packet = first_number + it.packet as u64;
            let at = At {
                packet,
                ts_ns: it.ts_ns,
            };
            let slot = shard.segment(&seg, it.hash, payload, at, it.bits & ITEM_SHADOW != 0);
            if per_file {
                if let Some(o) = d.batch.origin(packet) {
                    shard.note_origin(slot, packet, o);
                }
            }
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
    /// `--per-file`: appearances counted per input.
    file_counters: Option<crate::flow::files::FileCounters>,
    pending: Reorder,
    /// Pairs proxy legs by Sec-WebSocket-Key (batch boundary), and numbers records and
    /// links the legs on the way out.
    pairing: Pairing,
    legs: Legs,
    pair_window_ns: i64,
    next_stream: u64,
    now: i64,
    max_connections: usize,
    memory_budget: usize,
    order: Order,
    buffered: Buffered,
    stats: Stats,
    tls: TlsCtx,
}

impl Engine {
    fn new(n_shards: usize, opts: &Options, paths: Option<Arc<[Arc<str>]>>) -> Self {
        let limits = &opts.limits;
        let conn = ConnLimits {
            inflate: opts.inflate,
            midstream: opts.midstream,
            ..ConnLimits::new(limits)
        };
        let mut shards: Vec<Shard> = (0..n_shards)
            .map(|_| {
                Shard::new(
                    conn,
                    limits.closed_linger_ns,
                    limits.recognise_ns,
                    opts.timeline.clone(),
                )
            })
            .collect();
        let tls = TlsCtx {
            keys: Arc::new(TlsKeys::new(vec![Arc::clone(&opts.keylog)])),
            opts: opts.tls,
        };
        for s in &mut shards {
            s.set_tls(tls.clone());
        }
        if let Some(p) = &paths {
            for s in &mut shards {
                s.files = Some(crate::flow::files::FileTracker::new(Arc::clone(p)));
            }
        }
        Engine {
            file_counters: paths.map(|_| Default::default()),
            shards,
            pending: Reorder::new(limits.max_pending_bytes),
            pairing: Pairing::default(),
            legs: Legs::default(),
            pair_window_ns: limits.pair_window_ns,
            next_stream: 0,
            now: i64::MIN,
            max_connections: limits.max_connections,
            memory_budget: limits.memory_budget,
            order: opts.order,
            buffered: Buffered::default(),
            stats: Stats::default(),
            tls,
        }
    }

    /// Decryption Secrets Blocks read before a batch: their TLS key logs serve the
    /// connections from this batch on (batches end before such a block, so this is where
    /// the block is in the capture, for every thread count).
    fn add_secrets(&mut self, blocks: &[DecryptionSecrets]) {
        let mut keys = (*self.tls.keys).clone();
        for b in blocks {
            let mut log = KeyLog::new();
            let Some(loaded) = log.add_decryption_secrets_block(b.secrets_type, &b.data) else {
                continue;
            };
            let t = &mut self.stats.tls;
            t.secrets_blocks += 1;
            t.secrets_block_secrets += loaded.secrets as u64;
            t.late_secrets_blocks += b.after_packets as u64;
            keys = keys.with(Arc::new(log));
        }
        self.tls.keys = Arc::new(keys);
        for s in &mut self.shards {
            s.set_tls(self.tls.clone());
        }
    }

    /// Runs the shards over a decoded batch and advances the capture clock.
    fn shards_over(&mut self, d: &Decoded, parallel: bool) {
        if !d.batch.secrets.is_empty() {
            self.add_secrets(&d.batch.secrets);
        }
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
        if let Some(counters) = &mut self.file_counters {
            // --per-file: the connections' numbers in their first input, counted over all
            // shards in packet order.
            let all: Vec<_> = self
                .shards
                .iter_mut()
                .enumerate()
                .flat_map(|(i, s)| {
                    let f = s.files.as_mut().expect("per-file tracker");
                    f.appearances.drain(..).map(move |a| (i, a))
                })
                .collect();
            let mut per_shard = vec![Vec::new(); self.shards.len()];
            counters.count(all, |shard, slot, first_packet, n| {
                per_shard[shard].push((slot, first_packet, n))
            });
            for (s, assigned) in self.shards.iter_mut().zip(per_shard) {
                s.assign_file_streams(assigned);
            }
        }
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

        // Proxy legs: the batch's Upgrade requests against the recent ones, by key.
        let now = self.now;
        let mut seen = Vec::new();
        for (i, s) in self.shards.iter_mut().enumerate() {
            seen.extend(s.new_upgrades.drain(..).map(|mut u| {
                u.shard = i;
                u
            }));
        }
        if !seen.is_empty() || now != i64::MIN {
            let shards = &mut self.shards;
            self.pairing
                .batch(seen, self.pair_window_ns, now, &mut |front, back| {
                    if !(shards[front.shard].has_session(front)
                        && shards[back.shard].has_session(back))
                    {
                        return false;
                    }
                    shards[front.shard].set_peer(front, peer_of(back, true));
                    shards[back.shard].set_peer(back, peer_of(front, false));
                    true
                });
        }

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

    /// Past the budget, connections free their spare buffers, then give up what they
    /// hold, oldest first packet first, until what is held is within it.
    fn memory_budget(&mut self) {
        let mut total: usize = self.shards.iter().map(Shard::charged).sum();
        self.buffered.peak = self.buffered.peak.max(total);
        if total > self.memory_budget {
            // First what costs nothing: buffers that hold nothing now (scratch space).
            for s in &mut self.shards {
                s.trim();
            }
            total = self.shards.iter().map(Shard::charged).sum();
        }
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
        let legs = &mut self.legs;
        match self.order {
            Order::FirstPacket => {
                let mut watermark = u64::MAX;
                for s in &mut self.shards {
                    for r in s.done.drain(..) {
                        self.pending.push(r)?;
                    }
                    watermark = watermark.min(s.watermark());
                }
                self.pending
                    .emit_below(watermark, &mut |r| legs.push(r, &mut out))?;
            }
            Order::End => {
                let mut ended: Vec<SessionRecord> = self
                    .shards
                    .iter_mut()
                    .flat_map(|s| s.done.drain(..))
                    .collect();
                ended.sort_unstable_by_key(SessionRecord::order_key);
                for r in ended {
                    legs.push_ended(r, &mut out)?;
                }
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
        match self.order {
            Order::FirstPacket => self.legs.finish(&mut |r| out.record(r)),
            Order::End => self.legs.finish_ended(&mut |r| out.record(r)),
        }
    }
}

/// How the threads share the work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// A reader thread reads, frames and decodes each batch while its bytes are hot in its
    /// core's cache, and hands it to the shards on the other threads. Best when reading
    /// costs about as much as the shards (plaintext without inflation), and for live
    /// captures.
    Pipeline,
    /// `rayon::join(read the next batch, the shards of this one)` on a pool of all the
    /// threads: the thread done reading first runs shards too. The shards' work then uses
    /// both cores when it outweighs reading (inflation, TLS decryption), at the cost of
    /// packets decoded on one core being read on another.
    Join,
}

impl Mode {
    /// `Join` for two threads over files with inflation on or TLS keys given; the
    /// environment variable `WSCLOSE_MODE` (`join` or `pipeline`) overrides it, to
    /// measure one against the other (the report is the same).
    fn choose(threads: usize, opts: &Options, capture: &Capture) -> Mode {
        let shard_bound = opts.inflate || !opts.keylog.is_empty();
        let forced = std::env::var("WSCLOSE_MODE").ok();
        match forced.as_deref() {
            Some("join") if threads >= 2 => return Mode::Join,
            Some("pipeline") => return Mode::Pipeline,
            _ => {}
        }
        // A live capture keeps the pipeline: a boundary (and its rows) never waits for
        // the next batch's read.
        if threads == 2 && shard_bound && !capture.is_live() {
            Mode::Join
        } else {
            Mode::Pipeline
        }
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
    // Two threads where the shards cost more than reading (inflation or decryption
    // on): both threads run shards, see `Mode::Join`.
    let mode = Mode::choose(threads, opts, &capture);
    // More shards than threads keeps the threads busy when connections are uneven; the
    // report does not depend on the number.
    let n_shards = match mode {
        Mode::Join => threads * 2,
        Mode::Pipeline if threads <= 2 => 1,
        Mode::Pipeline => (threads - 1) * 4,
    };
    let paths: Option<Arc<[Arc<str>]>> = capture
        .per_file()
        .then(|| capture.input_paths().map(Arc::from).collect());
    let mut engine = Engine::new(n_shards, opts, paths);
    let files = capture.n_inputs() as u64;
    let progress = opts.progress.clone();
    if mode == Mode::Join {
        // Reading (and decoding) the next batch is one task beside the current batch's
        // shards on a pool of `threads`: the thread that finishes reading steals shards.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(io::Error::other)?;
        let mut seen_first = false;
        let mut cur = Decoded::default();
        let mut next = Decoded::default();
        let mut fill = read_batch(&mut capture, &mut cur, n_shards, &progress, &mut seen_first);
        loop {
            let last = matches!(fill, Fill::End);
            let (next_fill, ()) = pool.install(|| {
                rayon::join(
                    || {
                        (!last).then(|| {
                            read_batch(
                                &mut capture,
                                &mut next,
                                n_shards,
                                &progress,
                                &mut seen_first,
                            )
                        })
                    },
                    || engine.shards_over(&cur, true),
                )
            });
            engine.boundary(out)?;
            engine.take_stats(&mut cur);
            match next_fill {
                None => break,
                Some(f) => {
                    fill = f;
                    std::mem::swap(&mut cur, &mut next);
                }
            }
        }
    } else if threads == 1 {
        let mut d = Decoded::default();
        let mut seen_first = false;
        loop {
            let fill = read_batch(&mut capture, &mut d, n_shards, &progress, &mut seen_first);
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
                    let mut seen_first = false;
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
                        let fill =
                            read_batch(&mut capture, &mut d, n_shards, &progress, &mut seen_first);
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
        cut_by_stop: std::mem::take(&mut capture.cut_by_stop),
    })
}
