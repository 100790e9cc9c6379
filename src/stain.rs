//! H&E colour in optical-density space: colour deconvolution into hematoxylin, eosin and
//! residual (DAB) stain concentrations (Ruifrok & Johnston's matrix, as in scikit-image), and the
//! stain-jitter augmentation that scales and shifts each concentration so that learned features
//! hold across staining protocols (Tellez et al., 2018).

/// Rows: the RGB optical density of one unit of hematoxylin, eosin and DAB.
pub const RGB_FROM_HED: [[f32; 3]; 3] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

fn invert(m: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    // cyclic cofactors carry their own sign: inv[i][j] = cof(j, i) / det
    let cof = |r: usize, c: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f32 = (0..3).map(|c| m[0][c] * cof(0, c)).sum();
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| cof(j, i) / det))
}

fn row_times(v: [f32; 3], m: &[[f32; 3]; 3]) -> [f32; 3] {
    [0, 1, 2].map(|j| v[0] * m[0][j] + v[1] * m[1][j] + v[2] * m[2][j])
}

/// Per-stain multiplicative (`alpha`) and additive (`beta`) perturbation of H, E and DAB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StainJitter {
    pub alpha: [f32; 3],
    pub beta: [f32; 3],
}

impl StainJitter {
    pub const IDENTITY: StainJitter = StainJitter { alpha: [1.0; 3], beta: [0.0; 3] };

    /// A jitter drawn from uniform samples `u` in [0, 1): alpha in `1 ± scale`, beta in `± shift`.
    pub fn from_uniform(u: [f32; 6], scale: f32, shift: f32) -> Self {
        let a = |x: f32| 1.0 + scale * (2.0 * x - 1.0);
        let b = |x: f32| shift * (2.0 * x - 1.0);
        StainJitter { alpha: [a(u[0]), a(u[1]), a(u[2])], beta: [b(u[3]), b(u[4]), b(u[5])] }
    }

    /// Applies the jitter in place to interleaved 8-bit RGB.
    pub fn apply(&self, rgb: &mut [u8]) {
        let hed_from_rgb = invert(RGB_FROM_HED);
        for px in rgb.chunks_exact_mut(3) {
            let od = [0, 1, 2].map(|c| -((px[c] as f32 / 255.0).max(1e-6)).ln());
            let mut s = row_times(od, &hed_from_rgb);
            for k in 0..3 {
                s[k] = s[k] * self.alpha[k] + self.beta[k];
            }
            let od2 = row_times(s, &RGB_FROM_HED);
            for c in 0..3 {
                px[c] = ((-od2[c]).exp() * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Mean hematoxylin and eosin concentration of an RGB buffer.
pub fn mean_he(rgb: &[u8]) -> [f32; 2] {
    let hed_from_rgb = invert(RGB_FROM_HED);
    let mut sum = [0.0f64; 2];
    let n = (rgb.len() / 3).max(1) as f64;
    for px in rgb.chunks_exact(3) {
        let od = [0, 1, 2].map(|c| -((px[c] as f32 / 255.0).max(1e-6)).ln());
        let s = row_times(od, &hed_from_rgb);
        sum[0] += s[0] as f64;
        sum[1] += s[1] as f64;
    }
    [(sum[0] / n) as f32, (sum[1] / n) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_is_an_inverse() {
        let inv = invert(RGB_FROM_HED);
        for i in 0..3 {
            let r = row_times(RGB_FROM_HED[i], &inv);
            for (j, v) in r.iter().enumerate() {
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{r:?}");
            }
        }
    }

    #[test]
    fn identity_jitter_keeps_pixels_and_hematoxylin_boost_adds_hematoxylin() {
        let original: Vec<u8> = vec![200, 120, 180, 90, 60, 150, 240, 230, 235, 255, 255, 255];
        let mut same = original.clone();
        StainJitter::IDENTITY.apply(&mut same);
        for (a, b) in original.iter().zip(&same) {
            assert!((*a as i32 - *b as i32).abs() <= 1, "{original:?} vs {same:?}");
        }
        let mut more_h = original.clone();
        StainJitter { alpha: [1.3, 1.0, 1.0], beta: [0.0; 3] }.apply(&mut more_h);
        let (h0, h1) = (mean_he(&original)[0], mean_he(&more_h)[0]);
        assert!(h1 > h0 * 1.15, "hematoxylin {h0} -> {h1}");
        let (e0, e1) = (mean_he(&original)[1], mean_he(&more_h)[1]);
        assert!((e1 - e0).abs() < 0.05 * e0.abs().max(0.1), "eosin {e0} -> {e1}");
    }
}
