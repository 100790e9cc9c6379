//! Training on real data: a short DDPM pretraining run on real GlaS/MoNuSeg patches lowers the
//! loss, and a short frozen-head fit lowers the segmentation loss. Tiny networks keep this to
//! seconds; the shipped models are checked in `shipped_models.rs`.

use burn::prelude::*;
use histoseg::model::UNetConfig;
use histoseg::model::schedule::NoiseSchedule;
use histoseg::train::data::{self, Augment, Dataset, Source, Split, sample_patch};
use histoseg::train::pretrain::{PretrainConfig, ddpm_loss, load_unet, pretrain};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

fn tiny() -> UNetConfig {
    UNetConfig { base_channels: 8, channel_mults: vec![1, 2], res_blocks: 1, norm_groups: 4, ..UNetConfig::default() }
}

/// The weighted DDPM loss of a checkpoint on a fixed batch (fixed patches, timesteps and noise).
fn fixed_batch_loss(ckpt: &std::path::Path, images: &[histoseg::imageio::RgbImage]) -> f32 {
    let device = Device::flex();
    let (unet, _) = load_unet(ckpt, &device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let planar: Vec<f32> = (0..16).flat_map(|i| sample_patch(&images[i % images.len()], None, 32, Augment::NONE, &mut rng).0).collect();
    let x0 = Tensor::<4>::from_data(TensorData::new(planar, [16, 3, 32, 32]), &device);
    ddpm_loss(&unet, &NoiseSchedule::default(), x0, &mut rng, 12345).into_scalar::<f32>()
}

#[test]
fn short_pretraining_on_real_patches_lowers_the_loss() {
    let dir = std::env::temp_dir().join(format!("histoseg-pretrain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = histoseg::data_dir();
    let sources: Vec<Source> = vec![
        format!("{},0.62,train_1", data.join("glas/images").display()).parse().unwrap(),
        format!("{},0.2527,TCGA-A7", data.join("monuseg/train/images").display()).parse().unwrap(),
    ];
    let images = data::load_unlabeled(&sources, &[1.0]).unwrap();
    assert!(images.len() >= 4, "real images loaded");
    let out = dir.join("tiny.ckpt");
    let mut cfg = PretrainConfig {
        unet: tiny(),
        patch: 32,
        batch: 8,
        steps: 1,
        lr: 2e-3,
        seed: 1,
        checkpoint_every: 1000,
        augment: Augment::DEFAULT,
        out: out.clone(),
        resume: false,
        provenance: "test".into(),
    };
    pretrain(&images, &cfg, |_, _| {}).unwrap();
    let before = fixed_batch_loss(&out, &images);
    // resume from the 1-step checkpoint and train on
    cfg.steps = 60;
    cfg.resume = true;
    let state = pretrain(&images, &cfg, |_, _| {}).unwrap();
    assert_eq!(state.step, 60);
    assert_eq!(state.losses.len(), 60, "the resumed run keeps the loss history");
    let after = fixed_batch_loss(&out, &images);
    assert!(after < 0.8 * before, "fixed-batch loss {before} -> {after}");
    let log = std::fs::read_to_string(out.with_extension("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 61, "header + one line per step");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_short_frozen_head_fit_lowers_the_segmentation_loss() {
    use histoseg::model::HeadConfig;
    use histoseg::train::fit::{FitConfig, Mode, fit};
    let train: Vec<_> = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Train).unwrap().into_iter().take(6).map(|s| s.rescaled(1.24)).collect();
    let cfg = FitConfig {
        mode: Mode::Frozen,
        head: HeadConfig { feature_levels: vec![0, 1], hidden_channels: 32, num_classes: 2 },
        tile: 32,
        timestep: 50,
        noise_seed: 7,
        steps: 250,
        batch: 8,
        lr: 2e-3,
        seed: 3,
        cache_patches: 32,
        augment: Augment::NONE,
    };
    let mut losses = Vec::new();
    fit(None, &tiny(), &train, &cfg, |_, l| losses.push(l)).unwrap();
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[220..].iter().sum::<f32>() / 30.0;
    // measured: about 1.04 -> 0.75 (ratio 0.72); batches of a small cache are noisy
    assert!(last < 0.88 * first, "segmentation loss {first} -> {last}");
}
