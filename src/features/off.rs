//! The features API in a build without libtorch (cargo feature `torch` off): every entry point
//! that would run a model or a tensor search fails with an error that says why, so a stage that
//! needs one stops cleanly instead of the binary failing to link or start.

use std::path::Path;

use super::preprocess::Preprocess;
use super::{DeviceSpec, EmbedItem, EmbedOptions, FeaturesError, Precision, TorchReport};

fn not_built(what: &str) -> FeaturesError {
    FeaturesError::Device(format!(
        "{what} needs libtorch, and this mimicit was built without it (cargo feature `torch` \
         off, e.g. `--no-default-features`); use a default build for CLIP features, semantic \
         dedup, pairs and knn in-context examples"
    ))
}

/// Never built: [`Embedder::load`] always fails without libtorch.
pub struct Embedder {
    pub description: String,
    never: std::convert::Infallible,
}

impl Embedder {
    pub fn load(
        model: &Path,
        _device: DeviceSpec,
        _precision: Precision,
    ) -> Result<Embedder, FeaturesError> {
        Err(not_built(&format!("loading {}", model.display())))
    }

    pub fn dim(&self) -> usize {
        match self.never {}
    }

    pub fn device(&self) -> String {
        match self.never {}
    }

    pub fn preprocessing(&self) -> &Preprocess {
        match self.never {}
    }
}

pub fn embed_items(
    embedder: &Embedder,
    _items: &[EmbedItem],
    _opts: EmbedOptions,
    _sink: impl FnMut(&[String], &[f32]) -> Result<(), FeaturesError>,
    _progress: impl Fn(u64) + Sync,
) -> Result<Vec<(String, String, String)>, FeaturesError> {
    match embedder.never {}
}

pub fn torch_report() -> TorchReport {
    TorchReport {
        linked: false,
        cuda_available: false,
        cuda_devices: 0,
        cudnn_available: false,
        auto_device: "cpu".into(),
    }
}

pub mod knn {
    use super::{not_built, DeviceSpec, FeaturesError};

    /// One neighbour of a vector.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Neighbour {
        pub index: usize,
        pub cosine: f32,
    }

    pub fn neighbours_at_scale(
        _vectors: &[f32],
        _dim: usize,
        _k: usize,
        _band: (f32, f32),
        _device: DeviceSpec,
    ) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
        Err(not_built("the nearest-neighbour search"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_says_libtorch_is_missing() {
        let said = |e: FeaturesError| {
            let e = e.to_string();
            assert!(e.contains("needs libtorch"), "{e}");
            assert!(e.contains("--no-default-features"), "{e}");
            e
        };
        // Embedder cannot exist here, so an error is the only possible result.
        let Err(e) = Embedder::load(Path::new("clip-vit"), DeviceSpec::Auto, Precision::Auto);
        assert!(said(e).contains("loading clip-vit"));
        let e = knn::neighbours_at_scale(&[1.0, 0.0, 0.0, 1.0], 2, 1, (-1.0, 1.0), DeviceSpec::Cpu)
            .unwrap_err();
        assert!(said(e).contains("nearest-neighbour"));
        let report = torch_report();
        assert!(!report.linked && !report.cuda_available);
        assert_eq!(report.auto_device, "cpu");
    }
}
