//! The CLIP helper process seen from `mimicit`: found next to the executable, started at the
//! first request that needs a model or a tensor search, and kept for the life of the process
//! (one per process, its models loaded once), so that `mimicit` itself never loads libtorch.
//!
//! [`Embedder`], [`embed_items`], [`knn::neighbours_at_scale`] and [`torch_report`] are the
//! features API the stages and commands use; each turns into requests of [`super::protocol`].

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::preprocess::Preprocess;
use super::protocol::{read_frame, write_frame, Envelope, Reply, Request};
use super::{DeviceSpec, EmbedItem, EmbedOptions, FeaturesError, Precision, TorchReport};

/// File name of the helper executable.
pub const HELPER: &str = "mimicit-clip";
/// Environment variable naming the helper executable to use instead of the one next to mimicit.
pub const HELPER_ENV: &str = "MIMICIT_CLIP_HELPER";

/// CPU seconds used by helpers of this process (ended ones and the current one's last report),
/// as f64 bits.
static HELPER_CPU_BITS: AtomicU64 = AtomicU64::new(0);
/// CPU seconds of helpers that have ended, as f64 bits.
static ENDED_CPU_BITS: AtomicU64 = AtomicU64::new(0);

/// CPU time used so far by this process's CLIP helpers, included in
/// [`crate::cpu_time::process_cpu_s`].
pub fn helper_cpu_s() -> f64 {
    f64::from_bits(HELPER_CPU_BITS.load(Ordering::Relaxed))
}

fn note_cpu(current_helper_s: f64) {
    let ended = f64::from_bits(ENDED_CPU_BITS.load(Ordering::Relaxed));
    HELPER_CPU_BITS.store((ended + current_helper_s).to_bits(), Ordering::Relaxed);
}

/// Where the helper is: `$MIMICIT_CLIP_HELPER`, else `mimicit-clip` in the folder of `exe`
/// (or the folder above, where cargo puts binaries next to its test executables in `deps/`).
pub fn helper_path(exe: &Path, env: Option<PathBuf>) -> Result<PathBuf, FeaturesError> {
    if let Some(p) = env {
        return Ok(p);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut looked = Vec::new();
    let mut dirs = vec![dir];
    if dir.file_name().is_some_and(|n| n == "deps") {
        dirs.extend(dir.parent());
    }
    for d in dirs {
        let candidate = d.join(HELPER);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(FeaturesError::Device(format!(
        "CLIP features, semantic dedup, pairs and knn in-context examples run in the helper \
         `{HELPER}`, the only part of mimicit that loads libtorch, and there is none next to \
         {} (looked for {}). A default build (`cargo build --release`, cargo feature `torch`) \
         makes it beside `mimicit`; a build with `--no-default-features` has none. Copy it \
         next to mimicit, or name it in {HELPER_ENV}.",
        exe.display(),
        looked.join(", ")
    )))
}

struct Helper {
    path: PathBuf,
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    /// Set when the stream broke (the helper died, or said something unreadable): the next
    /// request starts a new helper.
    broken: bool,
    last_cpu_s: f64,
}

impl Helper {
    fn start() -> Result<Helper, FeaturesError> {
        let exe = std::env::current_exe().map_err(|e| FeaturesError::io(Path::new("."), e))?;
        let path = helper_path(&exe, std::env::var_os(HELPER_ENV).map(PathBuf::from))?;
        let level = tracing::level_filters::LevelFilter::current().to_string();
        let threads = rayon::current_num_threads().to_string();
        let mut child = Command::new(&path)
            .args(["serve", "--log", &level, "--threads", &threads])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                FeaturesError::Device(format!(
                    "{}: cannot start the CLIP helper: {e}",
                    path.display()
                ))
            })?;
        let to = BufWriter::new(child.stdin.take().expect("piped"));
        let from = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Helper {
            path,
            child,
            to,
            from,
            broken: false,
            last_cpu_s: 0.0,
        })
    }

    /// The helper stopped answering: its exit status (after a short wait) and path.
    fn died(&mut self, e: std::io::Error) -> FeaturesError {
        self.broken = true;
        let start = std::time::Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if start.elapsed() < std::time::Duration::from_secs(2) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => break None,
            }
        };
        let how = match status {
            Some(s) => format!("it ended ({s})"),
            None => format!("the stream broke ({e})"),
        };
        FeaturesError::Torch(format!(
            "the CLIP helper {} stopped answering: {how}; its messages above on stderr say why",
            self.path.display()
        ))
    }

    fn send(&mut self, req: &Request, values: &[f32]) -> Result<(), FeaturesError> {
        write_frame(&mut self.to, req, values).map_err(|e| self.died(e))
    }

    /// The next reply; an error reply becomes `Err`.
    fn reply(&mut self) -> Result<(Reply, Vec<f32>), FeaturesError> {
        match read_frame::<Envelope>(&mut self.from) {
            Ok(Some((env, values))) => {
                self.last_cpu_s = env.cpu_s;
                note_cpu(env.cpu_s);
                match env.reply {
                    Reply::Error { error } => Err(error.into()),
                    reply => Ok((reply, values)),
                }
            }
            Ok(None) => Err(self.died(std::io::ErrorKind::UnexpectedEof.into())),
            Err(e) => Err(self.died(e)),
        }
    }

    fn unexpected(&mut self, what: &str, got: &Reply) -> FeaturesError {
        self.broken = true;
        FeaturesError::Torch(format!(
            "the CLIP helper {} answered {what} with {got:?}: is it from another mimicit version?",
            self.path.display()
        ))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing its stdin ends the helper; a broken one is killed (and reaped).
        if self.broken {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let ended = f64::from_bits(ENDED_CPU_BITS.load(Ordering::Relaxed)) + self.last_cpu_s;
        ENDED_CPU_BITS.store(ended.to_bits(), Ordering::Relaxed);
    }
}

static HELPER_SLOT: Mutex<Option<Helper>> = Mutex::new(None);

/// Runs `f` with the process's helper, started if there is none (or the last one broke).
fn with_helper<R>(
    f: impl FnOnce(&mut Helper) -> Result<R, FeaturesError>,
) -> Result<R, FeaturesError> {
    let mut slot = HELPER_SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|h| h.broken) {
        *slot = None;
    }
    if slot.is_none() {
        *slot = Some(Helper::start()?);
    }
    let helper = slot.as_mut().expect("started");
    let r = f(helper);
    if helper.broken {
        *slot = None;
    }
    r
}

/// A CLIP image encoder loaded on a device (in the helper process).
pub struct Embedder {
    slot: u64,
    dim: usize,
    device: String,
    pre: Preprocess,
    /// What was loaded, for logs and reports.
    pub description: String,
}

impl Embedder {
    /// Loads `model`: a Hugging Face CLIP folder (config.json + model.safetensors, optionally
    /// preprocessor_config.json) or an OpenAI TorchScript `.pt` file.
    pub fn load(
        model: &Path,
        device: DeviceSpec,
        precision: Precision,
    ) -> Result<Embedder, FeaturesError> {
        // Paths go as they are: the helper runs in this process's working folder.
        let req = Request::Load {
            model: model.to_path_buf(),
            device,
            precision,
        };
        let (slot, dim, input, device, description) = with_helper(|h| {
            h.send(&req, &[])?;
            match h.reply()? {
                (
                    Reply::Loaded {
                        slot,
                        dim,
                        input,
                        device,
                        description,
                    },
                    _,
                ) => Ok((slot, dim, input, device, description)),
                (other, _) => Err(h.unexpected("load", &other)),
            }
        })?;
        Ok(Embedder {
            slot,
            dim,
            device,
            pre: super::preprocessing_for(model, input)?,
            description,
        })
    }

    /// Length of an embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn device(&self) -> String {
        self.device.clone()
    }

    pub fn preprocessing(&self) -> &Preprocess {
        &self.pre
    }

    /// Embeddings of `n` preprocessed pictures given as one channels-first f32 buffer
    /// (`n * 3 * size * size`), returned as f32 whatever the model's precision.
    pub fn embed_pixels(&self, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>, FeaturesError> {
        let req = Request::EmbedPixels { slot: self.slot, n };
        let flat = with_helper(|h| {
            h.send(&req, pixels)?;
            match h.reply()? {
                (Reply::Vectors { rows }, v) if v.len() == rows * self.dim && rows == n => Ok(v),
                (other, _) => Err(h.unexpected("embed_pixels", &other)),
            }
        })?;
        Ok(flat
            .chunks_exact(self.dim.max(1))
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// Embeds `items` in order (the helper decodes and preprocesses on as many threads as the
/// calling rayon pool has, while the model runs), `opts.batch` pictures per model call (a short
/// last batch is padded, so that each vector is the same whichever pictures share its batch).
/// `sink` gets each batch's results in order (ids, row-major vectors) so callers can stream them
/// to disk; pictures that cannot be decoded are skipped and returned as (id, path, error).
pub fn embed_items(
    embedder: &Embedder,
    items: &[EmbedItem],
    opts: EmbedOptions,
    mut sink: impl FnMut(&[String], &[f32]) -> Result<(), FeaturesError>,
    progress: impl Fn(u64) + Sync,
) -> Result<Vec<(String, String, String)>, FeaturesError> {
    let req = Request::EmbedItems {
        slot: embedder.slot,
        items: items
            .iter()
            .map(|i| (i.id.clone(), i.path.clone()))
            .collect(),
        batch: opts.batch.max(1),
        normalize: opts.normalize,
    };
    with_helper(|h| {
        h.send(&req, &[])?;
        loop {
            match h.reply()? {
                (Reply::Batch { ids, count }, v) if v.len() == ids.len() * embedder.dim => {
                    if let Err(e) = sink(&ids, &v) {
                        // The helper goes on sending this request's batches: start afresh.
                        h.broken = true;
                        return Err(e);
                    }
                    progress(count);
                }
                (Reply::Done { failed, reused }, _) => {
                    if reused > 0 {
                        tracing::info!(
                            "{reused} of {} pictures had been embedded before in this run \
                             (semantic dedup): their vectors were not computed again",
                            items.len()
                        );
                    }
                    return Ok(failed);
                }
                (other, _) => return Err(h.unexpected("embed_items", &other)),
            }
        }
    })
}

/// What libtorch sees on this machine (through the helper); `linked: false` where there is no
/// helper to ask, with the reason in the log.
pub fn torch_report() -> TorchReport {
    let asked = with_helper(|h| {
        h.send(&Request::Report, &[])?;
        match h.reply()? {
            (Reply::Report { report }, _) => Ok(report),
            (other, _) => Err(h.unexpected("report", &other)),
        }
    });
    asked.unwrap_or_else(|e| {
        tracing::info!("no libtorch: {e}");
        TorchReport {
            linked: false,
            cuda_available: false,
            cuda_devices: 0,
            cudnn_available: false,
            auto_device: "cpu".into(),
        }
    })
}

pub mod knn {
    //! Cosine nearest neighbours over embedding vectors, on a libtorch device (in the helper).
    //! Exact up to 20,000 vectors, a clustered search beyond (spherical k-means, each vector
    //! searched in its two nearest clusters); ties go to the lower index.

    use super::{with_helper, DeviceSpec, FeaturesError, Reply, Request};

    /// One neighbour of a vector.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Neighbour {
        pub index: usize,
        pub cosine: f32,
    }

    /// For each of the `n = vectors.len() / dim` vectors, its `k` most similar others (cosine,
    /// self excluded), most similar first, keeping only those with `lo <= cosine <= hi`.
    pub fn neighbours_at_scale(
        vectors: &[f32],
        dim: usize,
        k: usize,
        band: (f32, f32),
        device: DeviceSpec,
    ) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
        // Nothing to search starts no helper; the helper checks the shape.
        let n = vectors.len() / dim.max(1);
        if n == 0 || k == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let req = Request::Knn {
            dim,
            k,
            band,
            device,
        };
        let rows = with_helper(|h| {
            h.send(&req, vectors)?;
            match h.reply()? {
                (Reply::Neighbours { rows }, _) if rows.len() == n => Ok(rows),
                (other, _) => Err(h.unexpected("knn", &other)),
            }
        })?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(index, cosine)| Neighbour { index, cosine })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_found_next_to_the_executable_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("mimicit");
        let err = helper_path(&exe, None).unwrap_err().to_string();
        assert!(
            err.contains("mimicit-clip") && err.contains("--no-default-features"),
            "{err}"
        );
        assert!(err.contains(HELPER_ENV), "{err}");
        std::fs::write(dir.path().join(HELPER), b"").unwrap();
        assert_eq!(helper_path(&exe, None).unwrap(), dir.path().join(HELPER));
        // cargo's test executables sit in deps/, the binaries one folder up.
        let deps = dir.path().join("deps");
        std::fs::create_dir(&deps).unwrap();
        assert_eq!(
            helper_path(&deps.join("integration-1234"), None).unwrap(),
            dir.path().join(HELPER)
        );
        let named = PathBuf::from("/opt/clip/mimicit-clip");
        assert_eq!(helper_path(&exe, Some(named.clone())).unwrap(), named);
    }
}
