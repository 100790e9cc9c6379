//! histoseg: histopathology segmentation with a diffusion-pretrained UNet feature extractor and
//! a light FCN head, running natively (CLI) and in the browser (WebGPU or CPU).
//!
//! Data flows one way: image bytes → [`slide`] / [`imageio`] → tiles ([`tiling`]) → [`model`] features and
//! logits → blended probabilities ([`segment`]) → labels → [`overlay`] and [`metrics`].
//!
//! Pure core (no platform code): [`slide`], [`tiling`], [`imageio`], [`overlay`], [`metrics`],
//! [`export`], [`label_stream`] and [`label_pyramid`] (a whole slide's objects and labels, streamed),
//! [`strokes`] (painted strokes, GeoJSON and rasters).
//! Model and weights: [`model`], [`weights`]; `onnx` exports the network (CLI only). Browser boundary: `web` (wasm32 only).

pub mod export;
pub mod imageio;
pub mod label_pyramid;
pub mod label_stream;
pub mod metrics;
pub mod model;
pub mod overlay;
pub mod png_stream;
pub mod postprocess;
pub mod resample;
pub mod segment;
pub mod slide;
pub mod stain;
pub mod strokes;
pub mod tiling;
pub mod tissue;
pub mod tta;
pub mod weights;
pub mod whole_slide;

/// Training a head from painted strokes needs autodiff: the CLI has it, the page loads it
/// with the "Train your own" mode (feature `few-shot`).
#[cfg(feature = "few-shot")]
pub mod few_shot;
#[cfg(feature = "cli")]
pub mod onnx;
#[cfg(feature = "cli")]
pub mod train;

#[cfg(target_arch = "wasm32")]
pub mod web;

/// Where the real datasets live: `$HISTOSEG_DATA`, or `../shared/data` relative to the crate.
#[cfg(not(target_family = "wasm"))]
pub fn data_dir() -> std::path::PathBuf {
    match std::env::var_os("HISTOSEG_DATA") {
        Some(p) => p.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}
