//! Fuzz target: the model file loader (header, manifest, tensors, architecture checks). The body
//! is [harness::model_file].
#![no_main]
#[path = "../harness.rs"]
mod harness;
libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::model_file(data));
