//! Command-line paths the README states as working, driven through the binary: every keyframe
//! policy flag of `mimicit frames` (checked against frame times computed independently of our
//! decoder, with ffprobe and the policies' written rules), `report --sheets`, and `run --force`.

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// `mimicit frames VIDEO --out out ARGS` in `dir` (32x32 PNGs); the `time_s` of every frame
/// written, in order.
fn frame_times(dir: &Path, video: &Path, args: &[&str]) -> Vec<f64> {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let mut all = vec!["frames", video.to_str().unwrap(), "--out", "out"];
    all.extend_from_slice(&["--size", "32"]);
    all.extend_from_slice(args);
    let o = mimicit(dir, &all);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    let text = std::fs::read_to_string(out.join("frames.jsonl")).unwrap();
    let times: Vec<f64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_valid("frames_jsonl.schema.json", &v, "frames.jsonl");
            v["time_s"].as_f64().unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "{args:?}: times not increasing: {times:?}"
    );
    times
}

/// The presentation times of a video's frames (all, or keyframes only) as ffprobe reports them.
fn ffprobe_times(video: &Path, keyframes_only: bool) -> Option<Vec<f64>> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", "v:0"]);
    if keyframes_only {
        cmd.args(["-skip_frame", "nokey"]);
    }
    cmd.args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(video);
    let o = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("cannot run ffprobe ({e})"));
            return None;
        }
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut t: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    Some(t)
}

/// The container duration ffprobe reports, in seconds.
fn ffprobe_duration(video: &Path) -> f64 {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(video)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance,
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn frames_policy_flags_choose_the_frames_their_rules_name() {
    let dir = tempfile::tempdir().unwrap();
    // 30 frames at 10 fps, one every 0.1 s.
    let counter = mimicit::testkit::fixture("videos/counter.mp4");
    let Some(all) = ffprobe_times(&counter, false) else {
        return;
    };
    assert_eq!(all.len(), 30);
    let frame = |i: usize| all[i];

    // --fps 2: the frame shown at every multiple of 0.5 s.
    let got = frame_times(dir.path(), &counter, &["--fps", "2"]);
    let want: Vec<f64> = (0..6).map(|k| frame(k * 5)).collect();
    assert_close(&got, &want, 1e-6, "--fps 2");

    // --legacy-stride 2: every floor(floor(10) / 2) = 5th decoded frame.
    let got = frame_times(dir.path(), &counter, &["--legacy-stride", "2"]);
    assert_close(&got, &want, 1e-6, "--legacy-stride 2");
    let got = frame_times(dir.path(), &counter, &["--legacy-stride", "3"]);
    let want: Vec<f64> = (0..10).map(|k| frame(k * 3)).collect();
    assert_close(&got, &want, 1e-6, "--legacy-stride 3");

    // --uniform 4: the frame nearest the middle of each of 4 equal parts of the duration.
    let duration = ffprobe_duration(&counter);
    let nearest = |t: f64| {
        *all.iter()
            .min_by(|a, b| (*a - t).abs().total_cmp(&(*b - t).abs()))
            .unwrap()
    };
    let want: Vec<f64> = (0..4)
        .map(|i| nearest(all[0] + (i as f64 + 0.5) * (duration - all[0]) / 4.0))
        .collect();
    let got = frame_times(dir.path(), &counter, &["--uniform", "4"]);
    assert_close(&got, &want, 1e-6, "--uniform 4");

    // --at: the frame nearest each requested time.
    let got = frame_times(dir.path(), &counter, &["--at", "0.5,2.02"]);
    assert_close(&got, &[frame(5), frame(20)], 1e-6, "--at 0.5,2.02");

    // --keyframes-only: exactly the frames ffprobe marks as keyframes.
    let keys = ffprobe_times(&counter, true).unwrap();
    let got = frame_times(dir.path(), &counter, &["--keyframes-only"]);
    assert_close(&got, &keys, 1e-6, "--keyframes-only");

    // --scene-cuts on real footage: the first frame, then a frame within two frames of every
    // golden cut (PySceneDetect's HistogramDetector).
    let film = mimicit::testkit::fixture("videos/testvideo.mp4");
    let golden: serde_json::Value = read_json(&mimicit::testkit::fixture(
        "videos/goldens/testvideo.mp4.HistogramDetector.default.json",
    ));
    let film_times = ffprobe_times(&film, false).unwrap();
    let got = frame_times(dir.path(), &film, &["--scene-cuts"]);
    assert_eq!(
        got[0], film_times[0],
        "--scene-cuts starts with the first frame"
    );
    let period = 1001.0 / 30000.0;
    for cut in golden["cuts"].as_array().unwrap() {
        let t = film_times[cut.as_u64().unwrap() as usize];
        assert!(
            got.iter().any(|g| (g - t).abs() <= 2.0 * period + 1e-6),
            "--scene-cuts: no frame near the golden cut at {t:.3} s: {got:?}"
        );
    }
}

#[test]
fn report_sheets_sets_how_many_units_get_a_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let sheets = |n: &str| {
        let o = mimicit(dir.path(), &["report", "out", "--sheets", n]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read_dir(out.join("report/DC"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with("sheet_") && name.ends_with(".png")
            })
            .count()
    };
    // The demo has 4 units: at most that many sheets.
    assert_eq!(sheets("2"), 2);
    assert_eq!(sheets("0"), 0);
    assert_eq!(sheets("100"), 4);
}

#[test]
fn run_force_reruns_finished_stages_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_demo(dir.path());
    let statuses = || -> Vec<(String, String)> {
        read_json(&out.join("DC/timings.json"))["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before = snapshot(&out);
    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ran: Vec<_> = statuses().into_iter().filter(|(_, s)| s == "ran").collect();
    assert!(ran.is_empty(), "a second run redid {ran:?}");

    let o = mimicit(
        dir.path(),
        &["run", "scenarios/demo.toml", "--out", "out", "--force"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = statuses();
    let built: Vec<_> = after.iter().filter(|(_, s)| s != "off").collect();
    assert!(!built.is_empty());
    assert!(
        built.iter().all(|(_, s)| s == "ran"),
        "--force left stages alone: {after:?}"
    );
    assert_eq!(snapshot(&out), before, "--force changed the outputs");
}
