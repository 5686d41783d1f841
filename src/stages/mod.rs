//! The stage implementations, one file each. Each reads the tables of the stages before it from
//! `OUT/{CODE}/` and returns what it wrote; the pipeline records it.

use crate::config::Scenario;
use crate::error::Result;
use crate::pipeline::{Stage, StageContext, StageOutput};

pub mod dedup;
pub mod features;
pub mod keyframes;
pub mod metadata;
pub mod pack;
pub mod scan;

pub fn is_built(stage: Stage) -> bool {
    matches!(
        stage,
        Stage::Scan
            | Stage::Keyframes
            | Stage::Dedup
            | Stage::Features
            | Stage::Metadata
            | Stage::Pack
    )
}

/// Why a built stage has nothing to do for this scenario, if so.
pub fn off_reason(stage: Stage, scenario: &Scenario) -> Option<String> {
    match stage {
        Stage::Features if scenario.model.is_none() => Some("no features.model set".into()),
        _ => None,
    }
}

pub fn run(stage: Stage, ctx: &StageContext) -> Result<StageOutput> {
    match stage {
        Stage::Scan => scan::run(ctx),
        Stage::Keyframes => keyframes::run(ctx),
        Stage::Dedup => dedup::run(ctx),
        Stage::Metadata => metadata::run(ctx),
        Stage::Features => features::run(ctx),
        Stage::Pack => pack::run(ctx),
    }
}

/// The dedup map of this scenario when the manifest records a finished dedup stage, else the
/// identity (nothing dropped).
pub fn dedup_remap(ctx: &StageContext) -> Result<crate::dedup::Remap> {
    let manifest = crate::manifest::Manifest::load(ctx.out)?;
    if manifest
        .stage(ctx.scenario.code.as_str(), Stage::Dedup.name())
        .is_some()
    {
        crate::dedup::Remap::load(&dedup::dedup_path(ctx))
    } else {
        Ok(crate::dedup::Remap::from_rows(Vec::new()))
    }
}

/// `OUT/{CODE}/units.parquet`.
pub fn units_path(ctx: &StageContext) -> std::path::PathBuf {
    ctx.dir.join("units.parquet")
}

/// `OUT/{CODE}/frames.parquet`.
pub fn frames_path(ctx: &StageContext) -> std::path::PathBuf {
    ctx.dir.join("frames.parquet")
}
