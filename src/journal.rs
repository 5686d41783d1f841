//! Per-item journals: what a stage has finished so far, so that a run killed half way does not
//! redo it. `OUT/{CODE}/journal/{stage}/{h}.json` holds one finished item (h: blake3 of its key),
//! written atomically after the item's outputs, with the stage's settings-and-inputs hash; an
//! entry of another configuration, another key or a file that does not parse is ignored (the item
//! is simply done again). The stage removes its journal once its outputs are recorded whole.
//!
//! Used by keyframes (one entry per unit) and pack (one per images part and per WebDataset shard).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub struct Journal {
    dir: PathBuf,
    hash: String,
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    hash: String,
    key: String,
    value: T,
}

impl Journal {
    /// The journal of `stage` under the scenario folder `dir`, for work done with settings and
    /// inputs hashing to `hash`. Leftover temporary files of a killed write are removed.
    pub fn open(dir: &Path, stage: &str, hash: &str) -> Result<Journal> {
        let dir = dir.join("journal").join(stage);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        crate::atomic::clean_temps(&dir)?;
        Ok(Journal {
            dir,
            hash: hash.to_string(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        let h = blake3::hash(key.as_bytes()).to_hex();
        self.dir.join(format!("{}.json", &h[..32]))
    }

    /// The value recorded for `key` by work with the same hash, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let entry: Entry<T> = serde_json::from_slice(&bytes).ok()?;
        (entry.hash == self.hash && entry.key == key).then_some(entry.value)
    }

    /// Records `key` as finished with `value` (after its outputs are written).
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        crate::atomic::write_json(
            &self.path(key),
            &Entry {
                hash: self.hash.clone(),
                key: key.to_string(),
                value,
            },
        )
    }

    /// Removes the journal (the stage's outputs are complete); the `journal` folder goes too
    /// when no other stage's journal is left in it.
    pub fn finish(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }
}

/// Whether every file (relative to `dir`) is there with the recorded size: a journaled item's
/// outputs must still exist for the entry to count.
pub fn files_present(dir: &Path, files: &[(String, u64)]) -> bool {
    files.iter().all(|(rel, bytes)| {
        std::fs::metadata(dir.join(rel)).is_ok_and(|m| m.is_file() && m.len() == *bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_count_only_for_the_same_hash_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "pack", "h1").unwrap();
        assert_eq!(j.get::<u32>("a"), None);
        j.put("a", &7u32).unwrap();
        assert_eq!(j.get::<u32>("a"), Some(7));
        assert_eq!(j.get::<u32>("b"), None);
        assert_eq!(j.get::<String>("a"), None, "another type does not parse");
        let other = Journal::open(dir.path(), "pack", "h2").unwrap();
        assert_eq!(other.get::<u32>("a"), None, "another configuration");
        std::fs::write(j.path("c"), b"{half").unwrap();
        assert_eq!(j.get::<u32>("c"), None, "a damaged entry is ignored");
        j.finish().unwrap();
        assert!(!dir.path().join("journal").exists());
    }

    #[test]
    fn files_present_checks_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        assert!(files_present(dir.path(), &[("a".into(), 3)]));
        assert!(!files_present(dir.path(), &[("a".into(), 4)]));
        assert!(!files_present(dir.path(), &[("b".into(), 0)]));
    }
}
