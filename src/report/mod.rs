//! `mimicit report OUT` (and the last step of `mimicit run`): `OUT/report/index.html`, one page
//! that needs no network and no script, with, per scenario of the manifest, the counts (units,
//! frames stored / kept / dropped, rejects, instructions), histograms (SVG), contact sheets of a
//! few units with a timeline of their frames and content cuts (PNG + inline SVG), the duplicate
//! groups side by side, the rejects, the stage timings and links to every output.
//!
//! Everything under `OUT/report/` is rebuilt from the run's own files, so the same run gives the
//! same bytes, except the timings section of `index.html` (between `<!-- timings -->` and
//! `<!-- /timings -->`), which shows `timings.json`. Like `timings.json`, the report is not
//! listed in the manifest: it describes the outputs and is not one of them. Files of an earlier
//! report that this one did not write are removed.

pub mod html;
pub mod plots;
pub mod sheet;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::dedup::DedupRow;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ScenarioEntry};
use crate::model::{FrameRecord, Reject, RgbFrame, Unit};
use crate::pipeline::Stage;
use crate::video::scenes::Signature;
use html::{esc, url};
use plots::Bins;
use sheet::Tile;

/// The report's folder under OUT.
pub const DIR_NAME: &str = "report";
/// Marks around the part of `index.html` that changes between identical runs.
pub const TIMINGS_BEGIN: &str = "<!-- timings -->";
pub const TIMINGS_END: &str = "<!-- /timings -->";

/// Content change (`1 -` correlation of luma histograms, as the scene-cuts sampling measures
/// it) between two consecutive stored frames above which the timeline marks a cut. Frames of a
/// sampled unit are far apart in time, so this is well above the frame-to-frame threshold of
/// `keyframes.scene_threshold`: motion within a shot moves the histogram too.
pub const CUT_THRESHOLD: f64 = 0.3;

/// How much the report shows.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Units per scenario that get a contact sheet: the first ones by id that have frames.
    pub sheets: usize,
    /// Duplicate groups per scenario shown side by side: the first ones by kept id.
    pub dedup_groups: usize,
    /// Rejects listed per scenario (the rest are counted and linked).
    pub rejects: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            sheets: 6,
            dedup_groups: 12,
            rejects: 200,
        }
    }
}

#[derive(Debug)]
pub struct ReportSummary {
    /// `OUT/report/index.html`.
    pub index: PathBuf,
    /// Files written under `OUT/report/`, the page included.
    pub files: usize,
    /// Things the page could not show (an unreadable table or frame), also listed on the page.
    pub notes: Vec<String>,
}

/// Writes `OUT/report/`.
pub fn write(out: &Path, opts: &ReportOptions) -> Result<ReportSummary> {
    if !out.join(crate::manifest::FILE_NAME).is_file() {
        return Err(Error::Manifest {
            path: out.join(crate::manifest::FILE_NAME),
            message: "no manifest: nothing has run in this folder".into(),
        });
    }
    let manifest = Manifest::load(out)?;
    let mut w = Writer {
        dir: out.join(DIR_NAME),
        written: BTreeSet::new(),
    };
    let mut notes = Vec::new();
    let mut body = String::new();
    for (code, entry) in &manifest.scenarios {
        let data = ScenarioData::load(out, code, entry);
        body.push_str(&render_scenario(&mut w, &data, opts)?);
        notes.extend(data.notes.iter().map(|n| format!("{code}: {n}")));
    }
    let page = page(out, &manifest, &body);
    let index = w.file("index.html", page.as_bytes())?;
    w.remove_stale()?;
    Ok(ReportSummary {
        index,
        files: w.written.len(),
        notes,
    })
}

/// Writes the report's files and remembers them, so that stale ones can go.
struct Writer {
    dir: PathBuf,
    written: BTreeSet<PathBuf>,
}

impl Writer {
    fn file(&mut self, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(rel);
        crate::atomic::write(&path, bytes)?;
        self.written.insert(path.clone());
        Ok(path)
    }

    fn remove_stale(&self) -> Result<()> {
        remove_unlisted(&self.dir, &self.written)
    }
}

/// Removes the files under `dir` that are not in `keep`, then the folders left empty.
fn remove_unlisted(dir: &Path, keep: &BTreeSet<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            remove_unlisted(&path, keep)?;
            let empty = std::fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                std::fs::remove_dir(&path).map_err(|e| Error::io(&path, e))?;
            }
        } else if !keep.contains(&path) {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// What the report reads of one scenario; whatever is missing or unreadable is left empty and
/// noted.
struct ScenarioData<'a> {
    code: &'a str,
    entry: &'a ScenarioEntry,
    /// `OUT/{CODE}`.
    dir: PathBuf,
    units: Option<Vec<Unit>>,
    frames: Option<Vec<FrameRecord>>,
    dedup: Vec<DedupRow>,
    /// Rejects of every stage, with the file (relative to OUT) they were read from.
    rejects: Vec<(String, Reject)>,
    timings: Option<serde_json::Value>,
    /// Words of each unit's Syphus message.
    message_words: Option<Vec<f64>>,
    /// Words of each instruction plus its answer, over every instructions file.
    instruction_words: Option<Vec<f64>>,
    notes: Vec<String>,
}

impl<'a> ScenarioData<'a> {
    fn load(out: &Path, code: &'a str, entry: &'a ScenarioEntry) -> ScenarioData<'a> {
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
        let timings =
            read(dir.join("timings.json")).and_then(|p| keep_note(&mut notes, read_json(&p)));
        let query = dir.join("syphus").join(format!("{code}_query.json"));
        let message_words = read(query)
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
            } else if output.path.ends_with("_instructions.json")
                && !output.path.contains("/syphus/")
            {
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
        ScenarioData {
            code,
            entry,
            dir,
            units,
            frames,
            dedup,
            rejects,
            timings,
            message_words,
            instruction_words,
            notes,
        }
    }

    fn dropped(&self) -> BTreeMap<&str, &DedupRow> {
        self.dedup
            .iter()
            .map(|r| (r.dropped_id.as_str(), r))
            .collect()
    }

    /// Stored frames by unit, each list in index order.
    fn frames_by_unit(&self) -> BTreeMap<&str, Vec<&FrameRecord>> {
        let mut m: BTreeMap<&str, Vec<&FrameRecord>> = BTreeMap::new();
        for f in self.frames.iter().flatten() {
            m.entry(&f.unit_id).or_default().push(f);
        }
        for list in m.values_mut() {
            list.sort_by_key(|f| f.index);
        }
        m
    }
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

fn page(out: &Path, manifest: &Manifest, body: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>mimicit report</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n\
<h1>mimicit report</h1>\n<p class=\"muted\">Made by {} from <a href=\"../manifest.json\">manifest.json</a>",
        html::STYLE,
        esc(&manifest.tool)
    );
    if out.join("data.yaml").is_file() {
        s.push_str(" and the trainer's <a href=\"../data.yaml\">data.yaml</a>");
    }
    s.push_str(".</p>\n<nav>");
    for (code, entry) in &manifest.scenarios {
        let _ = write!(
            s,
            "<a href=\"#{c}\">{c} ({n})</a>",
            c = esc(code),
            n = esc(&entry.name)
        );
    }
    if manifest.scenarios.is_empty() {
        s.push_str("No scenario has run in this folder yet.");
    }
    s.push_str("</nav>\n");
    s.push_str(body);
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

fn render_scenario(w: &mut Writer, d: &ScenarioData, opts: &ReportOptions) -> Result<String> {
    let code = d.code;
    let mut s = format!(
        "<section id=\"{c}\">\n<h2>{c}: {n}</h2>\n",
        c = esc(code),
        n = esc(&d.entry.name)
    );
    s.push_str(&counts_table(d));
    s.push_str("<h3>Stages</h3>\n");
    s.push_str(&stages_table(d));
    s.push_str(TIMINGS_BEGIN);
    s.push_str(&timings_table(d));
    s.push_str(TIMINGS_END);
    s.push('\n');
    s.push_str("<h3>Distributions</h3>\n");
    s.push_str(&render_plots(w, d)?);
    s.push_str("<h3>Contact sheets</h3>\n");
    s.push_str(&render_sheets(w, d, opts)?);
    s.push_str("<h3>Duplicates</h3>\n");
    s.push_str(&render_duplicates(w, d, opts)?);
    s.push_str("<h3>Rejects</h3>\n");
    s.push_str(&rejects_table(d, opts));
    s.push_str("<h3>Outputs</h3>\n");
    s.push_str(&outputs_table(d));
    if !d.notes.is_empty() {
        s.push_str("<h3>Notes</h3>\n<ul>\n");
        for n in &d.notes {
            let _ = writeln!(s, "<li class=\"note\">{}</li>", esc(n));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</section>\n");
    Ok(s)
}

fn num(n: impl std::fmt::Display) -> String {
    format!("<span class=\"n\">{n}</span>")
}

fn counts_table(d: &ScenarioData) -> String {
    let dash = || "–".to_string();
    let stored = d.frames.as_ref().map(|f| f.len());
    let dropped = d.dedup.len();
    let by_method = |m: crate::dedup::Method| d.dedup.iter().filter(|r| r.method == m).count();
    let instructions: Option<u64> = d.entry.stages.get("pack").map(|p| {
        p.outputs
            .iter()
            .filter(|o| o.path.ends_with("_instructions.json") && !o.path.contains("/syphus/"))
            .filter_map(|o| o.rows)
            .sum()
    });
    let mut by_stage: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in &d.rejects {
        *by_stage.entry(&r.stage).or_default() += 1;
    }
    let rejected = if by_stage.is_empty() {
        "0".to_string()
    } else {
        let parts: Vec<String> = by_stage.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{} ({})", d.rejects.len(), esc(&parts.join(", ")))
    };
    let rows = vec![
        vec![
            "units".into(),
            d.units.as_ref().map(|u| num(u.len())).unwrap_or_else(dash),
        ],
        vec!["frames stored".into(), stored.map(num).unwrap_or_else(dash)],
        vec![
            "frames kept".into(),
            stored
                .map(|n| num(n.saturating_sub(dropped)))
                .unwrap_or_else(dash),
        ],
        vec![
            "frames dropped as duplicates".into(),
            format!(
                "{} (exact {}, near {}, semantic {})",
                dropped,
                by_method(crate::dedup::Method::Exact),
                by_method(crate::dedup::Method::Phash),
                by_method(crate::dedup::Method::Semantic)
            ),
        ],
        vec!["items rejected".into(), rejected],
        vec![
            "Syphus messages".into(),
            d.message_words
                .as_ref()
                .map(|m| num(m.len()))
                .unwrap_or_else(dash),
        ],
        vec![
            "instructions".into(),
            instructions.map(num).unwrap_or_else(dash),
        ],
    ];
    html::table("counts", &["what", "count"], &rows)
}

fn stages_table(d: &ScenarioData) -> String {
    let rows: Vec<Vec<String>> = Stage::ALL
        .iter()
        .map(|stage| match d.entry.stages.get(stage.name()) {
            Some(e) => vec![
                stage.name().into(),
                "finished".into(),
                num(e.counts.ok),
                num(e.counts.rejected),
                num(e.counts.skipped),
                num(e.outputs.len()),
                num(html::bytes(e.outputs.iter().map(|o| o.bytes).sum())),
            ],
            None => {
                let mut row = vec![stage.name().into(), "not run".into()];
                row.extend(std::iter::repeat_n(String::new(), 5));
                row
            }
        })
        .collect();
    html::table(
        "stages",
        &[
            "stage", "state", "ok", "rejected", "skipped", "files", "bytes",
        ],
        &rows,
    )
}

/// The last run's `timings.json`: wall and CPU time, throughput (ok items per wall second) and
/// the CPU/wall ratio (about the number of busy cores).
fn timings_table(d: &ScenarioData) -> String {
    let Some(stages) = d.timings.as_ref().and_then(|t| t["stages"].as_array()) else {
        return "<p class=\"muted\">No timings.json.</p>\n".into();
    };
    let none_ran = !stages.iter().any(|st| st["status"] == "ran");
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|st| {
            // An up-to-date stage shows what the run that last ran it measured, if known.
            let earlier = st["status"] != "ran" && st["last_ran"].is_object();
            let src = if earlier { &st["last_ran"] } else { st };
            let f = |k: &str| src[k].as_f64();
            let wall = f("wall_s").unwrap_or(0.0);
            let ran = st["status"] == "ran" || earlier;
            let cpu = f("cpu_s");
            let ok = st["ok"].as_f64().unwrap_or(0.0);
            let secs = |v: f64| num(format!("{v:.3}"));
            vec![
                esc(st["stage"].as_str().unwrap_or("")),
                if earlier {
                    format!(
                        "{} (times of the run that last ran it)",
                        esc(st["status"].as_str().unwrap_or(""))
                    )
                } else {
                    esc(st["status"].as_str().unwrap_or(""))
                },
                if ran { secs(wall) } else { String::new() },
                match cpu {
                    Some(c) if ran => secs(c),
                    _ => String::new(),
                },
                if ran && wall > 0.0 {
                    num(format!("{:.1}", ok / wall))
                } else {
                    String::new()
                },
                match cpu {
                    Some(c) if ran && wall > 0.0 => num(format!("{:.2}", c / wall)),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    format!(
        "<p class=\"muted\">Timings of the last <code>mimicit</code> command on this scenario \
(<a href=\"../{}/timings.json\">timings.json</a>); stages that were up to date did not run{}.</p>\n{}",
        url(d.code),
        if none_ran {
            " (none ran: <code>--force</code> runs them again)"
        } else {
            ""
        },
        html::table(
            "timings",
            &["stage", "status", "wall s", "CPU s", "ok items/s", "CPU/wall"],
            &rows
        )
    )
}

fn render_plots(w: &mut Writer, d: &ScenarioData) -> Result<String> {
    let by_unit = d.frames_by_unit();
    let dropped = d.dropped();
    let mut plots: Vec<(&str, &str, Vec<f64>, Bins, &str)> = Vec::new();
    if d.frames.is_some() {
        // Units without any frame count as 0.
        let mut kept: BTreeMap<&str, f64> = d
            .units
            .iter()
            .flatten()
            .map(|u| (u.id.as_str(), 0.0))
            .collect();
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
        plots.push((
            "frames_per_unit",
            "Kept frames per unit",
            kept.into_values().collect(),
            Bins::Integers,
            "kept frames",
        ));
        plots.push((
            "unit_span",
            "Time from the first to the last stored frame of each video unit",
            span,
            Bins::Range(12),
            "seconds",
        ));
    }
    let code: Option<crate::config::Code> =
        serde_json::from_value(serde_json::Value::String(d.code.to_string())).ok();
    if let (Some(units), Some(code)) = (&d.units, code) {
        plots.push((
            "annotations_per_unit",
            "Annotation items per unit (captions, narrations, descriptions, ...)",
            units
                .iter()
                .map(|u| crate::corpus::annotation_count(code, &u.annotation) as f64)
                .collect(),
            Bins::Integers,
            "annotation items",
        ));
    }
    if let Some(v) = &d.message_words {
        plots.push((
            "message_words",
            "Words per Syphus message (one per unit)",
            v.clone(),
            Bins::Range(12),
            "words",
        ));
    }
    if let Some(v) = &d.instruction_words {
        plots.push((
            "instruction_words",
            "Words per instruction and its answer",
            v.clone(),
            Bins::Range(12),
            "words",
        ));
    }
    plots.push((
        "dedup_distance",
        "Hamming distance of each dropped frame's pHash to the kept frame's (0: exact duplicate)",
        d.dedup
            .iter()
            .filter(|r| r.method != crate::dedup::Method::Semantic)
            .map(|r| f64::from(r.distance))
            .collect(),
        Bins::Integers,
        "Hamming distance",
    ));
    let semantic: Vec<f64> = d
        .dedup
        .iter()
        .filter(|r| r.method == crate::dedup::Method::Semantic)
        .map(|r| 1.0 - f64::from(r.distance) / 1000.0)
        .collect();
    if !semantic.is_empty() {
        plots.push((
            "dedup_cosine",
            "CLIP cosine of each frame dropped by semantic dedup to the kept frame",
            semantic,
            Bins::Range(12),
            "cosine",
        ));
    }
    let mut s = String::from("<div class=\"plots\">\n");
    let mut empty = Vec::new();
    for (name, title, values, bins, x_label) in plots {
        let Some(svg) = plots::histogram_svg(&values, bins, x_label) else {
            empty.push(esc(title));
            continue;
        };
        let rel = format!("{}/{name}.svg", d.code);
        w.file(&rel, svg.as_bytes())?;
        let _ = writeln!(
            s,
            "<figure class=\"plot\"><img src=\"{}\" alt=\"{t}\" width=\"480\" height=\"280\">\
<figcaption>{t} (n = {})</figcaption></figure>",
            url(&rel),
            values.len(),
            t = esc(title)
        );
    }
    s.push_str("</div>\n");
    if !empty.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">No values for: {}.</p>",
            empty.join("; ")
        );
    }
    Ok(s)
}

fn render_sheets(w: &mut Writer, d: &ScenarioData, opts: &ReportOptions) -> Result<String> {
    let by_unit = d.frames_by_unit();
    if by_unit.is_empty() {
        return Ok("<p class=\"muted\">No stored frames.</p>\n".into());
    }
    let dropped = d.dropped();
    let units: BTreeMap<&str, &Unit> = d
        .units
        .iter()
        .flatten()
        .map(|u| (u.id.as_str(), u))
        .collect();
    let mut s = format!(
        "<p class=\"muted\">The first {} of {} units with frames, by id: their kept frames with \
timestamps; on the timeline, kept frames, frames dropped as duplicates, annotation times and \
content cuts between consecutive stored frames (luma-histogram change above {CUT_THRESHOLD}).</p>\n",
        opts.sheets.min(by_unit.len()),
        by_unit.len()
    );
    for (i, (unit, list)) in by_unit.iter().take(opts.sheets).enumerate() {
        let decoded: Vec<Option<RgbFrame>> = list
            .iter()
            .map(|f| crate::imaging::decode_file(&d.dir.join(&f.file)).ok())
            .collect();
        let unreadable: Vec<&str> = list
            .iter()
            .zip(&decoded)
            .filter(|(_, img)| img.is_none())
            .map(|(f, _)| f.image_id.as_str())
            .collect();
        let kept: Vec<usize> = (0..list.len())
            .filter(|&k| !dropped.contains_key(list[k].image_id.as_str()))
            .collect();
        let shown = sheet::spread(kept.len(), sheet::MAX_TILES);
        let tiles: Vec<Tile> = shown
            .iter()
            .map(|&k| {
                let f = list[kept[k]];
                Tile {
                    image: decoded[kept[k]]
                        .as_ref()
                        .and_then(|img| sheet::thumbnail(img).ok()),
                    label: sheet::time_label(f.time_s, f.index),
                    border: None,
                }
            })
            .collect();
        let rel = format!("{}/sheet_{i:03}.png", d.code);
        let picture = sheet::compose(&tiles, sheet::COLUMNS);
        w.file(&rel, &sheet::png(&picture)?)?;
        let _ = write!(
            s,
            "<figure class=\"sheet\"><img src=\"{}\" alt=\"frames of {}\">",
            url(&rel),
            esc(unit)
        );
        let unit_entry = units.get(unit).copied();
        if let Some(svg) = timeline(list, &decoded, &dropped, unit_entry, picture.width) {
            s.push_str(&svg);
        }
        let _ = write!(
            s,
            "<figcaption><span class=\"id\">{}</span>: {} frames stored, {} kept{}",
            esc(unit),
            list.len(),
            kept.len(),
            if shown.len() < kept.len() {
                format!(", {} shown (evenly spread)", shown.len())
            } else {
                String::new()
            }
        );
        if !unreadable.is_empty() {
            let _ = write!(
                s,
                "; <span class=\"note\">unreadable: {}</span>",
                esc(&unreadable.join(", "))
            );
        }
        s.push_str("</figcaption></figure>\n");
    }
    s.push_str(
        "<p class=\"legend muted\"><span><span class=\"swatch\" style=\"background:#1f6fb2\"></span>kept frame</span>\
<span><span class=\"swatch\" style=\"background:#8c959f\"></span>dropped duplicate</span>\
<span><span class=\"swatch\" style=\"background:#cf222e\"></span>content cut</span>\
<span><span class=\"swatch\" style=\"background:#bf8700\"></span>annotation time</span></p>\n",
    );
    Ok(s)
}

/// Content changes between consecutive readable frames above [`CUT_THRESHOLD`]: (time halfway
/// between the two frames, change).
fn cuts(frames: &[(f64, &RgbFrame)]) -> Vec<(f64, f64)> {
    let sigs: Vec<(f64, Signature)> = frames
        .iter()
        .map(|(t, img)| (*t, luma_signature(img)))
        .collect();
    sigs.windows(2)
        .filter_map(|p| {
            let change = p[0].1.distance(&p[1].1);
            (change > CUT_THRESHOLD).then_some(((p[0].0 + p[1].0) / 2.0, change))
        })
        .collect()
}

fn luma_signature(img: &RgbFrame) -> Signature {
    let luma: Vec<u8> = img
        .data
        .chunks_exact(3)
        .map(|p| ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8)
        .collect();
    let (w, h) = (img.width as usize, img.height as usize);
    Signature::from_gray(w, h, w, &luma)
}

/// An inline SVG strip of a video unit's timeline, or None when its frames carry no times.
fn timeline(
    list: &[&FrameRecord],
    decoded: &[Option<RgbFrame>],
    dropped: &BTreeMap<&str, &DedupRow>,
    unit: Option<&Unit>,
    width: u32,
) -> Option<String> {
    let timed: Vec<(f64, &FrameRecord, Option<&RgbFrame>)> = list
        .iter()
        .zip(decoded)
        .filter_map(|(f, img)| Some((f.time_s?, *f, img.as_ref())))
        .collect();
    if timed.is_empty() {
        return None;
    }
    let marks: Vec<f64> = unit.map(|u| u.times.clone()).unwrap_or_default();
    let readable: Vec<(f64, &RgbFrame)> = timed
        .iter()
        .filter_map(|(t, _, img)| Some((*t, (*img)?)))
        .collect();
    let cuts = cuts(&readable);
    let all = timed.iter().map(|t| t.0).chain(marks.iter().copied());
    let (mut t0, mut t1) = all.fold((0.0f64, 0.0f64), |(a, b), t| (a.min(t), b.max(t)));
    if t1 - t0 < 1e-6 {
        t1 = t0 + 1.0;
    }
    let pad = (t1 - t0) * 0.02;
    t0 = (t0 - pad).max(0.0).min(t0);
    t1 += pad;
    // As wide as the contact sheet above it.
    let w = f64::from(width.max(200));
    let x = |t: f64| 10.0 + (t - t0) / (t1 - t0) * (w - 20.0);
    let mut s = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"44\" viewBox=\"0 0 {w} 44\" role=\"img\">\
<rect x=\"10\" y=\"14\" width=\"{}\" height=\"12\" fill=\"#eaeef2\"/>",
        w - 20.0
    );
    for t in &marks {
        let _ = write!(
            s,
            "<path d=\"M{0:.1} 13 l-4 -7 h8 z\" fill=\"#bf8700\"><title>annotation time {1}</title></path>",
            x(*t),
            sheet::time_label(Some(*t), 0)
        );
    }
    for (t, f, _) in &timed {
        let is_dropped = dropped.contains_key(f.image_id.as_str());
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"28\" stroke=\"{2}\" stroke-width=\"2\"><title>{3} {4}{5}</title></line>",
            x(*t),
            if is_dropped { 18 } else { 12 },
            if is_dropped { "#8c959f" } else { "#1f6fb2" },
            esc(&f.image_id),
            sheet::time_label(Some(*t), f.index),
            if is_dropped { " (dropped)" } else { "" }
        );
    }
    for (t, change) in &cuts {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"8\" y2=\"32\" stroke=\"#cf222e\" stroke-width=\"2\" stroke-dasharray=\"3 2\"><title>cut near {1}: change {2:.2}</title></line>",
            x(*t),
            sheet::time_label(Some(*t), 0),
            change
        );
    }
    let _ = write!(
        s,
        "<text x=\"10\" y=\"42\" font-size=\"10\" fill=\"#57606a\">{}</text>\
<text x=\"{}\" y=\"42\" font-size=\"10\" fill=\"#57606a\" text-anchor=\"end\">{}</text></svg>",
        sheet::time_label(Some(t0), 0),
        w - 10.0,
        sheet::time_label(Some(t1), 0)
    );
    Some(s)
}

fn render_duplicates(w: &mut Writer, d: &ScenarioData, opts: &ReportOptions) -> Result<String> {
    if d.dedup.is_empty() {
        return Ok("<p class=\"muted\">No frame was dropped as a duplicate.</p>\n".into());
    }
    let frames: BTreeMap<&str, &FrameRecord> = d
        .frames
        .iter()
        .flatten()
        .map(|f| (f.image_id.as_str(), f))
        .collect();
    let mut groups: BTreeMap<&str, Vec<&DedupRow>> = BTreeMap::new();
    for r in &d.dedup {
        groups.entry(&r.kept_id).or_default().push(r);
    }
    let shown = opts.dedup_groups.min(groups.len());
    let mut s = format!(
        "<p class=\"muted\">{} {}, {} shown (the first by kept frame id): the kept frame (green) \
and the frames dropped in its favour (red), with the method and the Hamming distance of their \
pHashes.</p>\n",
        groups.len(),
        if groups.len() == 1 { "group" } else { "groups" },
        shown
    );
    for (i, (kept, rows)) in groups.iter().take(opts.dedup_groups).enumerate() {
        let tile = |id: &str, border| match frames.get(id) {
            Some(f) => sheet::frame_tile(&d.dir, f, Some(border)),
            None => Tile {
                image: None,
                label: String::new(),
                border: Some(border),
            },
        };
        let mut tiles = vec![tile(kept, sheet::KEPT)];
        tiles.extend(
            rows.iter()
                .take(sheet::MAX_TILES - 1)
                .map(|r| tile(&r.dropped_id, sheet::DROPPED)),
        );
        let rel = format!("{}/duplicates_{i:03}.png", d.code);
        w.file(&rel, &sheet::png(&sheet::compose(&tiles, sheet::COLUMNS))?)?;
        let dropped: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "<span class=\"id\">{}</span> ({}, distance {})",
                    esc(&r.dropped_id),
                    r.method.as_str(),
                    r.distance
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<figure class=\"sheet\"><img src=\"{}\" alt=\"duplicates of {}\"><figcaption>kept \
<span class=\"id\">{}</span>; dropped {}</figcaption></figure>",
            url(&rel),
            esc(kept),
            esc(kept),
            dropped.join(", ")
        );
    }
    Ok(s)
}

fn rejects_table(d: &ScenarioData, opts: &ReportOptions) -> String {
    if d.rejects.is_empty() {
        return "<p class=\"muted\">Nothing was rejected.</p>\n".into();
    }
    let rows: Vec<Vec<String>> = d
        .rejects
        .iter()
        .take(opts.rejects)
        .map(|(file, r)| {
            vec![
                format!("<a href=\"../{}\">{}</a>", url(file), esc(&r.stage)),
                format!("<span class=\"id\">{}</span>", esc(&r.item)),
                format!("<span class=\"id\">{}</span>", esc(&r.path)),
                esc(&r.error),
            ]
        })
        .collect();
    let mut s = html::table("rejects", &["stage", "item", "file", "error"], &rows);
    if d.rejects.len() > opts.rejects {
        let _ = writeln!(
            s,
            "<p class=\"muted\">{} more in the rejects files.</p>",
            d.rejects.len() - opts.rejects
        );
    }
    s
}

fn outputs_table(d: &ScenarioData) -> String {
    let mut rows = Vec::new();
    for stage in Stage::ALL {
        let Some(e) = d.entry.stages.get(stage.name()) else {
            continue;
        };
        for o in &e.outputs {
            rows.push(vec![
                stage.name().into(),
                format!("<a href=\"../{}\">{}</a>", url(&o.path), esc(&o.path)),
                num(html::bytes(o.bytes)),
                o.rows.map(num).unwrap_or_default(),
            ]);
        }
    }
    let mut s = format!(
        "<p class=\"muted\">Every file the manifest lists for {}; the frame store \
(<code>{}/frames/</code>) is listed in <code>frames.parquet</code>.</p>\n",
        esc(d.code),
        esc(d.code)
    );
    s.push_str(&html::table(
        "outputs",
        &["stage", "file", "size", "rows"],
        &rows,
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(c: [u8; 3]) -> RgbFrame {
        RgbFrame::new(32, 32, c.repeat(32 * 32))
    }

    #[test]
    fn a_hard_cut_is_found_and_a_steady_shot_is_not() {
        let (dark, dark2, light) = (solid([20, 20, 20]), solid([21, 20, 20]), solid([230; 3]));
        let found = cuts(&[(0.0, &dark), (1.0, &dark2), (2.0, &light), (3.0, &light)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1.5);
        assert!(cuts(&[(0.0, &dark), (1.0, &dark)]).is_empty());
    }

    #[test]
    fn stale_files_go_and_written_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("report");
        std::fs::create_dir_all(root.join("DC")).unwrap();
        std::fs::create_dir_all(root.join("OLD")).unwrap();
        for f in ["index.html", "DC/a.svg", "DC/b.svg", "OLD/x.png"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let keep: BTreeSet<PathBuf> = ["index.html", "DC/a.svg"]
            .iter()
            .map(|f| root.join(f))
            .collect();
        remove_unlisted(&root, &keep).unwrap();
        assert!(root.join("index.html").is_file() && root.join("DC/a.svg").is_file());
        assert!(!root.join("DC/b.svg").exists());
        assert!(!root.join("OLD").exists());
    }

    #[test]
    fn no_manifest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), &ReportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("manifest.json"), "{err}");
        assert!(!dir.path().join(DIR_NAME).exists());
    }
}
