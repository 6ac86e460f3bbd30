//! `--per-file`: the numbers Wireshark shows when it opens, alone, the input file that
//! holds a session's first packet. A file's `tcp.stream` numbers go to the connections in
//! the order of their first packet *in that file*, so a connection that started in an
//! earlier file of a rotated set takes a number in each later file it has packets in.
//!
//! Each shard notes, per connection, the inputs it has had packets in; a packet from an
//! input not among them is the connection's first there (an *appearance*; interleaved
//! inputs, such as captures of several interfaces, go back and forth). At the batch boundary
//! the appearances of every shard are counted per input in packet order, which gives the
//! new connections their numbers — the same for every thread count.

use std::sync::Arc;

use super::{ConnId, EMBRYO};
use crate::capture::Origin;
use crate::record::FileNumbers;

/// A connection's first packet in an input.
#[derive(Clone, Copy, Debug)]
pub struct Appearance {
    pub packet: u64,
    pub input: u32,
    /// The connection opened with this packet (its id): it gets its numbers from it.
    pub opens: Option<ConnId>,
}

/// Per slot: which connection is there, the inputs it had packets in, and its numbers.
#[derive(Clone, Debug)]
struct SlotFiles {
    first_packet: u64,
    /// Input of its latest packet (the common case: the same as the one before).
    last_input: u32,
    /// Every other input it had packets in (empty while it has been in one only).
    others: Vec<u32>,
    /// (input, number of the first packet in it) of the connection's first packet.
    first: Option<Origin>,
    /// `tcp.stream` in that input, once the batch boundary has counted it.
    tcp_stream: Option<u64>,
}

/// The entry of connection `id` in `slots` or `embryo_slots` (made when first asked for).
fn entry<'a>(
    slots: &'a mut Vec<SlotFiles>,
    embryo_slots: &'a mut Vec<SlotFiles>,
    id: ConnId,
) -> &'a mut SlotFiles {
    let (v, i) = if id & EMBRYO == 0 {
        (slots, id as usize)
    } else {
        (embryo_slots, (id & !EMBRYO) as usize)
    };
    if i >= v.len() {
        v.resize(i + 1, SlotFiles::EMPTY);
    }
    &mut v[i]
}

impl SlotFiles {
    const EMPTY: SlotFiles = SlotFiles {
        first_packet: u64::MAX,
        last_input: u32::MAX,
        others: Vec::new(),
        first: None,
        tcp_stream: None,
    };
}

/// One shard's per-file bookkeeping, by connection id (`flow::ConnId`: a slot of the full
/// table, or of the compact table with [`EMBRYO`] set).
pub struct FileTracker {
    paths: Arc<[Arc<str>]>,
    slots: Vec<SlotFiles>,
    /// The same for connections in the compact table.
    embryo_slots: Vec<SlotFiles>,
    /// Appearances in the current batch, in this shard's packet order.
    pub appearances: Vec<Appearance>,
}

impl FileTracker {
    /// `paths` are the inputs as given, indexed by [`Origin::input`].
    pub fn new(paths: Arc<[Arc<str>]>) -> Self {
        FileTracker {
            paths,
            slots: Vec::new(),
            embryo_slots: Vec::new(),
            appearances: Vec::new(),
        }
    }

    /// The entry of connection `id` (made when first asked for).
    fn entry(&mut self, id: ConnId) -> &mut SlotFiles {
        entry(&mut self.slots, &mut self.embryo_slots, id)
    }

    fn get(&self, id: ConnId) -> Option<&SlotFiles> {
        if id & EMBRYO == 0 {
            self.slots.get(id as usize)
        } else {
            self.embryo_slots.get((id & !EMBRYO) as usize)
        }
    }

    /// The connection that opened at `first_packet` as embryo `from` now has the full
    /// slot `to`: its entry (and its opening appearance of this batch) follow it.
    pub fn promote(&mut self, from: ConnId, to: ConnId, first_packet: u64) {
        let Some(e) = self.get(from).filter(|e| e.first_packet == first_packet) else {
            return;
        };
        let moved = e.clone();
        *self.entry(from) = SlotFiles::EMPTY;
        *self.entry(to) = moved;
        // Appearances are in packet order: the opening one is found by its packet.
        if let Ok(i) = self
            .appearances
            .binary_search_by_key(&first_packet, |a| a.packet)
        {
            if self.appearances[i].opens == Some(from) {
                self.appearances[i].opens = Some(to);
            }
        }
    }

    /// A packet (`origin`) of the connection `slot` that opened at `first_packet`.
    #[inline]
    pub fn note(&mut self, slot: ConnId, first_packet: u64, packet: u64, origin: Origin) {
        let s = entry(&mut self.slots, &mut self.embryo_slots, slot);
        if s.first_packet != first_packet {
            // Another connection in this slot than the last one noted.
            *s = SlotFiles {
                first_packet,
                last_input: u32::MAX,
                others: Vec::new(),
                first: None,
                tcp_stream: None,
            };
        }
        if s.last_input == origin.input {
            return;
        }
        if s.last_input != u32::MAX {
            s.others.push(s.last_input);
        }
        s.last_input = origin.input;
        if let Some(i) = s.others.iter().position(|&x| x == origin.input) {
            // Back in an input it was in before: not a first packet there.
            s.others.swap_remove(i);
            return;
        }
        let opens = packet == first_packet;
        if opens {
            s.first = Some(origin);
        }
        self.appearances.push(Appearance {
            packet,
            input: origin.input,
            opens: opens.then_some(slot),
        });
    }

    /// The connection that opened at `first_packet` in `slot` is numbered `tcp_stream` in
    /// its first input (false if it is no longer in the slot).
    pub fn assign(&mut self, slot: ConnId, first_packet: u64, tcp_stream: u64) -> bool {
        if self
            .get(slot)
            .is_none_or(|s| s.first_packet != first_packet)
        {
            return false;
        }
        self.entry(slot).tcp_stream = Some(tcp_stream);
        true
    }

    /// The numbers of the connection in `slot` (which opened at `first_packet`); its
    /// `tcp_stream` is `u64::MAX` until the batch boundary has counted it.
    pub fn numbers(&self, slot: ConnId, first_packet: u64) -> Option<FileNumbers> {
        let s = self.get(slot)?;
        if s.first_packet != first_packet {
            return None;
        }
        let o = s.first?;
        Some(FileNumbers {
            file: Arc::clone(&self.paths[o.input as usize]),
            tcp_stream: s.tcp_stream.unwrap_or(u64::MAX),
            first_frame: o.number,
        })
    }
}

/// Counts appearances per input, in packet order over all shards.
#[derive(Default)]
pub struct FileCounters {
    seen: Vec<u64>,
}

impl FileCounters {
    /// Numbers the appearances of one batch (sorted by packet): `assign(shard, slot,
    /// first packet, tcp_stream)` for each one that opened a connection.
    pub fn count(
        &mut self,
        mut all: Vec<(usize, Appearance)>,
        mut assign: impl FnMut(usize, u32, u64, u64),
    ) {
        all.sort_unstable_by_key(|(_, a)| a.packet);
        for (shard, a) in all {
            let i = a.input as usize;
            if i >= self.seen.len() {
                self.seen.resize(i + 1, 0);
            }
            let n = self.seen[i];
            self.seen[i] += 1;
            if let Some(slot) = a.opens {
                assign(shard, slot, a.packet, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(input: u32, number: u64) -> Origin {
        Origin { input, number }
    }

    /// Two files of a rotated set: connection A starts in file 0 and goes on in file 1,
    /// where B starts after A's first packet there: B is tcp.stream 1 in file 1.
    #[test]
    fn a_connection_from_the_previous_file_takes_a_number() {
        let paths: Arc<[Arc<str>]> = vec![Arc::from("a.pcap"), Arc::from("b.pcap")].into();
        let mut t = FileTracker::new(paths);
        // Packets 1-2 in file 0 (A), 3.. in file 1: A, then B opens at packet 4.
        t.note(0, 1, 1, o(0, 1));
        t.note(0, 1, 2, o(0, 2));
        t.note(0, 1, 3, o(1, 1));
        t.note(1, 4, 4, o(1, 2));
        t.note(0, 1, 5, o(1, 3));
        let apps: Vec<(usize, Appearance)> = t.appearances.drain(..).map(|a| (0, a)).collect();
        assert_eq!(apps.len(), 3);
        let mut got = Vec::new();
        FileCounters::default().count(apps, |_, slot, fp, n| got.push((slot, fp, n)));
        assert_eq!(got, [(0, 1, 0), (1, 4, 1)]);
        for (slot, fp, n) in got {
            assert!(t.assign(slot, fp, n));
        }
        let b = t.numbers(1, 4).unwrap();
        assert_eq!((&*b.file, b.tcp_stream, b.first_frame), ("b.pcap", 1, 2));
        let a = t.numbers(0, 1).unwrap();
        assert_eq!((&*a.file, a.tcp_stream, a.first_frame), ("a.pcap", 0, 1));
        // Back and forth between inputs: only the first packet in each counts.
        t.note(1, 4, 6, o(0, 3));
        t.note(1, 4, 7, o(1, 4));
        t.note(1, 4, 8, o(0, 4));
        assert_eq!(t.appearances.len(), 1, "{:?}", t.appearances);
        assert_eq!(t.appearances[0].packet, 6);
        // The slot now holds another connection: the old one's numbers are gone.
        t.note(0, 9, 9, o(1, 7));
        assert!(t.numbers(0, 1).is_none());
        assert!(!t.assign(0, 1, 0));
    }
}
