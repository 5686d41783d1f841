//! CLIP image features. libtorch runs in a helper process, `mimicit-clip` (src/bin/mimicit-clip),
//! the only executable that loads it; `mimicit` starts it at the first request that needs a model
//! or a tensor search and keeps it for the life of the process. So every command and stage that
//! does not embed (scan, frames, keyframes, exact and near dedup, metadata, pack, syphus) starts as
//! light as a build without libtorch (about 0.6 CPU-s and 480 MiB of mappings less per process),
//! and one build serves every worker.
//!
//! - [`Embedder`], [`embed_items`], [`knn`], [`torch_report`]: the API the stages use, as
//!   requests to the helper ([`protocol`]); the helper decodes and preprocesses pictures on CPU
//!   threads while the model runs, and sends back only vectors;
//! - [`preprocess`]: preprocessing identical to `CLIPImageProcessor` (used by the helper);
//! - model fingerprints, the weight files of a checkpoint, `.npy` output.
//!
//! A build without the cargo feature `torch` (`--no-default-features`) has no helper: there
//! [`Embedder::load`] and [`knn::neighbours_at_scale`] fail with an error that says so, and every
//! stage that needs them (features, semantic dedup, pairs, `knn:K` in-context examples) stops
//! with it.

mod helper;
pub mod preprocess;
pub mod protocol;
mod spec;

pub use helper::{embed_items, helper_cpu_s, knn, torch_report, Embedder, HELPER, HELPER_ENV};
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

/// The preprocessing of `model` (a Hugging Face folder or a TorchScript file) for pictures of
/// `input` x `input`: its `preprocessor_config.json` where it has one, CLIP's otherwise.
pub fn preprocessing_for(
    model: &Path,
    input: u32,
) -> Result<preprocess::Preprocess, FeaturesError> {
    let pre_path = model.join("preprocessor_config.json");
    if model.is_dir() && pre_path.is_file() {
        preprocess::Preprocess::from_hf_json(&pre_path, input)
    } else {
        Ok(preprocess::Preprocess::clip(input))
    }
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

impl From<FeaturesError> for crate::error::Error {
    fn from(e: FeaturesError) -> Self {
        match e {
            FeaturesError::Io { path, source } => crate::error::Error::Io { path, source },
            other => crate::error::Error::Invalid(other.to_string()),
        }
    }
}

use serde::{Deserialize, Serialize};

/// What libtorch sees on this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchReport {
    /// Whether libtorch is at hand: the CLIP helper `mimicit-clip` was found and started.
    pub linked: bool,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    /// The device `--device auto` picks: `cuda:0` or `cpu`.
    pub auto_device: String,
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
}
