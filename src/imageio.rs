//! Decoding images from bytes into 8-bit RGB, with clear errors for everything else.
//!
//! PNG, JPEG and BMP are decoded by the `image` crate. Grayscale, grayscale+alpha, RGBA and
//! 16-bit images are converted to 8-bit RGB (alpha is composited over white, as a slide scanner
//! background would be). Sizes are checked before any pixel buffer is allocated. What was converted
//! is reported as a note for the user ([`decode_with_note`]), and a JPEG cut short (which the
//! decoder would silently fill with grey) is refused.

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Largest image accepted as one in-memory RGB buffer (about 1.2 GB decoded as RGBA16).
pub const MAX_PIXELS: u64 = 100_000_000;

/// A channel value 0..=255 as the network sees it, in [-1, 1].
pub fn to_network(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

/// An 8-bit RGB image, row-major, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("unsupported image format{0}: histoseg opens PNG, JPEG, BMP, TIFF and Aperio SVS")]
    Unsupported(String),
    #[error("the file is empty (0 bytes)")]
    EmptyFile,
    #[error("the {format} file is damaged or truncated and cannot be decoded ({detail})")]
    Corrupt { format: String, detail: String },
    #[error("the image is empty ({0}x{1} pixels)")]
    Empty(u32, u32),
    #[error("the image is {0}x{1} pixels, more than the {MAX_PIXELS} pixels histoseg can hold in memory at once: convert it to a tiled, pyramidal TIFF (for example `vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg`), which histoseg reads tile by tile")]
    TooLarge(u32, u32),
}

impl RgbImage {
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(pixels.len(), width * height * 3, "RGB buffer size");
        Self { width, height, pixels }
    }

    /// RGBA with opaque alpha, for drawing on a canvas.
    pub fn to_rgba(&self) -> Vec<u8> {
        self.pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
    }

    /// A sub-rectangle (clamped to the image).
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> RgbImage {
        let w = w.min(self.width.saturating_sub(x));
        let h = h.min(self.height.saturating_sub(y));
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in y..y + h {
            let start = (row * self.width + x) * 3;
            pixels.extend_from_slice(&self.pixels[start..start + w * 3]);
        }
        RgbImage::new(w, h, pixels)
    }
}

fn format_name(format: Option<ImageFormat>) -> String {
    format.map(|f| format!("{f:?}").to_uppercase()).unwrap_or_else(|| "image".into())
}

/// What showing an image's pixels as 8-bit RGB changes. The image decoder and the TIFF reader
/// both describe their pixels this way, so the user reads the same words for the same change.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Conversion {
    pub cmyk: bool,
    pub grey: bool,
    pub sixteen_bit: bool,
    pub alpha: bool,
}

impl Conversion {
    /// A note for the user ("16-bit samples reduced to 8 bits; ..."), `None` when nothing changed.
    pub fn note(self) -> Option<String> {
        let notes: Vec<&str> = [
            (self.cmyk, "CMYK converted to RGB"),
            (self.grey, "greyscale, used as RGB"),
            (self.sixteen_bit, "16-bit samples reduced to 8 bits"),
            (self.alpha, "transparency composited over white"),
        ]
        .into_iter()
        .filter_map(|(applies, note)| applies.then_some(note))
        .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// Composites any decoded image over white and reduces it to 8-bit RGB.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pixels = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        rgba.pixels()
            .flat_map(|p| {
                let a = p[3] as u32;
                let blend = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
                [blend(p[0]), blend(p[1]), blend(p[2])]
            })
            .collect()
    } else {
        img.to_rgb8().into_raw()
    };
    RgbImage::new(w, h, pixels)
}

/// The format name of image bytes ("PNG", "JPEG", ...), or "image" when unrecognised.
pub fn sniff_format(bytes: &[u8]) -> String {
    format_name(image::guess_format(bytes).ok())
}

/// What a JPEG's markers say: the colour components of its frame, and whether its last scan is
/// followed by the end-of-image marker (a file cut short is not). Entropy-coded data never holds
/// an unstuffed 0xFF, so markers are found by scanning.
fn jpeg_markers(bytes: &[u8]) -> (Option<u8>, bool) {
    let mut components = None;
    let mut last_scan = None;
    let mut last_eoi = None;
    let mut i = 2;
    while i + 1 < bytes.len() {
        if bytes[i] == 0xFF {
            match bytes[i + 1] {
                // baseline, extended, progressive and lossless frames (not DHT, JPG or DAC)
                0xC0..=0xCF if !matches!(bytes[i + 1], 0xC4 | 0xC8 | 0xCC) => {
                    if components.is_none() {
                        components = bytes.get(i + 9).copied();
                    }
                }
                0xDA => last_scan = Some(i),
                0xD9 => last_eoi = Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    let ended = matches!((last_scan, last_eoi), (Some(s), Some(e)) if e > s) || last_scan.is_none();
    (components, ended)
}

/// Decodes PNG, JPEG or BMP bytes (format sniffed from the content, not the file name).
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    decode_with_note(bytes).map(|(image, _)| image)
}

/// [`decode`], plus a note for the user when the pixels were converted (greyscale, alpha,
/// 16-bit, CMYK), e.g. "16-bit samples reduced to 8 bits".
pub fn decode_with_note(bytes: &[u8]) -> Result<(RgbImage, Option<String>), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::EmptyFile);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt { format: "image".into(), detail: e.to_string() })?;
    let format = reader.format();
    match format {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Bmp) => {}
        Some(other) => return Err(ImageError::Unsupported(format!(" ({other:?})"))),
        None => return Err(ImageError::Unsupported(" (the file is not a recognised image)".into())),
    }
    // a PNG's size straight from its header: the decoder says only "invalid dimensions" for 0x0,
    // and on wasm32 "memory limit exceeded" for a size whose buffer exceeds the address space
    if format == Some(ImageFormat::Png) && bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
        let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let (w, h) = (dim(16), dim(20));
        if w == 0 || h == 0 {
            return Err(ImageError::Empty(w, h));
        }
        if w as u64 * h as u64 > MAX_PIXELS {
            return Err(ImageError::TooLarge(w, h));
        }
    }
    let mut jpeg_cmyk = false;
    if format == Some(ImageFormat::Jpeg) {
        let (components, ended) = jpeg_markers(bytes);
        if !ended {
            return Err(ImageError::Corrupt { format: "JPEG".into(), detail: "the file ends before its end-of-image marker".into() });
        }
        jpeg_cmyk = components == Some(4);
    }
    // the header alone, without the decoder's default allocation limit (which would answer a
    // huge image with "Memory limit exceeded" instead of its size)
    let mut reader = reader;
    reader.no_limits();
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt { format: format_name(format), detail: e.to_string() })?;
    if w == 0 || h == 0 {
        return Err(ImageError::Empty(w, h));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge(w, h));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().expect("sniffed above");
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| ImageError::Corrupt { format: format_name(format), detail: e.to_string() })?;
    let color = img.color();
    let conversion = Conversion {
        cmyk: jpeg_cmyk,
        grey: matches!(color, image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16),
        sixteen_bit: color.bytes_per_pixel() / color.channel_count() > 1,
        alpha: color.has_alpha(),
    };
    Ok((to_rgb8(img), conversion.note()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn converts_gray_rgba_and_16_bit() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([90])));
        let rgb = decode(&encode(gray, ImageFormat::Png)).unwrap();
        assert_eq!((rgb.width, rgb.height), (3, 2));
        assert_eq!(&rgb.pixels[..3], &[90, 90, 90]);

        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([200, 0, 0, 0])));
        // fully transparent composites to white
        assert_eq!(&decode(&encode(rgba, ImageFormat::Png)).unwrap().pixels[..3], &[255, 255, 255]);

        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(2, 2, image::Rgb([65535u16, 0, 32896])));
        assert_eq!(&decode(&encode(deep, ImageFormat::Png)).unwrap().pixels[..3], &[255, 0, 128]);
    }

    #[test]
    fn rejects_garbage_and_truncation_with_clear_errors() {
        assert!(matches!(decode(b"definitely not an image"), Err(ImageError::Unsupported(_))));
        let png = encode(DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]))), ImageFormat::Png);
        let err = decode(&png[..png.len() / 2]).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("PNG"), "{err}");
    }
}

/// Resamples an image to `width` x `height` with a triangle (bilinear) filter
/// ([`crate::resample`], the `image` crate's arithmetic).
pub fn resize(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    crate::resample::resize(img, width, height)
}

/// Resamples a label (or instance id) map with nearest-neighbour sampling.
pub fn resize_nearest<T: Copy>(labels: &[T], width: usize, height: usize, new_width: usize, new_height: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(new_width * new_height);
    for y in 0..new_height {
        let sy = ((y as f64 + 0.5) * height as f64 / new_height as f64) as usize;
        let row = sy.min(height - 1) * width;
        for x in 0..new_width {
            let sx = ((x as f64 + 0.5) * width as f64 / new_width as f64) as usize;
            out.push(labels[row + sx.min(width - 1)]);
        }
    }
    out
}

/// The size an image of `width` x `height` at `from_um` µm/px has at `to_um` µm/px.
pub fn rescaled_size(width: usize, height: usize, from_um: f64, to_um: f64) -> (usize, usize) {
    let s = from_um / to_um;
    (((width as f64 * s).round() as usize).max(1), ((height as f64 * s).round() as usize).max(1))
}
