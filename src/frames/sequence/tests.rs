use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::natural_cmp;
use crate::config::ImageConfig;
use crate::frames::{extract, extract_source, FramesRequest, Source, Written};
use crate::video::Sampling;

/// Writes `n` pictures `{i:06}.{jpg|png}` (alternating) into `dir`, picture i a flat grey of
/// level `10 + 20 i` (so that a frame tells which picture it came from), and returns them.
fn sequence(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let ext = if i % 2 == 0 { "jpg" } else { "png" };
            let path = dir.join(format!("{i:06}.{ext}"));
            picture(&path, (10 + 20 * i) as u8);
            path
        })
        .collect()
}

fn picture(path: &Path, level: u8) {
    image::RgbImage::from_pixel(48, 36, image::Rgb([level, level, level]))
        .save(path)
        .unwrap();
}

fn request(input: &Path, out: &Path, sampling: Sampling) -> FramesRequest {
    FramesRequest {
        input: input.to_path_buf(),
        out: out.to_path_buf(),
        sampling,
        image: ImageConfig {
            width: 32,
            height: 24,
            ..Default::default()
        },
        sequence_fps: 3.0,
    }
}

/// Runs one sequence; returns the picture index of each written frame and the rejects' paths.
fn run(dir: &Path, pictures: &[PathBuf], sampling: Sampling) -> (Vec<usize>, Vec<PathBuf>) {
    let out = tempfile::tempdir().unwrap();
    let req = request(dir, out.path(), sampling);
    let source = Source::Sequence {
        dir: dir.to_path_buf(),
        pictures: pictures.to_vec(),
    };
    let (written, rejects) = extract_source(&req, &source, "seq", "png").unwrap();
    for (i, w) in written.iter().enumerate() {
        assert_eq!(
            w.record.index as usize, i,
            "kept frames are numbered without a gap"
        );
        assert_eq!(w.record.file, format!("seq/{i:06}.png"));
        assert!(out.path().join(&w.record.file).is_file());
        assert_eq!((w.record.width, w.record.height), (32, 24));
    }
    let indices = written.iter().map(|w| index_of(pictures, w)).collect();
    for (w, &p) in written.iter().zip(&indices) {
        assert_eq!(w.record.time_s, Some(p as f64 / 3.0));
    }
    (
        indices,
        rejects.into_iter().map(|r| r.path.into()).collect(),
    )
}

fn index_of(pictures: &[PathBuf], w: &Written) -> usize {
    let picture = w
        .picture
        .as_ref()
        .expect("a sequence frame names its picture");
    pictures.iter().position(|p| p == picture).unwrap()
}

#[test]
fn fps_uniform_at_and_stride_pick_exact_pictures() {
    let dir = tempfile::tempdir().unwrap();
    // 10 pictures at 3 fps: 0, 0.33, ..., 3.0 s; the sequence lasts 3.33 s.
    let pictures = sequence(dir.path(), 10);
    let d = dir.path();
    assert_eq!(run(d, &pictures, Sampling::Fps(1.0)).0, [0, 3, 6, 9]);
    // Targets (i + 0.5) * 3.33 / 4 s = 0.42, 1.25, 2.08, 2.92 s: pictures 1.25, 3.75, 6.25, 8.75.
    assert_eq!(run(d, &pictures, Sampling::Uniform(4)).0, [1, 4, 6, 9]);
    // 0.4 s -> picture 1.2; 2 s -> picture 6; past the end -> the last picture.
    assert_eq!(
        run(d, &pictures, Sampling::At(vec![99.0, 0.4, 2.0])).0,
        [1, 6, 9]
    );
    assert_eq!(
        run(d, &pictures, Sampling::LegacyStride(1.0)).0,
        [0, 3, 6, 9]
    );
    assert_eq!(
        run(d, &pictures, Sampling::All).0,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        run(d, &pictures, Sampling::KeyframesOnly).0,
        (0..10).collect::<Vec<_>>(),
        "every picture is a keyframe"
    );
}

#[test]
fn pictures_not_chosen_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let pictures = sequence(dir.path(), 10);
    // Every picture --fps 1 does not want is garbage: none of them may be decoded.
    for (i, p) in pictures.iter().enumerate() {
        if i % 3 != 0 {
            std::fs::write(p, b"not a picture").unwrap();
        }
    }
    let (kept, rejects) = run(dir.path(), &pictures, Sampling::Fps(1.0));
    assert_eq!(kept, [0, 3, 6, 9]);
    assert!(rejects.is_empty(), "{rejects:?}");
}

#[test]
fn a_broken_picture_is_rejected_and_the_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pictures = sequence(dir.path(), 10);
    std::fs::write(&pictures[3], b"\xff\xd8\xff broken jpeg").unwrap();
    std::fs::write(&pictures[9], b"").unwrap();
    let (kept, rejects) = run(dir.path(), &pictures, Sampling::Fps(1.0));
    assert_eq!(kept, [0, 6]);
    assert_eq!(rejects, [pictures[3].clone(), pictures[9].clone()]);

    // Through `frames`: the rejects name the files, the folder keeps its frames.
    let out = tempfile::tempdir().unwrap();
    let summary = extract(&request(dir.path(), out.path(), Sampling::Fps(1.0))).unwrap();
    assert_eq!((summary.sequences, summary.frames), (1, 2));
    assert_eq!(summary.rejects.len(), 2);
    for (r, p) in summary.rejects.iter().zip([&pictures[3], &pictures[9]]) {
        assert_eq!(r.path, p.display().to_string());
        assert!(r.error.contains(&r.path), "{}", r.error);
        assert_eq!(r.stage, "frames");
    }
}

#[test]
fn scene_cuts_judge_every_picture() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    // Dark, light, dark: shots start at pictures 0, 4 and 8.
    let pictures: Vec<PathBuf> = (0..12)
        .map(|i| {
            let path = dir.path().join(format!("{i}.png"));
            picture(&path, if (4..8).contains(&i) { 230 } else { 20 });
            path
        })
        .collect();
    let sampling = Sampling::SceneCuts {
        threshold: 0.5,
        min_shot_s: 0.0,
    };
    assert_eq!(run(dir.path(), &pictures, sampling.clone()).0, [0, 4, 8]);
    // A picture that cannot be read is no frame: the cut moves to the next one.
    std::fs::write(&pictures[4], b"garbage").unwrap();
    let (kept, rejects) = run(dir.path(), &pictures, sampling);
    assert_eq!(kept, [0, 5, 8]);
    assert_eq!(rejects, [pictures[4].clone()]);
}

#[test]
fn folders_of_pictures_are_sequences_next_to_videos() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    // ScanNet-like names: 10.jpg comes after 9.jpg.
    let scan = input.join("scene0000_00/color");
    std::fs::create_dir_all(&scan).unwrap();
    for i in [0, 1, 2, 9, 10, 11] {
        picture(&scan.join(format!("{i}.jpg")), 10 * i as u8);
    }
    let tvqa = input.join("s01e01");
    sequence(&tvqa, 3);
    std::fs::write(input.join("clip.mp4"), b"not really a video").unwrap();
    std::fs::write(tvqa.join("notes.txt"), b"ignored").unwrap();
    let sources = super::super::list_sources(&input).unwrap();
    let names = |s: &Source| match s {
        Source::Video(p) => vec![p.strip_prefix(&input).unwrap().to_path_buf()],
        Source::Sequence { pictures, .. } => pictures
            .iter()
            .map(|p| p.strip_prefix(&input).unwrap().to_path_buf())
            .collect(),
    };
    let listed: Vec<Vec<PathBuf>> = sources.iter().map(names).collect();
    let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
    assert_eq!(
        listed,
        [
            paths(&["clip.mp4"]),
            paths(&[
                "s01e01/000000.jpg",
                "s01e01/000001.png",
                "s01e01/000002.jpg"
            ]),
            paths(&[
                "scene0000_00/color/0.jpg",
                "scene0000_00/color/1.jpg",
                "scene0000_00/color/2.jpg",
                "scene0000_00/color/9.jpg",
                "scene0000_00/color/10.jpg",
                "scene0000_00/color/11.jpg"
            ]),
        ]
    );
    assert_eq!(
        super::super::unit_keys(&input, &sources),
        ["clip", "s01e01", "scene0000_00_color"]
    );
    // The input folder itself holding pictures: the key is its name.
    let only = super::super::list_sources(&tvqa).unwrap();
    assert_eq!(super::super::unit_keys(&tvqa, &only), ["s01e01"]);
}

#[test]
fn sequence_and_video_keys_never_collide() {
    let input = Path::new("/in");
    let sources = vec![
        Source::Sequence {
            dir: "/in/a/b".into(),
            pictures: vec!["/in/a/b/0.jpg".into()],
        },
        Source::Video("/in/a_b.mp4".into()),
        Source::Video("/in/x/b.mp4".into()),
    ];
    assert_eq!(
        super::super::unit_keys(input, &sources),
        ["a_b", "a_b.mp4", "b"]
    );
    let sources = vec![
        Source::Sequence {
            dir: "/in/a/b".into(),
            pictures: vec!["/in/a/b/0.jpg".into()],
        },
        Source::Sequence {
            dir: "/in/a_b".into(),
            pictures: vec!["/in/a_b/0.jpg".into()],
        },
    ];
    assert_eq!(super::super::unit_keys(input, &sources), ["a_b", "a_b~2"]);
}

#[test]
fn natural_order_compares_numbers_by_value() {
    let mut names = vec![
        "10.jpg",
        "9.jpg",
        "0.jpg",
        "frame_2.png",
        "frame_10.png",
        "01.jpg",
        "1.jpg",
        "a.jpg",
        "00010.jpg",
        "00009.jpg",
    ];
    names.sort_by(|a, b| natural_cmp(a.as_bytes(), b.as_bytes()));
    assert_eq!(
        names,
        [
            "0.jpg",
            "01.jpg",
            "1.jpg",
            "00009.jpg",
            "9.jpg",
            "00010.jpg",
            "10.jpg",
            "a.jpg",
            "frame_2.png",
            "frame_10.png"
        ]
    );
    assert_eq!(natural_cmp(b"x", b"x"), Ordering::Equal);
}
