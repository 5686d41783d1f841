//! The `hf` layout: a Hugging Face `datasets` folder, `OUT/{CODE}/hf/`, that
//! `datasets.load_dataset("parquet", data_dir=".../hf/data")` reads, and `load_dataset` on the
//! folder as pushed to the Hub:
//!
//! - `data/train-{i:05}-of-{n:05}.parquet`: one row per instruction, parts of at most
//!   `pack.max_part_bytes` (a unit's rows stay in one part), with columns `id`, `images` (a list
//!   of `Image`: `{bytes, path}` structs that `datasets` decodes to PIL), `messages` (chat turns:
//!   `role`, `content` as a list of `{"type": "image"}` / `{"type": "text", "text"}` parts, the
//!   layout of TRL's VLM examples), `scenario`, `unit_id`, `rel_ins_ids`; the `datasets` feature
//!   types are in the parquet's `huggingface` metadata;
//! - `README.md`: the dataset card, with the config of the scenario, its counts, the licence
//!   named in the scenario file and how it was made (tool version, settings hash).

use std::path::Path;

use polars::prelude::*;

use super::chat::{image_name, Conversation};
use crate::error::{Error, Result};
use crate::model::FrameRecord;

/// `OUT/{CODE}/hf/`.
pub const DIR: &str = "hf";

/// The `datasets` feature types of the rows, as the `huggingface` parquet metadata carries
/// them (list features in the `[feature]` form every `datasets` release reads).
const FEATURES: &str = r#"{"info": {"features": {"id": {"dtype": "string", "_type": "Value"}, "images": [{"_type": "Image"}], "messages": [{"role": {"dtype": "string", "_type": "Value"}, "content": [{"type": {"dtype": "string", "_type": "Value"}, "text": {"dtype": "string", "_type": "Value"}}]}], "scenario": {"dtype": "string", "_type": "Value"}, "unit_id": {"dtype": "string", "_type": "Value"}, "rel_ins_ids": [{"dtype": "string", "_type": "Value"}]}}}"#;

/// The `ARROW:schema` of the parts: plain `string` / `list` types (not the view and large
/// types polars would record, which `datasets` would take over [`FEATURES`]) and [`FEATURES`]
/// as its `huggingface` metadata, which pyarrow, and so `datasets`, reads from this blob.
/// Generated with pyarrow 26 (`feat` = [`FEATURES`]):
/// ```text
/// img = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
/// part = pa.struct([pa.field("type", pa.string()), pa.field("text", pa.string())])
/// turn = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.list_(part))])
/// s = pa.schema([pa.field("id", pa.string()), pa.field("images", pa.list_(img)),
///     pa.field("messages", pa.list_(turn)), pa.field("scenario", pa.string()),
///     pa.field("unit_id", pa.string()), pa.field("rel_ins_ids", pa.list_(pa.string()))],
///     metadata={"huggingface": feat})
/// print(base64.b64encode(s.serialize().to_pybytes()).decode())
/// ```
const ARROW_SCHEMA: &str = "//////gEAAAQAAAAAAAKAA4ABgAFAAgACgAAAAABBAAQAAAAAAAKAAwAAAAEAAgACgAAAOgBAAAEAAAAAQAAAAwAAAAIAAwABAAIAAgAAAC8AQAABAAAAK4BAAB7ImluZm8iOiB7ImZlYXR1cmVzIjogeyJpZCI6IHsiZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn0sICJpbWFnZXMiOiBbeyJfdHlwZSI6ICJJbWFnZSJ9XSwgIm1lc3NhZ2VzIjogW3sicm9sZSI6IHsiZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn0sICJjb250ZW50IjogW3sidHlwZSI6IHsiZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn0sICJ0ZXh0IjogeyJkdHlwZSI6ICJzdHJpbmciLCAiX3R5cGUiOiAiVmFsdWUifX1dfV0sICJzY2VuYXJpbyI6IHsiZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn0sICJ1bml0X2lkIjogeyJkdHlwZSI6ICJzdHJpbmciLCAiX3R5cGUiOiAiVmFsdWUifSwgInJlbF9pbnNfaWRzIjogW3siZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn1dfX19AAALAAAAaHVnZ2luZ2ZhY2UABgAAALQCAAD0AQAAvAAAAIwAAABgAAAABAAAAHT9//8AAAEMFAAAACAAAAAEAAAAAQAAABgAAAALAAAAcmVsX2luc19pZHMAcP3//6T9//8AAAEFEAAAABgAAAAEAAAAAAAAAAQAAABpdGVtAAAAAJj9///M/f//AAABBRAAAAAYAAAABAAAAAAAAAAHAAAAdW5pdF9pZADA/f//9P3//wAAAQUQAAAAHAAAAAQAAAAAAAAACAAAAHNjZW5hcmlvAAAAAOz9//8g/v//AAABDBQAAAAgAAAABAAAAAEAAAAYAAAACAAAAG1lc3NhZ2VzAAAAABz+//9Q/v//AAABDRgAAAAgAAAABAAAAAIAAADEAAAAFAAAAAQAAABpdGVtAAAAAEz+//+A/v//AAABDBQAAAAcAAAABAAAAAEAAAAUAAAABwAAAGNvbnRlbnQAeP7//6z+//8AAAENGAAAACAAAAAEAAAAAgAAAEAAAAAUAAAABAAAAGl0ZW0AAAAAqP7//9z+//8AAAEFEAAAABgAAAAEAAAAAAAAAAQAAAB0ZXh0AAAAAND+//8E////AAABBRAAAAAYAAAABAAAAAAAAAAEAAAAdHlwZQAAAAD4/v//LP///wAAAQUQAAAAGAAAAAQAAAAAAAAABAAAAHJvbGUAAAAAIP///1T///8AAAEMFAAAABwAAAAEAAAAAQAAABQAAAAGAAAAaW1hZ2VzAABM////gP///wAAAQ0YAAAAIAAAAAQAAAACAAAAQAAAABQAAAAEAAAAaXRlbQAAAAB8////sP///wAAAQUQAAAAGAAAAAQAAAAAAAAABAAAAHBhdGgAAAAApP///9j///8AAAEEEAAAABgAAAAEAAAAAAAAAAUAAABieXRlcwAAAMz///8QABQACAAGAAcADAAAABAAEAAAAAAAAQUQAAAAGAAAAAQAAAAAAAAAAgAAAGlkAAAEAAQABAAAAAAAAAA=";

/// One row: an instruction with its unit's pictures (name in `images/`, bytes).
pub struct Row<'a> {
    pub conversation: &'a Conversation<'a>,
    pub unit_id: &'a str,
    pub images: Vec<(&'a FrameRecord, Vec<u8>)>,
}

/// The rows' size in a part, estimated from their picture and text bytes.
pub fn row_size(conv: &Conversation, frames: &[&FrameRecord]) -> u64 {
    let text: usize = conv.turns().iter().map(|(_, t)| t.len()).sum();
    frames.iter().map(|f| f.bytes).sum::<u64>() + text as u64
}

/// `data/train-{i:05}-of-{n:05}.parquet`.
pub fn part_name(i: usize, n: usize) -> String {
    format!("data/train-{i:05}-of-{n:05}.parquet")
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {e}", path.display()))
}

/// Writes one part, atomically; returns its size in bytes.
pub fn write_part(path: &Path, scenario: &str, rows: &[Row]) -> Result<u64> {
    let n = rows.len();
    let ids: Vec<&str> = rows.iter().map(|r| r.conversation.id).collect();
    let units: Vec<&str> = rows.iter().map(|r| r.unit_id).collect();
    let scenarios: Vec<&str> = vec![scenario; n];
    let mut images = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    let mut rel = Vec::with_capacity(n);
    for r in rows {
        images.push(images_of(r).map_err(|e| err(path, e))?);
        messages.push(messages_of(r).map_err(|e| err(path, e))?);
        rel.push(Series::new(
            "item".into(),
            &r.conversation.instruction.rel_ins_ids,
        ));
    }
    let list = |name: &str, items: Vec<Series>, empty: Series| -> Series {
        if items.is_empty() {
            // No row: an empty list column of the right type.
            Series::new_empty(
                name.into(),
                &DataType::List(Box::new(empty.dtype().clone())),
            )
        } else {
            Series::new(name.into(), items)
        }
    };
    let empty_images = images_series(&[], &[]).map_err(|e| err(path, e))?;
    let empty_messages = struct_of_turns(&[], Vec::new()).map_err(|e| err(path, e))?;
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("id".into(), ids),
            list("images", images, empty_images).into(),
            list("messages", messages, empty_messages).into(),
            Column::new("scenario".into(), scenarios),
            Column::new("unit_id".into(), units),
            list(
                "rel_ins_ids",
                rel,
                Series::new_empty("item".into(), &DataType::String),
            )
            .into(),
        ],
    )
    .map_err(|e| err(path, e))?;
    super::images::write_parquet(
        path,
        &mut df,
        256,
        &[("ARROW:schema", ARROW_SCHEMA), ("huggingface", FEATURES)],
    )
}

/// A row's pictures: `{bytes, path}` structs, the form of `datasets`' `Image` feature.
fn images_of(r: &Row) -> PolarsResult<Series> {
    let names: Vec<String> = r.images.iter().map(|(f, _)| image_name(f)).collect();
    let bytes: Vec<&[u8]> = r.images.iter().map(|(_, b)| b.as_slice()).collect();
    images_series(&bytes, &names)
}

fn images_series(bytes: &[&[u8]], names: &[String]) -> PolarsResult<Series> {
    let b = Series::new("bytes".into(), bytes);
    let p = Series::new("path".into(), names);
    Ok(StructChunked::from_series("item".into(), names.len(), [b, p].iter())?.into_series())
}

/// A row's turns: `{role, content: [{type, text}]}`, the pictures as `{"type": "image"}` parts
/// before the text of the instruction's own question.
fn messages_of(r: &Row) -> PolarsResult<Series> {
    let turns = r.conversation.turns();
    let last_user = turns.len() - 2;
    let mut contents = Vec::with_capacity(turns.len());
    for (i, (_, text)) in turns.iter().enumerate() {
        let pictures = if i == last_user { r.images.len() } else { 0 };
        let mut kinds = vec!["image"; pictures];
        kinds.push("text");
        let mut texts: Vec<Option<&str>> = vec![None; pictures];
        texts.push(Some(text));
        let k = Series::new("type".into(), kinds);
        let t = Series::new("text".into(), texts);
        contents.push(
            StructChunked::from_series("item".into(), pictures + 1, [k, t].iter())?.into_series(),
        );
    }
    let roles: Vec<&str> = turns.iter().map(|(role, _)| *role).collect();
    struct_of_turns(&roles, contents)
}

fn struct_of_turns(roles: &[&str], contents: Vec<Series>) -> PolarsResult<Series> {
    let role = Series::new("role".into(), roles);
    let content = if contents.is_empty() {
        let part = StructChunked::from_series(
            "item".into(),
            0,
            [
                Series::new_empty("type".into(), &DataType::String),
                Series::new_empty("text".into(), &DataType::String),
            ]
            .iter(),
        )?
        .into_series();
        Series::new_empty(
            "content".into(),
            &DataType::List(Box::new(part.dtype().clone())),
        )
    } else {
        Series::new("content".into(), contents)
    };
    Ok(
        StructChunked::from_series("item".into(), roles.len(), [role, content].iter())?
            .into_series(),
    )
}

/// What the dataset card says about the scenario.
pub struct Card<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub license: Option<&'a str>,
    pub instructions: usize,
    pub units: usize,
    pub images: usize,
    pub parts: usize,
    pub in_context_turns: usize,
    /// Hash of the pack stage's settings and inputs.
    pub settings_hash: &'a str,
}

/// `README.md`: YAML front matter (licence, the config and its data files, the features), then
/// what the dataset holds and how it was made.
pub fn card(c: &Card) -> String {
    let license_tag = match c.license {
        Some(l) => spdx(l).unwrap_or("other"),
        None => "other",
    };
    let license_text = c
        .license
        .map(|l| format!("The pictures and annotations are under the licence of the source corpus: {l}."))
        .unwrap_or_else(|| {
            "The scenario file names no licence (`source.license`): the source corpus's own terms apply."
                .to_string()
        });
    let context = if c.in_context_turns == 0 {
        "In-context examples are listed by id in `rel_ins_ids`.".to_string()
    } else {
        format!(
            "Up to {} in-context examples (`rel_ins_ids`) come as question/answer turns before each question.",
            c.in_context_turns
        )
    };
    format!(
        "---\nlicense: {license_tag}\ntask_categories:\n- image-text-to-text\nconfigs:\n- config_name: {code}\n  default: true\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n---\n\n\
# {name} ({code})\n\n\
MIMIC-IT-style instruction data: each row is one instruction about the pictures of a visual unit \
(a video's kept frames, an image pair, a photo album), with its answer.\n\n\
| | count |\n|---|---|\n| instructions (rows) | {instructions} |\n| units | {units} |\n| distinct pictures | {images} |\n| parquet parts | {parts} |\n\n\
Columns: `id` (instruction id), `images` (the unit's pictures, decoded to PIL by `datasets`), \
`messages` (chat turns: `role`, `content` as `{{\"type\": \"image\"}}` / `{{\"type\": \"text\", \"text\": ...}}` parts), \
`scenario`, `unit_id`, `rel_ins_ids`. {context}\n\n\
```python\nfrom datasets import load_dataset\nds = load_dataset(\"parquet\", data_dir=\"data\", split=\"train\")\n```\n\n\
## Licence\n\n{license_text}\n\n\
## How it was made\n\n\
By mimicit {version} (scenario `{code}`), pack settings and inputs hash `{hash}`: the same \
inputs and settings give the same bytes.\n",
        code = c.code,
        name = c.name,
        instructions = c.instructions,
        units = c.units,
        images = c.images,
        parts = c.parts,
        version = env!("CARGO_PKG_VERSION"),
        hash = c.settings_hash,
    )
}

/// The Hub's licence tag for a few licence names, else None.
fn spdx(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase().replace(['-', '_'], " ");
    Some(match n.trim() {
        "cc by 4.0" => "cc-by-4.0",
        "cc by sa 4.0" => "cc-by-sa-4.0",
        "cc by nc 4.0" => "cc-by-nc-4.0",
        "cc by nc sa 4.0" => "cc-by-nc-sa-4.0",
        "apache 2.0" => "apache-2.0",
        "mit" => "mit",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_schema_carries_the_features() {
        use base64::Engine;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(ARROW_SCHEMA)
            .unwrap();
        let needle = FEATURES.as_bytes();
        assert!(blob.windows(needle.len()).any(|w| w == needle));
        let v: serde_json::Value = serde_json::from_str(FEATURES).unwrap();
        assert_eq!(v["info"]["features"]["images"][0]["_type"], "Image");
    }

    #[test]
    fn card_names_the_licence_and_the_config() {
        let c = Card {
            code: "CGD",
            name: "coco",
            license: Some("CC BY 4.0"),
            instructions: 7,
            units: 2,
            images: 4,
            parts: 1,
            in_context_turns: 0,
            settings_hash: "abc",
        };
        let text = card(&c);
        assert!(text.starts_with("---\nlicense: cc-by-4.0\n"), "{text}");
        assert!(text.contains("config_name: CGD"));
        assert!(text.contains("path: data/train-*.parquet"));
        assert!(text.contains("| instructions (rows) | 7 |"));
        assert!(text.contains("CC BY 4.0") && text.contains("`abc`"));
        let none = card(&Card {
            license: Some("research only"),
            ..c
        });
        assert!(none.starts_with("---\nlicense: other\n"));
        assert!(none.contains("research only"));
    }
}
