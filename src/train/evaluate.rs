//! Evaluation on the held-out test sets, on whole images through the same tiling and blending as
//! the viewer: each image is resampled to the model's µm/px, segmented, and the labels are
//! resampled back (nearest) so that metrics are computed against the original masks.
//!
//! - GlaS testA: pixel Dice and IoU (over all test pixels), object F1 (from TP/FP/FN summed over
//!   the test set), object Dice and object Hausdorff (mean over images, in native pixels).
//! - MoNuSeg test: pixel Dice (over all test pixels) and AJI (mean over images).

use anyhow::Result;
use serde::Serialize;

use super::data::{Dataset, Labeled};
use crate::imageio;
use crate::metrics::{Confusion, Objects, aji, glas_object_scores};
use crate::model::Segmenter;
use crate::segment::segment_image;
use crate::weights::Manifest;

/// Object-level metrics; each is present only for the dataset it belongs to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_dice: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_hausdorff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aji: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    pub name: String,
    pub dice: f64,
    #[serde(flatten)]
    pub objects: ObjectMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: Dataset,
    pub images: usize,
    pub pixel_dice: f64,
    pub pixel_iou: f64,
    #[serde(flatten)]
    pub objects: ObjectMetrics,
    pub per_image: Vec<ImageScore>,
}

/// Predicted objects smaller than this many µm² are dropped before object metrics.
pub fn min_object_um2(dataset: Dataset) -> f64 {
    match dataset {
        Dataset::Glas => 400.0,
        Dataset::Monuseg => 4.0,
    }
}

/// Segments one native-resolution sample with the model; returns labels at native resolution.
pub fn predict(segmenter: &Segmenter, manifest: &Manifest, sample: &Labeled, batch: usize) -> Result<Vec<u8>> {
    let (w, h) = (sample.image.width, sample.image.height);
    let (mw, mh) = imageio::rescaled_size(w, h, sample.um_per_px, manifest.um_per_px);
    let img = imageio::resize(&sample.image, mw, mh);
    let seg = segment_image(segmenter, &img, manifest.overlap, manifest.head.num_classes, batch, |_, _| {})?;
    Ok(imageio::resize_nearest(&seg.labels, mw, mh, w, h))
}

pub fn evaluate(segmenter: &Segmenter, manifest: &Manifest, dataset: Dataset, test: &[Labeled], mut on_image: impl FnMut(usize)) -> Result<EvalReport> {
    let mut conf = Confusion::default();
    let (mut tp, mut n_pred, mut n_truth) = (0usize, 0usize, 0usize);
    let mut per_image = Vec::new();
    for (i, sample) in test.iter().enumerate() {
        let (w, h) = (sample.image.width, sample.image.height);
        let labels = predict(segmenter, manifest, sample, 4)?;
        let pred: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        let truth: Vec<bool> = sample.mask.iter().map(|&m| m == 1).collect();
        let c = Confusion::of(&pred, &truth);
        conf = conf.add(c);
        let min_px = (min_object_um2(dataset) / (sample.um_per_px * sample.um_per_px)).round() as u64;
        let objects = Objects::from_mask(&pred, w, h).without_small(min_px);
        let mut score = ImageScore { name: sample.name.clone(), dice: c.dice(), objects: ObjectMetrics::default() };
        match dataset {
            Dataset::Glas => {
                let gt = Objects::from_mask(&truth, w, h);
                let s = glas_object_scores(&objects, &gt);
                tp += s.true_positives;
                n_pred += s.segmented;
                n_truth += s.ground_truth;
                score.objects.object_f1 = Some(s.f1);
                score.objects.object_dice = Some(s.dice);
                score.objects.object_hausdorff = Some(s.hausdorff);
            }
            Dataset::Monuseg => {
                let gt = match &sample.instances {
                    Some(ids) => Objects::from_ids(ids, w, h),
                    None => Objects::from_mask(&truth, w, h),
                };
                score.objects.aji = Some(aji(&objects, &gt));
            }
        }
        per_image.push(score);
        on_image(i + 1);
    }
    let mean = |f: &dyn Fn(&ImageScore) -> Option<f64>| {
        let v: Vec<f64> = per_image.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Ok(EvalReport {
        dataset,
        images: test.len(),
        pixel_dice: conf.dice(),
        pixel_iou: conf.iou(),
        objects: ObjectMetrics {
            object_f1: (dataset == Dataset::Glas).then(|| if n_pred + n_truth == 0 { 1.0 } else { 2.0 * tp as f64 / (n_pred + n_truth) as f64 }),
            object_dice: mean(&|s| s.objects.object_dice),
            object_hausdorff: mean(&|s| s.objects.object_hausdorff),
            aji: mean(&|s| s.objects.aji),
        },
        per_image,
    })
}

impl EvalReport {
    /// A one-line-per-metric table for the terminal.
    pub fn table(&self) -> String {
        let mut rows = vec![
            format!("{:<18} {}", "dataset", format!("{:?}", self.dataset).to_lowercase()),
            format!("{:<18} {}", "images", self.images),
            format!("{:<18} {:.4}", "pixel Dice", self.pixel_dice),
            format!("{:<18} {:.4}", "pixel IoU", self.pixel_iou),
        ];
        let mut opt = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                rows.push(format!("{name:<18} {v:.4}"));
            }
        };
        opt("object F1", self.objects.object_f1);
        opt("object Dice", self.objects.object_dice);
        opt("object Hausdorff", self.objects.object_hausdorff);
        opt("AJI", self.objects.aji);
        rows.join("\n")
    }
}
