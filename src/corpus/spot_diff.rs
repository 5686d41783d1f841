//! SD: spot-the-diff. Annotation files `annotations/{train,val,test}.json`, each a list of
//! `{"img_id": "76", "sentences": [...]}`; images `resized_images/{id}.png` and `{id}_2.png`
//! (`.jpg` and `.jpeg` accepted too). One unit per pair; unit id = the id zero-padded to 5
//! digits, frame ids `SD_IMG_{id:05}_1` and `SD_IMG_{id:05}_2` (FORMATS.md §2).
//!
//! A pair annotated by several records (the public `train.json` has 9,524 records for 8,566
//! pairs) is one unit with all of them: its `annotation` holds every record's sentences
//! (trimmed) in file order, and each record stays a record of its own, as the file wrote it,
//! because Syphus's loader sends one query per record: id = `img_id` as written (`76`, not the
//! padded unit id), message = the record's sentences joined by newlines, untouched.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{index_images, media_rel, ScanResult};
use crate::config::Scenario;
use crate::error::Result;
use crate::model::{ImageItem, Reject, SourceRecord, Unit, UnitMedia};

const STAGE: &str = "scan";

/// One pair's records: its `img_id` as first written, the file of its first record, and each
/// record with its trimmed sentences.
type Pair = (String, String, Vec<(SourceRecord, Vec<String>)>);

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let images = index_images(&scenario.media)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    for (file_index, file) in scenario.annotations.iter().enumerate() {
        let file_name = file.display().to_string();
        let records = &super::read_json_list(file, "a list of {img_id, sentences}")?;
        for (n, record) in records.iter().enumerate() {
            let (img_id, sentences) = match parse_record(record) {
                Ok(v) => v,
                Err(e) => {
                    result.rejects.push(Reject {
                        stage: STAGE.into(),
                        item: format!("record {n}"),
                        path: file_name.clone(),
                        error: format!("malformed record: {e}"),
                    });
                    continue;
                }
            };
            let source = SourceRecord {
                position: SourceRecord::position(file_index, n),
                entry: record.clone(),
            };
            pairs
                .entry(pad_id(&img_id))
                .or_insert_with(|| (img_id, file_name.clone(), Vec::new()))
                .2
                .push((source, sentences));
        }
    }
    for (key, (img_id, file_name, records)) in &pairs {
        // Every record's sentences, in file order: a pair annotated three times keeps all three.
        let sentences: Vec<&String> = records.iter().flat_map(|(_, s)| s).collect();
        let annotation = serde_json::json!({"img_id": img_id, "sentences": sentences});
        let records: Vec<SourceRecord> = records.iter().map(|(r, _)| r.clone()).collect();
        let first = images.get(img_id);
        let second = images.get(&format!("{img_id}_2"));
        let (Some(a), Some(b)) = (first, second) else {
            let missing: Vec<String> = [(first, ""), (second, "_2")]
                .iter()
                .filter(|(p, _)| p.is_none())
                .map(|(_, s)| format!("{img_id}{s}.png|.jpg|.jpeg"))
                .collect();
            let missing_unit = Unit {
                id: key.clone(),
                source: file_name.clone(),
                media: UnitMedia::Missing {
                    expected: missing
                        .iter()
                        .map(|m| media.join(m).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                times: Vec::new(),
                annotation,
                records,
            };
            result.media_missing(
                scenario,
                Reject {
                    stage: STAGE.into(),
                    item: key.clone(),
                    path: file_name.clone(),
                    error: format!(
                        "no image {} under {}",
                        missing.join(" nor "),
                        scenario.media.display()
                    ),
                },
                missing_unit,
            );
            continue;
        };
        result.units.push(Unit {
            id: key.clone(),
            source: file_name.clone(),
            media: UnitMedia::Images {
                items: vec![
                    item(&media, a, format!("{key}_1")),
                    item(&media, b, format!("{key}_2")),
                ],
            },
            times: Vec::new(),
            annotation,
            records,
        });
    }
    // Every pair's images count as annotated; `_diff` pictures and others do not count.
    result.unannotated = images
        .keys()
        .filter(|stem| !stem.ends_with("_diff"))
        .filter(|stem| {
            let id = stem.strip_suffix("_2").unwrap_or(stem);
            !pairs.contains_key(&pad_id(id))
        })
        .count() as u64;
    Ok(result)
}

fn item(media: &Path, rel: &Path, key: String) -> ImageItem {
    ImageItem {
        path: media.join(rel),
        key,
    }
}

/// `76` -> `00076`; an id that is not a number is kept as written.
fn pad_id(id: &str) -> String {
    match id.parse::<u64>() {
        Ok(n) => format!("{n:05}"),
        Err(_) => id.to_string(),
    }
}

fn parse_record(record: &Value) -> std::result::Result<(String, Vec<String>), String> {
    let img_id = match &record["img_id"] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err("`img_id` missing or not a string".into()),
    };
    if img_id.contains(['/', '\\']) {
        return Err(format!("`img_id` {img_id:?} is not a file stem"));
    }
    let sentences = super::trimmed_strings(
        record["sentences"]
            .as_array()
            .ok_or("`sentences` missing or not a list")?,
        "sentences",
    )?;
    if sentences.is_empty() {
        return Err("`sentences` is empty".into());
    }
    Ok((img_id, sentences))
}

/// The id Syphus's loader gives a record's query: its `img_id` as written (a number as its
/// decimal text).
pub fn query_id(record: &Value) -> String {
    match &record["img_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Syphus's SD message for one record: its sentences, as written, one per line.
pub fn syphus_message(annotation: &Value) -> String {
    annotation["sentences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_and_ids() {
        let (id, s) = parse_record(&json!({"img_id": "76", "sentences": [" a ", "b"]})).unwrap();
        assert_eq!((id.as_str(), s), ("76", vec!["a".into(), "b".into()]));
        assert_eq!(pad_id("76"), "00076");
        assert_eq!(pad_id("123456"), "123456");
        assert_eq!(pad_id("x1"), "x1");
        assert!(parse_record(&json!({"sentences": ["a"]})).is_err());
        assert!(parse_record(&json!({"img_id": "1", "sentences": [3]})).is_err());
        assert!(parse_record(&json!({"img_id": "../1", "sentences": ["a"]})).is_err());
    }

    #[test]
    fn message_is_sentences_by_line() {
        let ann = json!({"img_id": "1", "sentences": ["the car is gone", " a man appears "]});
        assert_eq!(syphus_message(&ann), "the car is gone\n a man appears ");
        assert_eq!(query_id(&ann), "1");
        assert_eq!(query_id(&json!({"img_id": 76})), "76");
    }

    #[test]
    fn scan_merges_repeated_pairs_and_rejects_missing_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("resized_images");
        std::fs::create_dir_all(&media).unwrap();
        for f in [
            "1.png", "1_2.jpg", "2.png", "3.jpeg", "3_2.jpeg", "9.png", "9_2.png",
        ] {
            std::fs::write(media.join(f), b"x").unwrap();
        }
        let ann = dir.path().join("train.json");
        std::fs::write(
            &ann,
            json!([
                {"img_id": "1", "sentences": ["a"]},
                {"img_id": "2", "sentences": ["b"]},
                {"img_id": "3", "sentences": ["c"]},
                {"img_id": "1", "sentences": ["again"]},
                {"img_id": "4"}
            ])
            .to_string(),
        )
        .unwrap();
        let scenario =
            crate::corpus::tests::scenario(dir.path(), "SD", &["train.json"], "resized_images", "");
        let r = scan(&scenario).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["00001", "00003"]);
        let UnitMedia::Images { items } = &r.units[0].media else {
            panic!()
        };
        assert_eq!(items[0].key, "00001_1");
        assert!(items[1].path.ends_with("resized_images/1_2.jpg"));
        // Pair 1 annotated twice: one unit, both records, in file order.
        let u = &r.units[0];
        assert_eq!(u.annotation["sentences"], json!(["a", "again"]));
        let records: Vec<(u64, String, String)> = u
            .records
            .iter()
            .map(|r| (r.position, query_id(&r.entry), syphus_message(&r.entry)))
            .collect();
        assert_eq!(
            records,
            [(0, "1".into(), "a".into()), (3, "1".into(), "again".into())]
        );
        let errors: Vec<&str> = r.rejects.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(r.rejects.len(), 2, "{errors:?}");
        assert!(errors[0].contains("malformed"), "{errors:?}");
        assert!(errors[1].contains("2_2.png"), "{errors:?}");
        assert!(r.rejects.iter().all(|r| r.path.ends_with("train.json")));
        assert_eq!(r.unannotated, 2, "9.png and 9_2.png");
    }
}
