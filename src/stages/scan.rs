//! Stage 1, scan: the corpus adapter lists units; they are written to `units.parquet` in id
//! order with media paths relative to the corpus root. A partition (`--partition i/N`) keeps
//! the units it owns.

use crate::error::{Error, Result};
use crate::manifest::Counts;
use crate::pipeline::{StageContext, StageOutput};

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let mut found = crate::corpus::scan(ctx.scenario)?;
    if found.units.is_empty() && found.rejects.is_empty() {
        // Nothing to do and nothing wrong with any entry: the annotation files hold no entry at
        // all (or none of this scenario's shape). An empty output would hide that.
        let files: Vec<String> = ctx
            .scenario
            .annotations
            .iter()
            .map(|a| a.display().to_string())
            .collect();
        return Err(Error::Invalid(format!(
            "{}: no annotated unit found ({} media files under {} without annotation)",
            files.join(", "),
            found.unannotated,
            ctx.scenario.media.display()
        )));
    }
    if let Some(p) = ctx.partition {
        // A partition may hold no unit at all: the emptiness check above is on the whole corpus.
        found = crate::partition::restrict_scan(found, p);
    }
    let path = super::units_path(ctx);
    crate::tables::write_units(&path, &found.units)?;
    tracing::info!(
        "{}: {} units, {} rejected, {} media files without annotation",
        ctx.scenario.code,
        found.units.len(),
        found.rejects.len(),
        found.unannotated
    );
    Ok(StageOutput {
        counts: Counts {
            ok: found.units.len() as u64,
            rejected: 0,
            skipped: found.unannotated,
        },
        outputs: vec![path],
        rejects: found.rejects,
    })
}
