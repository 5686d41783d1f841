//! `mimicit frames VIDEO_OR_DIR --out DIR`: one-off extraction without a scenario. Frames go to
//! `DIR/{video stem}/{i:06}.{png|jpg}`; `DIR/frames.jsonl` lists them (video, index, time, file);
//! `DIR/rejects.parquet` names every video that could not be decoded, and the others go on.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::{ImageConfig, ImageFormat};
use crate::error::{Error, Result};
use crate::model::Reject;
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
    // One video: decoded outside the rayon pool, so that its decoder gets the pool's threads.
    let results: Vec<std::result::Result<Vec<String>, Reject>> = if videos.len() == 1 {
        videos
            .iter()
            .map(|path| extract_one(req, path, ext))
            .collect()
    } else {
        videos
            .par_iter()
            .map(|path| extract_one(req, path, ext))
            .collect()
    };
    let mut summary = FramesSummary::default();
    let mut lines = String::new();
    for r in results {
        match r {
            Ok(v) => {
                summary.videos += 1;
                summary.frames += v.len() as u64;
                for l in v {
                    lines.push_str(&l);
                    lines.push('\n');
                }
            }
            Err(reject) => summary.rejects.push(reject),
        }
    }
    crate::atomic::write(&req.out.join("frames.jsonl"), lines.as_bytes())?;
    crate::tables::write_rejects(&req.out.join("rejects.parquet"), &summary.rejects)?;
    Ok(summary)
}

fn extract_one(
    req: &FramesRequest,
    path: &Path,
    ext: &str,
) -> std::result::Result<Vec<String>, Reject> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let reject = |error: String| Reject {
        stage: "frames".into(),
        item: stem.clone(),
        path: path.display().to_string(),
        error,
    };
    let mut lines = Vec::new();
    let mut failure = None;
    let mut on_frame = |f: video::SampledFrame| {
        let i = lines.len();
        let file = format!("{stem}/{i:06}.{ext}");
        let written = crate::imaging::resize(&f.image, &req.image)
            .and_then(|img| crate::imaging::encode(&img, &req.image))
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                crate::atomic::write(&req.out.join(&file), &bytes).map_err(|e| e.to_string())
            });
        match written {
            Ok(()) => {
                lines.push(
                    serde_json::json!({"video": path.display().to_string(), "index": i,
                        "time_s": f.time_s, "file": file})
                    .to_string(),
                );
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    video::sample(path, &req.sampling, None, &mut on_frame).map_err(|e| reject(e.to_string()))?;
    if let Some(e) = failure {
        return Err(reject(e));
    }
    Ok(lines)
}
