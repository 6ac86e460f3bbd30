//! A DEFLATE decoder (RFC 1951) for the common case of permessage-deflate (RFC 7692): a
//! whole message of a few KiB, decoded in one call straight after the direction's window
//! (RFC 7692 §7.2.1: the previous messages' last bytes), with no dictionary copy and no
//! streaming state.
//!
//! It is a fast path only: it declines (`None`) whatever it is not certain to decode the
//! way zlib does — a final block (BFINAL), an incomplete or over-subscribed code, a
//! distance before the window, any invalid symbol, input that does not end exactly after
//! a block, output past the buffer's capacity — and the caller then inflates the message
//! with zlib, which decides. A message it accepts is therefore inflated to the same
//! bytes as zlib's (DEFLATE is deterministic over valid streams).

/// Longest code (RFC 1951 §3.2.2).
const MAX_BITS: usize = 15;
/// Bits of the direct lookup table: every fixed code fits (§3.2.6: 7 to 9 bits).
const ROOT: u32 = 9;

/// Length base and extra bits of length symbols 257..=285 (§3.2.5).
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
    131, 163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Distance base and extra bits of distance symbols 0..=29 (§3.2.5).
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order of the code length code lengths (§3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A canonical Huffman code (§3.2.2): a direct table for codes of up to [`ROOT`] bits,
/// and the counts and sorted symbols for longer ones (decoded a bit at a time).
pub struct Huffman {
    count: [u16; MAX_BITS + 1],
    symbol: [u16; 288],
    /// Indexed by the next `ROOT` input bits: `symbol << 4 | length`; 0 = a longer code.
    fast: [u16; 1 << ROOT],
}

impl Huffman {
    fn empty() -> Self {
        Huffman {
            count: [0; MAX_BITS + 1],
            symbol: [0; 288],
            fast: [0; 1 << ROOT],
        }
    }

    /// Builds the code of `lengths` (one per symbol, 0 = unused). `false` if the code is
    /// over-subscribed or incomplete (zlib accepts some incomplete codes: declined here).
    fn build(&mut self, lengths: &[u8]) -> bool {
        self.count = [0; MAX_BITS + 1];
        for &l in lengths {
            self.count[l as usize] += 1;
        }
        self.count[0] = 0;
        let mut left: i32 = 1;
        for len in 1..=MAX_BITS {
            left = (left << 1) - self.count[len] as i32;
            if left < 0 {
                return false;
            }
        }
        if left != 0 {
            return false;
        }
        let mut offs = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offs[len + 1] = offs[len] + self.count[len];
        }
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                self.symbol[offs[l as usize] as usize] = sym as u16;
                offs[l as usize] += 1;
            }
        }
        self.fast = [0; 1 << ROOT];
        // Canonical codes: consecutive within a length, in symbol order (§3.2.2).
        let mut code: u32 = 0;
        let mut index = 0usize;
        for len in 1..=ROOT as usize {
            for _ in 0..self.count[len] {
                let sym = self.symbol[index];
                index += 1;
                // The stream holds a code's bits from its most significant one (§3.1.1).
                let rev = code.reverse_bits() >> (32 - len);
                let entry = sym << 4 | len as u16;
                let mut i = rev as usize;
                while i < 1 << ROOT {
                    self.fast[i] = entry;
                    i += 1 << len;
                }
                code += 1;
            }
            code <<= 1;
        }
        true
    }

    /// The fixed codes of §3.2.6: (literal/length, distance).
    fn fixed() -> (Huffman, Huffman) {
        let mut l = [0u8; 288];
        l[..144].fill(8);
        l[144..256].fill(9);
        l[256..280].fill(7);
        l[280..].fill(8);
        let mut lit = Huffman::empty();
        let mut dist = Huffman::empty();
        // 30 distance codes of 5 bits and the two invalid ones (30, 31): complete.
        let ok = lit.build(&l) && dist.build(&[5; 32]);
        debug_assert!(ok);
        (lit, dist)
    }
}

/// Reusable tables (per thread): the fixed codes, and room for a dynamic block's.
pub struct Tables {
    fixed_lit: Huffman,
    fixed_dist: Huffman,
    lit: Huffman,
    dist: Huffman,
    codes: Huffman,
}

impl Default for Tables {
    fn default() -> Self {
        let (fixed_lit, fixed_dist) = Huffman::fixed();
        Tables {
            fixed_lit,
            fixed_dist,
            lit: Huffman::empty(),
            dist: Huffman::empty(),
            codes: Huffman::empty(),
        }
    }
}

/// Input bits, least significant first (§3.1.1).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    cnt: u32,
}

impl Bits<'_> {
    #[inline(always)]
    fn refill(&mut self) {
        if self.cnt > 56 {
            return;
        }
        if let Some(w) = self.data.get(self.pos..self.pos + 8) {
            self.buf |= u64::from_le_bytes(w.try_into().unwrap()) << self.cnt;
            self.pos += ((63 - self.cnt) >> 3) as usize;
            self.cnt |= 56;
        } else {
            while self.cnt <= 56 && self.pos < self.data.len() {
                self.buf |= (self.data[self.pos] as u64) << self.cnt;
                self.pos += 1;
                self.cnt += 8;
            }
        }
    }

    /// `n` (<= 16) bits, or `None` past the end of the input.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> Option<u32> {
        if self.cnt < n {
            self.refill();
            if self.cnt < n {
                return None;
            }
        }
        let v = (self.buf & ((1u64 << n) - 1)) as u32;
        self.buf >>= n;
        self.cnt -= n;
        Some(v)
    }

    /// One symbol of `h`.
    #[inline(always)]
    fn decode(&mut self, h: &Huffman) -> Option<u16> {
        if self.cnt < MAX_BITS as u32 {
            self.refill();
        }
        let e = h.fast[(self.buf & ((1 << ROOT) - 1)) as usize];
        let len = (e & 15) as u32;
        if len != 0 {
            if len > self.cnt {
                return None;
            }
            self.buf >>= len;
            self.cnt -= len;
            return Some(e >> 4);
        }
        // A code longer than ROOT bits: canonical decoding, a bit at a time.
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS as u32 {
            if len > self.cnt {
                return None;
            }
            code |= ((self.buf >> (len - 1)) & 1) as i32;
            let count = h.count[len as usize] as i32;
            if code - count < first {
                self.buf >>= len;
                self.cnt -= len;
                return Some(h.symbol[(index + (code - first)) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

/// Inflates `input` (a whole message's payload with `00 00 ff ff` appended, RFC 7692
/// §7.2.2) by appending to `out`, whose last `window` bytes are the history that
/// distances may reach (`window` <= `out.len()`). Never grows `out` past its capacity.
/// `None`: declined (see the module doc); `out` then holds junk past its original length,
/// which the caller truncates.
pub fn message(input: &[u8], out: &mut Vec<u8>, window: usize, t: &mut Tables) -> Option<()> {
    let base = out.len() - window;
    let mut b = Bits {
        data: input,
        pos: 0,
        buf: 0,
        cnt: 0,
    };
    loop {
        if b.cnt == 0 && b.pos == input.len() {
            // Input ends after a block (the appended empty stored block): done.
            return Some(());
        }
        if b.bits(1)? != 0 {
            // BFINAL: the stream ends inside the message; zlib says what follows.
            return None;
        }
        match b.bits(2)? {
            0 => stored(&mut b, out)?,
            1 => codes(&mut b, out, base, &t.fixed_lit, &t.fixed_dist)?,
            2 => {
                dynamic_tables(&mut b, t)?;
                codes(&mut b, out, base, &t.lit, &t.dist)?;
            }
            _ => return None,
        }
    }
}

/// A stored block (§3.2.4), after its header bits.
fn stored(b: &mut Bits<'_>, out: &mut Vec<u8>) -> Option<()> {
    // Skip to a byte boundary; the bytes still in the bit buffer go back to the input.
    let drop = b.cnt % 8;
    b.buf >>= drop;
    b.cnt -= drop;
    b.pos -= (b.cnt / 8) as usize;
    b.buf = 0;
    b.cnt = 0;
    let h = b.data.get(b.pos..b.pos + 4)?;
    let len = u16::from_le_bytes([h[0], h[1]]);
    let nlen = u16::from_le_bytes([h[2], h[3]]);
    if len != !nlen {
        return None;
    }
    b.pos += 4;
    let d = b.data.get(b.pos..b.pos + len as usize)?;
    if out.capacity() - out.len() < d.len() {
        return None;
    }
    out.extend_from_slice(d);
    b.pos += len as usize;
    Some(())
}

/// A dynamic block's code definitions (§3.2.7) into `t.lit` and `t.dist`.
fn dynamic_tables(b: &mut Bits<'_>, t: &mut Tables) -> Option<()> {
    let nlen = b.bits(5)? as usize + 257;
    let ndist = b.bits(5)? as usize + 1;
    let ncode = b.bits(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return None;
    }
    let mut lengths = [0u8; 286 + 30];
    for &i in &CL_ORDER[..ncode] {
        lengths[i] = b.bits(3)? as u8;
    }
    if !t.codes.build(&lengths[..19]) {
        return None;
    }
    let n = nlen + ndist;
    let mut i = 0;
    while i < n {
        let sym = b.decode(&t.codes)?;
        let (value, repeat) = match sym {
            0..=15 => {
                lengths[i] = sym as u8;
                i += 1;
                continue;
            }
            16 => {
                if i == 0 {
                    return None;
                }
                (lengths[i - 1], 3 + b.bits(2)? as usize)
            }
            17 => (0, 3 + b.bits(3)? as usize),
            _ => (0, 11 + b.bits(7)? as usize),
        };
        if i + repeat > n {
            return None;
        }
        lengths[i..i + repeat].fill(value);
        i += repeat;
    }
    // A block must be able to end (§3.2.5: symbol 256).
    if lengths[256] == 0 {
        return None;
    }
    if !t.lit.build(&lengths[..nlen]) || !t.dist.build(&lengths[nlen..n]) {
        return None;
    }
    Some(())
}

/// A block's compressed data (§3.2.5), up to its end-of-block symbol. Distances may
/// reach back to `out[base]`.
fn codes(
    b: &mut Bits<'_>,
    out: &mut Vec<u8>,
    base: usize,
    lit: &Huffman,
    dist: &Huffman,
) -> Option<()> {
    loop {
        let sym = b.decode(lit)?;
        if sym < 256 {
            if out.len() == out.capacity() {
                return None;
            }
            out.push(sym as u8);
            continue;
        }
        if sym == 256 {
            return Some(());
        }
        let s = (sym - 257) as usize;
        if s >= 29 {
            return None;
        }
        let len = LEN_BASE[s] as usize + b.bits(LEN_EXTRA[s] as u32)? as usize;
        let ds = b.decode(dist)? as usize;
        if ds >= 30 {
            return None;
        }
        let d = DIST_BASE[ds] as usize + b.bits(DIST_EXTRA[ds] as u32)? as usize;
        let at = out.len();
        if d > at - base || out.capacity() - at < len {
            return None;
        }
        let from = at - d;
        if d >= len {
            out.extend_from_within(from..from + len);
        } else {
            // Overlapping: the copy repeats the last `d` bytes (§3.2.3).
            for i in 0..len {
                let c = out[from + i];
                out.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

    /// zlib's inflation of `input` with `dict` as the window, or `None` on an error.
    fn zlib(dict: &[u8], input: &[u8]) -> Option<Vec<u8>> {
        let mut z = Decompress::new_with_window_bits(false, 15);
        if !dict.is_empty() {
            z.set_dictionary(dict).ok()?;
        }
        let mut out = Vec::with_capacity(1 << 20);
        z.decompress_vec(input, &mut out, FlushDecompress::Sync)
            .ok()?;
        Some(out)
    }

    /// What [`message`] makes of `input` after `dict`: `Some` output or declined.
    fn fast(dict: &[u8], input: &[u8], cap: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(dict.len() + cap);
        out.extend_from_slice(dict);
        message(input, &mut out, dict.len(), &mut Tables::default())?;
        Some(out[dict.len()..].to_vec())
    }

    fn sync_message(c: &mut Compress, m: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(m.len() * 2 + 1024);
        c.compress_vec(m, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out
    }

    #[test]
    fn matches_zlib_on_messages_with_context_takeover() {
        for level in [1, 6, 9] {
            let mut c = Compress::new_with_window_bits(Compression::new(level), false, 12);
            let mut history: Vec<u8> = Vec::new();
            let mut seed = 7u32;
            let mut fast_ok = 0;
            for i in 0..300 {
                let mut m = format!("{{\"t\":\"msg\",\"id\":{i},\"text\":\"");
                let n = (i * 37) % 900;
                while m.len() < n {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    m.push_str(["café ", "deploy ", "👍 ", "p99 ", "x"][(seed >> 16) as usize % 5]);
                }
                m.push_str("\"}");
                let input = sync_message(&mut c, m.as_bytes());
                let dict = &history[history.len().saturating_sub(4096)..];
                let want = zlib(dict, &input).unwrap();
                assert_eq!(want, m.as_bytes());
                if let Some(got) = fast(dict, &input, 1 << 16) {
                    assert_eq!(got, want, "level {level} message {i}");
                    fast_ok += 1;
                }
                history.extend_from_slice(m.as_bytes());
            }
            assert_eq!(fast_ok, 300, "level {level}: every zlib message decodes");
        }
    }

    #[test]
    fn stored_blocks_and_a_full_buffer() {
        let mut c = Compress::new_with_window_bits(Compression::new(0), false, 15);
        let m: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let input = sync_message(&mut c, &m);
        assert_eq!(fast(&[], &input, 5000), Some(m.clone()));
        assert_eq!(fast(&[], &input, 4999), None, "past the capacity: declined");
    }

    #[test]
    fn declines_what_zlib_rejects_or_ends() {
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let ok = sync_message(&mut c, b"hello hello hello hello");
        // Every truncation and every single-bit flip: never accepted with output that
        // differs from zlib's.
        for cut in 0..ok.len() {
            let input = &ok[..cut];
            if let Some(got) = fast(&[], input, 1 << 12) {
                assert_eq!(Some(got), zlib(&[], input), "cut {cut}");
            }
        }
        for bit in 0..ok.len() * 8 {
            let mut input = ok.clone();
            input[bit / 8] ^= 1 << (bit % 8);
            if let Some(got) = fast(&[], &input, 1 << 12) {
                assert_eq!(Some(got), zlib(&[], &input), "bit {bit}");
            }
        }
        // A final block (BFINAL): declined.
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut fin = Vec::with_capacity(256);
        c.compress_vec(b"end", &mut fin, FlushCompress::Finish)
            .unwrap();
        assert_eq!(fast(&[], &fin, 1 << 12), None);
        // A distance before the window: declined.
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let _ = sync_message(&mut c, b"abcdefghijklmnop");
        let refers = sync_message(&mut c, b"abcdefghijklmnop");
        assert_eq!(fast(&[], &refers, 1 << 12), None);
        assert_eq!(
            fast(b"abcdefghijklmnop", &refers, 1 << 12).as_deref(),
            Some(&b"abcdefghijklmnop"[..])
        );
    }
}
