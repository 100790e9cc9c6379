//! Tiling and blending: cut an image into overlapping square tiles, and fuse per-tile class
//! probabilities back into one image-sized map without seams.
//!
//! Pure Rust, no platform code. The grid always covers the whole image: tiles step by
//! `tile - overlap` and the last tile in each direction is pulled back so that it ends on the
//! image border. An image smaller than a tile gets one tile, padded by edge replication.
//!
//! Blending weights fade linearly towards the tile edges that lie *inside* the image (where a
//! neighbour overlaps), and stay at full weight on edges that lie on the image border (where no
//! neighbour exists). The fused value is `sum(w * p) / sum(w)`, so a tile function that returns
//! its input reconstructs the image exactly and a constant field stays constant.

use serde::{Deserialize, Serialize};

/// One tile: its top-left corner in image pixels and how much of it lies inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    pub x: usize,
    pub y: usize,
    /// Width of the part inside the image (less than the tile size only for small images).
    pub width: usize,
    /// Height of the part inside the image.
    pub height: usize,
}

/// The tiles covering an image, in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    pub image_width: usize,
    pub image_height: usize,
    pub tile_size: usize,
    pub overlap: usize,
    pub tiles: Vec<Tile>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TilingError {
    #[error("the image is empty ({0}x{1} pixels)")]
    EmptyImage(usize, usize),
    #[error("tile size must be positive")]
    ZeroTile,
    #[error("overlap ({overlap}) must be smaller than the tile size ({tile})")]
    OverlapTooLarge { overlap: usize, tile: usize },
}

/// Start offsets along one axis of `length` pixels.
fn axis_starts(length: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if length <= tile {
        return vec![0];
    }
    let stride = tile - overlap;
    let last = length - tile;
    let mut starts: Vec<usize> = (0..).map(|i| i * stride).take_while(|&s| s < last).collect();
    starts.push(last);
    starts
}

impl TileGrid {
    pub fn new(
        image_width: usize,
        image_height: usize,
        tile_size: usize,
        overlap: usize,
    ) -> Result<Self, TilingError> {
        if image_width == 0 || image_height == 0 {
            return Err(TilingError::EmptyImage(image_width, image_height));
        }
        if tile_size == 0 {
            return Err(TilingError::ZeroTile);
        }
        if overlap >= tile_size {
            return Err(TilingError::OverlapTooLarge { overlap, tile: tile_size });
        }
        let xs = axis_starts(image_width, tile_size, overlap);
        let ys = axis_starts(image_height, tile_size, overlap);
        let tiles = ys
            .iter()
            .flat_map(|&y| {
                xs.iter().map(move |&x| Tile {
                    x,
                    y,
                    width: tile_size.min(image_width - x),
                    height: tile_size.min(image_height - y),
                })
            })
            .collect();
        Ok(Self { image_width, image_height, tile_size, overlap, tiles })
    }

    /// Copy one tile out of an interleaved image with `channels` values per pixel, as planar
    /// `[channels, tile, tile]` data. Pixels beyond the image are filled by edge replication.
    pub fn extract_planar<T: Copy>(&self, image: &[T], channels: usize, tile: &Tile) -> Vec<T> {
        let t = self.tile_size;
        assert_eq!(image.len(), self.image_width * self.image_height * channels);
        let mut out = Vec::with_capacity(channels * t * t);
        for c in 0..channels {
            for ty in 0..t {
                let y = (tile.y + ty).min(self.image_height - 1);
                let row = y * self.image_width;
                for tx in 0..t {
                    let x = (tile.x + tx).min(self.image_width - 1);
                    out.push(image[(row + x) * channels + c]);
                }
            }
        }
        out
    }

    /// Blend weight of pixel (tx, ty) of `tile`. Edges on the image border keep full weight.
    pub fn weight(&self, tile: &Tile, tx: usize, ty: usize) -> f32 {
        let ramp = self.overlap as f32;
        let fade = |pos: usize, start: usize, len: usize, image_len: usize| -> f32 {
            if ramp == 0.0 {
                return 1.0;
            }
            let mut w = 1.0f32;
            if start > 0 {
                // a neighbour overlaps from the low side
                w = w.min((pos as f32 + 0.5) / ramp);
            }
            if start + len < image_len {
                // a neighbour overlaps from the high side
                w = w.min(((len - 1 - pos) as f32 + 0.5) / ramp);
            }
            w
        };
        fade(tx, tile.x, self.tile_size, self.image_width)
            * fade(ty, tile.y, self.tile_size, self.image_height)
    }
}

/// Accumulates weighted planar per-tile maps (`[channels, tile, tile]`) into an interleaved map,
/// then normalises by the total weight. It holds either the whole image ([`Blender::new`]) or a
/// band of rows that moves down the image ([`Blender::band`]): the rows above the next row of
/// tiles are final, are taken out with [`Blender::take_rows`] and their memory reused, so a
/// slide of any height is blended in the memory of one band. Both give the same values.
pub struct Blender {
    grid: TileGrid,
    channels: usize,
    /// The image row held first.
    top: usize,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl Blender {
    pub fn new(grid: TileGrid, channels: usize) -> Self {
        let rows = grid.image_height;
        Self::band(grid, channels, rows)
    }

    /// A blender holding `rows` rows at a time (at least a tile's height, to take a row of tiles).
    pub fn band(grid: TileGrid, channels: usize, rows: usize) -> Self {
        let n = grid.image_width * rows.min(grid.image_height);
        Self { grid, channels, top: 0, sum: vec![0.0; n * channels], weight: vec![0.0; n] }
    }

    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The first row not yet taken.
    pub fn top(&self) -> usize {
        self.top
    }

    /// Add one tile's planar values. Values of the padded part outside the image are ignored.
    pub fn add(&mut self, tile: &Tile, planar: &[f32]) {
        let t = self.grid.tile_size;
        let c = self.channels;
        assert_eq!(planar.len(), c * t * t, "tile data has the wrong length");
        let w_img = self.grid.image_width;
        assert!(tile.y >= self.top && (tile.y + tile.height - self.top) * w_img <= self.weight.len(), "tile outside the band held");
        for ty in 0..tile.height {
            for tx in 0..tile.width {
                let w = self.grid.weight(tile, tx, ty);
                if w <= 0.0 {
                    continue;
                }
                let p = (tile.y + ty - self.top) * w_img + tile.x + tx;
                self.weight[p] += w;
                for ch in 0..c {
                    self.sum[p * c + ch] += w * planar[(ch * t + ty) * t + tx];
                }
            }
        }
    }

    /// The blended values of the next `rows` rows (interleaved, `rows * width * channels`), which
    /// no tile still to come may touch; the band moves down by as much.
    pub fn take_rows(&mut self, rows: usize) -> Vec<f32> {
        let (c, w) = (self.channels, self.grid.image_width);
        let rows = rows.min(self.grid.image_height - self.top);
        let n = rows * w;
        // all the rows held (a whole image's blend): normalised in place, as no copy is needed
        let mut out: Vec<f32> = if n * c == self.sum.len() { std::mem::take(&mut self.sum) } else { self.sum.drain(..n * c).collect() };
        let weights = if n == self.weight.len() { std::mem::take(&mut self.weight) } else { self.weight.drain(..n).collect() };
        for (p, w) in weights.into_iter().enumerate() {
            // Every pixel of a tile that ran has positive weight (its own tile's centre region,
            // or a border edge); pixels no tile ran over stay zero.
            let inv = if w > 0.0 { 1.0 / w } else { 0.0 };
            for v in &mut out[p * c..(p + 1) * c] {
                *v *= inv;
            }
        }
        self.top += rows;
        // keep the band's size: the rows below start empty
        let held = self.weight.len() + n;
        let keep = held.min((self.grid.image_height - self.top) * w);
        self.weight.resize(keep, 0.0);
        self.sum.resize(keep * c, 0.0);
        out
    }

    /// The blended interleaved map of the rows not yet taken (`height * width * channels` for a
    /// whole-image blender).
    pub fn finish(mut self) -> Vec<f32> {
        let rows = self.grid.image_height - self.top;
        self.take_rows(rows)
    }
}

/// Per-pixel argmax of an interleaved `channels`-wide map. Ties go to the lower class.
pub fn argmax_labels(map: &[f32], channels: usize) -> Vec<u8> {
    map.chunks_exact(channels)
        .map(|px| {
            let mut best = 0;
            for (i, &v) in px.iter().enumerate() {
                if v > px[best] {
                    best = i;
                }
            }
            best as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tile every pixel with the identity function and blend back.
    fn roundtrip(w: usize, h: usize, tile: usize, overlap: usize, channels: usize) -> (Vec<f32>, Vec<f32>) {
        let image: Vec<f32> = (0..w * h * channels).map(|i| ((i * 37) % 101) as f32 * 0.25).collect();
        let grid = TileGrid::new(w, h, tile, overlap).unwrap();
        let mut blender = Blender::new(grid.clone(), channels);
        for t in &grid.tiles {
            let planar = grid.extract_planar(&image, channels, t);
            blender.add(t, &planar);
        }
        (image, blender.finish())
    }

    #[test]
    fn identity_tiles_reconstruct_exactly() {
        for &(w, h, tile, overlap) in &[(300, 200, 64, 16), (128, 128, 64, 32), (97, 131, 32, 8), (64, 64, 64, 16)] {
            let (image, out) = roundtrip(w, h, tile, overlap, 3);
            let max_err = image.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max_err < 1e-4, "{w}x{h} tile {tile} overlap {overlap}: max error {max_err}");
        }
    }

    #[test]
    fn constant_field_has_no_seam() {
        let (w, h, tile, overlap) = (250, 170, 64, 24);
        let grid = TileGrid::new(w, h, tile, overlap).unwrap();
        let mut blender = Blender::new(grid.clone(), 2);
        let planar: Vec<f32> = [0.3f32, 0.7].iter().flat_map(|&v| std::iter::repeat_n(v, tile * tile)).collect();
        for t in &grid.tiles {
            blender.add(t, &planar);
        }
        let out = blender.finish();
        for px in out.chunks_exact(2) {
            assert!((px[0] - 0.3).abs() < 1e-6 && (px[1] - 0.7).abs() < 1e-6, "seam value {px:?}");
        }
    }

    #[test]
    fn weights_fade_inside_and_hold_on_borders() {
        let grid = TileGrid::new(200, 64, 64, 16).unwrap();
        let first = grid.tiles[0];
        let middle = grid.tiles[1];
        // left border of the first tile is the image border: full weight
        assert_eq!(grid.weight(&first, 0, 10), 1.0);
        // its right edge overlaps a neighbour: faded
        assert!(grid.weight(&first, 63, 10) < 0.1);
        // a middle tile fades on both sides, and is full in the centre
        assert!(grid.weight(&middle, 0, 10) < 0.1);
        assert_eq!(grid.weight(&middle, 32, 10), 1.0);
    }

    #[test]
    fn image_smaller_than_one_tile() {
        let grid = TileGrid::new(40, 25, 64, 16).unwrap();
        assert_eq!(grid.tiles, vec![Tile { x: 0, y: 0, width: 40, height: 25 }]);
        // padding replicates the last row and column
        let image: Vec<u8> = (0..40 * 25).map(|i| (i % 251) as u8).collect();
        let planar = grid.extract_planar(&image, 1, &grid.tiles[0]);
        assert_eq!(planar[63], image[39]);
        assert_eq!(planar[63 * 64], image[24 * 40]);
        let (image, out) = roundtrip(40, 25, 64, 16, 3);
        assert_eq!(image, out);
    }

    #[test]
    fn odd_sizes_are_fully_covered() {
        for &(w, h) in &[(1, 1), (65, 1), (129, 67), (191, 193)] {
            let grid = TileGrid::new(w, h, 64, 20).unwrap();
            let mut covered = vec![false; w * h];
            for t in &grid.tiles {
                assert!(t.x + t.width <= w && t.y + t.height <= h);
                for y in t.y..t.y + t.height {
                    for x in t.x..t.x + t.width {
                        covered[y * w + x] = true;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c), "{w}x{h} not covered");
            let (image, out) = roundtrip(w, h, 64, 20, 1);
            let max_err = image.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max_err < 1e-4, "{w}x{h}: max error {max_err}");
        }
    }

    #[test]
    fn bad_grids_are_refused() {
        assert_eq!(TileGrid::new(0, 10, 64, 8), Err(TilingError::EmptyImage(0, 10)));
        assert_eq!(TileGrid::new(10, 10, 64, 64), Err(TilingError::OverlapTooLarge { overlap: 64, tile: 64 }));
    }

    #[test]
    fn argmax_prefers_lower_class_on_ties() {
        assert_eq!(argmax_labels(&[0.5, 0.5, 0.2, 0.8, 0.9, 0.1], 2), vec![0, 1, 0]);
    }
}
