//! Conversations for today's VLM trainers, made from the packed instructions (README "Trainer
//! formats"):
//!
//! - `llava`: `{CODE}_llava.json`, LLaVA's conversation list (`id`, `image` as one path or a
//!   list, `conversations` of `human`/`gpt` turns, one `<image>` token per picture), the paths
//!   relative to `images/`;
//! - `sharegpt`: `{CODE}_sharegpt.json`, LLaMA-Factory's ShareGPT layout (`messages` with
//!   `role`/`content`, `images` relative to the folder) and the `dataset_info.json` that
//!   registers it;
//!
//! both in `OUT/{CODE}/chat/`, beside `images/`, where each kept frame an instruction shows is
//! hard-linked from the frame store under `{image_id}.{ext}` (copied only where the filesystem
//! cannot link). The `hf` layout ([`super::hf`]) uses the same [`Conversation`]s.
//!
//! In-context examples (`pack.in_context_turns = K`): the first K `rel_ins_ids` of an
//! instruction become question/answer turns before its own question, text only; the pictures
//! go with the instruction's own question (in-context examples chosen by `knn:K` are about other
//! units' pictures, which are not shown).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Instruction, InstructionsFile};
use crate::error::{Error, Result};
use crate::model::FrameRecord;

/// `OUT/{CODE}/chat/`.
pub const DIR: &str = "chat";
/// The pictures of the chat layouts, `OUT/{CODE}/chat/images/`.
pub const IMAGES: &str = "images";
/// LLaVA's picture placeholder.
pub const IMAGE_TOKEN: &str = "<image>";

/// One training conversation: in-context turns, then the instruction with its pictures.
#[derive(Debug, Clone)]
pub struct Conversation<'a> {
    pub id: &'a str,
    pub instruction: &'a Instruction,
    /// Earlier (question, answer) turns, in `rel_ins_ids` order.
    pub context: Vec<&'a Instruction>,
}

impl Conversation<'_> {
    /// (role, text) turns in order, `user`/`assistant`; the last user turn is the instruction's.
    pub fn turns(&self) -> Vec<(&'static str, &str)> {
        let mut t = Vec::with_capacity(2 * self.context.len() + 2);
        for c in &self.context {
            t.push(("user", c.instruction.as_str()));
            t.push(("assistant", c.answer.as_str()));
        }
        t.push(("user", self.instruction.instruction.as_str()));
        t.push(("assistant", self.instruction.answer.as_str()));
        t
    }
}

/// The conversations of an instructions file, in id order, with up to `in_context` examples.
pub fn conversations(file: &InstructionsFile, in_context: usize) -> Vec<Conversation<'_>> {
    let by_id: HashMap<&str, &Instruction> =
        file.data.iter().map(|(id, i)| (id.as_str(), i)).collect();
    file.data
        .iter()
        .map(|(id, ins)| Conversation {
            id,
            instruction: ins,
            context: ins
                .rel_ins_ids
                .iter()
                .filter_map(|r| by_id.get(r.as_str()).copied())
                .take(in_context)
                .collect(),
        })
        .collect()
}

/// The file name of a kept frame in `images/`: `{image_id}.{ext of the stored file}`.
pub fn image_name(frame: &FrameRecord) -> String {
    let ext = frame.file.rsplit('.').next().unwrap_or("png");
    format!("{}.{ext}", frame.image_id)
}

/// The question text with one `<image>` line per picture before it (LLaVA and ShareGPT).
fn with_image_tokens(n: usize, question: &str) -> String {
    let mut s = String::with_capacity(question.len() + n * 8);
    for _ in 0..n {
        s.push_str(IMAGE_TOKEN);
        s.push('\n');
    }
    s.push_str(question);
    s
}

/// A conversation's pictures (file names in `images/`) and its turns as (role, text), the
/// instruction's own question with one `<image>` line per picture: what LLaVA and ShareGPT
/// records are made of.
fn with_pictures(
    c: &Conversation,
    frame_of: &BTreeMap<&str, &FrameRecord>,
) -> (Vec<String>, Vec<(&'static str, String)>) {
    let images: Vec<String> = c
        .instruction
        .image_ids
        .iter()
        .map(|id| image_name(frame_of[id.as_str()]))
        .collect();
    let turns = c.turns();
    let last_user = turns.len() - 2;
    let turns = turns
        .into_iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let text = if i == last_user {
                with_image_tokens(images.len(), text)
            } else {
                text.to_string()
            };
            (role, text)
        })
        .collect();
    (images, turns)
}

/// `{CODE}_llava.json`: one record per instruction.
pub fn llava_records(
    convs: &[Conversation],
    frame_of: &BTreeMap<&str, &FrameRecord>,
) -> Vec<Value> {
    convs
        .iter()
        .map(|c| {
            let (images, turns) = with_pictures(c, frame_of);
            let conversations: Vec<Value> = turns
                .into_iter()
                .map(|(role, value)| {
                    let from = if role == "user" { "human" } else { "gpt" };
                    json!({"from": from, "value": value})
                })
                .collect();
            let mut rec = json!({"id": c.id});
            match images.len() {
                0 => {}
                1 => rec["image"] = json!(images[0]),
                _ => rec["image"] = json!(images),
            }
            rec["conversations"] = json!(conversations);
            rec
        })
        .collect()
}

/// `{CODE}_sharegpt.json`: one record per instruction, image paths relative to the folder.
pub fn sharegpt_records(
    convs: &[Conversation],
    frame_of: &BTreeMap<&str, &FrameRecord>,
) -> Vec<Value> {
    convs
        .iter()
        .map(|c| {
            let (images, turns) = with_pictures(c, frame_of);
            let images: Vec<String> = images.iter().map(|n| format!("{IMAGES}/{n}")).collect();
            let messages: Vec<Value> = turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect();
            json!({"id": c.id, "messages": messages, "images": images})
        })
        .collect()
}

/// The name a scenario's ShareGPT file is registered under in `dataset_info.json`.
pub fn dataset_name(code: &str) -> String {
    format!("mimicit_{code}")
}

/// `dataset_info.json`: the entry LLaMA-Factory needs to find `{CODE}_sharegpt.json`.
pub fn dataset_info(code: &str) -> Value {
    json!({
        dataset_name(code): {
            "file_name": format!("{code}_sharegpt.json"),
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant"
            }
        }
    })
}

/// Hard-links each frame into `images/` as [`image_name`] (copying where links are refused)
/// and removes every other file there (pictures of an earlier pack). Returns the files.
pub fn link_images(store: &Path, images: &Path, frames: &[&FrameRecord]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(images).map_err(|e| Error::io(images, e))?;
    let mut out = Vec::with_capacity(frames.len());
    let mut names = BTreeSet::new();
    for f in frames {
        let name = image_name(f);
        let src = store.join(&f.file);
        let dst = images.join(&name);
        if !same_file(&src, &dst) {
            match std::fs::remove_file(&dst) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&dst, e))
                }
                _ => {}
            }
            if std::fs::hard_link(&src, &dst).is_err() {
                // Another filesystem (or one without links): an atomic copy.
                let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
                crate::atomic::write(&dst, &bytes)?;
            }
        }
        names.insert(name);
        out.push(dst);
    }
    for entry in std::fs::read_dir(images).map_err(|e| Error::io(images, e))? {
        let entry = entry.map_err(|e| Error::io(images, e))?;
        if !names.contains(entry.file_name().to_string_lossy().as_ref()) {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(out)
}

/// Whether `a` and `b` are the same file (a link made by an earlier pack), or equal bytes.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) if x.dev() == y.dev() && x.ino() == y.ino() => true,
        (Ok(x), Ok(y)) if x.len() == y.len() => {
            matches!((std::fs::read(a), std::fs::read(b)), (Ok(p), Ok(q)) if p == q)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::Meta;

    fn ins(q: &str, images: &[&str], rel: &[&str]) -> Instruction {
        Instruction {
            instruction: q.into(),
            answer: format!("answer to {q}"),
            image_ids: images.iter().map(|s| s.to_string()).collect(),
            rel_ins_ids: rel.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn frame(id: &str) -> FrameRecord {
        FrameRecord {
            image_id: id.into(),
            unit_id: "u".into(),
            index: 0,
            time_s: None,
            width: 8,
            height: 8,
            pixel_hash: String::new(),
            file: format!("frames/ab/{id}hash.png"),
            bytes: 10,
        }
    }

    #[test]
    fn image_tokens_match_the_pictures_and_context_comes_first() {
        let file = InstructionsFile {
            meta: Meta::default(),
            data: vec![
                ("I1".into(), ins("q1", &["A", "B"], &["I2", "I9"])),
                ("I2".into(), ins("q2", &["A"], &["I1"])),
            ],
        };
        let (a, b) = (frame("A"), frame("B"));
        let frame_of: BTreeMap<&str, &FrameRecord> = [("A", &a), ("B", &b)].into();
        // K = 0: ids only.
        let llava = llava_records(&conversations(&file, 0), &frame_of);
        assert_eq!(
            llava[0],
            json!({"id": "I1", "image": ["A.png", "B.png"], "conversations": [
                {"from": "human", "value": "<image>\n<image>\nq1"},
                {"from": "gpt", "value": "answer to q1"}]})
        );
        assert_eq!(llava[1]["image"], "A.png");
        // K = 3: the known in-context example (I9 is unknown) as turns before the question.
        let share = sharegpt_records(&conversations(&file, 3), &frame_of);
        assert_eq!(
            share[0],
            json!({"id": "I1", "images": ["images/A.png", "images/B.png"], "messages": [
                {"role": "user", "content": "q2"},
                {"role": "assistant", "content": "answer to q2"},
                {"role": "user", "content": "<image>\n<image>\nq1"},
                {"role": "assistant", "content": "answer to q1"}]})
        );
        assert_eq!(
            dataset_info("DC")["mimicit_DC"]["file_name"],
            "DC_sharegpt.json"
        );
    }

    #[test]
    fn images_are_linked_not_copied_and_stale_ones_removed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let f = frame("A");
        let src = dir.path().join(&f.file);
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, b"png bytes").unwrap();
        let images = dir.path().join("chat/images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("old.png"), b"stale").unwrap();
        let out = link_images(dir.path(), &images, &[&f]).unwrap();
        assert_eq!(out, vec![images.join("A.png")]);
        let (m1, m2) = (
            std::fs::metadata(&src).unwrap(),
            std::fs::metadata(&out[0]).unwrap(),
        );
        assert_eq!(
            (m1.dev(), m1.ino()),
            (m2.dev(), m2.ino()),
            "not a hard link"
        );
        assert!(!images.join("old.png").exists());
        // Again: nothing changes.
        link_images(dir.path(), &images, &[&f]).unwrap();
        assert_eq!(std::fs::metadata(&out[0]).unwrap().ino(), m1.ino());
    }
}
