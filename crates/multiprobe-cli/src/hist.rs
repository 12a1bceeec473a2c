//! Log2 latency histograms as the BPF side fills them (bpf/latency.bpf.c): bucket 0 counts
//! 0 ns, bucket k >= 1 counts [2^(k-1), 2^k) ns. Percentiles come from the buckets, so they
//! are bucket bounds, not exact values.

use serde::Serialize;

/// Buckets per function (as `BUCKETS` in bpf/latency.bpf.c).
pub const BUCKETS: usize = 64;

/// Width of the bars, as bpftrace draws them.
const BAR_WIDTH: usize = 52;

/// The bucket of a latency, as the BPF side computes it (here to test the bounds against).
#[cfg(test)]
pub fn bucket_of(ns: u64) -> usize {
    if ns == 0 { 0 } else { (64 - ns.leading_zeros() as usize).min(BUCKETS - 1) }
}

/// The values a bucket holds: `[low, high)`.
pub fn bounds(bucket: usize) -> (u64, u64) {
    match bucket.min(BUCKETS - 1) {
        0 => (0, 1),
        b => (1u64 << (b - 1), 1u64 << b),
    }
}

/// One function's latencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; BUCKETS] }
    }
}

/// A bucket as JSON shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BucketJson {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

impl Histogram {
    /// Calls recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound (exclusive) of the bucket holding the `p`-th percentile (0 < p <= 100):
    /// at least `p`% of the calls took less than that. `None` without calls.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * p / 100.0).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bounds(b).1);
            }
        }
        Some(bounds(BUCKETS - 1).1)
    }

    /// The buckets from the first to the last that counted anything.
    fn range(&self) -> Option<std::ops::RangeInclusive<usize>> {
        let first = self.buckets.iter().position(|&n| n > 0)?;
        let last = self.buckets.iter().rposition(|&n| n > 0)?;
        Some(first..=last)
    }

    /// bpftrace-style bars: `[1K, 2K)   123 |@@@@@      |`, from the first to the last
    /// non-empty bucket.
    pub fn render(&self) -> String {
        let Some(range) = self.range() else { return String::new() };
        let max = self.buckets[range.clone()].iter().copied().max().unwrap_or(1).max(1);
        let labels: Vec<String> = range.clone().map(label).collect();
        let label_width = labels.iter().map(String::len).max().unwrap_or(0);
        let count_width = self.buckets[range.clone()].iter().map(|n| n.to_string().len()).max().unwrap_or(1);
        let mut s = String::new();
        for (b, label) in range.zip(labels) {
            let n = self.buckets[b];
            let bar = "@".repeat((n as u128 * BAR_WIDTH as u128 / max as u128) as usize);
            s.push_str(&format!("{label:<label_width$} {n:>count_width$} |{bar:<BAR_WIDTH$}|\n"));
        }
        s
    }

    /// The non-empty buckets, for JSON.
    pub fn json(&self) -> Vec<BucketJson> {
        (0..BUCKETS)
            .filter(|&b| self.buckets[b] > 0)
            .map(|b| {
                let (low_ns, high_ns) = bounds(b);
                BucketJson { low_ns, high_ns, count: self.buckets[b] }
            })
            .collect()
    }
}

/// `[0]`, `[1]`, `[2, 4)`, `[1K, 2K)`, `[1M, 2M)`: powers of 1024 get bpftrace's suffixes.
fn label(bucket: usize) -> String {
    match bucket {
        0 => "[0]".into(),
        1 => "[1]".into(),
        b => {
            let (low, high) = bounds(b);
            if b == BUCKETS - 1 {
                format!("[{}, ...)", suffixed(low))
            } else {
                format!("[{}, {})", suffixed(low), suffixed(high))
            }
        }
    }
}

/// A power of two with K, M, G, T, P or E (powers of 1024) where it divides evenly.
fn suffixed(v: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut i = 0;
    let mut v = v;
    while v >= 1024 && v % 1024 == 0 && i < SUFFIXES.len() - 1 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", SUFFIXES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_with_zero_apart() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for ns in [1u64, 5, 1000, 123_456_789, 1 << 40] {
            let (lo, hi) = bounds(bucket_of(ns));
            assert!(lo <= ns && ns < hi, "{ns} not in [{lo}, {hi})");
        }
        assert_eq!(bounds(0), (0, 1));
        assert_eq!(bounds(11), (1024, 2048));
    }

    fn hist(pairs: &[(usize, u64)]) -> Histogram {
        let mut h = Histogram::default();
        for &(b, n) in pairs {
            h.buckets[b] = n;
        }
        h
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        // 50 calls in [512, 1K), 40 in [1K, 2K), 9 in [2K, 4K), 1 in [64K, 128K).
        let h = hist(&[(10, 50), (11, 40), (12, 9), (17, 1)]);
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), Some(1024));
        assert_eq!(h.percentile(51.0), Some(2048));
        assert_eq!(h.percentile(90.0), Some(2048));
        assert_eq!(h.percentile(99.0), Some(4096));
        assert_eq!(h.percentile(100.0), Some(131072));
        assert_eq!(Histogram::default().percentile(50.0), None);
        // One call: every percentile is its bucket.
        assert_eq!(hist(&[(3, 1)]).percentile(1.0), Some(8));
    }

    #[test]
    fn renders_like_bpftrace() {
        let h = hist(&[(10, 26), (11, 52), (13, 1)]);
        let bar = |n: usize| format!("|{:<52}|", "@".repeat(n));
        assert_eq!(
            h.render(),
            format!(
                "[512, 1K) 26 {}\n[1K, 2K)  52 {}\n[2K, 4K)   0 {}\n[4K, 8K)   1 {}\n",
                bar(26),
                bar(52),
                bar(0),
                bar(1)
            )
        );
        assert_eq!(hist(&[(0, 1), (1, 2)]).render(), format!("[0] 1 {}\n[1] 2 {}\n", bar(26), bar(52)));
        assert_eq!(Histogram::default().render(), "");
        assert_eq!(label(21), "[1M, 2M)");
        assert_eq!(label(3), "[4, 8)");
        assert_eq!(label(BUCKETS - 1), "[4E, ...)");
    }

    #[test]
    fn json_lists_non_empty_buckets_in_order() {
        let h = hist(&[(11, 2), (10, 1)]);
        assert_eq!(
            h.json(),
            vec![
                BucketJson { low_ns: 512, high_ns: 1024, count: 1 },
                BucketJson { low_ns: 1024, high_ns: 2048, count: 2 }
            ]
        );
    }
}
