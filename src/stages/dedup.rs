//! Stage 3, dedup: reads `frames.parquet`, decides which frames repeat others (see
//! [`crate::dedup`] for the rules) and writes `OUT/{CODE}/dedup.parquet`, one row per dropped
//! frame. The frame store is left as it is; later stages read the table through
//! [`crate::dedup::Remap`].
//!
//! Pixels are read only when perceptual matching is on, each stored file once (identical frames
//! share a file), in parallel. A stored frame that cannot be read is a reject; it still takes part
//! in exact matching (its pixel hash is in the table).
//!
//! Counts: ok = frames kept, skipped = frames dropped.

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use crate::config::KeepRule;
use crate::dedup::{self, FrameSignature};
use crate::error::Result;
use crate::manifest::Counts;
use crate::model::Reject;
use crate::pipeline::{StageContext, StageOutput};
use crate::progress::Progress;

const STAGE: &str = "dedup";

/// `OUT/{CODE}/dedup.parquet`.
pub fn dedup_path(ctx: &StageContext) -> std::path::PathBuf {
    ctx.dir.join("dedup.parquet")
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let (rows, rejects, frames) = decide(ctx)?;
    let path = dedup_path(ctx);
    crate::tables::write_dedup(&path, &rows)?;
    tracing::info!(
        "{}: {} of {frames} frames dropped as duplicates",
        ctx.scenario.code,
        rows.len(),
    );
    Ok(StageOutput {
        counts: Counts {
            ok: (frames - rows.len()) as u64,
            rejected: 0,
            skipped: rows.len() as u64,
        },
        outputs: vec![path],
        rejects,
    })
}

/// The decisions of the stage without writing anything (`mimicit dedup --dry-run`): the rows of
/// `dedup.parquet`, the frames that could not be read, and the number of frames considered.
pub fn decide(ctx: &StageContext) -> Result<(Vec<dedup::DedupRow>, Vec<Reject>, usize)> {
    let cfg = &ctx.scenario.config.dedup;
    dedup::check_config(cfg)?;
    let frames = crate::tables::read_frames(&super::frames_path(ctx))?;

    let mut hashed: HashMap<&str, dedup::Looks> = HashMap::new();
    let mut rejects = Vec::new();
    if dedup::needs_pixels(cfg) {
        let sharpest = cfg.keep == KeepRule::Sharpest;
        let files: Vec<&str> = frames
            .iter()
            .map(|f| f.file.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let progress = Progress::new(ctx.progress, STAGE, files.len() as u64);
        let results: Vec<_> = files
            .par_iter()
            .map(|&file| {
                let r = crate::imaging::decode_file(&ctx.dir.join(file))
                    .map(|img| dedup::looks(&img, sharpest));
                progress.inc(1);
                (file, r)
            })
            .collect();
        progress.finish();
        for (file, r) in results {
            match r {
                Ok(h) => {
                    hashed.insert(file, h);
                }
                Err(e) => {
                    // Name every frame stored in the unreadable file.
                    for f in frames.iter().filter(|f| f.file == file) {
                        rejects.push(Reject {
                            stage: STAGE.into(),
                            item: f.image_id.clone(),
                            path: file.to_string(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
    }

    let signatures: Vec<FrameSignature> = frames
        .iter()
        .map(|f| {
            let h = hashed.get(f.file.as_str());
            FrameSignature {
                image_id: f.image_id.clone(),
                unit_id: f.unit_id.clone(),
                pixel_hash: f.pixel_hash.clone(),
                phash: h.map(|h| h.phash),
                mean_luma: h.map_or(0.0, |h| h.mean_luma),
                sharpness: h.map_or(0.0, |h| h.sharpness),
            }
        })
        .collect();
    let mut rows = dedup::decide(&signatures, cfg)?;
    if cfg.semantic {
        let (more, unreadable) = semantic(ctx, &frames, &rows)?;
        rows.extend(more);
        rows.sort();
        rejects.extend(unreadable);
    }
    Ok((rows, rejects, frames.len()))
}

/// Neighbours looked at per frame when the scope is the whole corpus.
const SEMANTIC_NEIGHBOURS: usize = 32;

/// The semantic pass: CLIP embeddings (features.model, L2-normalised) of the frames the exact and
/// near passes kept, then [`dedup::decide_semantic`] over their nearest neighbours (per unit, or
/// the `SEMANTIC_NEIGHBOURS` nearest in the corpus).
fn semantic(
    ctx: &StageContext,
    frames: &[crate::model::FrameRecord],
    rows: &[dedup::DedupRow],
) -> Result<(Vec<dedup::DedupRow>, Vec<Reject>)> {
    use crate::features::{self, EmbedItem, EmbedOptions, Embedder};
    let cfg = &ctx.scenario.config;
    let model = ctx.scenario.model.as_ref().ok_or_else(|| {
        crate::error::Error::Invalid("dedup.semantic needs features.model".into())
    })?;
    let precision = cfg
        .features
        .precision
        .parse()
        .map_err(crate::error::Error::Invalid)?;
    let device = super::features::device(ctx)?;
    let embedder = Embedder::load(model, device, precision)?;
    let dropped: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.dropped_id.as_str()).collect();
    let kept: Vec<&crate::model::FrameRecord> = frames
        .iter()
        .filter(|f| !dropped.contains(f.image_id.as_str()))
        .collect();
    let items: Vec<EmbedItem> = kept
        .iter()
        .map(|f| EmbedItem {
            id: f.image_id.clone(),
            path: ctx.dir.join(&f.file),
        })
        .collect();
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    let dim = embedder.dim();
    let progress = Progress::new(ctx.progress, "dedup (semantic)", items.len() as u64);
    let failed = features::embed_items(
        &embedder,
        &items,
        EmbedOptions {
            batch: cfg.features.batch as usize,
            normalize: true,
        },
        |ids, flat| {
            for (i, id) in ids.iter().enumerate() {
                vectors.insert(id.clone(), flat[i * dim..(i + 1) * dim].to_vec());
            }
            Ok(())
        },
        |n| progress.inc(n),
    )?;
    progress.finish();
    let rejects = crate::features::as_rejects(failed, STAGE);
    // Embedded frames in table order.
    let order: Vec<&crate::model::FrameRecord> = kept
        .into_iter()
        .filter(|f| vectors.contains_key(&f.image_id))
        .collect();
    let band = (cfg.dedup.min_cosine as f32, 2.0);
    let mut neighbours: Vec<Vec<(usize, f32)>> = vec![Vec::new(); order.len()];
    let mut search = |members: &[usize], k: usize| -> Result<()> {
        let flat: Vec<f32> = members
            .iter()
            .flat_map(|&i| vectors[&order[i].image_id].iter().copied())
            .collect();
        let found = features::knn::neighbours_at_scale(&flat, dim, k, band, device)?;
        for (local, ns) in found.into_iter().enumerate() {
            neighbours[members[local]] = ns
                .into_iter()
                .map(|n| (members[n.index], n.cosine))
                .collect();
        }
        Ok(())
    };
    match cfg.dedup.scope {
        crate::config::DedupScope::Corpus => {
            let all: Vec<usize> = (0..order.len()).collect();
            search(&all, SEMANTIC_NEIGHBOURS)?;
        }
        crate::config::DedupScope::Unit => {
            let mut start = 0;
            while start < order.len() {
                let unit = &order[start].unit_id;
                let end = start
                    + order[start..]
                        .iter()
                        .take_while(|f| &f.unit_id == unit)
                        .count();
                let members: Vec<usize> = (start..end).collect();
                search(&members, members.len().saturating_sub(1))?;
                start = end;
            }
        }
    }
    let sem: Vec<dedup::SemanticFrame> = order
        .iter()
        .zip(neighbours)
        .map(|(f, n)| dedup::SemanticFrame {
            image_id: &f.image_id,
            unit_id: &f.unit_id,
            neighbours: n,
        })
        .collect();
    Ok((
        dedup::decide_semantic(&sem, cfg.dedup.min_cosine as f32, cfg.dedup.scope),
        rejects,
    ))
}
