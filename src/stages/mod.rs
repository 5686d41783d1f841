//! The stages, one file each, and everything the orchestration needs to know about them: the
//! [`Stage`] trait and the registry [`StageId`], which lists them in run order. A stage's file
//! owns all of its facts (name, the settings sections it reads, the stages it needs, where it
//! runs in a split corpus and why not, what its input hash is made of, its run, the join of its
//! partitions' outputs, what it does after a run); [`crate::pipeline`], [`crate::partition`]
//! and [`crate::merge`] iterate over the registry and name none of them.
//!
//! | stage | file | reads | writes (under `OUT/{CODE}/`) |
//! |---|---|---|---|
//! | scan | [`scan`] | the corpus | `units.parquet`, `media.parquet`, `annotations.parquet` |
//! | keyframes | [`keyframes`] | units | `frames/`, `frames.parquet` |
//! | dedup | [`dedup`] | frames | `dedup.parquet` |
//! | features | [`features`] | kept frames, the CLIP model | `features/`, `pairs.parquet` |
//! | metadata | [`metadata`] | units, frames | `syphus/{CODE}_query.json`, the native file |
//! | syphus | [`syphus`] | the query file, an LLM endpoint | `syphus/{CODE}_answers.json` |
//! | pack | [`pack`] | units, frames, answers | parquet, instructions, train, other formats; `OUT/data.yaml` |
//!
//! A new stage is one file with one `impl Stage` and one line in [`StageId`].

use std::path::{Path, PathBuf};

use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::{Counts, Manifest};
use crate::model::Reject;
use crate::partition::{Partition, Placement};
use crate::progress::ProgressMode;

pub mod dedup;
pub mod features;
pub mod join;
pub mod keyframes;
pub mod metadata;
pub mod pack;
pub mod scan;
pub mod syphus;

/// Every stage, in run order: the registry. Its order is the pipeline's order; its names are
/// the command names (`mimicit scan`, ...) and the manifest's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum StageId {
    Scan,
    Keyframes,
    Dedup,
    Features,
    Metadata,
    Syphus,
    Pack,
}

impl StageId {
    pub const ALL: [StageId; 7] = [
        StageId::Scan,
        StageId::Keyframes,
        StageId::Dedup,
        StageId::Features,
        StageId::Metadata,
        StageId::Syphus,
        StageId::Pack,
    ];

    /// The stage itself.
    pub fn stage(self) -> &'static dyn Stage {
        match self {
            StageId::Scan => &scan::Scan,
            StageId::Keyframes => &keyframes::Keyframes,
            StageId::Dedup => &dedup::Dedup,
            StageId::Features => &features::Features,
            StageId::Metadata => &metadata::Metadata,
            StageId::Syphus => &syphus::Syphus,
            StageId::Pack => &pack::Pack,
        }
    }

    pub fn name(self) -> &'static str {
        self.stage().name()
    }
}

/// What a stage gets to work with.
pub struct StageContext<'a> {
    pub scenario: &'a Scenario,
    /// The run's output folder (`OUT`, or a partition's folder).
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

/// One stage of a scenario's run. The pipeline owns the manifest, the rejects file, the timing
/// and the decision to skip; the stage owns its work and the facts below.
pub trait Stage: Sync {
    fn id(&self) -> StageId;

    /// The name in commands, the manifest and reports.
    fn name(&self) -> &'static str;

    /// The settings whose values change this stage's output: sections of the scenario file
    /// (`"dedup"`) or single keys (`"filter.letterbox"`); their canonical JSON is the stage's
    /// settings hash.
    fn sections(&self) -> &'static [&'static str];

    /// The stages whose output this one reads (they must have finished first).
    fn needs(&self) -> &'static [StageId];

    /// Whether this version implements the stage.
    fn is_built(&self) -> bool {
        true
    }

    /// Why the stage has nothing to do for this scenario, if so (shown as `off`).
    fn off_reason(&self, _scenario: &Scenario) -> Option<String> {
        None
    }

    /// Where the stage's work is done when the corpus is split (see [`crate::partition`]).
    fn placement(&self, _scenario: &Scenario) -> Placement {
        Placement::Partitions
    }

    /// Why a partition leaves the stage to `merge` (its placement is [`Placement::Merge`]).
    fn merge_only_reason(&self, _scenario: &Scenario) -> String {
        format!(
            "the {} stage works on the whole corpus: it runs in `mimicit merge`",
            self.name()
        )
    }

    /// What the stage reads besides earlier stages' outputs (model weights, answer files, ...),
    /// fed to its input hash before those outputs.
    fn own_inputs(&self, _scenario: &Scenario, _h: &mut blake3::Hasher) -> Result<()> {
        Ok(())
    }

    /// The stage's input hash: by default [`Stage::own_inputs`] and the outputs of every
    /// earlier stage that has run (dedup remaps frames, features are packed: all earlier
    /// outputs count, not only the required ones).
    fn input_hash(&self, scenario: &Scenario, manifest: &Manifest) -> Result<String> {
        let mut h = blake3::Hasher::new();
        self.own_inputs(scenario, &mut h)?;
        for earlier in StageId::ALL.iter().filter(|s| **s < self.id()) {
            if let Some(e) = manifest.stage(scenario.code.as_str(), earlier.name()) {
                h.update(format!("{} {}\n", earlier.name(), e.outputs_hash()).as_bytes());
            }
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Whether `merge` requires every partition's input hash to equal its own (the scan: all
    /// partitions must have read the same state of the corpus).
    fn join_checks_input(&self) -> bool {
        false
    }

    /// Does the stage's work and says what it wrote.
    fn run(&self, ctx: &StageContext) -> Result<StageOutput>;

    /// Joins the partitions' outputs of this stage into `ctx.dir` (`mimicit merge`), writing
    /// what [`Stage::run`] over the whole corpus writes.
    fn join(&self, _ctx: &StageContext, _parts: &[join::Part]) -> Result<StageOutput> {
        Err(Error::Invalid(format!(
            "the {} stage works on the whole corpus: it is not joined from partitions",
            self.name()
        )))
    }

    /// After every stage of a run (whichever ran): files that span the scenarios of `out`.
    fn after_run(&self, _out: &Path, _manifest: &Manifest) -> Result<()> {
        Ok(())
    }
}

/// The dedup map of this scenario when the manifest records a finished dedup stage, else the
/// identity (nothing dropped).
pub fn dedup_remap(ctx: &StageContext) -> Result<crate::dedup::Remap> {
    let manifest = Manifest::load(ctx.out)?;
    if manifest
        .stage(ctx.scenario.code.as_str(), StageId::Dedup.name())
        .is_some()
    {
        crate::dedup::Remap::load(&dedup::dedup_path(ctx))
    } else {
        Ok(crate::dedup::Remap::from_rows(Vec::new()))
    }
}

/// `OUT/{CODE}/units.parquet`.
pub fn units_path(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("units.parquet")
}

/// `OUT/{CODE}/frames.parquet`.
pub fn frames_path(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("frames.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_in_run_order_and_each_stage_knows_its_id() {
        for (i, id) in StageId::ALL.iter().enumerate() {
            assert_eq!(id.stage().id(), *id);
            for need in id.stage().needs() {
                assert!(*need < *id, "{} needs the later {}", id.name(), need.name());
            }
            if i > 0 {
                assert!(StageId::ALL[i - 1] < *id);
            }
        }
        let names: Vec<&str> = StageId::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "scan",
                "keyframes",
                "dedup",
                "features",
                "metadata",
                "syphus",
                "pack"
            ]
        );
    }
}
