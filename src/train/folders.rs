//! A labelled dataset from any pair of folders: `images/NAME.ext` with `masks/NAME.ext` holding
//! one class index per pixel (0..N-1, 8- or 16-bit grey), and optionally `instances/NAME.ext`
//! holding one id per object (0 = background). GlaS and MoNuSeg are presets of this path whose
//! masks are black and white.
//!
//! Training never starts on a silently wrong dataset: an empty folder, an image without a mask,
//! a mask whose size differs from its image, a label value outside the classes, a class that
//! appears in no mask, and an unreadable file each stop the load with a message naming the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageReader};

use super::data::{IMAGE_EXTENSIONS, Labeled, list_images, read_rgb};

/// How mask pixels map to classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskValues {
    /// The value is the class index, 0..classes.
    ClassIndex,
    /// Black and white: 0 is class 0, anything else class 1 (GlaS and MoNuSeg masks).
    Binary,
}

/// Where a labelled dataset lives and how to read it.
#[derive(Debug, Clone)]
pub struct FolderSpec {
    pub images: PathBuf,
    pub masks: PathBuf,
    pub instances: Option<PathBuf>,
    /// Resolution of the images, µm/px.
    pub um_per_px: f64,
    /// Number of classes, background included.
    pub classes: usize,
    /// Only images whose names start with this (GlaS: `train_`, `testA_`).
    pub prefix: String,
    pub mask_values: MaskValues,
}

impl FolderSpec {
    /// A folder pair whose masks hold class indices.
    pub fn new(images: PathBuf, masks: PathBuf, instances: Option<PathBuf>, um_per_px: f64, classes: usize) -> Self {
        Self { images, masks, instances, um_per_px, classes, prefix: String::new(), mask_values: MaskValues::ClassIndex }
    }
}

/// The file in `dir` with the same name as `image` apart from the extension.
fn partner(dir: &Path, image: &Path) -> Option<PathBuf> {
    let stem = image.file_stem()?;
    let same = dir.join(image.file_name()?);
    if same.is_file() {
        return Some(same);
    }
    IMAGE_EXTENSIONS.iter().map(|ext| dir.join(stem).with_extension(ext)).find(|p| p.is_file())
}

fn open_grey(path: &Path, what: &str) -> Result<DynamicImage> {
    let reader = ImageReader::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let reader = reader.with_guessed_format().with_context(|| format!("cannot read {what} {}", path.display()))?;
    reader.decode().with_context(|| format!("cannot decode {what} {}", path.display()))
}

/// Class indices of a mask file: one grey channel, 8 or 16 bits.
fn read_mask(path: &Path, size: (usize, usize), image: &Path, values: MaskValues, classes: usize) -> Result<Vec<u8>> {
    let img = open_grey(path, "mask")?;
    if (img.width() as usize, img.height() as usize) != size {
        bail!("mask {} is {}x{} but its image {} is {}x{}", path.display(), img.width(), img.height(), image.display(), size.0, size.1);
    }
    let raw: Vec<u16> = match img {
        DynamicImage::ImageLuma8(m) => m.into_raw().into_iter().map(u16::from).collect(),
        DynamicImage::ImageLuma16(m) => m.into_raw(),
        DynamicImage::ImageRgb8(m) if values == MaskValues::Binary => m.pixels().map(|p| p.0.iter().map(|&v| v as u16).max().unwrap_or(0)).collect(),
        other => bail!(
            "mask {} is {:?}, but a mask holds one class index per pixel as 8- or 16-bit greyscale (0 = background, 1, 2, ...)",
            path.display(),
            other.color()
        ),
    };
    match values {
        MaskValues::Binary => Ok(raw.into_iter().map(|v| (v > 0) as u8).collect()),
        MaskValues::ClassIndex => {
            if let Some((i, &v)) = raw.iter().enumerate().find(|&(_, &v)| v as usize >= classes) {
                let hint = if v == 255 { " (a black-and-white mask saved as 0/255? write the foreground as 1)" } else { "" };
                bail!(
                    "mask {} has label value {v} at pixel ({}, {}), but there are {classes} classes, so values must be 0..{}{hint}",
                    path.display(),
                    i % size.0,
                    i / size.0,
                    classes - 1
                );
            }
            Ok(raw.into_iter().map(|v| v as u8).collect())
        }
    }
}

fn read_instances(path: &Path, size: (usize, usize), image: &Path) -> Result<Vec<u32>> {
    let img = open_grey(path, "instance mask")?;
    if (img.width() as usize, img.height() as usize) != size {
        bail!("instance mask {} is {}x{} but its image {} is {}x{}", path.display(), img.width(), img.height(), image.display(), size.0, size.1);
    }
    match img {
        DynamicImage::ImageLuma8(m) => Ok(m.into_raw().into_iter().map(u32::from).collect()),
        DynamicImage::ImageLuma16(m) => Ok(m.into_raw().into_iter().map(u32::from).collect()),
        other => bail!("instance mask {} is {:?}, but instance masks hold one object id per pixel as 8- or 16-bit greyscale", path.display(), other.color()),
    }
}

/// Loads every image of the folder with its mask (and instances), checked as described above.
pub fn load_folder(spec: &FolderSpec) -> Result<Vec<Labeled>> {
    if !(2..=255).contains(&spec.classes) {
        bail!("{} classes: a model needs 2 to 255 classes, background included", spec.classes);
    }
    if !spec.masks.is_dir() {
        bail!("the mask folder {} does not exist", spec.masks.display());
    }
    let files = list_images(&spec.images, &spec.prefix)?;
    if files.is_empty() {
        let prefix = if spec.prefix.is_empty() { String::new() } else { format!(" whose names start with '{}'", spec.prefix) };
        bail!("the image folder {} holds no images{prefix} (PNG, JPEG, BMP or TIFF)", spec.images.display());
    }
    let mut out = Vec::with_capacity(files.len());
    let mut pixels_per_class = vec![0u64; spec.classes];
    for path in &files {
        let mask_path = partner(&spec.masks, path).with_context(|| {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            format!("image {} has no mask: expected {}/{stem}.png (or .tif, .bmp, ...)", path.display(), spec.masks.display())
        })?;
        let image = read_rgb(path)?;
        let size = (image.width, image.height);
        let mask = read_mask(&mask_path, size, path, spec.mask_values, spec.classes)?;
        for &c in &mask {
            pixels_per_class[c as usize] += 1;
        }
        let instances = match &spec.instances {
            Some(dir) => match partner(dir, path) {
                Some(p) => Some(read_instances(&p, size, path)?),
                None => bail!("image {} has no instance mask in {}", path.display(), dir.display()),
            },
            None => None,
        };
        let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
        out.push(Labeled { name, image, mask, instances, um_per_px: spec.um_per_px });
    }
    if let Some(missing) = pixels_per_class.iter().position(|&n| n == 0) {
        bail!(
            "class {missing} appears in no mask of {} ({} images): check the number of classes and the masks",
            spec.masks.display(),
            files.len()
        );
    }
    Ok(out)
}

/// The sample with three classes, 0 background, 1 object interior, 2 object boundary: a
/// foreground pixel is boundary when a pixel within `width` pixels (Chebyshev distance) belongs
/// to another object or to the background. Objects are the instance masks where there are some,
/// else the 4-connected components of the foreground (GlaS: touching glands stay merged).
pub fn with_boundaries(sample: &Labeled, width: usize) -> Labeled {
    let (w, h) = (sample.image.width, sample.image.height);
    let ids: Vec<u32> = match &sample.instances {
        Some(ids) => ids.clone(),
        None => {
            let fg: Vec<bool> = sample.mask.iter().map(|&m| m != 0).collect();
            crate::metrics::Objects::from_mask(&fg, w, h).ids
        }
    };
    let r = width as isize;
    let mask = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            let id = ids[y * w + x];
            if id == 0 {
                return 0;
            }
            let other = (-r..=r).any(|dy| {
                (-r..=r).any(|dx| {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    // outside the image counts as the same object: a cut object has no border there
                    (0..w as isize).contains(&nx) && (0..h as isize).contains(&ny) && ids[ny as usize * w + nx as usize] != id
                })
            });
            if other { 2 } else { 1 }
        })
        .collect();
    Labeled { mask, instances: Some(ids), ..sample.clone() }
}

/// Writes samples as a folder dataset: `images/NAME.png` (or `.jpg` at `jpeg_quality`, to make
/// a compact copy), `masks/NAME.png` (class indices, 8-bit) and, where there are some,
/// `instances/NAME.png` (16-bit ids). Masks are always lossless.
pub fn write_folder(samples: &[Labeled], dir: &Path, jpeg_quality: Option<u8>) -> Result<()> {
    for sub in ["images", "masks", "instances"] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    for s in samples {
        let (w, h) = (s.image.width as u32, s.image.height as u32);
        let name = format!("{}.png", s.name);
        let save = |r: image::ImageResult<()>, what: &str| r.with_context(|| format!("cannot write {what} {}", dir.join(what).join(&name).display()));
        let img = image::RgbImage::from_raw(w, h, s.image.pixels.clone()).context("image size")?;
        match jpeg_quality {
            None => save(img.save(dir.join("images").join(&name)), "images")?,
            Some(q) => {
                let path = dir.join("images").join(format!("{}.jpg", s.name));
                let file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), q);
                img.write_with_encoder(encoder).with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        let mask = image::GrayImage::from_raw(w, h, s.mask.clone()).context("mask size")?;
        save(mask.save(dir.join("masks").join(&name)), "masks")?;
        if let Some(ids) = &s.instances {
            if let Some(&big) = ids.iter().find(|&&i| i > u16::MAX as u32) {
                bail!("{} has instance id {big}, more than a 16-bit PNG holds", s.name);
            }
            let inst = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, ids.iter().map(|&i| i as u16).collect()).context("instance size")?;
            save(inst.save(dir.join("instances").join(&name)), "instances")?;
        }
    }
    Ok(())
}
