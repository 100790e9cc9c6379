//! A scripted user for the few-shot benchmark and tests (issue 15): short straight strokes
//! painted inside the ground truth's regions, as a pathologist would paint "this is gland, this
//! is stroma", with the brush kept clear of every boundary.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::RngCore;

use crate::strokes::Stroke;

/// How the scripted user paints.
#[derive(Debug, Clone, Copy)]
pub struct StrokePlan {
    /// Brush radius, image pixels.
    pub radius: f64,
    /// Longest stroke, image pixels; a stroke that cannot reach half of it is drawn elsewhere.
    pub length: f64,
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    rng.next_u32() as f64 / 4_294_967_296.0
}

/// True when every pixel within `r` of `(x, y)` lies in the image and has class `class`.
fn clear_of_boundaries(mask: &[u8], w: usize, h: usize, x: f64, y: f64, r: f64, class: u8) -> bool {
    if x - r < 0.0 || y - r < 0.0 || x + r >= w as f64 || y + r >= h as f64 {
        return false;
    }
    let (x0, x1, y0, y1) = ((x - r).floor() as usize, (x + r).ceil() as usize, (y - r).floor() as usize, (y + r).ceil() as usize);
    (y0..=y1.min(h - 1)).all(|j| (x0..=x1.min(w - 1)).all(|i| mask[j * w + i] == class))
}

/// One stroke of `class` on `mask` (`w` x `h`, a class per pixel), or `None` if 400 tries found
/// no place for it. The brush (plus a pixel) stays inside the class all along the stroke.
pub fn stroke_in(mask: &[u8], w: usize, h: usize, class: u8, plan: StrokePlan, rng: &mut ChaCha8Rng) -> Option<Stroke> {
    let margin = plan.radius + 1.0;
    for _ in 0..400 {
        let (x, y) = (uniform(rng) * w as f64, uniform(rng) * h as f64);
        if !clear_of_boundaries(mask, w, h, x, y, margin, class) {
            continue;
        }
        let angle = uniform(rng) * std::f64::consts::TAU;
        let (dx, dy) = (angle.cos(), angle.sin());
        let mut len = 0.0;
        while len + 1.0 <= plan.length && clear_of_boundaries(mask, w, h, x + (len + 1.0) * dx, y + (len + 1.0) * dy, margin, class) {
            len += 1.0;
        }
        if len >= plan.length / 2.0 {
            return Some(Stroke { class: Some(class), radius: plan.radius, points: vec![[x, y], [x + len * dx, y + len * dy]] });
        }
    }
    None
}

/// `n` strokes cycling through the classes, foreground first (1, 2, ..., then 0): a class with
/// no room for a stroke is skipped.
pub fn scripted_strokes(mask: &[u8], w: usize, h: usize, classes: usize, n: usize, plan: StrokePlan, rng: &mut ChaCha8Rng) -> Vec<Stroke> {
    let order: Vec<u8> = (1..classes as u8).chain([0]).collect();
    let mut out = Vec::with_capacity(n);
    let mut misses = 0;
    let mut k = 0;
    while out.len() < n && misses < order.len() {
        match stroke_in(mask, w, h, order[k % order.len()], plan, rng) {
            Some(s) => {
                out.push(s);
                misses = 0;
            }
            None => misses += 1,
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn strokes_stay_inside_their_class() {
        // a disc of class 1 in a 100 x 80 field of class 0
        let (w, h) = (100, 80);
        let mask: Vec<u8> = (0..w * h).map(|p| ((p % w) as f64 - 60.0).hypot((p / w) as f64 - 40.0) < 25.0).map(u8::from).collect();
        let plan = StrokePlan { radius: 3.0, length: 20.0 };
        let strokes = scripted_strokes(&mask, w, h, 2, 10, plan, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(strokes.len(), 10);
        assert_eq!(strokes.iter().map(|s| s.class.unwrap()).collect::<Vec<_>>(), [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
        for s in &strokes {
            let mut one = crate::strokes::StrokeSet::new(vec![], "");
            one.strokes.push(s.clone());
            let raster = one.rasterize(0.0, 0.0, 1.0, w, h);
            let painted = raster.iter().filter(|&&v| v > 0).count();
            assert!(painted > 40, "a stroke paints {painted} px");
            assert!(raster.iter().zip(&mask).all(|(&r, &m)| r == 0 || r - 1 == m), "a stroke crosses a boundary");
        }
        // no room for class 1 at all: only background strokes
        let none = scripted_strokes(&vec![0; w * h], w, h, 2, 4, plan, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(none.iter().map(|s| s.class.unwrap()).collect::<Vec<_>>(), [0, 0, 0, 0]);
    }
}
