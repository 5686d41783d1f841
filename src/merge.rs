//! `mimicit merge`: joins the run folders of a split corpus (`OUT/partitions/{i}-of-{N}/`, see
//! [`crate::partition`]) into `OUT`, so that `OUT` holds what one `mimicit run` over the whole
//! corpus writes, byte for byte, and a manifest that says so.
//!
//! Merging is a run of the pipeline over `OUT` in which the stages every partition finished are
//! not computed but joined here ([`combine`]); every other stage runs as in a single run, over
//! the joined tables. Phase 1, in the partitions: scan, keyframes, dedup with `scope = "unit"`,
//! the feature vectors. Phase 2, in `merge`: the joins, then dedup with `scope = "corpus"`, the
//! features' `pairs.parquet`, metadata and pack — every step whose result depends on more than
//! one unit (instruction numbering, parquet parts, cross-unit duplicates, nearest neighbours).
//!
//! What a join writes, each as the stage itself would:
//! - scan: `units.parquet`, every partition's units in id order;
//! - keyframes: the frame store (files hard-linked from the partitions, copied where links are
//!   not possible) and `frames.parquet` in unit, then index order;
//! - dedup: `dedup.parquet`, the partitions' rows (each unit's decisions are its own);
//! - features: the shards re-cut to `features.shard_rows` from a merge of the partitions' sorted
//!   shards (one shard per partition in memory), keeping the frames dedup kept, and the pairs;
//! - the rejects of each stage, with paths into a partition folder rewritten into `OUT`.
//!
//! Counts come from the partitions' manifests, which add up (see
//! [`crate::partition::restrict_scan`]), or are recounted over the joined tables.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::path::{Path, PathBuf};

use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::{Counts, Manifest, StageEntry};
use crate::model::Reject;
use crate::partition::{self, Partition, Placement};
use crate::pipeline::{Stage, StageContext, StageOutput};
use crate::stages;

/// The partition folders to join `stage` from, or None when the merge runs the stage itself:
/// a whole-corpus stage, or one no partition has run. A stage that some partitions finished
/// and others did not, or ran with other settings, or over another state of the corpus, is an
/// error naming them.
pub fn sources(
    stage: Stage,
    scenario: &Scenario,
    partitions: &[PathBuf],
    config_hash: &str,
    input_hash: &str,
) -> Result<Option<Vec<PathBuf>>> {
    if partition::placement(stage, scenario) == Placement::Merge {
        return Ok(None);
    }
    let code = scenario.code.as_str();
    let mut missing = Vec::new();
    for dir in partitions {
        let manifest = Manifest::load(dir)?;
        let Some(entry) = manifest.stage(code, stage.name()) else {
            missing.push(dir.display().to_string());
            continue;
        };
        let problem = if entry.config_hash != config_hash {
            Some("ran with other settings than the merge's (scenario file and --set values)")
        } else if stage == Stage::Scan && entry.input_hash != input_hash {
            Some("scanned another state of the corpus")
        } else if !entry.outputs_present(dir) {
            Some("has outputs that are missing or changed since it ran")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::Invalid(format!(
                "{}: stage {} of this partition {problem}: run the partition again \
                 (`mimicit run SCENARIO --out OUT --partition i/N`), then merge",
                dir.display(),
                stage.name()
            )));
        }
    }
    if missing.len() == partitions.len() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "stage {} has not finished in {}: finish those partitions before merging (or run \
             the stage in none of them: merge then runs it over the whole corpus)",
            stage.name(),
            missing.join(", ")
        )));
    }
    Ok(Some(partitions.to_vec()))
}

/// One partition's run folder and its entry for the stage being joined.
struct Part {
    /// The partition's `OUT`.
    out: PathBuf,
    /// Its `{CODE}` folder.
    dir: PathBuf,
    partition: Option<Partition>,
    entry: StageEntry,
}

impl Part {
    fn open(out: &Path, code: &str, stage: Stage) -> Result<Part> {
        let manifest = Manifest::load(out)?;
        let entry = manifest.stage(code, stage.name()).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: stage {} has not run in this partition",
                out.display(),
                stage.name()
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
    fn outputs(&self, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        self.entry
            .outputs
            .iter()
            .filter(|o| keep(&o.path))
            .map(|o| self.out.join(&o.path))
            .collect()
    }
}

/// Joins the output of `stage` from the partition folders `sources` into `ctx.dir`.
pub fn combine(stage: Stage, ctx: &StageContext, sources: &[PathBuf]) -> Result<StageOutput> {
    let code = ctx.scenario.code.as_str();
    let parts: Vec<Part> = sources
        .iter()
        .map(|dir| Part::open(dir, code, stage))
        .collect::<Result<_>>()?;
    let mut output = match stage {
        Stage::Scan => scan(ctx, &parts)?,
        Stage::Keyframes => keyframes(ctx, &parts)?,
        Stage::Dedup => dedup(ctx, &parts)?,
        Stage::Features => return features(ctx, &parts),
        Stage::Metadata | Stage::Pack => {
            return Err(Error::Invalid(format!(
                "the {} stage works on the whole corpus: it is not joined from partitions",
                stage.name()
            )))
        }
    };
    output.rejects = rejects(ctx, &parts, stage)?;
    Ok(output)
}

/// The counts of the partitions' entries, added up (`rejected` is recounted by the pipeline).
fn summed(parts: &[Part]) -> Counts {
    let mut c = Counts::default();
    for p in parts {
        c.ok += p.entry.counts.ok;
        c.skipped += p.entry.counts.skipped;
    }
    c
}

/// The partitions' rejects of `stage`, with paths into a partition folder rewritten into `OUT`
/// (the features stage names frame files by absolute path).
fn rejects(ctx: &StageContext, parts: &[Part], stage: Stage) -> Result<Vec<Reject>> {
    let mut all = Vec::new();
    for p in parts {
        let path = p
            .dir
            .join("rejects")
            .join(format!("{}.parquet", stage.name()));
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

fn scan(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut units = Vec::new();
    for p in parts {
        let from = p.dir.join("units.parquet");
        for u in crate::tables::read_units(&from)? {
            if let Some(part) = p.partition {
                if !part.owns(&u.id) {
                    return Err(Error::Invalid(format!(
                        "{}: unit {} belongs to partition {}, not {part}: the folder is not \
                         from this split",
                        from.display(),
                        u.id,
                        Partition::of(&u.id, part.count)
                    )));
                }
            }
            units.push(u);
        }
    }
    units.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = units.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::Invalid(format!(
            "unit {} is in two partitions: the folders are not from one split",
            w[0].id
        )));
    }
    // The partitions probed their own media: join their rows rather than probe everything
    // again in this one process.
    let mut media = Vec::new();
    for p in parts {
        media.extend(crate::tables::read_media(&p.dir.join("media.parquet"))?);
    }
    let outputs = stages::scan::write_tables(ctx, &mut units, media)?;
    Ok(StageOutput {
        counts: Counts {
            ok: units.len() as u64,
            ..summed(parts)
        },
        outputs,
        rejects: Vec::new(),
    })
}

fn keyframes(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut frames = Vec::new();
    for p in parts {
        frames.extend(crate::tables::read_frames(&p.dir.join("frames.parquet"))?);
        link_store(&p.dir.join("frames"), &ctx.dir.join("frames"))?;
    }
    // The stage lists frames in unit order (units are in id order), then by index.
    frames.sort_by(|a, b| (&a.unit_id, a.index).cmp(&(&b.unit_id, b.index)));
    let path = stages::frames_path(ctx);
    crate::tables::write_frames(&path, &frames)?;
    Ok(StageOutput {
        counts: summed(parts),
        outputs: vec![path],
        rejects: Vec::new(),
    })
}

fn dedup(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut rows = Vec::new();
    for p in parts {
        rows.extend(crate::tables::read_dedup(&p.dir.join("dedup.parquet"))?);
    }
    let path = stages::dedup::dedup_path(ctx);
    crate::tables::write_dedup(&path, &rows)?;
    Ok(StageOutput {
        counts: summed(parts),
        outputs: vec![path],
        rejects: Vec::new(),
    })
}

/// The frame store is content addressed: every file of a partition's store goes to the same
/// name in `OUT`'s (all of them, as a single run's store also keeps frames of units that failed
/// half way). A file already there with the same size is the same file.
fn link_store(from: &Path, to: &Path) -> Result<()> {
    let mut stack = vec![from.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let src = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // a writer's temporary file
            }
            let ft = entry.file_type().map_err(|e| Error::io(&src, e))?;
            if ft.is_dir() {
                stack.push(src);
                continue;
            }
            let rel = src.strip_prefix(from).expect("under the store");
            let dst = to.join(rel);
            let size = entry.metadata().map_err(|e| Error::io(&src, e))?.len();
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
    }
    Ok(())
}

/// The vectors of the frames dedup kept, from the partitions' shards (sorted by id within each
/// partition) merged into id order and written as the stage writes them, then the pairs.
fn features(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let frames = crate::tables::read_frames(&stages::frames_path(ctx))?;
    let remap = stages::dedup_remap(ctx)?;
    let mut kept = remap.kept_frames(&frames);
    kept.sort_by(|a, b| a.image_id.cmp(&b.image_id));
    kept.dedup_by(|a, b| a.image_id == b.image_id);
    let kept_ids: HashSet<&str> = kept.iter().map(|f| f.image_id.as_str()).collect();

    let mut streams: Vec<ShardStream> = parts
        .iter()
        .map(|p| {
            ShardStream::new(p.outputs(|o| o.contains("/features/") && o.ends_with(".parquet")))
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let mut dim = 0;
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some(id) = s.peek()? {
            heap.push(Reverse((id.to_string(), i)));
            dim = s.dim;
        }
    }
    if let Some(s) = streams.iter().find(|s| s.dim != 0 && s.dim != dim) {
        return Err(Error::Invalid(format!(
            "features of {} have {} values, other partitions' {dim}: they were made by other models",
            s.paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
            s.dim
        )));
    }
    if dim == 0 {
        dim = model_dim(ctx)?;
    }
    let mut writer = stages::features::ShardWriter::new(ctx, dim)?;
    let mut last: Option<String> = None;
    while let Some(Reverse((id, i))) = heap.pop() {
        let vector = streams[i].take();
        if let Some(next) = streams[i].peek()? {
            heap.push(Reverse((next.to_string(), i)));
        }
        // An image in units of two partitions (COCO pairs) was embedded by both: once is enough.
        if last.as_deref() == Some(id.as_str()) || !kept_ids.contains(id.as_str()) {
            continue;
        }
        if vector.len() != dim {
            return Err(Error::Invalid(format!(
                "features of {id}: {} values, expected {dim}",
                vector.len()
            )));
        }
        writer
            .push(std::slice::from_ref(&id), &vector)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        last = Some(id);
    }
    let (written, outputs) = writer.finish(ctx)?;

    // A partition embedded every frame it stored when dedup ran later, over the corpus: only
    // the rejects of frames dedup kept are the single run's.
    let mut rejects: Vec<Reject> = rejects(ctx, parts, Stage::Features)?
        .into_iter()
        .filter(|r| kept_ids.contains(r.item.as_str()))
        .collect();
    rejects.sort();
    rejects.dedup();
    if written + rejects.len() < kept.len() {
        return Err(Error::Invalid(format!(
            "{} kept frames have no features in any partition and were not rejected: the \
             partitions' features were made from other frames; run them again",
            kept.len() - written - rejects.len()
        )));
    }
    Ok(StageOutput {
        counts: Counts {
            ok: written as u64,
            rejected: 0,
            skipped: (frames.len() - kept.len()) as u64,
        },
        outputs,
        rejects,
    })
}

/// The vector length of the scenario's model, for a corpus with no vector to read it from (its
/// empty `.npy` shard still says `(0, dim)`).
fn model_dim(ctx: &StageContext) -> Result<usize> {
    let cfg = &ctx.scenario.config.features;
    let Some(model) = &ctx.scenario.model else {
        return Ok(0);
    };
    let precision: crate::features::Precision = cfg
        .precision
        .parse()
        .map_err(|e: String| Error::Invalid(format!("features.precision: {e}")))?;
    let device = stages::features::device(ctx)?;
    Ok(crate::features::Embedder::load(model, device, precision)?.dim())
}

/// One partition's feature shards, read one at a time, row by row.
struct ShardStream {
    paths: Vec<PathBuf>,
    next_shard: usize,
    ids: Vec<String>,
    vectors: Vec<f32>,
    dim: usize,
    row: usize,
}

impl ShardStream {
    fn new(mut paths: Vec<PathBuf>) -> ShardStream {
        paths.sort();
        ShardStream {
            paths,
            next_shard: 0,
            ids: Vec::new(),
            vectors: Vec::new(),
            dim: 0,
            row: 0,
        }
    }

    /// The id of the next row, loading the next non-empty shard when this one is done.
    fn peek(&mut self) -> Result<Option<&str>> {
        while self.row >= self.ids.len() {
            let Some(path) = self.paths.get(self.next_shard) else {
                return Ok(None);
            };
            self.next_shard += 1;
            let (ids, dim, vectors) = crate::tables::read_features(path)?;
            if !ids.is_empty() {
                if self.dim != 0 && dim != self.dim {
                    return Err(Error::Invalid(format!(
                        "{}: {dim} values per vector, earlier shards have {}",
                        path.display(),
                        self.dim
                    )));
                }
                self.dim = dim;
            }
            (self.ids, self.vectors, self.row) = (ids, vectors, 0);
        }
        Ok(Some(self.ids[self.row].as_str()))
    }

    /// The vector of the row [`ShardStream::peek`] named; moves on.
    fn take(&mut self) -> Vec<f32> {
        let d = self.dim;
        let v = self.vectors[self.row * d..(self.row + 1) * d].to_vec();
        self.row += 1;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_streams_merge_in_id_order_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        let shard = |name: &str, ids: &[&str]| {
            let p = dir.path().join(name);
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let v: Vec<f32> = ids.iter().flat_map(|s| [s.len() as f32, 1.0]).collect();
            crate::tables::write_features(&p, &ids, 2, &v).unwrap();
            p
        };
        let a = vec![
            shard("a0.parquet", &["a", "c"]),
            shard("a1.parquet", &[]),
            shard("a2.parquet", &["e"]),
        ];
        let b = vec![shard("b0.parquet", &["b", "dd"])];
        let mut streams = [ShardStream::new(a), ShardStream::new(b)];
        let mut order = Vec::new();
        loop {
            let mut best: Option<(String, usize)> = None;
            for (i, s) in streams.iter_mut().enumerate() {
                if let Some(id) = s.peek().unwrap() {
                    if best.as_ref().is_none_or(|(b, _)| id < b.as_str()) {
                        best = Some((id.to_string(), i));
                    }
                }
            }
            let Some((id, i)) = best else { break };
            let v = streams[i].take();
            assert_eq!(v, vec![id.len() as f32, 1.0]);
            order.push(id);
        }
        assert_eq!(order, ["a", "b", "c", "dd", "e"]);
    }

    #[test]
    fn link_store_takes_every_file_once_and_skips_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, to) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("to"),
        );
        for (root, name, body) in [
            (&a, "ab/ab1.png", "x"),
            (&b, "ab/ab1.png", "x"),
            (&b, "cd/cd2.png", "yy"),
        ] {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::write(b.join("cd/.cd3.png.tmp-1-0"), "junk").unwrap();
        link_store(&a, &to).unwrap();
        link_store(&b, &to).unwrap();
        link_store(&dir.path().join("none"), &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("ab/ab1.png")).unwrap(), "x");
        assert_eq!(
            std::fs::read_to_string(to.join("cd/cd2.png")).unwrap(),
            "yy"
        );
        assert!(!to.join("cd/.cd3.png.tmp-1-0").exists());
    }
}
