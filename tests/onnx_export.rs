//! The ONNX export of both shipped models, checked by onnxruntime (Python, from PyPI): the graph
//! passes the ONNX checker and reproduces histoseg's class probabilities on real tiles (GlaS for
//! glands, MoNuSeg for nuclei) to within 1e-3, at the shipped tile size and at 256 px.
//!
//! The Python environment is `$HISTOSEG_PYTHON`, else `target/pyenv/bin/python` (which
//! `cargo xtask test` creates), else `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HISTOSEG_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

fn shipped(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(format!("{model}.histoseg"))
}

fn export_and_check(model_file: &Path, image: &Path, tile: Option<usize>) -> String {
    let model = model_file.file_stem().unwrap().to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("histoseg-onnx-{}-{model}-{}", std::process::id(), tile.unwrap_or(0)));
    std::fs::create_dir_all(&dir).unwrap();
    let onnx = dir.join(format!("{model}.onnx"));
    let mut export = Command::new(env!("CARGO_BIN_EXE_histoseg"));
    export
        .args(["export", "--format", "onnx", "--model"])
        .arg(model_file)
        .arg("--out")
        .arg(&onnx)
        .arg("--reference")
        .arg(image);
    if let Some(t) = tile {
        export.args(["--tile", &t.to_string()]);
    }
    let out = export.output().unwrap();
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nodes"), "{stdout}");
    assert!(std::fs::metadata(&onnx).unwrap().len() > 100_000, "the ONNX file holds the weights");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_check.py");
    let check = Command::new(python())
        .arg(script)
        .arg(dir.join(format!("{model}.reference.json")))
        .args(["--tolerance", "1e-3"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", python()));
    let report = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(
        !report.contains("No module named"),
        "onnxruntime/onnx/numpy are missing from {:?}; `cargo xtask test` installs them in target/pyenv:\n{report}",
        python()
    );
    assert!(check.status.success(), "onnxruntime does not reproduce histoseg:\n{report}");
    assert!(report.contains("OK: within 0.001"), "{report}");
    std::fs::remove_dir_all(&dir).ok();
    report
}

#[test]
fn glands_onnx_matches_histoseg_on_glas_tiles() {
    let image = histoseg::data_dir().join("glas/images/testA_2.png");
    println!("{}", export_and_check(&shipped("glands"), &image, None));
    println!("{}", export_and_check(&shipped("glands"), &image, Some(256)));
}

#[test]
fn nuclei_onnx_matches_histoseg_on_monuseg_tiles() {
    let dir = histoseg::data_dir().join("monuseg/test/images");
    let mut images: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    images.sort();
    println!("{}", export_and_check(&shipped("nuclei"), &images[0], None));
}

/// A head that standardises its features (`train --standardize-features`) exports as Mul and Add
/// before its first convolution: the glands model's head given the standardisation of its own
/// features on a GlaS tile reproduces in onnxruntime.
#[test]
fn a_standardising_head_exports_to_onnx_and_matches_histoseg() {
    use burn::prelude::*;
    use histoseg::model::head::channel_statistics;
    use histoseg::weights::ModelFile;
    let device = Device::flex();
    let file = ModelFile::from_bytes(&std::fs::read(shipped("glands")).unwrap()).unwrap();
    let mut seg = file.segmenter(&device).unwrap();
    let image = histoseg::data_dir().join("glas/images/testA_2.png");
    let rgb = image::open(&image).unwrap().to_rgb8();
    let t = seg.tile_size;
    let planar: Vec<f32> = (0..3).flat_map(|c| (0..t * t).map(move |i| (c, i))).map(|(c, i)| rgb.get_pixel((i % t) as u32, (i / t) as u32)[c] as f32 / 127.5 - 1.0).collect();
    let features = seg.features(seg.input_tensor(planar, 1));
    let channels = features.dims()[1];
    let (mean, std) = channel_statistics(&features.into_data().try_into_vec_as::<f32>().unwrap(), channels, t * t);
    seg.net.head = seg.net.head.standardized_by(&mean, &std);
    let mut manifest = file.manifest.clone();
    manifest.head.standardize = true;
    let dir = std::env::temp_dir().join(format!("histoseg-onnx-standardised-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("standardised.histoseg");
    std::fs::write(&model, ModelFile::from_net(manifest, &seg.net).to_bytes()).unwrap();
    println!("{}", export_and_check(&model, &image, None));
    std::fs::remove_dir_all(&dir).ok();
}
