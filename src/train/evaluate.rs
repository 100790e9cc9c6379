//! Evaluation on whole images through the same tiling and blending as the viewer: each image is
//! resampled to the model's µm/px, segmented, and the labels are resampled back (nearest) so that
//! metrics are computed against the original masks. Any number of classes:
//!
//! - pixel Dice and IoU of every class (over all pixels of the set), and their mean over the
//!   foreground classes (for two classes, the foreground's own Dice and IoU);
//! - object metrics, where asked for, on the predicted objects of [`crate::postprocess`] (the
//!   same objects the CLI and the page export: 8-connected, split at the boundary class by
//!   instance-aware models, holes filled where the model asks for it, objects under the minimum
//!   area dropped), against the ground truth's 8-connected components or instance masks:
//!   - GlaS style: object F1 (from TP/FP/FN summed over the set), object Dice and object
//!     Hausdorff (mean over images, in native pixels), against the ground truth's connected
//!     components;
//!   - AJI (mean over images) against the instance masks.
//!
//! GlaS and folders without instance masks get the GlaS-style metrics; MoNuSeg and folders with
//! instance masks get AJI.
//!
//! Masks that carry a model's boundary class (the masks of `dataset --boundaries`, on which an
//! instance-aware model trains and validates) are compared after the same post-processing step
//! that removes that class from every prediction: each boundary pixel joins the object it
//! borders ([`truth_labels`]). Test masks have no boundary pixels and are compared as they are.

use std::borrow::Cow;

use anyhow::Result;
use serde::Serialize;

use super::data::{Dataset, Labeled};
use crate::imageio;
use crate::metrics::{Confusion, Objects, aji, glas_object_scores};
use crate::model::Segmenter;
use crate::postprocess::{self, PostprocessConfig};
use crate::segment::segment_image;
use crate::weights::Manifest;

/// Which metrics beyond pixel Dice and IoU, and how predicted objects are cleaned.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub gland_objects: bool,
    pub aji: bool,
    /// Predicted objects smaller than this many µm² are dropped before object metrics.
    pub min_object_um2: f64,
    /// Test-time augmentation: every tile in the eight orientations of the square, averaged.
    pub tta: bool,
}

impl EvalOptions {
    pub fn pixels_only() -> Self {
        Self { gland_objects: false, aji: false, min_object_um2: 0.0, tta: false }
    }

    /// GlaS: gland object metrics; MoNuSeg: AJI.
    pub fn for_dataset(d: Dataset) -> Self {
        Self { gland_objects: d == Dataset::Glas, aji: d == Dataset::Monuseg, min_object_um2: d.min_object_um2(), tta: false }
    }

    /// A folder dataset: AJI when it has instance masks (as MoNuSeg), else gland-style object
    /// metrics on the masks' connected components (as GlaS). The gland-style Hausdorff compares
    /// every unmatched object with every object of the other side, too slow for hundreds of
    /// nuclei per image.
    pub fn for_folder(has_instances: bool, min_object_um2: f64) -> Self {
        Self { gland_objects: !has_instances, aji: has_instances, min_object_um2, tta: false }
    }
}

/// Object-level metrics; each is present only when asked for.
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
pub struct ClassScore {
    pub class: String,
    pub dice: f64,
    pub iou: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    pub name: String,
    /// Mean foreground Dice on this image.
    pub dice: f64,
    #[serde(flatten)]
    pub objects: ObjectMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: String,
    pub images: usize,
    /// Whether test-time augmentation was on.
    pub tta: bool,
    /// The boundary class of an instance-aware model: no pixel keeps it after post-processing.
    #[serde(skip)]
    pub boundary_class: Option<u8>,
    /// Mean over the object classes (all but the background and a boundary class) of each
    /// class's Dice over all pixels, after post-processing.
    pub pixel_dice: f64,
    pub pixel_iou: f64,
    /// Every class, background first.
    pub per_class: Vec<ClassScore>,
    #[serde(flatten)]
    pub objects: ObjectMetrics,
    pub per_image: Vec<ImageScore>,
}

/// Segments one native-resolution sample with the model; returns labels at native resolution.
pub fn predict(segmenter: &Segmenter, manifest: &Manifest, sample: &Labeled, batch: usize, tta: bool) -> Result<Vec<u8>> {
    let (w, h) = (sample.image.width, sample.image.height);
    let (mw, mh) = imageio::rescaled_size(w, h, sample.um_per_px, manifest.um_per_px);
    let img = imageio::resize(&sample.image, mw, mh);
    let seg = segment_image(segmenter, &img, manifest, batch, tta, |_, _| {})?;
    Ok(imageio::resize_nearest(&seg.labels, mw, mh, w, h))
}

/// The truth labels a post-processed prediction is compared with: `mask` itself, or, where it
/// has pixels of the model's `boundary_class`, the mask with each of them given the class of the
/// object it borders, by the marker watershed that removes that class from predictions.
pub fn truth_labels(mask: &[u8], width: usize, height: usize, boundary_class: Option<u8>) -> Cow<'_, [u8]> {
    match boundary_class.filter(|&b| b != 0) {
        Some(b) if mask.contains(&b) => {
            let cfg = PostprocessConfig { boundary_class: Some(b), ..PostprocessConfig::default() };
            // no hole filling and no minimum size: the µm/px does not matter
            Cow::Owned(postprocess::apply(mask, width, height, &cfg, 1.0).labels)
        }
        _ => Cow::Borrowed(mask),
    }
}

fn class_confusions(pred: &[u8], truth: &[u8], classes: usize) -> Vec<Confusion> {
    (0..classes as u8)
        .map(|k| {
            let p: Vec<bool> = pred.iter().map(|&l| l == k).collect();
            let t: Vec<bool> = truth.iter().map(|&l| l == k).collect();
            Confusion::of(&p, &t)
        })
        .collect()
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

pub fn evaluate(segmenter: &Segmenter, manifest: &Manifest, dataset: &str, test: &[Labeled], opts: &EvalOptions, mut on_image: impl FnMut(usize)) -> Result<EvalReport> {
    let classes = manifest.head.num_classes;
    // the model's post-processing, with the evaluation's minimum object size
    let cfg = PostprocessConfig { min_object_um2: opts.min_object_um2, ..manifest.postprocess.clone() };
    let object_classes = manifest.object_classes();
    let mut conf = vec![Confusion::default(); classes];
    let (mut tp, mut n_pred, mut n_truth) = (0usize, 0usize, 0usize);
    let mut per_image = Vec::new();
    for (i, sample) in test.iter().enumerate() {
        let (w, h) = (sample.image.width, sample.image.height);
        let raw = predict(segmenter, manifest, sample, 4, opts.tta)?;
        let instances = postprocess::apply(&raw, w, h, &cfg, sample.um_per_px);
        let truth = truth_labels(&sample.mask, w, h, cfg.boundary_class);
        let c = class_confusions(&instances.labels, &truth, classes);
        for (total, one) in conf.iter_mut().zip(&c) {
            *total = total.add(*one);
        }
        let mut score = ImageScore { name: sample.name.clone(), dice: mean(object_classes.iter().map(|&k| c[k as usize].dice())), objects: ObjectMetrics::default() };
        if opts.gland_objects || opts.aji {
            let truth: Vec<bool> = sample.mask.iter().map(|&m| m != 0).collect();
            let objects = Objects::from_ids(&instances.ids, w, h);
            let gt = match &sample.instances {
                Some(ids) => Objects::from_ids(ids, w, h),
                None => Objects::from_mask(&truth, w, h),
            };
            if opts.gland_objects {
                let s = glas_object_scores(&objects, &gt);
                tp += s.true_positives;
                n_pred += s.segmented;
                n_truth += s.ground_truth;
                score.objects.object_f1 = Some(s.f1);
                score.objects.object_dice = Some(s.dice);
                score.objects.object_hausdorff = Some(s.hausdorff);
            }
            if opts.aji && sample.instances.is_some() {
                score.objects.aji = Some(aji(&objects, &gt));
            }
        }
        per_image.push(score);
        on_image(i + 1);
    }
    let mean_of = |f: &dyn Fn(&ImageScore) -> Option<f64>| {
        let v: Vec<f64> = per_image.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let per_class: Vec<ClassScore> =
        manifest.classes.iter().zip(&conf).map(|(c, k)| ClassScore { class: c.name.clone(), dice: k.dice(), iou: k.iou() }).collect();
    Ok(EvalReport {
        dataset: dataset.to_string(),
        images: test.len(),
        tta: opts.tta,
        boundary_class: manifest.postprocess.boundary_class,
        pixel_dice: mean(object_classes.iter().map(|&k| per_class[k as usize].dice)),
        pixel_iou: mean(object_classes.iter().map(|&k| per_class[k as usize].iou)),
        objects: ObjectMetrics {
            object_f1: opts.gland_objects.then(|| if n_pred + n_truth == 0 { 1.0 } else { 2.0 * tp as f64 / (n_pred + n_truth) as f64 }),
            object_dice: mean_of(&|s| s.objects.object_dice),
            object_hausdorff: mean_of(&|s| s.objects.object_hausdorff),
            aji: mean_of(&|s| s.objects.aji),
        },
        per_class,
        per_image,
    })
}

impl EvalReport {
    /// The mean of every class's Dice over all pixels, background included (a boundary class
    /// left out: no pixel keeps it after post-processing). Training keeps its weights by this:
    /// a head that calls every pixel one class scores about 1/classes here, while on
    /// `pixel_dice` (object classes only) calling every pixel gland scores about 0.65 on GlaS.
    pub fn mean_dice_with_background(&self) -> f64 {
        mean(self.per_class.iter().enumerate().filter(|(k, _)| self.boundary_class != Some(*k as u8)).map(|(_, c)| c.dice))
    }

    /// A one-line-per-metric table for the terminal.
    pub fn table(&self) -> String {
        let mut rows = vec![
            format!("{:<18} {}", "dataset", self.dataset),
            format!("{:<18} {}", "images", self.images),
            format!("{:<18} {}", "test-time aug.", if self.tta { "8 orientations" } else { "off" }),
            format!("{:<18} {:.4}", "pixel Dice", self.pixel_dice),
            format!("{:<18} {:.4}", "pixel IoU", self.pixel_iou),
        ];
        if self.per_class.len() > 2 {
            // the boundary class is merged into its objects by post-processing: no row
            let shown = self.per_class.iter().enumerate().filter(|(k, _)| Some(*k as u8) != self.boundary_class);
            for (_, c) in shown {
                rows.push(format!("  {:<16} Dice {:.4}  IoU {:.4}", c.class, c.dice, c.iou));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::{self, Split};

    fn report(per_class: Vec<ClassScore>, boundary_class: Option<u8>) -> EvalReport {
        let pixel_dice = per_class[1].dice;
        EvalReport { dataset: "validation".into(), images: 1, tta: false, boundary_class, pixel_dice, pixel_iou: 0.0, per_class, objects: ObjectMetrics::default(), per_image: vec![] }
    }

    fn scores(pred: &[u8], truth: &[u8], classes: usize) -> Vec<ClassScore> {
        class_confusions(pred, truth, classes).iter().enumerate().map(|(k, c)| ClassScore { class: k.to_string(), dice: c.dice(), iou: c.iou() }).collect()
    }

    /// On real GlaS masks a head that calls every pixel gland scores well on the gland Dice
    /// alone, which is why training keeps its weights by the mean over all classes instead.
    #[test]
    fn calling_every_pixel_gland_scores_half_or_less_on_the_mean_dice_with_background() {
        let val: Vec<Labeled> = data::load(&crate::data_dir(), Dataset::Glas, Split::Train).unwrap().into_iter().skip(80).collect();
        let truth: Vec<u8> = val.iter().flat_map(|s| s.mask.iter().map(|&m| (m != 0) as u8)).collect();
        let all_gland = report(scores(&vec![1; truth.len()], &truth, 2), None);
        assert!(all_gland.pixel_dice > 0.6, "gland Dice of an all-gland mask {}", all_gland.pixel_dice);
        assert_eq!(all_gland.per_class[0].dice, 0.0);
        assert!((all_gland.mean_dice_with_background() - all_gland.pixel_dice / 2.0).abs() < 1e-12);
        let perfect = report(scores(&truth, &truth, 2), None);
        assert_eq!(perfect.mean_dice_with_background(), 1.0);
        // a boundary class, which post-processing removes from every prediction, is left out
        let mut with_boundary = scores(&truth, &truth, 2);
        with_boundary.push(ClassScore { class: "boundary".into(), dice: 0.0, iou: 0.0 });
        assert_eq!(report(with_boundary.clone(), Some(2)).mean_dice_with_background(), 1.0);
        assert!((report(with_boundary, None).mean_dice_with_background() - 2.0 / 3.0).abs() < 1e-12);
    }

    /// An instance head validates on the masks of `dataset --boundaries`: on real MoNuSeg masks
    /// with a 2 px nucleus boundary, the truth it is compared with gives every boundary pixel
    /// back to its nucleus, so a post-processed prediction equal to the nuclei scores Dice 1 on
    /// background and nucleus (the mean over all classes, boundary left out, compares with a
    /// 2-class head's); compared with the raw 3-class mask the nucleus class would lose every
    /// boundary pixel.
    #[test]
    fn boundary_pixels_of_the_truth_join_their_objects_as_in_predictions() {
        let samples = data::load(&crate::data_dir(), Dataset::Monuseg, Split::Train).unwrap();
        let sample = &samples[0];
        let (w, h) = (sample.image.width, sample.image.height);
        let three = crate::train::folders::with_boundaries(sample, 2);
        let nuclei: Vec<u8> = three.instances.as_ref().unwrap().iter().map(|&id| (id != 0) as u8).collect();
        let boundary_pixels = three.mask.iter().filter(|&&m| m == 2).count();
        assert!(boundary_pixels > nuclei.iter().filter(|&&m| m == 1).count() / 5, "{boundary_pixels} boundary pixels");
        let truth = truth_labels(&three.mask, w, h, Some(2));
        assert_eq!(&*truth, &nuclei[..], "boundary pixels become nucleus, nothing else changes");
        let merged = report(scores(&nuclei, &truth, 3), Some(2));
        assert_eq!(merged.mean_dice_with_background(), 1.0);
        let raw = report(scores(&nuclei, &three.mask, 3), Some(2));
        assert!(raw.per_class[1].dice < 0.9, "nucleus Dice against the 3-class mask: {}", raw.per_class[1].dice);
        // masks without boundary pixels (test sets) and models without a boundary class: as they are
        assert!(matches!(truth_labels(&nuclei, w, h, Some(2)), Cow::Borrowed(_)));
        assert!(matches!(truth_labels(&three.mask, w, h, None), Cow::Borrowed(_)));
    }
}
