//! Stage 5, metadata: the files the Syphus instruction generator reads, for every unit that
//! kept at least one frame:
//! - `syphus/{CODE}_query.json`: `{unit_id: annotation entry}` in the scenario's own format
//!   (for DC the ActivityNet-Captions shape `{"timestamps", "sentences"}`);
//! - `syphus/{CODE}_messages.jsonl`: `{"id", "message"}` per unit, the user message Syphus sends.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Code;
use crate::error::{Error, Result};
use crate::manifest::Counts;
use crate::pipeline::{StageContext, StageOutput};

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let code = ctx.scenario.code;
    let units = crate::tables::read_units(&super::units_path(ctx))?;
    let frames = crate::tables::read_frames(&super::frames_path(ctx))?;
    let with_frames: BTreeSet<&str> = frames.iter().map(|f| f.unit_id.as_str()).collect();
    let mut query = BTreeMap::new();
    let mut messages = String::new();
    let mut skipped = 0;
    for unit in &units {
        if !with_frames.contains(unit.id.as_str()) {
            skipped += 1;
            continue;
        }
        let message = match code {
            Code::DC => crate::corpus::dense_captions::syphus_message(&unit.annotation),
            other => {
                return Err(Error::NotBuilt {
                    what: format!("Syphus messages for scenario {other}"),
                })
            }
        };
        messages.push_str(&serde_json::json!({"id": unit.id, "message": message}).to_string());
        messages.push('\n');
        query.insert(unit.id.clone(), unit.annotation.clone());
    }
    let dir = ctx.dir.join("syphus");
    let query_path = dir.join(format!("{code}_query.json"));
    let messages_path = dir.join(format!("{code}_messages.jsonl"));
    crate::atomic::write_json(&query_path, &query)?;
    crate::atomic::write(&messages_path, messages.as_bytes())?;
    Ok(StageOutput {
        counts: Counts {
            ok: query.len() as u64,
            rejected: 0,
            skipped,
        },
        outputs: vec![query_path, messages_path],
        rejects: Vec::new(),
    })
}
