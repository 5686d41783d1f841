//! The HTTP client of the chat-completions API: one attempt, classified.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use super::store::Usage;
use crate::error::{Error, Result};

/// The API key. It is sent only in the `Authorization: Bearer` header; it has no `Display`,
/// its `Debug` prints a mask, it is never serialized, and every text taken from a response
/// passes through [`ApiKey::redact`].
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// The key held by the environment variable `var`. The error names the variable only.
    pub fn from_env(var: &str) -> Result<ApiKey> {
        match std::env::var(var) {
            Ok(k) if !k.trim().is_empty() => Ok(ApiKey(k.trim().to_string())),
            Ok(_) => Err(Error::Invalid(format!(
                "syphus: the environment variable {var} (syphus.api_key_env) is empty"
            ))),
            Err(_) => Err(Error::Invalid(format!(
                "syphus: the environment variable {var} (syphus.api_key_env) is not set or not UTF-8"
            ))),
        }
    }

    /// A key given directly (tests, embedding programs).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// `text` with the key, and any masked form of it that an API echoes (`sk-ab****wxyz`:
    /// a word holding `*` and the key's last four characters), replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let key = self.0.as_str();
        if key.is_empty() {
            return text.to_string();
        }
        let mut s = text.replace(key, "<redacted>");
        if key.chars().count() >= 8 {
            let tail: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if s.contains(&tail) && s.contains('*') {
                s = s
                    .split_inclusive(char::is_whitespace)
                    .map(|w| {
                        if w.contains('*') && w.contains(&tail) {
                            let end = w.len() - w.trim_end().len();
                            format!("<redacted>{}", &w[w.len() - end..])
                        } else {
                            w.to_string()
                        }
                    })
                    .collect();
            }
        }
        s
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

/// Why an attempt did not give an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx (and 408, 409).
    ServerError,
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// 2xx whose body is not the API's JSON.
    MalformedResponse,
    /// 2xx without a choice or without message content.
    EmptyChoices,
    /// Another HTTP 4xx: the request itself is refused; not retried.
    ClientError,
    /// An answer without any question/answer pair.
    NoPairs,
    /// A translation answer without the requested languages.
    BadTranslation,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::RateLimited => "rate_limited",
            Cause::ServerError => "server_error",
            Cause::Timeout => "timeout",
            Cause::Connection => "connection",
            Cause::MalformedResponse => "malformed_response",
            Cause::EmptyChoices => "empty_choices",
            Cause::ClientError => "client_error",
            Cause::NoPairs => "no_pairs",
            Cause::BadTranslation => "bad_translation",
        }
    }
}

/// What one attempt gave.
#[derive(Debug)]
pub enum Attempt {
    Answer {
        status: u16,
        content: String,
        usage: Option<Usage>,
    },
    /// Worth another attempt (after at least `retry_after`, when the server said so).
    Retry {
        cause: Cause,
        status: Option<u16>,
        retry_after: Option<Duration>,
        excerpt: String,
    },
    /// Refused for good.
    Refused { status: u16, excerpt: String },
}

/// Bytes of a response body kept in errors and rejects.
pub const EXCERPT_CHARS: usize = 300;
/// Largest response body read.
const MAX_BODY: u64 = 64 << 20;

pub struct Client {
    agent: ureq::Agent,
    url: String,
    key: ApiKey,
}

impl Client {
    pub fn new(endpoint: &str, key: ApiKey, timeout: Duration, concurrency: usize) -> Client {
        let url = format!("{}/chat/completions", endpoint.trim_end_matches('/'));
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_connections(concurrency.max(1) * 2)
            .max_idle_connections_per_host(concurrency.max(1) * 2)
            .user_agent(concat!("mimicit/", env!("CARGO_PKG_VERSION")));
        if is_loopback(endpoint) {
            // A local server is never reached through a proxy from the environment.
            config = config.proxy(None);
        }
        Client {
            agent: config.build().into(),
            url,
            key,
        }
    }

    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// Sends one request body and classifies the outcome.
    pub fn send(&self, body: &[u8]) -> Attempt {
        let result = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.key.bearer())
            .header("Content-Type", "application/json")
            .send(body);
        let response = match result {
            Ok(r) => r,
            Err(e) => return self.transport_error(&e),
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let mut text = Vec::new();
        let read = response
            .into_body()
            .into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut text);
        if let Err(e) = read {
            let cause = if e.kind() == std::io::ErrorKind::TimedOut
                || e.to_string().to_ascii_lowercase().contains("timeout")
            {
                Cause::Timeout
            } else {
                Cause::Connection
            };
            return Attempt::Retry {
                cause,
                status: Some(status),
                retry_after: None,
                excerpt: self.key.redact(&e.to_string()),
            };
        }
        let text = String::from_utf8_lossy(&text);
        let excerpt = self.key.redact(&excerpt(&text));
        match status {
            200..=299 => parse_answer(status, &text, excerpt),
            429 => Attempt::Retry {
                cause: Cause::RateLimited,
                status: Some(status),
                retry_after,
                excerpt,
            },
            408 | 409 | 500..=599 => Attempt::Retry {
                cause: Cause::ServerError,
                status: Some(status),
                retry_after,
                excerpt,
            },
            _ => Attempt::Refused { status, excerpt },
        }
    }

    fn transport_error(&self, e: &ureq::Error) -> Attempt {
        let cause = match e {
            ureq::Error::Timeout(_) => Cause::Timeout,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Cause::Timeout,
            _ => Cause::Connection,
        };
        Attempt::Retry {
            cause,
            status: None,
            retry_after: None,
            excerpt: self.key.redact(&e.to_string()),
        }
    }
}

fn parse_answer(status: u16, text: &str, excerpt: String) -> Attempt {
    let retry = |cause| Attempt::Retry {
        cause,
        status: Some(status),
        retry_after: None,
        excerpt: excerpt.clone(),
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return retry(Cause::MalformedResponse);
    };
    if !v.is_object() {
        return retry(Cause::MalformedResponse);
    }
    let content = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("message"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str);
    let Some(content) = content else {
        return retry(Cause::EmptyChoices);
    };
    let usage = v.get("usage").map(|u| Usage {
        prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    });
    Attempt::Answer {
        status,
        content: content.to_string(),
        usage,
    }
}

/// `Retry-After` in seconds (integer or decimal), or `retry-after-ms`.
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64((ms / 1000.0).min(3600.0)));
        }
    }
    let secs = get("retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The first [`EXCERPT_CHARS`] characters of a text, on one line.
pub fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        s.push('…');
    }
    s.replace(['\n', '\r'], " ")
}

fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_prints() {
        let k = ApiKey::new("sk-test-SECRET-abcdef123456");
        assert!(!format!("{k:?}").contains("SECRET"));
        assert_eq!(
            k.redact("bad key sk-test-SECRET-abcdef123456 given"),
            "bad key <redacted> given"
        );
        assert_eq!(
            k.redact("Incorrect API key provided: sk-tes**********3456. See docs."),
            "Incorrect API key provided: <redacted> See docs."
        );
        assert_eq!(k.redact("no key * here 3456"), "no key * here 3456");
        let err = ApiKey::from_env("MIMICIT_SURELY_UNSET_VAR_123").unwrap_err();
        assert!(err.to_string().contains("MIMICIT_SURELY_UNSET_VAR_123"));
    }

    #[test]
    fn answers_are_parsed_and_broken_ones_retried() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"Question: a?\nAnswer: b."}}],"usage":{"prompt_tokens":12,"completion_tokens":7}}"#;
        match parse_answer(200, ok, String::new()) {
            Attempt::Answer { content, usage, .. } => {
                assert_eq!(content, "Question: a?\nAnswer: b.");
                assert_eq!(usage.unwrap().completion_tokens, 7);
            }
            other => panic!("{other:?}"),
        }
        for (text, cause) in [
            ("{not json", Cause::MalformedResponse),
            ("[1]", Cause::MalformedResponse),
            (r#"{"choices":[]}"#, Cause::EmptyChoices),
            (
                r#"{"choices":[{"message":{"content":null}}]}"#,
                Cause::EmptyChoices,
            ),
        ] {
            match parse_answer(200, text, String::new()) {
                Attempt::Retry { cause: c, .. } => assert_eq!(c, cause, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        let long = "x\n".repeat(400);
        let e = excerpt(&long);
        assert!(!e.contains('\n'));
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(is_loopback("http://127.0.0.1:80/v1"));
        assert!(!is_loopback("https://api.example.com/v1"));
    }
}
