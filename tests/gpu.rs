//! The GPU route (feature `gpu`: burn wgpu on Vulkan) runs the same model code as the CPU: on the
//! same weights and the same batch of real patches the DDPM loss agrees with flex's, and a short
//! pretraining run through the same run loop lowers the validation loss. Needs a Vulkan driver;
//! CI has none and does not build this feature. Run it with
//! `cargo test --release --features gpu --test gpu` (here: Mesa's lavapipe, see README).
#![cfg(feature = "gpu")]

use burn::prelude::*;
use histoseg::model::{HistoSegNet, UNetConfig};
use histoseg::model::features::seeded_normal;
use histoseg::model::schedule::NoiseSchedule;
use histoseg::model::unet::UNet;
use histoseg::train::compute::Compute;
use histoseg::train::data::{self, Augment, Source, sample_patch};
use histoseg::train::pretrain::{LossWeighting, PretrainSettings, ddpm_loss_at, pretrain, pretrain_manifest};
use histoseg::train::run::RunConfig;
use histoseg::weights::{ModelFile, Precision};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

fn images() -> data::Unlabeled {
    let src: Source = format!("{},0.62,train_1", histoseg::data_dir().join("glas/images").display()).parse().unwrap();
    data::load_unlabeled(&[src], &[1.0], 4).unwrap()
}

#[test]
fn the_gpu_computes_the_cpu_loss_and_training_on_it_lowers_the_loss() {
    let gpu = Compute::Gpu.device().expect("a Vulkan device");
    let cpu = Device::flex();
    let cfg = UNetConfig::default();
    cpu.seed(5);
    // the same weights on both devices, through a model file
    let manifest = pretrain_manifest(&cfg, "test");
    let net = HistoSegNet::new(&cfg, &manifest.head, &cpu);
    let file = ModelFile::from_bytes(&ModelFile::from_net(manifest, &net).to_bytes_with(Precision::F32)).unwrap();
    let img = images();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let planar: Vec<f32> = (0..4).flat_map(|i| sample_patch(&img.train[i], None, 64, Augment::NONE, &mut rng).0).collect();
    let eps = seeded_normal(9, planar.len());
    let ts = [10, 200, 500, 900];
    let loss_on = |device: &Device| {
        let unet = file.load_into(UNet::new(&cfg, device), "unet", device).unwrap();
        let x0 = Tensor::<4>::from_data(TensorData::new(planar.clone(), [4, 3, 64, 64]), device);
        let e = Tensor::<4>::from_data(TensorData::new(eps.clone(), [4, 3, 64, 64]), device);
        ddpm_loss_at(&unet, &NoiseSchedule::default(), LossWeighting::Uniform, x0, &ts, e).into_scalar::<f32>()
    };
    let started = std::time::Instant::now();
    let on_gpu = loss_on(&gpu);
    println!("one forward pass of 4 x 64 px on the GPU device: {:.1} s (kernels compiled on first use)", started.elapsed().as_secs_f64());
    let on_cpu = loss_on(&cpu);
    println!("same weights, same batch: loss {on_cpu} on the CPU, {on_gpu} on the GPU");
    assert!((on_cpu - on_gpu).abs() < 1e-4 * on_cpu.abs().max(1.0), "cpu {on_cpu} gpu {on_gpu}");

    let dir = std::env::temp_dir().join(format!("histoseg-gpu-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let run = RunConfig {
        dir: dir.clone(),
        steps: 30,
        lr: 2e-3,
        warmup: 4,
        seed: 0,
        checkpoint_every: 20,
        validate_every: 1000,
        ema_decay: 0.0,
        stop_after: None,
        stop_after_steps: None,
        resume: false,
    };
    // a tiny UNet keeps this to minutes on lavapipe (a CPU Vulkan driver); same code as any size
    let tiny = UNetConfig { base_channels: 8, channel_mults: vec![1, 2], norm_groups: 4, ..cfg };
    let settings = PretrainSettings { unet: tiny, patch: 32, batch: 4, augment: Augment::DEFAULT, weighting: LossWeighting::Uniform, validation_patches: 16, init: None };
    // validation at step 1 (a run of one step) and at step 30
    let first = pretrain(&img.train, &img.validation, settings.clone(), &RunConfig { steps: 1, dir: dir.join("one"), ..run.clone() }, &gpu, "test", |_| {}).unwrap();
    let last = pretrain(&img.train, &img.validation, settings, &run, &gpu, "test", |_| {}).unwrap();
    let (before, after) = (-first.state.best.unwrap().1, -last.state.best.unwrap().1);
    println!("validation loss on the GPU: {before:.4} after 1 step, {after:.4} after 30 ({:.2} steps/s)", last.steps_this_process as f64 / last.seconds_this_process);
    assert!(after < 0.8 * before, "validation loss {before} -> {after}");
    std::fs::remove_dir_all(dir).ok();
}
