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
    let data: Vec<u8> = (0..(16u32 << 20)).map(|i| (i * 2654435761) as u8).collect();
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
            mimicit::tables::write_units(&dir.path().join("units.parquet"), &found.units).unwrap();
        })
    });
    g.bench_function("demo_fingerprint", |b| {
        b.iter(|| mimicit::corpus::fingerprint(&scenario).unwrap())
    });
    g.finish();
}

criterion_group!(benches, config, hashing, scan);
criterion_main!(benches);
