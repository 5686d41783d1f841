//! CLIP features: the Rust vision tower and preprocessing against transformers on a small random
//! model (made by scripts/make-tiny-clip.py in the project venv) and real fixture pictures; the
//! `embed` command; the `features` stage with pairs and `rel_ins = knn:K` on the demo.

use std::path::{Path, PathBuf};
use std::process::Command;

use mimicit::features::{DeviceSpec, Embedder, Precision};

use crate::util::{
    assert_same_files, assert_valid, binary, copy_demo, mimicit, pandas_rows, read_json, repo,
    run_demo, snapshot, stderr, stdout,
};

fn fixture_images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(mimicit::testkit::fixture("coco/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.push(mimicit::testkit::fixture(
        "scannet/scene0000_00/color/00000.jpg",
    ));
    v
}

/// A tiny random CLIP in `dir/model` and transformers' embeddings of `images` in `dir/ref.json`.
fn make_model(dir: &Path, extra: &[&str], images: &[PathBuf]) -> (PathBuf, serde_json::Value) {
    let model = dir.join("model");
    let reference = dir.join("ref.json");
    let mut cmd = Command::new("python");
    cmd.arg(repo().join("scripts/make-tiny-clip.py"))
        .arg(&model)
        .args(extra);
    if !images.is_empty() {
        cmd.arg("--reference").arg(&reference).args(images);
    }
    let o = cmd
        .output()
        .expect("python (run `eval \"$(scripts/setup.sh --env)\"`)");
    assert!(
        o.status.success(),
        "make-tiny-clip.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = if images.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap()
    };
    (model, r)
}

/// The one float32 tensor of a safetensors file: (shape, values).
fn read_safetensors_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (_, t) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| *k != "__metadata__")
        .unwrap();
    assert_eq!(t["dtype"], "F32");
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let off: Vec<usize> = t["data_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let data = &bytes[8 + n + off[0]..8 + n + off[1]];
    let vals = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, vals)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn reference_embedding(r: &serde_json::Value, id: &str) -> Vec<f32> {
    r["images"][id]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn model_matches_transformers_on_identical_input() {
    let tmp = tempfile::tempdir().unwrap();
    let images = fixture_images();
    for (variant, extra) in [
        ("vision", vec![]),
        ("full-gelu", vec!["--full", "--act", "gelu"]),
    ] {
        let dir = tmp.path().join(variant);
        let (model, r) = make_model(&dir, &extra, &images);
        let embedder = Embedder::load(&model, DeviceSpec::Cpu, Precision::Fp32).unwrap();
        let (shape, pixels) = read_safetensors_f32(&dir.join(r["pixel_values"].as_str().unwrap()));
        assert_eq!(shape[1..], [3, 224, 224]);
        let got = embedder.embed_pixels(&pixels, shape[0]).unwrap();
        // The helper's CPU time (loading libtorch, the model) counts as this process's.
        assert!(mimicit::features::helper_cpu_s() > 0.0);
        for (i, id) in r["order"].as_array().unwrap().iter().enumerate() {
            let want = reference_embedding(&r, id.as_str().unwrap());
            let d = max_abs_diff(&got[i], &want);
            assert!(d < 1e-4, "{variant} {id}: largest difference {d}");
        }
    }
}

#[test]
fn preprocessing_matches_clip_image_processor_to_the_bit() {
    // JPEG decoding (libjpeg-turbo, as Pillow) and Pillow's bicubic resampling are reproduced
    // exactly: the pixel values equal transformers' up to float rounding of the normalisation.
    let tmp = tempfile::tempdir().unwrap();
    let images = fixture_images();
    let (model, r) = make_model(tmp.path(), &[], &images);
    let embedder = Embedder::load(&model, DeviceSpec::Cpu, Precision::Fp32).unwrap();
    let (_, pixels) = read_safetensors_f32(&tmp.path().join(r["pixel_values"].as_str().unwrap()));
    let plane = 3 * 224 * 224;
    for (i, path) in images.iter().enumerate() {
        let img = mimicit::imaging::decode_file(path).unwrap();
        let mine = embedder.preprocessing().apply(&img).unwrap();
        let d = max_abs_diff(&mine, &pixels[i * plane..(i + 1) * plane]);
        assert!(d < 1e-5, "{}: largest difference {d}", path.display());
    }
}

/// A folder with the fixture pictures and one file that only pretends to be a JPEG.
fn picture_folder(dir: &Path) -> PathBuf {
    let pics = dir.join("pics");
    std::fs::create_dir_all(pics.join("sub")).unwrap();
    for (i, p) in fixture_images().iter().enumerate() {
        let to = if i == 0 {
            pics.join("sub")
        } else {
            pics.clone()
        };
        std::fs::copy(p, to.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(pics.join("broken.jpg"), b"this is text, not a picture").unwrap();
    pics
}

#[test]
fn embed_command_matches_transformers_and_rejects_bad_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let images = fixture_images();
    let (_model, r) = make_model(tmp.path(), &[], &images);
    let pics = picture_folder(tmp.path());
    let embed = |extra: &[&str]| {
        let mut args = vec!["embed", "pics", "--model", "model", "--device", "cpu"];
        args.extend_from_slice(extra);
        mimicit(tmp.path(), &args)
    };
    let o = embed(&["--out", "emb.parquet", "--batch", "2", "--npy"]);
    // Every good picture embedded, the bad one named, exit status 3 (finished with rejects).
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));
    // The model was made with random weights: the user is warned that its vectors mean nothing.
    assert!(
        stderr(&o).contains("RANDOM weights") && stderr(&o).contains("real CLIP"),
        "no random-weights warning: {}",
        stderr(&o)
    );
    let rejects = pandas_rows(&tmp.path().join("emb.rejects.parquet")).expect("pandas");
    assert_eq!(rejects.len(), 1);
    assert_valid("rejects.schema.json", &rejects[0], "emb.rejects.parquet");
    assert_eq!(rejects[0]["item"], "broken");
    assert!(rejects[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("pics/broken.jpg"));

    let rows = pandas_rows(&tmp.path().join("emb.parquet")).expect("pandas");
    assert_eq!(rows.len(), images.len());
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["image_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows sorted by id");
    for row in &rows {
        assert_valid("features.schema.json", row, "emb.parquet");
        let id = row["image_id"].as_str().unwrap();
        let got: Vec<f32> = row["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let d = max_abs_diff(&got, &reference_embedding(&r, id));
        assert!(d < 1e-4, "{id}: largest difference {d}");
    }
    // The .npy holds the same rows in the same order.
    let check = Command::new("python")
        .args([
            "-c",
            "import sys, numpy as np, pandas as pd\n\
             a = np.load(sys.argv[1]); df = pd.read_parquet(sys.argv[2])\n\
             assert a.dtype == np.float32 and a.shape == (len(df), 16), a.shape\n\
             assert np.array_equal(a, np.stack(df.embedding.to_list())), 'rows differ'",
        ])
        .arg(tmp.path().join("emb.npy"))
        .arg(tmp.path().join("emb.parquet"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the .npy differs from the parquet: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Same input, same bytes; --normalize gives unit vectors.
    let first = std::fs::read(tmp.path().join("emb.parquet")).unwrap();
    let o = embed(&["--out", "emb.parquet", "--batch", "2"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        first,
        std::fs::read(tmp.path().join("emb.parquet")).unwrap()
    );
    let o = embed(&["--out", "unit.parquet", "--normalize"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    for row in pandas_rows(&tmp.path().join("unit.parquet")).unwrap() {
        let n: f64 = row["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().powi(2))
            .sum();
        assert!((n - 1.0).abs() < 1e-5, "norm^2 {n}");
    }
    let _ = pics;
}

#[test]
fn torchscript_archive_gives_the_same_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let images = fixture_images();
    let pt = tmp.path().join("clip.pt");
    let (_, r) = make_model(
        tmp.path(),
        &["--torchscript", pt.to_str().unwrap()],
        &images,
    );
    let embedder = Embedder::load(&pt, DeviceSpec::Cpu, Precision::Auto).unwrap();
    assert_eq!(embedder.dim(), 16);
    let (shape, pixels) =
        read_safetensors_f32(&tmp.path().join(r["pixel_values"].as_str().unwrap()));
    let got = embedder.embed_pixels(&pixels, shape[0]).unwrap();
    for (i, id) in r["order"].as_array().unwrap().iter().enumerate() {
        let d = max_abs_diff(&got[i], &reference_embedding(&r, id.as_str().unwrap()));
        assert!(d < 1e-4, "{id}: largest difference {d}");
    }
    // The archive's precision is its own.
    let err = Embedder::load(&pt, DeviceSpec::Cpu, Precision::Bf16)
        .err()
        .unwrap();
    assert!(err.to_string().contains("runs in that precision"), "{err}");
}

#[test]
fn model_errors_name_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _) = make_model(tmp.path(), &[], &[]);
    // Missing weights.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(model.join("config.json"), bare.join("config.json")).unwrap();
    let err = Embedder::load(&bare, DeviceSpec::Cpu, Precision::Fp32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no model.safetensors"), "{err}");
    // Weights that do not fit the config.
    let wrong = tmp.path().join("wrong");
    crate::util::copy_tree(&model, &wrong);
    let cfg = std::fs::read_to_string(wrong.join("config.json")).unwrap();
    std::fs::write(
        wrong.join("config.json"),
        cfg.replace("\"hidden_size\": 32", "\"hidden_size\": 48"),
    )
    .unwrap();
    let err = Embedder::load(&wrong, DeviceSpec::Cpu, Precision::Fp32)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("shape"),
        "{err}"
    );
    // Not a model at all; fp16 on CPU; a GPU this machine does not have.
    let err = Embedder::load(
        &tmp.path().join("nothing"),
        DeviceSpec::Cpu,
        Precision::Fp32,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("nothing") && err.contains("no such model"),
        "{err}"
    );
    let err = Embedder::load(&model, DeviceSpec::Cpu, Precision::Fp16)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fp16 runs on CUDA only"), "{err}");
    if !tch_cuda() {
        let o = mimicit(
            tmp.path(),
            &[
                "embed",
                ".",
                "--model",
                "model",
                "--out",
                "x.parquet",
                "--device",
                "cuda:0",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("cuda:0"), "{}", stderr(&o));
    }
}

fn tch_cuda() -> bool {
    mimicit::features::torch_report().cuda_available
}

#[test]
fn features_stage_writes_vectors_pairs_and_visual_in_context_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_demo(tmp.path());
    let manifest = read_json(&out.join("manifest.json"));
    let stage = &manifest["scenarios"]["DC"]["stages"]["features"];
    let files: Vec<&str> = stage["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"DC/features/part-00000.parquet"),
        "{files:?}"
    );
    assert!(files.contains(&"DC/pairs.parquet"), "{files:?}");

    // One vector per kept frame (dedup applied), sorted by id, unit length (normalize = true).
    let frames = pandas_rows(&out.join("DC/frames.parquet")).expect("pandas");
    let dropped: Vec<String> = pandas_rows(&out.join("DC/dedup.parquet"))
        .unwrap()
        .iter()
        .map(|r| r["dropped_id"].as_str().unwrap().to_string())
        .collect();
    let mut kept: Vec<String> = frames
        .iter()
        .map(|f| f["image_id"].as_str().unwrap().to_string())
        .filter(|id| !dropped.contains(id))
        .collect();
    kept.sort();
    let rows = pandas_rows(&out.join("DC/features/part-00000.parquet")).unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r["image_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, kept);
    assert_eq!(stage["counts"]["ok"], kept.len());
    for row in &rows {
        assert_valid("features.schema.json", row, "features part");
    }

    // Pairs: K = 2 per frame at most, within the band, never itself.
    let pairs = pandas_rows(&out.join("DC/pairs.parquet")).unwrap();
    assert!(!pairs.is_empty());
    for p in &pairs {
        assert_valid("pairs.schema.json", p, "pairs.parquet");
        assert_ne!(p["image_id"], p["other_id"]);
        let c = p["cosine"].as_f64().unwrap();
        assert!((0.75..=0.97 + 1e-6).contains(&c), "{c}");
        assert!(p["rank"].as_u64().unwrap() < 2);
    }

    // rel_ins = knn:2: each instruction's examples are first instructions of other units.
    let o = mimicit(
        tmp.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "pack.rel_ins=knn:2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ins = read_json(&out.join("DC/DC_instructions.json"));
    let data = ins["data"].as_object().unwrap();
    let unit_of = |id: &str| -> String {
        data[id]["image_ids"][0]
            .as_str()
            .unwrap()
            .rsplit_once('_')
            .unwrap()
            .0
            .to_string()
    };
    let mut firsts = std::collections::BTreeSet::new();
    let mut seen_units = std::collections::BTreeSet::new();
    for (id, v) in data {
        if seen_units.insert(unit_of(id)) {
            firsts.insert(id.clone());
        }
        let _ = v;
    }
    for (id, v) in data {
        let rel: Vec<&str> = v["rel_ins_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(rel.len(), 2, "{id}: {rel:?}");
        for r in rel {
            assert!(
                firsts.contains(r),
                "{id}: {r} is not a unit's first instruction"
            );
            assert_ne!(unit_of(r), unit_of(id), "{id}: {r} is from the same unit");
        }
    }
    let o = mimicit(tmp.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // knn needs a model.
    let scenario = tmp.path().join("scenarios/demo.toml");
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(&scenario, text.replace("model = \"../demo/model\"\n", "")).unwrap();
    let o = mimicit(
        tmp.path(),
        &[
            "pack",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "pack.rel_ins=knn:2",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("set features.model"), "{}", stderr(&o));
}

#[test]
fn semantic_dedup_drops_look_alikes_within_a_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_demo(tmp.path());
    let plain = pandas_rows(&out.join("DC/dedup.parquet")).unwrap();
    assert!(plain.iter().all(|r| r["method"] != "semantic"));
    // The demo model has random weights, under which frames of one clip are alike (cosine
    // ~0.96): a threshold of 0.95 merges some of them.
    let o = mimicit(
        tmp.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            "dedup.semantic=true",
            "--set",
            "dedup.min_cosine=0.95",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows = pandas_rows(&out.join("DC/dedup.parquet")).unwrap();
    let semantic: Vec<_> = rows.iter().filter(|r| r["method"] == "semantic").collect();
    assert!(!semantic.is_empty(), "{rows:?}");
    let dropped: Vec<&str> = rows
        .iter()
        .map(|r| r["dropped_id"].as_str().unwrap())
        .collect();
    let unit = |id: &str| id.rsplit_once('_').unwrap().0.to_string();
    for r in &semantic {
        assert_valid("dedup.schema.json", r, "dedup.parquet");
        let (d, k) = (
            r["dropped_id"].as_str().unwrap(),
            r["kept_id"].as_str().unwrap(),
        );
        assert!(!dropped.contains(&k), "{k} is kept");
        assert_eq!(unit(d), unit(k), "scope unit");
        assert!(r["distance"].as_u64().unwrap() <= 50, "{r}");
    }
    // The exact and near decisions stay; fewer frames get features; everything still resolves.
    for p in &plain {
        assert!(rows.contains(p), "{p}");
    }
    let features = pandas_rows(&out.join("DC/features/part-00000.parquet")).unwrap();
    assert!(features
        .iter()
        .all(|f| !dropped.contains(&f["image_id"].as_str().unwrap())));
    let o = mimicit(tmp.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mimicit(
        tmp.path(),
        &[
            "dedup",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--dry-run",
            "--set",
            "dedup.semantic=true",
            "--set",
            "dedup.min_cosine=0.9999",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid("dedup_dry_run.schema.json", &report, "dry run");
    // A stricter threshold merges fewer frames (static shots still give cosines of ~1).
    assert!(
        report["semantic"].as_u64().unwrap() < semantic.len() as u64,
        "{report}"
    );
    for r in report["rows"].as_array().unwrap() {
        if r["method"] == "semantic" {
            assert_eq!(r["distance"], 0, "{r}");
        }
    }
}

/// `mimicit` does not link libtorch (so it does not load it at start); its helper does.
#[test]
fn only_the_helper_links_libtorch() {
    let bin = binary();
    let helper = bin.with_file_name(mimicit::features::HELPER);
    let needs = |p: &Path| {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        bytes.windows(15).any(|w| w == b"libtorch_cpu.so")
    };
    assert!(!needs(&bin), "{} names libtorch_cpu.so", bin.display());
    assert!(
        needs(&helper),
        "{} does not name libtorch_cpu.so",
        helper.display()
    );
}

/// Runs `mimicit ARGS` in `cwd` with the CLIP helper named by `helper`.
fn mimicit_with_helper(cwd: &Path, helper: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .arg("--progress=none")
        .current_dir(cwd)
        .env_remove("MIMICIT_LOG")
        .env(mimicit::features::HELPER_ENV, helper)
        .output()
        .expect("run mimicit")
}

#[test]
fn without_a_working_helper_only_the_clip_stages_fail_and_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    copy_demo(tmp.path());
    let missing = tmp.path().join("nowhere/mimicit-clip");
    // Everything up to the features stage needs no helper.
    let o = mimicit_with_helper(
        tmp.path(),
        &missing,
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--stages",
            "scan,keyframes,dedup,metadata",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mimicit_with_helper(
        tmp.path(),
        &missing,
        &["features", "scenarios/demo.toml", "--out", "out"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cannot start the CLIP helper") && err.contains("nowhere/mimicit-clip"),
        "{err}"
    );
    // A helper that dies at once: the error says it ended, and how.
    let o = mimicit_with_helper(
        tmp.path(),
        Path::new("/bin/false"),
        &["features", "scenarios/demo.toml", "--out", "out"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/bin/false stopped answering") && err.contains("exit status: 1"),
        "{err}"
    );
    // doctor says libtorch is not at hand, and still succeeds.
    let o = mimicit_with_helper(tmp.path(), &missing, &["doctor"]);
    assert!(stdout(&o).contains("\"linked\": false"), "{}", stdout(&o));
}

#[test]
fn frames_are_embedded_once_when_semantic_dedup_and_features_share_a_run() {
    let semantic = [
        "--set",
        "dedup.semantic=true",
        "--set",
        "dedup.min_cosine=0.95",
    ];
    // One process: semantic dedup embeds, the features stage takes the vectors it kept.
    let one = tempfile::tempdir().unwrap();
    copy_demo(one.path());
    let mut args = vec!["run", "scenarios/demo.toml", "--out", "out", "-v"];
    args.extend_from_slice(&semantic);
    let o = mimicit(one.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("had been embedded before in this run"),
        "{}",
        stderr(&o)
    );
    // Two processes: the features stage embeds everything itself.
    let two = tempfile::tempdir().unwrap();
    copy_demo(two.path());
    let mut args = vec!["run", "scenarios/demo.toml", "--out", "out", "-v"];
    args.extend_from_slice(&semantic);
    args.extend_from_slice(&["--stages", "scan,keyframes,dedup,metadata"]);
    let o = mimicit(two.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut args = vec!["features", "scenarios/demo.toml", "--out", "out", "-v"];
    args.extend_from_slice(&semantic);
    let o = mimicit(two.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("had been embedded before"),
        "{}",
        stderr(&o)
    );
    // The same vectors to the byte.
    let dir = |root: &Path| root.join("out/DC/features");
    let want = snapshot(&dir(two.path()));
    assert!(!want.is_empty());
    assert_same_files(&want, &snapshot(&dir(one.path())));
}
