//! Self-supervised DDPM pretraining of the UNet on unlabelled H&E patches (GenSelfDiff-HIS):
//! epsilon prediction, T = 1000 with quadratic betas, flips, 90° rotations and H&E stain jitter.
//! The per-timestep loss weight is a choice: (1 - alpha_bar_t) as in GenSelfDiff-HIS, plain
//! epsilon MSE, or min-SNR-5. Runs through the resumable loop of [`super::run`]; the validation
//! score is minus the weighted loss on a fixed batch of patches from held-out images.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::data::{Augment, below, sample_patch};
use super::run::{Objective, Progress, RunConfig, RunOutcome, run};
use crate::imageio::RgbImage;
use crate::model::features::seeded_normal;
use crate::model::schedule::{NoiseSchedule, T};
use crate::model::unet::UNet;
use crate::model::{HeadConfig, HistoSegNet, UNetConfig};
use crate::weights::{ClassInfo, Manifest, ModelFile, new_manifest};

/// How the per-sample noise-prediction error is weighted by its timestep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossWeighting {
    /// `1 - alpha_bar_t` (GenSelfDiff-HIS): small timesteps get almost no weight.
    OneMinusAlphaBar,
    /// Plain epsilon MSE (DDPM's "simple" loss): every timestep alike.
    Uniform,
    /// min(SNR_t, 5) / SNR_t (Hang et al. 2023), for epsilon prediction.
    MinSnr,
}

impl LossWeighting {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "one-minus-alpha-bar" => Ok(Self::OneMinusAlphaBar),
            "uniform" => Ok(Self::Uniform),
            "min-snr" => Ok(Self::MinSnr),
            other => bail!("unknown loss weighting '{other}': use one-minus-alpha-bar, uniform or min-snr"),
        }
    }

    pub fn weight(self, schedule: &NoiseSchedule, t: usize) -> f32 {
        match self {
            Self::OneMinusAlphaBar => schedule.loss_weight(t),
            Self::Uniform => 1.0,
            Self::MinSnr => {
                let ab = schedule.alpha_bar(t);
                let snr = ab / (1.0 - ab);
                (snr.min(5.0) / snr) as f32
            }
        }
    }
}

/// What pretraining learns from, apart from the run's length and optimiser.
#[derive(Debug, Clone)]
pub struct PretrainSettings {
    pub unet: UNetConfig,
    pub patch: usize,
    pub batch: usize,
    pub augment: Augment,
    pub weighting: LossWeighting,
    /// Patches of the fixed validation batch.
    pub validation_patches: usize,
    /// Start the UNet from this model file's UNet (same architecture) instead of random weights,
    /// e.g. to go on from a published pretraining run whose optimiser state was not kept. The
    /// optimiser, EMA and step count start afresh.
    pub init: Option<PathBuf>,
}

/// The model file a pretraining run writes: the UNet, with a placeholder head.
pub fn pretrain_manifest(unet: &UNetConfig, provenance: &str) -> Manifest {
    let head = HeadConfig::new(vec![0], 8, 2);
    let classes = vec![ClassInfo { name: "background".into(), color: [0, 0, 0] }, ClassInfo { name: "unused".into(), color: [0, 0, 0] }];
    let mut manifest = new_manifest("pretrained-unet", classes, unet.clone(), head);
    manifest.description = "DDPM-pretrained UNet (the head is a placeholder)".into();
    manifest.provenance = provenance.to_string();
    manifest
}

/// Reads and checks a model file from disk.
pub fn read_model_file(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load {}", path.display()))
}

/// Loads the UNet of any model file (a pretraining checkpoint or a full model).
pub fn load_unet(path: &Path, device: &Device) -> Result<(UNet, UNetConfig)> {
    let file = read_model_file(path)?;
    let cfg = file.manifest.unet.clone();
    let unet = file.load_into(UNet::new(&cfg, device), "unet", device)?;
    Ok((unet, cfg))
}

/// The weighted DDPM loss of clean patches `x0` `[B, 3, P, P]` at timesteps `ts` with noise `eps`.
pub fn ddpm_loss_at(unet: &UNet, schedule: &NoiseSchedule, weighting: LossWeighting, x0: Tensor<4>, ts: &[usize], eps: Tensor<4>) -> Tensor<1> {
    let device = x0.device();
    let [b, c, h, w] = x0.dims();
    let coef = |f: &dyn Fn(usize) -> f32| Tensor::<4>::from_data(TensorData::new(ts.iter().map(|&t| f(t)).collect::<Vec<f32>>(), [b, 1, 1, 1]), &device);
    let a = coef(&|t| schedule.q_sample_coefficients(t).0);
    let s = coef(&|t| schedule.q_sample_coefficients(t).1);
    let weight = Tensor::<1>::from_data(TensorData::new(ts.iter().map(|&t| weighting.weight(schedule, t)).collect::<Vec<f32>>(), [b]), &device);
    let x_t = x0 * a + eps.clone() * s;
    let pred = unet.forward(x_t, unet.time_embedding(ts, &device));
    let per_sample = (pred - eps).powi_scalar(2).reshape([b, c * h * w]).mean_dim(1).reshape([b]);
    (per_sample * weight).mean()
}

/// The weighted DDPM loss with timesteps drawn from `rng` and noise from `noise_seed`.
pub fn ddpm_loss(unet: &UNet, schedule: &NoiseSchedule, x0: Tensor<4>, rng: &mut ChaCha8Rng, noise_seed: u64) -> Tensor<1> {
    let [b, c, h, w] = x0.dims();
    let ts: Vec<usize> = (0..b).map(|_| below(rng, T)).collect();
    let eps = Tensor::<4>::from_data(TensorData::new(seeded_normal(noise_seed, b * c * h * w), [b, c, h, w]), &x0.device());
    ddpm_loss_at(unet, schedule, LossWeighting::OneMinusAlphaBar, x0, &ts, eps)
}

/// A fixed batch: patches, evenly spread timesteps and noise, all from `seed`.
struct FixedBatch {
    planar: Vec<f32>,
    ts: Vec<usize>,
    eps: Vec<f32>,
}

fn patches(images: &[RgbImage], n: usize, patch: usize, aug: Augment, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).flat_map(|_| sample_patch(&images[below(rng, images.len())], None, patch, aug, rng).0).collect()
}

pub struct PretrainObjective<'a> {
    images: &'a [RgbImage],
    settings: PretrainSettings,
    schedule: NoiseSchedule,
    validation: Option<FixedBatch>,
    /// The starting file's name, size and CRC-32, so a resume cannot silently start elsewhere.
    init_fingerprint: serde_json::Value,
}

impl<'a> PretrainObjective<'a> {
    pub fn new(train: &'a [RgbImage], validation: &[RgbImage], settings: PretrainSettings, seed: u64) -> Result<Self> {
        if train.is_empty() {
            bail!("no images to pretrain on");
        }
        let n = settings.validation_patches;
        let validation = (!validation.is_empty() && n > 0).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_FA11);
            let planar = patches(validation, n, settings.patch, Augment::NONE, &mut rng);
            let ts = (0..n).map(|i| (i * T + T / 2) / n).collect();
            let eps = seeded_normal(rng.next_u64(), planar.len());
            FixedBatch { planar, ts, eps }
        });
        let init_fingerprint = match &settings.init {
            None => serde_json::Value::Null,
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::json!({
                    "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "bytes": bytes.len(), "crc32": crc32fast::hash(&bytes),
                })
            }
        };
        Ok(Self { images: train, settings, schedule: NoiseSchedule::default(), validation, init_fingerprint })
    }
}

impl Objective for PretrainObjective<'_> {
    fn loss(&mut self, net: &HistoSegNet, _step: usize, rng: &mut ChaCha8Rng) -> Tensor<1> {
        let s = &self.settings;
        let device = net.device();
        let planar = patches(self.images, s.batch, s.patch, s.augment, rng);
        let x0 = Tensor::<4>::from_data(TensorData::new(planar, [s.batch, 3, s.patch, s.patch]), &device);
        let ts: Vec<usize> = (0..s.batch).map(|_| below(rng, T)).collect();
        let eps = seeded_normal(rng.next_u64(), s.batch * 3 * s.patch * s.patch);
        let eps = Tensor::<4>::from_data(TensorData::new(eps, [s.batch, 3, s.patch, s.patch]), &device);
        ddpm_loss_at(&net.unet, &self.schedule, s.weighting, x0, &ts, eps)
    }

    fn validate(&mut self, net: &HistoSegNet) -> Result<f64> {
        let Some(v) = &self.validation else { return Ok(0.0) };
        let device = net.device();
        let p = self.settings.patch;
        let n = v.ts.len();
        // in chunks, so a large validation batch fits in memory
        let mut total = 0.0;
        for start in (0..n).step_by(16) {
            let k = 16.min(n - start);
            let per = 3 * p * p;
            let x0 = Tensor::<4>::from_data(TensorData::new(v.planar[start * per..(start + k) * per].to_vec(), [k, 3, p, p]), &device);
            let eps = Tensor::<4>::from_data(TensorData::new(v.eps[start * per..(start + k) * per].to_vec(), [k, 3, p, p]), &device);
            let loss = ddpm_loss_at(&net.unet, &self.schedule, self.settings.weighting, x0, &v.ts[start..start + k], eps);
            total += loss.into_scalar::<f32>() as f64 * k as f64;
        }
        Ok(-total / n as f64)
    }

    fn score_name(&self) -> &'static str {
        "minus validation loss"
    }

    fn settings(&self) -> serde_json::Value {
        let s = &self.settings;
        let mut settings = serde_json::json!({
            "task": "pretrain", "unet": s.unet, "patch": s.patch, "batch": s.batch, "weighting": s.weighting,
            "augment": [s.augment.flips_and_rotations, s.augment.stain_scale, s.augment.stain_shift],
            "validation_patches": s.validation_patches, "train_images": self.images.len(),
        });
        // only when set, so runs started before `init` existed still resume
        if !self.init_fingerprint.is_null() {
            settings["init"] = self.init_fingerprint.clone();
        }
        settings
    }
}

/// Runs (or resumes) pretraining on `device` (without autodiff; it is added here).
pub fn pretrain(
    train: &[RgbImage],
    validation: &[RgbImage],
    settings: PretrainSettings,
    cfg: &RunConfig,
    device: &Device,
    provenance: &str,
    on_progress: impl FnMut(&Progress),
) -> Result<RunOutcome> {
    settings.unet.validate().map_err(anyhow::Error::msg)?;
    if settings.patch % settings.unet.size_multiple() != 0 {
        bail!("the patch size {} must be a multiple of {}", settings.patch, settings.unet.size_multiple());
    }
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let manifest = pretrain_manifest(&settings.unet, provenance);
    let mut net = HistoSegNet::new(&manifest.unet, &manifest.head, &ad);
    if let Some(path) = &settings.init {
        let (unet, cfg) = load_unet(path, &ad)?;
        if cfg != manifest.unet {
            bail!("the UNet in {} has another architecture ({cfg:?}) than the one requested ({:?})", path.display(), manifest.unet);
        }
        net.unet = unet;
    }
    let mut objective = PretrainObjective::new(train, validation, settings, cfg.seed)?;
    run(net, &mut objective, &manifest, cfg, on_progress)
}
