//! Per-scenario integration tests: a small corpus built in a temp folder from the real
//! annotation excerpts in `tests/fixtures/` (media copied from the fixtures or generated),
//! run through `mimicit run ... --stages scan,keyframes,metadata`; the Syphus messages are
//! checked byte for byte and every image id a unit refers to must be in frames.parquet.

#[allow(dead_code)]
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::util::*;
use mimicit::model::UnitMedia;

/// The real annotation excerpts and media shipped in `tests/fixtures/`.
fn fixtures() -> PathBuf {
    mimicit::testkit::fixture(".")
}

/// A small generated picture (different per `seed`), JPEG or PNG by extension.
fn picture(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(48, 32, |x, y| {
        image::Rgb([
            (x * 5 + seed * 37) as u8,
            (y * 7 + seed * 11) as u8,
            (seed * 53) as u8,
        ])
    });
    img.save(path).unwrap();
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// Writes `corpus/scenario.toml` (`[source] root = "."` plus `body`) and runs the three stages.
fn run(dir: &Path, head: &str, body: &str) -> (PathBuf, std::process::Output) {
    let corpus = dir.join("corpus");
    let text =
        format!("{head}\n[source]\nroot = \".\"\n{body}\n[image]\nwidth = 32\nheight = 32\n");
    std::fs::write(corpus.join("scenario.toml"), text).unwrap();
    let o = mimicit(
        dir,
        &[
            "run",
            "corpus/scenario.toml",
            "--out",
            "out",
            "--stages",
            "scan,keyframes,metadata",
        ],
    );
    (dir.join("out"), o)
}

/// `(id, message)` of `{CODE}_query.json`, checked against its schema.
fn query(out: &Path, code: &str) -> Vec<(String, String)> {
    let q = read_json(&out.join(format!("{code}/syphus/{code}_query.json")));
    assert_valid("syphus_query.schema.json", &q, "query");
    q.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["sentences"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn message<'a>(q: &'a [(String, String)], id: &str) -> &'a str {
    &q.iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("no unit {id} in {q:?}"))
        .1
}

/// Every image id that a unit with Syphus inputs refers to is in frames.parquet, and every
/// table pandas reads matches its schema; returns the frame ids.
fn check_frames(out: &Path, code: &str, q: &[(String, String)]) -> BTreeSet<String> {
    let frames = mimicit::tables::read_frames(&out.join(format!("{code}/frames.parquet"))).unwrap();
    let ids: BTreeSet<String> = frames.iter().map(|f| f.image_id.clone()).collect();
    let units = mimicit::tables::read_units(&out.join(format!("{code}/units.parquet"))).unwrap();
    let with_inputs: BTreeSet<&str> = q.iter().map(|(i, _)| i.as_str()).collect();
    let failed: BTreeSet<String> = rejects(out, code, "keyframes")
        .into_iter()
        .map(|r| r.item)
        .collect();
    for u in units.iter().filter(|u| with_inputs.contains(u.id.as_str())) {
        match &u.media {
            UnitMedia::Images { items } => {
                for item in items {
                    let id = format!("{code}_IMG_{}", item.key);
                    assert!(ids.contains(&id), "{id} of {} not in frames.parquet", u.id);
                }
            }
            // A unit whose video gave no frame is a keyframes reject; it has Syphus inputs only
            // with require_media = false.
            UnitMedia::Video { .. } if failed.contains(&u.id) => {}
            UnitMedia::Video { key_prefix, .. } => {
                let prefix = format!("{code}_IMG_{key_prefix}_");
                assert!(
                    frames
                        .iter()
                        .any(|f| f.unit_id == u.id && f.image_id.starts_with(&prefix)),
                    "no frame {prefix}* for {}",
                    u.id
                );
            }
            UnitMedia::Missing { .. } => {
                assert!(
                    !frames.iter().any(|f| f.unit_id == u.id),
                    "annotation-only unit {} has frames",
                    u.id
                );
            }
        }
    }
    check_tables(out, code);
    ids
}

/// Every table of a scenario's scan and keyframes stages, read by pandas and checked row by row
/// against its schema; returns the rows by file name.
fn check_tables(
    out: &Path,
    code: &str,
) -> std::collections::BTreeMap<&'static str, Vec<serde_json::Value>> {
    let mut all = std::collections::BTreeMap::new();
    for (file, schema) in [
        ("units.parquet", "units.schema.json"),
        ("media.parquet", "media.schema.json"),
        ("annotations.parquet", "annotations.schema.json"),
        ("frames.parquet", "frames.schema.json"),
        ("rejects/scan.parquet", "rejects.schema.json"),
        ("rejects/keyframes.parquet", "rejects.schema.json"),
    ] {
        let path = out.join(code).join(file);
        let Some(rows) = pandas_rows(&path) else {
            continue;
        };
        for row in &rows {
            assert_valid(schema, row, &path.display().to_string());
        }
        all.insert(file, rows);
    }
    all
}

/// The real Ego4D narration excerpt: its video uid, its entry, and the entry wrapped in the
/// `narration_pass_1` key the excerpt lost (real files have it).
fn ego4d_narrations(fx: &Path) -> (String, serde_json::Value, serde_json::Value) {
    let excerpt = read_json(&fx.join("ego4d/narration_excerpt_77cc4654.json"));
    let (uid, inner) = excerpt.as_object().unwrap().iter().next().unwrap();
    let wrapped = serde_json::json!({ uid: {"narration_pass_1": inner} });
    (uid.clone(), inner.clone(), wrapped)
}

fn rejects(out: &Path, code: &str, stage: &str) -> Vec<mimicit::model::Reject> {
    mimicit::tables::read_rejects(&out.join(format!("{code}/rejects/{stage}.parquet"))).unwrap()
}

#[test]
fn spot_the_difference_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    copy(
        &fx.join("spot_the_diff/train.first40.json"),
        &corpus.join("annotations/train.json"),
    );
    // Pairs 76 (png + jpeg) and 235 (png + jpg); the other 38 records have no images.
    for (f, seed) in [
        ("76.png", 1),
        ("76_2.jpeg", 2),
        ("235.png", 3),
        ("235_2.jpg", 4),
    ] {
        picture(&corpus.join("resized_images").join(f), seed);
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"SD\"",
        "annotations = \"annotations/train.json\"\nmedia = \"resized_images\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "SD");
    assert_eq!(q.len(), 2);
    // The loader's ids: `img_id` as written, not the padded unit id.
    assert_eq!(message(&q, "76"), "there are no differences");
    assert_eq!(
        message(&q, "235"),
        "the person in the blue shirt from the image on the left is no longer present\nthe dark grey suv is gone in the photo on the right"
    );
    let ids = check_frames(&out, "SD", &q);
    assert!(ids.contains("SD_IMG_00076_1") && ids.contains("SD_IMG_00235_2"));
    assert_eq!(rejects(&out, "SD", "scan").len(), 38);
    let native = read_json(&out.join("SD/syphus/train.json"));
    assert_valid("syphus_spot_diff.schema.json", &native, "train.json");
    assert_eq!(native[1]["img_id"], "235");
}

#[test]
fn tv_captions_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    copy(
        &fx.join("tvc/tvr_val_release.first40.jsonl"),
        &corpus.join("tvr_val_release.jsonl"),
    );
    copy(
        &fx.join("tvc/tvc_val_gt_example.jsonl"),
        &corpus.join("tvc_val_gt.jsonl"),
    );
    for (folder, n) in [
        ("friends_frames/friends_s01e03_seg02_clip_19", 20),
        ("bbt_frames/s02e14_seg02_clip_02", 40),
        ("friends_frames/friends_s08e08_seg01_clip_00", 5),
    ] {
        for i in 1..=n {
            picture(
                &corpus
                    .join("frames_hq")
                    .join(folder)
                    .join(format!("{i:05}.jpg")),
                i,
            );
        }
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"TVC\"",
        "annotations = [\"tvr_val_release.jsonl\", \"tvc_val_gt.jsonl\"]\nmedia = \"frames_hq\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "TVC");
    assert_eq!(q.len(), 4);
    assert_eq!(
        message(&q, "friends_s01e03_seg02_clip_19"),
        "1. Phoebe puts one of her ponytails in her mouth."
    );
    // A TVR line and a TVC line of the same clip: one unit, a query per line, in file order.
    let moments: Vec<&str> = q
        .iter()
        .filter(|(id, _)| id == "friends_s08e08_seg01_clip_00")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(
        moments,
        [
            "1. Rachel invites Phoebe to have dinner with her and her father.",
            "1. Rachael walks up to Phoebe and Phoebe turns around."
        ]
    );
    let ids = check_frames(&out, "TVC", &q);
    // 40 frames: stride 2, start 1 -> files 00002, 00004, ..., 00040; the show prefix is added.
    let bbt: Vec<&String> = ids.iter().filter(|i| i.contains("s02e14")).collect();
    assert_eq!(bbt.len(), 20);
    assert_eq!(bbt[0], "TVC_IMG_bbt_s02e14_seg02_clip_02_00002");
    assert!(ids.contains("TVC_IMG_friends_s01e03_seg02_clip_19_00020"));
    assert_eq!(
        rejects(&out, "TVC", "scan").len(),
        37,
        "clips without frames"
    );
    let lines = std::fs::read_to_string(out.join("TVC/syphus/tvc_train_release.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4, "a line per moment");
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid("syphus_tvc.schema.json", &v, "tvc line");
    }
}

fn raw_clip(path: &Path, seconds: u32) {
    mimicit::testkit::test_clip(path, seconds);
}

#[test]
fn tv_captions_from_raw_clips_with_subtitles() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    copy(
        &fx.join("tvc/tvr_val_release.first40.jsonl"),
        &corpus.join("tvr_val_release.jsonl"),
    );
    // One clip as a TVQA frame folder, two as raw clips (a Big Bang Theory one, named without
    // its show, and one long enough for the original rule's stride to be 2).
    for i in 1..=20 {
        picture(
            &corpus.join(format!(
                "media/friends_frames/friends_s01e03_seg02_clip_19/{i:05}.jpg"
            )),
            i,
        );
    }
    raw_clip(&corpus.join("media/clips/s02e14_seg02_clip_02.mp4"), 6);
    raw_clip(
        &corpus.join("media/clips/castle/castle_s06e12_seg02_clip_22.mkv"),
        11,
    );
    std::fs::create_dir_all(corpus.join("tvqa_subtitles/bbt")).unwrap();
    std::fs::write(
        corpus.join("tvqa_subtitles/bbt/s02e14_seg02_clip_02.srt"),
        "\u{feff}1\r\n00:00:00,120 --> 00:00:02,500\r\n(Penny:) What?\r\n\r\n\
         2\r\n00:00:02,600 --> 00:00:05,050\r\n(Sheldon:) Nothing.\r\nReally.\r\n",
    )
    .unwrap();
    // Malformed: its clip goes on without subtitles.
    std::fs::write(
        corpus.join("tvqa_subtitles/castle_s06e12_seg02_clip_22.srt"),
        "1\n00:00:01,000 -> 00:00:02,000\n(Castle:) Hi.\n",
    )
    .unwrap();
    let (out, o) = run(
        dir.path(),
        "scenario = \"TVC\"",
        "annotations = \"tvr_val_release.jsonl\"\nmedia = \"media\"\n\
         [corpus]\nsubtitles = \"tvqa_subtitles\"\ntvc_frames = \"original\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "TVC");
    assert_eq!(q.len(), 3, "{q:?}");
    assert_eq!(
        message(&q, "s02e14_seg02_clip_02"),
        "1. Penny looks confused and shakes her head while asking a question."
    );
    assert_eq!(
        message(&q, "castle_s06e12_seg02_clip_22"),
        "1. Cross explains why he's laying in the bed to Beckett."
    );
    assert_eq!(
        message(&q, "friends_s01e03_seg02_clip_19"),
        "1. Phoebe puts one of her ponytails in her mouth."
    );
    let ids = check_frames(&out, "TVC", &q);
    assert!(ids.contains("TVC_IMG_friends_s01e03_seg02_clip_19_00020"));

    // Raw clips: the original rule on the 3 fps grid of the probed duration.
    let frames = mimicit::tables::read_frames(&out.join("TVC/frames.parquet")).unwrap();
    let units = mimicit::tables::read_units(&out.join("TVC/units.parquet")).unwrap();
    for (clip, file, prefix, literal) in [
        (
            "s02e14_seg02_clip_02",
            "media/clips/s02e14_seg02_clip_02.mp4",
            "bbt_s02e14_seg02_clip_02",
            // 6 s: 18 frames, stride 1.
            (1..=18).collect::<Vec<u32>>(),
        ),
        (
            "castle_s06e12_seg02_clip_22",
            "media/clips/castle/castle_s06e12_seg02_clip_22.mkv",
            "castle_s06e12_seg02_clip_22",
            // 11 s: 33 frames, stride 2, start 1: files 00002, 00004, ..., 00032.
            (2..=32).step_by(2).collect(),
        ),
    ] {
        let d = mimicit::video::probe(&corpus.join(file))
            .unwrap()
            .duration_s
            .unwrap();
        let n = ((d * 3.0).round() as usize).max(1);
        let expected: Vec<String> = mimicit::corpus::tvc::select_frames(n)
            .into_iter()
            .map(|k| format!("TVC_IMG_{prefix}_{:05}", k + 1))
            .collect();
        let literal: Vec<String> = literal
            .iter()
            .map(|k| format!("TVC_IMG_{prefix}_{k:05}"))
            .collect();
        assert_eq!(expected, literal, "{clip}: duration {d}");
        let got: Vec<String> = frames
            .iter()
            .filter(|f| f.unit_id == clip)
            .map(|f| f.image_id.clone())
            .collect();
        assert_eq!(got, expected, "{clip}");
        let unit = units.iter().find(|u| u.id == clip).unwrap();
        let UnitMedia::Video { chosen, .. } = &unit.media else {
            panic!("{clip}: {:?}", unit.media)
        };
        let referred: Vec<String> = chosen
            .iter()
            .map(|c| format!("TVC_IMG_{}", c.key))
            .collect();
        assert_eq!(referred, expected, "{clip}");
        assert!(referred.iter().all(|id| ids.contains(id)));
    }

    let scan_rejects = rejects(&out, "TVC", "scan");
    assert_eq!(scan_rejects.len(), 38, "37 clips without media, 1 bad .srt");
    let srt = scan_rejects
        .iter()
        .find(|r| r.item == "castle_s06e12_seg02_clip_22")
        .unwrap();
    assert!(
        srt.path
            .ends_with("tvqa_subtitles/castle_s06e12_seg02_clip_22.srt:2"),
        "{srt:?}"
    );
    assert!(srt.error.contains("bad time line"), "{srt:?}");

    // annotations.parquet has one `subtitle` row per subtitle.
    let table = out.join("TVC/annotations.parquet");
    let col = |name: &str| mimicit::tables::read_string_column(&table, name).unwrap();
    let subtitle_rows: Vec<(String, String)> = col("unit_id")
        .into_iter()
        .zip(col("kind"))
        .zip(col("text"))
        .filter(|((_, kind), _)| kind == "subtitle")
        .map(|((unit, _), text)| (unit, text))
        .collect();
    assert_eq!(
        subtitle_rows,
        [
            (
                "s02e14_seg02_clip_02".to_string(),
                "(Penny:) What?".to_string()
            ),
            (
                "s02e14_seg02_clip_02".to_string(),
                "(Sheldon:) Nothing. Really.".to_string()
            ),
        ]
    );

    // The native file carries the subtitles; lines without any keep today's shape.
    let lines = std::fs::read_to_string(out.join("TVC/syphus/tvc_train_release.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        if line["vid_name"] == "s02e14_seg02_clip_02" {
            assert_eq!(
                line["subtitles"],
                serde_json::json!([
                    {"start": 0.12, "end": 2.5, "text": "(Penny:) What?"},
                    {"start": 2.6, "end": 5.05, "text": "(Sheldon:) Nothing. Really."},
                ])
            );
        } else {
            assert!(line.get("subtitles").is_none(), "{line}");
        }
        assert_valid("syphus_tvc.schema.json", line, "tvc line");
    }
}

#[test]
fn scene_navigation_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let refer = fx.join("scannet/ScanRefer_filtered_val.sample12.json");
    copy(&refer, &corpus.join("ScanRefer_filtered_val.json"));
    // The real frames of scene0000_00 stand in for two scans of room scene0011, which the
    // ScanRefer sample describes; scene0000_00 itself has no description.
    for scan in ["scene0000_00", "scene0011_00", "scene0011_01"] {
        for f in ["00000.jpg", "00011.jpg", "00102.jpg"] {
            copy(
                &fx.join("scannet/scene0000_00/color").join(f),
                &corpus.join("frames_25k").join(scan).join("color").join(f),
            );
        }
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"SN\"",
        "annotations = \"ScanRefer_filtered_val.json\"\nmedia = \"frames_25k\"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let q = query(&out, "SN");
    let ids: Vec<&str> = q.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["scene0011_00", "scene0011_01"]);
    let records = read_json(&refer);
    let mut pairs: Vec<[String; 2]> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                r["object_name"].as_str().unwrap().to_string(),
                r["description"].as_str().unwrap().trim().to_string(),
            ]
        })
        .collect();
    pairs.sort();
    let frame_ids = check_frames(&out, "SN", &q);
    assert!(frame_ids.contains("SN_IMG_scene0011_01_color_00102"));
    let text = std::fs::read_to_string(out.join("SN/syphus/scan_info.json")).unwrap();
    let native = read_json(&out.join("SN/syphus/scan_info.json"));
    assert_valid("syphus_scan_info.schema.json", &native, "scan_info.json");
    // The loader's rule on scan_info.json (scans in file order; the texts of the first 50
    // entries), without its unseeded shuffle: the file holds mimicit's seeded one.
    let mut expected = Vec::new();
    for (scan, entry) in ordered_members(&text) {
        let list: Vec<[String; 2]> = serde_json::from_value(entry["description"].clone()).unwrap();
        let mut sorted = list.clone();
        sorted.sort();
        assert_eq!(sorted, pairs, "every record of the room, shuffled");
        let texts: Vec<&str> = list.iter().take(50).map(|p| p[1].as_str()).collect();
        expected.push((scan, texts.join("\n")));
    }
    assert_eq!(q, expected);
}

#[test]
fn ego4d_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let (uid, _, wrapped) = ego4d_narrations(&fx);
    std::fs::create_dir_all(corpus.join("v1/annotations")).unwrap();
    std::fs::write(
        corpus.join("v1/annotations/narration.json"),
        wrapped.to_string(),
    )
    .unwrap();
    // The real 2 s Ego4D clip stands in for the narrated video: only clip 0 has frames.
    copy(
        &fx.join("ego4d/3c0dffd0-e38e-4643-bc48-d513943dc20b_012_014.mp4"),
        &corpus.join(format!("v1/full_scale/{uid}.mp4")),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"E4D\"\n[corpus]\nclip_seconds = 5\nstrip_markers = true",
        "annotations = \"v1/annotations/narration.json\"\nmedia = \"v1/full_scale\"",
    );
    let q = query(&out, "E4D");
    let clip0 = format!("{uid}_clip000000");
    assert_eq!(
        q.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
        [clip0.as_str()],
        "{}",
        stderr(&o)
    );
    assert_eq!(
        message(&q, &clip0),
        format!(
            "timestamp: 0\ndescription: C interacts with a woman X\nobjects: \ntimestamp: 5\ndescription: C walks into the kitchen\nobjects: \n{}",
            mimicit::config::E4D_RESTRICTIONS
        )
    );
    let ids = check_frames(&out, "E4D", &q);
    assert!(
        ids.contains(&format!("E4D_IMG_{clip0}_00000000")),
        "{ids:?}"
    );
    // Clips past the end of the 2 s video have no frames: rejected by keyframes, not dropped.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(rejects(&out, "E4D", "keyframes").len(), 5);
    let native = read_json(&out.join("E4D/syphus/processed_all_anns.json"));
    assert_valid(
        "syphus_ego4d.schema.json",
        &native,
        "processed_all_anns.json",
    );
    assert_eq!(native[uid.as_str()]["clips"][0]["clip_id"], clip0.as_str());
}

/// E4D: the loader's rule on processed_all_anns.json: one query per clip (videos, then clips
/// in file order); per narration `timestamp:` / `description:` / `objects:`, or only
/// `description:` when its rounded time was already used in the video; the restrictions
/// paragraph (a setting) after a newline. The ids are the clip ids.
#[test]
fn ego4d_queries_are_the_original_loaders() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let (uid, mut inner, _) = ego4d_narrations(&fx);
    // Two narrations whose times round to the same second, in different clips (ties to even:
    // 12.5 -> 12, 11.6 -> 12), and objects.
    let list = inner["narrations"].as_array_mut().unwrap();
    list.push(serde_json::json!({"timestamp_sec": 11.6, "narration_text": "#C C picks a cup"}));
    list.push(serde_json::json!({"timestamp_sec": 12.5, "narration_text": "#C C drinks"}));
    let doc = serde_json::json!({ uid.clone(): {"narration_pass_1": inner} });
    std::fs::create_dir_all(corpus.join("ann")).unwrap();
    std::fs::create_dir_all(corpus.join("videos")).unwrap();
    std::fs::write(corpus.join("ann/narration.json"), doc.to_string()).unwrap();
    std::fs::write(
        corpus.join("ann/objects.json"),
        serde_json::json!({ uid.clone(): [{"timestamp_sec": 11.6, "objects": ["a cup", "a table"]}] })
            .to_string(),
    )
    .unwrap();
    let (out, o) = run(
        dir.path(),
        "scenario = \"E4D\"\n[corpus]\nclip_seconds = 12\nobjects = \"ann/objects.json\"\n[metadata]\nrequire_media = false\ne4d_restrictions = \"No timestamps.\"",
        "annotations = \"ann/narration.json\"\nmedia = \"videos\"",
    );
    let q = query(&out, "E4D");
    let text = std::fs::read_to_string(out.join("E4D/syphus/processed_all_anns.json")).unwrap();
    let mut expected = Vec::new();
    for (_, video) in ordered_members(&text) {
        let mut used = BTreeSet::new();
        for clip in video["clips"].as_array().unwrap() {
            let mut parts = Vec::new();
            for n in clip["narrations"].as_array().unwrap() {
                let t = n["time"].as_f64().unwrap().round_ties_even() as i64;
                let d = n["text"].as_str().unwrap();
                if used.insert(t) {
                    let objects: Vec<&str> = strs(&n["object_description"]);
                    parts.push(format!(
                        "timestamp: {t}\ndescription: {d}\nobjects: {}",
                        objects.join("; ")
                    ));
                } else {
                    parts.push(format!("description: {d}"));
                }
            }
            expected.push((
                clip["clip_id"].as_str().unwrap().to_string(),
                format!("{}\nNo timestamps.", parts.join("\n")),
            ));
        }
    }
    assert!(expected.len() >= 2, "{}", stderr(&o));
    assert_eq!(q, expected);
    let all: String = q.iter().map(|(_, m)| m.as_str()).collect();
    assert!(all.contains("objects: a cup; a table"), "{all}");
}

/// Density clips and the object side file, on the real narrations.
#[test]
fn ego4d_density_clips_and_objects() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let (uid, inner, wrapped) = ego4d_narrations(&fx);
    let times: Vec<f64> = inner["narrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["timestamp_sec"].as_f64().unwrap())
        .collect();
    std::fs::create_dir_all(corpus.join("ann")).unwrap();
    std::fs::write(corpus.join("ann/narration.json"), wrapped.to_string()).unwrap();
    std::fs::write(
        corpus.join("ann/objects.json"),
        serde_json::json!({
            uid.clone(): [{"timestamp_sec": times[0] + 0.2, "objects": ["a woman", "a door"]}],
            "other-video": [{"timestamp_sec": 1.0, "objects": ["x"]}],
        })
        .to_string(),
    )
    .unwrap();
    copy(
        &fx.join("ego4d/3c0dffd0-e38e-4643-bc48-d513943dc20b_012_014.mp4"),
        &corpus.join(format!("videos/{uid}.mp4")),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"E4D\"\n[corpus]\nclips = \"density\"\ndensity_gap = 4\nclip_seconds = 60\nstrip_markers = true\nobjects = \"ann/objects.json\"\n[metadata]\nrequire_media = false",
        "annotations = \"ann/narration.json\"\nmedia = \"videos\"",
    );
    let q = query(&out, "E4D");
    // The expected runs, by the documented rule.
    let mut runs: Vec<Vec<f64>> = Vec::new();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    for t in sorted {
        match runs.last_mut() {
            Some(r) if t - r[r.len() - 1] <= 4.0 && t - r[0] < 60.0 => r.push(t),
            _ => runs.push(vec![t]),
        }
    }
    assert_eq!(q.len(), runs.len(), "{}", stderr(&o));
    for (i, (id, _)) in q.iter().enumerate() {
        assert_eq!(id, &format!("{uid}_clip{i:06}"));
    }
    let first = &q[0].1;
    assert!(
        first.starts_with(
            "timestamp: 0\ndescription: C interacts with a woman X\nobjects: a woman; a door"
        ),
        "{first}"
    );
    check_frames(&out, "E4D", &q);
    let scan = rejects(&out, "E4D", "scan");
    assert!(
        scan.iter()
            .any(|r| r.item == "other-video" && r.path.ends_with("objects.json (other-video[0])")),
        "{scan:?}"
    );
    let tables = check_tables(&out, "E4D");
    let objects = tables["annotations.parquet"]
        .iter()
        .filter(|r| r["kind"] == "objects")
        .count();
    assert_eq!(objects, 1);
}

#[test]
fn coco_general_difference_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    // The four real COCO images with their official-format person boxes; the captions excerpt
    // (other images) and a small captions file for two of them, written here.
    let ann = fx.join("coco/annotations");
    copy(
        &ann.join("person_keypoints_subset.mmpose_test_coco.json"),
        &corpus.join("annotations/instances.json"),
    );
    copy(
        &ann.join("captions_val2017.json_samples.json"),
        &corpus.join("annotations/captions.json"),
    );
    let extra = serde_json::json!({"images": [], "annotations": [
        {"image_id": 785, "id": 1, "caption": "A woman skiing down a slope."},
        {"image_id": 40083, "id": 2, "caption": "People playing a game. "},
        {"image_id": 785, "id": 3, "caption": "A skier in the snow."},
    ]});
    std::fs::write(
        corpus.join("annotations/captions_test.json"),
        extra.to_string(),
    )
    .unwrap();
    for entry in std::fs::read_dir(fx.join("coco/images")).unwrap() {
        let p = entry.unwrap().path();
        copy(&p, &corpus.join("val2017").join(p.file_name().unwrap()));
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"CGD\"",
        "annotations = [\"annotations/instances.json\", \"annotations/captions.json\", \"annotations/captions_test.json\"]\nmedia = \"val2017\"",
    );
    // The excerpt's captions and images were cut separately: captions of images it does not
    // list are rejected, one reject per image.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let scan_rejects = rejects(&out, "CGD", "scan");
    assert!(!scan_rejects.is_empty());
    for r in &scan_rejects {
        assert!(r.error.contains("which no images list has"), "{r:?}");
        assert!(r.path.ends_with("captions.json"), "{r:?}");
    }
    let q = query(&out, "CGD");
    let ids: Vec<&str> = q.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        ids,
        [
            "000000000785_000000040083",
            "000000040083_000000196141",
            "000000196141_000000197388"
        ]
    );
    assert_eq!(
        message(&q, "000000000785_000000040083"),
        "image a:\nA woman skiing down a slope.\nA skier in the snow.\nperson: [280.79, 44.73, 218.7, 346.68]\nimage b:\nPeople playing a game.\nperson: [38.08, 110.95, 174.71, 174.71]\nperson: [257.76, 139.06, 140.05, 154.21]\nperson: [275.17, 126.5, 10.69, 68.26]"
    );
    let frame_ids = check_frames(&out, "CGD", &q);
    assert!(frame_ids.contains("CGD_IMG_000000197388"));
    let native = read_json(&out.join("CGD/syphus/csd_query.json"));
    assert_valid(
        "syphus_coco_difference.schema.json",
        &native,
        "csd_query.json",
    );
    // The loader's rule on csd_query.json: one query per pair in file order, message = text.
    let text = std::fs::read_to_string(out.join("CGD/syphus/csd_query.json")).unwrap();
    let expected: Vec<(String, String)> = ordered_members(&text)
        .into_iter()
        .map(|(id, e)| (id, e["sentences"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(q, expected);
}

#[test]
fn dense_captions_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    copy(
        &fx.join("activitynet_captions/val_1.first20.json"),
        &corpus.join("captions/val_1.json"),
    );
    // A real short clip stands in for the first video; the other 19 have none.
    copy(
        &fx.join("videos/realshort.mp4"),
        &corpus.join("videos/v_4Lu8ECLHvK4.mp4"),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"DC\"",
        "annotations = \"captions/val_1.json\"\nmedia = \"videos\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "DC");
    assert_eq!(
        message(&q, "v_4Lu8ECLHvK4"),
        "timestamps: [[0, 124], [3, 8], [7, 15], [14, 33], [31, 39], [37, 52], [48, 104], [98, 124]]\nsentences: [\"There are some people including small children near a soccer field.\", \" A small boy is playing by himself a he stands on a large square tile.\", \" A man dressed in a blue shirt come running towards him and points out his finger, indicating to the boy to go there.\", \" The boy gets off the tile and walks to another tile.\", \" Then another little boy wearing a gray shirt comes to that tile and begins playing.\", \" The other little boy moves away to another tile.\", \" There are some man playing with small children on the lawn.\", \" The little boy comes running towards some children and his father follows him.\"]"
    );
    let ids = check_frames(&out, "DC", &q);
    assert!(ids.contains("DC_IMG_v_4Lu8ECLHvK4_0000"));
    assert_eq!(rejects(&out, "DC", "scan").len(), 19);
    assert!(
        stderr(&o).contains("DC: metadata: 1 units"),
        "{}",
        stderr(&o)
    );
}

/// A DC corpus of the annotation `doc` where `video` is the real 1.2 s clip, run at 10 fps with
/// `frames_from = "segments"` (`extra`: more TOML).
fn run_dc_segments(
    fx: &Path,
    dir: &Path,
    doc: &serde_json::Value,
    video: &str,
    extra: &str,
) -> (PathBuf, std::process::Output) {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(corpus.join("captions")).unwrap();
    std::fs::write(corpus.join("captions/val_1.json"), doc.to_string()).unwrap();
    copy(
        &fx.join("videos/realshort.mp4"),
        &corpus.join(format!("videos/{video}.mp4")),
    );
    run(
        dir,
        &format!("scenario = \"DC\"\n[keyframes]\npolicy = \"fps\"\nfps = 10\n[corpus]\nframes_from = \"segments\"\n{extra}"),
        "annotations = \"captions/val_1.json\"\nmedia = \"videos\"",
    )
}

/// `frames_from = "segments"` samples inside the caption segments only, and
/// `require_media = false` gives the 19 videos without a file annotation-only Syphus inputs.
#[test]
fn dense_captions_by_segment_and_annotation_only() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let all = read_json(&fx.join("activitynet_captions/val_1.first20.json"));
    // The real 1.2 s clip stands for a video with two short caption segments.
    let mut doc = all.clone();
    doc["v_4Lu8ECLHvK4"] = serde_json::json!({
        "duration": 1.2,
        "timestamps": [[0.0, 0.3], [0.8, 1.1]],
        "sentences": ["A first moment.", "A second one."],
    });
    let (out, o) = run_dc_segments(
        &fx,
        dir.path(),
        &doc,
        "v_4Lu8ECLHvK4",
        "[metadata]\nrequire_media = false",
    );
    // The missing videos are still rejects: the exit status says so.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(rejects(&out, "DC", "scan").len(), 19);
    let q = query(&out, "DC");
    assert_eq!(q.len(), 20, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("19 of them annotation-only"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        message(&q, "v_4Lu8ECLHvK4"),
        "timestamps: [[0, 0], [1, 1]]\nsentences: [\"A first moment.\", \"A second one.\"]"
    );
    check_frames(&out, "DC", &q);
    let frames = mimicit::tables::read_frames(&out.join("DC/frames.parquet")).unwrap();
    let times: Vec<f64> = frames.iter().map(|f| f.time_s.unwrap()).collect();
    // 10 fps inside [0, 0.3] and [0.8, 1.1]: 4 + 4 frames, none in between.
    assert_eq!(times.len(), 8, "{times:?}");
    assert!(
        times
            .iter()
            .all(|t| (-0.02..=0.32).contains(t) || (0.78..=1.12).contains(t)),
        "{times:?}"
    );
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let ids: Vec<&str> = frames.iter().map(|f| f.image_id.as_str()).collect();
    assert_eq!(ids[0], "DC_IMG_v_4Lu8ECLHvK4_0000");
    assert_eq!(ids[7], "DC_IMG_v_4Lu8ECLHvK4_0007");
    let tables = check_tables(&out, "DC");
    let units = &tables["units.parquet"];
    assert_eq!(units.len(), 20);
    let found: Vec<&serde_json::Value> =
        units.iter().filter(|u| u["media_found"] == true).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["kind"], "video");
    assert!(found[0]["duration_s"].as_f64().unwrap() > 1.0);
    assert_eq!(found[0]["source"], "captions/val_1.json");
    let media = &tables["media.parquet"];
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["codec"], "h264");
    let ann = &tables["annotations.parquet"];
    let second: Vec<&serde_json::Value> = ann
        .iter()
        .filter(|r| r["unit_id"] == "v_4Lu8ECLHvK4")
        .collect();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1]["t_start"], 0.8);
    assert_eq!(second[1]["text"], "A second one.");
    assert_eq!(second[1]["kind"], "caption");
    let total: usize = all
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "v_4Lu8ECLHvK4")
        .map(|(_, v)| v["sentences"].as_array().unwrap().len())
        .sum();
    assert_eq!(ann.len(), total + 2);
}

/// Overlapping caption segments: a frame both segments sample is stored and listed once.
#[test]
fn dense_captions_overlapping_segments_keep_a_frame_once() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let doc = serde_json::json!({"v_a": {
        "duration": 1.2,
        "timestamps": [[0.0, 0.6], [0.3, 1.1]],
        "sentences": ["First.", "Second."],
    }});
    let (out, o) = run_dc_segments(&fx, dir.path(), &doc, "v_a", "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = mimicit::tables::read_frames(&out.join("DC/frames.parquet")).unwrap();
    let times: Vec<f64> = frames.iter().map(|f| f.time_s.unwrap()).collect();
    // 0.0..=0.6 gives 7 frames (0, 0.1, ..., 0.6); 0.3..=1.1 gives 9, its first the frame at
    // 1/3 s (0.2998 lies before the segment) and its next three the first segment's 0.4, 0.5
    // and 0.6: those are stored and listed once, 7 + 9 - 3 = 13 frames in time order.
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert_eq!(times.len(), 13, "{times:?}");
    let ids: BTreeSet<&str> = frames.iter().map(|f| f.image_id.as_str()).collect();
    assert_eq!(ids.len(), frames.len());
}

#[test]
fn visual_storytelling_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    // The real excerpt plus one malformed story sentence (no photo id).
    let mut sis = read_json(&fx.join("vist/test.story-in-sequence.excerpt.json"));
    sis["annotations"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!([{"album_id": "44277", "story_id": "45533", "text": "x"}]));
    std::fs::create_dir_all(corpus.join("sis")).unwrap();
    std::fs::write(
        corpus.join("sis/test.story-in-sequence.json"),
        serde_json::to_vec_pretty(&sis).unwrap(),
    )
    .unwrap();
    // A real photo stands in for 1741642, in VIST's download layout; 1741587 has no file.
    copy(
        &fx.join("coco/images/000000000785.jpg"),
        &corpus.join("images/test/1741642.jpg"),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"VST\"",
        "annotations = \"sis/test.story-in-sequence.json\"\nmedia = \"images\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "VST");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        message(&q, "44277"),
        "title: A trip to Stevenage\ndescription: I left Stevenage over twenty years ago, having lived there between the ages of 7 and 20. Yesterday (on International Buy Nothing Day!) we returned for a 'Victorian Craft Fair' in the Church above the town Museum. Very strange...\n\nimage: The venue.\ntags: stevenage fairies craftfair xmas 2004\nannotations: [\"the local parish holds a craft show each year .\"]\n"
    );
    let ids = check_frames(&out, "VST", &q);
    assert_eq!(ids, BTreeSet::from(["VST_IMG_1741642".to_string()]));
    let mut errors: Vec<(String, String)> = rejects(&out, "VST", "scan")
        .into_iter()
        .map(|r| {
            assert!(r.path.ends_with("test.story-in-sequence.json"), "{r:?}");
            (r.item, r.error)
        })
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    // The excerpt's second album lost its images; its story names photo 1741587, which no
    // image record lists (Syphus's loader would stop on it).
    assert!(errors[0].0 == "72157607155047588" && errors[0].1.contains("none of its 0 photo"));
    assert!(errors[1].0 == "annotations[1]" && errors[1].1.contains("1741587"));
    assert!(errors[2].0 == "annotations[2]" && errors[2].1.contains("photo_flickr_id"));
    let native = read_json(&out.join("VST/syphus/train.story-in-sequence.json"));
    assert_valid(
        "syphus_vist.schema.json",
        &native,
        "train.story-in-sequence.json",
    );
    assert_eq!(native["albums"].as_array().unwrap().len(), 1);
    assert_eq!(native["images"][0]["id"], "1741642");
    assert_eq!(native["annotations"].as_array().unwrap().len(), 1);
}

#[test]
fn llava_in_context_from_fixtures() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    copy(
        &fx.join("llava/caps_boxes_coco2014_val_80.jsonl"),
        &corpus.join("caps_boxes_coco2014_val_80.jsonl"),
    );
    copy(
        &fx.join("llava/llava_instruct_150k.first_entry_partial.json"),
        &corpus.join("llava_instruct_150k.json"),
    );
    // The LLaVA-Instruct image has no line in the 80: one written here, and a malformed one.
    std::fs::write(
        corpus.join("extra.jsonl"),
        "{\"id\": \"000000033471\", \"image\": \"000000033471.jpg\", \"captions\": [\"A bus.\"], \"instances\": [{\"category\": \"bus\", \"bbox\": [0.1, 0.2, 0.9, 1.0]}]}\n{\"id\": \"000000000001\", \"image\": \"000000000001.jpg\", \"captions\": \"not a list\"}\n",
    )
    .unwrap();
    // Real COCO pictures stand in for three images, with COCO 2014 and 2017 style names.
    let img = fx.join("coco/images");
    copy(
        &img.join("000000000785.jpg"),
        &corpus.join("coco/COCO_val2014_000000296284.jpg"),
    );
    copy(
        &img.join("000000040083.jpg"),
        &corpus.join("coco/000000151358.jpg"),
    );
    copy(
        &img.join("000000196141.jpg"),
        &corpus.join("coco/COCO_train2014_000000033471.jpg"),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"LA\"",
        "annotations = [\"caps_boxes_coco2014_val_80.jsonl\", \"extra.jsonl\", \"llava_instruct_150k.json\"]\nmedia = \"coco\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let q = query(&out, "LA");
    let ids: Vec<&str> = q.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["000000033471", "000000151358", "000000296284"]);
    assert_eq!(
        message(&q, "000000151358"),
        "captions:\nA newspaper that has sunglasses on top of it sitting in front of books.\nan apple sunglasses books and a teddy bear\nA folded newspaper and sunglasses are on a table with an apple, books, and teddy bear behind.\nAn apple sitting on a table next to sunglasses and a news paper.\nThere are sunglasses laying on the folded newspaper.\ntie: [0.258, 0.074, 0.527, 0.589]\napple: [0.621, 0.482, 0.853, 0.645]\nbook: [0.154, 0.107, 0.275, 0.59]\nbook: [0.535, 0.09, 0.735, 0.583]\nbook: [0.051, 0.112, 0.159, 0.6]\nteddy bear: [0.753, 0.084, 1.0, 0.517]\nbook: [0.681, 0.097, 0.796, 0.483]\nbook: [0.443, 0.099, 0.574, 0.588]\nbook: [0.267, 0.337, 0.386, 0.579]"
    );
    assert_eq!(
        message(&q, "000000033471"),
        "captions:\nA bus.\nbus: [0.1, 0.2, 0.9, 1.0]"
    );
    let ids = check_frames(&out, "LA", &q);
    assert!(ids.contains("LA_IMG_000000296284"), "{ids:?}");
    // The LLaVA-Instruct conversation travels with its image's unit.
    let units = mimicit::tables::read_units(&out.join("LA/units.parquet")).unwrap();
    let bus = units.iter().find(|u| u.id == "000000033471").unwrap();
    let turns = &bus.annotation["conversations"][0];
    assert_eq!(turns.as_array().unwrap().len(), 6);
    assert_eq!(turns[1]["value"], "The bus in the image is white and red.");
    let scan_rejects = rejects(&out, "LA", "scan");
    assert_eq!(
        scan_rejects.len(),
        79,
        "78 images without a file, 1 bad line"
    );
    let bad: Vec<_> = scan_rejects
        .iter()
        .filter(|r| r.error.contains("malformed"))
        .collect();
    assert_eq!(bad.len(), 1);
    assert!(bad[0].path.ends_with("extra.jsonl:2"), "{:?}", bad[0]);
    assert!(bad[0].error.contains("captions"), "{:?}", bad[0]);
    let lines = std::fs::read_to_string(out.join("LA/syphus/caps_boxes.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid("syphus_llava.schema.json", &v, "caps_boxes line");
    }
}

// ---------------------------------------------------------------------------------------------
// The Syphus queries against the original loaders' rules (FORMATS.md §4), rebuilt here from the
// annotation files with a small re-implementation of each rule and compared byte for byte.

/// A JSON object's members in file order (serde_json's map sorts its keys; the loaders iterate
/// Python dicts, which keep file order).
fn ordered_members(text: &str) -> Vec<(String, serde_json::Value)> {
    struct Members(Vec<(String, serde_json::Value)>);
    impl<'de> serde::Deserialize<'de> for Members {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Members;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Members, A::Error> {
                    let mut v = Vec::new();
                    while let Some(kv) = m.next_entry()? {
                        v.push(kv);
                    }
                    Ok(Members(v))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Members>(text).unwrap().0
}

/// Python's `json.dumps` of a list of strings (ensure_ascii, `", "` separator).
fn py_dumps_strings(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let mut q = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    '\r' => q.push_str("\\r"),
                    '\t' => q.push_str("\\t"),
                    '\x08' => q.push_str("\\b"),
                    '\x0c' => q.push_str("\\f"),
                    c if (' '..='~').contains(&c) => q.push(c),
                    c => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            q.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            q.push('"');
            q
        })
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn strs(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn scan_summary(o: &std::process::Output, code: &str) -> String {
    stderr(o)
        .lines()
        .find(|l| l.starts_with(&format!("{code}: scan:")))
        .unwrap_or_else(|| panic!("no scan summary: {}", stderr(o)))
        .to_string()
}

/// SD: one query per record of `train.json`, id = `img_id` as written, message = the sentences
/// joined by newlines; a pair annotated three times gets three queries, and `pack` turns the
/// answers of all of them into instructions of that pair.
#[test]
fn spot_the_difference_queries_are_the_original_loaders() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let mut records = read_json(&fx.join("spot_the_diff/train.first40.json"));
    let list = records.as_array_mut().unwrap();
    list.insert(
        3,
        serde_json::json!({"img_id": "76", "sentences": [" the bus is gone ", "a car appeared"]}),
    );
    list.push(serde_json::json!({"img_id": "235", "sentences": ["nothing changed"]}));
    list.push(serde_json::json!({"img_id": "76", "sentences": ["caf\u{e9} sign is new"]}));
    std::fs::create_dir_all(corpus.join("annotations")).unwrap();
    std::fs::write(
        corpus.join("annotations/train.json"),
        serde_json::to_vec(&records).unwrap(),
    )
    .unwrap();
    for (f, seed) in [
        ("76.png", 1),
        ("76_2.png", 2),
        ("235.png", 3),
        ("235_2.png", 4),
    ] {
        picture(&corpus.join("resized_images").join(f), seed);
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"SD\"\n[metadata]\nrequire_media = false",
        "annotations = \"annotations/train.json\"\nmedia = \"resized_images\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let expected: Vec<(String, String)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["img_id"].as_str().unwrap().to_string(),
                strs(&r["sentences"]).join("\n"),
            )
        })
        .collect();
    assert_eq!(expected.len(), 43);
    assert_eq!(query(&out, "SD"), expected);
    // The native file holds every record, as written, in file order.
    assert_eq!(read_json(&out.join("SD/syphus/train.json")), records);
    let summary = scan_summary(&o, "SD");
    assert!(
        summary.contains(
            "40 units from 43 annotation records (2 units annotated by several records: 5 records"
        ),
        "{summary}"
    );
    // Every record's sentences in the unit's annotation rows.
    let tables = check_tables(&out, "SD");
    let rows: Vec<&str> = tables["annotations.parquet"]
        .iter()
        .filter(|r| r["unit_id"] == "00076")
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "there are no differences",
            "the bus is gone",
            "a car appeared",
            "caf\u{e9} sign is new"
        ]
    );

    // Answers come back with the loader's ids, repeated: all become instructions of the pair.
    std::fs::write(
        dir.path().join("answers.json"),
        serde_json::json!([
            {"id": "76", "results": "Question: What changed?\nAnswer: Nothing."},
            {"id": "235", "results": "Question: Who left?\nAnswer: A person."},
            {"id": "76", "results": "Question: Is the bus there?\nAnswer: No."},
            {"id": "00076", "results": "Question: A sign?\nAnswer: A new one."},
        ])
        .to_string(),
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "pack",
            "corpus/scenario.toml",
            "--out",
            "out",
            "--answers",
            "answers.json",
        ],
    );
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    let ins = read_json(&out.join("SD/SD_instructions.json"));
    let data = ins["data"].as_object().unwrap();
    let by_question: std::collections::BTreeMap<&str, &serde_json::Value> = data
        .values()
        .map(|v| (v["instruction"].as_str().unwrap(), &v["image_ids"]))
        .collect();
    assert_eq!(by_question.len(), 4, "{ins}");
    let pair76 = serde_json::json!(["SD_IMG_00076_1", "SD_IMG_00076_2"]);
    for q in ["What changed?", "Is the bus there?", "A sign?"] {
        assert_eq!(by_question[q], &pair76, "{q}");
    }
    assert_eq!(
        by_question["Who left?"],
        &serde_json::json!(["SD_IMG_00235_1", "SD_IMG_00235_2"])
    );
    if out.join("SD/rejects/pack.parquet").exists() {
        let pack_rejects = rejects(&out, "SD", "pack");
        assert!(
            !pack_rejects.iter().any(|r| r.error.contains("unknown")),
            "{pack_rejects:?}"
        );
    }
}

/// DC: one query per video, in file order: `timestamps: ` + Python's `str` of the times rounded
/// half to even, `sentences: ` + Python's `json.dumps` of the sentences as written.
#[test]
fn dense_captions_queries_are_the_original_loaders() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join("captions")).unwrap();
    let text = std::fs::read_to_string(fx.join("activitynet_captions/val_1.first20.json")).unwrap();
    let end = text.rfind('}').unwrap();
    // One more video, with ties at .5, an emoji and accents.
    let val_1 = format!(
        "{}, \"v_extra\": {{\"duration\": 10.0, \"timestamps\": [[0.5, 2.5], [3.5, 9.49]], \"sentences\": [\"Caf\\u00e9 au lait.\", \" Un th\\u00e9 \\ud83c\\udf75 \\\"chaud\\\".\"]}}}}",
        &text[..end].trim_end()
    );
    // ActivityNet's val_2 annotates the same videos again.
    let val_2 =
        r#"{"v_extra": {"duration": 10.0, "timestamps": [[1.5, 4.5]], "sentences": ["Again."]}}"#;
    std::fs::write(corpus.join("captions/val_1.json"), &val_1).unwrap();
    std::fs::write(corpus.join("captions/val_2.json"), val_2).unwrap();
    copy(
        &fx.join("videos/realshort.mp4"),
        &corpus.join("videos/v_4Lu8ECLHvK4.mp4"),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"DC\"\n[metadata]\nrequire_media = false",
        "annotations = [\"captions/val_1.json\", \"captions/val_2.json\"]\nmedia = \"videos\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let mut expected = Vec::new();
    for file in [&val_1, &val_2.to_string()] {
        for (video, entry) in ordered_members(file) {
            let spans: Vec<String> = entry["timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let r = |v: &serde_json::Value| v.as_f64().unwrap().round_ties_even() as i64;
                    format!("[{}, {}]", r(&p[0]), r(&p[1]))
                })
                .collect();
            let message = format!(
                "timestamps: [{}]\nsentences: {}",
                spans.join(", "),
                py_dumps_strings(&strs(&entry["sentences"]))
            );
            expected.push((video, message));
        }
    }
    assert_eq!(expected.len(), 22);
    let q = query(&out, "DC");
    assert_eq!(q, expected);
    assert_eq!(
        message(&q, "v_extra"),
        "timestamps: [[0, 2], [4, 9]]\nsentences: [\"Caf\\u00e9 au lait.\", \" Un th\\u00e9 \\ud83c\\udf75 \\\"chaud\\\".\"]"
    );
    // The native file lists the videos in file order.
    let native = std::fs::read_to_string(out.join("DC/syphus/dense_captions_train.json")).unwrap();
    let keys: Vec<String> = ordered_members(&native)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let want: Vec<String> = ordered_members(&val_1)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, want);
    assert_valid(
        "syphus_dense_captions.schema.json",
        &read_json(&out.join("DC/syphus/dense_captions_train.json")),
        "dense_captions_train.json",
    );
    let summary = scan_summary(&o, "DC");
    assert!(
        summary.contains("(1 units annotated by several records: 2 records"),
        "{summary}"
    );
}

/// TVC: one query per line (moment), id = `vid_name`, `1. desc` lines as written; a TVR line's
/// single `desc` counts as a list of one (mimicit's extension: the original reads `descs`).
#[test]
fn tv_captions_queries_are_the_original_loaders() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let tvr = std::fs::read_to_string(fx.join("tvc/tvr_val_release.first40.jsonl")).unwrap();
    let mut tvc = std::fs::read_to_string(fx.join("tvc/tvc_val_gt_example.jsonl")).unwrap();
    // The same line twice, and a clip with two moments and a description starting with a space.
    let first = tvc.lines().next().unwrap().to_string();
    tvc = format!(
        "{}\n{first}\n{{\"vid_name\": \"castle_s01e01_seg01_clip_00\", \"descs\": [{{\"desc\": \" Beckett l\\u00e4uft.\"}}, {{\"desc\": \"Castle sits.\"}}]}}\n",
        tvc.trim_end()
    );
    std::fs::write(corpus_file(&corpus, "tvr.jsonl"), &tvr).unwrap();
    std::fs::write(corpus_file(&corpus, "tvc.jsonl"), &tvc).unwrap();
    for i in 1..=3 {
        picture(
            &corpus
                .join("frames/friends_frames/friends_s01e03_seg02_clip_19")
                .join(format!("{i:05}.jpg")),
            i,
        );
    }
    let (out, o) = run(
        dir.path(),
        "scenario = \"TVC\"\n[metadata]\nrequire_media = false",
        "annotations = [\"tvr.jsonl\", \"tvc.jsonl\"]\nmedia = \"frames\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let mut expected = Vec::new();
    for text in [&tvr, &tvc] {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let descs: Vec<&str> = match v["descs"].as_array() {
                Some(d) => d.iter().map(|d| d["desc"].as_str().unwrap()).collect(),
                None => vec![v["desc"].as_str().unwrap()],
            };
            let lines: Vec<String> = descs
                .iter()
                .enumerate()
                .map(|(i, d)| format!("{}. {d}", i + 1))
                .collect();
            expected.push((
                v["vid_name"].as_str().unwrap().to_string(),
                lines.join("\n"),
            ));
        }
    }
    assert_eq!(query(&out, "TVC"), expected);
    let native = std::fs::read_to_string(out.join("TVC/syphus/tvc_train_release.jsonl")).unwrap();
    assert_eq!(native.lines().count(), expected.len());
    for line in native.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid("syphus_tvc.schema.json", &v, "tvc line");
    }
}

fn corpus_file(corpus: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(corpus).unwrap();
    corpus.join(name)
}

/// VST: one query per album in file order: `title:` / `description:` / then per image of the
/// album (file order) a blank line, `image:`, `tags:`, `annotations: ` + `json.dumps` of the
/// `text` of its photo's story sentences (file order).
#[test]
fn visual_storytelling_queries_are_the_original_loaders() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let mut sis = read_json(&fx.join("vist/test.story-in-sequence.excerpt.json"));
    let second = sis["albums"][1]["id"].as_str().unwrap().to_string();
    sis["images"].as_array_mut().unwrap().extend([
        serde_json::json!({"id": "900", "album_id": second, "title": "Gr\u{fc}\u{df}e", "tags": "dad cake"}),
        serde_json::json!({"id": "901", "album_id": "44277", "title": "", "tags": ""}),
    ]);
    sis["annotations"].as_array_mut().unwrap().extend([
        serde_json::json!([{"album_id": second, "story_id": "9", "photo_flickr_id": "900",
            "worker_arranged_photo_order": 0, "original_text": "A \"cake\".", "text": "a \" cake \" ."}]),
        serde_json::json!([{"album_id": "44277", "story_id": "9", "photo_flickr_id": "1741642",
            "worker_arranged_photo_order": 1, "original_text": "Again.", "text": "again ."}]),
    ]);
    std::fs::create_dir_all(corpus.join("sis")).unwrap();
    std::fs::write(
        corpus.join("sis/test.story-in-sequence.json"),
        serde_json::to_vec_pretty(&sis).unwrap(),
    )
    .unwrap();
    copy(
        &fx.join("coco/images/000000000785.jpg"),
        &corpus.join("images/test/1741642.jpg"),
    );
    let (out, o) = run(
        dir.path(),
        "scenario = \"VST\"\n[metadata]\nrequire_media = false",
        "annotations = \"sis/test.story-in-sequence.json\"\nmedia = \"images\"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // The rule. A sentence whose photo no image record has would stop the original (a
    // KeyError); mimicit rejects it, so it is left out here too.
    let known: BTreeSet<&str> = sis["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let mut expected = Vec::new();
    for album in sis["albums"].as_array().unwrap() {
        let id = album["id"].as_str().unwrap();
        let mut m = format!(
            "title: {}\ndescription: {}\n",
            album["title"].as_str().unwrap(),
            album["description"].as_str().unwrap()
        );
        for image in sis["images"].as_array().unwrap() {
            if image["album_id"] != id {
                continue;
            }
            let texts: Vec<&str> = sis["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a[0])
                .filter(|a| known.contains(a["photo_flickr_id"].as_str().unwrap_or("")))
                .filter(|a| a["photo_flickr_id"] == image["id"])
                .map(|a| a["text"].as_str().unwrap())
                .collect();
            m += &format!(
                "\nimage: {}\ntags: {}\nannotations: {}\n",
                image["title"].as_str().unwrap(),
                image["tags"].as_str().unwrap(),
                py_dumps_strings(&texts)
            );
        }
        expected.push((id.to_string(), m));
    }
    assert_eq!(expected.len(), 2);
    assert_eq!(query(&out, "VST"), expected);
    assert!(expected[0].1.contains(
        "annotations: [\"the local parish holds a craft show each year .\", \"again .\"]"
    ));
    let scan = rejects(&out, "VST", "scan");
    assert!(
        scan.iter()
            .any(|r| r.item == "annotations[1]" && r.error.contains("no `images` list has")),
        "{scan:?}"
    );
    assert_valid(
        "syphus_vist.schema.json",
        &read_json(&out.join("VST/syphus/train.story-in-sequence.json")),
        "train.story-in-sequence.json",
    );
}
