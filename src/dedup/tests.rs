//! Decisions on synthetic signatures, and hashes on the real fixtures in `tests/fixtures/`.

use std::collections::HashMap;

use super::*;

fn sig(id: &str, unit: &str, pixels: &str, phash: Option<u64>) -> FrameSignature {
    FrameSignature {
        image_id: id.into(),
        unit_id: unit.into(),
        pixel_hash: pixels.into(),
        phash,
        mean_luma: 100.0,
        sharpness: 0.0,
    }
}

fn near(scope: DedupScope) -> DedupConfig {
    DedupConfig {
        near: true,
        scope,
        ..Default::default()
    }
}

fn pairs(rows: &[DedupRow]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|r| (r.dropped_id.as_str(), r.kept_id.as_str()))
        .collect()
}

#[test]
fn exact_only_by_default_within_units() {
    let frames = vec![
        sig("a0", "a", "p", Some(0)),
        sig("a1", "a", "q", Some(1)),
        sig("a2", "a", "p", Some(0)),
        sig("b0", "b", "p", Some(0)),
    ];
    let rows = decide(&frames, &DedupConfig::default()).unwrap();
    assert_eq!(pairs(&rows), [("a2", "a0")]);
    assert_eq!((rows[0].method, rows[0].distance), (Method::Exact, 0));
    let corpus = DedupConfig {
        scope: DedupScope::Corpus,
        ..Default::default()
    };
    let rows = decide(&frames, &corpus).unwrap();
    assert_eq!(pairs(&rows), [("a2", "a0"), ("b0", "a0")]);
}

#[test]
fn unit_scope_compares_with_the_last_kept_frame() {
    // A slow pan: every frame is 4 bits from the one before, 8 from the one before that.
    let frames: Vec<_> = (0..5u32)
        .map(|i| {
            sig(
                &format!("f{i}"),
                "u",
                &format!("p{i}"),
                Some((1u64 << (4 * i)) - 1),
            )
        })
        .collect();
    let rows = decide(&frames, &near(DedupScope::Unit)).unwrap();
    // f1 (4 bits from f0) goes; f2 is 8 bits from the kept f0: kept; f3 goes to f2; f4 kept.
    assert_eq!(pairs(&rows), [("f1", "f0"), ("f3", "f2")]);
    assert!(rows
        .iter()
        .all(|r| r.method == Method::Phash && r.distance == 4));
}

#[test]
fn unit_scope_never_crosses_units_and_corpus_scope_does() {
    let frames = vec![
        sig("a0", "a", "p", Some(0b1111)),
        // 1 bit from a0.
        sig("b0", "b", "q", Some(0b0111)),
        // 6 bits from a0, 7 from b0.
        sig("b1", "b", "r", Some(0b11_1111_1111)),
        // 1 bit from b1, 7 from a0.
        sig("c0", "c", "s", Some(0b1_0011_1111_1111)),
    ];
    assert!(decide(&frames, &near(DedupScope::Unit)).unwrap().is_empty());
    // Corpus scope: c0 is compared with the kept a0 only (b1 was dropped): no match.
    let rows = decide(&frames, &near(DedupScope::Corpus)).unwrap();
    assert_eq!(pairs(&rows), [("b0", "a0"), ("b1", "a0")]);
    assert_eq!(rows[1].distance, 6);
    // Unit b lost both frames; its ids still resolve to a kept frame.
    let remap = Remap::from_rows(rows);
    assert_eq!(remap.unit_ids(&["b0", "b1"]), ["a0"]);
    let tight = DedupConfig {
        max_hamming: 3,
        ..near(DedupScope::Corpus)
    };
    let rows = decide(&frames, &tight).unwrap();
    assert_eq!(pairs(&rows), [("b0", "a0"), ("c0", "b1")]);
}

#[test]
fn sharpest_keeps_the_sharpest_without_chains() {
    let mut frames = vec![
        sig("f0", "u", "p", Some(0)),
        sig("f1", "u", "q", Some(1)),
        sig("f2", "u", "r", Some(3)),
        sig("f3", "u", "p", Some(0)),
    ];
    frames[0].sharpness = 1.0;
    frames[1].sharpness = 5.0;
    frames[2].sharpness = 5.0;
    frames[3].sharpness = 1.0;
    let cfg = DedupConfig {
        keep: KeepRule::Sharpest,
        ..near(DedupScope::Unit)
    };
    let rows = decide(&frames, &cfg).unwrap();
    // f1 and f2 tie: the first of them stays; everything maps straight to it.
    assert_eq!(pairs(&rows), [("f0", "f1"), ("f2", "f1"), ("f3", "f1")]);
    assert!(rows
        .iter()
        .all(|r| r.method == Method::Phash && r.distance == 1));
    let kept: HashSet<_> = rows.iter().map(|r| r.kept_id.as_str()).collect();
    assert!(rows.iter().all(|r| !kept.contains(r.dropped_id.as_str())));
}

#[test]
fn a_fade_is_not_a_near_duplicate() {
    let mut frames = vec![
        sig("f0", "u", "p", Some(0)),
        sig("f1", "u", "q", Some(0)),
        sig("f2", "u", "r", Some(0)),
    ];
    frames[1].mean_luma = 100.0 + MAX_LUMA_DELTA;
    frames[2].mean_luma = 60.0;
    for scope in [DedupScope::Unit, DedupScope::Corpus] {
        let rows = decide(&frames, &near(scope)).unwrap();
        assert_eq!(pairs(&rows), [("f1", "f0")], "{scope:?}");
    }
}

#[test]
fn semantic_keeps_the_first_look_alike_and_respects_scope() {
    // a0 ~ a1 (0.99), a1 ~ a2 (0.99) but a0 ~ a2 only 0.90; b0 (other unit) ~ a0 (0.98).
    let f = |id: &'static str, unit: &'static str, n: Vec<(usize, f32)>| SemanticFrame {
        image_id: id,
        unit_id: unit,
        neighbours: n,
    };
    let frames = vec![
        f("a0", "a", vec![(1, 0.99), (3, 0.98), (2, 0.90)]),
        f("a1", "a", vec![(0, 0.99), (2, 0.99)]),
        f("a2", "a", vec![(1, 0.99), (0, 0.90)]),
        f("b0", "b", vec![(0, 0.98)]),
    ];
    let rows = decide_semantic(&frames, 0.95, DedupScope::Unit);
    // a1 drops onto a0; a2's look-alike a1 is dropped and a0 is too far: a2 is kept.
    assert_eq!(pairs(&rows), [("a1", "a0")]);
    assert_eq!(rows[0].method, Method::Semantic);
    assert_eq!(rows[0].distance, 10);
    let rows = decide_semantic(&frames, 0.95, DedupScope::Corpus);
    assert_eq!(pairs(&rows), [("a1", "a0"), ("b0", "a0")]);
    assert!(decide_semantic(&frames, 0.999, DedupScope::Corpus).is_empty());
}

#[test]
fn semantic_folder_dedup_is_not_built() {
    let cfg = DedupConfig {
        semantic: true,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = dedup_folder(dir.path(), &cfg).unwrap_err();
    assert!(matches!(err, Error::NotBuilt { .. }));
}

#[test]
fn remap_resolves_and_filters() {
    let remap = Remap::from_rows(vec![
        DedupRow {
            dropped_id: "b".into(),
            kept_id: "a".into(),
            method: Method::Exact,
            distance: 0,
        },
        DedupRow {
            dropped_id: "d".into(),
            kept_id: "c".into(),
            method: Method::Phash,
            distance: 3,
        },
    ]);
    assert_eq!(remap.resolve("b"), "a");
    assert_eq!(remap.resolve("a"), "a");
    assert_eq!(remap.resolve("zzz"), "zzz");
    assert_eq!(remap.unit_ids(&["a", "b", "d", "c", "e"]), ["a", "c", "e"]);
    assert_eq!(remap.unit_ids(&["d", "b"]), ["c", "a"]);
    let frame = |id: &str| FrameRecord {
        image_id: id.into(),
        unit_id: "u".into(),
        index: 0,
        time_s: None,
        width: 1,
        height: 1,
        pixel_hash: String::new(),
        file: String::new(),
        bytes: 0,
    };
    let frames: Vec<_> = ["a", "b", "c", "d"].iter().map(|i| frame(i)).collect();
    let kept: Vec<_> = remap
        .kept_frames(&frames)
        .into_iter()
        .map(|f| f.image_id)
        .collect();
    assert_eq!(kept, ["a", "c"]);
    assert_eq!(Remap::default().resolve("x"), "x");
}

#[test]
fn a_row_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/dedup.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let row = DedupRow {
        dropped_id: "DC_IMG_v_0001".into(),
        kept_id: "DC_IMG_v_0000".into(),
        method: Method::Phash,
        distance: 3,
    };
    assert!(v.is_valid(&serde_json::to_value(&row).unwrap()));
    let mut bad = serde_json::to_value(&row).unwrap();
    bad["method"] = "clip".into();
    assert!(!v.is_valid(&bad));
}

/// The COCO fixture pictures as stored frames (224x224), by file stem.
fn coco_frames() -> Vec<(String, RgbFrame)> {
    let dir = crate::testkit::fixture("coco/images");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let cfg = crate::config::ImageConfig::default();
    files
        .iter()
        .map(|p| {
            let img = crate::imaging::decode_file(p).unwrap();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, crate::imaging::resize(&img, &cfg).unwrap())
        })
        .collect()
}

fn resized(img: &RgbFrame, w: u32, h: u32) -> RgbFrame {
    let cfg = crate::config::ImageConfig {
        width: w,
        height: h,
        ..Default::default()
    };
    crate::imaging::resize(img, &cfg).unwrap()
}

fn jpeg(img: &RgbFrame, quality: u8) -> RgbFrame {
    let cfg = crate::config::ImageConfig {
        format: crate::config::ImageFormat::Jpeg,
        quality,
        ..Default::default()
    };
    let bytes = crate::imaging::encode(img, &cfg).unwrap();
    crate::imaging::decode_bytes(&bytes, Path::new("q75.jpg")).unwrap()
}

/// Moved right by one pixel; the first column repeats.
fn shifted(img: &RgbFrame) -> RgbFrame {
    let row = img.width as usize * 3;
    let mut data = img.data.clone();
    for (dst, src) in data.chunks_exact_mut(row).zip(img.data.chunks_exact(row)) {
        dst[3..].copy_from_slice(&src[..row - 3]);
    }
    RgbFrame::new(img.width, img.height, data)
}

/// The variants of each picture, with the decision expected at the default threshold.
fn variants(img: &RgbFrame) -> Vec<(&'static str, RgbFrame, Method)> {
    vec![
        ("copy", img.clone(), Method::Exact),
        ("jpeg75", jpeg(img, 75), Method::Phash),
        (
            "half",
            resized(
                &resized(img, img.width / 2, img.height / 2),
                img.width,
                img.height,
            ),
            Method::Phash,
        ),
        ("shift1", shifted(img), Method::Phash),
    ]
}

#[test]
fn real_pictures_and_their_variants() {
    let coco = coco_frames();
    assert!(coco.len() >= 2);
    let cfg = near(DedupScope::Corpus);
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for (stem, img) in &coco {
        frames.push(FrameSignature::of_picture(
            stem.clone(),
            stem.clone(),
            img,
            true,
            false,
        ));
        for (name, v, method) in variants(img) {
            let id = format!("{stem}_{name}");
            let s = FrameSignature::of_picture(id.clone(), stem.clone(), &v, true, false);
            let d = hamming(s.phash.unwrap(), phash(img));
            eprintln!(
                "{stem} {name:7}: phash distance {d:2}, dhash distance {:2}",
                hamming(dhash(&v), dhash(img))
            );
            frames.push(s);
            expected.push((id, stem.clone(), method));
        }
    }
    let mut closest = u32::MAX;
    for (i, (a, x)) in coco.iter().enumerate() {
        for (b, y) in &coco[i + 1..] {
            let d = hamming(phash(x), phash(y));
            eprintln!("{a} vs {b}: phash distance {d}");
            closest = closest.min(d);
        }
    }
    assert!(
        closest > 2 * cfg.max_hamming,
        "different pictures too close: {closest}"
    );

    for scope in [DedupScope::Unit, DedupScope::Corpus] {
        let rows = decide(
            &frames,
            &DedupConfig {
                scope,
                ..cfg.clone()
            },
        )
        .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.dropped_id.clone(), r.kept_id.clone(), r.method))
            .collect();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "{scope:?}");
        assert!(rows.iter().all(|r| r.distance <= cfg.max_hamming));
    }
    // Exact only: the identical copies and nothing else.
    let rows = decide(&frames, &DedupConfig::default()).unwrap();
    assert!(rows.iter().all(|r| r.dropped_id.ends_with("_copy")));
    assert_eq!(rows.len(), coco.len());
}

#[test]
fn folder_dedup_reads_a_folder_and_lists_unreadable_files() {
    let coco = coco_frames();
    let dir = tempfile::tempdir().unwrap();
    let png = crate::config::ImageConfig::default();
    let (stem, img) = &coco[0];
    for (s, i) in &coco {
        std::fs::write(
            dir.path().join(format!("{s}.png")),
            crate::imaging::encode(i, &png).unwrap(),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let again = crate::imaging::encode(&jpeg(img, 75), &png).unwrap();
    std::fs::write(dir.path().join("sub/again.png"), &again).unwrap();
    // Same stem as a picture above: its id becomes its relative path.
    std::fs::write(dir.path().join(format!("sub/{stem}.png")), &again).unwrap();
    std::fs::write(dir.path().join("broken.jpg"), b"not a picture").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let cfg = near(DedupScope::Corpus);
    let found = dedup_folder(dir.path(), &cfg).unwrap();
    assert_eq!(found.images, coco.len() + 2);
    assert_eq!(found.rejects.len(), 1);
    assert_eq!(found.rejects[0].item, "broken");
    let got: Vec<_> = found
        .rows
        .iter()
        .map(|r| (r.dropped_id.as_str(), r.kept_id.as_str(), r.method))
        .collect();
    let nested = format!("sub/{stem}.png");
    let mut want = vec![
        ("again", stem.as_str(), Method::Phash),
        (nested.as_str(), stem.as_str(), Method::Phash),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn testvideo_at_2fps_keeps_a_frame_of_every_shot() {
    use crate::video::{sample, Sampling};
    let video = crate::testkit::fixture("videos/testvideo.mp4");
    let goldens =
        crate::testkit::fixture("videos/goldens/testvideo.mp4.HistogramDetector.default.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens).unwrap()).unwrap();
    let cuts: Vec<u64> = golden["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(cuts, [30, 180, 211, 332, 347, 394, 665, 681]);
    let image = crate::config::ImageConfig::default();
    let mut frames = Vec::new();
    let mut shot_of = HashMap::new();
    sample(&video, &Sampling::Fps(2.0), None, None, &mut |f| {
        let id = format!("f{:04}", frames.len());
        // Shot = number of cuts at or before the frame (the cut frame starts a shot). The frame's
        // index in the file comes from its time (29.97 fps, first pts 0): `frame_number` counts
        // decoded frames only, and sampling skips and seeks past frames it does not need.
        let index = (f.time_s * 30000.0 / 1001.0).round() as u64;
        let shot = cuts.iter().filter(|&&c| c <= index).count();
        shot_of.insert(id.clone(), shot);
        let img = crate::imaging::resize(&f.image, &image).unwrap();
        frames.push(FrameSignature::of_picture(
            id,
            "testvideo".into(),
            &img,
            true,
            false,
        ));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let rows = decide(&frames, &near(DedupScope::Unit)).unwrap();
    let remap = Remap::from_rows(rows.clone());
    let shots = cuts.len() + 1;
    let mut sampled = vec![0; shots];
    let mut kept = vec![0; shots];
    for f in &frames {
        let s = shot_of[&f.image_id];
        sampled[s] += 1;
        if !remap.is_dropped(&f.image_id) {
            kept[s] += 1;
        }
    }
    eprintln!(
        "testvideo.mp4 at 2 fps: {} frames sampled, {} dropped ({} exact); per shot sampled {sampled:?}, kept {kept:?}",
        frames.len(),
        rows.len(),
        rows.iter().filter(|r| r.method == Method::Exact).count()
    );
    assert!(
        kept.iter().all(|&k| k >= 1),
        "a shot lost every frame: {kept:?}"
    );
    // Dropped frames stay in their shot: a static shot collapses onto its own frames.
    for r in &rows {
        assert_eq!(shot_of[&r.dropped_id], shot_of[&r.kept_id], "{r:?}");
    }
}

#[test]
fn folder_dedup_decodes_jpegs_reduced_and_confirms_exact_copies_whole() {
    assert_eq!(super::hash_divisor(640, 480), 4);
    assert_eq!(super::hash_divisor(256, 256), 4);
    assert_eq!(super::hash_divisor(100, 900), 1);
    assert_eq!(super::hash_divisor(600, 600), 8);
    let src = crate::testkit::fixture("coco/images/000000040083.jpg");
    let other = crate::testkit::fixture("coco/images/000000196141.jpg");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&src, dir.path().join("a.jpg")).unwrap();
    std::fs::copy(&src, dir.path().join("a_copy.jpg")).unwrap();
    std::fs::copy(&other, dir.path().join("b.jpg")).unwrap();
    // The same pixels as a.jpg, as a PNG: not decoded reduced.
    let whole = crate::imaging::decode_file(&src).unwrap();
    let png = crate::config::ImageConfig::default();
    std::fs::write(
        dir.path().join("a_png.png"),
        crate::imaging::encode(&whole, &png).unwrap(),
    )
    .unwrap();
    let rows = |cfg: &DedupConfig| -> Vec<(String, String, Method)> {
        let found = dedup_folder(dir.path(), cfg).unwrap();
        assert_eq!(found.images, 4);
        let mut got: Vec<_> = found
            .rows
            .iter()
            .map(|r| (r.dropped_id.clone(), r.kept_id.clone(), r.method))
            .collect();
        got.sort();
        got
    };
    let reduced = rows(&near(DedupScope::Corpus));
    // The identical copy is still an exact duplicate (its whole pixels were compared); the PNG
    // with the same pixels is found by the near pass; the other picture stays.
    assert!(
        reduced.contains(&("a_copy".into(), "a".into(), Method::Exact)),
        "{reduced:?}"
    );
    assert!(
        reduced.iter().any(|(d, k, _)| d == "a_png" && k == "a"),
        "{reduced:?}"
    );
    assert!(reduced.iter().all(|(d, _, _)| d != "b"), "{reduced:?}");
    // Decoded whole (keep = sharpest), the PNG is an exact duplicate too.
    let sharpest = DedupConfig {
        keep: crate::config::KeepRule::Sharpest,
        ..near(DedupScope::Corpus)
    };
    let whole_rows = rows(&sharpest);
    assert_eq!(
        whole_rows
            .iter()
            .filter(|(_, _, m)| *m == Method::Exact)
            .count(),
        2,
        "{whole_rows:?}"
    );
}
