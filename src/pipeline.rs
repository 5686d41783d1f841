//! Runs the stages of one scenario in order, skipping what the manifest says is finished with
//! the same settings and inputs, recording rejects, and summing up.
//!
//! The stages are the registry's ([`StageId`]), each an implementation of [`Stage`] that owns
//! its facts; the pipeline names none of them. It owns the manifest, the rejects file, the
//! timing, and the decision to skip or run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::{self, Counts, Manifest, StageEntry};
use crate::model::Reject;
use crate::partition::{Partition, Placement};
use crate::progress::ProgressMode;
use crate::stages::{StageContext, StageId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ran,
    UpToDate,
    NotBuilt,
    Off,
}

#[derive(Debug, Clone)]
pub struct StageSummary {
    pub stage: StageId,
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
    /// Records a stage that did not run (not built, off, or left to `merge`) and why.
    fn not_run(&mut self, stage: StageId, status: Status, note: String) {
        self.stages.push(StageSummary {
            stage,
            status,
            counts: Counts::default(),
            wall_s: 0.0,
            cpu_s: None,
            note,
        });
    }

    pub fn rejected(&self) -> u64 {
        self.stages.iter().map(|s| s.counts.rejected).sum()
    }
}

pub struct RunOptions {
    pub stages: Vec<StageId>,
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
    // One writer per run folder (a no-op when the command line already holds it).
    let _lock = crate::lock::acquire_here(&out)?;
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
    for id in stages {
        let stage = id.stage();
        if !stage.is_built() {
            if opts.explicit {
                return Err(Error::NotBuilt {
                    what: format!("the {} stage", stage.name()),
                });
            }
            summary.not_run(id, Status::NotBuilt, "not built yet".into());
            continue;
        }
        if let Some(reason) = stage.off_reason(scenario) {
            summary.not_run(id, Status::Off, reason);
            continue;
        }
        if partition.is_some() && stage.placement(scenario) == Placement::Merge {
            // A stale entry of an earlier whole run must not feed the later stages.
            manifest.clear_stage(code, stage.name());
            manifest.save(&out)?;
            summary.not_run(id, Status::Off, stage.merge_only_reason(scenario));
            continue;
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
        let input_hash = stage.input_hash(scenario, &manifest)?;
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
                    stage: id,
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
        for later in StageId::ALL.iter().filter(|s| **s > id) {
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
            None => stage.run(&ctx)?,
        };
        let roots = RejectRoots::new(scenario, &out);
        for r in &mut output.rejects {
            roots.relativise(r);
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
            stage: id,
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
    for id in StageId::ALL {
        id.stage().after_run(&out, &manifest)?;
    }
    Ok(summary)
}

/// Where a corpus and a run folder are, so that rejects name files relative to them: a reject's
/// `path` and the paths in its `error` under the corpus root become relative to the root, those
/// under `OUT` (or the partition folder) relative to it. Rejects then do not depend on where a
/// corpus is mounted or a run folder lives, and a merge's equal a single run's.
pub struct RejectRoots {
    /// (prefix with a trailing `/`), longest first: a run folder inside the corpus root is
    /// matched as the run folder.
    prefixes: Vec<String>,
}

impl RejectRoots {
    pub fn new(scenario: &Scenario, out: &Path) -> RejectRoots {
        let mut prefixes = Vec::new();
        for p in [scenario.root.as_path(), out] {
            let mut forms = vec![p.to_path_buf()];
            if let Ok(c) = std::fs::canonicalize(p) {
                forms.push(c);
            }
            for f in forms {
                let s = f.to_string_lossy().trim_end_matches('/').to_string();
                if !s.is_empty() {
                    prefixes.push(format!("{s}/"));
                }
            }
        }
        prefixes.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        prefixes.dedup();
        RejectRoots { prefixes }
    }

    /// Rewrites `r.path` and the paths in `r.error` relative to the corpus root or `OUT`.
    pub fn relativise(&self, r: &mut Reject) {
        r.path = self.rewrite(&r.path);
        r.error = self.rewrite(&r.error);
    }

    fn rewrite(&self, text: &str) -> String {
        let mut text = text.to_string();
        for p in &self.prefixes {
            if text.contains(p.as_str()) {
                text = text.replace(p.as_str(), "");
            }
        }
        text
    }
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
