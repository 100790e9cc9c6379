//! The models shipped in models/ load and segment real held-out images well above chance:
//! a GlaS testA image for the glands model and a MoNuSeg test tile for the nuclei model, through
//! the same resampling, tiling and blending as the viewer and the CLI's `eval`.
//!
//! Thresholds are the measured Dice of the shipped int8 models minus a margin (see README).

use burn::prelude::*;
use histoseg::metrics::Confusion;
use histoseg::train::data::{self, Dataset, Split};
use histoseg::train::evaluate::predict;
use histoseg::weights::ModelFile;

fn model(name: &str) -> ModelFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    ModelFile::from_bytes(&std::fs::read(&path).expect("shipped model exists")).expect("shipped model loads")
}

/// The model's Dice on `sample`, and the Dice expected by chance: a random mask with the same
/// foreground fraction p as the prediction, against truth with fraction q, scores 2pq / (p + q).
fn dice_and_chance(file: &ModelFile, sample: &data::Labeled) -> (f64, f64) {
    let segmenter = file.segmenter(&Device::flex()).unwrap();
    let labels = predict(&segmenter, &file.manifest, sample, 4).unwrap();
    assert_eq!(labels.len(), sample.mask.len());
    let pred: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    let truth: Vec<bool> = sample.mask.iter().map(|&m| m == 1).collect();
    let n = pred.len() as f64;
    let p = pred.iter().filter(|&&v| v).count() as f64 / n;
    let q = truth.iter().filter(|&&v| v).count() as f64 / n;
    let chance = if p + q > 0.0 { 2.0 * p * q / (p + q) } else { 1.0 };
    (Confusion::of(&pred, &truth).dice(), chance)
}

#[test]
fn glands_model_segments_a_glas_test_image() {
    let file = model("glands.histoseg");
    assert!(file.manifest.trained, "the shipped glands model is trained");
    assert_eq!(file.manifest.classes[1].name, "gland");
    // the first six test images in natural order (testA_1 .. testA_6), not a chosen one
    let test = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Test).unwrap();
    let scores: Vec<(f64, f64)> = test.iter().take(6).map(|s| dice_and_chance(&file, s)).collect();
    let dice = scores.iter().map(|s| s.0).sum::<f64>() / 6.0;
    let chance = scores.iter().map(|s| s.1).sum::<f64>() / 6.0;
    println!("glands on testA_1..6: mean Dice {dice:.3} (chance {chance:.3}), per image {scores:.3?}");
    assert!(dice > GLANDS_MIN_DICE && dice > chance + 0.15, "mean Dice {dice:.3}, chance {chance:.3}");
}

#[test]
fn nuclei_model_segments_a_monuseg_test_tile() {
    let file = model("nuclei.histoseg");
    assert!(file.manifest.trained, "the shipped nuclei model is trained");
    assert_eq!(file.manifest.classes[1].name, "nucleus");
    let test = data::load(&histoseg::data_dir(), Dataset::Monuseg, Split::Test).unwrap();
    // a 400x400 tile of the first test image keeps this quick
    let s = &test[0];
    let tile = data::Labeled {
        name: s.name.clone(),
        image: s.image.crop(300, 300, 400, 400),
        mask: (300..700).flat_map(|y| s.mask[y * s.image.width + 300..y * s.image.width + 700].to_vec()).collect(),
        instances: None,
        um_per_px: s.um_per_px,
    };
    let (dice, chance) = dice_and_chance(&file, &tile);
    println!("nuclei on a {} tile: Dice {dice:.3} (chance {chance:.3})", s.name);
    assert!(dice > NUCLEI_MIN_DICE && dice > chance + 0.1, "Dice {dice:.3}, chance {chance:.3}");
}

// measured 0.669 (mean over testA_1..6) for the shipped int8 glands model
const GLANDS_MIN_DICE: f64 = 0.58;
// measured 0.760 for the shipped int8 nuclei model on this tile
const NUCLEI_MIN_DICE: f64 = 0.65;
