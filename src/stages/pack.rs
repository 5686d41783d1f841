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

use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::Scenario;
use crate::config::{Code, PackFormat};
use crate::error::{Error, Result};
use crate::journal::{files_present, Journal};
use crate::manifest::{Counts, Manifest};
use crate::partition::Placement;
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

/// Stage 6: trainer-ready shards.
pub struct Pack;

impl Stage for Pack {
    fn id(&self) -> StageId {
        StageId::Pack
    }
    fn name(&self) -> &'static str {
        STAGE
    }
    fn sections(&self) -> &'static [&'static str] {
        &["pack"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Scan, StageId::Keyframes]
    }
    /// Instruction numbering and parquet parts span the corpus.
    fn placement(&self, _scenario: &Scenario) -> Placement {
        Placement::Merge
    }
    /// The Syphus answer files.
    fn own_inputs(&self, scenario: &Scenario, h: &mut blake3::Hasher) -> Result<()> {
        for a in &scenario.answers {
            let (n, hash) = crate::hashing::hash_file(a)?;
            h.update(format!("answers {n} {hash}\n").as_bytes());
        }
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
    /// `OUT/data.yaml`, once any scenario of `out` is packed.
    fn after_run(&self, out: &Path, manifest: &Manifest) -> Result<()> {
        if manifest
            .scenarios
            .values()
            .any(|s| s.stages.contains_key(STAGE))
        {
            write_data_yaml(out, manifest)?;
        }
        Ok(())
    }
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
            query_ids: crate::corpus::query_ids(code, u),
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
    // `pack.answers` when set, else what the syphus stage of this run wrote.
    let from_syphus = scenario.answers.is_empty()
        && Manifest::load(ctx.out)?
            .stage(code.as_str(), StageId::Syphus.name())
            .is_some();
    let answer_paths: Vec<std::path::PathBuf> = if from_syphus {
        vec![super::syphus::answers_path(ctx)]
    } else {
        scenario.answers.clone()
    };
    let answer_files: Vec<String> = answer_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for path in &answer_paths {
        let (a, r) = shards::read_answers(path)?;
        answers.extend(a);
        rejects.extend(r.into_iter().map(|mut r| {
            if r.path.is_empty() {
                r.path = path.display().to_string();
            }
            r
        }));
    }
    if answer_paths.is_empty() {
        tracing::warn!(
            "{code}: no Syphus answers (pack.answers, --answers or the syphus stage): writing \
             the images only"
        );
    }
    let mut packed = shards::build_instructions(
        code,
        &unit_images,
        &answers,
        Meta::with_author(&scenario.config.pack.author),
    );
    if let RelIns::Knn(k) = scenario.config.pack.rel_ins {
        let neighbours = visual_neighbours(ctx, &packed, &unit_images, k)?;
        packed.set_rel_ins_from_neighbours(&neighbours);
    }
    let with_images: BTreeSet<&str> = unit_images.iter().map(|u| u.unit_id.as_str()).collect();
    let imageless: BTreeSet<&str> = units
        .iter()
        .map(|u| u.id.as_str())
        .filter(|id| !with_images.contains(id))
        .collect();
    rejects.extend(std::mem::take(&mut packed.rejects).into_iter().map(|mut r| {
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
    let pack_cfg = &scenario.config.pack;
    let parts = if !pack_cfg.writes(PackFormat::Otter) {
        Vec::new()
    } else if plan.is_empty() {
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
    let names = if parts.is_empty() { Vec::new() } else { names };
    // Translations (`syphus.languages`): each part's instructions again in each language,
    // with the same ids, images and in-context ids, next to the part's own files.
    let mut translated_files = Vec::new();
    if from_syphus {
        for lang in &scenario.config.syphus.languages {
            let path = super::syphus::translated_answers_path(ctx, lang);
            let (t_answers, _) = shards::read_answers(&path)?;
            let t_packed = shards::build_instructions(
                code,
                &unit_images,
                &t_answers,
                Meta::with_author(&scenario.config.pack.author),
            );
            let all = shards::instructions::translated(&packed, &t_packed);
            let by_id: BTreeMap<&str, &shards::Instruction> =
                all.data.iter().map(|(id, i)| (id.as_str(), i)).collect();
            for (part, name) in parts.iter().zip(&names) {
                let stem = name.trim_end_matches(".parquet");
                let mut data = Vec::new();
                for &i in part {
                    if let Some(r) = ranges.get(unit_images[i].unit_id.as_str()) {
                        for (id, _) in &packed.instructions.data[r.clone()] {
                            if let Some(ins) = by_id.get(id.as_str()) {
                                data.push((id.clone(), (*ins).clone()));
                            }
                        }
                    }
                }
                let file = InstructionsFile {
                    meta: all.meta.clone(),
                    data,
                };
                let (ins, train) = shards::instructions::write_translated_instructions(
                    &ctx.dir, stem, lang, &file,
                )?;
                translated_files.extend([ins, train]);
            }
        }
    }
    let keep_translated: Vec<String> = translated_files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    outputs.extend(translated_files);
    remove_stale_parts(&ctx.dir, code, &names, &keep_translated)?;
    if pack_cfg.writes(PackFormat::Hf) {
        outputs.extend(write_hf(ctx, &packed, &frame_of)?);
    } else {
        remove_dir(&ctx.dir.join(shards::hf::DIR))?;
    }
    if pack_cfg.writes(PackFormat::Llava) || pack_cfg.writes(PackFormat::Sharegpt) {
        outputs.extend(write_chat(ctx, &packed.instructions, &frame_of)?);
    } else {
        remove_dir(&ctx.dir.join(shards::chat::DIR))?;
    }
    if pack_cfg.writes(PackFormat::Wds) {
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
        remove_dir(&ctx.dir.join("wds"))?;
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

/// Removes the folder of a format an earlier pack wrote and this one does not (`wds`, `hf`,
/// `chat`).
fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

/// Removes `path` if it is there.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// The pictures of the instructions, each once, in id order.
fn shown_frames<'a>(
    file: &InstructionsFile,
    frame_of: &BTreeMap<&str, &'a crate::model::FrameRecord>,
) -> Vec<&'a crate::model::FrameRecord> {
    let ids: BTreeSet<&str> = file
        .data
        .iter()
        .flat_map(|(_, i)| i.image_ids.iter().map(String::as_str))
        .collect();
    ids.into_iter().map(|id| frame_of[id]).collect()
}

/// `OUT/{CODE}/chat/`: `images/` (hard links into the frame store), `{CODE}_llava.json`,
/// `{CODE}_sharegpt.json` and `dataset_info.json`, as `pack.formats` asks (see
/// [`shards::chat`]).
fn write_chat(
    ctx: &StageContext,
    file: &InstructionsFile,
    frame_of: &BTreeMap<&str, &crate::model::FrameRecord>,
) -> Result<Vec<std::path::PathBuf>> {
    use shards::chat;
    let cfg = &ctx.scenario.config.pack;
    let code = ctx.scenario.code.as_str();
    let dir = ctx.dir.join(chat::DIR);
    let convs = chat::conversations(file, cfg.in_context_turns);
    let mut outputs = chat::link_images(
        &ctx.dir,
        &dir.join(chat::IMAGES),
        &shown_frames(file, frame_of),
    )?;
    let llava = dir.join(format!("{code}_llava.json"));
    if cfg.writes(PackFormat::Llava) {
        crate::atomic::write_json(&llava, &chat::llava_records(&convs, frame_of))?;
        outputs.push(llava);
    } else {
        remove_file(&llava)?;
    }
    let sharegpt = dir.join(format!("{code}_sharegpt.json"));
    let info = dir.join("dataset_info.json");
    if cfg.writes(PackFormat::Sharegpt) {
        crate::atomic::write_json(&sharegpt, &chat::sharegpt_records(&convs, frame_of))?;
        crate::atomic::write_json(&info, &chat::dataset_info(code))?;
        outputs.extend([sharegpt, info]);
    } else {
        remove_file(&sharegpt)?;
        remove_file(&info)?;
    }
    Ok(outputs)
}

/// `OUT/{CODE}/hf/`: parquet parts of at most `pack.max_part_bytes` (a unit's rows in one
/// part) and the dataset card (see [`shards::hf`]).
fn write_hf(
    ctx: &StageContext,
    packed: &Packed,
    frame_of: &BTreeMap<&str, &crate::model::FrameRecord>,
) -> Result<Vec<std::path::PathBuf>> {
    use shards::{chat, hf};
    let cfg = &ctx.scenario.config.pack;
    let code = ctx.scenario.code.as_str();
    let dir = ctx.dir.join(hf::DIR);
    let file = &packed.instructions;
    let convs = chat::conversations(file, cfg.in_context_turns);
    let frames_of = |i: usize| -> Vec<&crate::model::FrameRecord> {
        file.data[i]
            .1
            .image_ids
            .iter()
            .map(|id| frame_of[id.as_str()])
            .collect()
    };
    let sizes: Vec<u64> = packed
        .unit_ranges
        .iter()
        .map(|(_, r)| {
            r.clone()
                .map(|i| hf::row_size(&convs[i], &frames_of(i)))
                .sum()
        })
        .collect();
    let plan = shards::plan_parts(&sizes, cfg.max_part_bytes);
    let parts = if plan.is_empty() {
        vec![Vec::new()]
    } else {
        plan
    };
    let mut outputs = Vec::new();
    let mut names = BTreeSet::new();
    for (p, part) in parts.iter().enumerate() {
        let mut bytes_of: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        let mut rows = Vec::new();
        for &u in part {
            let (unit, range) = &packed.unit_ranges[u];
            for i in range.clone() {
                let mut images = Vec::new();
                for f in frames_of(i) {
                    if !bytes_of.contains_key(f.image_id.as_str()) {
                        let path = ctx.dir.join(&f.file);
                        let b = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                        bytes_of.insert(f.image_id.as_str(), b);
                    }
                    images.push((f, bytes_of[f.image_id.as_str()].clone()));
                }
                rows.push(hf::Row {
                    conversation: &convs[i],
                    unit_id: unit,
                    images,
                });
            }
        }
        let name = hf::part_name(p, parts.len());
        let path = dir.join(&name);
        hf::write_part(&path, code, &rows)?;
        names.insert(name.trim_start_matches("data/").to_string());
        outputs.push(path);
    }
    // Parts of an earlier pack with another number of parts.
    let data = dir.join("data");
    for entry in std::fs::read_dir(&data).map_err(|e| Error::io(&data, e))? {
        let entry = entry.map_err(|e| Error::io(&data, e))?;
        if !names.contains(entry.file_name().to_string_lossy().as_ref()) {
            remove_file(&entry.path())?;
        }
    }
    let card = dir.join("README.md");
    let text = shards::hf::card(&shards::hf::Card {
        code,
        name: &ctx.scenario.name,
        license: ctx.scenario.config.source.license.as_deref(),
        instructions: file.data.len(),
        units: packed.unit_ranges.len(),
        images: shown_frames(file, frame_of).len(),
        parts: parts.len(),
        in_context_turns: cfg.in_context_turns,
        settings_hash: &ctx.config_hash,
    });
    crate::atomic::write(&card, text.as_bytes())?;
    outputs.push(card);
    Ok(outputs)
}

/// Removes shard files of an earlier pack with another number of parts (or other languages),
/// after the new ones are written (so a crash never leaves a scenario with no shards at all).
fn remove_stale_parts(
    dir: &Path,
    code: Code,
    current: &[String],
    translated: &[String],
) -> Result<()> {
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
        .chain(translated.iter().cloned())
        .collect();
    let prefix = code.as_str();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `{CODE}_instructions.{lang}.json` and `{CODE}_train.{lang}.json` too.
        let ours = name == format!("{prefix}.parquet")
            || (name.starts_with(&format!("{prefix}_instructions.")) && name.ends_with(".json"))
            || (name.starts_with(&format!("{prefix}_train.")) && name.ends_with(".json"))
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
            // The Otter images parquet parts, `{CODE}/{name}.parquet`: not rejects, not the
            // hf layout's parts under `{CODE}/hf/`.
            .filter(|p| p.ends_with(".parquet") && p.matches('/').count() == 1)
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
            // The same part in other languages (`{stem}_instructions.{lang}.json`).
            let prefix = format!("{stem}_instructions.");
            let mut langs: Vec<&str> = pack
                .outputs
                .iter()
                .filter_map(|o| o.path.strip_prefix(&prefix)?.strip_suffix(".json"))
                .collect();
            langs.sort_unstable();
            for lang in langs {
                text.push_str(&format!(
                    "  {key}_{lang}:\n    mimicit_path: {stem}_instructions.{lang}.json\n    images_path: {images}\n    train_config_path: {stem}_train.{lang}.json\n    num_samples: -1\n"
                ));
            }
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
    let Some(stage) = manifest.stage(code, StageId::Features.name()) else {
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
    let device = ctx.scenario.config.features.device;
    let found =
        crate::features::knn::neighbours_at_scale(&means, dim.max(1), k, (-1.0, 1.0), device)?;
    Ok(ids
        .iter()
        .zip(found)
        .map(|(u, ns)| (u.clone(), ns.iter().map(|n| ids[n.index].clone()).collect()))
        .collect())
}
