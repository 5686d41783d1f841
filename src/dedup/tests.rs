//! Decisions on synthetic signatures, and hashes on the shared real fixtures (skipped, saying
//! why, when they are absent).

use super::*;

fn sig(id: &str, unit: &str, pixels: &str, phash: Option<u64>) -> FrameSignature {
    FrameSignature {
        image_id: id.into(),
        unit_id: unit.into(),
        pixel_hash: pixels.into(),
        phash,
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
fn semantic_is_not_built() {
    let cfg = DedupConfig {
        semantic: true,
        ..Default::default()
    };
    let err = decide(&[], &cfg).unwrap_err();
    assert!(matches!(err, Error::NotBuilt { .. }));
    assert!(err.to_string().contains("CLIP"), "{err}");
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
