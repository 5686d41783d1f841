//! Frame deduplication (stage 3): which frames repeat another, and which frame stands in for
//! each one dropped. The decisions are a table, `dedup.parquet` (one [`DedupRow`] per dropped
//! frame); nothing is deleted from the frame store, and later stages read the table through
//! [`Remap`] so that no annotation or instruction points at a dropped image.
//!
//! Methods, in order:
//! - **exact**: same `pixel_hash` (blake3 of the stored pixels, so frames written by different
//!   encoders still match);
//! - **near** (`dedup.near`): 64-bit DCT pHash (see [`hash::phash`]) within `dedup.max_hamming`
//!   bits, and mean luma within [`MAX_LUMA_DELTA`] (so fades are not duplicates);
//! - **semantic** (`dedup.semantic`): CLIP embeddings (the `features.model`) with cosine at least
//!   `dedup.min_cosine`, applied by the dedup stage to the frames exact and near matching kept
//!   (see [`decide_semantic`]).
//!
//! Frames are taken in table order (unit order, then time) and gathered into groups, each with
//! an *anchor*: the first frame of the group, the one later frames are compared with.
//! - Scope `unit`: a frame joins the group of an identical frame of its unit, or else the
//!   current run's group when it is near that run's anchor (the last frame kept so far, not the
//!   frame just before: a slow pan therefore keeps a frame every `max_hamming` bits of change
//!   instead of collapsing); otherwise it starts a new run. A static shot collapses to its first
//!   frame. Frames of one unit must be contiguous in the input.
//! - Scope `corpus`: a frame joins the group of an identical frame anywhere before it, or else of
//!   the nearest anchor in the whole corpus (ties: the earliest), found through
//!   [`index::HammingIndex`] rather than by comparing all pairs. A unit may then lose every one
//!   of its frames to other units: its ids still resolve, through the remap, to the frames kept
//!   in their place, so the unit keeps pictures to show.
//!
//! Before these, the quality filters (`[filter]` uniform and blur, see [`filter`]) take black,
//! single-colour and blurred frames out: they are rows of the same table, with method `uniform`
//! or `blur`, mapped to a kept frame of their own unit, and take no part in the matching.
//!
//! Each group keeps one frame: the first (`keep = "first"`) or the sharpest (`keep =
//! "sharpest"`, variance of the Laplacian, ties to the first). Every other member maps straight
//! to the kept frame (no chains). Matching is always against the anchor; with `sharpest` the kept
//! frame may be another member, so a row's distance (to the kept frame) can then exceed
//! `max_hamming`.

pub mod filter;
pub mod hash;
pub mod index;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::{DedupConfig, DedupScope, KeepRule};
use crate::error::{Error, Result};
use crate::model::{FrameRecord, Reject, RgbFrame};

pub use hash::{dhash, hamming, looks, mean_luma, phash, sharpness, Looks};

/// Largest difference of mean luma (0..=255) between two frames matched by pHash. pHash ignores
/// overall brightness by design (it thresholds AC coefficients at their median), so without this
/// guard every frame of a fade-in or fade-out collapses onto the shot it fades, and a shot that
/// is only a fade loses all its frames (`testvideo.mp4`: two of its nine golden shots). JPEG
/// re-encoding, rescaling and small shifts move the mean by well under 1.
pub const MAX_LUMA_DELTA: f32 = 16.0;
pub use index::HammingIndex;

pub use crate::model::{DedupRow, Method};

/// What deduplication needs to know about one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSignature {
    pub image_id: String,
    pub unit_id: String,
    pub pixel_hash: String,
    /// pHash of the pixels; None when near matching is off or the picture could not be read
    /// (the frame then takes part in exact matching only).
    pub phash: Option<u64>,
    /// Mean luma, 0..=255 (see [`MAX_LUMA_DELTA`]); any value when `phash` is None.
    pub mean_luma: f32,
    /// [`sharpness`], for `keep = "sharpest"`; any value otherwise.
    pub sharpness: f64,
}

impl FrameSignature {
    /// The signature of a decoded picture; `near` says whether to compute its pHash, `sharpest`
    /// its sharpness.
    pub fn of_picture(
        image_id: String,
        unit_id: String,
        img: &RgbFrame,
        near: bool,
        sharpest: bool,
    ) -> FrameSignature {
        let l = near.then(|| looks(img, sharpest));
        FrameSignature {
            image_id,
            unit_id,
            pixel_hash: crate::imaging::pixel_hash(img),
            phash: l.map(|l| l.phash),
            mean_luma: l.map_or(0.0, |l| l.mean_luma),
            sharpness: l.map_or(0.0, |l| l.sharpness),
        }
    }
}

/// Refuses settings this version cannot honour.
pub fn check_config(cfg: &DedupConfig) -> Result<()> {
    if !(-1.0..=1.0).contains(&cfg.min_cosine) {
        return Err(Error::Invalid(format!(
            "dedup.min_cosine {} is not a cosine in [-1, 1]",
            cfg.min_cosine
        )));
    }
    Ok(())
}

/// One frame for [`decide_semantic`]: its id, unit, and its nearest others (indices into the
/// same list, with cosines), most similar first.
pub struct SemanticFrame<'a> {
    pub image_id: &'a str,
    pub unit_id: &'a str,
    pub neighbours: Vec<(usize, f32)>,
}

/// Semantic duplicates among `frames` (the frames exact and near matching kept, in table order):
/// a frame is dropped when an earlier frame that is kept (of its unit, with scope `unit`) has
/// cosine at least `min_cosine` with it; it maps to the most similar such frame (ties: the
/// earliest). Greedy in table order, so the first frame of a group of look-alikes is kept and
/// nothing maps to a dropped frame. `keep = "sharpest"` does not apply to this pass.
pub fn decide_semantic(
    frames: &[SemanticFrame],
    min_cosine: f32,
    scope: DedupScope,
) -> Vec<DedupRow> {
    let mut dropped = vec![false; frames.len()];
    let mut rows = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let best = f
            .neighbours
            .iter()
            .filter(|&&(j, c)| {
                j < i
                    && !dropped[j]
                    && c >= min_cosine
                    && (scope == DedupScope::Corpus || frames[j].unit_id == f.unit_id)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some(&(j, c)) = best {
            dropped[i] = true;
            rows.push(DedupRow {
                dropped_id: f.image_id.to_string(),
                kept_id: frames[j].image_id.to_string(),
                method: Method::Semantic,
                distance: (1000.0 * (1.0 - f64::from(c).min(1.0))).round() as u32,
            });
        }
    }
    rows.sort();
    rows
}

/// Whether frames need decoding for these settings: only perceptual matching looks at pixels
/// (exact groups hold identical pixels, so even `sharpest` has nothing to choose between).
pub fn needs_pixels(cfg: &DedupConfig) -> bool {
    cfg.near
}

struct Group {
    anchor: usize,
    members: Vec<usize>,
}

/// The dedup decisions for `frames` (unit order, then time), sorted by `dropped_id`. See the
/// module doc for the rules.
pub fn decide(frames: &[FrameSignature], cfg: &DedupConfig) -> Result<Vec<DedupRow>> {
    check_config(cfg)?;
    let k = cfg.max_hamming;
    let mut groups: Vec<Group> = Vec::new();
    let mut exact: HashMap<&str, usize> = HashMap::new();
    let mut index = (cfg.near && cfg.scope == DedupScope::Corpus).then(|| HammingIndex::new(k));
    // Index id → group.
    let mut indexed: Vec<usize> = Vec::new();
    let mut run: Option<usize> = None;
    let mut unit: Option<&str> = None;
    for (i, f) in frames.iter().enumerate() {
        if unit != Some(f.unit_id.as_str()) {
            unit = Some(&f.unit_id);
            run = None;
            if cfg.scope == DedupScope::Unit {
                exact.clear();
            }
        }
        let by_exact = || {
            cfg.exact
                .then(|| exact.get(f.pixel_hash.as_str()).copied())
                .flatten()
        };
        let by_near = || {
            let h = f.phash.filter(|_| cfg.near)?;
            let close = |g: usize| {
                let a = &frames[groups[g].anchor];
                (a.mean_luma - f.mean_luma).abs() <= MAX_LUMA_DELTA
                    && a.phash.is_some_and(|a| hamming(a, h) <= k)
            };
            match &index {
                // The closest anchor that passes the luma guard; ties to the earliest.
                Some(index) => index
                    .within(h)
                    .into_iter()
                    .filter(|m| close(indexed[m.id as usize]))
                    .min()
                    .map(|m| indexed[m.id as usize]),
                None => run.filter(|&g| close(g)),
            }
        };
        let group = match by_exact().or_else(by_near) {
            Some(g) => {
                groups[g].members.push(i);
                g
            }
            None => {
                let g = groups.len();
                groups.push(Group {
                    anchor: i,
                    members: vec![i],
                });
                if let (Some(index), Some(h)) = (index.as_mut(), f.phash) {
                    index.insert(h);
                    indexed.push(g);
                }
                run = Some(g);
                g
            }
        };
        if cfg.exact {
            exact.entry(f.pixel_hash.as_str()).or_insert(group);
        }
    }

    let mut rows = Vec::new();
    for g in groups.iter().filter(|g| g.members.len() > 1) {
        let kept = match cfg.keep {
            KeepRule::First => g.anchor,
            KeepRule::Sharpest => g.members.iter().copied().fold(g.anchor, |best, m| {
                if frames[m].sharpness > frames[best].sharpness {
                    m
                } else {
                    best
                }
            }),
        };
        let kf = &frames[kept];
        for &m in g.members.iter().filter(|&&m| m != kept) {
            let f = &frames[m];
            let (method, distance) = if f.pixel_hash == kf.pixel_hash {
                (Method::Exact, 0)
            } else {
                let d = match (f.phash, kf.phash) {
                    (Some(a), Some(b)) => hamming(a, b),
                    _ => 0,
                };
                (Method::Phash, d)
            };
            rows.push(DedupRow {
                dropped_id: f.image_id.clone(),
                kept_id: kf.image_id.clone(),
                method,
                distance,
            });
        }
    }
    rows.sort();
    Ok(rows)
}

/// The dedup decisions as a lookup: dropped id → kept id. Ids not in the table are kept and
/// resolve to themselves.
#[derive(Debug, Clone, Default)]
pub struct Remap {
    rows: Vec<DedupRow>,
    kept_of: HashMap<String, String>,
}

impl Remap {
    pub fn from_rows(mut rows: Vec<DedupRow>) -> Remap {
        rows.sort();
        let kept_of = rows
            .iter()
            .map(|r| (r.dropped_id.clone(), r.kept_id.clone()))
            .collect();
        Remap { rows, kept_of }
    }

    /// Reads `OUT/{CODE}/dedup.parquet`.
    pub fn load(path: &Path) -> Result<Remap> {
        Ok(Remap::from_rows(crate::tables::read_dedup(path)?))
    }

    /// [`Remap::load`] when the file exists (the dedup stage ran), else the identity.
    pub fn load_or_identity(path: &Path) -> Result<Remap> {
        if path.exists() {
            Remap::load(path)
        } else {
            Ok(Remap::default())
        }
    }

    /// The rows, sorted by dropped id.
    pub fn rows(&self) -> &[DedupRow] {
        &self.rows
    }

    pub fn is_dropped(&self, image_id: &str) -> bool {
        self.kept_of.contains_key(image_id)
    }

    /// The frame that stands for `image_id`: its kept frame if it was dropped, else itself.
    pub fn resolve<'a>(&'a self, image_id: &'a str) -> &'a str {
        self.kept_of.get(image_id).map_or(image_id, String::as_str)
    }

    /// The frames not dropped, in their order.
    pub fn kept_frames(&self, frames: &[FrameRecord]) -> Vec<FrameRecord> {
        frames
            .iter()
            .filter(|f| !self.is_dropped(&f.image_id))
            .cloned()
            .collect()
    }

    /// A unit's image ids after dedup: each resolved to its kept frame, repeats removed (first
    /// occurrence stays), order kept. Never empty when `ids` is not: a unit that lost every
    /// frame to another unit gets that unit's kept frames.
    pub fn unit_ids<S: AsRef<str>>(&self, ids: &[S]) -> Vec<String> {
        let mut seen = HashSet::new();
        ids.iter()
            .map(|id| self.resolve(id.as_ref()))
            .filter(|id| seen.insert(*id))
            .map(str::to_string)
            .collect()
    }
}

/// Smallest side a picture is decoded at for the near pass of [`dedup_folder`]: twice the 32x32
/// the pHash is computed from.
const HASH_SIDE: u32 = 64;

/// The largest DCT reduction (8, 4, 2, else 1) that keeps both sides of a `w` x `h` picture at
/// least [`HASH_SIDE`].
fn hash_divisor(w: u32, h: u32) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&k| w.min(h) / k >= HASH_SIDE)
        .unwrap_or(1)
}

/// What [`dedup_folder`] found.
#[derive(Debug, Clone, Default)]
pub struct FolderDedup {
    /// Pictures read.
    pub images: usize,
    /// Decisions, sorted by dropped id.
    pub rows: Vec<DedupRow>,
    /// Files that could not be read, by path; they take no part.
    pub rejects: Vec<Reject>,
}

/// Ad-hoc dedup of a folder of pictures (`mimicit dedup DIR`): every `.jpg`, `.jpeg` and `.png`
/// under `dir` (recursively, in path order) is one frame of one single unit, with its file stem
/// as id (a stem already taken gives the later file its path relative to `dir` as id). Files
/// that cannot be decoded are listed in [`FolderDedup::rejects`] and skipped.
pub fn dedup_folder(dir: &Path, cfg: &DedupConfig) -> Result<FolderDedup> {
    check_config(cfg)?;
    if cfg.semantic {
        return Err(Error::NotBuilt {
            what: "semantic deduplication of a folder (`dedup DIR`; the dedup stage of a \
                   scenario has it: dedup.semantic with features.model)"
                .into(),
        });
    }
    let (ids, files): (Vec<String>, Vec<PathBuf>) =
        crate::imaging::folder_images(dir)?.into_iter().unzip();
    let sharpest = cfg.keep == KeepRule::Sharpest;
    // The near pass needs only a 32x32 luma picture: a JPEG is decoded at 1/2, 1/4 or 1/8 of its
    // size (in the DCT, a fraction of the cost) while that keeps at least HASH_SIDE pixels a
    // side. Sharpness depends on resolution, so `keep = sharpest` decodes whole.
    let reduce = cfg.near && !sharpest;
    let reject = |path: &Path, id: &str, e: crate::imaging::ImagingError| Reject {
        stage: "dedup".into(),
        item: id.to_string(),
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let decoded: Vec<std::result::Result<(FrameSignature, bool), Reject>> = files
        .par_iter()
        .zip(ids.par_iter())
        .map(|(path, id)| {
            let (img, reduced) = if reduce {
                crate::imaging::decode_file_reduced(path, hash_divisor)
            } else {
                crate::imaging::decode_file(path).map(|img| (img, None))
            }
            .map_err(|e| reject(path, id, e))?;
            let mut sig =
                FrameSignature::of_picture(id.clone(), String::new(), &img, cfg.near, sharpest);
            if let Some((k, w, h)) = reduced {
                // Not the hash of the picture's pixels: a key that equal pixels share, confirmed
                // below on the whole pictures.
                sig.pixel_hash = format!("1/{k} of {w}x{h}: {}", sig.pixel_hash);
            }
            Ok((sig, reduced.is_some()))
        })
        .collect();
    let mut signatures = Vec::new();
    let mut reduced = Vec::new();
    let mut rejects = Vec::new();
    for (d, path) in decoded.into_iter().zip(&files) {
        match d {
            Ok((s, r)) => {
                signatures.push(s);
                if r {
                    reduced.push((signatures.len() - 1, path));
                }
            }
            Err(r) => rejects.push(r),
        }
    }
    // Pictures whose reduced pixels equal another's: exact duplicates only if their whole pixels
    // are equal too, so those few are decoded whole.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in &signatures {
        *count.entry(s.pixel_hash.as_str()).or_default() += 1;
    }
    let confirm: Vec<(usize, &PathBuf)> = reduced
        .into_iter()
        .filter(|(i, _)| count[signatures[*i].pixel_hash.as_str()] > 1)
        .collect();
    let whole: Vec<std::result::Result<String, Reject>> = confirm
        .par_iter()
        .map(|(i, path)| {
            crate::imaging::decode_file(path)
                .map(|img| crate::imaging::pixel_hash(&img))
                .map_err(|e| reject(path, &signatures[*i].image_id, e))
        })
        .collect();
    let mut unreadable = HashSet::new();
    for ((i, _), h) in confirm.iter().zip(whole) {
        match h {
            Ok(h) => signatures[*i].pixel_hash = h,
            Err(r) => {
                unreadable.insert(signatures[*i].image_id.clone());
                rejects.push(r);
            }
        }
    }
    signatures.retain(|s| !unreadable.contains(&s.image_id));
    Ok(FolderDedup {
        images: signatures.len(),
        rows: decide(&signatures, cfg)?,
        rejects,
    })
}

#[cfg(test)]
mod tests;
