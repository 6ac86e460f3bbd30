use super::*;
use proptest::prelude::*;

const LIMITS: ReassemblyLimits = ReassemblyLimits {
    max_held_bytes: 1 << 20,
    max_held_segments: 512,
    max_seq_ahead: 1 << 30,
};

/// Collects events as a byte stream where gaps are shown as '?' bytes.
#[derive(Default)]
struct Collected {
    bytes: Vec<u8>,
    gaps: Vec<u64>,
}

impl Collected {
    fn sink(&mut self) -> impl FnMut(Event<'_>) + '_ {
        move |e| match e {
            Event::Data(d) => self.bytes.extend_from_slice(d),
            Event::Gap(n) => {
                self.gaps.push(n);
                self.bytes.extend(std::iter::repeat_n(b'?', n as usize));
            }
        }
    }
}

#[test]
fn in_order_with_wraparound() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    let isn = u32::MAX - 5;
    h.syn(isn);
    let mut seq = isn.wrapping_add(1);
    for chunk in [&b"hello "[..], b"wrapped ", b"world"] {
        h.segment(seq, chunk, 0, false, &LIMITS, &mut c.sink());
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    h.segment(seq, b"", 0, true, &LIMITS, &mut c.sink());
    assert_eq!(c.bytes, b"hello wrapped world");
    assert!(h.finished());
}

#[test]
fn reorder_duplicate_overlap_first_wins() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(999);
    h.segment(1005, b"56789", 0, false, &LIMITS, &mut c.sink());
    h.segment(1003, b"34XX", 0, false, &LIMITS, &mut c.sink()); // overlaps held "56"
    assert!(c.bytes.is_empty());
    h.segment(1000, b"012", 0, false, &LIMITS, &mut c.sink());
    h.segment(1000, b"012", 0, false, &LIMITS, &mut c.sink()); // duplicate
    assert_eq!(c.bytes, b"0123456789");
    assert!(c.gaps.is_empty());
}

#[test]
fn ack_past_a_hole_declares_the_gap() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(0);
    h.segment(1, b"aaaa", 0, false, &LIMITS, &mut c.sink());
    h.segment(9, b"cccc", 0, false, &LIMITS, &mut c.sink()); // bytes 5..9 lost
    h.acked(13, &LIMITS, &mut c.sink());
    assert_eq!(c.bytes, b"aaaa????cccc");
    assert_eq!(c.gaps, vec![4]);
    assert_eq!(h.counters.gap_bytes, 4);
}

#[test]
fn snaplen_cut_is_a_gap_of_known_length() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.segment(100, b"ab", 3, false, &LIMITS, &mut c.sink());
    h.segment(105, b"f", 0, true, &LIMITS, &mut c.sink());
    assert_eq!(c.bytes, b"ab???f");
    assert_eq!(h.counters.cut_bytes, 3);
    assert!(h.finished());
}

#[test]
fn flush_declares_holes_and_missing_tail() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(0);
    h.segment(1, b"a", 0, false, &LIMITS, &mut c.sink());
    h.segment(5, b"e", 0, false, &LIMITS, &mut c.sink());
    h.segment(9, b"", 0, true, &LIMITS, &mut c.sink()); // FIN at offset 8: 6..8 missing
    h.flush(&mut c.sink());
    assert_eq!(c.bytes, b"a???e???");
    assert!(h.finished());
}

#[test]
fn keepalive_and_old_segments_are_ignored() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(0);
    h.segment(1, b"abc", 0, false, &LIMITS, &mut c.sink());
    h.segment(3, b"c", 0, false, &LIMITS, &mut c.sink()); // keep-alive with one old byte
    h.segment(0, b"", 0, false, &LIMITS, &mut c.sink());
    h.segment(4, b"d", 0, false, &LIMITS, &mut c.sink());
    assert_eq!(c.bytes, b"abcd");
}

#[test]
fn overflow_of_held_bytes_forces_a_gap() {
    let limits = ReassemblyLimits {
        max_held_bytes: 8,
        max_held_segments: 4,
        max_seq_ahead: 1 << 30,
    };
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(0);
    h.segment(3, b"cccc", 0, false, &limits, &mut c.sink());
    h.segment(7, b"dddd", 0, false, &limits, &mut c.sink());
    h.segment(11, b"eeee", 0, false, &limits, &mut c.sink()); // over the cap
    assert_eq!(c.bytes, b"??ccccddddeeee");
    assert_eq!(h.counters.ooo_overflows, 1);
    assert_eq!(h.counters.gap_bytes, 2);
}

proptest! {
    /// Any segmentation, reordering and duplication of the same bytes gives the same
    /// stream, as long as every byte is seen at least once.
    #[test]
    fn any_segmentation_order_and_duplication(
        data in proptest::collection::vec(any::<u8>(), 1..3000),
        cuts in proptest::collection::vec(1usize..400, 1..40),
        isn in any::<u32>(),
        order_seed in any::<u64>(),
        dups in proptest::collection::vec(any::<u16>(), 0..10),
    ) {
        let mut segs = Vec::new();
        let mut at = 0usize;
        let mut ci = 0;
        while at < data.len() {
            let n = cuts[ci % cuts.len()].min(data.len() - at);
            segs.push((at, n));
            at += n;
            ci += 1;
        }
        for d in &dups {
            let s = segs[*d as usize % segs.len()];
            segs.push(s);
        }
        // Deterministic shuffle, but keep within a window of 16 so nothing overflows.
        let mut rng = order_seed | 1;
        for i in (1..segs.len()).rev() {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            let j = i.saturating_sub((rng % 16) as usize);
            segs.swap(i, j);
        }
        let mut h = HalfStream::default();
        let mut c = Collected::default();
        h.syn(isn);
        for (off, n) in segs {
            let seq = isn.wrapping_add(1).wrapping_add(off as u32);
            h.segment(seq, &data[off..off + n], 0, false, &LIMITS, &mut c.sink());
        }
        h.flush(&mut c.sink());
        prop_assert_eq!(c.gaps.len(), 0);
        prop_assert_eq!(c.bytes, data);
    }
}

#[test]
fn held_cut_off_segments_keep_their_missing_bytes() {
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.syn(0);
    // Offsets: "abcd" 0..4, "ef" 4..6 then 6..8 cut off, then 7..10 all cut off.
    h.segment(5, b"ef", 2, false, &LIMITS, &mut c.sink());
    h.segment(8, b"", 3, false, &LIMITS, &mut c.sink());
    h.segment(1, b"abcd", 0, false, &LIMITS, &mut c.sink());
    assert_eq!(c.bytes, b"abcdef????");
    assert_eq!(h.counters.cut_bytes, 4);
}

#[test]
fn a_probe_one_below_the_next_byte_does_not_start_a_midstream_stream() {
    // Picked up mid-stream: the first packet is a zero-window probe (seq = next - 1, no
    // payload), then the peer acknowledges the next byte, then the data.
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.bare(999, &LIMITS);
    h.acked(1000, &LIMITS, &mut c.sink());
    h.segment(1000, b"data", 0, false, &LIMITS, &mut c.sink());
    assert_eq!(
        (c.bytes.as_slice(), c.gaps.as_slice()),
        (&b"data"[..], &[][..])
    );
    // The same without the ACK first.
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.bare(999, &LIMITS);
    h.segment(1000, b"data", 0, false, &LIMITS, &mut c.sink());
    assert_eq!(
        (c.bytes.as_slice(), c.gaps.as_slice()),
        (&b"data"[..], &[][..])
    );
    // A bare ACK at the next byte stays the start; a real hole is still a gap.
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.bare(1000, &LIMITS);
    h.segment(1003, b"x", 0, false, &LIMITS, &mut c.sink());
    h.flush(&mut c.sink());
    assert_eq!(c.gaps, [3]);
}

#[test]
fn bytes_just_before_a_midstream_start_without_payload_are_the_stream() {
    // Picked up mid-stream, the capture holds a FIN before the data it ends (both sent
    // together, captured out of order): the data ends where the FIN stands.
    let mut h = HalfStream::default();
    let mut c = Collected::default();
    h.segment(1032, b"", 0, true, &LIMITS, &mut c.sink());
    let close = [7u8; 32];
    // New bytes, not a retransmission.
    assert_eq!(
        h.segment(1000, &close, 0, false, &LIMITS, &mut c.sink()),
        Carried::New
    );
    assert_eq!(
        (c.bytes.as_slice(), c.gaps.as_slice()),
        (&close[..], &[][..])
    );
    assert_eq!(h.position(), 32);
    assert!(h.finished());
    // The bytes a direction delivers: after a bare ACK at `bare` if given, then `segments`
    // (sequence number, payload) in that order.
    let delivered = |bare: Option<u32>, segments: &[(u32, &[u8])]| {
        let mut h = HalfStream::default();
        let mut c = Collected::default();
        if let Some(ack) = bare {
            h.bare(ack, &LIMITS);
        }
        for &(seq, payload) in segments {
            h.segment(seq, payload, 0, false, &LIMITS, &mut c.sink());
        }
        c.bytes
    };
    // The same after a bare ACK first.
    assert_eq!(
        delivered(Some(1000), &[(990, b"0123456789"), (1000, b"abc")]),
        b"0123456789abc"
    );
    // A keep-alive probe (one byte below the next) is not data.
    assert_eq!(
        delivered(Some(1000), &[(999, b"x"), (1000, b"data")]),
        b"data"
    );
    // Once a byte was placed, or when the segment does not end at the start, earlier
    // bytes are not the stream's.
    assert_eq!(
        delivered(None, &[(1000, b"abc"), (990, b"0123456789")]),
        b"abc"
    );
    assert_eq!(
        delivered(Some(1000), &[(980, b"0123456789"), (1000, b"abc")]),
        b"abc"
    );
}
