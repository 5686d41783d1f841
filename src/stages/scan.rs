//! Stage 1, scan: the corpus adapter lists units; they are written to `units.parquet` in id
//! order with media paths relative to the corpus root. A partition (`--partition i/N`) keeps
//! the units it owns.

use crate::error::Result;
use crate::manifest::Counts;
use crate::pipeline::{StageContext, StageOutput};

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let mut found = crate::corpus::scan(ctx.scenario)?;
    if let Some(p) = ctx.partition {
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
