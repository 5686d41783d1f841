//! TVC: TV show captions. Annotation files are JSON lines: TVC lines
//! `{"vid_name", "clip_id", "ts", "descs": [{"desc", ...}]}` or TVR-style lines with one
//! `"desc"`. Several lines may name the same clip (one per moment): their descriptions are
//! merged, in file order, into one unit per clip. A line identical to an earlier one is a
//! duplicate and is rejected.
//!
//! Media: TVQA frame folders `{show}_frames/{vid_name}/00001.jpg` (3 fps) anywhere under
//! `source.media`. The frames of a unit are chosen here by the original converter's rule
//! (FORMATS.md §2): from the sorted frame files, stride = max(1, n / 16), start = stride / 2,
//! indices start, start + stride, ... (more than 16 when n is not a multiple of 16).
//!
//! Frame ids: `TVC_IMG_{vid_name}_{frame stem}` when the clip name starts with the show
//! (`friends_s01e03_seg02_clip_19`), else `TVC_IMG_{show}_{vid_name}_{frame stem}` (Big Bang
//! Theory clips are named `s02e14_seg02_clip_02` inside `bbt_frames`).
//!
//! Syphus entry: `{"vid_name", "descs": [{"desc"}, ...]}` (one `tvc_train_release.jsonl` line);
//! message: numbered lines `1. desc`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{is_image, list_files, media_rel, ScanResult};
use crate::config::Scenario;
use crate::error::Result;
use crate::model::{ImageItem, Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

/// One clip's frame folder: the show it belongs to and its frame files (relative to media),
/// sorted.
struct FrameFolder {
    show: String,
    frames: Vec<PathBuf>,
}

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let folders = index_frame_folders(scenario)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    // vid_name -> (descriptions, file of the first line)
    let mut clips: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut lines_seen: BTreeMap<String, String> = BTreeMap::new();
    for file in &scenario.annotations {
        for line in super::jsonl_lines(file)? {
            let reject = |item: String, error: String| line.reject(STAGE, item, error);
            let (vid_name, descs) = match parse_line(&line.text) {
                Ok(v) => v,
                Err(e) => {
                    result.rejects.push(reject(
                        format!("line {}", line.number),
                        format!("malformed line: {e}"),
                    ));
                    continue;
                }
            };
            if let Some(first) = lines_seen.get(&line.text) {
                result.rejects.push(reject(
                    vid_name,
                    format!("duplicate line: the same record is at {first}; ignored"),
                ));
                continue;
            }
            lines_seen.insert(line.text.clone(), line.at.clone());
            let entry = clips
                .entry(vid_name)
                .or_insert_with(|| (Vec::new(), line.at.clone()));
            entry.0.extend(descs);
        }
    }
    for (vid_name, (descs, at)) in &clips {
        let Some(folder) = folders.get(vid_name) else {
            result.rejects.push(Reject {
                stage: STAGE.into(),
                item: vid_name.clone(),
                path: at.clone(),
                error: format!(
                    "no frame folder {{show}}_frames/{vid_name}/ with images under {}",
                    scenario.media.display()
                ),
            });
            continue;
        };
        let prefix = if vid_name.starts_with(&format!("{}_", folder.show)) {
            vid_name.clone()
        } else {
            format!("{}_{vid_name}", folder.show)
        };
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
        result.units.push(Unit {
            id: vid_name.clone(),
            source: at.clone(),
            media: UnitMedia::Images { items },
            times: Vec::new(),
            annotation: json!({
                "vid_name": vid_name,
                "descs": descs.iter().map(|d| json!({"desc": d})).collect::<Vec<_>>(),
            }),
        });
    }
    result.unannotated = folders.keys().filter(|k| !clips.contains_key(*k)).count() as u64;
    Ok(result)
}

/// Frame folders by clip name. A folder counts when it holds images directly; its show is the
/// parent folder's name without `_frames`. The same clip name in two shows' folders keeps the
/// first in sorted order.
fn index_frame_folders(scenario: &Scenario) -> Result<BTreeMap<String, FrameFolder>> {
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for (rel, _) in list_files(&scenario.media)? {
        if is_image(&rel) {
            if let Some(parent) = rel.parent() {
                folders.entry(parent.to_path_buf()).or_default().push(rel);
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
    Ok(by_clip)
}

/// The original converter's choice among `n` sorted frames: stride = max(1, n / 16),
/// start = stride / 2, then every stride-th index.
pub fn select_frames(n: usize) -> Vec<usize> {
    let stride = (n / 16).max(1);
    (stride / 2..n).step_by(stride).collect()
}

fn parse_line(line: &str) -> std::result::Result<(String, Vec<String>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let vid_name = v["vid_name"]
        .as_str()
        .filter(|s| !s.trim().is_empty() && !s.contains(['/', '\\']))
        .ok_or("`vid_name` missing or not a clip name")?
        .trim()
        .to_string();
    let descs = if let Some(list) = v["descs"].as_array() {
        list.iter()
            .enumerate()
            .map(|(i, d)| {
                d["desc"]
                    .as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| format!("descs[{i}].desc missing or not a string"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else if let Some(d) = v["desc"].as_str() {
        vec![d.trim().to_string()]
    } else {
        return Err("neither `descs` (TVC) nor `desc` (TVR)".into());
    };
    let descs: Vec<String> = descs.into_iter().filter(|d| !d.is_empty()).collect();
    if descs.is_empty() {
        return Err("no description".into());
    }
    Ok((vid_name, descs))
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
        let (v, d) =
            parse_line(r#"{"vid_name": "a_s01", "descs": [{"desc": " x "}, {"desc": "y"}]}"#)
                .unwrap();
        assert_eq!((v.as_str(), d), ("a_s01", vec!["x".into(), "y".into()]));
        let (_, d) = parse_line(r#"{"vid_name": "a", "desc": "z", "ts": [0, 1]}"#).unwrap();
        assert_eq!(d, vec!["z"]);
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
        assert_eq!(r.rejects.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("duplicate")));
        assert!(errors.iter().any(|e| e.contains("malformed")));
        assert!(errors.iter().any(|e| e.contains("no frame folder")));
        assert!(r.rejects.iter().all(|r| r.path.contains("tvc.jsonl")));
    }
}
