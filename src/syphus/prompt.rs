//! Prompts and request messages.
//!
//! A prompt file has the published Syphus layout: `{"system_message": text, "in_context":
//! [{"role": "user" | "assistant", "content": ...}]}`. A user turn's content is text; an
//! assistant turn's content is text or a list of objects whose `{prefix: text}` entries become
//! `prefix: text\n` lines, in file order (as Syphus' loader does). The request is the system
//! message, the in-context turns, then the query as the last user turn.
//!
//! SN requests wrap the query (FORMATS.md §4): `Sentences: {message}\n{header}{candidates}\n
//! {closing}`, where the candidates are activities drawn from a list (one per line, each line
//! kept with its newline and the drawn lines joined by `\n`, as the original reads and joins
//! them). The original draws them at random; here the draw is seeded by the query, so the same
//! query always gives the same request and a rerun is served from the store. A prompt file may
//! carry the two SN texts as `"sn_header"` and `"sn_closing"`; the defaults are our own words.
//!
//! The default prompt of every scenario (`prompts/*.json`, embedded at build time) is written
//! for mimicit; point `syphus.prompt` at another file (the published ones read as they are).

use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::Code;
use crate::error::{Error, Result};

/// One chat message as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// A loaded prompt: the system message and the in-context turns, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub system_message: String,
    pub in_context: Vec<Message>,
    /// SN: the text before the candidate activities (after `Sentences: ...\n`).
    pub sn_header: String,
    /// SN: the text after the candidate activities.
    pub sn_closing: String,
}

#[derive(Deserialize)]
struct PromptFile {
    system_message: String,
    in_context: Vec<Turn>,
    #[serde(default)]
    sn_header: Option<String>,
    #[serde(default)]
    sn_closing: Option<String>,
}

#[derive(Deserialize)]
struct Turn {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Pairs(Vec<OrderedPairs>),
}

/// A JSON object read as its entries in file order (serde_json's map would sort them).
struct OrderedPairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of {prefix: text} entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedPairs, A::Error> {
                let mut v = Vec::new();
                while let Some((k, t)) = map.next_entry::<String, String>()? {
                    v.push((k, t));
                }
                Ok(OrderedPairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

const DEFAULT_SN_HEADER: &str = "Candidate activities, each with the person who wants to do it:";
const DEFAULT_SN_CLOSING: &str = "Write three conversations, one for each of three activities chosen from the candidates as the best fit for this room. Each conversation has three rounds. Right after naming the person, give the reason the activity suits this room on a line of the form reason: ... Vary the assistant's style: it should not always answer with a list.";

/// The shipped candidate activities for SN (our own list).
pub const DEFAULT_SN_CANDIDATES: &str = include_str!("../../prompts/sn_candidates.txt");

impl Prompt {
    /// Reads a prompt file (published Syphus layout, see the module doc).
    pub fn load(path: &Path) -> Result<Prompt> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Prompt::parse(path, &bytes)
    }

    /// [`Prompt::load`] on bytes already read (`path` is only used in messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Prompt> {
        let json_err = |message: String| Error::Json {
            path: path.to_path_buf(),
            message,
        };
        let file: PromptFile = serde_json::from_slice(bytes)
            .map_err(|e| json_err(format!("not a Syphus prompt file: {e}")))?;
        let mut in_context = Vec::with_capacity(file.in_context.len());
        for (i, turn) in file.in_context.into_iter().enumerate() {
            let content = match (turn.role.as_str(), turn.content) {
                ("user", Content::Text(t)) | ("assistant", Content::Text(t)) => t,
                ("assistant", Content::Pairs(list)) => {
                    let mut s = String::new();
                    for pairs in list {
                        for (prefix, text) in pairs.0 {
                            s.push_str(&prefix);
                            s.push_str(": ");
                            s.push_str(&text);
                            s.push('\n');
                        }
                    }
                    s
                }
                ("user", Content::Pairs(_)) => {
                    return Err(json_err(format!(
                        "in_context[{i}]: a user turn's content must be text"
                    )))
                }
                (role, _) => {
                    return Err(json_err(format!(
                        "in_context[{i}]: role `{role}`: only `user` and `assistant` are allowed"
                    )))
                }
            };
            in_context.push(Message::new(&turn.role, content));
        }
        Ok(Prompt {
            system_message: file.system_message,
            in_context,
            sn_header: file.sn_header.unwrap_or_else(|| DEFAULT_SN_HEADER.into()),
            sn_closing: file.sn_closing.unwrap_or_else(|| DEFAULT_SN_CLOSING.into()),
        })
    }

    /// The shipped prompt of a scenario.
    pub fn default_for(code: Code) -> Prompt {
        let (name, text) = default_text(code);
        Prompt::parse(Path::new(name), text.as_bytes()).expect("shipped prompts parse")
    }

    /// The messages of one request: system, in-context turns, then `user` as the last turn.
    pub fn messages(&self, user: String) -> Vec<Message> {
        let mut m = Vec::with_capacity(self.in_context.len() + 2);
        m.push(Message::new("system", self.system_message.clone()));
        m.extend(self.in_context.iter().cloned());
        m.push(Message::new("user", user));
        m
    }

    /// The SN user turn for a query (see the module doc).
    pub fn sn_user_turn(&self, message: &str, candidates: &str) -> String {
        format!(
            "Sentences: {message}\n{}{candidates}\n{}",
            self.sn_header, self.sn_closing
        )
    }
}

/// The file name and text of the shipped prompt of a scenario.
pub fn default_text(code: Code) -> (&'static str, &'static str) {
    match code {
        Code::CGD => (
            "prompts/coco_general_difference.json",
            include_str!("../../prompts/coco_general_difference.json"),
        ),
        Code::SD => (
            "prompts/spot_the_difference.json",
            include_str!("../../prompts/spot_the_difference.json"),
        ),
        Code::SN => (
            "prompts/scene_navigation.json",
            include_str!("../../prompts/scene_navigation.json"),
        ),
        Code::E4D => (
            "prompts/ego4d.json",
            include_str!("../../prompts/ego4d.json"),
        ),
        Code::TVC => (
            "prompts/tv_captions.json",
            include_str!("../../prompts/tv_captions.json"),
        ),
        Code::DC => (
            "prompts/dense_captions.json",
            include_str!("../../prompts/dense_captions.json"),
        ),
        Code::VST => (
            "prompts/visual_storytelling.json",
            include_str!("../../prompts/visual_storytelling.json"),
        ),
        Code::LA => (
            "prompts/llava_in_context.json",
            include_str!("../../prompts/llava_in_context.json"),
        ),
    }
}

/// The candidate lines of an SN list, each with its line ending as read (blank lines skipped).
pub fn candidate_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n')
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Draws `k` distinct candidates (fewer when the list is shorter) in an order seeded by
/// `seed_text`, and joins them as the original does (`"\n".join(lines)` of lines that keep
/// their newline).
pub fn draw_candidates(lines: &[&str], k: usize, seed_text: &str) -> String {
    let h = blake3::hash(seed_text.as_bytes());
    let mut state = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut idx: Vec<usize> = (0..lines.len()).collect();
    let k = k.min(lines.len());
    for i in 0..k {
        let r = splitmix64(&mut state);
        let j = i + (r % (idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx[..k]
        .iter()
        .map(|&i| lines[i])
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assistant_pairs_become_prefixed_lines_in_file_order() {
        let text = br#"{"system_message": "sys", "in_context": [
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": [{"Question": "q1", "Answer": "a1"}, {"Zeta": "z", "Alpha": "a"}]},
            {"role": "assistant", "content": "plain"}]}"#;
        let p = Prompt::parse(Path::new("p.json"), text).unwrap();
        assert_eq!(p.system_message, "sys");
        assert_eq!(
            p.in_context,
            vec![
                Message::new("user", "u1"),
                Message::new("assistant", "Question: q1\nAnswer: a1\nZeta: z\nAlpha: a\n"),
                Message::new("assistant", "plain"),
            ]
        );
        let m = p.messages("query".into());
        assert_eq!(m.first().unwrap(), &Message::new("system", "sys"));
        assert_eq!(m.last().unwrap(), &Message::new("user", "query"));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn bad_prompt_files_name_the_file_and_turn() {
        let err = Prompt::parse(
            Path::new("x.json"),
            br#"{"system_message": "", "in_context": [{"role": "system", "content": "s"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("x.json") && err.contains("in_context[0]"),
            "{err}"
        );
        let err = Prompt::parse(Path::new("y.json"), b"{")
            .unwrap_err()
            .to_string();
        assert!(err.contains("y.json"), "{err}");
    }

    #[test]
    fn every_scenario_has_a_shipped_prompt() {
        for code in [
            Code::CGD,
            Code::SD,
            Code::SN,
            Code::E4D,
            Code::TVC,
            Code::DC,
            Code::VST,
            Code::LA,
        ] {
            let p = Prompt::default_for(code);
            assert!(!p.system_message.is_empty(), "{code:?}");
            assert!(p.in_context.len() >= 2, "{code:?}");
            assert_eq!(p.in_context.last().unwrap().role, "assistant", "{code:?}");
        }
        assert!(candidate_lines(DEFAULT_SN_CANDIDATES).len() >= 20);
    }

    #[test]
    fn candidates_are_seeded_distinct_and_joined_like_the_original() {
        let lines = candidate_lines("a\nb\n\nc\nd\ne");
        assert_eq!(lines, vec!["a\n", "b\n", "c\n", "d\n", "e"]);
        let one = draw_candidates(&lines, 3, "scene0001");
        assert_eq!(one, draw_candidates(&lines, 3, "scene0001"));
        let picked: Vec<&str> = one.split('\n').filter(|s| !s.is_empty()).collect();
        assert_eq!(picked.len(), 3);
        let mut uniq = picked.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 3);
        assert_eq!(
            draw_candidates(&lines, 10, "x")
                .matches(char::is_alphabetic)
                .count(),
            5
        );
        let differ = (0..20).any(|i| draw_candidates(&lines, 3, &format!("s{i}")) != one);
        assert!(differ);
    }
}
