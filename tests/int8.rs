//! int8 against f32 on real images: a genuine f32 network (the shipped glands model, trained a
//! few more Adam steps in f32 on real GlaS training patches, so that its weights leave the int8
//! grid) is stored as the shipped int8 file, and both are scored on real GlaS testA images
//! through the viewer's tiling, blending and post-processing. The int8 file must stay within
//! half a Dice point of its f32 network (issue 13).

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use histoseg::model::FeatureSpec;
use histoseg::train::data::{self, Augment, Dataset, Split, sample_patch};
use histoseg::train::evaluate::{EvalOptions, evaluate};
use histoseg::train::fit::seg_loss;
use histoseg::train::folders::with_boundaries;
use histoseg::weights::{ModelFile, Precision};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

#[test]
fn int8_file_is_within_half_a_dice_point_of_its_f32_network() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/glands.histoseg");
    let shipped = ModelFile::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let m = shipped.manifest.clone();
    let classes = m.head.num_classes;
    let tile = m.tile_size;

    // a few f32 training steps on real training patches at the model's resolution
    let train: Vec<_> = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Train).unwrap().iter().take(4).map(|s| s.rescaled(m.um_per_px)).collect();
    let train: Vec<_> = if classes == 3 { train.iter().map(|s| with_boundaries(s, 3)).collect() } else { train };
    let ad = Device::flex().autodiff();
    let mut net = shipped.build_net(&ad).unwrap();
    let spec = FeatureSpec::new(&net.unet, m.timestep, m.head.feature_levels.clone(), m.noise_seed, 3, tile, &ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for step in 0..3 {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for s in &train[step % 2 * 2..][..2] {
            let (p, mask) = sample_patch(&s.image, Some(&s.mask), tile, Augment::NONE, &mut rng);
            x.extend(p);
            y.extend(mask.unwrap());
        }
        let x = Tensor::<4>::from_data(TensorData::new(x, [2, 3, tile, tile]), &ad);
        let loss = seg_loss(net.logits(&spec, x), &y);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(2e-4, net, grads);
    }
    let f32_file = ModelFile::from_net(m.clone(), &net.valid());
    let int8_file = ModelFile::from_bytes(&f32_file.to_bytes()).unwrap();
    let f32_again = ModelFile::from_bytes(&f32_file.to_bytes_with(Precision::F32)).unwrap();
    let weight_error = f32_again
        .tensor_values()
        .zip(int8_file.tensor_values())
        .flat_map(|((_, a), (_, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(weight_error > 1e-5, "the f32 weights must lie off the int8 grid (largest rounding {weight_error})");

    // both on the first four testA images, as `eval` scores them
    let test: Vec<_> = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Test).unwrap().into_iter().take(4).collect();
    let device = Device::flex();
    let score = |file: &ModelFile| {
        let seg = file.segmenter(&device).unwrap();
        evaluate(&seg, &file.manifest, "glas", &test, &EvalOptions::for_dataset(Dataset::Glas), |_| {}).unwrap().pixel_dice
    };
    let (d32, d8) = (score(&f32_again), score(&int8_file));
    println!("pixel Dice on testA_1..4: f32 {d32:.4}, int8 {d8:.4}, change {:+.4}; largest weight rounding {weight_error:.2e}", d8 - d32);
    assert!((d8 - d32).abs() <= 0.005, "int8 {d8:.4} against f32 {d32:.4}");
    assert!(d32 > 0.5, "the f32 network still segments glands ({d32:.3})");
}
