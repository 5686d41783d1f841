//! CLIP image features through libtorch (tch). All tch types stay inside this module.
//!
//! - [`clip`]: the CLIP vision tower in tch `nn`, loaded from a Hugging Face checkpoint folder
//!   (`config.json` + `model.safetensors`), or an OpenAI TorchScript `.pt` through `CModule`;
//! - [`preprocess`]: preprocessing identical to `CLIPImageProcessor`;
//! - [`Embedder`]: device and precision choice, batching, and a bounded pipeline in which CPU
//!   threads decode and preprocess the next batches while the model runs on the current one;
//! - [`knn`]: cosine nearest neighbours over the vectors (pairs, in-context examples).
//!
//! Also the device report used by `mimicit doctor`.
//!
//! Everything that needs libtorch sits behind the cargo feature `torch` (on by default). A build
//! without it (`cargo build --release --no-default-features`) does not load libtorch at start
//! (about 0.6 CPU-s and 480 MiB of mappings less per process): for machines that only decode
//! and pack. There [`Embedder::load`] and [`knn::neighbours_at_scale`] fail with an error that
//! says so, and every stage that needs them (features, semantic dedup, pairs, `knn:K` in-context
//! examples) stops with it.

#[cfg(feature = "torch")]
pub mod clip;
#[cfg(feature = "torch")]
pub mod knn;
#[cfg(not(feature = "torch"))]
#[path = "off.rs"]
mod off;
pub mod preprocess;
mod spec;

#[cfg(feature = "torch")]
mod embed;

#[cfg(feature = "torch")]
pub use embed::{embed_items, Embedder};
#[cfg(not(feature = "torch"))]
pub use off::{embed_items, knn, torch_report, Embedder};
pub use spec::{DeviceSpec, EmbedItem, EmbedOptions, Precision};

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

use std::path::{Path, PathBuf};

/// The pictures [`embed_items`] could not read, as rejects of `stage`.
pub fn as_rejects(failed: Vec<(String, String, String)>, stage: &str) -> Vec<crate::model::Reject> {
    failed
        .into_iter()
        .map(|(item, path, error)| crate::model::Reject {
            stage: stage.into(),
            item,
            path,
            error,
        })
        .collect()
}

/// blake3 over the files that make a model (config, preprocessing, weights; or the TorchScript
/// file): what decides its vectors.
///
/// Hashing a large checkpoint takes a second or two, and both the dedup stage (semantic pass)
/// and the features stage ask for it in one run: the result is kept per file set, keyed by path,
/// size and modification time, for the life of the process.
pub fn model_fingerprint(model: &Path) -> crate::error::Result<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let files = model_files(model)?;
    let mut key = String::new();
    for f in &files {
        let meta = std::fs::metadata(f).map_err(|e| crate::error::Error::io(f, e))?;
        key.push_str(&format!(
            "{} {} {:?}\n",
            f.display(),
            meta.len(),
            meta.modified().ok()
        ));
    }
    let done = DONE.get_or_init(Default::default);
    if let Some(hit) = done.lock().expect("not poisoned").get(&key) {
        return Ok(hit.clone());
    }
    let mut h = blake3::Hasher::new();
    for f in files {
        let (n, hash) = crate::manifest::hash_file(&f)?;
        h.update(format!("{n} {hash}\n").as_bytes());
    }
    let hex = h.finalize().to_hex().to_string();
    done.lock().expect("not poisoned").insert(key, hex.clone());
    Ok(hex)
}

/// The safetensors files of a checkpoint folder: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, FeaturesError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| FeaturesError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| FeaturesError::model(&index, format!("not valid JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| FeaturesError::model(&index, "no `weight_map` object"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|f| f.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    Err(FeaturesError::model(
        dir,
        "no model.safetensors (nor model.safetensors.index.json): point --model at a Hugging Face \
         CLIP folder (config.json + model.safetensors), or at an OpenAI TorchScript .pt file",
    ))
}

/// The files that make a model: config, preprocessing and weights, or the TorchScript file.
fn model_files(model: &Path) -> crate::error::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if model.is_dir() {
        for name in ["config.json", "preprocessor_config.json"] {
            if model.join(name).is_file() {
                files.push(model.join(name));
            }
        }
        files.extend(weight_files(model)?);
    } else {
        files.push(model.to_path_buf());
    }
    Ok(files)
}

/// A `.npy` file (format 1.0) of a C-order float32 matrix `rows x cols`.
pub fn npy_f32(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 and ended by a newline.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("preprocessing: {0}")]
    Preprocess(String),
    #[error("{0}")]
    Device(String),
    #[error("libtorch: {0}")]
    Torch(String),
}

impl FeaturesError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        FeaturesError::Io {
            path: path.to_owned(),
            source,
        }
    }
    pub fn model(path: &Path, message: impl Into<String>) -> Self {
        FeaturesError::Model {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(feature = "torch")]
impl From<tch::TchError> for FeaturesError {
    fn from(e: tch::TchError) -> Self {
        FeaturesError::Torch(e.to_string())
    }
}

impl From<FeaturesError> for crate::error::Error {
    fn from(e: FeaturesError) -> Self {
        match e {
            FeaturesError::Io { path, source } => crate::error::Error::Io { path, source },
            other => crate::error::Error::Invalid(other.to_string()),
        }
    }
}

use serde::Serialize;

/// What libtorch sees on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct TorchReport {
    /// Whether this build has libtorch (cargo feature `torch`, on by default).
    pub linked: bool,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    /// The device `--device auto` picks: `cuda:0` or `cpu`.
    pub auto_device: String,
}

#[cfg(feature = "torch")]
pub fn torch_report() -> TorchReport {
    let cuda_available = tch::Cuda::is_available();
    TorchReport {
        linked: true,
        cuda_available,
        cuda_devices: if cuda_available {
            tch::Cuda::device_count()
        } else {
            0
        },
        cudnn_available: cuda_available && tch::Cuda::cudnn_is_available(),
        auto_device: match tch::Device::cuda_if_available() {
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_fingerprint_follows_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"weights one").unwrap();
        let a = super::model_fingerprint(dir.path()).unwrap();
        assert_eq!(a, super::model_fingerprint(dir.path()).unwrap());
        std::fs::write(
            dir.path().join("model.safetensors"),
            b"other weights, longer",
        )
        .unwrap();
        let b = super::model_fingerprint(dir.path()).unwrap();
        assert_ne!(a, b);
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        assert!(super::model_fingerprint(dir.path()).is_err());
    }

    #[cfg(feature = "torch")]
    #[test]
    fn report_is_consistent() {
        let r = super::torch_report();
        assert_eq!(r.cuda_available, r.cuda_devices > 0);
        assert_eq!(r.auto_device == "cpu", !r.cuda_available);
        // A CPU tensor op works: libtorch is linked and loads.
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 6.0);
    }
}
