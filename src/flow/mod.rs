//! The flow table of one shard: TCP connections by 4-tuple, their lifecycle in capture
//! time, and the session records they turn into.
//!
//! Two tables hold the connections: a compact one for connections that have carried no
//! payload (`embryo.rs`: SYN-only connections, scans, floods; 64 bytes each) and the full
//! one (`conn.rs`), which a connection joins at its first segment that needs more. The
//! hash table maps a 4-tuple to a 4-byte id of either; the keys live in the tables.

pub mod app;
pub mod candidates;
pub mod conn;
pub mod embryo;
pub mod files;
pub mod memory;
pub mod midstream;
pub mod reassembly;
pub mod tls;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use candidates::Candidates;

use hashbrown::HashTable;

use crate::config::Limits;
use crate::decode::{TcpSegment, ACK, SYN};
use crate::legs::UpgradeSeen;
use crate::net::FlowKey;
use crate::record::{At, Peer, SessionRecord};
use crate::stats::Stats;
use crate::ws::timeline::{Timeline, TimelineSpill};
use app::App;
use conn::Conn;
use embryo::Embryos;
use reassembly::ReassemblyLimits;
use std::sync::Arc;

/// The limits of one connection's analysis (from [`Limits`]).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub reassembly: ReassemblyLimits,
    /// Bytes of an HTTP head buffered while incomplete.
    pub max_head: usize,
    /// Bytes per direction a connection may carry before it is recognised.
    pub recognise_bytes: u64,
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
                // Held bytes are counted in a u32 (at most this plus one segment).
                max_held_bytes: limits.max_ooo_bytes.min(u32::MAX as usize >> 1),
                max_held_segments: limits.max_ooo_segments,
                max_seq_ahead: limits.max_seq_ahead,
            },
            max_head: limits.max_handshake_bytes,
            recognise_bytes: limits.recognise_bytes,
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

use crate::config::FLOW_CACHE;

/// A connection's id in its shard: a slot of the full table, or, with [`EMBRYO`] set, a
/// slot of the compact table. Full ids index the full table directly, so the hot path
/// checks nothing more than before.
pub type ConnId = u32;

/// The bit that marks an id of the compact table.
pub const EMBRYO: ConnId = 1 << 31;

#[derive(Clone, Copy)]
struct CacheEntry {
    key: FlowKey,
    first_packet: u64,
    id: ConnId,
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
        id: 0,
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

/// A connection's identity in a shard: its id and its first packet (ids are reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnRef {
    pub first_packet: u64,
    pub id: ConnId,
}

/// The key of connection `id` (which must be live).
#[inline]
fn key_of(conns: &[Option<Conn>], embryos: &Embryos, id: ConnId) -> FlowKey {
    if id & EMBRYO == 0 {
        conns[id as usize].as_ref().expect("live connection").key
    } else {
        embryos.key(embryos.live(id & !EMBRYO).expect("live embryo"))
    }
}

/// One shard's connections. Every packet of a connection lands in the same shard, in
/// capture order, so a shard is a sequential analyzer of its own connections.
pub struct Shard {
    /// 4-tuple -> id; the keys are read from the tables (4 bytes per entry here).
    table: HashTable<ConnId>,
    /// Direct-mapped cache in front of `table`, indexed by the segment's hash, so that the
    /// lookup is one cache line that can be prefetched ahead of time.
    cache: Vec<CacheEntry>,
    /// Connections with full state.
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Connections that have carried no payload yet.
    embryos: Embryos,
    /// Connections opened in the current batch (their `tcp_stream` is assigned after it).
    pub new_conns: Vec<ConnRef>,
    /// Records of connections finished, not yet handed to the writer.
    pub done: Vec<SessionRecord>,
    /// Upgrade requests completed in the current batch (for pairing proxy legs).
    pub new_upgrades: Vec<UpgradeSeen>,
    /// Live connections that are or may become sessions, by first packet.
    candidates: Candidates,
    /// Closed connections by the capture time at which they may be retired.
    closing: BinaryHeap<Reverse<(i64, ConnRef)>>,
    /// Full connections whose buffers hold something, by first packet (memory budget).
    holders: BTreeMap<u64, u32>,
    /// What their buffers hold together.
    charged: usize,
    pub stats: Stats,
    limits: ConnLimits,
    /// TLS keys (changed between batches only) and options.
    tls: tls::TlsCtx,
    linger_ns: i64,
    recognise_ns: i64,
    /// `--per-file` numbering (see `files.rs`).
    pub files: Option<files::FileTracker>,
    /// Where connections keep their timelines (`frames`), if they keep one.
    timeline: Option<Arc<TimelineSpill>>,
}

impl Shard {
    /// A shard with these limits, closed connections kept `linger_ns` of capture time,
    /// connections given `recognise_ns` to show a handshake (`Limits`), and where
    /// connections keep their timelines (`frames`, the HTML rings), if they keep one.
    pub fn new(
        limits: ConnLimits,
        linger_ns: i64,
        recognise_ns: i64,
        timeline: Option<Arc<TimelineSpill>>,
    ) -> Self {
        Shard {
            timeline,
            table: HashTable::new(),
            cache: vec![CacheEntry::EMPTY; FLOW_CACHE],
            conns: Vec::new(),
            free: Vec::new(),
            embryos: Embryos::default(),
            new_conns: Vec::new(),
            done: Vec::new(),
            new_upgrades: Vec::new(),
            candidates: Candidates::default(),
            closing: BinaryHeap::new(),
            holders: BTreeMap::new(),
            charged: 0,
            stats: Stats::default(),
            limits,
            tls: tls::TlsCtx::default(),
            linger_ns,
            recognise_ns,
            files: None,
        }
    }

    /// The TLS keys and options of the connections' next segments (set between batches).
    pub fn set_tls(&mut self, ctx: tls::TlsCtx) {
        self.tls = ctx;
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Live connections that carried no payload (in the compact table).
    pub fn embryonic(&self) -> usize {
        self.embryos.len()
    }

    /// The earliest first packet of a live connection that is or may become a session:
    /// records of sessions that started before it can be written.
    pub fn watermark(&self) -> u64 {
        self.front().map_or(u64::MAX, |(f, _)| f)
    }

    /// The live connection that is or may become a session with the earliest first packet.
    pub fn front(&self) -> Option<(u64, ConnId)> {
        self.candidates.first()
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
        if e.key == *key && (e.id as usize) < self.conns.len() {
            let c = self.conns.as_ptr().wrapping_add(e.id as usize);
            prefetch(c);
            prefetch((c as *const u8).wrapping_add(64));
        }
    }

    /// Whether `id` holds the connection that started at `first_packet`.
    #[inline]
    fn is_live(&self, id: ConnId, first_packet: u64) -> bool {
        match self.conns.get(id as usize) {
            Some(c) => c.as_ref().is_some_and(|c| c.first_packet == first_packet),
            None => id & EMBRYO != 0 && self.embryos.get(id & !EMBRYO, first_packet).is_some(),
        }
    }

    fn find(&self, key: &FlowKey, hash: u64) -> Option<ConnId> {
        let (conns, embryos) = (&self.conns, &self.embryos);
        self.table
            .find(hash, |&id| key_of(conns, embryos, id) == *key)
            .copied()
    }

    /// One TCP segment of this shard, in capture order; `hash` is `seg.key.shard_hash()`.
    /// A `shadow` segment (one that `--filter` did not select) counts for the connection's
    /// identity and TCP lifecycle only: its payload is not analyzed. Returns the id of the
    /// segment's connection.
    pub fn segment(
        &mut self,
        seg: &TcpSegment,
        hash: u64,
        payload: &[u8],
        at: At,
        shadow: bool,
    ) -> ConnId {
        self.stats.tcp_packets += 1;
        if seg.payload_missing > 0 {
            self.stats.cut_payload += 1;
        }
        let ci = hash as usize & (FLOW_CACHE - 1);
        let e = &self.cache[ci];
        let mut id = if e.key == seg.key && self.is_live(e.id, e.first_packet) {
            e.id
        } else {
            let id = match self.find(&seg.key, hash) {
                Some(id) => id,
                None => self.open(seg.key, hash, at),
            };
            self.remember(ci, seg.key, id);
            id
        };
        // Only a SYN without ACK can start a new connection on a known 4-tuple.
        if seg.flags & (SYN | ACK) == SYN && self.is_reuse(id, seg) {
            self.retire(id, false);
            id = self.open(seg.key, hash, at);
            self.remember(ci, seg.key, id);
        }
        // A connection that keeps a timeline is a full one from its first packet (its SYN
        // and every TCP event go to the timeline).
        if id & EMBRYO != 0 && self.timeline.is_some() {
            id = self.promote(id, hash);
            self.remember(ci, seg.key, id);
        }
        if id & EMBRYO != 0 {
            let carries = !payload.is_empty() || seg.payload_missing > 0;
            let e = self.embryos.at(id & !EMBRYO);
            let was_closed = e.is_closed();
            let compact = if shadow {
                e.try_shadow(seg, at, &self.limits.reassembly)
            } else {
                e.try_segment(seg, carries, at, &self.limits.reassembly)
            };
            if compact {
                if !was_closed && e.is_closed() {
                    let r = ConnRef {
                        first_packet: e.first_packet,
                        id,
                    };
                    self.closing
                        .push(Reverse((e.last_ts.saturating_add(self.linger_ns), r)));
                }
                return id;
            }
            id = self.promote(id, hash);
            self.remember(ci, seg.key, id);
        }
        let slot = id;
        let conn = self.conns[slot as usize].as_mut().unwrap();
        let was_candidate = conn.may_be_session();
        let was_closed = conn.is_closed();
        let mut charge_moved = false;
        if shadow {
            conn.shadow(seg, at);
        } else {
            let ctx = SegmentCtx {
                at,
                limits: &self.limits,
                tls: &self.tls,
            };
            charge_moved = conn.segment(seg, payload, &ctx);
            if let Some((key, at, requests_before_upgrade)) = conn.app.take_new_upgrade() {
                self.new_upgrades.push(UpgradeSeen {
                    key,
                    at,
                    shard: 0,
                    first_packet: conn.first_packet,
                    requests_before_upgrade,
                });
            }
        }
        if was_candidate && !conn.may_be_session() {
            self.candidates.remove(conn.first_packet);
        }
        if !was_closed && conn.is_closed() {
            let r = ConnRef {
                first_packet: conn.first_packet,
                id: slot,
            };
            self.closing
                .push(Reverse((conn.last_ts.saturating_add(self.linger_ns), r)));
        }
        if charge_moved && conn.memory_charge() != conn.charged {
            self.account(slot);
        }
        slot
    }

    /// `--per-file`: the input and input packet number of the segment just given to the
    /// connection `id`.
    #[inline]
    pub fn note_origin(&mut self, id: ConnId, packet: u64, origin: crate::capture::Origin) {
        if let Some(f) = &mut self.files {
            let first_packet = if id & EMBRYO == 0 {
                self.conns[id as usize].as_ref().map(|c| c.first_packet)
            } else {
                self.embryos.live(id & !EMBRYO).map(|e| e.first_packet)
            };
            if let Some(first_packet) = first_packet {
                f.note(id, first_packet, packet, origin);
            }
        }
    }

    /// `--per-file`: the connection that opened at `first_packet` as `id` is number
    /// `tcp_stream` in its first input (the batch boundary counts them).
    pub fn assign_file_streams(&mut self, mut assigned: Vec<(ConnId, u64, u64)>) {
        let Some(f) = &mut self.files else { return };
        // Connections already retired: their records wait in `done`.
        assigned.retain(|&(id, first_packet, n)| !f.assign(id, first_packet, n));
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

    /// The live full connection that opened at `first_packet` and may be a session (a
    /// connection with a session is one; found among the candidates).
    fn full_conn(&self, first_packet: u64) -> Option<u32> {
        self.candidates
            .get(first_packet)
            .filter(|&id| id & EMBRYO == 0)
            .filter(|&id| {
                self.conns[id as usize]
                    .as_ref()
                    .is_some_and(|c| c.first_packet == first_packet)
            })
    }

    /// Whether the session of `u` can still take a peer: its connection is live, or its
    /// record is among those finished in this batch.
    pub fn has_session(&self, u: &UpgradeSeen) -> bool {
        if let Some(slot) = self.full_conn(u.first_packet) {
            let c = self.conns[slot as usize].as_ref().expect("live");
            if c.app
                .sessions()
                .any(|s| s.requests_before_upgrade() == u.requests_before_upgrade)
            {
                return true;
            }
        }
        self.done
            .iter()
            .any(|r| r.order_key() == (u.first_packet, u.requests_before_upgrade))
    }

    /// Tells the session of `u` its peer (the other leg through a proxy).
    pub fn set_peer(&mut self, u: &UpgradeSeen, peer: Peer) {
        if let Some(slot) = self.full_conn(u.first_packet) {
            let c = self.conns[slot as usize].as_mut().expect("live");
            if let Some(s) = c.app.session_mut(u.requests_before_upgrade) {
                s.set_peer(peer);
                return;
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

    /// Brings the memory budget's accounting of full connection `slot` up to date.
    fn account(&mut self, slot: u32) {
        let conn = self.conns[slot as usize].as_mut().unwrap();
        let (old, new) = (conn.charged, conn.memory_charge());
        conn.charged = new;
        self.charged = self.charged - old as usize + new as usize;
        if old == 0 && new > 0 {
            self.holders.insert(conn.first_packet, slot);
        } else if old > 0 && new == 0 {
            self.holders.remove(&conn.first_packet);
        }
    }

    fn is_reuse(&self, id: ConnId, seg: &TcpSegment) -> bool {
        if id & EMBRYO == 0 {
            self.conns[id as usize].as_ref().unwrap().is_reuse(seg)
        } else {
            self.embryos
                .live(id & !EMBRYO)
                .is_some_and(|e| e.is_reuse(seg))
        }
    }

    /// Puts a connection in the flow cache.
    fn remember(&mut self, ci: usize, key: FlowKey, id: ConnId) {
        let first_packet = if id & EMBRYO == 0 {
            self.conns[id as usize].as_ref().unwrap().first_packet
        } else {
            self.embryos.live(id & !EMBRYO).unwrap().first_packet
        };
        self.cache[ci] = CacheEntry {
            key,
            first_packet,
            id,
        };
    }

    /// A new connection: it starts in the compact table.
    fn open(&mut self, key: FlowKey, hash: u64, at: At) -> ConnId {
        let id = self.embryos.open(key, at) | EMBRYO;
        let Shard {
            table,
            conns,
            embryos,
            ..
        } = self;
        table.insert_unique(hash, id, |&x| key_of(conns, embryos, x).shard_hash());
        self.candidates.insert(at.packet, id);
        self.new_conns.push(ConnRef {
            first_packet: at.packet,
            id,
        });
        self.stats.tcp_connections += 1;
        id
    }

    /// Moves a connection from the compact table to the full one; returns its new id.
    fn promote(&mut self, id: ConnId, hash: u64) -> ConnId {
        let (key, e) = self.embryos.take(id & !EMBRYO);
        let mut conn = Conn::from_embryonic(key, e.embryonic());
        if let Some(spill) = &self.timeline {
            conn.timeline = Some(Box::new(Timeline::new(spill.clone())));
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.conns[s as usize] = Some(conn);
                s
            }
            None => {
                self.conns.push(Some(conn));
                (self.conns.len() - 1) as u32
            }
        };
        *self
            .table
            .find_mut(hash, |&x| x == id)
            .expect("an embryo is in the table") = slot;
        if let Some(c) = self.candidates.get_mut(e.first_packet) {
            *c = slot;
        }
        let r = ConnRef {
            first_packet: e.first_packet,
            id: slot,
        };
        if e.tcp_stream() == u64::MAX {
            self.new_conns.push(r);
        }
        if e.is_closed() {
            self.closing
                .push(Reverse((e.last_ts.saturating_add(self.linger_ns), r)));
        }
        if let Some(f) = &mut self.files {
            f.promote(id, slot, e.first_packet);
        }
        slot
    }

    /// Takes a connection out of the table and records what it was.
    fn retire(&mut self, id: ConnId, evicted: bool) {
        if evicted {
            self.stats.evicted += 1;
        }
        if id & EMBRYO != 0 {
            let (key, e) = self.embryos.take(id & !EMBRYO);
            self.table
                .find_entry(key.shard_hash(), |&x| x == id)
                .expect("an embryo is in the table")
                .remove();
            self.candidates.remove(e.first_packet);
            self.count_without_payload(e.analyzed());
            return;
        }
        let mut conn = self.conns[id as usize].take().expect("live slot");
        self.free.push(id);
        self.table
            .find_entry(conn.key.shard_hash(), |&x| x == id)
            .expect("a connection is in the table")
            .remove();
        self.candidates.remove(conn.first_packet);
        if conn.charged > 0 {
            self.charged -= conn.charged as usize;
            self.holders.remove(&conn.first_packet);
        }
        conn.flush(&self.limits, &self.tls);
        let no_payload = matches!(conn.app, App::Unknown);
        if conn.ignored_payload() {
            self.stats.unrecognised += 1;
        }
        let (gaps, gap_bytes) = conn.gap_counters();
        self.stats.gaps += gaps;
        self.stats.gap_bytes += gap_bytes;
        let analyzed = conn.analyzed();
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
                    let numbers = f.numbers(id, first_packet);
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

    /// A connection that carried no payload is retired: counted as such, or as filtered
    /// out when `--filter` selected none of its packets.
    fn count_without_payload(&mut self, analyzed: bool) {
        if analyzed {
            self.stats.no_payload += 1;
        } else {
            self.stats.filtered_connections += 1;
        }
    }

    /// Gives `tcp_stream` numbers to the connections opened in this batch: `number(packet)`
    /// is the global number of the connection that started at `packet`.
    pub fn assign_streams(&mut self, number: impl Fn(u64) -> u64) {
        for r in self.new_conns.drain(..) {
            if r.id & EMBRYO != 0 {
                let slot = r.id & !EMBRYO;
                if self.embryos.get(slot, r.first_packet).is_some() {
                    self.embryos.at(slot).set_tcp_stream(number(r.first_packet));
                }
            } else if let Some(c) = self.conns[r.id as usize].as_mut() {
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

    /// The last packet time of a live connection `r`.
    fn last_ts(&self, r: ConnRef) -> Option<i64> {
        if r.id & EMBRYO != 0 {
            self.embryos
                .get(r.id & !EMBRYO, r.first_packet)
                .map(|e| e.last_ts)
        } else {
            self.conns[r.id as usize]
                .as_ref()
                .filter(|c| c.first_packet == r.first_packet)
                .map(|c| c.last_ts)
        }
    }

    /// Retires closed connections that have seen nothing for the linger time.
    pub fn expire(&mut self, now: i64) {
        while let Some(Reverse((deadline, r))) = self.closing.peek().copied() {
            if deadline > now {
                break;
            }
            self.closing.pop();
            let Some(last_ts) = self.last_ts(r) else {
                continue;
            };
            let due = last_ts.saturating_add(self.linger_ns);
            if due > now {
                self.closing.push(Reverse((due, r)));
            } else {
                self.retire(r.id, false);
            }
        }
    }

    /// If the candidate `id` (first packet `first_packet`) is still undecided after the
    /// recognition window (capture time `now`), gives up on it: it is not a session and no
    /// longer holds the report back. Returns whether it did.
    pub fn give_up_if_unrecognised(&mut self, first_packet: u64, id: ConnId, now: i64) -> bool {
        let window = self.recognise_ns;
        let expired = |first_ts: i64| first_ts.saturating_add(window) <= now;
        if id & EMBRYO != 0 {
            let slot = id & !EMBRYO;
            match self.embryos.get(slot, first_packet) {
                Some(e) if !e.gave_up() && expired(e.first_ts) => {
                    self.embryos.at(slot).give_up_recognition()
                }
                _ => return false,
            }
        } else {
            match self.conns[id as usize].as_mut() {
                Some(c) if c.undecided() && expired(c.first_ts) => c.give_up_recognition(),
                _ => return false,
            }
            self.account(id);
        }
        self.candidates.remove(first_packet);
        true
    }

    /// What the buffers of this shard's connections hold together (memory budget).
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// (first packet, slot) of the connections whose buffers hold something.
    pub fn holders(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.holders.iter().map(|(&f, &s)| (f, s))
    }

    /// The memory budget is spent: every connection frees the buffers that hold nothing
    /// now (nothing is lost). Returns the bytes released.
    pub fn trim(&mut self) -> usize {
        let slots: Vec<u32> = self.holders.values().copied().collect();
        let mut released = 0;
        for slot in slots {
            if let Some(c) = self.conns[slot as usize].as_mut() {
                released += c.trim_memory();
                self.account(slot);
            }
        }
        released
    }

    /// The memory budget is spent: full connection `slot` gives up its buffers. Returns
    /// the bytes released.
    pub fn release(&mut self, slot: u32) -> usize {
        let Some(conn) = self.conns[slot as usize].as_mut() else {
            return 0;
        };
        let was_candidate = conn.may_be_session();
        let first_time = !conn.over_budget();
        let released = conn.release_memory(&self.limits, &self.tls);
        if was_candidate && !conn.may_be_session() {
            self.candidates.remove(conn.first_packet);
        }
        if first_time {
            self.stats.memory_budget += 1;
        }
        self.stats.memory_budget_bytes += released as u64;
        self.account(slot);
        released
    }

    /// (last packet time, identity) of every live connection, for global eviction.
    pub fn idle_order(&self) -> impl Iterator<Item = (i64, ConnRef)> + '_ {
        let full = self.conns.iter().enumerate().filter_map(|(i, c)| {
            c.as_ref().map(|c| {
                (
                    c.last_ts,
                    ConnRef {
                        first_packet: c.first_packet,
                        id: i as u32,
                    },
                )
            })
        });
        let compact = self.embryos.idle_order().map(|(t, f, s)| {
            (
                t,
                ConnRef {
                    first_packet: f,
                    id: s | EMBRYO,
                },
            )
        });
        full.chain(compact)
    }

    pub fn evict(&mut self, r: ConnRef) {
        if self.last_ts(r).is_some() {
            self.retire(r.id, true);
        }
    }

    /// End of the capture, oldest first: retires the connection [`front`](Self::front)
    /// names (one without payload makes no record: it waits for [`finish`](Self::finish)).
    pub fn retire_front(&mut self) {
        let Some((first_packet, id)) = self.front() else {
            return;
        };
        if id & EMBRYO == 0 && self.last_ts(ConnRef { first_packet, id }).is_some() {
            self.retire(id, false);
        }
        self.candidates.remove(first_packet);
    }

    /// End of the capture: every connection is retired.
    pub fn finish(&mut self) {
        for slot in 0..self.conns.len() as u32 {
            if self.conns[slot as usize].is_some() {
                self.retire(slot, false);
            }
        }
        // Connections without payload: counted, and dropped all at once.
        let analyzed = self.embryos.analyzed();
        self.stats.no_payload += analyzed as u64;
        self.stats.filtered_connections += (self.embryos.len() - analyzed) as u64;
        self.embryos = Embryos::default();
        self.table = HashTable::new();
        self.candidates = Candidates::default();
        self.closing.clear();
    }
}
