//! The DDPM noise schedule of GenSelfDiff-HIS: T = 1000 steps, betas quadratic from 1e-4 to
//! 0.02 (linear in sqrt(beta)), and the forward process q(x_t | x_0).
//!
//! Timesteps are 0-based: `t` runs over `0..T`, and `alpha_bar(t) = prod_{s<=t} (1 - beta_s)`.

/// Number of diffusion steps.
pub const T: usize = 1000;
pub const BETA_START: f64 = 1e-4;
pub const BETA_END: f64 = 0.02;

#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    betas: Vec<f64>,
    alpha_bars: Vec<f64>,
}

impl Default for NoiseSchedule {
    fn default() -> Self {
        Self::quadratic(T, BETA_START, BETA_END)
    }
}

impl NoiseSchedule {
    /// `beta_i = (sqrt(start) + i / (steps - 1) * (sqrt(end) - sqrt(start)))^2`.
    pub fn quadratic(steps: usize, start: f64, end: f64) -> Self {
        assert!(steps >= 2, "a schedule needs at least two steps");
        let (a, b) = (start.sqrt(), end.sqrt());
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                let s = a + (b - a) * i as f64 / (steps - 1) as f64;
                s * s
            })
            .collect();
        let mut alpha_bars = Vec::with_capacity(steps);
        let mut prod = 1.0;
        for beta in &betas {
            prod *= 1.0 - beta;
            alpha_bars.push(prod);
        }
        Self { betas, alpha_bars }
    }

    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    pub fn beta(&self, t: usize) -> f64 {
        self.betas[t]
    }

    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bars[t]
    }

    /// Coefficients `(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))` of
    /// `x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`.
    pub fn q_sample_coefficients(&self, t: usize) -> (f32, f32) {
        let ab = self.alpha_bar(t);
        (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32)
    }

    /// The GenSelfDiff-HIS loss weight `1 - alpha_bar_t`.
    pub fn loss_weight(&self, t: usize) -> f32 {
        (1.0 - self.alpha_bar(t)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let s = NoiseSchedule::default();
        assert_eq!(s.steps(), 1000);
        assert!((s.beta(0) - 1e-4).abs() < 1e-15);
        assert!((s.beta(999) - 0.02).abs() < 1e-12);
        // midpoint: ((0.01 + 0.141421356) / 2)^2, up to the half-step offset of 999 intervals
        let mid = {
            let v = 0.01 + (0.02f64.sqrt() - 0.01) * 500.0 / 999.0;
            v * v
        };
        assert!((s.beta(500) - mid).abs() < 1e-15);
        // reference values computed independently (Python, float64)
        assert!((s.beta(500) - 0.005_742_071_067_688).abs() < 1e-12);
        assert!((s.alpha_bar(100) - 0.971_176_121_419_463).abs() < 1e-12);
        assert!((s.alpha_bar(999) - 0.000_733_412_459_581).abs() < 1e-12);
        // alpha_bar_0 = 1 - 1e-4; alpha_bar_1 = (1 - 1e-4)(1 - beta_1)
        assert!((s.alpha_bar(0) - 0.9999).abs() < 1e-12);
        let beta1 = (0.01 + (0.02f64.sqrt() - 0.01) / 999.0).powi(2);
        assert!((s.alpha_bar(1) - 0.9999 * (1.0 - beta1)).abs() < 1e-12);
        let (a, b) = s.q_sample_coefficients(0);
        assert!((a * a + b * b - 1.0).abs() < 1e-6);
        assert!((s.loss_weight(0) - 1e-4).abs() < 1e-9);
    }
}
