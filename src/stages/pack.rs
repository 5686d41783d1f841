//! Stage 6, pack: trainer-ready shards from the kept frames and the Syphus answers.
//!
//! - `{CODE}.parquet`: the images, base64 with the image id as the pandas index (what Otter's
//!   loader reads), or parts `{CODE}-00000-of-000NN.parquet` of at most `pack.max_part_bytes`,
//!   split by unit so that each part is self-contained;
//! - `{CODE}_instructions.json` / `{CODE}_train.json` (per part: `{part stem}_instructions.json`);
//! - `OUT/data.yaml`, written by the pipeline from the manifest.
//!
//! Instruction ids are numbered once over the whole scenario (units in id order, then answers in
//! file order, then pairs in text order) and never renumbered per part, so they are unique across
//! parts and stable under a change of part size.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Code;
use crate::error::{Error, Result};
use crate::journal::{files_present, Journal};
use crate::manifest::{Counts, Manifest};
use crate::pipeline::{StageContext, StageOutput};
use crate::shards::instructions::RelIns;
use crate::shards::{self, InstructionsFile, Meta, Packed, UnitImages};

const STAGE: &str = "pack";

/// A journaled images part: what it was made from, and its files (relative to `OUT/{CODE}`) with
/// their sizes.
#[derive(Serialize, Deserialize)]
struct Done {
    digest: String,
    files: Vec<(String, u64)>,
}

/// A journaled WebDataset shard.
#[derive(Serialize, Deserialize)]
struct ShardDone {
    digest: String,
    info: shards::webdataset::ShardInfo,
}

/// What a part's files are made of: its image ids with their stored files (content addressed,
/// so the name stands for the bytes) and its instructions.
fn part_digest(
    image_ids: &BTreeSet<&str>,
    frame_of: &BTreeMap<&str, &crate::model::FrameRecord>,
    file: &InstructionsFile,
) -> String {
    let mut h = blake3::Hasher::new();
    for id in image_ids {
        h.update(id.as_bytes());
        h.update(&[0]);
        h.update(frame_of[id].file.as_bytes());
        h.update(&[0]);
    }
    h.update(&serde_json::to_vec(file).expect("instructions serialise"));
    h.finalize().to_hex().to_string()
}

/// Paths under `dir` with their sizes, for a journal entry.
fn sizes_of(dir: &Path, paths: &[std::path::PathBuf]) -> Result<Vec<(String, u64)>> {
    paths
        .iter()
        .map(|p| {
            let len = std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
            let rel = p.strip_prefix(dir).unwrap_or(p);
            Ok((rel.to_string_lossy().into_owned(), len))
        })
        .collect()
}

pub fn run(ctx: &StageContext) -> Result<StageOutput> {
    let scenario = ctx.scenario;
    let code = scenario.code;
    let units = crate::tables::read_units(&super::units_path(ctx))?;
    let all_frames = crate::tables::read_frames(&super::frames_path(ctx))?;
    // Dropped duplicates are replaced by the frame kept in their place, so no instruction
    // refers to an image that is not packed. Only a dedup run this manifest records counts:
    // a dedup.parquet left by an older run is ignored.
    let remap = super::dedup_remap(ctx)?;
    let frames = remap.kept_frames(&all_frames);

    // Frames of each unit in time order (frames.parquet is already in unit, then index order).
    let mut by_unit: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in &all_frames {
        by_unit
            .entry(f.unit_id.as_str())
            .or_default()
            .push(f.image_id.as_str());
    }
    // Kept frames by image id (an image shared by two units, as COCO pairs are, is one entry).
    let frame_of: BTreeMap<&str, &crate::model::FrameRecord> =
        frames.iter().map(|f| (f.image_id.as_str(), f)).collect();
    let unit_images: Vec<UnitImages> = units
        .iter()
        .map(|u| UnitImages {
            unit_id: u.id.clone(),
            image_ids: by_unit
                .get(u.id.as_str())
                .map(|ids| remap.unit_ids(ids))
                .unwrap_or_default(),
        })
        .filter(|u| !u.image_ids.is_empty())
        .collect();

    let mut rejects = Vec::new();
    let mut answers = Vec::new();
    let answer_files: Vec<String> = scenario
        .answers
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for path in &scenario.answers {
        let (a, r) = shards::read_answers(path)?;
        answers.extend(a);
        rejects.extend(r.into_iter().map(|mut r| {
            if r.path.is_empty() {
                r.path = path.display().to_string();
            }
            r
        }));
    }
    if scenario.answers.is_empty() {
        tracing::warn!(
            "{code}: no Syphus answers (pack.answers or --answers): writing the images only"
        );
    }
    let mut packed = shards::build_instructions(
        code,
        &unit_images,
        &answers,
        Meta::with_author(&scenario.config.pack.author),
    );
    if let Some(RelIns::Knn(k)) = RelIns::parse(&scenario.config.pack.rel_ins) {
        let neighbours = visual_neighbours(ctx, &packed, &unit_images, k)?;
        packed.set_rel_ins_from_neighbours(&neighbours);
    }
    let with_images: BTreeSet<&str> = unit_images.iter().map(|u| u.unit_id.as_str()).collect();
    let imageless: BTreeSet<&str> = units
        .iter()
        .map(|u| u.id.as_str())
        .filter(|id| !with_images.contains(id))
        .collect();
    rejects.extend(packed.rejects.into_iter().map(|mut r| {
        if r.path.is_empty() {
            r.path = answer_files.join(", ");
        }
        if imageless.contains(r.item.as_str()) {
            // Known to the scan, but no frame of it survived (annotation-only unit, media that
            // gave no frame, or every frame deduplicated away): the trainer needs images.
            r.error = "answer for a unit without kept frames (annotation-only, or its media gave none): not packed".into();
        }
        r
    }));

    // Parts: units in order, each part's size estimated from the base64 of its images.
    let sizes: Vec<u64> = unit_images
        .iter()
        .map(|u| {
            u.image_ids
                .iter()
                .map(|id| shards::base64_len(frame_of[id.as_str()].bytes))
                .sum()
        })
        .collect();
    let plan = shards::plan_parts(&sizes, scenario.config.pack.max_part_bytes);
    let names = shards::part_names(code, plan.len().max(1));
    let ranges: BTreeMap<&str, std::ops::Range<usize>> = packed
        .unit_ranges
        .iter()
        .map(|(id, r)| (id.as_str(), r.clone()))
        .collect();

    let mut outputs = Vec::new();
    let parts = if plan.is_empty() {
        vec![Vec::new()]
    } else {
        plan
    };
    let progress = crate::progress::Progress::new(ctx.progress, "pack", frame_of.len() as u64);
    let journal = Journal::open(&ctx.dir, STAGE, &ctx.config_hash)?;
    for (part, name) in parts.iter().zip(&names) {
        let stem = name.trim_end_matches(".parquet");
        let mut image_ids = BTreeSet::new();
        let mut data = Vec::new();
        for &i in part {
            let unit = &unit_images[i];
            image_ids.extend(unit.image_ids.iter().map(String::as_str));
            if let Some(r) = ranges.get(unit.unit_id.as_str()) {
                data.extend(packed.instructions.data[r.clone()].iter().cloned());
            }
        }
        let file = InstructionsFile {
            meta: packed.instructions.meta.clone(),
            data,
        };
        // A part finished before a crash, from the same images and instructions, is kept.
        let digest = part_digest(&image_ids, &frame_of, &file);
        let paths = [
            ctx.dir.join(name),
            ctx.dir.join(format!("{stem}_instructions.json")),
            ctx.dir.join(format!("{stem}_train.json")),
        ];
        if let Some(done) = journal.get::<Done>(name) {
            if done.digest == digest && files_present(&ctx.dir, &done.files) {
                progress.inc(image_ids.len() as u64);
                outputs.extend(paths);
                continue;
            }
        }
        let mut rows = Vec::with_capacity(image_ids.len());
        for id in image_ids {
            let path = ctx.dir.join(&frame_of[id].file);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            rows.push((id.to_string(), bytes));
            progress.inc(1);
        }
        let parquet = ctx.dir.join(name);
        shards::write_images_parquet(&parquet, &rows)?;
        outputs.push(parquet);
        let (ins, train) = shards::write_instructions(&ctx.dir, stem, &file)?;
        outputs.push(ins);
        outputs.push(train);
        journal.put(
            name,
            &Done {
                digest,
                files: sizes_of(&ctx.dir, &paths)?,
            },
        )?;
    }
    progress.finish();
    remove_stale_parts(&ctx.dir, code, &names)?;
    if scenario.config.pack.webdataset {
        let unit_of: BTreeMap<&str, &crate::model::Unit> =
            units.iter().map(|u| (u.id.as_str(), u)).collect();
        outputs.extend(write_webdataset(
            ctx,
            &journal,
            &unit_images,
            &unit_of,
            &frame_of,
            &packed.instructions,
            &ranges,
        )?);
    } else {
        remove_webdataset(&ctx.dir)?;
    }
    journal.finish()?;
    Ok(StageOutput {
        counts: Counts {
            ok: packed.instructions.data.len() as u64,
            rejected: 0,
            skipped: packed.unanswered.len() as u64,
        },
        outputs,
        rejects,
    })
}

/// `OUT/{CODE}/wds/{CODE}-{i:06}.tar` and `index.json`: one sample per unit (its frames in time
/// order as `{key}.{i:04}.{ext}`, and `{key}.json` with ids, timestamps, annotation and the
/// unit's instructions) or per image (`{key}.{ext}`, `{key}.json`).
fn write_webdataset(
    ctx: &StageContext,
    journal: &Journal,
    unit_images: &[UnitImages],
    unit_of: &BTreeMap<&str, &crate::model::Unit>,
    frame_of: &BTreeMap<&str, &crate::model::FrameRecord>,
    instructions: &InstructionsFile,
    ranges: &BTreeMap<&str, std::ops::Range<usize>>,
) -> Result<Vec<std::path::PathBuf>> {
    use shards::webdataset::{plan_shards, sample_key, shard_name, tar_size, write_shard, Sample};
    let cfg = &ctx.scenario.config.pack;
    let code = ctx.scenario.code;
    let ext =
        |f: &crate::model::FrameRecord| f.file.rsplit('.').next().unwrap_or("png").to_string();
    // (key, json, frames) per sample, in order; the image bytes are read when the shard is written.
    let mut plan: Vec<(String, Vec<u8>, Vec<&crate::model::FrameRecord>)> = Vec::new();
    match cfg.wds_sample {
        crate::config::WdsSample::Unit => {
            for u in unit_images {
                let fs: Vec<_> = u.image_ids.iter().map(|id| frame_of[id.as_str()]).collect();
                let ins: Vec<_> = ranges
                    .get(u.unit_id.as_str())
                    .map(|r| {
                        instructions.data[r.clone()]
                            .iter()
                            .map(|(id, i)| {
                                serde_json::json!({"id": id, "instruction": i.instruction, "answer": i.answer})
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let json = serde_json::json!({
                    "unit_id": u.unit_id,
                    "image_ids": u.image_ids,
                    "timestamps": fs.iter().map(|f| f.time_s).collect::<Vec<_>>(),
                    "annotation": unit_of.get(u.unit_id.as_str()).map(|x| x.annotation.clone()),
                    "instructions": ins,
                });
                plan.push((sample_key(&u.unit_id), json.to_string().into_bytes(), fs));
            }
        }
        crate::config::WdsSample::Image => {
            // One sample per kept image id (an image shared by two units is one sample).
            for &f in frame_of.values() {
                let json = serde_json::json!({
                    "image_id": f.image_id, "unit_id": f.unit_id, "index": f.index, "time_s": f.time_s,
                });
                plan.push((
                    sample_key(&f.image_id),
                    json.to_string().into_bytes(),
                    vec![f],
                ));
            }
            plan.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    let sizes: Vec<u64> = plan
        .iter()
        .map(|(_, json, fs)| {
            let mut m: Vec<u64> = fs.iter().map(|f| f.bytes).collect();
            m.push(json.len() as u64);
            tar_size(&m)
        })
        .collect();
    let per_unit = cfg.wds_sample == crate::config::WdsSample::Unit;
    let load = |i: usize| -> Result<Sample> {
        let (key, json, fs) = &plan[i];
        let mut members = vec![("json".to_string(), json.clone())];
        for (j, f) in fs.iter().enumerate() {
            let path = ctx.dir.join(&f.file);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let name = if per_unit {
                format!("{j:04}.{}", ext(f))
            } else {
                ext(f)
            };
            members.push((name, bytes));
        }
        Ok(Sample {
            key: key.clone(),
            members,
        })
    };
    let dir = ctx.dir.join("wds");
    let mut shards = Vec::new();
    let mut outputs = Vec::new();
    for (i, range) in plan_shards(&sizes, cfg.wds_max_samples, cfg.wds_max_bytes)
        .into_iter()
        .enumerate()
    {
        let name = shard_name(code.as_str(), i);
        let path = dir.join(&name);
        let mut h = blake3::Hasher::new();
        for (key, json, fs) in &plan[range.clone()] {
            for field in [key.as_bytes(), json] {
                h.update(&(field.len() as u64).to_le_bytes());
                h.update(field);
            }
            for f in fs {
                h.update(f.file.as_bytes());
                h.update(&[0]);
            }
        }
        let digest = h.finalize().to_hex().to_string();
        let key = format!("wds/{name}");
        let done = journal
            .get::<ShardDone>(&key)
            .filter(|d| d.digest == digest && files_present(&dir, &[(name.clone(), d.info.bytes)]));
        let info = match done {
            Some(d) => d.info,
            None => {
                let info = write_shard(&path, range, &load)?;
                journal.put(
                    &key,
                    &ShardDone {
                        digest,
                        info: info.clone(),
                    },
                )?;
                info
            }
        };
        shards.push(info);
        outputs.push(path);
    }
    let index = dir.join("index.json");
    crate::atomic::write_json(
        &index,
        &serde_json::json!({
            "format": "webdataset",
            "sample": if per_unit { "unit" } else { "image" },
            "shards": shards,
        }),
    )?;
    outputs.push(index);
    // Shards of an earlier, larger pack.
    let keep: BTreeSet<String> = shards.iter().map(|s| s.shard.clone()).collect();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tar") && !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(outputs)
}

/// Removes the WebDataset folder of an earlier pack that had `pack.webdataset` on.
fn remove_webdataset(dir: &Path) -> Result<()> {
    let wds = dir.join("wds");
    match std::fs::remove_dir_all(&wds) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&wds, e)),
        _ => Ok(()),
    }
}

/// Removes shard files of an earlier pack with another number of parts, after the new ones are
/// written (so a crash never leaves a scenario with no shards at all).
fn remove_stale_parts(dir: &Path, code: Code, current: &[String]) -> Result<()> {
    let keep: BTreeSet<String> = current
        .iter()
        .flat_map(|name| {
            let stem = name.trim_end_matches(".parquet");
            [
                name.clone(),
                format!("{stem}_instructions.json"),
                format!("{stem}_train.json"),
            ]
        })
        .collect();
    let prefix = code.as_str();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name == format!("{prefix}.parquet")
            || name == format!("{prefix}_instructions.json")
            || name == format!("{prefix}_train.json")
            || (name.starts_with(&format!("{prefix}-")) && name.contains("-of-"));
        if ours && !keep.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// `OUT/data.yaml`: every packed scenario (one entry per part) under its trainer group. Paths are
/// relative to OUT, so the file is the same wherever OUT lives: start the trainer from OUT, or
/// prefix the paths.
pub fn write_data_yaml(out: &Path, manifest: &Manifest) -> Result<()> {
    let mut groups: BTreeMap<&str, String> = BTreeMap::new();
    for (code, entry) in &manifest.scenarios {
        let Some(pack) = entry.stages.get("pack") else {
            continue;
        };
        let group = serde_json::from_value::<Code>(serde_json::Value::String(code.clone()))
            .map(Code::data_group)
            .unwrap_or("IMAGE_TEXT");
        let parts: Vec<&str> = pack
            .outputs
            .iter()
            .map(|o| o.path.as_str())
            .filter(|p| p.ends_with(".parquet") && !p.contains("/rejects/"))
            .collect();
        let text = groups.entry(group).or_default();
        for (i, images) in parts.iter().enumerate() {
            let stem = images.trim_end_matches(".parquet");
            let key = if parts.len() == 1 {
                code.clone()
            } else {
                format!("{code}_{i:05}")
            };
            text.push_str(&format!(
                "  {key}:\n    mimicit_path: {stem}_instructions.json\n    images_path: {images}\n    train_config_path: {stem}_train.json\n    num_samples: -1\n"
            ));
        }
    }
    let mut yaml = String::from(
        "# Training data for Otter-style loaders. Paths are relative to this folder.\n",
    );
    for (group, entries) in groups {
        yaml.push_str(group);
        yaml.push_str(":\n");
        yaml.push_str(&entries);
    }
    crate::atomic::write(&out.join("data.yaml"), yaml.as_bytes())
}

/// For `pack.rel_ins = knn:K`: each answered unit's K nearest other answered units, by the
/// cosine of their mean (L2-normalised) frame features, nearest first.
fn visual_neighbours(
    ctx: &StageContext,
    packed: &Packed,
    units: &[UnitImages],
    k: usize,
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let manifest = Manifest::load(ctx.out)?;
    let code = ctx.scenario.code.as_str();
    let Some(stage) = manifest.stage(code, crate::pipeline::Stage::Features.name()) else {
        return Err(Error::Invalid(format!(
            "pack.rel_ins = {}: needs the features stage, which has not run in {} \
             (set features.model and run `mimicit features`)",
            ctx.scenario.config.pack.rel_ins,
            ctx.out.display()
        )));
    };
    let mut vectors: std::collections::HashMap<String, Vec<f32>> = Default::default();
    let mut dim = 0;
    for f in &stage.outputs {
        if f.path.ends_with(".parquet") && f.path.contains("/features/") {
            let (ids, d, flat) = crate::tables::read_features(&ctx.out.join(&f.path))?;
            dim = d.max(dim);
            for (i, id) in ids.into_iter().enumerate() {
                vectors.insert(id, flat[i * d..(i + 1) * d].to_vec());
            }
        }
    }
    let images: std::collections::HashMap<&str, &Vec<String>> = units
        .iter()
        .map(|u| (u.unit_id.as_str(), &u.image_ids))
        .collect();
    let mut ids = Vec::new();
    let mut means = Vec::new();
    for (unit, _) in &packed.unit_ranges {
        let mut mean = vec![0f32; dim];
        let mut n = 0;
        for img in images.get(unit.as_str()).copied().into_iter().flatten() {
            if let Some(v) = vectors.get(img) {
                let mut v = v.clone();
                crate::features::l2_normalize(&mut v);
                mean.iter_mut().zip(&v).for_each(|(m, x)| *m += x);
                n += 1;
            }
        }
        if n > 0 {
            ids.push(unit.clone());
            means.extend(mean);
        }
    }
    let device = super::features::device(ctx)?;
    let found =
        crate::features::knn::neighbours_at_scale(&means, dim.max(1), k, (-1.0, 1.0), device)?;
    Ok(ids
        .iter()
        .zip(found)
        .map(|(u, ns)| (u.clone(), ns.iter().map(|n| ids[n.index].clone()).collect()))
        .collect())
}
