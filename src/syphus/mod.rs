//! Syphus: asking an OpenAI-compatible chat model for the question/answer pairs of every query
//! the metadata stage wrote (`{CODE}_query.json`), as Luodian/Otter's Syphus runner does, but
//! with a continuous pool, rate limits, retries, a crash-safe response store and a budget.
//!
//! The stage calls, in order:
//! 1. [`read_queries`] (or builds [`Query`]s itself);
//! 2. [`plan`]: validates the settings, loads the prompt, builds every request and counts its
//!    prompt tokens; [`Plan::dry_run`] tells what a run would send and cost, sending nothing;
//! 3. [`generate`]: sends what the store does not hold yet and returns the [`Outcome`]:
//!    answers in query order (the `[{"id", "results"}]` layout pack reads, see
//!    [`write_answers`]), rejects, queries left for a later run, translations, [`Stats`].
//!
//! Requests: `POST {endpoint}/chat/completions` with `{"model", "messages", "temperature",
//! "top_p", "max_tokens"}` (plus `"seed": k` in the k-th reask), messages as [`prompt`]
//! describes. Identical request bodies are sent once and their answer serves every query that
//! has them.
//!
//! Store and resume ([`store`]): each response is appended to `STORE/responses.jsonl` and
//! fsynced as it arrives, addressed by the blake3 of the whole request body. A rerun with the
//! same settings sends nothing; a changed prompt, model or sampling setting changes every body
//! and so resends every query; a changed message resends that query only; a run killed at any
//! moment resends only what had no stored response. The endpoint is not part of the address.
//!
//! Failures: HTTP 429 and 5xx, time-outs, broken connections and 2xx bodies without a message
//! are retried up to `max_attempts` with exponential backoff and jitter (never sooner than
//! `Retry-After`); other 4xx are refused at once. A query whose attempts all failed, that was
//! refused, or whose answer holds no question/answer pair ([`crate::shards::split_pairs`]) is a
//! reject, asked again up to `reask` times first.
//!
//! Translation: with `languages` set, every question/answer pair of every answer is sent once
//! more, as `<a>question</a><b>answer</b>`, asking for a JSON object `{"a": {lang: text},
//! "b": {lang: text}}`; [`Outcome::translations`] holds per language the answers rebuilt as
//! `Question: ...\nAnswer: ...` text, in query order, so pack can write one file per language.
//!
//! The API key ([`ApiKey`]) is read from the environment variable `api_key_env` and sent only
//! in the `Authorization` header: it is in no request body, store line, error, reject, log line
//! or `Debug` output.

pub mod client;
pub mod pool;
pub mod prompt;
pub mod stats;
pub mod store;
#[doc(hidden)]
pub mod testserver;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

pub use crate::config::SyphusSettings;
pub use client::{ApiKey, Cause};
pub use pool::Stop;
pub use prompt::{Message, Prompt};
pub use stats::Stats;
pub use store::Store;

use crate::config::Code;
use crate::error::{Error, Result};
use crate::progress::Progress;
use pool::{Job, JobResult, Limiter, Limits};
use store::Record;

/// One query: the unit id and the exact user message (`{CODE}_query.json` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub id: String,
    #[serde(rename = "sentences")]
    pub message: String,
}

/// Reads `{CODE}_query.json` (`[{"id", "sentences"}]`, ids may repeat).
pub fn read_queries(path: &Path) -> Result<Vec<Query>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: format!("not a Syphus query list: {e}"),
    })
}

/// One answer row, the layout pack reads (`valid_output.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRow {
    pub id: String,
    pub results: String,
}

/// Writes answer rows as a JSON list, atomically.
pub fn write_answers(path: &Path, rows: &[AnswerRow]) -> Result<()> {
    crate::atomic::write_json(path, &rows)
}

/// A query with no usable answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectRow {
    pub id: String,
    /// Index of the query in the query list.
    pub query: usize,
    /// `generate`, or `translate:{lang}`.
    pub pass: String,
    /// [`Cause::as_str`] of the last failure.
    pub cause: String,
    pub status: Option<u16>,
    /// HTTP attempts of the last request made for it.
    pub attempts: u32,
    /// The start of the response body or error (never the key).
    pub excerpt: String,
}

impl RejectRow {
    /// As a row of the stage's rejects table.
    pub fn to_reject(&self) -> crate::model::Reject {
        let status = self
            .status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        crate::model::Reject {
            stage: "syphus".into(),
            item: self.id.clone(),
            path: String::new(),
            error: format!(
                "{}: {}{status} after {} attempt(s): {}",
                self.pass, self.cause, self.attempts, self.excerpt
            ),
        }
    }
}

/// What [`generate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// One row per answered query, in query order.
    pub answers: Vec<AnswerRow>,
    pub rejects: Vec<RejectRow>,
    /// Ids (query order) of queries whose work the budget or a cancel left for a later run.
    pub pending: Vec<String>,
    /// Per language, one row per query whose pairs were all translated, in query order.
    pub translations: BTreeMap<String, Vec<AnswerRow>>,
    pub stopped: Option<Stop>,
    pub stats: Stats,
}

impl Outcome {
    /// Every query has its final answer or reject.
    pub fn complete(&self) -> bool {
        self.pending.is_empty() && self.stopped.is_none()
    }
}

/// What a run would send (see [`Plan::dry_run`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub queries: u64,
    /// Distinct request bodies of the first pass.
    pub requests: u64,
    /// Of those, already answered in the store (not sent again).
    pub stored: u64,
    /// Requests to send and their prompt tokens (the tokenizer's count, with the chat
    /// format's per-message overhead).
    pub to_send: u64,
    pub prompt_tokens: u64,
    /// `to_send * max_tokens`: the most completion tokens they can cost.
    pub max_completion_tokens: u64,
    pub tokenizer: String,
    /// Prompt tokens at the prompt price; the most with every completion at `max_tokens`.
    pub cost_prompt: Option<f64>,
    pub cost_max: Option<f64>,
    /// Not counted: reasks and the translation pass, which depend on the answers.
    pub note: &'static str,
}

struct Planned {
    user: String,
    key: String,
    prompt_tokens: u64,
}

/// Every request of a run, ready to send (see [`plan`]).
pub struct Plan {
    settings: SyphusSettings,
    prompt: Prompt,
    ids: Vec<String>,
    /// Per query, its request.
    query_request: Vec<usize>,
    requests: Vec<Planned>,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("model", &self.settings.model)
            .field("queries", &self.ids.len())
            .field("requests", &self.requests.len())
            .finish()
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<MessageRef<'a>>,
    temperature: f64,
    top_p: f64,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u32>,
}

#[derive(Serialize)]
struct MessageRef<'a> {
    role: &'a str,
    content: &'a str,
}

/// Builds every request of a run: validates the settings, loads the prompt (`settings.prompt`
/// or the scenario's shipped one), wraps SN queries with their seeded candidate activities,
/// and counts prompt tokens with the model family's tokenizer (bundled vocabularies;
/// `cl100k_base` for models it does not know).
pub fn plan(code: Code, queries: &[Query], settings: &SyphusSettings) -> Result<Plan> {
    settings.validate()?;
    let prompt = match &settings.prompt {
        Some(p) => Prompt::load(p)?,
        None => Prompt::default_for(code),
    };
    let candidates_text;
    let candidates: Vec<&str> = if code == Code::SN {
        candidates_text = match &settings.candidates {
            Some(p) => std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            None => prompt::DEFAULT_SN_CANDIDATES.to_string(),
        };
        let lines = prompt::candidate_lines(&candidates_text);
        if lines.is_empty() {
            return Err(Error::Invalid(
                "syphus.candidates: the list of candidate activities is empty".into(),
            ));
        }
        lines
    } else {
        Vec::new()
    };
    let tokenizer = Tokenizer::for_model(&settings.model);
    let fixed = 3
        + 4
        + tokenizer.count(&prompt.system_message)
        + prompt
            .in_context
            .iter()
            .map(|m| 4 + tokenizer.count(&m.content))
            .sum::<u64>();
    let mut plan = Plan {
        settings: settings.clone(),
        prompt,
        ids: Vec::with_capacity(queries.len()),
        query_request: Vec::with_capacity(queries.len()),
        requests: Vec::new(),
        tokenizer,
    };
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for q in queries {
        let user = if code == Code::SN {
            let drawn = prompt::draw_candidates(
                &candidates,
                settings.candidates_per_query,
                &format!("{}\n{}", q.id, q.message),
            );
            plan.prompt.sn_user_turn(&q.message, &drawn)
        } else {
            q.message.clone()
        };
        let key = store::key_of(&plan.body(&user, None));
        let index = match by_key.get(&key) {
            Some(&i) => i,
            None => {
                let prompt_tokens = fixed + 4 + plan.tokenizer.count(&user);
                plan.requests.push(Planned {
                    user,
                    key: key.clone(),
                    prompt_tokens,
                });
                by_key.insert(key, plan.requests.len() - 1);
                plan.requests.len() - 1
            }
        };
        plan.ids.push(q.id.clone());
        plan.query_request.push(index);
    }
    Ok(plan)
}

impl Plan {
    pub fn settings(&self) -> &SyphusSettings {
        &self.settings
    }

    pub fn queries(&self) -> usize {
        self.ids.len()
    }

    /// Distinct request bodies of the first pass.
    pub fn requests(&self) -> usize {
        self.requests.len()
    }

    /// The request body of query `i` (first pass), exactly as sent.
    pub fn request_body(&self, i: usize) -> Vec<u8> {
        self.body(&self.requests[self.query_request[i]].user, None)
    }

    fn body(&self, user: &str, seed: Option<u32>) -> Vec<u8> {
        let mut messages = Vec::with_capacity(self.prompt.in_context.len() + 2);
        messages.push(MessageRef {
            role: "system",
            content: &self.prompt.system_message,
        });
        messages.extend(self.prompt.in_context.iter().map(|m| MessageRef {
            role: &m.role,
            content: &m.content,
        }));
        messages.push(MessageRef {
            role: "user",
            content: user,
        });
        self.chat_body(messages, seed)
    }

    fn chat_body(&self, messages: Vec<MessageRef>, seed: Option<u32>) -> Vec<u8> {
        serde_json::to_vec(&ChatRequest {
            model: &self.settings.model,
            messages,
            temperature: self.settings.temperature,
            top_p: self.settings.top_p,
            max_tokens: self.settings.max_tokens,
            seed,
        })
        .expect("a request serializes")
    }

    /// What [`generate`] would send with the store in `store_dir` (`None`: an empty store),
    /// and its cost when prices are set. Sends nothing.
    pub fn dry_run(&self, store_dir: Option<&Path>) -> Result<DryRun> {
        let stored_keys = match store_dir {
            Some(d) if d.join(store::LOG_NAME).exists() => Some(Store::open(d)?),
            _ => None,
        };
        let mut stored = 0;
        let mut prompt_tokens = 0;
        for r in &self.requests {
            if stored_keys.as_ref().is_some_and(|s| s.contains(&r.key)) {
                stored += 1;
            } else {
                prompt_tokens += r.prompt_tokens;
            }
        }
        let to_send = self.requests.len() as u64 - stored;
        let max_completion_tokens = to_send * self.settings.max_tokens as u64;
        Ok(DryRun {
            queries: self.ids.len() as u64,
            requests: self.requests.len() as u64,
            stored,
            to_send,
            prompt_tokens,
            max_completion_tokens,
            tokenizer: self.tokenizer.name.to_string(),
            cost_prompt: self.settings.cost(prompt_tokens, 0),
            cost_max: self.settings.cost(prompt_tokens, max_completion_tokens),
            note: "reasks and translations are not counted: they depend on the answers",
        })
    }

    fn limits(&self) -> Limits {
        let s = &self.settings;
        Limits {
            concurrency: s.concurrency,
            requests_per_window: s.requests_per_minute,
            tokens_per_window: s.tokens_per_minute,
            window: s.rate_window(),
            max_attempts: s.max_attempts,
            backoff: std::time::Duration::from_secs_f64(s.backoff_secs),
            max_backoff: std::time::Duration::from_secs_f64(s.max_backoff_secs),
        }
    }
}

/// The token counter of a model family.
struct Tokenizer {
    name: &'static str,
    bpe: &'static tiktoken_rs::CoreBPE,
}

impl Tokenizer {
    fn for_model(model: &str) -> Tokenizer {
        use tiktoken_rs::tokenizer::Tokenizer as T;
        let t = tiktoken_rs::tokenizer::get_tokenizer(model).unwrap_or(T::Cl100kBase);
        let name = match t {
            T::O200kHarmony => "o200k_harmony",
            T::O200kBase => "o200k_base",
            T::Cl100kBase => "cl100k_base",
            T::P50kBase => "p50k_base",
            T::R50kBase => "r50k_base",
            T::P50kEdit => "p50k_edit",
            T::Gpt2 => "gpt2",
        };
        Tokenizer {
            name,
            bpe: tiktoken_rs::bpe_for_tokenizer(t).expect("bundled vocabulary"),
        }
    }

    fn count(&self, text: &str) -> u64 {
        self.bpe.encode_ordinary(text).len() as u64
    }
}

/// The state of one request after the first pass and the reask rounds.
#[derive(Clone)]
enum State {
    Answer(Record),
    Refused(Record),
    Failed {
        cause: Cause,
        status: Option<u16>,
        attempts: u32,
        excerpt: String,
    },
    NoPairs(Record),
    Pending,
}

impl State {
    fn from(result: JobResult) -> State {
        match result {
            JobResult::Done(r) if r.is_answer() => {
                let text = r.content.as_deref().unwrap_or_default();
                if crate::shards::split_pairs(text).is_empty() {
                    State::NoPairs(r)
                } else {
                    State::Answer(r)
                }
            }
            JobResult::Done(r) => State::Refused(r),
            JobResult::Failed {
                cause,
                status,
                attempts,
                excerpt,
            } => State::Failed {
                cause,
                status,
                attempts,
                excerpt,
            },
            JobResult::NotSent => State::Pending,
        }
    }

    fn needs_reask(&self) -> bool {
        matches!(
            self,
            State::Refused(_) | State::Failed { .. } | State::NoPairs(_)
        )
    }
}

/// Runs the plan: sends every request the store in `store_dir` does not answer yet, within the
/// settings' limits, and returns the [`Outcome`]. `progress` (created by the caller with
/// [`Plan::queries`] as total) advances per query of the first pass; `cancel` stops the run
/// cleanly (requests in flight finish and are kept). Errors: the store cannot be written.
pub fn generate(
    plan: &Plan,
    key: &ApiKey,
    store_dir: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let settings = &plan.settings;
    let store = Store::open(store_dir)?;
    let client = client::Client::new(
        &settings.endpoint,
        key.clone(),
        settings.timeout(),
        settings.concurrency,
    );
    let limits = plan.limits();
    let mut limiter = Limiter::new(settings.max_requests);
    let mut stats = Stats {
        queries: plan.ids.len() as u64,
        requests_planned: plan.requests.len() as u64,
        ..Stats::default()
    };
    let mut queries_of: Vec<u64> = vec![0; plan.requests.len()];
    for &r in &plan.query_request {
        queries_of[r] += 1;
    }

    // First pass, then the reask rounds: each round asks the requests still without a usable
    // answer with `"seed": round`.
    let mut states: Vec<State> = vec![State::Pending; plan.requests.len()];
    let mut stopped = None;
    for round in 0..=settings.reask {
        let todo: Vec<usize> = if round == 0 {
            (0..plan.requests.len()).collect()
        } else {
            (0..plan.requests.len())
                .filter(|&r| states[r].needs_reask())
                .collect()
        };
        if todo.is_empty() {
            break;
        }
        let seed = (round > 0).then_some(round);
        let mut jobs = Vec::new();
        let mut job_request = Vec::new();
        for &r in &todo {
            let p = &plan.requests[r];
            let key = if round == 0 {
                p.key.clone()
            } else {
                store::key_of(&plan.body(&p.user, seed))
            };
            if round > 0 {
                stats.reask_requests += 1;
            }
            match store.get(&key) {
                Some(rec) => {
                    stats.served_from_store += 1;
                    if round == 0 {
                        progress.inc(queries_of[r]);
                    }
                    states[r] = State::from(JobResult::Done(rec));
                }
                None => {
                    jobs.push(Job {
                        key,
                        est_tokens: p.prompt_tokens + settings.max_tokens as u64,
                    });
                    job_request.push(r);
                }
            }
        }
        let body = |j: usize| plan.body(&plan.requests[job_request[j]].user, seed);
        let on_done = |j: usize, _: &JobResult| {
            if round == 0 {
                progress.inc(queries_of[job_request[j]]);
            }
        };
        let (results, stop) = pool::run(
            &jobs,
            &body,
            &client,
            &store,
            &limits,
            &mut limiter,
            &mut stats,
            cancel,
            &on_done,
        )?;
        stopped = stopped.or(stop);
        for (j, result) in results.into_iter().enumerate() {
            let state = State::from(result);
            let r = job_request[j];
            // A reask not made keeps the request pending, so a later run makes it.
            states[r] = state;
        }
    }

    let mut answers = Vec::new();
    let mut answered = Vec::new();
    let mut rejects = Vec::new();
    let mut pending = Vec::new();
    for (qi, (id, &r)) in plan.ids.iter().zip(&plan.query_request).enumerate() {
        let reject =
            |cause: Cause, status: Option<u16>, attempts: u32, excerpt: String| RejectRow {
                id: id.clone(),
                query: qi,
                pass: "generate".into(),
                cause: cause.as_str().into(),
                status,
                attempts,
                excerpt,
            };
        match &states[r] {
            State::Answer(rec) => {
                answered.push(qi);
                answers.push(AnswerRow {
                    id: id.clone(),
                    results: rec.content.clone().unwrap_or_default(),
                })
            }
            State::NoPairs(rec) => rejects.push(reject(
                Cause::NoPairs,
                Some(rec.status),
                rec.attempts,
                client::excerpt(rec.content.as_deref().unwrap_or_default()),
            )),
            State::Refused(rec) => rejects.push(reject(
                Cause::ClientError,
                Some(rec.status),
                rec.attempts,
                rec.error.clone().unwrap_or_default(),
            )),
            State::Failed {
                cause,
                status,
                attempts,
                excerpt,
            } => rejects.push(reject(*cause, *status, *attempts, excerpt.clone())),
            State::Pending => pending.push(id.clone()),
        }
    }

    let mut translations = BTreeMap::new();
    if !settings.languages.is_empty() {
        let (rows, t_rejects, t_pending, stop) = translate(
            plan,
            &answers,
            &answered,
            &store,
            &client,
            &limits,
            &mut limiter,
            &mut stats,
            cancel,
        )?;
        stopped = stopped.or(stop);
        translations = rows;
        rejects.extend(t_rejects);
        for id in t_pending {
            if !pending.contains(&id) {
                pending.push(id);
            }
        }
    }
    rejects.sort_by_key(|r| r.query);
    stats.cost = settings.cost(stats.prompt_tokens, stats.completion_tokens);
    progress.finish();
    Ok(Outcome {
        answers,
        rejects,
        pending,
        translations,
        stopped,
        stats,
    })
}

mod translate;
use translate::translate;
