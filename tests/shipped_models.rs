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

fn dice_on(file: &ModelFile, sample: &data::Labeled) -> f64 {
    let segmenter = file.segmenter(&Device::flex()).unwrap();
    let labels = predict(&segmenter, &file.manifest, sample, 4).unwrap();
    assert_eq!(labels.len(), sample.mask.len());
    let pred: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    let truth: Vec<bool> = sample.mask.iter().map(|&m| m == 1).collect();
    Confusion::of(&pred, &truth).dice()
}

/// Dice of a trivial "everything is foreground" segmentation: what chance looks like.
fn all_foreground_dice(sample: &data::Labeled) -> f64 {
    let truth: Vec<bool> = sample.mask.iter().map(|&m| m == 1).collect();
    Confusion::of(&vec![true; truth.len()], &truth).dice()
}

#[test]
fn glands_model_segments_a_glas_test_image() {
    let file = model("glands.histoseg");
    assert!(file.manifest.trained, "the shipped glands model is trained");
    assert_eq!(file.manifest.classes[1].name, "gland");
    let test = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Test).unwrap();
    let sample = test.iter().find(|s| s.name == "testA_1").unwrap();
    let dice = dice_on(&file, sample);
    let chance = all_foreground_dice(sample);
    println!("glands on testA_1: Dice {dice:.3} (all-foreground {chance:.3})");
    assert!(dice > GLANDS_MIN_DICE && dice > chance + 0.1, "Dice {dice:.3}, chance {chance:.3}");
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
    let dice = dice_on(&file, &tile);
    let chance = all_foreground_dice(&tile);
    println!("nuclei on a {} tile: Dice {dice:.3} (all-foreground {chance:.3})", s.name);
    assert!(dice > NUCLEI_MIN_DICE && dice > chance + 0.1, "Dice {dice:.3}, chance {chance:.3}");
}

const GLANDS_MIN_DICE: f64 = 0.5;
const NUCLEI_MIN_DICE: f64 = 0.5;
