//! Training the segmentation model on labelled images, in one of two modes, through the
//! resumable loop of [`super::run`]:
//!
//! - **frozen** (PathSegDiff): the diffusion UNet is frozen; features at timestep t from the
//!   chosen decoder levels are computed once for a pool of augmented patches (the cache) and only
//!   the light FCN head is trained on them;
//! - **finetune** (GenSelfDiff-HIS): the whole pretrained UNet is trained together with a new head,
//!   through the same noising and feature taps as inference.
//!
//! The loss is cross-entropy plus soft Dice (mean over classes). The validation score is the pixel
//! Dice averaged over all classes, background included, on whole validation images, through the
//! viewer's tiling and blending. A head that standardises its features starts from their
//! statistics ([`SegObjective::feature_statistics`]).

use std::path::Path;

use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::data::{Augment, Labeled, below, sample_patch};
use super::evaluate::{EvalOptions, evaluate};
use super::pretrain::read_model_file;
use super::run::{Objective, Progress, RunConfig, RunOutcome, run};
use crate::model::head::{SegHead, channel_statistics};
use crate::model::unet::UNet;
use crate::model::{FeatureSpec, HistoSegNet, Segmenter};
use crate::weights::Manifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Frozen diffusion UNet, cached features, train the head only (PathSegDiff).
    Frozen,
    /// Fine-tune the whole UNet with the head (GenSelfDiff-HIS).
    Finetune,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "frozen" => Ok(Mode::Frozen),
            "finetune" => Ok(Mode::Finetune),
            other => bail!("unknown mode '{other}': use frozen or finetune"),
        }
    }
}

/// What segmentation training learns from, apart from the run's length and optimiser. The
/// architecture, classes, tile, timestep and noise seed come from the manifest.
#[derive(Debug, Clone)]
pub struct SegSettings {
    pub mode: Mode,
    pub batch: usize,
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

pub struct SegObjective<'a> {
    train: &'a [Labeled],
    validation: &'a [Labeled],
    manifest: Manifest,
    settings: SegSettings,
    /// Frozen mode: cached features `[cache, F, tile, tile]` and labels.
    cache: Option<(Vec<f32>, Vec<u8>)>,
}

impl<'a> SegObjective<'a> {
    /// In frozen mode the feature cache is computed here, from `unet` without gradients.
    pub fn new(train: &'a [Labeled], validation: &'a [Labeled], manifest: &Manifest, settings: SegSettings, unet: &UNet, seed: u64) -> Result<Self> {
        if train.is_empty() {
            bail!("no training images");
        }
        let t = manifest.tile_size;
        let cache = (settings.mode == Mode::Frozen).then(|| {
            let unet = unet.valid();
            let device = unet.conv_in.weight.val().device();
            let spec = FeatureSpec::new(&unet, &manifest.timesteps(), manifest.head.feature_levels.clone(), manifest.noise_seed, 3, t, &device);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xCAC4E);
            let n = settings.cache_patches;
            let (x, y) = patches(train, n, t, settings.augment, &mut rng);
            let fch = manifest.head.input_channels(&manifest.unet);
            let mut feats: Vec<f32> = Vec::with_capacity(n * fch * t * t);
            for start in (0..n).step_by(8) {
                let k = 8.min(n - start);
                let xb = x[start * 3 * t * t..(start + k) * 3 * t * t].to_vec();
                let f = spec.features(&unet, Tensor::from_data(TensorData::new(xb, [k, 3, t, t]), &device));
                feats.extend(f.into_data().try_into_vec_as::<f32>().expect("f32 features"));
            }
            (feats, y)
        });
        Ok(Self { train, validation, manifest: manifest.clone(), settings, cache })
    }
}

impl SegObjective<'_> {
    /// Per-channel mean and standard deviation of the features the head is trained on: the
    /// frozen mode's cache, or in finetune mode those of 32 augmented patches through `unet`.
    pub fn feature_statistics(&self, unet: &UNet, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let m = &self.manifest;
        let (t, fch) = (m.tile_size, m.head.input_channels(&m.unet));
        if let Some((feats, _)) = &self.cache {
            return channel_statistics(feats, fch, t * t);
        }
        let unet = unet.valid();
        let device = unet.conv_in.weight.val().device();
        let spec = FeatureSpec::new(&unet, &m.timesteps(), m.head.feature_levels.clone(), m.noise_seed, 3, t, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57A7);
        let (x, _) = patches(self.train, 32, t, self.settings.augment, &mut rng);
        let mut feats = Vec::with_capacity(32 * fch * t * t);
        for xb in x.chunks(8 * 3 * t * t) {
            let f = spec.features(&unet, Tensor::from_data(TensorData::new(xb.to_vec(), [xb.len() / (3 * t * t), 3, t, t]), &device));
            feats.extend(f.into_data().try_into_vec_as::<f32>().expect("f32 features"));
        }
        channel_statistics(&feats, fch, t * t)
    }
}

impl Objective for SegObjective<'_> {
    fn loss(&mut self, net: &HistoSegNet, _step: usize, rng: &mut ChaCha8Rng) -> Tensor<1> {
        let device = net.device();
        let m = &self.manifest;
        let (t, b) = (m.tile_size, self.settings.batch);
        match &self.cache {
            Some((feats, labels)) => {
                let fch = m.head.input_channels(&m.unet);
                let per = fch * t * t;
                let n = labels.len() / (t * t);
                let idx: Vec<usize> = (0..b).map(|_| below(rng, n)).collect();
                let fb: Vec<f32> = idx.iter().flat_map(|&i| feats[i * per..(i + 1) * per].iter().copied()).collect();
                let yb: Vec<u8> = idx.iter().flat_map(|&i| labels[i * t * t..(i + 1) * t * t].iter().copied()).collect();
                seg_loss(net.head.forward(Tensor::from_data(TensorData::new(fb, [b, fch, t, t]), &device)), &yb)
            }
            None => {
                let spec = FeatureSpec::new(&net.unet, &m.timesteps(), m.head.feature_levels.clone(), m.noise_seed, 3, t, &device);
                let (x, y) = patches(self.train, b, t, self.settings.augment, rng);
                seg_loss(net.logits(&spec, Tensor::from_data(TensorData::new(x, [b, 3, t, t]), &device)), &y)
            }
        }
    }

    fn validate(&mut self, net: &HistoSegNet) -> Result<f64> {
        if self.validation.is_empty() {
            return Ok(0.0);
        }
        let m = &self.manifest;
        let device = net.device();
        let segmenter = Segmenter::new(net.clone(), m.head.feature_levels.clone(), m.tile_size, &m.timesteps(), m.noise_seed, 3, &device);
        let report = evaluate(&segmenter, m, "validation", self.validation, &EvalOptions::pixels_only(), |_| {})?;
        Ok(report.mean_dice_with_background())
    }

    fn score_name(&self) -> &'static str {
        "validation mean Dice"
    }

    fn settings(&self) -> serde_json::Value {
        let (s, m) = (&self.settings, &self.manifest);
        let mut settings = serde_json::json!({
            "task": "segment", "keep_weights_by": "validation mean Dice, background included", "mode": s.mode, "batch": s.batch, "cache_patches": s.cache_patches,
            "augment": [s.augment.flips_and_rotations, s.augment.stain_scale, s.augment.stain_shift],
            "unet": m.unet, "head": m.head, "classes": m.classes, "um_per_px": m.um_per_px, "tile": m.tile_size,
            "timestep": m.timestep, "noise_seed": m.noise_seed,
            "train_images": self.train.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "validation_images": self.validation.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        });
        // validation merges a boundary class into its objects: a run without one is another rule
        if let Some(b) = m.postprocess.boundary_class {
            settings["boundary_class"] = b.into();
        }
        settings
    }
}

/// Trains a segmentation model described by `manifest` on `train` (already at the manifest's
/// µm/px), validating on `validation` (native resolution). The UNet starts from `pretrained`
/// (any model file holding one) or, for the random-init ablation, from scratch.
pub fn train_segmentation(
    pretrained: Option<&Path>,
    manifest: &Manifest,
    train: &[Labeled],
    validation: &[Labeled],
    settings: SegSettings,
    cfg: &RunConfig,
    device: &Device,
    on_progress: impl FnMut(&Progress),
) -> Result<RunOutcome> {
    manifest.validate()?;
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let fch = manifest.head.input_channels(&manifest.unet);
    let (net, new_head) = match pretrained {
        Some(path) => {
            let file = read_model_file(path)?;
            if file.manifest.unet != manifest.unet {
                bail!("the pretrained UNet in {} has another architecture ({:?}) than the one requested ({:?})", path.display(), file.manifest.unet, manifest.unet);
            }
            let unet = file.load_into(UNet::new(&manifest.unet, &ad), "unet", &ad)?;
            // a segmentation model with this very head and these classes goes on training as it
            // is (more steps for a shipped model); any other file gives its UNet and a new head
            let head = SegHead::new(fch, &manifest.head, &ad);
            let names = |m: &Manifest| m.classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            let same_task = file.manifest.head == manifest.head && names(&file.manifest) == names(manifest);
            let head = if same_task {
                eprintln!("{} has this head and these classes: training goes on from its UNet and head", path.display());
                file.load_into(head, "head", &ad)?
            } else {
                head
            };
            (HistoSegNet { head, unet }, !same_task)
        }
        None => (HistoSegNet { head: SegHead::new(fch, &manifest.head, &ad), unet: UNet::new(&manifest.unet, &ad) }, true),
    };
    let mut objective = SegObjective::new(train, validation, manifest, settings, &net.unet, cfg.seed)?;
    // a new head that standardises its features starts from these features' statistics
    let net = if new_head && manifest.head.standardize {
        let (mean, std) = objective.feature_statistics(&net.unet, cfg.seed);
        HistoSegNet { head: net.head.standardized_by(&mean, &std), unet: net.unet }
    } else {
        net
    };
    run(net, &mut objective, manifest, cfg, on_progress)
}
