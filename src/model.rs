//! The domain types that pass between stages. Library types (ffmpeg, tch, polars) never appear
//! here: each stays inside the module that wraps it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A decoded or resized picture: packed RGB24, `width * 3` bytes per row, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbFrame {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize * 3);
        RgbFrame {
            width,
            height,
            data,
        }
    }
}

/// One image of an image-based unit, with the key its id is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageItem {
    pub path: PathBuf,
    /// Id key: the image id is `{CODE}_IMG_{key}`.
    pub key: String,
}

/// Where a unit's frames come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitMedia {
    /// A video file, or the segment `[start, end]` seconds of it.
    Video {
        path: PathBuf,
        #[serde(default)]
        start: Option<f64>,
        #[serde(default)]
        end: Option<f64>,
        /// Frame ids are `{CODE}_IMG_{key_prefix}_{i:0key_width$}`.
        key_prefix: String,
        key_width: usize,
        /// When not empty, the policy samples each of these `[start, end]` spans (seconds on
        /// the media timeline) on its own, and the unit's frames are their union in time order
        /// (DC `frames_from = "segments"`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        segments: Vec<[f64; 2]>,
        /// When not empty, the adapter chose the frames itself: the frame nearest to each time,
        /// with its own id key; the keyframe policy does not apply (TVC raw clips by the
        /// original rule).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chosen: Vec<ChosenFrame>,
    },
    /// A sequence of pictures in display order (a frame folder, an album, an image pair).
    Images { items: Vec<ImageItem> },
    /// Annotation only: the media was not found (`metadata.require_media = false` keeps such
    /// units for Syphus; the scan recorded the missing media as a reject).
    Missing {
        /// What was looked for, e.g. `videos/v_abc.*`.
        expected: String,
    },
}

/// A frame an adapter chose: the one nearest `time_s`, stored as `{CODE}_IMG_{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenFrame {
    pub time_s: f64,
    pub key: String,
}

/// One visual unit (clip, video, scan, image pair): what Syphus writes instructions about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub id: String,
    /// Where its annotation came from: the annotation file (`file:line` for JSON lines),
    /// relative to `source.root` once the scan stage has it.
    #[serde(default)]
    pub source: String,
    pub media: UnitMedia,
    /// Times (seconds from the media start) of the annotations, for the `at` sampling policy.
    #[serde(default)]
    pub times: Vec<f64>,
    /// This unit's entry in the file Syphus reads (scenario-specific JSON).
    pub annotation: serde_json::Value,
}

/// One stored frame, as the keyframes stage records it in `frames.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// `{CODE}_IMG_{key}`.
    pub image_id: String,
    pub unit_id: String,
    /// Position within the unit, in time order, from 0.
    pub index: u32,
    /// Seconds from the stream start for video frames; None for still images.
    pub time_s: Option<f64>,
    /// Stored image size.
    pub width: u32,
    pub height: u32,
    /// blake3 of the stored pixels (RGB24), hex: equal pictures have equal hashes whatever
    /// encoder wrote them.
    pub pixel_hash: String,
    /// The stored file, relative to `OUT/{CODE}/`.
    pub file: String,
    pub bytes: u64,
}

/// An item a stage could not process: recorded, counted, and the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reject {
    pub stage: String,
    /// The unit or image id, or the file name when no id is known.
    pub item: String,
    pub path: String,
    pub error: String,
}

/// One media file a unit uses, as the scan stage probed it (`media.parquet`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaRow {
    /// Relative to `source.root`.
    pub path: String,
    /// `video` or `image`.
    pub kind: String,
    pub bytes: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub duration_s: Option<f64>,
    pub codec: Option<String>,
    /// Clockwise display rotation in degrees (videos).
    pub rotation: Option<i32>,
    /// Why probing failed (the keyframes stage will reject the unit), else None.
    pub error: Option<String>,
}

/// One annotation item of a unit (`annotations.parquet`): a caption, narration, description,
/// subtitle, story sentence, box, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationRow {
    pub unit_id: String,
    /// Seconds on the media timeline, when the item has a time.
    pub t_start: Option<f64>,
    pub t_end: Option<f64>,
    pub text: String,
    pub kind: String,
}
