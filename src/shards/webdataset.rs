//! WebDataset shards: plain tar files whose members are grouped into samples by the part of the
//! name before the first dot (`{key}.json`, `{key}.0000.png`, ...). Keys never contain a dot,
//! members are in key order, headers carry no time, owner or mode from the host: the same
//! samples give the same bytes.
//!
//! Shards are planned from the samples' sizes before anything is written, then each shard is
//! streamed sample by sample into an atomic file, so memory stays at one sample.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One sample: its key and its members as (extension, bytes), e.g. ("json", ...), ("0000.png", ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: String,
    pub members: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the index's folder.
    pub shard: String,
    pub samples: u64,
    pub bytes: u64,
    pub blake3: String,
}

/// A sample key from an id: dots and path separators become `_` (WebDataset splits the key from
/// the extension at the first dot).
pub fn sample_key(id: &str) -> String {
    id.chars()
        .map(|c| {
            if matches!(c, '.' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Tar size of a sample with members of these sizes (512-byte header plus data padded to 512;
/// a long name may add a GNU long-name block, ignored here).
pub fn tar_size(member_sizes: &[u64]) -> u64 {
    member_sizes
        .iter()
        .map(|n| 512 + n.div_ceil(512) * 512)
        .sum()
}

/// Splits samples (in order) into shards of at most `max_samples` samples and, where possible,
/// `max_bytes` bytes; a sample larger than `max_bytes` gets a shard of its own.
pub fn plan_shards(sizes: &[u64], max_samples: u64, max_bytes: u64) -> Vec<Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        let count = (i - start) as u64;
        if count > 0 && (count >= max_samples || bytes + size > max_bytes) {
            shards.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        shards.push(start..sizes.len());
    }
    shards
}

/// `{prefix}-{i:06}.tar`.
pub fn shard_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}.tar")
}

/// Writes one shard at `path` from the samples `load` returns for `range`, atomically.
pub fn write_shard(
    path: &Path,
    range: Range<usize>,
    load: &(dyn Fn(usize) -> Result<Sample> + Sync),
) -> Result<ShardInfo> {
    let mut samples = 0u64;
    let mut failure = None;
    crate::atomic::write_with(path, |file| {
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        for i in range.clone() {
            let sample = match load(i) {
                Ok(s) => s,
                Err(e) => {
                    let message = e.to_string();
                    failure = Some(e);
                    return Err(std::io::Error::other(message));
                }
            };
            let mut members = sample.members;
            members.sort_by(|a, b| a.0.cmp(&b.0));
            for (ext, data) in members {
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, format!("{}.{ext}", sample.key), &data[..])?;
            }
            samples += 1;
        }
        let mut inner = builder.into_inner()?;
        inner.flush()
    })
    .map_err(|e| failure.take().unwrap_or(e))?;
    let (bytes, blake3) = crate::manifest::hash_file(path)?;
    Ok(ShardInfo {
        shard: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        samples,
        bytes,
        blake3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_no_dots() {
        assert_eq!(sample_key("DC_IMG_v_a.b_0001"), "DC_IMG_v_a_b_0001");
        assert_eq!(sample_key("x/y"), "x_y");
    }

    #[test]
    fn planning_respects_both_limits() {
        assert_eq!(
            plan_shards(&[10, 10, 10, 10, 10], 2, 1000),
            vec![0..2, 2..4, 4..5]
        );
        assert_eq!(plan_shards(&[10, 10, 10], 100, 25), vec![0..2, 2..3]);
        assert_eq!(plan_shards(&[100, 5], 100, 25), vec![0..1, 1..2]);
        assert!(plan_shards(&[], 10, 10).is_empty());
        assert_eq!(tar_size(&[1, 512, 513]), 512 * 3 + 512 + 512 + 1024);
    }

    #[test]
    fn shard_is_deterministic_and_a_real_tar() {
        let dir = tempfile::tempdir().unwrap();
        let load = |i: usize| -> Result<Sample> {
            Ok(Sample {
                key: format!("k{i}"),
                members: vec![
                    ("json".into(), format!("{{\"i\": {i}}}").into_bytes()),
                    ("0000.png".into(), vec![i as u8; 700]),
                ],
            })
        };
        let a = write_shard(&dir.path().join("a.tar"), 0..3, &load).unwrap();
        let b = write_shard(&dir.path().join("b.tar"), 0..3, &load).unwrap();
        assert_eq!(a.samples, 3);
        assert_eq!(a.blake3, b.blake3);
        let mut archive = tar::Archive::new(std::fs::File::open(dir.path().join("a.tar")).unwrap());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "k0.0000.png",
                "k0.json",
                "k1.0000.png",
                "k1.json",
                "k2.0000.png",
                "k2.json"
            ]
        );
    }

    #[test]
    fn a_failing_sample_leaves_no_shard() {
        let dir = tempfile::tempdir().unwrap();
        let load = |i: usize| -> Result<Sample> {
            if i == 1 {
                Err(crate::Error::Invalid("frame file vanished".into()))
            } else {
                Ok(Sample {
                    key: format!("k{i}"),
                    members: vec![("json".into(), b"{}".to_vec())],
                })
            }
        };
        let err = write_shard(&dir.path().join("a.tar"), 0..2, &load).unwrap_err();
        assert!(err.to_string().contains("vanished"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
