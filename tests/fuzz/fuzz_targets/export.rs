//! Fuzz target: label masks through the GeoJSON, measurement, label-PNG and overlay exports. The
//! body is [harness::export].
#![no_main]
#[path = "../harness.rs"]
mod harness;
libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::export(data));
