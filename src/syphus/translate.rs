//! The translation pass: every question/answer pair of every answer, translated into the
//! settings' languages (see the module doc of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::client::{Cause, Client};
use super::pool::{self, Job, JobResult, Limiter, Limits, Stop};
use super::stats::Stats;
use super::store::{self, Record, Store};
use super::{AnswerRow, MessageRef, Plan, RejectRow};
use crate::error::Result;

const TEMPLATE: &str = include_str!("../../prompts/translate.txt");

/// English names of the languages the paper used; other codes are named by their code.
fn language_name(code: &str) -> String {
    let name = match code {
        "zh" => "Chinese",
        "es" => "Spanish",
        "ja" => "Japanese",
        "de" => "German",
        "fr" => "French",
        "ko" => "Korean",
        "ar" => "Arabic",
        "en" => "English",
        "ru" => "Russian",
        "pt" => "Portuguese",
        "it" => "Italian",
        _ => return code.to_string(),
    };
    format!("{name} ({code})")
}

/// The system message for a set of languages.
pub fn system_message(languages: &[String]) -> String {
    let names: Vec<String> = languages.iter().map(|l| language_name(l)).collect();
    let inner: Vec<String> = languages
        .iter()
        .map(|l| format!("\"{l}\": \"...\""))
        .collect();
    let inner = inner.join(", ");
    let skeleton = format!("{{\"a\": {{{inner}}}, \"b\": {{{inner}}}}}");
    TEMPLATE
        .trim_end()
        .replace("{languages}", &names.join(", "))
        .replace("{skeleton}", &skeleton)
}

/// The user turn of one pair.
pub fn user_turn(question: &str, answer: &str) -> String {
    format!("<a>{question}</a><b>{answer}</b>")
}

/// Reads `{"a": {lang: text}, "b": {lang: text}}` from a reply (code fences and chatter around
/// the object are ignored). `None` when a language is missing.
pub fn parse_reply(text: &str, languages: &[String]) -> Option<HashMap<String, (String, String)>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let v: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let mut out = HashMap::new();
    for l in languages {
        let a = v.get("a")?.get(l)?.as_str()?.trim().to_string();
        let b = v.get("b")?.get(l)?.as_str()?.trim().to_string();
        if a.is_empty() || b.is_empty() {
            return None;
        }
        out.insert(l.clone(), (a, b));
    }
    Some(out)
}

type Translated = (
    BTreeMap<String, Vec<AnswerRow>>,
    Vec<RejectRow>,
    Vec<String>,
    Option<Stop>,
);

#[allow(clippy::too_many_arguments)]
pub(super) fn translate(
    plan: &Plan,
    answers: &[AnswerRow],
    answered: &[usize],
    store: &Store,
    client: &Client,
    limits: &Limits,
    limiter: &mut Limiter,
    stats: &mut Stats,
    cancel: &AtomicBool,
) -> Result<Translated> {
    let languages = &plan.settings.languages;
    let system = system_message(languages);
    let body = |user: &str| {
        plan.chat_body(
            vec![
                MessageRef {
                    role: "system",
                    content: &system,
                },
                MessageRef {
                    role: "user",
                    content: user,
                },
            ],
            None,
        )
    };
    let fixed = 3 + 4 + plan.tokenizer.count(&system) + 4;
    // Per answer, its pairs' request indices; requests deduplicated by key.
    let mut users: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut pairs_of: Vec<Vec<usize>> = Vec::with_capacity(answers.len());
    for a in answers {
        let mut list = Vec::new();
        for p in crate::shards::split_pairs(&a.results) {
            let user = user_turn(&p.instruction, &p.answer);
            let key = store::key_of(&body(&user));
            let i = *by_key.entry(key.clone()).or_insert_with(|| {
                users.push(user);
                keys.push(key);
                users.len() - 1
            });
            list.push(i);
        }
        pairs_of.push(list);
    }
    stats.translation_requests += users.len() as u64;
    let mut results: Vec<Option<JobResult>> = vec![None; users.len()];
    let mut jobs = Vec::new();
    let mut job_request = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match store.get(key) {
            Some(rec) => {
                stats.served_from_store += 1;
                results[i] = Some(JobResult::Done(rec));
            }
            None => {
                jobs.push(Job {
                    key: key.clone(),
                    est_tokens: fixed
                        + plan.tokenizer.count(&users[i])
                        + plan.settings.max_tokens as u64,
                });
                job_request.push(i);
            }
        }
    }
    let job_body = |j: usize| body(&users[job_request[j]]);
    let (done, stop) = pool::run(
        &jobs,
        &job_body,
        client,
        store,
        limits,
        limiter,
        stats,
        cancel,
        &|_, _| {},
    )?;
    for (j, r) in done.into_iter().enumerate() {
        results[job_request[j]] = Some(r);
    }
    // Per request: the parsed translations, or why not.
    enum T {
        Ok(HashMap<String, (String, String)>),
        Bad(Cause, Option<u16>, u32, String),
        Pending,
    }
    let parsed: Vec<T> = results
        .into_iter()
        .map(|r| match r.unwrap_or(JobResult::NotSent) {
            JobResult::Done(Record {
                content: Some(text),
                status,
                attempts,
                ..
            }) => match parse_reply(&text, languages) {
                Some(map) => T::Ok(map),
                None => T::Bad(
                    Cause::BadTranslation,
                    Some(status),
                    attempts,
                    super::client::excerpt(&text),
                ),
            },
            JobResult::Done(rec) => T::Bad(
                Cause::ClientError,
                Some(rec.status),
                rec.attempts,
                rec.error.unwrap_or_default(),
            ),
            JobResult::Failed {
                cause,
                status,
                attempts,
                excerpt,
            } => T::Bad(cause, status, attempts, excerpt),
            JobResult::NotSent => T::Pending,
        })
        .collect();

    let mut rows: BTreeMap<String, Vec<AnswerRow>> =
        languages.iter().map(|l| (l.clone(), Vec::new())).collect();
    let mut rejects = Vec::new();
    let mut pending = Vec::new();
    for ((a, &qi), list) in answers.iter().zip(answered).zip(&pairs_of) {
        if list.iter().any(|&i| matches!(parsed[i], T::Pending)) {
            pending.push(a.id.clone());
            continue;
        }
        if let Some(&bad) = list.iter().find(|&&i| matches!(parsed[i], T::Bad(..))) {
            let T::Bad(cause, status, attempts, excerpt) = &parsed[bad] else {
                unreachable!("matched above")
            };
            for l in languages {
                rejects.push(RejectRow {
                    id: a.id.clone(),
                    query: qi,
                    pass: format!("translate:{l}"),
                    cause: cause.as_str().into(),
                    status: *status,
                    attempts: *attempts,
                    excerpt: excerpt.clone(),
                });
            }
            continue;
        }
        for l in languages {
            let text: Vec<String> = list
                .iter()
                .map(|&i| match &parsed[i] {
                    T::Ok(map) => {
                        let (q, ans) = &map[l];
                        format!("Question: {q}\nAnswer: {ans}")
                    }
                    _ => unreachable!("all pairs translated"),
                })
                .collect();
            rows.get_mut(l).expect("language row").push(AnswerRow {
                id: a.id.clone(),
                results: text.join("\n\n"),
            });
        }
    }
    Ok((rows, rejects, pending, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_message_lists_languages_and_shape() {
        let m = system_message(&["zh".into(), "xx".into()]);
        assert!(m.contains("Chinese (zh), xx"), "{m}");
        assert!(
            m.contains(r#"{"a": {"zh": "...", "xx": "..."}, "b": {"zh": "...", "xx": "..."}}"#),
            "{m}"
        );
        assert!(!m.contains("{languages}") && !m.contains("{skeleton}"));
    }

    #[test]
    fn replies_are_read_with_fences_and_checked_for_every_language() {
        let langs = vec!["zh".to_string(), "de".to_string()];
        let reply = "```json\n{\"a\": {\"zh\": \"问\", \"de\": \"Frage\"}, \"b\": {\"zh\": \"答\", \"de\": \"Antwort\"}}\n```";
        let got = parse_reply(reply, &langs).unwrap();
        assert_eq!(got["de"], ("Frage".to_string(), "Antwort".to_string()));
        assert!(parse_reply("{\"a\": {\"zh\": \"x\"}, \"b\": {\"zh\": \"y\"}}", &langs).is_none());
        assert!(parse_reply("no json here", &langs).is_none());
        assert_eq!(user_turn("Q?", "A."), "<a>Q?</a><b>A.</b>");
    }
}
