//! Training the segmentation model on labelled images, in one of two modes:
//!
//! - **frozen** (PathSegDiff): the diffusion UNet is frozen; features at timestep t from the
//!   chosen decoder levels are computed once for a pool of augmented patches (the cache) and only
//!   the light FCN head is trained on them;
//! - **finetune** (GenSelfDiff-HIS): the whole pretrained UNet is trained together with a new head,
//!   through the same noising and feature taps as inference.
//!
//! The loss is cross-entropy plus soft Dice (mean over classes).

use std::path::Path;

use anyhow::Result;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::data::{Augment, Labeled, below, sample_patch};
use crate::model::head::SegHead;
use crate::model::unet::UNet;
use crate::model::{FeatureSpec, HeadConfig, HistoSegNet, UNetConfig};
use super::pretrain::load_unet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Mode {
    /// Frozen diffusion UNet, cached features, train the head only (PathSegDiff).
    Frozen,
    /// Fine-tune the whole UNet with the head (GenSelfDiff-HIS).
    Finetune,
}

pub struct FitConfig {
    pub mode: Mode,
    pub head: HeadConfig,
    pub tile: usize,
    pub timestep: usize,
    pub noise_seed: u64,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Patches whose features are cached in frozen mode.
    pub cache_patches: usize,
    pub augment: Augment,
}

/// Cross-entropy plus soft Dice between logits `[B, C, H, W]` and integer labels `[B, H, W]`.
pub fn seg_loss(logits: Tensor<4>, labels: &[u8]) -> Tensor<1> {
    let [b, c, h, w] = logits.dims();
    let device = logits.device();
    let onehot: Vec<f32> = (0..b)
        .flat_map(|i| (0..c).flat_map(move |k| (0..h * w).map(move |p| (i, k, p))))
        .map(|(i, k, p)| (labels[i * h * w + p] as usize == k) as u8 as f32)
        .collect();
    let y = Tensor::<4>::from_data(TensorData::new(onehot, [b, c, h, w]), &device);
    let ce = -(log_softmax(logits.clone(), 1) * y.clone()).sum_dim(1).mean();
    let p = softmax(logits, 1);
    let inter = (p.clone() * y.clone()).sum_dims(&[0, 2, 3]).reshape([c]);
    let denom = (p.sum_dims(&[0, 2, 3]) + y.sum_dims(&[0, 2, 3])).reshape([c]);
    let dice = (inter * 2.0 + 1.0) / (denom + 1.0);
    ce + (dice.mean().neg() + 1.0)
}

fn patches(data: &[Labeled], n: usize, tile: usize, aug: Augment, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u8>) {
    let mut x = Vec::with_capacity(n * 3 * tile * tile);
    let mut y = Vec::with_capacity(n * tile * tile);
    for _ in 0..n {
        let s = &data[below(rng, data.len())];
        let (p, m) = sample_patch(&s.image, Some(&s.mask), tile, aug, rng);
        x.extend(p);
        y.extend(m.expect("mask"));
    }
    (x, y)
}

/// Trains a head (and in finetune mode the UNet) on `train` images at the model's resolution.
/// The UNet starts from `pretrained` (any model file holding one) or, for the random-init
/// ablation, from scratch. The returned network is only meant to be serialised (its parameters
/// may live on the autodiff device).
pub fn fit(pretrained: Option<&Path>, unet_cfg: &UNetConfig, train: &[Labeled], cfg: &FitConfig, mut on_step: impl FnMut(usize, f32)) -> Result<HistoSegNet> {
    let ad = Device::flex().autodiff();
    ad.seed(cfg.seed);
    let cpu = Device::flex();
    cpu.seed(cfg.seed);
    let unet_device = if cfg.mode == Mode::Frozen { cpu.clone() } else { ad.clone() };
    let unet = match pretrained {
        Some(path) => {
            let (unet, loaded) = load_unet(path, &unet_device)?;
            anyhow::ensure!(&loaded == unet_cfg, "the pretrained UNet's architecture differs from the requested one");
            unet
        }
        None => UNet::new(unet_cfg, &unet_device),
    };
    let fch = unet_cfg.feature_channels(&cfg.head.feature_levels);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let t = cfg.tile;
    let mut optim = AdamConfig::new().init();
    match cfg.mode {
        Mode::Frozen => {
            // features of a pool of augmented patches, computed once without gradients
            let spec = FeatureSpec::new(&unet, cfg.timestep, cfg.head.feature_levels.clone(), cfg.noise_seed, 3, t, &cpu);
            let (x, y) = patches(train, cfg.cache_patches, t, cfg.augment, &mut rng);
            let mut feats: Vec<f32> = Vec::with_capacity(cfg.cache_patches * fch * t * t);
            let chunk = 8;
            for start in (0..cfg.cache_patches).step_by(chunk) {
                let n = chunk.min(cfg.cache_patches - start);
                let xb = x[start * 3 * t * t..(start + n) * 3 * t * t].to_vec();
                let f = spec.features(&unet, Tensor::from_data(TensorData::new(xb, [n, 3, t, t]), &cpu));
                feats.extend(f.into_data().try_into_vec_as::<f32>().expect("f32 features"));
            }
            let per = fch * t * t;
            let mut head = SegHead::new(fch, &cfg.head, &ad);
            for step in 0..cfg.steps {
                let idx: Vec<usize> = (0..cfg.batch).map(|_| below(&mut rng, cfg.cache_patches)).collect();
                let fb: Vec<f32> = idx.iter().flat_map(|&i| feats[i * per..(i + 1) * per].iter().copied()).collect();
                let yb: Vec<u8> = idx.iter().flat_map(|&i| y[i * t * t..(i + 1) * t * t].iter().copied()).collect();
                let logits = head.forward(Tensor::from_data(TensorData::new(fb, [cfg.batch, fch, t, t]), &ad));
                let loss = seg_loss(logits, &yb);
                let value = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &head);
                head = optim.step(cosine_lr(cfg.lr, step, cfg.steps), head, grads);
                on_step(step + 1, value);
            }
            Ok(HistoSegNet { unet, head })
        }
        Mode::Finetune => {
            let mut net = HistoSegNet { head: SegHead::new(fch, &cfg.head, &ad), unet };
            for step in 0..cfg.steps {
                let spec = FeatureSpec::new(&net.unet, cfg.timestep, cfg.head.feature_levels.clone(), cfg.noise_seed, 3, t, &ad);
                let (x, y) = patches(train, cfg.batch, t, cfg.augment, &mut rng);
                let logits = net.logits(&spec, Tensor::from_data(TensorData::new(x, [cfg.batch, 3, t, t]), &ad));
                let loss = seg_loss(logits, &y);
                let value = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(cosine_lr(cfg.lr, step, cfg.steps), net, grads);
                on_step(step + 1, value);
            }
            Ok(net)
        }
    }
}

/// Cosine decay from `lr` to `lr / 20`, after a 5% linear warmup.
pub fn cosine_lr(lr: f64, step: usize, total: usize) -> f64 {
    let warm = (total / 20).max(1);
    if step < warm {
        return lr * (step + 1) as f64 / warm as f64;
    }
    let p = (step - warm) as f64 / (total - warm).max(1) as f64;
    lr / 20.0 + (lr - lr / 20.0) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}
