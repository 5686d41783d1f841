//! `mimicit frames VIDEO_OR_DIR --out DIR`: one-off extraction without a scenario. Frames go to
//! `DIR/{key}/{i:06}.{png|jpg}` where the key is the video's stem (its relative path, with `/`
//! as `_`, when two videos share a stem); `DIR/frames.parquet` lists them in the keyframes
//! stage's table shape (image id `{key}_{i:06}`, unit = key) and `DIR/frames.jsonl` as JSON lines
//! (video, index, time, file); `DIR/rejects.parquet` names every video that could not be
//! decoded, and the others go on.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::{ImageConfig, ImageFormat};
use crate::error::{Error, Result};
use crate::model::{FrameRecord, Reject};
use crate::video::{self, Sampling};

pub struct FramesRequest {
    pub input: PathBuf,
    pub out: PathBuf,
    pub sampling: Sampling,
    pub image: ImageConfig,
}

#[derive(Debug, Default)]
pub struct FramesSummary {
    pub videos: u64,
    pub frames: u64,
    pub rejects: Vec<Reject>,
}

pub fn extract(req: &FramesRequest) -> Result<FramesSummary> {
    let videos: Vec<PathBuf> = if req.input.is_dir() {
        crate::corpus::list_files(&req.input)?
            .into_iter()
            .map(|(rel, _)| req.input.join(rel))
            .filter(|p| {
                p.extension()
                    .map(|e| {
                        crate::corpus::VIDEO_EXTENSIONS
                            .contains(&e.to_string_lossy().to_lowercase().as_str())
                    })
                    .unwrap_or(false)
            })
            .collect()
    } else if req.input.is_file() {
        vec![req.input.clone()]
    } else {
        return Err(Error::io(
            &req.input,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    };
    let ext = match req.image.format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpg",
    };
    let keys = video_keys(&req.input, &videos);
    let jobs: Vec<(&PathBuf, &String)> = videos.iter().zip(&keys).collect();
    let watchdog = crate::watchdog::Watchdog::start("frames", crate::watchdog::DEFAULT_AFTER);
    let one = |(path, key): &(&PathBuf, &String)| {
        let _running = watchdog.track(&path.display().to_string());
        extract_one(req, path, key, ext)
    };
    // One video: decoded outside the rayon pool, so that its decoder gets the pool's threads.
    let results: Vec<std::result::Result<Vec<FrameRecord>, Reject>> = if videos.len() == 1 {
        jobs.iter().map(one).collect()
    } else {
        jobs.par_iter().map(one).collect()
    };
    drop(watchdog);
    let mut summary = FramesSummary::default();
    let mut lines = String::new();
    let mut records = Vec::new();
    for (r, path) in results.into_iter().zip(&videos) {
        match r {
            Ok(v) => {
                summary.videos += 1;
                summary.frames += v.len() as u64;
                for f in &v {
                    let line = serde_json::json!({"video": path.display().to_string(),
                        "index": f.index, "time_s": f.time_s, "file": f.file});
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                }
                records.extend(v);
            }
            Err(reject) => summary.rejects.push(reject),
        }
    }
    crate::atomic::write(&req.out.join("frames.jsonl"), lines.as_bytes())?;
    crate::tables::write_frames(&req.out.join("frames.parquet"), &records)?;
    crate::tables::write_rejects(&req.out.join("rejects.parquet"), &summary.rejects)?;
    Ok(summary)
}

/// The folder name of each video's frames: its stem; when another video has the same stem, its
/// path relative to the input without the extension, separators as `_`; when that is shared too
/// (`clip.mp4` and `clip.mkv`), with the extension; and when even that is shared (`a/b.mp4` and
/// `a_b.mp4`), with `~{n}` added in path order. No video overwrites another's frames.
fn video_keys(input: &Path, videos: &[PathBuf]) -> Vec<String> {
    let rel = |p: &PathBuf| p.strip_prefix(input).unwrap_or(p).to_path_buf();
    let flat = |p: &Path| p.to_string_lossy().replace(['/', '\\'], "_");
    let levels: [&dyn Fn(&PathBuf) -> String; 3] = [
        &|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "video".into())
        },
        &|p| flat(&rel(p).with_extension("")),
        &|p| flat(&rel(p)),
    ];
    let shared = |keys: &[String]| -> Vec<bool> {
        let mut count = std::collections::BTreeMap::new();
        for k in keys {
            *count.entry(k.clone()).or_insert(0) += 1;
        }
        keys.iter().map(|k| count[k] > 1).collect()
    };
    let mut keys: Vec<String> = videos.iter().map(levels[0]).collect();
    for level in &levels[1..] {
        for (i, clash) in shared(&keys).into_iter().enumerate() {
            if clash {
                keys[i] = level(&videos[i]);
            }
        }
    }
    let mut taken: std::collections::BTreeSet<String> = keys.iter().cloned().collect();
    let mut seen = std::collections::BTreeSet::new();
    for key in keys.iter_mut() {
        if !seen.insert(key.clone()) {
            let mut n = 2;
            while taken.contains(&format!("{key}~{n}")) {
                n += 1;
            }
            *key = format!("{key}~{n}");
            taken.insert(key.clone());
        }
    }
    keys
}

fn extract_one(
    req: &FramesRequest,
    path: &Path,
    key: &str,
    ext: &str,
) -> std::result::Result<Vec<FrameRecord>, Reject> {
    let reject = |error: String| Reject {
        stage: "frames".into(),
        item: key.to_string(),
        path: path.display().to_string(),
        error,
    };
    let mut records = Vec::new();
    let mut failure = None;
    let mut on_frame = |f: video::SampledFrame| {
        let i = records.len();
        let file = format!("{key}/{i:06}.{ext}");
        let written = crate::imaging::resize(&f.image, &req.image)
            .and_then(|img| {
                let bytes = crate::imaging::encode(&img, &req.image)?;
                Ok((img, bytes))
            })
            .map_err(|e| e.to_string())
            .and_then(|(img, bytes)| {
                crate::atomic::write(&req.out.join(&file), &bytes)
                    .map(|()| (img, bytes.len() as u64))
                    .map_err(|e| e.to_string())
            });
        match written {
            Ok((img, bytes)) => {
                records.push(FrameRecord {
                    image_id: format!("{key}_{i:06}"),
                    unit_id: key.to_string(),
                    index: i as u32,
                    time_s: Some(f.time_s),
                    width: img.width,
                    height: img.height,
                    pixel_hash: crate::imaging::pixel_hash(&img),
                    file,
                    bytes,
                });
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    let info = video::sample(path, &req.sampling, None, &mut on_frame)
        .map_err(|e| reject(e.to_string()))?;
    if let Some(e) = failure {
        return Err(reject(e));
    }
    if info.decode_errors > 0 {
        tracing::warn!(
            "{}: {} decoder errors (frames around them skipped)",
            path.display(),
            info.decode_errors
        );
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn keys_never_collide() {
        let input = Path::new("/in");
        let videos: Vec<PathBuf> = [
            "/in/a.mp4",
            "/in/c.mkv",
            "/in/c.mp4",
            "/in/x/b.mp4",
            "/in/x_b.mp4",
            "/in/y/b.mp4",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let keys = super::video_keys(input, &videos);
        assert_eq!(
            keys,
            ["a", "c.mkv", "c.mp4", "x_b.mp4", "x_b.mp4~2", "y_b"],
            "{keys:?}"
        );
    }
}
