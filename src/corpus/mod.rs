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

/// What the metadata stage writes for Syphus: the queries and the native annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct SyphusInputs {
    /// `(id, message)` per query, in the order Syphus's loader builds them.
    pub queries: Vec<(String, String)>,
    /// The native annotation file's name and bytes.
    pub native_name: String,
    pub native: Vec<u8>,
}

/// The units' annotation records in file order: `(unit, record entry)`, the entry being the
/// unit's annotation for units without records of their own (those keep the given order,
/// which is unit id order).
pub fn records_in_file_order<'a>(units: &[&'a Unit]) -> Vec<(&'a Unit, &'a serde_json::Value)> {
    let mut all: Vec<(u64, usize, &Unit, &serde_json::Value)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        if u.records.is_empty() {
            all.push((0, i, u, &u.annotation));
        }
        for r in &u.records {
            let entry = if r.entry.is_null() {
                &u.annotation
            } else {
                &r.entry
            };
            all.push((r.position, i, u, entry));
        }
    }
    all.sort_by_key(|(p, i, _, _)| (*p, *i));
    all.into_iter().map(|(_, _, u, e)| (u, e)).collect()
}

/// The Syphus inputs of scenario `code` for the given units (in unit id order): the native
/// annotation file, in the layout Syphus's own loader reads, holding every record of those
/// units in file order, and the `(id, message)` list that loader builds from it (FORMATS.md
/// §4), byte for byte, with the same multiplicity and order:
///
/// - SD `train.json`: the records as written; one query per record, id = `img_id` as written,
///   message = its sentences joined by `\n`.
/// - DC `dense_captions_train.json`: `{video_id: {"timestamps", "sentences", ...}}` in file
///   order; one query per video: `timestamps: ` + Python's `str` of the times rounded half
///   to even + `\nsentences: ` + Python's `json.dumps` of the sentences as written. A video
///   annotated in two files (ActivityNet's `val_1` and `val_2`) gets a query per record; the
///   object holds its first record only (a JSON object has one value per key).
/// - TVC `tvc_train_release.jsonl`: one `{"vid_name", "descs": [{"desc"}]}` line per
///   annotation line (moment), plus the clip's `subtitles` when it has some; one query per
///   line, id = `vid_name`, message `1. desc` lines.
/// - CGD `csd_query.json`: `{pair_id: {"sentences": message}}`; one query per pair.
/// - VST `train.story-in-sequence.json`: `{"images", "albums", "annotations"}` of the albums
///   in file order; one query per album (see [`vist::syphus_message`]).
/// - SN `scan_info.json`: `{scan_id: {"description": [[object, text], ...]}}`, every record
///   of the scan in a seeded shuffle; message = the texts of the first 50 (the original
///   shuffles again, unseeded: the one difference, so that outputs stay reproducible).
/// - E4D `processed_all_anns.json`: `{video: {"clips": [{"clip_id", "start", "end",
///   "narrations": [{"time", "text", "object_description"}]}]}}`; one query per clip, see
///   [`ego4d::syphus_queries`].
/// - LA `caps_boxes.jsonl`: one `{"id", "image", "captions", "instances"}` line per image
///   (no original loader: mimicit's own format, [`llava::syphus_message`]).
pub fn syphus_inputs(scenario: &Scenario, units: &[&Unit]) -> Result<SyphusInputs> {
    use serde_json::{json, Map, Value};
    let code = scenario.code;
    let pretty = |v: &Value| -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(v).expect("JSON values serialize");
        b.push(b'\n');
        b
    };
    let records = records_in_file_order(units);
    let one_per_unit = |message: fn(&Value) -> String| -> Vec<(String, String)> {
        records
            .iter()
            .map(|(u, e)| (u.id.clone(), message(e)))
            .collect()
    };
    let (queries, native_name, native) = match code {
        Code::SD => (
            records
                .iter()
                .map(|(_, e)| (spot_diff::query_id(e), spot_diff::syphus_message(e)))
                .collect(),
            "train.json",
            pretty(&Value::Array(
                records.iter().map(|(_, e)| (*e).clone()).collect(),
            )),
        ),
        Code::DC => {
            let mut seen = std::collections::BTreeSet::new();
            let first: Vec<(&str, &Value)> = records
                .iter()
                .filter(|(u, _)| seen.insert(u.id.as_str()))
                .map(|(u, e)| (u.id.as_str(), *e))
                .collect();
            (
                one_per_unit(dense_captions::syphus_message),
                "dense_captions_train.json",
                pretty_ordered_object(&first),
            )
        }
        Code::TVC => {
            let mut b = Vec::new();
            for (u, e) in &records {
                let mut line = (*e).clone();
                if let (Some(subs), Some(o)) = (u.annotation.get("subtitles"), line.as_object_mut())
                {
                    o.insert("subtitles".into(), subs.clone());
                }
                b.extend(serde_json::to_vec(&line).expect("JSON values serialize"));
                b.push(b'\n');
            }
            (
                one_per_unit(tvc::syphus_message),
                "tvc_train_release.jsonl",
                b,
            )
        }
        Code::CGD => (
            one_per_unit(coco::syphus_message),
            "csd_query.json",
            pretty(&Value::Object(
                records
                    .iter()
                    .map(|(u, e)| (u.id.clone(), json!({"sentences": e["sentences"].clone()})))
                    .collect(),
            )),
        ),
        Code::VST => (
            one_per_unit(vist::syphus_message),
            "train.story-in-sequence.json",
            pretty(&vist::native(&records)),
        ),
        Code::SN => (
            one_per_unit(scannet::syphus_message),
            "scan_info.json",
            pretty(&Value::Object(
                records
                    .iter()
                    .map(|(u, e)| (u.id.clone(), (*e).clone()))
                    .collect::<Map<String, Value>>(),
            )),
        ),
        Code::E4D => {
            let native = ego4d::native(&records);
            let queries =
                ego4d::syphus_queries(&native, &scenario.config.metadata.e4d_restrictions);
            (queries, "processed_all_anns.json", pretty(&native))
        }
        Code::LA => (
            one_per_unit(llava::syphus_message),
            "caps_boxes.jsonl",
            llava::native(units),
        ),
    };
    Ok(SyphusInputs {
        queries,
        native_name: native_name.to_string(),
        native,
    })
}

/// The ids Syphus's answers may give a unit's queries: the unit id, and for SD each record's
/// `img_id` as written (`76` for unit `00076`).
pub fn query_ids(code: Code, unit: &Unit) -> Vec<String> {
    let mut ids = vec![unit.id.clone()];
    if code == Code::SD {
        for r in &unit.records {
            let id = spot_diff::query_id(&r.entry);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// A JSON object with its keys in the given order, pretty-printed as
/// `serde_json::to_vec_pretty` does, with a trailing newline.
pub fn pretty_ordered_object(pairs: &[(&str, &serde_json::Value)]) -> Vec<u8> {
    use serde::Serializer;
    let mut b = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut b,
        serde_json::ser::PrettyFormatter::with_indent(b"  "),
    );
    ser.collect_map(pairs.iter().map(|(k, v)| (*k, *v)))
        .expect("JSON values serialize");
    b.push(b'\n');
    b
}

/// Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators, non-ASCII
/// (and DEL) escaped as `\uXXXX` (surrogate pairs beyond the BMP), control characters as
/// `\n`, `\t`, ... or `\u00XX`.
pub fn py_json_dumps(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => py_json_string(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_json_dumps).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_json_string(k), py_json_dumps(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => n.to_string(),
    }
}

fn py_json_string(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// Reads an annotation file whose top level must be an object, keeping its keys in file order
/// (a later duplicate key is kept too, as a pair of its own).
pub fn read_json_object_ordered(
    path: &Path,
    shape: &str,
) -> Result<Vec<(String, serde_json::Value)>> {
    struct Ordered(Vec<(String, serde_json::Value)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Ordered, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some(kv) = map.next_entry::<String, serde_json::Value>()? {
                        pairs.push(kv);
                    }
                    Ok(Ordered(pairs))
                }
            }
            d.deserialize_any(V)
        }
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match serde_json::from_slice::<Ordered>(&text) {
        Ok(o) => Ok(o.0),
        Err(e) if e.is_data() => Err(Error::Json {
            path: path.to_path_buf(),
            message: format!("expected {shape}"),
        }),
        Err(e) => Err(Error::Json {
            path: path.to_path_buf(),
            message: format!("malformed JSON: {e}"),
        }),
    }
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
    for (rel, size) in list_media(&scenario.media)? {
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
    walk(dir, false)
}

/// [`list_files`] plus the named pipes (FIFOs) named like a video, with size 0, so that such a
/// unit is not silently missing: the decoder opens it like a file (each stage that reads the
/// video opens it again, so a writer must deliver it as often), and opening one waits for its
/// writer, which the per-file time limit bounds ([`crate::video::set_item_timeout`]): a pipe
/// nobody writes to is a reject, not a hang. Other pipes (pictures, annotations) are not listed:
/// they are read without such a bound.
pub fn list_media(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    walk(dir, true)
}

fn walk(dir: &Path, video_pipes: bool) -> Result<Vec<(PathBuf, u64)>> {
    use std::os::unix::fs::FileTypeExt;
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
            } else if video_pipes && ft.is_fifo() && is_video(&path) {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                found.push((rel, 0));
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

/// Whether the file name has one of the [`VIDEO_EXTENSIONS`] (any case).
fn is_video(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

/// Maps each video file stem under `media` to its path relative to `media` (first in sorted
/// order when a stem exists with several extensions).
pub fn index_videos(media: &Path) -> Result<BTreeMap<String, PathBuf>> {
    Ok(index_videos_in(&list_media(media)?))
}

/// [`index_videos`] over a listing already made by [`list_files`] (sorted), for adapters that
/// look for other media in the same walk.
pub fn index_videos_in(files: &[(PathBuf, u64)]) -> BTreeMap<String, PathBuf> {
    let mut by_stem = BTreeMap::new();
    for (rel, _) in files {
        if !is_video(rel) {
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

    #[test]
    #[allow(unsafe_code)]
    fn pipes_named_like_videos_are_media_and_nothing_else() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mp4"), b"x").unwrap();
        for f in ["b.MKV", "c.jpg", "d.json"] {
            let c = std::ffi::CString::new(dir.path().join(f).as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        }
        let names = |l: Vec<(PathBuf, u64)>| -> Vec<(String, u64)> {
            l.into_iter()
                .map(|(p, n)| (p.display().to_string(), n))
                .collect()
        };
        assert_eq!(
            names(list_files(dir.path()).unwrap()),
            [("a.mp4".into(), 1)]
        );
        assert_eq!(
            names(list_media(dir.path()).unwrap()),
            [("a.mp4".into(), 1), ("b.MKV".into(), 0)]
        );
        let videos = index_videos(dir.path()).unwrap();
        assert_eq!(videos.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
