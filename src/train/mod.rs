//! Native-only training and evaluation (feature `cli`): DDPM pretraining, segmentation training
//! in frozen-head or fine-tune mode, and test-set evaluation. Uses the same model, tiling and
//! blending as the viewer.

pub mod data;
pub mod evaluate;
pub mod fit;
pub mod pretrain;
