//! Both legs of a proxy: a capture taken on a proxy host (nginx, HAProxy, Envoy) shows
//! each WebSocket twice, client → proxy (the front leg) and proxy → server (the back
//! leg). Proxies forward `Sec-WebSocket-Key` unchanged (RFC 6455 §4.1 makes it a fresh
//! random nonce per connection), so two Upgrade requests with the same key, the later
//! within [`Limits::pair_window_ns`](crate::config::Limits) of the earlier, are the two
//! legs of one session.
//!
//! Two steps, both deterministic for every thread count:
//!
//! - [`Pairing`], at the batch boundary: the Upgrade requests the shards saw in the batch,
//!   in packet order, are matched by key against the recent unpaired ones; each leg's
//!   session learns its peer (a [`Peer`]: the other record's order key). Only requests
//!   of the last `pair_window_ns` of capture time are kept.
//! - [`Legs`], where records leave the reorder buffer in report order and get their
//!   session numbers: a leg whose peer comes later in the report is held back (and the
//!   records after it) until the peer arrives; then both get `peer_session`, and
//!   `closed_by` is drawn from both legs' facts ([`crate::verdict::closed_by`]). Held
//!   records are bounded ([`MAX_HELD_LEGS`]): past it the oldest waiting leg is written
//!   unpaired, and so is its peer.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashTable;
use std::io;

use crate::config::MAX_HELD_LEGS;
use crate::record::{At, Peer, SessionRecord};
use crate::verdict::closed_by;

/// An Upgrade request seen by a shard: its key, its packet, and which session it is.
#[derive(Clone, Debug)]
pub struct UpgradeSeen {
    pub key: String,
    pub at: At,
    /// The shard and the connection (its first packet) and the Upgrade's place on it.
    pub shard: usize,
    pub first_packet: u64,
    pub requests_before_upgrade: u64,
}

impl UpgradeSeen {
    fn order_key(&self) -> (u64, u64) {
        (self.first_packet, self.requests_before_upgrade)
    }
}

/// A Sec-WebSocket-Key as stored for pairing: the 16 bytes it encodes (RFC 6455 §4.1: a
/// base64-encoded 16-byte nonce; canonical base64 decodes one way only), or the text of
/// a key that is not one. Two keys are equal exactly when their texts are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PairKey {
    Nonce([u8; 16]),
    Text(Box<str>),
}

impl PairKey {
    fn new(key: &str) -> Self {
        use base64::Engine as _;
        let mut nonce = [0u8; 16];
        match base64::engine::general_purpose::STANDARD.decode_slice(key, &mut nonce) {
            Ok(16) if key.len() == 24 => PairKey::Nonce(nonce),
            _ => PairKey::Text(key.into()),
        }
    }

    fn hash(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(self)
    }
}

/// An Upgrade request kept for pairing (while it is in the pairing window), in 40 bytes:
/// a proxy host may see a hundred thousand Upgrades a second, each kept for the window.
/// The key's 16 bytes are kept here; a request whose key is not a nonce, or whose numbers
/// do not fit the fields here (a connection's 2^32nd request, a 2^16th shard), is kept
/// whole in [`Pairing::odd`] instead (`ODD`). `LIVE`: it may still pair (not paired, not
/// expired); an entry that is not stays until it leaves the window, as a marker of when
/// its key's older requests expire.
#[derive(Debug)]
struct Entry {
    nonce: [u8; 16],
    ts_ns: i64,
    first_packet: u64,
    requests_before_upgrade: u32,
    shard: u16,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 40);

const LIVE: u8 = 1;
const ODD: u8 = 2;

/// A request kept whole (`ODD`).
#[derive(Debug)]
struct Odd {
    key: PairKey,
    requests_before_upgrade: u64,
    shard: usize,
}

/// The hash of a nonce key, as [`PairKey::hash`] (without building the key).
fn nonce_hash(n: &[u8; 16]) -> u64 {
    PairKey::Nonce(*n).hash()
}

/// Matches Upgrade requests by key within the pairing window.
///
/// The requests of the window are kept in arrival order, compact (40 bytes each, see
/// `Entry`), and an index of 4 bytes per live request from the key's hash to its place:
/// entries are numbered modulo 2^32 (a window never holds 2^32 requests: 160 GiB).
#[derive(Debug, Default)]
pub struct Pairing {
    /// The requests of the window, oldest first; `first` numbers `entries[0]`.
    entries: VecDeque<Entry>,
    first: u64,
    /// Numbers (modulo 2^32) of the live entries, by the hash of their key.
    index: HashTable<u32>,
    /// The `ODD` requests, whole, by number.
    odd: std::collections::HashMap<u64, Odd>,
}

impl Pairing {
    /// The place in `entries` of entry number `m` (modulo 2^32).
    fn pos(&self, m: u32) -> usize {
        m.wrapping_sub(self.first as u32) as usize
    }

    /// Entry number `m`'s full number.
    fn number(&self, m: u32) -> u64 {
        self.first + self.pos(m) as u64
    }

    /// Whether entry number `m` has key `key`.
    fn key_is(&self, m: u32, key: &PairKey) -> bool {
        let e = &self.entries[self.pos(m)];
        if e.flags & ODD != 0 {
            self.odd[&self.number(m)].key == *key
        } else {
            matches!(key, PairKey::Nonce(n) if *n == e.nonce)
        }
    }

    /// The hash of entry number `m`'s key.
    fn key_hash(&self, m: u32) -> u64 {
        let e = &self.entries[self.pos(m)];
        if e.flags & ODD != 0 {
            self.odd[&self.number(m)].key.hash()
        } else {
            nonce_hash(&e.nonce)
        }
    }

    /// Entry number `m` as the request it was.
    fn seen(&self, m: u32) -> UpgradeSeen {
        let e = &self.entries[self.pos(m)];
        let at = At {
            packet: 0,
            ts_ns: e.ts_ns,
        };
        if e.flags & ODD != 0 {
            let o = &self.odd[&self.number(m)];
            UpgradeSeen {
                key: match &o.key {
                    PairKey::Nonce(n) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.encode(n)
                    }
                    PairKey::Text(t) => t.to_string(),
                },
                at,
                shard: o.shard,
                first_packet: e.first_packet,
                requests_before_upgrade: o.requests_before_upgrade,
            }
        } else {
            use base64::Engine as _;
            UpgradeSeen {
                key: base64::engine::general_purpose::STANDARD.encode(e.nonce),
                at,
                shard: e.shard.into(),
                first_packet: e.first_packet,
                requests_before_upgrade: e.requests_before_upgrade.into(),
            }
        }
    }

    /// Entry number `m`'s order key (its session's).
    fn order_key(&self, m: u32) -> (u64, u64) {
        let e = &self.entries[self.pos(m)];
        let rbu = if e.flags & ODD != 0 {
            self.odd[&self.number(m)].requests_before_upgrade
        } else {
            e.requests_before_upgrade.into()
        };
        (e.first_packet, rbu)
    }

    /// Pairs the batch's requests (in any order; sorted here by packet). `pair(front,
    /// back)` is called for each pair; it returns false if either leg can no longer take
    /// a peer, and then the later request stays available for pairing. The earlier
    /// request comes back as kept: its time, not its packet (`at.packet` 0).
    pub fn batch(
        &mut self,
        mut seen: Vec<UpgradeSeen>,
        window_ns: i64,
        now: i64,
        pair: &mut dyn FnMut(&UpgradeSeen, &UpgradeSeen) -> bool,
    ) {
        seen.sort_by_key(|s| s.at.packet);
        for s in seen {
            self.expire(s.at.ts_ns.saturating_sub(window_ns));
            let key = PairKey::new(&s.key);
            let hash = key.hash();
            // The oldest live request with this key, of another session, within the
            // window.
            let found = self
                .index
                .iter_hash(hash)
                .copied()
                .filter(|&m| {
                    self.key_is(m, &key)
                        && self.order_key(m) != s.order_key()
                        && s.at.ts_ns - self.entries[self.pos(m)].ts_ns <= window_ns
                })
                .min_by_key(|&m| self.pos(m));
            let mut paired = false;
            if let Some(m) = found {
                let f = self.seen(m);
                if pair(&f, &s) {
                    self.kill(m, hash);
                    paired = true;
                }
            }
            if !paired {
                let n = self.first + self.entries.len() as u64;
                assert!(
                    self.entries.len() < u32::MAX as usize,
                    "2^32 requests in the window"
                );
                let small = (
                    &key,
                    u32::try_from(s.requests_before_upgrade),
                    u16::try_from(s.shard),
                );
                let mut e = Entry {
                    nonce: [0; 16],
                    ts_ns: s.at.ts_ns,
                    first_packet: s.first_packet,
                    requests_before_upgrade: 0,
                    shard: 0,
                    flags: LIVE,
                };
                match small {
                    (PairKey::Nonce(k), Ok(r), Ok(sh)) => {
                        e.nonce = *k;
                        e.requests_before_upgrade = r;
                        e.shard = sh;
                    }
                    _ => {
                        e.flags |= ODD;
                        self.odd.insert(
                            n,
                            Odd {
                                key,
                                requests_before_upgrade: s.requests_before_upgrade,
                                shard: s.shard,
                            },
                        );
                    }
                }
                self.entries.push_back(e);
                // (Rehashing reads the entries through `self`: the index is moved out
                // meanwhile.)
                let mut index = std::mem::take(&mut self.index);
                index.insert_unique(hash, n as u32, |&m| self.key_hash(m));
                self.index = index;
            }
        }
        self.expire(now.saturating_sub(window_ns));
    }

    /// Entry number `m` (key hash `hash`) can no longer pair.
    fn kill(&mut self, m: u32, hash: u64) {
        let p = self.pos(m);
        self.entries[p].flags &= !LIVE;
        if let Ok(e) = self.index.find_entry(hash, |&x| x == m) {
            e.remove();
        }
    }

    /// Forgets requests made before `before`: each request that leaves the window (in
    /// arrival order) takes with it the requests with its key made before `before`.
    fn expire(&mut self, before: i64) {
        while self.entries.front().is_some_and(|e| e.ts_ns < before) {
            let e = self.entries.pop_front().expect("front");
            let gone = self.first;
            self.first += 1;
            let key = if e.flags & ODD != 0 {
                self.odd.remove(&gone).expect("odd entry").key
            } else {
                PairKey::Nonce(e.nonce)
            };
            let hash = key.hash();
            let len = self.entries.len();
            let old: Vec<u32> = self
                .index
                .iter_hash(hash)
                .copied()
                .filter(|&m| {
                    self.pos(m) >= len || {
                        self.key_is(m, &key) && self.entries[self.pos(m)].ts_ns < before
                    }
                })
                .collect();
            for m in old {
                if self.pos(m) < len {
                    let p = self.pos(m);
                    self.entries[p].flags &= !LIVE;
                }
                if let Ok(x) = self.index.find_entry(hash, |&y| y == m) {
                    x.remove();
                }
            }
        }
        if self.entries.is_empty() && self.entries.capacity() > 1024 {
            self.entries = VecDeque::new();
            self.index = HashTable::new();
            self.odd = Default::default();
        }
    }
}

/// A record on its way out, with its session number.
struct Held {
    rec: SessionRecord,
    session: u64,
    /// Waiting for its peer, which comes later in the report.
    waiting: bool,
}

/// Numbers records in report order, holds a leg back until its peer is numbered, and
/// fills `peer_session` and `closed_by`.
#[derive(Default)]
pub struct Legs {
    next_session: u64,
    held: VecDeque<Held>,
    /// Waiting legs by their peer's order key: (own order key).
    waiting: BTreeMap<(u64, u64), (u64, u64)>,
    /// Order keys of legs written unpaired while their peer was still to come.
    abandoned: std::collections::HashSet<(u64, u64)>,
}

impl Legs {
    /// The next record in report order.
    pub fn push(
        &mut self,
        mut rec: SessionRecord,
        out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
    ) -> io::Result<()> {
        self.next_session += 1;
        let session = self.next_session;
        let key = rec.order_key();
        // Legs whose peer should have come before this record never get it (the peer
        // turned out not to be a session).
        while let Some((&pk, _)) = self.waiting.first_key_value() {
            if pk >= key {
                break;
            }
            self.waiting.pop_first();
            self.give_up(pk);
        }
        let peer_key = rec
            .peer
            .map(|p| (p.first_packet, p.requests_before_upgrade));
        let mut waiting = false;
        match (rec.peer, peer_key) {
            (Some(p), Some(pk)) if pk > key => {
                // The peer comes later: wait for it.
                let _ = p;
                self.waiting.insert(pk, key);
                waiting = true;
            }
            (Some(p), Some(pk)) if !self.abandoned.remove(&key) => {
                let found = self.waiting.remove(&key).is_some();
                let other = self
                    .held
                    .iter_mut()
                    .find(|h| h.waiting && h.rec.order_key() == pk);
                match other {
                    Some(h) if found => {
                        rec.peer_session = Some(h.session);
                        h.rec.peer_session = Some(session);
                        let (mine, theirs) = (rec.facts(), h.rec.facts());
                        rec.closed_by = closed_by(&mine, Some((&theirs, p.front)));
                        h.rec.closed_by = closed_by(&theirs, Some((&mine, !p.front)));
                        h.waiting = false;
                    }
                    _ => rec.peer = None,
                }
            }
            _ => rec.peer = None,
        }
        if rec.peer.is_none() {
            rec.closed_by = closed_by(&rec.facts(), None);
        }
        self.held.push_back(Held {
            rec,
            session,
            waiting,
        });
        if self.held.len() > MAX_HELD_LEGS {
            // Bounded memory: the oldest waiting leg goes out unpaired.
            if let Some(h) = self.held.iter().position(|h| h.waiting) {
                let k = self.held[h].rec.order_key();
                let pk = self.held[h]
                    .rec
                    .peer
                    .map(|p| (p.first_packet, p.requests_before_upgrade));
                if let Some(pk) = pk {
                    self.waiting.remove(&pk);
                    self.abandoned.insert(pk);
                }
                self.release(k);
            }
        }
        self.flush(out)
    }

    /// `--order end`: the next record to end (records that end together come in report
    /// order). Records are numbered as they are written; a leg whose peer has not ended
    /// yet waits for it (the others pass it), bounded as in [`push`](Self::push); when
    /// the peer ends, both are written, the waiting one first.
    pub fn push_ended(
        &mut self,
        mut rec: SessionRecord,
        out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
    ) -> io::Result<()> {
        let key = rec.order_key();
        let peer = rec.peer.filter(|_| !self.abandoned.remove(&key));
        let Some(p) = peer else {
            rec.peer = None;
            rec.closed_by = closed_by(&rec.facts(), None);
            self.next_session += 1;
            return out(rec);
        };
        let pk = (p.first_packet, p.requests_before_upgrade);
        let Some(i) = self
            .held
            .iter()
            .position(|h| h.waiting && h.rec.order_key() == pk)
        else {
            // The peer has not ended yet: wait for it.
            self.held.push_back(Held {
                rec,
                session: 0,
                waiting: true,
            });
            if self.held.len() > MAX_HELD_LEGS {
                // Bounded memory: the oldest waiting leg goes out unpaired.
                let mut h = self.held.pop_front().expect("held");
                if let Some(q) = h.rec.peer.take() {
                    self.abandoned
                        .insert((q.first_packet, q.requests_before_upgrade));
                }
                h.rec.closed_by = closed_by(&h.rec.facts(), None);
                self.next_session += 1;
                out(h.rec)?;
            }
            return Ok(());
        };
        let mut h = self.held.remove(i).expect("found");
        h.session = self.next_session + 1;
        let session = self.next_session + 2;
        self.next_session += 2;
        rec.peer_session = Some(h.session);
        h.rec.peer_session = Some(session);
        let (mine, theirs) = (rec.facts(), h.rec.facts());
        rec.closed_by = closed_by(&mine, Some((&theirs, p.front)));
        h.rec.closed_by = closed_by(&theirs, Some((&mine, !p.front)));
        out(h.rec)?;
        out(rec)
    }

    /// `--order end`, the end of the run: legs still waiting are written unpaired.
    pub fn finish_ended(
        &mut self,
        out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
    ) -> io::Result<()> {
        while let Some(mut h) = self.held.pop_front() {
            h.rec.peer = None;
            h.rec.closed_by = closed_by(&h.rec.facts(), None);
            self.next_session += 1;
            out(h.rec)?;
        }
        self.abandoned.clear();
        Ok(())
    }

    /// A waiting leg whose peer will not come (`peer_key`): written unpaired.
    fn give_up(&mut self, peer_key: (u64, u64)) {
        if let Some(h) = self.held.iter().find(|h| {
            h.waiting
                && h.rec
                    .peer
                    .is_some_and(|p| (p.first_packet, p.requests_before_upgrade) == peer_key)
        }) {
            let k = h.rec.order_key();
            self.release(k);
        }
    }

    /// The held leg `key` stops waiting, unpaired.
    fn release(&mut self, key: (u64, u64)) {
        if let Some(h) = self.held.iter_mut().find(|h| h.rec.order_key() == key) {
            h.waiting = false;
            h.rec.peer = None;
            h.rec.closed_by = closed_by(&h.rec.facts(), None);
        }
    }

    /// Writes the held records up to the first one that waits.
    fn flush(&mut self, out: &mut dyn FnMut(SessionRecord) -> io::Result<()>) -> io::Result<()> {
        while self.held.front().is_some_and(|h| !h.waiting) {
            out(self.held.pop_front().unwrap().rec)?;
        }
        Ok(())
    }

    /// The end of the run: legs still waiting are written unpaired.
    pub fn finish(
        &mut self,
        out: &mut dyn FnMut(SessionRecord) -> io::Result<()>,
    ) -> io::Result<()> {
        let keys: Vec<(u64, u64)> = self
            .held
            .iter()
            .filter(|h| h.waiting)
            .map(|h| h.rec.order_key())
            .collect();
        for k in keys {
            self.release(k);
        }
        self.waiting.clear();
        self.flush(out)
    }
}

/// The peer a leg learns when paired.
pub fn peer_of(other: &UpgradeSeen, this_is_front: bool) -> Peer {
    Peer {
        first_packet: other.first_packet,
        requests_before_upgrade: other.requests_before_upgrade,
        front: this_is_front,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(first_packet: u64, peer: Option<(u64, bool)>) -> SessionRecord {
        let mut r = SessionRecord::example();
        r.first_packet = first_packet;
        r.requests_before_upgrade = 0;
        r.peer_session = None;
        r.closed_by = None;
        r.peer = peer.map(|(p, front)| Peer {
            first_packet: p,
            requests_before_upgrade: 0,
            front,
        });
        r
    }

    fn run(recs: Vec<SessionRecord>) -> Vec<(u64, Option<u64>)> {
        let mut legs = Legs::default();
        let mut got = Vec::new();
        let mut out = |r: SessionRecord| {
            got.push((r.first_packet, r.peer_session));
            Ok(())
        };
        for r in recs {
            legs.push(r, &mut out).unwrap();
        }
        legs.finish(&mut out).unwrap();
        got
    }

    #[test]
    fn legs_get_each_others_session_numbers_in_report_order() {
        let got = run(vec![
            rec(1, Some((3, true))),
            rec(2, None),
            rec(3, Some((1, false))),
            rec(4, None),
        ]);
        assert_eq!(got, [(1, Some(3)), (2, None), (3, Some(1)), (4, None)]);
    }

    #[test]
    fn a_peer_that_never_comes_leaves_the_leg_unpaired() {
        let got = run(vec![rec(1, Some((3, true))), rec(2, None), rec(4, None)]);
        assert_eq!(got, [(1, None), (2, None), (4, None)]);
        let got = run(vec![rec(1, Some((9, true))), rec(2, None)]);
        assert_eq!(got, [(1, None), (2, None)]);
    }

    #[test]
    fn pairing_by_key_within_the_window() {
        let seen = |key: &str, packet: u64, ts: i64| UpgradeSeen {
            key: key.into(),
            at: At { packet, ts_ns: ts },
            shard: 0,
            first_packet: packet - 1,
            requests_before_upgrade: 0,
        };
        let mut p = Pairing::default();
        let mut pairs = Vec::new();
        let mut pair = |f: &UpgradeSeen, b: &UpgradeSeen| {
            pairs.push((f.first_packet, b.first_packet, f.at.ts_ns));
            true
        };
        p.batch(
            vec![seen("b", 20, 110), seen("a", 10, 100)],
            50,
            110,
            &mut pair,
        );
        p.batch(
            vec![seen("a", 30, 140), seen("b", 40, 300)],
            50,
            300,
            &mut pair,
        );
        // "a" pairs (10 then 30, 40 ns apart); "b" at 300 is too late for the one at 110.
        assert_eq!(pairs, [(9, 29, 100)]);
    }

    #[test]
    fn nonce_keys_pair_and_odd_requests_come_back_whole() {
        // Real keys (16-byte nonces) and one request too large for the compact entry.
        let k1 = "dGhlIHNhbXBsZSBub25jZQ==";
        let k2 = "AAAAAAAAAAAAAAAAAAAAAA==";
        let seen = |key: &str, first: u64, rbu: u64, shard: usize, ts: i64| UpgradeSeen {
            key: key.into(),
            at: At {
                packet: first + 1,
                ts_ns: ts,
            },
            shard,
            first_packet: first,
            requests_before_upgrade: rbu,
        };
        let mut p = Pairing::default();
        let mut pairs = Vec::new();
        let mut pair = |f: &UpgradeSeen, b: &UpgradeSeen| {
            pairs.push((f.key.clone(), f.order_key(), f.shard, b.order_key()));
            true
        };
        p.batch(
            vec![
                seen(k1, 1, 1 << 40, 70_000, 100),
                seen(k2, 3, 2, 1, 101),
                seen("not a nonce", 5, 0, 0, 102),
            ],
            50,
            102,
            &mut pair,
        );
        assert_eq!(p.odd.len(), 2);
        p.batch(
            vec![
                seen(k2, 20, 0, 0, 120),
                seen(k1, 10, 0, 1, 110),
                seen("not a nonce", 30, 0, 0, 200),
            ],
            50,
            200,
            &mut pair,
        );
        assert_eq!(
            pairs,
            [
                (k1.to_string(), (1, 1 << 40), 70_000, (10, 0)),
                (k2.to_string(), (3, 2), 1, (20, 0)),
            ]
        );
        // Everything before 150 left the window, the odd requests with it.
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.odd.len(), 1);
    }
}
