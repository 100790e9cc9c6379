//! Opening images of any size as a *slide*: a pyramid of resolution levels read region by region.
//!
//! - TIFF, including tiled and pyramidal TIFF, BigTIFF and Aperio SVS (JPEG tiles with shared
//!   JPEGTables, RGB or YCbCr), is read through the `tiff` crate one tile or strip at a time, so
//!   a slide never has to fit in memory as one RGB buffer. Decoded tiles are kept in a small
//!   least-recently-used cache.
//! - PNG, JPEG and BMP are decoded whole (they are bounded by [`crate::imageio::MAX_PIXELS`]) and
//!   get halved display levels computed from them.
//!
//! The resolution (µm per pixel at level 0) comes from the SVS description (`MPP = ...`) or the
//! TIFF resolution tags when they describe a microscope rather than a 72 dpi default.
//!
//! Pure Rust with no platform code: bytes come from any `Read + Seek` (a file natively, a buffer
//! in the browser).

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};
use std::rc::Rc;

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

use crate::imageio::{self, ImageError, RgbImage};

/// The largest region read at once (the browser and the CLI ask for tiles or model-sized regions).
pub const MAX_REGION_PIXELS: u64 = 64_000_000;
/// Decoded tiles kept for reuse, in bytes.
const CACHE_BYTES: usize = 96 << 20;
/// PNG, JPEG and BMP files are read whole; larger ones are refused before they are read (their
/// pixels could not be held anyway: see [`imageio::MAX_PIXELS`]).
pub const MAX_WHOLE_FILE_BYTES: u64 = 1_000_000_000;
/// Plain images get display levels until the smallest is at most this many pixels across.
const DISPLAY_LEVEL_MIN: usize = 1024;

pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

#[derive(Debug, thiserror::Error)]
pub enum SlideError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot read the file ({0})")]
    Io(String),
    #[error("the TIFF file is damaged or truncated ({0})")]
    CorruptTiff(String),
    #[error("this TIFF cannot be read: {0}")]
    UnsupportedTiff(String),
    #[error("level {0} does not exist (the slide has {1})")]
    NoLevel(usize, usize),
    #[error("a {0}x{1} pixel region is more than histoseg segments at once ({work} pixels at the model's resolution, {label} at the image's): segment a smaller region (the viewer's \"Visible region\" button, or --region X,Y,WIDTH,HEIGHT on the command line)", work = crate::segment::MAX_WORK_PIXELS, label = crate::segment::MAX_LABEL_PIXELS)]
    TooLargeToSegment(usize, usize),
    #[error("the file is {0:.1} GB: PNG, JPEG and BMP files are decoded whole and histoseg takes them up to {max:.1} GB; convert it to a tiled, pyramidal TIFF (for example `vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg`), which is read tile by tile at any size", max = MAX_WHOLE_FILE_BYTES as f64 / 1e9)]
    TooLargeToDecodeWhole(f64),
    #[error("the region lies outside the {0}x{1} pixel image")]
    OutsideImage(usize, usize),
    #[error("a {0}x{1} pixel region is too large to read at once (at most {MAX_REGION_PIXELS} pixels): choose a smaller region or a lower-resolution level")]
    RegionTooLarge(usize, usize),
}

fn tiff_error(e: TiffError) -> SlideError {
    match e {
        TiffError::UnsupportedError(u) => SlideError::UnsupportedTiff(u.to_string()),
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SlideError::CorruptTiff("the file ends early".into())
        }
        TiffError::FormatError(tiff::TiffFormatError::InvalidDimensions(w, h)) => ImageError::Empty(w, h).into(),
        TiffError::LimitsExceeded => SlideError::UnsupportedTiff("a tile or strip is larger than histoseg reads at once".into()),
        other => SlideError::CorruptTiff(other.to_string()),
    }
}

/// One resolution level.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LevelInfo {
    pub width: usize,
    pub height: usize,
    /// Level-0 pixels per pixel of this level (1 for level 0).
    pub downsample: f64,
}

/// A region in level-0 pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Region {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Region {
    /// Parses `X,Y,W,H`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let v: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("'{s}' is not a region: expected X,Y,WIDTH,HEIGHT in pixels"))?;
        match v[..] {
            [x, y, width, height] if width > 0 && height > 0 => Ok(Region { x, y, width, height }),
            _ => Err(format!("'{s}' is not a region: expected X,Y,WIDTH,HEIGHT with a non-zero size")),
        }
    }

    /// The part of the region inside a `width` x `height` image, or `None` if none is.
    pub fn clamp_to(self, width: usize, height: usize) -> Option<Region> {
        let x1 = (self.x + self.width).min(width);
        let y1 = (self.y + self.height).min(height);
        (self.x < x1 && self.y < y1).then(|| Region { x: self.x, y: self.y, width: x1 - self.x, height: y1 - self.y })
    }
}

/// How a TIFF level's samples become RGB.
#[derive(Debug, Clone, Copy)]
struct TiffLevel {
    ifd: usize,
    chunk_width: usize,
    chunk_height: usize,
    chunks_across: usize,
    color: ColorType,
}

struct TileCache {
    tiles: HashMap<(usize, usize), (Rc<RgbImage>, u64)>,
    bytes: usize,
    clock: u64,
}

impl TileCache {
    fn get(&mut self, key: (usize, usize)) -> Option<Rc<RgbImage>> {
        self.clock += 1;
        let clock = self.clock;
        self.tiles.get_mut(&key).map(|(t, used)| {
            *used = clock;
            t.clone()
        })
    }

    fn put(&mut self, key: (usize, usize), tile: Rc<RgbImage>) {
        self.bytes += tile.pixels.len();
        self.clock += 1;
        self.tiles.insert(key, (tile, self.clock));
        while self.bytes > CACHE_BYTES && self.tiles.len() > 1 {
            let oldest = *self.tiles.iter().min_by_key(|(_, (_, used))| *used).expect("non-empty").0;
            let (t, _) = self.tiles.remove(&oldest).expect("present");
            self.bytes -= t.pixels.len();
        }
    }
}

enum Source {
    /// Decoded levels of a plain image (level 0 first).
    Raster(Vec<Rc<RgbImage>>),
    Tiff { decoder: Box<Decoder<Box<dyn ReadSeek>>>, levels: Vec<TiffLevel>, current_ifd: usize, cache: TileCache },
}

/// An opened image or slide.
pub struct Slide {
    /// "PNG", "JPEG", "BMP", "TIFF" or "Aperio SVS".
    pub format: String,
    pub levels: Vec<LevelInfo>,
    /// µm per level-0 pixel, when the file says.
    pub um_per_px: Option<f64>,
    /// What was converted to show the file as 8-bit RGB ("16-bit samples reduced to 8 bits"),
    /// for the user; `None` for plain 8-bit RGB (or YCbCr) pixels.
    pub note: Option<String>,
    source: Source,
}

fn is_tiff(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+"))
}

impl Slide {
    /// Opens an image from its bytes (the format is sniffed from the content).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Slide, SlideError> {
        if is_tiff(&bytes) {
            Self::open_tiff(Box::new(Cursor::new(bytes)))
        } else {
            let format = imageio::sniff_format(&bytes);
            let (image, note) = imageio::decode_with_note(&bytes)?;
            Ok(Slide { note, ..Self::from_image(image, format) })
        }
    }

    /// Opens a file, reading a TIFF lazily from disk.
    pub fn open(path: &std::path::Path) -> Result<Slide, SlideError> {
        let file = std::fs::File::open(path).map_err(|e| SlideError::Io(e.to_string()))?;
        Self::from_reader(Box::new(std::io::BufReader::new(file)))
    }

    /// Opens an image from any seekable reader: a TIFF (or SVS) is read lazily, tile by tile,
    /// so only the header and the tiles asked for are ever read; other formats are read whole
    /// (up to [`MAX_WHOLE_FILE_BYTES`]) and decoded.
    pub fn from_reader(mut reader: Box<dyn ReadSeek>) -> Result<Slide, SlideError> {
        let io = |e: std::io::Error| SlideError::Io(e.to_string());
        let mut head = [0u8; 64];
        let mut n = 0;
        while n < head.len() {
            match reader.read(&mut head[n..]).map_err(io)? {
                0 => break,
                k => n += k,
            }
        }
        reader.rewind().map_err(io)?;
        if is_tiff(&head[..n]) {
            return Self::open_tiff(reader);
        }
        if n < head.len() || image::guess_format(&head).is_err() {
            // empty, or not an image at all: say so from the first bytes, before reading the rest
            imageio::decode_with_note(&head[..n])?;
        }
        let len = reader.seek(std::io::SeekFrom::End(0)).and_then(|l| reader.rewind().map(|_| l)).map_err(io)?;
        if len > MAX_WHOLE_FILE_BYTES {
            return Err(SlideError::TooLargeToDecodeWhole(len as f64 / 1e9));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        reader.read_to_end(&mut bytes).map_err(io)?;
        Self::from_bytes(bytes)
    }

    /// A slide of one decoded image, with halved display levels.
    pub fn from_image(image: RgbImage, format: String) -> Slide {
        let mut images = vec![Rc::new(image)];
        loop {
            let last = images.last().expect("level 0");
            if last.width.max(last.height) <= DISPLAY_LEVEL_MIN || last.width < 2 || last.height < 2 {
                break;
            }
            let next = imageio::resize(last, last.width / 2, last.height / 2);
            images.push(Rc::new(next));
        }
        let w0 = images[0].width as f64;
        let levels = images.iter().map(|i| LevelInfo { width: i.width, height: i.height, downsample: w0 / i.width as f64 }).collect();
        Slide { format, levels, um_per_px: None, note: None, source: Source::Raster(images) }
    }

    fn open_tiff(mut reader: Box<dyn ReadSeek>) -> Result<Slide, SlideError> {
        let file_len = reader.seek(std::io::SeekFrom::End(0)).and_then(|n| reader.rewind().map(|_| n)).map_err(|e| SlideError::Io(e.to_string()))?;
        let mut limits = Limits::default();
        limits.decoding_buffer_size = 64 << 20;
        let mut decoder = Decoder::new(reader).map_err(tiff_error)?.with_limits(limits);
        let description = match decoder.find_tag(Tag::ImageDescription) {
            Ok(Some(v)) => v.into_string().unwrap_or_default(),
            _ => String::new(),
        };
        let aperio = description.starts_with("Aperio");
        let um_per_px = if aperio { aperio_mpp(&description) } else { None }.or_else(|| resolution_um_per_px(&mut decoder));

        // every directory that is a reduced copy of level 0 (same aspect ratio), skipping the
        // label and macro images and masks
        let mut candidates = Vec::new();
        let mut ifd = 0;
        loop {
            let (w, h) = decoder.dimensions().map_err(tiff_error)?;
            let subfile = decoder.find_tag_unsigned::<u32>(Tag::NewSubfileType).ok().flatten().unwrap_or(0);
            let desc = match decoder.find_tag(Tag::ImageDescription) {
                Ok(Some(v)) => v.into_string().unwrap_or_default(),
                _ => String::new(),
            };
            let special = subfile & 4 != 0 || (ifd > 0 && (desc.contains("label") || desc.contains("macro")));
            if !special {
                candidates.push((ifd, w as usize, h as usize));
            }
            if !decoder.more_images() || ifd >= 64 {
                break;
            }
            decoder.next_image().map_err(tiff_error)?;
            ifd += 1;
        }
        let &(_, w0, h0) = candidates.first().ok_or_else(|| SlideError::CorruptTiff("the first image is a mask".into()))?;
        if w0 == 0 || h0 == 0 {
            return Err(ImageError::Empty(w0 as u32, h0 as u32).into());
        }
        let aspect = w0 as f64 / h0 as f64;
        let mut picked: Vec<(usize, usize, usize)> = vec![candidates[0]];
        for &(i, w, h) in &candidates[1..] {
            let same_shape = h > 0 && ((w as f64 / h as f64) / aspect - 1.0).abs() < 0.02;
            if same_shape && w < picked.last().expect("level 0").1 {
                picked.push((i, w, h));
            }
        }
        let mut levels = Vec::new();
        let mut infos = Vec::new();
        for (i, w, h) in picked {
            decoder.seek_to_image(i).map_err(tiff_error)?;
            let level = match describe_level(&mut decoder, i, w).and_then(|l| check_chunks_inside(&mut decoder, file_len).map(|_| l)) {
                Ok(l) => l,
                // a lower level we cannot read is dropped; level 0 must be readable
                Err(e) if i == 0 => return Err(e),
                Err(_) => continue,
            };
            levels.push(level);
            infos.push(LevelInfo { width: w, height: h, downsample: w0 as f64 / w as f64 });
        }
        decoder.seek_to_image(0).map_err(tiff_error)?;
        let format = if aperio { "Aperio SVS" } else { "TIFF" }.to_string();
        Ok(Slide {
            format,
            levels: infos,
            um_per_px,
            note: conversion_note(levels[0].color),
            source: Source::Tiff { decoder: Box::new(decoder), levels, current_ifd: 0, cache: TileCache { tiles: HashMap::new(), bytes: 0, clock: 0 } },
        })
    }

    pub fn width(&self) -> usize {
        self.levels[0].width
    }

    pub fn height(&self) -> usize {
        self.levels[0].height
    }

    /// The level with the fewest pixels whose resolution is still at least `um_per_px`
    /// (µm/px at level 0 is `level0_um`). Level 0 when nothing coarser is fine enough.
    pub fn level_for(&self, level0_um: f64, um_per_px: f64) -> usize {
        let mut best = 0;
        for (i, l) in self.levels.iter().enumerate() {
            if l.downsample * level0_um <= um_per_px * 1.001 {
                best = i;
            }
        }
        best
    }

    /// Reads `width` x `height` pixels at (`x`, `y`) of `level`, in that level's pixels. Parts
    /// outside the image are white.
    pub fn read_region(&mut self, level: usize, x: usize, y: usize, width: usize, height: usize) -> Result<RgbImage, SlideError> {
        let info = *self.levels.get(level).ok_or(SlideError::NoLevel(level, self.levels.len()))?;
        if width as u64 * height as u64 > MAX_REGION_PIXELS {
            return Err(SlideError::RegionTooLarge(width, height));
        }
        let mut out = RgbImage::new(width, height, vec![255; width * height * 3]);
        let Some(inside) = (Region { x, y, width, height }).clamp_to(info.width, info.height) else {
            return Ok(out);
        };
        match &mut self.source {
            Source::Raster(images) => {
                let src = &images[level];
                for row in 0..inside.height {
                    let s = ((inside.y + row) * src.width + inside.x) * 3;
                    let d = ((inside.y - y + row) * width + (inside.x - x)) * 3;
                    out.pixels[d..d + inside.width * 3].copy_from_slice(&src.pixels[s..s + inside.width * 3]);
                }
            }
            Source::Tiff { decoder, levels, current_ifd, cache } => {
                let tl = levels[level];
                let (cw, ch) = (tl.chunk_width, tl.chunk_height);
                for cy in inside.y / ch..=(inside.y + inside.height - 1) / ch {
                    for cx in inside.x / cw..=(inside.x + inside.width - 1) / cw {
                        let index = cy * tl.chunks_across + cx;
                        let tile = match cache.get((level, index)) {
                            Some(t) => t,
                            None => {
                                if *current_ifd != tl.ifd {
                                    decoder.seek_to_image(tl.ifd).map_err(tiff_error)?;
                                    *current_ifd = tl.ifd;
                                }
                                let t = Rc::new(read_chunk_rgb(decoder, &tl, index)?);
                                cache.put((level, index), t.clone());
                                t
                            }
                        };
                        // copy the overlap of this chunk and the region
                        let (tx0, ty0) = (cx * cw, cy * ch);
                        let ox0 = tx0.max(inside.x);
                        let oy0 = ty0.max(inside.y);
                        let ox1 = (tx0 + tile.width).min(inside.x + inside.width);
                        let oy1 = (ty0 + tile.height).min(inside.y + inside.height);
                        if ox0 >= ox1 || oy0 >= oy1 {
                            continue;
                        }
                        let n = (ox1 - ox0) * 3;
                        for yy in oy0..oy1 {
                            let s = ((yy - ty0) * tile.width + (ox0 - tx0)) * 3;
                            let d = ((yy - y) * width + (ox0 - x)) * 3;
                            out.pixels[d..d + n].copy_from_slice(&tile.pixels[s..s + n]);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The pixels of `level` under a level-0 `region`: first column and row, width and height
    /// (at least one each).
    pub fn level_rect(&self, level: usize, region: Region) -> (usize, usize, usize, usize) {
        let ds = self.levels[level].downsample;
        let (lx, ly) = ((region.x as f64 / ds).floor() as usize, (region.y as f64 / ds).floor() as usize);
        (lx, ly, ((region.width as f64 / ds).round() as usize).max(1), ((region.height as f64 / ds).round() as usize).max(1))
    }

    /// Reads a level-0 `region` at the resolution `um_per_px`, using the coarsest pyramid level
    /// that is still fine enough and resampling the rest of the way. `level0_um` is the slide's
    /// resolution. Returns the image at the requested resolution.
    pub fn read_at_resolution(&mut self, region: Region, level0_um: f64, um_per_px: f64) -> Result<RgbImage, SlideError> {
        let level = self.level_for(level0_um, um_per_px);
        let (lx, ly, lw, lh) = self.level_rect(level, region);
        let img = self.read_region(level, lx, ly, lw, lh)?;
        let (tw, th) = imageio::rescaled_size(region.width, region.height, level0_um, um_per_px);
        Ok(imageio::resize(&img, tw, th))
    }
}

impl Slide {
    /// Reads a level-0 `region` like [`Slide::read_region`] does, but in pieces of columns, so
    /// a band as wide as a whole slide is not refused by the per-read limit.
    pub fn read_wide(&mut self, level: usize, x: usize, y: usize, width: usize, height: usize) -> Result<RgbImage, SlideError> {
        let piece = ((MAX_REGION_PIXELS as usize / height.max(1)).max(1)).min(width.max(1));
        if piece >= width {
            return self.read_region(level, x, y, width, height);
        }
        let mut out = RgbImage::new(width, height, vec![0; width * height * 3]);
        for x0 in (0..width).step_by(piece) {
            let w = piece.min(width - x0);
            let part = self.read_region(level, x + x0, y, w, height)?;
            for r in 0..height {
                out.pixels[(r * width + x0) * 3..(r * width + x0 + w) * 3].copy_from_slice(&part.pixels[r * w * 3..(r + 1) * w * 3]);
            }
        }
        Ok(out)
    }

    /// A level-0 `region` sampled every `step` pixels across and down (a picture of it at 1/`step`,
    /// `ceil(width / step)` x `ceil(height / step)`): output pixel (x, y) is the pixel over level-0
    /// (x·step, y·step) of the coarsest level whose downsample divides `step`. Read in strips, so
    /// a picture of a whole slide is not refused by the per-read limit.
    pub fn read_sampled(&mut self, region: Region, step: usize) -> Result<RgbImage, SlideError> {
        self.read_sampled_in_strips(region, step, 16_000_000)
    }

    fn read_sampled_in_strips(&mut self, region: Region, step: usize, strip_pixels: usize) -> Result<RgbImage, SlideError> {
        let step = step.max(1);
        let (level, d) = (self.levels.iter().enumerate().rev())
            .find_map(|(i, l)| {
                let d = l.downsample.round() as usize;
                (d >= 1 && (l.downsample - d as f64).abs() < 1e-3 && step % d == 0).then_some((i, d))
            })
            .unwrap_or((0, 1));
        let k = step / d; // level pixels between two samples
        let (width, height) = (region.width.div_ceil(step), region.height.div_ceil(step));
        let (lx, ly, lw) = (region.x / d, region.y / d, (width - 1) * k + 1);
        let mut out = RgbImage::new(width, height, vec![0; width * height * 3]);
        let rows_per_strip = (strip_pixels / lw.max(1) / k).max(1);
        for oy0 in (0..height).step_by(rows_per_strip) {
            let oy1 = (oy0 + rows_per_strip).min(height);
            let strip = self.read_wide(level, lx, ly + oy0 * k, lw, (oy1 - oy0 - 1) * k + 1)?;
            for oy in oy0..oy1 {
                let src = &strip.pixels[(oy - oy0) * k * lw * 3..][..lw * 3];
                let dst = &mut out.pixels[oy * width * 3..][..width * 3];
                for (x, px) in dst.chunks_exact_mut(3).enumerate() {
                    px.copy_from_slice(&src[x * k * 3..x * k * 3 + 3]);
                }
            }
        }
        Ok(out)
    }

    /// A thumbnail of a level-0 `region` at about `um_per_px` (no finer), for finding tissue:
    /// from the coarsest pyramid level fine enough, each thumbnail pixel the mean of a k x k
    /// block of that level, read in strips so a slide without a pyramid is read in bounded
    /// memory. Returns it and its exact µm/px.
    pub fn thumbnail(&mut self, region: Region, level0_um: f64, um_per_px: f64) -> Result<(RgbImage, f64), SlideError> {
        let level = self.level_for(level0_um, um_per_px);
        let ds = self.levels[level].downsample;
        let k = ((um_per_px / (level0_um * ds) + 1e-6).floor() as usize).max(1);
        let (lx, ly, lw, lh) = self.level_rect(level, region);
        let (tw, th) = (lw.div_ceil(k), lh.div_ceil(k));
        let mut out = RgbImage::new(tw, th, vec![0; tw * th * 3]);
        // strips of whole blocks, about 4 M level pixels each, summed a row of blocks at a time
        let strip_rows = ((4_000_000 / (lw * k).max(1)).max(1)) * k;
        let mut sums = vec![0u64; tw * 3];
        for sy in (0..lh).step_by(strip_rows) {
            let rows = strip_rows.min(lh - sy);
            let strip = self.read_wide(level, lx, ly + sy, lw, rows)?;
            for (b, blocks) in strip.pixels.chunks(k * lw * 3).enumerate() {
                sums.fill(0);
                for row in blocks.chunks_exact(lw * 3) {
                    for (c, px) in row.chunks_exact(3).enumerate() {
                        for ch in 0..3 {
                            sums[(c / k) * 3 + ch] += px[ch] as u64;
                        }
                    }
                }
                let (y, block_rows) = (sy / k + b, blocks.len() / (lw * 3));
                for cx in 0..tw {
                    let n = (block_rows * k.min(lw - cx * k)) as u64;
                    for ch in 0..3 {
                        out.pixels[(y * tw + cx) * 3 + ch] = ((sums[cx * 3 + ch] + n / 2) / n) as u8;
                    }
                }
            }
        }
        Ok((out, level0_um * ds * k as f64))
    }
}

fn aperio_mpp(description: &str) -> Option<f64> {
    description.split('|').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        (k.trim() == "MPP").then(|| v.trim().parse::<f64>().ok()).flatten()
    }).filter(|v| v.is_finite() && *v > 0.0)
}

/// µm per pixel from XResolution/ResolutionUnit, when it is plausibly a microscope's
/// (between 0.05 and 50 µm/px; a 72 or 300 dpi default is not).
fn resolution_um_per_px(decoder: &mut Decoder<Box<dyn ReadSeek>>) -> Option<f64> {
    let xres = match decoder.find_tag(Tag::XResolution).ok()?? {
        tiff::decoder::ifd::Value::Rational(n, d) if d != 0 => n as f64 / d as f64,
        other => other.into_f64().ok()?,
    };
    let unit = decoder.find_tag_unsigned::<u16>(Tag::ResolutionUnit).ok().flatten().unwrap_or(2);
    let um = match unit {
        2 => 25_400.0 / xres,
        3 => 10_000.0 / xres,
        _ => return None,
    };
    (um.is_finite() && (0.05..=50.0).contains(&um)).then_some(um)
}

fn describe_level(decoder: &mut Decoder<Box<dyn ReadSeek>>, ifd: usize, width: usize) -> Result<TiffLevel, SlideError> {
    let compression = decoder.find_tag_unsigned::<u16>(Tag::Compression).ok().flatten().unwrap_or(1);
    match compression {
        1 | 5 | 7 | 8 | 32946 | 32773 => {}
        33003 | 33005 => {
            return Err(SlideError::UnsupportedTiff(format!(
                "it uses Aperio JPEG 2000 compression ({compression}); convert it to JPEG-compressed SVS or TIFF first"
            )));
        }
        other => return Err(SlideError::UnsupportedTiff(format!("compression scheme {other} is not supported (histoseg reads uncompressed, LZW, Deflate, PackBits and JPEG TIFF)"))),
    }
    let planar = decoder.find_tag_unsigned::<u16>(Tag::PlanarConfiguration).ok().flatten().unwrap_or(1);
    if planar != 1 {
        return Err(SlideError::UnsupportedTiff("its colour planes are stored separately (PlanarConfiguration 2)".into()));
    }
    let color = decoder.colortype().map_err(tiff_error)?;
    match color {
        ColorType::Gray(8 | 16) | ColorType::GrayA(8 | 16) | ColorType::RGB(8 | 16) | ColorType::RGBA(8 | 16) | ColorType::YCbCr(8) | ColorType::CMYK(8) => {}
        other => return Err(SlideError::UnsupportedTiff(format!("its pixel type {other:?} is not supported (8- or 16-bit grey, RGB, YCbCr or CMYK)"))),
    }
    let (cw, ch) = decoder.chunk_dimensions();
    let (cw, ch) = (cw.max(1) as usize, ch.max(1) as usize);
    Ok(TiffLevel { ifd, chunk_width: cw, chunk_height: ch, chunks_across: width.div_ceil(cw), color })
}

/// Refuses a directory whose tiles or strips lie beyond the end of the file (a copy or download
/// cut short), so that this is said when the file is opened rather than when a region is read.
fn check_chunks_inside(decoder: &mut Decoder<Box<dyn ReadSeek>>, file_len: u64) -> Result<(), SlideError> {
    let tiled = decoder.get_chunk_type() == tiff::decoder::ChunkType::Tile;
    let (offsets, counts) = if tiled { (Tag::TileOffsets, Tag::TileByteCounts) } else { (Tag::StripOffsets, Tag::StripByteCounts) };
    let offsets = decoder.get_tag_u64_vec(offsets).map_err(tiff_error)?;
    let counts = decoder.get_tag_u64_vec(counts).map_err(tiff_error)?;
    let end = offsets.iter().zip(&counts).map(|(&o, &c)| o.saturating_add(c)).max().unwrap_or(0);
    if end > file_len {
        return Err(SlideError::CorruptTiff(format!(
            "the file is {file_len} bytes long but its image data runs to byte {end}: it was probably cut short while copying or downloading"
        )));
    }
    Ok(())
}

/// What showing `color` as 8-bit RGB changes, for the user.
fn conversion_note(color: ColorType) -> Option<String> {
    let bits = match color {
        ColorType::Gray(b) | ColorType::GrayA(b) | ColorType::RGB(b) | ColorType::RGBA(b) | ColorType::CMYK(b) | ColorType::YCbCr(b) => b,
        _ => 8,
    };
    imageio::Conversion {
        cmyk: matches!(color, ColorType::CMYK(_)),
        grey: matches!(color, ColorType::Gray(_) | ColorType::GrayA(_)),
        sixteen_bit: bits > 8,
        alpha: matches!(color, ColorType::GrayA(_) | ColorType::RGBA(_)),
    }
    .note()
}

/// Decodes one tile or strip to 8-bit RGB.
fn read_chunk_rgb(decoder: &mut Decoder<Box<dyn ReadSeek>>, level: &TiffLevel, index: usize) -> Result<RgbImage, SlideError> {
    let (w, h) = decoder.chunk_data_dimensions(index as u32);
    let (w, h) = (w as usize, h as usize);
    let data = decoder.read_chunk(index as u32).map_err(tiff_error)?;
    // 8-bit samples are used as they are (every SVS tile); 16-bit ones are scaled down once
    let values: Vec<u8> = match data {
        DecodingResult::U8(v) => v,
        DecodingResult::U16(v) => v.iter().map(|&s| ((s as u32 * 255 + 32767) / 65535) as u8).collect(),
        _ => return Err(SlideError::UnsupportedTiff("only 8- and 16-bit samples are supported".into())),
    };
    let channels = match level.color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) | ColorType::YCbCr(_) => 3,
        _ => 4,
    };
    if values.len() < w * h * channels {
        return Err(SlideError::CorruptTiff(format!("tile {index} holds {} samples, expected {}", values.len(), w * h * channels)));
    }
    let over_white = |c: u8, a: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
    let mut pixels = Vec::with_capacity(w * h * 3);
    for p in values.chunks_exact(channels).take(w * h) {
        let rgb = match level.color {
            ColorType::Gray(_) => [p[0]; 3],
            ColorType::GrayA(_) => [over_white(p[0], p[1]); 3],
            ColorType::RGB(_) => [p[0], p[1], p[2]],
            ColorType::RGBA(_) => {
                let a = p[3];
                [over_white(p[0], a), over_white(p[1], a), over_white(p[2], a)]
            }
            ColorType::YCbCr(_) => ycbcr_to_rgb(p[0] as f32, p[1] as f32, p[2] as f32),
            ColorType::CMYK(_) => {
                let k = 255 - p[3] as u32;
                let c = |v: u8| ((255 - v as u32) * k / 255) as u8;
                [c(p[0]), c(p[1]), c(p[2])]
            }
            _ => unreachable!("checked in describe_level"),
        };
        pixels.extend_from_slice(&rgb);
    }
    Ok(RgbImage::new(w, h, pixels))
}

/// JFIF (ITU-R BT.601 full range) YCbCr to RGB.
fn ycbcr_to_rgb(y: f32, cb: f32, cr: f32) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [clamp(y + 1.402 * cr), clamp(y - 0.344_136 * cb - 0.714_136 * cr), clamp(y + 1.772 * cb)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_parse_and_clamp() {
        assert_eq!(Region::parse("1, 2,30,40").unwrap(), Region { x: 1, y: 2, width: 30, height: 40 });
        assert!(Region::parse("1,2,0,4").is_err());
        assert!(Region::parse("1,2,3").is_err());
        let r = Region { x: 90, y: 5, width: 20, height: 10 };
        assert_eq!(r.clamp_to(100, 100), Some(Region { x: 90, y: 5, width: 10, height: 10 }));
        assert_eq!(r.clamp_to(80, 100), None);
    }

    #[test]
    fn aperio_description_gives_mpp() {
        let d = "Aperio Image Library v10.0.51\r\n46920x33014 [0,100 46000x32914] (256x256) JPEG/RGB Q=30|AppMag = 20|StripeWidth = 2040|MPP = 0.4990|Filename = CMU-1";
        assert_eq!(aperio_mpp(d), Some(0.499));
        assert_eq!(aperio_mpp("Aperio Image Library|AppMag = 20"), None);
    }

    #[test]
    fn ycbcr_white_and_grey_map_to_rgb() {
        assert_eq!(ycbcr_to_rgb(255.0, 128.0, 128.0), [255, 255, 255]);
        assert_eq!(ycbcr_to_rgb(100.0, 128.0, 128.0), [100, 100, 100]);
        let [r, g, b] = ycbcr_to_rgb(76.0, 85.0, 255.0);
        assert!(r > 240 && g < 10 && b < 10, "pure red: {r} {g} {b}");
    }

    #[test]
    fn plain_images_get_display_levels_and_white_outside() {
        let img = RgbImage::new(3000, 1000, (0..3000 * 1000 * 3).map(|i| (i % 251) as u8).collect());
        let mut s = Slide::from_image(img.clone(), "PNG".into());
        assert_eq!(s.levels.iter().map(|l| l.width).collect::<Vec<_>>(), vec![3000, 1500, 750]);
        let r = s.read_region(0, 2990, 995, 20, 10).unwrap();
        assert_eq!((r.width, r.height), (20, 10));
        assert_eq!(&r.pixels[..3], &img.pixels[(995 * 3000 + 2990) * 3..][..3]);
        assert_eq!(&r.pixels[(9 * 20 + 19) * 3..][..3], &[255, 255, 255], "outside is white");
        assert!(matches!(s.read_region(5, 0, 0, 1, 1), Err(SlideError::NoLevel(5, 3))));
        assert!(matches!(s.read_region(0, 0, 0, 10_000, 10_000), Err(SlideError::RegionTooLarge(..))));
    }

    #[test]
    fn sampled_pictures_take_every_step_th_pixel_from_a_level_that_divides_the_step() {
        let img = RgbImage::new(3000, 1000, (0..3000 * 1000 * 3).map(|i| (i * 7 % 251) as u8).collect());
        let mut s = Slide::from_image(img.clone(), "PNG".into());
        let region = Region { x: 101, y: 37, width: 2000, height: 901 };
        // step 3: no level but 0 divides it, so every 3rd level-0 pixel; in strips of a few rows
        let pic = s.read_sampled_in_strips(region, 3, 5000).unwrap();
        assert_eq!((pic.width, pic.height), (667, 301));
        for (x, y) in [(0, 0), (666, 300), (123, 45), (666, 0), (0, 300)] {
            let at = ((region.y + 3 * y) * 3000 + region.x + 3 * x) * 3;
            assert_eq!(&pic.pixels[(y * 667 + x) * 3..][..3], &img.pixels[at..at + 3], "({x}, {y})");
        }
        // step 4: level 2 (downsample 4) is read, one of its pixels per sample
        let pic = s.read_sampled_in_strips(region, 4, 5000).unwrap();
        let level2 = s.read_region(2, 0, 0, 750, 250).unwrap();
        assert_eq!((pic.width, pic.height), (500, 226));
        for (x, y) in [(0, 0), (499, 225), (77, 100)] {
            let at = ((region.y / 4 + y) * 750 + region.x / 4 + x) * 3;
            assert_eq!(&pic.pixels[(y * 500 + x) * 3..][..3], &level2.pixels[at..at + 3], "({x}, {y})");
        }
        // a picture of more than one read's worth of pixels is read in strips
        let mut big = Slide::from_image(RgbImage::new(9000, 9000, vec![200; 9000 * 9000 * 3]), "PNG".into());
        assert!(matches!(big.read_region(0, 0, 0, 9000, 9000), Err(SlideError::RegionTooLarge(..))));
        let pic = big.read_sampled(Region { x: 0, y: 0, width: 9000, height: 9000 }, 1).unwrap();
        assert_eq!((pic.width, pic.height, pic.pixels[pic.pixels.len() - 1]), (9000, 9000, 200));
    }

    #[test]
    fn thumbnails_are_block_means_of_the_level_fine_enough_partial_blocks_too() {
        let img = RgbImage::new(3000, 1000, (0..3000 * 1000 * 3).map(|i| (i * 13 % 253) as u8).collect());
        let mut s = Slide::from_image(img, "PNG".into());
        let region = Region { x: 101, y: 37, width: 2010, height: 901 };
        // 8 µm/px from 1 µm/px: level 2 (4 µm/px), 2 x 2 blocks of it; 503 x 225 of it, so the
        // last column and row of blocks are one pixel wide
        let (thumb, um) = s.thumbnail(region, 1.0, 8.0).unwrap();
        assert_eq!((thumb.width, thumb.height, um), (252, 113, 8.0));
        let level = s.read_region(2, 25, 9, 503, 225).unwrap();
        for (x, y) in [(0, 0), (251, 112), (100, 50), (251, 0), (0, 112)] {
            for ch in 0..3 {
                let block: Vec<u32> = (2 * y..(2 * y + 2).min(225)).flat_map(|ly| (2 * x..(2 * x + 2).min(503)).map(move |lx| (ly, lx))).map(|(ly, lx)| level.pixels[(ly * 503 + lx) * 3 + ch] as u32).collect();
                let n = block.len() as u32;
                assert_eq!(thumb.pixels[(y * 252 + x) * 3 + ch] as u32, (block.iter().sum::<u32>() + n / 2) / n, "({x}, {y}) channel {ch}");
            }
        }
    }
}
