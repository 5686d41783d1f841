//! `OUT/manifest.json`: which stages of which scenario are finished, with what settings and
//! inputs, and every file they wrote (size and blake3).
//!
//! A stage counts as finished only when its entry is here *and* its settings hash and input hash
//! match the current ones *and* its outputs still have the recorded sizes. The manifest holds no
//! wall-clock time and no absolute path, so two runs over the same inputs write the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
pub use crate::hashing::{hash_file, hash_str};

pub const FILE_NAME: &str = "manifest.json";
pub const FORMAT: &str = "mimicit-manifest";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub tool: String,
    pub scenarios: BTreeMap<String, ScenarioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEntry {
    pub name: String,
    pub stages: BTreeMap<String, StageEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    /// blake3 of the stage's settings (canonical JSON of the config sections it reads).
    pub config_hash: String,
    /// blake3 of what the stage read: earlier stages' output hashes, or corpus files.
    pub input_hash: String,
    pub counts: Counts,
    /// Files written, relative to OUT, sorted by path.
    pub outputs: Vec<OutputFile>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub ok: u64,
    pub rejected: u64,
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
    /// Rows (parquet), entries (instructions, train, Syphus query), samples (tar) or lines
    /// (JSONL); absent for other files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT.to_string(),
            version: 1,
            tool: format!("mimicit {}", env!("CARGO_PKG_VERSION")),
            scenarios: BTreeMap::new(),
        }
    }
}

impl Manifest {
    /// Reads `OUT/manifest.json`, or an empty manifest when there is none yet.
    pub fn load(out: &Path) -> Result<Manifest> {
        let path = out.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: format!("not a mimicit manifest: {e}"),
        })?;
        if m.format != FORMAT || m.version != 1 {
            return Err(Error::Manifest {
                path,
                message: format!("unsupported format {} version {}", m.format, m.version),
            });
        }
        Ok(m)
    }

    pub fn save(&self, out: &Path) -> Result<()> {
        crate::atomic::write_json(&out.join(FILE_NAME), self)
    }

    pub fn stage(&self, code: &str, stage: &str) -> Option<&StageEntry> {
        self.scenarios.get(code)?.stages.get(stage)
    }

    pub fn set_stage(&mut self, code: &str, name: &str, stage: &str, entry: StageEntry) {
        let s = self.scenarios.entry(code.to_string()).or_default();
        s.name = name.to_string();
        s.stages.insert(stage.to_string(), entry);
    }

    /// Forgets a stage (and so everything that depends on it must run again).
    pub fn clear_stage(&mut self, code: &str, stage: &str) {
        if let Some(s) = self.scenarios.get_mut(code) {
            s.stages.remove(stage);
        }
    }
}

impl StageEntry {
    /// True when the recorded outputs are all still there with their recorded sizes.
    pub fn outputs_present(&self, out: &Path) -> bool {
        self.outputs.iter().all(|o| {
            std::fs::metadata(out.join(&o.path))
                .map(|m| m.is_file() && m.len() == o.bytes)
                .unwrap_or(false)
        })
    }

    /// A hash of this stage's outputs, to be the input hash of the stages after it.
    pub fn outputs_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for o in &self.outputs {
            h.update(o.path.as_bytes());
            h.update(&[0]);
            h.update(o.blake3.as_bytes());
            h.update(&[0]);
        }
        h.finalize().to_hex().to_string()
    }
}

/// The row count recorded for an output file, by its kind (see [`OutputFile::rows`]).
pub fn count_rows(path: &Path) -> Result<Option<u64>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let json_entries = |v: &serde_json::Value| match v {
        serde_json::Value::Array(a) => Some(a.len() as u64),
        serde_json::Value::Object(o) => Some(o.len() as u64),
        _ => None,
    };
    let read_json = || -> Result<serde_json::Value> {
        let text = std::fs::read(path).at(path)?;
        serde_json::from_slice(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    Ok(if name.ends_with(".parquet") {
        Some(crate::tables::count_rows(path)?)
    } else if name.ends_with("_instructions.json") {
        json_entries(&read_json()?["data"])
    } else if name.ends_with("_train.json") || name.ends_with("_query.json") {
        // Trainer files and the Syphus query: one entry per instruction or unit.
        json_entries(&read_json()?)
    } else if name.ends_with(".jsonl") {
        let text = std::fs::read(path).at(path)?;
        Some(
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64,
        )
    } else if name.ends_with(".tar") {
        let file = File::open(path).at(path)?;
        let mut keys = std::collections::BTreeSet::new();
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries().at(path)? {
            let entry = entry.at(path)?;
            let p = entry.path().at(path)?.to_string_lossy().into_owned();
            keys.insert(p.split('.').next().unwrap_or("").to_string());
        }
        Some(keys.len() as u64)
    } else {
        None
    })
}

/// Describes files under `out` for the manifest: relative path, size and blake3, sorted.
pub fn describe(out: &Path, files: &[PathBuf]) -> Result<Vec<OutputFile>> {
    let mut v = Vec::with_capacity(files.len());
    for f in files {
        let rel = f.strip_prefix(out).unwrap_or(f);
        let (bytes, blake3) = hash_file(f)?;
        v.push(OutputFile {
            path: rel.to_string_lossy().replace('\\', "/"),
            bytes,
            blake3,
            rows: count_rows(f)?,
        });
    }
    v.sort();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_presence() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join("DC")).unwrap();
        std::fs::write(out.join("DC/units.bin"), b"abc").unwrap();
        let outputs = describe(out, &[out.join("DC/units.bin")]).unwrap();
        assert_eq!(outputs[0].path, "DC/units.bin");
        assert_eq!(outputs[0].bytes, 3);
        let entry = StageEntry {
            config_hash: hash_str("c"),
            input_hash: hash_str("i"),
            counts: Counts {
                ok: 1,
                ..Counts::default()
            },
            outputs,
        };
        let mut m = Manifest::default();
        m.set_stage("DC", "demo", "scan", entry.clone());
        m.save(out).unwrap();
        let back = Manifest::load(out).unwrap();
        assert_eq!(back, m);
        assert!(back.stage("DC", "scan").unwrap().outputs_present(out));
        std::fs::write(out.join("DC/units.bin"), b"abcd").unwrap();
        assert!(!back.stage("DC", "scan").unwrap().outputs_present(out));
    }

    #[test]
    fn missing_manifest_is_empty_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::load(dir.path()).unwrap().scenarios.is_empty());
        std::fs::write(dir.path().join(FILE_NAME), "{nope").unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
    }
}
