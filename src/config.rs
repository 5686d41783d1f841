//! Scenario configuration: one TOML file per scenario (`scenarios/*.toml`).
//!
//! Two phases, as in ripgrep's flags: the file (plus `--set key=value` overrides) is parsed into
//! plain serde structs that reject unknown keys and name the key of any error; then
//! [`Scenario::resolve`] turns relative paths into real ones and checks that they exist.
//!
//! Paths written in the file are relative to the file's folder; paths given with `--set` are
//! relative to the current folder. `source.annotations` and `source.media` are relative to
//! `source.root`. `schemas/scenario.schema.json` describes the same shape for editors and tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
mod syphus;

pub use crate::model::Code;
use crate::model::{DeviceSpec, Precision, RelIns};
pub use syphus::SyphusSettings;

/// One or several paths (`annotations = "a.json"` or `annotations = ["a.json", "b.json"]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Scenario code: CGD, SD, SN, E4D, TVC, DC, VST or LA.
    pub scenario: Code,
    /// A human name for reports; defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    pub source: SourceConfig,
    #[serde(default)]
    pub keyframes: KeyframesConfig,
    #[serde(default)]
    pub image: ImageConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub features: FeaturesConfig,
    #[serde(default)]
    pub pack: PackConfig,
    #[serde(default)]
    pub corpus: CorpusConfig,
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// The Syphus generation step; off while `endpoint` is empty.
    #[serde(default)]
    pub syphus: SyphusSettings,
}

/// `[metadata]`: what the scan and metadata stages prepare for Syphus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// Only units whose media was found (and gave frames) get Syphus inputs: Syphus costs money
    /// per unit. `false` also prepares annotation-only units (their media is still a reject).
    pub require_media: bool,
    /// Probe every media file at scan (video: size, rate, duration, codec; image: size) for
    /// `media.parquet`; `false` records path and bytes only.
    pub probe: bool,
    /// E4D: the paragraph appended to every query (after a newline): what the answers must
    /// avoid. The default is mimicit's own wording; the original Syphus paragraph can be given
    /// here to reproduce its messages exactly.
    pub e4d_restrictions: String,
}

/// mimicit's E4D restrictions paragraph (see [`MetadataConfig::e4d_restrictions`]).
pub const E4D_RESTRICTIONS: &str = "Do not quote exact times such as 'timestamp 107.7': speak of what happened instead, and say 'from what I observed' rather than 'according to the descriptions'. Never call people man X, woman Y or person A; say 'a person' or 'the person'. C, or person C, is the user wearing the camera: call the user 'I' in questions and 'you' in answers, never 'the cameraman'. Write at least six questions, in the first person, that are useful rather than trivial ('what do I see?' is not). What was observed is the real world, not a video or footage. Keep questions and answers short.";

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            require_media: true,
            probe: true,
            e4d_restrictions: E4D_RESTRICTIONS.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The corpus folder as its users downloaded it.
    pub root: PathBuf,
    /// Annotation file(s), relative to `root` unless absolute.
    pub annotations: OneOrMany,
    /// Folder of the media (videos, frame folders, images), relative to `root`.
    #[serde(default = "dot")]
    pub media: PathBuf,
    /// Annotation split name where the corpus has several (informational; used in ids of nothing).
    #[serde(default)]
    pub split: Option<String>,
    /// The licence of the corpus's data (e.g. "CC BY 4.0"), named in the dataset card of the
    /// `hf` output.
    #[serde(default)]
    pub license: Option<String>,
}

fn dot() -> PathBuf {
    PathBuf::from(".")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplingPolicy {
    /// The frame nearest to each k/fps seconds from the stream start.
    Fps,
    /// The original converter's rule: every floor(video_fps / fps)-th decoded frame.
    LegacyStride,
    /// `count` frames evenly spaced over the unit (or its segment).
    Uniform,
    /// Frames at annotation times.
    At,
    /// The first frame of each shot found by content-change detection.
    SceneCuts,
    /// Only intra-coded frames, without decoding the others.
    KeyframesOnly,
    /// Every decoded frame.
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyframesConfig {
    pub policy: SamplingPolicy,
    /// Frames per second for `fps` and `legacy-stride`.
    pub fps: f64,
    /// Frames per unit for `uniform`.
    pub count: u32,
    /// Content-change threshold for `scene-cuts` (0..=1: one minus the correlation of the luma
    /// histograms of consecutive frames). 0.03 found all 8 golden cuts of the test fixture
    /// (precision 0.67, the extra cuts lie in long fades).
    pub scene_threshold: f64,
    /// Shortest shot, in seconds, for `scene-cuts`.
    pub min_shot: f64,
    /// At most this many frames per unit (0: no limit).
    pub max_per_unit: u32,
}

impl Default for KeyframesConfig {
    fn default() -> Self {
        KeyframesConfig {
            policy: SamplingPolicy::Fps,
            fps: 1.0,
            count: 16,
            scene_threshold: 0.03,
            min_shot: 0.5,
            max_per_unit: 0,
        }
    }
}

/// How a picture is fitted to the output size (`image.aspect`, `frames --aspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Aspect {
    /// Stretch to exactly width x height (the original converter's behaviour).
    Squash,
    /// Fit inside, pad the rest with black.
    Pad,
    /// Fill, then center-crop.
    Crop,
    /// Fit inside, keep the aspect ratio, no padding.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeFilter {
    Lanczos3,
    Bilinear,
    Bicubic,
}

/// The stored picture format (`image.format`, `frames --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    Png,
    Jpeg,
}

/// How hard PNG frames are compressed: the pixels are the same, the bytes and the time differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PngCompression {
    /// zlib level 6, as Pillow and libpng write by default.
    #[default]
    Default,
    /// fdeflate: about 5x less time per frame than level 6; on photographs about a tenth more
    /// bytes, on flat synthetic pictures about as many.
    Fast,
    /// zlib level 9: a percent or so smaller than level 6, several times slower.
    Best,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub width: u32,
    pub height: u32,
    pub aspect: Aspect,
    pub filter: ResizeFilter,
    pub format: ImageFormat,
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// PNG compression effort.
    pub png_compression: PngCompression,
    /// A JPEG source is decoded at 1/2, 1/4 or 1/8 of its size (by libjpeg-turbo, in the DCT:
    /// Pillow's `draft`), and a video frame converted to RGB at that size (swscale, area
    /// averaging), when the reduced picture is still at least this many times the size it is
    /// resized to, in both directions (the largest such reduction is taken). 0 always works at
    /// full size. At 2 the frames differ from full-size ones by far less than a grey level (PSNR
    /// above 50 dB on the ScanNet fixtures and on 1080p film); at 1, by about what separates
    /// Lanczos from bicubic resizing (35-45 dB).
    pub reducing_gap: f64,
}

/// Whether `gap` is a valid [`ImageConfig::reducing_gap`]: 0 (off) or a number of at least 1.
pub fn valid_reducing_gap(gap: f64) -> bool {
    gap == 0.0 || (gap.is_finite() && gap >= 1.0)
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            width: 224,
            height: 224,
            aspect: Aspect::Squash,
            filter: ResizeFilter::Lanczos3,
            format: ImageFormat::Png,
            quality: 95,
            png_compression: PngCompression::Default,
            reducing_gap: 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DedupScope {
    Unit,
    Corpus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepRule {
    First,
    Sharpest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    pub exact: bool,
    pub near: bool,
    pub max_hamming: u32,
    pub semantic: bool,
    pub min_cosine: f64,
    pub scope: DedupScope,
    pub keep: KeepRule,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact: true,
            near: false,
            max_hamming: 6,
            semantic: false,
            min_cosine: 0.95,
            scope: DedupScope::Unit,
            keep: KeepRule::First,
        }
    }
}

/// `[filter]`: frame quality filters, each off unless switched on. `uniform` and `blur` act in
/// the dedup stage on the stored frames (a filtered frame is a row of `dedup.parquet`, mapped to
/// a kept frame of its unit; a unit always keeps one frame); `letterbox` acts in the keyframes
/// stage, before resizing. Thresholds measured on the fixture clips (BENCHMARKS.md, "Frame
/// quality filters").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Drop black and single-colour frames (fade-outs, blank title cards).
    pub uniform: bool,
    /// A frame is uniform when at least this share of its pixels lies within 8 luma levels of
    /// its median luma. Measured on the stored 224x224 frames at 2 fps: every picture of the
    /// real fixture clips at most 0.302 (testvideo.mp4's mid-fade frames; realshort.mp4,
    /// flipping_a_pancake.mkv and test.avi at most 0.268); their dark frames (mean luma under
    /// 16: black, black cards with a copyright line, the last frames of a fade-out) 0.919 and
    /// above; fades.mp4's flat frames 1.0.
    pub uniform_ratio: f64,
    /// Drop blurred frames.
    pub blur: bool,
    /// A frame is blurred when the variance of the Laplacian of its luma, on the stored frame,
    /// is below this. Measured on the stored 224x224 frames: every picture of the real fixture
    /// clips 60.2 and above (the lowest three a hand moving past the camera in
    /// flipping_a_pancake.mkv, 60.2-86.9; all others 131 and above), the same clips through a Gaussian blur of sigma 1/107 of their
    /// width (2 px at 224) at most 22.1. A mild blur (sigma 1/213 of the width, 1 px at 224)
    /// leaves 12.5 to 104, on both sides of the threshold.
    pub min_sharpness: f64,
    /// Crop black bars (letterbox, pillarbox) off video frames before resizing, with one crop
    /// window per unit (and frame size) decided from its first sampled frames.
    pub letterbox: bool,
    /// A row or column is part of a bar when its mean luma is at most this (FFmpeg cropdetect's
    /// default limit, 24 of 255).
    pub letterbox_luma: u8,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            uniform: false,
            uniform_ratio: 0.9,
            blur: false,
            min_sharpness: 35.0,
            letterbox: false,
            letterbox_luma: 24,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// A CLIP checkpoint: a Hugging Face folder (config.json + model.safetensors) or an OpenAI
    /// TorchScript `.pt`, relative to the scenario file. Unset: the stage is off.
    pub model: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
    /// `auto` (fp32 on CPU, fp16 on CUDA), `fp32`, `fp16` or `bf16`.
    pub precision: Precision,
    /// Pictures per model call.
    pub batch: u32,
    /// L2-normalise the stored vectors.
    pub normalize: bool,
    /// Most rows per features parquet shard.
    pub shard_rows: u64,
    /// Also write each shard as a float32 `.npy` matrix (same rows, same order).
    pub npy: bool,
    /// Nearest visual neighbours per frame written to `pairs.parquet` (0: none), for pairing
    /// images that are alike but not duplicates (COCO general difference).
    pub pairs: u32,
    /// Cosine band of those neighbours: at least `pairs_min`, at most `pairs_max`.
    pub pairs_min: f64,
    pub pairs_max: f64,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            model: None,
            device: DeviceSpec::Auto,
            precision: Precision::Auto,
            batch: 64,
            normalize: false,
            shard_rows: 100_000,
            npy: false,
            pairs: 0,
            pairs_min: 0.75,
            pairs_max: 0.97,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackConfig {
    /// Syphus answer files (valid_output.json lists or JSONL), relative to the scenario file.
    pub answers: Vec<PathBuf>,
    /// Largest images parquet part in bytes (at most 2 GiB).
    pub max_part_bytes: u64,
    /// How in-context examples are chosen: `unit` (other instructions of the same unit).
    pub rel_ins: RelIns,
    /// `meta.author` of the instructions file.
    pub author: String,
    /// What to write (README "Trainer formats"): `otter` (images parquet, instructions and
    /// train files: what Otter's loader reads), `wds` (WebDataset tars), `hf` (Hugging Face
    /// `datasets` parquet and dataset card), `llava` (LLaVA conversation JSON and `images/`),
    /// `sharegpt` (LLaMA-Factory's ShareGPT JSON, `dataset_info.json` and `images/`).
    pub formats: Vec<PackFormat>,
    /// In the hf, llava and sharegpt outputs: up to this many in-context examples
    /// (`rel_ins_ids`) as question/answer turns before the query; 0 leaves them as ids.
    pub in_context_turns: usize,
    /// Also write WebDataset tar shards under `OUT/{CODE}/wds/` (the same as `wds` in
    /// `formats`).
    pub webdataset: bool,
    /// One WebDataset sample per unit (all its frames) or per image.
    pub wds_sample: WdsSample,
    /// Most samples in one tar shard.
    pub wds_max_samples: u64,
    /// Largest tar shard in bytes (a single larger sample gets a shard of its own).
    pub wds_max_bytes: u64,
}

/// One output layout of the pack stage (`pack.formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackFormat {
    Otter,
    Wds,
    Hf,
    Llava,
    Sharegpt,
}

impl PackConfig {
    /// Whether `format` is to be written (`webdataset = true` counts as `wds`).
    pub fn writes(&self, format: PackFormat) -> bool {
        self.formats.contains(&format) || (format == PackFormat::Wds && self.webdataset)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WdsSample {
    Unit,
    Image,
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            answers: Vec::new(),
            max_part_bytes: 1 << 30,
            rel_ins: RelIns::Unit,
            author: "mimicit".to_string(),
            formats: vec![PackFormat::Otter],
            in_context_turns: 0,
            webdataset: false,
            wds_sample: WdsSample::Unit,
            wds_max_samples: 10_000,
            wds_max_bytes: 1 << 30,
        }
    }
}

/// How E4D cuts a video into clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClipMode {
    /// Fixed windows `[i * stride, i * stride + clip_seconds)`.
    Windows,
    /// Runs of narrations at most `density_gap` seconds apart, at most `clip_seconds` long.
    Density,
}

/// Which frames TVC takes from a raw clip (a video instead of a TVQA frame folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TvcFrames {
    /// The original rule on the clip's 3 fps frame grid, with the ids the frame folders give.
    Original,
    /// The `[keyframes]` policy (e.g. `uniform`, count 16: exact evenly spaced times).
    Policy,
}

/// Where DC samples a video's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FramesFrom {
    /// The whole video.
    Video,
    /// Each caption segment `[start, end]` separately (the policy applies per segment).
    Segments,
}

/// Corpus-specific adapter settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusConfig {
    /// E4D: longest clip, in seconds (the window length for `clips = "windows"`).
    pub clip_seconds: f64,
    /// E4D: seconds between clip starts; default `clip_seconds` (windows side by side).
    pub clip_stride: Option<f64>,
    /// E4D: `windows` (fixed) or `density` (runs of narrations).
    pub clips: ClipMode,
    /// E4D, `clips = "density"`: a gap longer than this between narrations ends a clip.
    pub density_gap: f64,
    /// E4D: drop the `#C` / `#O` / `#unsure` markers from narration texts.
    pub strip_markers: bool,
    /// E4D: which narration pass to read, 1 or 2.
    pub narration_pass: u8,
    /// E4D: optional object-description side file (relative to `source.root`).
    pub objects: Option<PathBuf>,
    /// E4D: an object entry attaches to the nearest narration at most this many seconds away.
    pub object_tolerance: f64,
    /// TVC: optional folder of `{vid_name}.srt` subtitles (relative to `source.root`).
    pub subtitles: Option<PathBuf>,
    /// TVC: frames of raw clips, `original` or `policy`.
    pub tvc_frames: TvcFrames,
    /// DC: `video` or `segments`.
    pub frames_from: FramesFrom,
    /// SN: keep every k-th color frame of a scan (1: all).
    pub frame_step: u32,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            clip_seconds: 30.0,
            clip_stride: None,
            clips: ClipMode::Windows,
            density_gap: 10.0,
            strip_markers: false,
            narration_pass: 1,
            objects: None,
            object_tolerance: 1.0,
            subtitles: None,
            tvc_frames: TvcFrames::Original,
            frames_from: FramesFrom::Video,
            frame_step: 1,
        }
    }
}

/// A scenario ready to run: parsed, overrides applied, paths resolved and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The TOML file it came from.
    pub file: PathBuf,
    pub code: Code,
    pub name: String,
    /// Absolute corpus root.
    pub root: PathBuf,
    /// Absolute annotation files.
    pub annotations: Vec<PathBuf>,
    /// Absolute media folder.
    pub media: PathBuf,
    /// Absolute answer files.
    pub answers: Vec<PathBuf>,
    /// Absolute CLIP model path (`features.model`), when set.
    pub model: Option<PathBuf>,
    /// Absolute E4D object side file (`corpus.objects`), when set.
    pub objects: Option<PathBuf>,
    /// Absolute TVC subtitle folder (`corpus.subtitles`), when set.
    pub subtitles: Option<PathBuf>,
    pub config: ScenarioFile,
    /// The effective table (file + overrides, paths as written): what stage hashes are made of.
    pub table: toml::Table,
}

/// The [dedup] settings of `mimicit dedup DIR`: near matching across the whole folder, changed
/// by `--set dedup.KEY=VALUE` (any other key is refused).
pub fn folder_dedup_config(sets: &[String]) -> Result<DedupConfig> {
    let mut table = toml::Table::new();
    let mut dedup = toml::Table::new();
    dedup.insert("near".into(), toml::Value::Boolean(true));
    dedup.insert("scope".into(), toml::Value::String("corpus".into()));
    table.insert("dedup".into(), toml::Value::Table(dedup));
    let here = Path::new("--set");
    for item in sets {
        if !item.starts_with("dedup.") {
            return Err(Error::Config {
                path: here.to_path_buf(),
                message: format!("{item}: `dedup DIR` takes only dedup.* settings"),
            });
        }
        apply_override(&mut table, item).map_err(|message| Error::Config {
            path: here.to_path_buf(),
            message: format!("{item}: {message}"),
        })?;
    }
    let value = table.remove("dedup").expect("inserted above");
    serde_path_to_error::deserialize(value).map_err(|e| Error::ConfigKey {
        path: here.to_path_buf(),
        key: format!("dedup.{}", e.path()),
        message: without_key_trailer(&e.into_inner().to_string()),
    })
}

/// A TOML value error without the `in `key`` line toml appends: the error names the key once.
fn without_key_trailer(message: &str) -> String {
    match message.trim_end().rsplit_once('\n') {
        Some((head, last)) if last.starts_with("in `") => head.trim_end().to_string(),
        _ => message.trim_end().to_string(),
    }
}

impl Scenario {
    /// Reads `file`, applies `overrides` (`key=value`, TOML value syntax, bare strings allowed),
    /// checks every key and every path. Errors name the file, the key and the problem.
    pub fn load(file: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Self::from_str(file, &text, overrides)
    }

    pub fn from_str(file: &Path, text: &str, overrides: &[String]) -> Result<Scenario> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Config {
            path: file.to_path_buf(),
            message: format!("not valid TOML: {}", e.to_string().trim_end()),
        })?;
        let mut overridden = BTreeSet::new();
        for item in overrides {
            let key = apply_override(&mut table, item).map_err(|message| Error::Config {
                path: file.to_path_buf(),
                message: format!("--set {item}: {message}"),
            })?;
            overridden.insert(key);
        }
        let config: ScenarioFile =
            serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                let key = e.path().to_string();
                Error::ConfigKey {
                    path: file.to_path_buf(),
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    message: without_key_trailer(&e.into_inner().to_string()),
                }
            })?;
        let scenario = Self::resolve(file, config, table, &overridden)?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn resolve(
        file: &Path,
        config: ScenarioFile,
        table: toml::Table,
        overridden: &BTreeSet<String>,
    ) -> Result<Scenario> {
        let file_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let base_for = |key: &str| -> PathBuf {
            if overridden.contains(key) {
                cwd.clone()
            } else {
                absolute(&cwd, file_dir)
            }
        };
        let key_err = |key: &str, message: String| Error::ConfigKey {
            path: file.to_path_buf(),
            key: key.to_string(),
            message,
        };

        let root = absolute(&base_for("source.root"), &config.source.root);
        if !root.is_dir() {
            return Err(key_err(
                "source.root",
                format!("folder {} does not exist", root.display()),
            ));
        }
        let media = absolute(&root, &config.source.media);
        if !media.is_dir() {
            return Err(key_err(
                "source.media",
                format!("folder {} does not exist", media.display()),
            ));
        }
        let mut annotations = Vec::new();
        for a in config.source.annotations.to_vec() {
            let p = absolute(&root, &a);
            if !p.is_file() {
                return Err(key_err(
                    "source.annotations",
                    format!("file {} does not exist", p.display()),
                ));
            }
            annotations.push(p);
        }
        let answers_base = base_for("pack.answers");
        let mut answers = Vec::new();
        for a in &config.pack.answers {
            let p = absolute(&answers_base, a);
            if !p.is_file() {
                return Err(key_err(
                    "pack.answers",
                    format!("file {} does not exist", p.display()),
                ));
            }
            answers.push(p);
        }
        let model = config
            .features
            .model
            .as_ref()
            .map(|m| absolute(&base_for("features.model"), m));
        if let Some(m) = &model {
            if config
                .features
                .model
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty())
            {
                return Err(key_err("features.model", "is empty".into()));
            }
            if !m.exists() {
                return Err(key_err(
                    "features.model",
                    format!(
                        "{} does not exist (a Hugging Face CLIP folder or a TorchScript .pt)",
                        m.display()
                    ),
                ));
            }
        }
        let objects = match &config.corpus.objects {
            Some(o) => {
                let p = absolute(&root, o);
                if !p.is_file() {
                    return Err(key_err(
                        "corpus.objects",
                        format!("file {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        let subtitles = match &config.corpus.subtitles {
            Some(o) => {
                let p = absolute(&root, o);
                if !p.is_dir() {
                    return Err(key_err(
                        "corpus.subtitles",
                        format!("folder {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        // The Syphus prompt and candidate files, relative to the scenario file like the model.
        let mut config = config;
        for (key, slot) in [
            ("syphus.prompt", &mut config.syphus.prompt),
            ("syphus.candidates", &mut config.syphus.candidates),
        ] {
            if let Some(p) = slot.as_mut() {
                let full = absolute(&base_for(key), p);
                if !full.is_file() {
                    return Err(key_err(
                        key,
                        format!("file {} does not exist", full.display()),
                    ));
                }
                *p = full;
            }
        }
        let name = config.name.clone().unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| config.scenario.to_string())
        });
        Ok(Scenario {
            file: file.to_path_buf(),
            code: config.scenario,
            name,
            root,
            annotations,
            media,
            answers,
            model,
            objects,
            subtitles,
            config,
            table,
        })
    }

    /// Range checks serde cannot express.
    fn validate(&self) -> Result<()> {
        let c = &self.config;
        if !c.syphus.endpoint.is_empty() {
            c.syphus.validate().map_err(|e| Error::Config {
                path: self.file.clone(),
                message: e.to_string(),
            })?;
        }
        let bad = |key: &str, message: &str| {
            Err(Error::ConfigKey {
                path: self.file.clone(),
                key: key.to_string(),
                message: message.to_string(),
            })
        };
        if !(c.keyframes.fps.is_finite() && c.keyframes.fps > 0.0) {
            return bad("keyframes.fps", "must be a number above 0");
        }
        if c.keyframes.count == 0 {
            return bad("keyframes.count", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&c.keyframes.scene_threshold) {
            return bad("keyframes.scene_threshold", "must be between 0 and 1");
        }
        if c.image.width == 0 || c.image.height == 0 {
            return bad("image.width", "width and height must be at least 1");
        }
        if c.image.width > 16384 || c.image.height > 16384 {
            return bad("image.width", "width and height must be at most 16384");
        }
        if !(1..=100).contains(&c.image.quality) {
            return bad("image.quality", "must be between 1 and 100");
        }
        if !valid_reducing_gap(c.image.reducing_gap) {
            return bad(
                "image.reducing_gap",
                "must be 0 (off) or a number of at least 1",
            );
        }
        if !(c.corpus.clip_seconds.is_finite() && c.corpus.clip_seconds > 0.0) {
            return bad("corpus.clip_seconds", "must be a number above 0");
        }
        if let Some(stride) = c.corpus.clip_stride {
            if !(stride.is_finite() && stride > 0.0) {
                return bad("corpus.clip_stride", "must be a number above 0");
            }
        }
        if !(c.corpus.density_gap.is_finite() && c.corpus.density_gap > 0.0) {
            return bad("corpus.density_gap", "must be a number above 0");
        }
        if !(c.corpus.object_tolerance.is_finite() && c.corpus.object_tolerance >= 0.0) {
            return bad(
                "corpus.object_tolerance",
                "must be a number of seconds, 0 or more",
            );
        }
        if c.corpus.frame_step == 0 {
            return bad("corpus.frame_step", "must be at least 1");
        }
        if !(1..=2).contains(&c.corpus.narration_pass) {
            return bad("corpus.narration_pass", "must be 1 or 2");
        }
        if c.dedup.max_hamming > 64 {
            return bad("dedup.max_hamming", "must be between 0 and 64");
        }
        if !(-1.0..=1.0).contains(&c.dedup.min_cosine) {
            return bad("dedup.min_cosine", "must be between -1 and 1");
        }
        if !(0.0..=1.0).contains(&c.filter.uniform_ratio) {
            return bad("filter.uniform_ratio", "must be between 0 and 1");
        }
        if !(0.0..=2000.0).contains(&c.filter.min_sharpness) {
            return bad("filter.min_sharpness", "must be between 0 and 2000");
        }
        if c.pack.max_part_bytes == 0 || c.pack.max_part_bytes > 2 << 30 {
            return bad(
                "pack.max_part_bytes",
                "must be between 1 and 2147483648 (2 GiB)",
            );
        }
        if c.pack.wds_max_samples == 0 || c.pack.wds_max_bytes == 0 {
            return bad(
                "pack.wds_max_samples",
                "wds_max_samples and wds_max_bytes must be at least 1",
            );
        }
        if c.dedup.semantic && c.features.model.is_none() {
            return bad(
                "dedup.semantic",
                "semantic dedup compares CLIP embeddings: set features.model",
            );
        }
        if matches!(c.pack.rel_ins, RelIns::Knn(_)) && c.features.model.is_none() {
            return bad(
                "pack.rel_ins",
                "`knn:K` chooses examples by CLIP features: set features.model",
            );
        }
        if c.features.batch == 0 || c.features.shard_rows == 0 {
            return bad(
                "features.batch",
                "features.batch and features.shard_rows must be at least 1",
            );
        }
        let (lo, hi) = (c.features.pairs_min, c.features.pairs_max);
        if !(-1.0..=1.0).contains(&lo) || !(-1.0..=1.0).contains(&hi) || lo > hi {
            return bad(
                "features.pairs_min",
                "pairs_min and pairs_max must be cosines in [-1, 1] with pairs_min <= pairs_max",
            );
        }
        Ok(())
    }

    /// The effective settings of the given top-level sections, as canonical JSON: stages hash
    /// it to decide whether earlier output is still valid.
    pub fn sections_json(&self, sections: &[&str]) -> String {
        let mut picked = serde_json::Map::new();
        picked.insert("scenario".into(), self.code.as_str().into());
        for s in sections {
            // `section.key` picks one key of a section (a stage reading only that key).
            let v = match s.split_once('.') {
                Some((section, key)) => self.table.get(section).and_then(|t| t.get(key)),
                None => self.table.get(*s),
            };
            if let Some(v) = v {
                let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
                picked.insert((*s).to_string(), json);
            }
        }
        // serde_json's Map is a BTreeMap without `preserve_order`: keys come out sorted.
        serde_json::Value::Object(picked).to_string()
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        let joined = base.join(p);
        std::fs::canonicalize(&joined).unwrap_or(joined)
    }
}

/// Applies one `a.b.c=value` override to `table` and returns the dotted key.
fn apply_override(table: &mut toml::Table, item: &str) -> std::result::Result<String, String> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| "expected key=value".to_string())?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|k| k.trim().is_empty()) {
        return Err("empty key".into());
    }
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let (last, path) = parts.split_last().expect("non-empty key");
    let mut cur = table;
    for (i, part) in path.iter().enumerate() {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a table", parts[..=i].join(".")))?;
    }
    cur.insert(last.to_string(), value);
    Ok(parts.join("."))
}

/// A TOML literal (`3`, `true`, `"x"`, `[1, 2]`) when it parses as one, else a bare string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("corpus/videos")).unwrap();
        std::fs::write(dir.path().join("corpus/train.json"), "{}").unwrap();
        dir
    }

    const GOOD: &str = r#"
scenario = "DC"
[source]
root = "corpus"
annotations = "train.json"
media = "videos"
[keyframes]
policy = "fps"
fps = 0.5
"#;

    fn load(dir: &Path, text: &str, sets: &[&str]) -> Result<Scenario> {
        let file = dir.join("s.toml");
        std::fs::write(&file, text).unwrap();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Scenario::load(&file, &sets)
    }

    #[test]
    fn good_file_resolves_paths_against_its_folder() {
        let dir = corpus();
        let s = load(dir.path(), GOOD, &[]).unwrap();
        assert_eq!(s.code, Code::DC);
        assert_eq!(s.name, "s");
        assert!(s.root.ends_with("corpus"));
        assert!(s.media.ends_with("corpus/videos"));
        assert_eq!(s.annotations.len(), 1);
        assert_eq!(s.config.keyframes.fps, 0.5);
        assert_eq!(s.config.image.width, 224);
        assert_eq!(s.config.image.aspect, Aspect::Squash);
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = corpus();
        let text = GOOD.replace("fps = 0.5", "fsp = 0.5");
        let err = load(dir.path(), &text, &[]).unwrap_err().to_string();
        assert!(err.contains("s.toml"), "{err}");
        assert!(err.contains("keyframes"), "{err}");
        assert!(err.contains("fsp"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let dir = corpus();
        let text = GOOD.replace("fps = 0.5", "fps = \"fast\"");
        let err = load(dir.path(), &text, &[]).unwrap_err().to_string();
        assert!(err.contains("keyframes.fps"), "{err}");
    }

    #[test]
    fn bad_scenario_code_is_named() {
        let dir = corpus();
        let text = GOOD.replace("\"DC\"", "\"XX\"");
        let err = load(dir.path(), &text, &[]).unwrap_err().to_string();
        assert!(err.contains("scenario"), "{err}");
        assert!(err.contains("XX"), "{err}");
    }

    #[test]
    fn missing_paths_are_named() {
        let dir = corpus();
        let err = load(dir.path(), &GOOD.replace("\"corpus\"", "\"nowhere\""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.root") && err.contains("nowhere"),
            "{err}"
        );
        let err = load(dir.path(), &GOOD.replace("train.json", "val.json"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.annotations") && err.contains("val.json"),
            "{err}"
        );
        let err = load(dir.path(), GOOD, &["pack.answers=[\"none.json\"]"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("pack.answers"), "{err}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let dir = corpus();
        let err = load(dir.path(), "scenario = \"DC\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("source"), "{err}");
    }

    #[test]
    fn invalid_toml_is_reported_with_file() {
        let dir = corpus();
        let err = load(dir.path(), "scenario = \n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml") && err.contains("not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn overrides_apply_and_resolve_against_cwd() {
        let dir = corpus();
        let root = dir.path().join("corpus");
        let set_root = format!("source.root={}", root.display());
        let s = load(
            dir.path(),
            &GOOD.replace("\"corpus\"", "\"elsewhere\""),
            &[
                &set_root,
                "keyframes.fps=2",
                "image.format=jpeg",
                "image.quality=80",
            ],
        )
        .unwrap();
        assert_eq!(s.root, std::fs::canonicalize(&root).unwrap());
        assert_eq!(s.config.keyframes.fps, 2.0);
        assert_eq!(s.config.image.format, ImageFormat::Jpeg);
        assert_eq!(s.config.image.quality, 80);
    }

    #[test]
    fn bad_override_is_refused() {
        let dir = corpus();
        let err = load(dir.path(), GOOD, &["keyframes"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("key=value"), "{err}");
        let err = load(dir.path(), GOOD, &["scenario.x=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a table"), "{err}");
        let err = load(dir.path(), GOOD, &["keyframes.bogus=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn a_key_is_named_once() {
        assert_eq!(
            without_key_trailer("invalid type: string \"abc\", expected f64\nin `keyframes.fps`\n"),
            "invalid type: string \"abc\", expected f64"
        );
        assert_eq!(without_key_trailer("plain"), "plain");
    }

    #[test]
    fn range_checks() {
        let dir = corpus();
        for (set, key) in [
            ("keyframes.fps=0", "keyframes.fps"),
            ("image.quality=0", "image.quality"),
            ("image.reducing_gap=0.5", "image.reducing_gap"),
            ("image.width=0", "image.width"),
            ("pack.max_part_bytes=3000000000", "pack.max_part_bytes"),
            ("dedup.max_hamming=65", "dedup.max_hamming"),
            ("corpus.clip_seconds=0", "corpus.clip_seconds"),
            ("corpus.clip_stride=-1", "corpus.clip_stride"),
            ("corpus.narration_pass=3", "corpus.narration_pass"),
        ] {
            let err = load(dir.path(), GOOD, &[set]).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn section_hash_input_changes_with_settings() {
        let dir = corpus();
        let a = load(dir.path(), GOOD, &[]).unwrap();
        let b = load(dir.path(), GOOD, &["keyframes.fps=2"]).unwrap();
        assert_ne!(
            a.sections_json(&["keyframes"]),
            b.sections_json(&["keyframes"])
        );
        assert_eq!(a.sections_json(&["source"]), b.sections_json(&["source"]));
    }
}
