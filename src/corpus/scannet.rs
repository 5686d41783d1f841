//! SN: ScanNet `scannet_frames_25k` scans with ScanRefer descriptions. One unit per scan folder
//! `sceneXXXX_YY/color/*.jpg` under `source.media` (every scan of a room, not only `_00`); its
//! frames are its color frames in name order, every `[corpus] frame_step`-th one (default 1:
//! all; the keyframes stage then applies `keyframes.max_per_unit`). Frame ids `SN_IMG_{scan}_color_{frame stem}`.
//!
//! ScanRefer (`ScanRefer_filtered_{train,val}.json`: a list of `{scene_id, object_name,
//! description, ...}`) describes scans. A scan with records of its own gets those; a scan
//! without (ScanRefer covers mostly `_00`) gets the records of the lowest-numbered annotated
//! scan of the same room (`sceneXXXX`), since they describe the same room.
//!
//! Syphus entry: `{"description": [[object_name, description], ...]}` (`scan_info.json`), every
//! record of the scan, in a seeded shuffle of the file order (seed: the scan id), so the output
//! is deterministic. Message, by the loader's rule: the descriptions of the first 50 entries,
//! one per line (the loader shuffles the list again, unseeded: mimicit's seeded shuffle stands
//! in for it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{is_image, list_files, media_rel, seeded_shuffle, ScanResult};
use crate::config::Scenario;
use crate::error::Result;
use crate::model::{ImageItem, Reject, Unit, UnitMedia};

const STAGE: &str = "scan";
/// Syphus reads at most this many descriptions per scan.
pub const MAX_DESCRIPTIONS: usize = 50;

#[derive(Deserialize)]
struct Record {
    scene_id: String,
    object_name: String,
    description: String,
}

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let scans = index_scans(scenario)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    // scan id -> ([object, text] in file order, file it first appeared in)
    let mut described: BTreeMap<String, (Vec<[String; 2]>, String)> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for file in &scenario.annotations {
        let file_name = file.display().to_string();
        let records = &super::read_json_list(
            file,
            "a ScanRefer list of {scene_id, object_name, description}",
        )?;
        for (n, raw) in records.iter().enumerate() {
            let reject = |item: String, error: String| Reject {
                stage: STAGE.into(),
                item,
                path: file_name.clone(),
                error,
            };
            let rec = match Record::deserialize(raw) {
                Ok(r) if is_scan_name(&r.scene_id) => r,
                Ok(r) => {
                    result.rejects.push(reject(
                        format!("record {n}"),
                        format!(
                            "malformed record: scene_id {:?} is not sceneXXXX_YY",
                            r.scene_id
                        ),
                    ));
                    continue;
                }
                Err(e) => {
                    result.rejects.push(reject(
                        format!("record {n}"),
                        format!("malformed record: {e}"),
                    ));
                    continue;
                }
            };
            // ScanRefer has one record per (object, annotator): an identical triple is a
            // duplicate.
            let key = (
                rec.scene_id.clone(),
                raw["object_id"].to_string(),
                raw["ann_id"].to_string(),
                rec.description.clone(),
            );
            if let Some(first) = seen.get(&key) {
                result.rejects.push(reject(
                    rec.scene_id.clone(),
                    format!("duplicate record {n}: same as record {first}; ignored"),
                ));
                continue;
            }
            seen.insert(key, n);
            described
                .entry(rec.scene_id.clone())
                .or_insert_with(|| (Vec::new(), file_name.clone()))
                .0
                .push([
                    rec.object_name.trim().to_string(),
                    rec.description.trim().to_string(),
                ]);
        }
    }
    for (scan_id, (entries, file)) in &described {
        if !scans.contains_key(scan_id) {
            let reject = Reject {
                stage: STAGE.into(),
                item: scan_id.clone(),
                path: file.clone(),
                error: format!(
                    "no color frames {scan_id}/color/*.jpg under {}",
                    scenario.media.display()
                ),
            };
            let unit = Unit {
                id: scan_id.clone(),
                source: file.clone(),
                media: UnitMedia::Missing {
                    expected: media
                        .join(format!("{scan_id}/color/*.jpg"))
                        .display()
                        .to_string(),
                },
                times: Vec::new(),
                annotation: json!({ "description": shuffled(entries, scan_id) }),
                records: Vec::new(),
            };
            result.media_missing(scenario, reject, unit);
        }
    }
    for (scan_id, frames) in &scans {
        let room = &scan_id[..scan_id.len() - 3];
        let own = described.get(scan_id);
        let borrowed = || {
            described
                .range(format!("{room}_")..)
                .take_while(|(k, _)| k.starts_with(room))
                .map(|(_, v)| v)
                .next()
        };
        let Some((entries, file)) = own.or_else(borrowed) else {
            result.unannotated += 1;
            continue;
        };
        let description = shuffled(entries, scan_id);
        let items = frames
            .iter()
            .step_by(scenario.config.corpus.frame_step.max(1) as usize)
            .map(|rel| ImageItem {
                path: media.join(rel),
                key: format!(
                    "{scan_id}_color_{}",
                    rel.file_stem().unwrap_or_default().to_string_lossy()
                ),
            })
            .collect();
        result.units.push(Unit {
            id: scan_id.clone(),
            source: file.clone(),
            media: UnitMedia::Images { items },
            times: Vec::new(),
            annotation: json!({ "description": description }),
            records: Vec::new(),
        });
    }
    result.units.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(result)
}

/// All of a scan's `[object, text]` entries, shuffled by a seed made of the scan id.
fn shuffled<'a>(entries: &'a [[String; 2]], scan_id: &str) -> Vec<&'a [String; 2]> {
    seeded_shuffle(entries.len(), scan_id)
        .into_iter()
        .map(|i| &entries[i])
        .collect()
}

/// `sceneXXXX_YY` with digits.
fn is_scan_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && s.starts_with("scene")
        && b[5..9].iter().all(u8::is_ascii_digit)
        && b[9] == b'_'
        && b[10..].iter().all(u8::is_ascii_digit)
}

/// Scan folder name -> its color frames (relative to media), sorted. A scan folder is any
/// `sceneXXXX_YY` folder with a `color/` subfolder of images, at any depth.
fn index_scans(scenario: &Scenario) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut scans: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (rel, _) in list_files(&scenario.media)? {
        if !is_image(&rel) {
            continue;
        }
        let Some(color) = rel.parent() else { continue };
        if color.file_name().map(|n| n != "color").unwrap_or(true) {
            continue;
        }
        let Some(scan) = color.parent().and_then(|p| p.file_name()) else {
            continue;
        };
        let scan = scan.to_string_lossy();
        if is_scan_name(&scan) {
            scans.entry(scan.into_owned()).or_default().push(rel);
        }
    }
    for frames in scans.values_mut() {
        frames.sort();
    }
    Ok(scans)
}

/// Syphus's SN message, by its loader's rule on a `scan_info.json` entry already shuffled:
/// the texts (not the object names) of the first [`MAX_DESCRIPTIONS`] entries, one per line.
pub fn syphus_message(annotation: &Value) -> String {
    annotation["description"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(MAX_DESCRIPTIONS)
                .map(|pair| pair[1].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_names() {
        assert!(is_scan_name("scene0000_00"));
        assert!(is_scan_name("scene0706_02"));
        assert!(!is_scan_name("scene0000"));
        assert!(!is_scan_name("scene00a0_00"));
    }

    #[test]
    fn every_scan_of_a_room_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        for scan in [
            "scene0000_00",
            "scene0000_01",
            "scene0001_00",
            "scene0002_00",
        ] {
            let d = dir.path().join("frames").join(scan).join("color");
            std::fs::create_dir_all(&d).unwrap();
            for f in ["00020.jpg", "00000.jpg"] {
                std::fs::write(d.join(f), b"x").unwrap();
            }
        }
        let rec = |scene: &str, obj: &str, text: &str| json!({"scene_id": scene, "object_id": "1", "object_name": obj, "ann_id": "0", "description": text});
        let records = json!([
            rec("scene0000_00", "chair", "a chair."),
            rec("scene0000_00", "table", "a table."),
            rec("scene0001_00", "bed", "a bed."),
            rec("scene0001_00", "bed", "a bed."),
            rec("scene0009_00", "door", "a door."),
            {"scene_id": "scene0001_00"},
        ]);
        std::fs::write(dir.path().join("refer.json"), records.to_string()).unwrap();
        let s = crate::corpus::tests::scenario(dir.path(), "SN", &["refer.json"], "frames", "");
        let r = scan(&s).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["scene0000_00", "scene0000_01", "scene0001_00"]);
        assert_eq!(r.unannotated, 1, "scene0002_00");
        // The _01 scan borrows the room's descriptions, in its own shuffle.
        let mut a: Vec<String> = syphus_message(&r.units[0].annotation)
            .lines()
            .map(String::from)
            .collect();
        let mut b: Vec<String> = syphus_message(&r.units[1].annotation)
            .lines()
            .map(String::from)
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, ["a chair.", "a table."]);
        assert_eq!(a, b);
        let UnitMedia::Images { items } = &r.units[2].media else {
            panic!()
        };
        assert_eq!(items[0].key, "scene0001_00_color_00000");
        assert_eq!(items[1].key, "scene0001_00_color_00020");
        assert_eq!(syphus_message(&r.units[2].annotation), "a bed.");
        let errors: Vec<&str> = r.rejects.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("duplicate")));
        assert!(errors.iter().any(|e| e.contains("malformed")));
        assert!(errors.iter().any(|e| e.contains("scene0009_00/color")));
    }

    #[test]
    fn every_kth_frame_and_annotation_only_scans() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("frames/scene0000_00/color");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..7 {
            std::fs::write(d.join(format!("{:05}.jpg", i * 10)), b"x").unwrap();
        }
        let rec = |scene: &str| json!({"scene_id": scene, "object_id": "1", "object_name": "chair", "ann_id": "0", "description": "a chair."});
        std::fs::write(
            dir.path().join("refer.json"),
            json!([rec("scene0000_00"), rec("scene0005_00")]).to_string(),
        )
        .unwrap();
        let s = crate::corpus::tests::scenario(
            dir.path(),
            "SN",
            &["refer.json"],
            "frames",
            "[corpus]\nframe_step = 3\n[metadata]\nrequire_media = false",
        );
        let r = scan(&s).unwrap();
        let UnitMedia::Images { items } = &r.units[0].media else {
            panic!()
        };
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "scene0000_00_color_00000",
                "scene0000_00_color_00030",
                "scene0000_00_color_00060"
            ]
        );
        // The described scan without frames stays, annotation-only, and is still a reject.
        assert_eq!(r.units.len(), 2);
        assert!(matches!(r.units[1].media, UnitMedia::Missing { .. }));
        assert_eq!(syphus_message(&r.units[1].annotation), "a chair.");
        assert_eq!(r.rejects.len(), 1);
    }

    #[test]
    fn message_is_the_first_fifty_texts() {
        let description: Vec<[String; 2]> = (0..80)
            .map(|i| [format!("o{i}"), format!("t{i}")])
            .collect();
        let m = syphus_message(&json!({ "description": description }));
        let lines: Vec<&str> = m.split('\n').collect();
        assert_eq!(lines.len(), 50);
        assert_eq!((lines[0], lines[49]), ("t0", "t49"));
        // The scan keeps every entry, shuffled.
        assert_eq!(shuffled(&description, "s").len(), 80);
    }
}
