//! The light FCN segmentation head of PathSegDiff: a 3x3 convolution with ReLU over the
//! concatenated decoder features, then a 1x1 convolution to class logits. Heads trained from
//! painted strokes use a 1x1 hidden convolution instead: a pixel MLP. Optionally the features are
//! first standardised channel by channel ([`FeatureScale`]).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::config::HeadConfig;

/// `x * scale + shift` per feature channel: a standardisation set from the training features'
/// statistics ([`SegHead::standardized_by`]), trained on with the head.
#[derive(Module, Debug)]
pub struct FeatureScale {
    pub(crate) scale: Param<Tensor<1>>,
    pub(crate) shift: Param<Tensor<1>>,
}

impl FeatureScale {
    fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let c = features.dims()[1];
        features * self.scale.val().reshape([1, c, 1, 1]) + self.shift.val().reshape([1, c, 1, 1])
    }
}

#[derive(Module, Debug)]
pub struct SegHead {
    pub(crate) standardize: Option<FeatureScale>,
    pub(crate) hidden: Conv2d,
    pub(crate) classify: Conv2d,
}

impl SegHead {
    pub fn new(feature_channels: usize, config: &HeadConfig, device: &Device) -> Self {
        let pad = config.kernel / 2;
        let standardize = config.standardize.then(|| FeatureScale {
            scale: Param::from_tensor(Tensor::ones([feature_channels], device)),
            shift: Param::from_tensor(Tensor::zeros([feature_channels], device)),
        });
        Self {
            standardize,
            hidden: Conv2dConfig::new([feature_channels, config.hidden_channels], [config.kernel, config.kernel])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device),
            classify: Conv2dConfig::new([config.hidden_channels, config.num_classes], [1, 1]).init(device),
        }
    }

    /// The head with its standardisation set to `(x - mean) / std` per channel (added to a head
    /// that had none). A channel that never varies is only centred.
    pub fn standardized_by(mut self, mean: &[f32], std: &[f32]) -> Self {
        let device = self.classify.weight.val().device();
        let scale: Vec<f32> = std.iter().map(|&d| if d > 1e-6 { 1.0 / d } else { 1.0 }).collect();
        let shift: Vec<f32> = mean.iter().zip(&scale).map(|(m, k)| -m * k).collect();
        let n = scale.len();
        self.standardize = Some(FeatureScale {
            scale: Param::from_data(TensorData::new(scale, [n]), &device),
            shift: Param::from_data(TensorData::new(shift, [n]), &device),
        });
        self
    }

    /// The features as the hidden convolution sees them: standardised, if the head does that.
    pub fn standardized(&self, features: Tensor<4>) -> Tensor<4> {
        match &self.standardize {
            Some(s) => s.forward(features),
            None => features,
        }
    }

    /// `[B, F, H, W]` features to `[B, classes, H, W]` logits.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        self.classify.forward(relu(self.hidden.forward(self.standardized(features))))
    }
}

/// Per-channel mean and standard deviation of `[N, F, H, W]` features stored flat.
pub fn channel_statistics(features: &[f32], channels: usize, pixels: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut sum, mut sq) = (vec![0f64; channels], vec![0f64; channels]);
    for (chunk, c) in features.chunks_exact(pixels).zip((0..channels).cycle()) {
        for &v in chunk {
            sum[c] += v as f64;
            sq[c] += (v as f64) * (v as f64);
        }
    }
    let n = (features.len() / channels) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(0.0)).sqrt() as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}
