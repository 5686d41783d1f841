//! Stage 3, dedup: reads `frames.parquet`, decides which frames repeat others (see
//! [`crate::dedup`] for the rules) and writes `OUT/{CODE}/dedup.parquet`, one row per dropped
//! frame. The frame store is left as it is; later stages read the table through
//! [`crate::dedup::Remap`].
//!
//! The quality filters (`[filter]` uniform and blur, see [`crate::dedup::filter`]) run first:
//! the frames they take are rows of the same table and take no part in the matching.
//!
//! Pixels are read only when perceptual matching or a filter is on, each stored file once
//! (identical frames share a file), in parallel. A stored frame that cannot be read is a reject; it still takes part
//! in exact matching (its pixel hash is in the table).
//!
//! Counts: ok = frames kept, skipped = frames dropped (duplicates and filtered).

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use super::join::{summed, Part};
use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::KeepRule;
use crate::config::{DedupScope, Scenario};
use crate::dedup::filter::{FilterFrame, Quality};
use crate::dedup::{self, FrameSignature};
use crate::error::Result;
use crate::manifest::Counts;
use crate::model::Reject;
use crate::partition::Placement;
use crate::progress::Progress;

const STAGE: &str = "dedup";

/// Stage 3: exact, perceptual and semantic duplicates and the quality filters.
pub struct Dedup;

impl Stage for Dedup {
    fn id(&self) -> StageId {
        StageId::Dedup
    }
    fn name(&self) -> &'static str {
        STAGE
    }
    fn sections(&self) -> &'static [&'static str] {
        &["dedup", "filter"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Keyframes]
    }
    /// Unit scope in the partitions; corpus scope compares frames across units: in `merge`.
    fn placement(&self, scenario: &Scenario) -> Placement {
        match scenario.config.dedup.scope {
            DedupScope::Unit => Placement::Partitions,
            DedupScope::Corpus => Placement::Merge,
        }
    }
    fn merge_only_reason(&self, _scenario: &Scenario) -> String {
        "dedup.scope = corpus compares frames across partitions: it runs in `mimicit merge`".into()
    }
    /// Semantic dedup embeds frames: the precision and the model's weights count.
    fn own_inputs(&self, scenario: &Scenario, h: &mut blake3::Hasher) -> Result<()> {
        if scenario.config.dedup.semantic {
            h.update(format!("precision {}\n", scenario.config.features.precision).as_bytes());
            if let Some(model) = &scenario.model {
                h.update(
                    format!("model {}\n", crate::features::model_fingerprint(model)?).as_bytes(),
                );
            }
        }
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
    /// The partitions' rows (each unit's decisions are its own).
    fn join(&self, ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
        join_dedup(ctx, parts)
    }
}

/// `OUT/{CODE}/dedup.parquet`.
pub fn dedup_path(ctx: &StageContext) -> std::path::PathBuf {
    ctx.dir.join("dedup.parquet")
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let (rows, rejects, frames) = decide(ctx)?;
    let path = dedup_path(ctx);
    crate::tables::write_dedup(&path, &rows)?;
    let filtered = rows.iter().filter(|r| r.method.is_filter()).count();
    tracing::info!(
        "{}: {} of {frames} frames dropped as duplicates, {filtered} by the quality filters",
        ctx.scenario.code,
        rows.len() - filtered,
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

    let filter = &ctx.scenario.config.filter;
    let filtering = dedup::filter::any(filter);
    let mut hashed: HashMap<&str, (Option<dedup::Looks>, Option<Quality>)> = HashMap::new();
    let mut rejects = Vec::new();
    if dedup::needs_pixels(cfg) || filtering {
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
                let r = crate::imaging::decode_file(&ctx.dir.join(file)).map(|img| {
                    (
                        cfg.near.then(|| dedup::looks(&img, sharpest)),
                        filtering.then(|| dedup::filter::quality(&img)),
                    )
                });
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

    let quality: Vec<Option<Quality>> = frames
        .iter()
        .map(|f| hashed.get(f.file.as_str()).and_then(|h| h.1))
        .collect();
    let flags = if filtering {
        let ff: Vec<FilterFrame> = frames
            .iter()
            .zip(&quality)
            .map(|(f, q)| FilterFrame {
                unit_id: &f.unit_id,
                quality: *q,
            })
            .collect();
        dedup::filter::flag(&ff, filter)
    } else {
        vec![None; frames.len()]
    };
    // The frames no filter took: the ones the matching looks at.
    let open: Vec<crate::model::FrameRecord> = frames
        .iter()
        .zip(&flags)
        .filter(|(_, flag)| flag.is_none())
        .map(|(f, _)| f.clone())
        .collect();
    let signatures: Vec<FrameSignature> = open
        .iter()
        .map(|f| {
            let h = hashed.get(f.file.as_str()).and_then(|h| h.0);
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
        let (more, unreadable) = semantic(ctx, &open, &rows)?;
        rows.extend(more);
        rows.sort();
        rejects.extend(unreadable);
    }
    if filtering {
        let ids: Vec<&str> = frames.iter().map(|f| f.image_id.as_str()).collect();
        let units: Vec<&str> = frames.iter().map(|f| f.unit_id.as_str()).collect();
        let more = dedup::filter::rows(&ids, &units, &flags, &quality, &rows);
        rows.extend(more);
        rows.sort();
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
    let precision = cfg.features.precision;
    let device = ctx.scenario.config.features.device;
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

fn join_dedup(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut rows = Vec::new();
    for p in parts {
        rows.extend(crate::tables::read_dedup(&p.dir.join("dedup.parquet"))?);
    }
    let path = super::dedup::dedup_path(ctx);
    crate::tables::write_dedup(&path, &rows)?;
    Ok(StageOutput {
        counts: summed(parts),
        outputs: vec![path],
        rejects: super::join::rejects(ctx, parts, "dedup")?,
    })
}
