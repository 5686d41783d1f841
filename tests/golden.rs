//! The demo run's outputs against a committed digest (`tests/golden/demo.json`): a change of
//! structure (the stage spine, settings parsing, ...) must leave every output byte-identical.
//! Covered: every JSON, JSONL and YAML output and the scan and dedup tables, by blake3 as the
//! manifest records them. Frame pictures and the tables made of their pixels are left out: their
//! bytes follow the FFmpeg build and the CPU's resize kernels, which the other tests compare
//! within one machine. After an intended change of output, rewrite the digest with
//! `MIMICIT_BLESS=1 cargo test --test integration golden::` and say why in the commit.

use std::collections::BTreeMap;

use crate::util::*;

fn covered(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !path.contains("/rejects/")
        && !path.contains("/wds/")
        && (name.ends_with(".json")
            || name.ends_with(".jsonl")
            || name.ends_with(".yaml")
            || ["units.parquet", "annotations.parquet", "media.parquet"].contains(&name))
}

#[test]
fn demo_outputs_match_the_golden_digest() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let manifest = read_json(&out.join("manifest.json"));
    let mut got = BTreeMap::new();
    for (code, scenario) in manifest["scenarios"].as_object().unwrap() {
        for (stage, entry) in scenario["stages"].as_object().unwrap() {
            for o in entry["outputs"].as_array().unwrap() {
                let path = o["path"].as_str().unwrap();
                if covered(path) {
                    got.insert(
                        format!("{code}/{stage}: {path}"),
                        o["blake3"].as_str().unwrap().to_string(),
                    );
                }
            }
        }
    }
    let data_yaml = std::fs::read(out.join("data.yaml")).unwrap();
    got.insert(
        "data.yaml".into(),
        blake3::hash(&data_yaml).to_hex().to_string(),
    );
    let golden = repo().join("tests/golden/demo.json");
    if std::env::var("MIMICIT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&golden, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: BTreeMap<String, String> = serde_json::from_value(read_json(&golden)).unwrap();
    let differ: Vec<&String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "outputs differ from tests/golden/demo.json: {differ:?}"
    );
}
