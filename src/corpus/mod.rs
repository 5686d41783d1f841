//! Corpus adapters: each turns one source corpus, in the layout its users downloaded, into
//! visual units (`Unit`) with their media and their Syphus annotation entry. One file per corpus.
//!
//! Adapters never decode media; a unit whose media is missing or whose annotation is malformed
//! becomes a `Reject` and the scan goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Code, Scenario};
use crate::error::{Error, Result};
use crate::model::{Reject, Unit};

pub mod dense_captions;

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub units: Vec<Unit>,
    pub rejects: Vec<Reject>,
    /// Media files present but not annotated (not an error: corpora ship more than they annotate).
    pub unannotated: u64,
}

/// Lists the units of a scenario's corpus.
pub fn scan(scenario: &Scenario) -> Result<ScanResult> {
    match scenario.code {
        Code::DC => dense_captions::scan(scenario),
        other => Err(Error::NotBuilt {
            what: format!("the corpus adapter for scenario {other}"),
        }),
    }
}

/// A fingerprint of the corpus as the scan stage sees it: the bytes of every annotation file and
/// the names and sizes of the media files (hashing terabytes of video to notice a change would
/// cost more than the scan itself).
pub fn fingerprint(scenario: &Scenario) -> Result<String> {
    let mut h = blake3::Hasher::new();
    for a in &scenario.annotations {
        let (n, hash) = crate::manifest::hash_file(a)?;
        h.update(format!("annotation {n} {hash}\n").as_bytes());
    }
    for (rel, size) in list_files(&scenario.media)? {
        h.update(format!("media {} {size}\n", rel.display()).as_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Every regular file under `dir` (relative path, size), sorted, following no symlinked folder
/// (so a symlink loop cannot trap the walk). Hidden files are skipped.
pub fn list_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() || ft.is_symlink() {
                // A symlink to a file counts; a dangling one or one to a folder does not.
                if let Ok(meta) = std::fs::metadata(&path) {
                    if meta.is_file() {
                        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                        found.push((rel, meta.len()));
                    }
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "mkv", "webm", "avi", "mov", "m4v", "flv", "mpg", "mpeg", "wmv", "3gp", "ts", "gif",
];

/// Maps each video file stem under `media` to its path relative to `media` (first in sorted
/// order when a stem exists with several extensions).
pub fn index_videos(media: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut by_stem = BTreeMap::new();
    for (rel, _) in list_files(media)? {
        let is_video = rel
            .extension()
            .map(|e| VIDEO_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
            .unwrap_or(false);
        if !is_video {
            continue;
        }
        if let Some(stem) = rel.file_stem() {
            by_stem
                .entry(stem.to_string_lossy().into_owned())
                .or_insert(rel);
        }
    }
    Ok(by_stem)
}

/// Reads and parses a JSON annotation file, naming it in any error.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: format!("malformed JSON: {e}"),
    })
}
