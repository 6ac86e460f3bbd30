//! Deterministic synthetic capture generator (std only, but for the RustCrypto crates
//! wsclose itself uses, to write TLS 1.3 records).
//!
//! * [`pcap`]: classic pcap / pcapng writers and link-layer framing.
//! * [`packet`]: IPv4/IPv6 + TCP/UDP packet builders with correct checksums.
//! * [`tcp`]: a TCP connection simulator with capture impairments.
//! * [`ws`]: RFC 6455 helpers (handshake, SHA-1/base64, frame encoder).
//! * [`scenario`]: ground-truth tracking ([`ExpectedSession`]) and the
//!   streaming scenario generator ([`generate`]).
//! * [`tls`]: TLS 1.3 (AES-128-GCM) records and the key log, for `wss://` captures.
//! * [`fixtures`]: the hand-built fixture captures.
//! * [`crowd`]: a million connections at once, streamed (memory measurements).
//!
//! Everything is driven by the seeded [`Rng`]: the same configuration always
//! produces byte-identical output.

pub mod crowd;
pub mod fixtures;
pub mod packet;
pub mod pcap;
pub mod scenario;
pub mod tcp;
pub mod tls;
pub mod ws;

pub use scenario::{
    csv_header, expected_csv, generate, generate_with, generate_with_keylog, ExpectedSession,
    GenConfig, GenSummary, Mix, Tracker, WsConn, COLUMNS,
};

/// SplitMix64 pseudo random number generator (deterministic, tiny, fast).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// Creates a generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// Uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform integer in `lo..=hi` (both > 0).
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo.max(1)) as f64, (hi.max(lo).max(1)) as f64);
        let v = (l.ln() + self.unit() * (h.ln() - l.ln())).exp() as u64;
        v.clamp(lo, hi)
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rem = chunks.into_remainder();
        if !rem.is_empty() {
            let v = self.next_u64().to_le_bytes();
            let n = rem.len();
            rem.copy_from_slice(&v[..n]);
        }
    }

    /// Derives an independent generator.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let r = a.range(20, 500);
            assert!((20..=500).contains(&r));
            b.range(20, 500);
            let l = a.log_range(65536, 4 << 20);
            assert!((65536..=4 << 20).contains(&l));
            b.log_range(65536, 4 << 20);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
