//! Trainer formats besides Otter's (`pack.formats`): `hf`, `llava`, `sharegpt`, loaded with the
//! real Python libraries and the rules of the trainers that read them
//! (tests/python/check_trainer_formats.py), hard-linked pictures, determinism, verify, parts,
//! and formats removed when no longer asked for.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::util::*;

const ALL: &str = r#"pack.formats=["otter", "hf", "llava", "sharegpt"]"#;

/// Runs the Python check on `OUT/DC`; None when the test was skipped (no Python readers).
fn check(scenario_dir: &Path) -> Option<(bool, String)> {
    let cache = tempfile::tempdir().unwrap();
    let o = match Command::new("python")
        .arg(repo().join("tests/python/check_trainer_formats.py"))
        .arg(scenario_dir)
        .arg("DC")
        // A cache of its own: datasets must read these files, not an earlier run's.
        .env("HF_DATASETS_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("no python ({e})"));
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if text.contains("No module named") {
        skip(&format!("the Python readers are missing: {text}"));
        return None;
    }
    Some((o.status.success(), text))
}

fn run(dir: &Path, sets: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "scenarios/demo.toml", "--out", "out"];
    for s in sets {
        args.extend(["--set", s]);
    }
    mimicit(dir, &args)
}

#[test]
fn hf_llava_and_sharegpt_load_in_their_trainers() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = run(dir.path(), &[ALL, "pack.in_context_turns=1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dc = dir.path().join("out/DC");
    if let Some((ok, text)) = check(&dc) {
        assert!(ok && text.contains(" 0 failures"), "{text}");
        assert!(text.contains("hf 10 rows, llava 10 records"), "{text}");
    }

    // The pictures are hard links into the frame store, not copies.
    let frames = read_parquet_frames(&dc);
    let images = dc.join("chat/images");
    let mut linked = 0;
    for entry in std::fs::read_dir(&images).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name.rsplit_once('.').unwrap().0;
        let stored = dc.join(&frames[id]);
        assert_eq!(
            std::fs::metadata(&stored).unwrap().ino(),
            entry.metadata().unwrap().ino(),
            "{name} is not a link to {}",
            stored.display()
        );
        linked += 1;
    }
    assert!(linked > 0);

    // The card names the config, the counts and how it was made.
    let card = std::fs::read_to_string(dc.join("hf/README.md")).unwrap();
    assert!(card.contains("config_name: DC"), "{card}");
    assert!(card.contains("| instructions (rows) | 10 |"), "{card}");

    // Every new file is in the manifest, and verify re-hashes it.
    let manifest = read_json(&dir.path().join("out/manifest.json"));
    let outputs: Vec<String> = manifest["scenarios"]["DC"]["stages"]["pack"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "DC/hf/README.md",
        "DC/hf/data/train-00000-of-00001.parquet",
        "DC/chat/DC_llava.json",
        "DC/chat/DC_sharegpt.json",
        "DC/chat/dataset_info.json",
    ] {
        assert!(
            outputs.iter().any(|p| p == want),
            "{want} not in {outputs:?}"
        );
    }
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Same inputs, same bytes: a second run in another folder.
    let again = tempfile::tempdir().unwrap();
    copy_demo(again.path());
    let o = run(again.path(), &[ALL, "pack.in_context_turns=1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        snapshot(&dir.path().join("out")) == snapshot(&again.path().join("out")),
        "two runs differ"
    );

    // The check fails on a LLaVA record whose <image> tokens do not match its pictures.
    let llava = dc.join("chat/DC_llava.json");
    let mut records = read_json(&llava);
    let turns = records[0]["conversations"].as_array_mut().unwrap();
    let last_user = turns.len() - 2;
    let value = turns[last_user]["value"].as_str().unwrap();
    assert!(value.starts_with("<image>\n"), "{value}");
    turns[last_user]["value"] = value.replacen("<image>\n", "", 1).into();
    std::fs::write(&llava, serde_json::to_vec(&records).unwrap()).unwrap();
    if let Some((ok, text)) = check(&dc) {
        assert!(!ok && text.contains("<image> tokens"), "{text}");
    }

    // Formats no longer asked for are removed; the Otter files stay.
    let o = run(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!dc.join("hf").exists() && !dc.join("chat").exists());
    assert!(dc.join("DC_instructions.json").is_file());
}

#[test]
fn hf_parts_keep_units_whole_and_pack_format_flag_selects_formats() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = run(
        dir.path(),
        &[r#"pack.formats=["hf"]"#, "pack.max_part_bytes=1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dc = dir.path().join("out/DC");
    // Without otter: no images parquet, no instruction files, no data.yaml entry.
    assert!(!dc.join("DC_instructions.json").exists());
    assert!(!dc.join("DC.parquet").exists());
    let yaml = std::fs::read_to_string(dir.path().join("out/data.yaml")).unwrap();
    assert!(!yaml.contains("DC"), "{yaml}");
    // One part per unit when every unit is over the limit: 4 answered units.
    let parts: Vec<_> = std::fs::read_dir(dc.join("hf/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert!(parts.contains(&"train-00003-of-00004.parquet".to_string()));
    for part in &parts {
        let units: std::collections::BTreeSet<String> =
            mimicit::tables::read_string_column(&dc.join("hf/data").join(part), "unit_id")
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(units.len(), 1, "{part} holds one unit here: {units:?}");
    }

    // `pack --format llava`: otter plus llava.
    let o = mimicit(
        dir.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--format",
            "llava",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dc.join("chat/DC_llava.json").is_file());
    assert!(dc.join("DC_instructions.json").is_file());
    assert!(!dc.join("hf").exists() && !dc.join("chat/DC_sharegpt.json").exists());
}

/// image id -> stored file (relative to OUT/DC), from frames.parquet.
fn read_parquet_frames(dc: &Path) -> std::collections::BTreeMap<String, String> {
    mimicit::tables::read_frames(&dc.join("frames.parquet"))
        .unwrap()
        .into_iter()
        .map(|f| (f.image_id, f.file))
        .collect()
}
