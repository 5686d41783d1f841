//! The one module that talks polars for our own tables: `units.parquet`, `frames.parquet`,
//! `dedup.parquet` and `rejects/{stage}.parquet` under `OUT/{CODE}/`. Rows go in and come out
//! as our domain types (`Unit`, `FrameRecord`, `DedupRow`, `Reject`); frames are built
//! column-wise.
//!
//! Scenario-specific parts of a unit (its media list, annotation entry, annotation times) are
//! stored as JSON text columns so that one table shape serves every corpus; the flat columns
//! (`kind`, `path`, `start_s`, `end_s`) are there for people who query the table with pandas.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::model::{DedupRow, FrameRecord, Method, Reject, Unit, UnitMedia};

fn table_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Json {
        path: path.to_path_buf(),
        message: format!("table: {e}"),
    }
}

fn write_df(path: &Path, mut df: DataFrame) -> Result<()> {
    crate::atomic::write_with(path, |f| {
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .set_parallel(false)
            .finish(&mut df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
}

fn read_df(path: &Path) -> Result<DataFrame> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(f)
        .finish()
        .map_err(|e| table_err(path, e))
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serialisable")
}

/// Number of rows of any parquet file (read from its footer only).
pub fn count_rows(path: &Path) -> Result<u64> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(f)
        .num_rows()
        .map(|n| n as u64)
        .map_err(|e| table_err(path, e))
}

/// One string column of a parquet file, reading no other column.
pub fn read_string_column(path: &Path, name: &str) -> Result<Vec<String>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(f)
        .with_columns(Some(vec![name.to_string()]))
        .finish()
        .map_err(|e| table_err(path, e))?;
    strings(&df, path, name)
}

/// Writes `units.parquet`: the flat columns people query (`unit_id`, `scenario`, `source`,
/// `kind`, `path`, `start_s`, `end_s`, `duration_s`, `images`, `media_found`) and the JSON
/// columns stages read back (`media`, `times`, `annotation`, `records`). `media` gives each media path's
/// probe, for durations.
pub fn write_units(
    path: &Path,
    code: crate::config::Code,
    units: &[Unit],
    media: &std::collections::BTreeMap<String, crate::model::MediaRow>,
) -> Result<()> {
    let n = units.len();
    let mut kind = Vec::with_capacity(n);
    let mut media_path = Vec::with_capacity(n);
    let mut start = Vec::with_capacity(n);
    let mut end = Vec::with_capacity(n);
    let mut duration = Vec::with_capacity(n);
    let mut images = Vec::with_capacity(n);
    for u in units {
        match &u.media {
            UnitMedia::Video {
                path,
                start: s,
                end: e,
                ..
            } => {
                let p = path.to_string_lossy().into_owned();
                let probed = media.get(&p).and_then(|m| m.duration_s);
                let stop = match (e, probed) {
                    (Some(e), Some(d)) => Some(e.min(d)),
                    (e, d) => e.or(d),
                };
                kind.push("video");
                duration.push(stop.map(|t| (t - s.unwrap_or(0.0)).max(0.0)));
                media_path.push(p);
                start.push(*s);
                end.push(*e);
                images.push(None);
            }
            UnitMedia::Images { items } => {
                kind.push("images");
                media_path.push(
                    items
                        .first()
                        .map(|i| i.path.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                start.push(None);
                end.push(None);
                duration.push(None);
                images.push(Some(items.len() as u32));
            }
            UnitMedia::Missing { expected } => {
                kind.push("missing");
                media_path.push(expected.clone());
                start.push(None);
                end.push(None);
                duration.push(None);
                images.push(None);
            }
        }
    }
    let code = code.to_string();
    let cols = vec![
        Column::new(
            "unit_id".into(),
            units.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new("scenario".into(), vec![code.as_str(); n]),
        Column::new(
            "source".into(),
            units.iter().map(|u| u.source.as_str()).collect::<Vec<_>>(),
        ),
        Column::new("kind".into(), kind),
        Column::new("path".into(), media_path),
        Column::new("start_s".into(), start),
        Column::new("end_s".into(), end),
        Column::new("duration_s".into(), duration),
        Column::new("images".into(), images),
        Column::new(
            "media_found".into(),
            units
                .iter()
                .map(|u| !matches!(u.media, UnitMedia::Missing { .. }))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "media".into(),
            units.iter().map(|u| json(&u.media)).collect::<Vec<_>>(),
        ),
        Column::new(
            "times".into(),
            units.iter().map(|u| json(&u.times)).collect::<Vec<_>>(),
        ),
        Column::new(
            "annotation".into(),
            units
                .iter()
                .map(|u| json(&u.annotation))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "records".into(),
            units.iter().map(|u| json(&u.records)).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

/// Writes `media.parquet`, one row per media file, in the order given.
pub fn write_media(path: &Path, rows: &[crate::model::MediaRow]) -> Result<()> {
    let n = rows.len();
    let cols = vec![
        Column::new(
            "path".into(),
            rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "kind".into(),
            rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "bytes".into(),
            rows.iter().map(|r| r.bytes).collect::<Vec<_>>(),
        ),
        Column::new(
            "width".into(),
            rows.iter().map(|r| r.width).collect::<Vec<_>>(),
        ),
        Column::new(
            "height".into(),
            rows.iter().map(|r| r.height).collect::<Vec<_>>(),
        ),
        Column::new("fps".into(), rows.iter().map(|r| r.fps).collect::<Vec<_>>()),
        Column::new(
            "duration_s".into(),
            rows.iter().map(|r| r.duration_s).collect::<Vec<_>>(),
        ),
        Column::new(
            "codec".into(),
            rows.iter().map(|r| r.codec.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "rotation".into(),
            rows.iter().map(|r| r.rotation).collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

/// Reads `media.parquet` back (the merge joins the partitions' probes instead of probing again).
pub fn read_media(path: &Path) -> Result<Vec<crate::model::MediaRow>> {
    let df = read_df(path)?;
    let err = |e| table_err(path, e);
    let opt_str = |name: &str| -> Result<Vec<Option<String>>> {
        let ca = df
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(err)?;
        Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
    };
    let p = strings(&df, path, "path")?;
    let kind = strings(&df, path, "kind")?;
    let bytes: Vec<Option<u64>> = df
        .column("bytes")
        .and_then(|c| c.u64().map(|ca| ca.iter().collect()))
        .map_err(err)?;
    let opt_u32 = |name: &str| -> Result<Vec<Option<u32>>> {
        df.column(name)
            .and_then(|c| c.u32().map(|ca| ca.iter().collect()))
            .map_err(err)
    };
    let opt_f64 = |name: &str| -> Result<Vec<Option<f64>>> {
        df.column(name)
            .and_then(|c| c.f64().map(|ca| ca.iter().collect()))
            .map_err(err)
    };
    let (width, height) = (opt_u32("width")?, opt_u32("height")?);
    let (fps, duration) = (opt_f64("fps")?, opt_f64("duration_s")?);
    let rotation: Vec<Option<i32>> = df
        .column("rotation")
        .and_then(|c| c.i32().map(|ca| ca.iter().collect()))
        .map_err(err)?;
    let (codec, error) = (opt_str("codec")?, opt_str("error")?);
    Ok((0..p.len())
        .map(|i| crate::model::MediaRow {
            path: p[i].clone(),
            kind: kind[i].clone(),
            bytes: bytes[i],
            width: width[i],
            height: height[i],
            fps: fps[i],
            duration_s: duration[i],
            codec: codec[i].clone(),
            rotation: rotation[i],
            error: error[i].clone(),
        })
        .collect())
}

/// Writes `annotations.parquet`, one row per annotation item, in the order given.
pub fn write_annotations(path: &Path, rows: &[crate::model::AnnotationRow]) -> Result<()> {
    let n = rows.len();
    let cols = vec![
        Column::new(
            "unit_id".into(),
            rows.iter().map(|r| r.unit_id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "t_start".into(),
            rows.iter().map(|r| r.t_start).collect::<Vec<_>>(),
        ),
        Column::new(
            "t_end".into(),
            rows.iter().map(|r| r.t_end).collect::<Vec<_>>(),
        ),
        Column::new(
            "text".into(),
            rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "kind".into(),
            rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

pub fn read_units(path: &Path) -> Result<Vec<Unit>> {
    let df = read_df(path)?;
    let s = |name: &str| -> Result<Vec<String>> { strings(&df, path, name) };
    let (ids, media, times, ann) = (s("unit_id")?, s("media")?, s("times")?, s("annotation")?);
    let sources = s("source")?;
    let records = s("records")?;
    let parse = |what: &str, text: &str| -> Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| table_err(path, format!("{what}: {e}")))
    };
    let mut units = Vec::with_capacity(ids.len());
    for i in 0..ids.len() {
        units.push(Unit {
            id: ids[i].clone(),
            source: sources[i].clone(),
            media: serde_json::from_value(parse("media", &media[i])?)
                .map_err(|e| table_err(path, format!("media: {e}")))?,
            times: serde_json::from_value(parse("times", &times[i])?)
                .map_err(|e| table_err(path, format!("times: {e}")))?,
            annotation: parse("annotation", &ann[i])?,
            records: serde_json::from_value(parse("records", &records[i])?)
                .map_err(|e| table_err(path, format!("records: {e}")))?,
        });
    }
    Ok(units)
}

fn strings(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<String>> {
    let col = df.column(name).map_err(|e| table_err(path, e))?;
    let ca = col.str().map_err(|e| table_err(path, e))?;
    Ok(ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
}

fn u32s(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<u32>> {
    let col = df.column(name).map_err(|e| table_err(path, e))?;
    let ca = col.u32().map_err(|e| table_err(path, e))?;
    Ok(ca.iter().map(|v| v.unwrap_or(0)).collect())
}

pub fn write_frames(path: &Path, frames: &[FrameRecord]) -> Result<()> {
    let n = frames.len();
    let cols = vec![
        Column::new(
            "image_id".into(),
            frames
                .iter()
                .map(|f| f.image_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "unit_id".into(),
            frames
                .iter()
                .map(|f| f.unit_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "index".into(),
            frames.iter().map(|f| f.index).collect::<Vec<_>>(),
        ),
        Column::new(
            "time_s".into(),
            frames.iter().map(|f| f.time_s).collect::<Vec<_>>(),
        ),
        Column::new(
            "width".into(),
            frames.iter().map(|f| f.width).collect::<Vec<_>>(),
        ),
        Column::new(
            "height".into(),
            frames.iter().map(|f| f.height).collect::<Vec<_>>(),
        ),
        Column::new(
            "pixel_hash".into(),
            frames
                .iter()
                .map(|f| f.pixel_hash.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "file".into(),
            frames.iter().map(|f| f.file.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "bytes".into(),
            frames.iter().map(|f| f.bytes).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

pub fn read_frames(path: &Path) -> Result<Vec<FrameRecord>> {
    let df = read_df(path)?;
    let image_id = strings(&df, path, "image_id")?;
    let unit_id = strings(&df, path, "unit_id")?;
    let index = u32s(&df, path, "index")?;
    let width = u32s(&df, path, "width")?;
    let height = u32s(&df, path, "height")?;
    let pixel_hash = strings(&df, path, "pixel_hash")?;
    let file = strings(&df, path, "file")?;
    let time: Vec<Option<f64>> = df
        .column("time_s")
        .and_then(|c| c.f64().map(|ca| ca.iter().collect()))
        .map_err(|e| table_err(path, e))?;
    let bytes: Vec<u64> = df
        .column("bytes")
        .and_then(|c| {
            c.u64()
                .map(|ca| ca.iter().map(|v| v.unwrap_or(0)).collect())
        })
        .map_err(|e| table_err(path, e))?;
    Ok((0..image_id.len())
        .map(|i| FrameRecord {
            image_id: image_id[i].clone(),
            unit_id: unit_id[i].clone(),
            index: index[i],
            time_s: time[i],
            width: width[i],
            height: height[i],
            pixel_hash: pixel_hash[i].clone(),
            file: file[i].clone(),
            bytes: bytes[i],
        })
        .collect())
}

pub fn write_rejects(path: &Path, rejects: &[Reject]) -> Result<()> {
    let mut rows = rejects.to_vec();
    rows.sort();
    let n = rows.len();
    let col = |name: &str, f: fn(&Reject) -> &str| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let cols = vec![
        col("stage", |r| &r.stage),
        col("item", |r| &r.item),
        col("path", |r| &r.path),
        col("error", |r| &r.error),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

pub fn read_rejects(path: &Path) -> Result<Vec<Reject>> {
    let df = read_df(path)?;
    let (stage, item, p, error) = (
        strings(&df, path, "stage")?,
        strings(&df, path, "item")?,
        strings(&df, path, "path")?,
        strings(&df, path, "error")?,
    );
    Ok((0..stage.len())
        .map(|i| Reject {
            stage: stage[i].clone(),
            item: item[i].clone(),
            path: p[i].clone(),
            error: error[i].clone(),
        })
        .collect())
}

/// `dedup.parquet`: one row per dropped frame, sorted by `dropped_id`
/// (`schemas/dedup.schema.json`).
pub fn write_dedup(path: &Path, rows: &[DedupRow]) -> Result<()> {
    let mut rows = rows.to_vec();
    rows.sort();
    let n = rows.len();
    let cols = vec![
        Column::new(
            "dropped_id".into(),
            rows.iter()
                .map(|r| r.dropped_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "kept_id".into(),
            rows.iter().map(|r| r.kept_id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "method".into(),
            rows.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "distance".into(),
            rows.iter().map(|r| r.distance).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(n, cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

pub fn read_dedup(path: &Path) -> Result<Vec<DedupRow>> {
    let df = read_df(path)?;
    let dropped = strings(&df, path, "dropped_id")?;
    let kept = strings(&df, path, "kept_id")?;
    let method = strings(&df, path, "method")?;
    let distance = u32s(&df, path, "distance")?;
    (0..dropped.len())
        .map(|i| {
            Ok(DedupRow {
                dropped_id: dropped[i].clone(),
                kept_id: kept[i].clone(),
                method: Method::parse(&method[i]).ok_or_else(|| {
                    table_err(path, format!("unknown dedup method {:?}", method[i]))
                })?,
                distance: distance[i],
            })
        })
        .collect()
}

/// A features shard (`schemas/features.schema.json`): `image_id` and `embedding`
/// (list<float32>, `dim` values per row), rows in the given order. `vectors` is row-major.
pub fn write_features(path: &Path, ids: &[String], dim: usize, vectors: &[f32]) -> Result<()> {
    if vectors.len() != ids.len() * dim {
        return Err(table_err(
            path,
            format!("{} values for {} rows of {dim}", vectors.len(), ids.len()),
        ));
    }
    let mut builder = ListPrimitiveChunkedBuilder::<Float32Type>::new(
        "embedding".into(),
        ids.len(),
        vectors.len(),
        DataType::Float32,
    );
    for row in vectors.chunks_exact(dim.max(1)).take(ids.len()) {
        builder.append_slice(row);
    }
    let cols = vec![
        Column::new("image_id".into(), ids),
        builder.finish().into_series().into_column(),
    ];
    let df = DataFrame::new(ids.len(), cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

/// Reads a features shard: ids, vector length, row-major vectors.
pub fn read_features(path: &Path) -> Result<(Vec<String>, usize, Vec<f32>)> {
    let df = read_df(path)?;
    let ids = strings(&df, path, "image_id")?;
    let list = df
        .column("embedding")
        .and_then(|c| c.list().cloned())
        .map_err(|e| table_err(path, e))?;
    let mut dim = None;
    let mut vectors = Vec::new();
    for (i, row) in list.amortized_iter().enumerate() {
        let row = row.ok_or_else(|| table_err(path, format!("row {i}: no embedding")))?;
        let vals = row.as_ref().f32().map_err(|e| table_err(path, e))?;
        let d = *dim.get_or_insert(vals.len());
        if vals.len() != d {
            return Err(table_err(
                path,
                format!("row {i}: {} values, earlier rows have {d}", vals.len()),
            ));
        }
        vectors.extend(vals.into_no_null_iter());
    }
    Ok((ids, dim.unwrap_or(0), vectors))
}

/// `pairs.parquet` (`schemas/pairs.schema.json`): each image's visually nearest others within
/// the configured similarity band; rows sorted by (image_id, rank).
pub fn write_pairs(path: &Path, rows: &[(String, String, u32, f32)]) -> Result<()> {
    let cols = vec![
        Column::new(
            "image_id".into(),
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "other_id".into(),
            rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ),
        Column::new("rank".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new(
            "cosine".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
    ];
    let df = DataFrame::new(rows.len(), cols).map_err(|e| table_err(path, e))?;
    write_df(path, df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageItem;

    #[test]
    fn media_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            crate::model::MediaRow {
                path: "a/b.jpg".into(),
                kind: "image".into(),
                bytes: Some(10),
                width: Some(4),
                height: Some(3),
                fps: None,
                duration_s: None,
                codec: None,
                rotation: None,
                error: None,
            },
            crate::model::MediaRow {
                path: "v.mp4".into(),
                kind: "video".into(),
                bytes: None,
                width: None,
                height: None,
                fps: Some(29.97),
                duration_s: Some(12.5),
                codec: Some("h264".into()),
                rotation: Some(90),
                error: Some("v.mp4: damaged".into()),
            },
        ];
        let p = dir.path().join("media.parquet");
        write_media(&p, &rows).unwrap();
        assert_eq!(read_media(&p).unwrap(), rows);
    }

    #[test]
    fn units_round_trip_and_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let units = vec![
            Unit {
                id: "v_a".into(),
                source: "train.json".into(),
                media: UnitMedia::Video {
                    path: "videos/v_a.mp4".into(),
                    start: Some(1.5),
                    end: None,
                    key_prefix: "v_a".into(),
                    key_width: 4,
                    segments: Vec::new(),
                    chosen: Vec::new(),
                },
                times: vec![0.5, 2.0],
                annotation: serde_json::json!({"sentences": ["a", "b"]}),
                records: vec![
                    crate::model::SourceRecord {
                        position: 3,
                        entry: serde_json::json!({"sentences": ["a"]}),
                    },
                    crate::model::SourceRecord {
                        position: crate::model::SourceRecord::position(1, 0),
                        entry: serde_json::Value::Null,
                    },
                ],
            },
            Unit {
                id: "pair".into(),
                source: "x.jsonl:3".into(),
                media: UnitMedia::Images {
                    items: vec![ImageItem {
                        path: "x/1.png".into(),
                        key: "00001_1".into(),
                    }],
                },
                times: vec![],
                annotation: serde_json::json!(null),
                records: Vec::new(),
            },
        ];
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        let media = Default::default();
        write_units(&a, crate::config::Code::DC, &units, &media).unwrap();
        write_units(&b, crate::config::Code::DC, &units, &media).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(read_units(&a).unwrap(), units);
    }

    #[test]
    fn frames_and_rejects_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let frames = vec![FrameRecord {
            image_id: "DC_IMG_v_a_0000".into(),
            unit_id: "v_a".into(),
            index: 0,
            time_s: Some(0.0),
            width: 224,
            height: 224,
            pixel_hash: "ab".into(),
            file: "frames/ab.png".into(),
            bytes: 10,
        }];
        let p = dir.path().join("frames.parquet");
        write_frames(&p, &frames).unwrap();
        assert_eq!(read_frames(&p).unwrap(), frames);
        let rejects = vec![Reject {
            stage: "scan".into(),
            item: "v_b".into(),
            path: "videos/v_b.mp4".into(),
            error: "missing".into(),
        }];
        let p = dir.path().join("r.parquet");
        write_rejects(&p, &rejects).unwrap();
        assert_eq!(read_rejects(&p).unwrap(), rejects);
        write_rejects(&p, &[]).unwrap();
        assert!(read_rejects(&p).unwrap().is_empty());
    }

    #[test]
    fn dedup_rows_round_trip_sorted_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let row = |d: &str, k: &str, m, distance| DedupRow {
            dropped_id: d.into(),
            kept_id: k.into(),
            method: m,
            distance,
        };
        let rows = vec![
            row("X_IMG_b", "X_IMG_a", Method::Phash, 4),
            row("X_IMG_aa", "X_IMG_a", Method::Exact, 0),
        ];
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_dedup(&a, &rows).unwrap();
        let mut reversed = rows.clone();
        reversed.reverse();
        write_dedup(&b, &reversed).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let back = read_dedup(&a).unwrap();
        assert_eq!(back[0].dropped_id, "X_IMG_aa");
        assert_eq!(back, vec![rows[1].clone(), rows[0].clone()]);
        write_dedup(&a, &[]).unwrap();
        assert!(read_dedup(&a).unwrap().is_empty());
    }

    #[test]
    fn garbage_table_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("units.parquet");
        std::fs::write(&p, b"not parquet").unwrap();
        let err = read_units(&p).unwrap_err().to_string();
        assert!(err.contains("units.parquet"), "{err}");
    }
}
