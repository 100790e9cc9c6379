//! The segmentation network, written once and run everywhere: natively by the CLI (with
//! autodiff for training) and in the browser on WebGPU or the flex CPU backend.
//!
//! - [`schedule`]: the DDPM noise schedule (T = 1000, quadratic betas).
//! - [`unet`]: the diffusion UNet that predicts noise.
//! - [`features`]: noising to timestep t and tapping decoder activations (PathSegDiff).
//! - [`head`]: the light FCN head from features to class logits.

pub mod config;
pub mod features;
pub mod head;
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

impl HistoSegNet {
    pub fn new(unet: &UNetConfig, head: &HeadConfig, device: &Device) -> Self {
        let feature_channels = unet.feature_channels(&head.feature_levels);
        Self { unet: UNet::new(unet, device), head: SegHead::new(feature_channels, head, device) }
    }
}

/// Everything fixed at inference time: the network, the timestep, the tapped levels and the
/// noise field. The timestep embedding and the noise tensor are built once and reused for every
/// tile.
pub struct Segmenter {
    pub net: HistoSegNet,
    pub feature_levels: Vec<usize>,
    pub tile_size: usize,
    pub timestep: usize,
    device: Device,
    temb: Tensor<2>,
    noise: Tensor<4>,
    schedule: NoiseSchedule,
}

impl Segmenter {
    pub fn new(
        net: HistoSegNet,
        feature_levels: Vec<usize>,
        tile_size: usize,
        timestep: usize,
        noise_seed: u64,
        in_channels: usize,
        device: &Device,
    ) -> Self {
        let temb = net.unet.time_embedding(&[timestep], device);
        let noise = features::seeded_normal(noise_seed, in_channels * tile_size * tile_size);
        let noise = Tensor::<4>::from_data(TensorData::new(noise, [1, in_channels, tile_size, tile_size]), device);
        Self {
            net,
            feature_levels,
            tile_size,
            timestep,
            device: device.clone(),
            temb,
            noise,
            schedule: NoiseSchedule::default(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Turns planar `[B, C, tile, tile]` pixel data scaled to [-1, 1] into a tensor.
    pub fn input_tensor(&self, planar: Vec<f32>, batch: usize) -> Tensor<4> {
        let c = planar.len() / (batch * self.tile_size * self.tile_size);
        Tensor::from_data(TensorData::new(planar, [batch, c, self.tile_size, self.tile_size]), &self.device)
    }

    /// Class probabilities `[B, classes, tile, tile]` for a batch of clean tiles.
    pub fn probabilities(&self, x0: Tensor<4>) -> Tensor<4> {
        let batch = x0.dims()[0];
        let noise = self.noise.clone().repeat_dim(0, batch);
        let x_t = features::q_sample(&self.schedule, x0, noise, self.timestep);
        let temb = self.temb.clone().repeat_dim(0, batch);
        let feats = features::decoder_features(&self.net.unet, x_t, temb, &self.feature_levels);
        softmax(self.net.head.forward(feats), 1)
    }
}
