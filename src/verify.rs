//! `mimicit verify OUT`: checks a run's outputs against what the manifest recorded and against
//! what the trainer needs:
//! - every listed file is there with its size, blake3 and row count;
//! - every JSON output is valid against its schema (the schemas of `schemas/`, built in);
//! - every image id of every instruction file is in the images parquet it goes with;
//! - every frame of `frames.parquet` is in the frame store under its content hash.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::manifest::{hash_file, Manifest};

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
    /// Frames in the frame stores that no table references (left by earlier settings or units
    /// that failed half way): not a failure; `mimicit gc OUT` removes them.
    pub unreferenced_frames: u64,
    pub unreferenced_bytes: u64,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Serialize)]
pub struct Warning {
    pub path: String,
    pub warning: String,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub path: String,
    pub problem: String,
}

/// The schema a JSON output must satisfy, by its name.
fn schema_for(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let syphus = path.contains("/syphus/");
    Some(if name == "manifest.json" {
        include_str!("../schemas/manifest.schema.json")
    } else if name.ends_with("_instructions.json") && !syphus {
        include_str!("../schemas/instructions.schema.json")
    } else if name.ends_with("_train.json") && !syphus {
        include_str!("../schemas/train.schema.json")
    } else if name.ends_with("_query.json") && syphus {
        include_str!("../schemas/syphus_query.schema.json")
    } else if name.contains("_answers.") && name.ends_with(".json") && syphus {
        include_str!("../schemas/syphus_answers.schema.json")
    } else if path.ends_with("/wds/index.json") {
        include_str!("../schemas/wds_index.schema.json")
    } else if name.ends_with("_llava.json") && path.contains("/chat/") {
        include_str!("../schemas/llava.schema.json")
    } else if name.ends_with("_sharegpt.json") && path.contains("/chat/") {
        include_str!("../schemas/sharegpt.schema.json")
    } else if path.ends_with("/chat/dataset_info.json") {
        include_str!("../schemas/dataset_info.schema.json")
    } else {
        return None;
    })
}

pub fn verify(out: &Path) -> Result<VerifyReport> {
    let manifest_path = out.join(crate::manifest::FILE_NAME);
    if !manifest_path.is_file() {
        return Err(crate::Error::Manifest {
            path: manifest_path,
            message: "no manifest: nothing has run in this folder".into(),
        });
    }
    let manifest = Manifest::load(out)?;
    let mut report = VerifyReport::default();
    let mut problem = |path: &str, problem: String| {
        report.problems.push(Problem {
            path: path.to_string(),
            problem,
        })
    };
    let mut files = 0;
    let mut bytes = 0;
    let mut listed = BTreeSet::new();
    for entry in manifest.scenarios.values() {
        for stage in entry.stages.values() {
            for o in &stage.outputs {
                files += 1;
                bytes += o.bytes;
                listed.insert(o.path.clone());
                let path = out.join(&o.path);
                match hash_file(&path) {
                    Err(e) => problem(&o.path, format!("cannot read: {e}")),
                    Ok((n, _)) if n != o.bytes => problem(
                        &o.path,
                        format!("size {n} bytes, manifest says {}", o.bytes),
                    ),
                    Ok((_, h)) if h != o.blake3 => {
                        problem(&o.path, format!("blake3 {h}, manifest says {}", o.blake3))
                    }
                    Ok(_) => {
                        if let Some(rows) = o.rows {
                            match crate::manifest::count_rows(&path) {
                                Ok(Some(n)) if n != rows => {
                                    problem(&o.path, format!("{n} rows, manifest says {rows}"))
                                }
                                Err(e) => problem(&o.path, format!("cannot count rows: {e}")),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    }
    listed.insert(crate::manifest::FILE_NAME.to_string());
    let mut unreferenced: Vec<(String, u64, u64)> = Vec::new();
    for rel in &listed {
        if let Some(schema) = schema_for(rel) {
            if let Some(p) = check_schema(out, rel, schema) {
                problem(rel, p);
            }
        }
        if let Some(stem) = rel.strip_suffix("_instructions.json") {
            let parquet = format!("{stem}.parquet");
            if listed.contains(&parquet) {
                for p in check_image_ids(out, rel, &parquet) {
                    problem(rel, p);
                }
            }
        }
        if rel.ends_with("/frames.parquet") {
            for p in check_frame_store(out, rel) {
                problem(rel, p);
            }
            if let Some(dir) = out.join(rel).parent() {
                if let Ok((extra, _)) = crate::gc::unreferenced(dir) {
                    if !extra.is_empty() {
                        let bytes: u64 = extra.iter().map(|(_, b)| b).sum();
                        unreferenced.push((rel.clone(), extra.len() as u64, bytes));
                    }
                }
            }
        }
    }
    for (rel, n, b) in unreferenced {
        let store = rel.replace("frames.parquet", "frames");
        report.unreferenced_frames += n;
        report.unreferenced_bytes += b;
        report.warnings.push(Warning {
            path: store,
            warning: format!(
                "{n} frames ({b} bytes) that no table references: `mimicit gc` removes them"
            ),
        });
    }
    report.files = files;
    report.bytes = bytes;
    report.ok = report.problems.is_empty();
    Ok(report)
}

fn check_schema(out: &Path, rel: &str, schema: &str) -> Option<String> {
    let schema: serde_json::Value = serde_json::from_str(schema).expect("built-in schema");
    let validator = jsonschema::validator_for(&schema).expect("built-in schema compiles");
    let text = std::fs::read_to_string(out.join(rel)).ok()?;
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Some(format!("not valid JSON: {e}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    (!errors.is_empty()).then(|| format!("does not match its schema: {}", errors.join("; ")))
}

/// Every image id that an instruction refers to must be in the parquet that goes with it.
fn check_image_ids(out: &Path, instructions: &str, parquet: &str) -> Vec<String> {
    let ids: BTreeSet<String> = match crate::tables::read_string_column(
        &out.join(parquet),
        crate::shards::images::INDEX_COLUMN,
    ) {
        Ok(v) => v.into_iter().collect(),
        Err(e) => return vec![format!("cannot read image ids of {parquet}: {e}")],
    };
    let Ok(text) = std::fs::read_to_string(out.join(instructions)) else {
        return vec!["cannot read".into()];
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new(); // reported by the schema check
    };
    let mut missing = BTreeSet::new();
    if let Some(data) = doc["data"].as_object() {
        for item in data.values() {
            for id in item["image_ids"].as_array().into_iter().flatten() {
                if let Some(id) = id.as_str() {
                    if !ids.contains(id) {
                        missing.insert(id.to_string());
                    }
                }
            }
        }
    }
    missing
        .into_iter()
        .take(20)
        .map(|id| format!("image {id} is not in {parquet}"))
        .collect()
}

/// Every frame file is named by the blake3 of its bytes: re-hash each one.
fn check_frame_store(out: &Path, frames_rel: &str) -> Vec<String> {
    let Some(dir) = out.join(frames_rel).parent().map(Path::to_path_buf) else {
        return Vec::new();
    };
    let frames = match crate::tables::read_frames(&out.join(frames_rel)) {
        Ok(f) => f,
        Err(e) => return vec![format!("cannot read: {e}")],
    };
    let files: BTreeSet<&str> = frames.iter().map(|f| f.file.as_str()).collect();
    let mut problems = Vec::new();
    for file in files {
        let expected = file
            .rsplit('/')
            .next()
            .and_then(|n| n.split('.').next())
            .unwrap_or("");
        match hash_file(&dir.join(file)) {
            Ok((_, h)) if h == expected => {}
            Ok((_, h)) => problems.push(format!("frame {file} has blake3 {h}")),
            Err(e) => problems.push(format!("frame {file}: {e}")),
        }
    }
    problems
}
