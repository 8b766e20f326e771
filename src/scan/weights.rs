//! The classifier's token weights, looked up once per token of every
//! scanned message: (hash, weight) pairs sorted by hash, plus the position
//! where each range of hashes (their top bits) starts, so that a lookup is
//! a binary search over a handful of neighbouring entries instead of over
//! the whole table (tens of thousands of entries, ~15 scattered reads).
//! The answer is the one a binary search over the whole table gives.

/// About this many entries per range of the index.
const PER_BUCKET: usize = 4;
/// At most 2^16 ranges (a 256 KiB index).
const MAX_BITS: u32 = 16;

#[derive(Debug, Clone, Default)]
pub struct Weights {
    /// Sorted by hash, no hash twice.
    entries: Vec<(u32, f32)>,
    /// `starts[k]`: the first entry whose hash, shifted right by `shift`,
    /// is at least `k`; one more than there are ranges.
    starts: Vec<u32>,
    shift: u32,
}

impl PartialEq for Weights {
    /// The index follows from the entries.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Weights {
    /// `entries` must be sorted by hash with no hash twice (the model file
    /// and the training guarantee it).
    pub fn new(entries: Vec<(u32, f32)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        let bits = (entries.len() / PER_BUCKET).max(1).ilog2().min(MAX_BITS);
        let shift = 32 - bits;
        let ranges = 1usize << bits;
        let mut starts = Vec::with_capacity(ranges + 1);
        let mut i = 0;
        for k in 0..=ranges {
            while i < entries.len() && ((u64::from(entries[i].0) >> shift) as usize) < k {
                i += 1;
            }
            starts.push(i as u32);
        }
        Self {
            entries,
            starts,
            shift,
        }
    }

    pub fn entries(&self) -> &[(u32, f32)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The weight of `hash`, if the table has it.
    pub fn get(&self, hash: u32) -> Option<f32> {
        let k = (u64::from(hash) >> self.shift) as usize;
        let (start, end) = (*self.starts.get(k)? as usize, self.starts[k + 1] as usize);
        let range = &self.entries[start..end];
        range
            .binary_search_by_key(&hash, |e| e.0)
            .ok()
            .map(|i| range[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_full_binary_search_finds() {
        for n in [0usize, 1, 3, 4, 17, 1000, 40_000] {
            // Spread over the whole range, some hashes at the very ends.
            let mut entries: Vec<(u32, f32)> = (0..n as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761), i as f32))
                .collect();
            if n > 2 {
                entries[0].0 = 0;
                entries[1].0 = u32::MAX;
            }
            entries.sort_unstable_by_key(|e| e.0);
            entries.dedup_by_key(|e| e.0);
            let w = Weights::new(entries.clone());
            let full = |h: u32| {
                entries
                    .binary_search_by_key(&h, |e| e.0)
                    .ok()
                    .map(|i| entries[i].1)
            };
            let probes = entries
                .iter()
                .flat_map(|e| [e.0, e.0.wrapping_add(1), e.0.wrapping_sub(1)])
                .chain([0, 1, u32::MAX, u32::MAX - 1, 0x8000_0000]);
            for h in probes {
                assert_eq!(w.get(h), full(h), "n {n} hash {h:#x}");
            }
        }
    }
}
