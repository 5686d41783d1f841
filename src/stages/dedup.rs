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
    let rows = dedup::decide(&signatures, cfg)?;
    Ok((rows, rejects, frames.len()))
}
