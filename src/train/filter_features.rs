//! The baseline the few-shot benchmark compares diffusion features with: ilastik's hand-made
//! pixel features (issue 15). At each scale σ: Gaussian-smoothed R, G and B; on grey, the
//! Laplacian of Gaussian, gradient magnitude, difference of Gaussians (σ against 1.6σ), the two
//! eigenvalues of the structure tensor (outer scale 2σ) and the two of the Hessian.

use image::{ImageBuffer, Luma};
use imageproc::filter::gaussian_blur_f32;

use crate::imageio::RgbImage;

/// ilastik's default scales.
pub const SIGMAS: [f32; 5] = [0.7, 1.6, 3.5, 5.0, 10.0];

/// Features per scale.
pub const PER_SIGMA: usize = 10;

pub fn channels() -> usize {
    SIGMAS.len() * PER_SIGMA
}

type Plane = ImageBuffer<Luma<f32>, Vec<f32>>;

fn blur(p: &Plane, sigma: f32) -> Plane {
    gaussian_blur_f32(p, sigma)
}

/// Central differences (one-sided at the border): `(d/dx, d/dy)`.
fn gradient(p: &Plane) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let v = p.as_raw();
    let at = |x: usize, y: usize| v[y * w + x];
    let mut gx = vec![0f32; w * h];
    let mut gy = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
            gx[y * w + x] = (at(xr, y) - at(xl, y)) / (xr - xl).max(1) as f32;
            gy[y * w + x] = (at(x, yd) - at(x, yu)) / (yd - yu).max(1) as f32;
        }
    }
    (gx, gy)
}

fn plane(w: usize, h: usize, v: Vec<f32>) -> Plane {
    ImageBuffer::from_raw(w as u32, h as u32, v).expect("plane size")
}

/// Eigenvalues (larger first) of the symmetric 2x2 matrix `[[a, b], [b, c]]`.
fn eigen(a: f32, b: f32, c: f32) -> (f32, f32) {
    let mid = (a + c) / 2.0;
    let r = (((a - c) / 2.0).powi(2) + b * b).sqrt();
    (mid + r, mid - r)
}

/// Planar `[channels(), h, w]` features of `image` (intensities scaled to [0, 1]).
pub fn filter_features(image: &RgbImage) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    let n = w * h;
    let rgb: Vec<Plane> = (0..3).map(|c| plane(w, h, image.pixels.iter().skip(c).step_by(3).map(|&v| v as f32 / 255.0).collect())).collect();
    let grey = plane(w, h, (0..n).map(|p| (rgb[0].as_raw()[p] + rgb[1].as_raw()[p] + rgb[2].as_raw()[p]) / 3.0).collect());
    let mut out = Vec::with_capacity(channels() * n);
    for &s in &SIGMAS {
        for c in &rgb {
            out.extend_from_slice(blur(c, s).as_raw());
        }
        let g = blur(&grey, s);
        let (gx, gy) = gradient(&g);
        let (gxx, gxy) = gradient(&plane(w, h, gx.clone()));
        let (_, gyy) = gradient(&plane(w, h, gy.clone()));
        out.extend((0..n).map(|p| gxx[p] + gyy[p]));
        out.extend((0..n).map(|p| gx[p].hypot(gy[p])));
        let wide = blur(&grey, 1.6 * s);
        out.extend(g.as_raw().iter().zip(wide.as_raw()).map(|(a, b)| a - b));
        let outer = |v: Vec<f32>| blur(&plane(w, h, v), 2.0 * s).into_raw();
        let (sxx, sxy, syy) = (outer(gx.iter().map(|v| v * v).collect()), outer(gx.iter().zip(&gy).map(|(a, b)| a * b).collect()), outer(gy.iter().map(|v| v * v).collect()));
        let st: Vec<(f32, f32)> = (0..n).map(|p| eigen(sxx[p], sxy[p], syy[p])).collect();
        out.extend(st.iter().map(|e| e.0));
        out.extend(st.iter().map(|e| e.1));
        let he: Vec<(f32, f32)> = (0..n).map(|p| eigen(gxx[p], gxy[p], gyy[p])).collect();
        out.extend(he.iter().map(|e| e.0));
        out.extend(he.iter().map(|e| e.1));
    }
    debug_assert_eq!(out.len(), channels() * n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_see_edges_and_blobs() {
        // a dark 9 px square on white
        let (w, h) = (40, 40);
        let px: Vec<u8> = (0..w * h).flat_map(|p| if (15..24).contains(&(p % w)) && (15..24).contains(&(p / w)) { [40u8; 3] } else { [230; 3] }).collect();
        let f = filter_features(&RgbImage::new(w, h, px));
        assert_eq!(f.len(), channels() * w * h);
        let at = |sigma: usize, k: usize, x: usize, y: usize| f[(sigma * PER_SIGMA + k) * w * h + y * w + x];
        // smoothed red is dark inside, light outside
        assert!(at(0, 0, 19, 19) < 0.2 && at(0, 0, 2, 2) > 0.85);
        // gradient magnitude peaks on the square's edge, not in its middle or far away
        assert!(at(1, 4, 15, 19) > 5.0 * at(1, 4, 19, 19).max(at(1, 4, 2, 2)));
        // the Laplacian of a dark blob is positive at its centre (at a blob-sized scale)
        assert!(at(2, 3, 19, 19) > 0.0);
        // the first eigenvalue is never below the second
        for k in [6, 8] {
            assert!((0..w * h).all(|p| f[(2 * PER_SIGMA + k) * w * h + p] >= f[(2 * PER_SIGMA + k + 1) * w * h + p]));
        }
    }
}
