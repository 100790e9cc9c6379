//! End-to-end native tests on real GlaS images: the shipped model file loads, the model runs on
//! the flex CPU backend through the same tiling and blending as the viewer, and the model file
//! rejects damage with specific errors.

use burn::prelude::*;
use histoseg::imageio::{self, RgbImage};
use histoseg::segment::segment_image;
use histoseg::weights::{ModelFile, WeightsError};

fn glas_image(name: &str) -> RgbImage {
    let path = histoseg::data_dir().join("glas/images").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("real GlaS data is needed at {}: {e}", path.display()));
    imageio::decode(&bytes).expect("GlaS image decodes")
}

fn shipped_model() -> (Vec<u8>, ModelFile) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/glands.histoseg");
    let bytes = std::fs::read(&path).expect("models/glands.histoseg exists");
    let file = ModelFile::from_bytes(&bytes).expect("shipped model loads");
    (bytes, file)
}

#[test]
fn segments_a_real_glas_image_on_flex() {
    let image = glas_image("testA_1.png");
    assert_eq!((image.width, image.height), (775, 522));
    // a crop that needs several overlapping tiles in each direction, with odd sizes
    let crop = image.crop(101, 57, 601, 403);
    let (_, file) = shipped_model();
    let m = file.manifest.clone();
    let device = Device::flex();
    let segmenter = file.segmenter(&device).unwrap();

    let mut calls = 0;
    let seg = segment_image(&segmenter, &crop, &m, 4, false, |_, _| calls += 1).unwrap();
    assert_eq!((seg.width, seg.height), (601, 403));
    assert_eq!(seg.labels.len(), 601 * 403);
    assert!(calls >= 2, "progress reported per batch");
    for px in seg.probabilities.chunks_exact(m.head.num_classes) {
        let s: f32 = px.iter().sum();
        assert!((s - 1.0).abs() < 1e-4, "blended probabilities sum to {s}");
        assert!(px.iter().all(|p| p.is_finite() && *p >= 0.0));
    }
    assert!(seg.labels.iter().all(|&l| (l as usize) < m.head.num_classes));

    // batching is an implementation detail: one tile at a time gives the same labels
    let single = segment_image(&segmenter, &crop, &m, 1, false, |_, _| {}).unwrap();
    let max_diff = seg.probabilities.iter().zip(&single.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "batch 4 vs 1 differ by {max_diff}");

    // the output depends on the image content: a different region gives a different map
    let other = segment_image(&segmenter, &image.crop(150, 100, 601, 403), &m, 4, false, |_, _| {}).unwrap();
    assert_ne!(other.probabilities, seg.probabilities);
}

/// A quarter turn clockwise of an interleaved image with `channels` values a pixel.
fn quarter_turn<T: Copy>(values: &[T], width: usize, height: usize, channels: usize) -> Vec<T> {
    // the turned image is `height` wide and `width` high; its (x, y) is the original's (y, height - 1 - x)
    (0..width * height)
        .flat_map(|i| {
            let (x, y) = (i % height, i / height);
            let src = (height - 1 - x) * width + y;
            values[src * channels..(src + 1) * channels].to_vec()
        })
        .collect()
}

#[test]
fn test_time_augmentation_makes_a_tile_turn_with_the_image() {
    // one whole tile of a real image: with the eight orientations averaged, segmenting the image
    // turned a quarter is the segmentation turned a quarter; without them it is not quite
    let (_, file) = shipped_model();
    let m = &file.manifest;
    let t = m.tile_size;
    let image = glas_image("testA_4.png").crop(200, 100, t, t);
    let turned = RgbImage::new(t, t, quarter_turn(&image.pixels, t, t, 3));
    let segmenter = file.segmenter(&Device::flex()).unwrap();
    let run = |img: &RgbImage, tta: bool| segment_image(&segmenter, img, m, 8, tta, |_, _| {}).unwrap();
    let classes = m.head.num_classes;
    let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let (plain, plain_turned) = (run(&image, false), run(&turned, false));
    let (best, best_turned) = (run(&image, true), run(&turned, true));
    let plain_gap = gap(&quarter_turn(&plain.probabilities, t, t, classes), &plain_turned.probabilities);
    let best_gap = gap(&quarter_turn(&best.probabilities, t, t, classes), &best_turned.probabilities);
    let changed = best.labels.iter().zip(&plain.labels).filter(|(a, b)| a != b).count();
    println!("turned a quarter: probabilities differ by up to {plain_gap:.4} without TTA, {best_gap:.2e} with it; TTA changed {changed} of {} labels", t * t);
    assert!(best_gap < 1e-4, "with TTA the result turns with the image ({best_gap})");
    assert!(plain_gap > 1e-2, "without TTA the network alone is not rotation-equivariant ({plain_gap})");
    assert!(changed > 0 && changed < t * t / 10, "TTA refines the labels ({changed} changed)");
}

#[test]
fn images_smaller_than_a_tile_are_segmented() {
    let image = glas_image("testA_2.png").crop(0, 0, 45, 70);
    let (_, file) = shipped_model();
    let segmenter = file.segmenter(&Device::flex()).unwrap();
    let m = &file.manifest;
    let seg = segment_image(&segmenter, &image, &m, 4, false, |_, _| {}).unwrap();
    assert_eq!((seg.width, seg.height, seg.labels.len()), (45, 70, 45 * 70));
}

#[test]
fn int8_file_matches_the_f32_network() {
    let (_, file) = shipped_model();
    let device = Device::flex();
    // rebuild a network from the file, then store it again: loading is lossless after the first
    // quantisation (int8 values on the same per-channel grid requantise to themselves)
    let net = file.build_net(&device).unwrap();
    let again = ModelFile::from_net(file.manifest.clone(), &net);
    let reloaded = ModelFile::from_bytes(&again.to_bytes()).unwrap();
    let a = file.segmenter(&device).unwrap();
    let b = reloaded.segmenter(&device).unwrap();
    let image = glas_image("testA_3.png").crop(0, 0, 128, 128);
    let m = &file.manifest;
    let sa = segment_image(&a, &image, &m, 1, false, |_, _| {}).unwrap();
    let sb = segment_image(&b, &image, &m, 1, false, |_, _| {}).unwrap();
    let max_diff = sa.probabilities.iter().zip(&sb.probabilities).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "requantised model differs by {max_diff}");
}

#[test]
fn damaged_model_files_give_specific_errors() {
    let (bytes, file) = shipped_model();

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(matches!(ModelFile::from_bytes(&flipped), Err(WeightsError::Checksum { .. })));

    let truncated = &bytes[..bytes.len() - 1000];
    assert!(ModelFile::from_bytes(truncated).is_err());

    assert!(matches!(ModelFile::from_bytes(b"\x89PNG\r\n\x1a\n not a model"), Err(WeightsError::NotAModel)));

    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = ModelFile::from_bytes(&newer).unwrap_err();
    assert!(matches!(err, WeightsError::TooNew(99)), "{err}");
    assert!(err.to_string().contains("update histoseg"));

    // a manifest that describes another architecture than the stored weights
    let net = file.build_net(&Device::flex()).unwrap();
    let mut wrong = file.manifest.clone();
    wrong.unet.base_channels *= 2;
    let mismatched = ModelFile::from_net(wrong, &net).to_bytes();
    let err = ModelFile::from_bytes(&mismatched).unwrap().build_net(&Device::flex()).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("shape"), "{err}");
}
