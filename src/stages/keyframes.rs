//! Stage 2, keyframes: for every unit, decode and sample its frames (video) or read its pictures
//! (image units), resize, encode, and put them in the content-addressed frame store
//! `OUT/{CODE}/frames/{h[..2]}/{h}.{png|jpg}` (h = blake3 of the encoded bytes). The table
//! `frames.parquet` lists every kept frame in unit order, then time order.
//!
//! Video units are sampled by [`video::sample_into`] (the loop `mimicit frames` uses too), which
//! resizes and encodes the kept frames; this stage stores them. With `filter.letterbox`, black
//! bars are cropped off video frames before they are resized, with one crop window per unit
//! ([`crate::imaging::letterbox`]); picture units are left as they are.
//!
//! Units run in parallel (rayon). Each finished unit is journaled in
//! `OUT/{CODE}/journal/keyframes/` ([`crate::journal`]) with the stage's settings-and-inputs
//! hash, so after a crash only the unfinished units are decoded again; the journal is removed
//! when the stage completes.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::join::Part;
use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::{ImageConfig, ImageFormat};
use crate::error::{Error, Result};
use crate::imaging;
use crate::journal::Journal;
use crate::manifest::Counts;
use crate::model::{FrameRecord, Reject, Unit, UnitMedia};
use crate::progress::Progress;
use crate::video::{self, Sampling};
use crate::watchdog::Watchdog;

const STAGE: &str = "keyframes";

/// A finished unit, as journaled.
#[derive(Debug, Serialize, Deserialize)]
struct UnitResult {
    frames: Vec<FrameRecord>,
    reject: Option<Reject>,
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let scenario = ctx.scenario;
    let units = crate::tables::read_units(&super::units_path(ctx))?;
    let journal = Journal::open(&ctx.dir, STAGE, &ctx.config_hash)?;
    let progress = Progress::new(ctx.progress, STAGE, units.len() as u64);
    let watchdog = Watchdog::start(STAGE, crate::watchdog::DEFAULT_AFTER);
    let results: Vec<UnitResult> = units
        .par_iter()
        .map(|unit| {
            let _running = watchdog.track(&format!("unit {} ({})", unit.id, media_path(unit)));
            let r = process_or_resume(ctx, &journal, unit);
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    drop(watchdog);
    progress.finish();

    let mut frames = Vec::new();
    let mut rejects = Vec::new();
    let mut ok = 0;
    for r in results {
        if !r.frames.is_empty() {
            ok += 1;
        }
        frames.extend(r.frames);
        rejects.extend(r.reject);
    }
    // The store's files were written without fsyncs (many small files): the files the table
    // lists (also those an earlier, killed process wrote) are made durable before it.
    crate::atomic::sync_files(&ctx.dir, frames.iter().map(|f| f.file.as_str()))?;
    let path = super::frames_path(ctx);
    crate::tables::write_frames(&path, &frames)?;
    journal.finish()?;
    tracing::info!("{}: {} frames from {ok} units", scenario.code, frames.len());
    Ok(StageOutput {
        counts: Counts {
            ok,
            rejected: 0,
            skipped: 0,
        },
        outputs: vec![path],
        rejects,
    })
}

fn process_or_resume(ctx: &StageContext, journal: &Journal, unit: &Unit) -> Result<UnitResult> {
    if matches!(unit.media, UnitMedia::Missing { .. }) {
        // An annotation-only unit: the scan already recorded its missing media.
        return Ok(UnitResult {
            frames: Vec::new(),
            reject: None,
        });
    }
    if let Some(done) = journal.get::<UnitResult>(&unit.id) {
        let files: Vec<(String, u64)> = done
            .frames
            .iter()
            .map(|f| (f.file.clone(), f.bytes))
            .collect();
        if crate::journal::files_present(&ctx.dir, &files) {
            return Ok(done);
        }
    }
    let (frames, reject) = match process(ctx, unit) {
        Ok(frames) if frames.is_empty() => (
            frames,
            Some(reject(unit, "no frame was selected or decoded".into())),
        ),
        Ok(frames) => (frames, None),
        // Per-item failure: recorded, the other units go on.
        Err(ItemError::Item(message)) => (Vec::new(), Some(reject(unit, message))),
        // Output failure (disk full, unwritable folder): the whole stage stops.
        Err(ItemError::Fatal(e)) => return Err(e),
    };
    let result = UnitResult { frames, reject };
    journal.put(&unit.id, &result)?;
    Ok(result)
}

fn reject(unit: &Unit, error: String) -> Reject {
    Reject {
        stage: STAGE.into(),
        item: unit.id.clone(),
        path: media_path(unit),
        error,
    }
}

/// The unit's video, or its first picture, relative to the corpus root.
fn media_path(unit: &Unit) -> String {
    match &unit.media {
        UnitMedia::Video { path, .. } => path.display().to_string(),
        UnitMedia::Missing { expected } => expected.clone(),
        UnitMedia::Images { items } => items
            .first()
            .map(|i| i.path.display().to_string())
            .unwrap_or_default(),
    }
}

enum ItemError {
    Item(String),
    Fatal(Error),
}

fn process(ctx: &StageContext, unit: &Unit) -> std::result::Result<Vec<FrameRecord>, ItemError> {
    let scenario = ctx.scenario;
    let max = scenario.config.keyframes.max_per_unit as usize;
    let code = scenario.code;
    let mut frames = Vec::new();
    match &unit.media {
        UnitMedia::Video {
            path,
            start,
            end,
            key_prefix,
            key_width,
            segments,
            chosen,
        } => {
            let full = scenario.root.join(path);
            let spans: Vec<Option<(f64, f64)>> = if segments.is_empty() {
                vec![match (start, end) {
                    (None, None) => None,
                    (s, e) => Some((s.unwrap_or(0.0), e.unwrap_or(f64::INFINITY))),
                }]
            } else {
                segments.iter().map(|[s, e]| Some((*s, *e))).collect()
            };
            let sampling = if chosen.is_empty() {
                Sampling::from_config(&scenario.config.keyframes, &unit.times)
            } else {
                Sampling::At(chosen.iter().map(|c| c.time_s).collect())
            };
            let filter = &scenario.config.filter;
            let policy = video::Policy {
                sampling: &sampling,
                image: &scenario.config.image,
                max_frames: max,
                letterbox: filter.letterbox.then_some(filter.letterbox_luma),
            };
            let source = video::Source::Video {
                path: &full,
                spans: &spans,
            };
            // (time, stored frame), gathered over every span, then put in time order.
            let mut got: Vec<(f64, Stored)> = Vec::new();
            let mut sink = |batch: Vec<video::KeptFrame>| -> Result<()> {
                for f in batch {
                    got.push((f.time_s, write(ctx, f.frame, &scenario.config.image)?));
                }
                Ok(())
            };
            video::sample_into(&source, &policy, &mut sink).map_err(|e| match e {
                video::SampleError::Source(message) => ItemError::Item(message),
                video::SampleError::Sink(e) => ItemError::Fatal(e),
            })?;
            got.sort_by(|a, b| a.0.total_cmp(&b.0));
            let keys = chosen_keys(chosen, &got);
            for (i, (time_s, (file, bytes, pixel_hash, w, h))) in got.into_iter().enumerate() {
                let key = match &keys {
                    Some(k) => k[i].clone(),
                    None => format!("{key_prefix}_{i:0width$}", width = *key_width),
                };
                frames.push(FrameRecord {
                    image_id: format!("{code}_IMG_{key}"),
                    unit_id: unit.id.clone(),
                    index: i as u32,
                    time_s: Some(time_s),
                    width: w,
                    height: h,
                    pixel_hash,
                    file,
                    bytes,
                });
            }
        }
        UnitMedia::Missing { .. } => {}
        UnitMedia::Images { items } => {
            for item in items.iter().take(if max > 0 { max } else { usize::MAX }) {
                let full = scenario.root.join(&item.path);
                let img = imaging::decode_file_for(&full, &scenario.config.image)
                    .map_err(|e| ItemError::Item(e.to_string()))?;
                let frame =
                    video::prepare(&img, &scenario.config.image).map_err(ItemError::Item)?;
                let (file, bytes, pixel_hash, w, h) =
                    write(ctx, frame, &scenario.config.image).map_err(ItemError::Fatal)?;
                frames.push(FrameRecord {
                    image_id: format!("{code}_IMG_{}", item.key),
                    unit_id: unit.id.clone(),
                    index: frames.len() as u32,
                    time_s: None,
                    width: w,
                    height: h,
                    pixel_hash,
                    file,
                    bytes,
                });
            }
        }
    }
    Ok(frames)
}

type Stored = (String, u64, String, u32, u32);

/// The keys of adapter-chosen frames (None when the adapter chose none): each kept frame, in
/// time order, takes the key of the nearest chosen time not yet taken. `At` sampling gives one
/// frame per time, and once for times that pick the same frame, so the walk stays in step.
fn chosen_keys(chosen: &[crate::model::ChosenFrame], got: &[(f64, Stored)]) -> Option<Vec<String>> {
    if chosen.is_empty() {
        return None;
    }
    let mut keys = Vec::with_capacity(got.len());
    let mut c = 0;
    for (t, _) in got {
        while c + 1 < chosen.len()
            && (chosen[c + 1].time_s - t).abs() <= (chosen[c].time_s - t).abs()
        {
            c += 1;
        }
        keys.push(chosen[c].key.clone());
        // `At` never gives more frames than times; if it did, the last key would repeat.
        c = (c + 1).min(chosen.len() - 1);
    }
    Some(keys)
}

/// Stores one resized and encoded frame; returns (file relative to OUT/{CODE}, bytes, pixel
/// hash, width, height).
fn write(ctx: &StageContext, frame: video::Prepared, cfg: &ImageConfig) -> Result<Stored> {
    let hash = blake3::hash(&frame.bytes).to_hex().to_string();
    let ext = match cfg.format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpg",
    };
    let rel = format!("frames/{}/{hash}.{ext}", &hash[..2]);
    let path = ctx.dir.join(&rel);
    let present = std::fs::metadata(&path)
        .map(|m| m.len() == frame.bytes.len() as u64)
        .unwrap_or(false);
    if !present {
        crate::atomic::write_unsynced(&path, &frame.bytes)?;
    }
    Ok((
        rel,
        frame.bytes.len() as u64,
        frame.pixel_hash,
        frame.width,
        frame.height,
    ))
}

/// Stage 2: decode, sample, resize and store the frames of every unit.
pub struct Keyframes;

impl Stage for Keyframes {
    fn id(&self) -> StageId {
        StageId::Keyframes
    }
    fn name(&self) -> &'static str {
        STAGE
    }
    /// The letterbox keys of `[filter]` act here, before resizing; the rest of it in dedup.
    fn sections(&self) -> &'static [&'static str] {
        &[
            "keyframes",
            "image",
            "filter.letterbox",
            "filter.letterbox_luma",
        ]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Scan]
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
    /// The frames the partitions' tables list (hard-linked from the partitions), and the table
    /// in unit, then index order.
    fn join(&self, ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
        join_keyframes(ctx, parts)
    }
}

fn join_keyframes(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut frames = Vec::new();
    for p in parts {
        let own = crate::tables::read_frames(&p.dir.join("frames.parquet"))?;
        super::join::link_frames(&p.dir, &ctx.dir, own.iter().map(|f| f.file.as_str()))?;
        frames.extend(own);
    }
    // The stage lists frames in unit order (units are in id order), then by index.
    frames.sort_by(|a, b| (&a.unit_id, a.index).cmp(&(&b.unit_id, b.index)));
    let path = super::frames_path(ctx);
    crate::tables::write_frames(&path, &frames)?;
    Ok(StageOutput {
        counts: super::join::summed(parts),
        outputs: vec![path],
        rejects: super::join::rejects(ctx, parts, STAGE)?,
    })
}
