//! A whole slide's labels kept as compressed tiles in a pyramid, built row by row as a streamed
//! segmentation labels them ([`crate::whole_slide`]): what the page holds of a slide of any size
//! instead of one byte per level-0 pixel, and draws at every zoom.
//!
//! Level `k` is every `2^k`-th row and column of level 0 (nearest sampling, so a class never
//! blurs into another); levels stop at the first that fits in `top_pixels`, the overview. Each
//! level is cut into [`TILE`]² tiles, each stored as runs of one class (a tile of glass is one
//! run of a few bytes). The rows of the tile row still being filled are held uncompressed.

/// Tile side, in pixels of its level.
pub const TILE: usize = 256;

/// One level: its size, its downsample from level 0, its finished tiles (row-major, runs) and
/// the uncompressed rows of the tile row being filled.
#[derive(Debug, Clone, PartialEq)]
struct Level {
    width: usize,
    height: usize,
    downsample: usize,
    tiles: Vec<Vec<u8>>,
    band: Vec<u8>,
    rows: usize,
}

impl Level {
    fn tiles_across(&self) -> usize {
        self.width.div_ceil(TILE)
    }

    fn band_rows(&self) -> usize {
        self.band.len() / self.width.max(1)
    }

    /// Compresses the band's rows into a row of tiles.
    fn seal_band(&mut self) {
        let rows = self.band_rows();
        for tx in 0..self.tiles_across() {
            let (x0, w) = (tx * TILE, TILE.min(self.width - tx * TILE));
            let pixels = (0..rows).flat_map(|r| self.band[r * self.width + x0..][..w].iter().copied());
            self.tiles.push(encode_runs(pixels));
        }
        self.band.clear();
    }
}

/// Run-length code: (class, run length as LEB128) pairs over the pixels in order.
fn encode_runs(pixels: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut run: Option<(u8, usize)> = None;
    let flush = |out: &mut Vec<u8>, (class, mut n): (u8, usize)| {
        out.push(class);
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    };
    for p in pixels {
        run = match run {
            Some((c, n)) if c == p => Some((c, n + 1)),
            Some(r) => {
                flush(&mut out, r);
                Some((p, 1))
            }
            None => Some((p, 1)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out
}

/// The (class, length) runs of [`encode_runs`]'s bytes, or `None` if they are malformed.
fn runs_of(runs: &[u8]) -> Option<Vec<(u8, usize)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let class = runs[i];
        i += 1;
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let byte = *runs.get(i)?;
            i += 1;
            n |= ((byte & 0x7f) as usize).checked_shl(shift)?;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
            if shift > 35 {
                return None;
            }
        }
        out.push((class, n));
    }
    Some(out)
}

/// The pixels of runs made by [`encode_runs`], or `None` if they are malformed or not `len` long.
fn decode_runs(runs: &[u8], len: usize) -> Option<Vec<u8>> {
    let runs = runs_of(runs)?;
    if runs.iter().try_fold(0usize, |sum, &(_, n)| sum.checked_add(n)) != Some(len) {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    for (class, n) in runs {
        out.resize(out.len() + n, class);
    }
    Some(out)
}

/// A label image of `width` x `height` kept as a pyramid of compressed tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelPyramid {
    width: usize,
    height: usize,
    levels: Vec<Level>,
    /// Level-0 rows pushed so far.
    rows: usize,
}

/// A level's size and its downsample from level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LevelSize {
    pub width: usize,
    pub height: usize,
    pub downsample: usize,
}

impl LabelPyramid {
    /// An empty pyramid for a `width` x `height` image whose coarsest level has at most
    /// `top_pixels` pixels (or is 1 pixel across).
    pub fn new(width: usize, height: usize, top_pixels: usize) -> Self {
        let mut levels = Vec::new();
        let mut downsample = 1;
        loop {
            let (w, h) = (width.div_ceil(downsample).max(1), height.div_ceil(downsample).max(1));
            levels.push(Level { width: w, height: h, downsample, tiles: Vec::new(), band: Vec::new(), rows: 0 });
            if w * h <= top_pixels.max(1) || (w == 1 && h == 1) {
                break;
            }
            downsample *= 2;
        }
        Self { width, height, levels, rows: 0 }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Every level, finest first.
    pub fn levels(&self) -> Vec<LevelSize> {
        self.levels.iter().map(|l| LevelSize { width: l.width, height: l.height, downsample: l.downsample }).collect()
    }

    /// Adds the next level-0 row (rows come in order, each `width` long).
    pub fn push_row(&mut self, row: &[u8]) {
        assert_eq!(row.len(), self.width, "a label row must be as wide as the pyramid");
        assert!(self.rows < self.height, "more rows than the pyramid's height");
        let y = self.rows;
        for level in &mut self.levels {
            if y % level.downsample != 0 {
                continue;
            }
            level.band.extend(row.iter().step_by(level.downsample));
            level.rows += 1;
            if level.band_rows() == TILE || level.rows == level.height {
                level.seal_band();
            }
        }
        self.rows += 1;
    }

    /// Level-0 rows pushed so far.
    pub fn rows_done(&self) -> usize {
        self.rows
    }

    /// Rows of `level` that hold labels so far.
    pub fn level_rows_done(&self, level: usize) -> usize {
        self.levels[level].rows
    }

    pub fn is_complete(&self) -> bool {
        self.rows == self.height
    }

    /// The labels of a `width` x `height` rectangle at (`x`, `y`) of `level`, in that level's
    /// pixels, row-major; 0 (background) outside the image and where no row has come yet.
    pub fn region(&self, level: usize, x: usize, y: usize, width: usize, height: usize) -> Vec<u8> {
        let l = &self.levels[level];
        let mut out = vec![0u8; width * height];
        let (x1, y1) = ((x + width).min(l.width), (y + height).min(l.rows));
        if x >= x1 || y >= y1 {
            return out;
        }
        let sealed_rows = l.rows - l.band_rows();
        for ty in y / TILE..=(y1 - 1) / TILE {
            let tile_y0 = ty * TILE;
            for tx in x / TILE..=(x1 - 1) / TILE {
                let tile_x0 = tx * TILE;
                let tw = TILE.min(l.width - tile_x0);
                let (ry0, ry1) = (y.max(tile_y0), y1.min(tile_y0 + TILE));
                let (rx0, rx1) = (x.max(tile_x0), x1.min(tile_x0 + tw));
                if tile_y0 >= sealed_rows {
                    // the band being filled
                    for r in ry0..ry1 {
                        let src = &l.band[(r - tile_y0) * l.width..][rx0..rx1];
                        out[(r - y) * width + rx0 - x..][..rx1 - rx0].copy_from_slice(src);
                    }
                    continue;
                }
                let th = TILE.min(l.height - tile_y0);
                let pixels = decode_runs(&l.tiles[ty * l.tiles_across() + tx], tw * th).expect("tiles encoded here decode");
                for r in ry0..ry1 {
                    let src = &pixels[(r - tile_y0) * tw + rx0 - tile_x0..][..rx1 - rx0];
                    out[(r - y) * width + rx0 - x..][..rx1 - rx0].copy_from_slice(src);
                }
            }
        }
        out
    }

    /// Level-0 pixels of each class so far (counted from the runs, without decoding).
    pub fn class_areas(&self, classes: usize) -> Vec<u64> {
        let mut areas = vec![0u64; classes];
        let l = &self.levels[0];
        let mut add = |class: u8, n: usize| {
            if let Some(a) = areas.get_mut(class as usize) {
                *a += n as u64;
            }
        };
        for tile in &l.tiles {
            for (class, n) in runs_of(tile).expect("tiles encoded here decode") {
                add(class, n);
            }
        }
        for &class in &l.band {
            add(class, 1);
        }
        areas
    }

    /// Bytes held: compressed tiles and the rows being filled.
    pub fn bytes_held(&self) -> usize {
        self.levels.iter().map(|l| l.tiles.iter().map(Vec::len).sum::<usize>() + l.band.len()).sum()
    }

    /// The finest level with at most `max_pixels` pixels.
    pub fn finest_within(&self, max_pixels: usize) -> usize {
        self.levels.iter().position(|l| l.width * l.height <= max_pixels).unwrap_or(self.levels.len() - 1)
    }

    /// A complete pyramid as bytes (kept in the browser's storage): a small header and every
    /// tile's runs, length-prefixed.
    pub fn to_bytes(&self) -> Vec<u8> {
        assert!(self.is_complete(), "only a complete pyramid is stored");
        let mut out = b"HSLP1".to_vec();
        for v in [self.width, self.height, self.levels.len()] {
            out.extend((v as u64).to_le_bytes());
        }
        for level in &self.levels {
            for tile in &level.tiles {
                out.extend((tile.len() as u32).to_le_bytes());
                out.extend(tile);
            }
        }
        out
    }

    /// A pyramid from [`LabelPyramid::to_bytes`], checked: every tile must decode to its size
    /// and hold classes below `classes`.
    pub fn from_bytes(bytes: &[u8], classes: usize) -> Result<Self, String> {
        let bad = |why: &str| format!("the kept labels are damaged ({why})");
        let rest = bytes.strip_prefix(b"HSLP1".as_slice()).ok_or_else(|| bad("not a label pyramid"))?;
        let mut at = 0;
        let mut u64_at = |rest: &[u8]| -> Result<usize, String> {
            let v = rest.get(at..at + 8).ok_or_else(|| bad("short header"))?;
            at += 8;
            usize::try_from(u64::from_le_bytes(v.try_into().unwrap())).map_err(|_| bad("size"))
        };
        let (width, height, count) = (u64_at(rest)?, u64_at(rest)?, u64_at(rest)?);
        if width == 0 || height == 0 || width.checked_mul(height).is_none() || count == 0 || count > 40 {
            return Err(bad("size"));
        }
        let mut pyramid = Self { width, height, levels: Vec::new(), rows: height };
        for k in 0..count {
            let downsample = 1usize << k;
            let (w, h) = (width.div_ceil(downsample), height.div_ceil(downsample));
            let mut level = Level { width: w, height: h, downsample, tiles: Vec::new(), band: Vec::new(), rows: h };
            for ty in 0..h.div_ceil(TILE) {
                for tx in 0..w.div_ceil(TILE) {
                    let len = rest.get(at..at + 4).ok_or_else(|| bad("truncated"))?;
                    let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
                    let runs = rest.get(at + 4..at + 4 + len).ok_or_else(|| bad("truncated"))?;
                    at += 4 + len;
                    let size = TILE.min(w - tx * TILE) * TILE.min(h - ty * TILE);
                    let pixels = decode_runs(runs, size).ok_or_else(|| bad("a tile does not decode"))?;
                    if pixels.iter().any(|&c| c as usize >= classes) {
                        return Err(bad("a class the model does not have"));
                    }
                    level.tiles.push(runs.to_vec());
                }
            }
            pyramid.levels.push(level);
        }
        if at != rest.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(pyramid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label picture with structure at every scale: discs, stripes and a noisy corner.
    fn picture(w: usize, h: usize) -> Vec<u8> {
        let mut rng = 12345u64;
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let (dx, dy) = (x as f64 - 300.0, y as f64 - 200.0);
                if dx.hypot(dy) < 120.0 {
                    1
                } else if x % 97 < 5 {
                    2
                } else if x < 40 && y < 40 {
                    (rng >> 62) as u8 % 3
                } else {
                    0
                }
            })
            .collect()
    }

    fn built(labels: &[u8], w: usize, h: usize, top: usize) -> LabelPyramid {
        let mut p = LabelPyramid::new(w, h, top);
        for row in labels.chunks(w) {
            p.push_row(row);
        }
        p
    }

    #[test]
    fn every_level_is_the_nearest_sampling_of_level_0() {
        let (w, h) = (777, 601);
        let labels = picture(w, h);
        let p = built(&labels, w, h, 10_000);
        let levels = p.levels();
        assert_eq!(levels.iter().map(|l| l.downsample).collect::<Vec<_>>(), [1, 2, 4, 8]);
        assert_eq!((levels[3].width, levels[3].height), (98, 76));
        for (k, l) in levels.iter().enumerate() {
            let whole = p.region(k, 0, 0, l.width, l.height);
            let (lw, lh, ds) = (l.width, l.height, l.downsample);
            let expected: Vec<u8> = (0..lh).flat_map(|y| (0..lw).map(move |x| (x, y))).map(|(x, y)| labels[y * ds * w + x * ds]).collect();
            assert_eq!(whole, expected, "level {k}");
        }
        // a rectangle across tile borders and past the edge: 0 outside
        let part = p.region(0, 250, 500, 300, 200);
        for (r, row) in part.chunks(300).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let (x, y) = (250 + c, 500 + r);
                assert_eq!(v, if y < h { labels[y * w + x] } else { 0 }, "({x}, {y})");
            }
        }
    }

    #[test]
    fn rows_are_readable_while_the_pyramid_fills_and_compress() {
        let (w, h) = (1000, 700);
        let labels = picture(w, h);
        let mut p = LabelPyramid::new(w, h, 50_000);
        for (y, row) in labels.chunks(w).enumerate().take(300) {
            p.push_row(row);
            assert_eq!(p.rows_done(), y + 1);
        }
        // rows 0..300: 256 sealed in tiles, 44 in the band; rows not yet pushed read as 0
        let got = p.region(0, 0, 240, w, 80);
        let labels_ref = &labels;
        let expected: Vec<u8> = (240..320).flat_map(|y| (0..w).map(move |x| if y < 300 { labels_ref[y * w + x] } else { 0 })).collect();
        assert_eq!(got, expected);
        assert_eq!(p.level_rows_done(1), 150);
        for row in labels.chunks(w).skip(300) {
            p.push_row(row);
        }
        assert!(p.is_complete());
        assert_eq!(p.class_areas(3), crate::overlay::class_areas(&labels, 3));
        // the picture is mostly runs: far less than a byte a pixel over all levels
        assert!(p.bytes_held() * 10 < w * h, "{} bytes for {} pixels", p.bytes_held(), w * h);
    }

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        let (w, h) = (530, 290);
        let labels = picture(w, h);
        let p = built(&labels, w, h, 5_000);
        let bytes = p.to_bytes();
        assert_eq!(LabelPyramid::from_bytes(&bytes, 3).unwrap(), p);
        assert!(LabelPyramid::from_bytes(&bytes, 2).unwrap_err().contains("class"));
        assert!(LabelPyramid::from_bytes(&bytes[..bytes.len() - 3], 3).is_err());
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(LabelPyramid::from_bytes(&flipped, 3).is_err() || LabelPyramid::from_bytes(&flipped, 3).unwrap() != p);
        assert!(LabelPyramid::from_bytes(b"nonsense", 3).is_err());
    }

    #[test]
    fn a_glass_tile_is_a_few_bytes() {
        let mut p = LabelPyramid::new(4 * TILE, TILE, 1);
        for _ in 0..TILE {
            p.push_row(&vec![0u8; 4 * TILE]);
        }
        assert!(p.bytes_held() < 100, "{}", p.bytes_held());
        assert_eq!(decode_runs(&encode_runs([7u8; 300].into_iter()), 300).unwrap(), vec![7u8; 300]);
        assert_eq!(decode_runs(&encode_runs([7u8; 300].into_iter()), 299), None);
    }
}
