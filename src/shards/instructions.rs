//! `{CODE}_instructions.json` and `{CODE}_train.json`: numbering the question/answer pairs of the
//! Syphus answers into instruction ids, attaching each unit's kept images and in-context ids, and
//! writing both files.
//!
//! Numbering is deterministic: units in the order given, then the answers of a unit in the order
//! given (the order of the answer files, then of the entries in each), then the pairs in text
//! order; ids count from 1 (`DC_INS_00001`, as in the release example).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::config::Code;
use crate::error::Result;
use crate::model::Reject;
use crate::shards::answers::{split_pairs, Answer};

/// A unit to pack: its id, its kept image ids in time order, and the other ids its Syphus
/// queries carry (SD: each record's `img_id` as written, `76` for unit `00076`), which its
/// answers may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitImages {
    pub unit_id: String,
    pub image_ids: Vec<String>,
    pub query_ids: Vec<String>,
}

/// `meta` of the instructions file. The default is the release's (`0.0.1`, `2023-06`) with
/// author `mimicit`; `time` is data, not the wall clock, so that outputs stay byte-identical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    pub version: String,
    pub time: String,
    pub author: String,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            version: "0.0.1".into(),
            time: "2023-06".into(),
            author: "mimicit".into(),
        }
    }
}

impl Meta {
    /// The release's version and time with the given author (`pack.author`).
    pub fn with_author(author: &str) -> Self {
        Meta {
            author: author.to_string(),
            ..Meta::default()
        }
    }
}

/// One entry of `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    pub instruction: String,
    pub answer: String,
    pub image_ids: Vec<String>,
    pub rel_ins_ids: Vec<String>,
}

/// The whole `{CODE}_instructions.json`. `data` is kept in id (numbering) order and serialised
/// as a JSON object in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionsFile {
    pub meta: Meta,
    #[serde(serialize_with = "ordered_map")]
    pub data: Vec<(String, Instruction)>,
}

impl InstructionsFile {
    /// `{CODE}_train.json`: instruction id -> in-context ids, in id order.
    pub fn train(&self) -> TrainFile {
        TrainFile(
            self.data
                .iter()
                .map(|(id, ins)| (id.clone(), ins.rel_ins_ids.clone()))
                .collect(),
        )
    }
}

/// `{CODE}_train.json`, serialised as a JSON object in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainFile(pub Vec<(String, Vec<String>)>);

impl Serialize for TrainFile {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ordered_map(&self.0, s)
    }
}

/// Entries as a JSON object, in the order of the list (serde's maps would sort or hash them).
#[allow(clippy::ptr_arg)] // serde's `serialize_with` passes `&Vec<_>`
fn ordered_map<S: Serializer, V: Serialize>(
    entries: &Vec<(String, V)>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// What [`build_instructions`] makes of the answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub instructions: InstructionsFile,
    /// For each unit that got instructions, in order: its id and the range of
    /// `instructions.data` that holds them (so callers can split by unit without renumbering).
    pub unit_ranges: Vec<(String, std::ops::Range<usize>)>,
    /// Units with kept images but no answer at all: not errors, but worth a count in reports.
    pub unanswered: Vec<String>,
    /// Stage `pack`: answers for unknown units, answers without any pair, units without images.
    pub rejects: Vec<Reject>,
}

pub use crate::model::RelIns;

impl Packed {
    /// Replaces every `rel_ins_ids` by the first instruction of each unit in
    /// `neighbours[unit]` (units without instructions are passed over), in the given order.
    pub fn set_rel_ins_from_neighbours(&mut self, neighbours: &HashMap<String, Vec<String>>) {
        let first: HashMap<&str, String> = self
            .unit_ranges
            .iter()
            .map(|(u, r)| (u.as_str(), self.instructions.data[r.start].0.clone()))
            .collect();
        let mut updates = Vec::new();
        for (unit, range) in &self.unit_ranges {
            let ids: Vec<String> = neighbours
                .get(unit)
                .map(|ns| {
                    ns.iter()
                        .filter(|n| *n != unit)
                        .filter_map(|n| first.get(n.as_str()).cloned())
                        .collect()
                })
                .unwrap_or_default();
            updates.push((range.clone(), ids));
        }
        for (range, ids) in updates {
            for (_, ins) in &mut self.instructions.data[range] {
                ins.rel_ins_ids = ids.clone();
            }
        }
    }
}

/// `{CODE}_INS_{n:05}`. Past 99999 the number simply gets more digits (`DC_INS_100000`), as
/// Python's `f"{n:05d}"` does; the files still list ids in numeric order, but a reader that
/// sorts ids as strings would then put `DC_INS_100000` before `DC_INS_99999`.
pub fn instruction_id(code: Code, n: usize) -> String {
    format!("{code}_INS_{n:05}")
}

/// The longest answer text kept in a reject's `error`.
const REJECT_TEXT_CHARS: usize = 500;

fn truncate(text: &str) -> String {
    match text.char_indices().nth(REJECT_TEXT_CHARS) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

fn reject(item: &str, error: String) -> Reject {
    Reject {
        stage: "pack".into(),
        item: item.to_string(),
        path: String::new(),
        error,
    }
}

/// Numbers the pairs of `answers` into instructions (see the module doc for the order), with
/// each unit's images and, as `rel_ins_ids`, the other instructions of the same unit in order.
///
/// Rejected, with the unit id as item (`path` is left empty: the caller knows the files):
/// an answer for a unit not in `units` (ids are matched exactly, to a unit id or one of its
/// query ids, never guessed); an answer
/// whose text yields no pair (the text, cut to 500 characters, is in `error`); a unit with no
/// kept images (its answers are dropped); a unit listed twice (the first one is used).
pub fn build_instructions(
    code: Code,
    units: &[UnitImages],
    answers: &[Answer],
    meta: Meta,
) -> Packed {
    let mut rejects = Vec::new();
    let mut by_unit: HashMap<&str, Vec<&Answer>> = HashMap::new();
    // Answer id -> unit id: the unit ids, then the query ids (exact ids, never guessed; a
    // unit id wins over another unit's query id).
    let mut known: HashMap<&str, &str> = HashMap::new();
    for u in units {
        for q in &u.query_ids {
            known.insert(q.as_str(), u.unit_id.as_str());
        }
    }
    for u in units {
        known.insert(u.unit_id.as_str(), u.unit_id.as_str());
    }
    for a in answers {
        // Several answers for one unit (ids repeat: a unit annotated several times gets a
        // query per record) all become its instructions, in answer order.
        if let Some(unit) = known.get(a.unit_id.as_str()) {
            by_unit.entry(*unit).or_default().push(a);
        } else {
            rejects.push(reject(&a.unit_id, "answer for an unknown unit id".into()));
        }
    }

    let mut data = Vec::new();
    let mut unit_ranges = Vec::new();
    let mut unanswered = Vec::new();
    let mut seen = HashSet::new();
    for unit in units {
        let id = unit.unit_id.as_str();
        if !seen.insert(id) {
            rejects.push(reject(
                id,
                "unit listed more than once; the first is used".into(),
            ));
            continue;
        }
        let unit_answers = by_unit.remove(id).unwrap_or_default();
        if unit.image_ids.is_empty() {
            let dropped = unit_answers.len();
            rejects.push(reject(
                id,
                format!("unit has no kept images ({dropped} answer(s) dropped)"),
            ));
            continue;
        }
        if unit_answers.is_empty() {
            unanswered.push(id.to_string());
            continue;
        }
        let mut pairs = Vec::new();
        for a in unit_answers {
            let found = split_pairs(&a.text);
            if found.is_empty() {
                rejects.push(reject(
                    id,
                    format!(
                        "no question/answer pair in the answer: {}",
                        truncate(&a.text)
                    ),
                ));
            }
            pairs.extend(found);
        }
        let start = data.len();
        let first = start + 1;
        let ids: Vec<String> = (first..first + pairs.len())
            .map(|n| instruction_id(code, n))
            .collect();
        for (i, pair) in pairs.into_iter().enumerate() {
            let rel_ins_ids = ids
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, other)| other.clone())
                .collect();
            data.push((
                ids[i].clone(),
                Instruction {
                    instruction: pair.instruction,
                    answer: pair.answer,
                    image_ids: unit.image_ids.clone(),
                    rel_ins_ids,
                },
            ));
        }
        if data.len() > start {
            unit_ranges.push((id.to_string(), start..data.len()));
        }
    }
    Packed {
        instructions: InstructionsFile { meta, data },
        unit_ranges,
        unanswered,
        rejects,
    }
}

/// Pretty JSON (two-space indent, as `serde_json::to_vec_pretty`) with a trailing newline.
fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain strings and lists serialise");
    bytes.push(b'\n');
    bytes
}

/// Writes `{CODE}_instructions.json` and `{CODE}_train.json` into `dir`, each atomically, and
/// returns their paths. The same `instructions` always give the same bytes.
pub fn write_instructions(
    dir: &Path,
    stem: &str,
    instructions: &InstructionsFile,
) -> Result<(PathBuf, PathBuf)> {
    write_pair(dir, stem, "", instructions)
}

/// `{stem}_instructions{suffix}.json` and `{stem}_train{suffix}.json`, each atomically.
fn write_pair(
    dir: &Path,
    stem: &str,
    suffix: &str,
    instructions: &InstructionsFile,
) -> Result<(PathBuf, PathBuf)> {
    let ins_path = dir.join(format!("{stem}_instructions{suffix}.json"));
    let train_path = dir.join(format!("{stem}_train{suffix}.json"));
    crate::atomic::write(&ins_path, &json_bytes(instructions))?;
    crate::atomic::write(&train_path, &json_bytes(&instructions.train()))?;
    Ok((ins_path, train_path))
}

/// The instructions of `original` in another language: for each unit whose translated answers
/// (`translated`, built like `original` from the translated answer files) hold as many pairs as
/// the original's, the same entries (ids, images, in-context ids) with the translated texts.
/// Units whose translation is missing or has another number of pairs are left out, and so are
/// in-context ids that point at them, so the file and its train file stay consistent.
pub fn translated(original: &Packed, translated: &Packed) -> InstructionsFile {
    let theirs: HashMap<&str, &std::ops::Range<usize>> = translated
        .unit_ranges
        .iter()
        .map(|(u, r)| (u.as_str(), r))
        .collect();
    let mut data = Vec::new();
    for (unit, range) in &original.unit_ranges {
        let Some(t) = theirs.get(unit.as_str()) else {
            continue;
        };
        if t.len() != range.len() {
            continue;
        }
        for (i, j) in range.clone().zip((*t).clone()) {
            let (id, ins) = &original.instructions.data[i];
            let (_, tr) = &translated.instructions.data[j];
            data.push((
                id.clone(),
                Instruction {
                    instruction: tr.instruction.clone(),
                    answer: tr.answer.clone(),
                    ..ins.clone()
                },
            ));
        }
    }
    let kept: std::collections::HashSet<String> = data.iter().map(|(id, _)| id.clone()).collect();
    for (_, ins) in &mut data {
        ins.rel_ins_ids.retain(|r| kept.contains(r));
    }
    InstructionsFile {
        meta: original.instructions.meta.clone(),
        data,
    }
}

/// Writes `{stem}_instructions.{lang}.json` and `{stem}_train.{lang}.json` (see [`translated`]).
pub fn write_translated_instructions(
    dir: &Path,
    stem: &str,
    lang: &str,
    instructions: &InstructionsFile,
) -> Result<(PathBuf, PathBuf)> {
    write_pair(dir, stem, &format!(".{lang}"), instructions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translated_instructions_keep_ids_and_leave_out_mismatched_units() {
        let units = [unit("u1", &["a"]), unit("u2", &["b"])];
        let en = build_instructions(
            Code::DC,
            &units,
            &[
                answer("u1", "Question: q1\nAnswer: a1\nQuestion: q2\nAnswer: a2"),
                answer("u2", "Question: q3\nAnswer: a3"),
            ],
            Meta::default(),
        );
        let zh = build_instructions(
            Code::DC,
            &units,
            &[
                answer("u1", "Question: Q1\nAnswer: A1\nQuestion: Q2\nAnswer: A2"),
                // One pair too many: u2 is left out of the translated file.
                answer("u2", "Question: Q3\nAnswer: A3\nQuestion: Q4\nAnswer: A4"),
            ],
            Meta::default(),
        );
        let t = translated(&en, &zh);
        let ids: Vec<&str> = t.data.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["DC_INS_00001", "DC_INS_00002"]);
        assert_eq!(t.data[0].1.instruction, "Q1");
        assert_eq!(t.data[1].1.answer, "A2");
        assert_eq!(t.data[0].1.image_ids, en.instructions.data[0].1.image_ids);
        assert_eq!(t.data[0].1.rel_ins_ids, vec!["DC_INS_00002"]);
    }

    fn unit(id: &str, images: &[&str]) -> UnitImages {
        UnitImages {
            query_ids: Vec::new(),
            unit_id: id.into(),
            image_ids: images.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn answer(id: &str, text: &str) -> Answer {
        Answer {
            unit_id: id.into(),
            text: text.into(),
        }
    }

    fn sample() -> Packed {
        let units = vec![
            unit("v_b", &["DC_IMG_v_b_0000", "DC_IMG_v_b_0001"]),
            unit("v_a", &["DC_IMG_v_a_0000"]),
            unit("v_empty", &[]),
            unit("v_silent", &["DC_IMG_v_silent_0000"]),
        ];
        let answers = vec![
            answer(
                "v_a",
                "Question: A1?\nAnswer: a1.\nQuestion: A2?\nAnswer: a2.",
            ),
            answer("v_b", "Q: B1?\nA: b1."),
            answer("v_ghost", "Q: G?\nA: g."),
            answer("v_b", "I cannot answer that."),
            answer("v_b", "Q: B2?\nA: b2.\nQ: B3?\nA: b3."),
            answer("v_empty", "Q: E?\nA: e."),
        ];
        build_instructions(Code::DC, &units, &answers, Meta::with_author("tester"))
    }

    #[test]
    fn repeated_ids_and_query_ids_reach_their_unit() {
        let mut pair = unit("00076", &["SD_IMG_00076_1", "SD_IMG_00076_2"]);
        pair.query_ids = vec!["76".into(), "076".into()];
        let answers = vec![
            answer("76", "Q: A?\nA: a."),
            answer("00076", "Q: B?\nA: b."),
            answer("076", "Q: C?\nA: c."),
            answer("76", "Q: D?\nA: d."),
            answer("0076", "Q: E?\nA: e."),
        ];
        let packed = build_instructions(Code::SD, &[pair], &answers, Meta::default());
        let got: Vec<&str> = packed
            .instructions
            .data
            .iter()
            .map(|(_, i)| i.instruction.as_str())
            .collect();
        assert_eq!(got, ["A?", "B?", "C?", "D?"]);
        assert_eq!(packed.rejects.len(), 1, "{:?}", packed.rejects);
        assert_eq!(packed.rejects[0].item, "0076");
        assert!(packed
            .instructions
            .data
            .iter()
            .all(|(_, i)| i.image_ids == ["SD_IMG_00076_1", "SD_IMG_00076_2"]));
    }

    #[test]
    fn numbering_follows_units_then_answers_then_pairs() {
        let packed = sample();
        let data = &packed.instructions.data;
        let got: Vec<(&str, &str)> = data
            .iter()
            .map(|(id, ins)| (id.as_str(), ins.instruction.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("DC_INS_00001", "B1?"),
                ("DC_INS_00002", "B2?"),
                ("DC_INS_00003", "B3?"),
                ("DC_INS_00004", "A1?"),
                ("DC_INS_00005", "A2?"),
            ]
        );
        assert_eq!(data[1].1.rel_ins_ids, vec!["DC_INS_00001", "DC_INS_00003"]);
        assert_eq!(data[3].1.rel_ins_ids, vec!["DC_INS_00005"]);
        assert_eq!(
            data[0].1.image_ids,
            vec!["DC_IMG_v_b_0000", "DC_IMG_v_b_0001"]
        );
        assert_eq!(data[4].1.answer, "a2.");
        assert_eq!(packed.unanswered, vec!["v_silent"]);
    }

    #[test]
    fn rel_ins_parses_and_neighbours_replace_examples() {
        assert_eq!(RelIns::parse("unit"), Some(RelIns::Unit));
        assert_eq!(RelIns::parse("knn:3"), Some(RelIns::Knn(3)));
        for bad in ["knn:0", "knn:65", "knn:x", "knn", "nearest"] {
            assert_eq!(RelIns::parse(bad), None, "{bad}");
        }
        let mut packed = sample();
        let neighbours: HashMap<String, Vec<String>> = [
            (
                "v_b".to_string(),
                vec!["v_silent".to_string(), "v_a".to_string()],
            ),
            ("v_a".to_string(), vec!["v_b".to_string()]),
        ]
        .into_iter()
        .collect();
        packed.set_rel_ins_from_neighbours(&neighbours);
        let data = &packed.instructions.data;
        // v_silent has no instruction: passed over; v_a's first instruction is DC_INS_00004.
        for (_, ins) in &data[0..3] {
            assert_eq!(ins.rel_ins_ids, vec!["DC_INS_00004"]);
        }
        for (_, ins) in &data[3..5] {
            assert_eq!(ins.rel_ins_ids, vec!["DC_INS_00001"]);
        }
    }

    #[test]
    fn rejects_name_the_unit_and_the_reason() {
        let packed = sample();
        let r: Vec<(&str, &str)> = packed
            .rejects
            .iter()
            .map(|r| (r.item.as_str(), r.error.as_str()))
            .collect();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0], ("v_ghost", "answer for an unknown unit id"));
        assert_eq!(r[1].0, "v_b");
        assert!(r[1].1.contains("I cannot answer that."), "{}", r[1].1);
        assert_eq!(r[2].0, "v_empty");
        assert!(r[2].1.contains("no kept images"), "{}", r[2].1);
        assert!(packed.rejects.iter().all(|r| r.stage == "pack"));
    }

    #[test]
    fn long_unparsed_text_is_cut() {
        let text = "é".repeat(2000);
        let packed = build_instructions(
            Code::SD,
            &[unit("1", &["SD_IMG_00001_1"])],
            &[answer("1", &text)],
            Meta::default(),
        );
        let error = &packed.rejects[0].error;
        assert!(error.ends_with("..."), "{error}");
        assert!(error.chars().count() < 600, "{}", error.chars().count());
    }

    #[test]
    fn duplicate_unit_is_rejected_once() {
        let packed = build_instructions(
            Code::SD,
            &[unit("1", &["SD_IMG_00001_1"]), unit("1", &["x"])],
            &[answer("1", "Q: a?\nA: b.")],
            Meta::default(),
        );
        assert_eq!(packed.instructions.data.len(), 1);
        assert_eq!(
            packed.instructions.data[0].1.image_ids,
            vec!["SD_IMG_00001_1"]
        );
        assert_eq!(packed.rejects.len(), 1);
    }

    #[test]
    fn files_have_the_release_shape_and_stable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let packed = sample();
        let (ins, train) = write_instructions(dir.path(), "DC", &packed.instructions).unwrap();
        assert!(ins.ends_with("DC_instructions.json") && train.ends_with("DC_train.json"));
        let ins_bytes = std::fs::read(&ins).unwrap();
        let train_bytes = std::fs::read(&train).unwrap();
        assert_eq!(ins_bytes.last(), Some(&b'\n'));

        let v: serde_json::Value = serde_json::from_slice(&ins_bytes).unwrap();
        assert_eq!(
            v["meta"],
            serde_json::json!({"version": "0.0.1", "time": "2023-06", "author": "tester"})
        );
        assert_eq!(
            v["data"]["DC_INS_00004"],
            serde_json::json!({"instruction": "A1?", "answer": "a1.",
                "image_ids": ["DC_IMG_v_a_0000"], "rel_ins_ids": ["DC_INS_00005"]})
        );
        let t: serde_json::Value = serde_json::from_slice(&train_bytes).unwrap();
        assert_eq!(
            t["DC_INS_00002"],
            serde_json::json!(["DC_INS_00001", "DC_INS_00003"])
        );
        assert_eq!(t.as_object().unwrap().len(), 5);

        // Keys appear in id order in the text.
        let text = String::from_utf8(ins_bytes.clone()).unwrap();
        let positions: Vec<usize> = (1..=5)
            .map(|n| text.find(&format!("\"DC_INS_{n:05}\": {{")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

        // Rewriting gives the same bytes.
        write_instructions(dir.path(), "DC", &sample().instructions).unwrap();
        assert_eq!(std::fs::read(&ins).unwrap(), ins_bytes);
        assert_eq!(std::fs::read(&train).unwrap(), train_bytes);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn ids_past_99999_widen_and_stay_in_numeric_order() {
        assert_eq!(instruction_id(Code::DC, 1), "DC_INS_00001");
        assert_eq!(instruction_id(Code::DC, 99999), "DC_INS_99999");
        assert_eq!(instruction_id(Code::E4D, 100000), "E4D_INS_100000");

        let n = 100_001;
        let units: Vec<UnitImages> = (0..n).map(|i| unit(&format!("u{i}"), &["img"])).collect();
        let answers: Vec<Answer> = (0..n)
            .map(|i| answer(&format!("u{i}"), "Q: q?\nA: a."))
            .collect();
        let packed = build_instructions(Code::DC, &units, &answers, Meta::default());
        let data = &packed.instructions.data;
        assert_eq!(data.len(), n);
        assert_eq!(data[99_998].0, "DC_INS_99999");
        assert_eq!(data[99_999].0, "DC_INS_100000");
        assert_eq!(data[100_000].0, "DC_INS_100001");
        let json = serde_json::to_string(&packed.instructions.train()).unwrap();
        let (a, b) = (
            json.find("\"DC_INS_99999\"").unwrap(),
            json.find("\"DC_INS_100000\"").unwrap(),
        );
        assert!(a < b);
    }
}
