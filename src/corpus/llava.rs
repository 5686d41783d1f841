//! LA: LLaVA in-context (COCO images + LLaVA-Instruct). Annotation files, told apart by name:
//! - `*.jsonl`: LLaVA's caption-and-box lines (`caps_boxes_coco2014_val_80.jsonl`, ...), one
//!   image per line: `{"id", "image": "000000296284.jpg", "captions": [...], "instances":
//!   [{"category", "bbox": [x1, y1, x2, y2]}]}` (boxes normalized to 0..1);
//! - any other name: a LLaVA-Instruct file (`llava_instruct_150k.json`), a list of
//!   `{"id", "image", "conversations": [{"from", "value"}, ...]}`.
//!
//! One unit per image that has a caption-and-box line and a file: unit id = the COCO file
//! stem of `image` (`000000296284`; a `COCO_train2014_`/`COCO_val2014_` prefix is dropped),
//! frame id `LA_IMG_{stem}`. Media: anywhere under `source.media`, `{stem}.jpg|.jpeg|.png`
//! (COCO 2017 names) or COCO 2014 names `COCO_{train,val,test}2014_{stem}.jpg` (the plain name
//! wins; then train before val before test). LLaVA-Instruct conversations of an image are
//! attached to its unit, in file order; those of images without a caption-and-box line are not
//! used (that file covers the whole of COCO train2014). Malformed lines and records, duplicate
//! lines of an image and images without a file are rejected.
//!
//! Syphus entry: `{"record": {"id", "image", "captions", "instances"}, "conversations":
//! [[{"from", "value"}, ...], ...]}` (captions trimmed, numbers as the file wrote them).
//! Message: `captions:`, then one caption per line, then one `{category}: [x1, y1, x2, y2]`
//! line per instance with the normalized box as given. Native file `caps_boxes.jsonl`: the
//! records of the written units, one line each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{index_images, media_rel, ScanResult};
use crate::config::Scenario;
use crate::error::Result;
use crate::model::{ImageItem, Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let files = coco_index(&scenario.media)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    // stem -> (record, where it came from)
    let mut records: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let mut conversations: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for file in &scenario.annotations {
        let file_name = file.display().to_string();
        let is_lines = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        if is_lines {
            for line in super::jsonl_lines(file)? {
                let reject = |item: String, error: String| line.reject(STAGE, item, error);
                let (stem, record) = match parse_line(&line.text) {
                    Ok(v) => v,
                    Err(e) => {
                        result.rejects.push(reject(
                            format!("line {}", line.number),
                            format!("malformed caption-and-box line: {e}"),
                        ));
                        continue;
                    }
                };
                if let Some((_, first)) = records.get(&stem) {
                    result.rejects.push(reject(
                        stem.clone(),
                        format!("duplicate line for image {stem}: already at {first}; this line is ignored"),
                    ));
                    continue;
                }
                records.insert(stem, (record, line.at.clone()));
            }
        } else {
            let list = super::read_json_list(
                file,
                "a LLaVA-Instruct list of {id, image, conversations} (caption-and-box files must end in .jsonl)",
            )?;
            for (n, rec) in list.iter().enumerate() {
                match parse_instruct(rec) {
                    Ok((stem, turns)) => conversations.entry(stem).or_default().push(turns),
                    Err(e) => result.rejects.push(Reject {
                        stage: STAGE.into(),
                        item: format!("record {n}"),
                        path: file_name.clone(),
                        error: format!("malformed LLaVA-Instruct record: {e}"),
                    }),
                }
            }
        }
    }
    for (stem, (record, at)) in records {
        let convs = conversations.remove(&stem).unwrap_or_default();
        let Some(rel) = files.get(&stem) else {
            let missing = Unit {
                id: stem.clone(),
                source: at.clone(),
                media: UnitMedia::Missing {
                    expected: media.join(format!("{stem}.jpg")).display().to_string(),
                },
                times: Vec::new(),
                annotation: json!({"record": record, "conversations": convs}),
                records: Vec::new(),
            };
            let reject = Reject {
                stage: STAGE.into(),
                item: stem.clone(),
                path: at,
                error: format!(
                    "no image {stem}.jpg (nor COCO_train2014_{stem}.jpg, COCO_val2014_{stem}.jpg) under {}",
                    scenario.media.display()
                ),
            };
            result.media_missing(scenario, reject, missing);
            continue;
        };
        result.units.push(Unit {
            id: stem.clone(),
            source: at.clone(),
            media: UnitMedia::Images {
                items: vec![ImageItem {
                    path: media.join(rel),
                    key: stem.clone(),
                }],
            },
            times: Vec::new(),
            annotation: json!({"record": record, "conversations": convs}),
            records: Vec::new(),
        });
    }
    let used: BTreeSet<&String> = result.units.iter().map(|u| &u.id).collect();
    result.unannotated = files.keys().filter(|k| !used.contains(k)).count() as u64;
    Ok(result)
}

/// Image stem -> path relative to `media`: plain stems first, then COCO 2014 names under their
/// bare stem where no plain file has it.
fn coco_index(media: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let all = index_images(media)?;
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (stem, rel) in &all {
        if coco_stem(stem) == *stem {
            by_stem.insert(stem.clone(), rel.clone());
        }
    }
    for prefix in ["COCO_train2014_", "COCO_val2014_", "COCO_test2014_"] {
        for (stem, rel) in &all {
            if let Some(bare) = stem.strip_prefix(prefix) {
                by_stem
                    .entry(bare.to_string())
                    .or_insert_with(|| rel.clone());
            }
        }
    }
    Ok(by_stem)
}

/// `COCO_train2014_000000033471` -> `000000033471`; other stems unchanged.
fn coco_stem(stem: &str) -> String {
    for prefix in ["COCO_train2014_", "COCO_val2014_", "COCO_test2014_"] {
        if let Some(bare) = stem.strip_prefix(prefix) {
            return bare.to_string();
        }
    }
    stem.to_string()
}

/// The image stem of a record: from `image` (`000000296284.jpg`), else from `id`.
fn record_stem(rec: &Value) -> std::result::Result<String, String> {
    let stem = match (&rec["image"], &rec["id"]) {
        (Value::String(image), _) if !image.trim().is_empty() => Path::new(image.trim())
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        (_, Value::String(id)) => id.trim().to_string(),
        (_, Value::Number(n)) => n.to_string(),
        _ => return Err("neither `image` nor `id` is given".into()),
    };
    if stem.is_empty() || stem.contains(['/', '\\']) || stem.starts_with('.') {
        return Err(format!("{stem:?} is not an image file stem"));
    }
    Ok(coco_stem(&stem))
}

fn parse_line(line: &str) -> std::result::Result<(String, Value), String> {
    let rec: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !rec.is_object() {
        return Err("not a JSON object".into());
    }
    let stem = record_stem(&rec)?;
    let captions = super::trimmed_strings(
        rec["captions"]
            .as_array()
            .ok_or("`captions` missing or not a list")?,
        "captions",
    )?;
    let mut instances = Vec::new();
    for (i, inst) in rec["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let category = inst["category"]
            .as_str()
            .filter(|c| !c.trim().is_empty())
            .ok_or(format!("instances[{i}].category missing or not a string"))?;
        let bbox = inst["bbox"]
            .as_array()
            .filter(|b| b.len() == 4 && b.iter().all(Value::is_number))
            .ok_or(format!("instances[{i}].bbox is not a list of 4 numbers"))?;
        instances.push(json!({"category": category.trim(), "bbox": bbox}));
    }
    if !rec["instances"].is_array() && !rec["instances"].is_null() {
        return Err("`instances` is not a list".into());
    }
    if captions.is_empty() && instances.is_empty() {
        return Err("no captions and no instances".into());
    }
    let id = match &rec["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => stem.clone(),
    };
    let image = rec["image"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{stem}.jpg"));
    Ok((
        stem,
        json!({"id": id, "image": image, "captions": captions, "instances": instances}),
    ))
}

fn parse_instruct(rec: &Value) -> std::result::Result<(String, Value), String> {
    if !rec.is_object() {
        return Err("not a JSON object".into());
    }
    let stem = record_stem(rec)?;
    let turns = rec["conversations"]
        .as_array()
        .ok_or("`conversations` missing or not a list")?;
    let mut out = Vec::with_capacity(turns.len());
    for (i, t) in turns.iter().enumerate() {
        match (t["from"].as_str(), t["value"].as_str()) {
            (Some(from), Some(value)) => out.push(json!({"from": from, "value": value})),
            _ => {
                return Err(format!(
                    "conversations[{i}] needs string `from` and `value`"
                ))
            }
        }
    }
    Ok((stem, Value::Array(out)))
}

/// Syphus's LA message (see the module documentation).
pub fn syphus_message(annotation: &Value) -> String {
    let record = &annotation["record"];
    let mut lines = vec!["captions:".to_string()];
    lines.extend(
        record["captions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    for inst in record["instances"].as_array().into_iter().flatten() {
        let nums: Vec<String> = inst["bbox"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        lines.push(format!(
            "{}: [{}]",
            inst["category"].as_str().unwrap_or_default(),
            nums.join(", ")
        ));
    }
    lines.join("\n")
}

/// `caps_boxes.jsonl`: the records of the given units, one line each.
pub fn native(units: &[&Unit]) -> Vec<u8> {
    let mut b = Vec::new();
    for u in units {
        b.extend(serde_json::to_vec(&u.annotation["record"]).expect("JSON values serialize"));
        b.push(b'\n');
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_messages_and_numbers() {
        let (stem, rec) = parse_line(
            r#"{"id": "000000000001", "image": "COCO_val2014_000000000001.jpg", "captions": [" A cat. ", "Two."], "instances": [{"category": "cat", "bbox": [0.0, 0.5, 1, 0.123]}]}"#,
        )
        .unwrap();
        assert_eq!(stem, "000000000001");
        let ann = json!({"record": rec, "conversations": []});
        assert_eq!(
            syphus_message(&ann),
            "captions:\nA cat.\nTwo.\ncat: [0.0, 0.5, 1, 0.123]"
        );
        for bad in [
            "{",
            "[1]",
            r#"{"image": "a.jpg"}"#,
            r#"{"image": "a.jpg", "captions": [1]}"#,
            r#"{"image": "a.jpg", "captions": ["x"], "instances": [{"category": "c", "bbox": [1, 2]}]}"#,
            r#"{"id": "../a", "captions": ["x"]}"#,
            r#"{"image": "a.jpg", "captions": []}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        assert!(parse_instruct(&json!({"id": "1", "conversations": [{"from": "human"}]})).is_err());
    }

    #[test]
    fn scan_finds_coco_names_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("coco");
        std::fs::create_dir_all(media.join("val2014")).unwrap();
        std::fs::create_dir_all(media.join("train2017")).unwrap();
        for f in [
            "val2014/COCO_val2014_000000000001.jpg",
            "val2014/COCO_val2014_000000000002.jpg",
            "train2017/000000000002.jpg",
            "train2017/000000000009.jpg",
        ] {
            std::fs::write(media.join(f), b"x").unwrap();
        }
        let line = |id: &str| {
            format!(
                r#"{{"id": "{id}", "image": "{id}.jpg", "captions": ["c {id}"], "instances": []}}"#
            )
        };
        let lines = [
            line("000000000001"),
            line("000000000002"),
            "not json".to_string(),
            line("000000000003"),
            line("000000000001"),
        ];
        std::fs::write(dir.path().join("caps.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(
            dir.path().join("instruct.json"),
            json!([
                {"id": "000000000002", "image": "000000000002.jpg", "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A."}]},
                {"id": "000000000002", "conversations": []},
                {"id": "000000000007", "image": "000000000007.jpg", "conversations": []},
                {"id": "000000000008"}
            ])
            .to_string(),
        )
        .unwrap();
        let s = crate::corpus::tests::scenario(
            dir.path(),
            "LA",
            &["caps.jsonl", "instruct.json"],
            "coco",
            "",
        );
        let r = scan(&s).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["000000000001", "000000000002"]);
        let UnitMedia::Images { items } = &r.units[1].media else {
            panic!()
        };
        assert!(items[0].path.ends_with("coco/train2017/000000000002.jpg"));
        assert_eq!(items[0].key, "000000000002");
        assert_eq!(r.units[0].annotation["conversations"], json!([]));
        assert_eq!(r.units[1].annotation["conversations"][0][1]["value"], "A.");
        assert_eq!(
            r.units[1].annotation["conversations"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let errors: Vec<(&str, &str, &str)> = r
            .rejects
            .iter()
            .map(|r| (r.item.as_str(), r.path.as_str(), r.error.as_str()))
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors.iter().any(|(i, p, e)| *i == "line 3"
            && p.ends_with("caps.jsonl:3")
            && e.contains("malformed")));
        assert!(errors
            .iter()
            .any(|(i, _, e)| *i == "000000000001" && e.contains("duplicate")));
        assert!(errors
            .iter()
            .any(|(i, _, e)| *i == "000000000003" && e.contains("no image 000000000003.jpg")));
        assert!(errors.iter().any(|(i, p, e)| *i == "record 3"
            && p.ends_with("instruct.json")
            && e.contains("conversations")));
        assert_eq!(r.unannotated, 1, "000000000009.jpg");
        let native = String::from_utf8(native(&r.units.iter().collect::<Vec<_>>())).unwrap();
        assert_eq!(native.lines().count(), 2);
        let first: Value = serde_json::from_str(native.lines().next().unwrap()).unwrap();
        assert_eq!(first["image"], "000000000001.jpg");
    }

    #[test]
    fn instruct_file_must_be_a_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("caps.json"), b"{\"id\": 1}\n").unwrap();
        let s = crate::corpus::tests::scenario(dir.path(), "LA", &["caps.json"], "images", "");
        let err = scan(&s).err().unwrap().to_string();
        assert!(err.contains("caps.json") && err.contains(".jsonl"), "{err}");
    }
}
