//! The flow table of one shard: TCP connections by 4-tuple, their lifecycle in capture
//! time, and the session records they turn into.

pub mod app;
pub mod conn;
pub mod files;
pub mod midstream;
pub mod reassembly;
pub mod tls;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::config::Limits;
use crate::decode::TcpSegment;
use crate::legs::UpgradeSeen;
use crate::net::FlowKey;
use crate::record::{At, Peer, SessionRecord};
use crate::stats::Stats;
use crate::ws::timeline::{Timeline, TimelineSpill};
use app::App;
use conn::Conn;
use reassembly::ReassemblyLimits;
use std::sync::Arc;

/// The limits of one connection's analysis (from [`Limits`]).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub reassembly: ReassemblyLimits,
    /// Bytes of an HTTP head buffered while incomplete.
    pub max_head: usize,
    /// Inflate permessage-deflate messages and check text (`--no-inflate` turns it off).
    pub inflate: bool,
    /// Pick up connections without a handshake by their framing (`--no-midstream`).
    pub midstream: bool,
}

impl ConnLimits {
    /// From the limits, with inflation and mid-stream pickup on (see the fields).
    pub fn new(limits: &Limits) -> Self {
        ConnLimits {
            reassembly: ReassemblyLimits {
                max_held_bytes: limits.max_ooo_bytes,
                max_held_segments: limits.max_ooo_segments,
                max_seq_ahead: limits.max_seq_ahead,
            },
            max_head: limits.max_handshake_bytes,
            inflate: true,
            midstream: true,
        }
    }
}

/// What travels with a segment into its connection: the packet it came in, the limits,
/// and the TLS keys and options.
#[derive(Clone, Copy, Debug)]
pub struct SegmentCtx<'a> {
    pub at: At,
    pub limits: &'a ConnLimits,
    pub tls: &'a tls::TlsCtx,
}

/// FxHash (rustc's hasher): fast, deterministic, good enough for 4-tuples.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for &b in chunks.remainder() {
            self.add(b as u64);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.add(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

use crate::config::FLOW_CACHE;

#[derive(Clone, Copy)]
struct CacheEntry {
    key: FlowKey,
    first_packet: u64,
    slot: u32,
}

impl CacheEntry {
    const EMPTY: CacheEntry = CacheEntry {
        key: FlowKey {
            lo: crate::net::Endpoint {
                addr: crate::net::Addr(0, 0),
                port: 0,
            },
            hi: crate::net::Endpoint {
                addr: crate::net::Addr(0, 0),
                port: 0,
            },
        },
        first_packet: u64::MAX,
        slot: 0,
    };
}

/// Hints the CPU to fetch the cache line at `p` (no effect on results).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A connection's identity in a shard: its slot and its first packet (slots are reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnRef {
    pub first_packet: u64,
    pub slot: u32,
}

/// One shard's connections. Every packet of a connection lands in the same shard, in
/// capture order, so a shard is a sequential analyzer of its own connections.
pub struct Shard {
    map: FxMap<FlowKey, u32>,
    /// Direct-mapped cache in front of `map`, indexed by the segment's hash, so that the
    /// lookup is one cache line that can be prefetched ahead of time.
    cache: Vec<CacheEntry>,
    slab: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Connections opened in the current batch (their `tcp_stream` is assigned after it).
    pub new_conns: Vec<ConnRef>,
    /// Records of connections finished, not yet handed to the writer.
    pub done: Vec<SessionRecord>,
    /// Upgrade requests completed in the current batch (for pairing proxy legs).
    pub new_upgrades: Vec<UpgradeSeen>,
    /// First packets of live connections that are or may become sessions.
    candidates: BTreeSet<u64>,
    /// Closed connections by the capture time at which they may be retired.
    closing: BinaryHeap<Reverse<(i64, ConnRef)>>,
    pub stats: Stats,
    limits: ConnLimits,
    /// TLS keys (changed between batches only) and options.
    tls: tls::TlsCtx,
    linger_ns: i64,
    /// `--per-file` numbering (see `files.rs`).
    pub files: Option<files::FileTracker>,
    /// Where connections keep their timelines (`frames`), if they keep one.
    timeline: Option<Arc<TimelineSpill>>,
}

impl Shard {
    pub fn new(limits: ConnLimits, linger_ns: i64, timeline: Option<Arc<TimelineSpill>>) -> Self {
        Shard {
            timeline,
            map: FxMap::default(),
            cache: vec![CacheEntry::EMPTY; FLOW_CACHE],
            slab: Vec::new(),
            free: Vec::new(),
            new_conns: Vec::new(),
            done: Vec::new(),
            new_upgrades: Vec::new(),
            candidates: BTreeSet::new(),
            closing: BinaryHeap::new(),
            stats: Stats::default(),
            limits,
            tls: tls::TlsCtx::default(),
            linger_ns,
            files: None,
        }
    }

    /// The TLS keys and options of the connections' next segments (set between batches).
    pub fn set_tls(&mut self, ctx: tls::TlsCtx) {
        self.tls = ctx;
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The earliest first packet of a live connection that is or may become a session:
    /// records of sessions that started before it can be written.
    pub fn watermark(&self) -> u64 {
        self.candidates.first().copied().unwrap_or(u64::MAX)
    }

    /// Prefetch, stage 1 (well ahead): the flow cache line of a segment.
    #[inline]
    pub fn prefetch_cache(&self, hash: u64) {
        prefetch(&self.cache[hash as usize & (FLOW_CACHE - 1)]);
    }

    /// Prefetch, stage 2 (closer): the connection, if the cache already knows it. Only
    /// its address is computed: reading it here would wait for the very miss we hide.
    #[inline]
    pub fn prefetch_conn(&self, key: &FlowKey, hash: u64) {
        let e = &self.cache[hash as usize & (FLOW_CACHE - 1)];
        if e.key == *key && (e.slot as usize) < self.slab.len() {
            let c = self.slab.as_ptr().wrapping_add(e.slot as usize);
            prefetch(c);
            prefetch((c as *const u8).wrapping_add(64));
        }
    }

    /// One TCP segment of this shard, in capture order; `hash` is `seg.key.shard_hash()`.
    /// A `shadow` segment (one that `--filter` did not select) counts for the connection's
    /// identity and TCP lifecycle only: its payload is not analyzed. Returns the slot of the
    /// segment's connection.
    pub fn segment(
        &mut self,
        seg: &TcpSegment,
        hash: u64,
        payload: &[u8],
        at: At,
        shadow: bool,
    ) -> u32 {
        self.stats.tcp_packets += 1;
        if seg.payload_missing > 0 {
            self.stats.cut_payload += 1;
        }
        let ci = hash as usize & (FLOW_CACHE - 1);
        let e = &self.cache[ci];
        let cached = e.key == seg.key
            && self
                .slab
                .get(e.slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.first_packet == e.first_packet);
        let mut slot = if cached {
            e.slot
        } else {
            let slot = match self.map.get(&seg.key) {
                Some(&slot) => slot,
                None => self.open(seg.key, at),
            };
            self.remember(ci, seg.key, slot);
            slot
        };
        // Only a SYN without ACK can start a new connection on a known 4-tuple.
        if seg.flags & (crate::decode::SYN | crate::decode::ACK) == crate::decode::SYN
            && self.slab[slot as usize].as_ref().unwrap().is_reuse(seg)
        {
            self.retire(slot, false);
            slot = self.open(seg.key, at);
            self.remember(ci, seg.key, slot);
        }
        let conn = self.slab[slot as usize].as_mut().unwrap();
        let was_candidate = conn.may_be_session();
        let was_closed = conn.is_closed();
        if shadow {
            conn.shadow(seg, at);
        } else {
            let ctx = SegmentCtx {
                at,
                limits: &self.limits,
                tls: &self.tls,
            };
            conn.segment(seg, payload, &ctx);
            if let Some((key, at, requests_before_upgrade)) = conn.app.take_new_upgrade() {
                self.new_upgrades.push(UpgradeSeen {
                    key,
                    at,
                    shard: 0,
                    flow: conn.key,
                    first_packet: conn.first_packet,
                    requests_before_upgrade,
                });
            }
        }
        if was_candidate && !conn.may_be_session() {
            self.candidates.remove(&conn.first_packet);
        }
        if !was_closed && conn.is_closed() {
            let r = ConnRef {
                first_packet: conn.first_packet,
                slot,
            };
            self.closing
                .push(Reverse((conn.last_ts.saturating_add(self.linger_ns), r)));
        }
        slot
    }

    /// `--per-file`: the input and input packet number of the segment just given to the
    /// connection in `slot`.
    #[inline]
    pub fn note_origin(&mut self, slot: u32, packet: u64, origin: crate::capture::Origin) {
        if let (Some(f), Some(c)) = (&mut self.files, &self.slab[slot as usize]) {
            f.note(slot, c.first_packet, packet, origin);
        }
    }

    /// `--per-file`: the connection that opened at `first_packet` in `slot` is number
    /// `tcp_stream` in its first input (the batch boundary counts them).
    pub fn assign_file_streams(&mut self, mut assigned: Vec<(u32, u64, u64)>) {
        let Some(f) = &mut self.files else { return };
        // Connections already retired: their records wait in `done`.
        assigned.retain(|&(slot, first_packet, n)| !f.assign(slot, first_packet, n));
        if assigned.is_empty() {
            return;
        }
        assigned.sort_unstable_by_key(|&(_, first_packet, _)| first_packet);
        for rec in &mut self.done {
            if let Some(file) = &mut rec.file {
                if let Ok(i) = assigned.binary_search_by_key(&rec.first_packet, |a| a.1) {
                    file.tcp_stream = assigned[i].2;
                }
            }
        }
    }

    /// Whether the session of `u` can still take a peer: its connection is live, or its
    /// record is among those finished in this batch.
    pub fn has_session(&self, u: &UpgradeSeen) -> bool {
        if let Some(&slot) = self.map.get(&u.flow) {
            if let Some(c) = self.slab[slot as usize].as_ref() {
                if c.first_packet == u.first_packet
                    && c.app
                        .sessions()
                        .any(|s| s.requests_before_upgrade == u.requests_before_upgrade)
                {
                    return true;
                }
            }
        }
        self.done
            .iter()
            .any(|r| r.order_key() == (u.first_packet, u.requests_before_upgrade))
    }

    /// Tells the session of `u` its peer (the other leg through a proxy).
    pub fn set_peer(&mut self, u: &UpgradeSeen, peer: Peer) {
        if let Some(&slot) = self.map.get(&u.flow) {
            if let Some(c) = self.slab[slot as usize].as_mut() {
                if c.first_packet == u.first_packet {
                    if let Some(s) = c.app.session_mut(u.requests_before_upgrade) {
                        s.peer = Some(peer);
                        return;
                    }
                }
            }
        }
        if let Some(r) = self
            .done
            .iter_mut()
            .find(|r| r.order_key() == (u.first_packet, u.requests_before_upgrade))
        {
            r.peer = Some(peer);
        }
    }

    /// Puts a connection in the flow cache.
    fn remember(&mut self, ci: usize, key: FlowKey, slot: u32) {
        let first_packet = self.slab[slot as usize].as_ref().unwrap().first_packet;
        self.cache[ci] = CacheEntry {
            key,
            first_packet,
            slot,
        };
    }

    fn open(&mut self, key: FlowKey, at: At) -> u32 {
        let mut conn = Conn::new(key, at);
        if let Some(spill) = &self.timeline {
            conn.lent.timeline = Some(Box::new(Timeline::new(spill.clone())));
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(conn);
                s
            }
            None => {
                self.slab.push(Some(conn));
                (self.slab.len() - 1) as u32
            }
        };
        self.map.insert(key, slot);
        self.candidates.insert(at.packet);
        self.new_conns.push(ConnRef {
            first_packet: at.packet,
            slot,
        });
        self.stats.tcp_connections += 1;
        slot
    }

    /// Takes a connection out of the table and records what it was.
    fn retire(&mut self, slot: u32, evicted: bool) {
        let mut conn = self.slab[slot as usize].take().expect("live slot");
        self.free.push(slot);
        self.map.remove(&conn.key);
        self.candidates.remove(&conn.first_packet);
        if evicted {
            self.stats.evicted += 1;
        }
        conn.flush(&self.limits, &self.tls);
        let no_payload = matches!(conn.app, App::Unknown);
        let (gaps, gap_bytes) = conn.gap_counters();
        self.stats.gaps += gaps;
        self.stats.gap_bytes += gap_bytes;
        let analyzed = conn.analyzed;
        let first_packet = conn.first_packet;
        // The sessions counted are the rows written (one per Upgrade on a connection):
        // one rule for both.
        if let Some(t) = &conn.tls {
            self.stats.tls.add(t.facts());
        }
        let from = self.done.len();
        match conn.records(evicted, &self.limits, &self.tls, &mut self.done) {
            0 if !analyzed => self.stats.filtered_connections += 1,
            0 if no_payload => self.stats.no_payload += 1,
            0 => self.stats.not_websocket += 1,
            n => {
                if let Some(f) = &self.files {
                    let numbers = f.numbers(slot, first_packet);
                    for r in &mut self.done[from..] {
                        r.file = numbers.clone();
                    }
                }
                // A TLS connection's own row (outcome undecrypted; `wsclose tls` also
                // gives decrypted connections that carried no session one) is not a session.
                let own = self.done[from..]
                    .iter()
                    .filter(|r| r.upgrade == crate::verdict::Upgrade::Undecrypted)
                    .map(|r| {
                        r.tls
                            .as_ref()
                            .is_some_and(|t| t.state == crate::tls::TlsState::Decrypting)
                    })
                    .fold((0, 0), |(all, dec), d| (all + 1, dec + u64::from(d)));
                self.stats.tls.rows += own.0 - own.1;
                self.stats.sessions += n as u64 - own.0;
            }
        }
    }

    /// Gives `tcp_stream` numbers to the connections opened in this batch: `number(packet)`
    /// is the global number of the connection that started at `packet`.
    pub fn assign_streams(&mut self, number: impl Fn(u64) -> u64) {
        for r in self.new_conns.drain(..) {
            if let Some(c) = self.slab[r.slot as usize].as_mut() {
                if c.first_packet == r.first_packet {
                    c.tcp_stream = number(r.first_packet);
                }
            }
        }
        for rec in &mut self.done {
            if rec.tcp_stream == u64::MAX {
                rec.tcp_stream = number(rec.first_packet);
            }
        }
    }

    /// Retires closed connections that have seen nothing for the linger time.
    pub fn expire(&mut self, now: i64) {
        while let Some(Reverse((deadline, r))) = self.closing.peek().copied() {
            if deadline > now {
                break;
            }
            self.closing.pop();
            let Some(c) = self.slab[r.slot as usize].as_ref() else {
                continue;
            };
            if c.first_packet != r.first_packet {
                continue;
            }
            let due = c.last_ts.saturating_add(self.linger_ns);
            if due > now {
                self.closing.push(Reverse((due, r)));
            } else {
                self.retire(r.slot, false);
            }
        }
    }

    /// (last packet time, identity) of every live connection, for global eviction.
    pub fn idle_order(&self) -> impl Iterator<Item = (i64, ConnRef)> + '_ {
        self.slab.iter().enumerate().filter_map(|(i, c)| {
            c.as_ref().map(|c| {
                (
                    c.last_ts,
                    ConnRef {
                        first_packet: c.first_packet,
                        slot: i as u32,
                    },
                )
            })
        })
    }

    pub fn evict(&mut self, r: ConnRef) {
        if self.slab[r.slot as usize]
            .as_ref()
            .is_some_and(|c| c.first_packet == r.first_packet)
        {
            self.retire(r.slot, true);
        }
    }

    /// End of the capture: every connection is retired.
    pub fn finish(&mut self) {
        for slot in 0..self.slab.len() as u32 {
            if self.slab[slot as usize].is_some() {
                self.retire(slot, false);
            }
        }
        self.closing.clear();
    }
}
