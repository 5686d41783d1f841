//! `mimicit merge`: joins the run folders of a split corpus (`OUT/partitions/{i}-of-{N}/`, see
//! [`crate::partition`]) into `OUT`, so that `OUT` holds what one `mimicit run` over the whole
//! corpus writes, byte for byte, and a manifest that says so.
//!
//! Merging is a run of the pipeline over `OUT` in which the stages every partition finished are
//! not computed but joined here ([`combine`]); every other stage runs as in a single run, over
//! the joined tables. Phase 1, in the partitions: scan, keyframes, dedup with `scope = "unit"`,
//! the feature vectors. Phase 2, in `merge`: the joins, then dedup with `scope = "corpus"`, the
//! features' `pairs.parquet`, metadata and pack — every step whose result depends on more than
//! one unit (instruction numbering, parquet parts, cross-unit duplicates, nearest neighbours).
//!
//! What a join writes, each as the stage itself would (each stage's [`Stage::join`]):
//! - scan: `units.parquet`, every partition's units in id order;
//! - keyframes: the frames the partitions' tables list (hard-linked from the partitions, copied
//!   where links are not possible) and `frames.parquet` in unit, then index order;
//! - dedup: `dedup.parquet`, the partitions' rows (each unit's decisions are its own);
//! - features: the shards re-cut to `features.shard_rows` from a merge of the partitions' sorted
//!   shards (one shard per partition in memory), keeping the frames dedup kept, and the pairs;
//! - the rejects of each stage, with paths into a partition folder rewritten into `OUT`.
//!
//! Counts come from the partitions' manifests, which add up (see
//! [`crate::partition::restrict_scan`]), or are recounted over the joined tables.

use std::path::PathBuf;

use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::partition::Placement;
use crate::stages::join::Part;
use crate::stages::{Stage, StageContext, StageOutput};

/// The partition folders to join `stage` from, or None when the merge runs the stage itself:
/// a whole-corpus stage, or one no partition has run. A stage that some partitions finished
/// and others did not, or ran with other settings, or over another state of the corpus, is an
/// error naming them.
pub fn sources(
    stage: &dyn Stage,
    scenario: &Scenario,
    partitions: &[PathBuf],
    config_hash: &str,
    input_hash: &str,
) -> Result<Option<Vec<PathBuf>>> {
    if stage.placement(scenario) == Placement::Merge {
        return Ok(None);
    }
    let code = scenario.code.as_str();
    let mut missing = Vec::new();
    for dir in partitions {
        let manifest = Manifest::load(dir)?;
        let Some(entry) = manifest.stage(code, stage.name()) else {
            missing.push(dir.display().to_string());
            continue;
        };
        let problem = if entry.config_hash != config_hash {
            Some("ran with other settings than the merge's (scenario file and --set values)")
        } else if stage.join_checks_input() && entry.input_hash != input_hash {
            Some("scanned another state of the corpus")
        } else if !entry.outputs_present(dir) {
            Some("has outputs that are missing or changed since it ran")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::Invalid(format!(
                "{}: stage {} of this partition {problem}: run the partition again \
                 (`mimicit run SCENARIO --out OUT --partition i/N`), then merge",
                dir.display(),
                stage.name()
            )));
        }
    }
    if missing.len() == partitions.len() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "stage {} has not finished in {}: finish those partitions before merging (or run \
             the stage in none of them: merge then runs it over the whole corpus)",
            stage.name(),
            missing.join(", ")
        )));
    }
    Ok(Some(partitions.to_vec()))
}

/// Joins the output of `stage` from the partition folders `sources` into `ctx.dir` (the stage's
/// own [`Stage::join`]).
pub fn combine(stage: &dyn Stage, ctx: &StageContext, sources: &[PathBuf]) -> Result<StageOutput> {
    let code = ctx.scenario.code.as_str();
    let parts: Vec<Part> = sources
        .iter()
        .map(|dir| Part::open(dir, code, stage.name()))
        .collect::<Result<_>>()?;
    stage.join(ctx, &parts)
}
