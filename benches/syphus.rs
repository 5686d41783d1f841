//! Syphus request throughput: our continuous pool against the original runner's
//! batch-then-wait loop (`scripts/bench/syphus_batch.py`, standard library only), both at 32
//! concurrent requests, against one local OpenAI-compatible server
//! (`mimicit::syphus::testserver`) that answers after 200 ms, with about 3.5 % of the queries (the
//! same ones for both sides: a byte of the message's blake3, mod 100, below 3) slow outliers of
//! 1.5 s more.
//!
//! `cargo bench --bench syphus` (env: `N=2000`, `CONCURRENCY=32`). The numbers are bound by the
//! server's latency, not by the client's CPU, so a dev build measures the same:
//! `cargo bench --profile dev --bench syphus`. Prints a markdown table.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimicit::config::Code;
use mimicit::progress::{Progress, ProgressMode};
use mimicit::syphus::testserver::{default_answer, Options, Reply, Request, TestServer};
use mimicit::syphus::{self, ApiKey, Query, SyphusSettings};

const LATENCY: Duration = Duration::from_millis(200);
const OUTLIER: Duration = Duration::from_millis(1500);
const OUTLIER_PERCENT: u8 = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_usize("N", 2000);
    let concurrency = env_usize("CONCURRENCY", 32);
    let queries: Vec<Query> = (0..n)
        .map(|i| Query {
            id: format!("v_{i:05}"),
            message: format!("timestamps: [[0, 5], [5, 9]]\nsentences: [\"Clip {i}: a person opens a door.\", \" They walk in.\"]"),
        })
        .collect();
    let script = |r: &Request| {
        let h = blake3::hash(r.user().as_bytes());
        if h.as_bytes()[0] % 100 < OUTLIER_PERCENT {
            Reply::Slow(OUTLIER, Box::new(default_answer(r)))
        } else {
            default_answer(r)
        }
    };
    let server = TestServer::start(
        Options {
            latency: LATENCY,
            max_requests: 2 * n as u64 + 100,
            max_time: Duration::from_secs(900),
        },
        Arc::new(script),
    );
    let slow = queries
        .iter()
        .filter(|q| blake3::hash(q.message.as_bytes()).as_bytes()[0] % 100 < OUTLIER_PERCENT)
        .count();

    // Ours.
    let store = tempfile::tempdir().expect("temp dir");
    let settings = SyphusSettings {
        endpoint: server.endpoint.clone(),
        model: "bench-model".into(),
        concurrency,
        timeout_secs: 60.0,
        ..Default::default()
    };
    let plan = syphus::plan(Code::DC, &queries, &settings).expect("plan");
    let progress = Progress::new(ProgressMode::None, "syphus", n as u64);
    let t = Instant::now();
    let outcome = syphus::generate(
        &plan,
        &ApiKey::new("bench-key"),
        store.path(),
        &progress,
        &AtomicBool::new(false),
    )
    .expect("generate");
    let ours = t.elapsed().as_secs_f64();
    assert_eq!(outcome.answers.len(), n, "every query answered");
    let ours_peak = server.peak_in_flight();

    // The original's loop, in Python.
    let qfile = store.path().join("DC_query.json");
    std::fs::write(&qfile, serde_json::to_vec(&queries).expect("json")).expect("write queries");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench/syphus_batch.py"
        ))
        .args(["--endpoint", &server.endpoint, "--queries"])
        .arg(&qfile)
        .args(["--threads", &concurrency.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python's JSON");
    let batch = report["seconds"].as_f64().expect("seconds");
    assert_eq!(report["answered"].as_u64(), Some(n as u64));

    println!(
        "{n} queries, server latency {} ms, {slow} slow outliers (+{} ms), {concurrency} concurrent requests",
        LATENCY.as_millis(),
        OUTLIER.as_millis()
    );
    println!();
    println!("| runner | seconds | requests/s |");
    println!("|---|---:|---:|");
    println!(
        "| mimicit syphus (continuous pool, peak {ours_peak} in flight) | {ours:.1} | {:.1} |",
        n as f64 / ours
    );
    println!(
        "| original loop (batches of {concurrency}, wait for each batch) | {batch:.1} | {:.1} |",
        n as f64 / batch
    );
    println!();
    println!("speed-up: {:.2}x", batch / ours);
}
