//! The Syphus generation library against a local OpenAI-compatible server
//! (`mimicit::syphus::testserver`): order, limits, retries, store and resume, budget, rejects,
//! reask, translation, dry run, and that the API key goes nowhere but the Authorization header.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mimicit::config::Code;
use mimicit::progress::{Progress, ProgressMode};
use mimicit::syphus::testserver::{default_answer, Options, Reply, Request, TestServer};
use mimicit::syphus::{self, ApiKey, Outcome, Query, Stop, SyphusSettings};

const KEY: &str = "sk-test-LEAKCHECK-0123456789abcdef";

fn queries(n: usize) -> Vec<Query> {
    (0..n)
        .map(|i| Query {
            // Every fifth unit has two queries (a unit annotated twice).
            id: format!("unit{:03}", i - i % 5 * usize::from(i % 5 == 1)),
            message: format!("message number {i}: a man walks a dog"),
        })
        .collect()
}

fn settings(server: &TestServer) -> SyphusSettings {
    SyphusSettings {
        endpoint: server.endpoint.clone(),
        model: "test-model".into(),
        concurrency: 4,
        timeout_secs: 5.0,
        backoff_secs: 0.01,
        max_backoff_secs: 0.05,
        ..Default::default()
    }
}

fn server(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
    server_with(Duration::from_millis(5), script)
}

fn server_with(
    latency: Duration,
    script: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> TestServer {
    TestServer::start(
        Options {
            latency,
            max_requests: 2_000,
            max_time: Duration::from_secs(120),
        },
        Arc::new(script),
    )
}

fn run(code: Code, q: &[Query], s: &SyphusSettings, store: &Path) -> Outcome {
    let plan = syphus::plan(code, q, s).unwrap();
    let progress = Progress::new(ProgressMode::None, "syphus", plan.queries() as u64);
    syphus::generate(
        &plan,
        &ApiKey::new(KEY),
        store,
        &progress,
        &AtomicBool::new(false),
    )
    .unwrap()
}

fn ids(o: &Outcome) -> Vec<String> {
    o.answers.iter().map(|a| a.id.clone()).collect()
}

#[test]
fn every_query_answered_once_in_order_within_concurrency() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(40);
    let o = run(Code::DC, &q, &settings(&srv), dir.path());
    assert!(o.complete(), "{:?}", o.pending);
    assert!(o.rejects.is_empty(), "{:?}", o.rejects);
    let want: Vec<String> = q.iter().map(|q| q.id.clone()).collect();
    assert_eq!(ids(&o), want);
    for (a, q) in o.answers.iter().zip(&q) {
        assert!(
            a.results.contains(&q.message[..20]),
            "{} / {}",
            a.results,
            q.message
        );
    }
    assert_eq!(srv.requests(), 40);
    assert!(srv.peak_in_flight() <= 4, "peak {}", srv.peak_in_flight());
    assert!(srv.peak_in_flight() >= 2, "requests overlap");
    assert_eq!(o.stats.requests_sent, 40);
    assert_eq!(o.stats.latency.count(), 40);
    assert!(o.stats.in_flight_peak <= 4);
    assert!(o.stats.prompt_tokens > 0 && o.stats.completion_tokens > 0);
    for auth in srv.authorizations() {
        assert_eq!(auth, format!("Bearer {KEY}"));
    }
}

#[test]
fn rate_limits_hold_in_every_window() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let s = SyphusSettings {
        concurrency: 8,
        requests_per_minute: 4,
        rate_window_secs: 1.0,
        ..settings(&srv)
    };
    let o = run(Code::TVC, &queries(10), &s, dir.path());
    assert!(o.complete());
    assert_eq!(srv.requests(), 10);
    // Counted by the server on arrival; a little slack for the network between start and arrival.
    assert!(
        srv.max_in_window(Duration::from_millis(800)) <= 4,
        "{}",
        srv.max_in_window(Duration::from_millis(800))
    );

    // Tokens: each request is estimated at prompt + max_tokens; a limit of two requests' worth
    // lets at most two start per window.
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(6);
    let probe = syphus::plan(Code::TVC, &q, &settings(&srv)).unwrap();
    let one = probe.dry_run(None).unwrap().prompt_tokens / 6 + 3200;
    let s = SyphusSettings {
        concurrency: 8,
        tokens_per_minute: one * 2 + one / 2,
        rate_window_secs: 1.0,
        ..settings(&srv)
    };
    let o = run(Code::TVC, &q, &s, dir.path());
    assert!(o.complete());
    assert!(srv.max_in_window(Duration::from_millis(800)) <= 2);
}

#[test]
fn reruns_send_only_what_changed() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let mut q = queries(12);
    let s = settings(&srv);
    let first = run(Code::DC, &q, &s, dir.path());
    assert_eq!(srv.requests(), 12);

    let again = run(Code::DC, &q, &s, dir.path());
    assert_eq!(srv.requests(), 12, "a second run sends nothing");
    assert_eq!(again.answers, first.answers);
    assert_eq!(again.stats.served_from_store, 12);
    assert_eq!(again.stats.requests_sent, 0);

    q[7].message.push_str(" (edited)");
    let edited = run(Code::DC, &q, &s, dir.path());
    assert_eq!(srv.requests(), 13, "only the changed query is sent");
    assert!(edited.answers[7].results.contains("message number 7"));
    assert_eq!(edited.answers[6], first.answers[6]);

    let other_model = SyphusSettings {
        model: "another-model".into(),
        ..s.clone()
    };
    run(Code::DC, &q, &other_model, dir.path());
    assert_eq!(srv.requests(), 25, "a changed model resends every query");
    let bodies = srv.bodies();
    assert_eq!(bodies.last().unwrap()["model"], "another-model");
}

#[test]
fn budget_stops_cleanly_and_a_rerun_finishes() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(12);
    let s = SyphusSettings {
        max_requests: 5,
        ..settings(&srv)
    };
    let o = run(Code::DC, &q, &s, dir.path());
    assert_eq!(o.stopped, Some(Stop::Budget));
    assert!(!o.complete());
    assert_eq!(srv.requests(), 5);
    assert_eq!(o.answers.len(), 5);
    assert_eq!(o.pending.len(), 7);
    assert!(o.rejects.is_empty());
    let o = run(Code::DC, &q, &settings(&srv), dir.path());
    assert!(o.complete());
    assert_eq!(srv.requests(), 12, "the rerun sent only the rest");
    assert_eq!(o.answers.len(), 12);
}

#[test]
fn retries_rate_limits_server_errors_timeouts_and_broken_bodies() {
    // Each query's first attempt fails in its own way; the second is answered.
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let srv = server(move |r: &Request| {
        let first = seen.lock().unwrap().insert(r.user().to_string());
        let kind = r.user().chars().last().unwrap_or('0');
        if !first {
            return default_answer(r);
        }
        match kind {
            '0' => Reply::Status {
                status: 429,
                body: "{\"error\": \"slow down\"}".into(),
                retry_after: Some("0".into()),
            },
            '1' => Reply::Status {
                status: 503,
                body: "busy".into(),
                retry_after: None,
            },
            '2' => Reply::Slow(Duration::from_secs(3), Box::new(default_answer(r))),
            '3' => Reply::Malformed,
            _ => Reply::EmptyChoices,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let q: Vec<Query> = (0..5)
        .map(|i| Query {
            id: format!("u{i}"),
            message: format!("kind {i}"),
        })
        .collect();
    let s = SyphusSettings {
        concurrency: 5,
        timeout_secs: 0.5,
        ..settings(&srv)
    };
    let o = run(Code::TVC, &q, &s, dir.path());
    assert!(o.complete());
    assert_eq!(o.answers.len(), 5, "{:?}", o.rejects);
    assert_eq!(o.stats.retries, 5);
    let f = &o.stats.failures;
    for cause in [
        "rate_limited",
        "server_error",
        "timeout",
        "malformed_response",
        "empty_choices",
    ] {
        assert_eq!(f.get(cause), Some(&1), "{cause}: {f:?}");
    }
}

#[test]
fn refusals_no_pair_answers_and_exhausted_retries_are_rejects() {
    let srv = server(|r: &Request| match r.user() {
        "bad request" => Reply::Status {
            status: 400,
            body: "{\"error\": {\"message\": \"context too long\"}}".into(),
            retry_after: None,
        },
        "chatty" => Reply::Answer("I am sorry, I cannot help with that.".into()),
        "down" => Reply::Status {
            status: 500,
            body: "internal".into(),
            retry_after: None,
        },
        _ => default_answer(r),
    });
    let dir = tempfile::tempdir().unwrap();
    let q: Vec<Query> = ["fine", "bad request", "chatty", "down", "also fine"]
        .iter()
        .enumerate()
        .map(|(i, m)| Query {
            id: format!("u{i}"),
            message: m.to_string(),
        })
        .collect();
    let s = SyphusSettings {
        max_attempts: 2,
        ..settings(&srv)
    };
    let o = run(Code::SD, &q, &s, dir.path());
    assert!(o.complete());
    assert_eq!(ids(&o), vec!["u0", "u4"]);
    let r: Vec<(&str, &str, Option<u16>, u32)> = o
        .rejects
        .iter()
        .map(|r| (r.id.as_str(), r.cause.as_str(), r.status, r.attempts))
        .collect();
    assert_eq!(
        r,
        vec![
            ("u1", "client_error", Some(400), 1),
            ("u2", "no_pairs", Some(200), 1),
            ("u3", "server_error", Some(500), 2),
        ]
    );
    assert!(o.rejects[0].excerpt.contains("context too long"));
    assert!(o.rejects[1].to_reject().error.contains("cannot help"));
    assert_eq!(srv.requests(), 6);
    // Refusals and answers are kept; the exhausted request is asked again next time.
    run(Code::SD, &q, &s, dir.path());
    assert_eq!(srv.requests(), 8);
}

#[test]
fn reask_asks_again_with_a_different_body() {
    // Answers without a pair unless the request carries a seed (a reask).
    let srv = server(|r: &Request| {
        if r.body.get("seed").is_some() {
            default_answer(r)
        } else {
            Reply::Answer("Here is a nice story without questions.".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let q = queries(4);
    let s = SyphusSettings {
        reask: 2,
        ..settings(&srv)
    };
    let o = run(Code::DC, &q, &s, dir.path());
    assert!(o.complete());
    assert_eq!(o.answers.len(), 4, "{:?}", o.rejects);
    assert_eq!(srv.requests(), 8);
    let seeds: Vec<_> = srv
        .bodies()
        .iter()
        .map(|b| b.get("seed").cloned())
        .collect();
    assert_eq!(seeds.iter().filter(|s| s.is_some()).count(), 4);
    assert!(seeds.iter().flatten().all(|s| s == 1));
    // The rerun is served from the store, reasks included.
    let again = run(Code::DC, &q, &s, dir.path());
    assert_eq!(srv.requests(), 8);
    assert_eq!(again.answers, o.answers);
    // Without reask they are rejects.
    let dir = tempfile::tempdir().unwrap();
    let o = run(Code::DC, &q, &settings(&srv), dir.path());
    assert_eq!(o.rejects.len(), 4);
    assert!(o.rejects.iter().all(|r| r.cause == "no_pairs"));
}

#[test]
fn the_key_goes_nowhere_but_the_authorization_header() {
    let masked = format!("{}****{}", &KEY[..6], &KEY[KEY.len() - 4..]);
    let echo =
        format!("{{\"error\": \"Incorrect API key provided: {masked}. Key {KEY} is invalid\"}}");
    let srv = server(move |r: &Request| match r.user() {
        "unauthorized" => Reply::Status {
            status: 401,
            body: echo.clone(),
            retry_after: None,
        },
        "echo" => Reply::Answer(format!("Question: key?\nAnswer: {KEY}")),
        "flaky" => Reply::Status {
            status: 503,
            body: format!("upstream said {KEY}"),
            retry_after: None,
        },
        _ => default_answer(r),
    });
    let dir = tempfile::tempdir().unwrap();
    let q: Vec<Query> = ["unauthorized", "echo", "flaky", "fine"]
        .iter()
        .map(|m| Query {
            id: m.to_string(),
            message: m.to_string(),
        })
        .collect();
    let s = SyphusSettings {
        max_attempts: 2,
        languages: vec!["zh".into()],
        ..settings(&srv)
    };
    let plan = syphus::plan(Code::DC, &q, &s).unwrap();
    let key = ApiKey::new(KEY);
    let progress = Progress::new(ProgressMode::None, "syphus", 4);
    let o = syphus::generate(&plan, &key, dir.path(), &progress, &AtomicBool::new(false)).unwrap();
    assert_eq!(o.rejects.len(), 3 + 1, "{:?}", o.rejects);
    let tail = &KEY[KEY.len() - 8..];
    let everything = format!(
        "{o:?}\n{}\n{plan:?}\n{s:?}\n{key:?}\n{}",
        serde_json::to_string(&o).unwrap(),
        o.rejects
            .iter()
            .map(|r| r.to_reject().error)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!everything.contains(KEY), "{everything}");
    assert!(!everything.contains(tail));
    assert!(!everything.contains(&masked));
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(KEY) && !text.contains(tail),
            "{}",
            entry.display()
        );
        assert!(!text.contains(&masked), "{}", entry.display());
    }
    let err = ApiKey::from_env("MIMICIT_TEST_NO_SUCH_KEY_VAR").unwrap_err();
    assert!(!err.to_string().contains(KEY));
    for body in srv.bodies() {
        assert!(!body.to_string().contains(KEY));
    }
    assert!(srv
        .authorizations()
        .iter()
        .all(|a| a == &format!("Bearer {KEY}")));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn request_bodies_follow_a_published_layout_prompt_file() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.json");
    std::fs::write(
        &prompt,
        r#"{"system_message": "You are a helper.",
            "in_context": [
              {"role": "user", "content": "example input"},
              {"role": "assistant", "content": [{"Question": "Why?", "Answer": "Because."}, {"Question": "Who?", "Answer": "Us."}]},
              {"role": "user", "content": "second example"},
              {"role": "assistant", "content": "plain answer"}
            ]}"#,
    )
    .unwrap();
    let s = SyphusSettings {
        prompt: Some(prompt),
        ..settings(&srv)
    };
    let q = vec![Query {
        id: "v_1".into(),
        message: "timestamps: [[0, 2]]\nsentences: [\"A dog.\"]".into(),
    }];
    run(Code::DC, &q, &s, &dir.path().join("store"));
    let body = &srv.bodies()[0];
    let want = serde_json::json!({
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You are a helper."},
            {"role": "user", "content": "example input"},
            {"role": "assistant", "content": "Question: Why?\nAnswer: Because.\nQuestion: Who?\nAnswer: Us.\n"},
            {"role": "user", "content": "second example"},
            {"role": "assistant", "content": "plain answer"},
            {"role": "user", "content": "timestamps: [[0, 2]]\nsentences: [\"A dog.\"]"}
        ],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 3200
    });
    assert_eq!(body, &want);
    let plan = syphus::plan(Code::DC, &q, &s).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&plan.request_body(0)).unwrap(),
        want
    );
}

#[test]
fn scene_navigation_requests_carry_seeded_candidates() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let cands = dir.path().join("candidates.txt");
    let lines: Vec<String> = (0..20)
        .map(|i| format!("Activity {i} - Human role: Person {i}"))
        .collect();
    std::fs::write(&cands, lines.join("\n") + "\n").unwrap();
    let s = SyphusSettings {
        candidates: Some(cands),
        ..settings(&srv)
    };
    let q = vec![Query {
        id: "scene0000_00".into(),
        message: "there is a bed.\nthis is a desk.".into(),
    }];
    let plan = syphus::plan(Code::SN, &q, &s).unwrap();
    let b1: serde_json::Value = serde_json::from_slice(&plan.request_body(0)).unwrap();
    let b2: serde_json::Value =
        serde_json::from_slice(&syphus::plan(Code::SN, &q, &s).unwrap().request_body(0)).unwrap();
    assert_eq!(b1, b2, "the draw is seeded");
    let user = b1["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        user.starts_with("Sentences: there is a bed.\nthis is a desk.\n"),
        "{user}"
    );
    assert_eq!(user.matches("Human role: Person").count(), 9, "{user}");
    // Lines keep their newline and are joined by one: a blank line between candidates.
    assert!(user.contains("\n\nActivity "), "{user}");
    run(Code::SN, &q, &s, dir.path());
    assert_eq!(srv.bodies()[0], b1);
}

#[test]
fn translation_pass_returns_answers_per_language() {
    let srv = server(|r: &Request| {
        let system = r.body["messages"][0]["content"].as_str().unwrap_or("");
        if system.starts_with("You translate") {
            let user = r.user().to_string();
            if user.contains("untranslatable") {
                return Reply::Answer("Sorry.".into());
            }
            let q = user.split("</a>").next().unwrap().trim_start_matches("<a>");
            Reply::Answer(
                serde_json::json!({
                    "a": {"zh": format!("ZH {q}"), "de": format!("DE {q}")},
                    "b": {"zh": "ZH answer", "de": "DE answer"}
                })
                .to_string(),
            )
        } else if r.user().contains("untranslatable") {
            Reply::Answer("Question: untranslatable?\nAnswer: yes.".into())
        } else {
            Reply::Answer(format!(
                "Question: Q1 {}?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.",
                r.user()
            ))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let q: Vec<Query> = ["one", "two", "untranslatable"]
        .iter()
        .map(|m| Query {
            id: m.to_string(),
            message: m.to_string(),
        })
        .collect();
    let s = SyphusSettings {
        languages: vec!["zh".into(), "de".into()],
        ..settings(&srv)
    };
    let o = run(Code::TVC, &q, &s, dir.path());
    assert!(o.complete());
    assert_eq!(o.answers.len(), 3);
    let zh = &o.translations["zh"];
    assert_eq!(zh.len(), 2);
    assert_eq!(zh[0].id, "one");
    assert_eq!(
        zh[0].results,
        "Question: ZH Q1 one?\nAnswer: ZH answer\n\nQuestion: ZH Q2?\nAnswer: ZH answer"
    );
    assert_eq!(o.translations["de"][1].id, "two");
    let pairs = mimicit::shards::split_pairs(&o.translations["de"][1].results);
    assert_eq!(pairs.len(), 2);
    let t_rejects: Vec<&str> = o.rejects.iter().map(|r| r.pass.as_str()).collect();
    assert_eq!(t_rejects, vec!["translate:zh", "translate:de"]);
    // Q2 is the same pair in two answers: translated once. 3 answers + 4 distinct pairs.
    assert_eq!(srv.requests(), 3 + 4);
    run(Code::TVC, &q, &s, dir.path());
    assert_eq!(srv.requests(), 7, "translations are kept too");
}

#[test]
fn dry_run_counts_tokens_and_cost_and_sends_nothing() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(6);
    let s = SyphusSettings {
        model: "gpt-4o-mini".into(),
        price_per_1k_prompt: Some(1.0),
        price_per_1k_completion: Some(2.0),
        ..settings(&srv)
    };
    let plan = syphus::plan(Code::DC, &q, &s).unwrap();
    let d = plan.dry_run(Some(dir.path())).unwrap();
    assert_eq!((d.queries, d.requests, d.stored, d.to_send), (6, 6, 0, 6));
    assert_eq!(d.tokenizer, "o200k_base");
    assert!(
        d.prompt_tokens > 6 * 100,
        "the shipped prompt is counted: {}",
        d.prompt_tokens
    );
    assert_eq!(d.max_completion_tokens, 6 * 3200);
    let cost = d.cost_max.unwrap();
    assert!((cost - (d.prompt_tokens as f64 / 1000.0 + 6.0 * 3.2 * 2.0)).abs() < 1e-9);
    assert_eq!(srv.requests(), 0);
    run(Code::DC, &q, &s, dir.path());
    let d = plan.dry_run(Some(dir.path())).unwrap();
    assert_eq!((d.stored, d.to_send, d.prompt_tokens), (6, 0, 0));
    assert_eq!(
        syphus::plan(
            Code::DC,
            &q,
            &SyphusSettings {
                model: "llama-3".into(),
                ..s
            }
        )
        .unwrap()
        .dry_run(None)
        .unwrap()
        .tokenizer,
        "cl100k_base"
    );
}

#[test]
fn cancel_stops_before_sending() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(5);
    let plan = syphus::plan(Code::DC, &q, &settings(&srv)).unwrap();
    let progress = Progress::new(ProgressMode::None, "syphus", 5);
    let o = syphus::generate(
        &plan,
        &ApiKey::new(KEY),
        dir.path(),
        &progress,
        &AtomicBool::new(true),
    )
    .unwrap();
    assert_eq!(o.stopped, Some(Stop::Cancelled));
    assert_eq!(o.pending.len(), 5);
    assert_eq!(srv.requests(), 0);
}

#[test]
fn written_files_match_their_schemas() {
    let srv = server(default_answer);
    let dir = tempfile::tempdir().unwrap();
    let q = queries(3);
    let o = run(Code::DC, &q, &settings(&srv), &dir.path().join("store"));
    let answers = dir.path().join("DC_answers.json");
    syphus::write_answers(&answers, &o.answers).unwrap();
    let (read, rejects) = mimicit::shards::read_answers(&answers).unwrap();
    assert_eq!(read.len(), 3);
    assert!(rejects.is_empty());
    let check = |schema: &str, value: &serde_json::Value| {
        let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    };
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&answers).unwrap()).unwrap();
    check(
        include_str!("../schemas/syphus_answers.schema.json"),
        &value,
    );
    let log = std::fs::read_to_string(dir.path().join("store/responses.jsonl")).unwrap();
    for line in log.lines() {
        check(
            include_str!("../schemas/syphus_store.schema.json"),
            &serde_json::from_str(line).unwrap(),
        );
    }
    check(
        include_str!("../schemas/syphus_outcome.schema.json"),
        &serde_json::to_value(&o).unwrap(),
    );
}
