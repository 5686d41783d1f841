//! The VST annotation parser (VIST story-in-sequence, `mimicit::corpus::scan`) on arbitrary
//! annotation file bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimicit_fuzz::scan_annotations("VST", data));
