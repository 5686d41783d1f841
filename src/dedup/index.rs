//! An index of 64-bit hashes answering "which stored hashes are within Hamming distance k of
//! this one" without comparing against all of them: multi-index hashing (Norouzi, Punjani and
//! Fleet, "Fast search in Hamming space with multi-index hashing", CVPR 2012).
//!
//! The 64 bits are cut into 4 bands of 16 bits. If two hashes differ in at most `k` bits, the
//! differences are spread over 4 bands, so at least one band differs in at most `r = k / 4` bits
//! (pigeonhole). Each band keeps a table from its 16-bit value to the ids holding it; a query
//! looks up, in every band, each value within `r` bits of its own (`sum C(16, i), i <= r`
//! buckets: 1 for k < 4, 17 for k < 8, 137 for k < 12), and checks only the ids found there.
//! Nothing within `k` is missed, and the candidates are few as long as buckets stay small
//! (2^16 buckets per band: a few entries each at a million hashes).
//!
//! From `k >= 20` the probes would outnumber what they save on realistic sizes, and the index
//! compares against every stored hash instead (same answers).
//!
//! Ids are the insertion order, from 0; answers never depend on the order of buckets or probes.

use std::sync::atomic::{AtomicU64, Ordering};

use super::hash::hamming;

const BANDS: usize = 4;
const BAND_BITS: u32 = 16;
const BUCKETS: usize = 1 << BAND_BITS;
/// From this threshold on, the index scans every stored hash.
pub const LINEAR_FROM: u32 = 20;

/// A stored hash within the threshold of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub distance: u32,
    pub id: u32,
}

pub struct HammingIndex {
    max_distance: u32,
    hashes: Vec<u64>,
    /// `tables[band][value]`: ids whose band `band` holds `value`, ascending. Empty in linear
    /// mode.
    tables: Vec<Vec<Vec<u32>>>,
    /// Every 16-bit mask of at most `max_distance / 4` bits: the probes of one band.
    probes: Vec<u16>,
    compared: AtomicU64,
}

impl HammingIndex {
    /// An empty index answering queries within `max_distance` bits.
    pub fn new(max_distance: u32) -> HammingIndex {
        let linear = max_distance >= LINEAR_FROM;
        let radius = max_distance / BANDS as u32;
        HammingIndex {
            max_distance,
            hashes: Vec::new(),
            tables: if linear {
                Vec::new()
            } else {
                (0..BANDS).map(|_| vec![Vec::new(); BUCKETS]).collect()
            },
            probes: if linear {
                Vec::new()
            } else {
                (0..=u16::MAX)
                    .filter(|m| m.count_ones() <= radius)
                    .collect()
            },
            compared: AtomicU64::new(0),
        }
    }

    pub fn max_distance(&self) -> u32 {
        self.max_distance
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Stores `hash` and returns its id (the number of hashes stored before it).
    pub fn insert(&mut self, hash: u64) -> u32 {
        let id = u32::try_from(self.hashes.len()).expect("at most 2^32 hashes per index");
        self.hashes.push(hash);
        for (band, table) in self.tables.iter_mut().enumerate() {
            table[band_value(hash, band)].push(id);
        }
        id
    }

    /// The stored hash of `id`.
    pub fn hash(&self, id: u32) -> u64 {
        self.hashes[id as usize]
    }

    /// The closest stored hash within the threshold; the lowest id among equally close ones.
    pub fn nearest(&self, hash: u64) -> Option<Match> {
        let mut best: Option<Match> = None;
        self.visit(hash, |m| {
            if best.is_none_or(|b| m < b) {
                best = Some(m);
            }
        });
        best
    }

    /// Every stored hash within the threshold, by id.
    pub fn within(&self, hash: u64) -> Vec<Match> {
        let mut found = Vec::new();
        self.visit(hash, |m| found.push(m));
        found.sort_unstable_by_key(|m| m.id);
        found.dedup();
        found
    }

    /// Hamming distances computed by queries so far (a hash met in several bands counts each
    /// time): compare with `len()` per query for a scan of everything.
    pub fn comparisons(&self) -> u64 {
        self.compared.load(Ordering::Relaxed)
    }

    /// Bytes this index holds on the heap (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        let tables: usize = self
            .tables
            .iter()
            .map(|t| {
                t.capacity() * std::mem::size_of::<Vec<u32>>()
                    + t.iter().map(|b| b.capacity() * 4).sum::<usize>()
            })
            .sum();
        self.hashes.capacity() * 8 + tables + self.probes.capacity() * 2
    }

    /// Calls `found` for every stored hash within the threshold (some more than once).
    fn visit(&self, hash: u64, mut found: impl FnMut(Match)) {
        let mut compared = 0u64;
        let mut check = |id: u32| {
            compared += 1;
            let distance = hamming(hash, self.hashes[id as usize]);
            if distance <= self.max_distance {
                found(Match { distance, id });
            }
        };
        if self.tables.is_empty() {
            (0..self.hashes.len() as u32).for_each(&mut check);
        } else {
            for (band, table) in self.tables.iter().enumerate() {
                let value = band_value(hash, band);
                for &probe in &self.probes {
                    for &id in &table[value ^ usize::from(probe)] {
                        check(id);
                    }
                }
            }
        }
        self.compared.fetch_add(compared, Ordering::Relaxed);
    }
}

fn band_value(hash: u64, band: usize) -> usize {
    ((hash >> (band as u32 * BAND_BITS)) & (BUCKETS as u64 - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a seeded generator, enough for test data.
    pub(crate) struct SplitMix(pub u64);

    impl SplitMix {
        pub fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Random hashes with planted near copies: each base hash gets a few variants with 0 to 12
    /// bits flipped, so that every threshold has pairs to find.
    fn planted(seed: u64, bases: usize) -> Vec<u64> {
        let mut rng = SplitMix(seed);
        let mut out = Vec::new();
        for _ in 0..bases {
            let base = rng.next();
            out.push(base);
            for _ in 0..rng.next() % 4 {
                let mut v = base;
                for _ in 0..rng.next() % 13 {
                    v ^= 1 << (rng.next() % 64);
                }
                out.push(v);
            }
        }
        // Shuffle (Fisher-Yates) so that copies are not next to their base.
        for i in (1..out.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
        out
    }

    #[test]
    fn finds_exactly_the_pairs_brute_force_finds() {
        let hashes = planted(7, 1500);
        assert_eq!(hashes.len(), 3714, "the count BENCHMARKS.md states");
        let n = hashes.len() as u64;
        for k in 0..=24 {
            let mut index = HammingIndex::new(k);
            let mut by_index = Vec::new();
            for &h in &hashes {
                let id = index.len() as u32;
                for m in index.within(h) {
                    by_index.push((m.id, id, m.distance));
                }
                index.insert(h);
            }
            let mut brute = Vec::new();
            for j in 0..hashes.len() {
                for i in 0..j {
                    let d = hamming(hashes[i], hashes[j]);
                    if d <= k {
                        brute.push((i as u32, j as u32, d));
                    }
                }
            }
            by_index.sort_unstable();
            brute.sort_unstable();
            assert_eq!(by_index, brute, "k = {k}");
            let all = n * (n - 1) / 2;
            eprintln!(
                "k = {k:2}: {} pairs; {} of {all} comparisons made ({:.1}% avoided)",
                brute.len(),
                index.comparisons(),
                100.0 * (1.0 - index.comparisons() as f64 / all as f64)
            );
            if k < 8 {
                assert!(index.comparisons() * 10 < all, "k = {k}");
            }
        }
    }

    #[test]
    fn nearest_prefers_the_closest_then_the_lowest_id() {
        let mut index = HammingIndex::new(6);
        let a = index.insert(0b1111);
        let b = index.insert(0b0111);
        let c = index.insert(0b1011);
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(index.nearest(0b0011), Some(Match { distance: 1, id: 1 }));
        assert_eq!(index.nearest(0b1111), Some(Match { distance: 0, id: 0 }));
        assert_eq!(index.nearest(!0), None);
        assert_eq!(index.within(0b0011).len(), 3);
    }
}
