//! Measured receptive field of the segmentation network: the gradient of one output pixel's
//! logit with respect to every input pixel, through the real network (noising, UNet, decoder
//! taps, head) on an autodiff device. The *theoretical* field is where that gradient is non-zero
//! at all; the *effective* field (Luo et al., 2016) is the radius holding most of its magnitude.

use burn::prelude::*;

use super::{FeatureSpec, HistoSegNet};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReceptiveField {
    /// Side of the square input tile the measurement ran on, pixels.
    pub tile: usize,
    /// Largest Chebyshev distance from the output pixel at which the gradient is non-zero; a
    /// value of `tile / 2` means the field covers the whole tile (attention reaches every pixel).
    pub theoretical_radius: usize,
    /// Chebyshev radius that holds 50% and 90% of the summed absolute gradient.
    pub effective_radius_50: usize,
    pub effective_radius_90: usize,
}

/// Measures the field of class 1's logit at the tile's centre. `net` is cloned onto `device`'s
/// autodiff counterpart; the noise of `spec` is used as it is at inference.
pub fn measure(net: &HistoSegNet, timesteps: &[usize], levels: &[usize], tile: usize, device: &Device) -> ReceptiveField {
    let ad = device.clone().autodiff();
    let net = net.clone().to_device(&ad);
    let spec = FeatureSpec::new(&net.unet, timesteps, levels.to_vec(), 0, 3, tile, &ad);
    // a mid-grey tile with a little texture, so no GroupNorm sees a constant input
    let values: Vec<f32> = super::features::seeded_normal(1, 3 * tile * tile).iter().map(|v| v * 0.1).collect();
    let x = Tensor::<4>::from_data(TensorData::new(values, [1, 3, tile, tile]), &ad).require_grad();
    let logits = net.logits(&spec, x.clone());
    let c = tile / 2;
    let out = logits.slice([0..1, 1..2, c..c + 1, c..c + 1]).sum();
    let grads = out.backward();
    let g = x.grad(&grads).expect("the input requires a gradient");
    let g: Vec<f32> = g.abs().sum_dim(1).into_data().try_into_vec_as::<f32>().expect("f32 gradient");
    let mut by_radius = vec![0f64; tile];
    let mut theoretical = 0;
    for (i, &v) in g.iter().enumerate() {
        let r = (i % tile).abs_diff(c).max((i / tile).abs_diff(c));
        by_radius[r] += v as f64;
        if v > 0.0 {
            theoretical = theoretical.max(r);
        }
    }
    let total: f64 = by_radius.iter().sum();
    let radius_holding = |share: f64| {
        let mut acc = 0.0;
        by_radius.iter().position(|&v| {
            acc += v;
            acc >= share * total
        })
        .unwrap_or(tile)
    };
    ReceptiveField { tile, theoretical_radius: theoretical, effective_radius_50: radius_holding(0.5), effective_radius_90: radius_holding(0.9) }
}
