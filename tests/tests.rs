//! Integration tests: the CLI driven as a user would, in temp folders.

mod bad_inputs;
mod cli;
mod corpora;
// CLIP features need libtorch: without the `torch` feature these tests would not compile.
#[cfg(feature = "torch")]
mod features;
mod filters;
mod formats;
mod golden;
mod pack;
mod reliability;
mod report;
mod resume;
mod scaleout;
mod syphus;
mod syphus_stage;
mod util;

use util::*;

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = mimicit(dir.path(), &["--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let help = stdout(&o);
    for cmd in [
        "run",
        "scan",
        "keyframes",
        "dedup",
        "features",
        "metadata",
        "pack",
        "merge",
        "frames",
        "embed",
        "verify",
        "report",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`{cmd}` missing from --help:\n{help}"
        );
    }
    for cmd in ["run", "frames", "verify", "pack", "merge"] {
        let o = mimicit(dir.path(), &[cmd, "--help"]);
        assert!(o.status.success());
        assert!(
            stdout(&o).contains("Example:"),
            "{cmd} --help has no example"
        );
    }
}

#[test]
fn every_scenario_file_matches_the_schema() {
    let dir = repo().join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = text.parse().unwrap();
            let json = serde_json::to_value(&table).unwrap();
            assert_valid("scenario.schema.json", &json, &path.display().to_string());
            n += 1;
        }
    }
    assert!(n >= 9, "expected the 9 scenario files, found {n}");
}

#[test]
fn schema_rejects_a_bad_scenario() {
    // The schema must be able to fail: a wrong type, an unknown key, a bad enum.
    let v = schema("scenario.schema.json");
    for bad in [
        serde_json::json!({"scenario": "DC", "source": {"root": ".", "annotations": 3}}),
        serde_json::json!({"scenario": "DC", "source": {"root": ".", "annotations": "a"}, "bogus": 1}),
        serde_json::json!({"scenario": "XX", "source": {"root": ".", "annotations": "a"}}),
        serde_json::json!({"scenario": "DC", "source": {"root": ".", "annotations": "a"}, "image": {"aspect": "stretch"}}),
    ] {
        assert!(!v.is_valid(&bad), "accepted {bad}");
    }
}

#[test]
fn malformed_scenario_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = copy_demo(dir.path());
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(&scenario, text.replace("fps = 1.0", "fps = \"one\"")).unwrap();
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("demo.toml") && err.contains("keyframes.fps"),
        "{err}"
    );

    std::fs::write(
        &scenario,
        text.replace("[image]", "[image]\nsharpen = true"),
    )
    .unwrap();
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sharpen"), "{}", stderr(&o));
}

#[test]
fn set_overrides_a_key_and_a_missing_root_is_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(
        dir.path(),
        &[
            "scan",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "source.root=nowhere",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("source.root") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn unbuilt_features_exit_2_with_one_line() {
    // Every scenario's adapter is built; semantic dedup of a bare folder is not.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pictures")).unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "dedup",
            "pictures",
            "--out",
            "d.parquet",
            "--set",
            "dedup.semantic=true",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not built yet"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn stage_before_its_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(
        dir.path(),
        &["metadata", "scenarios/demo.toml", "--out", "out"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("needs the output of stage"),
        "{}",
        stderr(&o)
    );
}

/// Every file of a finished demo run, checked against its schema.
fn check_outputs_against_schemas(out: &std::path::Path) {
    let manifest = read_json(&out.join("manifest.json"));
    assert_valid("manifest.schema.json", &manifest, "manifest.json");
    assert_valid(
        "timings.schema.json",
        &read_json(&out.join("DC/timings.json")),
        "timings.json",
    );
    let query = read_json(&out.join("DC/syphus/DC_query.json"));
    assert_valid("syphus_query.schema.json", &query, "DC_query.json");
    for (file, schema_name) in [
        ("DC/units.parquet", "units.schema.json"),
        ("DC/media.parquet", "media.schema.json"),
        ("DC/annotations.parquet", "annotations.schema.json"),
        ("DC/frames.parquet", "frames.schema.json"),
        ("DC/rejects/scan.parquet", "rejects.schema.json"),
        ("DC/rejects/keyframes.parquet", "rejects.schema.json"),
    ] {
        if let Some(rows) = pandas_rows(&out.join(file)) {
            for row in &rows {
                assert_valid(schema_name, row, file);
            }
        }
    }
    assert_valid(
        "syphus_dense_captions.schema.json",
        &read_json(&out.join("DC/syphus/dense_captions_train.json")),
        "dense_captions_train.json",
    );
}

#[test]
fn demo_run_is_complete_resumable_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out1 = dir.path().join("out1");
    check_outputs_against_schemas(&out1);
    let summary = stderr(&o);
    assert!(summary.contains("DC: scan"), "{summary}");

    // The Syphus query holds exactly the four annotated clips, in the annotation file's order
    // (the order the original loader iterates it in).
    let query = read_json(&out1.join("DC/syphus/DC_query.json"));
    let ids: Vec<&str> = query
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "v_demo_kitchen",
            "v_demo_street",
            "v_demo_garden",
            "v_demo_studio"
        ]
    );

    // A second run finds everything up to date and changes no byte.
    let before: Vec<_> = files(&out1)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(out1.join(&f)).unwrap()))
        .collect();
    let first_timings = read_json(&out1.join("DC/timings.json"));
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("up-to-date"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(" ran"), "{}", stderr(&o));
    // Its timings keep what the first run measured, as `last_ran` of each up-to-date stage.
    let timings = read_json(&out1.join("DC/timings.json"));
    assert_valid("timings.schema.json", &timings, "timings.json");
    for (now, then) in timings["stages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(first_timings["stages"].as_array().unwrap())
    {
        assert_eq!(now["stage"], then["stage"]);
        if then["status"] == "off" {
            // syphus: no endpoint in the demo.
            assert_eq!(now["status"], "off", "{now}");
            continue;
        }
        assert_eq!(now["status"], "up-to-date", "{now}");
        assert_eq!(now["last_ran"]["wall_s"], then["wall_s"], "{now} {then}");
    }
    for (f, bytes) in &before {
        // Timings differ between runs, and so does the report's page that shows them (see
        // tests/report.rs for the rest of the page).
        if f.ends_with("timings.json") || f.ends_with("report/index.html") {
            continue;
        }
        assert_eq!(
            &std::fs::read(out1.join(f)).unwrap(),
            bytes,
            "{} changed",
            f.display()
        );
    }

    // Another folder, same inputs: the same files with the same bytes.
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out2",
            "--threads",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out2 = dir.path().join("out2");
    assert_eq!(files(&out1), files(&out2));
    for f in files(&out1) {
        // Timings differ between runs, and so does the report's page that shows them (see
        // tests/report.rs for the rest of the page).
        if f.ends_with("timings.json") || f.ends_with("report/index.html") {
            continue;
        }
        assert_eq!(
            std::fs::read(out1.join(&f)).unwrap(),
            std::fs::read(out2.join(&f)).unwrap(),
            "{} differs between runs",
            f.display()
        );
    }

    // verify passes, then catches a damaged file.
    let o = mimicit(dir.path(), &["verify", "out1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid("verify.schema.json", &report, "verify stdout");
    assert_eq!(report["ok"], true);
    std::fs::write(out1.join("DC/syphus/DC_query.json"), b"[]\n").unwrap();
    let o = mimicit(dir.path(), &["verify", "out1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("DC_query.json"), "{}", stderr(&o));

    // A damaged output makes the stage that wrote it run again.
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out1.join("DC/syphus/DC_query.json")).unwrap(),
        std::fs::read(out2.join("DC/syphus/DC_query.json")).unwrap()
    );
}

#[test]
fn changed_setting_reruns_the_stage_and_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "keyframes.fps=2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let line = |stage: &str| {
        err.lines()
            .find(|l| l.starts_with(&format!("DC: {stage} ")))
            .unwrap_or_else(|| panic!("no {stage} line in {err}"))
            .to_string()
    };
    assert!(line("scan").contains("up-to-date"), "{err}");
    assert!(line("keyframes").contains("ran"), "{err}");
    assert!(line("metadata").contains("ran"), "{err}");
}

#[test]
fn bad_items_are_rejected_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let demo = dir.path().join("demo");
    // A video that is not a video, and an annotation whose video is missing.
    std::fs::write(
        demo.join("videos/v_broken.mp4"),
        b"this is text, not a video",
    )
    .unwrap();
    let ann_path = demo.join("annotations/train.json");
    let mut ann = read_json(&ann_path);
    ann["v_broken"] =
        serde_json::json!({"duration": 2, "timestamps": [[0, 1]], "sentences": ["x"]});
    ann["v_missing"] =
        serde_json::json!({"duration": 2, "timestamps": [[0, 1]], "sentences": ["y"]});
    ann["v_malformed"] = serde_json::json!({"duration": 2, "timestamps": [[0, 1]]});
    std::fs::write(&ann_path, serde_json::to_vec(&ann).unwrap()).unwrap();

    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("v_missing") && err.contains("v_broken.mp4"),
        "{err}"
    );
    let query = read_json(&dir.path().join("out/DC/syphus/DC_query.json"));
    assert_eq!(
        query.as_array().unwrap().len(),
        4,
        "the good clips are all there"
    );
    assert!(dir.path().join("out/DC/rejects/scan.parquet").is_file());
    assert!(dir
        .path()
        .join("out/DC/rejects/keyframes.parquet")
        .is_file());
}

#[test]
fn doctor_reports_the_native_stack() {
    let dir = tempfile::tempdir().unwrap();
    let o = mimicit(dir.path(), &["doctor", "--threads", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid("doctor.schema.json", &report, "doctor stdout");
    assert_eq!(report["threads"], 2);
    // Debian 12 ships FFmpeg 5.1: libavcodec 59.
    assert!(
        report["ffmpeg"]["avcodec"]
            .as_str()
            .unwrap()
            .starts_with("59."),
        "{report}"
    );
}

#[test]
fn frames_extracts_good_videos_and_names_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    copy_tree(&repo().join("demo/videos"), &videos);
    std::fs::write(videos.join("broken.mkv"), [0x1a, 0x45, 0xdf, 0xa3, 1, 2, 3]).unwrap();
    // Same stem in a subfolder: both keep their frames.
    std::fs::create_dir_all(videos.join("more")).unwrap();
    std::fs::copy(
        videos.join("v_demo_street.mp4"),
        videos.join("more/v_demo_street.mp4"),
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "frames", "videos", "--out", "frames", "--fps", "2", "--width", "64", "--height", "48",
            "--format", "jpeg",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.mkv"), "{}", stderr(&o));
    let lines = std::fs::read_to_string(dir.path().join("frames/frames.jsonl")).unwrap();
    let mut per_video = std::collections::BTreeMap::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid("frames_jsonl.schema.json", &v, "frames.jsonl");
        let file = dir.path().join("frames").join(v["file"].as_str().unwrap());
        let img = image::open(&file).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
        *per_video
            .entry(v["video"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    // 2 fps over clips of 4 to 6 seconds: every good clip, none of the broken one.
    assert_eq!(per_video.len(), 5, "{per_video:?}");
    assert!(dir
        .path()
        .join("frames/more_v_demo_street/000000.jpg")
        .is_file());
    assert!(dir.path().join("frames/v_demo_street/000000.jpg").is_file());
    if let Some(rows) = pandas_rows(&dir.path().join("frames/frames.parquet")) {
        assert_eq!(rows.len(), lines.lines().count());
        for row in &rows {
            assert_valid("frames_dir.schema.json", row, "frames.parquet");
        }
    }
    assert!(
        per_video.values().all(|&n| (8..=12).contains(&n)),
        "{per_video:?}"
    );
    if let Some(rows) = pandas_rows(&dir.path().join("frames/rejects.parquet")) {
        assert_eq!(rows.len(), 1);
        assert_valid("rejects.schema.json", &rows[0], "rejects.parquet");
        assert!(rows[0]["path"].as_str().unwrap().ends_with("broken.mkv"));
    }
}

#[test]
fn frames_samples_folders_of_pictures_like_videos() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let video = mimicit::testkit::fixture("videos/realshort.mp4");
    std::fs::copy(video, input.join("realshort.mp4")).unwrap();
    // A TVQA-like folder: 12 pictures at 3 fps (0 to 3.67 s), 00001.jpg first.
    let seq = input.join("tvqa/s01e01_clip");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 1..=12u8 {
        image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([i * 20, x as u8, y as u8]))
            .save(seq.join(format!("{i:05}.jpg")))
            .unwrap();
    }
    // --fps 1 wants pictures 1, 4, 7 and 10; 7 cannot be read, 2 is never read.
    std::fs::write(seq.join("00007.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    std::fs::write(seq.join("00002.jpg"), b"never read").unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "frames", "in", "--out", "out", "--fps", "1", "--width", "64", "--height", "48",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("00007.jpg"), "{err}");
    assert!(!err.contains("00002.jpg"), "{err}");
    assert!(err.contains("1 videos and 1 image sequences"), "{err}");
    let out = dir.path().join("out");
    let lines = std::fs::read_to_string(out.join("frames.jsonl")).unwrap();
    let mut sequence = Vec::new();
    let mut video = 0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid("frames_jsonl.schema.json", &v, "frames.jsonl");
        let img = image::open(out.join(v["file"].as_str().unwrap())).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
        if v["video"].as_str().unwrap().ends_with("realshort.mp4") {
            video += 1;
            assert!(v["file"].as_str().unwrap().starts_with("realshort/"), "{v}");
            assert!(v.get("picture").is_none(), "{v}");
        } else {
            let picture = v["picture"].as_str().unwrap();
            sequence.push((
                v["file"].as_str().unwrap().to_string(),
                v["time_s"].as_f64().unwrap(),
                picture.rsplit('/').next().unwrap().to_string(),
            ));
        }
    }
    assert!(video >= 1, "{lines}");
    let want: Vec<(String, f64, String)> = [(0, 0.0, 1), (1, 1.0, 4), (2, 3.0, 10)]
        .into_iter()
        .map(|(i, t, p)| {
            (
                format!("tvqa_s01e01_clip/{i:06}.png"),
                t,
                format!("{p:05}.jpg"),
            )
        })
        .collect();
    assert_eq!(sequence, want);
    if let Some(rows) = pandas_rows(&out.join("frames.parquet")) {
        assert_eq!(rows.len(), lines.lines().count());
        for row in &rows {
            assert_valid("frames_dir.schema.json", row, "frames.parquet");
        }
        assert!(rows
            .iter()
            .any(|r| r["unit_id"] == "tvqa_s01e01_clip" && r["time_s"] == 3.0));
    }
    if let Some(rows) = pandas_rows(&out.join("rejects.parquet")) {
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_valid("rejects.schema.json", &rows[0], "rejects.parquet");
        assert!(rows[0]["path"].as_str().unwrap().ends_with("00007.jpg"));
        assert_eq!(rows[0]["item"], "tvqa_s01e01_clip");
    }

    // Every picture: --fps 1 on a 1 fps sequence; the unreadable ones are rejected.
    let o = mimicit(
        dir.path(),
        &[
            "frames",
            "in/tvqa",
            "--out",
            "all",
            "--sequence-fps",
            "1",
            "--fps",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let lines = std::fs::read_to_string(dir.path().join("all/frames.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 10, "{lines}");
    let o = mimicit(
        dir.path(),
        &["frames", "in", "--out", "bad", "--sequence-fps", "0"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--sequence-fps"), "{}", stderr(&o));
    let o = mimicit(
        dir.path(),
        &["frames", "in", "--out", "bad", "--reducing-gap", "0.5"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--reducing-gap"), "{}", stderr(&o));
    // The speed settings give the same frames, in other PNG bytes.
    let o = mimicit(
        dir.path(),
        &[
            "frames",
            "in/tvqa",
            "--out",
            "fast",
            "--sequence-fps",
            "1",
            "--fps",
            "1",
            "--png-compression",
            "fast",
            "--reducing-gap",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let fast = std::fs::read_to_string(dir.path().join("fast/frames.jsonl")).unwrap();
    assert_eq!(fast.lines().count(), 10, "{fast}");
    for (a, b) in lines.lines().zip(fast.lines()) {
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(a).unwrap();
        let file = v["file"].as_str().unwrap();
        let (x, y) = (
            dir.path().join("all").join(file),
            dir.path().join("fast").join(file),
        );
        assert_ne!(
            std::fs::read(&x).unwrap(),
            std::fs::read(&y).unwrap(),
            "{file}"
        );
        let (x, y) = (image::open(x).unwrap(), image::open(y).unwrap());
        assert_eq!(x.to_rgb8().into_raw(), y.to_rgb8().into_raw(), "{file}");
    }
}

#[test]
fn unwritable_output_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    std::fs::write(dir.path().join("taken"), b"a file, not a folder").unwrap();
    let o = mimicit(
        dir.path(),
        &["run", "scenarios/demo.toml", "--out", "taken"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("taken"), "{}", stderr(&o));
}

#[test]
fn progress_jsonl_is_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let o = std::process::Command::new(binary())
        .args([
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--progress",
            "jsonl",
            "-q",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events
        .iter()
        .any(|e| e["event"] == "finish" && e["stage"] == "keyframes" && e["done"] == 4));
    assert!(
        stdout(&o).is_empty(),
        "stdout must stay clean: {}",
        stdout(&o)
    );
}

#[test]
fn dedup_dry_run_reports_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let before: Vec<_> = files(&out)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(out.join(&f)).unwrap()))
        .collect();
    let o = mimicit(
        dir.path(),
        &[
            "dedup",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--dry-run",
            "--set",
            "dedup.near=true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(
        "dedup_dry_run.schema.json",
        &report,
        "dedup --dry-run stdout",
    );
    assert_eq!(report["frames"], 20);
    assert!(report["exact"].as_u64().unwrap() >= 1, "{report}");
    for (f, bytes) in &before {
        assert_eq!(
            &std::fs::read(out.join(f)).unwrap(),
            bytes,
            "{} changed",
            f.display()
        );
    }
    assert_eq!(
        files(&out),
        before.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn dedup_folder_takes_dedup_settings() {
    let dir = tempfile::tempdir().unwrap();
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    let coco = mimicit::testkit::fixture("coco/images");
    let mut src: Vec<_> = std::fs::read_dir(&coco)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    src.sort();
    std::fs::copy(&src[0], pics.join("a.jpg")).unwrap();
    std::fs::copy(&src[0], pics.join("a_copy.jpg")).unwrap();
    std::fs::copy(&src[1], pics.join("b.jpg")).unwrap();
    for (sets, dropped) in [
        (vec![], 1),
        (
            vec!["--set", "dedup.exact=false", "--set", "dedup.near=false"],
            0,
        ),
        (vec!["--set", "dedup.max_hamming=0"], 1),
    ] {
        let mut args = vec!["dedup", "pics", "--out", "d.parquet"];
        args.extend(sets.iter().copied());
        let o = mimicit(dir.path(), &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let rows = pandas_rows(&dir.path().join("d.parquet")).expect("pandas");
        assert_eq!(rows.len(), dropped, "{args:?}: {rows:?}");
        for r in &rows {
            assert_valid("dedup.schema.json", r, "dedup DIR");
            assert_eq!(
                (r["dropped_id"].as_str(), r["kept_id"].as_str()),
                (Some("a_copy"), Some("a"))
            );
        }
    }
    for bad in [
        "source.root=x",
        "dedup.max_hamming=\"six\"",
        "dedup.colour=true",
    ] {
        let o = mimicit(
            dir.path(),
            &["dedup", "pics", "--out", "d.parquet", "--set", bad],
        );
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--set"), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn frames_size_flag_sets_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let seq = dir.path().join("in/seq");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 0..3u8 {
        image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([i * 60, x as u8, y as u8]))
            .save(seq.join(format!("{i}.jpg")))
            .unwrap();
    }
    for (size, want) in [("32x24", (32, 24)), ("16", (16, 16)), ("40X20", (40, 20))] {
        let out = format!("out_{size}");
        let o = mimicit(
            dir.path(),
            &["frames", "in", "--out", &out, "--fps", "3", "--size", size],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let lines = std::fs::read_to_string(dir.path().join(&out).join("frames.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3, "{lines}");
        for line in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let img = image::open(dir.path().join(&out).join(v["file"].as_str().unwrap())).unwrap();
            assert_eq!((img.width(), img.height()), want, "--size {size}");
        }
    }
    for bad in [
        &["--size", "0"][..],
        &["--size", "3y4"],
        &["--size", "8", "--width", "9"],
    ] {
        let mut args = vec!["frames", "in", "--out", "bad"];
        args.extend_from_slice(bad);
        let o = mimicit(dir.path(), &args);
        // Bad usage: exit 2, the flag named, nothing written.
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("--size"), "{bad:?}: {err}");
        assert!(!dir.path().join("bad").exists(), "{bad:?} wrote output");
    }
    let o = mimicit(
        dir.path(),
        &[
            "embed",
            "in",
            "--model",
            "m",
            "--out",
            "e.parquet",
            "--batch",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "--batch 0: {}", stderr(&o));
    assert!(stderr(&o).contains("--batch"), "{}", stderr(&o));
}
