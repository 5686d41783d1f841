//! CLIP image features through libtorch (tch). All tch types stay inside this module.
//!
//! Built so far: the device report used by `mimicit doctor` (which libtorch the binary runs,
//! whether CUDA registered). The CLIP vision tower and the `features` stage are not built yet.

use serde::Serialize;

/// What libtorch sees on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct TorchReport {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    /// The device `--device auto` picks: `cuda:0` or `cpu`.
    pub auto_device: String,
}

pub fn torch_report() -> TorchReport {
    let cuda_available = tch::Cuda::is_available();
    TorchReport {
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
    fn report_is_consistent() {
        let r = super::torch_report();
        assert_eq!(r.cuda_available, r.cuda_devices > 0);
        assert_eq!(r.auto_device == "cpu", !r.cuda_available);
        // A CPU tensor op works: libtorch is linked and loads.
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 6.0);
    }
}
