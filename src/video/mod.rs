//! Video decoding and frame sampling: the only module that talks to FFmpeg (ffmpeg-next), and the
//! only one with `unsafe` code.
//!
//! [`sample`] opens a file, decodes its best video stream in presentation order, keeps the frames
//! a [`Sampling`] asks for (optionally within a segment), converts only those to packed RGB24
//! (reduced to 1/2, 1/4 or 1/8 when they are about to be resized much smaller) with the display
//! rotation applied, and hands them one by one to a callback: frames are never all held in
//! memory.
//!
//! [`sample_into`] is the loop the keyframes stage and `mimicit frames` share around it: a video
//! or an image sequence sampled, each kept frame resized and encoded and handed to a sink.
//!
//! Times are seconds on the media timeline: a frame's timestamp times its stream's time base, not
//! shifted by the stream's start time (a file whose first frame is at 1.075 s gives 1.075).
//! Segments and [`Sampling::At`] times use the same axis.

mod sample_into;
mod sampling;
pub(crate) mod scenes;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use ffmpeg::codec::discard::Discard;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::video::Video as AvFrame;
use ffmpeg_next as ffmpeg;

use crate::config::{ImageConfig, KeyframesConfig, SamplingPolicy};
use crate::model::RgbFrame;
pub use sample_into::{
    prepare, sample_into, KeptFrame, Policy, Prepared, SampleError, Skipped, Source,
};
pub(crate) use sampling::{pick, Selector, StreamFacts};
use scenes::Signature;

/// Largest frame accepted, in pixels (as for still images).
pub const MAX_PIXELS: u64 = 16384 * 16384;

/// Segments starting later than this are reached by seeking rather than by decoding from 0.
const SEEK_THRESHOLD_S: f64 = 2.0;

/// Decoding less for the nearest-frame policies (`Fps`, `Uniform`, `At`): a packet whose pts is
/// more than this before the next wanted time is decoded with non-reference frames discarded
/// (they cannot be the nearest frame: a later frame lies between them and the target). Packets
/// are judged on their own pts, so B-frame reordering and decoder delay do not matter.
const SKIP_MARGIN_S: f64 = 0.25;

/// ... and when the next wanted time is further ahead than this (and than two keyframe
/// intervals), the demuxer seeks to the keyframe before it instead of reading on.
const SEEK_AHEAD_S: f64 = 4.0;

/// Consecutive demuxer errors after which the rest of a file is given up on (a demuxer normally
/// resyncs within a few packets; one that never does would otherwise loop for ever).
const MAX_READ_ERRORS: u32 = 1000;

/// Times a packet is offered again to a decoder that keeps asking for its output to be read
/// first while giving none; past this the packet is counted as a decoder error and skipped.
const MAX_RESENDS: u32 = 1000;

/// Frames below this many pixels (640x480) are decoded on one thread: frame threading only
/// pays where a frame costs enough to decode.
const FRAME_THREADING_PIXELS: i64 = 640 * 480;

/// Default of [`set_item_timeout`]: one hour of decoding per file (or segment).
pub const DEFAULT_ITEM_TIMEOUT: Duration = Duration::from_secs(3600);

/// The per-file time limit in milliseconds; 0 means none.
static ITEM_TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_ITEM_TIMEOUT.as_millis() as u64);

/// Sets how long one call of [`sample`] or [`probe`] may take before the file is given up on
/// with [`VideoError::TimedOut`] (`None`: no limit). The limit also interrupts FFmpeg's own
/// blocking reads, so a file that stops delivering data cannot hold a worker for ever.
pub fn set_item_timeout(limit: Option<Duration>) {
    let ms = limit.map_or(0, |d| (d.as_millis() as u64).max(1));
    ITEM_TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

fn item_deadline() -> Option<Instant> {
    match ITEM_TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Instant::now() + Duration::from_millis(ms)),
    }
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Initialises FFmpeg once per process and quiets its logging (errors are returned, not printed).
/// The FFmpeg libraries this binary runs with: `(libavcodec, libavformat, libavutil)` versions
/// as `major.minor.micro`.
pub fn library_versions() -> (String, String, String) {
    init();
    let v = |n: u32| format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff);
    (
        v(ffmpeg::codec::version()),
        v(ffmpeg::format::version()),
        v(ffmpeg::util::version()),
    )
}

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registration is a no-op since FFmpeg 4; init only fails on builds with no codecs.
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{path}: cannot open as a video: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{path}: no video stream")]
    NoVideoStream { path: PathBuf },
    #[error("{path}: cannot set up the {codec} decoder: {source}")]
    Decoder {
        path: PathBuf,
        codec: String,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{path}: no frame could be decoded ({errors} decoder errors)")]
    NoFrames { path: PathBuf, errors: u64 },
    #[error("{path}: frame of {width}x{height} is larger than the {MAX_PIXELS} pixel limit")]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{path}: cannot convert {format} frames to RGB: {source}")]
    Convert {
        path: PathBuf,
        format: String,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{path}: {message}")]
    Sampling { path: PathBuf, message: String },
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: holds a still image ({format}), not a video")]
    StillImage { path: PathBuf, format: String },
    #[error(
        "{path}: gave up after the {limit_s} s time limit per file ({frames} frames decoded); \
         raise it with --item-timeout"
    )]
    TimedOut {
        path: PathBuf,
        limit_s: f64,
        frames: u64,
    },
}

impl VideoError {
    fn timed_out(path: &Path, frames: u64) -> VideoError {
        VideoError::TimedOut {
            path: path.to_owned(),
            limit_s: ITEM_TIMEOUT_MS.load(Ordering::Relaxed) as f64 / 1000.0,
            frames,
        }
    }
}

/// Opens a media file for reading, with FFmpeg's blocking I/O interrupted once `deadline`
/// passes. File names that are not UTF-8 are passed as the bytes they are (ffmpeg-next's own
/// `format::input` panics on them).
///
/// With a deadline the opening (the `open(2)` and the reads that find the streams) runs on a
/// thread of its own that is abandoned when the deadline passes: FFmpeg's interrupt callback is
/// only asked between reads, so an `open(2)` or a `read(2)` that never returns (a named pipe
/// nobody writes to, a hung network mount) would otherwise hold the worker for ever. The
/// abandoned thread ends, and frees what it opened, if its call ever returns.
fn open_input(
    path: &Path,
    deadline: Option<Instant>,
) -> Result<ffmpeg::format::context::Input, VideoError> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(VideoError::Empty {
            path: path.to_owned(),
        });
    }
    let Some(limit) = deadline else {
        return open_now(path, None);
    };
    let (done, opened) = std::sync::mpsc::sync_channel(1);
    let owned = path.to_owned();
    let spawned = std::thread::Builder::new()
        .name("open-input".into())
        .spawn(move || {
            // The receiver is gone when the deadline passed first: the input is then dropped
            // (closed) here.
            let _ = done.send(open_now(&owned, deadline));
        });
    if spawned.is_err() {
        // No thread to spare: open here, bounded by the callback alone.
        return open_now(path, deadline);
    }
    match opened.recv_timeout(limit.saturating_duration_since(Instant::now())) {
        Ok(result) => result,
        Err(_) => Err(VideoError::timed_out(path, 0)),
    }
}

/// [`open_input`] on the calling thread.
fn open_now(
    path: &Path,
    deadline: Option<Instant>,
) -> Result<ffmpeg::format::context::Input, VideoError> {
    use std::os::unix::ffi::OsStrExt;
    let open_error = |source| VideoError::Open {
        path: path.to_owned(),
        source,
    };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| open_error(ffmpeg::Error::InvalidData))?;
    let interrupt = ffmpeg::util::interrupt::new(Box::new(move || expired(deadline)));
    // SAFETY: the context is allocated here and either handed to `Input` (which closes it on
    // drop, together with the interrupt guard that owns the callback's closure) or freed on
    // every error path: avformat_open_input frees it itself when it fails, and
    // avformat_close_input frees it when the stream info cannot be read. `c_path` outlives both
    // calls, which copy it.
    let opened = unsafe {
        let mut ps = ffmpeg::ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(open_error(ffmpeg::Error::Other {
                errno: ffmpeg::util::error::ENOMEM,
            }));
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        match ffmpeg::ffi::avformat_open_input(
            &mut ps,
            c_path.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ) {
            0 => match ffmpeg::ffi::avformat_find_stream_info(ps, std::ptr::null_mut()) {
                r if r >= 0 => Ok(ffmpeg::format::context::Input::wrap_with_interrupt(
                    ps,
                    interrupt.guard,
                )),
                e => {
                    ffmpeg::ffi::avformat_close_input(&mut ps);
                    Err(ffmpeg::Error::from(e))
                }
            },
            e => Err(ffmpeg::Error::from(e)),
        }
    };
    let input = opened.map_err(|e| {
        if expired(deadline) {
            VideoError::timed_out(path, 0)
        } else {
            open_error(e)
        }
    })?;
    // Image demuxers (`png_pipe`, `image2`, ...) open a single picture as a one-frame "video":
    // a picture under a video name is a mistake in the corpus, not a clip.
    let format = input.format().name().to_string();
    if format == "image2" || format.ends_with("_pipe") {
        return Err(VideoError::StillImage {
            path: path.to_owned(),
            format,
        });
    }
    Ok(input)
}

/// Which frames of a video (or of its segment) to keep.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// For k = 0, 1, 2, ...: the frame nearest to `start + k / rate` seconds, where start is the
    /// segment start or the first frame's time. Exact at any stream rate (no drift at 29.97);
    /// a frame is never emitted twice, so a rate above the stream's gives every frame once.
    Fps(f64),
    /// The original converter's rule: every `max(1, floor(floor(stream_fps) / rate))`-th decoded
    /// frame of the unit, counting from its first (frames 0, s, 2s, ...; 29.97 fps counts as 29).
    LegacyStride(f64),
    /// `n` frames evenly spaced over the unit: the frames nearest to
    /// `start + (i + 0.5) * (end - start) / n`. Needs the segment end or the media duration.
    Uniform(u32),
    /// The frame nearest to each time (seconds on the media timeline, see the module doc), in time
    /// order; times picking the same frame give it once. Times past the end pick the last frame.
    At(Vec<f64>),
    /// The first frame of each shot (the first frame of the unit starts one): a frame starts a
    /// shot when its content change from the previous frame (`1 -` correlation of small luma
    /// histograms, in `[0, 1]`) exceeds `threshold` and the current shot has lasted at least
    /// `min_shot_s` seconds.
    SceneCuts { threshold: f64, min_shot_s: f64 },
    /// Only intra-coded frames: the decoder skips the others without decoding them.
    KeyframesOnly,
    /// Every decoded frame.
    All,
}

impl Sampling {
    /// The sampling a `[keyframes]` configuration asks for; `times` are the unit's annotation
    /// times (for `at`).
    pub fn from_config(cfg: &KeyframesConfig, times: &[f64]) -> Sampling {
        match cfg.policy {
            SamplingPolicy::Fps => Sampling::Fps(cfg.fps),
            SamplingPolicy::LegacyStride => Sampling::LegacyStride(cfg.fps),
            SamplingPolicy::Uniform => Sampling::Uniform(cfg.count),
            SamplingPolicy::At => Sampling::At(times.to_vec()),
            SamplingPolicy::KeyframesOnly => Sampling::KeyframesOnly,
            SamplingPolicy::All => Sampling::All,
            SamplingPolicy::SceneCuts => Sampling::SceneCuts {
                threshold: cfg.scene_threshold,
                min_shot_s: cfg.min_shot,
            },
        }
    }
}

/// A kept frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledFrame {
    /// Seconds on the media timeline (see the module doc).
    pub time_s: f64,
    /// Index of this frame among the frames decoded in this call, in presentation order, from 0.
    /// For `All`, `LegacyStride`, `SceneCuts` and `KeyframesOnly` without a segment it is the
    /// frame's index among the decoded frames of the stream. It is not an index in the file after
    /// a seek (segments starting past 2 s, and `Fps`, `Uniform`, `At`, which seek ahead and
    /// discard non-reference frames no wanted time needs).
    pub frame_number: u64,
    /// Packed RGB24, display rotation applied.
    pub image: RgbFrame,
}

/// What a call learnt about the video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Displayed size: coded size with the display rotation applied.
    pub width: u32,
    pub height: u32,
    /// Average frame rate, else the stream's base rate; None when the container does not say.
    pub fps: Option<f64>,
    /// Stream duration, else the container's.
    pub duration_s: Option<f64>,
    /// FFmpeg's short codec name, e.g. `h264`.
    pub codec: String,
    /// Clockwise degrees applied to frames for display: 0, 90, 180 or 270.
    pub rotation: i32,
    /// Frames that came out of the decoder (fewer when the callback stopped early or the
    /// sampling needed no more).
    pub frames_decoded: u64,
    /// Packets or frames the decoder rejected; decoding went on after each.
    pub decode_errors: u64,
}

/// Decodes `path` and calls `on_frame` with each frame `sampling` keeps, in time order, within
/// `segment` (`[start_s, end_s]`, inclusive) when given. Return `ControlFlow::Break(())` from the
/// callback to stop early (the result is then still `Ok`).
///
/// Decoder errors on single packets are counted in [`VideoInfo::decode_errors`] and decoding
/// goes on; a file from which not one frame can be decoded is an error.
///
/// With `resize_for`, the frames are about to be resized to that [`ImageConfig`]: each one is
/// converted to RGB at 1/2, 1/4 or 1/8 of its size (swscale averages the pixels) when
/// [`crate::imaging::draft_divisor`] allows it, which costs a fraction of a full-size conversion
/// and of the resize after it. Without, frames keep their full size.
pub fn sample(
    path: &Path,
    sampling: &Sampling,
    segment: Option<(f64, f64)>,
    resize_for: Option<&ImageConfig>,
    on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
) -> Result<VideoInfo, VideoError> {
    sample_with(path, sampling, segment, None, true, resize_for, on_frame)
}

/// A stretch of a unit decoded on its own, so that the parts of one long video run on several
/// threads ([`sample_into`] cuts them at keyframes, [`Selector::splits`] says for which
/// policies). A part starts at the first keyframe that comes out of the decoder at or after
/// `start_key` (the earlier frames were decoded by the part before, with their references) and
/// ends at the first keyframe at or after `end_key`, which it offers (a target before it may pick
/// it) and then stops, so each target is decided by the part that decodes the frames around it,
/// exactly as a decode of the whole unit decides it. Frames two parts both give (the keyframe at
/// the border) have the same time to the bit and are kept once by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Part {
    /// `None`: the unit's start.
    pub start_key: Option<f64>,
    /// Where the part seeks to (stream time base): halfway from that keyframe's index timestamp
    /// to the next indexed keyframe's, so that the backward search lands on it whether the
    /// demuxer compares decode or presentation times (they differ by the reorder delay).
    pub seek_ts: Option<i64>,
    /// `None`: the unit's end.
    pub end_key: Option<f64>,
    /// Time of the unit's first frame, where targets count from it (a unit without a start of
    /// its own, `Fps` and `Uniform`).
    pub origin: Option<f64>,
}

/// How far before a border time (an index timestamp, which may be the keyframe's decode time) a
/// keyframe still counts as the one at the border.
const BORDER_TOLERANCE_S: f64 = 1e-6;

/// [`sample`] of one [`Part`] of the unit `segment`; decoding ahead (seeking past frames) stays
/// within the part.
pub(crate) fn sample_part(
    path: &Path,
    sampling: &Sampling,
    segment: Option<(f64, f64)>,
    part: Part,
    resize_for: Option<&ImageConfig>,
    on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
) -> Result<VideoInfo, VideoError> {
    sample_with(
        path,
        sampling,
        segment,
        Some(part),
        true,
        resize_for,
        on_frame,
    )
}

/// [`sample`], with decoding less (seeking ahead, discarding non-reference frames no wanted time
/// needs) switched on or off; the frames kept are the same either way, only
/// [`SampledFrame::frame_number`] and [`VideoInfo::frames_decoded`] differ.
pub(crate) fn sample_with(
    path: &Path,
    sampling: &Sampling,
    segment: Option<(f64, f64)>,
    part: Option<Part>,
    decode_less: bool,
    resize_for: Option<&ImageConfig>,
    on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
) -> Result<VideoInfo, VideoError> {
    init();
    let deadline = item_deadline();
    let mut input = open_input(path, deadline)?;
    let opened = open_stream(path, &input, sampling)?;
    let mut selector =
        Selector::new(sampling, segment, opened.facts).map_err(|message| VideoError::Sampling {
            path: path.to_owned(),
            message,
        })?;
    if let Some(part) = part {
        if let Some(origin) = part.origin {
            selector.set_origin(origin);
        }
        selector.candidate_cuts(part.start_key.is_none());
    }
    let start = part
        .and_then(|p| p.start_key)
        .or(segment.map(|(start, _)| start));
    let mut landed = false;
    if let Some(ts) = part.and_then(|p| p.seek_ts) {
        // Straight to the part's keyframe: a seek to its index time lands a keyframe earlier
        // where the demuxer seeks by presentation time (index times are decode times there),
        // and decodes a whole GOP for nothing.
        // SAFETY: the context is `input`'s, open; the stream index is one of its streams.
        let r = unsafe {
            ffmpeg::ffi::av_seek_frame(
                input.as_mut_ptr(),
                opened.index as i32,
                ts,
                ffmpeg::ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        landed = r >= 0;
    }
    if let Some(start) = start.filter(|_| !landed) {
        if start > SEEK_THRESHOLD_S {
            // Land on the keyframe at or before `start` (AV_TIME_BASE units, as the stream index
            // is -1; a microsecond later, so that a keyframe at `start` is not missed by the
            // rounding); frames before `start` are then decoded and dropped. If the seek fails
            // we are still at the beginning, which is slower but right.
            let ts = (start * f64::from(ffmpeg::ffi::AV_TIME_BASE)).ceil() as i64 + 1;
            if let Err(e) = input.seek(ts, ..ts) {
                tracing::debug!(
                    "{}: seek to {start} s failed ({e}), decoding from 0",
                    path.display()
                );
            }
        }
    }

    let mut run = Run {
        path,
        stream_index: opened.index,
        time_base: opened.time_base,
        fps: opened.facts.fps,
        rotation: opened.rotation,
        // Only on streams of constant frame rate: there a wanted frame is never more than a frame
        // interval from its target, so frames far before it are never the nearest.
        decode_less: decode_less && opened.constant_rate,
        // A part never seeks ahead: the seek could jump over the keyframe that ends it.
        may_seek: part.is_none(),
        part: part.unwrap_or_default(),
        part_started: part.is_none_or(|p| p.start_key.is_none()),
        skipping: false,
        keyframe_interval: None,
        last_key: None,
        seeked_for: None,
        last_offered: None,
        decoder: opened.decoder,
        resize_for,
        scaler: None,
        thumb_scaler: None,
        held: None,
        frames_decoded: 0,
        decode_errors: 0,
        last_time: None,
        deadline,
    };
    let mut info = VideoInfo {
        width: 0,
        height: 0,
        fps: opened.facts.fps,
        duration_s: opened.duration_s,
        codec: opened.codec,
        rotation: opened.rotation,
        frames_decoded: 0,
        decode_errors: 0,
    };
    let (w, h) = (run.decoder.width(), run.decoder.height());
    (info.width, info.height) = if opened.rotation % 180 == 0 {
        (w, h)
    } else {
        (h, w)
    };

    let outcome = run.decode_all(&mut input, &mut selector, on_frame)?;
    if outcome == Outcome::Exhausted {
        warn_if_cut_short(path, &run, opened.facts.media_end, segment);
    }
    if outcome == Outcome::Exhausted && selector.finish() {
        if let Some(held) = run.held.take() {
            // The last frame: whether the callback wants more no longer matters.
            let _ = run.emit(held, on_frame)?;
        }
    }
    info.frames_decoded = run.frames_decoded;
    info.decode_errors = run.decode_errors;
    if run.frames_decoded == 0 {
        return Err(VideoError::NoFrames {
            path: path.to_owned(),
            errors: run.decode_errors,
        });
    }
    Ok(info)
}

/// A stream whose frames stop well before the end its header declares was cut or damaged (the
/// demuxer gives up at the damage without an error): the frames it has are kept, and the log
/// says which file lost its end.
fn warn_if_cut_short(path: &Path, run: &Run, media_end: Option<f64>, segment: Option<(f64, f64)>) {
    let (Some(end), Some(last)) = (media_end, run.last_time) else {
        return;
    };
    // Only when the unit reaches the end of the file (a segment may stop earlier).
    if segment.is_some_and(|(_, e)| e < end) {
        return;
    }
    let interval = run.fps.map_or(0.0, |f| 1.0 / f);
    if end - last > (3.0 * interval).max(1.0) {
        tracing::warn!(
            "{}: the stream ends at {last:.2} s but its header says {end:.2} s: the file is \
             truncated or damaged, frames after {last:.2} s are missing",
            path.display()
        );
    }
}

/// Reads what [`sample`] would report about `path` without decoding a frame
/// (`frames_decoded` and `decode_errors` are 0).
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    init();
    let input = open_input(path, item_deadline())?;
    let opened = open_stream(path, &input, &Sampling::All)?;
    let (w, h) = (opened.decoder.width(), opened.decoder.height());
    let (width, height) = if opened.rotation % 180 == 0 {
        (w, h)
    } else {
        (h, w)
    };
    Ok(VideoInfo {
        width,
        height,
        fps: opened.facts.fps,
        duration_s: opened.duration_s,
        codec: opened.codec,
        rotation: opened.rotation,
        frames_decoded: 0,
        decode_errors: 0,
    })
}

/// The keyframe times of `path`'s video stream from its container index, in seconds, sorted,
/// read without decoding; `None` when the container has no index to trust for cutting a video
/// into parts (only MP4/MOV, whose frames carry presentation times and whose index is read with
/// the header; Matroska's cues are read only at the first seek) or the stream has fewer than two
/// indexed keyframes. Index times may be decode times, a little before the keyframe's
/// presentation time ([`Part`] allows for it).
pub(crate) fn keyframe_index(path: &Path) -> Result<Option<Vec<IndexedKey>>, VideoError> {
    init();
    let input = open_input(path, item_deadline())?;
    let format = input.format().name().to_string();
    if !format.contains("mp4") {
        return Ok(None);
    }
    let Some(stream) = input.streams().best(ffmpeg::media::Type::Video) else {
        return Ok(None);
    };
    let time_base = f64::from(stream.time_base());
    let mut times = Vec::new();
    // SAFETY: `st` is a stream of `input`, alive for the loop; each entry is read before the
    // next call and nothing else touches the context meanwhile.
    unsafe {
        let st = stream.as_ptr() as *mut ffmpeg::ffi::AVStream;
        let n = ffmpeg::ffi::avformat_index_get_entries_count(st);
        for i in 0..n {
            let e = ffmpeg::ffi::avformat_index_get_entry(st, i);
            if e.is_null() {
                continue;
            }
            const AVINDEX_KEYFRAME: i32 = 1;
            if (*e).flags() & AVINDEX_KEYFRAME != 0 && (*e).timestamp != ffmpeg::ffi::AV_NOPTS_VALUE
            {
                times.push(IndexedKey {
                    time_s: (*e).timestamp as f64 * time_base,
                    ts: (*e).timestamp,
                });
            }
        }
    }
    times.sort_by_key(|k| k.ts);
    times.dedup_by_key(|k| k.ts);
    Ok((times.len() >= 2).then_some(times))
}

/// A keyframe of a container index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct IndexedKey {
    /// Seconds on the media timeline.
    pub time_s: f64,
    /// The index timestamp (stream time base).
    pub ts: i64,
}

struct Opened {
    index: usize,
    /// The stream's average and base frame rates agree.
    constant_rate: bool,
    time_base: f64,
    facts: StreamFacts,
    duration_s: Option<f64>,
    codec: String,
    rotation: i32,
    decoder: ffmpeg::decoder::Video,
}

fn open_stream(
    path: &Path,
    input: &ffmpeg::format::context::Input,
    sampling: &Sampling,
) -> Result<Opened, VideoError> {
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| VideoError::NoVideoStream {
            path: path.to_owned(),
        })?;
    let time_base = f64::from(stream.time_base());
    let fps = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(f64::from);
    let no_ts = ffmpeg::ffi::AV_NOPTS_VALUE;
    let start_s = match stream.start_time() {
        t if t != no_ts => t as f64 * time_base,
        _ => 0.0,
    };
    let duration_s = match stream.duration() {
        d if d > 0 && d != no_ts => Some(d as f64 * time_base),
        _ if input.duration() > 0 => {
            Some(input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
        }
        _ => None,
    };
    let rotation = stream_rotation(&stream);
    let codec = stream.parameters().id().name().to_string();
    let decoder_error = |source| VideoError::Decoder {
        path: path.to_owned(),
        codec: codec.clone(),
        source,
    };
    let mut context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(decoder_error)?;
    // Decoder threads follow `--threads`: inside a rayon worker (many videos, or the parts of
    // one, decode at once) one each, else as many as the rayon pool has. FFmpeg's default (0:
    // one per core) would ignore `--threads 1` and oversubscribe the cores when units decode in
    // parallel. Frames smaller than SD decode in microseconds: handing each to another thread
    // costs more than it saves (a futex storm, half as much CPU again), so they get one.
    // SAFETY: reads two fields of the context made just above.
    let pixels = unsafe {
        let c = context.as_ptr();
        i64::from((*c).width) * i64::from((*c).height)
    };
    let threads = if rayon::current_thread_index().is_some() || pixels < FRAME_THREADING_PIXELS {
        1
    } else {
        rayon::current_num_threads()
    };
    context.set_threading(ffmpeg::codec::threading::Config {
        kind: ffmpeg::codec::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let mut decoder = context.decoder().video().map_err(decoder_error)?;
    if *sampling == Sampling::KeyframesOnly {
        decoder.skip_frame(Discard::NonKey);
    }
    let (w, h) = (decoder.width(), decoder.height());
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(VideoError::TooLarge {
            path: path.to_owned(),
            width: w,
            height: h,
        });
    }
    let constant_rate = {
        let (a, r) = (stream.avg_frame_rate(), stream.rate());
        a.numerator() > 0
            && a.denominator() > 0
            && i64::from(a.numerator()) * i64::from(r.denominator())
                == i64::from(r.numerator()) * i64::from(a.denominator())
    };
    Ok(Opened {
        index: stream.index(),
        constant_rate,
        time_base,
        facts: StreamFacts {
            fps,
            media_end: duration_s.map(|d| start_s + d),
        },
        duration_s,
        codec,
        rotation,
        decoder,
    })
}

/// Clockwise display rotation of a stream: its display matrix, else its `rotate` tag.
fn stream_rotation(stream: &ffmpeg::format::stream::Stream) -> i32 {
    use ffmpeg::codec::packet::side_data::Type;
    let from_matrix = stream
        .side_data()
        .find(|sd| sd.kind() == Type::DisplayMatrix)
        .and_then(|sd| display_matrix_rotation(sd.data()));
    let from_tag = || {
        stream
            .metadata()
            .get("rotate")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|d| normalize_rotation(d.round() as i32))
    };
    from_matrix.or_else(from_tag).unwrap_or(0)
}

/// Clockwise degrees a display matrix (9 native-endian i32, 16.16 fixed point) rotates by, as the
/// `ffmpeg` command line reads it: `-av_display_rotation_get(m)`, rounded, in `[0, 360)`.
fn display_matrix_rotation(data: &[u8]) -> Option<i32> {
    if data.len() < 36 {
        return None;
    }
    let m: Vec<f64> = data[..36]
        .chunks_exact(4)
        .map(|c| f64::from(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])) / 65536.0)
        .collect();
    let scale0 = m[0].hypot(m[3]);
    let scale1 = m[1].hypot(m[4]);
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    let degrees = (m[1] / scale1).atan2(m[0] / scale0).to_degrees();
    Some(normalize_rotation(degrees.round() as i32))
}

fn normalize_rotation(degrees: i32) -> i32 {
    degrees.rem_euclid(360)
}

/// Rotates a packed RGB24 picture clockwise by 90, 180 or 270 degrees; other angles (0 and
/// anything not a multiple of 90) return it unchanged.
pub fn rotate_rgb(img: &RgbFrame, clockwise_degrees: i32) -> RgbFrame {
    let (w, h) = (img.width as usize, img.height as usize);
    let turn = normalize_rotation(clockwise_degrees);
    let (nw, nh) = match turn {
        90 | 270 => (h, w),
        180 => (w, h),
        _ => return img.clone(),
    };
    let mut out = vec![0u8; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match turn {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let s = (y * w + x) * 3;
            let d = (ny * nw + nx) * 3;
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbFrame::new(nw as u32, nh as u32, out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The stream (or the segment) ended: a held frame may still be due.
    Exhausted,
    /// The sampling needs no more frames, or the callback stopped.
    Stopped,
}

struct Held {
    frame: AvFrame,
    time_s: f64,
    frame_number: u64,
}

/// The state of one decode.
struct Run<'a> {
    path: &'a Path,
    stream_index: usize,
    time_base: f64,
    fps: Option<f64>,
    rotation: i32,
    /// Seek ahead and discard non-reference frames when no wanted time needs them.
    decode_less: bool,
    /// Seeking ahead is allowed (not in a [`Part`]).
    may_seek: bool,
    /// The part of the unit decoded (the whole unit by default).
    part: Part,
    /// The part's first keyframe has come out: frames are offered.
    part_started: bool,
    /// Non-reference frames are being discarded.
    skipping: bool,
    /// Longest distance between keyframe packets seen so far, seconds.
    keyframe_interval: Option<f64>,
    last_key: Option<f64>,
    /// The target the last forward seek was made for (one seek per target, so never a loop).
    seeked_for: Option<f64>,
    /// Time of the last frame offered to the selector: after a seek, frames up to it are
    /// decoded again and dropped.
    last_offered: Option<f64>,
    decoder: ffmpeg::decoder::Video,
    /// What kept frames will be resized to: they are converted reduced when it allows.
    resize_for: Option<&'a ImageConfig>,
    /// Rebuilt when the frame format or size changes mid-stream.
    scaler: Option<scaling::Context>,
    /// To the scene-cut thumbnail; rebuilt like `scaler`.
    thumb_scaler: Option<scaling::Context>,
    /// The previous frame, kept while a later target may still pick it.
    held: Option<Held>,
    frames_decoded: u64,
    decode_errors: u64,
    last_time: Option<f64>,
    /// When this file is given up on (see [`set_item_timeout`]).
    deadline: Option<Instant>,
}

impl Run<'_> {
    fn decode_all(
        &mut self,
        input: &mut ffmpeg::format::context::Input,
        selector: &mut Selector,
        on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
    ) -> Result<Outcome, VideoError> {
        let mut read_errors = 0;
        loop {
            if expired(self.deadline) {
                return Err(VideoError::timed_out(self.path, self.frames_decoded));
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(input) {
                Ok(()) => read_errors = 0,
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::Exit) if expired(self.deadline) => {
                    return Err(VideoError::timed_out(self.path, self.frames_decoded));
                }
                // A demuxer resyncs past corrupt data, within a bounded number of tries.
                Err(ffmpeg::Error::InvalidData) if read_errors < MAX_READ_ERRORS => {
                    read_errors += 1;
                    continue;
                }
                Err(e) => {
                    // Any other read error sticks to the input: end the stream here.
                    self.decoder_error(&e);
                    break;
                }
            }
            if packet.stream() != self.stream_index {
                continue;
            }
            if self.decode_less && self.plan_ahead(input, &packet, selector) {
                continue;
            }
            let mut resends = 0;
            loop {
                match self.decoder.send_packet(&packet) {
                    Ok(()) => break,
                    // The decoder wants its output read first: drain, then resend.
                    Err(ffmpeg::Error::Other { errno })
                        if errno == ffmpeg::util::error::EAGAIN && resends < MAX_RESENDS =>
                    {
                        resends += 1;
                        if self.drain(selector, on_frame)? == Outcome::Stopped {
                            return Ok(Outcome::Stopped);
                        }
                    }
                    Err(e) => {
                        self.decoder_error(&e);
                        break;
                    }
                }
            }
            if self.drain(selector, on_frame)? == Outcome::Stopped {
                return Ok(Outcome::Stopped);
            }
        }
        if let Err(e) = self.decoder.send_eof() {
            self.decoder_error(&e);
        }
        self.drain(selector, on_frame)
    }

    /// Before `packet` is decoded: seeks ahead when the next wanted time is far (true: the
    /// packet is dropped and reading resumes at a keyframe before that time), else sets whether
    /// the decoder discards non-reference frames for this packet.
    fn plan_ahead(
        &mut self,
        input: &mut ffmpeg::format::context::Input,
        packet: &ffmpeg::Packet,
        selector: &Selector,
    ) -> bool {
        let Some(pts) = packet.pts() else {
            self.set_skipping(false);
            return false;
        };
        let t = pts as f64 * self.time_base;
        if packet.is_key() {
            if let Some(last) = self.last_key {
                let gap = t - last;
                if gap > 0.0 && self.keyframe_interval.is_none_or(|k| gap > k) {
                    self.keyframe_interval = Some(gap);
                }
            }
            self.last_key = Some(t);
        }
        if !self.part_started
            && self
                .part
                .start_key
                .is_some_and(|b| t < b - BORDER_TOLERANCE_S)
        {
            // Before the part: dropped, so only the references need decoding. (Frames after
            // the part's keyframe in decode order may come out before it: they are the part's.)
            self.set_skipping(true);
            return false;
        }
        let Some(target) = selector.next_target() else {
            self.set_skipping(false);
            return false;
        };
        let ahead = target - t;
        // Seek only once the keyframe spacing is known, so that the seek lands ahead.
        let far = self
            .keyframe_interval
            .is_some_and(|k| ahead > SEEK_AHEAD_S.max(2.0 * k));
        if far && self.may_seek && self.seeked_for != Some(target) {
            self.seeked_for = Some(target);
            let to = target - SKIP_MARGIN_S;
            let ts = (to * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
            match input.seek(ts, ..ts) {
                Ok(()) => {
                    // Frames still in the decoder lie far before the target: none is wanted.
                    self.decoder.flush();
                    self.set_skipping(false);
                    return true;
                }
                Err(e) => tracing::debug!(
                    "{}: seek to {to} s failed ({e}), reading on",
                    self.path.display()
                ),
            }
        }
        self.set_skipping(ahead > SKIP_MARGIN_S);
        false
    }

    fn set_skipping(&mut self, on: bool) {
        if on != self.skipping {
            self.skipping = on;
            self.decoder.skip_frame(if on {
                Discard::NonReference
            } else {
                Discard::Default
            });
        }
    }

    fn decoder_error(&mut self, e: &ffmpeg::Error) {
        self.decode_errors += 1;
        tracing::debug!("{}: decoder error: {e}", self.path.display());
    }

    /// Receives every frame the decoder has ready and offers each to the selector.
    fn drain(
        &mut self,
        selector: &mut Selector,
        on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
    ) -> Result<Outcome, VideoError> {
        loop {
            let mut frame = AvFrame::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(Outcome::Exhausted)
                }
                Err(ffmpeg::Error::Eof) => return Ok(Outcome::Exhausted),
                Err(e) => {
                    // Not retried here: the next packet (or EOF) drains again.
                    self.decoder_error(&e);
                    return Ok(Outcome::Exhausted);
                }
            }
            let frame_number = self.frames_decoded;
            self.frames_decoded += 1;
            let time_s = self.frame_time(&frame, frame_number);
            if self.last_offered.is_some_and(|last| time_s <= last) && self.seeked_for.is_some() {
                // Decoded again after a seek landed before frames already offered.
                continue;
            }
            let mut last_of_part = false;
            if !self.part_started || self.part.end_key.is_some() {
                let border = |b: f64| frame.is_key() && time_s >= b - BORDER_TOLERANCE_S;
                if !self.part_started {
                    if !self.part.start_key.is_some_and(border) {
                        // Before the part (or a leading frame decoded without its references).
                        continue;
                    }
                    self.part_started = true;
                    selector.start_part_at(time_s);
                }
                last_of_part = self.part.end_key.is_some_and(border);
            }
            self.last_offered = Some(time_s);
            let step = if selector.wants_content() {
                let signature = self.signature(&frame)?;
                selector.offer_content(time_s, signature)
            } else {
                selector.offer(time_s)
            };
            if step.emit_prev {
                if let Some(held) = self.held.take() {
                    if self.emit(held, on_frame)?.is_break() {
                        return Ok(Outcome::Stopped);
                    }
                }
            }
            let current = Held {
                frame,
                time_s,
                frame_number,
            };
            if step.emit_current {
                if self.emit(current, on_frame)?.is_break() {
                    return Ok(Outcome::Stopped);
                }
            } else if step.hold_current {
                self.held = Some(current);
            }
            if step.stop {
                return Ok(Outcome::Stopped);
            }
            if last_of_part {
                // Targets after this keyframe are the next part's: what is held is dropped.
                self.held = None;
                return Ok(Outcome::Stopped);
            }
        }
    }

    /// A frame's time in seconds. The best-effort timestamp is FFmpeg's guess of the
    /// presentation time: the frame's pts when the packets carry consistent ones, else the packet
    /// dts, which is what containers without pts (AVI, raw streams) give. Frames come out of the
    /// decoder in presentation order, so with B-frames these times still increase. A frame with
    /// neither gets the previous time plus one frame interval.
    fn frame_time(&mut self, frame: &AvFrame, frame_number: u64) -> f64 {
        let interval = self.fps.map_or(0.0, |f| 1.0 / f);
        let t = match frame.timestamp().or_else(|| frame.pts()) {
            Some(ts) => ts as f64 * self.time_base,
            None => match self.last_time {
                Some(last) => last + interval,
                None => frame_number as f64 * interval,
            },
        };
        self.last_time = Some(t);
        t
    }

    fn emit(
        &mut self,
        held: Held,
        on_frame: &mut dyn FnMut(SampledFrame) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, VideoError> {
        let image = self.convert_to_rgb(&held.frame)?;
        let image = if self.rotation == 0 {
            image
        } else {
            rotate_rgb(&image, self.rotation)
        };
        Ok(on_frame(SampledFrame {
            time_s: held.time_s,
            frame_number: held.frame_number,
            image,
        }))
    }

    /// The frame's content signature, from a tiny grey thumbnail (area-averaged, so it is not
    /// aliased; no full-size RGB picture is made).
    fn signature(&mut self, frame: &AvFrame) -> Result<Signature, VideoError> {
        let format = frame.format();
        let convert_error = convert_error(self.path, format);
        let scaler = cached_scaler(
            &mut self.thumb_scaler,
            frame,
            (Pixel::GRAY8, scenes::THUMB_W, scenes::THUMB_H),
            scaling::Flags::AREA,
        )
        .map_err(&convert_error)?;
        let mut thumb = AvFrame::empty();
        scaler.run(frame, &mut thumb).map_err(&convert_error)?;
        Ok(Signature::from_gray(
            scenes::THUMB_W as usize,
            scenes::THUMB_H as usize,
            thumb.stride(0),
            thumb.data(0),
        ))
    }

    /// Converts a decoded frame of any pixel format to packed RGB24, honouring its colour matrix
    /// and range; reduced by the divisor `resize_for` allows (upright size decides).
    fn convert_to_rgb(&mut self, frame: &AvFrame) -> Result<RgbFrame, VideoError> {
        let (format, w, h) = (frame.format(), frame.width(), frame.height());
        if u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(VideoError::TooLarge {
                path: self.path.to_owned(),
                width: w,
                height: h,
            });
        }
        let k = self.resize_for.map_or(1, |cfg| {
            if self.rotation % 180 == 0 {
                crate::imaging::draft_divisor(w, h, cfg)
            } else {
                crate::imaging::draft_divisor(h, w, cfg)
            }
        });
        let (w, h) = (w.div_ceil(k), h.div_ceil(k));
        // Full size: bicubic chroma upsampling. Reduced: area averaging (an exact box filter at
        // these whole ratios); both with full-resolution chroma and accurate rounding.
        let filter = if k == 1 {
            scaling::Flags::BICUBIC
        } else {
            scaling::Flags::AREA
        };
        let convert_error = convert_error(self.path, format);
        let scaler = cached_scaler(
            &mut self.scaler,
            frame,
            (Pixel::RGB24, w, h),
            filter | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT,
        )
        .map_err(&convert_error)?;
        let mut rgb = AvFrame::empty();
        scaler.run(frame, &mut rgb).map_err(&convert_error)?;
        let row = w as usize * 3;
        let stride = rgb.stride(0);
        let plane = rgb.data(0);
        let mut data = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        Ok(RgbFrame::new(w, h, data))
    }
}

/// Content signatures of still pictures (the frames of an image sequence), made the way the
/// decode loop makes them for video frames: the picture scaled by swscale (area averaging) to a
/// [`scenes::THUMB_W`]x[`scenes::THUMB_H`] grey thumbnail, then its luma histogram. One per
/// sequence: it keeps its scaler while the pictures keep their size.
pub(crate) struct Thumbnailer {
    scaler: Option<scaling::Context>,
}

impl Thumbnailer {
    pub(crate) fn new() -> Thumbnailer {
        init();
        Thumbnailer { scaler: None }
    }

    /// The signature [`Sampling::SceneCuts`] compares; errors are plain messages (the caller
    /// adds the path).
    pub(crate) fn signature(&mut self, img: &RgbFrame) -> Result<Signature, String> {
        let (w, h) = (img.width, img.height);
        let row = w as usize * 3;
        if w == 0 || h == 0 || img.data.len() < row * h as usize {
            return Err(format!("not a {w}x{h} RGB picture"));
        }
        let mut frame = AvFrame::new(Pixel::RGB24, w, h);
        let stride = frame.stride(0);
        let plane = frame.data_mut(0);
        for (y, src) in img.data.chunks_exact(row).take(h as usize).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(src);
        }
        let scaler = cached_scaler(
            &mut self.scaler,
            &frame,
            (Pixel::GRAY8, scenes::THUMB_W, scenes::THUMB_H),
            scaling::Flags::AREA,
        )
        .map_err(|e| format!("cannot make a grey thumbnail: {e}"))?;
        let mut thumb = AvFrame::empty();
        scaler
            .run(&frame, &mut thumb)
            .map_err(|e| format!("cannot make a grey thumbnail: {e}"))?;
        Ok(Signature::from_gray(
            scenes::THUMB_W as usize,
            scenes::THUMB_H as usize,
            thumb.stride(0),
            thumb.data(0),
        ))
    }
}

/// Maps a swscale failure on frames of `format` to an error naming the file.
fn convert_error(path: &Path, format: Pixel) -> impl Fn(ffmpeg::Error) -> VideoError {
    let path = path.to_owned();
    move |source| VideoError::Convert {
        path: path.clone(),
        format: format!("{format:?}"),
        source,
    }
}

/// The scaler in `slot`, made anew when the input format or size changed (streams may change
/// resolution mid-file), converting to `(format, width, height)` with the frame's colour matrix.
fn cached_scaler<'a>(
    slot: &'a mut Option<scaling::Context>,
    frame: &AvFrame,
    (out_format, out_w, out_h): (Pixel, u32, u32),
    flags: scaling::Flags,
) -> Result<&'a mut scaling::Context, ffmpeg::Error> {
    let (format, w, h) = (frame.format(), frame.width(), frame.height());
    let stale = slot.as_ref().is_none_or(|s| {
        let (i, o) = (s.input(), s.output());
        (i.format, i.width, i.height) != (format, w, h)
            || (o.format, o.width, o.height) != (out_format, out_w, out_h)
    });
    if stale {
        let mut scaler = scaling::Context::get(format, w, h, out_format, out_w, out_h, flags)?;
        set_colorspace(&mut scaler, frame);
        *slot = Some(scaler);
    }
    Ok(slot.as_mut().expect("scaler was just set"))
}

/// Tells swscale the frame's YUV matrix (BT.601, BT.709, ...) and range; by default it assumes
/// BT.601 limited range, which shifts the colours of HD video. Output is full-range RGB.
fn set_colorspace(scaler: &mut scaling::Context, frame: &AvFrame) {
    use ffmpeg::util::color;
    let space = ffmpeg::ffi::AVColorSpace::from(frame.color_space()) as i32;
    let full_range = frame.color_range() == color::Range::JPEG
        || matches!(
            frame.format(),
            Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P | Pixel::YUVJ411P
        );
    // SAFETY: `scaler` owns a valid, initialised SwsContext for the life of this call.
    // sws_getCoefficients returns a pointer into a static table of 4 ints (it maps unknown
    // spaces to the default), which is what sws_setColorspaceDetails reads; it copies the values.
    // A negative return (a source swscale treats as RGB) leaves the context as it was.
    unsafe {
        let src = ffmpeg::ffi::sws_getCoefficients(space);
        let dst = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT);
        ffmpeg::ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            src,
            i32::from(full_range),
            dst,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

#[cfg(test)]
mod tests;
