//! Bad inputs, one test each, with the outcome each must have. The rule behind them: a bad item
//! is named (file and problem) on stderr and in `rejects/{stage}.parquet` (`rejects.parquet` for
//! `mimicit frames`), every other item is processed, and the exit status is 3; a bad input that
//! leaves nothing to work on (an unreadable annotation file, a broken scenario, an output that
//! cannot be written) stops the command with status 1 and a message naming the file. Never a
//! crash, a hang or a silently empty output. Media are made here with the `ffmpeg` command.
//!
//! | case | expected outcome |
//! |---|---|
//! | truncated MP4 (index at the end, cut off) | keyframes reject "cannot open as a video", exit 3 |
//! | truncated MKV (cut mid-file) | frames before the cut kept, warning "truncated or damaged", exit 0 |
//! | zero-byte video | keyframes reject "empty file (0 bytes)", exit 3 |
//! | text named `.mp4` | keyframes reject "cannot open as a video", exit 3 |
//! | PNG named `.mp4` | keyframes reject "holds a still image", exit 3 |
//! | random bytes `.mkv` | keyframes reject "cannot open as a video", exit 3 |
//! | audio-only file | keyframes reject "no video stream", exit 3 |
//! | stream damaged mid-file | frames before the damage kept, warning "truncated or damaged", exit 0 |
//! | decode past the time limit (`--item-timeout`) | keyframes reject "time limit", exit 3 |
//! | truncated JPEG | keyframes reject "not a readable image", exit 3 |
//! | text named `.png` | keyframes reject "not a readable image", exit 3 |
//! | zero-byte picture | keyframes reject "empty file (0 bytes)", exit 3 |
//! | PNG declaring 100000x100000 pixels | keyframes reject "refused: larger than", nothing decoded, exit 3 |
//! | variable frame rate | frames at the requested times, exit 0 |
//! | display rotation 90° | frames turned upright (portrait), exit 0 |
//! | first frame at 3 s | frame times from 3 s, exit 0 |
//! | 10-bit video | frames, exit 0 |
//! | missing annotation file | exit 1 naming `source.annotations` and the file |
//! | malformed annotation JSON | exit 1 naming the file, line and column |
//! | annotation file of the wrong shape | exit 1 naming the file and the expected shape |
//! | annotation file with no entry | exit 1 "no annotated unit found" |
//! | malformed entry | scan reject "malformed annotation", exit 3 |
//! | malformed JSONL line (TVC) | scan reject naming the line, exit 3 |
//! | annotation for a missing video | scan reject "no video named", exit 3 |
//! | duplicate unit id across annotation files | scan reject "duplicate video id", exit 3 |
//! | a folder named like a video | not taken for a video: scan reject "no video named", exit 3 |
//! | non-UTF-8 file name | extracted by `frames` under a lossy name, not annotatable: counted as unannotated, exit 0 |
//! | symlink loops in the media folder | ignored, exit 0 |
//! | unreadable video (chmod 000) | keyframes reject "Permission denied", exit 3 |
//! | unreadable annotation file (chmod 000) | exit 1 naming it |
//! | output folder not writable (mode 555) | exit 1 naming the folder, nothing created |
//! | output folder under a file | exit 1 naming the folder |
//! | file size limit hit (disk full) | exit 1 naming the file, no partial file; the next run finishes with the same bytes as a clean run |
//! | Syphus answer with no pair | pack reject with the text, exit 3 |
//! | Syphus answer for an unknown unit | pack reject "unknown unit", exit 3 |
//! | malformed JSONL line in the answers | pack reject naming the line, exit 3 |
//! | answers file that is not UTF-8 | exit 1 naming the file |
//! | scenario TOML with a wrong type | exit 1 naming the file and the key |
//! | scenario file that is not TOML | exit 1 "not valid TOML" |
//! | `frames DIR` over good and bad videos | frames of every good one, every bad one in `DIR/rejects.parquet`, exit 3 |
//!
//! Run as root (as CI is), the permission cases start the binary through `setpriv` with
//! CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped, so that file modes refuse it as they refuse
//! any user and the refusal is really checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;
use mimicit::model::{FrameRecord, Reject};

/// `ffmpeg -y ARGS OUT`, quiet; panics with its stderr when it fails.
fn ffmpeg(out: &Path, args: &[&str]) -> PathBuf {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("run ffmpeg (installed by scripts/setup.sh)");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

/// A small test-pattern clip: 64x48, 10 fps, a keyframe every 5 frames, `seconds` long;
/// `extra` goes before the output name (codec, pixel format, timestamps).
fn clip(out: &Path, seconds: u32, extra: &[&str]) -> PathBuf {
    let src = format!("testsrc=size=64x48:rate=10:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &src, "-g", "5"];
    if !extra.contains(&"-pix_fmt") {
        args.extend(["-pix_fmt", "yuv420p"]);
    }
    args.extend(extra);
    ffmpeg(out, &args)
}

/// A small picture (32x24, a gradient), PNG or JPEG by extension.
fn picture(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 10) as u8, 90])
    })
    .save(path)
    .unwrap();
}

/// Deterministic noise (no file format starts like it).
fn noise(n: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A DC corpus in a temp folder: `corpus/videos/` with one good clip `v_good.mp4`,
/// `corpus/train.json` annotating it, and `scenario.toml` (1 fps, 32x32 frames).
struct Dc {
    dir: tempfile::TempDir,
}

impl Dc {
    fn new() -> Dc {
        let dc = Dc {
            dir: tempfile::tempdir().unwrap(),
        };
        clip(&dc.video("v_good.mp4"), 2, &[]);
        std::fs::write(dc.annotations(), "{}").unwrap();
        dc.annotate("v_good");
        std::fs::write(
            dc.root().join("scenario.toml"),
            "scenario = \"DC\"\n[source]\nroot = \"corpus\"\nannotations = \"train.json\"\n\
             media = \"videos\"\n[keyframes]\npolicy = \"fps\"\nfps = 1.0\n[image]\nwidth = 32\n\
             height = 32\n",
        )
        .unwrap();
        dc
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn video(&self, name: &str) -> PathBuf {
        let p = self.root().join("corpus/videos").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn annotations(&self) -> PathBuf {
        self.root().join("corpus/train.json")
    }

    /// Adds an ActivityNet-style entry for `id`.
    fn annotate(&self, id: &str) {
        let mut doc = read_json(&self.annotations());
        doc[id] = serde_json::json!({"duration": 2.0, "timestamps": [[0, 1]], "sentences": [format!("{id} happens.")]});
        std::fs::write(self.annotations(), serde_json::to_vec(&doc).unwrap()).unwrap();
    }

    /// `mimicit run scenario.toml --out out --stages scan,keyframes,metadata ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "run",
            "scenario.toml",
            "--out",
            "out",
            "--stages",
            "scan,keyframes,metadata",
        ];
        all.extend(args);
        mimicit(self.root(), &all)
    }

    fn rejects(&self, stage: &str) -> Vec<Reject> {
        read_rejects(&self.root().join(format!("out/DC/rejects/{stage}.parquet")))
    }

    fn frames(&self, unit: &str) -> Vec<FrameRecord> {
        frames_of(&self.root().join("out/DC"), unit)
    }

    /// The good clip went all the way through: frames and a Syphus query entry.
    fn assert_good_processed(&self) {
        assert_eq!(self.frames("v_good").len(), 2, "v_good lost frames");
        let query = read_json(&self.root().join("out/DC/syphus/DC_query.json"));
        assert!(
            query
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == "v_good"),
            "{query}"
        );
    }
}

fn read_rejects(path: &Path) -> Vec<Reject> {
    mimicit::tables::read_rejects(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn frames_of(dir: &Path, unit: &str) -> Vec<FrameRecord> {
    mimicit::tables::read_frames(&dir.join("frames.parquet"))
        .unwrap()
        .into_iter()
        .filter(|f| f.unit_id == unit)
        .collect()
}

/// Exit 3, `item` rejected by `stage` with `error` in its message (which names `file`), on
/// stderr too, and exactly one such row.
fn assert_rejected(
    o: &Output,
    rejects: &[Reject],
    stage: &str,
    item: &str,
    file: &str,
    error: &str,
) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let rows: Vec<&Reject> = rejects.iter().filter(|r| r.item == item).collect();
    assert_eq!(rows.len(), 1, "{item} in {rejects:?}");
    let r = rows[0];
    assert_eq!(r.stage, stage, "{r:?}");
    assert!(
        r.error.contains(error) && (r.error.contains(file) || r.path.contains(file)),
        "expected `{error}` about {file}: {r:?}"
    );
    assert!(
        err.contains(item) && err.contains(error) && err.contains(file),
        "stderr does not name {item}, {file} and `{error}`:\n{err}"
    );
}

/// A DC corpus with one extra annotated video `v_bad.{ext}` made by `make`, run through scan,
/// keyframes and metadata.
fn dc_with_bad_video(file: &str, make: impl FnOnce(&Path)) -> (Dc, Output) {
    let dc = Dc::new();
    make(&dc.video(file));
    dc.annotate("v_bad");
    let o = dc.run(&[]);
    (dc, o)
}

fn assert_video_rejected(file: &str, error: &str, make: impl FnOnce(&Path)) {
    let (dc, o) = dc_with_bad_video(file, make);
    assert_rejected(
        &o,
        &dc.rejects("keyframes"),
        "keyframes",
        "v_bad",
        file,
        error,
    );
    dc.assert_good_processed();
}

#[test]
fn truncated_mp4_is_rejected() {
    assert_video_rejected("v_bad.mp4", "cannot open as a video", |p| {
        let full = clip(&p.with_file_name("full.mp4"), 4, &[]);
        let bytes = std::fs::read(&full).unwrap();
        std::fs::remove_file(&full).unwrap();
        std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
    });
}

#[test]
fn truncated_mkv_keeps_the_frames_before_the_cut() {
    let (dc, o) = dc_with_bad_video("v_bad.mkv", |p| {
        let full = clip(&p.with_file_name("full.mkv"), 4, &[]);
        let bytes = std::fs::read(&full).unwrap();
        std::fs::remove_file(&full).unwrap();
        std::fs::write(p, &bytes[..bytes.len() * 6 / 10]).unwrap();
    });
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("v_bad.mkv") && err.contains("truncated or damaged"),
        "{err}"
    );
    let n = dc.frames("v_bad").len();
    assert!((1..4).contains(&n), "{n} frames of a cut 4 s clip at 1 fps");
    dc.assert_good_processed();
}

#[test]
fn zero_byte_video_is_rejected() {
    assert_video_rejected("v_bad.mp4", "empty file (0 bytes)", |p| {
        std::fs::write(p, b"").unwrap()
    });
}

#[test]
fn text_named_mp4_is_rejected() {
    assert_video_rejected("v_bad.mp4", "cannot open as a video", |p| {
        std::fs::write(p, b"these are subtitles, not a video\n").unwrap()
    });
}

#[test]
fn picture_named_mp4_is_rejected() {
    assert_video_rejected("v_bad.mp4", "holds a still image", |p| {
        let png = p.with_file_name("still.png");
        picture(&png);
        std::fs::rename(&png, p).unwrap();
    });
}

#[test]
fn random_bytes_mkv_is_rejected() {
    assert_video_rejected("v_bad.mkv", "cannot open as a video", |p| {
        std::fs::write(p, noise(20_000)).unwrap()
    });
}

#[test]
fn audio_only_file_is_rejected() {
    assert_video_rejected("v_bad.mp4", "no video stream", |p| {
        ffmpeg(p, &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"]);
    });
}

#[test]
fn stream_damaged_mid_file_keeps_the_frames_before_the_damage() {
    let (dc, o) = dc_with_bad_video("v_bad.mkv", |p| {
        clip(p, 4, &[]);
        let mut bytes = std::fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 1500].copy_from_slice(&noise(1500));
        std::fs::write(p, bytes).unwrap();
    });
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("v_bad.mkv") && err.contains("truncated or damaged"),
        "{err}"
    );
    let n = dc.frames("v_bad").len();
    assert!((1..4).contains(&n), "{n} frames of a damaged 4 s clip");
    dc.assert_good_processed();
}

#[test]
fn decoding_past_the_time_limit_is_rejected() {
    let dc = Dc::new();
    // A limit no decode can meet: every video is given up on, named, and the run still ends.
    let o = dc.run(&["--item-timeout", "0.000001"]);
    assert_rejected(
        &o,
        &dc.rejects("keyframes"),
        "keyframes",
        "v_good",
        "v_good.mp4",
        "time limit",
    );
    let o = mimicit(
        dc.root(),
        &["run", "scenario.toml", "--out", "out", "--item-timeout=-1"],
    );
    // A flag value the command cannot take: bad usage.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--item-timeout"), "{}", stderr(&o));
}

#[test]
fn variable_frame_rate_is_sampled_by_time() {
    let (dc, o) = dc_with_bad_video("v_bad.mkv", |p| {
        // 10 fps for 1 s, then ~3 fps for 3 s, then 10 fps again.
        clip(
            p,
            3,
            &[
                "-vf",
                "setpts='if(lt(N,10),N/10,if(lt(N,20),1+(N-10)/3,4+(N-20)/10))/TB'",
                "-fps_mode",
                "vfr",
            ],
        );
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let times: Vec<f64> = dc
        .frames("v_bad")
        .iter()
        .map(|f| f.time_s.unwrap())
        .collect();
    assert_eq!(times, [0.0, 1.0, 2.0, 3.0, 4.0], "1 fps over a VFR stream");
}

#[test]
fn rotated_video_is_turned_upright() {
    let dir = tempfile::tempdir().unwrap();
    let plain = clip(&dir.path().join("plain.mp4"), 1, &[]);
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    ffmpeg(
        &videos.join("rot.mp4"),
        &[
            "-i",
            plain.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
        ],
    );
    let o = mimicit(
        dir.path(),
        &[
            "frames", "videos", "--out", "frames", "--width", "64", "--height", "64", "--aspect",
            "keep",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dims = image::image_dimensions(dir.path().join("frames/rot/000000.png")).unwrap();
    assert_eq!(
        dims,
        (48, 64),
        "a 64x48 clip rotated 90 degrees is portrait"
    );
}

#[test]
fn non_zero_start_keeps_media_times() {
    let (dc, o) = dc_with_bad_video("v_bad.mkv", |p| {
        clip(p, 2, &["-output_ts_offset", "3"]);
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let times: Vec<f64> = dc
        .frames("v_bad")
        .iter()
        .map(|f| f.time_s.unwrap())
        .collect();
    assert_eq!(times, [3.0, 4.0]);
}

#[test]
fn ten_bit_video_is_decoded() {
    let (dc, o) = dc_with_bad_video("v_bad.mkv", |p| {
        clip(p, 2, &["-pix_fmt", "yuv420p10le", "-c:v", "libx264"]);
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = dc.frames("v_bad");
    assert_eq!(frames.len(), 2);
    // The same pattern as the 8-bit clip, within rounding: not a green or black picture.
    let png = image::open(dc.root().join("out/DC").join(&frames[0].file))
        .unwrap()
        .to_rgb8();
    let good = dc.frames("v_good");
    let ref_png = image::open(dc.root().join("out/DC").join(&good[0].file))
        .unwrap()
        .to_rgb8();
    let diff: u64 = png
        .as_raw()
        .iter()
        .zip(ref_png.as_raw())
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    assert!(
        diff / (png.as_raw().len() as u64) < 12,
        "mean difference {}",
        diff / png.as_raw().len() as u64
    );
}

#[test]
fn missing_annotation_file_is_an_error_naming_it() {
    let dc = Dc::new();
    std::fs::remove_file(dc.annotations()).unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("source.annotations") && err.contains("train.json"),
        "{err}"
    );
}

#[test]
fn malformed_annotation_json_is_an_error_naming_file_and_line() {
    let dc = Dc::new();
    std::fs::write(
        dc.annotations(),
        "{\"v_good\": {\"timestamps\": [[0, 1]],\n  \"sentences\": [\"a\"\n}",
    )
    .unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("train.json") && err.contains("malformed JSON") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn annotation_file_of_the_wrong_shape_is_an_error() {
    let dc = Dc::new();
    std::fs::write(dc.annotations(), "[{\"v_good\": 1}]").unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("train.json") && err.contains("expected an object"),
        "{err}"
    );
}

#[test]
fn annotation_file_without_entries_is_an_error_not_an_empty_output() {
    let dc = Dc::new();
    std::fs::write(dc.annotations(), "{}").unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("train.json") && err.contains("no annotated unit found"),
        "{err}"
    );
    assert!(!dc.root().join("out/DC/units.parquet").exists());
}

#[test]
fn malformed_entry_is_rejected() {
    let dc = Dc::new();
    let mut doc = read_json(&dc.annotations());
    doc["v_odd"] = serde_json::json!({"timestamps": [[0, 1], [1, 2]], "sentences": ["one"]});
    std::fs::write(dc.annotations(), serde_json::to_vec(&doc).unwrap()).unwrap();
    let o = dc.run(&[]);
    assert_rejected(
        &o,
        &dc.rejects("scan"),
        "scan",
        "v_odd",
        "train.json",
        "malformed annotation",
    );
    dc.assert_good_processed();
}

#[test]
fn malformed_jsonl_line_is_rejected_and_the_other_lines_read() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("tvqa");
    for clip in [
        "friends_s01e01_seg01_clip_00",
        "friends_s01e01_seg01_clip_01",
    ] {
        for i in 1..=3 {
            picture(&corpus.join(format!("frames/friends_frames/{clip}/{i:05}.jpg")));
        }
    }
    std::fs::write(
        corpus.join("tvc_train_release.jsonl"),
        concat!(
            "{\"vid_name\": \"friends_s01e01_seg01_clip_00\", \"descs\": [{\"desc\": \"Ross waves.\"}]}\n",
            "{\"vid_name\": \"friends_s01e01_seg01_clip_01\", \"descs\": [{\"desc\": \n",
            "{\"vid_name\": \"friends_s01e01_seg01_clip_01\", \"descs\": [{\"text\": \"no desc\"}]}\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tvc.toml"),
        "scenario = \"TVC\"\n[source]\nroot = \"tvqa\"\nannotations = \"tvc_train_release.jsonl\"\n\
         media = \"frames\"\n[image]\nwidth = 32\nheight = 32\n",
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "tvc.toml",
            "--out",
            "out",
            "--stages",
            "scan,keyframes,metadata",
        ],
    );
    let rejects = read_rejects(&dir.path().join("out/TVC/rejects/scan.parquet"));
    assert_rejected(
        &o,
        &rejects,
        "scan",
        "line 2",
        "tvc_train_release.jsonl:2",
        "not JSON",
    );
    assert!(
        rejects
            .iter()
            .any(|r| r.item == "line 3" && r.error.contains("descs[0].desc")),
        "{rejects:?}"
    );
    let frames = frames_of(&dir.path().join("out/TVC"), "friends_s01e01_seg01_clip_00");
    assert_eq!(frames.len(), 3, "the good line's clip is processed");
}

#[test]
fn annotation_for_a_missing_video_is_rejected() {
    let dc = Dc::new();
    dc.annotate("v_nowhere");
    let o = dc.run(&[]);
    assert_rejected(
        &o,
        &dc.rejects("scan"),
        "scan",
        "v_nowhere",
        "train.json",
        "no video named v_nowhere",
    );
    dc.assert_good_processed();
}

#[test]
fn duplicate_unit_id_is_rejected_once() {
    let dc = Dc::new();
    let second = dc.root().join("corpus/val.json");
    std::fs::copy(dc.annotations(), &second).unwrap();
    let toml = dc.root().join("scenario.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace(
            "annotations = \"train.json\"",
            "annotations = [\"train.json\", \"val.json\"]",
        ),
    )
    .unwrap();
    let o = dc.run(&[]);
    assert_rejected(
        &o,
        &dc.rejects("scan"),
        "scan",
        "v_good",
        "val.json",
        "duplicate video id",
    );
    dc.assert_good_processed();
}

#[test]
fn folder_named_like_a_video_is_not_a_video() {
    let dc = Dc::new();
    std::fs::create_dir_all(dc.video("v_dir.mp4")).unwrap();
    dc.annotate("v_dir");
    let o = dc.run(&[]);
    assert_rejected(
        &o,
        &dc.rejects("scan"),
        "scan",
        "v_dir",
        "train.json",
        "no video named v_dir",
    );
    dc.assert_good_processed();
}

#[test]
fn non_utf8_file_name_is_handled() {
    use std::os::unix::ffi::OsStrExt;
    let dc = Dc::new();
    let name = std::ffi::OsStr::from_bytes(b"v_caf\xe9.mp4");
    std::fs::copy(dc.video("v_good.mp4"), dc.video("x").with_file_name(name)).unwrap();
    // In a scenario it cannot be annotated (JSON keys are UTF-8): it is unannotated media.
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("DC: scan"), "{}", stderr(&o));
    dc.assert_good_processed();
    // `frames` extracts it, under its name made readable.
    let o = mimicit(
        dc.root(),
        &[
            "frames",
            "corpus/videos",
            "--out",
            "frames",
            "--width",
            "16",
            "--height",
            "16",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dc.root().join("frames/v_caf\u{fffd}/000000.png").is_file());
    assert!(dc.root().join("frames/v_good/000000.png").is_file());
}

#[test]
fn symlink_loops_in_the_media_folder_are_ignored() {
    let dc = Dc::new();
    let videos = dc.root().join("corpus/videos");
    std::os::unix::fs::symlink(".", videos.join("loop")).unwrap();
    std::os::unix::fs::symlink("b.mp4", videos.join("a.mp4")).unwrap();
    std::os::unix::fs::symlink("a.mp4", videos.join("b.mp4")).unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    dc.assert_good_processed();
    let o = mimicit(dc.root(), &["frames", "corpus/videos", "--out", "frames"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// `mimicit ARGS` in `cwd` as a process that file modes apply to: as root (CI), through
/// `setpriv` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from the bounding set, so
/// that mode 000 and read-only folders refuse it as they refuse any user. None (the test
/// skipped through `skip`, a failure under CI) when root and setpriv is missing.
fn mimicit_unprivileged(cwd: &Path, args: &[&str]) -> Option<Output> {
    if !is_root() {
        return Some(mimicit(cwd, args));
    }
    let o = Command::new("setpriv")
        .args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(binary())
        .args(args)
        .arg("--progress=none")
        .current_dir(cwd)
        .env_remove("MIMICIT_LOG")
        .output();
    match o {
        Ok(o) => Some(o),
        Err(e) => {
            skip(&format!(
                "running as root and cannot start setpriv (util-linux) to drop CAP_DAC_OVERRIDE: {e}"
            ));
            None
        }
    }
}

#[test]
fn unreadable_video_is_rejected() {
    use std::os::unix::fs::PermissionsExt;
    let dc = Dc::new();
    let bad = dc.video("v_bad.mp4");
    std::fs::copy(dc.video("v_good.mp4"), &bad).unwrap();
    dc.annotate("v_bad");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o000)).unwrap();
    let args = [
        "run",
        "scenario.toml",
        "--out",
        "out",
        "--stages",
        "scan,keyframes,metadata",
    ];
    let Some(o) = mimicit_unprivileged(dc.root(), &args) else {
        return;
    };
    assert_rejected(
        &o,
        &dc.rejects("keyframes"),
        "keyframes",
        "v_bad",
        "v_bad.mp4",
        "Permission denied",
    );
    dc.assert_good_processed();
}

#[test]
fn unreadable_annotation_file_is_an_error_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let dc = Dc::new();
    std::fs::set_permissions(dc.annotations(), std::fs::Permissions::from_mode(0o000)).unwrap();
    let Some(o) = mimicit_unprivileged(dc.root(), &["run", "scenario.toml", "--out", "out"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("train.json") && err.contains("ermission denied"),
        "{err}"
    );
}

#[test]
fn output_folder_not_writable_is_an_error_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let dc = Dc::new();
    let parent = dc.root().join("locked");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = "locked/out";
    let Some(o) = mimicit_unprivileged(dc.root(), &["run", "scenario.toml", "--out", out]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(out) && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!parent.join("out").exists());
}

#[test]
fn a_folder_that_cannot_exist_is_an_error_naming_it() {
    let dc = Dc::new();
    std::fs::write(dc.root().join("file"), b"").unwrap();
    let o = mimicit(dc.root(), &["run", "scenario.toml", "--out", "file/out"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("file/out"), "{}", stderr(&o));
}

#[test]
fn full_disk_stops_the_run_cleanly_and_the_next_run_finishes_it() {
    let clean = tempfile::tempdir().unwrap();
    let reference = snapshot(&run_demo(clean.path()));

    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    // RLIMIT_FSIZE (300 KiB) makes writes past it fail with EFBIG, as a full disk fails them
    // with ENOSPC; SIGXFSZ is ignored so that the write returns the error instead of killing.
    let o = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 300; exec \"$0\" \"$@\"")
        .arg(binary())
        .args([
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--progress=none",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("DC.parquet") && err.contains("File too large"),
        "{err}"
    );
    let out = dir.path().join("out");
    let partial: Vec<_> = files(&out)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".tmp-") || f.ends_with("DC.parquet"))
        .collect();
    assert!(partial.is_empty(), "left behind: {partial:?}");

    let o = mimicit(dir.path(), &["run", "scenarios/demo.toml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("up-to-date"), "{}", stderr(&o));
    assert_same_files(&reference, &snapshot(&out));
}

/// The demo with `answers` (JSONL) as its only Syphus answers; runs every stage.
fn demo_with_answers(answers: &[u8]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let file = dir.path().join("answers.jsonl");
    std::fs::write(&file, answers).unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "scenarios/demo.toml",
            "--out",
            "out",
            "--set",
            &format!("pack.answers=[\"{}\"]", file.display()),
        ],
    );
    (dir, o)
}

const GOOD_ANSWER: &str =
    "{\"id\": \"v_demo_garden\", \"results\": \"Question: What grows here?\\nAnswer: Flowers.\"}\n";

fn packed_count(dir: &Path) -> usize {
    read_json(&dir.join("out/DC/DC_instructions.json"))["data"]
        .as_object()
        .unwrap()
        .len()
}

#[test]
fn answer_with_no_pair_is_rejected_with_its_text() {
    let (dir, o) = demo_with_answers(
        format!(
            "{GOOD_ANSWER}{{\"id\": \"v_demo_kitchen\", \"results\": \"Sorry, I cannot help.\"}}\n"
        )
        .as_bytes(),
    );
    let rejects = read_rejects(&dir.path().join("out/DC/rejects/pack.parquet"));
    assert_rejected(
        &o,
        &rejects,
        "pack",
        "v_demo_kitchen",
        "answers.jsonl",
        "Sorry, I cannot help.",
    );
    assert_eq!(packed_count(dir.path()), 1);
}

#[test]
fn answer_for_an_unknown_unit_is_rejected() {
    let (dir, o) = demo_with_answers(
        format!("{GOOD_ANSWER}{{\"id\": \"v_elsewhere\", \"results\": \"Q: a?\\nA: b.\"}}\n")
            .as_bytes(),
    );
    let rejects = read_rejects(&dir.path().join("out/DC/rejects/pack.parquet"));
    assert_rejected(
        &o,
        &rejects,
        "pack",
        "v_elsewhere",
        "answers.jsonl",
        "unknown unit",
    );
    assert_eq!(packed_count(dir.path()), 1);
}

#[test]
fn malformed_answer_line_is_rejected() {
    let (dir, o) =
        demo_with_answers(format!("{{\"id\": \"v_demo_kitchen\", \"res\n{GOOD_ANSWER}").as_bytes());
    let rejects = read_rejects(&dir.path().join("out/DC/rejects/pack.parquet"));
    assert_rejected(
        &o,
        &rejects,
        "pack",
        "answers.jsonl:1",
        "answers.jsonl",
        "not valid JSON",
    );
    assert_eq!(packed_count(dir.path()), 1);
}

#[test]
fn answers_file_that_is_not_utf8_is_an_error_naming_it() {
    let mut bytes = GOOD_ANSWER.as_bytes().to_vec();
    bytes.extend(b"{\"id\": \"v_demo_kitchen\", \"results\": \"caf\xe9\"}\n");
    let (_dir, o) = demo_with_answers(&bytes);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("answers.jsonl") && err.contains("not UTF-8"),
        "{err}"
    );
}

#[test]
fn scenario_with_a_wrong_type_is_an_error_naming_the_key() {
    let dc = Dc::new();
    let toml = dc.root().join("scenario.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("width = 32", "width = \"wide\"")).unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("scenario.toml") && err.contains("image.width"),
        "{err}"
    );
}

#[test]
fn scenario_that_is_not_toml_is_an_error() {
    let dc = Dc::new();
    std::fs::write(dc.root().join("scenario.toml"), "scenario = \n[[[").unwrap();
    let o = dc.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("scenario.toml") && err.contains("not valid TOML"),
        "{err}"
    );
}

/// An SD corpus: pairs `{id}.png`/`{id}_2.png` for ids 1 (good) and 2 (its first picture made
/// by `make`), both annotated; runs scan, keyframes, metadata.
fn sd_with_bad_picture(make: impl FnOnce(&Path)) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("sd/img");
    for p in ["1.png", "1_2.png", "2_2.png"] {
        picture(&img.join(p));
    }
    make(&img.join("2.png"));
    std::fs::write(
        dir.path().join("sd/train.json"),
        r#"[{"img_id": "1", "sentences": ["a"]}, {"img_id": "2", "sentences": ["b"]}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sd.toml"),
        "scenario = \"SD\"\n[source]\nroot = \"sd\"\nannotations = \"train.json\"\nmedia = \"img\"\n",
    )
    .unwrap();
    let o = mimicit(
        dir.path(),
        &[
            "run",
            "sd.toml",
            "--out",
            "out",
            "--stages",
            "scan,keyframes,metadata",
        ],
    );
    (dir, o)
}

fn assert_picture_rejected(error: &str, make: impl FnOnce(&Path)) {
    let (dir, o) = sd_with_bad_picture(make);
    let rejects = read_rejects(&dir.path().join("out/SD/rejects/keyframes.parquet"));
    assert_rejected(&o, &rejects, "keyframes", "00002", "2.png", error);
    assert_eq!(frames_of(&dir.path().join("out/SD"), "00001").len(), 2);
}

#[test]
fn truncated_jpeg_is_rejected() {
    assert_picture_rejected("not a readable image", |p| {
        let jpg = p.with_file_name("full.jpg");
        picture(&jpg);
        let bytes = std::fs::read(&jpg).unwrap();
        std::fs::remove_file(&jpg).unwrap();
        std::fs::write(p, &bytes[..bytes.len() / 3]).unwrap();
    });
}

#[test]
fn text_named_png_is_rejected() {
    assert_picture_rejected("not a readable image", |p| {
        std::fs::write(p, b"a caption, not a picture").unwrap()
    });
}

#[test]
fn zero_byte_picture_is_rejected() {
    assert_picture_rejected("empty file (0 bytes)", |p| std::fs::write(p, b"").unwrap());
}

/// A PNG whose header declares `w` x `h` pixels, with a small compressed body.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        // CRC-32 (IEEE) of type and data.
        let mut crc = !0u32;
        for &b in &out[start..] {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        out.extend((!crc).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // A stored (uncompressed) zlib stream of 1000 zero bytes: nowhere near the declared size.
    let mut idat = vec![0x78, 0x01, 0x01, 0xe8, 0x03, 0x17, 0xfc];
    idat.extend([0u8; 1000]);
    idat.extend([0, 0, 0, 1]);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", b"");
    png
}

#[test]
fn decompression_bomb_is_refused_before_decoding() {
    assert_picture_rejected("refused: larger than", |p| {
        std::fs::write(p, png_claiming(100_000, 100_000)).unwrap()
    });
}

#[test]
fn frames_dir_extracts_good_videos_and_lists_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("videos");
    clip(&v.join("good.mp4"), 2, &[]);
    clip(&v.join("good.mkv"), 2, &[]);
    clip(
        &v.join("sub/ten_bit.mkv"),
        2,
        &["-pix_fmt", "yuv420p10le", "-c:v", "libx264"],
    );
    std::fs::write(v.join("zero.mp4"), b"").unwrap();
    std::fs::write(v.join("text.mp4"), b"not a video").unwrap();
    std::fs::write(v.join("noise.mkv"), noise(9000)).unwrap();
    ffmpeg(
        &v.join("audio.mp4"),
        &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"],
    );
    let png = v.join("still.png");
    picture(&png);
    std::fs::rename(&png, v.join("still.mp4")).unwrap();
    let bad = [
        "audio.mp4",
        "noise.mkv",
        "still.mp4",
        "text.mp4",
        "zero.mp4",
    ];

    let o = mimicit(
        dir.path(),
        &[
            "frames", "videos", "--out", "frames", "--width", "16", "--height", "16",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let rejects = read_rejects(&dir.path().join("frames/rejects.parquet"));
    let mut named: Vec<String> = rejects
        .iter()
        .map(|r| {
            assert_eq!(r.stage, "frames", "{r:?}");
            assert!(!r.error.is_empty(), "{r:?}");
            assert!(err.contains(&r.path), "{} not on stderr:\n{err}", r.path);
            Path::new(&r.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    named.sort();
    assert_eq!(named, bad);
    // `good.mp4` and `good.mkv` share a stem: each keeps its own frames.
    for key in ["good.mp4", "good.mkv", "ten_bit"] {
        let frames = frames_of(&dir.path().join("frames"), key);
        assert_eq!(frames.len(), 2, "{key}");
        for f in frames {
            assert!(
                dir.path().join("frames").join(&f.file).is_file(),
                "{}",
                f.file
            );
        }
    }
    if let Some(rows) = pandas_rows(&dir.path().join("frames/rejects.parquet")) {
        for row in &rows {
            assert_valid("rejects.schema.json", row, "frames/rejects.parquet");
        }
    }
}
