//! CGD: COCO general difference. Annotation files: COCO `instances_*.json` (images, boxes,
//! categories) and `captions_*.json` (captions), in any order (a file with `categories` is an
//! instances file). Media: the images (`train2017/*.jpg`).
//!
//! Pairing (deterministic): images that have at least one box and whose file exists, in id
//! order; each image `a` is paired with the first image after it in id order that shares at
//! least one object category. An image with no such later image starts no pair (it may still
//! be the second image of an earlier pair). Unit id `{stem a}_{stem b}`; frame ids
//! `CGD_IMG_{file stem}` (an image in two pairs has one id, listed under both units).
//!
//! Syphus entry: `{"sentences": message}` (`csd_query.json`), the message being
//! `image a:` / its captions, one per line / `name: [x, y, w, h]` per box (COCO pixels, as
//! JSON numbers) / `image b:` / the same.
//!
//! The big instances files (train2017: ~450 MB) are parsed with typed serde structs: the
//! segmentations are skipped without building JSON values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{index_images, media_rel, ScanResult};
use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::model::{ImageItem, Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

#[derive(Deserialize)]
struct CocoFile {
    #[serde(default)]
    images: Vec<ImageRec>,
    #[serde(default)]
    annotations: Vec<AnnRec>,
    #[serde(default)]
    categories: Option<Vec<CategoryRec>>,
}

#[derive(Deserialize)]
struct ImageRec {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct AnnRec {
    image_id: u64,
    #[serde(default)]
    category_id: Option<u64>,
    #[serde(default)]
    bbox: Option<[serde_json::Number; 4]>,
    #[serde(default)]
    caption: Option<String>,
}

#[derive(Deserialize)]
struct CategoryRec {
    id: u64,
    name: String,
}

/// What the annotation files say about one image.
#[derive(Default)]
struct ImageInfo {
    file_name: String,
    /// The instances file it came from.
    source: String,
    captions: Vec<String>,
    boxes: Vec<(u64, [serde_json::Number; 4])>,
}

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let files = index_images(&scenario.media)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    let mut images: BTreeMap<u64, ImageInfo> = BTreeMap::new();
    let mut categories: BTreeMap<u64, String> = BTreeMap::new();
    let mut captions: Vec<(u64, String, String)> = Vec::new();
    for file in &scenario.annotations {
        let file_name = file.display().to_string();
        let doc = read_coco(file)?;
        let is_instances = doc.categories.is_some();
        for c in doc.categories.into_iter().flatten() {
            categories.insert(c.id, c.name);
        }
        let reject = |item: String, error: String| Reject {
            stage: STAGE.into(),
            item,
            path: file_name.clone(),
            error,
        };
        for img in doc.images {
            match images.get(&img.id) {
                Some(old) if old.file_name != img.file_name => {
                    result.rejects.push(reject(
                        img.id.to_string(),
                        format!(
                            "duplicate image id {}: {} here, {} in {}; the first is kept",
                            img.id, img.file_name, old.file_name, old.source
                        ),
                    ));
                }
                Some(_) => {} // the same image listed by the captions and the instances file
                None => {
                    images.insert(
                        img.id,
                        ImageInfo {
                            file_name: img.file_name,
                            source: file_name.clone(),
                            ..Default::default()
                        },
                    );
                }
            }
        }
        for ann in doc.annotations {
            if let Some(c) = ann.caption {
                captions.push((ann.image_id, c.trim().to_string(), file_name.clone()));
            } else if is_instances {
                match (ann.category_id, ann.bbox) {
                    (Some(cat), Some(bbox)) => match images.get_mut(&ann.image_id) {
                        Some(info) => info.boxes.push((cat, bbox)),
                        None => result.rejects.push(reject(
                            ann.image_id.to_string(),
                            format!("box of image id {}, which no images list has", ann.image_id),
                        )),
                    },
                    _ => result.rejects.push(reject(
                        ann.image_id.to_string(),
                        "malformed annotation: no caption, or no category_id and bbox".into(),
                    )),
                }
            }
        }
    }
    // Captions of unknown images: one reject per image, not per caption.
    let mut orphans: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for (image_id, caption, file) in captions {
        match images.get_mut(&image_id) {
            Some(info) => info.captions.push(caption),
            None => orphans.entry(image_id).or_insert((0, file)).0 += 1,
        }
    }
    for (image_id, (n, file)) in orphans {
        result.rejects.push(Reject {
            stage: STAGE.into(),
            item: image_id.to_string(),
            path: file,
            error: format!("{n} caption(s) of image id {image_id}, which no images list has"),
        });
    }
    // Images that can be paired: boxes and a file.
    let mut usable: Vec<(u64, &ImageInfo, BTreeSet<u64>)> = Vec::new();
    for (id, info) in &images {
        if info.boxes.is_empty() {
            continue;
        }
        let stem = stem(&info.file_name);
        if !files.contains_key(&stem) {
            if !scenario.config.metadata.require_media {
                // Annotation-only pairs may use it (`media_missing` below): its reject stays.
                let cats = info.boxes.iter().map(|(c, _)| *c).collect();
                usable.push((*id, info, cats));
            }
            result.rejects.push(Reject {
                stage: STAGE.into(),
                item: stem.clone(),
                path: info.source.clone(),
                error: format!(
                    "no image file {} under {}",
                    info.file_name,
                    scenario.media.display()
                ),
            });
            continue;
        }
        let cats = info.boxes.iter().map(|(c, _)| *c).collect();
        usable.push((*id, info, cats));
    }
    for (i, (_, a, cats_a)) in usable.iter().enumerate() {
        let Some((_, b, _)) = usable[i + 1..]
            .iter()
            .find(|(_, _, cats_b)| !cats_a.is_disjoint(cats_b))
        else {
            continue;
        };
        let (sa, sb) = (stem(&a.file_name), stem(&b.file_name));
        let (a_name, b_name) = (&a.file_name, &b.file_name);
        let message = format!(
            "image a:\n{}\nimage b:\n{}",
            describe(a, &categories),
            describe(b, &categories)
        );
        let item = |s: &str| {
            files.get(s).map(|f| ImageItem {
                path: media.join(f),
                key: s.to_string(),
            })
        };
        let unit_media = match (item(&sa), item(&sb)) {
            (Some(a), Some(b)) => UnitMedia::Images { items: vec![a, b] },
            (a, b) => UnitMedia::Missing {
                expected: [(a, &sa, &a_name), (b, &sb, &b_name)]
                    .into_iter()
                    .filter(|(found, _, _)| found.is_none())
                    .map(|(_, _, name)| media.join(name).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        };
        result.units.push(Unit {
            id: format!("{sa}_{sb}"),
            source: a.source.clone(),
            media: unit_media,
            times: Vec::new(),
            annotation: serde_json::json!({ "sentences": message }),
            records: Vec::new(),
        });
    }
    let annotated: BTreeSet<String> = images.values().map(|i| stem(&i.file_name)).collect();
    result.unannotated = files.keys().filter(|k| !annotated.contains(*k)).count() as u64;
    result.units.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(result)
}

fn read_coco(path: &Path) -> Result<CocoFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: format!("not a COCO annotation file: {e}"),
    })
}

fn stem(file_name: &str) -> String {
    Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file_name.to_string())
}

/// Captions, one per line, then `name: [x, y, w, h]` per box, each number as the annotation
/// file wrote it (`3`, `28.0`, `473.07`), which is what Python's `str` of the loaded list gives.
fn describe(info: &ImageInfo, categories: &BTreeMap<u64, String>) -> String {
    let mut lines: Vec<String> = info.captions.clone();
    for (cat, b) in &info.boxes {
        let name = categories
            .get(cat)
            .cloned()
            .unwrap_or_else(|| format!("category {cat}"));
        let nums: Vec<String> = b.iter().map(|x| x.to_string()).collect();
        lines.push(format!("{name}: [{}]", nums.join(", ")));
    }
    lines.join("\n")
}

/// Syphus's CGD message: the entry's `sentences` string.
pub fn syphus_message(annotation: &Value) -> String {
    annotation["sentences"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn corpus(dir: &Path) -> Scenario {
        let media = dir.join("images");
        std::fs::create_dir_all(&media).unwrap();
        for f in ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"] {
            std::fs::write(media.join(f), b"x").unwrap();
        }
        let instances = json!({
            "images": [
                {"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000002.jpg"},
                {"id": 3, "file_name": "000003.jpg"}, {"id": 4, "file_name": "000004.jpg"},
                {"id": 5, "file_name": "000005.jpg"}
            ],
            "annotations": [
                {"image_id": 1, "category_id": 1, "bbox": [1.5, 2.0, 3, 4], "segmentation": [[1, 2]]},
                {"image_id": 2, "category_id": 2, "bbox": [0, 0, 1, 1]},
                {"image_id": 3, "category_id": 1, "bbox": [5, 6, 7, 8.25]},
                {"image_id": 3, "category_id": 2, "bbox": [0, 0, 2, 2]},
                {"image_id": 4, "category_id": 3, "bbox": [0, 0, 2, 2]},
                {"image_id": 5, "category_id": 3, "bbox": [0, 0, 2, 2]},
                {"image_id": 9, "category_id": 3, "bbox": [0, 0, 2, 2]},
                {"image_id": 4, "category_id": 3}
            ],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "cat"}]
        });
        let captions = json!({
            "images": [{"id": 1, "file_name": "000001.jpg"}],
            "annotations": [
                {"image_id": 1, "id": 10, "caption": "A person. "},
                {"image_id": 3, "id": 11, "caption": "A person and a dog."},
                {"image_id": 1, "id": 12, "caption": "Someone."}
            ]
        });
        std::fs::write(dir.join("inst.json"), instances.to_string()).unwrap();
        std::fs::write(dir.join("caps.json"), captions.to_string()).unwrap();
        crate::corpus::tests::scenario(dir, "CGD", &["caps.json", "inst.json"], "images", "")
    }

    #[test]
    fn pairs_messages_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let r = scan(&corpus(dir.path())).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        // 1 (person) -> 3; 2 (dog) -> 3; 3 has no later partner; 4 (cat): 5 has no file.
        assert_eq!(ids, ["000001_000003", "000002_000003"]);
        assert_eq!(
            syphus_message(&r.units[0].annotation),
            "image a:\nA person.\nSomeone.\nperson: [1.5, 2.0, 3, 4]\nimage b:\nA person and a dog.\nperson: [5, 6, 7, 8.25]\ndog: [0, 0, 2, 2]"
        );
        let UnitMedia::Images { items } = &r.units[1].media else {
            panic!()
        };
        assert_eq!(items[0].key, "000002");
        assert!(items[1].path.ends_with("images/000003.jpg"));
        let errors: Vec<&str> = r.rejects.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.contains("no image file 000005.jpg")));
        assert!(errors.iter().any(|e| e.contains("image id 9")));
        assert!(errors.iter().any(|e| e.contains("malformed")));
        assert!(r.rejects.iter().all(|r| r.path.ends_with("inst.json")));
    }

    #[test]
    fn malformed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = corpus(dir.path());
        std::fs::write(dir.path().join("inst.json"), b"{\"images\": 3}").unwrap();
        let err = scan(&s).err().unwrap().to_string();
        assert!(err.contains("inst.json"), "{err}");
    }
}
