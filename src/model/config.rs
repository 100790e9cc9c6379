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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Decoder levels whose activations feed the head (0 = full resolution).
    pub feature_levels: Vec<usize>,
    /// Channels of the head's hidden 3x3 convolution.
    pub hidden_channels: usize,
    /// Number of output classes.
    pub num_classes: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self { in_channels: 3, base_channels: 32, channel_mults: vec![1, 2, 4], res_blocks: 1, norm_groups: 8 }
    }
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
        Ok(())
    }
}
