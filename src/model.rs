//! The domain types that pass between stages. Library types (ffmpeg, tch, polars) never appear
//! here: each stays inside the module that wraps it.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The short code of a MIMIC-IT scenario; it prefixes every image and instruction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Code {
    /// COCO general difference.
    CGD,
    /// Spot-the-Difference.
    SD,
    /// Scene navigation (ScanNet).
    SN,
    /// Egocentric video (Ego4D).
    E4D,
    /// TV show captions (TVQA/TVC).
    TVC,
    /// Dense captions (ActivityNet Captions).
    DC,
    /// Visual storytelling (VIST).
    VST,
    /// LLaVA in-context.
    LA,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::CGD => "CGD",
            Code::SD => "SD",
            Code::SN => "SN",
            Code::E4D => "E4D",
            Code::TVC => "TVC",
            Code::DC => "DC",
            Code::VST => "VST",
            Code::LA => "LA",
        }
    }

    /// The group of the trainer's data yaml that this scenario's shards belong to.
    pub fn data_group(self) -> &'static str {
        match self {
            Code::E4D | Code::TVC | Code::DC | Code::SN => "VIDEO_TEXT",
            Code::LA => "IMAGE_TEXT_IN_CONTEXT",
            Code::CGD | Code::SD | Code::VST => "IMAGE_TEXT",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// This unit's annotation (scenario-specific JSON): its entry in the file Syphus reads,
    /// or, when several records annotate the unit, all of them merged (every sentence kept).
    pub annotation: serde_json::Value,
    /// The unit's annotation records as Syphus's own loader reads them, in file order: the
    /// loader sends one query per record, so a unit annotated several times (an SD pair in
    /// three records, a TVC clip with several moments) gets several queries with the same id.
    /// Empty: one record, `annotation`, placed by unit id (the scenarios whose Syphus file
    /// mimicit builds itself: SN, CGD, E4D, LA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<SourceRecord>,
}

/// One annotation record of a unit, where it was in the annotation files and what Syphus's
/// loader reads of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Its place in the annotation files: `file index << 32 | index in the file` (records,
    /// JSON lines, object keys or albums in file order), so sorting by it gives file order.
    pub position: u64,
    /// The record in the layout of the Syphus-native file; null when it is the unit's
    /// `annotation` itself.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub entry: serde_json::Value,
}

impl SourceRecord {
    /// The position of record `index` of annotation file `file` (see `position`).
    pub fn position(file: usize, index: usize) -> u64 {
        ((file as u64) << 32) | index as u64
    }
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

/// How a dropped frame relates to the frame kept in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Identical pixels.
    Exact,
    /// Perceptual hashes within the threshold.
    Phash,
    /// CLIP embeddings with cosine at least `dedup.min_cosine`.
    Semantic,
    /// Not a duplicate: a black or single-colour frame (`filter.uniform`, see [`crate::dedup::filter`]).
    Uniform,
    /// Not a duplicate: a blurred frame (`filter.blur`, see [`crate::dedup::filter`]).
    Blur,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Phash => "phash",
            Method::Semantic => "semantic",
            Method::Uniform => "uniform",
            Method::Blur => "blur",
        }
    }

    /// Whether the row comes from a quality filter (the frame is not a duplicate).
    pub fn is_filter(self) -> bool {
        matches!(self, Method::Uniform | Method::Blur)
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "exact" => Some(Method::Exact),
            "phash" => Some(Method::Phash),
            "semantic" => Some(Method::Semantic),
            "uniform" => Some(Method::Uniform),
            "blur" => Some(Method::Blur),
            _ => None,
        }
    }
}

/// One dropped frame: a row of `dedup.parquet` (`schemas/dedup.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DedupRow {
    pub dropped_id: String,
    /// Always a kept frame (never itself dropped).
    pub kept_id: String,
    pub method: Method,
    /// Hamming distance between the two pHashes; 0 for `exact`; for `semantic`,
    /// `round(1000 * (1 - cosine))`; for `uniform`, `round(1000 * share)` of the pixels near the
    /// median luma; for `blur`, the variance of the Laplacian, rounded.
    pub distance: u32,
}

/// Settings values that cross modules, parsed once when a scenario loads (serde goes through
/// `FromStr`, so a bad value is an error naming its key) and written back as the same text.
mod settings {
    use std::fmt;
    use std::str::FromStr;

    use serde::{Deserialize, Serialize};

    /// `auto` (first CUDA device if libtorch sees one, else CPU), `cpu`, `cuda` or `cuda:N`
    /// (`features.device`, `--device`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(try_from = "String", into = "String")]
    pub enum DeviceSpec {
        Auto,
        Cpu,
        Cuda(usize),
    }

    impl FromStr for DeviceSpec {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "auto" => Ok(DeviceSpec::Auto),
                "cpu" => Ok(DeviceSpec::Cpu),
                "cuda" => Ok(DeviceSpec::Cuda(0)),
                _ => s
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse().ok())
                    .map(DeviceSpec::Cuda)
                    .ok_or_else(|| format!("device `{s}`: must be auto, cpu, cuda or cuda:N")),
            }
        }
    }

    impl fmt::Display for DeviceSpec {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                DeviceSpec::Auto => f.write_str("auto"),
                DeviceSpec::Cpu => f.write_str("cpu"),
                DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            }
        }
    }

    /// Element type of the model on its device: `auto` is fp32 on CPU and fp16 on CUDA
    /// (`features.precision`, `--precision`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
    #[serde(try_from = "String", into = "String")]
    pub enum Precision {
        Auto,
        Fp32,
        Fp16,
        Bf16,
    }

    impl FromStr for Precision {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "auto" => Ok(Precision::Auto),
                "fp32" => Ok(Precision::Fp32),
                "fp16" => Ok(Precision::Fp16),
                "bf16" => Ok(Precision::Bf16),
                _ => Err(format!("precision `{s}`: must be auto, fp32, fp16 or bf16")),
            }
        }
    }

    impl fmt::Display for Precision {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Precision::Auto => "auto",
                Precision::Fp32 => "fp32",
                Precision::Fp16 => "fp16",
                Precision::Bf16 => "bf16",
            })
        }
    }

    /// How `rel_ins_ids` (in-context examples) are chosen (`pack.rel_ins`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(try_from = "String", into = "String")]
    pub enum RelIns {
        /// The other instructions of the same unit, in order.
        Unit,
        /// The first instruction of each of the K visually nearest other units (by CLIP
        /// features), nearest first.
        Knn(usize),
    }

    impl RelIns {
        /// Most neighbours `knn:K` may ask for.
        pub const MAX_K: usize = 64;

        pub fn parse(s: &str) -> Option<RelIns> {
            s.parse().ok()
        }
    }

    impl FromStr for RelIns {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            if s == "unit" {
                return Ok(RelIns::Unit);
            }
            s.strip_prefix("knn:")
                .and_then(|k| k.parse().ok())
                .filter(|k| (1..=RelIns::MAX_K).contains(k))
                .map(RelIns::Knn)
                .ok_or_else(|| {
                    format!(
                        "`{s}`: must be `unit` (other instructions of the same unit) or `knn:K` \
                         (instructions of the K visually nearest units, 1 <= K <= {}; needs \
                         features.model)",
                        RelIns::MAX_K
                    )
                })
        }
    }

    impl fmt::Display for RelIns {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                RelIns::Unit => f.write_str("unit"),
                RelIns::Knn(k) => write!(f, "knn:{k}"),
            }
        }
    }

    macro_rules! via_string {
        ($($t:ty),*) => {$(
            impl TryFrom<String> for $t {
                type Error = String;
                fn try_from(s: String) -> Result<Self, String> {
                    s.parse()
                }
            }
            impl From<$t> for String {
                fn from(v: $t) -> String {
                    v.to_string()
                }
            }
        )*};
    }
    via_string!(DeviceSpec, Precision, RelIns);

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn settings_round_trip_through_their_text() {
            for s in ["auto", "cpu", "cuda:0", "cuda:3"] {
                assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
            }
            assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
            for s in ["auto", "fp32", "fp16", "bf16"] {
                assert_eq!(s.parse::<Precision>().unwrap().to_string(), s);
            }
            for s in ["unit", "knn:1", "knn:64"] {
                assert_eq!(s.parse::<RelIns>().unwrap().to_string(), s);
            }
            for bad in ["knn:0", "knn:65", "knn:x", "units"] {
                assert!(
                    bad.parse::<RelIns>().unwrap_err().contains("knn:K"),
                    "{bad}"
                );
            }
            assert!("gpu".parse::<DeviceSpec>().unwrap_err().contains("cuda:N"));
            assert!("fp8".parse::<Precision>().unwrap_err().contains("bf16"));
        }
    }
}

pub use settings::{DeviceSpec, Precision, RelIns};
