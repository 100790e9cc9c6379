//! Segmentation quality metrics on masks. Pure functions, no platform code.
//!
//! - Pixel level: Dice and IoU from a confusion count.
//! - Object level, as in the GlaS challenge (Sirinukunwattana et al., 2017): objects are
//!   8-connected components (see [`crate::postprocess`]); object F1 (a segmented object is a true positive when it covers at
//!   least 50% of a ground-truth object, each ground-truth object matched once), object Dice and
//!   object Hausdorff (both weighted by object area, averaged over the ground-truth and the
//!   segmented side).
//! - Aggregated Jaccard Index (AJI, Kumar et al., 2017) for nuclei instances.

use std::collections::HashMap;

use image::{GrayImage, Luma};
use imageproc::distance_transform::euclidean_squared_distance_transform;
use imageproc::region_labelling::{Connectivity, connected_components};
use serde::Serialize;

/// Confusion counts of a binary prediction against a binary ground truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl Confusion {
    pub fn of(pred: &[bool], truth: &[bool]) -> Self {
        assert_eq!(pred.len(), truth.len(), "masks differ in size");
        let mut c = Confusion::default();
        for (&p, &t) in pred.iter().zip(truth) {
            match (p, t) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    pub fn add(self, o: Confusion) -> Confusion {
        Confusion { tp: self.tp + o.tp, fp: self.fp + o.fp, fn_: self.fn_ + o.fn_, tn: self.tn + o.tn }
    }

    /// `2 TP / (2 TP + FP + FN)`; 1 when both masks are empty.
    pub fn dice(&self) -> f64 {
        let d = 2 * self.tp + self.fp + self.fn_;
        if d == 0 { 1.0 } else { 2.0 * self.tp as f64 / d as f64 }
    }

    /// `TP / (TP + FP + FN)`; 1 when both masks are empty.
    pub fn iou(&self) -> f64 {
        let d = self.tp + self.fp + self.fn_;
        if d == 0 { 1.0 } else { self.tp as f64 / d as f64 }
    }
}

/// Pixel Dice of `class` in `pred` against a binary truth mask.
pub fn dice(pred: &[u8], class: u8, truth: &[bool]) -> f64 {
    let p: Vec<bool> = pred.iter().map(|&l| l == class).collect();
    Confusion::of(&p, truth).dice()
}

/// An instance map: 0 is background, `1..=count` are objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objects {
    pub width: usize,
    pub height: usize,
    pub ids: Vec<u32>,
    pub count: usize,
}

impl Objects {
    /// 8-connected components of a binary mask (the one definition of objects, see
    /// [`crate::postprocess`]).
    pub fn from_mask(mask: &[bool], width: usize, height: usize) -> Self {
        assert_eq!(mask.len(), width * height);
        let img = GrayImage::from_raw(width as u32, height as u32, mask.iter().map(|&m| m as u8).collect()).expect("mask size");
        let cc = connected_components(&img, Connectivity::Eight, Luma([0u8]));
        let ids = cc.into_raw();
        let count = ids.iter().copied().max().unwrap_or(0) as usize;
        Objects { width, height, ids, count }
    }

    /// An existing instance map; ids need not be consecutive, they are renumbered.
    pub fn from_ids(ids: &[u32], width: usize, height: usize) -> Self {
        assert_eq!(ids.len(), width * height);
        let mut map = HashMap::new();
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| {
                if i == 0 {
                    0
                } else {
                    let n = map.len() as u32 + 1;
                    *map.entry(i).or_insert(n)
                }
            })
            .collect();
        Objects { width, height, count: map.len(), ids }
    }

    /// Pixel count of each object, indexed by id (index 0 is the background).
    pub fn areas(&self) -> Vec<u64> {
        let mut a = vec![0u64; self.count + 1];
        for &i in &self.ids {
            a[i as usize] += 1;
        }
        a
    }

    /// Removes objects smaller than `min_area` pixels and renumbers the rest.
    pub fn without_small(&self, min_area: u64) -> Self {
        let areas = self.areas();
        let kept: Vec<u32> = self.ids.iter().map(|&i| if i != 0 && areas[i as usize] >= min_area { i } else { 0 }).collect();
        Objects::from_ids(&kept, self.width, self.height)
    }

    fn bbox(&self) -> Vec<[usize; 4]> {
        let mut b = vec![[usize::MAX, usize::MAX, 0, 0]; self.count + 1];
        for (p, &i) in self.ids.iter().enumerate() {
            if i == 0 {
                continue;
            }
            let (x, y) = (p % self.width, p / self.width);
            let e = &mut b[i as usize];
            e[0] = e[0].min(x);
            e[1] = e[1].min(y);
            e[2] = e[2].max(x);
            e[3] = e[3].max(y);
        }
        b
    }
}

/// Pixels shared by each (first id, second id) pair of overlapping objects.
fn overlaps(a: &Objects, b: &Objects) -> HashMap<(u32, u32), u64> {
    let mut m = HashMap::new();
    for (&i, &j) in a.ids.iter().zip(&b.ids) {
        if i != 0 && j != 0 {
            *m.entry((i, j)).or_insert(0) += 1;
        }
    }
    m
}

/// For each object of `a`, the object of `b` it overlaps most (by shared pixels), if any.
fn best_match(a: &Objects, ov: &HashMap<(u32, u32), u64>, swap: bool) -> Vec<Option<(u32, u64)>> {
    let mut best: Vec<Option<(u32, u64)>> = vec![None; a.count + 1];
    for (&(i, j), &n) in ov {
        let (mine, other) = if swap { (j, i) } else { (i, j) };
        let e = &mut best[mine as usize];
        // ties go to the lower id, so results do not depend on hash order
        if e.is_none_or(|(o, m)| n > m || (n == m && other < o)) {
            *e = Some((other, n));
        }
    }
    best
}

/// Hausdorff distance between object `i` of `a` and object `j` of `b`, in pixels.
fn hausdorff(a: &Objects, i: u32, ba: [usize; 4], b: &Objects, j: u32, bb: [usize; 4]) -> f64 {
    let (x0, y0) = (ba[0].min(bb[0]), ba[1].min(bb[1]));
    let (x1, y1) = (ba[2].max(bb[2]), ba[3].max(bb[3]));
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = |o: &Objects, id: u32| {
        let mut img = GrayImage::new(w as u32, h as u32);
        for y in 0..h {
            for x in 0..w {
                if o.ids[(y0 + y) * o.width + x0 + x] == id {
                    img.put_pixel(x as u32, y as u32, Luma([1]));
                }
            }
        }
        img
    };
    let (ma, mb) = (crop(a, i), crop(b, j));
    let (da, db) = (euclidean_squared_distance_transform(&ma), euclidean_squared_distance_transform(&mb));
    let mut worst = 0.0f64;
    for ((pa, pb), (qa, qb)) in ma.pixels().zip(mb.pixels()).zip(da.pixels().zip(db.pixels())) {
        if pa[0] != 0 {
            worst = worst.max(qb[0]);
        }
        if pb[0] != 0 {
            worst = worst.max(qa[0]);
        }
    }
    worst.sqrt()
}

/// GlaS object-level scores of a segmentation against the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ObjectScores {
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub dice: f64,
    pub hausdorff: f64,
    pub true_positives: usize,
    pub segmented: usize,
    pub ground_truth: usize,
}

/// Object F1, object Dice and object Hausdorff (GlaS). A ground-truth object with no overlapping
/// segmented object is compared, for Hausdorff, with the segmented object nearest to it (and
/// vice versa); with nothing at all on the other side the distance is the image diagonal.
pub fn glas_object_scores(pred: &Objects, truth: &Objects) -> ObjectScores {
    let ov = overlaps(pred, truth);
    let (pa, ta) = (pred.areas(), truth.areas());
    let (pbox, tbox) = (pred.bbox(), truth.bbox());
    let pred_best = best_match(pred, &ov, false);
    let truth_best = best_match(truth, &ov, true);

    // F1: each segmented object, largest-overlap first, claims its best ground-truth object
    let mut order: Vec<u32> = (1..=pred.count as u32).collect();
    order.sort_by_key(|&j| std::cmp::Reverse(pred_best[j as usize].map_or(0, |(_, n)| n)));
    let mut claimed = vec![false; truth.count + 1];
    let mut tp = 0;
    for j in order {
        if let Some((g, n)) = pred_best[j as usize]
            && !claimed[g as usize]
            && 2 * n >= ta[g as usize]
        {
            claimed[g as usize] = true;
            tp += 1;
        }
    }
    let precision = if pred.count == 0 { 0.0 } else { tp as f64 / pred.count as f64 };
    let recall = if truth.count == 0 { 0.0 } else { tp as f64 / truth.count as f64 };
    let f1 = if pred.count + truth.count == 0 { 1.0 } else { 2.0 * tp as f64 / (pred.count + truth.count) as f64 };

    let dice_pair = |inter: u64, x: u64, y: u64| 2.0 * inter as f64 / (x + y) as f64;
    let diagonal = ((pred.width * pred.width + pred.height * pred.height) as f64).sqrt();
    let nearest = |a: &Objects, i: u32, abox: &[[usize; 4]], b: &Objects, bbox: &[[usize; 4]]| -> f64 {
        (1..=b.count as u32).map(|j| hausdorff(a, i, abox[i as usize], b, j, bbox[j as usize])).fold(f64::INFINITY, f64::min)
    };
    let side = |a: &Objects, aa: &[u64], abox: &[[usize; 4]], best: &[Option<(u32, u64)>], b: &Objects, ba: &[u64], bbox: &[[usize; 4]]| {
        let total: u64 = aa[1..].iter().sum();
        let (mut d, mut h) = (0.0, 0.0);
        for i in 1..=a.count as u32 {
            let w = aa[i as usize] as f64 / total as f64;
            let (di, hi) = match best[i as usize] {
                Some((j, n)) => (dice_pair(n, aa[i as usize], ba[j as usize]), hausdorff(a, i, abox[i as usize], b, j, bbox[j as usize])),
                None if b.count > 0 => (0.0, nearest(a, i, abox, b, bbox)),
                None => (0.0, diagonal),
            };
            d += w * di;
            h += w * hi;
        }
        (d, h)
    };
    let (dice, hausdorff_d) = match (pred.count, truth.count) {
        (0, 0) => (1.0, 0.0),
        (0, _) | (_, 0) => (0.0, diagonal),
        _ => {
            let (dg, hg) = side(truth, &ta, &tbox, &truth_best, pred, &pa, &pbox);
            let (ds, hs) = side(pred, &pa, &pbox, &pred_best, truth, &ta, &tbox);
            ((dg + ds) / 2.0, (hg + hs) / 2.0)
        }
    };
    ObjectScores { f1, precision, recall, dice, hausdorff: hausdorff_d, true_positives: tp, segmented: pred.count, ground_truth: truth.count }
}

/// Aggregated Jaccard Index of predicted instances against ground-truth instances.
pub fn aji(pred: &Objects, truth: &Objects) -> f64 {
    let ov = overlaps(pred, truth);
    let (pa, ta) = (pred.areas(), truth.areas());
    let mut by_truth: Vec<Vec<(u32, u64)>> = vec![Vec::new(); truth.count + 1];
    for (&(j, g), &n) in &ov {
        by_truth[g as usize].push((j, n));
    }
    let mut used = vec![false; pred.count + 1];
    let (mut inter, mut union) = (0u64, 0u64);
    for g in 1..=truth.count {
        let best = by_truth[g]
            .iter()
            .map(|&(j, n)| (j, n, n as f64 / (ta[g] + pa[j as usize] - n) as f64))
            .max_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)));
        match best {
            Some((j, n, _)) => {
                inter += n;
                union += ta[g] + pa[j as usize] - n;
                used[j as usize] = true;
            }
            None => union += ta[g],
        }
    }
    union += (1..=pred.count).filter(|&j| !used[j]).map(|j| pa[j]).sum::<u64>();
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an instance map from ASCII art: '.' is background, digits are object ids.
    fn objects(rows: &[&str]) -> Objects {
        let w = rows[0].len();
        let ids: Vec<u32> = rows.iter().flat_map(|r| r.chars().map(|c| c.to_digit(10).unwrap_or(0))).collect();
        Objects::from_ids(&ids, w, rows.len())
    }

    #[test]
    fn dice_and_iou_on_known_masks() {
        // pred: 1 1 0 0 ; truth: 1 0 1 0 -> tp 1, fp 1, fn 1
        let c = Confusion::of(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!(c, Confusion { tp: 1, fp: 1, fn_: 1, tn: 1 });
        assert!((c.dice() - 0.5).abs() < 1e-12);
        assert!((c.iou() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(Confusion::of(&[false], &[false]).dice(), 1.0);
        assert!((dice(&[1, 1, 0, 2], 1, &[true, true, true, false]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn components_are_eight_connected() {
        let mask: Vec<bool> = "11.1.1..1..1".chars().map(|c| c == '1').collect();
        // 3x4:  1 1 .
        //       1 . 1
        //       . . 1
        //       . . 1   -> the diagonal connects: 1 object
        let o = Objects::from_mask(&mask, 3, 4);
        assert_eq!(o.count, 1);
        assert_eq!(o.areas(), vec![6, 6]);
        assert_eq!(o.without_small(7).count, 0);
    }

    #[test]
    fn perfect_segmentation_scores_perfectly() {
        let t = objects(&["11..22", "11..22", "......"]);
        let s = glas_object_scores(&t, &t);
        assert_eq!((s.f1, s.dice, s.hausdorff, s.true_positives), (1.0, 1.0, 0.0, 2));
        assert_eq!(aji(&t, &t), 1.0);
    }

    #[test]
    fn object_scores_on_a_hand_worked_case() {
        // truth: A (4 px, left) and B (2 px, right)
        // pred:  X covers 2 of A's 4 px (50% -> true positive), plus an extra object Y far away
        let truth = objects(&["11....", "11..22", "......"]);
        let pred = objects(&["11....", "......", "....22"]);
        let s = glas_object_scores(&pred, &truth);
        assert_eq!(s.true_positives, 1);
        assert_eq!((s.segmented, s.ground_truth), (2, 2));
        assert!((s.f1 - 0.5).abs() < 1e-12);
        // Dice: truth side: A (w 4/6) vs X: 2*2/(4+2) = 2/3; B (w 2/6) overlaps nothing: 0
        //       pred side:  X (w 2/4) vs A: 2/3;          Y (w 2/4) overlaps nothing: 0
        let expected = 0.5 * (4.0 / 6.0 * 2.0 / 3.0) + 0.5 * (0.5 * 2.0 / 3.0);
        assert!((s.dice - expected).abs() < 1e-12, "{} vs {expected}", s.dice);
        // Hausdorff: A vs X = 1 (A's second row is 1 px from X); B vs nearest (Y) = 1 (B at row 1
        // cols 4-5, Y at row 2 cols 4-5); X vs A = 1; Y vs nearest: B = 1
        assert!((s.hausdorff - 1.0).abs() < 1e-12, "{}", s.hausdorff);
    }

    #[test]
    fn hausdorff_measures_the_farthest_point() {
        // truth: one object of 5 px in a row; pred: its first pixel only -> distance 4
        let truth = objects(&["11111"]);
        let pred = objects(&["1...."]);
        let s = glas_object_scores(&pred, &truth);
        assert!((s.hausdorff - 4.0).abs() < 1e-12, "{}", s.hausdorff);
        assert_eq!(s.true_positives, 0, "1 of 5 px is below the 50% rule");
    }

    #[test]
    fn aji_on_a_hand_worked_case() {
        // truth: G1 = the 2x2 block (4 px), G2 = 2 px top right
        // pred (ids are taken as given): P1 = {(0,0), (0,1), (2,1)} (3 px), P2 = {(4,1)} (1 px)
        // G1's best match is P1: shared 2, union 4 + 3 - 2 = 5; G2 overlaps nothing: union += 2;
        // P2 is unused: union += 1. AJI = 2 / 8
        let truth = objects(&["11.22", "11..."]);
        let pred = objects(&["1....", "1.1.2"]);
        assert!((aji(&pred, &truth) - 0.25).abs() < 1e-12, "{}", aji(&pred, &truth));
    }

    #[test]
    fn empty_cases_are_defined() {
        let empty = objects(&["...", "..."]);
        let one = objects(&["1..", "..."]);
        assert_eq!(glas_object_scores(&empty, &empty).f1, 1.0);
        let s = glas_object_scores(&empty, &one);
        assert_eq!((s.f1, s.dice), (0.0, 0.0));
        assert!(s.hausdorff > 3.0);
        assert_eq!(aji(&empty, &one), 0.0);
    }
}
