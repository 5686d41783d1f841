//! The one sampling loop of the keyframes stage and of `mimicit frames`: [`sample_into`] samples
//! a [`Source`] (a video file, or a folder's pictures taken as the frames of one) as a
//! [`Policy`] asks, resizes and encodes each kept frame, and hands the frames in time order to a
//! sink that decides where they go. Warnings about a source (decoder errors; a stream that stops
//! before its declared end, said by [`sample`](super::sample)) are said here, once.
//!
//! One long video uses every thread: [`plan_parts`] cuts it at indexed keyframes into parts,
//! each decoded by its own decoder on the pool ([`super::Part`] says how a part decides the
//! targets around its borders), a few parts per thread at a time so that the encoded frames
//! waiting for earlier parts stay bounded; the parts' frames are joined in time order.
//!
//! Image sequences: picture `i` is a frame at `i / fps` seconds. The sampler's [`pick`] decides
//! on those times alone which pictures are kept, and only those are read and decoded
//! ([`crate::imaging::decode_file_for`]: libjpeg-turbo for JPEG, reduced in the decoder when the
//! output is much smaller), a batch at a time on the rayon pool.
//!
//! - `Fps`, `Uniform`, `At`, `LegacyStride` and `All` behave as on a video whose frames are the
//!   pictures (its duration is `n / fps`).
//! - `KeyframesOnly`: every picture is a keyframe (each is coded on its own), so every picture
//!   is kept.
//! - `SceneCuts` judges content, so every picture is decoded; its signature is made as the video
//!   decoder makes it ([`Thumbnailer`]).
//!
//! A picture that cannot be read (or resized, or encoded) is skipped and reported
//! ([`Skipped`]); the sequence keeps its other frames. In a video, a frame that cannot be resized
//! or encoded loses the whole source.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{pick, Part, Sampling, Selector, StreamFacts, Thumbnailer};
use crate::config::ImageConfig;
use crate::imaging::letterbox::Letterbox;
use crate::model::RgbFrame;

/// Pictures decoded at once per pool thread for scene cuts, which keep each whole picture until
/// judged: enough to keep the threads busy, few enough that a long sequence of large pictures is
/// never all in memory.
const BATCH_PER_THREAD: usize = 2;
/// Pictures read and prepared at once per pool thread otherwise: only the small encoded frames
/// wait in memory, and each hand-over to the pool (a thread wake-up) serves more pictures.
const PREPARED_PER_THREAD: usize = 16;

/// Parts a long video is cut into per pool thread: more parts than threads, so that a thread
/// that finishes early takes another instead of waiting for the slowest.
const PARTS_PER_THREAD: usize = 4;
/// The shortest part worth a decoder of its own (a seek and a keyframe to start from), in
/// milliseconds; tests lower it to cut the short fixtures.
static MIN_PART_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000);

/// Sets the shortest part (see [`MIN_PART_MS`]); the frames kept do not depend on it.
#[cfg(test)]
pub(super) fn set_min_part(seconds: f64) {
    MIN_PART_MS.store(
        (seconds * 1000.0) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}
/// The longest part: the kept frames of the parts in flight wait in memory (encoded) until the
/// parts before them are done, so parts of hours-long videos stay short.
const MAX_PART_S: f64 = 120.0;
/// Parts decoded at once per pool thread; their frames go to the sink in time order.
const PARTS_IN_FLIGHT_PER_THREAD: usize = 2;

/// What to sample.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A video file, sampled over each span in turn (`None`: the whole file; `[start_s, end_s]`
    /// otherwise, see [`super::sample`]). A frame offered by two overlapping spans (same time to
    /// the bit) is kept once.
    Video {
        path: &'a Path,
        spans: &'a [Option<(f64, f64)>],
    },
    /// A folder's pictures, in frame order: picture `i` is at `i / fps` seconds.
    Sequence {
        dir: &'a Path,
        pictures: &'a [PathBuf],
        fps: f64,
    },
}

/// How to sample and what to make of the kept frames.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub sampling: &'a Sampling,
    /// What each kept frame is resized and encoded to.
    pub image: &'a ImageConfig,
    /// Most frames handed to the sink (0: no limit); sampling stops once they are reached.
    pub max_frames: usize,
    /// `filter.letterbox`: crop the black bars off video frames before they are resized, with
    /// one crop window per source decided over a look-ahead ([`crate::imaging::letterbox`]), at
    /// this luma limit. Image sequences are left as they are.
    pub letterbox: Option<u8>,
}

/// A kept frame resized, encoded and hashed, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub width: u32,
    pub height: u32,
    /// [`crate::imaging::pixel_hash`] of the resized frame.
    pub pixel_hash: String,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// Resizes, encodes and hashes one frame as `cfg` asks; errors are plain messages.
pub fn prepare(image: &RgbFrame, cfg: &ImageConfig) -> Result<Prepared, String> {
    let img = crate::imaging::resize(image, cfg).map_err(|e| e.to_string())?;
    let bytes = crate::imaging::encode(&img, cfg).map_err(|e| e.to_string())?;
    Ok(Prepared {
        width: img.width,
        height: img.height,
        pixel_hash: crate::imaging::pixel_hash(&img),
        bytes,
    })
}

/// A frame handed to the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFrame {
    /// Seconds on the media timeline (a sequence's picture `i`: `i / fps`).
    pub time_s: f64,
    /// The picture's index in [`Source::Sequence`]'s list; None for video frames.
    pub picture: Option<usize>,
    pub frame: Prepared,
}

/// A picture of a sequence that was left out: it could not be read, resized or encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Its index in [`Source::Sequence`]'s list.
    pub picture: usize,
    pub error: String,
}

/// Why [`sample_into`] gave up on a source.
#[derive(Debug)]
pub enum SampleError<E> {
    /// Nothing of the source can be used: it cannot be decoded or sampled, or one of its video
    /// frames cannot be resized or encoded. The message names the file.
    Source(String),
    /// The sink failed.
    Sink(E),
}

/// Samples `source` as `policy` asks and hands the kept frames, resized and encoded, to `sink`
/// in time order: one at a time from a video decoded in one go, a part's frames at a time from a
/// video decoded in parts ([`plan_parts`]), a batch at a time (in order) from an image sequence,
/// so that the sink may write a batch in parallel. Returns the pictures of a sequence
/// that were left out (none for a video).
pub fn sample_into<E>(
    source: &Source,
    policy: &Policy,
    sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
) -> Result<Vec<Skipped>, SampleError<E>> {
    match *source {
        Source::Video { path, spans } => {
            video_into(path, spans, policy, sink)?;
            Ok(Vec::new())
        }
        Source::Sequence { dir, pictures, fps } => sequence_into(dir, pictures, fps, policy, sink),
    }
}

fn video_into<E>(
    path: &Path,
    spans: &[Option<(f64, f64)>],
    policy: &Policy,
    sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
) -> Result<(), SampleError<E>> {
    rayon::in_place_scope(|scope| {
        let pipelined = rayon::current_num_threads() > 1;
        let mut prep = Pipeline::new(pipelined.then_some(scope), policy.image);
        video_spans_into(path, spans, policy, &mut prep, sink)
    })
}

fn video_spans_into<'s, 'a, E>(
    path: &Path,
    spans: &[Option<(f64, f64)>],
    policy: &'a Policy,
    prep: &mut Pipeline<'s, 'a>,
    sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
) -> Result<(), SampleError<E>> {
    let max = policy.max_frames;
    let several = spans.len() > 1;
    let mut times_seen = HashSet::new();
    let mut index = None;
    // Frames are held until the crop window is decided, then cropped before they are resized.
    let mut letterbox = policy.letterbox.map(Letterbox::<f64>::new);
    for &span in spans {
        let held = letterbox.as_ref().map_or(0, |l| l.held());
        if max > 0 && prep.given() + held >= max {
            break;
        }
        if let Some(parts) = plan_parts(path, span, policy, &mut index) {
            // (No frame limit and no letterbox here: see `plan_parts`.)
            let mut unseen = |frames: Vec<KeptFrame>| {
                let fresh: Vec<KeptFrame> = frames
                    .into_iter()
                    .filter(|f| !several || times_seen.insert(f.time_s.to_bits()))
                    .collect();
                if fresh.is_empty() {
                    return Ok(());
                }
                sink(fresh)
            };
            if parts_into(path, span, &parts, policy, &mut unseen)? {
                continue;
            }
        }
        let mut failure = None;
        let mut on_frame = |f: super::SampledFrame| {
            if several && !times_seen.insert(f.time_s.to_bits()) {
                return ControlFlow::Continue(());
            }
            let ready = match letterbox.as_mut() {
                None => vec![(f.time_s, f.image)],
                Some(l) => l.push(f.time_s, f.image),
            };
            for (time_s, image) in ready {
                if let Err(e) = prep.push(time_s, image, sink) {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            let held = letterbox.as_ref().map_or(0, |l| l.held());
            if max > 0 && prep.given() + held >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let info = super::sample(
            path,
            policy.sampling,
            span,
            Some(policy.image),
            &mut on_frame,
        )
        .map_err(|e| SampleError::Source(e.to_string()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        // Frames of this span reach the sink before the next span's are filtered.
        prep.finish(sink)?;
        if info.decode_errors > 0 {
            tracing::warn!(
                "{}: {} decoder errors (frames around them skipped)",
                path.display(),
                info.decode_errors
            );
        }
    }
    if let Some(l) = letterbox.as_mut() {
        for (time_s, image) in l.finish() {
            prep.push(time_s, image, sink)?;
        }
    }
    prep.finish(sink)
}

/// A prepared frame as it comes back from the pool: (order, time, result).
type Done = (u64, f64, Result<Prepared, String>);

/// Resizes and encodes the kept frames of a video decoded in one go on the pool while the
/// decoder goes on, and hands them to the sink in order: decoding, and resizing with encoding,
/// overlap on a long video whose policy does not cut it into parts. At most
/// `PIPELINE_PER_THREAD` frames per thread are in flight, so memory stays bounded; without a
/// scope (one thread) each frame is prepared where it is pushed.
struct Pipeline<'s, 'a> {
    scope: Option<&'s rayon::Scope<'a>>,
    image: &'a ImageConfig,
    done_tx: std::sync::mpsc::Sender<Done>,
    done_rx: std::sync::mpsc::Receiver<Done>,
    /// Order of the next frame pushed / handed to the sink.
    pushed: u64,
    given: u64,
    ready: std::collections::BTreeMap<u64, (f64, Result<Prepared, String>)>,
    limit: u64,
}

/// Frames in flight per pool thread in [`Pipeline`].
const PIPELINE_PER_THREAD: usize = 2;

impl<'s, 'a> Pipeline<'s, 'a> {
    fn new(scope: Option<&'s rayon::Scope<'a>>, image: &'a ImageConfig) -> Pipeline<'s, 'a> {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        Pipeline {
            scope,
            image,
            done_tx,
            done_rx,
            pushed: 0,
            given: 0,
            ready: Default::default(),
            limit: (PIPELINE_PER_THREAD * rayon::current_num_threads()).max(1) as u64,
        }
    }

    /// Frames handed to the sink or on their way to it.
    fn given(&self) -> usize {
        self.pushed as usize
    }

    fn push<E>(
        &mut self,
        time_s: f64,
        image: RgbFrame,
        sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
    ) -> Result<(), SampleError<E>> {
        let order = self.pushed;
        self.pushed += 1;
        match self.scope {
            None => {
                let frame = prepare(&image, self.image);
                self.ready.insert(order, (time_s, frame));
            }
            Some(scope) => {
                let (tx, cfg) = (self.done_tx.clone(), self.image);
                scope.spawn(move |_| {
                    // The receiver outlives the scope: the send cannot fail.
                    let _ = tx.send((order, time_s, prepare(&image, cfg)));
                });
            }
        }
        self.give_ready(sink)?;
        while self.pushed - self.given >= self.limit {
            self.wait_one();
            self.give_ready(sink)?;
        }
        Ok(())
    }

    /// Waits for every frame pushed and hands it to the sink.
    fn finish<E>(
        &mut self,
        sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
    ) -> Result<(), SampleError<E>> {
        while self.given < self.pushed {
            self.give_ready(sink)?;
            if self.given < self.pushed {
                self.wait_one();
            }
        }
        Ok(())
    }

    /// Waits for one more frame to come back, running pool work meanwhile (this thread may be
    /// the only one free to prepare it).
    fn wait_one(&mut self) {
        loop {
            if let Ok((order, t, r)) = self.done_rx.try_recv() {
                self.ready.insert(order, (t, r));
                return;
            }
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {}
                _ => {
                    if let Ok((order, t, r)) = self
                        .done_rx
                        .recv_timeout(std::time::Duration::from_millis(1))
                    {
                        self.ready.insert(order, (t, r));
                        return;
                    }
                }
            }
        }
    }

    /// Hands the frames that are back, in order, to the sink.
    fn give_ready<E>(
        &mut self,
        sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
    ) -> Result<(), SampleError<E>> {
        while let Ok((order, t, r)) = self.done_rx.try_recv() {
            self.ready.insert(order, (t, r));
        }
        while let Some((time_s, frame)) = self.ready.remove(&self.given) {
            self.given += 1;
            let frame = frame.map_err(SampleError::Source)?;
            sink(vec![KeptFrame {
                time_s,
                picture: None,
                frame,
            }])
            .map_err(SampleError::Sink)?;
        }
        Ok(())
    }
}

/// How to cut one span of a video into [`Part`]s decoded in parallel, or `None` to decode it in
/// one go: with one thread, for policies that cannot be split ([`Selector::splits`]), with a
/// letterbox or a frame limit (both decided over the frames in order), without a container
/// index of keyframes, or when the span is too short for two parts. Borders are indexed
/// keyframes, about `span / (threads * PARTS_PER_THREAD)` apart, within
/// `[MIN_PART_MS, MAX_PART_S]`.
///
/// `index` caches the video's keyframe index across the spans of one unit: it is read (one more
/// open of the file) at most once, and not at all for spans too short for two parts.
pub(super) fn plan_parts(
    path: &Path,
    span: Option<(f64, f64)>,
    policy: &Policy,
    index: &mut Option<Option<Vec<super::IndexedKey>>>,
) -> Option<Vec<Part>> {
    let threads = rayon::current_num_threads();
    let min_part = MIN_PART_MS.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
    if threads < 2
        || policy.letterbox.is_some()
        || policy.max_frames > 0
        || !Selector::splits(policy.sampling)
        || span.is_some_and(|(a, b)| b - a < 2.0 * min_part)
    {
        return None;
    }
    // Errors are the one-go decode's to report.
    let keys = index
        .get_or_insert_with(|| super::keyframe_index(path).ok().flatten())
        .as_deref()?;
    let (lo, hi) = span.unwrap_or((keys[0].time_s, f64::INFINITY));
    let end = hi.min(keys.last()?.time_s);
    let length = ((end - lo) / (threads * PARTS_PER_THREAD) as f64).clamp(min_part, MAX_PART_S);
    let mut borders = Vec::new();
    let mut last = lo;
    // (border, where to seek for it)
    for (i, k) in keys.iter().enumerate() {
        if k.time_s > lo + 1e-3 && k.time_s < hi && k.time_s - last >= length {
            // After the last keyframe: as far as the gap before it.
            let next = match (keys.get(i + 1), i.checked_sub(1).map(|p| keys[p])) {
                (Some(n), _) => n.ts,
                (None, Some(p)) => k.ts + (k.ts - p.ts),
                (None, None) => k.ts,
            };
            borders.push((*k, k.ts + (next - k.ts) / 2));
            last = k.time_s;
        }
    }
    if borders.is_empty() {
        return None;
    }
    // Targets count from the first frame when the span has no start of its own.
    let origin = match (span, policy.sampling) {
        (None, Sampling::Fps(_) | Sampling::Uniform(_)) => Some(first_frame_time(path)?),
        _ => None,
    };
    let mut parts = Vec::with_capacity(borders.len() + 1);
    let mut start: Option<(super::IndexedKey, i64)> = None;
    for &(b, seek) in &borders {
        parts.push(Part {
            start_key: start.map(|(k, _)| k.time_s),
            seek_ts: start.map(|(_, s)| s),
            end_key: Some(b.time_s),
            origin,
        });
        start = Some((b, seek));
    }
    parts.push(Part {
        start_key: start.map(|(k, _)| k.time_s),
        seek_ts: start.map(|(_, s)| s),
        end_key: None,
        origin,
    });
    tracing::debug!(
        "{}: {} parts of about {length:.1} s on {threads} threads",
        path.display(),
        parts.len()
    );
    Some(parts)
}

/// The time of the first frame `path` decodes to.
fn first_frame_time(path: &Path) -> Option<f64> {
    let mut first = None;
    super::sample(path, &Sampling::All, None, None, &mut |f| {
        first = Some(f.time_s);
        ControlFlow::Break(())
    })
    .ok()?;
    first
}

/// Decodes the `parts` of a span on the pool, a few per thread at a time, and hands their kept
/// frames to the sink in time order (a frame two parts give is kept once). `Ok(false)` when a
/// part failed before any frame reached the sink: the caller decodes the span in one go, which
/// keeps what a damaged file still has exactly as before.
fn parts_into<E>(
    path: &Path,
    span: Option<(f64, f64)>,
    parts: &[Part],
    policy: &Policy,
    sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
) -> Result<bool, SampleError<E>> {
    let in_flight = PARTS_IN_FLIGHT_PER_THREAD * rayon::current_num_threads();
    let mut last_time: Option<f64> = None;
    // Scene cuts: the parts report candidates; the minimum shot length is applied here.
    let mut min_shot = match policy.sampling {
        Sampling::SceneCuts { min_shot_s, .. } => Some(super::scenes::MinShot::new(*min_shot_s)),
        _ => None,
    };
    let mut sunk = false;
    let mut decode_errors = 0;
    for wave in parts.chunks(in_flight.max(1)) {
        let results: Vec<Result<(Vec<KeptFrame>, u64), String>> = wave
            .par_iter()
            .map(|part| {
                let mut frames = Vec::new();
                let mut failure = None;
                let info = super::sample_part(
                    path,
                    policy.sampling,
                    span,
                    *part,
                    Some(policy.image),
                    &mut |f| match prepare(&f.image, policy.image) {
                        Ok(frame) => {
                            frames.push(KeptFrame {
                                time_s: f.time_s,
                                picture: None,
                                frame,
                            });
                            ControlFlow::Continue(())
                        }
                        Err(e) => {
                            failure = Some(e);
                            ControlFlow::Break(())
                        }
                    },
                )
                .map_err(|e| e.to_string())?;
                match failure {
                    Some(e) => Err(e),
                    None => Ok((frames, info.decode_errors)),
                }
            })
            .collect();
        for result in results {
            let (frames, errors) = match result {
                Ok(r) => r,
                Err(_) if !sunk => return Ok(false),
                Err(e) => return Err(SampleError::Source(e)),
            };
            decode_errors += errors;
            let fresh: Vec<KeptFrame> = frames
                .into_iter()
                .filter(|f| {
                    let new = last_time.is_none_or(|l| f.time_s > l);
                    if new {
                        last_time = Some(f.time_s);
                    }
                    new && min_shot.as_mut().is_none_or(|m| m.keep(f.time_s))
                })
                .collect();
            if !fresh.is_empty() {
                sunk = true;
                sink(fresh).map_err(SampleError::Sink)?;
            }
        }
    }
    if !sunk {
        // Nothing kept in any part: the one-go decode says why (or finds the same nothing).
        return Ok(false);
    }
    if decode_errors > 0 {
        tracing::warn!(
            "{}: {decode_errors} decoder errors (frames around them skipped)",
            path.display()
        );
    }
    Ok(true)
}

fn sequence_into<E>(
    dir: &Path,
    pictures: &[PathBuf],
    fps: f64,
    policy: &Policy,
    sink: &mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
) -> Result<Vec<Skipped>, SampleError<E>> {
    let whole = |m: String| SampleError::Source(format!("{}: {m}", dir.display()));
    if !(fps.is_finite() && fps > 0.0) {
        return Err(whole(format!(
            "the frame rate of image sequences must be above 0, got {fps}"
        )));
    }
    let times: Vec<f64> = (0..pictures.len()).map(|i| i as f64 / fps).collect();
    let facts = StreamFacts {
        fps: Some(fps),
        media_end: Some(pictures.len() as f64 / fps),
    };
    let mut run = SequenceRun {
        pictures,
        times: &times,
        cfg: policy.image,
        max: policy.max_frames,
        kept: 0,
        skipped: Vec::new(),
        sink,
    };
    if matches!(policy.sampling, Sampling::SceneCuts { .. }) {
        let selector = Selector::new(policy.sampling, None, facts).map_err(whole)?;
        run.scene_cuts(selector)?;
    } else {
        let chosen = pick(policy.sampling, None, facts, &times).map_err(whole)?;
        run.chosen(&chosen)?;
    }
    Ok(run.skipped)
}

struct SequenceRun<'a, E> {
    pictures: &'a [PathBuf],
    times: &'a [f64],
    cfg: &'a ImageConfig,
    max: usize,
    /// Frames handed to the sink.
    kept: usize,
    skipped: Vec<Skipped>,
    sink: &'a mut dyn FnMut(Vec<KeptFrame>) -> Result<(), E>,
}

impl<E> SequenceRun<'_, E> {
    fn skip(&mut self, picture: usize, error: String) {
        self.skipped.push(Skipped { picture, error });
    }

    /// Reads, resizes and encodes the chosen pictures (indices in time order), a batch at a time.
    fn chosen(&mut self, chosen: &[usize]) -> Result<(), SampleError<E>> {
        let per_batch = PREPARED_PER_THREAD * rayon::current_num_threads();
        for batch in chosen.chunks(per_batch.max(1)) {
            let (cfg, pictures) = (self.cfg, self.pictures);
            let prepared: Vec<(usize, Result<Prepared, String>)> = batch
                .par_iter()
                .map(|&p| {
                    let frame = crate::imaging::decode_file_for(&pictures[p], cfg)
                        .map_err(|e| e.to_string())
                        .and_then(|img| prepare(&img, cfg));
                    (p, frame)
                })
                .collect();
            if self.give(prepared)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Scene cuts: every picture is decoded (a batch at a time) and offered with its content.
    fn scene_cuts(&mut self, mut selector: Selector) -> Result<(), SampleError<E>> {
        let mut thumbnailer = Thumbnailer::new();
        let all: Vec<usize> = (0..self.pictures.len()).collect();
        let per_batch = BATCH_PER_THREAD * rayon::current_num_threads();
        let cfg = self.cfg;
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
                        self.skip(p, e);
                        continue;
                    }
                };
                let signature = match thumbnailer.signature(&img) {
                    Ok(s) => s,
                    Err(e) => {
                        self.skip(p, e);
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
            if self.give(prepared)?.is_break() || stop {
                break;
            }
        }
        Ok(())
    }

    /// Hands the prepared pictures (in time order) to the sink, up to the limit, and records
    /// those that could not be prepared; Break once the limit is reached.
    fn give(
        &mut self,
        prepared: Vec<(usize, Result<Prepared, String>)>,
    ) -> Result<ControlFlow<()>, SampleError<E>> {
        let mut ready = Vec::new();
        for (p, frame) in prepared {
            if self.max > 0 && self.kept + ready.len() >= self.max {
                break;
            }
            match frame {
                Ok(frame) => ready.push(KeptFrame {
                    time_s: self.times[p],
                    picture: Some(p),
                    frame,
                }),
                Err(e) => self.skip(p, e),
            }
        }
        self.kept += ready.len();
        (self.sink)(ready).map_err(SampleError::Sink)?;
        Ok(if self.max > 0 && self.kept >= self.max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }
}
