//! The LA annotation parser (LLaVA caption-and-box lines, `mimicit::corpus::scan`) on arbitrary
//! annotation file bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimicit_fuzz::scan_annotations("LA", data));
