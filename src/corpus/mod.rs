//! Corpus adapters: each turns one source corpus, in the layout its users downloaded, into
//! visual units (`Unit`) with their media and their Syphus annotation entry. One file per corpus.
//!
//! Adapters never decode media; a unit whose media is missing or whose annotation is malformed
//! becomes a `Reject` and the scan goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Code, Scenario};
use crate::error::{Error, Result};
use crate::model::{Reject, Unit};

pub mod coco;
pub mod dense_captions;
pub mod ego4d;
pub mod llava;
pub mod scannet;
pub mod spot_diff;
pub mod tvc;
pub mod vist;

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub units: Vec<Unit>,
    pub rejects: Vec<Reject>,
    /// Media files present but not annotated (not an error: corpora ship more than they annotate).
    pub unannotated: u64,
}

impl ScanResult {
    /// Records a unit whose media was not found: the reject always; the unit itself, as
    /// annotation-only (`UnitMedia::Missing { expected }`), when `metadata.require_media` is
    /// false, so that Syphus inputs can still be prepared for it.
    pub fn media_missing(&mut self, scenario: &Scenario, reject: Reject, unit: Unit) {
        self.rejects.push(reject);
        if !scenario.config.metadata.require_media {
            self.units.push(unit);
        }
    }
}

/// Lists the units of a scenario's corpus.
pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    match scenario.code {
        Code::DC => dense_captions::scan(scenario),
        Code::CGD => coco::scan(scenario),
        Code::SD => spot_diff::scan(scenario),
        Code::SN => scannet::scan(scenario),
        Code::E4D => ego4d::scan(scenario),
        Code::TVC => tvc::scan(scenario),
        Code::VST => vist::scan(scenario),
        Code::LA => llava::scan(scenario),
    }
}

/// The user message Syphus sends for one unit of scenario `code`, made from the unit's
/// annotation entry (FORMATS.md §4).
pub fn syphus_message(code: Code, annotation: &serde_json::Value) -> Result<String> {
    Ok(match code {
        Code::DC => dense_captions::syphus_message(annotation),
        Code::CGD => coco::syphus_message(annotation),
        Code::SD => spot_diff::syphus_message(annotation),
        Code::SN => scannet::syphus_message(annotation),
        Code::E4D => ego4d::syphus_message(annotation),
        Code::TVC => tvc::syphus_message(annotation),
        Code::VST => vist::syphus_message(annotation),
        Code::LA => llava::syphus_message(annotation),
    })
}

/// How many annotation items (captions, sentences, descriptions, narrations, stories) an entry holds,
/// for the metadata summary.
pub fn annotation_count(code: Code, annotation: &serde_json::Value) -> usize {
    let len = |v: &serde_json::Value| v.as_array().map(Vec::len).unwrap_or(0);
    match code {
        Code::DC | Code::SD => len(&annotation["sentences"]),
        Code::TVC => len(&annotation["descs"]),
        Code::SN => len(&annotation["description"]),
        Code::E4D => len(&annotation["narrations"]),
        Code::CGD => annotation["sentences"]
            .as_str()
            .map(|s| s.lines().count())
            .unwrap_or(0),
        Code::VST => vist::story_count(annotation),
        Code::LA => len(&annotation["record"]["captions"]),
    }
}

/// The annotation items of a unit, one row each, for `annotations.parquet`. Times are on the
/// media timeline. Kinds: DC `caption`; TVC `description`, `subtitle`; SD `difference`; CGD
/// `caption`, `box` (text prefixed by the image, `a: ...`); SN `description` (`object: text`);
/// E4D `narration`, `objects`; VST `story` (`story_id: text`); LA `caption`, `box`,
/// `conversation` (`from: value`).
pub fn annotation_rows(code: Code, unit: &Unit) -> Vec<crate::model::AnnotationRow> {
    use serde_json::Value;
    let a = &unit.annotation;
    let mut rows = Vec::new();
    let mut row = |t_start: Option<f64>, t_end: Option<f64>, text: String, kind: &str| {
        rows.push(crate::model::AnnotationRow {
            unit_id: unit.id.clone(),
            t_start,
            t_end,
            text,
            kind: kind.to_string(),
        })
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match code {
        Code::DC => {
            for (ts, s) in list(&a["timestamps"]).iter().zip(list(&a["sentences"])) {
                row(ts[0].as_f64(), ts[1].as_f64(), text(&s), "caption");
            }
        }
        Code::SD => {
            for s in list(&a["sentences"]) {
                row(None, None, text(&s), "difference");
            }
        }
        Code::TVC => {
            for d in list(&a["descs"]) {
                row(None, None, text(&d["desc"]), "description");
            }
            for s in list(&a["subtitles"]) {
                row(
                    s["start"].as_f64(),
                    s["end"].as_f64(),
                    text(&s["text"]),
                    "subtitle",
                );
            }
        }
        Code::CGD => {
            let mut image = "";
            for line in a["sentences"].as_str().unwrap_or_default().lines() {
                match line {
                    "image a:" => image = "a",
                    "image b:" => image = "b",
                    _ if line.ends_with(']') && line.contains(": [") => {
                        row(None, None, format!("{image}: {line}"), "box")
                    }
                    _ => row(None, None, format!("{image}: {line}"), "caption"),
                }
            }
        }
        Code::SN => {
            for d in list(&a["description"]) {
                row(
                    None,
                    None,
                    format!("{}: {}", text(&d[0]), text(&d[1])),
                    "description",
                );
            }
        }
        Code::E4D => {
            let start = a["start"].as_f64().unwrap_or(0.0);
            for n in list(&a["narrations"]) {
                let t = n["time"].as_f64().map(|t| start + t);
                row(t, None, text(&n["text"]), "narration");
                let objects: Vec<String> =
                    list(&n["object_description"]).iter().map(text).collect();
                if !objects.is_empty() {
                    row(t, None, objects.join("; "), "objects");
                }
            }
        }
        Code::VST => {
            for r in list(&a["annotations"]) {
                let r = r.get(0).unwrap_or(&r);
                let t = r.get("original_text").unwrap_or(&r["text"]);
                row(
                    None,
                    None,
                    format!("{}: {}", text(&r["story_id"]), text(t)),
                    "story",
                );
            }
        }
        Code::LA => {
            let rec = &a["record"];
            for c in list(&rec["captions"]) {
                row(None, None, text(&c), "caption");
            }
            for i in list(&rec["instances"]) {
                row(
                    None,
                    None,
                    format!("{}: {}", text(&i["category"]), i["bbox"]),
                    "box",
                );
            }
            for turns in list(&a["conversations"]) {
                for t in list(&turns) {
                    row(
                        None,
                        None,
                        format!("{}: {}", text(&t["from"]), text(&t["value"])),
                        "conversation",
                    );
                }
            }
        }
    }
    rows
}

/// The annotation file in the layout Syphus's own loader reads for scenario `code`, built from
/// the given units (in id order): its file name and bytes.
///
/// - DC `dense_captions_train.json`: `{video_id: {"timestamps", "sentences"}}`
/// - TVC `tvc_train_release.jsonl`: one `{"vid_name", "descs": [{"desc"}]}` line per clip
/// - SD `train.json`: `[{"img_id", "sentences"}, ...]`
/// - CGD `csd_query.json`: `{pair_id: {"sentences": message}}`
/// - SN `scan_info.json`: `{scan_id: {"description": [[object, text], ...]}}`
/// - E4D `processed_all_anns.json`: `{video: {"clips": [{"clip_id", "start", "end",
///   "narrations": [{"time", "text", "object_description"}]}]}}`
/// - VST `train.story-in-sequence.json`: `{"images", "albums", "annotations"}` of the albums
/// - LA `caps_boxes.jsonl`: one `{"id", "image", "captions", "instances"}` line per image
pub fn syphus_native(code: Code, units: &[&Unit]) -> Result<(String, Vec<u8>)> {
    use serde_json::{json, Map, Value};
    let by_id = || -> Map<String, Value> {
        units
            .iter()
            .map(|u| (u.id.clone(), u.annotation.clone()))
            .collect()
    };
    let pretty = |v: &Value| -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(v).expect("JSON values serialize");
        b.push(b'\n');
        b
    };
    Ok(match code {
        Code::DC => (
            "dense_captions_train.json".into(),
            pretty(&Value::Object(by_id())),
        ),
        Code::SN => ("scan_info.json".into(), pretty(&Value::Object(by_id()))),
        Code::SD => (
            "train.json".into(),
            pretty(&Value::Array(
                units.iter().map(|u| u.annotation.clone()).collect(),
            )),
        ),
        Code::CGD => (
            "csd_query.json".into(),
            pretty(&Value::Object(
                units
                    .iter()
                    .map(|u| {
                        (
                            u.id.clone(),
                            json!({"sentences": u.annotation["sentences"].clone()}),
                        )
                    })
                    .collect(),
            )),
        ),
        Code::TVC => {
            let mut b = Vec::new();
            for u in units {
                b.extend(serde_json::to_vec(&u.annotation).expect("JSON values serialize"));
                b.push(b'\n');
            }
            ("tvc_train_release.jsonl".into(), b)
        }
        Code::E4D => {
            let mut videos: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for u in units {
                let video = u.annotation["video"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut clip = u.annotation.clone();
                if let Some(o) = clip.as_object_mut() {
                    o.remove("video");
                    o.insert("clip_id".into(), u.id.clone().into());
                }
                videos.entry(video).or_default().push(clip);
            }
            let doc: Map<String, Value> = videos
                .into_iter()
                .map(|(v, clips)| (v, json!({"clips": clips})))
                .collect();
            (
                "processed_all_anns.json".into(),
                pretty(&Value::Object(doc)),
            )
        }
        Code::VST => (
            "train.story-in-sequence.json".into(),
            pretty(&vist::native(units)),
        ),
        Code::LA => ("caps_boxes.jsonl".into(), llava::native(units)),
    })
}

/// `scenario.media` relative to `scenario.root`: unit media paths are stored relative to the
/// root so that moving the corpus does not invalidate them.
pub fn media_rel(scenario: &Scenario) -> PathBuf {
    scenario
        .media
        .strip_prefix(&scenario.root)
        .unwrap_or(&scenario.media)
        .to_path_buf()
}

pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
        .unwrap_or(false)
}

/// Maps each image file stem under `media` to its path relative to `media`. When a stem exists
/// with several extensions, `.png` wins over `.jpg` over `.jpeg` (then the first path in sorted
/// order), so the choice does not depend on the walk order.
pub fn index_images(media: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let rank = |p: &Path| {
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "png" => 0,
            "jpg" => 1,
            _ => 2,
        }
    };
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (rel, _) in list_files(media)? {
        if !is_image(&rel) {
            continue;
        }
        let Some(stem) = rel.file_stem() else {
            continue;
        };
        let stem = stem.to_string_lossy().into_owned();
        match by_stem.get(&stem) {
            Some(old) if rank(old) <= rank(&rel) => {}
            _ => {
                by_stem.insert(stem, rel);
            }
        }
    }
    Ok(by_stem)
}

/// A deterministic pseudo-random permutation of `0..n` seeded by `seed` (Fisher-Yates over a
/// splitmix64 stream): "shuffled" outputs stay byte-identical between runs.
pub fn seeded_shuffle(n: usize, seed: &str) -> Vec<usize> {
    let h = blake3::hash(seed.as_bytes());
    let mut state = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// A fingerprint of the corpus as the scan stage sees it: the bytes of every annotation file and
/// the names and sizes of the media files (hashing terabytes of video to notice a change would
/// cost more than the scan itself).
pub fn fingerprint(scenario: &Scenario) -> Result<String> {
    let mut h = blake3::Hasher::new();
    for a in &scenario.annotations {
        let (n, hash) = crate::manifest::hash_file(a)?;
        h.update(format!("annotation {n} {hash}\n").as_bytes());
    }
    for (rel, size) in list_files(&scenario.media)? {
        h.update(format!("media {} {size}\n", rel.display()).as_bytes());
    }
    if let Some(o) = &scenario.objects {
        let (n, hash) = crate::manifest::hash_file(o)?;
        h.update(format!("objects {n} {hash}\n").as_bytes());
    }
    if let Some(dir) = &scenario.subtitles {
        for (rel, _) in list_files(dir)? {
            let (n, hash) = crate::manifest::hash_file(&dir.join(&rel))?;
            h.update(format!("subtitles {} {n} {hash}\n", rel.display()).as_bytes());
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Every regular file under `dir` (relative path, size), sorted, following no symlinked folder
/// (so a symlink loop cannot trap the walk). Hidden files are skipped.
pub fn list_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() || ft.is_symlink() {
                // A symlink to a file counts; a dangling one or one to a folder does not.
                if let Ok(meta) = std::fs::metadata(&path) {
                    if meta.is_file() {
                        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                        found.push((rel, meta.len()));
                    }
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "mkv", "webm", "avi", "mov", "m4v", "flv", "mpg", "mpeg", "wmv", "3gp", "ts", "gif",
];

/// Maps each video file stem under `media` to its path relative to `media` (first in sorted
/// order when a stem exists with several extensions).
pub fn index_videos(media: &Path) -> Result<BTreeMap<String, PathBuf>> {
    Ok(index_videos_in(&list_files(media)?))
}

/// [`index_videos`] over a listing already made by [`list_files`] (sorted), for adapters that
/// look for other media in the same walk.
pub fn index_videos_in(files: &[(PathBuf, u64)]) -> BTreeMap<String, PathBuf> {
    let mut by_stem = BTreeMap::new();
    for (rel, _) in files {
        let is_video = rel
            .extension()
            .map(|e| VIDEO_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
            .unwrap_or(false);
        if !is_video {
            continue;
        }
        if let Some(stem) = rel.file_stem() {
            by_stem
                .entry(stem.to_string_lossy().into_owned())
                .or_insert_with(|| rel.clone());
        }
    }
    by_stem
}

/// One non-empty line of a JSONL annotation file.
pub struct JsonlLine {
    /// 1-based line number.
    pub number: usize,
    /// `file:line`: where its rejects point.
    pub at: String,
    /// The line, trimmed.
    pub text: String,
}

impl JsonlLine {
    /// A reject of `stage` located at this line.
    pub fn reject(&self, stage: &str, item: String, error: String) -> Reject {
        Reject {
            stage: stage.into(),
            item,
            path: self.at.clone(),
            error,
        }
    }
}

/// The non-empty lines of a JSONL file, trimmed, with their numbers and locations.
pub fn jsonl_lines(file: &Path) -> Result<Vec<JsonlLine>> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let name = file.display();
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| JsonlLine {
            number: n + 1,
            at: format!("{name}:{}", n + 1),
            text: l.trim().to_string(),
        })
        .collect())
}

/// Reads an annotation file whose top level must be an object; `shape` says what it should hold
/// (`{video_id: {...}}`) for the error message.
pub fn read_json_object(
    path: &Path,
    shape: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    match read_json(path)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(Error::Json {
            path: path.to_path_buf(),
            message: format!("expected {shape}"),
        }),
    }
}

/// Reads an annotation file whose top level must be a list (see [`read_json_object`]).
pub fn read_json_list(path: &Path, shape: &str) -> Result<Vec<serde_json::Value>> {
    match read_json(path)? {
        serde_json::Value::Array(v) => Ok(v),
        _ => Err(Error::Json {
            path: path.to_path_buf(),
            message: format!("expected {shape}"),
        }),
    }
}

/// The strings of a JSON list field (`sentences`, ...), trimmed; the first non-string is named
/// as `{field}[i]`.
pub fn trimmed_strings(
    values: &[serde_json::Value],
    field: &str,
) -> std::result::Result<Vec<String>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(|s| s.trim().to_string())
                .ok_or_else(|| format!("{field}[{i}] is not a string"))
        })
        .collect()
}

/// Reads and parses a JSON annotation file, naming it in any error.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: format!("malformed JSON: {e}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A scenario of `code` over the corpus in `dir` (`extra`: more TOML, e.g. a `[corpus]`
    /// table).
    pub fn scenario(
        dir: &Path,
        code: &str,
        annotations: &[&str],
        media: &str,
        extra: &str,
    ) -> Scenario {
        let file = dir.join("scenario.toml");
        let text = format!(
            "scenario = \"{code}\"\n[source]\nroot = \".\"\nannotations = {annotations:?}\nmedia = \"{media}\"\n{extra}\n"
        );
        std::fs::write(&file, text).unwrap();
        Scenario::load(&file, &[]).unwrap()
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = seeded_shuffle(50, "scene0000_00");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, seeded_shuffle(50, "scene0000_00"));
        assert_ne!(a, seeded_shuffle(50, "scene0000_01"));
        assert!(seeded_shuffle(0, "x").is_empty());
    }

    #[test]
    fn image_index_prefers_png_then_jpg() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.jpeg", "a.jpg", "b.jpeg", "c.png", "c.JPG", "d.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let idx = index_images(dir.path()).unwrap();
        let got: Vec<String> = idx.values().map(|p| p.display().to_string()).collect();
        assert_eq!(got, ["a.jpg", "b.jpeg", "c.png"]);
    }
}
