//! Stage 6, syphus: the instruction/answer pairs, asked of an OpenAI-compatible LLM endpoint
//! for every query the metadata stage wrote (see [`crate::syphus`] for the requests, the pool,
//! the limits, the retries and the response store).
//!
//! - reads `OUT/{CODE}/syphus/{CODE}_query.json`;
//! - keeps every response in `OUT/{CODE}/syphus/store/responses.jsonl` as it arrives (a cache,
//!   not an output: a rerun, or a run killed at any moment and started again, sends only what
//!   has no stored response);
//! - writes `OUT/{CODE}/syphus/{CODE}_answers.json` (`[{"id", "results"}]` in query order, what
//!   `pack` reads when `pack.answers` is unset), one `{CODE}_answers.{lang}.json` per
//!   `syphus.languages` entry, and `OUT/{CODE}/syphus/stats.json` (requests, tokens, retries,
//!   failures by cause, latency histogram, cost; like `timings.json` it differs between runs,
//!   so it is not in the manifest);
//! - a query whose attempts all failed, or whose answer holds no question/answer pair, is a
//!   reject (status, attempts, an excerpt of the body: never the key), and the run exits 3.
//!
//! When `syphus.max_requests` (the budget) is reached, the stage stops with an error that says
//! how much is left; the responses so far are stored and the next run goes on from there.
//!
//! Off while `syphus.endpoint` is unset. In a split corpus it runs in `mimicit merge`, after
//! metadata: the query file spans the corpus.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::{Stage, StageContext, StageId, StageOutput};
use crate::config::Scenario;
use crate::error::{Error, Result};
use crate::manifest::Counts;
use crate::partition::Placement;
use crate::progress::Progress;
use crate::syphus;

const STAGE: &str = "syphus";

/// Stage 6: the Syphus instruction generator.
pub struct Syphus;

impl Stage for Syphus {
    fn id(&self) -> StageId {
        StageId::Syphus
    }
    fn name(&self) -> &'static str {
        STAGE
    }
    /// `[syphus]` (a change reruns the stage, which sends only requests whose body changed:
    /// the store keys responses by their whole request body).
    fn sections(&self) -> &'static [&'static str] {
        &["syphus"]
    }
    fn needs(&self) -> &'static [StageId] {
        &[StageId::Metadata]
    }
    fn off_reason(&self, scenario: &Scenario) -> Option<String> {
        scenario
            .config
            .syphus
            .endpoint
            .is_empty()
            .then(|| "no syphus.endpoint set".into())
    }
    fn placement(&self, _scenario: &Scenario) -> Placement {
        Placement::Merge
    }
    fn merge_only_reason(&self, _scenario: &Scenario) -> String {
        "the syphus stage reads the corpus's query file, which `mimicit merge` writes: it runs \
         there"
            .into()
    }
    /// The prompt and candidate files, when given (their text is in every request).
    fn own_inputs(&self, scenario: &Scenario, h: &mut blake3::Hasher) -> Result<()> {
        let s = &scenario.config.syphus;
        for (what, path) in [("prompt", &s.prompt), ("candidates", &s.candidates)] {
            if let Some(p) = path {
                let (n, hash) = crate::hashing::hash_file(p)?;
                h.update(format!("{what} {n} {hash}\n").as_bytes());
            }
        }
        Ok(())
    }
    fn run(&self, ctx: &StageContext) -> Result<StageOutput> {
        run(ctx)
    }
}

/// `OUT/{CODE}/syphus/`.
fn dir(ctx: &StageContext) -> PathBuf {
    ctx.dir.join("syphus")
}

/// `OUT/{CODE}/syphus/{CODE}_answers.json`: the answers `pack` reads when `pack.answers` is
/// unset.
pub fn answers_path(ctx: &StageContext) -> PathBuf {
    dir(ctx).join(format!("{}_answers.json", ctx.scenario.code))
}

/// `OUT/{CODE}/syphus/{CODE}_answers.{lang}.json`.
pub fn translated_answers_path(ctx: &StageContext, lang: &str) -> PathBuf {
    dir(ctx).join(format!("{}_answers.{lang}.json", ctx.scenario.code))
}

/// The response store, `OUT/{CODE}/syphus/store/`.
pub fn store_dir(ctx: &StageContext) -> PathBuf {
    dir(ctx).join("store")
}

/// The requests the stage would send, from the query file: for `mimicit syphus --dry-run`.
pub fn dry_run(ctx: &StageContext) -> Result<syphus::DryRun> {
    plan(ctx)?.dry_run(Some(&store_dir(ctx)))
}

fn plan(ctx: &StageContext) -> Result<syphus::Plan> {
    let code = ctx.scenario.code;
    let query = dir(ctx).join(format!("{code}_query.json"));
    let queries = syphus::read_queries(&query)?;
    syphus::plan(code, &queries, &ctx.scenario.config.syphus)
}

fn run(ctx: &StageContext) -> Result<StageOutput> {
    let settings = &ctx.scenario.config.syphus;
    let plan = plan(ctx)?;
    let store = store_dir(ctx);
    // The key is needed only when something is to be sent: a run whose every response is
    // stored works without it.
    let key = match syphus::ApiKey::from_env(&settings.api_key_env) {
        Ok(k) => k,
        Err(e) if plan.dry_run(Some(&store))?.to_send > 0 => return Err(e),
        Err(_) => syphus::ApiKey::new(""),
    };
    let progress = Progress::new(ctx.progress, STAGE, plan.queries() as u64);
    let cancel = AtomicBool::new(false);
    let outcome = syphus::generate(&plan, &key, &store, &progress, &cancel)?;
    progress.finish();
    let stats_path = dir(ctx).join("stats.json");
    crate::atomic::write_json(&stats_path, &outcome.stats)?;
    let s = &outcome.stats;
    eprintln!(
        "{}: syphus: {} queries, {} answered, {} rejected; {} requests sent ({} from the store, \
         {} retries), tokens {} in / {} out{}",
        ctx.scenario.code,
        s.queries,
        outcome.answers.len(),
        outcome.rejects.len(),
        s.requests_sent,
        s.served_from_store,
        s.retries,
        s.prompt_tokens,
        s.completion_tokens,
        s.cost.map(|c| format!(", cost {c:.4}")).unwrap_or_default(),
    );
    if !outcome.complete() {
        return Err(Error::Invalid(format!(
            "syphus: stopped ({}) with {} of {} queries left: the {} responses so far are \
             stored in {}; run again to go on",
            match outcome.stopped {
                Some(syphus::Stop::Budget) => "syphus.max_requests reached",
                Some(syphus::Stop::Cancelled) => "cancelled",
                None => "unfinished",
            },
            outcome.pending.len(),
            s.queries,
            s.responses_ok + s.served_from_store,
            store.display()
        )));
    }
    let mut outputs = Vec::new();
    let answers = answers_path(ctx);
    syphus::write_answers(&answers, &outcome.answers)?;
    outputs.push(answers);
    for lang in &settings.languages {
        let path = translated_answers_path(ctx, lang);
        let rows = outcome
            .translations
            .get(lang)
            .map(Vec::as_slice)
            .unwrap_or_default();
        syphus::write_answers(&path, rows)?;
        outputs.push(path);
    }
    let rejects = outcome.rejects.iter().map(|r| r.to_reject()).collect();
    Ok(StageOutput {
        counts: Counts {
            ok: outcome.answers.len() as u64,
            rejected: 0,
            skipped: 0,
        },
        outputs,
        rejects,
    })
}
