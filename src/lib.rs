//! mimicit turns raw vision corpora into MIMIC-IT training data.
//!
//! A run of one scenario goes through stages; each reads the previous stages' tables from
//! `OUT/{CODE}/`, writes its own atomically and records itself in `OUT/manifest.json`, so a run
//! that stops half way continues where it stopped. Each stage is one file of [`stages`] with one
//! implementation of [`stages::Stage`]; [`stages::StageId`] lists them in run order:
//!
//! 1. **scan** ([`stages::scan`], adapters in [`corpus`]): the visual units, their media and
//!    annotations (`units.parquet`, `media.parquet`, `annotations.parquet`);
//! 2. **keyframes** ([`stages::keyframes`], over [`video`] and [`imaging`]): decode, sample,
//!    resize and store the frames of every unit (`frames/`, `frames.parquet`);
//! 3. **dedup** ([`stages::dedup`], [`dedup`]): exact, perceptual and semantic duplicates and the
//!    quality filters, with a remap to the kept frame (`dedup.parquet`);
//! 4. **features** ([`stages::features`], [`features`]): CLIP image features via libtorch, on
//!    CUDA when present;
//! 5. **metadata** ([`stages::metadata`]): the exact files the Syphus instruction generator
//!    reads (`syphus/`);
//! 6. **pack** ([`stages::pack`], [`shards`]): trainer-ready shards (Otter's parquet,
//!    instructions and train files, WebDataset, Hugging Face `datasets`, LLaVA, ShareGPT),
//!    `data.yaml`.
//!
//! [`pipeline`] runs them, naming none: it owns the manifest ([`manifest`]), rejects and
//! timings. [`config`] parses a scenario once into typed settings; [`model`] holds the domain
//! types every module shares.
//!
//! `verify` re-hashes every output against the manifest; `report` renders a run as HTML.
//!
//! Split over many machines, `--partition i/N` runs the per-unit stages on one share of the
//! units ([`partition`]) and `merge` joins the shares and runs the whole-corpus steps
//! ([`merge`]), giving the bytes of a single run.

// Unsafe code only where FFI lives (FFmpeg, sync_file_range, getrusage, the lock's host and pid checks),
// each module allowing it for itself and each block with its SAFETY note.
#![deny(unsafe_code)]

#[allow(unsafe_code)] // FFI: see the SAFETY notes in the module
pub mod atomic;
pub mod config;
pub mod corpus;
#[allow(unsafe_code)] // FFI: see the SAFETY notes in the module
pub mod cpu_time;
pub mod dedup;
pub mod error;
pub mod faults;
pub mod features;
pub mod frames;
pub mod gc;
pub mod hashing;
pub mod imaging;
pub mod journal;
#[allow(unsafe_code)] // FFI: see the SAFETY notes in the module
pub mod lock;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod partition;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod shards;
pub mod stages;
pub mod syphus;
pub mod tables;
#[doc(hidden)]
pub mod testkit;
pub mod verify;
#[allow(unsafe_code)] // FFI: see the SAFETY notes in the module
pub mod video;
pub mod watchdog;

pub use error::{Error, Result};

/// Logs to stderr at `level` (`error` ... `debug`), or as `MIMICIT_LOG` says; for both
/// executables (the CLIP helper gets mimicit's level).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIMICIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs captured to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

/// Sets glibc's malloc to keep buffers of up to 32 MiB in the heap instead of returning each one
/// to the kernel when it is freed (the default threshold starts at 128 KiB, and a decoded picture
/// is larger). Otherwise every picture pays for fresh zeroed pages: on 640x480 photos to 224x224
/// PNG that was a fifth of the CPU (BENCHMARKS.md). Call at the start of `main`, before threads
/// start. Returns whether glibc took both settings (always false elsewhere).
#[allow(unsafe_code)] // FFI: one mallopt call per setting, see the SAFETY note
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LIMIT: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters, to values in their allowed ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod malloc_tests {
    #[test]
    fn glibc_takes_the_malloc_settings() {
        assert_eq!(
            super::tune_malloc(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
