//! VST: visual storytelling (VIST). Annotation files: VIST story-in-sequence files
//! (`sis/train.story-in-sequence.json`, ...), each `{"images": [...], "albums": [...],
//! "annotations": [[{...}], ...]}`: Flickr photos (`id`, `album_id`, `title`, `tags`), albums
//! (`id`, `title`, `description`) and story sentences (`story_id`, `album_id`,
//! `photo_flickr_id`, `worker_arranged_photo_order`, `original_text`, `text`; VIST wraps each
//! sentence in a one-element list, a bare object is accepted too).
//!
//! Media: the photos as VIST's download script lays them out (`images/{split}/{id}.jpg`),
//! found anywhere under `source.media` as `{photo id}.jpg|.jpeg|.png` (`.png` over `.jpg` over
//! `.jpeg` when one id has several).
//!
//! One unit per album of the `albums` lists (stories or not, as Syphus's loader sends a query
//! for every album): unit id = the album id, frame ids `VST_IMG_{photo id}`. The album's
//! photos are the images listed with its `album_id`; they are ordered as the album's first
//! story (in file order) arranges them (`worker_arranged_photo_order`), then the others by id
//! (numerically when both ids are numbers). A photo without a file is rejected and the album
//! keeps its other photos; an album with no photo file at all is rejected; so are malformed
//! records (an album without a string `title` and `description`, an image without a string
//! `title` and `tags`, a sentence without a string `text`: what the loader reads), images of
//! albums no `albums` list has, and story sentences of photos no `images` list has (the loader
//! files a sentence under its photo's record; it belongs to that photo's album).
//!
//! Syphus entry: `{"album": record, "photos": [photo id, ...] (frame order), "images": [the
//! album's image records in file order], "annotations": [[sentence record], ...] (its photos'
//! sentences in file order)}`, the records as the file gives them. Message: see
//! [`syphus_message`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{index_images, media_rel, ScanResult};
use crate::config::Scenario;
use crate::error::Result;
use crate::model::{ImageItem, Reject, Unit, UnitMedia};

const STAGE: &str = "scan";

/// One story sentence, checked.
struct Sentence {
    story_id: String,
    photo_id: String,
    order: i64,
    record: Value,
}

/// What the files say about one album.
#[derive(Default)]
struct Album {
    record: Option<Value>,
    /// Its place in the `albums` lists.
    position: u64,
    /// The file that listed it (or first named it).
    source: String,
    /// Photo id -> its image record.
    images: BTreeMap<String, Option<Value>>,
    /// Its image records in file order, as written (a photo listed twice is there twice).
    image_records: Vec<Value>,
    sentences: Vec<Sentence>,
}

pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    let files = index_images(&scenario.media)?;
    let media = media_rel(scenario);
    let mut result = ScanResult::default();
    let mut albums: BTreeMap<String, Album> = BTreeMap::new();
    // Photo id -> the album its image record names: a story sentence belongs to its photo's
    // album, as Syphus's loader files it.
    let mut photo_album: BTreeMap<String, String> = BTreeMap::new();
    for (file_index, file) in scenario.annotations.iter().enumerate() {
        let file_name = file.display().to_string();
        let doc = super::read_json_object(
            file,
            "a VIST story-in-sequence object {\"images\", \"albums\", \"annotations\"}",
        )?;
        let mut reject = |item: String, error: String| {
            result.rejects.push(Reject {
                stage: STAGE.into(),
                item,
                path: file_name.clone(),
                error,
            })
        };
        let list = |key: &str| -> std::result::Result<Vec<Value>, String> {
            match doc.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(v)) => Ok(v.clone()),
                Some(_) => Err(format!("`{key}` is not a list")),
            }
        };
        let (album_recs, image_recs, ann_recs) =
            match (list("albums"), list("images"), list("annotations")) {
                (Ok(a), Ok(i), Ok(n)) => (a, i, n),
                (a, i, n) => {
                    let e = [a.err(), i.err(), n.err()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(crate::error::Error::Json {
                        path: file.to_path_buf(),
                        message: format!("not a VIST story-in-sequence file: {e}"),
                    });
                }
            };
        for (n, rec) in album_recs.into_iter().enumerate() {
            let Some(id) = id_field(&rec, "id") else {
                reject(
                    format!("albums[{n}]"),
                    "malformed album: `id` missing or not a string".into(),
                );
                continue;
            };
            if !(rec["title"].is_string() && rec["description"].is_string()) {
                reject(
                    id,
                    "malformed album: `title` or `description` missing or not a string".into(),
                );
                continue;
            }
            let album = albums.entry(id.clone()).or_default();
            if album.record.is_some() {
                reject(
                    id.clone(),
                    format!("duplicate album {id}: the first record is kept"),
                );
                continue;
            }
            album.record = Some(rec);
            album.position = crate::model::SourceRecord::position(file_index, n);
            album.source = file_name.clone();
        }
        for (n, rec) in image_recs.into_iter().enumerate() {
            let (Some(id), Some(album_id)) = (id_field(&rec, "id"), id_field(&rec, "album_id"))
            else {
                reject(
                    format!("images[{n}]"),
                    "malformed image: `id` or `album_id` missing or not a string".into(),
                );
                continue;
            };
            if let Err(e) = check_photo_id(&id) {
                reject(format!("images[{n}]"), format!("malformed image: {e}"));
                continue;
            }
            if !(rec["title"].is_string() && rec["tags"].is_string()) {
                reject(
                    format!("images[{n}]"),
                    "malformed image: `title` or `tags` missing or not a string".into(),
                );
                continue;
            }
            photo_album.insert(id.clone(), album_id.clone());
            let album = albums.entry(album_id).or_default();
            if album.source.is_empty() {
                album.source = file_name.clone();
            }
            album.image_records.push(rec.clone());
            album.images.entry(id).or_insert(None).get_or_insert(rec);
        }
        for (n, rec) in ann_recs.into_iter().enumerate() {
            let rec = match rec {
                Value::Array(mut v) if v.len() == 1 => v.remove(0),
                other => other,
            };
            match parse_sentence(rec) {
                Ok(s) => {
                    let Some(album_id) = photo_album.get(&s.photo_id) else {
                        reject(
                            format!("annotations[{n}]"),
                            format!(
                                "story {} names photo {}, which no `images` list has (Syphus's loader files a sentence under its photo's record)",
                                s.story_id, s.photo_id
                            ),
                        );
                        continue;
                    };
                    let album = albums.entry(album_id.clone()).or_default();
                    album.sentences.push(s);
                }
                Err(e) => reject(
                    format!("annotations[{n}]"),
                    format!("malformed annotation: {e}"),
                ),
            }
        }
    }
    let mut annotated: BTreeSet<&str> = BTreeSet::new();
    for (album_id, album) in &albums {
        let reject = |error: String| Reject {
            stage: STAGE.into(),
            item: album_id.clone(),
            path: album.source.clone(),
            error,
        };
        annotated.extend(album.images.keys().map(String::as_str));
        let Some(record) = &album.record else {
            result.rejects.push(reject(format!(
                "album {album_id} is named by {} image(s) and {} story sentence(s) but no `albums` list has it",
                album.images.values().filter(|r| r.is_some()).count(),
                album.sentences.len()
            )));
            continue;
        };
        let mut photos = Vec::new();
        for photo in photo_order(album) {
            if files.contains_key(&photo) {
                photos.push(photo);
            } else {
                result.rejects.push(Reject {
                    stage: STAGE.into(),
                    item: photo.clone(),
                    path: album.source.clone(),
                    error: format!(
                        "no photo {photo}.jpg|.jpeg|.png of album {album_id} under {}; the album keeps its other photos",
                        scenario.media.display()
                    ),
                });
            }
        }
        let none_found = photos.is_empty().then(|| {
            reject(format!(
                "album {album_id}: none of its {} photo(s) has a file under {}",
                album.images.len(),
                scenario.media.display()
            ))
        });
        if none_found.is_some() {
            if scenario.config.metadata.require_media {
                result.rejects.extend(none_found);
                continue;
            }
            // Annotation only: the Syphus entry names every photo of the album.
            photos = photo_order(album);
        }
        let images = album.image_records.clone();
        let annotations: Vec<Value> = album
            .sentences
            .iter()
            .map(|s| Value::Array(vec![s.record.clone()]))
            .collect();
        let annotation = json!({
            "album": record,
            "photos": photos,
            "images": images,
            "annotations": annotations,
        });
        let unit = |media| Unit {
            id: album_id.clone(),
            source: album.source.clone(),
            media,
            times: Vec::new(),
            annotation,
            records: vec![crate::model::SourceRecord {
                position: album.position,
                entry: Value::Null,
            }],
        };
        match none_found {
            Some(r) => result.media_missing(
                scenario,
                r,
                unit(UnitMedia::Missing {
                    expected: media.join("{photo id}.jpg").display().to_string(),
                }),
            ),
            None => result.units.push(unit(UnitMedia::Images {
                items: photos
                    .iter()
                    .map(|p| ImageItem {
                        path: media.join(&files[p]),
                        key: p.clone(),
                    })
                    .collect(),
            })),
        }
    }
    result.unannotated = files
        .keys()
        .filter(|k| !annotated.contains(k.as_str()))
        .count() as u64;
    result.units.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(result)
}

/// The album's photos: its first story's, in `worker_arranged_photo_order`, then the others by
/// id.
fn photo_order(album: &Album) -> Vec<String> {
    let mut order = Vec::new();
    if let Some(first) = album.sentences.first() {
        for s in story(album, &first.story_id) {
            if !order.contains(&s.photo_id) {
                order.push(s.photo_id.clone());
            }
        }
    }
    let mut rest: Vec<&String> = album.images.keys().filter(|p| !order.contains(p)).collect();
    rest.sort_by(|a, b| id_cmp(a, b));
    order.extend(rest.into_iter().cloned());
    order
}

/// The sentences of one story, in `worker_arranged_photo_order` (file order on ties).
fn story<'a>(album: &'a Album, story_id: &str) -> Vec<&'a Sentence> {
    let mut v: Vec<&Sentence> = album
        .sentences
        .iter()
        .filter(|s| s.story_id == story_id)
        .collect();
    v.sort_by_key(|s| s.order);
    v
}

/// Numeric order when both ids are numbers, else string order.
fn id_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

/// A string field, or a number written as a string (VIST ids are strings; some tools rewrite
/// them as numbers); trimmed, non-empty.
fn id_field(rec: &Value, key: &str) -> Option<String> {
    match &rec[key] {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_photo_id(id: &str) -> std::result::Result<(), String> {
    if id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(format!("photo id {id:?} is not a file stem"));
    }
    Ok(())
}

fn parse_sentence(record: Value) -> std::result::Result<Sentence, String> {
    if !record.is_object() {
        return Err("not an object (or a one-object list)".into());
    }
    let field =
        |key: &str| id_field(&record, key).ok_or(format!("`{key}` missing or not a string"));
    let story_id = field("story_id")?;
    let photo_id = field("photo_flickr_id")?;
    check_photo_id(&photo_id)?;
    let order = match &record["worker_arranged_photo_order"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("`worker_arranged_photo_order` missing or not an integer")?;
    if !record["text"].is_string() {
        return Err("`text` missing or not a string".into());
    }
    Ok(Sentence {
        story_id,
        photo_id,
        order,
        record,
    })
}

/// Syphus's VST message for an album entry, as its loader builds it: `title: {album title}`,
/// `description: {album description}`, then for each image record of the album in file
/// order a blank line, `image: {title}`, `tags: {tags}` and `annotations: ` + Python's
/// `json.dumps` of the `text` of every story sentence of that photo, in file order; each line
/// ends with `\n`. Title and tags are as written; a photo listed twice is listed twice, with
/// its last record's title and tags.
pub fn syphus_message(entry: &Value) -> String {
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let album = &entry["album"];
    let images: Vec<&Value> = entry["images"].as_array().into_iter().flatten().collect();
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for rec in &images {
        if let Some(id) = id_field(rec, "id") {
            last.insert(id, rec);
        }
    }
    let mut texts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for rec in entry["annotations"].as_array().into_iter().flatten() {
        let rec = match rec {
            Value::Array(v) if v.len() == 1 => &v[0],
            other => other,
        };
        if let Some(photo) = id_field(rec, "photo_flickr_id") {
            texts.entry(photo).or_default().push(rec["text"].clone());
        }
    }
    let mut m = format!(
        "title: {}\ndescription: {}\n",
        str_of(&album["title"]),
        str_of(&album["description"])
    );
    for rec in images {
        let id = id_field(rec, "id").unwrap_or_default();
        let rec = last.get(&id).copied().unwrap_or(rec);
        let texts = Value::Array(texts.get(&id).cloned().unwrap_or_default());
        m.push_str(&format!(
            "\nimage: {}\ntags: {}\nannotations: {}\n",
            str_of(&rec["title"]),
            str_of(&rec["tags"]),
            super::py_json_dumps(&texts)
        ));
    }
    m
}

/// How many stories an entry holds.
pub fn story_count(annotation: &Value) -> usize {
    annotation["annotations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let r = r.as_array().and_then(|v| v.first()).unwrap_or(r);
            id_field(r, "story_id")
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// `train.story-in-sequence.json` of the given album entries (in file order): their albums,
/// image records and story sentences.
pub fn native(records: &[(&Unit, &Value)]) -> Value {
    let mut albums = Vec::new();
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for (_, entry) in records {
        albums.push(entry["album"].clone());
        images.extend(entry["images"].as_array().cloned().unwrap_or_default());
        annotations.extend(entry["annotations"].as_array().cloned().unwrap_or_default());
    }
    json!({"images": images, "albums": albums, "annotations": annotations})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sentence(story: &str, photo: &str, order: i64, text: &str) -> Value {
        json!([{"album_id": "7", "story_id": story, "photo_flickr_id": photo,
                "worker_arranged_photo_order": order, "original_text": text,
                "text": text.to_lowercase(), "tier": "story-in-sequence"}])
    }

    fn write_corpus(dir: &Path) -> Scenario {
        let media = dir.join("images/train");
        std::fs::create_dir_all(&media).unwrap();
        for f in ["10.jpg", "11.png", "12.jpg", "13.jpeg", "99.jpg"] {
            std::fs::write(media.join(f), b"x").unwrap();
        }
        let doc = json!({
            "images": [
                {"id": "10", "album_id": "7", "title": "Gate", "tags": "park gate"},
                {"id": "11", "album_id": "7", "title": "", "tags": ""},
                {"id": "12", "album_id": "7", "title": "Lake", "tags": ""},
                {"id": "13", "album_id": "7", "title": "Dog", "tags": "dog"},
                {"id": "14", "album_id": "7", "title": "Gone", "tags": ""},
                {"id": "20", "album_id": "8", "title": "Nothing here", "tags": ""},
                {"album_id": "8"}
            ],
            "albums": [
                {"id": "7", "title": "A day out ", "description": "In the park."},
                {"id": "8", "title": "Empty", "description": ""},
                {"id": "9", "title": "No story", "description": ""}
            ],
            "annotations": [
                sentence("100", "12", 1, "Then the lake."),
                sentence("100", "10", 0, " We went in. "),
                sentence("101", "13", 0, "A dog."),
                [{"album_id": "7", "story_id": "101"}],
                [{"album_id": "8", "story_id": "200", "photo_flickr_id": "20",
                  "worker_arranged_photo_order": 0, "text": "nothing"}]
            ]
        });
        std::fs::write(dir.join("sis.json"), doc.to_string()).unwrap();
        crate::corpus::tests::scenario(dir, "VST", &["sis.json"], "images", "")
    }

    #[test]
    fn albums_photos_messages_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let r = scan(&write_corpus(dir.path())).unwrap();
        let ids: Vec<&str> = r.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["7"]);
        let UnitMedia::Images { items } = &r.units[0].media else {
            panic!()
        };
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        // The first story's order (10, 12), then the others by id; 14 has no file.
        assert_eq!(keys, ["10", "12", "11", "13"]);
        assert!(items[2].path.ends_with("images/train/11.png"));
        // The loader's layout: every image record of the album in file order (14 too, which
        // has no file), each with the `text` of its photo's sentences.
        assert_eq!(
            syphus_message(&r.units[0].annotation),
            "title: A day out \ndescription: In the park.\n\nimage: Gate\ntags: park gate\nannotations: [\" we went in. \"]\n\nimage: \ntags: \nannotations: []\n\nimage: Lake\ntags: \nannotations: [\"then the lake.\"]\n\nimage: Dog\ntags: dog\nannotations: [\"a dog.\"]\n\nimage: Gone\ntags: \nannotations: []\n"
        );
        assert_eq!(story_count(&r.units[0].annotation), 2);
        let errors: Vec<(&str, &str)> = r
            .rejects
            .iter()
            .map(|r| (r.item.as_str(), r.error.as_str()))
            .collect();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "images[6]" && e.contains("malformed image")));
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "annotations[3]" && e.contains("photo_flickr_id")));
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "14" && e.contains("no photo 14.jpg")));
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "20" && e.contains("of album 8")));
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "8" && e.contains("none of its 1 photo")));
        assert!(errors
            .iter()
            .any(|(i, e)| *i == "9" && e.contains("none of its 0 photo")));
        assert!(r.rejects.iter().all(|r| r.path.ends_with("sis.json")));
        assert_eq!(r.unannotated, 1, "99.jpg");
        let records: Vec<(&Unit, &Value)> = r.units.iter().map(|u| (u, &u.annotation)).collect();
        let native = native(&records);
        assert_eq!(native["albums"][0]["id"], "7");
        assert_eq!(native["images"].as_array().unwrap().len(), 5);
        assert_eq!(native["annotations"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn malformed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = write_corpus(dir.path());
        std::fs::write(dir.path().join("sis.json"), b"{\"albums\": 3}").unwrap();
        let err = scan(&s).err().unwrap().to_string();
        assert!(
            err.contains("sis.json") && err.contains("`albums`"),
            "{err}"
        );
        std::fs::write(dir.path().join("sis.json"), b"[]").unwrap();
        let err = scan(&s).err().unwrap().to_string();
        assert!(err.contains("sis.json"), "{err}");
    }
}
