//! Segmentation quality metrics on label masks. Pure functions over `&[u8]`/`&[bool]` masks.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
