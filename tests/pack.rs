//! The pack stage end to end: what the trainer reads, checked with the trainer's own readers.

use crate::util::*;

fn check_packed(out: &std::path::Path) {
    let yaml = yaml_as_json(&out.join("data.yaml"));
    if let Some(yaml) = &yaml {
        assert_valid("data_yaml.schema.json", yaml, "data.yaml");
        for entries in yaml.as_object().unwrap().values() {
            for entry in entries.as_object().unwrap().values() {
                let ins = read_json(&out.join(entry["mimicit_path"].as_str().unwrap()));
                assert_valid("instructions.schema.json", &ins, "instructions");
                let train = read_json(&out.join(entry["train_config_path"].as_str().unwrap()));
                assert_valid("train.schema.json", &train, "train");
                let images = out.join(entry["images_path"].as_str().unwrap());
                if let Some(rows) = pandas_rows(&images) {
                    for row in rows {
                        assert_valid("images.schema.json", &row, "images row");
                    }
                }
            }
        }
    }
    if let Some(text) = python_check("check_trainer_files.py", &[out]) {
        assert!(text.contains(" 0 failures"), "{text}");
    }
}

#[test]
fn demo_pack_is_what_the_trainer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    check_packed(&out);
    let ins = read_json(&out.join("DC/DC_instructions.json"));
    let data = ins["data"].as_object().unwrap();
    // 2 + 3 + 3 + 2 pairs in the demo answers, written in four different LLM styles.
    assert_eq!(data.len(), 10);
    // The street clip opens with two identical blue frames: dedup drops the second, and no
    // instruction refers to it; the parquet does not carry it.
    let dedup = pandas_rows(&out.join("DC/dedup.parquet"));
    if let Some(rows) = dedup {
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_valid("dedup.schema.json", &rows[0], "dedup.parquet");
        assert_eq!(rows[0]["dropped_id"], "DC_IMG_v_demo_street_0001");
        assert_eq!(rows[0]["kept_id"], "DC_IMG_v_demo_street_0000");
    }
    let text = std::fs::read_to_string(out.join("DC/DC_instructions.json")).unwrap();
    assert!(!text.contains("DC_IMG_v_demo_street_0001"));
    assert!(text.contains("DC_IMG_v_demo_street_0002"));
    let first = &data["DC_INS_00001"];
    assert_eq!(
        first["instruction"],
        "What grows and dies in the first shot?"
    );
    assert_eq!(first["rel_ins_ids"], serde_json::json!(["DC_INS_00002"]));
    assert_eq!(first["image_ids"][0], "DC_IMG_v_demo_garden_0000");
}

#[test]
fn small_parts_are_self_contained_and_ids_stay_global() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "pack.max_part_bytes=300000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let mut parts: Vec<String> = std::fs::read_dir(out.join("DC"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet") && n.starts_with("DC-"))
        .collect();
    parts.sort();
    assert!(parts.len() >= 2, "expected several parts: {parts:?}");
    assert!(parts[0].starts_with("DC-00000-of-"), "{parts:?}");
    assert!(!out.join("DC/DC.parquet").exists());
    check_packed(&out);
    // Instruction ids across parts are the same ids as in a one-part run, not renumbered.
    let mut all = Vec::new();
    for p in &parts {
        let stem = p.trim_end_matches(".parquet");
        let ins = read_json(&out.join(format!("DC/{stem}_instructions.json")));
        all.extend(ins["data"].as_object().unwrap().keys().cloned());
    }
    all.sort();
    let expected: Vec<String> = (1..=10).map(|n| format!("DC_INS_{n:05}")).collect();
    assert_eq!(all, expected);

    // Back to one part: the old parts go away.
    let o = mimicit(dir.path(), &["pack", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("DC/DC.parquet").exists());
    for p in &parts {
        assert!(!out.join("DC").join(p).exists(), "{p} left behind");
    }
    check_packed(&out);

    // The same split again through the pack command's own flag.
    let o = mimicit(
        dir.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--max-part-bytes",
            "300000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for p in &parts {
        assert!(out.join("DC").join(p).exists(), "{p} missing");
    }
    assert!(!out.join("DC/DC.parquet").exists());
}

#[test]
fn answers_for_unknown_units_and_unparsable_answers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        concat!(
            "{\"id\": \"v_nobody\", \"results\": \"Question: who?\\nAnswer: nobody.\"}\n",
            "{\"id\": \"v_demo_studio\", \"results\": \"I cannot write questions about this video.\"}\n",
            "{not json\n",
        ),
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            &format!(
                "pack.answers=[\"{}\", \"{}\"]",
                dir.path().join("demo/answers/valid_output.json").display(),
                extra.display()
            ),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = dir.path().join("out");
    let rejects = pandas_rows(&out.join("DC/rejects/pack.parquet"));
    if let Some(rows) = rejects {
        assert_eq!(rows.len(), 3, "{rows:?}");
        let text = serde_json::to_string(&rows).unwrap();
        assert!(
            text.contains("v_nobody") && text.contains("unknown unit"),
            "{text}"
        );
        assert!(text.contains("cannot write questions"), "{text}");
        assert!(text.contains("extra.jsonl"), "{text}");
    }
    // The good answers are all packed.
    let ins = read_json(&out.join("DC/DC_instructions.json"));
    assert_eq!(ins["data"].as_object().unwrap().len(), 10);
    check_packed(&out);
}

#[test]
fn webdataset_shards_read_with_the_webdataset_package() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let wds = dir.path().join("out/DC/wds");
    let index = read_json(&wds.join("index.json"));
    assert_valid("wds_index.schema.json", &index, "wds/index.json");
    // The demo asks for 2 samples per shard: 4 clips, 2 shards.
    assert_eq!(index["shards"].as_array().unwrap().len(), 2);
    if let Some(text) = python_check("read_webdataset.py", &[&wds]) {
        let start = text.find('{').unwrap();
        let end = text.rfind('}').unwrap();
        let read: serde_json::Value = serde_json::from_str(&text[start..=end]).unwrap();
        let samples = read["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 4);
        for s in samples {
            assert!(!s["key"].as_str().unwrap().contains('.'));
            assert_valid("wds_sample.schema.json", &s["json"], "sample json");
            let n_images = s["json"]["image_ids"].as_array().unwrap().len();
            let members = s["members"].as_array().unwrap();
            assert_eq!(members.len(), n_images + 1, "{s}");
        }
        let kitchen = samples
            .iter()
            .find(|s| s["key"] == "v_demo_kitchen")
            .unwrap();
        assert_eq!(kitchen["json"]["instructions"].as_array().unwrap().len(), 3);
    }

    // Per image: one sample per frame; turning webdataset off removes the folder.
    let o = mimicit(
        dir.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "pack.wds_sample=image",
            "--set",
            "pack.wds_max_samples=100",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let index = read_json(&wds.join("index.json"));
    assert_eq!(index["sample"], "image");
    // 20 frames, one of them an exact duplicate dropped by dedup.
    assert_eq!(index["shards"][0]["samples"], 19);
    assert!(
        !wds.join("DC-000001.tar").exists(),
        "stale shard left behind"
    );
    let o = mimicit(
        dir.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "pack.webdataset=false",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!wds.exists());
}

#[test]
fn verify_catches_a_flipped_byte_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let manifest = read_json(&out.join("manifest.json"));
    let mut targets: Vec<String> = Vec::new();
    for stages in manifest["scenarios"]["DC"]["stages"]
        .as_object()
        .unwrap()
        .values()
    {
        for o in stages["outputs"].as_array().unwrap() {
            assert!(o["rows"].is_u64() || !o["path"].as_str().unwrap().ends_with(".parquet"));
            targets.push(o["path"].as_str().unwrap().to_string());
        }
    }
    // A frame of the content-addressed store, which the manifest covers through frames.parquet.
    let frames = mimicit::tables::read_frames(&out.join("DC/frames.parquet")).unwrap();
    targets.push(format!("DC/{}", frames[3].file));
    assert!(targets.len() >= 14, "{targets:?}");
    for t in &targets {
        let path = out.join(t);
        let original = std::fs::read(&path).unwrap();
        let mut damaged = original.clone();
        let i = damaged.len() / 2;
        damaged[i] ^= 0x01;
        std::fs::write(&path, &damaged).unwrap();
        let o = mimicit(dir.path(), &["verify", "out"]);
        assert_eq!(o.status.code(), Some(1), "flipped byte in {t} not caught");
        let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let named = report["problems"].as_array().unwrap().iter().any(|p| {
            p["path"]
                .as_str()
                .unwrap()
                .ends_with(t.rsplit('/').next().unwrap())
                || p["problem"]
                    .as_str()
                    .unwrap()
                    .contains(t.rsplit('/').next().unwrap())
        });
        assert!(named, "{t}: {report}");
        std::fs::write(&path, &original).unwrap();
    }
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn verify_finds_instructions_whose_images_are_not_packed() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    // Rewrite an instruction to point at an image that does not exist, and re-record its hash
    // in the manifest, as a buggy tool or a hand edit would: only the id check can catch it.
    let ins_path = out.join("DC/DC_instructions.json");
    let mut ins = read_json(&ins_path);
    ins["data"]["DC_INS_00001"]["image_ids"][0] = "DC_IMG_v_nowhere_0000".into();
    let bytes = serde_json::to_vec_pretty(&ins).unwrap();
    std::fs::write(&ins_path, &bytes).unwrap();
    let mut manifest = read_json(&out.join("manifest.json"));
    for o in manifest["scenarios"]["DC"]["stages"]["pack"]["outputs"]
        .as_array_mut()
        .unwrap()
    {
        if o["path"] == "DC/DC_instructions.json" {
            o["bytes"] = bytes.len().into();
            o["blake3"] = blake3::hash(&bytes).to_hex().to_string().into();
        }
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("DC_IMG_v_nowhere_0000 is not in DC/DC.parquet"),
        "{}",
        stdout(&o)
    );
}

/// With `metadata.require_media = false` an annotated video that is missing gets Syphus inputs;
/// answers about it cannot be packed (the trainer needs images) and say why.
#[test]
fn annotation_only_units_get_syphus_inputs_but_are_not_packed() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let ann_path = dir.path().join("demo/annotations/train.json");
    let mut ann = read_json(&ann_path);
    ann["v_demo_ghost"] = serde_json::json!({
        "duration": 10.0,
        "timestamps": [[0.0, 4.0]],
        "sentences": ["Nobody filmed this."],
    });
    std::fs::write(&ann_path, ann.to_string()).unwrap();
    let extra = dir.path().join("ghost.jsonl");
    std::fs::write(
        &extra,
        "{\"id\": \"v_demo_ghost\", \"results\": \"Question: who?\\nAnswer: nobody.\"}\n",
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "metadata.require_media=false",
            "--set",
            &format!(
                "pack.answers=[\"{}\", \"{}\"]",
                dir.path().join("demo/answers/valid_output.json").display(),
                extra.display()
            ),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = dir.path().join("out");
    let query = read_json(&out.join("DC/syphus/DC_query.json"));
    let ids: Vec<&str> = query
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"v_demo_ghost"), "{ids:?}");
    assert_eq!(ids.len(), 5);
    let scan = mimicit::tables::read_rejects(&out.join("DC/rejects/scan.parquet")).unwrap();
    assert!(scan.iter().any(|r| r.item == "v_demo_ghost"), "{scan:?}");
    let pack = mimicit::tables::read_rejects(&out.join("DC/rejects/pack.parquet")).unwrap();
    assert_eq!(pack.len(), 1, "{pack:?}");
    assert_eq!(pack[0].item, "v_demo_ghost");
    assert!(pack[0].error.contains("without kept frames"), "{pack:?}");
    let ins = read_json(&out.join("DC/DC_instructions.json"));
    assert_eq!(ins["data"].as_object().unwrap().len(), 10);
    check_packed(&out);
}
