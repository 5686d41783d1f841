//! The Syphus answer parser: answer files (JSON list or JSONL), the question/answer splitter, and
//! the numbering into instructions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimicit_fuzz::answers(data));
