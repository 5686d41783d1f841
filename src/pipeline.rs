//! Runs the stages of one scenario in order, skipping what the manifest says is finished with
//! the same settings and inputs, recording rejects, and summing up.
//!
//! Stage kinds: each stage is a function from a [`StageContext`] to a [`StageOutput`]. The
//! pipeline, not the stage, owns the manifest, the rejects file and the timing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::{self, Counts, Manifest, StageEntry};
use crate::model::Reject;
use crate::partition::Partition;
use crate::progress::ProgressMode;
use crate::stages;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    Scan,
    Keyframes,
    Dedup,
    Features,
    Metadata,
    Pack,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Scan,
        Stage::Keyframes,
        Stage::Dedup,
        Stage::Features,
        Stage::Metadata,
        Stage::Pack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Scan => "scan",
            Stage::Keyframes => "keyframes",
            Stage::Dedup => "dedup",
            Stage::Features => "features",
            Stage::Metadata => "metadata",
            Stage::Pack => "pack",
        }
    }

    /// The config sections whose values change this stage's output.
    fn sections(self) -> &'static [&'static str] {
        match self {
            Stage::Scan => &["source", "corpus", "metadata"],
            Stage::Keyframes => &["keyframes", "image"],
            Stage::Dedup => &["dedup"],
            Stage::Features => &["features"],
            Stage::Metadata => &["metadata"],
            Stage::Pack => &["pack"],
        }
    }

    /// The stages whose output this one reads (it must be finished first).
    fn needs(self) -> &'static [Stage] {
        match self {
            Stage::Scan => &[],
            Stage::Keyframes => &[Stage::Scan],
            Stage::Dedup | Stage::Features => &[Stage::Keyframes],
            Stage::Metadata => &[Stage::Scan, Stage::Keyframes],
            Stage::Pack => &[Stage::Scan, Stage::Keyframes],
        }
    }

    /// Whether this version of mimicit implements the stage.
    pub fn is_built(self) -> bool {
        stages::is_built(self)
    }
}

/// What a stage gets to work with.
pub struct StageContext<'a> {
    pub scenario: &'a Scenario,
    /// The run's output folder (`OUT`).
    pub out: &'a Path,
    /// This scenario's folder, `OUT/{CODE}`.
    pub dir: PathBuf,
    pub progress: ProgressMode,
    /// Hash of this stage's settings and inputs, for per-item journals: an entry made with
    /// other settings or from other inputs never counts as finished work.
    pub config_hash: String,
    /// The partition this run covers, when the corpus is split (`--partition i/N`).
    pub partition: Option<Partition>,
}

/// What a stage produced.
#[derive(Debug, Default)]
pub struct StageOutput {
    pub counts: Counts,
    /// Every file written, absolute; recorded in the manifest (the rejects file is added by the
    /// pipeline).
    pub outputs: Vec<PathBuf>,
    pub rejects: Vec<Reject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ran,
    UpToDate,
    NotBuilt,
    Off,
}

#[derive(Debug, Clone)]
pub struct StageSummary {
    pub stage: Stage,
    pub status: Status,
    pub counts: Counts,
    pub wall_s: f64,
    /// CPU seconds (all threads) while the stage ran, when the system tells.
    pub cpu_s: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub stages: Vec<StageSummary>,
}

impl RunSummary {
    pub fn rejected(&self) -> u64 {
        self.stages.iter().map(|s| s.counts.rejected).sum()
    }
}

pub struct RunOptions {
    pub stages: Vec<Stage>,
    /// Stages named explicitly by the user: asking for one that is not built is an error.
    pub explicit: bool,
    /// Run even when the manifest says the stage is finished.
    pub force: bool,
    pub progress: ProgressMode,
    pub scope: Scope,
}

/// Which part of the corpus a run covers (see [`crate::partition`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every unit, every stage, in `OUT`.
    #[default]
    Whole,
    /// The units of one partition and the stages that work unit by unit, in
    /// `OUT/partitions/{i}-of-{N}`.
    Partition(Partition),
    /// Every unit, in `OUT`, taking the output of the stages the partitions ran from their
    /// folders (`mimicit merge`) and running the others.
    Merge(Vec<Partition>),
}

pub fn run(scenario: &Scenario, out: &Path, opts: &RunOptions) -> Result<RunSummary> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let base = std::fs::canonicalize(out).map_err(|e| Error::io(out, e))?;
    let (out, partition) = match &opts.scope {
        Scope::Partition(p) => {
            let dir = p.dir(&base);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            (dir, Some(*p))
        }
        _ => (base.clone(), None),
    };
    let merge_from: Vec<PathBuf> = match &opts.scope {
        Scope::Merge(parts) => parts.iter().map(|p| p.dir(&base)).collect(),
        _ => Vec::new(),
    };
    let code = scenario.code.as_str();
    let dir = out.join(code);
    // Leftovers of a run that was killed while writing: never outputs, and a finished run has
    // none, so a resumed run must not keep them either.
    crate::atomic::clean_temps(&out)?;
    crate::atomic::clean_temps_recursive(&dir)?;
    let mut manifest = Manifest::load(&out)?;
    let mut summary = RunSummary::default();
    let mut stages = opts.stages.clone();
    stages.sort();
    stages.dedup();
    for stage in stages {
        if !stage.is_built() {
            if opts.explicit {
                return Err(Error::NotBuilt {
                    what: format!("the {} stage", stage.name()),
                });
            }
            summary.stages.push(StageSummary {
                stage,
                status: Status::NotBuilt,
                counts: Counts::default(),
                wall_s: 0.0,
                cpu_s: None,
                note: "not built yet".into(),
            });
            continue;
        }
        if let Some(reason) = stages::off_reason(stage, scenario) {
            summary.stages.push(StageSummary {
                stage,
                status: Status::Off,
                counts: Counts::default(),
                wall_s: 0.0,
                cpu_s: None,
                note: reason,
            });
            continue;
        }
        if partition.is_some() {
            if let Some(reason) = crate::partition::off_reason(stage, scenario) {
                // A stale entry of an earlier whole run must not feed the later stages.
                manifest.clear_stage(code, stage.name());
                manifest.save(&out)?;
                summary.stages.push(StageSummary {
                    stage,
                    status: Status::Off,
                    counts: Counts::default(),
                    wall_s: 0.0,
                    cpu_s: None,
                    note: reason,
                });
                continue;
            }
        }
        for need in stage.needs() {
            if manifest.stage(code, need.name()).is_none() {
                return Err(Error::Invalid(format!(
                    "stage {} needs the output of stage {}, which has not run in {}: run `mimicit {}` first, or `mimicit run`",
                    stage.name(),
                    need.name(),
                    out.display(),
                    need.name()
                )));
            }
        }
        let config_hash = manifest::hash_str(&format!(
            "{} {}",
            env!("CARGO_PKG_VERSION"),
            scenario.sections_json(stage.sections())
        ));
        let input_hash = input_hash(stage, scenario, &manifest)?;
        // Merging: the stages the partitions ran are always joined anew from their folders (the
        // partitions may have changed since the last merge).
        let sources = if merge_from.is_empty() {
            None
        } else {
            crate::merge::sources(stage, scenario, &merge_from, &config_hash, &input_hash)?
        };
        if let (None, Some(done)) = (&sources, manifest.stage(code, stage.name())) {
            if !opts.force
                && done.config_hash == config_hash
                && done.input_hash == input_hash
                && done.outputs_present(&out)
            {
                summary.stages.push(StageSummary {
                    stage,
                    status: Status::UpToDate,
                    counts: done.counts,
                    wall_s: 0.0,
                    cpu_s: None,
                    note: "up to date".into(),
                });
                continue;
            }
        }
        crate::faults::enter_stage(Some(stage.name()));
        // Whatever ran after this stage was built on the old output.
        for later in Stage::ALL.iter().filter(|s| **s > stage) {
            manifest.clear_stage(code, later.name());
        }
        manifest.clear_stage(code, stage.name());
        manifest.save(&out)?;

        let started = Instant::now();
        let cpu_started = crate::cpu_time::process_cpu_s();
        let ctx = StageContext {
            scenario,
            out: &out,
            dir: dir.clone(),
            progress: opts.progress,
            config_hash: manifest::hash_str(&format!("{config_hash} {input_hash}")),
            partition,
        };
        let mut output = match &sources {
            Some(dirs) => crate::merge::combine(stage, &ctx, dirs)?,
            None => stages::run(stage, &ctx)?,
        };
        for r in &output.rejects {
            tracing::warn!("{}: {} ({}): {}", r.stage, r.item, r.path, r.error);
        }
        output.counts.rejected = output.rejects.len() as u64;
        let rejects_path = dir
            .join("rejects")
            .join(format!("{}.parquet", stage.name()));
        crate::tables::write_rejects(&rejects_path, &output.rejects)?;
        output.outputs.push(rejects_path);
        let entry = StageEntry {
            config_hash,
            input_hash,
            counts: output.counts,
            outputs: manifest::describe(&out, &output.outputs)?,
        };
        manifest.set_stage(code, &scenario.name, stage.name(), entry);
        manifest.save(&out)?;
        summary.stages.push(StageSummary {
            stage,
            status: Status::Ran,
            counts: output.counts,
            wall_s: started.elapsed().as_secs_f64(),
            cpu_s: cpu_started
                .zip(crate::cpu_time::process_cpu_s())
                .map(|(a, b)| (b - a).max(0.0)),
            note: String::new(),
        });
    }
    crate::faults::enter_stage(None);
    write_timings(&dir, &summary)?;
    if manifest
        .scenarios
        .values()
        .any(|s| s.stages.contains_key("pack"))
    {
        stages::pack::write_data_yaml(&out, &manifest)?;
    }
    Ok(summary)
}

fn input_hash(stage: Stage, scenario: &Scenario, manifest: &Manifest) -> Result<String> {
    if stage == Stage::Scan {
        return crate::corpus::fingerprint(scenario);
    }
    let mut h = blake3::Hasher::new();
    let semantic = stage == Stage::Dedup && scenario.config.dedup.semantic;
    if stage == Stage::Features || semantic {
        if semantic {
            h.update(format!("precision {}\n", scenario.config.features.precision).as_bytes());
        }
        if let Some(model) = &scenario.model {
            // The weights, not only the path, decide the vectors.
            h.update(format!("model {}\n", crate::features::model_fingerprint(model)?).as_bytes());
        }
    }
    if stage == Stage::Pack {
        for a in &scenario.answers {
            let (n, hash) = manifest::hash_file(a)?;
            h.update(format!("answers {n} {hash}\n").as_bytes());
        }
    }
    // Every earlier stage that has run feeds the later ones (dedup remaps frames, features are
    // packed), so all earlier outputs count, not only the required ones.
    for earlier in Stage::ALL.iter().filter(|s| **s < stage) {
        if let Some(e) = manifest.stage(scenario.code.as_str(), earlier.name()) {
            h.update(format!("{} {}\n", earlier.name(), e.outputs_hash()).as_bytes());
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

/// `OUT/{CODE}/timings.json`: wall and CPU time per stage of the last run. It is the one file
/// that differs between identical runs, so it is not listed in the manifest.
fn write_timings(dir: &Path, summary: &RunSummary) -> Result<()> {
    let path = dir.join("timings.json");
    // What the previous run measured, by stage: an up-to-date stage keeps it as `last_ran`.
    let previous: Vec<serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["stages"].as_array().cloned())
        .unwrap_or_default();
    let last_ran = |stage: &str| -> Option<serde_json::Value> {
        let p = previous.iter().find(|p| p["stage"] == stage)?;
        if p["status"] == "ran" {
            let mut m = serde_json::json!({"wall_s": p["wall_s"].as_f64()?});
            if let Some(cpu) = p["cpu_s"].as_f64() {
                m["cpu_s"] = cpu.into();
            }
            Some(m)
        } else {
            p.get("last_ran")
                .filter(|m| m["wall_s"].is_number())
                .cloned()
        }
    };
    let stages: Vec<_> = summary
        .stages
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "stage": s.stage.name(),
                "status": status_name(s.status),
                "wall_s": (s.wall_s * 1000.0).round() / 1000.0,
                "ok": s.counts.ok,
                "rejected": s.counts.rejected,
                "skipped": s.counts.skipped,
            });
            if let Some(cpu) = s.cpu_s {
                v["cpu_s"] = serde_json::json!((cpu * 1000.0).round() / 1000.0);
            }
            if s.status == Status::UpToDate {
                if let Some(m) = last_ran(s.stage.name()) {
                    v["last_ran"] = m;
                }
            }
            v
        })
        .collect();
    crate::atomic::write_json(&path, &serde_json::json!({"stages": stages}))
}

pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ran => "ran",
        Status::UpToDate => "up-to-date",
        Status::NotBuilt => "not-built",
        Status::Off => "off",
    }
}

/// The run summary for stderr: one line per stage.
pub fn format_summary(code: &str, summary: &RunSummary) -> String {
    let mut s = format!(
        "{code}: {:<10} {:>8} {:>9} {:>8} {:>9}  {}\n",
        "stage", "ok", "rejected", "skipped", "time", "status"
    );
    for st in &summary.stages {
        s.push_str(&format!(
            "{code}: {:<10} {:>8} {:>9} {:>8} {:>8.2}s  {}{}\n",
            st.stage.name(),
            st.counts.ok,
            st.counts.rejected,
            st.counts.skipped,
            st.wall_s,
            status_name(st.status),
            if st.note.is_empty() || matches!(st.status, Status::UpToDate | Status::NotBuilt) {
                String::new()
            } else {
                format!(" ({})", st.note)
            }
        ));
    }
    s
}
