//! Image sequences for `mimicit frames`: a folder of still frames (TVQA's 3 fps `.jpg` folders,
//! ScanNet's `color/`) sampled like a video. Picture `i` (natural name order, see
//! [`natural_cmp`]) is a frame at `i / sequence_fps` seconds; the video sampler's
//! [`pick`](crate::video::pick) decides on those times alone which pictures are kept, and only
//! those are read and decoded ([`crate::imaging::decode_file_for`]: libjpeg-turbo for JPEG,
//! reduced in the decoder when the output is much smaller).
//!
//! - `--fps`, `--uniform`, `--at`, `--legacy-stride` and `all` behave as on a video whose frames
//!   are the pictures (its duration is `n / sequence_fps`).
//! - `--keyframes-only`: every picture is a keyframe (each is coded on its own), so every
//!   picture is kept.
//! - `--scene-cuts` judges content, so every picture is decoded; its signature is made as the
//!   video decoder makes it ([`crate::video::Thumbnailer`]).
//!
//! A picture that cannot be read is a reject naming the file and the sequence keeps its other
//! frames (the kept frames are numbered without a gap; no other picture stands in for it).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{prepare, store, Extracted, FramesRequest, Prepared, Written};
use crate::model::{Reject, RgbFrame};
use crate::video::{self, Sampling, StreamFacts};

/// Pictures decoded at once per pool thread for scene cuts, which keep each whole picture until
/// judged: enough to keep the threads busy, few enough that a long sequence of large pictures is
/// never all in memory.
const BATCH_PER_THREAD: usize = 2;
/// Pictures read and prepared at once per pool thread otherwise: only the small encoded frames
/// wait in memory, and each hand-over to the pool (a thread wake-up) serves more pictures.
const PREPARED_PER_THREAD: usize = 16;

pub(super) fn extract(
    req: &FramesRequest,
    dir: &Path,
    pictures: &[PathBuf],
    key: &str,
    ext: &str,
) -> Extracted {
    let rate = req.sequence_fps;
    let times: Vec<f64> = (0..pictures.len()).map(|i| i as f64 / rate).collect();
    let facts = StreamFacts {
        fps: Some(rate),
        media_end: Some(pictures.len() as f64 / rate),
    };
    let whole = |error: String| Reject {
        stage: "frames".into(),
        item: key.to_string(),
        path: dir.display().to_string(),
        error,
    };
    let mut run = Run {
        req,
        key,
        ext,
        pictures,
        times: &times,
        written: Vec::new(),
        rejects: Vec::new(),
    };
    if matches!(req.sampling, Sampling::SceneCuts { .. }) {
        let selector = video::Selector::new(&req.sampling, None, facts)
            .map_err(|m| whole(format!("{}: {m}", dir.display())))?;
        run.scene_cuts(selector).map_err(whole)?;
    } else {
        let chosen = video::pick(&req.sampling, None, facts, &times)
            .map_err(|m| whole(format!("{}: {m}", dir.display())))?;
        run.chosen(&chosen).map_err(whole)?;
    }
    Ok((run.written, run.rejects))
}

struct Run<'a> {
    req: &'a FramesRequest,
    key: &'a str,
    ext: &'a str,
    pictures: &'a [PathBuf],
    times: &'a [f64],
    written: Vec<Written>,
    rejects: Vec<Reject>,
}

impl Run<'_> {
    fn reject(&mut self, picture: usize, error: String) {
        let path = &self.pictures[picture];
        let shown = path.display().to_string();
        let error = if error.contains(&shown) {
            error
        } else {
            format!("{shown}: {error}")
        };
        self.rejects.push(Reject {
            stage: "frames".into(),
            item: self.key.to_string(),
            path: shown,
            error,
        });
    }

    /// Reads, resizes and writes the chosen pictures (indices in time order), a batch at a
    /// time; an error is a frame that could not be written (the whole sequence is then lost, as
    /// a video would be).
    fn chosen(&mut self, chosen: &[usize]) -> Result<(), String> {
        let per_batch = PREPARED_PER_THREAD * rayon::current_num_threads();
        for batch in chosen.chunks(per_batch.max(1)) {
            let cfg = &self.req.image;
            let pictures = self.pictures;
            let prepared: Vec<(usize, Result<Prepared, String>)> = batch
                .par_iter()
                .map(|&p| {
                    let frame = crate::imaging::decode_file_for(&pictures[p], cfg)
                        .map_err(|e| e.to_string())
                        .and_then(|img| prepare(&img, cfg));
                    (p, frame)
                })
                .collect();
            self.store_prepared(prepared)?;
        }
        Ok(())
    }

    /// Stores the pictures that were prepared and rejects those that could not be.
    fn store_prepared(
        &mut self,
        prepared: Vec<(usize, Result<Prepared, String>)>,
    ) -> Result<(), String> {
        let mut ready = Vec::new();
        for (p, frame) in prepared {
            match frame {
                Ok(frame) => ready.push((p, frame)),
                Err(e) => self.reject(p, e),
            }
        }
        self.store_all(ready)
    }

    /// Scene cuts: every picture is decoded (a batch at a time) and offered with its content.
    fn scene_cuts(&mut self, mut selector: video::Selector) -> Result<(), String> {
        let mut thumbnailer = video::Thumbnailer::new();
        let all: Vec<usize> = (0..self.pictures.len()).collect();
        let per_batch = BATCH_PER_THREAD * rayon::current_num_threads();
        let cfg = &self.req.image;
        for batch in all.chunks(per_batch.max(1)) {
            let pictures = self.pictures;
            // Decoded as for the other policies, so a picture gives the same frame either way.
            let decoded: Vec<(usize, Result<RgbFrame, String>)> = batch
                .par_iter()
                .map(|&p| {
                    let img = crate::imaging::decode_file_for(&pictures[p], cfg)
                        .map_err(|e| e.to_string());
                    (p, img)
                })
                .collect();
            let mut kept = Vec::new();
            let mut stop = false;
            for (p, img) in decoded {
                let img = match img {
                    Ok(img) => img,
                    Err(e) => {
                        self.reject(p, e);
                        continue;
                    }
                };
                let signature = match thumbnailer.signature(&img) {
                    Ok(s) => s,
                    Err(e) => {
                        self.reject(p, e);
                        continue;
                    }
                };
                let step = selector.offer_content(self.times[p], signature);
                if step.emit_current {
                    kept.push((p, img));
                }
                if step.stop {
                    stop = true;
                    break;
                }
            }
            let prepared: Vec<(usize, Result<Prepared, String>)> = kept
                .par_iter()
                .map(|(p, img)| (*p, prepare(img, cfg)))
                .collect();
            self.store_prepared(prepared)?;
            if stop {
                break;
            }
        }
        Ok(())
    }

    /// Writes prepared frames (in time order) under the next output indices.
    fn store_all(&mut self, ready: Vec<(usize, Prepared)>) -> Result<(), String> {
        let first = self.written.len();
        let (req, key, ext, times, pictures) =
            (self.req, self.key, self.ext, self.times, self.pictures);
        let stored: Vec<Result<Written, String>> = ready
            .into_par_iter()
            .enumerate()
            .map(|(n, (p, frame))| {
                store(req, key, ext, first + n, times[p], frame).map(|record| Written {
                    record,
                    picture: Some(pictures[p].clone()),
                })
            })
            .collect();
        for w in stored {
            self.written.push(w?);
        }
        Ok(())
    }
}

/// Orders file names as frames are numbered: runs of ASCII digits compare by their value, so
/// `2.jpg` comes before `10.jpg` (ScanNet's `color/0.jpg, 1.jpg, ...`), and zero-padded names
/// (TVQA's `00001.jpg`) keep their plain order. Names equal that way (`01` and `1`) fall back
/// to byte order, so the order is total.
pub(super) fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn digits(s: &[u8], from: usize) -> usize {
        s[from..].iter().take_while(|c| c.is_ascii_digit()).count()
    }
    fn value(run: &[u8]) -> &[u8] {
        let zeros = run.iter().take_while(|&&c| c == b'0').count();
        &run[zeros..]
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (da, db) = (digits(a, i), digits(b, j));
            let (va, vb) = (value(&a[i..i + da]), value(&b[j..j + db]));
            let order = va.len().cmp(&vb.len()).then_with(|| va.cmp(vb));
            if order != Ordering::Equal {
                return order;
            }
            i += da;
            j += db;
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests;
