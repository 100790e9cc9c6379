//! Triangle (bilinear) resampling of RGB images that can compute any window of the output alone.
//!
//! The arithmetic is that of the `image` crate's `resize` with `FilterType::Triangle` (a
//! vertical pass into f32, then a horizontal one, rounded and clamped to 8 bits), step for step,
//! so a window computed from the source pixels it reads ([`source_span`]) is byte for byte the
//! same part of the whole picture. A whole slide is resampled to the model's resolution a window
//! at a time ([`crate::whole_slide`]) and agrees exactly with a region resampled at once.

use crate::imageio::RgbImage;

/// The source pixels output pixel `i` of a `from` → `to` resampling reads: the first, and the
/// weights of it and those after it.
fn taps(from: usize, to: usize, i: usize) -> (usize, Vec<f32>) {
    let ratio = from as f32 / to as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let centre = (i as f32 + 0.5) * ratio;
    let left = ((centre - sratio).floor() as i64).clamp(0, from as i64 - 1);
    let right = ((centre + sratio).ceil() as i64).clamp(left + 1, from as i64);
    // the kernel puts a pixel's centre at 0
    let centre = centre - 0.5;
    let mut weights: Vec<f32> = (left..right).map(|s| (1.0 - ((s as f32 - centre) / sratio).abs()).max(0.0)).collect();
    let sum = weights.iter().fold(0.0, |a, w| a + w);
    for w in &mut weights {
        *w /= sum;
    }
    (left as usize, weights)
}

/// The source pixels `lo..hi` of the output (of a `from` → `to` resampling, along one axis)
/// read: the first and one past the last.
pub fn source_span(from: usize, to: usize, lo: usize, hi: usize) -> (usize, usize) {
    let first = taps(from, to, lo).0;
    let (last, weights) = taps(from, to, hi - 1);
    (first, last + weights.len())
}

/// A window of resampling a `from` image to `to`: output pixels `x..x + width`, `y..y + height`
/// (`out`), computed from `src`, the source pixels from `at` on that cover [`source_span`] on
/// both axes.
pub fn resize_window(src: &RgbImage, at: (usize, usize), from: (usize, usize), to: (usize, usize), out: (usize, usize, usize, usize)) -> RgbImage {
    let (x, y, width, height) = out;
    let stride = src.width * 3;
    // vertical pass: output rows, every source column
    let mut rows = vec![0f32; height * stride];
    for (oy, row) in rows.chunks_exact_mut(stride).enumerate() {
        let (first, weights) = taps(from.1, to.1, y + oy);
        for (k, w) in weights.iter().enumerate() {
            let line = &src.pixels[(first + k - at.1) * stride..][..stride];
            for (t, &v) in row.iter_mut().zip(line) {
                *t += v as f32 * w;
            }
        }
    }
    // horizontal pass: output columns of those rows
    let mut pixels = vec![0u8; width * height * 3];
    for ox in 0..width {
        let (first, weights) = taps(from.0, to.0, x + ox);
        for (row, line) in rows.chunks_exact(stride).zip(pixels.chunks_exact_mut(width * 3)) {
            for c in 0..3 {
                let mut t = 0.0f32;
                for (k, w) in weights.iter().enumerate() {
                    t += row[(first + k - at.0) * 3 + c] * w;
                }
                line[ox * 3 + c] = t.clamp(0.0, 255.0).round() as u8;
            }
        }
    }
    RgbImage::new(width, height, pixels)
}

/// The whole of a resampling of `img` to `width` x `height`.
pub fn resize(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    resize_window(img, (0, 0), (img.width, img.height), (width, height), (0, 0, width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: usize, h: usize) -> RgbImage {
        RgbImage::new(w, h, (0..w * h * 3).map(|i| ((i * 7919) % 251 + (i / (3 * w)) % 5) as u8).collect())
    }

    #[test]
    fn the_whole_is_the_image_crates_triangle_resize_byte_for_byte() {
        for (w, h, tw, th) in [(2220, 300, 1108, 150), (301, 207, 97, 113), (64, 50, 150, 90), (40, 40, 40, 17), (1, 9, 3, 2)] {
            let img = picture(w, h);
            let buf = image::RgbImage::from_raw(w as u32, h as u32, img.pixels.clone()).unwrap();
            let want = image::imageops::resize(&buf, tw as u32, th as u32, image::imageops::FilterType::Triangle).into_raw();
            assert_eq!(resize(&img, tw, th).pixels, want, "{w}x{h} -> {tw}x{th}");
        }
    }

    #[test]
    fn a_window_from_its_source_span_is_that_part_of_the_whole() {
        let (from, to) = ((1001, 777), (500, 388));
        let img = picture(from.0, from.1);
        let whole = resize(&img, to.0, to.1);
        for (x, y, w, h) in [(0, 0, 64, 64), (211, 97, 130, 40), (436, 324, 64, 64), (499, 387, 1, 1)] {
            let (sx0, sx1) = source_span(from.0, to.0, x, x + w);
            let (sy0, sy1) = source_span(from.1, to.1, y, y + h);
            let src = RgbImage::new(sx1 - sx0, sy1 - sy0, (sy0..sy1).flat_map(|r| img.pixels[(r * from.0 + sx0) * 3..(r * from.0 + sx1) * 3].to_vec()).collect());
            let part = resize_window(&src, (sx0, sy0), from, to, (x, y, w, h));
            let want: Vec<u8> = (y..y + h).flat_map(|r| whole.pixels[(r * to.0 + x) * 3..(r * to.0 + x + w) * 3].to_vec()).collect();
            assert_eq!(part.pixels, want, "window {x},{y} {w}x{h}");
        }
    }
}
