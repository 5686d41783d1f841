//! The settings of CLIP embedding that exist whether or not libtorch is built in: device and
//! precision choices (parsed from the CLI and scenario files) and the items and options of
//! [`super::embed_items`].

use std::path::PathBuf;
use std::str::FromStr;

/// `auto` (first CUDA device if libtorch sees one, else CPU), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("device `{s}`: expected auto, cpu, cuda or cuda:N")),
        }
    }
}

/// Element type of the model on its device: `auto` is fp32 on CPU and fp16 on CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Auto,
    Fp32,
    Fp16,
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Precision::Auto),
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!(
                "precision `{s}`: expected auto, fp32, fp16 or bf16"
            )),
        }
    }
}

/// One picture to embed.
#[derive(Debug, Clone)]
pub struct EmbedItem {
    pub id: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    pub batch: usize,
    /// L2-normalise each vector.
    pub normalize: bool,
}
