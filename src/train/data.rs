//! Training and evaluation data: reading GlaS, MoNuSeg and plain image folders from disk,
//! resampling to a working µm/px, and sampling augmented patches (flips, 90° rotations, H&E
//! stain jitter).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::RngCore;

use crate::imageio::{self, RgbImage};
use crate::stain::StainJitter;

/// GlaS images are scanned at 20x, about 0.62 µm/px.
pub const GLAS_UM_PER_PX: f64 = 0.62;
/// MoNuSeg images are TCGA 40x, 0.2527 µm/px.
pub const MONUSEG_UM_PER_PX: f64 = 0.2527;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
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

/// One image with its masks, at some resolution.
#[derive(Debug, Clone)]
pub struct Labeled {
    pub name: String,
    pub image: RgbImage,
    /// Class per pixel (0 background, 1 foreground).
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

fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    imageio::decode(&bytes).with_context(|| format!("cannot decode {}", path.display()))
}

fn read_mask(path: &Path, width: usize, height: usize) -> Result<Vec<u8>> {
    let img = image::open(path).with_context(|| format!("cannot read mask {}", path.display()))?.to_luma8();
    if (img.width() as usize, img.height() as usize) != (width, height) {
        bail!("mask {} is {}x{}, its image {width}x{height}", path.display(), img.width(), img.height());
    }
    Ok(img.into_raw().into_iter().map(|v| (v > 0) as u8).collect())
}

fn read_instances(path: &Path) -> Result<Vec<u32>> {
    let img = image::open(path).with_context(|| format!("cannot read instances {}", path.display()))?.to_luma16();
    Ok(img.into_raw().into_iter().map(u32::from).collect())
}

/// Image files in `dir` whose names start with `prefix`, sorted by name.
pub fn list_images(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            name.starts_with(prefix) && matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "bmp")
        })
        .collect();
    // natural order: train_2 before train_10
    files.sort_by_key(|p| {
        let s = p.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let digits: String = s.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
        (s[..s.len() - digits.len()].to_string(), digits.parse::<u64>().unwrap_or(0), s)
    });
    Ok(files)
}

/// Loads a labelled split at its native resolution.
pub fn load(data_dir: &Path, dataset: Dataset, split: Split) -> Result<Vec<Labeled>> {
    let (images, masks, instances, prefix, um) = match (dataset, split) {
        (Dataset::Glas, s) => {
            let d = data_dir.join("glas");
            (d.join("images"), d.join("masks"), None, if s == Split::Train { "train_" } else { "testA_" }, GLAS_UM_PER_PX)
        }
        (Dataset::Monuseg, s) => {
            let d = data_dir.join("monuseg").join(if s == Split::Train { "train" } else { "test" });
            (d.join("images"), d.join("masks"), Some(d.join("instances")), "", MONUSEG_UM_PER_PX)
        }
    };
    let files = list_images(&images, prefix)?;
    if files.is_empty() {
        bail!("no images found in {} (is the data at {}?)", images.display(), data_dir.display());
    }
    files
        .iter()
        .map(|path| {
            let image = read_rgb(path)?;
            let file = path.file_name().unwrap();
            let mask = read_mask(&masks.join(file), image.width, image.height)?;
            let inst = match &instances {
                Some(dir) if dir.join(file).exists() => Some(read_instances(&dir.join(file))?),
                _ => None,
            };
            Ok(Labeled { name: path.file_stem().unwrap().to_string_lossy().into(), image, mask, instances: inst, um_per_px: um })
        })
        .collect()
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

/// Loads every source image and resamples it to each working resolution.
pub fn load_unlabeled(sources: &[Source], working_um: &[f64]) -> Result<Vec<RgbImage>> {
    let mut out = Vec::new();
    for src in sources {
        let files = list_images(&src.dir, &src.prefix)?;
        if files.is_empty() {
            bail!("no images with prefix '{}' in {}", src.prefix, src.dir.display());
        }
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_lowercase();
            if name.contains("test") {
                bail!("refusing {}: test images must never be used for pretraining", f.display());
            }
            let img = read_rgb(&f)?;
            for &um in working_um {
                let (w, h) = imageio::rescaled_size(img.width, img.height, src.um_per_px, um);
                out.push(imageio::resize(&img, w, h));
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
    let planar = (0..3).flat_map(|c| rgb.iter().skip(c).step_by(3).map(|&v| v as f32 / 127.5 - 1.0).collect::<Vec<_>>()).collect();
    (planar, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

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
    fn sources_parse() {
        let s: Source = "../shared/data/glas/images,0.62,train_".parse().unwrap();
        assert_eq!((s.um_per_px, s.prefix.as_str()), (0.62, "train_"));
        assert!("dir".parse::<Source>().is_err());
        assert!("dir,-1".parse::<Source>().is_err());
    }
}
