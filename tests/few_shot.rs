//! Teaching a model from painted strokes (issue 15), on real GlaS images: a scripted user paints
//! short strokes inside the ground truth of one training image, `histoseg train --strokes`
//! trains a pixel head on the frozen UNet's features, and the model it saves segments glands on
//! training images nobody painted. Bad strokes files are refused with a clear message.

use std::process::Command;

use histoseg::strokes::StrokeSet;
use histoseg::train::data::{Dataset, GLAS_UM_PER_PX, Split, load};
use histoseg::train::evaluate::{EvalOptions, evaluate};
use histoseg::train::scripted_user::{StrokePlan, scripted_strokes};
use histoseg::weights::ModelFile;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

fn histoseg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_histoseg"))
}

fn models() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn strokes_on_one_image_teach_a_model_the_cli_saves_and_segments_with() {
    let dir = std::env::temp_dir().join(format!("histoseg-few-shot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let train = load(&histoseg::data_dir(), Dataset::Glas, Split::Train).unwrap();
    let by_name = |n: &str| train.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{n} is in GlaS train")).clone();
    let painted = by_name("train_3");
    let plan = StrokePlan { radius: 5.0 / GLAS_UM_PER_PX, length: 40.0 / GLAS_UM_PER_PX };
    let mut strokes = StrokeSet::new(Dataset::Glas.classes(), "train_3.png");
    strokes.strokes = scripted_strokes(&painted.mask, painted.image.width, painted.image.height, 2, 30, plan, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(strokes.strokes.len(), 30);
    let strokes_file = dir.join("strokes.geojson");
    std::fs::write(&strokes_file, strokes.to_geojson()).unwrap();

    let out = dir.join("mine.histoseg");
    let image = histoseg::data_dir().join("glas/images/train_3.png");
    let run = histoseg()
        .args(["train", "--strokes"])
        .arg(&strokes_file)
        .arg("--image")
        .arg(&image)
        .args(["--image-um-per-px", &GLAS_UM_PER_PX.to_string(), "--name", "mine", "--pretrained"])
        .arg(models().join("glands.histoseg"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("30 strokes of 2 classes (background, gland)") && stdout.contains("30 updates"), "{stdout}");

    let file = ModelFile::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    let m = &file.manifest;
    assert_eq!(m.classes, Dataset::Glas.classes());
    assert_eq!(m.head.kernel, 1);
    assert_eq!(m.metrics["strokes"], 30);
    assert_eq!(m.metrics["image"], "train_3.png");
    assert_eq!(m.postprocess.boundary_class, None);
    // the UNet is the base model's, untouched
    let base = ModelFile::from_bytes(&std::fs::read(models().join("glands.histoseg")).unwrap()).unwrap();
    let unet = |f: &ModelFile| f.tensor_values().filter(|(n, _)| n.starts_with("unet.")).map(|(n, v)| (n.to_string(), v.to_vec())).collect::<Vec<_>>();
    assert!(unet(&file) == unet(&base), "the frozen UNet changed");

    // the CLI segments with it like with any model
    let seg_out = dir.join("segmented");
    let run = histoseg().args(["segment", "--model"]).arg(&out).arg("--input").arg(histoseg::data_dir().join("glas/images/train_10.png")).arg("--output").arg(&seg_out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let labels = image::open(seg_out.join("train_10.labels.png")).unwrap().to_luma8();
    assert!(labels.pixels().all(|p| p[0] < 2) && labels.pixels().any(|p| p[0] == 1), "labels of the two classes");
    assert!(std::fs::read_to_string(seg_out.join("train_10.geojson")).unwrap().contains("gland"));

    // glands on six training images nobody painted
    let unpainted: Vec<_> = ["train_10", "train_11", "train_12", "train_13", "train_14", "train_15"].iter().map(|n| by_name(n)).collect();
    let seg = file.segmenter(&burn::prelude::Device::flex()).unwrap();
    let report = evaluate(&seg, m, "unpainted", &unpainted, &EvalOptions::pixels_only(), |_| {}).unwrap();
    println!("pixel Dice on 6 unpainted training images: {:.4}", report.pixel_dice);
    assert!(report.pixel_dice >= THRESHOLD, "pixel Dice {:.4} < {THRESHOLD}", report.pixel_dice);
}

/// Measured 0.856 (30 strokes on train_3, the shipped glands UNet of 2026-11-24; 0.745 with the
/// one before it; the test prints it); a few points below.
const THRESHOLD: f64 = 0.83;

#[test]
fn bad_strokes_files_are_refused_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("histoseg-few-shot-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = histoseg::data_dir().join("glas/images/train_3.png");
    let cases = [
        ("one-class.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[[10,10],[50,50]]},"properties":{"classification":{"name":"gland"}}}]}"#, "at least two"),
        ("polygon.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[]},"properties":{}}]}"#, "LineString or Point"),
        ("not-json.geojson", "strokes!", "not JSON"),
    ];
    for (name, text, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = dir.join(format!("{name}.histoseg"));
        let run = histoseg()
            .args(["train", "--strokes"])
            .arg(&path)
            .arg("--image")
            .arg(&image)
            .args(["--name", "x", "--pretrained"])
            .arg(models().join("glands.histoseg"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(name) && err.contains(says), "{name}: {err}");
        assert!(!out.exists(), "{name}: a model was written");
    }
}
