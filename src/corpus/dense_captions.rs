//! DC: ActivityNet Captions (`train.json`, `val_1.json`, `val_2.json`) with the videos in any
//! container (`v_xxx.mp4`, `.mkv`, `.webm`, ...). One unit per video; frame ids
//! `DC_IMG_{video stem}_{i:04}`.
//!
//! `[corpus] frames_from = "segments"` samples each caption segment on its own (the keyframe
//! policy applied to `[start, end]` of every segment, overlaps kept once) instead of the whole
//! video; the unit and its ids stay the same.
//!
//! Annotation file: `{"v_xxx": {"duration": 82.7, "timestamps": [[s, e], ...],
//! "sentences": [...]}, ...}`. A unit's annotation is `{"timestamps", "sentences"}` (sentences
//! trimmed; all records' when a video is annotated in several files, as ActivityNet's `val_1`
//! and `val_2` are); each entry is also kept as written, one Syphus query each, in file order.
//! An entry equal to one of the same video in an earlier file is a duplicate and rejected.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{index_videos, ScanResult};
use crate::config::{FramesFrom, Scenario};
use crate::error::Result;
use crate::model::{Reject, SourceRecord, Unit, UnitMedia};

const STAGE: &str = "scan";

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let videos = index_videos(&scenario.media)?;
    let media_rel = scenario
        .media
        .strip_prefix(&scenario.root)
        .unwrap_or(&scenario.media)
        .to_path_buf();
    let mut result = ScanResult::default();
    // Video id -> its records in file order (file, record, parsed spans and sentences). A
    // video annotated in several files (ActivityNet's val_1 and val_2) keeps them all.
    let mut by_video: BTreeMap<String, Vec<(String, SourceRecord, Entry)>> = BTreeMap::new();
    for (file_index, file) in scenario.annotations.iter().enumerate() {
        let file_name = file.display().to_string();
        let entries =
            super::read_json_object_ordered(file, "an object {video_id: {timestamps, sentences}}")?;
        let mut in_file = std::collections::BTreeSet::new();
        for (n, (video_id, entry)) in entries.into_iter().enumerate() {
            let reject = |error: String| Reject {
                stage: STAGE.into(),
                item: video_id.clone(),
                path: file_name.clone(),
                error,
            };
            if !in_file.insert(video_id.clone()) {
                // JSON readers keep one value per key: Syphus's loader would see only the last.
                result.rejects.push(reject(
                    "the same video id twice in one file: its earlier entry is kept".into(),
                ));
                continue;
            }
            let parsed = match parse_entry(&entry) {
                Ok(v) => v,
                Err(e) => {
                    result
                        .rejects
                        .push(reject(format!("malformed annotation: {e}")));
                    continue;
                }
            };
            let records = by_video.entry(video_id.clone()).or_default();
            if let Some((first, _, _)) = records.iter().find(|(_, r, _)| r.entry == entry) {
                // The same entry in another file (a file given twice): one query is enough.
                result.rejects.push(reject(format!(
                    "duplicate video id: the same entry is already in {first}; ignored"
                )));
                continue;
            }
            let record = SourceRecord {
                position: SourceRecord::position(file_index, n),
                entry,
            };
            records.push((file_name.clone(), record, parsed));
        }
    }
    for (video_id, records) in by_video.iter() {
        let file_name = records[0].0.clone();
        // Every record's spans and sentences, in file order.
        let timestamps: Vec<[f64; 2]> = records
            .iter()
            .flat_map(|(_, _, (t, _))| t.iter().copied())
            .collect();
        let sentences: Vec<&String> = records.iter().flat_map(|(_, _, (_, s))| s).collect();
        let annotation = serde_json::json!({
            "timestamps": timestamps,
            "sentences": sentences,
        });
        let records: Vec<SourceRecord> = records.iter().map(|(_, r, _)| r.clone()).collect();
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
                records,
            };
            result.media_missing(
                scenario,
                Reject {
                    stage: STAGE.into(),
                    item: video_id.clone(),
                    path: file_name.clone(),
                    error: format!(
                        "no video named {video_id}.* under {}",
                        scenario.media.display()
                    ),
                },
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
            records,
        });
    }
    result.unannotated = videos.keys().filter(|k| !by_video.contains_key(*k)).count() as u64;
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

/// The user message Syphus sends for one DC record (`{"timestamps", "sentences"}` as the file
/// wrote it): `timestamps: ` + Python's `str` of the spans rounded to whole seconds (ties to
/// even, as Python's `round`): `[[0, 20], [23, 47]]`, then `\nsentences: ` + Python's
/// `json.dumps` of the sentences untouched (leading spaces kept, non-ASCII as `\uXXXX`).
pub fn syphus_message(entry: &Value) -> String {
    let round = |v: &Value| v.as_f64().unwrap_or(0.0).round_ties_even() as i64;
    let ts: Vec<String> = entry["timestamps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("[{}, {}]", round(&p[0]), round(&p[1])))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "timestamps: [{}]\nsentences: {}",
        ts.join(", "),
        super::py_json_dumps(&entry["sentences"])
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

    #[test]
    fn message_keeps_sentences_as_written_and_rounds_half_to_even() {
        let ann = serde_json::json!({
            "timestamps": [[0.5, 1.5], [2.5, 3.5000001], [12, 24.49]],
            "sentences": ["Caf\u{e9} \u{1F600}.", " A second.", "tab\there\u{7f}"]
        });
        assert_eq!(
            syphus_message(&ann),
            "timestamps: [[0, 2], [2, 4], [12, 24]]\nsentences: [\"Caf\\u00e9 \\ud83d\\ude00.\", \" A second.\", \"tab\\there\\u007f\"]"
        );
        assert_eq!(
            syphus_message(&serde_json::json!({"timestamps": [], "sentences": []})),
            "timestamps: []\nsentences: []"
        );
    }

    #[test]
    fn videos_in_several_files_keep_every_record() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("videos")).unwrap();
        let one = r#"{"v_b": {"timestamps": [[0, 1]], "sentences": ["b1"]},
                      "v_a": {"timestamps": [[0, 2]], "sentences": [" a1"]}}"#;
        let two = r#"{"v_a": {"timestamps": [[1, 3]], "sentences": ["a2"]},
                      "v_c": {"timestamps": [[3, 1]], "sentences": ["bad"]}}"#;
        std::fs::write(dir.path().join("val_1.json"), one).unwrap();
        std::fs::write(dir.path().join("val_2.json"), two).unwrap();
        let s = crate::corpus::tests::scenario(
            dir.path(),
            "DC",
            &["val_1.json", "val_2.json"],
            "videos",
            "[metadata]\nrequire_media = false",
        );
        let r = scan(&s).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["v_a", "v_b"]);
        let a = &r.units[0];
        assert_eq!(a.annotation["sentences"], serde_json::json!(["a1", "a2"]));
        let positions: Vec<u64> = a.records.iter().map(|r| r.position).collect();
        // File order: the second key of the first file, the first key of the second.
        assert_eq!(
            positions,
            [SourceRecord::position(0, 1), SourceRecord::position(1, 0)]
        );
        assert_eq!(a.records[0].entry["sentences"][0], " a1");
        assert_eq!(r.units[1].records[0].position, 0);
        let malformed: Vec<&Reject> = r
            .rejects
            .iter()
            .filter(|r| r.error.contains("malformed"))
            .collect();
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].item, "v_c");
    }
}
