//! What the stages' joins share (`mimicit merge`, see [`crate::merge`]): a partition's run
//! folder with its manifest entry for the stage, the partitions' counts and rejects, and the
//! frame store's links. Each stage's own join is [`super::Stage::join`] in its file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::StageContext;
use crate::error::{Error, Result};
use crate::manifest::{Counts, Manifest, StageEntry};
use crate::model::Reject;
use crate::partition::Partition;

/// One partition's run folder and its entry for the stage being joined.
pub struct Part {
    /// The partition's `OUT`.
    pub out: PathBuf,
    /// Its `{CODE}` folder.
    pub dir: PathBuf,
    pub partition: Option<Partition>,
    pub entry: StageEntry,
}

impl Part {
    pub fn open(out: &Path, code: &str, stage: &str) -> Result<Part> {
        let manifest = Manifest::load(out)?;
        let entry = manifest.stage(code, stage).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: stage {stage} has not run in this partition",
                out.display(),
            ))
        })?;
        Ok(Part {
            out: out.to_path_buf(),
            dir: out.join(code),
            partition: out
                .file_name()
                .and_then(|n| Partition::from_dir_name(&n.to_string_lossy())),
            entry,
        })
    }

    /// The partition's output files (relative to its `OUT`) that pass `keep`, in manifest order.
    pub fn outputs(&self, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        self.entry
            .outputs
            .iter()
            .filter(|o| keep(&o.path))
            .map(|o| self.out.join(&o.path))
            .collect()
    }
}

/// The counts of the partitions' entries, added up (`rejected` is recounted by the pipeline).
pub fn summed(parts: &[Part]) -> Counts {
    let mut c = Counts::default();
    for p in parts {
        c.ok += p.entry.counts.ok;
        c.skipped += p.entry.counts.skipped;
    }
    c
}

/// The partitions' rejects of `stage`, with paths into a partition folder rewritten into `OUT`
/// (the features stage names frame files by absolute path).
pub fn rejects(ctx: &StageContext, parts: &[Part], stage: &str) -> Result<Vec<Reject>> {
    let mut all = Vec::new();
    for p in parts {
        let path = p.dir.join("rejects").join(format!("{stage}.parquet"));
        if !path.is_file() {
            continue;
        }
        let prefix = format!("{}/", p.out.display());
        let into = format!("{}/", ctx.out.display());
        for mut r in crate::tables::read_rejects(&path)? {
            if let Some(rest) = r.path.strip_prefix(&prefix) {
                r.path = format!("{into}{rest}");
            }
            all.push(r);
        }
    }
    Ok(all)
}

/// The frame store is content addressed: each frame file a partition's `frames.parquet` lists
/// (`files`, relative to its scenario folder `from`) goes to the same name under `to`, hard
/// linked (copied where links are not possible); frames no table references (of units that
/// failed half way, of earlier settings) are left behind, see [`crate::gc`]. A file already
/// there with the same size is the same file.
pub fn link_frames<'a>(from: &Path, to: &Path, files: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut done = HashSet::new();
    for rel in files {
        if !done.insert(rel) {
            continue;
        }
        let src = from.join(rel);
        let dst = to.join(rel);
        let size = std::fs::metadata(&src)
            .map_err(|e| Error::io(&src, e))?
            .len();
        if std::fs::metadata(&dst).is_ok_and(|m| m.len() == size) {
            continue;
        }
        let parent = dst.parent().expect("a file in the store");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let _ = std::fs::remove_file(&dst);
        if std::fs::hard_link(&src, &dst).is_err() {
            // Another file system, or one without links: copy.
            crate::atomic::write_with(&dst, |f| {
                let mut r = std::fs::File::open(&src)?;
                std::io::copy(&mut r, f).map(|_| ())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_frames_takes_the_listed_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, to) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("to"),
        );
        for (root, name, body) in [
            (&a, "frames/ab/ab1.png", "x"),
            (&b, "frames/ab/ab1.png", "x"),
            (&b, "frames/cd/cd2.png", "yy"),
            (&b, "frames/ef/ef3.png", "unlisted"),
        ] {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        link_frames(&a, &to, ["frames/ab/ab1.png"].into_iter()).unwrap();
        link_frames(
            &b,
            &to,
            [
                "frames/ab/ab1.png",
                "frames/cd/cd2.png",
                "frames/cd/cd2.png",
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("frames/ab/ab1.png")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_to_string(to.join("frames/cd/cd2.png")).unwrap(),
            "yy"
        );
        assert!(!to.join("frames/ef").exists());
        // A listed file that is missing is an error naming it.
        let err = link_frames(&a, &to, ["frames/zz/zz9.png"].into_iter()).unwrap_err();
        assert!(err.to_string().contains("zz9.png"), "{err}");
    }
}
