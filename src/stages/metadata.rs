//! Stage 5, metadata: the files the Syphus instruction generator reads, for every unit that
//! kept at least one frame (media that yielded no frame would make Syphus spend money on
//! instructions no image backs), or for every unit with `metadata.require_media = false`
//! (annotation-only units included):
//! - the scenario's annotation file in the layout Syphus's own loader reads, with every
//!   annotation record of those units in file order (`corpus::syphus_inputs`:
//!   `dense_captions_train.json`, `tvc_train_release.jsonl`, `train.json`, `csd_query.json`,
//!   `scan_info.json`, `processed_all_anns.json`, `train.story-in-sequence.json`,
//!   `caps_boxes.jsonl`);
//! - `syphus/{CODE}_query.json`: `[{"id", "sentences": message}, ...]`, the list Syphus's
//!   loader builds from that file (FORMATS.md §4): one query per record, in file order, so a
//!   unit annotated several times has several queries with the same id.
//!
//! A summary line (units, frames and annotations per unit: min/median/max) goes to stderr.

use std::collections::BTreeMap;

use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::Scenario;
use crate::error::Result;
use crate::manifest::Counts;
use crate::partition::Placement;

/// Stage 5: the files the Syphus instruction generator reads.
pub struct Metadata;

impl Stage for Metadata {
    fn id(&self) -> StageId {
        StageId::Metadata
    }
    fn name(&self) -> &'static str {
        "metadata"
    }
    fn sections(&self) -> &'static [&'static str] {
        &["metadata"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Scan, StageId::Keyframes]
    }
    /// One query file per scenario, in annotation-file order.
    fn placement(&self, _scenario: &Scenario) -> Placement {
        Placement::Merge
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let code = ctx.scenario.code;
    let mut units = crate::tables::read_units(&super::units_path(ctx))?;
    units.sort_by(|a, b| a.id.cmp(&b.id));
    let frames = crate::tables::read_frames(&super::frames_path(ctx))?;
    let mut frames_per_unit: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &frames {
        *frames_per_unit.entry(f.unit_id.as_str()).or_default() += 1;
    }
    let require_media = ctx.scenario.config.metadata.require_media;
    let kept: Vec<_> = units
        .iter()
        .filter(|u| !require_media || frames_per_unit.contains_key(u.id.as_str()))
        .collect();
    let without_frames = kept
        .iter()
        .filter(|u| !frames_per_unit.contains_key(u.id.as_str()))
        .count();
    let skipped = (units.len() - kept.len()) as u64;
    let inputs = crate::corpus::syphus_inputs(ctx.scenario, &kept)?;
    let query: Vec<serde_json::Value> = inputs
        .queries
        .iter()
        .map(|(id, message)| serde_json::json!({"id": id, "sentences": message}))
        .collect();
    let dir = ctx.dir.join("syphus");
    let query_path = dir.join(format!("{code}_query.json"));
    crate::atomic::write_json(&query_path, &query)?;
    let native_path = dir.join(&inputs.native_name);
    crate::atomic::write(&native_path, &inputs.native)?;
    let repeated = inputs.queries.len().saturating_sub(kept.len());

    let per_unit_frames: Vec<usize> = kept
        .iter()
        .map(|u| frames_per_unit.get(u.id.as_str()).copied().unwrap_or(0))
        .collect();
    let per_unit_annotations: Vec<usize> = kept
        .iter()
        .map(|u| crate::corpus::annotation_count(code, &u.annotation))
        .collect();
    let only = if require_media {
        String::new()
    } else {
        format!(", {without_frames} of them annotation-only")
    };
    eprintln!(
        "{code}: metadata: {} units with Syphus inputs{only} ({skipped} without frames skipped), {} queries ({repeated} repeating a unit annotated several times); frames per unit {}; annotations per unit {}",
        kept.len(),
        inputs.queries.len(),
        spread(per_unit_frames),
        spread(per_unit_annotations),
    );
    Ok(StageOutput {
        counts: Counts {
            ok: kept.len() as u64,
            rejected: 0,
            skipped,
        },
        outputs: vec![query_path, native_path],
        rejects: Vec::new(),
    })
}

/// `min/median/max` of the values (`-` when empty); the median of an even count is the lower
/// middle value, so it is always one of the values.
fn spread(mut v: Vec<usize>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    format!(
        "{}/{}/{} (min/median/max)",
        v[0],
        v[(v.len() - 1) / 2],
        v[v.len() - 1]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_of_values() {
        assert_eq!(super::spread(vec![]), "-");
        assert_eq!(super::spread(vec![5, 1, 3, 2]), "1/2/5 (min/median/max)");
    }
}
