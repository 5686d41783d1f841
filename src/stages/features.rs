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

use crate::error::{Error, Result};
use crate::features::{self, DeviceSpec, EmbedItem, EmbedOptions, Embedder, Precision};
use crate::manifest::Counts;
use crate::model::Reject;
use crate::pipeline::{StageContext, StageOutput};
use crate::progress::Progress;

const STAGE: &str = "features";

/// `OUT/{CODE}/features/`.
pub fn features_dir(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("features")
}

/// `OUT/{CODE}/pairs.parquet`.
pub fn pairs_path(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("pairs.parquet")
}

pub fn device(ctx: &StageContext) -> Result<DeviceSpec> {
    let d = &ctx.scenario.config.features.device;
    d.parse()
        .map_err(|e: String| Error::Invalid(format!("features.device: {e}")))
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let cfg = &ctx.scenario.config.features;
    let model = ctx
        .scenario
        .model
        .as_ref()
        .ok_or_else(|| Error::Invalid("features.model is not set".into()))?;
    let precision: Precision = cfg
        .precision
        .parse()
        .map_err(|e: String| Error::Invalid(format!("features.precision: {e}")))?;
    let embedder = Embedder::load(model, device(ctx)?, precision)?;
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
                device(ctx)?,
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
