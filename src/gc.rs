//! `mimicit gc OUT`: removes the frames of the frame store (`OUT/{CODE}/frames/`) that no table
//! references. The keyframes stage stores frames by content hash and never removes one, so
//! frames of earlier settings, and of units that failed half way, stay there until collected.
//! A frame is referenced when the scenario's `frames.parquet` lists it; a store is only
//! collected when the manifest records keyframes as finished for it (otherwise an unfinished
//! keyframes run's journal may still list frames the table does not).
//!
//! Collects `OUT` and every partition folder under `OUT/partitions/`, each under its writer's
//! lock ([`crate::lock`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::Manifest;

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// Nothing removed: what would be.
    pub dry_run: bool,
    /// Unreferenced frames removed (or, with `dry_run`, that would be).
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames kept (referenced).
    pub kept: u64,
    pub stores: Vec<StoreReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct StoreReport {
    /// The store folder, relative to `OUT`.
    pub path: String,
    pub removed: u64,
    pub bytes: u64,
    pub kept: u64,
    /// Why the store was left alone, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The files of the frame store of the scenario folder `dir` that `frames.parquet` does not
/// list, as (path relative to `dir`, bytes), sorted; and the number of listed files present.
pub fn unreferenced(dir: &Path) -> Result<(Vec<(String, u64)>, u64)> {
    let listed: BTreeSet<String> = crate::tables::read_frames(&dir.join("frames.parquet"))?
        .into_iter()
        .map(|f| f.file)
        .collect();
    let mut found = Vec::new();
    let mut kept = 0;
    let store = dir.join("frames");
    let mut stack = vec![store.clone()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // a writer's temporary file: the next run removes it
            }
            let rel = path
                .strip_prefix(dir)
                .expect("under the scenario folder")
                .to_string_lossy()
                .replace('\\', "/");
            if listed.contains(&rel) {
                kept += 1;
            } else {
                let bytes = entry.metadata().map_err(|e| Error::io(&path, e))?.len();
                found.push((rel, bytes));
            }
        }
    }
    found.sort();
    Ok((found, kept))
}

/// Collects the frame stores of `OUT` and of its partition folders.
pub fn gc(out: &Path, dry_run: bool) -> Result<GcReport> {
    let manifest_path = out.join(crate::manifest::FILE_NAME);
    if !manifest_path.is_file() {
        return Err(Error::Manifest {
            path: manifest_path,
            message: "no manifest: nothing has run in this folder".into(),
        });
    }
    let out = std::fs::canonicalize(out).map_err(|e| Error::io(out, e))?;
    let mut folders = vec![out.clone()];
    let parts = out.join(crate::partition::DIR);
    if let Ok(entries) = std::fs::read_dir(&parts) {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| crate::partition::Partition::from_dir_name(&n.to_string_lossy()))
                    .is_some()
                    && p.join(crate::manifest::FILE_NAME).is_file()
            })
            .collect();
        found.sort();
        folders.extend(found);
    }
    let mut report = GcReport {
        dry_run,
        ..Default::default()
    };
    for folder in folders {
        let _lock = crate::lock::acquire_here(&folder)?;
        let manifest = Manifest::load(&folder)?;
        for code in manifest.scenarios.keys() {
            let dir = folder.join(code);
            let rel_store = dir
                .join("frames")
                .strip_prefix(&out)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut store = StoreReport {
                path: rel_store,
                ..Default::default()
            };
            if manifest.stage(code, "keyframes").is_none() {
                if dir.join("frames").is_dir() {
                    store.skipped = Some(
                        "keyframes has not finished here: finish the run first, then collect"
                            .into(),
                    );
                    report.stores.push(store);
                }
                continue;
            }
            let (unreferenced, kept) = unreferenced(&dir)?;
            store.kept = kept;
            for (rel, bytes) in &unreferenced {
                if !dry_run {
                    let path = dir.join(rel);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io(&path, e)),
                    }
                    if let Some(parent) = path.parent() {
                        // An emptied two-letter folder goes too (fails, harmlessly, when not empty).
                        let _ = std::fs::remove_dir(parent);
                    }
                }
                store.removed += 1;
                store.bytes += bytes;
            }
            report.removed += store.removed;
            report.bytes += store.bytes;
            report.kept += store.kept;
            report.stores.push(store);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_what_the_table_does_not() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("frames/ab/ab1.png", "x"),
            ("frames/cd/cd2.png", "yyy"),
            ("frames/cd/.cd3.png.tmp-1-0", "half"),
        ] {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let frame = crate::model::FrameRecord {
            image_id: "DC_IMG_u_0".into(),
            unit_id: "u".into(),
            index: 0,
            time_s: Some(0.0),
            width: 1,
            height: 1,
            pixel_hash: "00".into(),
            file: "frames/ab/ab1.png".into(),
            bytes: 1,
        };
        crate::tables::write_frames(&dir.path().join("frames.parquet"), &[frame]).unwrap();
        let (found, kept) = unreferenced(dir.path()).unwrap();
        assert_eq!(found, vec![("frames/cd/cd2.png".to_string(), 3)]);
        assert_eq!(kept, 1);
    }
}
