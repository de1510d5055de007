//! Latency histograms with fixed buckets, as Prometheus exposes them.

/// Upper bounds of the buckets, in microseconds (the last bucket is +Inf).
pub const BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Counts of observations per bucket, their number and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations at most `BOUNDS_US[i]` but above the bound before (not cumulative).
    pub buckets: [u64; BOUNDS_US.len()],
    /// Observations in all (the +Inf bucket).
    pub count: u64,
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
}

impl Histogram {
    /// Adds one observation of `us` microseconds.
    pub fn observe(&mut self, us: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        if let Some(bucket) = self.buckets.get_mut(i) {
            *bucket += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Cumulative counts per bound (what Prometheus' `le` buckets hold).
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut acc = 0u64;
        BOUNDS_US
            .iter()
            .zip(self.buckets.iter())
            .map(move |(&bound, &n)| {
                acc += n;
                (bound, acc)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        for us in [0, 1_000, 1_001, 9_999_999, 10_000_000, 10_000_001, u64::MAX] {
            h.observe(us);
        }
        assert_eq!(h.count, 7);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[12], 2);
        let cumulative: Vec<u64> = h.cumulative().map(|(_, n)| n).collect();
        assert_eq!(cumulative.last(), Some(&5), "two are above every bound");
        assert!(cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(h.sum_us, u64::MAX, "the sum saturates");
    }
}
