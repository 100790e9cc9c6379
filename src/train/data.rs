//! Training and evaluation data: the GlaS and MoNuSeg presets (which are folder datasets with
//! black-and-white masks, see [`super::folders`]), the train/validation split, unlabelled image
//! folders for pretraining, resampling to a working µm/px, and sampling augmented patches (flips,
//! 90° rotations, H&E stain jitter).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::folders::{FolderSpec, MaskValues, load_folder};
use crate::imageio::{self, RgbImage};
use crate::stain::StainJitter;
use crate::weights::ClassInfo;

/// GlaS images are scanned at 20x, about 0.62 µm/px.
pub const GLAS_UM_PER_PX: f64 = 0.62;
/// MoNuSeg images are TCGA 40x, 0.2527 µm/px.
pub const MONUSEG_UM_PER_PX: f64 = 0.2527;

/// The two public datasets in `../shared/data`, as presets of the folder dataset path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// GlaS colon glands: train_* for training, testA_* for testing.
    Glas,
    /// MoNuSeg nuclei: train/ and test/.
    Monuseg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Dataset {
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Glas => "glas",
            Dataset::Monuseg => "monuseg",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "glas" => Ok(Dataset::Glas),
            "monuseg" => Ok(Dataset::Monuseg),
            other => bail!("unknown dataset '{other}': the presets are glas and monuseg (or give --images and --masks)"),
        }
    }

    /// The folders of a split: images, black-and-white masks (any non-zero value is the
    /// foreground), and MoNuSeg's instance masks.
    pub fn spec(self, data_dir: &Path, split: Split) -> FolderSpec {
        let binary = MaskValues::Binary;
        match self {
            Dataset::Glas => {
                let d = data_dir.join("glas");
                let prefix = if split == Split::Train { "train_" } else { "testA_" };
                FolderSpec { images: d.join("images"), masks: d.join("masks"), instances: None, um_per_px: GLAS_UM_PER_PX, classes: 2, prefix: prefix.into(), mask_values: binary }
            }
            Dataset::Monuseg => {
                let d = data_dir.join("monuseg").join(if split == Split::Train { "train" } else { "test" });
                FolderSpec { images: d.join("images"), masks: d.join("masks"), instances: Some(d.join("instances")), um_per_px: MONUSEG_UM_PER_PX, classes: 2, prefix: String::new(), mask_values: binary }
            }
        }
    }

    /// The class names and overlay colours of the shipped models.
    pub fn classes(self) -> Vec<ClassInfo> {
        let foreground = match self {
            Dataset::Glas => ClassInfo { name: "gland".into(), color: [0x00, 0xc8, 0x53] },
            Dataset::Monuseg => ClassInfo { name: "nucleus".into(), color: [0xff, 0x3d, 0x7f] },
        };
        vec![ClassInfo { name: "background".into(), color: [0, 0, 0] }, foreground]
    }

    /// Predicted objects smaller than this many µm² are dropped before object metrics.
    pub fn min_object_um2(self) -> f64 {
        match self {
            Dataset::Glas => 400.0,
            Dataset::Monuseg => 4.0,
        }
    }
}

/// One image with its masks, at some resolution.
#[derive(Debug, Clone)]
pub struct Labeled {
    pub name: String,
    pub image: RgbImage,
    /// Class index per pixel, 0..classes (0 is the background).
    pub mask: Vec<u8>,
    /// Instance ids (0 background), where the dataset has them.
    pub instances: Option<Vec<u32>>,
    pub um_per_px: f64,
}

impl Labeled {
    /// The same sample at `um_per_px` (bilinear image, nearest masks).
    pub fn rescaled(&self, um_per_px: f64) -> Labeled {
        let (w, h) = imageio::rescaled_size(self.image.width, self.image.height, self.um_per_px, um_per_px);
        let (ow, oh) = (self.image.width, self.image.height);
        Labeled {
            name: self.name.clone(),
            image: imageio::resize(&self.image, w, h),
            mask: imageio::resize_nearest(&self.mask, ow, oh, w, h),
            instances: self.instances.as_ref().map(|i| imageio::resize_nearest(i, ow, oh, w, h)),
            um_per_px,
        }
    }
}

pub(crate) fn read_rgb(path: &Path) -> Result<RgbImage> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svs")) {
        // a whole slide: its full-resolution level, whole (pretraining reads small slides only)
        let mut slide = crate::slide::Slide::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let (w, h) = (slide.width(), slide.height());
        return slide.read_region(0, 0, 0, w, h).with_context(|| format!("cannot read level 0 of {}", path.display()));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    imageio::decode(&bytes).with_context(|| format!("cannot decode {}", path.display()))
}

/// The file types a training folder may hold.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// What an unlabelled pretraining folder may hold: the image types and Aperio slides.
pub const UNLABELED_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "svs"];

fn natural_key(p: &Path) -> (String, u64, String) {
    let s = p.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_string();
    let digits: String = s.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
    (s[..s.len() - digits.len()].to_string(), digits.parse::<u64>().unwrap_or(0), s)
}

/// Image files in `dir` whose names start with `prefix`, in natural order (train_2 before
/// train_10).
pub fn list_images(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    list_files(dir, prefix, &IMAGE_EXTENSIONS)
}

/// Files in `dir` whose names start with `prefix` and end in one of `extensions`, in natural
/// order.
pub fn list_files(dir: &Path, prefix: &str, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            name.starts_with(prefix) && extensions.contains(&ext.as_str())
        })
        .collect();
    files.sort_by_key(|p| natural_key(p));
    Ok(files)
}

/// Loads a labelled split of a preset at its native resolution.
pub fn load(data_dir: &Path, dataset: Dataset, split: Split) -> Result<Vec<Labeled>> {
    load_folder(&dataset.spec(data_dir, split)).with_context(|| format!("is the data at {}?", data_dir.display()))
}

/// The training images split into (train, validation): shuffled by `seed`, `val_fraction` of
/// them held out for validation (at least one image is left to train on), then `label_fraction`
/// of the rest kept. Validation images are never trained on; test images never enter here.
pub fn split_train_val(mut all: Vec<Labeled>, val_fraction: f64, label_fraction: f64, seed: u64) -> Result<(Vec<Labeled>, Vec<Labeled>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        bail!("the validation fraction must be in [0, 1), got {val_fraction}");
    }
    if !(label_fraction > 0.0 && label_fraction <= 1.0) {
        bail!("the label fraction must be in (0, 1], got {label_fraction}");
    }
    if all.is_empty() {
        bail!("no training images");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..all.len()).rev() {
        all.swap(i, below(&mut rng, i + 1));
    }
    let n_val = ((all.len() as f64 * val_fraction).round() as usize).min(all.len() - 1);
    let val: Vec<_> = all.drain(..n_val).collect();
    let n_train = ((all.len() as f64 * label_fraction).round() as usize).clamp(1, all.len());
    all.truncate(n_train);
    Ok((all, val))
}

/// A folder of unlabelled images at a known resolution, for pretraining:
/// `DIR,UM_PER_PX[,NAME_PREFIX]`.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub um_per_px: f64,
    pub prefix: String,
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(format!("'{s}' must be DIR,UM_PER_PX[,NAME_PREFIX]"));
        }
        let um_per_px: f64 = parts[1].parse().map_err(|_| format!("'{}' is not a µm/px value", parts[1]))?;
        if !(um_per_px > 0.0) {
            return Err(format!("µm/px must be positive in '{s}'"));
        }
        Ok(Source { dir: parts[0].into(), um_per_px, prefix: parts.get(2).unwrap_or(&"").to_string() })
    }
}

/// Unlabelled images for pretraining, split by source file into training and validation
/// images (every resolution of one file goes to the same side).
#[derive(Debug, Clone, Default)]
pub struct Unlabeled {
    pub train: Vec<RgbImage>,
    pub validation: Vec<RgbImage>,
    /// Source files used for training and for validation.
    pub files: (usize, usize),
}

/// Loads every source image and resamples it to each working resolution. Every
/// `validation_every`-th file (in name order, 0 for none) is held out for validation.
pub fn load_unlabeled(sources: &[Source], working_um: &[f64], validation_every: usize) -> Result<Unlabeled> {
    let mut out = Unlabeled::default();
    let mut index = 0;
    for src in sources {
        let files = list_files(&src.dir, &src.prefix, &UNLABELED_EXTENSIONS)?;
        if files.is_empty() {
            bail!("no images with prefix '{}' in {}", src.prefix, src.dir.display());
        }
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_lowercase();
            if name.contains("test") {
                bail!("refusing {}: test images must never be used for pretraining", f.display());
            }
            let img = read_rgb(&f)?;
            let held_out = validation_every > 0 && index % validation_every == validation_every - 1;
            index += 1;
            if held_out {
                out.files.1 += 1;
            } else {
                out.files.0 += 1;
            }
            for &um in working_um {
                let (w, h) = imageio::rescaled_size(img.width, img.height, src.um_per_px, um);
                let side = if held_out { &mut out.validation } else { &mut out.train };
                side.push(imageio::resize(&img, w, h));
            }
        }
    }
    Ok(out)
}

/// A uniform float in [0, 1).
pub fn uniform(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// How patches are augmented.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    pub flips_and_rotations: bool,
    /// Stain jitter: concentration scale in 1 ± `stain_scale`, shift in ± `stain_shift`.
    pub stain_scale: f32,
    pub stain_shift: f32,
}

impl Augment {
    pub const NONE: Augment = Augment { flips_and_rotations: false, stain_scale: 0.0, stain_shift: 0.0 };
    pub const DEFAULT: Augment = Augment { flips_and_rotations: true, stain_scale: 0.05, stain_shift: 0.05 };
}

/// Maps output pixel (x, y) of a `size` square through `rot` quarter turns and an optional flip.
fn source_xy(x: usize, y: usize, size: usize, rot: usize, flip: bool) -> (usize, usize) {
    let x = if flip { size - 1 - x } else { x };
    match rot % 4 {
        0 => (x, y),
        1 => (y, size - 1 - x),
        2 => (size - 1 - x, size - 1 - y),
        _ => (size - 1 - y, x),
    }
}

/// A random `size` square patch of `image` (edge-replicated where the image is smaller), and the
/// matching mask patch. Returns planar `[3, size, size]` values in [-1, 1].
pub fn sample_patch(image: &RgbImage, mask: Option<&[u8]>, size: usize, aug: Augment, rng: &mut ChaCha8Rng) -> (Vec<f32>, Option<Vec<u8>>) {
    let x0 = if image.width > size { below(rng, image.width - size + 1) } else { 0 };
    let y0 = if image.height > size { below(rng, image.height - size + 1) } else { 0 };
    let (rot, flip) = if aug.flips_and_rotations { (below(rng, 4), below(rng, 2) == 1) } else { (0, false) };
    let mut rgb = vec![0u8; size * size * 3];
    let mut m = mask.map(|_| vec![0u8; size * size]);
    for y in 0..size {
        for x in 0..size {
            let (sx, sy) = source_xy(x, y, size, rot, flip);
            let ix = (x0 + sx).min(image.width - 1);
            let iy = (y0 + sy).min(image.height - 1);
            let src = (iy * image.width + ix) * 3;
            rgb[(y * size + x) * 3..(y * size + x) * 3 + 3].copy_from_slice(&image.pixels[src..src + 3]);
            if let (Some(out), Some(mask)) = (m.as_mut(), mask) {
                out[y * size + x] = mask[iy * image.width + ix];
            }
        }
    }
    if aug.stain_scale > 0.0 || aug.stain_shift > 0.0 {
        let u = [(); 6].map(|_| uniform(rng));
        StainJitter::from_uniform(u, aug.stain_scale, aug.stain_shift).apply(&mut rgb);
    }
    let planar = (0..3).flat_map(|c| rgb.iter().skip(c).step_by(3).map(|&v| crate::imageio::to_network(v)).collect::<Vec<_>>()).collect();
    (planar, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_and_flips_keep_image_and_mask_aligned() {
        // a 4x4 image whose red channel equals its mask * 200
        let mask: Vec<u8> = (0..16).map(|i| (i % 3 == 0) as u8).collect();
        let pixels: Vec<u8> = mask.iter().flat_map(|&m| [m * 200, 10, 20]).collect();
        let img = RgbImage::new(4, 4, pixels);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let aug = Augment { flips_and_rotations: true, stain_scale: 0.0, stain_shift: 0.0 };
        for _ in 0..20 {
            let (planar, m) = sample_patch(&img, Some(&mask), 4, aug, &mut rng);
            let m = m.unwrap();
            for i in 0..16 {
                let red = ((planar[i] + 1.0) * 127.5).round() as u8;
                assert_eq!(red, m[i] * 200);
            }
            assert_eq!(m.iter().map(|&v| v as u32).sum::<u32>(), 6, "a permutation of the mask");
        }
    }

    #[test]
    fn the_split_is_disjoint_repeatable_and_keeps_one_image_to_train_on() {
        let sample = |i: usize| Labeled { name: format!("img{i}"), image: RgbImage::new(1, 1, vec![0; 3]), mask: vec![0], instances: None, um_per_px: 1.0 };
        let all: Vec<Labeled> = (0..85).map(sample).collect();
        let names = |v: &[Labeled]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let (train, val) = split_train_val(all.clone(), 0.1, 1.0, 0).unwrap();
        assert_eq!((train.len(), val.len()), (76, 9));
        assert!(train.iter().all(|t| !names(&val).contains(&t.name)), "no validation image is trained on");
        let (train2, val2) = split_train_val(all.clone(), 0.1, 1.0, 0).unwrap();
        assert_eq!((names(&train), names(&val)), (names(&train2), names(&val2)), "same seed, same split");
        let (_, val3) = split_train_val(all.clone(), 0.1, 1.0, 1).unwrap();
        assert_ne!(names(&val), names(&val3), "another seed, another split");
        let (few, val4) = split_train_val(all.clone(), 0.1, 0.1, 0).unwrap();
        assert_eq!((few.len(), names(&val4)), (8, names(&val)), "label fraction keeps the validation images");
        let (one, none) = split_train_val(vec![sample(0)], 0.5, 1.0, 0).unwrap();
        assert_eq!((one.len(), none.len()), (1, 0));
        assert!(split_train_val(all, 1.0, 1.0, 0).is_err());
    }

    #[test]
    fn sources_parse() {
        let s: Source = "../shared/data/glas/images,0.62,train_".parse().unwrap();
        assert_eq!((s.um_per_px, s.prefix.as_str()), (0.62, "train_"));
        assert!("dir".parse::<Source>().is_err());
        assert!("dir,-1".parse::<Source>().is_err());
    }
}
