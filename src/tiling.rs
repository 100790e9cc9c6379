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
/// tiles are final, are taken out with [`Blender::take_rows`] (or [`Blender::take_labels`]) and
/// their memory reused, so a slide of any height is blended in the memory of one band. Both give
/// the same values.
///
/// A band is kept in chunks of a tile's width, made when a tile first lands in them and dropped
/// once the band has moved below every tile added to them: a band across a slide that is mostly
/// glass holds only the columns where tiles ran, so its memory follows the tissue, not the slide.
pub struct Blender {
    grid: TileGrid,
    channels: usize,
    /// The image row held first.
    top: usize,
    /// Rows held at most (the band's height).
    band_rows: usize,
    /// Columns of each chunk (the last one may be narrower).
    chunk_width: usize,
    chunks: Vec<Option<Chunk>>,
}

/// One chunk of a blender's columns: `held` rows of its columns, interleaved sums and weights.
struct Chunk {
    sum: Vec<f32>,
    weight: Vec<f32>,
    /// The first image row below every tile added.
    bottom: usize,
}

impl Blender {
    pub fn new(grid: TileGrid, channels: usize) -> Self {
        let (rows, width) = (grid.image_height, grid.image_width);
        Self::with_chunks(grid, channels, rows, width)
    }

    /// A blender holding `rows` rows at a time (at least a tile's height, to take a row of tiles).
    pub fn band(grid: TileGrid, channels: usize, rows: usize) -> Self {
        let chunk_width = grid.tile_size;
        Self::with_chunks(grid, channels, rows, chunk_width)
    }

    fn with_chunks(grid: TileGrid, channels: usize, rows: usize, chunk_width: usize) -> Self {
        let chunks = (0..grid.image_width.div_ceil(chunk_width)).map(|_| None).collect();
        Self { band_rows: rows.min(grid.image_height), grid, channels, top: 0, chunk_width, chunks }
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

    /// Columns `x0..x0 + width` of chunk `i`.
    fn chunk_columns(&self, i: usize) -> (usize, usize) {
        let x0 = i * self.chunk_width;
        (x0, self.chunk_width.min(self.grid.image_width - x0))
    }

    /// Rows a chunk holds now: the band, or what is left of the image below its top.
    fn held_rows(&self) -> usize {
        self.band_rows.min(self.grid.image_height - self.top)
    }

    /// Chunks holding some data now.
    pub fn chunks_held(&self) -> usize {
        self.chunks.iter().filter(|c| c.is_some()).count()
    }

    /// Add one tile's planar values. Values of the padded part outside the image are ignored.
    pub fn add(&mut self, tile: &Tile, planar: &[f32]) {
        let t = self.grid.tile_size;
        let c = self.channels;
        assert_eq!(planar.len(), c * t * t, "tile data has the wrong length");
        let held = self.held_rows();
        assert!(tile.y >= self.top && tile.y + tile.height - self.top <= held, "tile outside the band held");
        for i in tile.x / self.chunk_width..=(tile.x + tile.width - 1) / self.chunk_width {
            let (x0, width) = self.chunk_columns(i);
            let chunk = self.chunks[i].get_or_insert_with(|| Chunk { sum: vec![0.0; held * width * c], weight: vec![0.0; held * width], bottom: 0 });
            chunk.bottom = chunk.bottom.max(tile.y + tile.height);
            for ty in 0..tile.height {
                for x in tile.x.max(x0)..(tile.x + tile.width).min(x0 + width) {
                    let tx = x - tile.x;
                    let w = self.grid.weight(tile, tx, ty);
                    if w <= 0.0 {
                        continue;
                    }
                    let p = (tile.y + ty - self.top) * width + x - x0;
                    chunk.weight[p] += w;
                    for ch in 0..c {
                        chunk.sum[p * c + ch] += w * planar[(ch * t + ty) * t + tx];
                    }
                }
            }
        }
    }

    /// Takes the next `rows` rows of every chunk held, normalised (interleaved, `rows * width *
    /// channels` of the chunk's columns), handing each to `put` with its first column; the band
    /// moves down by as much, and chunks no tile added reaches any more are dropped.
    fn take_chunks(&mut self, rows: usize, mut put: impl FnMut(usize, usize, Vec<f32>)) {
        let c = self.channels;
        let rows = rows.min(self.grid.image_height - self.top);
        let held = self.held_rows();
        self.top += rows;
        let keep = self.held_rows();
        for i in 0..self.chunks.len() {
            let (x0, width) = self.chunk_columns(i);
            let Some(chunk) = self.chunks[i].as_mut() else { continue };
            let n = rows * width;
            // all the rows held (a whole image's blend): normalised in place, as no copy is needed
            let mut out: Vec<f32> = if n == held * width { std::mem::take(&mut chunk.sum) } else { chunk.sum.drain(..n * c).collect() };
            let weights = if n == held * width { std::mem::take(&mut chunk.weight) } else { chunk.weight.drain(..n).collect() };
            for (p, w) in weights.into_iter().enumerate() {
                // Every pixel of a tile that ran has positive weight (its own tile's centre
                // region, or a border edge); pixels no tile ran over stay zero.
                let inv = if w > 0.0 { 1.0 / w } else { 0.0 };
                for v in &mut out[p * c..(p + 1) * c] {
                    *v *= inv;
                }
            }
            if chunk.bottom <= self.top {
                self.chunks[i] = None;
            } else {
                // keep the band's size: the rows below start empty
                chunk.weight.resize(keep * width, 0.0);
                chunk.sum.resize(keep * width * c, 0.0);
            }
            put(x0, width, out);
        }
    }

    /// The blended values of the next `rows` rows (interleaved, `rows * width * channels`), which
    /// no tile still to come may touch; the band moves down by as much. Pixels no tile ran over
    /// are zero.
    pub fn take_rows(&mut self, rows: usize) -> Vec<f32> {
        let (c, w) = (self.channels, self.grid.image_width);
        if self.chunks.len() == 1 && rows >= self.grid.image_height - self.top && self.chunks[0].is_some() {
            // one chunk of every column taken whole: its buffer is the answer
            let mut whole = Vec::new();
            self.take_chunks(rows, |_, _, out| whole = out);
            return whole;
        }
        let rows = rows.min(self.grid.image_height - self.top);
        let mut whole = vec![0.0; rows * w * c];
        self.take_chunks(rows, |x0, width, out| {
            for (r, values) in out.chunks_exact(width * c).enumerate() {
                whole[(r * w + x0) * c..(r * w + x0 + width) * c].copy_from_slice(values);
            }
        });
        whole
    }

    /// [`Blender::take_rows`] as labels (the argmax of [`argmax_labels`]), without the rows'
    /// values of every column at once: pixels no tile ran over are class 0.
    pub fn take_labels(&mut self, rows: usize) -> Vec<u8> {
        let (c, w) = (self.channels, self.grid.image_width);
        let rows = rows.min(self.grid.image_height - self.top);
        let mut labels = vec![0; rows * w];
        self.take_chunks(rows, |x0, width, out| {
            for (r, row) in argmax_labels(&out, c).chunks_exact(width).enumerate() {
                labels[r * w + x0..r * w + x0 + width].copy_from_slice(row);
            }
        });
        labels
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
    fn a_band_holds_only_the_columns_where_tiles_ran_and_blends_as_the_whole_image() {
        let (w, h, tile, overlap, c) = (700, 300, 64, 16, 3);
        let image: Vec<f32> = (0..w * h * c).map(|i| ((i * 37) % 101) as f32 * 0.25).collect();
        let grid = TileGrid::new(w, h, tile, overlap).unwrap();
        // tissue in two patches far apart: a column of tiles on the left, a block on the right
        let runs = |t: &Tile| t.x < 60 || (t.x > 450 && t.x < 560 && t.y > 40);
        let mut whole = Blender::new(grid.clone(), c);
        let mut band = Blender::band(grid.clone(), c, tile);
        let (mut rows, mut most) = (Vec::new(), 0);
        let mut row_tops: Vec<usize> = grid.tiles.iter().map(|t| t.y).collect();
        row_tops.dedup();
        for (r, &top) in row_tops.iter().enumerate() {
            for t in grid.tiles.iter().filter(|t| t.y == top && runs(t)) {
                let planar = grid.extract_planar(&image, c, t);
                whole.add(t, &planar);
                band.add(t, &planar);
            }
            most = most.max(band.chunks_held());
            let next = row_tops.get(r + 1).copied().unwrap_or(h);
            rows.extend(band.take_rows(next - band.top()));
        }
        assert_eq!(rows, whole.finish());
        // 11 chunks of 64 columns across; the tiles that ran (columns 0..112 and 480..592)
        // reach 2 + 3 of them
        assert_eq!(most, 5, "chunks held");
        assert_eq!(band.chunks_held(), 0);
        // pixels no tile ran over are zero
        assert!(rows[(100 * w + 300) * c..(100 * w + 301) * c].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn labels_taken_from_a_band_are_the_argmax_of_its_values() {
        let (w, h, tile, c) = (300, 200, 64, 3);
        let image: Vec<f32> = (0..w * h * c).map(|i| ((i * 53) % 97) as f32).collect();
        let grid = TileGrid::new(w, h, tile, 16).unwrap();
        let (mut a, mut b) = (Blender::band(grid.clone(), c, tile), Blender::band(grid.clone(), c, tile));
        for t in grid.tiles.iter().filter(|t| t.y == 0 && t.x < 150) {
            let planar = grid.extract_planar(&image, c, t);
            a.add(t, &planar);
            b.add(t, &planar);
        }
        let rows = grid.tiles.iter().map(|t| t.y).find(|&y| y > 0).unwrap();
        let labels = a.take_labels(rows);
        assert_eq!(labels, argmax_labels(&b.take_rows(rows), c));
        assert!(labels.iter().any(|&l| l > 0));
    }

    #[test]
    fn argmax_prefers_lower_class_on_ties() {
        assert_eq!(argmax_labels(&[0.5, 0.5, 0.2, 0.8, 0.9, 0.1], 2), vec![0, 1, 0]);
    }
}
