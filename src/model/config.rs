//! The architecture description shared by the model code, the weight file's manifest and the
//! CLI. Everything needed to rebuild the network lives here, so a model file is self-describing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Image channels (3 for RGB).
    pub in_channels: usize,
    /// Channels of the first (full-resolution) level.
    pub base_channels: usize,
    /// Channel multiplier of each resolution level; level `i` runs at `1 / 2^i` resolution.
    pub channel_mults: Vec<usize>,
    /// Residual blocks per level, in the encoder and in the decoder.
    pub res_blocks: usize,
    /// Groups of every GroupNorm; each level's channel count must be a multiple of it.
    pub norm_groups: usize,
    /// Multi-head self-attention between the two middle blocks (the coarsest level), so every
    /// pixel of a tile can see every other. Absent in model files written before it existed.
    #[serde(default)]
    pub attention: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Decoder levels whose activations feed the head (0 = full resolution).
    pub feature_levels: Vec<usize>,
    /// Channels of the head's hidden 3x3 convolution.
    pub hidden_channels: usize,
    /// Number of output classes.
    pub num_classes: usize,
    /// Side of the hidden convolution's kernel: 3 for the heads trained on labelled images, 1 (a
    /// pixel MLP) for the heads trained from a few painted strokes ([`crate::few_shot`]). Model
    /// files written before it existed have 3.
    #[serde(default = "three")]
    pub kernel: usize,
    /// Timesteps read besides the manifest's `timestep`, in the style of DDPM-Seg: the UNet runs
    /// once per timestep and the head sees their features side by side, the manifest's first.
    /// Empty (and absent from the file) for a model that reads one timestep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_timesteps: Vec<usize>,
    /// The head first standardises each feature channel, `x * scale + shift`, both set from the
    /// training features' mean and standard deviation before the first step and trained with the
    /// head (the batch normalisation of DDPM-Seg's pixel MLP, with its statistics fixed). Without
    /// it the head reads the UNet's raw activations, whose spread differs between UNets (a
    /// diffusion-pretrained one's is a third of a random one's). False (and absent from the file)
    /// for the models written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standardize: bool,
}

fn three() -> usize {
    3
}


impl Default for UNetConfig {
    fn default() -> Self {
        Self { in_channels: 3, base_channels: 32, channel_mults: vec![1, 2, 4], res_blocks: 1, norm_groups: 8, attention: false }
    }
}

/// Channels per attention head (a level with another multiple gets one head).
pub const ATTENTION_HEAD_CHANNELS: usize = 32;

/// Attention heads for `channels`: heads of [`ATTENTION_HEAD_CHANNELS`], else one.
pub fn attention_heads(channels: usize) -> usize {
    if channels % ATTENTION_HEAD_CHANNELS == 0 { channels / ATTENTION_HEAD_CHANNELS } else { 1 }
}

impl UNetConfig {
    pub fn level_channels(&self, level: usize) -> usize {
        self.base_channels * self.channel_mults[level]
    }

    pub fn levels(&self) -> usize {
        self.channel_mults.len()
    }

    /// Width of the timestep embedding fed to every residual block.
    pub fn time_dim(&self) -> usize {
        self.base_channels * 4
    }

    /// Tiles must be divisible by this so every level has an integer size.
    pub fn size_multiple(&self) -> usize {
        1 << (self.levels() - 1)
    }

    /// Channels of the concatenated decoder taps for `levels`.
    pub fn feature_channels(&self, levels: &[usize]) -> usize {
        levels.iter().map(|&l| self.level_channels(l)).sum()
    }

    /// The architecture the shipped models use (issue 13): five levels (full resolution down to
    /// 1/16), 32-64-64-128-128 channels, one residual block per level, attention at 1/16.
    pub fn shipped() -> Self {
        Self { channel_mults: vec![1, 2, 2, 4, 4], attention: true, ..Self::default() }
    }

    /// Multiply-accumulates of one UNet pass over a `tile` x `tile` input, up to the decoder's
    /// last level (what feature extraction runs; the noise-prediction output layer is left out).
    /// Counted for the convolutions and attention; time projections, norms, activations
    /// and resampling are element-wise and left out.
    pub fn macs(&self, tile: usize) -> u64 {
        let px = |level: usize| ((tile >> level) * (tile >> level)) as u64;
        let conv = |cin: usize, cout: usize, k: usize, level: usize| (k * k * cin * cout) as u64 * px(level);
        let block = |cin: usize, cout: usize, level: usize| {
            conv(cin, cout, 3, level) + conv(cout, cout, 3, level) + if cin != cout { conv(cin, cout, 1, level) } else { 0 }
        };
        let last = self.levels() - 1;
        let mut macs = conv(self.in_channels, self.base_channels, 3, 0);
        let mut ch = self.base_channels;
        for level in 0..self.levels() {
            let cout = self.level_channels(level);
            for i in 0..self.res_blocks {
                macs += block(if i == 0 { ch } else { cout }, cout, level);
            }
            ch = cout;
            if level < last {
                macs += conv(ch, ch, 3, level + 1);
            }
        }
        macs += 2 * block(ch, ch, last);
        if self.attention {
            let n = px(last);
            macs += 4 * (ch * ch) as u64 * n + 2 * n * n * ch as u64;
        }
        for level in (0..self.levels()).rev() {
            let cout = self.level_channels(level);
            if level < last {
                macs += conv(ch, ch, 3, level);
            }
            for i in 0..self.res_blocks {
                macs += block(if i == 0 { ch + cout } else { cout }, cout, level);
            }
            ch = cout;
        }
        macs
    }

    /// Checks that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_channels == 0 || self.base_channels == 0 || self.res_blocks == 0 {
            return Err("in_channels, base_channels and res_blocks must be positive".into());
        }
        if self.channel_mults.is_empty() || self.channel_mults.len() > 6 {
            return Err(format!("channel_mults must have 1 to 6 levels, got {}", self.channel_mults.len()));
        }
        for (i, &m) in self.channel_mults.iter().enumerate() {
            let ch = self.base_channels * m;
            if m == 0 || self.norm_groups == 0 || ch % self.norm_groups != 0 {
                return Err(format!("level {i} has {ch} channels, not a positive multiple of norm_groups {}", self.norm_groups));
            }
        }
        Ok(())
    }
}

impl HeadConfig {
    /// A head with the usual 3x3 hidden convolution.
    pub fn new(feature_levels: Vec<usize>, hidden_channels: usize, num_classes: usize) -> Self {
        Self { feature_levels, hidden_channels, num_classes, kernel: 3, extra_timesteps: Vec::new(), standardize: false }
    }

    /// Channels the head reads: the tapped levels' channels, once for each timestep.
    pub fn input_channels(&self, unet: &UNetConfig) -> usize {
        unet.feature_channels(&self.feature_levels) * (1 + self.extra_timesteps.len())
    }

    /// Multiply-accumulates of the head over a `tile` x `tile` feature map.
    pub fn macs(&self, feature_channels: usize, tile: usize) -> u64 {
        let standardize = if self.standardize { feature_channels } else { 0 };
        ((standardize + self.kernel * self.kernel * feature_channels * self.hidden_channels + self.hidden_channels * self.num_classes) * tile * tile) as u64
    }

    pub fn validate(&self, unet: &UNetConfig) -> Result<(), String> {
        if self.feature_levels.is_empty() {
            return Err("the head needs at least one feature level".into());
        }
        if let Some(&bad) = self.feature_levels.iter().find(|&&l| l >= unet.levels()) {
            return Err(format!("feature level {bad} does not exist (the UNet has {} levels)", unet.levels()));
        }
        if self.num_classes < 2 || self.num_classes > 255 {
            return Err(format!("num_classes must be 2..=255, got {}", self.num_classes));
        }
        if self.hidden_channels == 0 {
            return Err("hidden_channels must be positive".into());
        }
        if self.kernel % 2 == 0 || self.kernel > 7 {
            return Err(format!("the head's kernel must be 1, 3, 5 or 7, got {}", self.kernel));
        }
        if let Some(&bad) = self.extra_timesteps.iter().find(|&&t| t >= super::schedule::T) {
            return Err(format!("timestep {bad} is outside 0..{}", super::schedule::T));
        }
        Ok(())
    }
}
