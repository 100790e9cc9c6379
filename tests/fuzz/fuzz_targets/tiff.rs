//! Fuzz target: opening TIFF, BigTIFF and Aperio SVS files and reading regions (the corpus in
//! tests/fuzz/corpus/tiff/ starts from such files). The body is [harness::open_image].
#![no_main]
#[path = "../harness.rs"]
mod harness;
libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::open_image(data));
