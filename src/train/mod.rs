//! Native-only training and evaluation (feature `cli`), with the same model, tiling and blending
//! as the viewer:
//!
//! - [`data`]: the GlaS and MoNuSeg presets, the train/validation split, patches and augmentation;
//! - [`folders`]: any folder pair of images and class-index masks, checked before training;
//! - [`run`]: the resumable training loop (Adam moments, EMA, validation, checkpoints, logs);
//! - [`pretrain`]: DDPM pretraining; [`fit`]: segmentation training (frozen or fine-tune);
//! - [`evaluate`]: per-class and object metrics on whole images;
//! - [`compute`]: the CPU or, with the `gpu` feature, a Vulkan GPU;
//! - [`scripted_user`] and [`filter_features`]: the few-shot benchmark's painting user and its
//!   hand-made feature baseline.

pub mod compute;
pub mod data;
pub mod evaluate;
pub mod filter_features;
pub mod fit;
pub mod folders;
pub mod pretrain;
pub mod run;
pub mod scripted_user;
