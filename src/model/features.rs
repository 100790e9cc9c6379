//! PathSegDiff feature taps: noise the image to a small timestep t with q(x_t | x_0), run the
//! UNet once, and return the chosen decoder levels' activations upsampled to tile size and
//! concatenated along channels.
//!
//! At inference the noise is a fixed, seeded field of one tile's shape, identical on every
//! backend, so WebGPU, CPU and the native CLI see the same input and produce the same labels.

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::schedule::NoiseSchedule;
use super::unet::UNet;

/// Standard-normal samples from a ChaCha8 stream (Box-Muller on pairs of 32-bit draws). ChaCha's
/// output is fixed by its specification, so these values never change between releases.
pub fn seeded_normal(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // (0, 1] so the logarithm is finite
        let u1 = (rng.next_u32() as f64 + 1.0) / 4_294_967_296.0;
        let u2 = rng.next_u32() as f64 / 4_294_967_296.0;
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(len);
    out
}

/// `x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`, with `eps` broadcast over the
/// batch when it has batch size 1.
pub fn q_sample(schedule: &NoiseSchedule, x0: Tensor<4>, eps: Tensor<4>, t: usize) -> Tensor<4> {
    let (a, b) = schedule.q_sample_coefficients(t);
    x0 * a + eps * b
}

/// Decoder activations of `levels`, bilinearly upsampled to the input size and concatenated.
pub fn decoder_features(unet: &UNet, x_t: Tensor<4>, temb: Tensor<2>, levels: &[usize]) -> Tensor<4> {
    let [_, _, h, w] = x_t.dims();
    let taps = unet.decoder_taps(x_t, temb);
    let picked: Vec<Tensor<4>> = levels
        .iter()
        .map(|&l| {
            let tap = taps[l].clone();
            if tap.dims()[2] == h {
                tap
            } else {
                let opts = InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([h, w]);
                interpolate(tap, opts)
            }
        })
        .collect();
    Tensor::cat(picked, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_standard_normal_and_repeatable() {
        let a = seeded_normal(7, 100_001);
        assert_eq!(a, seeded_normal(7, 100_001));
        assert_ne!(a[..10], seeded_normal(8, 10)[..]);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
