//! Syphus answers: reading the answer files (`valid_output.json` lists or JSONL) and splitting an
//! answer's free text into question/answer pairs.
//!
//! The text comes from an LLM and its layout drifts between prompts, models and runs, so
//! [`split_pairs`] accepts the layouts seen in practice rather than one exact grammar.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::Reject;

/// One Syphus answer: the unit it is about and the LLM's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub unit_id: String,
    pub text: String,
}

/// One instruction/answer pair split from an answer's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaPair {
    pub instruction: String,
    pub answer: String,
}

/// Reads a Syphus answer file: either a JSON list `[{"id": unit_id, "results": text}, ...]`
/// (Syphus' `valid_output.json`) or JSONL, one such object per line (blank lines skipped). The
/// format is told by the first non-blank character: `[` means a JSON list.
///
/// `results` may also be a list of strings, joined with newlines (some Syphus versions keep one
/// string per generated chunk); a numeric `id` is taken as its decimal text.
///
/// A JSON list that does not parse is an error naming the file (and serde's line and column).
/// In JSONL, a line that does not parse, and in both formats an entry without a usable `id` or
/// `results`, becomes a [`Reject`] (stage `pack`, item `file:line` or `file#index`) and the
/// other entries are still returned.
pub fn read_answers(path: &Path) -> Result<(Vec<Answer>, Vec<Reject>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_answers(path, &bytes)
}

/// [`read_answers`] on bytes already read from `path` (which is only used in messages): the
/// parser without the file system, for tests and fuzzing. Bytes that are not UTF-8 are an error
/// naming the file and the offset of the first bad byte.
pub fn parse_answers(path: &Path, bytes: &[u8]) -> Result<(Vec<Answer>, Vec<Reject>)> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to()),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let reject = |item: String, error: String| Reject {
        stage: "pack".into(),
        item,
        path: path.display().to_string(),
        error,
    };
    let mut answers = Vec::new();
    let mut rejects = Vec::new();
    if text.trim_start().starts_with('[') {
        let entries: Vec<Value> = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: format!("not a valid JSON list of answers: {e}"),
        })?;
        for (i, entry) in entries.iter().enumerate() {
            match answer_from(entry) {
                Ok(a) => answers.push(a),
                Err(e) => rejects.push(reject(format!("{name}#{i}"), format!("entry {i}: {e}"))),
            }
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Value>(line)
                .map_err(|e| format!("not valid JSON: {e}"))
                .and_then(|v| answer_from(&v));
            match parsed {
                Ok(a) => answers.push(a),
                Err(e) => rejects.push(reject(format!("{name}:{n}"), format!("line {n}: {e}"))),
            }
        }
    }
    Ok((answers, rejects))
}

fn answer_from(entry: &Value) -> std::result::Result<Answer, String> {
    let unit_id = match entry.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("`id` is not a usable id: {other}")),
        None => return Err("no `id`".into()),
    };
    let text = match entry.get("results") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            parts
                .ok_or_else(|| format!("{unit_id}: `results` list holds a non-string"))?
                .join("\n")
        }
        Some(_) => return Err(format!("{unit_id}: `results` is not a string or list")),
        None => return Err(format!("{unit_id}: no `results`")),
    };
    Ok(Answer { unit_id, text })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Question,
    Answer,
}

/// Label words, longest first so that `Question` is not read as `Q`.
const LABELS: &[(&str, Role)] = &[
    ("instruction", Role::Question),
    ("assistant", Role::Answer),
    ("question", Role::Question),
    ("response", Role::Answer),
    ("answer", Role::Answer),
    ("human", Role::Question),
    ("user", Role::Question),
    ("q", Role::Question),
    ("a", Role::Answer),
];

/// Removes what LLMs put before a label: blanks, markdown headings, bullets, bold or italic
/// markers, quote marks, and a number (`1.`, `1)`, `(1)`).
fn strip_decoration(line: &str) -> &str {
    let mut s = line.trim();
    loop {
        let before = s.len();
        s = s.trim_start_matches(['#', '*', '_', '>', '`']).trim_start();
        if let Some(rest) = s.strip_prefix("- ").or_else(|| s.strip_prefix("• ")) {
            s = rest.trim_start();
        }
        s = strip_number(s);
        if s.len() == before {
            return s;
        }
    }
}

/// `1.`, `12)`, `(3)` followed by a blank.
fn strip_number(s: &str) -> &str {
    let inner = s.strip_prefix('(').unwrap_or(s);
    let digits = inner.len() - inner.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return s;
    }
    let rest = &inner[digits..];
    match rest.strip_prefix(['.', ')']) {
        Some(after) if after.is_empty() || after.starts_with(char::is_whitespace) => {
            after.trim_start()
        }
        _ => s,
    }
}

/// Reads a role label at the start of `line` (after decoration): the label word, an optional
/// number (`Question 1`, `Q1`, `Question #1`), optional closing bold, a colon, optional bold.
/// Returns the role and the text after the label.
fn parse_label(line: &str) -> Option<(Role, &str)> {
    let s = strip_decoration(line);
    let lower = s.to_ascii_lowercase();
    let (word, role) = LABELS.iter().find(|(w, _)| lower.starts_with(*w))?;
    let rest = &s[word.len()..];
    if rest.starts_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    let rest = rest.trim_start_matches(|c: char| c == ' ' || c == '#' || c.is_ascii_digit());
    let rest = rest.trim_start_matches(['*', '_']);
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))?;
    let rest = rest.trim_start_matches(['*', '_']).trim();
    Some((*role, rest))
}

/// `Conversation 1`, `**Conversation 2:**`, `Dialogue 3`: a header between the blocks of
/// SN-style answers. (`Example 1:` is not one: answers use such lines inside their text.)
fn is_block_header(line: &str) -> bool {
    let s = strip_decoration(line).to_ascii_lowercase();
    ["conversation", "dialogue", "dialog"]
        .iter()
        .filter_map(|w| s.strip_prefix(w))
        .any(|rest| {
            rest.chars()
                .all(|c| c.is_ascii_digit() || " :#*_".contains(c))
        })
}

/// `---`, `***`, `===`: markdown rules, read as blank lines.
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.chars().all(|c| "-*=_".contains(c))
}

#[derive(Default)]
struct Builder {
    pairs: Vec<QaPair>,
    question: Option<String>,
    answer: Option<String>,
    /// The next continuation line starts a new paragraph of the current text.
    blank: bool,
    /// An answer with no question before it: its lines are skipped.
    orphan: bool,
}

impl Builder {
    fn flush(&mut self) {
        if let (Some(q), Some(a)) = (self.question.take(), self.answer.take()) {
            let (q, a) = (q.trim(), a.trim());
            if !q.is_empty() && !a.is_empty() {
                self.pairs.push(QaPair {
                    instruction: q.to_string(),
                    answer: a.to_string(),
                });
            }
        }
        self.question = None;
        self.answer = None;
        self.orphan = false;
    }

    fn start(&mut self, role: Role, text: &str) {
        match role {
            Role::Question => {
                self.flush();
                self.question = Some(text.to_string());
            }
            Role::Answer if self.question.is_some() && self.answer.is_none() => {
                self.answer = Some(text.to_string());
            }
            Role::Answer => {
                // A second answer to one question, or one before any question: not a pair.
                self.flush();
                self.orphan = true;
            }
        }
        self.blank = false;
    }

    fn continue_with(&mut self, line: &str) {
        if self.orphan {
            return;
        }
        let target = match (&mut self.question, &mut self.answer) {
            (Some(_), Some(a)) => a,
            (Some(q), None) => q,
            // Preamble before the first question ("Here are some questions:").
            _ => return,
        };
        if !target.is_empty() {
            target.push_str(if self.blank { "\n\n" } else { "\n" });
        }
        target.push_str(line.trim());
        self.blank = false;
    }
}

/// Splits an LLM answer into instruction/answer pairs, in text order.
///
/// Accepted: labels `Question:`/`Answer:`, `Q:`/`A:`, `Instruction:`/`Response:`,
/// `Human:`/`Assistant:` and `User:` (any case), with numbering (`1.`, `1)`, `(1)`,
/// `Question 1:`, `Q1:`), markdown bold/headings/bullets around them (`**Question:**`,
/// `- **Q1:**`), the label alone on its line with the text below, blank lines, and block headers
/// (`Conversation 1`, `Dialogue 2:`) or rules (`---`) between blocks.
///
/// Lines without a label continue the current answer (or question, before its answer); a blank
/// line inside keeps a paragraph break. Text before the first question is ignored. A question
/// with no answer, or an answer with no question, is dropped; texts are trimmed and empty ones
/// dropped. An inline `... Answer: ...` on a question's line also splits.
pub fn split_pairs(text: &str) -> Vec<QaPair> {
    let mut b = Builder::default();
    for line in text.lines() {
        if line.trim().is_empty() || is_rule(line) {
            b.blank = true;
            continue;
        }
        if is_block_header(line) {
            b.flush();
            continue;
        }
        match parse_label(line) {
            Some((Role::Question, rest)) => match split_inline_answer(rest) {
                Some((q, a)) => {
                    b.start(Role::Question, q);
                    b.start(Role::Answer, a);
                }
                None => b.start(Role::Question, rest),
            },
            Some((role, rest)) => b.start(role, rest),
            None => b.continue_with(line),
        }
    }
    b.flush();
    b.pairs
}

/// `What is it? Answer: A cat.` on one line. Only the long labels, after a blank, so that a
/// stray `A:` inside a question does not split it.
fn split_inline_answer(rest: &str) -> Option<(&str, &str)> {
    let lower = rest.to_ascii_lowercase();
    ["answer:", "response:", "**answer:**", "**answer**:"]
        .iter()
        .filter_map(|label| {
            lower
                .match_indices(label)
                .find(|(i, _)| *i > 0 && rest[..*i].ends_with(char::is_whitespace))
                .map(|(i, _)| (i, label.len()))
        })
        .min()
        .map(|(i, len)| {
            (
                rest[..i].trim(),
                rest[i + len..].trim_start_matches(['*', '_']).trim(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        split_pairs(text)
            .into_iter()
            .map(|p| (p.instruction, p.answer))
            .collect()
    }

    fn p(q: &str, a: &str) -> (String, String) {
        (q.to_string(), a.to_string())
    }

    #[test]
    fn plain_question_answer() {
        let text = "Question: What is the man doing?\nAnswer: He is slicing bread.\n\
                    Question: Where is he?\nAnswer: In a kitchen.";
        assert_eq!(
            pairs(text),
            vec![
                p("What is the man doing?", "He is slicing bread."),
                p("Where is he?", "In a kitchen.")
            ]
        );
    }

    #[test]
    fn short_labels_and_blank_lines() {
        let text =
            "\n\nQ: How many people are there?\n\nA: Two.\n\n\nQ:What color is the car?\nA:Red.\n";
        assert_eq!(
            pairs(text),
            vec![
                p("How many people are there?", "Two."),
                p("What color is the car?", "Red.")
            ]
        );
    }

    #[test]
    fn instruction_response_labels() {
        let text = "Instruction: Describe the scene.\nResponse: A busy street at night.";
        assert_eq!(
            pairs(text),
            vec![p("Describe the scene.", "A busy street at night.")]
        );
    }

    #[test]
    fn numbered_in_several_ways() {
        let text = "1. Question: What happens first?\n   Answer: The door opens.\n\
                    2) Question: Then?\n   Answer: A dog runs in.\n\
                    Question 3: Who follows?\nAnswer 3: A child.\n\
                    Q4: Why?\nA4: To catch the dog.\n\
                    (5) Q: Is it raining?\n(5) A: No.";
        assert_eq!(
            pairs(text),
            vec![
                p("What happens first?", "The door opens."),
                p("Then?", "A dog runs in."),
                p("Who follows?", "A child."),
                p("Why?", "To catch the dog."),
                p("Is it raining?", "No."),
            ]
        );
    }

    #[test]
    fn markdown_bold_and_bullets() {
        let text = "**Question:** What is on the table?\n**Answer:** A laptop and a mug.\n\n\
                    - **Question 2:** Is the laptop open?\n- **Answer 2**: Yes, it is.\n\
                    ### Question: What time of day is it?\n### Answer: Evening.\n\
                    **Q:** Anything else?\n**A:** No.";
        assert_eq!(
            pairs(text),
            vec![
                p("What is on the table?", "A laptop and a mug."),
                p("Is the laptop open?", "Yes, it is."),
                p("What time of day is it?", "Evening."),
                p("Anything else?", "No."),
            ]
        );
    }

    #[test]
    fn multi_line_answers_keep_their_lines() {
        let text = "Question: What are the steps?\nAnswer: First, open the box.\n\
                    Then take out the parts.\n\nFinally, assemble them.\n\
                    Question: How long does it take?\nAnswer: About ten minutes.";
        assert_eq!(
            pairs(text),
            vec![
                p(
                    "What are the steps?",
                    "First, open the box.\nThen take out the parts.\n\nFinally, assemble them."
                ),
                p("How long does it take?", "About ten minutes."),
            ]
        );
    }

    #[test]
    fn label_alone_on_its_line() {
        let text = "Question:\nWhat is the woman holding?\nAnswer:\nAn umbrella.\n";
        assert_eq!(
            pairs(text),
            vec![p("What is the woman holding?", "An umbrella.")]
        );
    }

    #[test]
    fn numbered_list_inside_an_answer_stays_in_the_answer() {
        let text = "Question: What can I cook here?\nAnswer: Several dishes:\n\
                    1. Pasta with the tomatoes.\n2. An omelette.\nQuestion: Anything quick?\nAnswer: The omelette.";
        assert_eq!(
            pairs(text),
            vec![
                p(
                    "What can I cook here?",
                    "Several dishes:\n1. Pasta with the tomatoes.\n2. An omelette."
                ),
                p("Anything quick?", "The omelette."),
            ]
        );
    }

    #[test]
    fn sn_conversation_blocks() {
        let text = "Conversation 1:\nHuman: I want to host a party here. Where do I put the food?\n\
                    Assistant: The long table by the window works well.\n\n\
                    Conversation 2\nHuman: Where can guests sit?\nAssistant: On the sofa and the two armchairs.\n\
                    **Conversation 3:**\nQuestion: Is there a TV?\nAnswer: Yes, on the wall.";
        assert_eq!(
            pairs(text),
            vec![
                p(
                    "I want to host a party here. Where do I put the food?",
                    "The long table by the window works well."
                ),
                p(
                    "Where can guests sit?",
                    "On the sofa and the two armchairs."
                ),
                p("Is there a TV?", "Yes, on the wall."),
            ]
        );
    }

    #[test]
    fn example_lines_stay_inside_an_answer() {
        let text = "Question: How do I use the stove?\nAnswer: Turn the knob.\nExample 1:\nLow heat for eggs.";
        assert_eq!(
            pairs(text),
            vec![p(
                "How do I use the stove?",
                "Turn the knob.\nExample 1:\nLow heat for eggs."
            )]
        );
    }

    #[test]
    fn header_ends_the_previous_answer() {
        let text = "Conversation 1\nQ: One?\nA: Yes.\nConversation 2\nQ: Two?\nA: No.";
        assert_eq!(pairs(text), vec![p("One?", "Yes."), p("Two?", "No.")]);
    }

    #[test]
    fn preamble_and_rules_are_ignored() {
        let text = "Sure! Here are some questions about the video:\n\n---\n\
                    Question: What sport is played?\nAnswer: Tennis.\n---\n\
                    Question: Who wins?\nAnswer: The player in white.";
        assert_eq!(
            pairs(text),
            vec![
                p("What sport is played?", "Tennis."),
                p("Who wins?", "The player in white.")
            ]
        );
    }

    #[test]
    fn question_without_answer_is_dropped() {
        let text = "Question: First?\nAnswer: Yes.\nQuestion: Dangling?";
        assert_eq!(pairs(text), vec![p("First?", "Yes.")]);
        assert!(split_pairs("Question: Only a question?").is_empty());
        assert!(split_pairs("Question: Empty answer?\nAnswer:   \n").is_empty());
    }

    #[test]
    fn orphan_and_repeated_answers_are_dropped() {
        let text = "Answer: Nobody asked.\nmore of it\nQuestion: Real?\nAnswer: Yes.\nAnswer: Again.\ntail";
        assert_eq!(pairs(text), vec![p("Real?", "Yes.")]);
    }

    #[test]
    fn no_pairs_in_free_text() {
        assert!(split_pairs("").is_empty());
        assert!(split_pairs("I'm sorry, I cannot help with that request.").is_empty());
        assert!(split_pairs("A man: walks in. Questions are hard.").is_empty());
    }

    #[test]
    fn words_starting_like_labels_are_not_labels() {
        let text = "Question: What is written on the sign?\nAnswer: It says:\nQuestions welcome: ask inside.\nAnswers: none.";
        assert_eq!(
            pairs(text),
            vec![p(
                "What is written on the sign?",
                "It says:\nQuestions welcome: ask inside.\nAnswers: none."
            )]
        );
    }

    #[test]
    fn inline_answer_on_the_question_line() {
        let text =
            "1. Question: What is it? Answer: A cat.\n2. Question: What colour? **Answer:** Black.";
        assert_eq!(
            pairs(text),
            vec![p("What is it?", "A cat."), p("What colour?", "Black.")]
        );
        // A short `A:` inside a question does not split it.
        assert_eq!(
            pairs("Q: Is plan A: the best one?\nA: Yes."),
            vec![p("Is plan A: the best one?", "Yes.")]
        );
    }

    #[test]
    fn case_and_crlf_and_fullwidth_colon() {
        let text = "QUESTION: Loud?\r\nanswer: quiet.\r\nQuestion：Wide?\r\nAnswer：Yes.\r\n";
        assert_eq!(pairs(text), vec![p("Loud?", "quiet."), p("Wide?", "Yes.")]);
    }

    #[test]
    fn tvc_style_realistic_output() {
        let text = "Here are the question-answer pairs:\n\n\
            1. Question: Why does Sheldon knock three times?\n   Answer: It is his habit; he knocks and calls Penny's name three times before entering.\n\n\
            2. Question: How does Penny react?\n   Answer: She rolls her eyes but lets him in.\n\n\
            I hope these are helpful!";
        let got = pairs(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "Why does Sheldon knock three times?");
        // Trailing chatter after a blank line is a continuation of the last answer.
        assert_eq!(
            got[1].1,
            "She rolls her eyes but lets him in.\n\nI hope these are helpful!"
        );
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_valid_output_json_list() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "valid_output.json",
            r#"[{"id": "v_a", "results": "Question: A?\nAnswer: B."},
                {"id": "v_b", "results": ["Q: C?", "A: D."]},
                {"id": 7, "results": "x"},
                {"results": "no id"},
                {"id": "v_c", "results": 3}]"#,
        );
        let (answers, rejects) = read_answers(&f).unwrap();
        assert_eq!(
            answers,
            vec![
                Answer {
                    unit_id: "v_a".into(),
                    text: "Question: A?\nAnswer: B.".into()
                },
                Answer {
                    unit_id: "v_b".into(),
                    text: "Q: C?\nA: D.".into()
                },
                Answer {
                    unit_id: "7".into(),
                    text: "x".into()
                },
            ]
        );
        assert_eq!(rejects.len(), 2);
        assert_eq!(rejects[0].item, "valid_output.json#3");
        assert_eq!(rejects[0].stage, "pack");
        assert!(rejects[1].error.contains("v_c"), "{:?}", rejects[1]);
    }

    #[test]
    fn malformed_json_list_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "broken.json", "[{\"id\": \"a\", \"results\": ");
        let err = read_answers(&f).unwrap_err().to_string();
        assert!(err.contains("broken.json"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn jsonl_keeps_good_lines_and_rejects_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "answers.jsonl",
            "{\"id\": \"u1\", \"results\": \"Q: a?\\nA: b.\"}\n\n{\"id\": \"u2\", \"results\"\n{\"id\": \"u3\", \"results\": \"Q: c?\\nA: d.\"}\n",
        );
        let (answers, rejects) = read_answers(&f).unwrap();
        let ids: Vec<&str> = answers.iter().map(|a| a.unit_id.as_str()).collect();
        assert_eq!(ids, vec!["u1", "u3"]);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].item, "answers.jsonl:3");
        assert!(rejects[0].error.starts_with("line 3:"), "{:?}", rejects[0]);
        assert!(rejects[0].path.ends_with("answers.jsonl"));
    }

    #[test]
    fn missing_file_is_an_error_with_its_path() {
        let err = read_answers(Path::new("/nowhere/answers.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nowhere/answers.json"), "{err}");
    }
}
