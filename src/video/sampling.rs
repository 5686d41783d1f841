//! Which decoded frames a [`Sampling`] keeps: a pure state machine fed with frame times in
//! presentation order, so that it can be tested without FFmpeg.
//!
//! Nearest-frame policies (`Fps`, `Uniform`, `At`) decide about a target time only once a frame at
//! or after it has arrived; the frame just before it (the "previous candidate") may then be the
//! nearer one, so the decode loop holds at most that one frame back.

use super::scenes::{ShotDetector, Signature};
use super::Sampling;

/// Two times closer than this are the same time (timestamps are rationals turned into f64).
const EPS: f64 = 1e-9;

/// What to do with the frame just offered (and the one held back before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Step {
    /// Emit the held-back previous frame (before the current one).
    pub emit_prev: bool,
    /// Emit the current frame.
    pub emit_current: bool,
    /// Hold the current frame back: a later target may pick it.
    pub hold_current: bool,
    /// Nothing more can be emitted: stop decoding.
    pub stop: bool,
}

#[derive(Debug)]
enum Targets {
    /// `origin + k / rate`, k = 0, 1, 2, ...
    Fps { rate: f64, k: u64 },
    /// `origin + (i + 0.5) * (end - origin) / n`.
    Uniform { n: u32, i: u32, end: f64 },
    /// Sorted, deduplicated times.
    At { times: Vec<f64>, i: usize },
}

#[derive(Debug)]
enum Plan {
    Nearest {
        targets: Targets,
        /// How far past the last frame a target may lie and still pick it at end of stream.
        eof_tolerance: f64,
    },
    /// Every `stride`-th frame of the unit, from its first.
    Stride(u64),
    /// The first frame of each shot: decided on content, see [`Selector::offer_content`].
    Shots(Box<ShotDetector>),
    Every,
}

#[derive(Debug)]
pub(crate) struct Selector {
    plan: Plan,
    seg_start: Option<f64>,
    seg_end: Option<f64>,
    /// Time the targets count from: the segment start, else the first frame's time.
    origin: Option<f64>,
    /// Frames of the unit seen so far.
    in_unit: u64,
    prev_t: Option<f64>,
    prev_emitted: bool,
    finished: bool,
}

/// What the selector needs to know about the stream before decoding.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamFacts {
    /// Frames per second (average or real base rate).
    pub fps: Option<f64>,
    /// End of the media in seconds on the frame-time axis (start time + duration).
    pub media_end: Option<f64>,
}

impl Selector {
    /// Errors are plain messages; the caller adds the path.
    pub(crate) fn new(
        sampling: &Sampling,
        segment: Option<(f64, f64)>,
        facts: StreamFacts,
    ) -> Result<Selector, String> {
        if let Some((s, e)) = segment {
            if !(s.is_finite() && e.is_finite() && s <= e) {
                return Err(format!("invalid segment [{s}, {e}]"));
            }
        }
        let half_frame = facts.fps.map_or(0.0, |f| 0.5 / f);
        let plan = match sampling {
            Sampling::Fps(r) => {
                if !(r.is_finite() && *r > 0.0) {
                    return Err(format!("sampling rate must be positive, got {r}"));
                }
                Plan::Nearest {
                    targets: Targets::Fps { rate: *r, k: 0 },
                    eof_tolerance: half_frame,
                }
            }
            Sampling::LegacyStride(r) => {
                if !(r.is_finite() && *r > 0.0) {
                    return Err(format!("sampling rate must be positive, got {r}"));
                }
                let fps = facts
                    .fps
                    .ok_or("frame rate unknown: legacy-stride sampling needs it")?;
                Plan::Stride(legacy_stride(fps, *r))
            }
            Sampling::Uniform(n) => {
                if *n == 0 {
                    return Err("uniform sampling needs at least one frame".into());
                }
                let end = segment.map(|(_, e)| e).or(facts.media_end).ok_or(
                    "duration unknown: uniform sampling needs the container or stream duration",
                )?;
                Plan::Nearest {
                    targets: Targets::Uniform { n: *n, i: 0, end },
                    eof_tolerance: f64::INFINITY,
                }
            }
            Sampling::At(times) => {
                if let Some(bad) = times.iter().find(|t| !t.is_finite()) {
                    return Err(format!("sampling time {bad} is not a number of seconds"));
                }
                let mut times = times.clone();
                times.sort_by(f64::total_cmp);
                times.dedup();
                Plan::Nearest {
                    targets: Targets::At { times, i: 0 },
                    eof_tolerance: f64::INFINITY,
                }
            }
            Sampling::SceneCuts {
                threshold,
                min_shot_s,
            } => {
                if !(0.0..=1.0).contains(threshold) {
                    return Err(format!(
                        "scene threshold must be in [0, 1], got {threshold}"
                    ));
                }
                if !(min_shot_s.is_finite() && *min_shot_s >= 0.0) {
                    return Err(format!(
                        "minimum shot length must be 0 s or more, got {min_shot_s}"
                    ));
                }
                Plan::Shots(Box::new(ShotDetector::new(*threshold, *min_shot_s)))
            }
            Sampling::KeyframesOnly | Sampling::All => Plan::Every,
        };
        Ok(Selector {
            plan,
            seg_start: segment.map(|(s, _)| s),
            seg_end: segment.map(|(_, e)| e),
            origin: segment.map(|(s, _)| s),
            in_unit: 0,
            prev_t: None,
            prev_emitted: false,
            finished: false,
        })
    }

    /// Whether a frame at `t` lies before the unit (to be decoded and dropped).
    fn before_unit(&self, t: f64) -> bool {
        self.seg_start.is_some_and(|s| t < s - EPS)
    }

    fn after_unit(&self, t: f64) -> bool {
        self.seg_end.is_some_and(|e| t > e + EPS)
    }

    /// The current target, if any is left (targets past the segment end do not count).
    fn target(&self) -> Option<f64> {
        let Plan::Nearest { targets, .. } = &self.plan else {
            return None;
        };
        let origin = self.origin?;
        let t = match targets {
            Targets::Fps { rate, k } => origin + *k as f64 / rate,
            Targets::Uniform { n, i, end } => {
                if i >= n {
                    return None;
                }
                origin + (f64::from(*i) + 0.5) * (end - origin) / f64::from(*n)
            }
            Targets::At { times, i } => *times.get(*i)?,
        };
        if self.after_unit(t) {
            None
        } else {
            Some(t)
        }
    }

    fn advance(&mut self) {
        if let Plan::Nearest { targets, .. } = &mut self.plan {
            match targets {
                Targets::Fps { k, .. } => *k += 1,
                Targets::Uniform { i, .. } => *i += 1,
                Targets::At { i, .. } => *i += 1,
            }
        }
    }

    /// The time targets count from, where the unit has no start of its own: the time of the
    /// unit's first frame, learnt before decoding a later part of it ([`super::Part`]).
    pub(crate) fn set_origin(&mut self, origin: f64) {
        if self.origin.is_none() {
            self.origin = Some(origin);
        }
    }

    /// A part of the unit starts at the frame at `t` ([`super::Part`]): the targets before it are
    /// the earlier part's, and frames are offered from there on.
    pub(crate) fn start_part_at(&mut self, t: f64) {
        // `At` targets do not count from an origin, but are only read once one is set; the
        // policies that count from one have it set by now ([`Selector::set_origin`]).
        if self.origin.is_none() {
            self.origin = Some(t);
        }
        while let Some(target) = self.target() {
            if target >= t - EPS {
                break;
            }
            self.advance();
        }
    }

    /// Turns a scene-cut selector into one for a [`super::Part`]: it keeps every candidate cut
    /// ([`ShotDetector::candidates`]); the caller applies the minimum shot length over the parts.
    pub(crate) fn candidate_cuts(&mut self, first_part: bool) {
        if let Plan::Shots(detector) = &mut self.plan {
            let threshold = detector.threshold();
            **detector = ShotDetector::candidates(threshold, first_part);
        }
    }

    /// Whether a unit sampled so can be decoded in parts ([`super::Part`]): the policy decides
    /// on each frame's time alone, and its decisions about a stretch of frames need no frame
    /// outside it but the next one (each part decides its own targets), or, for scene cuts, on
    /// the change from the frame before (each part reports candidates, see
    /// [`Selector::candidate_cuts`]). `LegacyStride` counts frames from the unit's first, which
    /// a part cannot know.
    pub(crate) fn splits(sampling: &Sampling) -> bool {
        matches!(
            sampling,
            Sampling::Fps(_)
                | Sampling::SceneCuts { .. }
                | Sampling::Uniform(_)
                | Sampling::At(_)
                | Sampling::KeyframesOnly
                | Sampling::All
        )
    }

    /// The earliest time a later frame may still be kept for, for the nearest-frame policies
    /// (None for the others, and when nothing more is wanted). A frame more than one frame
    /// interval before it cannot be the nearest to it unless the stream has a gap there.
    pub(crate) fn next_target(&self) -> Option<f64> {
        if self.finished {
            return None;
        }
        self.target()
    }

    /// Whether frames are to be offered with their content ([`Selector::offer_content`]).
    pub(crate) fn wants_content(&self) -> bool {
        matches!(self.plan, Plan::Shots(_))
    }

    /// Offers the next decoded frame, at `t` seconds.
    pub(crate) fn offer(&mut self, t: f64) -> Step {
        self.offer_with(t, None)
    }

    /// Offers the next decoded frame with its content signature (for content-based policies).
    pub(crate) fn offer_content(&mut self, t: f64, content: Signature) -> Step {
        self.offer_with(t, Some(content))
    }

    fn offer_with(&mut self, t: f64, content: Option<Signature>) -> Step {
        if self.finished {
            return Step {
                stop: true,
                ..Step::default()
            };
        }
        if self.before_unit(t) {
            return Step::default();
        }
        if self.after_unit(t) {
            // Every target left is within the segment, so the last frame in it is the nearest.
            let emit_prev = self.finish_within(f64::INFINITY);
            return Step {
                emit_prev,
                stop: true,
                ..Step::default()
            };
        }
        let index = self.in_unit;
        self.in_unit += 1;
        match &mut self.plan {
            Plan::Every => Step {
                emit_current: true,
                ..Step::default()
            },
            Plan::Stride(s) => Step {
                emit_current: index % *s == 0,
                ..Step::default()
            },
            Plan::Shots(detector) => Step {
                // Without content (a caller bug) no frame is a cut: nothing is emitted.
                emit_current: content.is_some_and(|c| detector.push(t, c)),
                ..Step::default()
            },
            Plan::Nearest { .. } => self.offer_nearest(t),
        }
    }

    fn offer_nearest(&mut self, t: f64) -> Step {
        if self.origin.is_none() {
            self.origin = Some(t);
        }
        let mut step = Step::default();
        while let Some(target) = self.target() {
            if t < target - EPS {
                break;
            }
            // Ties go to the earlier frame.
            match self.prev_t {
                Some(p) if target - p <= t - target + EPS => {
                    if !self.prev_emitted {
                        step.emit_prev = true;
                        self.prev_emitted = true;
                    }
                }
                _ => step.emit_current = true,
            }
            self.advance();
        }
        self.prev_t = Some(t);
        self.prev_emitted = step.emit_current;
        step.stop = self.target().is_none();
        step.hold_current = !step.emit_current && !step.stop;
        if step.stop {
            self.finished = true;
        }
        step
    }

    /// End of stream: whether the held-back frame is to be emitted.
    pub(crate) fn finish(&mut self) -> bool {
        match self.plan {
            Plan::Nearest { eof_tolerance, .. } => self.finish_within(eof_tolerance),
            _ => false,
        }
    }

    /// Gives the targets at most `tolerance` seconds past the last frame to that frame.
    fn finish_within(&mut self, tolerance: f64) -> bool {
        if self.finished {
            return false;
        }
        self.finished = true;
        let Some(p) = self.prev_t else {
            return false;
        };
        let mut emit = false;
        while let Some(target) = self.target() {
            if target - p > tolerance + EPS {
                break;
            }
            emit = true;
            self.advance();
        }
        emit && !self.prev_emitted
    }
}

/// The indices of the frames a [`Selector`] keeps among frames at `times` (in presentation
/// order), decided on their times alone: nothing has to be decoded first. Policies that judge
/// content (scene cuts) are refused; they need [`Selector::offer_content`] frame by frame.
pub(crate) fn pick(
    sampling: &Sampling,
    segment: Option<(f64, f64)>,
    facts: StreamFacts,
    times: &[f64],
) -> Result<Vec<usize>, String> {
    let mut sel = Selector::new(sampling, segment, facts)?;
    if sel.wants_content() {
        return Err("this sampling decides on the frames' content, not on their times".into());
    }
    let mut out = Vec::new();
    let mut held: Option<usize> = None;
    for (i, &t) in times.iter().enumerate() {
        let step = sel.offer(t);
        if step.emit_prev {
            debug_assert!(held.is_some(), "emit_prev without a held frame");
            out.extend(held.take());
        }
        if step.emit_current {
            out.push(i);
        }
        held = step.hold_current.then_some(i);
        if step.stop {
            return Ok(out);
        }
    }
    if sel.finish() {
        debug_assert!(held.is_some(), "finish emits without a held frame");
        out.extend(held);
    }
    Ok(out)
}

/// The original converter's stride: `max(1, floor(floor(stream_fps) / rate))`.
pub(crate) fn legacy_stride(stream_fps: f64, rate: f64) -> u64 {
    let fps = stream_fps.floor();
    ((fps / rate).floor() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the selector over `times` and returns the indices of the emitted frames.
    fn run(sampling: Sampling, segment: Option<(f64, f64)>, fps: f64, times: &[f64]) -> Vec<usize> {
        let facts = StreamFacts {
            fps: Some(fps),
            media_end: Some(times.last().unwrap() + 1.0 / fps),
        };
        pick(&sampling, segment, facts, times).unwrap()
    }

    fn grid(n: usize, fps: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 / fps).collect()
    }

    #[test]
    fn fps_at_ntsc_rate_does_not_drift() {
        let fps = 30000.0 / 1001.0;
        let picked = run(Sampling::Fps(1.0), None, fps, &grid(720, fps));
        // 720 frames = 24.02 s: targets 0..=24.
        assert_eq!(picked.len(), 25);
        for (k, &i) in picked.iter().enumerate() {
            let t = i as f64 / fps;
            assert!((t - k as f64).abs() <= 0.5 / fps + 1e-9, "k={k} i={i}");
        }
        // The legacy rule drifts: frame 29*24 = 696 is at 23.2 s, not 24 s.
        assert_eq!(picked[24], 719);
    }

    #[test]
    fn fps_exact_grid_and_no_duplicates() {
        let picked = run(Sampling::Fps(2.0), None, 10.0, &grid(30, 10.0));
        assert_eq!(picked, vec![0, 5, 10, 15, 20, 25]);
        // Faster than the stream: each frame at most once.
        let picked = run(Sampling::Fps(25.0), None, 10.0, &grid(5, 10.0));
        assert_eq!(picked, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn legacy_stride_uses_integer_fps() {
        assert_eq!(legacy_stride(29.97, 1.0), 29);
        assert_eq!(legacy_stride(10.0, 20.0), 1);
        let picked = run(Sampling::LegacyStride(1.0), None, 29.97, &grid(100, 29.97));
        assert_eq!(picked, vec![0, 29, 58, 87]);
    }

    #[test]
    fn uniform_and_at_pick_nearest() {
        let picked = run(Sampling::Uniform(4), None, 10.0, &grid(30, 10.0));
        assert_eq!(picked, vec![4, 11, 19, 26]);
        let picked = run(
            Sampling::At(vec![2.96, 0.04, 1.06, 1.04, 99.0]),
            None,
            10.0,
            &grid(30, 10.0),
        );
        // 1.04 and 1.06 are nearest to different frames; 99 s clamps to the last frame.
        assert_eq!(picked, vec![0, 10, 11, 29]);
        let picked = run(Sampling::At(vec![1.01, 0.99]), None, 10.0, &grid(30, 10.0));
        assert_eq!(picked, vec![10], "two times, one frame: emitted once");
    }

    #[test]
    fn segment_bounds_every_policy() {
        let times = grid(100, 10.0);
        assert_eq!(
            run(Sampling::All, Some((2.0, 2.3)), 10.0, &times),
            vec![20, 21, 22, 23]
        );
        assert_eq!(
            run(Sampling::Fps(1.0), Some((2.02, 5.1)), 10.0, &times),
            vec![21, 30, 40, 50]
        );
        // 2.3 s is 0.3 s past the last frame in the segment (more than half a frame), yet that
        // frame is the nearest one within the segment.
        assert_eq!(
            run(Sampling::Fps(1.0), Some((0.3, 2.45)), 2.0, &grid(10, 2.0)),
            vec![1, 3, 4]
        );
        assert_eq!(
            run(Sampling::Uniform(2), Some((1.0, 3.0)), 10.0, &times),
            vec![15, 25]
        );
        assert_eq!(
            run(Sampling::LegacyStride(2.0), Some((1.0, 3.0)), 10.0, &times),
            vec![10, 15, 20, 25, 30]
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let facts = StreamFacts::default();
        assert!(Selector::new(&Sampling::Fps(0.0), None, facts).is_err());
        assert!(Selector::new(&Sampling::Uniform(3), None, facts).is_err());
        assert!(Selector::new(&Sampling::LegacyStride(1.0), None, facts).is_err());
        assert!(Selector::new(&Sampling::All, Some((3.0, 1.0)), facts).is_err());
        assert!(Selector::new(&Sampling::At(vec![f64::NAN]), None, facts).is_err());
    }
}
