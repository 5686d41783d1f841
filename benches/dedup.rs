//! Criterion benches of deduplication: perceptual hashes per second on stored-size frames
//! (224x224), and the multi-index Hamming index on a million synthetic hashes (build, and
//! queries at the default threshold). The query bench also prints the share of comparisons the
//! index avoids against a scan of every hash, and the index's memory.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mimicit::dedup::{dhash, looks, phash, HammingIndex};
use mimicit::model::RgbFrame;

/// SplitMix64: seeded synthetic data without extra dependencies.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn frame() -> RgbFrame {
    let mut rng = SplitMix(1);
    let data = (0..224 * 224 * 3)
        .map(|i| ((i / 3 % 224) as u64 * 3 + (rng.next() & 31)) as u8)
        .collect();
    RgbFrame::new(224, 224, data)
}

/// `n` hashes: random, with one in ten a near copy (up to 6 bits flipped) of an earlier one.
fn hashes(n: usize) -> Vec<u64> {
    let mut rng = SplitMix(7);
    let mut out: Vec<u64> = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        if out.len() > 10 && r % 10 == 0 {
            let mut h = out[(rng.next() % out.len() as u64) as usize];
            for _ in 0..rng.next() % 7 {
                h ^= 1 << (rng.next() % 64);
            }
            out.push(h);
        } else {
            out.push(r);
        }
    }
    out
}

fn hashing(c: &mut Criterion) {
    let img = frame();
    let mut g = c.benchmark_group("dedup_hash_224");
    g.throughput(Throughput::Elements(1));
    g.bench_function("phash", |b| b.iter(|| phash(&img)));
    g.bench_function("dhash", |b| b.iter(|| dhash(&img)));
    g.bench_function("phash_luma_sharpness", |b| b.iter(|| looks(&img, true)));
    g.finish();
}

fn index(c: &mut Criterion) {
    const N: usize = 1_000_000;
    const QUERIES: usize = 10_000;
    let all = hashes(N + QUERIES);
    let (stored, queries) = all.split_at(N);
    let mut g = c.benchmark_group("dedup_index_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("build_k6", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut index = HammingIndex::new(6);
                for &h in stored {
                    index.insert(h);
                }
                index
            },
            BatchSize::PerIteration,
        )
    });
    let mut index = HammingIndex::new(6);
    for &h in stored {
        index.insert(h);
    }
    for &q in queries {
        index.nearest(q);
    }
    let per_query = index.comparisons() as f64 / QUERIES as f64;
    eprintln!(
        "dedup_index_1M: {per_query:.0} comparisons per query against {N} for a scan \
         ({:.3}% avoided); index heap {:.1} MiB ({:.1} bytes per hash)",
        100.0 * (1.0 - per_query / N as f64),
        index.heap_bytes() as f64 / (1 << 20) as f64,
        index.heap_bytes() as f64 / N as f64
    );
    g.throughput(Throughput::Elements(QUERIES as u64));
    g.bench_function("nearest_k6_10k_queries", |b| {
        b.iter(|| queries.iter().filter_map(|&q| index.nearest(q)).count())
    });
    g.finish();
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One build of a 10M-hash index (not a criterion measurement: one pass is ~5 s and ~0.5 GiB),
/// run when `MIMICIT_BENCH_10M` is set: build time, heap of the index, peak RSS, comparisons.
fn index_10m(_: &mut Criterion) {
    if std::env::var_os("MIMICIT_BENCH_10M").is_none() {
        return;
    }
    const N: usize = 10_000_000;
    const QUERIES: usize = 10_000;
    let all = hashes(N + QUERIES);
    let (stored, queries) = all.split_at(N);
    let before = peak_rss_mib();
    let started = std::time::Instant::now();
    let mut index = HammingIndex::new(6);
    for &h in stored {
        index.insert(h);
    }
    let build_s = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let found = queries.iter().filter_map(|&q| index.nearest(q)).count();
    let query_s = started.elapsed().as_secs_f64();
    eprintln!(
        "dedup_index_10M: build {build_s:.2} s ({:.2} M hashes/s); {QUERIES} queries {query_s:.2} s \
         ({found} matched, {:.0} comparisons per query); index heap {:.1} MiB ({:.1} bytes per \
         hash); peak RSS {:.0} MiB (of which {:.0} MiB the 80 MiB input and the process before)",
        N as f64 / build_s / 1e6,
        index.comparisons() as f64 / QUERIES as f64,
        index.heap_bytes() as f64 / (1 << 20) as f64,
        index.heap_bytes() as f64 / N as f64,
        peak_rss_mib(),
        before
    );
}

criterion_group!(benches, hashing, index, index_10m);
criterion_main!(benches);
