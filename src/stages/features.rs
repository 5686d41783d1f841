//! Stage 4, features: CLIP image embeddings of every kept frame (dedup applied), written as
//! `OUT/{CODE}/features/part-NNNNN.parquet` shards (`image_id`, `embedding`), rows sorted by
//! id, at most `features.shard_rows` each; optionally the same rows as `.npy` matrices; and,
//! with `features.pairs = K`, `OUT/{CODE}/pairs.parquet`: each frame's K visually nearest
//! others within the cosine band [pairs_min, pairs_max] (alike, not duplicates).
//!
//! A partition (`--partition i/N`) writes its shards but no pairs: `mimicit merge` joins the
//! shards and searches the pairs over every vector.
//!
//! Shards are written as the model produces them, so memory stays at a few batches plus one
//! shard, except with `pairs` (all vectors are then kept for the neighbour search).
//!
//! Counts: ok = frames embedded, skipped = frames dropped by dedup, rejected = stored frames that
//! could not be read.

use std::path::{Path, PathBuf};

use super::join::Part;
use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::features::{self, DeviceSpec, EmbedItem, EmbedOptions, Embedder, Precision};
use crate::manifest::Counts;
use crate::model::Reject;
use crate::progress::Progress;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

const STAGE: &str = "features";

/// Stage 4: CLIP image features of the kept frames, and their nearest pairs.
pub struct Features;

impl Stage for Features {
    fn id(&self) -> StageId {
        StageId::Features
    }
    fn name(&self) -> &'static str {
        STAGE
    }
    fn sections(&self) -> &'static [&'static str] {
        &["features"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Keyframes]
    }
    fn off_reason(&self, scenario: &Scenario) -> Option<String> {
        scenario
            .model
            .is_none()
            .then(|| "no features.model set".into())
    }
    /// The model's weights, not only its path, decide the vectors.
    fn own_inputs(&self, scenario: &Scenario, h: &mut blake3::Hasher) -> Result<()> {
        if let Some(model) = &scenario.model {
            h.update(format!("model {}\n", features::model_fingerprint(model)?).as_bytes());
        }
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
    /// The partitions' vectors of the frames dedup kept, merged into id order and re-cut into
    /// shards; the pairs searched over all of them.
    fn join(&self, ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
        join_features(ctx, parts)
    }
}

/// `OUT/{CODE}/features/`.
pub fn features_dir(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("features")
}

/// `OUT/{CODE}/pairs.parquet`.
pub fn pairs_path(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("pairs.parquet")
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let cfg = &ctx.scenario.config.features;
    let model = ctx
        .scenario
        .model
        .as_ref()
        .ok_or_else(|| Error::Invalid("features.model is not set".into()))?;
    let precision: Precision = cfg.precision;
    let embedder = Embedder::load(model, ctx.scenario.config.features.device, precision)?;
    tracing::info!("{}: {}", ctx.scenario.code, embedder.description);

    let frames = crate::tables::read_frames(&super::frames_path(ctx))?;
    let remap = super::dedup_remap(ctx)?;
    let mut kept = remap.kept_frames(&frames);
    kept.sort_by(|a, b| a.image_id.cmp(&b.image_id));
    kept.dedup_by(|a, b| a.image_id == b.image_id);
    let items: Vec<EmbedItem> = kept
        .iter()
        .map(|f| EmbedItem {
            id: f.image_id.clone(),
            path: ctx.dir.join(&f.file),
        })
        .collect();

    let mut writer = ShardWriter::new(ctx, embedder.dim())?;
    let progress = Progress::new(ctx.progress, STAGE, items.len() as u64);
    let failed = features::embed_items(
        &embedder,
        &items,
        EmbedOptions {
            batch: cfg.batch as usize,
            normalize: cfg.normalize,
        },
        |ids, vectors| writer.push(ids, vectors),
        |n| progress.inc(n),
    )?;
    progress.finish();
    let (embedded, outputs) = writer.finish(ctx)?;
    let rejects: Vec<Reject> = crate::features::as_rejects(failed, STAGE);
    Ok(StageOutput {
        counts: Counts {
            ok: embedded as u64,
            rejected: 0,
            skipped: (frames.len() - kept.len()) as u64,
        },
        outputs,
        rejects,
    })
}

/// Writes the stage's shards from vectors given in id order, and `pairs.parquet` at the end;
/// `mimicit merge` feeds it the vectors the partitions computed.
pub(crate) struct ShardWriter {
    dir: PathBuf,
    dim: usize,
    shard_rows: usize,
    npy: bool,
    keep_all: bool,
    ids: Vec<String>,
    vectors: Vec<f32>,
    all_ids: Vec<String>,
    all_vectors: Vec<f32>,
    outputs: Vec<PathBuf>,
    shards: usize,
    written: usize,
}

impl ShardWriter {
    /// Empties `OUT/{CODE}/features/` (shards of an earlier run, maybe more of them, must not
    /// linger) and gets ready for vectors of `dim` values.
    pub(crate) fn new(ctx: &StageContext, dim: usize) -> Result<ShardWriter> {
        let cfg = &ctx.scenario.config.features;
        let dir = features_dir(ctx);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(ShardWriter {
            dir,
            dim,
            shard_rows: cfg.shard_rows as usize,
            npy: cfg.npy,
            keep_all: search_pairs(ctx),
            ids: Vec::new(),
            vectors: Vec::new(),
            all_ids: Vec::new(),
            all_vectors: Vec::new(),
            outputs: Vec::new(),
            shards: 0,
            written: 0,
        })
    }

    /// Writes the last shard and, with `features.pairs`, `pairs.parquet`; returns the rows
    /// written and every file.
    pub(crate) fn finish(mut self, ctx: &StageContext) -> Result<(usize, Vec<PathBuf>)> {
        self.flush()?;
        let mut outputs = std::mem::take(&mut self.outputs);
        if search_pairs(ctx) {
            let cfg = &ctx.scenario.config.features;
            let path = pairs_path(ctx);
            write_pairs(
                &path,
                &self.all_ids,
                &self.all_vectors,
                self.dim,
                cfg.pairs as usize,
                (cfg.pairs_min as f32, cfg.pairs_max as f32),
                ctx.scenario.config.features.device,
            )?;
            outputs.push(path);
        }
        Ok((self.written, outputs))
    }

    pub(crate) fn push(
        &mut self,
        ids: &[String],
        vectors: &[f32],
    ) -> std::result::Result<(), features::FeaturesError> {
        for (i, id) in ids.iter().enumerate() {
            self.ids.push(id.clone());
            self.vectors
                .extend_from_slice(&vectors[i * self.dim..(i + 1) * self.dim]);
            if self.ids.len() == self.shard_rows {
                self.flush()
                    .map_err(|e| features::FeaturesError::Torch(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() && self.shards > 0 {
            return Ok(());
        }
        // An empty scenario still gets one (empty) shard, so readers find a file.
        let name = format!("part-{:05}", self.shards);
        self.shards += 1;
        self.written += self.ids.len();
        let path = self.dir.join(format!("{name}.parquet"));
        crate::tables::write_features(&path, &self.ids, self.dim, &self.vectors)?;
        self.outputs.push(path);
        if self.npy {
            let path = self.dir.join(format!("{name}.npy"));
            crate::atomic::write(
                &path,
                &features::npy_f32(self.ids.len(), self.dim, &self.vectors),
            )?;
            self.outputs.push(path);
        }
        if self.keep_all {
            self.all_ids.append(&mut self.ids);
            self.all_vectors.append(&mut self.vectors);
        } else {
            self.ids.clear();
            self.vectors.clear();
        }
        Ok(())
    }
}

/// Whether this run searches `pairs.parquet`: it needs every vector of the corpus, so a
/// partition leaves it to `mimicit merge`.
fn search_pairs(ctx: &StageContext) -> bool {
    ctx.scenario.config.features.pairs > 0 && ctx.partition.is_none()
}

fn write_pairs(
    path: &Path,
    ids: &[String],
    vectors: &[f32],
    dim: usize,
    k: usize,
    band: (f32, f32),
    device: DeviceSpec,
) -> Result<()> {
    let found = features::knn::neighbours_at_scale(vectors, dim, k, band, device)?;
    let mut rows = Vec::new();
    for (i, ns) in found.iter().enumerate() {
        for (rank, n) in ns.iter().enumerate() {
            rows.push((ids[i].clone(), ids[n.index].clone(), rank as u32, n.cosine));
        }
    }
    crate::tables::write_pairs(path, &rows)
}

/// The vectors of the frames dedup kept, from the partitions' shards (sorted by id within each
/// partition) merged into id order and written as the stage writes them, then the pairs.
fn join_features(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let frames = crate::tables::read_frames(&super::frames_path(ctx))?;
    let remap = super::dedup_remap(ctx)?;
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
    let mut writer = ShardWriter::new(ctx, dim)?;
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
    let mut rejects: Vec<Reject> = super::join::rejects(ctx, parts, STAGE)?
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
    let precision = cfg.precision;
    let device = ctx.scenario.config.features.device;
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
}
