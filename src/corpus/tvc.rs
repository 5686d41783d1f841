//! TVC: TV show captions. Annotation files are JSON lines: TVC lines
//! `{"vid_name", "clip_id", "ts", "descs": [{"desc", ...}]}` or TVR-style lines with one
//! `"desc"`. Several lines may name the same clip (one per moment): they make one unit per
//! clip, whose annotation has all their descriptions in file order, and each line stays a
//! record of its own: Syphus's loader sends one query per line (id = `vid_name`, so a clip
//! with three moments gets three queries), lines repeated in the file included.
//!
//! Media, looked for anywhere under `source.media`, in this order:
//! 1. a TVQA frame folder `{show}_frames/{vid_name}/00001.jpg` (3 fps): an image unit whose
//!    frames are chosen by the original converter's rule (FORMATS.md §2): from the sorted frame
//!    files, stride = max(1, n / 16), start = stride / 2, indices start, start + stride, ...
//!    (more than 16 when n is not a multiple of 16);
//! 2. a raw clip `{vid_name}.{mp4,mkv,webm,...}`: a video unit. `[corpus] tvc_frames` chooses
//!    its frames:
//!    - `original` (default): the same rule on the clip's 3 fps grid, so that the ids are those
//!      the frame folder would give. The clip's header is probed at scan time for its duration
//!      d; an `ffmpeg -vf fps=3` extraction would write n = max(1, round(3 d)) frames, frame k
//!      (from 0) at k / 3 s with file stem `{k+1:05}`; the frames kept are `select_frames(n)`,
//!      each the decoded frame nearest its time. A clip that cannot be probed (or whose header
//!      gives no duration) is rejected, naming the file;
//!    - `policy`: the `[keyframes]` policy (e.g. `uniform`, count 16: exact evenly spaced
//!      times), ids `TVC_IMG_{prefix}_{i:05}` with i from 0. The `at` policy samples the
//!      middles of the lines' `ts` moments (lines without a valid `[start, end]` add none);
//! 3. neither: the clip is rejected; with `metadata.require_media = false` it stays as an
//!    annotation-only unit (Syphus inputs, no frames).
//!
//! Frame ids: `TVC_IMG_{prefix}_{frame stem}`. The prefix is the clip name when it starts with
//! its show (`friends_s01e03_seg02_clip_19`), else `{show}_{vid_name}` (Big Bang Theory clips
//! are named `s02e14_seg02_clip_02` inside `bbt_frames`). The show of a frame folder is its
//! parent folder's name without `_frames` (a folder right under `media` has none: the raw-clip
//! rule applies). A raw clip has no such folder: its show is the clip name's first
//! `_`-separated token when that is one of the TVQA shows (bbt, castle, friends, grey, house,
//! met), else `bbt` when the name starts with `s` and two digits (`s02e14_...`: TVQA names only
//! Big Bang Theory clips without their show), else unknown, and then the prefix is the clip
//! name alone.
//!
//! Subtitles: with `[corpus] subtitles = "tvqa_subtitles"`, the SubRip file `{vid_name}.srt`
//! found anywhere under that folder is attached to the clip's annotation as
//! `"subtitles": [{"start": s, "end": e, "text": t}]` (seconds; multi-line texts joined with a
//! space; TVQA's `(Sheldon:) Hello.` kept as is). A clip without a file has no `subtitles` key.
//! A malformed file (a bad time line, an end before its start) is rejected at `file:line` and
//! its clip goes on without subtitles. A file that is not UTF-8 is read as Latin-1.
//!
//! Unit annotation: `{"vid_name", "descs": [{"desc"}, ...]}` (every line's, trimmed) plus
//! `subtitles` when there are some. Records: one `{"vid_name", "descs": [{"desc"}]}` per line,
//! descriptions as written (a `tvc_train_release.jsonl` line, with the clip's `subtitles` in
//! the native file); message per line: numbered lines `1. desc` (subtitles are not part of it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::{json, Value};

use super::{is_image, list_files, media_rel, ScanResult};
use crate::config::{Scenario, TvcFrames};
use crate::error::Result;
use crate::model::{ChosenFrame, ImageItem, Reject, SourceRecord, Unit, UnitMedia};

const STAGE: &str = "scan";

/// The TVQA shows, as they name their frame folders (`{show}_frames`) and clips.
pub const SHOWS: &[&str] = &["bbt", "castle", "friends", "grey", "house", "met"];

/// One clip's frame folder: the show it belongs to and its frame files (relative to media),
/// sorted.
struct FrameFolder {
    show: String,
    frames: Vec<PathBuf>,
}

/// One clip's annotation lines, merged.
struct Clip {
    descs: Vec<String>,
    /// Its lines as Syphus reads them, one query each.
    records: Vec<SourceRecord>,
    /// `file:line` of its first line.
    at: String,
    /// Middles of the lines' `ts` moments.
    times: Vec<f64>,
}

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let files = super::list_media(&scenario.media)?;
    let folders = index_frame_folders(&files);
    let videos = super::index_videos_in(&files);
    let subtitles = match &scenario.subtitles {
        Some(dir) => index_subtitles(dir)?,
        None => BTreeMap::new(),
    };
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    let mut clips: BTreeMap<String, Clip> = BTreeMap::new();
    for (file_index, file) in scenario.annotations.iter().enumerate() {
        for line in super::jsonl_lines(file)? {
            let reject = |item: String, error: String| line.reject(STAGE, item, error);
            let (vid_name, descs, entry, ts) = match parse_line(&line.text) {
                Ok(v) => v,
                Err(e) => {
                    result.rejects.push(reject(
                        format!("line {}", line.number),
                        format!("malformed line: {e}"),
                    ));
                    continue;
                }
            };
            let clip = clips.entry(vid_name).or_insert_with(|| Clip {
                descs: Vec::new(),
                records: Vec::new(),
                at: line.at.clone(),
                times: Vec::new(),
            });
            clip.descs.extend(descs);
            clip.records.push(SourceRecord {
                position: SourceRecord::position(file_index, line.number - 1),
                entry,
            });
            clip.times.extend(ts.map(|[s, e]| (s + e) / 2.0));
        }
    }
    let original = scenario.config.corpus.tvc_frames == TvcFrames::Original;
    // Raw clips are probed (header only) for their duration, in parallel.
    let durations: BTreeMap<&str, std::result::Result<f64, String>> = if original {
        clips
            .keys()
            .filter(|name| !folders.contains_key(*name))
            .filter_map(|name| Some((name.as_str(), scenario.media.join(videos.get(name)?))))
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(name, full)| (name, probe_duration(&full)))
            .collect()
    } else {
        BTreeMap::new()
    };
    for (vid_name, clip) in &clips {
        let mut annotation = json!({
            "vid_name": vid_name,
            "descs": clip.descs.iter().map(|d| json!({"desc": d})).collect::<Vec<_>>(),
        });
        if let (Some(dir), Some(rel)) = (&scenario.subtitles, subtitles.get(vid_name)) {
            match read_srt(&dir.join(rel)) {
                Ok(subs) => {
                    annotation["subtitles"] = subs
                        .iter()
                        .map(|s| json!({"start": s.start, "end": s.end, "text": s.text}))
                        .collect();
                }
                Err((at, error)) => result.rejects.push(Reject {
                    stage: STAGE.into(),
                    item: vid_name.clone(),
                    path: at,
                    error: format!(
                        "malformed subtitles: {error}; the clip goes on without subtitles"
                    ),
                }),
            }
        }
        let unit_media = if let Some(folder) = folders.get(vid_name) {
            let show = Some(folder.show.as_str())
                .filter(|s| !s.is_empty())
                .or_else(|| clip_show(vid_name));
            let prefix = key_prefix(vid_name, show);
            let items = select_frames(folder.frames.len())
                .into_iter()
                .map(|i| {
                    let rel = &folder.frames[i];
                    let stem = rel.file_stem().unwrap_or_default().to_string_lossy();
                    ImageItem {
                        path: media.join(rel),
                        key: format!("{prefix}_{stem}"),
                    }
                })
                .collect();
            UnitMedia::Images { items }
        } else if let Some(video) = videos.get(vid_name) {
            let prefix = key_prefix(vid_name, clip_show(vid_name));
            let chosen = match durations.get(vid_name.as_str()) {
                None => Vec::new(),
                Some(Ok(d)) => original_frames(*d, &prefix),
                Some(Err(e)) => {
                    result.rejects.push(Reject {
                        stage: STAGE.into(),
                        item: vid_name.clone(),
                        path: scenario.media.join(video).display().to_string(),
                        error: format!(
                            "cannot read the clip's duration for tvc_frames = \"original\": {e}"
                        ),
                    });
                    continue;
                }
            };
            UnitMedia::Video {
                path: media.join(video),
                start: None,
                end: None,
                key_prefix: prefix,
                key_width: 5,
                segments: Vec::new(),
                chosen,
            }
        } else {
            let reject = Reject {
                stage: STAGE.into(),
                item: vid_name.clone(),
                path: clip.at.clone(),
                error: format!(
                    "no frame folder {{show}}_frames/{vid_name}/ with images and no video \
                     {vid_name}.* under {}",
                    scenario.media.display()
                ),
            };
            let expected = format!(
                "{m}/{{show}}_frames/{vid_name}/ or {m}/**/{vid_name}.*",
                m = media.display()
            );
            let unit = Unit {
                id: vid_name.clone(),
                source: clip.at.clone(),
                media: UnitMedia::Missing { expected },
                times: Vec::new(),
                annotation,
                records: clip.records.clone(),
            };
            result.media_missing(scenario, reject, unit);
            continue;
        };
        // Moments matter to the `at` policy of video units only; image units keep none, as
        // before raw clips existed.
        let times = match unit_media {
            UnitMedia::Video { .. } => clip.times.clone(),
            _ => Vec::new(),
        };
        result.units.push(Unit {
            id: vid_name.clone(),
            source: clip.at.clone(),
            media: unit_media,
            times,
            annotation,
            records: clip.records.clone(),
        });
    }
    let media_clips: BTreeSet<&String> = folders.keys().chain(videos.keys()).collect();
    result.unannotated = media_clips
        .into_iter()
        .filter(|k| !clips.contains_key(*k))
        .count() as u64;
    Ok(result)
}

/// The show of a raw clip, from its name alone: the first `_`-separated token when it is one
/// of [`SHOWS`], else `bbt` for names starting with `s` and two digits (TVQA names Big Bang
/// Theory clips `s02e14_seg02_clip_02`), else none.
pub fn clip_show(vid_name: &str) -> Option<&'static str> {
    let first = vid_name.split('_').next().unwrap_or_default();
    if let Some(show) = SHOWS.iter().find(|s| **s == first) {
        return Some(show);
    }
    let b = vid_name.as_bytes();
    (b.len() >= 3 && b[0] == b's' && b[1].is_ascii_digit() && b[2].is_ascii_digit())
        .then_some("bbt")
}

/// The id key prefix of a clip: its name when it already starts with `{show}_` (or the show
/// is unknown), else `{show}_{vid_name}`.
pub fn key_prefix(vid_name: &str, show: Option<&str>) -> String {
    match show {
        Some(show) if !vid_name.starts_with(&format!("{show}_")) => format!("{show}_{vid_name}"),
        _ => vid_name.to_string(),
    }
}

/// The frames the original rule keeps from a raw clip of `duration_s` seconds, on the grid of
/// an `ffmpeg -vf fps=3` extraction: n = max(1, round(3 d)) frames, frame k at k / 3 s, file
/// stem `{k+1:05}`; keys `{prefix}_{k+1:05}`.
pub fn original_frames(duration_s: f64, prefix: &str) -> Vec<ChosenFrame> {
    let n = ((duration_s * 3.0).round() as usize).max(1);
    select_frames(n)
        .into_iter()
        .map(|k| ChosenFrame {
            time_s: k as f64 / 3.0,
            key: format!("{prefix}_{:05}", k + 1),
        })
        .collect()
}

/// A raw clip's duration from its header; the error names the file.
fn probe_duration(full: &Path) -> std::result::Result<f64, String> {
    let info = crate::video::probe(full).map_err(|e| e.to_string())?;
    match info.duration_s {
        Some(d) if d.is_finite() && d > 0.0 => Ok(d),
        _ => Err(format!("{}: the header gives no duration", full.display())),
    }
}

/// Frame folders by clip name. A folder counts when it holds images directly; its show is the
/// parent folder's name without `_frames`. The same clip name in two shows' folders keeps the
/// first in sorted order. `files`: the media listing ([`list_files`], sorted).
fn index_frame_folders(files: &[(PathBuf, u64)]) -> BTreeMap<String, FrameFolder> {
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for (rel, _) in files {
        if is_image(rel) {
            if let Some(parent) = rel.parent() {
                folders
                    .entry(parent.to_path_buf())
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    let mut by_clip = BTreeMap::new();
    for (dir, mut frames) in folders {
        let Some(clip) = dir.file_name() else {
            continue;
        };
        let show = dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let show = show.strip_suffix("_frames").unwrap_or(&show).to_string();
        frames.sort();
        by_clip
            .entry(clip.to_string_lossy().into_owned())
            .or_insert(FrameFolder { show, frames });
    }
    by_clip
}

/// `.srt` files (any case) under `dir` by stem, relative to `dir`; the first in sorted order
/// when a stem is in several folders.
fn index_subtitles(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut by_stem = BTreeMap::new();
    for (rel, _) in list_files(dir)? {
        let is_srt = rel
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("srt"));
        if let (true, Some(stem)) = (is_srt, rel.file_stem()) {
            by_stem
                .entry(stem.to_string_lossy().into_owned())
                .or_insert(rel);
        }
    }
    Ok(by_stem)
}

/// One subtitle of a SubRip file.
#[derive(Debug, Clone, PartialEq)]
pub struct Subtitle {
    /// Seconds from the clip's start.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// Reads and parses one `.srt` file; the error is (`file:line`, what is wrong).
fn read_srt(path: &Path) -> std::result::Result<Vec<Subtitle>, (String, String)> {
    let bytes = std::fs::read(path).map_err(|e| (path.display().to_string(), e.to_string()))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        // Older subtitle files are often Latin-1.
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse_srt(&text).map_err(|(line, e)| (format!("{}:{line}", path.display()), e))
}

/// Parses SubRip text: blocks of an index line, a time line `HH:MM:SS,mmm --> HH:MM:SS,mmm`
/// (`.` accepted as the decimal separator; anything after the end time, such as position
/// hints, is ignored), then text lines up to a blank line or the end. A leading BOM and CRLF
/// line ends are accepted; the index line may be missing. Text lines are trimmed and joined
/// with a space; blocks without text are skipped. The error is (1-based line, what is wrong).
pub fn parse_srt(text: &str) -> std::result::Result<Vec<Subtitle>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let blank = |i: usize| lines.get(i).is_none_or(|l| l.trim().is_empty());
    let mut subs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if blank(i) {
            i += 1;
            continue;
        }
        // The time line is this one (no index) or the next.
        let first = lines[i].trim();
        let t = if first.contains("-->") {
            i
        } else if first.bytes().all(|b| b.is_ascii_digit()) {
            i + 1
        } else {
            return Err((
                i + 1,
                format!("expected a subtitle number or a time line, found `{first}`"),
            ));
        };
        let Some(time_line) = lines.get(t).filter(|l| !l.trim().is_empty()) else {
            return Err((i + 1, format!("subtitle number {first} has no time line")));
        };
        let (start, end) = parse_time_line(time_line).map_err(|e| (t + 1, e))?;
        let mut j = t + 1;
        let mut parts = Vec::new();
        while !blank(j) {
            parts.push(lines[j].trim());
            j += 1;
        }
        let text = parts.join(" ").trim().to_string();
        if !text.is_empty() {
            subs.push(Subtitle {
                start: start as f64 / 1000.0,
                end: end as f64 / 1000.0,
                text,
            });
        }
        i = j;
    }
    Ok(subs)
}

/// `HH:MM:SS,mmm --> HH:MM:SS,mmm` to (start, end) in milliseconds.
fn parse_time_line(line: &str) -> std::result::Result<(u64, u64), String> {
    let bad = || {
        format!(
            "bad time line `{}`: expected `HH:MM:SS,mmm --> HH:MM:SS,mmm`",
            line.trim()
        )
    };
    let (a, b) = line.split_once("-->").ok_or_else(bad)?;
    let b = b.split_whitespace().next().unwrap_or_default();
    let start = parse_srt_time(a.trim()).ok_or_else(bad)?;
    let end = parse_srt_time(b).ok_or_else(bad)?;
    if end < start {
        return Err(format!(
            "the subtitle ends before it starts: `{}`",
            line.trim()
        ));
    }
    Ok((start, end))
}

/// `HH:MM:SS,mmm` (or `.mmm`; 1 to 3 decimals) to milliseconds.
fn parse_srt_time(s: &str) -> Option<u64> {
    let (hms, frac) = s.split_once([',', '.'])?;
    let digits = |p: &str, max_len: usize| -> Option<u64> {
        (!p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let mut parts = hms.split(':');
    let h = digits(parts.next()?, 4)?;
    let m = digits(parts.next()?, 2)?;
    let sec = digits(parts.next()?, 2)?;
    if parts.next().is_some() || m >= 60 || sec >= 60 {
        return None;
    }
    let ms = digits(frac, 3)? * 10u64.pow(3 - frac.len() as u32);
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// The original converter's choice among `n` sorted frames: stride = max(1, n / 16),
/// start = stride / 2, then every stride-th index.
pub fn select_frames(n: usize) -> Vec<usize> {
    let stride = (n / 16).max(1);
    (stride / 2..n).step_by(stride).collect()
}

/// A line: clip name, descriptions, the line as Syphus reads it, moment.
type Line = (String, Vec<String>, Value, Option<[f64; 2]>);

/// A clip name, its descriptions (trimmed, empty ones left out), the line as Syphus's loader
/// reads it (`{"vid_name", "descs": [{"desc"}]}` with the descriptions as written; a TVR
/// line's one `desc` becomes the list) and its moment `ts` (when a valid `[start, end]`).
fn parse_line(line: &str) -> std::result::Result<Line, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let vid_name = v["vid_name"]
        .as_str()
        .filter(|s| !s.trim().is_empty() && !s.contains(['/', '\\']))
        .ok_or("`vid_name` missing or not a clip name")?
        .trim()
        .to_string();
    let raw: Vec<String> = if let Some(list) = v["descs"].as_array() {
        list.iter()
            .enumerate()
            .map(|(i, d)| {
                d["desc"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("descs[{i}].desc missing or not a string"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else if let Some(d) = v["desc"].as_str() {
        vec![d.to_string()]
    } else {
        return Err("neither `descs` (TVC) nor `desc` (TVR)".into());
    };
    let descs: Vec<String> = raw
        .iter()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if descs.is_empty() {
        return Err("no description".into());
    }
    let ts = v["ts"]
        .as_array()
        .filter(|p| p.len() == 2)
        .and_then(|p| Some([p[0].as_f64()?, p[1].as_f64()?]))
        .filter(|[s, e]| s.is_finite() && e.is_finite() && 0.0 <= *s && s <= e);
    let entry = json!({
        "vid_name": vid_name,
        "descs": raw.iter().map(|d| json!({"desc": d})).collect::<Vec<_>>(),
    });
    Ok((vid_name, descs, entry, ts))
}

/// Syphus's TVC message: `1. desc` lines.
pub fn syphus_message(annotation: &Value) -> String {
    annotation["descs"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, d)| format!("{}. {}", i + 1, d["desc"].as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_selection_rule() {
        assert_eq!(select_frames(3), vec![0, 1, 2]);
        assert_eq!(select_frames(16), (0..16).collect::<Vec<_>>());
        assert_eq!(select_frames(32), (1..32).step_by(2).collect::<Vec<_>>());
        // n = 40: stride 2, start 1 -> 20 frames (more than 16, as in the original).
        assert_eq!(select_frames(40).len(), 20);
        assert_eq!(select_frames(183)[..3], [5, 16, 27]);
        assert!(select_frames(0).is_empty());
    }

    #[test]
    fn lines_of_both_shapes() {
        let (v, d, entry, ts) =
            parse_line(r#"{"vid_name": "a_s01", "descs": [{"desc": " x "}, {"desc": "y"}]}"#)
                .unwrap();
        assert_eq!((v.as_str(), d), ("a_s01", vec!["x".into(), "y".into()]));
        assert_eq!(ts, None);
        // The line as Syphus reads it keeps the descriptions as written.
        assert_eq!(
            entry,
            json!({"vid_name": "a_s01", "descs": [{"desc": " x "}, {"desc": "y"}]})
        );
        assert_eq!(syphus_message(&entry), "1.  x \n2. y");
        let (_, d, entry, ts) =
            parse_line(r#"{"vid_name": "a", "desc": "z", "ts": [0, 1.5]}"#).unwrap();
        assert_eq!((d, ts), (vec!["z".to_string()], Some([0.0, 1.5])));
        assert_eq!(entry, json!({"vid_name": "a", "descs": [{"desc": "z"}]}));
        // A moment that is not a span is ignored, not an error.
        let (_, _, _, ts) = parse_line(r#"{"vid_name": "a", "desc": "z", "ts": [3, 1]}"#).unwrap();
        assert_eq!(ts, None);
        assert!(parse_line("{").unwrap_err().contains("not JSON"));
        assert!(parse_line(r#"{"desc": "z"}"#)
            .unwrap_err()
            .contains("vid_name"));
        assert!(parse_line(r#"{"vid_name": "a"}"#)
            .unwrap_err()
            .contains("descs"));
    }

    #[test]
    fn message_numbers_lines() {
        let ann = json!({"vid_name": "x", "descs": [{"desc": "A sits."}, {"desc": "B runs."}]});
        assert_eq!(syphus_message(&ann), "1. A sits.\n2. B runs.");
    }

    #[test]
    fn scan_merges_clips_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        for (folder, n) in [
            ("friends_frames/friends_s01_clip_01", 20),
            ("bbt_frames/s02_clip_02", 3),
        ] {
            let d = dir.path().join("frames").join(folder);
            std::fs::create_dir_all(&d).unwrap();
            for i in 1..=n {
                std::fs::write(d.join(format!("{i:05}.jpg")), b"x").unwrap();
            }
        }
        std::fs::write(
            dir.path().join("tvc.jsonl"),
            concat!(
                r#"{"vid_name": "friends_s01_clip_01", "descs": [{"desc": "one"}]}"#,
                "\n",
                r#"{"vid_name": "s02_clip_02", "desc": "two"}"#,
                "\n",
                r#"{"vid_name": "friends_s01_clip_01", "descs": [{"desc": "three"}]}"#,
                "\n",
                r#"{"vid_name": "s02_clip_02", "desc": "two"}"#,
                "\n",
                r#"{"vid_name": "missing_clip", "desc": "four"}"#,
                "\n",
                "not json\n",
            ),
        )
        .unwrap();
        let s = crate::corpus::tests::scenario(dir.path(), "TVC", &["tvc.jsonl"], "frames", "");
        let r = scan(&s).unwrap();
        assert_eq!(r.units.len(), 2);
        let u = &r.units[0];
        assert_eq!(u.id, "friends_s01_clip_01");
        assert_eq!(syphus_message(&u.annotation), "1. one\n2. three");
        // Each line stays a record of its own, in file order (one Syphus query each).
        let lines: Vec<(u64, String)> = u
            .records
            .iter()
            .map(|r| (r.position, syphus_message(&r.entry)))
            .collect();
        assert_eq!(lines, [(0, "1. one".into()), (2, "1. three".into())]);
        // The repeated line is a second record of its clip, not a reject.
        assert_eq!(r.units[1].records.len(), 2);
        let UnitMedia::Images { items } = &u.media else {
            panic!()
        };
        assert_eq!(items.len(), 20);
        assert_eq!(items[0].key, "friends_s01_clip_01_00001");
        let UnitMedia::Images { items } = &r.units[1].media else {
            panic!()
        };
        assert_eq!(items[2].key, "bbt_s02_clip_02_00003");
        let errors: Vec<&str> = r.rejects.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(r.rejects.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("malformed")));
        assert!(errors.iter().any(|e| e.contains("no frame folder")));
        assert!(r.rejects.iter().all(|r| r.path.contains("tvc.jsonl")));
    }

    #[test]
    fn show_and_prefix_rule() {
        assert_eq!(clip_show("friends_s01e03_seg02_clip_19"), Some("friends"));
        assert_eq!(clip_show("met_s06e19_seg02_clip_12"), Some("met"));
        assert_eq!(clip_show("s02e14_seg02_clip_02"), Some("bbt"));
        assert_eq!(clip_show("bbt_s02e14_seg02_clip_02"), Some("bbt"));
        assert_eq!(clip_show("friendsx_s01"), None);
        assert_eq!(clip_show("season_1"), None);
        assert_eq!(clip_show("s1e01"), None);
        assert_eq!(
            key_prefix("friends_s01e03_seg02_clip_19", Some("friends")),
            "friends_s01e03_seg02_clip_19"
        );
        assert_eq!(
            key_prefix("s02e14_seg02_clip_02", Some("bbt")),
            "bbt_s02e14_seg02_clip_02"
        );
        assert_eq!(key_prefix("my_clip", None), "my_clip");
        // A frame folder's show wins over the name: the same prefix as before raw clips.
        assert_eq!(key_prefix("s01_clip", Some("castle")), "castle_s01_clip");
    }

    #[test]
    fn original_frames_on_the_3_fps_grid() {
        // 7 s: 21 frames, stride 1: every one, files 00001..00021 at k / 3 s.
        let f = original_frames(7.0, "p");
        assert_eq!(f.len(), 21);
        assert_eq!((f[0].time_s, f[0].key.as_str()), (0.0, "p_00001"));
        assert_eq!(f[20].key, "p_00021");
        assert!((f[20].time_s - 20.0 / 3.0).abs() < 1e-12);
        // 61.46 s: round(184.38) = 184 frames, stride 11, start 5: indices 5, 16, ... 181.
        let f = original_frames(61.46, "friends_s01e03_seg02_clip_19");
        let want = select_frames(184);
        assert_eq!(f.len(), want.len());
        assert_eq!(f.len(), 17);
        assert_eq!(f[0].key, "friends_s01e03_seg02_clip_19_00006");
        assert!((f[0].time_s - 5.0 / 3.0).abs() < 1e-12);
        assert_eq!(f[16].key, "friends_s01e03_seg02_clip_19_00182");
        // 6.5 s: round(19.5) = 20 (half away from zero).
        assert_eq!(original_frames(6.5, "p").len(), 20);
        // A very short clip still gives its first frame.
        let f = original_frames(0.1, "p");
        assert_eq!(
            f,
            vec![ChosenFrame {
                time_s: 0.0,
                key: "p_00001".into()
            }]
        );
    }

    #[test]
    fn srt_good_file() {
        let text = "1\n00:00:01,500 --> 00:00:03,000\n(Sheldon:) Hello.\n\n2\n00:01:02.25 --> 01:00:04,007 X1:10 X2:20\n  Two  \nlines \n\n\n3\n00:00:05,000 --> 00:00:05,000\n\n";
        let subs = parse_srt(text).unwrap();
        assert_eq!(
            subs,
            vec![
                Subtitle {
                    start: 1.5,
                    end: 3.0,
                    text: "(Sheldon:) Hello.".into()
                },
                Subtitle {
                    start: 62.25,
                    end: 3604.007,
                    text: "Two lines".into()
                },
            ]
        );
        assert_eq!(parse_srt("").unwrap(), vec![]);
    }

    #[test]
    fn srt_crlf_bom_and_no_index() {
        let text = "\u{feff}1\r\n00:00:00,000 --> 00:00:02,100\r\n(Penny:) Hi.\r\n\r\n00:00:02,100 --> 00:00:04,000\r\nBye.\r\n";
        let subs = parse_srt(text).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].text, "(Penny:) Hi.");
        assert_eq!((subs[1].start, subs[1].end), (2.1, 4.0));
    }

    #[test]
    fn srt_malformed_lines_are_located() {
        let (line, e) = parse_srt(
            "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:0x,000 --> 00:00:03,000\nB\n",
        )
        .unwrap_err();
        assert_eq!(line, 6);
        assert!(
            e.contains("bad time line `00:00:0x,000 --> 00:00:03,000`"),
            "{e}"
        );
        let (line, e) = parse_srt("1\n00:00:04,000 --> 00:00:03,000\nA\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(e.contains("ends before it starts"), "{e}");
        let (line, e) = parse_srt("1\nHello\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(e.contains("bad time line `Hello`"), "{e}");
        let (line, e) = parse_srt("1\n00:00:01,000 -> 00:00:02,000\nA\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(e.contains("bad time line"), "{e}");
        let (line, e) = parse_srt("1\n00:00:01,000 --> 00:00:02,000\nA\n\n7").unwrap_err();
        assert_eq!(line, 5, "a number at the end with nothing after it");
        assert!(e.contains("no time line"), "{e}");
        let (line, e) =
            parse_srt("1\n00:00:01,000 --> 00:00:02,000\nA\n\nstray text\n").unwrap_err();
        assert_eq!(line, 5);
        assert!(e.contains("expected a subtitle number"), "{e}");
        assert!(parse_srt("1\n00:61:00,000 --> 01:00:00,000\nA").is_err());
        assert!(parse_srt("1\n00:00:01 --> 00:00:02,000\nA").is_err());
    }

    #[test]
    fn srt_without_blank_line_at_the_end() {
        let subs = parse_srt("1\n00:00:01,000 --> 00:00:02,000\nLast line").unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].text, "Last line");
    }

    fn clip(path: &Path, seconds: u32) {
        crate::testkit::test_clip(path, seconds);
    }

    #[test]
    fn scan_raw_clips_subtitles_and_missing_media() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        clip(&media.join("raw/friends_s01_clip_01.mp4"), 7);
        std::fs::create_dir_all(media.join("raw/bbt")).unwrap();
        std::fs::copy(
            media.join("raw/friends_s01_clip_01.mp4"),
            media.join("raw/bbt/s02e03_seg01_clip_00.mp4"),
        )
        .unwrap();
        // Both a frame folder and a video: the folder wins.
        let folder = media.join("castle_frames/castle_s01_clip_03");
        std::fs::create_dir_all(&folder).unwrap();
        for i in 1..=4 {
            std::fs::write(folder.join(format!("{i:05}.jpg")), b"x").unwrap();
        }
        std::fs::copy(
            media.join("raw/friends_s01_clip_01.mp4"),
            media.join("raw/castle_s01_clip_03.mp4"),
        )
        .unwrap();
        std::fs::write(media.join("raw/friends_s01_clip_04.mp4"), b"not a video").unwrap();
        let subs = dir.path().join("subs");
        std::fs::create_dir_all(subs.join("season1")).unwrap();
        std::fs::write(
            subs.join("season1/friends_s01_clip_01.srt"),
            "1\n00:00:00,500 --> 00:00:02,000\n(Ross:) Hi.\n",
        )
        .unwrap();
        std::fs::write(
            subs.join("castle_s01_clip_03.srt"),
            "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:09,000 --> 00:00:03,000\nB\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("tvc.jsonl"),
            [
                r#"{"vid_name": "friends_s01_clip_01", "ts": [1, 3], "descs": [{"desc": "one"}]}"#,
                r#"{"vid_name": "s02e03_seg01_clip_00", "desc": "two", "ts": [2, 4]}"#,
                r#"{"vid_name": "castle_s01_clip_03", "desc": "three"}"#,
                r#"{"vid_name": "friends_s01_clip_04", "desc": "four"}"#,
                r#"{"vid_name": "met_s01_clip_05", "desc": "five"}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let extra = "[corpus]\ntvc_frames = \"original\"\nsubtitles = \"subs\"\n[metadata]\nrequire_media = false";
        let s = crate::corpus::tests::scenario(dir.path(), "TVC", &["tvc.jsonl"], "media", extra);
        let r = scan(&s).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        // The unreadable clip is dropped; the missing one stays, annotation only.
        assert_eq!(
            ids,
            [
                "castle_s01_clip_03",
                "friends_s01_clip_01",
                "met_s01_clip_05",
                "s02e03_seg01_clip_00"
            ]
        );
        let unit = |id: &str| r.units.iter().find(|u| u.id == id).unwrap();

        let u = unit("friends_s01_clip_01");
        let UnitMedia::Video {
            path,
            key_prefix,
            key_width,
            chosen,
            ..
        } = &u.media
        else {
            panic!("{:?}", u.media)
        };
        assert_eq!(path, Path::new("media/raw/friends_s01_clip_01.mp4"));
        assert_eq!(
            (key_prefix.as_str(), *key_width),
            ("friends_s01_clip_01", 5)
        );
        assert_eq!(chosen, &original_frames(7.0, "friends_s01_clip_01"));
        assert_eq!(u.times, vec![2.0]);
        assert_eq!(
            u.annotation["subtitles"],
            json!([{"start": 0.5, "end": 2.0, "text": "(Ross:) Hi."}])
        );
        assert_eq!(syphus_message(&u.annotation), "1. one");

        let u = unit("s02e03_seg01_clip_00");
        let UnitMedia::Video {
            key_prefix, chosen, ..
        } = &u.media
        else {
            panic!()
        };
        assert_eq!(key_prefix, "bbt_s02e03_seg01_clip_00");
        assert_eq!(chosen[3].key, "bbt_s02e03_seg01_clip_00_00004");
        assert!(u.annotation.get("subtitles").is_none());

        let u = unit("castle_s01_clip_03");
        let UnitMedia::Images { items } = &u.media else {
            panic!()
        };
        assert_eq!(items[0].key, "castle_s01_clip_03_00001");
        assert!(u.times.is_empty());
        assert!(u.annotation.get("subtitles").is_none(), "malformed: none");

        let u = unit("met_s01_clip_05");
        let UnitMedia::Missing { expected } = &u.media else {
            panic!()
        };
        assert!(expected.contains("met_s01_clip_05.*"), "{expected}");

        assert_eq!(r.rejects.len(), 3, "{:?}", r.rejects);
        let find = |item: &str| r.rejects.iter().find(|r| r.item == item).unwrap();
        let bad = find("friends_s01_clip_04");
        assert!(bad.path.ends_with("raw/friends_s01_clip_04.mp4"), "{bad:?}");
        assert!(bad.error.contains("friends_s01_clip_04.mp4"), "{bad:?}");
        let srt = find("castle_s01_clip_03");
        assert!(
            srt.path.ends_with("subs/castle_s01_clip_03.srt:6"),
            "{srt:?}"
        );
        assert!(srt.error.contains("ends before it starts"), "{srt:?}");
        let missing = find("met_s01_clip_05");
        assert!(missing.path.ends_with("tvc.jsonl:5"), "{missing:?}");
        assert!(missing.error.contains("no frame folder"), "{missing:?}");
        assert_eq!(r.unannotated, 0);

        // The default keeps the missing clip out.
        let extra = "[corpus]\ntvc_frames = \"original\"";
        let s = crate::corpus::tests::scenario(dir.path(), "TVC", &["tvc.jsonl"], "media", extra);
        let r = scan(&s).unwrap();
        assert_eq!(r.units.len(), 3);
        assert!(r
            .units
            .iter()
            .all(|u| u.annotation.get("subtitles").is_none()));

        // `policy`: nothing probed, nothing chosen; the policy samples the videos.
        let extra = "[corpus]\ntvc_frames = \"policy\"";
        let s = crate::corpus::tests::scenario(dir.path(), "TVC", &["tvc.jsonl"], "media", extra);
        let r = scan(&s).unwrap();
        assert_eq!(r.units.len(), 4, "the unreadable clip is left to keyframes");
        for u in &r.units {
            if let UnitMedia::Video {
                chosen, key_width, ..
            } = &u.media
            {
                assert!(chosen.is_empty());
                assert_eq!(*key_width, 5);
            }
        }
    }
}
