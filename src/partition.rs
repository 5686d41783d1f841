//! Deterministic partitions of a corpus (`--partition i/N`), for many machines.
//!
//! A unit belongs to partition `u64::from_le_bytes(blake3(unit_id)[..8]) % N`: every worker
//! computes the same assignment from the unit ids alone, without talking to the others, and a
//! unit stays in its partition whatever else the corpus holds. Partition `i` of `N` writes a run
//! folder of its own, `OUT/partitions/{i}-of-{N}/` (its own manifest, resumable like any run),
//! and only for the stages that work unit by unit; `mimicit merge` joins those folders into
//! `OUT` and runs the stages that need the whole corpus (see [`Placement`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::corpus::ScanResult;
use crate::error::{Error, Result};

/// The folder under `OUT` that holds the partition run folders.
pub const DIR: &str = "partitions";

/// Partition `index` of `count` (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl Partition {
    pub fn new(index: u32, count: u32) -> Result<Partition> {
        if count == 0 || index >= count {
            return Err(Error::Invalid(format!(
                "partition {index}/{count}: want i/N with N >= 1 and 0 <= i < N"
            )));
        }
        Ok(Partition { index, count })
    }

    /// The partition a unit (or any item named by a unit id) belongs to among `count`.
    pub fn of(id: &str, count: u32) -> u32 {
        let hash = blake3::hash(id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether the unit (or item) `id` is this partition's.
    pub fn owns(&self, id: &str) -> bool {
        Partition::of(id, self.count) == self.index
    }

    /// `{i}-of-{N}`: the partition's folder name under `OUT/partitions/`.
    pub fn dir_name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// `OUT/partitions/{i}-of-{N}`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(DIR).join(self.dir_name())
    }

    /// Parses a folder name written by [`Partition::dir_name`].
    pub fn from_dir_name(name: &str) -> Option<Partition> {
        let (i, n) = name.split_once("-of-")?;
        let (i, n) = (i.parse().ok()?, n.parse().ok()?);
        Partition::new(i, n).ok()
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Partition, String> {
        let bad = || format!("{s:?}: want i/N, e.g. 0/4 (partition i of N, counting from 0)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Partition::new(i, n).map_err(|e| e.to_string())
    }
}

/// What partition `p` keeps of a scan: the units it owns and the rejects whose item it owns
/// (each reject is then reported by exactly one partition). The count of media files without
/// annotation is a fact about the whole corpus, recorded by partition 0 alone so that the
/// partitions' counts add up to the corpus's.
pub fn restrict_scan(found: ScanResult, p: Partition) -> ScanResult {
    ScanResult {
        units: found.units.into_iter().filter(|u| p.owns(&u.id)).collect(),
        rejects: found
            .rejects
            .into_iter()
            .filter(|r| p.owns(&r.item))
            .collect(),
        unannotated: if p.index == 0 { found.unannotated } else { 0 },
    }
}

/// Where a stage's work is done when a corpus is split (each stage says which:
/// [`crate::stages::Stage::placement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Unit by unit, in each partition; `merge` joins the partitions' outputs.
    Partitions,
    /// Over the whole corpus, in `merge`, after the partitioned stages are joined.
    Merge,
}

/// The partition folders of a split run under `out`: those of `count` partitions when given
/// (all must be there), else those found, which must all be of one `N` and complete.
pub fn discover(out: &Path, count: Option<u32>) -> Result<Vec<Partition>> {
    let root = out.join(DIR);
    let mut found = Vec::new();
    match std::fs::read_dir(&root) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&root, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(p) = Partition::from_dir_name(&name) {
                    if entry.path().join(crate::manifest::FILE_NAME).is_file() {
                        found.push(p);
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&root, e)),
    }
    found.sort();
    let count = match count {
        Some(n) => n,
        None => {
            let mut counts: Vec<u32> = found.iter().map(|p| p.count).collect();
            counts.sort_unstable();
            counts.dedup();
            match counts[..] {
                [n] => n,
                [] => {
                    return Err(Error::Invalid(format!(
                        "{}: no partition run folders ({{i}}-of-{{N}} with a manifest): run \
                         `mimicit run SCENARIO --out {} --partition i/N` for every i first",
                        root.display(),
                        out.display()
                    )))
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: partitions of several splits ({}): say which with --partitions N",
                        root.display(),
                        counts
                            .iter()
                            .map(|n| format!("N={n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    };
    let wanted: Vec<Partition> = (0..count)
        .map(|i| Partition::new(i, count))
        .collect::<Result<_>>()?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|p| !found.contains(p))
        .map(|p| p.dir_name())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: partition run folders missing (no manifest): {}; run `mimicit run SCENARIO \
             --out {} --partition i/{count}` for those first",
            root.display(),
            missing.join(", "),
            out.display()
        )));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let p: Partition = "2/5".parse().unwrap();
        assert_eq!((p.index, p.count), (2, 5));
        assert_eq!(p.to_string(), "2/5");
        assert_eq!(p.dir_name(), "2-of-5");
        assert_eq!(Partition::from_dir_name("2-of-5"), Some(p));
        for bad in ["5/5", "1/0", "x/3", "3", "-1/3", "1/3/4", ""] {
            assert!(bad.parse::<Partition>().is_err(), "accepted {bad:?}");
        }
        assert_eq!(Partition::from_dir_name("3-of-3"), None);
        assert_eq!(Partition::from_dir_name("tmp"), None);
    }

    #[test]
    fn assignment_is_the_documented_hash() {
        // blake3("v_demo_garden")[..8] as little-endian u64, mod N: written out so that a change
        // of the rule (which would scatter every existing split) cannot pass unnoticed.
        let h = blake3::hash(b"v_demo_garden");
        let v = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap());
        for n in [1, 2, 3, 7, 1000] {
            assert_eq!(
                u64::from(Partition::of("v_demo_garden", n)),
                v % u64::from(n)
            );
        }
        assert_eq!(Partition::of("anything", 1), 0);
    }

    #[test]
    fn every_id_has_exactly_one_owner_and_the_split_is_even() {
        let n = 4;
        let parts: Vec<Partition> = (0..n).map(|i| Partition::new(i, n).unwrap()).collect();
        let mut sizes = [0usize; 4];
        for k in 0..4000 {
            let id = format!("unit_{k}");
            let owners: Vec<_> = parts.iter().filter(|p| p.owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0].index as usize] += 1;
        }
        for s in sizes {
            assert!((850..1150).contains(&s), "uneven split {sizes:?}");
        }
    }

    #[test]
    fn discover_finds_complete_splits_and_names_the_missing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let make = |name: &str| {
            let d = out.join(DIR).join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(crate::manifest::FILE_NAME), "{}").unwrap();
        };
        assert!(discover(out, None)
            .unwrap_err()
            .to_string()
            .contains("no partition"));
        make("0-of-3");
        make("2-of-3");
        let err = discover(out, None).unwrap_err().to_string();
        assert!(err.contains("1-of-3") && !err.contains("2-of-3"), "{err}");
        make("1-of-3");
        assert_eq!(discover(out, None).unwrap().len(), 3);
        make("0-of-1");
        let err = discover(out, None).unwrap_err().to_string();
        assert!(err.contains("--partitions"), "{err}");
        assert_eq!(
            discover(out, Some(1)).unwrap(),
            vec![Partition::new(0, 1).unwrap()]
        );
        assert_eq!(discover(out, Some(3)).unwrap().len(), 3);
        // A folder without a manifest is not a finished partition run.
        std::fs::create_dir_all(out.join(DIR).join("0-of-2")).unwrap();
        assert!(discover(out, Some(2)).is_err());
    }
}
