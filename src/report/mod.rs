//! `mimicit report OUT` (and the last step of `mimicit run`): `OUT/report/index.html`, one page
//! that needs no network and no script, with, per scenario of the manifest, the counts (units,
//! frames stored / kept / dropped, rejects, instructions), histograms (SVG), contact sheets of a
//! few units with a timeline of their frames and content cuts (PNG + inline SVG), the duplicate
//! groups side by side, the frames the quality filters took (`[filter]`, by reason), the
//! rejects, the stage timings and links to every output.
//!
//! Everything under `OUT/report/` is rebuilt from the run's own files, so the same run gives the
//! same bytes, except the timings section of `index.html` (between `<!-- timings -->` and
//! `<!-- /timings -->`), which shows `timings.json`. Like `timings.json`, the report is not
//! listed in the manifest: it describes the outputs and is not one of them. Files of an earlier
//! report that this one did not write are removed.
//!
//! Two steps: [`load::load`] reads the manifest, the tables and the JSON files into plain data
//! ([`load::RunData`]); the rendering here (with [`html`], [`plots`] and [`sheet`]) turns that
//! data into the page, its SVG plots and its PNG sheets, and reads nothing but the frame
//! pictures the data names, one sheet at a time (see [`load`] for why).

pub mod html;
pub mod load;
pub mod plots;
pub mod sheet;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::dedup::Method;
use crate::error::{Error, Result};
use crate::model::RgbFrame;
use crate::video::scenes::Signature;
use html::{esc, url};
use load::{DroppedFrame, FrameRef, RunData, ScenarioData, SheetFrame};
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

/// Writes `OUT/report/`: [`load::load`], then [`render`].
pub fn write(out: &Path, opts: &ReportOptions) -> Result<ReportSummary> {
    let data = load::load(out, opts)?;
    render(&data, &out.join(DIR_NAME), opts)
}

/// Writes the report of `data` into `dir` (`OUT/report/`), removing the files of an earlier
/// report that it does not write.
pub fn render(data: &RunData, dir: &Path, opts: &ReportOptions) -> Result<ReportSummary> {
    let mut w = Writer {
        dir: dir.to_path_buf(),
        written: BTreeSet::new(),
    };
    let mut notes = Vec::new();
    let mut body = String::new();
    for d in &data.scenarios {
        body.push_str(&render_scenario(&mut w, d, opts)?);
        notes.extend(d.notes.iter().map(|n| format!("{}: {n}", d.code)));
    }
    let page = page(data, &body);
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

fn page(data: &RunData, body: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>mimicit report</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n\
<h1>mimicit report</h1>\n<p class=\"muted\">Made by {} from <a href=\"../manifest.json\">manifest.json</a>",
        html::STYLE,
        esc(&data.tool)
    );
    if data.data_yaml {
        s.push_str(" and the trainer's <a href=\"../data.yaml\">data.yaml</a>");
    }
    s.push_str(".</p>\n<nav>");
    for d in &data.scenarios {
        let _ = write!(
            s,
            "<a href=\"#{c}\">{c} ({n})</a>",
            c = esc(&d.code),
            n = esc(&d.name)
        );
    }
    if data.scenarios.is_empty() {
        s.push_str("No scenario has run in this folder yet.");
    }
    s.push_str("</nav>\n");
    s.push_str(body);
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

fn render_scenario(w: &mut Writer, d: &ScenarioData, opts: &ReportOptions) -> Result<String> {
    let mut s = format!(
        "<section id=\"{c}\">\n<h2>{c}: {n}</h2>\n",
        c = esc(&d.code),
        n = esc(&d.name)
    );
    s.push_str(&counts_table(d));
    s.push_str("<h3>Stages</h3>\n");
    s.push_str(&stages_table(d));
    s.push_str(TIMINGS_BEGIN);
    s.push_str(&timings_table(d));
    // Requests, latency and cost of the last syphus run: measurements, like the timings.
    s.push_str(&syphus_table(d));
    s.push_str(TIMINGS_END);
    s.push('\n');
    s.push_str("<h3>Distributions</h3>\n");
    s.push_str(&render_plots(w, d)?);
    s.push_str("<h3>Contact sheets</h3>\n");
    s.push_str(&render_sheets(w, d, opts)?);
    s.push_str("<h3>Duplicates</h3>\n");
    s.push_str(&render_duplicates(w, d)?);
    s.push_str("<h3>Filtered frames</h3>\n");
    s.push_str(&render_filtered(w, d)?);
    s.push_str("<h3>Rejects</h3>\n");
    s.push_str(&rejects_table(d));
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
    let t = &d.totals;
    let filtered = t.filtered();
    let rejected = if d.rejects.by_stage.is_empty() {
        "0".to_string()
    } else {
        let parts: Vec<String> = d
            .rejects
            .by_stage
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!("{} ({})", d.rejects.total, esc(&parts.join(", ")))
    };
    let rows = vec![
        vec!["units".into(), t.units.map(num).unwrap_or_else(dash)],
        vec![
            "frames stored".into(),
            t.frames_stored.map(num).unwrap_or_else(dash),
        ],
        vec![
            "frames kept".into(),
            t.frames_stored
                .map(|n| num(n.saturating_sub(t.dropped)))
                .unwrap_or_else(dash),
        ],
        vec![
            "frames dropped as duplicates".into(),
            format!(
                "{} (exact {}, near {}, semantic {})",
                t.dropped - filtered,
                t.dropped_with(Method::Exact),
                t.dropped_with(Method::Phash),
                t.dropped_with(Method::Semantic)
            ),
        ],
        vec![
            "frames dropped by quality filters".into(),
            format!(
                "{} (uniform {}, blur {})",
                filtered,
                t.dropped_with(Method::Uniform),
                t.dropped_with(Method::Blur)
            ),
        ],
        vec!["items rejected".into(), rejected],
        vec![
            "Syphus messages".into(),
            t.messages.map(num).unwrap_or_else(dash),
        ],
        vec![
            "instructions".into(),
            t.instructions.map(num).unwrap_or_else(dash),
        ],
    ];
    html::table("counts", &["what", "count"], &rows)
}

fn stages_table(d: &ScenarioData) -> String {
    let rows: Vec<Vec<String>> = d
        .stages
        .iter()
        .map(|stage| match &stage.run {
            Some(e) => vec![
                stage.id.name().into(),
                "finished".into(),
                num(e.counts.ok),
                num(e.counts.rejected),
                num(e.counts.skipped),
                num(e.outputs.len()),
                num(html::bytes(e.outputs.iter().map(|o| o.bytes).sum())),
            ],
            None => {
                let mut row = vec![stage.id.name().into(), "not run".into()];
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

/// The last syphus run (`syphus/stats.json`): requests, tokens, retries, failures by cause,
/// the latency histogram and the cost; nothing when the stage has not run.
fn syphus_table(d: &ScenarioData) -> String {
    let Some(st) = &d.syphus else {
        return String::new();
    };
    let n = |v: u64| num(v.to_string());
    let mut rows = vec![
        vec!["queries".to_string(), n(st.queries)],
        vec!["distinct requests".into(), n(st.requests_planned)],
        vec!["answered from the store".into(), n(st.served_from_store)],
        vec!["HTTP requests sent".into(), n(st.requests_sent)],
        vec!["of them retries".into(), n(st.retries)],
        vec![
            "reask and translation requests".into(),
            n(st.reask_requests + st.translation_requests),
        ],
        vec!["most in flight".into(), n(st.in_flight_peak)],
        vec![
            "tokens in / out".into(),
            format!("{} / {}", n(st.prompt_tokens), n(st.completion_tokens)),
        ],
        vec![
            "cost".into(),
            st.cost
                .map(|c| num(format!("{c:.4}")))
                .unwrap_or_else(|| "(no prices set)".into()),
        ],
    ];
    for (cause, count) in &st.failures {
        rows.push(vec![format!("failed attempts: {}", esc(cause)), n(*count)]);
    }
    let h = &st.latency;
    let mut lat = Vec::new();
    let mut low = 0;
    for (i, count) in h.counts.iter().enumerate() {
        let label = match h.bounds_ms.get(i) {
            Some(b) => format!("{low}–{b} ms"),
            None => format!("over {low} ms"),
        };
        if let Some(b) = h.bounds_ms.get(i) {
            low = *b;
        }
        if *count > 0 {
            lat.push(vec![label, n(*count)]);
        }
    }
    format!(
        "<h3>Syphus</h3>\n<p class=\"muted\">The last syphus run (<a href=\"../{}/syphus/stats.json\">stats.json</a>).</p>\n{}{}",
        url(&d.code),
        html::table("syphus", &["", "count"], &rows),
        html::table("syphus-latency", &["latency", "responses"], &lat),
    )
}

/// The last run's `timings.json`: wall and CPU time, throughput (ok items per wall second) and
/// the CPU/wall ratio (about the number of busy cores).
fn timings_table(d: &ScenarioData) -> String {
    let Some(stages) = &d.timings else {
        return "<p class=\"muted\">No timings.json.</p>\n".into();
    };
    let none_ran = !stages.iter().any(|st| st.status == "ran");
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|st| {
            // An up-to-date stage shows what the run that last ran it measured, if known.
            let (wall, cpu, ran) = (st.wall_s, st.cpu_s, st.has_times());
            let secs = |v: f64| num(format!("{v:.3}"));
            vec![
                esc(&st.stage),
                if st.from_last_ran {
                    format!("{} (times of the run that last ran it)", esc(&st.status))
                } else {
                    esc(&st.status)
                },
                if ran { secs(wall) } else { String::new() },
                match cpu {
                    Some(c) if ran => secs(c),
                    _ => String::new(),
                },
                if ran && wall > 0.0 {
                    num(format!("{:.1}", st.ok / wall))
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
        url(&d.code),
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
    let v = &d.distributions;
    let mut plots: Vec<(&str, &str, &[f64], Bins, &str)> = Vec::new();
    if let Some(kept) = &v.frames_per_unit {
        plots.push((
            "frames_per_unit",
            "Kept frames per unit",
            kept,
            Bins::Integers,
            "kept frames",
        ));
    }
    if let Some(span) = &v.unit_span {
        plots.push((
            "unit_span",
            "Time from the first to the last stored frame of each video unit",
            span,
            Bins::Range(12),
            "seconds",
        ));
    }
    if let Some(a) = &v.annotations_per_unit {
        plots.push((
            "annotations_per_unit",
            "Annotation items per unit (captions, narrations, descriptions, ...)",
            a,
            Bins::Integers,
            "annotation items",
        ));
    }
    if let Some(m) = &v.message_words {
        plots.push((
            "message_words",
            "Words per Syphus message (one per unit)",
            m,
            Bins::Range(12),
            "words",
        ));
    }
    if let Some(i) = &v.instruction_words {
        plots.push((
            "instruction_words",
            "Words per instruction and its answer",
            i,
            Bins::Range(12),
            "words",
        ));
    }
    plots.push((
        "dedup_distance",
        "Hamming distance of each dropped frame's pHash to the kept frame's (0: exact duplicate)",
        &v.dedup_distance,
        Bins::Integers,
        "Hamming distance",
    ));
    if !v.dedup_cosine.is_empty() {
        plots.push((
            "dedup_cosine",
            "CLIP cosine of each frame dropped by semantic dedup to the kept frame",
            &v.dedup_cosine,
            Bins::Range(12),
            "cosine",
        ));
    }
    let mut s = String::from("<div class=\"plots\">\n");
    let mut empty = Vec::new();
    for (name, title, values, bins, x_label) in plots {
        let Some(svg) = plots::histogram_svg(values, bins, x_label) else {
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
    let total = d.sheets.units_with_frames;
    if total == 0 {
        return Ok("<p class=\"muted\">No stored frames.</p>\n".into());
    }
    let mut s = format!(
        "<p class=\"muted\">The first {} of {} units with frames, by id: their kept frames with \
timestamps; on the timeline, kept frames, frames dropped as duplicates or by a quality filter, \
annotation times and content cuts between consecutive stored frames (luma-histogram change above {CUT_THRESHOLD}).</p>\n",
        opts.sheets.min(total),
        total
    );
    for (i, unit) in d.sheets.units.iter().enumerate() {
        let list = &unit.frames;
        // The pictures of this sheet only: read here, dropped when it is drawn.
        let decoded: Vec<Option<RgbFrame>> = list
            .iter()
            .map(|f| crate::imaging::decode_file(&d.dir.join(&f.frame.file)).ok())
            .collect();
        let unreadable: Vec<&str> = list
            .iter()
            .zip(&decoded)
            .filter(|(_, img)| img.is_none())
            .map(|(f, _)| f.frame.image_id.as_str())
            .collect();
        let kept: Vec<usize> = (0..list.len())
            .filter(|&k| list[k].dropped.is_none())
            .collect();
        let shown = sheet::spread(kept.len(), sheet::MAX_TILES);
        let tiles: Vec<Tile> = shown
            .iter()
            .map(|&k| {
                let f = &list[kept[k]].frame;
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
            esc(&unit.unit_id)
        );
        if let Some(svg) = timeline(list, &decoded, &unit.annotation_times, picture.width) {
            s.push_str(&svg);
        }
        let _ = write!(
            s,
            "<figcaption><span class=\"id\">{}</span>: {} frames stored, {} kept{}",
            esc(&unit.unit_id),
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
<span><span class=\"swatch\" style=\"background:#8250df\"></span>filtered (uniform or blurred)</span>\
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
        .map(|(t, img)| (*t, Signature::from_rgb(img)))
        .collect();
    sigs.windows(2)
        .filter_map(|p| {
            let change = p[0].1.distance(&p[1].1);
            (change > CUT_THRESHOLD).then_some(((p[0].0 + p[1].0) / 2.0, change))
        })
        .collect()
}

/// An inline SVG strip of a video unit's timeline (its stored frames, their pictures as
/// decoded, its annotation times), or None when its frames carry no times.
fn timeline(
    list: &[SheetFrame],
    decoded: &[Option<RgbFrame>],
    marks: &[f64],
    width: u32,
) -> Option<String> {
    let timed: Vec<(f64, &SheetFrame, Option<&RgbFrame>)> = list
        .iter()
        .zip(decoded)
        .filter_map(|(f, img)| Some((f.frame.time_s?, f, img.as_ref())))
        .collect();
    if timed.is_empty() {
        return None;
    }
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
    for t in marks {
        let _ = write!(
            s,
            "<path d=\"M{0:.1} 13 l-4 -7 h8 z\" fill=\"#bf8700\"><title>annotation time {1}</title></path>",
            x(*t),
            sheet::time_label(Some(*t), 0)
        );
    }
    for (t, f, _) in &timed {
        let (colour, note) = match f.dropped {
            Some(m) if m.is_filter() => ("#8250df", format!(" (filtered: {})", m.as_str())),
            Some(_) => ("#8c959f", " (dropped)".to_string()),
            None => ("#1f6fb2", String::new()),
        };
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"28\" stroke=\"{2}\" stroke-width=\"2\"><title>{3} {4}{5}</title></line>",
            x(*t),
            if f.dropped.is_some() { 18 } else { 12 },
            colour,
            esc(&f.frame.image_id),
            sheet::time_label(Some(*t), f.frame.index),
            note
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

/// The tile of a frame the page names: its picture, read now, or an empty bordered cell when
/// the frame is not in `frames.parquet`.
fn named_tile(d: &ScenarioData, frame: Option<&FrameRef>, border: [u8; 3]) -> Tile {
    match frame {
        Some(f) => sheet::frame_tile(&d.dir, f, Some(border)),
        None => Tile {
            image: None,
            label: String::new(),
            border: Some(border),
        },
    }
}

fn render_duplicates(w: &mut Writer, d: &ScenarioData) -> Result<String> {
    let dup = &d.duplicates;
    if dup.groups == 0 {
        return Ok("<p class=\"muted\">No frame was dropped as a duplicate.</p>\n".into());
    }
    let mut s = format!(
        "<p class=\"muted\">{} {}, {} shown (the first by kept frame id): the kept frame (green) \
and the frames dropped in its favour (red), with the method and the Hamming distance of their \
pHashes.</p>\n",
        dup.groups,
        if dup.groups == 1 { "group" } else { "groups" },
        dup.shown.len()
    );
    for (i, group) in dup.shown.iter().enumerate() {
        let mut tiles = vec![named_tile(d, group.kept.as_ref(), sheet::KEPT)];
        tiles.extend(
            group
                .dropped
                .iter()
                .take(sheet::MAX_TILES - 1)
                .map(|r| named_tile(d, r.frame.as_ref(), sheet::DROPPED)),
        );
        let rel = format!("{}/duplicates_{i:03}.png", d.code);
        w.file(&rel, &sheet::png(&sheet::compose(&tiles, sheet::COLUMNS))?)?;
        let dropped: Vec<String> = group
            .dropped
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
            esc(&group.kept_id),
            esc(&group.kept_id),
            dropped.join(", ")
        );
    }
    Ok(s)
}

/// The frames the quality filters took, one contact sheet per reason (the first
/// [`sheet::MAX_TILES`] by id), each with the measure that decided and the frame kept in its
/// place.
fn render_filtered(w: &mut Writer, d: &ScenarioData) -> Result<String> {
    let mut s = String::new();
    for group in &d.filtered {
        let (what, measure) = match group.method {
            Method::Uniform => (
                "black or of one colour",
                "thousandths of the pixels within 8 luma levels of the median",
            ),
            Method::Blur => ("blurred", "variance of the Laplacian of the luma"),
            // Not filters: the loader makes no group of them.
            Method::Exact | Method::Phash | Method::Semantic => ("", ""),
        };
        let method = group.method.as_str();
        let shown: &[DroppedFrame] = &group.shown;
        let tiles: Vec<Tile> = shown
            .iter()
            .map(|r| named_tile(d, r.frame.as_ref(), sheet::DROPPED))
            .collect();
        let rel = format!("{}/filtered_{method}.png", d.code);
        w.file(&rel, &sheet::png(&sheet::compose(&tiles, sheet::COLUMNS))?)?;
        let listed: Vec<String> = shown
            .iter()
            .map(|r| {
                format!(
                    "<span class=\"id\">{}</span> ({}, kept <span class=\"id\">{}</span>)",
                    esc(&r.dropped_id),
                    r.distance,
                    esc(&r.kept_id)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<figure class=\"sheet\"><img src=\"{}\" alt=\"frames filtered as {}\"><figcaption>{} \
{} {} ({}{}; in brackets the {} and the frame kept in its place): {}</figcaption></figure>",
            url(&rel),
            method,
            group.total,
            if group.total == 1 { "frame" } else { "frames" },
            what,
            method,
            if group.total > shown.len() {
                format!(", the first {} shown", shown.len())
            } else {
                String::new()
            },
            measure,
            listed.join(", ")
        );
    }
    if s.is_empty() {
        s.push_str("<p class=\"muted\">No frame was taken by a quality filter.</p>\n");
    }
    Ok(s)
}

fn rejects_table(d: &ScenarioData) -> String {
    let r = &d.rejects;
    if r.total == 0 {
        return "<p class=\"muted\">Nothing was rejected.</p>\n".into();
    }
    let rows: Vec<Vec<String>> = r
        .shown
        .iter()
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
    if r.total > r.shown.len() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">{} more in the rejects files.</p>",
            r.total - r.shown.len()
        );
    }
    s
}

fn outputs_table(d: &ScenarioData) -> String {
    let mut rows = Vec::new();
    for stage in &d.stages {
        let Some(e) = &stage.run else {
            continue;
        };
        for o in &e.outputs {
            rows.push(vec![
                stage.id.name().into(),
                format!("<a href=\"../{}\">{}</a>", url(&o.path), esc(&o.path)),
                num(html::bytes(o.bytes)),
                o.rows.map(num).unwrap_or_default(),
            ]);
        }
    }
    let mut s = format!(
        "<p class=\"muted\">Every file the manifest lists for {}; the frame store \
(<code>{}/frames/</code>) is listed in <code>frames.parquet</code>.</p>\n",
        esc(&d.code),
        esc(&d.code)
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
