//! Helpers for the integration tests: run the built binary in temp folders, copy the demo,
//! validate files against the JSON Schemas in `schemas/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use mimicit::testkit::skip;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: cargo's, or `MIMICIT_BIN` (to run the suite against a release or an
/// installed build).
pub fn binary() -> PathBuf {
    std::env::var_os("MIMICIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mimicit")))
}

/// Runs `mimicit ARGS` in `cwd` with progress off.
pub fn mimicit(cwd: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .arg("--progress=none")
        .current_dir(cwd)
        .env_remove("MIMICIT_LOG")
        .output()
        .expect("run mimicit")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Copies the bundled demo corpus and scenario into `dir` (so tests can damage them).
pub fn copy_demo(dir: &Path) -> PathBuf {
    copy_tree(&repo().join("demo"), &dir.join("demo"));
    let scenario = dir.join("scenarios/demo.toml");
    std::fs::create_dir_all(scenario.parent().unwrap()).unwrap();
    std::fs::copy(repo().join("scenarios/demo.toml"), &scenario).unwrap();
    scenario
}

/// Copies the demo into `dir`, runs every stage into `dir/out` (which must succeed), returns OUT.
pub fn run_demo(dir: &Path) -> PathBuf {
    copy_demo(dir);
    let o = mimicit(dir, &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    dir.join("out")
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    v.sort();
    v
}

/// Every file under `out` with its bytes, but `timings.json` (wall times).
pub fn snapshot(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(out)
        .into_iter()
        .filter(|f| !f.ends_with("timings.json"))
        .map(|f| {
            let mut bytes = std::fs::read(out.join(&f)).unwrap();
            if f.ends_with("report/index.html") {
                bytes = without_timings(&bytes);
            }
            (f, bytes)
        })
        .collect()
}

/// The report page without its timings section (wall times differ between identical runs).
pub fn without_timings(html: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(html);
    let (begin, end) = (mimicit::report::TIMINGS_BEGIN, mimicit::report::TIMINGS_END);
    match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{}", &text[..b], &text[e..]).into_bytes(),
        _ => html.to_vec(),
    }
}

/// The same files with the same bytes.
pub fn assert_same_files(want: &[(PathBuf, Vec<u8>)], got: &[(PathBuf, Vec<u8>)]) {
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
    assert_eq!(names(want), names(got), "not the same files");
    for ((f, a), (_, b)) in want.iter().zip(got) {
        assert!(a == b, "{} differs from an uninterrupted run", f.display());
    }
}

pub fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("schemas").join(name)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// Asserts that `value` is valid against `schemas/{name}`, listing every error.
pub fn assert_valid(name: &str, value: &serde_json::Value, what: &str) {
    let v = schema(name);
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} against {name}:\n{}",
        errors.join("\n")
    );
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of a parquet file as read by pandas, or None (with the reason printed) when the
/// Python readers are not installed.
pub fn pandas_rows(path: &Path) -> Option<Vec<serde_json::Value>> {
    let script = repo().join("tests/python/dump_parquet.py");
    let o = match Command::new("python").arg(&script).arg(path).output() {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("pandas check: no python ({e})"));
            return None;
        }
    };
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("No module named") {
        skip(&format!(
            "pandas check: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
        return None;
    }
    assert!(
        o.status.success(),
        "pandas could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

/// Runs a script from `tests/python/` with the venv's python; None (reason printed) when the
/// Python side is not installed. Panics with the script's output when it fails.
pub fn python_check(script: &str, args: &[&Path]) -> Option<String> {
    let probe = Command::new("python")
        .args(["-c", "import pandas, pyarrow, PIL, yaml, numpy"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(&format!(
                "{script}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return None;
        }
        Err(e) => {
            skip(&format!("{script}: no python ({e})"));
            return None;
        }
    }
    let o = Command::new("python")
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{script} failed:\n{text}");
    Some(text)
}

/// Parses a YAML file with PyYAML into JSON; None, the test skipped through [`skip`] (a failure
/// under CI), when python or PyYAML is missing. Panics when PyYAML cannot parse the file.
pub fn yaml_as_json(path: &Path) -> Option<serde_json::Value> {
    let o = match Command::new("python")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("YAML check: no python ({e})"));
            return None;
        }
    };
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("No module named") {
        skip(&format!("YAML check: {}", err.trim()));
        return None;
    }
    assert!(
        o.status.success(),
        "PyYAML could not read {}: {err}",
        path.display()
    );
    Some(serde_json::from_slice(&o.stdout).unwrap())
}
