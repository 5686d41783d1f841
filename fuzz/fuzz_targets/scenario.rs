//! The scenario TOML parser (with its key checks and path resolution).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimicit_fuzz::scenario(data));
