//! DC: ActivityNet Captions (`train.json`, `val_1.json`, `val_2.json`) with the videos in any
//! container (`v_xxx.mp4`, `.mkv`, `.webm`, ...). One unit per video; frame ids
//! `DC_IMG_{video stem}_{i:04}`.
//!
//! `[corpus] frames_from = "segments"` samples each caption segment on its own (the keyframe
//! policy applied to `[start, end]` of every segment, overlaps kept once) instead of the whole
//! video; the unit and its ids stay the same.
//!
//! Annotation file: `{"v_xxx": {"duration": 82.7, "timestamps": [[s, e], ...],
//! "sentences": [...]}, ...}`. The Syphus entry of a unit is `{"timestamps", "sentences"}`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{index_videos, ScanResult};
use crate::config::{FramesFrom, Scenario};
use crate::error::Result;
use crate::model::{Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let videos = index_videos(&scenario.media)?;
    let media_rel = scenario
        .media
        .strip_prefix(&scenario.root)
        .unwrap_or(&scenario.media)
        .to_path_buf();
    let mut result = ScanResult::default();
    // video id -> annotation file it came from, to report duplicates across files.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in &scenario.annotations {
        let file_name = file.display().to_string();
        let entries =
            &super::read_json_object(file, "an object {video_id: {timestamps, sentences}}")?;
        for (video_id, entry) in entries {
            let reject = |error: String| Reject {
                stage: STAGE.into(),
                item: video_id.clone(),
                path: file_name.clone(),
                error,
            };
            if let Some(first) = seen.get(video_id) {
                result.rejects.push(reject(format!(
                    "duplicate video id: already annotated in {first}; this entry is ignored"
                )));
                continue;
            }
            seen.insert(video_id.clone(), file_name.clone());
            let (timestamps, sentences) = match parse_entry(entry) {
                Ok(v) => v,
                Err(e) => {
                    result
                        .rejects
                        .push(reject(format!("malformed annotation: {e}")));
                    continue;
                }
            };
            let annotation = serde_json::json!({
                "timestamps": timestamps,
                "sentences": sentences,
            });
            let Some(video) = videos.get(video_id) else {
                let missing = Unit {
                    id: video_id.clone(),
                    source: file_name.clone(),
                    media: UnitMedia::Missing {
                        expected: media_rel
                            .join(format!("{video_id}.*"))
                            .display()
                            .to_string(),
                    },
                    times: Vec::new(),
                    annotation,
                };
                result.media_missing(
                    scenario,
                    reject(format!(
                        "no video named {video_id}.* under {}",
                        scenario.media.display()
                    )),
                    missing,
                );
                continue;
            };
            let times = timestamps.iter().map(|[s, e]| (s + e) / 2.0).collect();
            result.units.push(Unit {
                id: video_id.clone(),
                source: file_name.clone(),
                media: UnitMedia::Video {
                    path: media_rel.join(video),
                    start: None,
                    end: None,
                    key_prefix: video
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| video_id.clone()),
                    key_width: 4,
                    segments: match scenario.config.corpus.frames_from {
                        FramesFrom::Video => Vec::new(),
                        FramesFrom::Segments => timestamps.clone(),
                    },
                    chosen: Vec::new(),
                },
                times,
                annotation,
            });
        }
    }
    let annotated: std::collections::BTreeSet<&String> = seen.keys().collect();
    result.unannotated = videos.keys().filter(|k| !annotated.contains(k)).count() as u64;
    result.units.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(result)
}

type Entry = (Vec<[f64; 2]>, Vec<String>);

fn parse_entry(entry: &Value) -> std::result::Result<Entry, String> {
    let ts = entry
        .get("timestamps")
        .and_then(Value::as_array)
        .ok_or("`timestamps` missing or not a list")?;
    let sentences = entry
        .get("sentences")
        .and_then(Value::as_array)
        .ok_or("`sentences` missing or not a list")?;
    if ts.len() != sentences.len() {
        return Err(format!(
            "{} timestamps but {} sentences",
            ts.len(),
            sentences.len()
        ));
    }
    let mut timestamps = Vec::with_capacity(ts.len());
    for (i, pair) in ts.iter().enumerate() {
        let p = pair
            .as_array()
            .filter(|p| p.len() == 2)
            .and_then(|p| Some([p[0].as_f64()?, p[1].as_f64()?]))
            .ok_or_else(|| format!("timestamps[{i}] is not [start, end]"))?;
        if !(p[0].is_finite() && p[1].is_finite()) || p[0] < 0.0 || p[1] < p[0] {
            return Err(format!(
                "timestamps[{i}] = [{}, {}] is not a valid span",
                p[0], p[1]
            ));
        }
        timestamps.push(p);
    }
    let sentences = super::trimmed_strings(sentences, "sentences")?;
    Ok((timestamps, sentences))
}

/// The user message Syphus sends for one DC unit: `timestamps: [[0, 19], [17, 60]]` (rounded
/// to whole seconds, ties to even as Python's `round`) newline `sentences: ["...", ...]`.
pub fn syphus_message(annotation: &Value) -> String {
    let ts: Vec<String> = annotation["timestamps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let s = p[0].as_f64().unwrap_or(0.0).round_ties_even() as i64;
                    let e = p[1].as_f64().unwrap_or(0.0).round_ties_even() as i64;
                    format!("[{s}, {e}]")
                })
                .collect()
        })
        .unwrap_or_default();
    let sentences: Vec<String> = annotation["sentences"]
        .as_array()
        .map(|a| a.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    format!(
        "timestamps: [{}]\nsentences: [{}]",
        ts.join(", "),
        sentences.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_checks() {
        let ok = serde_json::json!({"timestamps": [[0.5, 19.2], [17, 60]], "sentences": ["A man.", " B "]});
        let (ts, s) = parse_entry(&ok).unwrap();
        assert_eq!(ts, vec![[0.5, 19.2], [17.0, 60.0]]);
        assert_eq!(s, vec!["A man.", "B"]);
        let bad = serde_json::json!({"timestamps": [[0, 1]], "sentences": []});
        assert!(parse_entry(&bad)
            .unwrap_err()
            .contains("1 timestamps but 0"));
        let bad = serde_json::json!({"timestamps": [[5, 1]], "sentences": ["x"]});
        assert!(parse_entry(&bad).unwrap_err().contains("not a valid span"));
        let bad = serde_json::json!({"sentences": ["x"]});
        assert!(parse_entry(&bad).unwrap_err().contains("timestamps"));
    }

    #[test]
    fn message_matches_syphus_format() {
        let ann = serde_json::json!({"timestamps": [[0.4, 19.6], [17, 60]], "sentences": ["A \"man\".", "B"]});
        assert_eq!(
            syphus_message(&ann),
            "timestamps: [[0, 20], [17, 60]]\nsentences: [\"A \\\"man\\\".\", \"B\"]"
        );
    }
}
