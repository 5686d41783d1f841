//! Loading: everything the report shows, read from a run's folder into plain data
//! ([`RunData`], one [`ScenarioData`] per scenario of the manifest) by [`load`]. Rendering
//! ([`super::write`]) takes that data and reads no manifest, table or JSON file.
//!
//! Pictures are the one exception, to keep memory bounded: the loader holds only which frames
//! the page shows (their ids, files, times and why they were dropped), not their pixels; the
//! renderer decodes those files as it draws each sheet, one sheet at a time. A frame file the
//! renderer cannot read is drawn as an empty tile and named on the page.
//!
//! What a scenario is missing or cannot read is left empty and noted in
//! [`ScenarioData::notes`]; only a missing or unreadable manifest is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ReportOptions;
use crate::dedup::{DedupRow, Method};
use crate::error::{Error, Result};
use crate::manifest::{Counts, Manifest, ScenarioEntry};
use crate::model::{FrameRecord, Reject, Unit};
use crate::stages::StageId;

/// Everything the report of one run shows.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The tool that wrote the manifest (`mimicit x.y.z`).
    pub tool: String,
    /// Whether `OUT/data.yaml` (the trainer's index) exists.
    pub data_yaml: bool,
    /// One per scenario of the manifest, by code.
    pub scenarios: Vec<ScenarioData>,
}

/// Everything the report shows of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioData {
    pub code: String,
    pub name: String,
    /// `OUT/{CODE}`: the folder the [`FrameRef::file`]s are relative to.
    pub dir: PathBuf,
    pub totals: Totals,
    /// One per stage of [`StageId::ALL`], in run order.
    pub stages: Vec<StageState>,
    /// The stages of the last command's `timings.json`; None without a readable one.
    pub timings: Option<Vec<StageTiming>>,
    pub distributions: Distributions,
    pub sheets: Sheets,
    pub duplicates: Duplicates,
    /// The frames each quality filter took, uniform then blur; filters that took none are left
    /// out.
    pub filtered: Vec<FilterGroup>,
    pub rejects: Rejects,
    /// The last syphus run's `syphus/stats.json` (requests, tokens, retries, failures, latency,
    /// cost); None when the stage has not run.
    pub syphus: Option<crate::syphus::Stats>,
    /// Tables and files that could not be read.
    pub notes: Vec<String>,
}

/// The counts at the top of a scenario; None where the table they come from is missing.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub units: Option<usize>,
    pub frames_stored: Option<usize>,
    /// Rows of `dedup.parquet`: frames dropped as duplicates or by a quality filter.
    pub dropped: usize,
    /// Rows of `dedup.parquet` by method.
    pub dropped_by: BTreeMap<Method, usize>,
    /// Syphus messages (entries of the query file).
    pub messages: Option<usize>,
    /// Instructions the pack stage wrote (rows of its instructions files), if it ran.
    pub instructions: Option<u64>,
}

impl Totals {
    /// Frames dropped with `method`.
    pub fn dropped_with(&self, method: Method) -> usize {
        self.dropped_by.get(&method).copied().unwrap_or(0)
    }

    /// Frames dropped by a quality filter (not duplicates).
    pub fn filtered(&self) -> usize {
        self.dropped_by
            .iter()
            .filter(|(m, _)| m.is_filter())
            .map(|(_, n)| n)
            .sum()
    }
}

/// A stage of the registry and what the manifest records of it.
#[derive(Debug, Clone)]
pub struct StageState {
    pub id: StageId,
    /// None: the stage has not run for this scenario.
    pub run: Option<StageRun>,
}

#[derive(Debug, Clone)]
pub struct StageRun {
    pub counts: Counts,
    /// Its files, as the manifest lists them.
    pub outputs: Vec<OutputRow>,
}

#[derive(Debug, Clone)]
pub struct OutputRow {
    /// Relative to OUT.
    pub path: String,
    pub bytes: u64,
    pub rows: Option<u64>,
}

/// One stage of `timings.json`. Missing fields read as empty text, 0 or None.
#[derive(Debug, Clone)]
pub struct StageTiming {
    pub stage: String,
    pub status: String,
    /// The stage did not run but `timings.json` has the times of the run that last ran it:
    /// [`wall_s`](Self::wall_s) and [`cpu_s`](Self::cpu_s) are those.
    pub from_last_ran: bool,
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    /// Items it processed.
    pub ok: f64,
}

impl StageTiming {
    /// Whether it has times to show: it ran now, or an earlier run's times are known.
    pub fn has_times(&self) -> bool {
        self.status == "ran" || self.from_last_ran
    }
}

/// The values of the histograms; None where the table or file they come from is missing.
#[derive(Debug, Clone, Default)]
pub struct Distributions {
    /// Kept frames of every unit (0 for a unit without frames).
    pub frames_per_unit: Option<Vec<f64>>,
    /// Seconds from the first to the last stored frame of each video unit.
    pub unit_span: Option<Vec<f64>>,
    /// Annotation items of every unit.
    pub annotations_per_unit: Option<Vec<f64>>,
    /// Words of each unit's Syphus message.
    pub message_words: Option<Vec<f64>>,
    /// Words of each instruction plus its answer, over every instructions file.
    pub instruction_words: Option<Vec<f64>>,
    /// pHash Hamming distance of each exact or near duplicate to its kept frame.
    pub dedup_distance: Vec<f64>,
    /// CLIP cosine of each semantic duplicate to its kept frame.
    pub dedup_cosine: Vec<f64>,
}

/// A stored frame the page shows. Its pixels are read when it is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRef {
    pub image_id: String,
    /// Relative to `OUT/{CODE}/` (or to the frames folder of `mimicit frames`).
    pub file: String,
    pub time_s: Option<f64>,
    pub index: u32,
}

impl From<&FrameRecord> for FrameRef {
    fn from(f: &FrameRecord) -> Self {
        FrameRef {
            image_id: f.image_id.clone(),
            file: f.file.clone(),
            time_s: f.time_s,
            index: f.index,
        }
    }
}

/// The contact sheets: the first [`ReportOptions::sheets`] units with frames, by id.
#[derive(Debug, Clone, Default)]
pub struct Sheets {
    /// Units with at least one stored frame.
    pub units_with_frames: usize,
    pub units: Vec<UnitSheet>,
}

#[derive(Debug, Clone)]
pub struct UnitSheet {
    pub unit_id: String,
    /// Every stored frame of the unit, in index order.
    pub frames: Vec<SheetFrame>,
    /// The unit's annotation times (empty when the unit is not in `units.parquet`).
    pub annotation_times: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct SheetFrame {
    pub frame: FrameRef,
    /// How it was dropped; None: kept.
    pub dropped: Option<Method>,
}

/// The duplicate groups (frames dropped in favour of one kept frame, quality filters aside).
#[derive(Debug, Clone, Default)]
pub struct Duplicates {
    /// All groups.
    pub groups: usize,
    /// The first [`ReportOptions::dedup_groups`] groups by kept id.
    pub shown: Vec<DuplicateGroup>,
}

#[derive(Debug, Clone)]
pub struct DuplicateGroup {
    pub kept_id: String,
    /// None: the kept frame is not in `frames.parquet`.
    pub kept: Option<FrameRef>,
    /// In `dedup.parquet` order.
    pub dropped: Vec<DroppedFrame>,
}

/// A row of `dedup.parquet` with the frame it names.
#[derive(Debug, Clone)]
pub struct DroppedFrame {
    pub dropped_id: String,
    pub kept_id: String,
    pub method: Method,
    pub distance: u32,
    /// None: the dropped frame is not in `frames.parquet`.
    pub frame: Option<FrameRef>,
}

/// The frames one quality filter took.
#[derive(Debug, Clone)]
pub struct FilterGroup {
    pub method: Method,
    /// All of them.
    pub total: usize,
    /// The first [`super::sheet::MAX_TILES`], in `dedup.parquet` order.
    pub shown: Vec<DroppedFrame>,
}

/// The rejects of every stage.
#[derive(Debug, Clone, Default)]
pub struct Rejects {
    pub total: usize,
    pub by_stage: BTreeMap<String, usize>,
    /// The first [`ReportOptions::rejects`] in sort order, each with the file (relative to OUT)
    /// it was read from.
    pub shown: Vec<(String, Reject)>,
}

/// Reads what the report of the run in `out` shows. Errors only without a readable manifest.
pub fn load(out: &Path, opts: &ReportOptions) -> Result<RunData> {
    let manifest_path = out.join(crate::manifest::FILE_NAME);
    if !manifest_path.is_file() {
        return Err(Error::Manifest {
            path: manifest_path,
            message: "no manifest: nothing has run in this folder".into(),
        });
    }
    let manifest = Manifest::load(out)?;
    Ok(RunData {
        data_yaml: out.join("data.yaml").is_file(),
        scenarios: manifest
            .scenarios
            .iter()
            .map(|(code, entry)| load_scenario(out, code, entry, opts))
            .collect(),
        tool: manifest.tool,
    })
}

/// The stored frames of a `mimicit frames` output folder (`DIR/frames.parquet`), by video,
/// each list in index order.
pub fn frames_by_video(dir: &Path) -> Result<Vec<(String, Vec<FrameRef>)>> {
    let frames = crate::tables::read_frames(&dir.join("frames.parquet"))?;
    Ok(by_unit(&frames)
        .into_iter()
        .map(|(video, list)| {
            (
                video.to_string(),
                list.into_iter().map(FrameRef::from).collect(),
            )
        })
        .collect())
}

/// Frames by unit, each list in index order.
fn by_unit(frames: &[FrameRecord]) -> BTreeMap<&str, Vec<&FrameRecord>> {
    let mut m: BTreeMap<&str, Vec<&FrameRecord>> = BTreeMap::new();
    for f in frames {
        m.entry(&f.unit_id).or_default().push(f);
    }
    for list in m.values_mut() {
        list.sort_by_key(|f| f.index);
    }
    m
}

fn load_scenario(
    out: &Path,
    code: &str,
    entry: &ScenarioEntry,
    opts: &ReportOptions,
) -> ScenarioData {
    let dir = out.join(code);
    let mut notes = Vec::new();
    let read = |path: PathBuf| -> Option<PathBuf> { path.is_file().then_some(path) };
    let units = read(dir.join("units.parquet"))
        .and_then(|p| keep_note(&mut notes, crate::tables::read_units(&p)));
    let frames = read(dir.join("frames.parquet"))
        .and_then(|p| keep_note(&mut notes, crate::tables::read_frames(&p)));
    let dedup = read(dir.join("dedup.parquet"))
        .and_then(|p| keep_note(&mut notes, crate::tables::read_dedup(&p)))
        .unwrap_or_default();
    let timings = read(dir.join("timings.json"))
        .and_then(|p| keep_note(&mut notes, read_json(&p)))
        .and_then(|t| stage_timings(&t));
    let syphus = read(dir.join("syphus").join("stats.json"))
        .and_then(|p| keep_note(&mut notes, read_json(&p)))
        .and_then(|v| serde_json::from_value(v).ok());
    let query = dir.join("syphus").join(format!("{code}_query.json"));
    let message_words: Option<Vec<f64>> = read(query)
        .and_then(|p| keep_note(&mut notes, read_json(&p)))
        .map(|v| {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|e| words(e["sentences"].as_str().unwrap_or("")))
                .collect()
        });
    let mut rejects = Vec::new();
    let mut instruction_words: Option<Vec<f64>> = None;
    for output in entry.stages.values().flat_map(|s| &s.outputs) {
        let p = out.join(&output.path);
        if output.path.starts_with(&format!("{code}/rejects/")) {
            if let Some(rows) = keep_note(&mut notes, crate::tables::read_rejects(&p)) {
                rejects.extend(rows.into_iter().map(|r| (output.path.clone(), r)));
            }
        } else if is_instructions(&output.path) {
            if let Some(doc) = keep_note(&mut notes, read_json(&p)) {
                let list = instruction_words.get_or_insert_with(Vec::new);
                for item in doc["data"].as_object().into_iter().flat_map(|d| d.values()) {
                    let text = |k: &str| item[k].as_str().unwrap_or("").to_string();
                    list.push(words(&text("instruction")) + words(&text("answer")));
                }
            }
        }
    }
    rejects.sort();

    // How each dropped frame was dropped, and the frames by id (the last row wins).
    let dropped: BTreeMap<&str, Method> = dedup
        .iter()
        .map(|r| (r.dropped_id.as_str(), r.method))
        .collect();
    let frame_by_id: BTreeMap<&str, &FrameRecord> = frames
        .iter()
        .flatten()
        .map(|f| (f.image_id.as_str(), f))
        .collect();
    let frame_ref = |id: &str| frame_by_id.get(id).map(|f| FrameRef::from(*f));
    let by_unit = by_unit(frames.as_deref().unwrap_or_default());
    let units_by_id: BTreeMap<&str, &Unit> =
        units.iter().flatten().map(|u| (u.id.as_str(), u)).collect();

    let mut dropped_by: BTreeMap<Method, usize> = BTreeMap::new();
    for r in &dedup {
        *dropped_by.entry(r.method).or_default() += 1;
    }
    let instructions = entry.stages.get(StageId::Pack.name()).map(|p| {
        p.outputs
            .iter()
            .filter(|o| is_instructions(&o.path))
            .filter_map(|o| o.rows)
            .sum()
    });
    let totals = Totals {
        units: units.as_ref().map(|u| u.len()),
        frames_stored: frames.as_ref().map(|f| f.len()),
        dropped: dedup.len(),
        dropped_by,
        messages: message_words.as_ref().map(|m| m.len()),
        instructions,
    };

    let stages = StageId::ALL
        .iter()
        .map(|&id| StageState {
            id,
            run: entry.stages.get(id.name()).map(|e| StageRun {
                counts: e.counts,
                outputs: e
                    .outputs
                    .iter()
                    .map(|o| OutputRow {
                        path: o.path.clone(),
                        bytes: o.bytes,
                        rows: o.rows,
                    })
                    .collect(),
            }),
        })
        .collect();

    let mut distributions = Distributions {
        message_words,
        instruction_words,
        ..Distributions::default()
    };
    if frames.is_some() {
        // Units without any frame count as 0.
        let mut kept: BTreeMap<&str, f64> = units_by_id.keys().map(|id| (*id, 0.0)).collect();
        let mut span = Vec::new();
        for (unit, list) in &by_unit {
            let n = list
                .iter()
                .filter(|f| !dropped.contains_key(f.image_id.as_str()))
                .count();
            kept.insert(unit, n as f64);
            let times: Vec<f64> = list.iter().filter_map(|f| f.time_s).collect();
            if let (Some(a), Some(b)) = (times.first(), times.last()) {
                span.push(b - a);
            }
        }
        distributions.frames_per_unit = Some(kept.into_values().collect());
        distributions.unit_span = Some(span);
    }
    let scenario_code: Option<crate::config::Code> =
        serde_json::from_value(serde_json::Value::String(code.to_string())).ok();
    if let (Some(units), Some(scenario_code)) = (&units, scenario_code) {
        distributions.annotations_per_unit = Some(
            units
                .iter()
                .map(|u| crate::corpus::annotation_count(scenario_code, &u.annotation) as f64)
                .collect(),
        );
    }
    distributions.dedup_distance = dedup
        .iter()
        .filter(|r| matches!(r.method, Method::Exact | Method::Phash))
        .map(|r| f64::from(r.distance))
        .collect();
    distributions.dedup_cosine = dedup
        .iter()
        .filter(|r| r.method == Method::Semantic)
        .map(|r| 1.0 - f64::from(r.distance) / 1000.0)
        .collect();

    let sheets = Sheets {
        units_with_frames: by_unit.len(),
        units: by_unit
            .iter()
            .take(opts.sheets)
            .map(|(unit, list)| UnitSheet {
                unit_id: unit.to_string(),
                frames: list
                    .iter()
                    .map(|f| SheetFrame {
                        frame: FrameRef::from(*f),
                        dropped: dropped.get(f.image_id.as_str()).copied(),
                    })
                    .collect(),
                annotation_times: units_by_id
                    .get(unit)
                    .map(|u| u.times.clone())
                    .unwrap_or_default(),
            })
            .collect(),
    };

    let dropped_frame = |r: &DedupRow| DroppedFrame {
        dropped_id: r.dropped_id.clone(),
        kept_id: r.kept_id.clone(),
        method: r.method,
        distance: r.distance,
        frame: frame_ref(&r.dropped_id),
    };
    let mut groups: BTreeMap<&str, Vec<&DedupRow>> = BTreeMap::new();
    for r in dedup.iter().filter(|r| !r.method.is_filter()) {
        groups.entry(&r.kept_id).or_default().push(r);
    }
    let duplicates = Duplicates {
        groups: groups.len(),
        shown: groups
            .iter()
            .take(opts.dedup_groups)
            .map(|(kept, rows)| DuplicateGroup {
                kept_id: kept.to_string(),
                kept: frame_ref(kept),
                dropped: rows.iter().map(|r| dropped_frame(r)).collect(),
            })
            .collect(),
    };
    let filtered = [Method::Uniform, Method::Blur]
        .into_iter()
        .filter_map(|method| {
            let rows: Vec<&DedupRow> = dedup.iter().filter(|r| r.method == method).collect();
            (!rows.is_empty()).then(|| FilterGroup {
                method,
                total: rows.len(),
                shown: rows
                    .iter()
                    .take(super::sheet::MAX_TILES)
                    .map(|r| dropped_frame(r))
                    .collect(),
            })
        })
        .collect();

    let mut by_stage: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in &rejects {
        *by_stage.entry(r.stage.clone()).or_default() += 1;
    }
    let total = rejects.len();
    rejects.truncate(opts.rejects);

    ScenarioData {
        code: code.to_string(),
        name: entry.name.clone(),
        dir,
        totals,
        stages,
        timings,
        distributions,
        sheets,
        duplicates,
        filtered,
        rejects: Rejects {
            total,
            by_stage,
            shown: rejects,
        },
        syphus,
        notes,
    }
}

/// An instructions file of the pack stage (not one of the Syphus folder).
fn is_instructions(path: &str) -> bool {
    path.ends_with("_instructions.json") && !path.contains("/syphus/")
}

/// The stages of a `timings.json`; None when it has no `stages` list.
fn stage_timings(doc: &serde_json::Value) -> Option<Vec<StageTiming>> {
    let stages = doc["stages"].as_array()?;
    Some(
        stages
            .iter()
            .map(|st| {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
                let status = text(&st["status"]);
                let from_last_ran = status != "ran" && st["last_ran"].is_object();
                let src = if from_last_ran { &st["last_ran"] } else { st };
                StageTiming {
                    stage: text(&st["stage"]),
                    status,
                    from_last_ran,
                    wall_s: src["wall_s"].as_f64().unwrap_or(0.0),
                    cpu_s: src["cpu_s"].as_f64(),
                    ok: st["ok"].as_f64().unwrap_or(0.0),
                }
            })
            .collect(),
    )
}

fn keep_note<T>(notes: &mut Vec<String>, r: Result<T>) -> Option<T> {
    r.map_err(|e| notes.push(format!("could not read {e}")))
        .ok()
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn words(text: &str) -> f64 {
    text.split_whitespace().count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_take_the_last_run_of_a_stage_that_did_not_run() {
        let doc = serde_json::json!({"stages": [
            {"stage": "scan", "status": "ran", "ok": 4, "wall_s": 2.0, "cpu_s": 3.0},
            {"stage": "pack", "status": "up to date", "ok": 1,
             "last_ran": {"wall_s": 5.0}},
            {"stage": "dedup", "status": "up to date"}
        ]});
        let t = stage_timings(&doc).unwrap();
        assert!(t[0].has_times() && !t[0].from_last_ran);
        assert_eq!((t[0].wall_s, t[0].cpu_s, t[0].ok), (2.0, Some(3.0), 4.0));
        assert!(t[1].has_times() && t[1].from_last_ran);
        assert_eq!((t[1].wall_s, t[1].cpu_s), (5.0, None));
        assert!(!t[2].has_times());
        assert!(stage_timings(&serde_json::json!({})).is_none());
    }

    #[test]
    fn frames_group_by_unit_in_index_order() {
        let f = |unit: &str, index: u32| FrameRecord {
            image_id: format!("{unit}_{index}"),
            unit_id: unit.into(),
            index,
            time_s: None,
            width: 1,
            height: 1,
            pixel_hash: String::new(),
            file: String::new(),
            bytes: 0,
        };
        let frames = [f("b", 1), f("a", 2), f("b", 0), f("a", 0)];
        let m = by_unit(&frames);
        let ids: Vec<Vec<&str>> = m
            .values()
            .map(|l| l.iter().map(|f| f.image_id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["a_0", "a_2"], vec!["b_0", "b_1"]]);
    }
}
