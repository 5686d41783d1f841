//! The images parquet the Otter trainer reads (`{CODE}.parquet`, or `{CODE}-00000-of-000NN.parquet`
//! parts): one row per image, a string column `base64` and the image id as the pandas index.
//!
//! Otter's loader does `pq.ParquetFile(p).iter_batches(1000)` -> `batch.to_pandas()` ->
//! `pd.concat` -> `df.loc[image_id]["base64"]`, so the id must come back as the pandas *index*,
//! not as a column. pandas learns which column is the index from the `pandas` key of the Arrow
//! schema metadata, and pyarrow's two read paths find that metadata in different places:
//! `ParquetFile(..).iter_batches` takes it from the parquet file's key-value metadata, while the
//! dataset reader behind `pd.read_parquet` and `pq.read_table` takes it from the Arrow schema
//! serialised in the `ARROW:schema` key. So the file carries it in both, as pandas' own files do.
//!
//! polars would write its own `ARROW:schema` with strings as `string_view`, a type pyarrow only
//! knows since version 15, and without our metadata; we replace that key with the schema pandas
//! itself writes (`base64: string, image_id: string` plus the `pandas` metadata), so older
//! pyarrow reads the files as well. `tests/python/check_images_parquet.py` checks both paths.
//!
//! Same rows give the same bytes: rows are sorted by id, nothing time- or host-dependent is
//! written.

use std::io;
use std::path::Path;

use base64::Engine as _;
use polars::io::parquet::write::{KeyValueMetadata, ParquetCompression, ParquetWriter};
use polars::prelude::{Column, DataFrame};

use crate::config::Code;
use crate::error::{Error, Result};

/// The index column's name: pandas restores it as the index name, and other readers (polars,
/// duckdb) see a column with a meaningful name rather than `__index_level_0__`.
pub const INDEX_COLUMN: &str = "image_id";
/// The data column Otter reads.
pub const BASE64_COLUMN: &str = "base64";

/// Rows per parquet row group, about: polars cuts a frame into `floor(n / 1000)` equal row
/// groups, so a group holds 1000 to 1999 rows, and a reader going through `iter_batches(1000)`
/// never holds more than one group (about 2000 images, not a whole 2 GB part) in memory.
const ROW_GROUP_ROWS: usize = 1000;

/// The `pandas` metadata as pandas 1.x/2.x writes it (`json.dumps`, keys in pandas' order) for a
/// frame of object-dtype strings with an index named `image_id`. `pandas_version` is fixed (no
/// host-dependent bytes; pandas only compares it with versions before 0.21).
pub const PANDAS_METADATA: &str = r#"{"index_columns": ["image_id"], "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}], "columns": [{"name": "base64", "field_name": "base64", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}, {"name": "image_id", "field_name": "image_id", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}], "attributes": {}, "creator": {"library": "mimicit"}, "pandas_version": "2.2.3"}"#;

/// The `ARROW:schema` value pandas writes for this table: the Arrow IPC schema
/// `base64: string, image_id: string` with [`PANDAS_METADATA`] as its `pandas` metadata, base64.
/// pyarrow's dataset reader (`pd.read_parquet`, `pq.read_table`) takes the schema metadata from
/// this blob, `ParquetFile.iter_batches` from the file's key-value metadata, so both carry it.
/// Generated with pyarrow 26 (`s` = [`PANDAS_METADATA`]):
/// ```text
/// f = [pa.field("base64", pa.string()), pa.field("image_id", pa.string())]
/// print(base64.b64encode(pa.schema(f, metadata={"pandas": s}).serialize().to_pybytes()).decode())
/// ```
const ARROW_SCHEMA: &str = "/////8gCAAAQAAAAAAAKAA4ABgAFAAgACgAAAAABBAAQAAAAAAAKAAwAAAAEAAgACgAAACQCAAAEAAAAAQAAAAwAAAAIAAwABAAIAAgAAAD8AQAABAAAAO0BAAB7ImluZGV4X2NvbHVtbnMiOiBbImltYWdlX2lkIl0sICJjb2x1bW5faW5kZXhlcyI6IFt7Im5hbWUiOiBudWxsLCAiZmllbGRfbmFtZSI6IG51bGwsICJwYW5kYXNfdHlwZSI6ICJ1bmljb2RlIiwgIm51bXB5X3R5cGUiOiAib2JqZWN0IiwgIm1ldGFkYXRhIjogeyJlbmNvZGluZyI6ICJVVEYtOCJ9fV0sICJjb2x1bW5zIjogW3sibmFtZSI6ICJiYXNlNjQiLCAiZmllbGRfbmFtZSI6ICJiYXNlNjQiLCAicGFuZGFzX3R5cGUiOiAidW5pY29kZSIsICJudW1weV90eXBlIjogIm9iamVjdCIsICJtZXRhZGF0YSI6IG51bGx9LCB7Im5hbWUiOiAiaW1hZ2VfaWQiLCAiZmllbGRfbmFtZSI6ICJpbWFnZV9pZCIsICJwYW5kYXNfdHlwZSI6ICJ1bmljb2RlIiwgIm51bXB5X3R5cGUiOiAib2JqZWN0IiwgIm1ldGFkYXRhIjogbnVsbH1dLCAiYXR0cmlidXRlcyI6IHt9LCAiY3JlYXRvciI6IHsibGlicmFyeSI6ICJtaW1pY2l0In0sICJwYW5kYXNfdmVyc2lvbiI6ICIyLjIuMyJ9AAAABgAAAHBhbmRhcwAAAgAAAEQAAAAEAAAA1P///wAAAQUQAAAAHAAAAAQAAAAAAAAACAAAAGltYWdlX2lkAAAAAMj///8QABQACAAGAAcADAAAABAAEAAAAAAAAQUQAAAAHAAAAAQAAAAAAAAABgAAAGJhc2U2NAAABAAEAAQAAAAAAAAA";

/// Length of the standard (padded) base64 text of `n` bytes: the size estimate of one row.
pub fn base64_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

/// Writes `rows` (image id, encoded PNG or JPEG bytes) as an Otter images parquet at `path`,
/// atomically, sorted by id. Returns the file size in bytes. Duplicate ids are refused (pandas
/// `loc` would return several rows).
pub fn write_images_parquet(path: &Path, rows: &[(String, Vec<u8>)]) -> Result<u64> {
    let mut sorted: Vec<&(String, Vec<u8>)> = rows.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::Invalid(format!(
            "{}: image id {} appears more than once",
            path.display(),
            w[0].0
        )));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let ids: Vec<&str> = sorted.iter().map(|r| r.0.as_str()).collect();
    let encoded: Vec<String> = sorted.iter().map(|r| engine.encode(&r.1)).collect();
    let mut df = DataFrame::new(
        sorted.len(),
        vec![
            Column::new(BASE64_COLUMN.into(), encoded),
            Column::new(INDEX_COLUMN.into(), ids),
        ],
    )
    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    write_parquet(
        path,
        &mut df,
        ROW_GROUP_ROWS,
        &[("ARROW:schema", ARROW_SCHEMA), ("pandas", PANDAS_METADATA)],
    )
}

/// Writes a trainer parquet atomically (zstd, `row_group_rows` rows per group, one thread, so
/// the same frame gives the same bytes) with key-value `metadata` (the Arrow schema and the
/// readers' own keys); returns its size in bytes.
pub fn write_parquet(
    path: &Path,
    df: &mut DataFrame,
    row_group_rows: usize,
    metadata: &[(&str, &str)],
) -> Result<u64> {
    let metadata = KeyValueMetadata::from_static(
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut size = 0;
    crate::atomic::write_with(path, |file| {
        size = ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_row_group_size(Some(row_group_rows))
            .with_key_value_metadata(Some(metadata))
            .set_parallel(false)
            .finish(df)
            .map_err(io::Error::other)?;
        Ok(())
    })?;
    Ok(size)
}

/// Groups units into parts of at most `max_part_bytes` each (sizes as estimated by the sum of
/// the base64 lengths of a unit's images, see [`base64_len`]), keeping each unit whole and the
/// units in the given order. Returns unit indices per part. A unit larger than the limit on its
/// own gets a part to itself (a part may then exceed the limit: a unit is never split, since the
/// loader needs all of a unit's frames in one file). No units, no parts.
pub fn plan_parts(unit_sizes: &[u64], max_part_bytes: u64) -> Vec<Vec<usize>> {
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in unit_sizes.iter().enumerate() {
        if !current.is_empty() && current_size.saturating_add(size) > max_part_bytes {
            parts.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size = current_size.saturating_add(size);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// File names of `count` parts: `{CODE}.parquet` for one, else
/// `{CODE}-00000-of-000NN.parquet` ... (index and count zero-padded to 5 digits).
pub fn part_names(code: Code, count: usize) -> Vec<String> {
    match count {
        0 => Vec::new(),
        1 => vec![format!("{code}.parquet")],
        n => (0..n)
            .map(|i| format!("{code}-{i:05}-of-{n:05}.parquet"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn png(seed: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(8, 6, |x, y| {
            image::Rgb([seed, (x * 30) as u8, (y * 40) as u8])
        });
        let mut out = io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn rows() -> Vec<(String, Vec<u8>)> {
        vec![
            ("DC_IMG_v_b_0001".to_string(), png(200)),
            ("DC_IMG_v_a_0000".to_string(), png(10)),
            ("DC_IMG_v_b_0000".to_string(), png(100)),
        ]
    }

    #[test]
    fn base64_len_matches_encoder() {
        let engine = base64::engine::general_purpose::STANDARD;
        for n in 0..10usize {
            assert_eq!(
                base64_len(n as u64),
                engine.encode(vec![7u8; n]).len() as u64
            );
        }
    }

    #[test]
    fn same_rows_give_same_bytes_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        let size = write_images_parquet(&a, &rows()).unwrap();
        let mut reversed = rows();
        reversed.reverse();
        write_images_parquet(&b, &reversed).unwrap();
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(bytes, std::fs::read(&b).unwrap());
        assert_eq!(&bytes[..4], b"PAR1");
        // Only the finished file is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn no_rows_give_a_valid_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.parquet");
        let size = write_images_parquet(&p, &[]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.parquet");
        let mut r = rows();
        r.push(("DC_IMG_v_a_0000".to_string(), png(1)));
        let err = write_images_parquet(&p, &r).unwrap_err().to_string();
        assert!(
            err.contains("DC_IMG_v_a_0000") && err.contains("x.parquet"),
            "{err}"
        );
        assert!(!p.exists());
    }

    #[test]
    fn arrow_schema_carries_the_pandas_metadata() {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(ARROW_SCHEMA)
            .unwrap();
        let needle = PANDAS_METADATA.as_bytes();
        assert!(blob.windows(needle.len()).any(|w| w == needle));
        assert_eq!(&blob[..4], &[0xff; 4], "IPC continuation marker");
    }

    #[test]
    fn pandas_metadata_names_the_index() {
        let meta: serde_json::Value = serde_json::from_str(PANDAS_METADATA).unwrap();
        assert_eq!(meta["index_columns"], serde_json::json!(["image_id"]));
        assert_eq!(meta["columns"][0]["name"], "base64");
        assert_eq!(meta["columns"][1]["field_name"], "image_id");
    }

    #[test]
    fn parts_keep_units_whole_and_under_the_limit() {
        assert!(plan_parts(&[], 10).is_empty());
        assert_eq!(plan_parts(&[3, 3, 3], 10), vec![vec![0, 1, 2]]);
        assert_eq!(plan_parts(&[4, 4, 4], 10), vec![vec![0, 1], vec![2]]);
        assert_eq!(plan_parts(&[5, 5, 5, 5], 10), vec![vec![0, 1], vec![2, 3]]);
        // A unit over the limit gets a part of its own, the others go on packing.
        assert_eq!(
            plan_parts(&[2, 25, 3, 4], 10),
            vec![vec![0], vec![1], vec![2, 3]]
        );
        assert_eq!(plan_parts(&[25], 10), vec![vec![0]]);
        assert_eq!(plan_parts(&[0, 0, 10, 0], 10), vec![vec![0, 1, 2, 3]]);
        assert_eq!(
            plan_parts(&[u64::MAX, 1], u64::MAX - 1),
            vec![vec![0], vec![1]]
        );
    }

    #[test]
    fn part_names_follow_the_release() {
        assert!(part_names(Code::DC, 0).is_empty());
        assert_eq!(part_names(Code::DC, 1), vec!["DC.parquet"]);
        assert_eq!(
            part_names(Code::E4D, 3),
            vec![
                "E4D-00000-of-00003.parquet",
                "E4D-00001-of-00003.parquet",
                "E4D-00002-of-00003.parquet"
            ]
        );
    }

    const CHECK_SCRIPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/check_images_parquet.py"
    );

    /// Whether `python` on PATH has pandas, pyarrow and Pillow; else the test is skipped
    /// through [`crate::testkit::skip`] (a failure under CI).
    fn python_ready() -> bool {
        let probe = Command::new("python")
            .args(["-c", "import pandas, pyarrow, PIL"])
            .output();
        match probe {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                crate::testkit::skip(&format!(
                    "python lacks pandas/pyarrow/PIL: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                false
            }
            Err(e) => {
                crate::testkit::skip(&format!("no python on PATH: {e}"));
                false
            }
        }
    }

    /// Runs `tests/python/check_images_parquet.py` (Otter's loading code) on a parquet with
    /// real PNGs; skipped (see `python_ready`) when python lacks pandas/pyarrow/Pillow.
    #[test]
    fn otter_loader_reads_the_parquet() {
        if !python_ready() {
            return;
        }
        let script = CHECK_SCRIPT;
        let dir = tempfile::tempdir().unwrap();
        let parquet = dir.path().join("DC.parquet");
        let rows = rows();
        write_images_parquet(&parquet, &rows).unwrap();
        if let Some(keep) = std::env::var_os("MIMICIT_KEEP_PARQUET") {
            std::fs::copy(&parquet, keep).unwrap();
        }
        let expected: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(id, bytes)| {
                let img = image::load_from_memory(bytes).unwrap().to_rgb8();
                let first = img.get_pixel(0, 0).0;
                let spec = serde_json::json!({
                    "bytes": bytes.len(), "width": img.width(), "height": img.height(),
                    "first_pixel": first,
                });
                (id.clone(), spec)
            })
            .collect();
        let run = |expected: &serde_json::Map<String, serde_json::Value>| {
            let file = dir.path().join("expected.json");
            std::fs::write(&file, serde_json::to_vec(expected).unwrap()).unwrap();
            Command::new("python")
                .arg(script)
                .arg(&parquet)
                .arg(&file)
                .output()
                .unwrap()
        };
        let ok = run(&expected);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&ok.stdout),
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(ok.status.success(), "{text}");
        assert!(text.contains("3/3 images ok"), "{text}");

        // The check fails on an id that is not there and on bytes that differ.
        let mut wrong = expected.clone();
        wrong.insert("DC_IMG_missing".into(), serde_json::json!({}));
        wrong["DC_IMG_v_a_0000"]["first_pixel"] = serde_json::json!([1, 2, 3]);
        let bad = run(&wrong);
        let text = String::from_utf8_lossy(&bad.stdout).into_owned();
        assert!(!bad.status.success(), "{text}");
        assert!(text.contains("DC_IMG_missing"), "{text}");
        assert!(text.contains("DC_IMG_v_a_0000"), "{text}");
    }

    /// Several row groups (2345 rows make 2), so that `iter_batches` yields several batches.
    #[test]
    fn otter_loader_reads_several_row_groups() {
        if !python_ready() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let parquet = dir.path().join("SN-00000-of-00001.parquet");
        let image = png(42);
        let rows: Vec<(String, Vec<u8>)> = (0..2345)
            .map(|i| (format!("SN_IMG_scene{i:04}_00_color_000000"), image.clone()))
            .collect();
        write_images_parquet(&parquet, &rows).unwrap();
        let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        let expected = dir.path().join("ids.json");
        std::fs::write(&expected, serde_json::to_vec(&ids).unwrap()).unwrap();
        let out = Command::new("python")
            .arg(CHECK_SCRIPT)
            .arg(&parquet)
            .arg(&expected)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("2345/2345 images ok"), "{text}");
        assert!(text.contains("2 row group(s)"), "{text}");
    }
}
