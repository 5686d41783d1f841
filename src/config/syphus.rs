//! `[syphus]`: the settings of a Syphus generation run (see [`crate::syphus`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to ask the model: endpoint, model, sampling, limits, retries, budget, prices,
/// translation languages. Every field has a default; unknown keys are refused.
///
/// Paths are taken as given: the caller resolves them against the scenario file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyphusSettings {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`, a vLLM or llama.cpp
    /// server, a gateway); requests go to `{endpoint}/chat/completions`. Empty (the default):
    /// the syphus stage is off.
    pub endpoint: String,
    /// Model name, sent in every request (and so part of every request's address in the store).
    pub model: String,
    /// Name of the environment variable that holds the API key (the key itself is never a
    /// setting, so it never reaches a scenario file, a manifest or a report).
    pub api_key_env: String,
    /// A prompt file in the published Syphus layout (`{"system_message", "in_context"}`);
    /// `None`: the scenario's default prompt shipped with mimicit (`prompts/`).
    pub prompt: Option<PathBuf>,
    /// SN only: the candidate activities, one per line; `None`: the shipped list.
    pub candidates: Option<PathBuf>,
    /// SN only: how many candidate activities each request offers.
    pub candidates_per_query: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// The completion limit sent with each request; also counted against `tokens_per_minute`.
    pub max_tokens: u32,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests started per rate window at most; 0: no limit.
    pub requests_per_minute: u32,
    /// Estimated tokens (prompt + `max_tokens`) started per rate window at most; 0: no limit.
    pub tokens_per_minute: u64,
    /// The window the two rate limits count over, in seconds (60: per minute as named).
    pub rate_window_secs: f64,
    /// Time-out of one HTTP request, in seconds (connect, send, wait and read).
    pub timeout_secs: f64,
    /// HTTP attempts per request at most (rate limits, server errors, time-outs are retried).
    pub max_attempts: u32,
    /// First retry delay in seconds; doubled per attempt, with jitter, up to `max_backoff_secs`;
    /// never shorter than the server's `Retry-After`.
    pub backoff_secs: f64,
    pub max_backoff_secs: f64,
    /// Budget: HTTP requests sent by one run at most (retries count); 0: no budget. When it is
    /// reached the run stops cleanly and a later run goes on with the rest.
    pub max_requests: u64,
    /// Queries whose answer failed or holds no question/answer pair are asked again up to this
    /// many times (each time a different request, so not served from the store).
    pub reask: u32,
    /// Prices in your currency per 1,000 tokens, for the dry-run estimate and the report.
    pub price_per_1k_prompt: Option<f64>,
    pub price_per_1k_completion: Option<f64>,
    /// Languages to translate every instruction and answer into (`zh`, `es`, `ja`, `de`, `fr`,
    /// `ko`, `ar`, or any other language code); empty: no translation pass.
    pub languages: Vec<String>,
}

impl Default for SyphusSettings {
    fn default() -> Self {
        SyphusSettings {
            endpoint: String::new(),
            model: "gpt-4o-mini".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            prompt: None,
            candidates: None,
            candidates_per_query: 9,
            temperature: 0.7,
            top_p: 0.95,
            max_tokens: 3200,
            concurrency: 8,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            rate_window_secs: 60.0,
            timeout_secs: 120.0,
            max_attempts: 5,
            backoff_secs: 1.0,
            max_backoff_secs: 60.0,
            max_requests: 0,
            reask: 0,
            price_per_1k_prompt: None,
            price_per_1k_completion: None,
            languages: Vec::new(),
        }
    }
}

impl SyphusSettings {
    /// Checks every value; the error names the key (`syphus.KEY`) and the problem.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |key: &str, message: String| Err(Error::Invalid(format!("syphus.{key}: {message}")));
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return bad(
                "endpoint",
                format!("`{}` is not an http(s) URL", self.endpoint),
            );
        }
        if self.model.trim().is_empty() {
            return bad("model", "is empty".into());
        }
        if self.api_key_env.is_empty()
            || !self
                .api_key_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad(
                "api_key_env",
                "must be an environment variable name (letters, digits, `_`)".into(),
            );
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad(
                "temperature",
                format!("{} is not in 0..=2", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens", "must be at least 1".into());
        }
        if self.concurrency == 0 || self.concurrency > 1024 {
            return bad(
                "concurrency",
                format!("{} is not in 1..=1024", self.concurrency),
            );
        }
        if self.candidates_per_query == 0 {
            return bad("candidates_per_query", "must be at least 1".into());
        }
        for (key, v) in [
            ("rate_window_secs", self.rate_window_secs),
            ("timeout_secs", self.timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return bad(key, format!("{v} is not a number of seconds in (0, 86400]"));
            }
        }
        for (key, v) in [
            ("backoff_secs", self.backoff_secs),
            ("max_backoff_secs", self.max_backoff_secs),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return bad(key, format!("{v} is not a number of seconds in [0, 86400]"));
            }
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return bad(
                "max_attempts",
                format!("{} is not in 1..=100", self.max_attempts),
            );
        }
        if self.reask > 100 {
            return bad("reask", format!("{} is more than 100", self.reask));
        }
        for (key, v) in [
            ("price_per_1k_prompt", self.price_per_1k_prompt),
            ("price_per_1k_completion", self.price_per_1k_completion),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(key, format!("{v} is not a price"));
                }
            }
        }
        for lang in &self.languages {
            let ok = !lang.is_empty()
                && lang.len() <= 16
                && lang
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return bad("languages", format!("`{lang}` is not a language code"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.languages.iter().find(|l| !seen.insert(l.as_str())) {
            return bad("languages", format!("`{dup}` is listed twice"));
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    pub(crate) fn rate_window(&self) -> Duration {
        Duration::from_secs_f64(self.rate_window_secs)
    }

    /// The cost of the tokens, when both prices are set.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let (p, c) = (self.price_per_1k_prompt?, self.price_per_1k_completion?);
        Some(prompt_tokens as f64 / 1000.0 * p + completion_tokens as f64 / 1000.0 * c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_sampling_and_valid() {
        let s = SyphusSettings::default();
        assert_eq!((s.temperature, s.top_p, s.max_tokens), (0.7, 0.95, 3200));
        assert_eq!(s.api_key_env, "OPENAI_API_KEY");
        // No endpoint by default (the stage is off); with one, the defaults are valid.
        assert!(s.endpoint.is_empty());
        SyphusSettings {
            endpoint: "https://api.openai.com/v1".into(),
            ..s
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn toml_section_refuses_unknown_keys_and_bad_values() {
        let s: SyphusSettings =
            toml::from_str("model = \"m\"\nconcurrency = 4\nlanguages = [\"zh\"]").unwrap();
        assert_eq!((s.model.as_str(), s.concurrency), ("m", 4));
        assert_eq!(s.max_attempts, 5);
        let err = toml::from_str::<SyphusSettings>("api_key = \"sk-x\"").unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
        for (s, key) in [
            (
                SyphusSettings {
                    concurrency: 0,
                    endpoint: "https://api.openai.com/v1".into(),
                    ..Default::default()
                },
                "syphus.concurrency",
            ),
            (
                SyphusSettings {
                    endpoint: "ftp://x".into(),
                    ..Default::default()
                },
                "syphus.endpoint",
            ),
            (
                SyphusSettings {
                    languages: vec!["zh".into(), "zh".into()],
                    endpoint: "https://api.openai.com/v1".into(),
                    ..Default::default()
                },
                "syphus.languages",
            ),
            (
                SyphusSettings {
                    timeout_secs: 0.0,
                    endpoint: "https://api.openai.com/v1".into(),
                    ..Default::default()
                },
                "syphus.timeout_secs",
            ),
        ] {
            let err = s.validate().unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn cost_needs_both_prices() {
        let mut s = SyphusSettings::default();
        assert_eq!(s.cost(1000, 1000), None);
        s.price_per_1k_prompt = Some(0.5);
        s.price_per_1k_completion = Some(1.5);
        assert_eq!(s.cost(2000, 1000), Some(2.5));
    }
}
