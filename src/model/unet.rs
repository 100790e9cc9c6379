//! A small DDPM UNet: sinusoidal timestep embedding, residual blocks with GroupNorm and SiLU,
//! strided-convolution downsampling, nearest-neighbour upsampling, skip connections, and
//! optionally multi-head self-attention at the coarsest level (between the two middle blocks).
//!
//! `forward` predicts the noise epsilon (the pretraining objective); `forward_with_taps` also
//! returns each decoder level's activations, which are the features the segmentation head reads.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use burn::tensor::activation::softmax;

use super::config::{UNetConfig, attention_heads};

/// SiLU as `x / (1 + exp(-x))`: the same function as burn's `x * sigmoid(x)`, written with ops
/// the CPU backend vectorises (twice as fast on flex; see BENCHMARKS.md). For very negative x,
/// exp(-x) overflows to infinity and the result is the correct limit, -0.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() / (x.neg().exp() + 1.0)
}

fn conv3x3(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

fn norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels).init(device)
}

/// GroupNorm -> SiLU -> conv, plus the timestep embedding, twice, with a residual connection.
#[derive(Module, Debug)]
pub struct ResBlock {
    pub(crate) norm1: GroupNorm,
    pub(crate) conv1: Conv2d,
    pub(crate) time_proj: Linear,
    pub(crate) norm2: GroupNorm,
    pub(crate) conv2: Conv2d,
    /// 1x1 projection of the input when the channel count changes.
    pub(crate) skip: Option<Conv2d>,
}

impl ResBlock {
    pub fn new(cin: usize, cout: usize, time_dim: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm1: norm(groups, cin, device),
            conv1: conv3x3(cin, cout, 1, device),
            time_proj: LinearConfig::new(time_dim, cout).init(device),
            norm2: norm(groups, cout, device),
            conv2: conv3x3(cout, cout, 1, device),
            skip: (cin != cout).then(|| Conv2dConfig::new([cin, cout], [1, 1]).init(device)),
        }
    }

    /// `x`: `[B, Cin, H, W]`; `temb`: `[B, time_dim]` (already passed through SiLU).
    pub fn forward(&self, x: Tensor<4>, temb: Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let t = self.time_proj.forward(temb).unsqueeze_dim::<3>(2).unsqueeze_dim::<4>(3);
        let h = h + t;
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let x = match &self.skip {
            Some(proj) => proj.forward(x),
            None => x,
        };
        x + h
    }
}

/// GroupNorm, then multi-head self-attention over all positions (heads of
/// [`super::config::ATTENTION_HEAD_CHANNELS`] channels, or one head), a linear projection, and a residual
/// connection.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub(crate) norm: GroupNorm,
    /// Channels to queries, keys and values, `[C, 3C]`.
    pub(crate) qkv: Linear,
    pub(crate) proj: Linear,
    #[module(skip)]
    pub(crate) heads: usize,
}

impl SelfAttention {
    pub fn new(channels: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm: norm(groups, channels, device),
            qkv: LinearConfig::new(channels, 3 * channels).init(device),
            proj: LinearConfig::new(channels, channels).init(device),
            heads: attention_heads(channels),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (n, heads, d) = (h * w, self.heads, c / self.heads);
        // [B, C, H, W] -> [B, N, C]
        let tokens = self.norm.forward(x.clone()).reshape([b, c, n]).swap_dims(1, 2);
        let qkv = self.qkv.forward(tokens);
        let split = |i: usize| qkv.clone().narrow(2, i * c, c).reshape([b, n, heads, d]).swap_dims(1, 2);
        let (q, k, v) = (split(0), split(1), split(2));
        let weights = softmax(q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt(), 3);
        let out = weights.matmul(v).swap_dims(1, 2).reshape([b, n, c]);
        let out = self.proj.forward(out).swap_dims(1, 2).reshape([b, c, h, w]);
        x + out
    }
}

/// One encoder level: residual blocks, then (except at the lowest level) a stride-2 conv.
#[derive(Module, Debug)]
pub struct DownLevel {
    pub(crate) blocks: Vec<ResBlock>,
    pub(crate) downsample: Option<Conv2d>,
}

/// One decoder level: optional 2x upsampling, concatenation with the encoder skip, residual
/// blocks.
#[derive(Module, Debug)]
pub struct UpLevel {
    pub(crate) upsample_conv: Option<Conv2d>,
    pub(crate) blocks: Vec<ResBlock>,
}

#[derive(Module, Debug)]
pub struct UNet {
    pub(crate) time_mlp_in: Linear,
    pub(crate) time_mlp_out: Linear,
    pub(crate) conv_in: Conv2d,
    pub(crate) down: Vec<DownLevel>,
    pub(crate) mid: Vec<ResBlock>,
    /// Between `mid[0]` and `mid[1]`, when the configuration asks for it.
    pub(crate) mid_attention: Option<SelfAttention>,
    /// Decoder levels, from the lowest resolution up to full resolution.
    pub(crate) up: Vec<UpLevel>,
    pub(crate) norm_out: GroupNorm,
    pub(crate) conv_out: Conv2d,
    #[module(skip)]
    pub(crate) base_channels: usize,
}

/// Sinusoidal embedding of integer timesteps, `[len(ts), dim]`, as in DDPM.
pub fn timestep_embedding(ts: &[usize], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(ts.len() * dim);
    for &t in ts {
        let mut row = vec![0.0f32; dim];
        for i in 0..half {
            let freq = (-(10000f64.ln()) * i as f64 / half as f64).exp();
            let arg = t as f64 * freq;
            row[i] = arg.sin() as f32;
            row[half + i] = arg.cos() as f32;
        }
        out.extend(row);
    }
    out
}

impl UNet {
    pub fn new(config: &UNetConfig, device: &Device) -> Self {
        let g = config.norm_groups;
        let tdim = config.time_dim();
        let levels = config.levels();
        let c0 = config.base_channels;
        let mut down = Vec::with_capacity(levels);
        let mut ch = c0;
        for level in 0..levels {
            let cout = config.level_channels(level);
            let blocks = (0..config.res_blocks)
                .map(|i| ResBlock::new(if i == 0 { ch } else { cout }, cout, tdim, g, device))
                .collect();
            ch = cout;
            let downsample = (level + 1 < levels).then(|| conv3x3(cout, cout, 2, device));
            down.push(DownLevel { blocks, downsample });
        }
        let mid = vec![ResBlock::new(ch, ch, tdim, g, device), ResBlock::new(ch, ch, tdim, g, device)];
        let mid_attention = config.attention.then(|| SelfAttention::new(ch, g, device));
        let mut up = Vec::with_capacity(levels);
        for level in (0..levels).rev() {
            let cout = config.level_channels(level);
            let upsample_conv = (level + 1 < levels).then(|| conv3x3(ch, ch, 1, device));
            let skip_ch = cout;
            let blocks = (0..config.res_blocks)
                .map(|i| ResBlock::new(if i == 0 { ch + skip_ch } else { cout }, cout, tdim, g, device))
                .collect();
            ch = cout;
            up.push(UpLevel { upsample_conv, blocks });
        }
        Self {
            time_mlp_in: LinearConfig::new(c0, tdim).init(device),
            time_mlp_out: LinearConfig::new(tdim, tdim).init(device),
            conv_in: conv3x3(config.in_channels, c0, 1, device),
            down,
            mid,
            mid_attention,
            up,
            norm_out: norm(g, c0, device),
            conv_out: conv3x3(c0, config.in_channels, 1, device),
            base_channels: c0,
        }
    }

    /// The timestep embedding for a batch, `[B, time_dim]`, after the MLP and SiLU. It depends
    /// only on `ts`, so inference computes it once and reuses it for every tile.
    pub fn time_embedding(&self, ts: &[usize], device: &Device) -> Tensor<2> {
        let dim = self.base_channels;
        let raw = Tensor::<2>::from_data(TensorData::new(timestep_embedding(ts, dim), [ts.len(), dim]), device);
        let h = silu(self.time_mlp_in.forward(raw));
        silu(self.time_mlp_out.forward(h))
    }

    /// Runs the network on noised images `x` (`[B, C, H, W]`, H and W divisible by
    /// `2^(levels-1)`). Returns the predicted noise and, for each decoder level from full
    /// resolution (index 0) downwards, that level's output activations.
    pub fn forward_with_taps(&self, x: Tensor<4>, temb: Tensor<2>) -> (Tensor<4>, Vec<Tensor<4>>) {
        let taps = self.decoder_taps(x, temb);
        let eps = self.conv_out.forward(silu(self.norm_out.forward(taps[0].clone())));
        (eps, taps)
    }

    /// The decoder levels' activations only, from full resolution (index 0) downwards: what
    /// feature extraction needs, without the noise-prediction output layer.
    pub fn decoder_taps(&self, x: Tensor<4>, temb: Tensor<2>) -> Vec<Tensor<4>> {
        let mut h = self.conv_in.forward(x);
        let mut skips = Vec::with_capacity(self.down.len());
        for level in &self.down {
            for block in &level.blocks {
                h = block.forward(h, temb.clone());
            }
            skips.push(h.clone());
            if let Some(ds) = &level.downsample {
                h = ds.forward(h);
            }
        }
        for (i, block) in self.mid.iter().enumerate() {
            h = block.forward(h, temb.clone());
            if let (0, Some(attention)) = (i, &self.mid_attention) {
                h = attention.forward(h);
            }
        }
        let mut taps = Vec::with_capacity(self.up.len());
        for level in &self.up {
            if let Some(conv) = &level.upsample_conv {
                let [_, _, hh, ww] = h.dims();
                let opts = InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([hh * 2, ww * 2]);
                h = conv.forward(interpolate(h, opts));
            }
            let skip = skips.pop().expect("one skip per level");
            h = Tensor::cat(vec![h, skip], 1);
            for block in &level.blocks {
                h = block.forward(h, temb.clone());
            }
            taps.push(h.clone());
        }
        taps.reverse();
        taps
    }

    /// Predicted noise for `x` at the embedded timesteps.
    pub fn forward(&self, x: Tensor<4>, temb: Tensor<2>) -> Tensor<4> {
        self.forward_with_taps(x, temb).0
    }
}
