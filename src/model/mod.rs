//! The segmentation network, written once and run everywhere: natively by the CLI (with
//! autodiff for training) and in the browser on WebGPU or the flex CPU backend.
//!
//! - [`schedule`]: the DDPM noise schedule (T = 1000, quadratic betas).
//! - [`unet`]: the diffusion UNet that predicts noise.
//! - [`features`]: noising to timestep t and tapping decoder activations (PathSegDiff).
//! - [`head`]: the light FCN head from features to class logits.
//! - [`receptive_field`]: the measured receptive field of an output pixel.

pub mod config;
pub mod features;
pub mod head;
#[cfg(feature = "cli")]
pub mod receptive_field;
pub mod schedule;
pub mod unet;

use burn::prelude::*;
use burn::tensor::activation::softmax;

pub use config::{HeadConfig, UNetConfig};
use head::SegHead;
use schedule::NoiseSchedule;
use unet::UNet;

/// The diffusion UNet plus the segmentation head.
#[derive(Module, Debug)]
pub struct HistoSegNet {
    pub unet: UNet,
    pub head: SegHead,
}

/// What turns a clean tile batch into features: the timesteps, their embeddings, the fixed noise
/// and the tapped decoder levels. Shared by inference and both training modes.
#[derive(Clone)]
pub struct FeatureSpec {
    /// Each timestep the UNet runs at, with its embedding `[1, time_dim]` (broadcast over the
    /// batch). Their features are concatenated in this order.
    pub timesteps: Vec<(usize, Tensor<2>)>,
    pub levels: Vec<usize>,
    /// `[1, C, tile, tile]`, broadcast over the batch.
    pub noise: Tensor<4>,
    pub schedule: NoiseSchedule,
}

impl FeatureSpec {
    pub fn new(unet: &UNet, timesteps: &[usize], levels: Vec<usize>, noise_seed: u64, in_channels: usize, tile: usize, device: &Device) -> Self {
        assert!(!timesteps.is_empty(), "features are read at one timestep at least");
        let timesteps = timesteps.iter().map(|&t| (t, unet.time_embedding(&[t], device))).collect();
        let noise = features::seeded_normal(noise_seed, in_channels * tile * tile);
        let noise = Tensor::<4>::from_data(TensorData::new(noise, [1, in_channels, tile, tile]), device);
        Self { timesteps, levels, noise, schedule: NoiseSchedule::default() }
    }

    /// Noised tiles -> UNet -> concatenated decoder features `[B, F, tile, tile]`, `F` the levels'
    /// channels times the timesteps (each timestep noises with the same fixed field).
    pub fn features(&self, unet: &UNet, x0: Tensor<4>) -> Tensor<4> {
        let batch = x0.dims()[0];
        let noise = self.noise.clone().repeat_dim(0, batch);
        let mut per_timestep: Vec<Tensor<4>> = self
            .timesteps
            .iter()
            .map(|(t, temb)| {
                let x_t = features::q_sample(&self.schedule, x0.clone(), noise.clone(), *t);
                features::decoder_features(unet, x_t, temb.clone().repeat_dim(0, batch), &self.levels)
            })
            .collect();
        if per_timestep.len() == 1 { per_timestep.pop().unwrap() } else { Tensor::cat(per_timestep, 1) }
    }
}

impl HistoSegNet {
    pub fn new(unet: &UNetConfig, head: &HeadConfig, device: &Device) -> Self {
        Self { unet: UNet::new(unet, device), head: SegHead::new(head.input_channels(unet), head, device) }
    }

    /// The device the network's parameters live on.
    pub fn device(&self) -> Device {
        self.head.classify.weight.val().device()
    }

    /// Class logits `[B, classes, tile, tile]` for clean tiles `x0` in [-1, 1].
    pub fn logits(&self, spec: &FeatureSpec, x0: Tensor<4>) -> Tensor<4> {
        self.head.forward(spec.features(&self.unet, x0))
    }
}

/// Everything fixed at inference time: the network and its [`FeatureSpec`], built once and
/// reused for every tile.
pub struct Segmenter {
    pub net: HistoSegNet,
    pub spec: FeatureSpec,
    pub tile_size: usize,
    device: Device,
}

impl Segmenter {
    pub fn new(
        net: HistoSegNet,
        feature_levels: Vec<usize>,
        tile_size: usize,
        timesteps: &[usize],
        noise_seed: u64,
        in_channels: usize,
        device: &Device,
    ) -> Self {
        let spec = FeatureSpec::new(&net.unet, timesteps, feature_levels, noise_seed, in_channels, tile_size, device);
        Self { net, spec, tile_size, device: device.clone() }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Turns planar `[B, C, tile, tile]` pixel data scaled to [-1, 1] into a tensor.
    pub fn input_tensor(&self, planar: Vec<f32>, batch: usize) -> Tensor<4> {
        let c = planar.len() / (batch * self.tile_size * self.tile_size);
        Tensor::from_data(TensorData::new(planar, [batch, c, self.tile_size, self.tile_size]), &self.device)
    }

    /// Decoder features of a batch of clean tiles (what a frozen-UNet head is trained on).
    pub fn features(&self, x0: Tensor<4>) -> Tensor<4> {
        self.spec.features(&self.net.unet, x0)
    }

    /// Class probabilities `[B, classes, tile, tile]` for a batch of clean tiles.
    pub fn probabilities(&self, x0: Tensor<4>) -> Tensor<4> {
        softmax(self.net.logits(&self.spec, x0), 1)
    }

    /// Planar tiles in, planar probabilities out, read back synchronously (native backends; the
    /// browser awaits the readback instead).
    #[cfg(not(target_family = "wasm"))]
    pub fn run(&self, planar: Vec<f32>, batch: usize) -> Vec<f32> {
        let x = self.input_tensor(planar, batch);
        self.probabilities(x).into_data().try_into_vec_as::<f32>().expect("the network outputs f32")
    }
}
