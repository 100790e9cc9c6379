//! Self-supervised DDPM pretraining of the UNet on unlabelled H&E patches (GenSelfDiff-HIS):
//! epsilon prediction, T = 1000 with quadratic betas, loss weighted by (1 - alpha_bar_t),
//! flips, 90° rotations and H&E stain jitter. Checkpoints are f32 model files; a JSON state file
//! and a CSV loss log sit beside them so a run can resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::data::{Augment, below, sample_patch};
use crate::imageio::RgbImage;
use crate::model::features::seeded_normal;
use crate::model::schedule::{NoiseSchedule, T};
use crate::model::unet::UNet;
use crate::model::{HeadConfig, HistoSegNet, UNetConfig};
use crate::model::head::SegHead;
use crate::weights::{ClassInfo, ModelFile, Precision, new_manifest};

pub struct PretrainConfig {
    pub unet: UNetConfig,
    pub patch: usize,
    pub batch: usize,
    pub steps: usize,
    pub lr: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub augment: Augment,
    pub out: PathBuf,
    pub resume: bool,
    /// Where the images came from, recorded in the checkpoint.
    pub provenance: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PretrainState {
    pub step: usize,
    pub losses: Vec<f32>,
    pub seconds: f64,
}

fn state_path(out: &Path) -> PathBuf {
    out.with_extension("state.json")
}

fn log_path(out: &Path) -> PathBuf {
    out.with_extension("loss.csv")
}

/// Writes the UNet as an f32 model file (with an unused placeholder head), plus the state file.
pub fn save_checkpoint(unet: &UNet, config: &UNetConfig, state: &PretrainState, out: &Path, provenance: &str) -> Result<()> {
    let device = Device::flex();
    let head_cfg = HeadConfig { feature_levels: vec![0], hidden_channels: 8, num_classes: 2 };
    let head = SegHead::new(config.feature_channels(&head_cfg.feature_levels), &head_cfg, &device);
    let net = HistoSegNet { unet: unet.clone(), head };
    let classes = vec![ClassInfo { name: "background".into(), color: [0, 0, 0] }, ClassInfo { name: "unused".into(), color: [0, 0, 0] }];
    let mut manifest = new_manifest("pretrained-unet", classes, config.clone(), head_cfg);
    manifest.description = format!("DDPM-pretrained UNet after {} steps (the head is a placeholder)", state.step);
    manifest.provenance = provenance.to_string();
    let bytes = ModelFile::from_net(manifest, &net).to_bytes_with(Precision::F32);
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out)?;
    std::fs::write(state_path(out), serde_json::to_vec(state)?)?;
    Ok(())
}

/// Loads the UNet of any model file (a pretraining checkpoint or a full model).
pub fn load_unet(path: &Path, device: &Device) -> Result<(UNet, UNetConfig)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load {}", path.display()))?;
    let cfg = file.manifest.unet.clone();
    let unet = file.load_into(UNet::new(&cfg, device), "unet", device)?;
    Ok((unet, cfg))
}

/// One weighted DDPM loss evaluation on a batch of clean patches `[B, 3, P, P]`.
pub fn ddpm_loss(unet: &UNet, schedule: &NoiseSchedule, x0: Tensor<4>, rng: &mut ChaCha8Rng, step_seed: u64) -> Tensor<1> {
    let device = x0.device();
    let [b, c, h, w] = x0.dims();
    let ts: Vec<usize> = (0..b).map(|_| below(rng, T)).collect();
    let eps = Tensor::<4>::from_data(TensorData::new(seeded_normal(step_seed, b * c * h * w), [b, c, h, w]), &device);
    let coef = |f: &dyn Fn(usize) -> f32| Tensor::<4>::from_data(TensorData::new(ts.iter().map(|&t| f(t)).collect::<Vec<f32>>(), [b, 1, 1, 1]), &device);
    let a = coef(&|t| schedule.q_sample_coefficients(t).0);
    let s = coef(&|t| schedule.q_sample_coefficients(t).1);
    let weight = Tensor::<1>::from_data(TensorData::new(ts.iter().map(|&t| schedule.loss_weight(t)).collect::<Vec<f32>>(), [b]), &device);
    let x_t = x0 * a + eps.clone() * s;
    let pred = unet.forward(x_t, unet.time_embedding(&ts, &device));
    let per_sample = (pred - eps).powi_scalar(2).reshape([b, c * h * w]).mean_dim(1).reshape([b]);
    (per_sample * weight).mean()
}

/// Runs (or resumes) pretraining; returns the final state.
pub fn pretrain(images: &[RgbImage], cfg: &PretrainConfig, mut on_step: impl FnMut(usize, f32)) -> Result<PretrainState> {
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let (mut unet, mut state) = if cfg.resume && cfg.out.exists() {
        let (unet, loaded_cfg) = load_unet(&cfg.out, &device)?;
        anyhow::ensure!(loaded_cfg == cfg.unet, "the checkpoint's architecture differs from the one requested");
        let state: PretrainState = serde_json::from_slice(&std::fs::read(state_path(&cfg.out))?)?;
        (unet, state)
    } else {
        (UNet::new(&cfg.unet, &device), PretrainState::default())
    };
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(&cfg.out))?;
    if state.step == 0 {
        writeln!(log, "step,loss,seconds")?;
    }
    // Adam moments are not checkpointed: a resumed run re-estimates them (with a short warmup).
    let mut optim = AdamConfig::new().init();
    let schedule = NoiseSchedule::default();
    let started = Instant::now();
    let base_seconds = state.seconds;
    let warmup = 100.min(cfg.steps / 10 + 1);
    let mut since_resume = 0;
    while state.step < cfg.steps {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ (state.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let planar: Vec<f32> = (0..cfg.batch)
            .flat_map(|_| {
                let img = &images[below(&mut rng, images.len())];
                sample_patch(img, None, cfg.patch, cfg.augment, &mut rng).0
            })
            .collect();
        let x0 = Tensor::<4>::from_data(TensorData::new(planar, [cfg.batch, 3, cfg.patch, cfg.patch]), &device);
        let loss = ddpm_loss(&unet, &schedule, x0, &mut rng, cfg.seed.wrapping_add(1_000_003 * state.step as u64));
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &unet);
        since_resume += 1;
        let lr = cfg.lr * (since_resume as f64 / warmup as f64).min(1.0);
        unet = optim.step(lr, unet, grads);
        state.step += 1;
        state.losses.push(value);
        state.seconds = base_seconds + started.elapsed().as_secs_f64();
        writeln!(log, "{},{value:.6},{:.1}", state.step, state.seconds)?;
        on_step(state.step, value);
        if state.step % cfg.checkpoint_every == 0 || state.step == cfg.steps {
            save_checkpoint(&unet, &cfg.unet, &state, &cfg.out, &cfg.provenance)?;
        }
    }
    Ok(state)
}
