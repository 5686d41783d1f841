//! Helpers shared by the unit tests and the integration tests (not part of the API).

use std::path::Path;

/// Writes `out` with the ffmpeg command line from a lavfi `source` (e.g.
/// `testsrc=duration=6:size=64x48:rate=30`); `args` go between the input and the output.
/// Err when ffmpeg cannot be started (the caller may skip); panics when ffmpeg fails.
pub fn lavfi(out: &Path, source: &str, args: &[&str]) -> std::io::Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let o = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(source)
        .args(args)
        .arg(out)
        .output()?;
    assert!(
        o.status.success(),
        "ffmpeg failed making {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

/// A test-pattern clip of `seconds` (64x48, 30 fps, yuv420p); panics without ffmpeg (which
/// scripts/setup.sh installs).
pub fn test_clip(out: &Path, seconds: u32) {
    let src = format!("testsrc=duration={seconds}:size=64x48:rate=30");
    lavfi(out, &src, &["-pix_fmt", "yuv420p"]).expect("run ffmpeg (installed by scripts/setup.sh)");
}

/// Peak signal-to-noise ratio of `b` against `a` in dB (infinite when equal); they must have the
/// same size.
pub fn psnr(a: &crate::model::RgbFrame, b: &crate::model::RgbFrame) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let se: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}
