//! Shared set-up of the fuzz targets: a tiny corpus per scenario (media files the adapters only
//! list, never decode) whose annotation file each run overwrites with the fuzzer's bytes, and
//! the properties every parse must keep whatever the input:
//!
//! - no panic, no hang (libFuzzer reports both);
//! - a scan lists each unit id once (duplicates are rejects, never two units);
//! - every reject names a file and says what is wrong;
//! - the Syphus message and native file can be made from every unit the scan returns;
//! - answer pairs have a non-empty question and answer, instruction ids are unique and every
//!   in-context id points at an instruction of the same file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mimicit::config::Scenario;

struct Fixture {
    _dir: tempfile::TempDir,
    annotation: PathBuf,
    scenario: Scenario,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// A temporary folder, in memory when `/dev/shm` exists (each run rewrites a file there).
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("temporary folder")
}

fn touch(dir: &Path, rel: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("media folder");
    std::fs::write(p, b"").expect("media file");
}

/// Media (relative to the corpus root), the media folder, and the annotation file name of each
/// scenario's fixture corpus.
fn layout(code: &str) -> (&'static [&'static str], &'static str, &'static str) {
    match code {
        "DC" => (
            &["videos/v_a.mp4", "videos/v_b.mkv"],
            "videos",
            "train.json",
        ),
        "E4D" => (&["v1/a.mp4", "v1/b.mp4"], "v1", "narration.json"),
        "SD" => (
            &[
                "img/1.png",
                "img/1_2.png",
                "img/2.jpg",
                "img/2_2.jpeg",
                "img/3_diff.jpg",
            ],
            "img",
            "train.json",
        ),
        "CGD" => (
            &[
                "train2017/000000000001.jpg",
                "train2017/000000000002.jpg",
                "train2017/000000000003.jpg",
            ],
            "train2017",
            "instances.json",
        ),
        "SN" => (
            &[
                "scans/scene0000_00/color/000000.jpg",
                "scans/scene0000_01/color/000000.jpg",
            ],
            "scans",
            "ScanRefer_filtered_train.json",
        ),
        "TVC" => (
            &[
                "frames/friends_frames/friends_s01e01_seg01_clip_00/00001.jpg",
                "frames/bbt_frames/s01e01_seg01_clip_00/00001.jpg",
            ],
            "frames",
            "tvc_train_release.jsonl",
        ),
        "VST" => (
            &[
                "images/train/1001.jpg",
                "images/train/1002.jpg",
                "images/val/2001.png",
            ],
            "images",
            "train.story-in-sequence.json",
        ),
        // A caption-and-box file (`*.jsonl`): the file that makes LA's units.
        "LA" => (
            &[
                "train2017/000000000001.jpg",
                "train2017/COCO_train2014_000000000002.jpg",
                "train2017/000000000003.png",
            ],
            "train2017",
            "caps_boxes_coco2014_val_80.jsonl",
        ),
        other => panic!("no fixture for {other}"),
    }
}

fn fixture(code: &str) -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = tempdir();
        let (media, media_dir, annotation) = layout(code);
        for m in media {
            touch(dir.path(), m);
        }
        let annotation_path = dir.path().join(annotation);
        std::fs::write(&annotation_path, b"{}").expect("annotation file");
        let file = dir.path().join("scenario.toml");
        let text = format!(
            "scenario = \"{code}\"\n[source]\nroot = \".\"\nannotations = \"{annotation}\"\nmedia = \"{media_dir}\"\n"
        );
        std::fs::write(&file, &text).expect("scenario file");
        let scenario = Scenario::from_str(&file, &text, &[]).expect("fixture scenario");
        Fixture {
            _dir: dir,
            annotation: annotation_path,
            scenario,
        }
    })
}

/// Scans the fixture corpus of scenario `code` with `data` as its annotation file.
pub fn scan_annotations(code: &str, data: &[u8]) {
    let fx = fixture(code);
    std::fs::write(&fx.annotation, data).expect("write the annotation file");
    let Ok(found) = mimicit::corpus::scan(&fx.scenario) else {
        // A file-level error (not JSON, wrong top-level shape) is a clean error: fine.
        return;
    };
    let mut ids = BTreeSet::new();
    for unit in &found.units {
        assert!(
            ids.insert(unit.id.as_str()),
            "unit {} listed twice",
            unit.id
        );
        mimicit::corpus::annotation_count(fx.scenario.code, &unit.annotation);
    }
    for r in &found.rejects {
        assert!(!r.path.is_empty() && !r.error.is_empty(), "{r:?}");
        assert_eq!(r.stage, "scan");
    }
    let units: Vec<_> = found.units.iter().collect();
    let inputs = mimicit::corpus::syphus_inputs(&fx.scenario, &units).expect("Syphus inputs");
    let records: usize = units.iter().map(|u| u.records.len().max(1)).sum();
    assert_eq!(inputs.queries.len(), records, "one query per record");
}

/// Parses `data` as a Syphus answer file, splits every answer and numbers the pairs.
pub fn answers(data: &[u8]) {
    use mimicit::shards::{build_instructions, parse_answers, split_pairs, Meta, UnitImages};
    let Ok((answers, rejects)) = parse_answers(Path::new("valid_output.json"), data) else {
        return;
    };
    for r in &rejects {
        assert!(!r.item.is_empty() && !r.error.is_empty(), "{r:?}");
    }
    for a in &answers {
        for p in split_pairs(&a.text) {
            assert!(!p.instruction.trim().is_empty(), "{p:?}");
            assert!(!p.answer.trim().is_empty(), "{p:?}");
        }
    }
    // Every other answer's unit is known (one image each), the rest are unknown units.
    let units: Vec<UnitImages> = answers
        .iter()
        .step_by(2)
        .map(|a| UnitImages {
            query_ids: Vec::new(),
            unit_id: a.unit_id.clone(),
            image_ids: vec![format!("DC_IMG_{}_0000", a.unit_id)],
        })
        .collect();
    let packed = build_instructions(mimicit::config::Code::DC, &units, &answers, Meta::default());
    let ids: BTreeSet<&str> = packed
        .instructions
        .data
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        packed.instructions.data.len(),
        "instruction ids repeat"
    );
    for (id, ins) in &packed.instructions.data {
        assert!(!ins.image_ids.is_empty(), "{id} has no image");
        for rel in &ins.rel_ins_ids {
            assert!(
                ids.contains(rel.as_str()),
                "{id}: in-context id {rel} is not an instruction"
            );
        }
    }
    serde_json::to_vec(&packed.instructions).expect("instructions serialise");
}

/// Parses `data` as a scenario TOML file placed in a folder with a corpus in it.
pub fn scenario(data: &[u8]) {
    let fx = fixture("DC");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = fx.annotation.with_file_name("fuzzed.toml");
    let _ = Scenario::from_str(&file, text, &[]);
}
