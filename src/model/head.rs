//! The light FCN segmentation head of PathSegDiff: a 3x3 convolution with ReLU over the
//! concatenated decoder features, then a 1x1 convolution to class logits. Heads trained from
//! painted strokes use a 1x1 hidden convolution instead: a pixel MLP.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::config::HeadConfig;

#[derive(Module, Debug)]
pub struct SegHead {
    pub(crate) hidden: Conv2d,
    pub(crate) classify: Conv2d,
}

impl SegHead {
    pub fn new(feature_channels: usize, config: &HeadConfig, device: &Device) -> Self {
        let pad = config.kernel / 2;
        Self {
            hidden: Conv2dConfig::new([feature_channels, config.hidden_channels], [config.kernel, config.kernel])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device),
            classify: Conv2dConfig::new([config.hidden_channels, config.num_classes], [1, 1]).init(device),
        }
    }

    /// `[B, F, H, W]` features to `[B, classes, H, W]` logits.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        self.classify.forward(relu(self.hidden.forward(features)))
    }
}
