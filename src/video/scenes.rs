//! Shot-boundary detection for [`Sampling::SceneCuts`](super::Sampling::SceneCuts): pure code fed
//! with one small picture per decoded frame, so it can be tested without FFmpeg.
//!
//! Each frame is reduced (by swscale, in the decode loop) to a [`THUMB_W`]x[`THUMB_H`] grey
//! thumbnail; its signature is the histogram of its [`BINS`] luma levels. The content change between two
//! consecutive frames is `1 - r`, with r the Pearson correlation of their histograms, clamped to
//! `[0, 1]`: the measure of PySceneDetect's `HistogramDetector` (its goldens are our test
//! fixtures), on a thumbnail instead of the full frame, which costs a few microseconds per frame.

use crate::model::RgbFrame;

/// Thumbnail size the decode loop scales each frame to (16:9, the usual video shape; other
/// shapes are squashed, which a histogram does not mind).
pub(crate) const THUMB_W: u32 = 64;
pub(crate) const THUMB_H: u32 = 36;

/// Luma histogram bins: one per level. Coarser bins miss fades in dark scenes, where all the
/// pixels sit in a few levels and move by one or two (measured on the goldens: 32 bins found
/// 2 of their 8 cuts, 256 bins all of them).
pub(crate) const BINS: usize = 256;

/// Two times closer than this are the same time.
const EPS: f64 = 1e-9;

/// A frame's content signature: its normalised luma histogram.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signature([f64; BINS]);

impl Signature {
    /// From 8-bit grey pixels (rows may be padded: `stride` bytes apart).
    pub(crate) fn from_gray(width: usize, height: usize, stride: usize, data: &[u8]) -> Signature {
        let mut counts = [0u32; BINS];
        for y in 0..height {
            for &v in &data[y * stride..y * stride + width] {
                counts[(usize::from(v) * BINS) >> 8] += 1;
            }
        }
        let total = (width * height).max(1) as f64;
        Signature(counts.map(|c| f64::from(c) / total))
    }

    /// From a packed RGB24 picture at its full size, with the integer luma
    /// `(77 R + 150 G + 29 B) >> 8` of each pixel: the run report's content cuts between stored
    /// frames (its marks and change values depend on these exact levels; the decode loop uses
    /// swscale's grey thumbnail instead, [`THUMB_W`]x[`THUMB_H`]).
    pub(crate) fn from_rgb(img: &RgbFrame) -> Signature {
        let luma: Vec<u8> = img
            .data
            .chunks_exact(3)
            .map(|p| {
                ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8
            })
            .collect();
        let (w, h) = (img.width as usize, img.height as usize);
        Signature::from_gray(w, h, w, &luma)
    }

    /// Content change to `other`: `1 - correlation`, clamped to `[0, 1]`. Two flat histograms
    /// (a uniform picture compared with itself) count as unchanged.
    pub(crate) fn distance(&self, other: &Signature) -> f64 {
        let mean = 1.0 / BINS as f64;
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (a, b) in self.0.iter().zip(&other.0) {
            let (da, db) = (a - mean, b - mean);
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
        let denom = (saa * sbb).sqrt();
        if denom <= f64::EPSILON {
            return if self == other { 0.0 } else { 1.0 };
        }
        (1.0 - sab / denom).clamp(0.0, 1.0)
    }
}

/// Decides, frame by frame, where shots start.
#[derive(Debug)]
pub(crate) struct ShotDetector {
    threshold: f64,
    min_shot_s: f64,
    prev: Option<Signature>,
    shot_start: Option<f64>,
}

impl ShotDetector {
    pub(crate) fn new(threshold: f64, min_shot_s: f64) -> ShotDetector {
        ShotDetector {
            threshold,
            min_shot_s,
            prev: None,
            shot_start: None,
        }
    }

    /// Offers the next frame (at `t` seconds); true when it starts a shot. The first frame always
    /// does; a later one when its change from the previous frame exceeds the threshold and the
    /// current shot has lasted at least the minimum shot length.
    pub(crate) fn threshold(&self) -> f64 {
        self.threshold
    }

    /// A detector for one [`super::Part`] of a unit that is not its first: it reports every
    /// frame whose change exceeds the threshold (a candidate cut), leaving the minimum shot
    /// length to [`MinShot`] over the candidates of all parts in order, and never reports its
    /// first frame (the part before judged it, knowing the frame before it).
    pub(crate) fn candidates(threshold: f64, first_part: bool) -> ShotDetector {
        ShotDetector {
            threshold,
            min_shot_s: 0.0,
            prev: None,
            // A shot start far enough back that `min_shot_s = 0` never refuses a candidate; the
            // first part's first frame still starts a shot.
            shot_start: (!first_part).then_some(f64::NEG_INFINITY),
        }
    }

    pub(crate) fn push(&mut self, t: f64, signature: Signature) -> bool {
        let change = self.prev.as_ref().map(|p| p.distance(&signature));
        self.prev = Some(signature);
        let cut = match (change, self.shot_start) {
            (Some(d), Some(start)) => d > self.threshold && t - start >= self.min_shot_s - EPS,
            // The first frame of a later part: judged by the part before.
            (None, Some(_)) => false,
            _ => true,
        };
        if cut {
            self.shot_start = Some(t);
        }
        cut
    }
}

/// The minimum shot length applied to candidate cuts in time order (see
/// [`ShotDetector::candidates`]): a candidate is a cut when it is the first, or lies at least
/// `min_shot_s` after the last cut, which is the rule [`ShotDetector::push`] applies frame by frame.
#[derive(Debug)]
pub(crate) struct MinShot {
    min_shot_s: f64,
    last_cut: Option<f64>,
}

impl MinShot {
    pub(crate) fn new(min_shot_s: f64) -> MinShot {
        MinShot {
            min_shot_s,
            last_cut: None,
        }
    }

    /// Whether the candidate at `t` is a cut.
    pub(crate) fn keep(&mut self, t: f64) -> bool {
        let cut = self
            .last_cut
            .is_none_or(|start| t - start >= self.min_shot_s - EPS);
        if cut {
            self.last_cut = Some(t);
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: usize, h: usize, v: u8) -> Signature {
        Signature::from_gray(w, h, w, &vec![v; w * h])
    }

    /// Columns of 8 levels each, shifted by `shift` levels.
    fn ramp(w: usize, h: usize, shift: u8) -> Signature {
        let data: Vec<u8> = (0..w * h)
            .map(|i| ((i % w) * 8 % 256) as u8 + shift)
            .collect();
        Signature::from_gray(w, h, w, &data)
    }

    #[test]
    fn distance_is_zero_for_same_content_and_large_for_new_content() {
        let a = ramp(64, 36, 0);
        assert_eq!(a.distance(&a), 0.0);
        assert!(
            a.distance(&ramp(64, 36, 4)) > 0.9,
            "every pixel changed level"
        );
        assert!(flat(64, 36, 10).distance(&flat(64, 36, 240)) > 0.9);
        assert_eq!(flat(8, 8, 10).distance(&flat(8, 8, 10)), 0.0);
    }

    #[test]
    fn rgb_signature_uses_integer_luma() {
        // Grey pixels keep their level: (77 + 150 + 29) v >> 8 = v.
        let grey = RgbFrame::new(4, 2, [9u8, 9, 9, 200, 200, 200].repeat(4));
        let levels = [9u8, 200].repeat(4);
        assert_eq!(
            Signature::from_rgb(&grey),
            Signature::from_gray(4, 2, 4, &levels)
        );
        // Pure red is level 76.
        let red = RgbFrame::new(1, 1, vec![255, 0, 0]);
        assert_eq!(Signature::from_rgb(&red), flat(1, 1, 76));
    }

    #[test]
    fn stride_padding_is_ignored() {
        let w = 4;
        let mut data = Vec::new();
        for _ in 0..2 {
            data.extend(std::iter::repeat_n(200u8, w));
            data.extend([0u8; 5]);
        }
        assert_eq!(Signature::from_gray(w, 2, w + 5, &data), flat(w, 2, 200));
    }

    #[test]
    fn detector_respects_threshold_and_min_shot() {
        let dark = || flat(16, 9, 0);
        let light = || flat(16, 9, 255);
        let mut d = ShotDetector::new(0.5, 1.0);
        let frames = [
            (0.0, dark()),
            (0.5, dark()),
            (0.6, light()), // too soon after the shot start at 0
            (1.5, dark()),  // a cut: 1.5 s into the shot
            (2.0, light()), // too soon
            (2.6, light()),
            (3.0, dark()),
        ];
        let cuts: Vec<f64> = frames
            .into_iter()
            .filter_map(|(t, s)| d.push(t, s).then_some(t))
            .collect();
        assert_eq!(cuts, vec![0.0, 1.5, 3.0]);
    }
}
