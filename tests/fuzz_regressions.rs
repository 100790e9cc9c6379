//! Replays the fuzzing corpus on every `cargo test`: the seeds, the inputs libFuzzer found
//! interesting (minimised) and every input that once crashed histoseg
//! (`tests/fuzz/corpus/<target>/`). The fuzz targets and this test run the same code
//! (`tests/fuzz/harness.rs`), natively and without nightly.

#[path = "fuzz/harness.rs"]
mod harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        // a panic names the input that caused it
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} failed", path.display());
    }
}

#[test]
fn image_corpus() {
    replay("image", harness::open_image);
}

#[test]
fn tiff_corpus() {
    replay("tiff", harness::open_image);
}

#[test]
fn model_file_corpus() {
    replay("model_file", harness::model_file);
}

#[test]
fn export_corpus() {
    replay("export", harness::export);
}
