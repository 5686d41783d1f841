//! Criterion benches of the spine: config loading, manifest hashing, the units table and the
//! scan stage on the bundled demo corpus. Decode/resize benches live with their stages.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mimicit::config::Scenario;

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.toml")
}

fn config(c: &mut Criterion) {
    let path = demo();
    c.bench_function("config/load_demo", |b| {
        b.iter(|| Scenario::load(&path, &["keyframes.fps=2".to_string()]).unwrap())
    });
}

fn hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    let data: Vec<u8> = (0..(16u32 << 20))
        .map(|i| i.wrapping_mul(2654435761) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let mut g = c.benchmark_group("manifest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("hash_file_16MiB", |b| {
        b.iter(|| mimicit::manifest::hash_file(&file).unwrap())
    });
    g.finish();
}

fn scan(c: &mut Criterion) {
    let scenario = Scenario::load(&demo(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("scan");
    g.bench_function("demo_units_and_table", |b| {
        b.iter(|| {
            let found = mimicit::corpus::scan(&scenario).unwrap();
            mimicit::tables::write_units(
                &dir.path().join("units.parquet"),
                scenario.code,
                &found.units,
                &Default::default(),
            )
            .unwrap();
        })
    });
    g.bench_function("demo_fingerprint", |b| {
        b.iter(|| mimicit::corpus::fingerprint(&scenario).unwrap())
    });
    g.finish();
}

/// Pack throughput: 256 incompressible "images" of 128 KiB (32 MiB) into the images parquet
/// (base64, zstd, fsync) and into a WebDataset shard.
fn pack(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let rows: Vec<(String, Vec<u8>)> = (0..256)
        .map(|i| {
            let bytes = (0..128 * 1024)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            (format!("DC_IMG_v_bench_{i:04}"), bytes)
        })
        .collect();
    let total: u64 = rows.iter().map(|(_, b)| b.len() as u64).sum();
    let mut g = c.benchmark_group("pack");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(total));
    g.bench_function("images_parquet_32MiB", |b| {
        b.iter(|| {
            mimicit::shards::write_images_parquet(&dir.path().join("DC.parquet"), &rows).unwrap()
        })
    });
    let load = |i: usize| -> mimicit::Result<mimicit::shards::webdataset::Sample> {
        Ok(mimicit::shards::webdataset::Sample {
            key: rows[i].0.clone(),
            members: vec![("png".into(), rows[i].1.clone())],
        })
    };
    g.bench_function("webdataset_shard_32MiB", |b| {
        b.iter(|| {
            mimicit::shards::webdataset::write_shard(
                &dir.path().join("DC-000000.tar"),
                0..rows.len(),
                &load,
            )
            .unwrap()
        })
    });
    g.bench_function("plain_write_fsync_32MiB", |b| {
        let flat: Vec<u8> = rows.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        b.iter(|| mimicit::atomic::write(&dir.path().join("plain.bin"), &flat).unwrap())
    });
    g.finish();
}

criterion_group!(benches, config, hashing, scan, pack);
criterion_main!(benches);
