//! Glass: the empty slide beside the tissue, which must come out as background whatever the
//! network says (to a glands model, bright white glass looks like a gland's lumen).
//!
//! A pixel is *white* when it is bright and colourless: its darkest channel is at least
//! `min_brightness` and its channels differ by at most `max_chroma`. White is smoothed by a
//! majority vote over a window of about [`SMOOTHING_UM`] µm, so dust and single stained pixels
//! neither split glass nor make it. A 4-connected white region is **glass** when it reaches the
//! border of the image and covers at least `min_area_um2` µm²: glass surrounds the tissue and runs
//! off the image, while a lumen or a tear is enclosed by tissue, or small where it is cut by the
//! border. White regions inside the tissue are left to the network. What is left off the glass
//! in pieces smaller than `min_tissue_um2` (dust, debris, a speck of stain: every such piece is
//! surrounded by glass) counts as glass too, so a segmentation skips glass with dust on it.
//!
//! The default area, 0.1 mm², was chosen on the GlaS *training* images at 1 µm/px (a one-off sweep,
//! not kept: smaller areas took lumens cut by the border of those crops); at 0.1 mm² it takes
//! 0.044% of the gland pixels and 1.53% of the background (`tests/glass.rs` prints both).
//!
//! Pure Rust, no platform code; the thresholds are recorded in the model's manifest.

use serde::{Deserialize, Serialize};

use crate::postprocess::{N4, components};

/// Side of the majority-vote window, in µm.
pub const SMOOTHING_UM: f64 = 6.0;

/// When a white region is glass (see the module comment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlassConfig {
    /// The darkest channel of a white pixel is at least this.
    pub min_brightness: u8,
    /// The channels of a white pixel differ by at most this.
    pub max_chroma: u8,
    /// A white region reaching the image border is glass from this area (µm²).
    pub min_area_um2: f64,
    /// A piece off the glass smaller than this (µm²) is dust on the glass, not tissue.
    #[serde(default = "default_min_tissue_um2")]
    pub min_tissue_um2: f64,
}

/// 1000 µm²: a square of about 32 µm, a few cells; glands and tissue fragments are far larger.
fn default_min_tissue_um2() -> f64 {
    1_000.0
}

impl Default for GlassConfig {
    fn default() -> Self {
        Self { min_brightness: 200, max_chroma: 30, min_area_um2: 100_000.0, min_tissue_um2: default_min_tissue_um2() }
    }
}

/// White pixels of interleaved RGB, before smoothing.
pub fn white_pixels(rgb: &[u8], config: &GlassConfig) -> Vec<bool> {
    rgb.chunks_exact(3)
        .map(|p| {
            let (lo, hi) = (p[0].min(p[1]).min(p[2]), p[0].max(p[1]).max(p[2]));
            lo >= config.min_brightness && hi - lo <= config.max_chroma
        })
        .collect()
}

/// Majority vote of `mask` over a `(2r+1)²` window (clipped at the image border).
fn majority(mask: &[bool], width: usize, height: usize, r: usize) -> Vec<bool> {
    if r == 0 {
        return mask.to_vec();
    }
    // summed-area table with a zero row and column in front
    let w1 = width + 1;
    let mut sum = vec![0u32; w1 * (height + 1)];
    for y in 0..height {
        let mut row = 0u32;
        for x in 0..width {
            row += mask[y * width + x] as u32;
            sum[(y + 1) * w1 + x + 1] = sum[y * w1 + x + 1] + row;
        }
    }
    let mut out = vec![false; mask.len()];
    for y in 0..height {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(height));
        for x in 0..width {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(width));
            let n = sum[y1 * w1 + x1] + sum[y0 * w1 + x0] - sum[y0 * w1 + x1] - sum[y1 * w1 + x0];
            let area = ((y1 - y0) * (x1 - x0)) as u32;
            out[y * width + x] = 2 * n > area;
        }
    }
    out
}

/// Glass pixels of an interleaved RGB image at `um_per_px` µm/px.
pub fn glass_mask(rgb: &[u8], width: usize, height: usize, um_per_px: f64, config: &GlassConfig) -> Vec<bool> {
    assert_eq!(rgb.len(), width * height * 3, "RGB of {width}x{height}");
    let r = (SMOOTHING_UM / um_per_px / 2.0).round() as usize;
    let white = majority(&white_pixels(rgb, config), width, height, r);
    let (ids, count) = components(width, height, &N4, |i| white[i], |_, _| true);
    // each white region's area and whether it reaches the border
    let mut area = vec![0usize; count as usize + 1];
    let mut at_border = vec![false; count as usize + 1];
    for (i, &id) in ids.iter().enumerate() {
        let (x, y) = (i % width, i / width);
        area[id as usize] += 1;
        at_border[id as usize] |= x == 0 || y == 0 || x + 1 == width || y + 1 == height;
    }
    let min_pixels = config.min_area_um2 / (um_per_px * um_per_px);
    let glass: Vec<bool> = ids.iter().map(|&id| id != 0 && at_border[id as usize] && area[id as usize] as f64 >= min_pixels).collect();
    if !glass.iter().any(|&g| g) {
        return glass;
    }
    // pieces off the glass: each is bounded by glass (or the image border), so a small one is dust
    let (rest, count) = components(width, height, &N4, |i| !glass[i], |_, _| true);
    let mut area = vec![0usize; count as usize + 1];
    for &id in &rest {
        area[id as usize] += 1;
    }
    let min_tissue = config.min_tissue_um2 / (um_per_px * um_per_px);
    rest.iter().map(|&id| id == 0 || (area[id as usize] as f64) < min_tissue).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 100x100 image at 10 µm/px (100 µm² a pixel): tissue-pink everywhere but for `white`.
    fn image(white: impl Fn(usize, usize) -> bool) -> Vec<u8> {
        (0..100 * 100).flat_map(|i| if white(i % 100, i / 100) { [240, 240, 238] } else { [200, 120, 170] }).collect()
    }

    fn count(mask: &[bool]) -> usize {
        mask.iter().filter(|&&v| v).count()
    }

    #[test]
    fn a_large_white_region_at_the_border_is_glass() {
        // the left 30 columns: 300,000 µm², off the image's edge
        let rgb = image(|x, _| x < 30);
        let glass = glass_mask(&rgb, 100, 100, 10.0, &GlassConfig::default());
        assert_eq!(count(&glass), 3000);
        assert!(glass[50 * 100 + 10] && !glass[50 * 100 + 60]);
    }

    #[test]
    fn an_enclosed_lumen_and_a_small_white_patch_at_the_border_are_not() {
        // a 40x40 lumen (160,000 µm²) inside tissue, and a 20x20 patch (40,000 µm²) in a corner
        let rgb = image(|x, y| (30..70).contains(&x) && (30..70).contains(&y) || x < 20 && y < 20);
        assert_eq!(count(&glass_mask(&rgb, 100, 100, 10.0, &GlassConfig::default())), 0);
    }

    #[test]
    fn dust_on_the_glass_is_glass_and_tissue_is_not() {
        // glass on the left 30 columns with a 3x3 speck (900 µm²) on it; a 6x6 piece (3600 µm²)
        // of tissue alone on the glass at rows 40..46
        let rgb = image(|x, y| x < 30 && !((10..13).contains(&x) && (10..13).contains(&y)) && !((10..16).contains(&x) && (40..46).contains(&y)));
        let glass = glass_mask(&rgb, 100, 100, 10.0, &GlassConfig { min_tissue_um2: 1_000.0, ..Default::default() });
        assert!(glass[11 * 100 + 11], "the speck is dust");
        assert!(!glass[42 * 100 + 12], "the larger piece is tissue");
        assert_eq!(count(&glass), 3000 - 36);
    }

    #[test]
    fn pale_stained_pixels_are_not_white_and_dust_does_not_split_glass() {
        let config = GlassConfig::default();
        assert_eq!(white_pixels(&[240, 200, 225, 250, 250, 250, 150, 150, 150], &config), [false, true, false]);
        // glass with a column of single dark specks every other row still joins into one region
        let rgb = image(|x, y| x < 30 && !(x == 15 && y % 2 == 0));
        let glass = glass_mask(&rgb, 100, 100, 1.0, &GlassConfig { min_area_um2: 2_900.0, ..config });
        assert_eq!(count(&glass), 3000);
    }
}
