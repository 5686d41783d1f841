//! E4D: Ego4D videos (`v1/full_scale/{video_uid}.mp4`) with `narration.json`:
//! `{video_uid: {"narration_pass_1": {"narrations": [{"timestamp_sec", "narration_text", ...}]},
//! "narration_pass_2": {...}}}`. A file without the pass wrappers (`{video_uid: {"narrations":
//! [...]}}`, as some excerpts are) is read as it is. `[corpus] narration_pass` picks the pass.
//!
//! Clips (`[corpus] clips`):
//! - `windows` (default): fixed windows, clip `i` covers `[i * stride, i * stride +
//!   clip_seconds)` of the video (`clip_seconds`, `clip_stride`, default 30 s side by side);
//!   only windows holding at least one narration become units.
//! - `density`: runs of narrations at most `density_gap` seconds apart (default 10), a run
//!   spanning less than `clip_seconds`; clip `i` (the i-th run) covers `[first - gap / 2,
//!   last + gap / 2]`. Busy stretches give many short clips, quiet stretches none.
//!
//! Unit id `{video}_clip{i:06}`; the unit is the segment
//! `[start, end]` of the video and its `times` are its narration times (video timeline), for the
//! `at` policy.
//!
//! Frame ids: FORMATS.md gives `E4D_IMG_{video}_{i:08}`, which collides when a video has several
//! clips (each clip counts its frames from 0), so the clip is part of the key:
//! `E4D_IMG_{video}_clip{c:06}_{i:08}`, i = frame index within the clip.
//!
//! Object descriptions (Ego4D has none; `[corpus] objects` names an optional side file):
//! `{video_uid: [{"timestamp_sec": 12.3, "objects": ["a knife", "a cutting board"]}, ...]}`.
//! Each entry goes to the nearest narration of its video at most `object_tolerance` seconds
//! away (default 1 s) and fills that narration's `object_description`; an entry near no
//! narration, of a video no narration file has, or malformed is a reject.
//!
//! Narration texts keep Ego4D's `#C` / `#O` / `#unsure` markers unless
//! `[corpus] strip_markers = true` removes them.
//!
//! Syphus entry (one clip of `processed_all_anns.json`): `{"video", "start", "end",
//! "narrations": [{"time", "text", "object_description": []}]}`, `time` in seconds from the clip
//! start (3 decimals). Message: per narration, `timestamp: {time rounded, ties to even}` / `description: {text}`
//! / `objects: {a; b; c}` (only when object descriptions exist), blocks separated by a blank line.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{index_videos, media_rel, ScanResult};
use crate::config::{ClipMode, CorpusConfig, Scenario};
use crate::error::Result;
use crate::model::{Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

/// Latest narration time accepted, in seconds (about 31 years): a larger `timestamp_sec` is a
/// broken value, and clip numbers computed from it would not fit in an integer.
const MAX_TIME_S: f64 = 1e9;

/// One narration on the video timeline.
#[derive(Debug, Clone, PartialEq)]
struct Narration {
    time: f64,
    text: String,
    /// Object descriptions from the side file (`[corpus] objects`).
    objects: Vec<String>,
}

/// Object descriptions of the side file: video uid -> (time, objects, where), in file order.
type ObjectEntries = BTreeMap<String, Vec<(f64, Vec<String>, String)>>;

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let cfg = &scenario.config.corpus;
    let videos = index_videos(&scenario.media)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut objects = match &scenario.objects {
        Some(file) => read_objects(file, &mut result.rejects)?,
        None => ObjectEntries::new(),
    };
    for file in &scenario.annotations {
        let file_name = file.display().to_string();
        let entries =
            &super::read_json_object(file, "an object {video_uid: {narration_pass_1: ...}}")?;
        for (video, entry) in entries {
            let reject = |item: String, error: String| Reject {
                stage: STAGE.into(),
                item,
                path: file_name.clone(),
                error,
            };
            if let Some(first) = seen.get(video) {
                result.rejects.push(reject(
                    video.clone(),
                    format!("duplicate video uid: already annotated in {first}; ignored"),
                ));
                continue;
            }
            seen.insert(video.clone(), file_name.clone());
            let mut narrations = match parse_video(entry, cfg) {
                Ok((n, bad)) => {
                    for (i, e) in bad {
                        result.rejects.push(reject(
                            format!("{video} narration {i}"),
                            format!("malformed narration: {e}"),
                        ));
                    }
                    n
                }
                Err(e) => {
                    result
                        .rejects
                        .push(reject(video.clone(), format!("malformed entry: {e}")));
                    continue;
                }
            };
            if let Some(entries) = objects.remove(video) {
                attach_objects(
                    &mut narrations,
                    entries,
                    cfg.object_tolerance,
                    video,
                    &mut result,
                );
            }
            if narrations.is_empty() {
                continue;
            }
            let path = videos.get(video);
            if path.is_none() {
                result.rejects.push(reject(
                    video.clone(),
                    format!(
                        "no video named {video}.* under {}",
                        scenario.media.display()
                    ),
                ));
                if scenario.config.metadata.require_media {
                    continue;
                }
            }
            for (clip, (start, end), members) in clips(&narrations, cfg) {
                let id = format!("{video}_clip{clip:06}");
                let unit_media = match path {
                    Some(path) => UnitMedia::Video {
                        path: media.join(path),
                        start: Some(start),
                        end: Some(end),
                        key_prefix: id.clone(),
                        key_width: 8,
                        segments: Vec::new(),
                        chosen: Vec::new(),
                    },
                    None => UnitMedia::Missing {
                        expected: media.join(format!("{video}.*")).display().to_string(),
                    },
                };
                result.units.push(Unit {
                    id,
                    source: file_name.clone(),
                    media: unit_media,
                    times: members.iter().map(|n| n.time).collect(),
                    annotation: json!({
                        "video": video,
                        "start": start,
                        "end": end,
                        "narrations": members.iter().map(|n| json!({
                            "time": ((n.time - start) * 1000.0).round() / 1000.0,
                            "text": n.text,
                            "object_description": n.objects,
                        })).collect::<Vec<_>>(),
                    }),
                    records: Vec::new(),
                });
            }
        }
    }
    for (video, entries) in objects {
        for (_, _, at) in entries {
            result.rejects.push(Reject {
                stage: STAGE.into(),
                item: video.clone(),
                path: at,
                error: format!(
                    "object descriptions of video {video}, which no narration file annotates"
                ),
            });
        }
    }
    result.unannotated = videos.keys().filter(|k| !seen.contains_key(*k)).count() as u64;
    result.units.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(result)
}

fn stride(cfg: &CorpusConfig) -> f64 {
    cfg.clip_stride.unwrap_or(cfg.clip_seconds)
}

fn window(clip: u64, cfg: &CorpusConfig) -> (f64, f64) {
    let start = clip as f64 * stride(cfg);
    (start, start + cfg.clip_seconds)
}

/// A clip: its number, `[start, end)` on the video timeline and its narrations in time order.
type Clip<'a> = (u64, (f64, f64), Vec<&'a Narration>);

/// The clips of a video's narrations (sorted by time), by `[corpus] clips`.
fn clips<'a>(narrations: &'a [Narration], cfg: &CorpusConfig) -> Vec<Clip<'a>> {
    match cfg.clips {
        ClipMode::Windows => windows(narrations, cfg)
            .into_iter()
            .map(|(c, members)| (c, window(c, cfg), members))
            .collect(),
        ClipMode::Density => dense_runs(narrations, cfg),
    }
}

/// `clips = "density"`: runs of narrations, each at most `density_gap` seconds after the one
/// before it, a run ending before it would span `clip_seconds` or more. A clip covers
/// `[first - gap / 2, last + gap / 2]` (start at least 0), numbered from 0 in time order.
fn dense_runs<'a>(narrations: &'a [Narration], cfg: &CorpusConfig) -> Vec<Clip<'a>> {
    let pad = cfg.density_gap / 2.0;
    let mut runs: Vec<Vec<&Narration>> = Vec::new();
    for n in narrations {
        match runs.last_mut() {
            Some(run)
                if n.time - run[run.len() - 1].time <= cfg.density_gap
                    && n.time - run[0].time < cfg.clip_seconds =>
            {
                run.push(n)
            }
            _ => runs.push(vec![n]),
        }
    }
    runs.into_iter()
        .enumerate()
        .map(|(i, run)| {
            let start = (run[0].time - pad).max(0.0);
            let end = run[run.len() - 1].time + pad;
            (i as u64, (start, end), run)
        })
        .collect()
}

/// `clips = "windows"`: the windows holding each narration (several when windows overlap), in
/// clip order, each with its narrations in time order.
fn windows<'a>(
    narrations: &'a [Narration],
    cfg: &CorpusConfig,
) -> BTreeMap<u64, Vec<&'a Narration>> {
    let (len, s) = (cfg.clip_seconds, stride(cfg));
    let mut by_clip: BTreeMap<u64, Vec<&Narration>> = BTreeMap::new();
    for n in narrations {
        let first = ((n.time - len) / s).floor().max(-1.0) + 1.0;
        let last = (n.time / s).floor();
        let mut c = first as u64;
        while c as f64 <= last {
            let (start, end) = window(c, cfg);
            if n.time >= start && n.time < end {
                by_clip.entry(c).or_default().push(n);
            }
            // Times are bounded (MAX_TIME_S), so this never overflows; if it did, stop.
            let Some(next) = c.checked_add(1) else { break };
            c = next;
        }
    }
    by_clip
}

/// Reads the object side file: `{video_uid: [{"timestamp_sec": t, "objects": ["a knife", ...]},
/// ...]}`. A malformed entry is a reject naming the file and the entry; the others are kept.
fn read_objects(file: &std::path::Path, rejects: &mut Vec<Reject>) -> Result<ObjectEntries> {
    let doc = super::read_json_object(
        file,
        "an object {video_uid: [{timestamp_sec, objects: [...]}, ...]}",
    )?;
    let name = file.display().to_string();
    let mut out = ObjectEntries::new();
    for (video, list) in doc {
        let Some(list) = list.as_array() else {
            rejects.push(Reject {
                stage: STAGE.into(),
                item: video.clone(),
                path: name.clone(),
                error: "malformed object entry: not a list of {timestamp_sec, objects}".into(),
            });
            continue;
        };
        for (i, e) in list.iter().enumerate() {
            let at = format!("{name} ({video}[{i}])");
            let time = e["timestamp_sec"]
                .as_f64()
                .filter(|t| t.is_finite() && (0.0..=MAX_TIME_S).contains(t));
            let objects = e["objects"].as_array().and_then(|o| {
                o.iter()
                    .map(|x| x.as_str().map(|s| s.trim().to_string()))
                    .collect::<Option<Vec<_>>>()
            });
            match (time, objects) {
                (Some(t), Some(o)) => out.entry(video.clone()).or_default().push((
                    t,
                    o.into_iter().filter(|s| !s.is_empty()).collect(),
                    at,
                )),
                (None, _) => rejects.push(Reject {
                    stage: STAGE.into(),
                    item: video.clone(),
                    path: at,
                    error: format!("malformed object entry: `timestamp_sec` missing or not a time in [0, {MAX_TIME_S}] s"),
                }),
                (_, None) => rejects.push(Reject {
                    stage: STAGE.into(),
                    item: video.clone(),
                    path: at,
                    error: "malformed object entry: `objects` missing or not a list of strings".into(),
                }),
            }
        }
    }
    Ok(out)
}

/// Gives each object entry to the nearest narration at most `tolerance` seconds away (the
/// earlier one on a tie); objects already there are not repeated. An entry near no narration
/// is a reject.
fn attach_objects(
    narrations: &mut [Narration],
    entries: Vec<(f64, Vec<String>, String)>,
    tolerance: f64,
    video: &str,
    result: &mut ScanResult,
) {
    for (t, objects, at) in entries {
        let nearest = narrations
            .iter()
            .enumerate()
            .map(|(i, n)| (i, (n.time - t).abs()))
            .filter(|(_, d)| *d <= tolerance)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match nearest {
            Some((i, _)) => {
                for o in objects {
                    if !narrations[i].objects.contains(&o) {
                        narrations[i].objects.push(o);
                    }
                }
            }
            None => result.rejects.push(Reject {
                stage: STAGE.into(),
                item: video.to_string(),
                path: at,
                error: format!(
                    "object descriptions at {t} s: no narration of {video} within {tolerance} s"
                ),
            }),
        }
    }
}

type Malformed = Vec<(usize, String)>;

/// The chosen pass's narrations, sorted by time, and the malformed ones (index, reason).
fn parse_video(
    entry: &Value,
    cfg: &CorpusConfig,
) -> std::result::Result<(Vec<Narration>, Malformed), String> {
    let pass_key = format!("narration_pass_{}", cfg.narration_pass);
    let has_passes =
        entry.get("narration_pass_1").is_some() || entry.get("narration_pass_2").is_some();
    let list = if has_passes {
        match entry.get(&pass_key) {
            Some(pass) => pass["narrations"]
                .as_array()
                .ok_or(format!("`{pass_key}.narrations` missing or not a list"))?,
            None => return Ok((Vec::new(), Vec::new())),
        }
    } else {
        entry["narrations"]
            .as_array()
            .ok_or("neither `narration_pass_1`/`_2` nor `narrations`")?
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let time = n["timestamp_sec"]
            .as_f64()
            .filter(|t| t.is_finite() && (0.0..=MAX_TIME_S).contains(t));
        let text = n["narration_text"].as_str();
        match (time, text) {
            (Some(time), Some(text)) => {
                let text = if cfg.strip_markers {
                    strip_markers(text)
                } else {
                    text.trim().to_string()
                };
                if !text.is_empty() {
                    good.push(Narration {
                        time,
                        text,
                        objects: Vec::new(),
                    });
                }
            }
            (None, _) => bad.push((
                i,
                format!("`timestamp_sec` missing or not a time in [0, {MAX_TIME_S}] s"),
            )),
            (_, None) => bad.push((i, "`narration_text` missing or not a string".to_string())),
        }
    }
    good.sort_by(|a, b| a.time.total_cmp(&b.time));
    Ok((good, bad))
}

/// `#C C opens the door #unsure` -> `C opens the door`.
fn strip_markers(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| {
            let w = w.to_ascii_lowercase();
            !matches!(w.as_str(), "#c" | "#o" | "#unsure")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `processed_all_anns.json` of the given clip entries (unit id order, so each video's clips
/// in clip order): `{video: {"clips": [{"clip_id", "start", "end", "narrations"}]}}`, videos
/// sorted.
pub fn native(records: &[(&crate::model::Unit, &Value)]) -> Value {
    let mut videos: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (u, entry) in records {
        let video = entry["video"].as_str().unwrap_or_default().to_string();
        let mut clip = (*entry).clone();
        if let Some(o) = clip.as_object_mut() {
            o.remove("video");
            o.insert("clip_id".into(), u.id.clone().into());
        }
        videos.entry(video).or_default().push(clip);
    }
    Value::Object(
        videos
            .into_iter()
            .map(|(v, clips)| (v, json!({ "clips": clips })))
            .collect(),
    )
}

/// The queries Syphus's E4D loader builds from `processed_all_anns.json` (`native`), in its
/// order (videos, then clips, as the file lists them): one per clip, the narrations as
/// `timestamp: {t}` / `description: {text}` / `objects: {objects joined by "; "}` blocks (t
/// rounded half to even), or just `description: {text}` when an earlier narration of the same
/// video (in any clip) already had that rounded time, joined by `\n`; then `\n` and
/// `restrictions`. The id is the clip's `clip_id`, the unit id `{video}_clip{i:06}` (the
/// original numbers a video's clips by their place in the file instead, the same number when
/// none of the video's clips was left out).
pub fn syphus_queries(native: &Value, restrictions: &str) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (video, data) in native.as_object().into_iter().flatten() {
        let mut used = std::collections::BTreeSet::new();
        for (i, clip) in data["clips"].as_array().into_iter().flatten().enumerate() {
            let mut lines = Vec::new();
            for n in clip["narrations"].as_array().into_iter().flatten() {
                let t = n["time"].as_f64().unwrap_or(0.0).round_ties_even() as i64;
                let text = n["text"].as_str().unwrap_or_default();
                if used.insert(t) {
                    let objects: Vec<&str> = n["object_description"]
                        .as_array()
                        .map(|o| o.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    lines.push(format!(
                        "timestamp: {t}\ndescription: {text}\nobjects: {}",
                        objects.join("; ")
                    ));
                } else {
                    lines.push(format!("description: {text}"));
                }
            }
            let id = clip["clip_id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{video}_clip{i:06}"));
            queries.push((id, format!("{}\n{restrictions}", lines.join("\n"))));
        }
    }
    queries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(len: f64, stride: Option<f64>, strip: bool) -> CorpusConfig {
        CorpusConfig {
            clip_seconds: len,
            clip_stride: stride,
            strip_markers: strip,
            ..CorpusConfig::default()
        }
    }

    fn n(time: f64) -> Narration {
        Narration {
            time,
            text: format!("t{time}"),
            objects: Vec::new(),
        }
    }

    fn shape(c: &[Clip]) -> Vec<(u64, usize)> {
        c.iter().map(|(k, _, v)| (*k, v.len())).collect()
    }

    #[test]
    fn density_clips_follow_the_narrations() {
        let ns = [n(0.0), n(4.0), n(12.0), n(40.0), n(41.0), n(100.0)];
        let mut c = cfg(30.0, None, false);
        c.clips = ClipMode::Density;
        c.density_gap = 10.0;
        let got = clips(&ns, &c);
        // 0, 4, 12 (gaps 4 and 8); 40, 41; 100 alone.
        assert_eq!(shape(&got), [(0, 3), (1, 2), (2, 1)]);
        assert_eq!(got[0].1, (0.0, 17.0));
        assert_eq!(got[1].1, (35.0, 46.0));
        // A run is cut before it spans clip_seconds.
        c.clip_seconds = 10.0;
        assert_eq!(shape(&clips(&ns, &c)), [(0, 2), (1, 1), (2, 2), (3, 1)]);
        assert!(clips(&[], &c).is_empty());
    }

    #[test]
    fn objects_go_to_the_nearest_narration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("objects.json");
        std::fs::write(
            &file,
            json!({
                "v": [
                    {"timestamp_sec": 4.4, "objects": ["a knife", " a board "]},
                    {"timestamp_sec": 4.6, "objects": ["a knife"]},
                    {"timestamp_sec": 50.0, "objects": ["far"]},
                    {"timestamp_sec": "x", "objects": []},
                ],
                "w": 3,
            })
            .to_string(),
        )
        .unwrap();
        let mut rejects = Vec::new();
        let mut entries = read_objects(&file, &mut rejects).unwrap();
        assert_eq!(rejects.len(), 2, "{rejects:?}");
        assert!(rejects.iter().any(|r| r.path.contains("v[3]")));
        let mut ns = vec![n(0.0), n(5.0)];
        let mut result = ScanResult::default();
        attach_objects(&mut ns, entries.remove("v").unwrap(), 1.0, "v", &mut result);
        assert!(ns[0].objects.is_empty());
        assert_eq!(ns[1].objects, ["a knife", "a board"]);
        assert_eq!(result.rejects.len(), 1);
        assert!(result.rejects[0]
            .error
            .contains("no narration of v within 1 s"));
    }

    #[test]
    fn huge_times_are_malformed_not_a_hang() {
        let entry = serde_json::json!({"narrations": [
            {"timestamp_sec": 1e300, "narration_text": "far"},
            {"timestamp_sec": 2.0, "narration_text": "near"},
        ]});
        let (good, bad) = parse_video(&entry, &cfg(30.0, None, false)).unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].1.contains("timestamp_sec"), "{bad:?}");
        // Even past the check, a time beyond every clip number ends the walk.
        assert!(clips(&[n(1e300)], &cfg(30.0, None, false)).is_empty());
    }

    /// The input `cargo fuzz run corpus_e4d` found (also a seed in `fuzz/seeds/corpus_e4d/`): a 65-digit
    /// `timestamp_sec` overflowed the clip walk.
    #[test]
    fn fuzzed_overflowing_timestamp_is_a_malformed_narration() {
        let doc: Value = serde_json::from_str(
            r##"{"a": {"narration_pass_1": {"narrations": [{"timestampxt": "#C C opens the door", "annotation_uid": "u1"}, {"timestamp_sec": 40111111111111111111111111111111111111111111111111111111111111111.2,"narration_text": "  C#Cpicks a cup #unsure"}]}, "narration_pass_2": {"narrations": []}},
 "mp_sec": 3, "narb": {"narrations": [{"timestamp_sec": 3, "narration_text": "#O a man 2waves"}, {"timestamp_sec": -1, "narration_text": "bad"}]}}"##,
        )
        .unwrap();
        let cfg = cfg(30.0, None, false);
        let (good, bad) = parse_video(&doc["a"], &cfg).unwrap();
        assert!(good.is_empty(), "{good:?}");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad.iter().all(|(_, e)| e.contains("timestamp_sec")),
            "{bad:?}"
        );
        let (good, _) = parse_video(&doc["narb"], &cfg).unwrap();
        assert_eq!(clips(&good, &cfg).len(), 1);
    }

    #[test]
    fn windows_side_by_side_and_overlapping() {
        let ns = [n(0.0), n(4.5), n(10.0), n(31.0)];
        let got = shape(&clips(&ns, &cfg(10.0, None, false)));
        assert_eq!(got, [(0, 2), (1, 1), (3, 1)]);
        let got = shape(&clips(&ns, &cfg(10.0, Some(5.0), false)));
        // 0 -> clip 0; 4.5 -> 0; 10 -> 1, 2; 31 -> 5, 6.
        assert_eq!(got, [(0, 2), (1, 1), (2, 1), (5, 1), (6, 1)]);
    }

    #[test]
    fn both_layouts_and_markers() {
        let inner = json!({"narrations": [
            {"timestamp_sec": 4.5, "narration_text": "#C C walks #unsure"},
            {"timestamp_sec": 1.0, "narration_text": "#O X waves"},
            {"timestamp_sec": "x", "narration_text": "bad"},
        ]});
        let wrapped =
            json!({"narration_pass_1": inner.clone(), "narration_pass_2": {"narrations": []}});
        for entry in [&inner, &wrapped] {
            let (good, bad) = parse_video(entry, &cfg(30.0, None, true)).unwrap();
            assert_eq!(good[0].text, "X waves");
            assert_eq!(good[1].text, "C walks");
            assert_eq!(bad.len(), 1);
        }
        let (good, _) = parse_video(&inner, &cfg(30.0, None, false)).unwrap();
        assert_eq!(good[1].text, "#C C walks #unsure");
        let mut two = cfg(30.0, None, false);
        two.narration_pass = 2;
        assert!(parse_video(&wrapped, &two).unwrap().0.is_empty());
        assert!(parse_video(&json!({"x": 1}), &two).is_err());
    }

    #[test]
    fn queries_by_the_loader_rule() {
        // Two clips of one video: a rounded time already used in the video (in any clip) gives
        // a bare description; the objects line is always there.
        let native = json!({
            "v": {"clips": [
                {"clip_id": "v_clip000000", "narrations": [
                    {"time": 1.6, "text": "C opens the door", "object_description": []},
                    {"time": 2.4, "text": "C looks", "object_description": []},
                ]},
                {"clip_id": "v_clip000002", "narrations": [
                    {"time": 2.5, "text": "C cuts", "object_description": ["a knife", "a board"]},
                    {"time": 3.5, "text": "C eats", "object_description": []},
                ]},
            ]},
            "w": {"clips": [{"clip_id": "w_clip000000", "narrations": [
                {"time": 2.0, "text": "C sits", "object_description": []},
            ]}]},
        });
        let q = syphus_queries(&native, "RULES");
        assert_eq!(
            q,
            [
                (
                    "v_clip000000".to_string(),
                    "timestamp: 2\ndescription: C opens the door\nobjects: \ndescription: C looks\nRULES".to_string()
                ),
                (
                    "v_clip000002".to_string(),
                    "description: C cuts\ntimestamp: 4\ndescription: C eats\nobjects: \nRULES".to_string()
                ),
                (
                    "w_clip000000".to_string(),
                    "timestamp: 2\ndescription: C sits\nobjects: \nRULES".to_string()
                ),
            ]
        );
    }

    #[test]
    fn scan_makes_clips_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("videos")).unwrap();
        std::fs::write(dir.path().join("videos/vid1.mp4"), b"x").unwrap();
        let ann = json!({
            "vid1": {"narration_pass_1": {"narrations": [
                {"timestamp_sec": 0.5, "narration_text": "#C C a"},
                {"timestamp_sec": 12.0, "narration_text": "#C C b"},
            ]}},
            "vid2": {"narration_pass_1": {"narrations": [{"timestamp_sec": 1.0, "narration_text": "#C C c"}]}},
            "vid3": {"summaries": []},
        });
        std::fs::write(dir.path().join("narration.json"), ann.to_string()).unwrap();
        let s = crate::corpus::tests::scenario(
            dir.path(),
            "E4D",
            &["narration.json"],
            "videos",
            "[corpus]\nclip_seconds = 10\n",
        );
        let r = scan(&s).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["vid1_clip000000", "vid1_clip000001"]);
        let u = &r.units[1];
        assert_eq!(u.times, [12.0]);
        let UnitMedia::Video {
            start,
            end,
            key_prefix,
            key_width,
            ..
        } = &u.media
        else {
            panic!()
        };
        assert_eq!((*start, *end), (Some(10.0), Some(20.0)));
        assert_eq!((key_prefix.as_str(), *key_width), ("vid1_clip000001", 8));
        assert_eq!(u.annotation["narrations"][0]["text"], "#C C b");
        let errors: Vec<&str> = r.rejects.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("no video named vid2"), "{errors:?}");
        assert!(errors[1].contains("malformed entry"), "{errors:?}");
    }
}
