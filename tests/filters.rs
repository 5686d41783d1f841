//! The frame quality filters (`[filter]`) end to end: `mimicit run` on a small generated DC
//! corpus with a black gap between shots, a black clip, a clip that goes out of focus and a
//! letterboxed clip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mimicit::model::FrameRecord;

use crate::util::*;

/// (unit, lavfi source): every clip 320x240 at 10 fps, sampled at 1 fps.
const CLIPS: &[(&str, &str)] = &[
    // Content, then black from 1.5 s to 4.5 s (a gap between shots), then content again.
    (
        "v_fade",
        "testsrc2=size=320x240:rate=10:duration=6,\
         drawbox=x=0:y=0:w=iw:h=ih:c=black:t=fill:enable='between(t,1.5,4.5)'",
    ),
    // Black throughout: every frame is uniform, one must stay.
    ("v_black", "color=c=black:size=320x240:rate=10:duration=3"),
    // Sharp for 2 s, then a strong Gaussian blur.
    (
        "v_blur",
        "testsrc2=size=320x240:rate=10:duration=4,gblur=sigma=8:enable='gte(t,1.95)'",
    ),
    // A 16:9 picture letterboxed into 4:3.
    (
        "v_letterbox",
        "testsrc2=size=320x180:rate=10:duration=3,pad=320:240:0:30",
    ),
];

/// The corpus and scenario in `dir`; returns the scenario file.
fn corpus(dir: &Path) -> PathBuf {
    let root = dir.join("corpus");
    let mut annotations = serde_json::Map::new();
    let mut answers = Vec::new();
    for (unit, source) in CLIPS {
        mimicit::testkit::lavfi(
            &root.join(format!("videos/{unit}.mp4")),
            source,
            &[
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ],
        )
        .expect("run ffmpeg (installed by scripts/setup.sh)");
        annotations.insert(
            unit.to_string(),
            serde_json::json!({
                "duration": 3.0,
                "timestamps": [[0.0, 1.5], [1.5, 3.0]],
                "sentences": ["A test pattern.", "Then something else."],
            }),
        );
        answers.push(serde_json::json!({
            "id": unit,
            "results": "Question: What is shown?\nAnswer: A test pattern.",
        }));
    }
    std::fs::write(
        root.join("train.json"),
        serde_json::to_vec_pretty(&annotations).unwrap(),
    )
    .unwrap();
    std::fs::write(
        root.join("answers.json"),
        serde_json::to_vec_pretty(&answers).unwrap(),
    )
    .unwrap();
    let scenario = dir.join("filters.toml");
    std::fs::write(
        &scenario,
        "scenario = \"DC\"\n\
         [source]\nroot = \"corpus\"\nannotations = \"train.json\"\nmedia = \"videos\"\n\
         [keyframes]\npolicy = \"fps\"\nfps = 1.0\n\
         [pack]\nanswers = [\"corpus/answers.json\"]\n",
    )
    .unwrap();
    scenario
}

fn run(dir: &Path, out: &str, sets: &[&str]) -> PathBuf {
    let mut args = vec!["run", "filters.toml", "--out", out];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = mimicit(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    dir.join(out)
}

/// Every output but the manifest (which records the settings), the timings and the report.
fn outputs(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot(out)
        .into_iter()
        .filter(|(f, _)| {
            !(f.ends_with("manifest.json")
                || f.starts_with("report")
                || f.ends_with("timings.json"))
        })
        .collect()
}

fn frames(out: &Path) -> Vec<FrameRecord> {
    mimicit::tables::read_frames(&out.join("DC/frames.parquet")).unwrap()
}

/// Mean luma of the top `rows` rows of a stored frame.
fn top_luma(out: &Path, f: &FrameRecord, rows: usize) -> f64 {
    let img = mimicit::imaging::decode_file(&out.join("DC").join(&f.file)).unwrap();
    let w = img.width as usize;
    let px = &img.data[..rows * w * 3];
    px.chunks_exact(3)
        .map(|p| {
            (299.0 * f64::from(p[0]) + 587.0 * f64::from(p[1]) + 114.0 * f64::from(p[2])) / 1000.0
        })
        .sum::<f64>()
        / (rows * w) as f64
}

#[test]
fn filters_drop_black_and_blurred_frames_and_crop_letterboxes() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let on = run(
        dir.path(),
        "on",
        &[
            "filter.uniform=true",
            "filter.blur=true",
            "filter.letterbox=true",
        ],
    );
    let all = frames(&on);
    let by_id: BTreeMap<&str, &FrameRecord> =
        all.iter().map(|f| (f.image_id.as_str(), f)).collect();
    let rows = mimicit::tables::read_dedup(&on.join("DC/dedup.parquet")).unwrap();
    for r in &rows {
        assert_valid(
            "dedup.schema.json",
            &serde_json::to_value(r).unwrap(),
            "dedup.parquet",
        );
    }
    let dropped: BTreeMap<&str, _> = rows.iter().map(|r| (r.dropped_id.as_str(), r)).collect();
    // What each unit's frames became, in time order: the method that took it, or "kept".
    let mut fate: BTreeMap<&str, Vec<(u32, &str)>> = BTreeMap::new();
    for f in &all {
        let what = dropped
            .get(f.image_id.as_str())
            .map_or("kept", |r| r.method.as_str());
        let t = f.time_s.unwrap().round() as u32;
        fate.entry(f.unit_id.as_str()).or_default().push((t, what));
    }
    eprintln!("{fate:#?}");
    let unit = |u: &str| fate[u].clone();
    assert_eq!(
        unit("v_fade"),
        [
            (0, "kept"),
            (1, "kept"),
            (2, "uniform"),
            (3, "uniform"),
            (4, "uniform"),
            (5, "kept")
        ]
    );
    // All black: the first frame stays (ties go to the first), the others go, as uniform or as
    // exact duplicates of it.
    let black = unit("v_black");
    assert_eq!(black[0], (0, "kept"));
    assert!(black[1..].iter().all(|(_, w)| *w != "kept"), "{black:?}");
    assert!(black.iter().any(|(_, w)| *w == "uniform"), "{black:?}");
    assert_eq!(
        unit("v_blur"),
        [(0, "kept"), (1, "kept"), (2, "blur"), (3, "blur")]
    );
    assert!(unit("v_letterbox").iter().all(|(_, w)| *w == "kept"));
    // Every filtered frame maps to a kept frame of its own unit; no unit lost every frame.
    for r in rows.iter().filter(|r| r.method.is_filter()) {
        assert!(!dropped.contains_key(r.kept_id.as_str()), "{r:?}");
        assert_eq!(
            by_id[r.dropped_id.as_str()].unit_id,
            by_id[r.kept_id.as_str()].unit_id,
            "{r:?}"
        );
    }
    for (u, list) in &fate {
        assert!(
            list.iter().any(|(_, w)| *w == "kept"),
            "{u} lost every frame"
        );
    }
    // The letterboxed clip is stored without its bars.
    let letterboxed: Vec<&FrameRecord> =
        all.iter().filter(|f| f.unit_id == "v_letterbox").collect();
    for f in &letterboxed {
        assert!(top_luma(&on, f, 8) > 24.0, "{} keeps its bar", f.image_id);
    }

    // Pack and its instructions use kept frames only, and every unit still has images.
    let kept: BTreeSet<&str> = all
        .iter()
        .map(|f| f.image_id.as_str())
        .filter(|id| !dropped.contains_key(id))
        .collect();
    let packed: BTreeSet<String> =
        mimicit::tables::read_string_column(&on.join("DC/DC.parquet"), "image_id")
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        packed.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        kept
    );
    let instructions = read_json(&on.join("DC/DC_instructions.json"));
    let data = instructions["data"].as_object().unwrap();
    assert_eq!(data.len(), CLIPS.len());
    for (id, ins) in data {
        let images = ins["image_ids"].as_array().unwrap();
        assert!(!images.is_empty(), "{id} has no image");
        for i in images {
            assert!(kept.contains(i.as_str().unwrap()), "{id}: {i} was dropped");
        }
    }
    // The report shows the drop reasons and the filtered frames.
    let html = std::fs::read_to_string(on.join("report/index.html")).unwrap();
    assert!(html.contains("frames dropped by quality filters"));
    assert!(html.contains("Filtered frames"));
    assert!(on.join("report/DC/filtered_uniform.png").is_file());
    assert!(on.join("report/DC/filtered_blur.png").is_file());

    // Deterministic: the same run again gives the same bytes.
    let again = run(
        dir.path(),
        "again",
        &[
            "filter.uniform=true",
            "filter.blur=true",
            "filter.letterbox=true",
        ],
    );
    assert_same_files(&snapshot(&on), &snapshot(&again));

    // Off (the default, or said explicitly with other thresholds): the outputs of a run
    // without filters, with the letterbox and the black frames stored as they are.
    let off = run(dir.path(), "off", &[]);
    let off_rows = mimicit::tables::read_dedup(&off.join("DC/dedup.parquet")).unwrap();
    assert!(off_rows.iter().all(|r| !r.method.is_filter()));
    assert!(off_rows.len() < rows.len());
    for f in frames(&off).iter().filter(|f| f.unit_id == "v_letterbox") {
        assert!(top_luma(&off, f, 8) < 24.0, "{} lost its bar", f.image_id);
    }
    let explicit = run(
        dir.path(),
        "explicit",
        &[
            "filter.uniform=false",
            "filter.blur=false",
            "filter.letterbox=false",
            "filter.uniform_ratio=0.5",
            "filter.min_sharpness=500",
        ],
    );
    assert_same_files(&outputs(&off), &outputs(&explicit));
    // Changing a filter setting reruns dedup; the letterbox setting reruns keyframes too.
    let manifest = |out: &Path| read_json(&out.join("manifest.json"));
    let hash = |m: &serde_json::Value, stage: &str| {
        m["scenarios"]["DC"]["stages"][stage]["config_hash"].clone()
    };
    let (m_off, m_on) = (manifest(&off), manifest(&on));
    assert_ne!(hash(&m_off, "dedup"), hash(&m_on, "dedup"));
    assert_ne!(hash(&m_off, "keyframes"), hash(&m_on, "keyframes"));
    let blur_only = run(dir.path(), "off", &["filter.blur=true"]);
    let m_blur = manifest(&blur_only);
    assert_eq!(hash(&m_off, "keyframes"), hash(&m_blur, "keyframes"));
    assert_ne!(hash(&m_off, "dedup"), hash(&m_blur, "dedup"));
}

#[test]
fn unknown_or_out_of_range_filter_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = copy_demo(dir.path());
    let scenario = scenario.to_str().unwrap();
    for (set, key) in [
        ("filter.bogus=1", "bogus"),
        ("filter.uniform_ratio=1.5", "filter.uniform_ratio"),
        ("filter.min_sharpness=-1", "filter.min_sharpness"),
        ("filter.letterbox_luma=300", "letterbox_luma"),
    ] {
        let o = mimicit(
            dir.path(),
            &["dedup", scenario, "--out", "out", "--set", set],
        );
        assert_eq!(o.status.code(), Some(1), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(key), "{set}: {}", stderr(&o));
    }
}
