//! The live connections of a shard that are or may become sessions, by first packet: the
//! earliest one is what the report waits for (the watermark).
//!
//! A shard opens connections in capture order, so first packets only grow and this is a
//! sorted deque (16 bytes a connection, less than half a B-tree's): removal marks an entry
//! (found by binary search), marks at the front are dropped at once, and the deque is
//! compacted when most of it is marks.

use std::collections::VecDeque;

use super::ConnId;

/// Marks a removed entry (no connection has this id: slots stay below 2^31 - 1).
const GONE: ConnId = ConnId::MAX;

#[derive(Debug, Default)]
pub struct Candidates {
    q: VecDeque<(u64, ConnId)>,
    gone: usize,
}

impl Candidates {
    /// Adds a connection; its first packet is later than every one here.
    pub fn insert(&mut self, first_packet: u64, id: ConnId) {
        debug_assert!(id != GONE);
        debug_assert!(self.q.back().is_none_or(|&(f, _)| f < first_packet));
        self.q.push_back((first_packet, id));
    }

    fn find(&self, first_packet: u64) -> Option<usize> {
        let i = self
            .q
            .binary_search_by_key(&first_packet, |&(f, _)| f)
            .ok()?;
        (self.q[i].1 != GONE).then_some(i)
    }

    /// The id of the connection that started at `first_packet`.
    pub fn get(&self, first_packet: u64) -> Option<ConnId> {
        self.find(first_packet).map(|i| self.q[i].1)
    }

    /// The id of the connection that started at `first_packet`, to change it.
    pub fn get_mut(&mut self, first_packet: u64) -> Option<&mut ConnId> {
        let i = self.find(first_packet)?;
        Some(&mut self.q[i].1)
    }

    pub fn remove(&mut self, first_packet: u64) {
        let Some(i) = self.find(first_packet) else {
            return;
        };
        self.q[i].1 = GONE;
        self.gone += 1;
        while self.q.front().is_some_and(|&(_, id)| id == GONE) {
            self.q.pop_front();
            self.gone -= 1;
        }
        if self.gone > 64 && self.gone * 2 > self.q.len() {
            self.q.retain(|&(_, id)| id != GONE);
            self.gone = 0;
            if self.q.capacity() > 4 * self.q.len().max(64) {
                self.q.shrink_to(2 * self.q.len());
            }
        }
    }

    /// The earliest one: (first packet, id).
    pub fn first(&self) -> Option<(u64, ConnId)> {
        self.q.front().copied()
    }

    /// Connections here.
    pub fn len(&self) -> usize {
        self.q.len() - self.gone
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Against a B-tree, over a deterministic mix of inserts, removals and updates.
    #[test]
    fn behaves_like_an_ordered_map() {
        let mut c = Candidates::default();
        let mut m = BTreeMap::new();
        let mut x: u64 = 7;
        let mut next = 1u64;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            match r % 4 {
                0 | 1 => {
                    next += 1 + (r % 3) as u64;
                    c.insert(next, step);
                    m.insert(next, step);
                }
                2 => {
                    // Remove a present one (or, sometimes, one that is not there).
                    let k = m.keys().nth(r % (m.len() + 1)).copied().unwrap_or(next + 1);
                    c.remove(k);
                    m.remove(&k);
                }
                _ => {
                    if let Some((&k, _)) = m.iter().nth(r % (m.len().max(1))) {
                        *c.get_mut(k).unwrap() = step;
                        m.insert(k, step);
                    }
                }
            }
            assert_eq!(c.first(), m.first_key_value().map(|(&k, &v)| (k, v)));
            assert_eq!(c.len(), m.len());
        }
        for (&k, &v) in &m {
            assert_eq!(c.get_mut(k).copied(), Some(v));
        }
    }
}
