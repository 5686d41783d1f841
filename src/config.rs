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
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    pub features: FeaturesConfig,
    #[serde(default)]
    pub pack: PackConfig,
    #[serde(default)]
    pub corpus: CorpusConfig,
    #[serde(default)]
    pub metadata: MetadataConfig,
}

/// `[metadata]`: what the scan and metadata stages prepare for Syphus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Only units whose media was found (and gave frames) get Syphus inputs: Syphus costs money
    /// per unit. `false` also prepares annotation-only units (their media is still a reject).
    #[serde(default = "yes")]
    pub require_media: bool,
    /// Probe every media file at scan (video: size, rate, duration, codec; image: size) for
    /// `media.parquet`; `false` records path and bytes only.
    #[serde(default = "yes")]
    pub probe: bool,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            require_media: true,
            probe: true,
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
#[serde(deny_unknown_fields)]
pub struct KeyframesConfig {
    #[serde(default = "default_policy")]
    pub policy: SamplingPolicy,
    /// Frames per second for `fps` and `legacy-stride`.
    #[serde(default = "one")]
    pub fps: f64,
    /// Frames per unit for `uniform`.
    #[serde(default = "sixteen")]
    pub count: u32,
    /// Content-change threshold for `scene-cuts` (0..=1: one minus the correlation of the luma
    /// histograms of consecutive frames). 0.03 found all 8 golden cuts of the test fixture
    /// (precision 0.67, the extra cuts lie in long fades).
    #[serde(default = "scene_threshold")]
    pub scene_threshold: f64,
    /// Shortest shot, in seconds, for `scene-cuts`.
    #[serde(default = "min_shot")]
    pub min_shot: f64,
    /// At most this many frames per unit (0: no limit).
    #[serde(default)]
    pub max_per_unit: u32,
}

fn default_policy() -> SamplingPolicy {
    SamplingPolicy::Fps
}
fn one() -> f64 {
    1.0
}
fn sixteen() -> u32 {
    16
}
fn scene_threshold() -> f64 {
    0.03
}
fn min_shot() -> f64 {
    0.5
}

impl Default for KeyframesConfig {
    fn default() -> Self {
        KeyframesConfig {
            policy: default_policy(),
            fps: one(),
            count: sixteen(),
            scene_threshold: scene_threshold(),
            min_shot: min_shot(),
            max_per_unit: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(default = "size224")]
    pub width: u32,
    #[serde(default = "size224")]
    pub height: u32,
    #[serde(default = "squash")]
    pub aspect: Aspect,
    #[serde(default = "lanczos3")]
    pub filter: ResizeFilter,
    #[serde(default = "png")]
    pub format: ImageFormat,
    /// JPEG quality, 1..=100.
    #[serde(default = "quality")]
    pub quality: u8,
    /// PNG compression effort.
    #[serde(default)]
    pub png_compression: PngCompression,
    /// A JPEG source is decoded at 1/2, 1/4 or 1/8 of its size (by libjpeg-turbo, in the DCT:
    /// Pillow's `draft`), and a video frame converted to RGB at that size (swscale, area
    /// averaging), when the reduced picture is still at least this many times the size it is
    /// resized to, in both directions (the largest such reduction is taken). 0 always works at
    /// full size. At 2 the frames differ from full-size ones by far less than a grey level (PSNR
    /// above 50 dB on the ScanNet fixtures and on 1080p film); at 1, by about what separates
    /// Lanczos from bicubic resizing (35-45 dB).
    #[serde(default = "reducing_gap")]
    pub reducing_gap: f64,
}

fn size224() -> u32 {
    224
}
fn squash() -> Aspect {
    Aspect::Squash
}
fn lanczos3() -> ResizeFilter {
    ResizeFilter::Lanczos3
}
fn png() -> ImageFormat {
    ImageFormat::Png
}
fn quality() -> u8 {
    95
}
fn reducing_gap() -> f64 {
    2.0
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            width: size224(),
            height: size224(),
            aspect: squash(),
            filter: lanczos3(),
            format: png(),
            quality: quality(),
            png_compression: PngCompression::Default,
            reducing_gap: reducing_gap(),
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
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "yes")]
    pub exact: bool,
    #[serde(default)]
    pub near: bool,
    #[serde(default = "hamming")]
    pub max_hamming: u32,
    #[serde(default)]
    pub semantic: bool,
    #[serde(default = "cosine")]
    pub min_cosine: f64,
    #[serde(default = "unit_scope")]
    pub scope: DedupScope,
    #[serde(default = "first")]
    pub keep: KeepRule,
}

fn yes() -> bool {
    true
}
fn hamming() -> u32 {
    6
}
fn cosine() -> f64 {
    0.95
}
fn unit_scope() -> DedupScope {
    DedupScope::Unit
}
fn first() -> KeepRule {
    KeepRule::First
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact: true,
            near: false,
            max_hamming: hamming(),
            semantic: false,
            min_cosine: cosine(),
            scope: unit_scope(),
            keep: first(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// A CLIP checkpoint: a Hugging Face folder (config.json + model.safetensors) or an OpenAI
    /// TorchScript `.pt`, relative to the scenario file. Unset: the stage is off.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "auto")]
    pub device: String,
    /// `auto` (fp32 on CPU, fp16 on CUDA), `fp32`, `fp16` or `bf16`.
    #[serde(default = "auto")]
    pub precision: String,
    /// Pictures per model call.
    #[serde(default = "batch")]
    pub batch: u32,
    /// L2-normalise the stored vectors.
    #[serde(default)]
    pub normalize: bool,
    /// Most rows per features parquet shard.
    #[serde(default = "shard_rows")]
    pub shard_rows: u64,
    /// Also write each shard as a float32 `.npy` matrix (same rows, same order).
    #[serde(default)]
    pub npy: bool,
    /// Nearest visual neighbours per frame written to `pairs.parquet` (0: none), for pairing
    /// images that are alike but not duplicates (COCO general difference).
    #[serde(default)]
    pub pairs: u32,
    /// Cosine band of those neighbours: at least `pairs_min`, at most `pairs_max`.
    #[serde(default = "pairs_min")]
    pub pairs_min: f64,
    #[serde(default = "pairs_max")]
    pub pairs_max: f64,
}

fn auto() -> String {
    "auto".to_string()
}
fn batch() -> u32 {
    64
}
fn shard_rows() -> u64 {
    100_000
}
fn pairs_min() -> f64 {
    0.75
}
fn pairs_max() -> f64 {
    0.97
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            model: None,
            device: auto(),
            precision: auto(),
            batch: batch(),
            normalize: false,
            shard_rows: shard_rows(),
            npy: false,
            pairs: 0,
            pairs_min: pairs_min(),
            pairs_max: pairs_max(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    /// Syphus answer files (valid_output.json lists or JSONL), relative to the scenario file.
    #[serde(default)]
    pub answers: Vec<PathBuf>,
    /// Largest images parquet part in bytes (at most 2 GiB).
    #[serde(default = "gib")]
    pub max_part_bytes: u64,
    /// How in-context examples are chosen: `unit` (other instructions of the same unit).
    #[serde(default = "unit_rel")]
    pub rel_ins: String,
    /// `meta.author` of the instructions file.
    #[serde(default = "author")]
    pub author: String,
    /// Also write WebDataset tar shards under `OUT/{CODE}/wds/`.
    #[serde(default)]
    pub webdataset: bool,
    /// One WebDataset sample per unit (all its frames) or per image.
    #[serde(default = "wds_per_unit")]
    pub wds_sample: WdsSample,
    /// Most samples in one tar shard.
    #[serde(default = "wds_samples")]
    pub wds_max_samples: u64,
    /// Largest tar shard in bytes (a single larger sample gets a shard of its own).
    #[serde(default = "gib")]
    pub wds_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WdsSample {
    Unit,
    Image,
}

fn wds_per_unit() -> WdsSample {
    WdsSample::Unit
}
fn wds_samples() -> u64 {
    10_000
}

fn gib() -> u64 {
    1 << 30
}
fn unit_rel() -> String {
    "unit".to_string()
}
fn author() -> String {
    "mimicit".to_string()
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            answers: Vec::new(),
            max_part_bytes: gib(),
            rel_ins: unit_rel(),
            author: author(),
            webdataset: false,
            wds_sample: wds_per_unit(),
            wds_max_samples: wds_samples(),
            wds_max_bytes: gib(),
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
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// E4D: longest clip, in seconds (the window length for `clips = "windows"`).
    #[serde(default = "clip_seconds")]
    pub clip_seconds: f64,
    /// E4D: seconds between clip starts; default `clip_seconds` (windows side by side).
    #[serde(default)]
    pub clip_stride: Option<f64>,
    /// E4D: `windows` (fixed) or `density` (runs of narrations).
    #[serde(default = "clip_mode")]
    pub clips: ClipMode,
    /// E4D, `clips = "density"`: a gap longer than this between narrations ends a clip.
    #[serde(default = "density_gap")]
    pub density_gap: f64,
    /// E4D: drop the `#C` / `#O` / `#unsure` markers from narration texts.
    #[serde(default)]
    pub strip_markers: bool,
    /// E4D: which narration pass to read, 1 or 2.
    #[serde(default = "pass1")]
    pub narration_pass: u8,
    /// E4D: optional object-description side file (relative to `source.root`).
    #[serde(default)]
    pub objects: Option<PathBuf>,
    /// E4D: an object entry attaches to the nearest narration at most this many seconds away.
    #[serde(default = "object_tolerance")]
    pub object_tolerance: f64,
    /// TVC: optional folder of `{vid_name}.srt` subtitles (relative to `source.root`).
    #[serde(default)]
    pub subtitles: Option<PathBuf>,
    /// TVC: frames of raw clips, `original` or `policy`.
    #[serde(default = "tvc_frames")]
    pub tvc_frames: TvcFrames,
    /// DC: `video` or `segments`.
    #[serde(default = "frames_from")]
    pub frames_from: FramesFrom,
    /// SN: keep every k-th color frame of a scan (1: all).
    #[serde(default = "one_step")]
    pub frame_step: u32,
}

fn one_step() -> u32 {
    1
}

fn clip_seconds() -> f64 {
    30.0
}
fn pass1() -> u8 {
    1
}
fn clip_mode() -> ClipMode {
    ClipMode::Windows
}
fn density_gap() -> f64 {
    10.0
}
fn object_tolerance() -> f64 {
    1.0
}
fn tvc_frames() -> TvcFrames {
    TvcFrames::Original
}
fn frames_from() -> FramesFrom {
    FramesFrom::Video
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            clip_seconds: clip_seconds(),
            clip_stride: None,
            clips: clip_mode(),
            density_gap: density_gap(),
            strip_markers: false,
            narration_pass: pass1(),
            objects: None,
            object_tolerance: object_tolerance(),
            subtitles: None,
            tvc_frames: tvc_frames(),
            frames_from: frames_from(),
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
        message: e.into_inner().to_string(),
    })
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
                    message: e.into_inner().to_string(),
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
        if !crate::imaging::valid_reducing_gap(c.image.reducing_gap) {
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
        if crate::shards::instructions::RelIns::parse(&c.pack.rel_ins).is_none() {
            return bad(
                "pack.rel_ins",
                "must be `unit` (other instructions of the same unit) or `knn:K` (instructions \
                 of the K visually nearest units, 1 <= K <= 64; needs features.model)",
            );
        }
        if c.dedup.semantic && c.features.model.is_none() {
            return bad(
                "dedup.semantic",
                "semantic dedup compares CLIP embeddings: set features.model",
            );
        }
        if c.pack.rel_ins.starts_with("knn:") && c.features.model.is_none() {
            return bad(
                "pack.rel_ins",
                "`knn:K` chooses examples by CLIP features: set features.model",
            );
        }
        if c.features
            .device
            .parse::<crate::features::DeviceSpec>()
            .is_err()
        {
            return bad("features.device", "must be auto, cpu, cuda or cuda:N");
        }
        if c.features
            .precision
            .parse::<crate::features::Precision>()
            .is_err()
        {
            return bad("features.precision", "must be auto, fp32, fp16 or bf16");
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
            if let Some(v) = self.table.get(*s) {
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
