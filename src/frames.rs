//! `mimicit frames VIDEO_OR_DIR --out DIR`: one-off extraction without a scenario. Frames go to
//! `DIR/{key}/{i:06}.{png|jpg}` where the key is the video's stem (its relative path, with `/`
//! as `_`, when two videos share a stem); `DIR/frames.parquet` lists them in the keyframes
//! stage's table shape (image id `{key}_{i:06}`, unit = key) and `DIR/frames.jsonl` as JSON lines
//! (video, index, time, file); `DIR/rejects.parquet` names every video that could not be
//! decoded, and the others go on.
//!
//! Image sequences: in a folder input, every folder that directly holds pictures (`.jpg`,
//! `.jpeg`, `.png`: TVQA's 3 fps frame folders, ScanNet's `color/`) is one sequence, whatever
//! else it holds (its videos are videos as usual). Its pictures, in natural name order, are
//! frames at `i / sequence_fps` seconds and go through the same sampling, resizing and naming as
//! video frames; its key is the folder's path relative to the input with `/` as `_` (see
//! `frames/sequence.rs`).
//!
//! Videos and sequences are sampled by [`video::sample_into`], the loop the keyframes stage
//! uses too.

mod sequence;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::{ImageConfig, ImageFormat};
use crate::error::{Error, Result};
use crate::model::{FrameRecord, Reject};
use crate::video::{self, Prepared, Sampling};

pub struct FramesRequest {
    pub input: PathBuf,
    pub out: PathBuf,
    pub sampling: Sampling,
    pub image: ImageConfig,
    /// Frame rate of image sequences: picture i of a folder is at `i / sequence_fps` seconds.
    pub sequence_fps: f64,
}

#[derive(Debug, Default)]
pub struct FramesSummary {
    pub videos: u64,
    /// Image sequences (folders of pictures) that gave frames or rejects.
    pub sequences: u64,
    pub frames: u64,
    pub rejects: Vec<Reject>,
}

/// One unit of input.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Video(PathBuf),
    /// A folder's pictures, in natural name order ([`sequence::natural_cmp`]).
    Sequence {
        dir: PathBuf,
        pictures: Vec<PathBuf>,
    },
}

impl Source {
    /// The video file, or the sequence's folder.
    fn path(&self) -> &Path {
        match self {
            Source::Video(p) => p,
            Source::Sequence { dir, .. } => dir,
        }
    }
}

/// A frame written to DIR, with the picture it came from (image sequences).
struct Written {
    record: FrameRecord,
    picture: Option<PathBuf>,
}

/// What one source gave: its frames and the pictures that could not be read; or, when nothing
/// of it could be used, why.
type Extracted = std::result::Result<(Vec<Written>, Vec<Reject>), Reject>;

pub fn extract(req: &FramesRequest) -> Result<FramesSummary> {
    if !(req.sequence_fps.is_finite() && req.sequence_fps > 0.0) {
        return Err(Error::Invalid(format!(
            "the frame rate of image sequences must be above 0, got {}",
            req.sequence_fps
        )));
    }
    let sources = list_sources(&req.input)?;
    let ext = match req.image.format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpg",
    };
    let keys = unit_keys(&req.input, &sources);
    let jobs: Vec<(&Source, &String)> = sources.iter().zip(&keys).collect();
    let watchdog = crate::watchdog::Watchdog::start("frames", crate::watchdog::DEFAULT_AFTER);
    let one = |(source, key): &(&Source, &String)| -> Extracted {
        let _running = watchdog.track(&source.path().display().to_string());
        extract_source(req, source, key, ext)
    };
    // One source: run outside the rayon pool, so that a video's decoder gets the pool's threads.
    let results: Vec<Extracted> = if jobs.len() == 1 {
        jobs.iter().map(one).collect()
    } else {
        jobs.par_iter().map(one).collect()
    };
    drop(watchdog);
    let mut summary = FramesSummary::default();
    let mut lines = String::new();
    let mut records = Vec::new();
    for (r, source) in results.into_iter().zip(&sources) {
        match r {
            Ok((written, rejects)) => {
                match source {
                    Source::Video(_) => summary.videos += 1,
                    Source::Sequence { .. } => summary.sequences += 1,
                }
                summary.frames += written.len() as u64;
                for w in written {
                    let f = &w.record;
                    let mut line = serde_json::json!({"video": source.path().display().to_string(),
                        "index": f.index, "time_s": f.time_s, "file": f.file});
                    if let Some(picture) = &w.picture {
                        line["picture"] = picture.display().to_string().into();
                    }
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                    records.push(w.record);
                }
                summary.rejects.extend(rejects);
            }
            Err(reject) => summary.rejects.push(reject),
        }
    }
    // The frame files were written without fsyncs: they are made durable before the tables
    // that list them.
    crate::atomic::sync_files(&req.out, records.iter().map(|r| r.file.as_str()))?;
    crate::atomic::write(&req.out.join("frames.jsonl"), lines.as_bytes())?;
    crate::tables::write_frames(&req.out.join("frames.parquet"), &records)?;
    crate::tables::write_rejects(&req.out.join("rejects.parquet"), &summary.rejects)?;
    Ok(summary)
}

fn file_name(path: &Path) -> &[u8] {
    path.file_name().unwrap_or_default().as_encoded_bytes()
}

fn is_video(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        crate::corpus::VIDEO_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
    })
}

/// The videos and image sequences of the input, in path order (a sequence by its folder).
fn list_sources(input: &Path) -> Result<Vec<Source>> {
    if input.is_file() {
        return Ok(vec![Source::Video(input.to_path_buf())]);
    }
    if !input.is_dir() {
        return Err(Error::io(
            input,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let mut sources = Vec::new();
    let mut folders: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for (rel, _) in crate::corpus::list_media(input)? {
        let path = input.join(&rel);
        if is_video(&path) {
            sources.push(Source::Video(path));
        } else if crate::corpus::is_image(&path) {
            let dir = path.parent().unwrap_or(input).to_path_buf();
            folders.entry(dir).or_default().push(path);
        }
    }
    for (dir, mut pictures) in folders {
        pictures.sort_by(|a, b| sequence::natural_cmp(file_name(a), file_name(b)));
        sources.push(Source::Sequence { dir, pictures });
    }
    sources.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(sources)
}

/// The folder name of each source's frames. A video's: its stem; when another source has the
/// same key, its path relative to the input without the extension, separators as `_`; when that
/// is shared too (`clip.mp4` and `clip.mkv`), with the extension. An image sequence's: its
/// folder relative to the input, separators as `_` (the input's own name when the input folder
/// itself holds the pictures). When even that is shared (`a/b.mp4` and `a_b.mp4`, or the folder
/// `a/b` and `a_b.mp4`), `~{n}` is added in path order. No source overwrites another's frames.
fn unit_keys(input: &Path, sources: &[Source]) -> Vec<String> {
    let rel = |p: &Path| p.strip_prefix(input).unwrap_or(p).to_path_buf();
    let flat = |p: &Path| p.to_string_lossy().replace(['/', '\\'], "_");
    let sequence_key = |dir: &Path| {
        let r = rel(dir);
        if !r.as_os_str().is_empty() {
            return flat(&r);
        }
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        name(dir)
            .or_else(|| dir.canonicalize().ok().as_deref().and_then(name))
            .unwrap_or_else(|| "sequence".into())
    };
    let key_at = |level: usize, source: &Source| -> String {
        match source {
            Source::Sequence { dir, .. } => sequence_key(dir),
            Source::Video(p) => match level {
                0 => p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "video".into()),
                1 => flat(&rel(p).with_extension("")),
                _ => flat(&rel(p)),
            },
        }
    };
    let shared = |keys: &[String]| -> Vec<bool> {
        let mut count = std::collections::BTreeMap::new();
        for k in keys {
            *count.entry(k.clone()).or_insert(0) += 1;
        }
        keys.iter().map(|k| count[k] > 1).collect()
    };
    let mut keys: Vec<String> = sources.iter().map(|s| key_at(0, s)).collect();
    for level in 1..3 {
        for (i, clash) in shared(&keys).into_iter().enumerate() {
            if clash {
                keys[i] = key_at(level, &sources[i]);
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

/// Writes the `i`-th kept frame of `key` as `DIR/{key}/{i:06}.{ext}`; errors name that file.
fn store(
    req: &FramesRequest,
    key: &str,
    ext: &str,
    i: usize,
    time_s: f64,
    frame: Prepared,
) -> std::result::Result<FrameRecord, String> {
    let file = format!("{key}/{i:06}.{ext}");
    crate::atomic::write_unsynced(&req.out.join(&file), &frame.bytes).map_err(|e| e.to_string())?;
    Ok(FrameRecord {
        image_id: format!("{key}_{i:06}"),
        unit_id: key.to_string(),
        index: i as u32,
        time_s: Some(time_s),
        width: frame.width,
        height: frame.height,
        pixel_hash: frame.pixel_hash,
        file,
        bytes: frame.bytes.len() as u64,
    })
}

/// Samples one source ([`video::sample_into`]) and writes its kept frames under the next
/// indices of `key` (a batch in parallel). A sequence's pictures that could not be used are
/// rejects naming the picture; a frame that could not be written loses the whole source.
fn extract_source(req: &FramesRequest, source: &Source, key: &str, ext: &str) -> Extracted {
    let whole = |error: String| Reject {
        stage: "frames".into(),
        item: key.to_string(),
        path: source.path().display().to_string(),
        error,
    };
    let whole_file = [None];
    let (from, pictures) = match source {
        Source::Video(path) => (
            video::Source::Video {
                path,
                spans: &whole_file,
            },
            &[][..],
        ),
        Source::Sequence { dir, pictures } => (
            video::Source::Sequence {
                dir,
                pictures,
                fps: req.sequence_fps,
            },
            &pictures[..],
        ),
    };
    let policy = video::Policy {
        sampling: &req.sampling,
        image: &req.image,
        max_frames: 0,
        letterbox: None,
    };
    let mut written: Vec<Written> = Vec::new();
    let mut sink = |batch: Vec<video::KeptFrame>| -> std::result::Result<(), String> {
        let first = written.len();
        let stored: Vec<std::result::Result<Written, String>> = batch
            .into_par_iter()
            .enumerate()
            .map(|(n, f)| {
                store(req, key, ext, first + n, f.time_s, f.frame).map(|record| Written {
                    record,
                    picture: f.picture.map(|p| pictures[p].clone()),
                })
            })
            .collect();
        for w in stored {
            written.push(w?);
        }
        Ok(())
    };
    let skipped = video::sample_into(&from, &policy, &mut sink).map_err(|e| match e {
        video::SampleError::Source(m) | video::SampleError::Sink(m) => whole(m),
    })?;
    let rejects = skipped
        .into_iter()
        .map(|s| {
            let shown = pictures[s.picture].display().to_string();
            let error = if s.error.contains(&shown) {
                s.error
            } else {
                format!("{shown}: {}", s.error)
            };
            Reject {
                stage: "frames".into(),
                item: key.to_string(),
                path: shown,
                error,
            }
        })
        .collect();
    Ok((written, rejects))
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
        let sources: Vec<super::Source> = videos.into_iter().map(super::Source::Video).collect();
        let keys = super::unit_keys(input, &sources);
        assert_eq!(
            keys,
            ["a", "c.mkv", "c.mp4", "x_b.mp4", "x_b.mp4~2", "y_b"],
            "{keys:?}"
        );
    }
}
