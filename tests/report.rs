//! The run report: written by `mimicit run` and `mimicit report`, every link resolves, the same
//! run gives the same bytes (timings aside), and headless Chromium (Debian's `chromium`,
//! installed by scripts/setup.sh) loads every image without a console error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// The `src` and `href` values of a page, in order.
fn links(html: &str) -> Vec<String> {
    let mut v = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            v.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    v
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Every relative link of `OUT/report/index.html` names an existing file; returns how many
/// images the page shows.
fn check_links(report: &Path) -> usize {
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let mut images = 0;
    for link in links(&html) {
        assert!(
            !link.contains("://") && !link.starts_with("//"),
            "the page must not reach the network: {link}"
        );
        if let Some(id) = link.strip_prefix('#') {
            assert!(html.contains(&format!("id=\"{id}\"")), "no anchor {link}");
            continue;
        }
        let target = report.join(percent_decode(&link));
        assert!(target.is_file(), "{link} does not resolve to a file");
        if link.ends_with(".png") || link.ends_with(".svg") {
            images += 1;
        }
    }
    images
}

/// `index.html` without its timings section (the one part that differs between runs).
fn without_timings(html: &str) -> String {
    let begin = html.find("<!-- timings -->").expect("timings section");
    let end = html
        .find("<!-- /timings -->")
        .expect("end of timings section");
    format!("{}{}", &html[..begin], &html[end..])
}

#[test]
fn demo_report_links_resolve_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let report = out.join("report");
    assert!(report.join("index.html").is_file(), "run writes the report");

    // `mimicit report` rewrites it and prints where it is.
    std::fs::write(report.join("DC/stale.png"), b"left by an older report").unwrap();
    let o = mimicit(dir.path(), &["report", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        dir.path().join(stdout(&o).trim()),
        out.join("report/index.html")
    );
    assert!(!report.join("DC/stale.png").exists(), "stale file kept");

    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(!html.contains("<script"), "the page needs no script");
    // 4 units: 4 contact sheets, 6 plots, 1 duplicate group (the demo's repeated frame).
    assert_eq!(check_links(&report), 11);
    for text in [
        "v_demo_garden",
        "frames kept",
        "DC_IMG_v_demo_street_0001",
        "exact, distance 0",
        "href=\"../manifest.json\"",
        "href=\"../DC/DC_instructions.json\"",
        "Nothing was rejected",
    ] {
        assert!(html.contains(text), "report lacks {text:?}");
    }
    let sheet = image::open(report.join("DC/sheet_000.png")).unwrap();
    assert!(sheet.width() > 200 && sheet.height() > 100);
    assert_valid(
        "timings.schema.json",
        &read_json(&out.join("DC/timings.json")),
        "timings.json",
    );
    let timings = read_json(&out.join("DC/timings.json"));
    let keyframes = &timings["stages"][1];
    assert_eq!(keyframes["stage"], "keyframes");
    assert!(keyframes["cpu_s"].as_f64().unwrap() > 0.0, "{timings}");

    // The same run elsewhere: the same report files and bytes, timings aside.
    let dir2 = tempfile::tempdir().unwrap();
    let report2 = run_demo(dir2.path()).join("report");
    assert_eq!(files(&report), files(&report2));
    for f in files(&report) {
        let (a, b) = (
            std::fs::read(report.join(&f)).unwrap(),
            std::fs::read(report2.join(&f)).unwrap(),
        );
        if f.ends_with("index.html") {
            let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
            assert_eq!(without_timings(&a), without_timings(&b));
        } else {
            assert!(a == b, "{} differs between runs", f.display());
        }
    }
}

#[test]
fn report_lists_rejects_and_needs_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let o = mimicit(dir.path(), &["report", "."]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("manifest.json"), "{}", stderr(&o));

    copy_demo(dir.path());
    std::fs::write(
        dir.path().join("demo/videos/v_broken.mp4"),
        b"this is text, not a video",
    )
    .unwrap();
    let ann_path = dir.path().join("demo/annotations/train.json");
    let mut ann = read_json(&ann_path);
    ann["v_broken"] =
        serde_json::json!({"duration": 2, "timestamps": [[0, 1]], "sentences": ["x"]});
    std::fs::write(&ann_path, serde_json::to_vec(&ann).unwrap()).unwrap();
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let report = dir.path().join("out/report");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let rejects = &html[html.find("<h3>Rejects</h3>").unwrap()..];
    assert!(
        rejects.contains("v_broken") && rejects.contains("keyframes"),
        "{rejects}"
    );
    assert!(rejects.contains("href=\"../DC/rejects/keyframes.parquet\""));
    check_links(&report);
}

#[test]
fn frames_contact_sheet_has_one_tile_per_frame() {
    use mimicit::report::sheet::{COLUMNS, GAP, TILE_H, TILE_W};
    let dir = tempfile::tempdir().unwrap();
    let video = repo().join("demo/videos/v_demo_kitchen.mp4");
    let o = mimicit(
        dir.path(),
        &[
            "frames",
            video.to_str().unwrap(),
            "--out",
            "f",
            "--fps",
            "2",
            "--contact-sheet",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let n = std::fs::read_to_string(dir.path().join("f/frames.jsonl"))
        .unwrap()
        .lines()
        .count() as u32;
    assert!(n > COLUMNS, "{n} frames");
    let sheet = image::open(dir.path().join("f/contact_sheets/v_demo_kitchen.png")).unwrap();
    let rows = n.div_ceil(COLUMNS);
    assert_eq!(
        (sheet.width(), sheet.height()),
        (
            COLUMNS * TILE_W + (COLUMNS + 1) * GAP,
            rows * TILE_H + (rows + 1) * GAP
        )
    );
}

/// Runs `cmd` with its output in files, killing it after `limit`; returns (stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration, scratch: &Path) -> (String, String) {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {limit:?}: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (o, e) = (
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    );
    assert!(status.success(), "chromium failed ({status}): {e}");
    (o, e)
}

fn chromium() -> PathBuf {
    let candidates = ["chromium", "chromium-browser", "google-chrome"];
    std::env::var_os("MIMICIT_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .flat_map(|d| candidates.iter().map(move |c| d.join(c)))
                    .find(|p| p.is_file())
            })
        })
        .expect("no chromium on PATH: scripts/setup.sh installs Debian's chromium package")
}

fn headless(scratch: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--mute-audio",
    ])
    .arg(format!(
        "--user-data-dir={}",
        scratch.join("profile").display()
    ));
    cmd
}

/// Loaded at the top of a copy of the page: records load failures, script errors and console
/// errors and warnings, then, once everything has loaded, writes what it saw into the page as
/// JSON in `<pre id="mimicit-check">`.
const PROBE: &str = r#"<script>
window.__problems = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window) { __problems.push('failed to load ' + (t.getAttribute('src') || t.getAttribute('href'))); }
  else { __problems.push('error: ' + e.message); }
}, true);
['error', 'warn'].forEach(function (k) {
  var f = console[k];
  console[k] = function () { __problems.push('console.' + k + ': ' + Array.prototype.join.call(arguments, ' ')); f.apply(console, arguments); };
});
window.addEventListener('load', function () {
  var imgs = document.images, loaded = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) loaded++;
    else __problems.push('image did not load: ' + imgs[i].getAttribute('src'));
  }
  var pre = document.createElement('pre');
  pre.id = 'mimicit-check';
  pre.textContent = JSON.stringify({images: imgs.length, loaded: loaded, problems: __problems});
  document.body.appendChild(pre);
});
</script>"#;

/// Opens `page` (with the probe added, beside it so that relative links hold) and returns what
/// the probe saw.
fn probe(page: &Path, extra: &str, scratch: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    let probed = page.with_file_name(".probe.html");
    std::fs::write(
        &probed,
        html.replacen("<head>", &format!("<head>\n{PROBE}"), 1)
            .replacen("</main>", &format!("{extra}</main>"), 1),
    )
    .unwrap();
    let mut cmd = headless(scratch);
    cmd.arg("--virtual-time-budget=10000")
        .arg("--dump-dom")
        .arg(format!("file://{}", probed.display()));
    let (dom, err) = run_bounded(cmd, Duration::from_secs(90), scratch);
    std::fs::remove_file(&probed).unwrap();
    let start = dom
        .find("<pre id=\"mimicit-check\">")
        .unwrap_or_else(|| panic!("the probe did not run; chromium said:\n{err}"))
        + "<pre id=\"mimicit-check\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn report_loads_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let page = out.join("report/index.html");
    let scratch = dir.path().join("chromium");
    std::fs::create_dir_all(&scratch).unwrap();

    let seen = probe(&page, "", &scratch);
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["images"], 11, "{seen}");
    assert_eq!(seen["loaded"], seen["images"], "{seen}");

    // The probe does catch a missing image and a console error.
    let broken = probe(
        &page,
        "<img src=\"DC/missing.png\"><script>console.error('boom')</script>",
        &scratch,
    );
    let problems = broken["problems"].to_string();
    assert!(
        problems.contains("DC/missing.png") && problems.contains("boom"),
        "{broken}"
    );
    assert_eq!(broken["loaded"], 11, "{broken}");

    // A screenshot, kept in cargo's scratch folder for people to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&shot);
    let mut cmd = headless(&scratch);
    cmd.arg("--window-size=1100,2600")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()));
    run_bounded(cmd, Duration::from_secs(90), &scratch);
    let img = image::open(&shot).expect("the screenshot is a picture");
    assert_eq!((img.width(), img.height()), (1100, 2600));
    eprintln!("report screenshot: {}", shot.display());
}
