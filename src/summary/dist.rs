//! Bounded distributions: a log-scale histogram whose buckets are 1% wide (so a quantile
//! read from it is within 1% of the true value), with the exact count, minimum and
//! maximum. Memory is fixed by the range, never by the number of values.

/// Buckets per factor of e: ln(1.01) ≈ 0.00995, so each bucket spans 1%.
const PER_E: f64 = 100.5;

/// A histogram of non-negative integers (microseconds, counts, bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHist {
    /// Values below 1 (zeros) are counted apart; bucket `i` holds values in
    /// `[e^(i/PER_E), e^((i+1)/PER_E))`.
    zeros: u64,
    buckets: Vec<u64>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
}

/// The bucket of a value ≥ 1.
pub fn bucket(v: u64) -> usize {
    ((v as f64).ln() * PER_E) as usize
}

/// The lowest value of bucket `i`.
pub fn bucket_low(i: usize) -> f64 {
    (i as f64 / PER_E).exp()
}

impl LogHist {
    pub fn add(&mut self, v: u64) {
        self.add_n(v, 1);
    }

    pub fn add_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += n;
        if v == 0 {
            self.zeros += n;
            return;
        }
        let b = bucket(v);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += n;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile (0..=1), within 1%; exact at 0 (min) and 1 (max).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q <= 0.0 {
            return self.min;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = self.zeros;
        if seen >= rank {
            return 0;
        }
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // The middle of the bucket, kept within the values seen.
                let mid = (bucket_low(i) * bucket_low(1).sqrt()).round() as u64;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Values counted in buckets `lo..=hi`.
    pub fn count_buckets(&self, lo: usize, hi: usize) -> u64 {
        if lo > hi {
            return 0;
        }
        self.buckets.iter().skip(lo).take(hi - lo + 1).sum::<u64>()
    }

    /// The nonzero buckets: (index, count).
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
    }

    /// Removes buckets `lo..=hi` (a cluster already reported).
    pub fn clear_buckets(&mut self, lo: usize, hi: usize) {
        for b in self
            .buckets
            .iter_mut()
            .skip(lo)
            .take(hi.saturating_sub(lo) + 1)
        {
            *b = 0;
        }
    }
}

/// A cluster of values within ±`tol` of a center: the densest window of the histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cluster {
    /// Buckets of the window (inclusive) and the values they stand for.
    pub lo_bucket: usize,
    pub hi_bucket: usize,
    pub lo: f64,
    pub hi: f64,
    /// Values in the window, and in the neighbourhood (half to twice the center).
    pub count: u64,
    pub neighbourhood: u64,
}

/// The densest window of relative width ±`tol` (e.g. 0.10), with the values around it.
pub fn densest(h: &LogHist, tol: f64) -> Option<Cluster> {
    let width = (((1.0 + tol) / (1.0 - tol)).ln() * PER_E).floor() as usize;
    let near = (2.0f64.ln() * PER_E).round() as usize;
    let mut best: Option<Cluster> = None;
    for (i, _) in h.buckets() {
        let (lo_b, hi_b) = (i, i + width);
        let count = h.count_buckets(lo_b, hi_b);
        if best.is_none_or(|b| count > b.count) {
            // The neighbourhood is centred on the window's median value.
            let mut center = lo_b;
            let mut seen = 0;
            for b in lo_b..=hi_b {
                seen += h.count_buckets(b, b);
                if 2 * seen >= count {
                    center = b;
                    break;
                }
            }
            let neighbourhood = h.count_buckets(center.saturating_sub(near), center + near);
            best = Some(Cluster {
                lo_bucket: lo_b,
                hi_bucket: hi_b,
                lo: bucket_low(lo_b),
                hi: bucket_low(hi_b + 1),
                count,
                neighbourhood,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = LogHist::default();
        for v in 1..=10_000u64 {
            h.add(v * 100);
        }
        assert_eq!((h.min, h.max, h.count), (100, 1_000_000, 10_000));
        for (q, want) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got / want - 1.0).abs() < 0.011, "q{q}: {got} vs {want}");
        }
        let mut z = LogHist::default();
        z.add(0);
        z.add(0);
        z.add(5);
        assert_eq!(z.quantile(0.5), 0);
        assert_eq!(z.quantile(1.0), 5);
    }

    #[test]
    fn the_densest_window_finds_a_timer() {
        let mut h = LogHist::default();
        // Idle times spread from 1 s to 100 s, and five at 60 s ± 2%.
        for v in [1, 3, 7, 15, 22, 31, 44, 80, 95] {
            h.add(v * 1_000_000);
        }
        for v in [59_000_000, 60_000_000, 60_200_000, 61_000_000, 59_500_000] {
            h.add(v);
        }
        let c = densest(&h, 0.10).unwrap();
        assert_eq!(c.count, 5);
        assert!(c.lo <= 59_000_000.0 && c.hi >= 61_000_000.0, "{c:?}");
        assert!(c.hi / c.lo < 1.25);
        assert_eq!(
            c.neighbourhood, 9,
            "31, 44, 80 and 95 s are within half to twice 60 s"
        );
    }
}
