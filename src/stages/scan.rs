//! Stage 1, scan: the corpus adapter lists units; they are written to `units.parquet` in id
//! order with media paths relative to the corpus root, with two more tables:
//! - `media.parquet`: every media file the units use, probed (video: size, rate, duration,
//!   codec, rotation; image: size) unless `metadata.probe = false`;
//! - `annotations.parquet`: every annotation item of every unit (`unit_id`, `t_start`,
//!   `t_end`, `text`, `kind`), in unit order.
//!
//! A summary line on stderr counts the units, the annotation records they came from and the
//! units annotated by several records (an SD pair annotated three times, a TVC clip with
//! several moments): their records are merged into one unit and each stays a Syphus query.
//!
//! A partition (`--partition i/N`) keeps the units it owns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::join::{summed, Part};
use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::Counts;
use crate::model::{AnnotationRow, MediaRow, Unit, UnitMedia};
use crate::partition::Partition;

/// Stage 1: the corpus adapters list the units, their media and annotations.
pub struct Scan;

impl Stage for Scan {
    fn id(&self) -> StageId {
        StageId::Scan
    }
    fn name(&self) -> &'static str {
        "scan"
    }
    fn sections(&self) -> &'static [&'static str] {
        &["source", "corpus", "metadata"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[]
    }
    /// The corpus files themselves (annotation files, media listing), not earlier outputs.
    fn input_hash(
        &self,
        scenario: &Scenario,
        _manifest: &crate::manifest::Manifest,
    ) -> Result<String> {
        crate::corpus::fingerprint(scenario)
    }
    fn join_checks_input(&self) -> bool {
        true
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
    /// Every partition's units in id order, their probed media rows.
    fn join(&self, ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
        join_scan(ctx, parts)
    }
}

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
    let root = format!("{}/", ctx.scenario.root.display());
    for u in &mut found.units {
        if let Some(rel) = u.source.strip_prefix(&root) {
            u.source = rel.to_string();
        }
    }
    let records: usize = found.units.iter().map(|u| u.records.len().max(1)).sum();
    let several = found.units.iter().filter(|u| u.records.len() > 1).count();
    eprintln!(
        "{}: scan: {} units from {records} annotation records ({several} units annotated by several records: {} records merged into them, each still a Syphus query of its own); {} rejects",
        ctx.scenario.code,
        found.units.len(),
        records - (found.units.len() - several),
        found.rejects.len(),
    );
    let media = probe_media(ctx.scenario, &found.units);
    let outputs = write_tables(ctx, &mut found.units, media)?;
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
        outputs,
        rejects: found.rejects,
    })
}

/// Writes `units.parquet` (units sorted by id), `media.parquet` (`media`: the probed rows of
/// the media files the units use, sorted by path here) and `annotations.parquet` of `units`;
/// returns their paths. The scan stage and `merge` share it, so a merged run writes the same
/// bytes as a single one.
pub fn write_tables(
    ctx: &StageContext,
    units: &mut [Unit],
    mut media: Vec<MediaRow>,
) -> Result<Vec<PathBuf>> {
    units.sort_by(|a, b| a.id.cmp(&b.id));
    media.sort_by(|a, b| a.path.cmp(&b.path));
    media.dedup_by(|a, b| a.path == b.path);
    let scenario = ctx.scenario;
    let by_path: BTreeMap<String, MediaRow> =
        media.iter().map(|m| (m.path.clone(), m.clone())).collect();
    let units_path = super::units_path(ctx);
    crate::tables::write_units(&units_path, scenario.code, units, &by_path)?;
    let media_path = ctx.dir.join("media.parquet");
    crate::tables::write_media(&media_path, &media)?;
    let rows: Vec<AnnotationRow> = units
        .iter()
        .flat_map(|u| crate::corpus::annotation_rows(scenario.code, u))
        .collect();
    let annotations_path = ctx.dir.join("annotations.parquet");
    crate::tables::write_annotations(&annotations_path, &rows)?;
    Ok(vec![units_path, media_path, annotations_path])
}

/// One row per distinct media file of `units`, sorted by path, probed in parallel.
pub fn probe_media(scenario: &Scenario, units: &[Unit]) -> Vec<MediaRow> {
    let mut wanted: BTreeMap<String, &'static str> = BTreeMap::new();
    for u in units {
        match &u.media {
            UnitMedia::Video { path, .. } => {
                wanted.insert(path.to_string_lossy().into_owned(), "video");
            }
            UnitMedia::Images { items } => {
                for i in items {
                    wanted.insert(i.path.to_string_lossy().into_owned(), "image");
                }
            }
            UnitMedia::Missing { .. } => {}
        }
    }
    let probe = scenario.config.metadata.probe;
    wanted
        .into_par_iter()
        .map(|(path, kind)| probe_one(&scenario.root.join(&path), path, kind, probe))
        .collect()
}

fn probe_one(full: &Path, path: String, kind: &str, probe: bool) -> MediaRow {
    let mut row = MediaRow {
        path,
        kind: kind.to_string(),
        bytes: None,
        width: None,
        height: None,
        fps: None,
        duration_s: None,
        codec: None,
        rotation: None,
        error: None,
    };
    match std::fs::metadata(full) {
        Ok(m) => row.bytes = Some(m.len()),
        Err(e) => {
            row.error = Some(format!("{}: {e}", full.display()));
            return row;
        }
    }
    if !probe {
        return row;
    }
    if kind == "video" {
        match crate::video::probe(full) {
            Ok(info) => {
                row.width = Some(info.width);
                row.height = Some(info.height);
                row.fps = info.fps;
                row.duration_s = info.duration_s;
                row.codec = Some(info.codec);
                row.rotation = Some(info.rotation);
            }
            Err(e) => row.error = Some(e.to_string()),
        }
    } else {
        match crate::imaging::dimensions(full) {
            Ok((w, h)) => {
                row.width = Some(w);
                row.height = Some(h);
            }
            Err(e) => row.error = Some(e.to_string()),
        }
    }
    row
}

fn join_scan(ctx: &StageContext, parts: &[Part]) -> Result<StageOutput> {
    let mut units = Vec::new();
    for p in parts {
        let from = p.dir.join("units.parquet");
        for u in crate::tables::read_units(&from)? {
            if let Some(part) = p.partition {
                if !part.owns(&u.id) {
                    return Err(Error::Invalid(format!(
                        "{}: unit {} belongs to partition {}, not {part}: the folder is not \
                         from this split",
                        from.display(),
                        u.id,
                        Partition::of(&u.id, part.count)
                    )));
                }
            }
            units.push(u);
        }
    }
    units.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = units.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::Invalid(format!(
            "unit {} is in two partitions: the folders are not from one split",
            w[0].id
        )));
    }
    // The partitions probed their own media: join their rows rather than probe everything
    // again in this one process.
    let mut media = Vec::new();
    for p in parts {
        media.extend(crate::tables::read_media(&p.dir.join("media.parquet"))?);
    }
    let outputs = super::scan::write_tables(ctx, &mut units, media)?;
    Ok(StageOutput {
        counts: Counts {
            ok: units.len() as u64,
            ..summed(parts)
        },
        outputs,
        rejects: super::join::rejects(ctx, parts, "scan")?,
    })
}
