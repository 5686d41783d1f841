//! Command-line interface (clap derive): plain parsed values here; [`execute`] resolves them
//! into library calls and an exit code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use mimicit::config::Scenario;
use mimicit::error::{Error, Result};
use mimicit::partition::{Partition, Placement};
use mimicit::pipeline::{self, RunOptions, Scope};
use mimicit::progress::ProgressMode;
use mimicit::stages::StageId;

/// Exit status: everything processed.
pub const EXIT_OK: i32 = 0;
/// Exit status: a fatal error (bad config, unwritable output, ...); outputs may be incomplete.
pub const EXIT_ERROR: i32 = 1;
/// Exit status: bad usage, or a command/stage this version does not implement yet.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: the run finished, but some items were rejected (see `OUT/{CODE}/rejects/`).
pub const EXIT_REJECTS: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "mimicit",
    version,
    about = "Turn raw vision corpora into MIMIC-IT training data",
    long_about = "Turn raw vision corpora (COCO, Spot-the-Difference, ScanNet, Ego4D, TVC, \
ActivityNet Captions) into MIMIC-IT training data: sampled and deduplicated frames, the inputs \
the Syphus instruction generator reads, CLIP features, and trainer-ready shards.",
    after_help = "Exit status: 0 all good; 1 error; 2 bad usage or not built yet; 3 finished with rejected items.\n\nExample:\n  mimicit run scenarios/demo.toml --out out"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// How to show progress on stderr.
    #[arg(long, global = true, value_enum, default_value = "bar")]
    pub progress: ProgressMode,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Give up on a video after this many seconds of decoding and reject it (0: no limit).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 3600.0)]
    pub item_timeout: f64,
    /// When another process is writing the output folder, stop with an error naming it
    /// (status 1) instead of waiting for it.
    #[arg(long, global = true)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stages of a scenario in order, skipping finished ones.
    #[command(
        after_help = "Example:\n  mimicit run scenarios/demo.toml --out out\n  mimicit run scenarios/dense_captions.toml --out out --set source.root=/data/anet --stages scan,keyframes\n  mimicit run scenarios/demo.toml --out out --partition 0/3   # then 1/3, 2/3, then `mimicit merge`"
    )]
    Run(RunArgs),
    /// Join the partitions of a split run (`--partition i/N`) into OUT and run the whole-corpus
    /// stages: OUT then holds what one `run` over the whole corpus writes.
    #[command(
        after_help = "Example:\n  mimicit run scenarios/demo.toml --out out --partition 0/2\n  mimicit run scenarios/demo.toml --out out --partition 1/2\n  mimicit merge scenarios/demo.toml --out out"
    )]
    Merge(MergeArgs),
    /// Stage 1: list the units, media and annotations of a corpus.
    #[command(after_help = "Example:\n  mimicit scan scenarios/demo.toml --out out")]
    Scan(StageArgs),
    /// Stage 2: decode, sample, resize and store the frames of every unit.
    #[command(
        after_help = "Example:\n  mimicit keyframes scenarios/demo.toml --out out --set keyframes.fps=2"
    )]
    Keyframes(StageArgs),
    /// Stage 3 on a scenario, or ad-hoc on a folder of images: find duplicate frames.
    #[command(
        after_help = "Example:\n  mimicit dedup scenarios/demo.toml --out out\n  mimicit dedup scenarios/demo.toml --out out --dry-run --set dedup.near=true\n  mimicit dedup photos/ --out dups.parquet"
    )]
    Dedup(DedupArgs),
    /// Stage 4: CLIP image features of every kept frame.
    #[command(
        after_help = "Example:\n  mimicit features scenarios/demo.toml --out out --set features.model=clip-vit-base-patch32"
    )]
    Features(StageArgs),
    /// Stage 5: the files the Syphus instruction generator reads.
    #[command(after_help = "Example:\n  mimicit metadata scenarios/demo.toml --out out")]
    Metadata(StageArgs),
    /// Stage 6: ask an OpenAI-compatible LLM endpoint for the instruction/answer pairs of every
    /// Syphus query (`[syphus]` in the scenario; the API key from the environment).
    #[command(
        after_help = "Example:\n  OPENAI_API_KEY=... mimicit syphus scenarios/demo.toml --out out --set syphus.endpoint=https://api.openai.com/v1\n  mimicit syphus scenarios/demo.toml --out out --set syphus.endpoint=http://localhost:8000/v1 --dry-run"
    )]
    Syphus(SyphusArgs),
    /// Stage 7: trainer-ready shards from frames and Syphus answers.
    #[command(
        after_help = "Example:\n  mimicit pack scenarios/demo.toml --out out --answers valid_output.json"
    )]
    Pack(PackArgs),
    /// Extract frames from a video, a folder of videos or folders of still frames (one-off).
    #[command(
        after_help = "Example:\n  mimicit frames talk.mp4 --out frames/ --fps 1 --width 448 --height 448 --aspect pad\n  mimicit frames tvqa_frames/ --out frames/ --sequence-fps 3 --fps 1   # folders of .jpg frames"
    )]
    Frames(FramesArgs),
    /// CLIP embeddings of a folder of images.
    #[command(
        after_help = "Example:\n  mimicit embed photos/ --model clip-vit-base-patch32 --out emb.parquet"
    )]
    Embed(EmbedArgs),
    /// Re-hash every output listed in OUT/manifest.json.
    #[command(after_help = "Example:\n  mimicit verify out")]
    Verify(OutArgs),
    /// Remove the frames of the frame store that no table references (of OUT and its
    /// partition folders); JSON report on stdout.
    #[command(after_help = "Example:\n  mimicit gc out --dry-run\n  mimicit gc out")]
    Gc(GcArgs),
    /// Print the native stack this binary runs with (FFmpeg, libtorch, CUDA) as JSON.
    #[command(after_help = "Example:\n  mimicit doctor")]
    Doctor,
    /// Write OUT/report/index.html for a run (`run` does it as its last step).
    #[command(after_help = "Example:\n  mimicit report out\n  mimicit report out --sheets 20")]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Scenario TOML file (see scenarios/).
    pub scenario: PathBuf,
    /// Output folder.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Override a scenario key, e.g. --set source.root=/data/anet (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run even if the manifest says the stage is finished.
    #[arg(long)]
    pub force: bool,
    /// Only partition I of N of the units (by a hash of the unit id), into
    /// OUT/partitions/I-of-N; the whole-corpus stages wait for `mimicit merge`.
    #[arg(long, value_name = "I/N")]
    pub partition: Option<Partition>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Scenario TOML file: the one the partitions ran, with the same --set values.
    pub scenario: PathBuf,
    /// Output folder: the partitions' OUT (they are in OUT/partitions/).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Override a scenario key, as for the partitions (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run the whole-corpus stages even if the manifest says they are finished.
    #[arg(long)]
    pub force: bool,
    /// How many partitions the run was split into (default: the one split found in
    /// OUT/partitions/).
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DedupArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Decide and report on stdout (JSON) without writing or recording anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SyphusArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Count the requests to send, their prompt tokens and their cost (with
    /// syphus.price_per_1k_*), as JSON on stdout; send and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Only these stages (comma-separated), in pipeline order.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub stages: Vec<StageId>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Syphus answer files (valid_output.json or JSONL), added to pack.answers.
    #[arg(long, value_name = "FILE")]
    pub answers: Vec<PathBuf>,
    /// Output formats besides Otter's (images parquet, instructions, train): `wds` WebDataset
    /// tars, `hf` Hugging Face datasets parquet and card, `llava`, `sharegpt` (sets
    /// pack.formats to otter plus these).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<PackFormat>,
    /// Largest images parquet part in bytes, at most 2 GiB (pack.max_part_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_part_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PackFormat {
    /// The images parquet and instruction files Otter reads (always written by `--format`).
    #[value(alias = "otter")]
    Parquet,
    /// WebDataset tar shards.
    Wds,
    /// Hugging Face `datasets` parquet and dataset card.
    Hf,
    /// LLaVA conversation JSON with an images folder.
    Llava,
    /// LLaMA-Factory ShareGPT JSON, dataset_info.json and an images folder.
    Sharegpt,
}

#[derive(Debug, Args)]
pub struct FramesArgs {
    /// A video file, or a folder of videos and/or folders of pictures (image sequences).
    pub input: PathBuf,
    #[arg(long, short)]
    pub out: PathBuf,
    /// Frames per second, by timestamp.
    #[arg(long, group = "sampling")]
    pub fps: Option<f64>,
    /// The original converter's integer-stride rule at this rate.
    #[arg(long, group = "sampling", value_name = "FPS")]
    pub legacy_stride: Option<f64>,
    /// N evenly spaced frames.
    #[arg(long, group = "sampling", value_name = "N")]
    pub uniform: Option<u32>,
    /// Frames at these times in seconds (comma-separated).
    #[arg(long, group = "sampling", value_delimiter = ',', value_name = "T")]
    pub at: Vec<f64>,
    /// Only intra-coded frames.
    #[arg(long, group = "sampling")]
    pub keyframes_only: bool,
    /// The first frame of each shot (content-change detection).
    #[arg(long, group = "sampling")]
    pub scene_cuts: bool,
    /// Content change (0..=1) above which --scene-cuts starts a shot.
    #[arg(long, value_name = "X", requires = "scene_cuts")]
    pub scene_threshold: Option<f64>,
    /// Shortest shot for --scene-cuts, in seconds.
    #[arg(long, value_name = "S", requires = "scene_cuts")]
    pub min_shot: Option<f64>,
    #[arg(long, default_value_t = 224)]
    pub width: u32,
    #[arg(long, default_value_t = 224)]
    pub height: u32,
    /// Output size in one flag: N (N x N) or WxH, instead of --width and --height.
    #[arg(long, value_name = "N|WxH", value_parser = parse_size, conflicts_with_all = ["width", "height"])]
    pub size: Option<(u32, u32)>,
    #[arg(long, value_enum, default_value = "squash")]
    pub aspect: mimicit::config::Aspect,
    #[arg(long, value_enum, default_value = "png")]
    pub format: mimicit::config::ImageFormat,
    #[arg(long, default_value_t = 95)]
    pub quality: u8,
    /// PNG compression: default (zlib level 6), fast (fdeflate: several times faster, on
    /// photographs about a tenth larger) or best (zlib level 9).
    #[arg(long, value_enum, default_value = "default")]
    pub png_compression: mimicit::config::PngCompression,
    /// Decode a JPEG picture, or convert a video frame, at 1/2, 1/4 or 1/8 of its size when that
    /// is still at least X times the output size in both directions (much less work: 1080p video
    /// to 224x224 is converted at 960x540); 0 always works at full size.
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub reducing_gap: f64,
    /// Also write DIR/contact_sheets/{video}.png: the frames of each video in a grid, timed.
    #[arg(long)]
    pub contact_sheet: bool,
    /// Frame rate of image sequences: each folder that directly holds pictures (.jpg, .jpeg,
    /// .png) is one sequence, picture i (natural name order) at i / R seconds, sampled like a
    /// video (--keyframes-only keeps every picture; --scene-cuts reads every picture).
    #[arg(long, default_value_t = 3.0, value_name = "R")]
    pub sequence_fps: f64,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A folder of pictures (.jpg, .jpeg, .png, searched recursively); image_id = file stem.
    pub images: PathBuf,
    /// A Hugging Face CLIP folder (config.json + model.safetensors, e.g. a download of
    /// openai/clip-vit-base-patch32) or an OpenAI TorchScript .pt file.
    #[arg(long)]
    pub model: PathBuf,
    /// Output parquet (image_id, embedding); unreadable pictures go to FILE.rejects.parquet.
    #[arg(long, short)]
    pub out: PathBuf,
    /// auto (CUDA when libtorch sees a GPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: mimicit::features::DeviceSpec,
    /// Element type: auto is fp32 on CPU, fp16 on CUDA.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: mimicit::features::Precision,
    /// Pictures per model call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// L2-normalise the vectors.
    #[arg(long)]
    pub normalize: bool,
    /// Also write the vectors as a float32 FILE.npy (same row order as the parquet).
    #[arg(long)]
    pub npy: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's output folder.
    pub out: PathBuf,
    /// Units per scenario that get a contact sheet (the first ones by id).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub sheets: usize,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// A run's output folder.
    pub out: PathBuf,
    /// Count what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// A run's output folder.
    pub out: PathBuf,
}

/// Runs a parsed command and returns the process exit status.
pub fn execute(cli: Cli) -> Result<i32> {
    if let Some(n) = cli.global.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| Error::Invalid(format!("--threads {n}: {e}")))?;
    }
    let timeout = cli.global.item_timeout;
    if !(timeout.is_finite() && timeout >= 0.0) {
        return Err(Error::Usage(format!(
            "--item-timeout {timeout}: expected seconds >= 0"
        )));
    }
    mimicit::video::set_item_timeout(
        (timeout > 0.0).then(|| std::time::Duration::from_secs_f64(timeout)),
    );
    mimicit::lock::set_wait(if cli.global.no_wait {
        mimicit::lock::Wait::NoWait
    } else {
        mimicit::lock::Wait::Block
    });
    let progress = cli.global.progress;
    match cli.command {
        Command::Run(a) => {
            let stages = if a.stages.is_empty() {
                StageId::ALL.to_vec()
            } else {
                a.stages.clone()
            };
            let explicit = !a.stages.is_empty();
            // One writer at a time, from the first stage to the report.
            let _lock = lock_run_folder(&a.stage.out, a.stage.partition)?;
            let status = run_stages(&a.stage, stages, explicit, progress, &[])?;
            // A partition is not a run to report on: `merge` reports on the whole.
            if a.stage.partition.is_none() {
                report(&a.stage.out, &mimicit::report::ReportOptions::default())?;
            }
            Ok(status)
        }
        Command::Merge(a) => merge(a, progress),
        Command::Scan(a) => run_stages(&a, vec![StageId::Scan], true, progress, &[]),
        Command::Keyframes(a) => run_stages(&a, vec![StageId::Keyframes], true, progress, &[]),
        Command::Dedup(DedupArgs { stage: a, dry_run }) => {
            if a.partition.is_some() && (dry_run || a.scenario.is_dir()) {
                eprintln!(
                    "mimicit: --partition splits a scenario run; `dedup --dry-run` and `dedup DIR` \
                     read one folder: point --out at OUT/partitions/I-of-N to look at a partition"
                );
                return Ok(EXIT_USAGE);
            }
            if dry_run && !a.scenario.is_dir() {
                return dedup_dry_run(&a, progress);
            }
            if a.scenario.is_dir() {
                // Ad-hoc: every picture under DIR, near matching across the folder; `--set
                // dedup.KEY=VALUE` changes the [dedup] settings (max_hamming, keep, ...).
                let cfg = mimicit::config::folder_dedup_config(&a.set)?;
                let found = mimicit::dedup::dedup_folder(&a.scenario, &cfg)?;
                mimicit::tables::write_dedup(&a.out, &found.rows)?;
                for r in &found.rejects {
                    // The error names the file.
                    eprintln!("dedup: {}", r.error);
                }
                eprintln!(
                    "dedup: {} duplicates among {} pictures written to {}, {} unreadable",
                    found.rows.len(),
                    found.images,
                    a.out.display(),
                    found.rejects.len()
                );
                return Ok(if found.rejects.is_empty() {
                    EXIT_OK
                } else {
                    EXIT_REJECTS
                });
            }
            run_stages(&a, vec![StageId::Dedup], true, progress, &[])
        }
        Command::Features(a) => run_stages(&a, vec![StageId::Features], true, progress, &[]),
        Command::Metadata(a) => run_stages(&a, vec![StageId::Metadata], true, progress, &[]),
        Command::Syphus(SyphusArgs { stage: a, dry_run }) => {
            if dry_run {
                return syphus_dry_run(&a, progress);
            }
            run_stages(&a, vec![StageId::Syphus], true, progress, &[])
        }
        Command::Pack(mut a) => {
            if !a.format.is_empty() {
                let mut names = vec!["otter"];
                for f in &a.format {
                    let name = match f {
                        PackFormat::Parquet => "otter",
                        PackFormat::Wds => "wds",
                        PackFormat::Hf => "hf",
                        PackFormat::Llava => "llava",
                        PackFormat::Sharegpt => "sharegpt",
                    };
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                a.stage
                    .set
                    .push(format!("pack.formats=[{}]", list.join(", ")));
            }
            if let Some(n) = a.max_part_bytes {
                a.stage.set.push(format!("pack.max_part_bytes={n}"));
            }
            run_stages(&a.stage, vec![StageId::Pack], true, progress, &a.answers)
        }
        Command::Frames(a) => frames(&a),
        Command::Embed(a) => embed(&a, progress),
        Command::Verify(a) => {
            let report = mimicit::verify::verify(&a.out)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("serialisable")
            );
            for w in &report.warnings {
                eprintln!("verify: warning: {}: {}", w.path, w.warning);
            }
            if report.ok {
                eprintln!(
                    "verify: {} files, {} bytes: all match",
                    report.files, report.bytes
                );
                Ok(EXIT_OK)
            } else {
                for p in &report.problems {
                    eprintln!("verify: {}: {}", p.path, p.problem);
                }
                Ok(EXIT_ERROR)
            }
        }
        Command::Gc(a) => {
            let report = mimicit::gc::gc(&a.out, a.dry_run)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("serialisable")
            );
            for s in &report.stores {
                if let Some(why) = &s.skipped {
                    eprintln!("gc: {}: left alone: {why}", s.path);
                }
            }
            eprintln!(
                "gc: {} {} unreferenced frames ({} bytes), {} referenced frames kept",
                if a.dry_run { "would remove" } else { "removed" },
                report.removed,
                report.bytes,
                report.kept
            );
            Ok(EXIT_OK)
        }
        Command::Report(a) => {
            let opts = mimicit::report::ReportOptions {
                sheets: a.sheets,
                ..Default::default()
            };
            let index = report(&a.out, &opts)?;
            println!("{}", index.display());
            Ok(EXIT_OK)
        }
        Command::Doctor => {
            let (avcodec, avformat, avutil) = mimicit::video::library_versions();
            let report = serde_json::json!({
                "mimicit": env!("CARGO_PKG_VERSION"),
                "ffmpeg": {"avcodec": avcodec, "avformat": avformat, "avutil": avutil},
                "torch": mimicit::features::torch_report(),
                "threads": rayon::current_num_threads(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("serialisable")
            );
            Ok(EXIT_OK)
        }
    }
}

fn frames(a: &FramesArgs) -> Result<i32> {
    use mimicit::video::Sampling;
    let sampling = if let Some(r) = a.fps {
        Sampling::Fps(r)
    } else if let Some(r) = a.legacy_stride {
        Sampling::LegacyStride(r)
    } else if let Some(n) = a.uniform {
        Sampling::Uniform(n)
    } else if !a.at.is_empty() {
        Sampling::At(a.at.clone())
    } else if a.keyframes_only {
        Sampling::KeyframesOnly
    } else if a.scene_cuts {
        let defaults = mimicit::config::KeyframesConfig::default();
        let threshold = a.scene_threshold.unwrap_or(defaults.scene_threshold);
        let min_shot_s = a.min_shot.unwrap_or(defaults.min_shot);
        if !(0.0..=1.0).contains(&threshold) || !min_shot_s.is_finite() || min_shot_s < 0.0 {
            return Err(Error::Usage(
                "--scene-threshold takes a number in [0, 1], --min-shot seconds >= 0".into(),
            ));
        }
        Sampling::SceneCuts {
            threshold,
            min_shot_s,
        }
    } else {
        Sampling::Fps(1.0)
    };
    let rate_ok = |r: f64| r.is_finite() && r > 0.0;
    if matches!(sampling, Sampling::Fps(r) | Sampling::LegacyStride(r) if !rate_ok(r))
        || matches!(sampling, Sampling::Uniform(0))
    {
        return Err(Error::Usage(
            "--fps, --legacy-stride and --uniform take a number above 0".into(),
        ));
    }
    if !rate_ok(a.sequence_fps) {
        return Err(Error::Usage("--sequence-fps takes a number above 0".into()));
    }
    let (width, height) = a.size.unwrap_or((a.width, a.height));
    if width == 0 || height == 0 || !(1..=100).contains(&a.quality) {
        return Err(Error::Usage(
            "--width, --height and --size must be at least 1, --quality between 1 and 100".into(),
        ));
    }
    if !mimicit::imaging::valid_reducing_gap(a.reducing_gap) {
        return Err(Error::Usage(
            "--reducing-gap takes 0 (off) or a number of at least 1".into(),
        ));
    }
    let image = mimicit::config::ImageConfig {
        width,
        height,
        aspect: a.aspect,
        format: a.format,
        quality: a.quality,
        png_compression: a.png_compression,
        reducing_gap: a.reducing_gap,
        ..Default::default()
    };
    let summary = mimicit::frames::extract(&mimicit::frames::FramesRequest {
        input: a.input.clone(),
        out: a.out.clone(),
        sampling,
        image,
        sequence_fps: a.sequence_fps,
    })?;
    for r in &summary.rejects {
        if r.error.contains(&r.path) {
            eprintln!("frames: {}", r.error);
        } else {
            eprintln!("frames: {}: {}", r.path, r.error);
        }
    }
    if a.contact_sheet {
        let sheets = mimicit::report::sheet::write_frames_dir_sheets(&a.out)?;
        eprintln!(
            "frames: {} contact sheets in {}",
            sheets.len(),
            a.out.join("contact_sheets").display()
        );
    }
    let sequences = if summary.sequences > 0 {
        format!(" and {} image sequences", summary.sequences)
    } else {
        String::new()
    };
    eprintln!(
        "frames: {} frames from {} videos{sequences} into {}, {} rejected",
        summary.frames,
        summary.videos,
        a.out.display(),
        summary.rejects.len()
    );
    Ok(if summary.rejects.is_empty() {
        EXIT_OK
    } else {
        EXIT_REJECTS
    })
}

/// `mimicit embed DIR --model M --out FILE.parquet`.
fn embed(a: &EmbedArgs, progress: ProgressMode) -> Result<i32> {
    use mimicit::features::{EmbedItem, EmbedOptions, Embedder};
    if a.batch == 0 {
        return Err(Error::Usage("--batch must be at least 1".into()));
    }
    if !a.images.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: not a folder of pictures",
            a.images.display()
        )));
    }
    let items: Vec<EmbedItem> = mimicit::imaging::folder_images(&a.images)?
        .into_iter()
        .map(|(id, path)| EmbedItem { id, path })
        .collect();
    let embedder = Embedder::load(&a.model, a.device, a.precision)?;
    eprintln!("embed: {}", embedder.description);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&x, &y| items[x].id.cmp(&items[y].id));
    let items: Vec<EmbedItem> = order.into_iter().map(|i| items[i].clone()).collect();
    let mut ids = Vec::new();
    let mut vectors = Vec::new();
    let bar = mimicit::progress::Progress::new(progress, "embed", items.len() as u64);
    let failed = mimicit::features::embed_items(
        &embedder,
        &items,
        EmbedOptions {
            batch: a.batch,
            normalize: a.normalize,
        },
        |i, v| {
            ids.extend_from_slice(i);
            vectors.extend_from_slice(v);
            Ok(())
        },
        |n| bar.inc(n),
    )?;
    bar.finish();
    mimicit::tables::write_features(&a.out, &ids, embedder.dim(), &vectors)?;
    let stem = a.out.with_extension("");
    if a.npy {
        mimicit::atomic::write(
            &stem.with_extension("npy"),
            &mimicit::features::npy_f32(ids.len(), embedder.dim(), &vectors),
        )?;
    }
    let rejects: Vec<mimicit::model::Reject> = mimicit::features::as_rejects(failed, "embed");
    let rejects_path = PathBuf::from(format!("{}.rejects.parquet", stem.display()));
    mimicit::tables::write_rejects(&rejects_path, &rejects)?;
    for r in &rejects {
        eprintln!("embed: {}: {}", r.path, r.error);
    }
    eprintln!(
        "embed: {} pictures -> {} ({} values each), {} rejected",
        ids.len(),
        a.out.display(),
        embedder.dim(),
        rejects.len()
    );
    Ok(if rejects.is_empty() {
        EXIT_OK
    } else {
        EXIT_REJECTS
    })
}

/// `mimicit dedup SCENARIO --out OUT --dry-run`: the decisions over the frames the keyframes
/// stage stored, as JSON on stdout; nothing is written and the manifest is left as it is.
/// `mimicit syphus --dry-run`: what the stage would send, as JSON on stdout.
fn syphus_dry_run(a: &StageArgs, progress: ProgressMode) -> Result<i32> {
    let scenario = Scenario::load(&a.scenario, &a.set)?;
    if let Some(why) = StageId::Syphus.stage().off_reason(&scenario) {
        return Err(Error::Usage(format!("syphus --dry-run: {why}")));
    }
    let out = std::fs::canonicalize(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let ctx = mimicit::stages::StageContext {
        scenario: &scenario,
        out: &out,
        dir: out.join(scenario.code.as_str()),
        progress,
        config_hash: String::new(),
        partition: None,
    };
    let dry = mimicit::stages::syphus::dry_run(&ctx)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&dry).expect("serialisable")
    );
    Ok(EXIT_OK)
}

fn dedup_dry_run(a: &StageArgs, progress: ProgressMode) -> Result<i32> {
    let scenario = Scenario::load(&a.scenario, &a.set)?;
    let out = std::fs::canonicalize(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let dir = out.join(scenario.code.as_str());
    if !dir.join("frames.parquet").is_file() {
        return Err(Error::Invalid(format!(
            "{}: no frames.parquet: run `mimicit keyframes` first",
            dir.display()
        )));
    }
    let ctx = mimicit::stages::StageContext {
        scenario: &scenario,
        out: &out,
        dir,
        progress,
        config_hash: String::new(),
        partition: None,
    };
    let (rows, rejects, frames) = mimicit::stages::dedup::decide(&ctx)?;
    let by_method = |m: mimicit::dedup::Method| rows.iter().filter(|r| r.method == m).count();
    let report = serde_json::json!({
        "frames": frames,
        "kept": frames - rows.len(),
        "dropped": rows.len(),
        "exact": by_method(mimicit::dedup::Method::Exact),
        "phash": by_method(mimicit::dedup::Method::Phash),
        "semantic": by_method(mimicit::dedup::Method::Semantic),
        "unreadable": rejects.len(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "dropped_id": r.dropped_id, "kept_id": r.kept_id,
            "method": r.method.as_str(), "distance": r.distance,
        })).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("serialisable")
    );
    Ok(EXIT_OK)
}

/// Writes `OUT/report/`, says where on stderr, and returns the page's path.
fn report(out: &std::path::Path, opts: &mimicit::report::ReportOptions) -> Result<PathBuf> {
    let summary = mimicit::report::write(out, opts)?;
    for n in &summary.notes {
        eprintln!("report: {n}");
    }
    eprintln!(
        "report: {} ({} files)",
        summary.index.display(),
        summary.files
    );
    Ok(summary.index)
}

/// `mimicit merge SCENARIO --out OUT [--partitions N]`: every stage, the ones the partitions
/// ran joined from their folders; then the report, as `run` writes it.
fn merge(a: MergeArgs, progress: ProgressMode) -> Result<i32> {
    // OUT, then every partition folder (a partition still running is waited for), in order.
    let _out_lock = mimicit::lock::acquire_here(&a.out)?;
    let partitions = mimicit::partition::discover(&a.out, a.partitions)?;
    let _partition_locks = partitions
        .iter()
        .map(|p| mimicit::lock::acquire_here(&p.dir(&a.out)))
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "merge: {} partitions from {}",
        partitions.len(),
        a.out.join(mimicit::partition::DIR).display()
    );
    let stage = StageArgs {
        scenario: a.scenario,
        out: a.out,
        set: a.set,
        force: a.force,
        partition: None,
    };
    let status = run_stages_in(
        &stage,
        StageId::ALL.to_vec(),
        false,
        progress,
        &[],
        Scope::Merge(partitions),
    )?;
    report(&stage.out, &mimicit::report::ReportOptions::default())?;
    Ok(status)
}

fn run_stages(
    a: &StageArgs,
    stages: Vec<StageId>,
    explicit: bool,
    progress: ProgressMode,
    answers: &[PathBuf],
) -> Result<i32> {
    run_stages_in(a, stages, explicit, progress, answers, Scope::Whole)
}

fn run_stages_in(
    a: &StageArgs,
    stages: Vec<StageId>,
    explicit: bool,
    progress: ProgressMode,
    answers: &[PathBuf],
    scope: Scope,
) -> Result<i32> {
    let mut sets = a.set.clone();
    if !answers.is_empty() {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let list: Vec<String> = answers
            .iter()
            .map(|p| {
                let p = if p.is_absolute() {
                    p.clone()
                } else {
                    cwd.join(p)
                };
                toml::Value::String(p.to_string_lossy().into_owned()).to_string()
            })
            .collect();
        sets.push(format!("pack.answers=[{}]", list.join(", ")));
    }
    let scenario = Scenario::load(&a.scenario, &sets)?;
    let scope = match a.partition {
        Some(p) => {
            if explicit {
                if let Some(s) = stages
                    .iter()
                    .map(|s| s.stage())
                    .find(|s| s.placement(&scenario) == Placement::Merge)
                {
                    let why = s.merge_only_reason(&scenario);
                    eprintln!("mimicit: --partition {p}: {why}");
                    return Ok(EXIT_USAGE);
                }
            }
            Scope::Partition(p)
        }
        None => scope,
    };
    // Bad usage is refused above before anything is created; only then the folder is locked.
    let _lock = lock_run_folder(&a.out, a.partition)?;
    let opts = RunOptions {
        stages,
        explicit,
        force: a.force,
        progress,
        scope,
    };
    let summary = pipeline::run(&scenario, &a.out, &opts)?;
    eprint!(
        "{}",
        pipeline::format_summary(scenario.code.as_str(), &summary)
    );
    Ok(if summary.rejected() > 0 {
        EXIT_REJECTS
    } else {
        EXIT_OK
    })
}

/// The writer's lock of `OUT`, or of `OUT/partitions/I-of-N` for a partition (see
/// [`mimicit::lock`]).
fn lock_run_folder(
    out: &std::path::Path,
    partition: Option<Partition>,
) -> Result<mimicit::lock::Lock> {
    match partition {
        Some(p) => mimicit::lock::acquire_here(&p.dir(out)),
        None => mimicit::lock::acquire_here(out),
    }
}

/// What the binary prints for an error: `mimicit: {error}`. Every error of the library names
/// its cause in its own message (an I/O error after the file's path), so the `source()` chain
/// is not printed again.
pub fn error_text(err: &Error) -> String {
    format!("mimicit: {err}")
}

/// Maps an error to its exit status.
pub fn exit_code(err: &Error) -> i32 {
    match err {
        Error::NotBuilt { .. } | Error::Usage(_) => EXIT_USAGE,
        _ => EXIT_ERROR,
    }
}

/// `--size`: `N` for N x N, or `WxH`.
fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let number = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not N or WxH (for example 224 or 448x224)"))
    };
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((number(w)?, number(h)?)),
        None => {
            let n = number(s)?;
            Ok((n, n))
        }
    }
}
