//! The syphus stage through the command line, against the local OpenAI-compatible test server
//! (loopback, bounded in requests and time): `run` asks for every query, pack uses the answers,
//! a second run sends nothing, a process killed mid-stage resumes without re-sending stored
//! responses, the API key reaches no file, `--dry-run` sends nothing, and the stage is `off`
//! without an endpoint.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimicit::syphus::testserver::{default_answer, Options, Reply, TestServer};

use crate::util::*;

const KEY: &str = "sk-test-SECRET-4f9c2b7e1a";

fn server(latency_ms: u64) -> TestServer {
    TestServer::start(
        Options {
            latency: Duration::from_millis(latency_ms),
            max_requests: 500,
            max_time: Duration::from_secs(300),
        },
        Arc::new(|r: &mimicit::syphus::testserver::Request| -> Reply { default_answer(r) }),
    )
}

/// `mimicit ARGS` with the key in the environment.
fn with_key(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .arg("--progress=none")
        .current_dir(dir)
        .env("MIMICIT_TEST_KEY", KEY)
        .env_remove("MIMICIT_LOG")
        .output()
        .unwrap()
}

fn sets(endpoint: &str) -> Vec<String> {
    vec![
        "--set".into(),
        format!("syphus.endpoint={endpoint}"),
        "--set".into(),
        "syphus.api_key_env=MIMICIT_TEST_KEY".into(),
        "--set".into(),
        "syphus.concurrency=2".into(),
        // The demo ships answers: pack must take the stage's instead.
        "--set".into(),
        "pack.answers=[]".into(),
    ]
}

fn run_args(extra: &[String]) -> Vec<&str> {
    let mut a = vec!["run", "scenarios/demo.toml", "--out", "out"];
    a.extend(extra.iter().map(String::as_str));
    a
}

/// No file under `dir` holds `KEY`.
fn assert_key_nowhere(dir: &Path) {
    for f in files(dir) {
        let bytes = std::fs::read(dir.join(&f)).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the API key is in {}",
            f.display()
        );
    }
}

#[test]
fn run_asks_every_query_once_and_pack_uses_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let srv = server(0);
    let extra = sets(&srv.endpoint);
    let o = with_key(dir.path(), &run_args(&extra));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains(KEY), "the key is on stderr");
    let out = dir.path().join("out");
    let queries = read_json(&out.join("DC/syphus/DC_query.json"));
    let n = queries.as_array().unwrap().len();
    assert_eq!(srv.requests(), n as u64, "one request per query");
    assert!(srv
        .authorizations()
        .iter()
        .all(|a| a == &format!("Bearer {KEY}")));
    let answers = read_json(&out.join("DC/syphus/DC_answers.json"));
    let ids: Vec<&str> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = queries
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want, "answers in query order");
    assert_valid("syphus_answers.schema.json", &answers, "DC_answers.json");
    let stats = read_json(&out.join("DC/syphus/stats.json"));
    assert_valid("syphus_stats.schema.json", &stats, "stats.json");
    assert_eq!(stats["requests_sent"], n as u64, "{stats}");
    // The report shows the run's requests, tokens and latency.
    let page = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(page.contains("<h3>Syphus</h3>") && page.contains("HTTP requests sent"));
    assert!(!page.contains(KEY));
    // verify re-hashes the answers (and checks them against their schema).
    let o = mimicit(dir.path(), &["verify", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // pack turned them into one instruction per answer (one pair each).
    let ins = read_json(&out.join("DC/DC_instructions.json"));
    assert_eq!(ins["data"].as_object().unwrap().len(), n);
    assert_key_nowhere(&out);

    // A second run sends nothing and changes nothing.
    let before = snapshot(&out);
    let o = with_key(dir.path(), &run_args(&extra));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(srv.requests(), n as u64, "a second run sent requests");
    assert!(snapshot(&out) == before, "a second run changed the outputs");

    // A changed model resends every query (forced: the stage's settings changed anyway).
    let mut changed = extra.clone();
    changed.extend(["--set".into(), "syphus.model=other-model".into()]);
    let o = with_key(dir.path(), &run_args(&changed));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(srv.requests(), 2 * n as u64);

    // --dry-run counts and sends nothing; a fresh model has everything to send.
    let mut dry = vec!["syphus", "scenarios/demo.toml", "--out", "out", "--dry-run"];
    changed.push("--set".into());
    changed.push("syphus.model=third-model".into());
    dry.extend(changed.iter().map(String::as_str));
    let o = with_key(dir.path(), &dry);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["to_send"], n as u64, "{report}");
    assert!(report["prompt_tokens"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(srv.requests(), 2 * n as u64, "a dry run sent requests");
}

#[test]
fn without_an_endpoint_the_stage_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let timings = read_json(&out.join("DC/timings.json"));
    let syphus = timings["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "syphus")
        .expect("syphus in the timings")
        .clone();
    assert_eq!(syphus["status"], "off", "{syphus}");
    assert!(!out.join("DC/syphus/DC_answers.json").exists());
}

#[test]
fn killed_mid_stage_the_next_run_resends_no_stored_response() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    // Slow answers, one at a time: the process is killed while requests are in flight.
    let srv = server(400);
    let mut extra = sets(&srv.endpoint);
    extra.extend(["--set".into(), "syphus.concurrency=1".into()]);
    // Everything before syphus first, so that the kill lands in the stage.
    let mut before = extra.clone();
    before.extend(["--stages".into(), "scan,keyframes,metadata".into()]);
    let o = with_key(dir.path(), &run_args(&before));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut child = Command::new(binary())
        .args(run_args(&extra))
        .arg("--progress=none")
        .current_dir(dir.path())
        .env("MIMICIT_TEST_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until two answers have been sent, then kill the process.
    let started = Instant::now();
    while srv.requests() < 2 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let sent_before = srv.requests();
    assert!(sent_before >= 2, "the stage never started sending");
    let store = dir.path().join("out/DC/syphus/store/responses.jsonl");
    let stored = std::fs::read_to_string(&store)
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0);
    assert!(stored >= 1, "nothing was stored before the kill");
    let n = read_json(&dir.path().join("out/DC/syphus/DC_query.json"))
        .as_array()
        .unwrap()
        .len() as u64;
    let o = with_key(dir.path(), &run_args(&extra));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Only what had no stored response was sent again.
    assert_eq!(
        srv.requests() - sent_before,
        n - stored,
        "the rerun re-sent stored responses"
    );
    assert_key_nowhere(&dir.path().join("out"));
    let answers = read_json(&dir.path().join("out/DC/syphus/DC_answers.json"));
    assert_eq!(answers.as_array().unwrap().len() as u64, n);
}

#[test]
fn a_syphus_section_matches_the_schema_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let path = dir.path().join("scenarios/demo.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[syphus]\nendpoint = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         api_key_env = \"MY_KEY\"\nconcurrency = 4\nrequests_per_minute = 60\n\
         tokens_per_minute = 100000\nmax_requests = 10\nreask = 1\n\
         price_per_1k_prompt = 0.1\nprice_per_1k_completion = 0.2\nlanguages = [\"zh\"]\n",
    );
    std::fs::write(&path, &text).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_valid(
        "scenario.schema.json",
        &serde_json::to_value(&table).unwrap(),
        "demo.toml with [syphus]",
    );
    // The same file loads, and a bad value is refused naming the key.
    mimicit::config::Scenario::load(&path, &[]).unwrap();
    let err = mimicit::config::Scenario::load(&path, &["syphus.temperature=3".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("syphus.temperature"), "{err}");
}

#[test]
fn translations_become_instruction_files_listed_in_data_yaml() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let srv = TestServer::start(
        Options::default(),
        Arc::new(|r: &mimicit::syphus::testserver::Request| -> Reply {
            let system = r.body["messages"][0]["content"].as_str().unwrap_or("");
            if system.starts_with("You translate") {
                let user = r.user().to_string();
                let q = user.split("</a>").next().unwrap().trim_start_matches("<a>");
                Reply::Answer(
                    serde_json::json!({"a": {"zh": format!("ZH {q}")}, "b": {"zh": "ZH answer"}})
                        .to_string(),
                )
            } else {
                default_answer(r)
            }
        }),
    );
    let mut extra = sets(&srv.endpoint);
    extra.extend(["--set".into(), r#"syphus.languages=["zh"]"#.into()]);
    let o = with_key(dir.path(), &run_args(&extra));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let en = read_json(&out.join("DC/DC_instructions.json"));
    let zh = read_json(&out.join("DC/DC_instructions.zh.json"));
    assert_valid("instructions.schema.json", &zh, "DC_instructions.zh.json");
    let (en, zh) = (
        en["data"].as_object().unwrap(),
        zh["data"].as_object().unwrap(),
    );
    assert_eq!(
        en.keys().collect::<Vec<_>>(),
        zh.keys().collect::<Vec<_>>(),
        "same ids in both languages"
    );
    for (id, t) in zh {
        assert!(
            t["instruction"].as_str().unwrap().starts_with("ZH "),
            "{id}: {t}"
        );
        assert_eq!(t["image_ids"], en[id]["image_ids"]);
    }
    let train = read_json(&out.join("DC/DC_train.zh.json"));
    assert_eq!(train.as_object().unwrap().len(), zh.len());
    let yaml = std::fs::read_to_string(out.join("data.yaml")).unwrap();
    assert!(
        yaml.contains("DC_zh:\n    mimicit_path: DC/DC_instructions.zh.json"),
        "{yaml}"
    );
    // The Otter loader reads both entries.
    if let Some(text) = python_check("check_trainer_files.py", &[&out]) {
        assert!(
            text.contains("2 entries") && text.contains(" 0 failures"),
            "{text}"
        );
    }
    // Without languages the translated files go away.
    let o = with_key(dir.path(), &run_args(&sets(&srv.endpoint)));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!out.join("DC/DC_instructions.zh.json").exists());
    assert!(!std::fs::read_to_string(out.join("data.yaml"))
        .unwrap()
        .contains("DC_zh"));
}
