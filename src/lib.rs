//! mimicit turns raw vision corpora into MIMIC-IT training data.
//!
//! A run of one scenario goes through numbered stages; each reads the previous stage's tables
//! from `OUT/{CODE}/`, writes its own atomically and records itself in `OUT/manifest.json`, so a
//! run that stops half way continues where it stopped:
//!
//! 1. **scan**: a corpus adapter lists the visual units, their media and annotations
//!    (`units.parquet`);
//! 2. **keyframes**: decode, sample, resize and encode the frames of every unit
//!    (`frames/`, `frames.parquet`);
//! 3. **dedup**: exact, perceptual and semantic duplicates, with a remap to the kept frame;
//! 4. **features**: CLIP image features via libtorch, on CUDA when present;
//! 5. **metadata**: the exact files the Syphus instruction generator reads;
//! 6. **pack**: trainer-ready shards (`{CODE}.parquet`, `{CODE}_instructions.json`,
//!    `{CODE}_train.json`), `data.yaml`.
//!
//! `verify` re-hashes every output against the manifest; `report` renders a run as HTML.
//!
//! Split over many machines, `--partition i/N` runs the per-unit stages on one share of the
//! units ([`partition`]) and `merge` joins the shares and runs the whole-corpus steps
//! ([`merge`]), giving the bytes of a single run.

pub mod atomic;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod cpu_time;
pub mod dedup;
pub mod error;
pub mod faults;
pub mod features;
pub mod frames;
pub mod imaging;
pub mod journal;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod partition;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod shards;
pub mod stages;
pub mod tables;
#[doc(hidden)]
pub mod testkit;
pub mod verify;
pub mod video;
pub mod watchdog;

pub use error::{Error, Result};
