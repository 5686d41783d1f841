//! The settings of CLIP embedding that exist whether or not libtorch is built in: device and
//! precision choices (domain types of [`crate::model`], parsed once from the CLI and scenario
//! files) and the items and options of [`super::embed_items`].

use std::path::PathBuf;

pub use crate::model::{DeviceSpec, Precision};

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
