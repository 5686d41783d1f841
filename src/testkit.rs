//! Helpers shared by the unit tests and the integration tests (not part of the API).

use std::path::{Path, PathBuf};

/// Where skipped tests are listed: `MIMICIT_SKIP_LOG`, else `target/test-skips.log` in the
/// repository. `make test` empties it first and prints it, counted, at the end.
pub fn skip_log() -> PathBuf {
    std::env::var_os("MIMICIT_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-skips.log"))
}

/// The one way a test that cannot run here stops: `reason` says what is missing (a tool or a
/// Python package that scripts/setup.sh installs). Under `CI=true` that is a failure, never a
/// skip. Elsewhere the test is listed as skipped in [`skip_log`] (which `make test` prints at
/// the end) and on stderr, and the caller returns.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run: {reason} (under CI=true a missing tool is a failure)");
    }
    eprintln!("SKIPPED {test}: {reason}");
    let log = skip_log();
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        // One short write per line, so lines of parallel tests do not interleave.
        let _ = f.write_all(format!("{test}: {}\n", reason.replace('\n', " ")).as_bytes());
    }
}

/// A file or folder of the test data shipped in the repository (`tests/fixtures/`, see its
/// README for provenance). It is part of every clone, so a missing one is a broken checkout and
/// the test fails, naming the path.
pub fn fixture(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    assert!(
        path.exists(),
        "test data {} is missing from the checkout (tests/fixtures/ is part of the repository)",
        path.display()
    );
    path
}

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
