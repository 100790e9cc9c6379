//! Whole-slide segmentation of any size in bounded memory, shared by the CLI and the browser.
//!
//! Where [`crate::segment::SegmentJob`] holds a region's pixels and class probabilities at once
//! (so it is capped), this job streams:
//!
//! 1. **Tissue on a low-resolution level.** A thumbnail of the slide (a few megapixels, read from
//!    the pyramid's coarse levels) gets the model's glass rule ([`crate::tissue`]). A tile of the
//!    model's grid runs only where some thumbnail cell under it is not deep inside the glass, so
//!    the tiles of glass are never read from the file. At full resolution a pixel is glass where
//!    its cell is deep in the glass, or is glass at the edge and the pixel itself is white.
//! 2. **Bands.** The grid's rows of tiles run in order. Only the band of pixels under one row of
//!    tiles is read ([`RowSource`]), and only its columns under tiles that run (a window for each
//!    run of neighbouring tissue tiles), and probabilities are blended in a band that moves down
//!    ([`crate::tiling::Blender::band`]) and holds only the columns tiles ran in: the rows above
//!    the next row of tiles are final. So the memory of a band follows the tissue across it, not
//!    the slide's width.
//! 3. **Labels at the region's level-0 size**, each final row resampled as
//!    [`crate::segment::labels_for_region`] does, go row by row through the streamed
//!    post-processing ([`crate::label_stream`]), which joins objects across every border. Final
//!    label rows come out in order, with the objects and per-class areas at the end.
//!
//! A tile whose pixels are all glass changes no label (it is blended only into its own pixels),
//! so skipping tiles gives the labels of running them all.

use std::collections::VecDeque;

use crate::export::Object;
use crate::imageio::{self, RgbImage};
use crate::resample;
use crate::label_stream::ObjectStream;
use crate::segment::{Batch, JobError, in_orientations, per_tile};
use crate::slide::{Region, Slide, SlideError};
use crate::tiling::{Blender, Tile, TileGrid};
use crate::tissue::{GlassConfig, glass_mask, white_pixels};
use crate::tta;
use crate::weights::Manifest;

/// Pixels of an image at the model's resolution, read a window of a band at a time.
pub trait RowSource {
    /// Columns `x..x + width` of rows `y..y + rows`.
    fn window(&mut self, x: usize, y: usize, width: usize, rows: usize) -> Result<RgbImage, SlideError>;
}

/// An image already in memory (tests, and images decoded whole).
impl RowSource for RgbImage {
    fn window(&mut self, x: usize, y: usize, width: usize, rows: usize) -> Result<RgbImage, SlideError> {
        let pixels = (y..y + rows).flat_map(|r| &self.pixels[(r * self.width + x) * 3..(r * self.width + x + width) * 3]).copied().collect();
        Ok(RgbImage::new(width, rows, pixels))
    }
}

/// A region of a slide at the model's resolution, read from the file a band at a time
/// ([`SlideRows::on`] pairs it with the open slide).
#[derive(Debug, Clone, Copy)]
pub struct SlideRows {
    pub region: Region,
    pub level0_um: f64,
    pub model_um: f64,
}

impl SlideRows {
    /// The region's size at the model's resolution.
    pub fn size(&self) -> (usize, usize) {
        imageio::rescaled_size(self.region.width, self.region.height, self.level0_um, self.model_um)
    }

    /// A [`RowSource`] reading these rows from `slide`.
    pub fn on<'a>(&'a self, slide: &'a mut Slide) -> OnSlide<'a> {
        OnSlide { rows: self, slide }
    }
}

pub struct OnSlide<'a> {
    rows: &'a SlideRows,
    slide: &'a mut Slide,
}

impl RowSource for OnSlide<'_> {
    /// The pixels [`Slide::read_at_resolution`] gives the whole region, a window at a time: the
    /// level's pixels under the window, resampled with the whole region's mapping
    /// ([`crate::resample`]), so they are the same bytes.
    fn window(&mut self, x: usize, y: usize, width: usize, rows: usize) -> Result<RgbImage, SlideError> {
        let g = self.rows;
        let to = g.size();
        let level = self.slide.level_for(g.level0_um, g.model_um);
        let (lx, ly, lw, lh) = self.slide.level_rect(level, g.region);
        let from = (lw, lh);
        let (sx0, sx1) = resample::source_span(from.0, to.0, x, x + width);
        let (sy0, sy1) = resample::source_span(from.1, to.1, y, y + rows);
        let src = self.slide.read_wide(level, lx + sx0, ly + sy0, sx1 - sx0, sy1 - sy0)?;
        Ok(resample::resize_window(&src, (sx0, sy0), from, to, (x, y, width, rows)))
    }
}

/// The thumbnail resolution for tissue detection of a `width` x `height` region at `level0_um`:
/// four times coarser than the model, coarser still to stay within about four megapixels.
pub fn thumbnail_um(width: usize, height: usize, level0_um: f64, model_um: f64) -> f64 {
    let area_um2 = width as f64 * height as f64 * level0_um * level0_um;
    (4.0 * model_um).max((area_um2 / 4.0e6).sqrt())
}

/// Where the glass is, from a thumbnail.
pub struct TissueMap {
    width: usize,
    height: usize,
    /// Thumbnail cells per model pixel.
    scale: f64,
    glass: Vec<bool>,
    /// Glass whose eight neighbours are glass too.
    deep: Vec<bool>,
    config: GlassConfig,
}

impl TissueMap {
    /// The glass rule on a thumbnail at `thumb_um`, for a model at `model_um`.
    pub fn new(thumb: &RgbImage, thumb_um: f64, model_um: f64, config: &GlassConfig) -> Self {
        let (w, h) = (thumb.width, thumb.height);
        let glass = glass_mask(&thumb.pixels, w, h, thumb_um, config);
        let deep = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                (y.saturating_sub(1)..(y + 2).min(h)).all(|ny| (x.saturating_sub(1)..(x + 2).min(w)).all(|nx| glass[ny * w + nx]))
            })
            .collect();
        Self { width: w, height: h, scale: model_um / thumb_um, glass, deep, config: config.clone() }
    }

    fn cell_x(&self, x: usize) -> usize {
        ((x as f64 * self.scale) as usize).min(self.width - 1)
    }

    fn cell_y(&self, y: usize) -> usize {
        ((y as f64 * self.scale) as usize).min(self.height - 1)
    }

    /// Whether some pixel of `tile` may be tissue.
    fn runs(&self, tile: &Tile) -> bool {
        let (x0, x1) = (self.cell_x(tile.x), self.cell_x(tile.x + tile.width - 1));
        let (y0, y1) = (self.cell_y(tile.y), self.cell_y(tile.y + tile.height - 1));
        (y0..=y1).any(|cy| (x0..=x1).any(|cx| !self.deep[cy * self.width + cx]))
    }

    /// Glass pixels of `rows` full-width rows from `y`, given which of them are white (pixels
    /// where some tile ran; elsewhere they lie deep in the glass, and are not looked at).
    fn glass_rows(&self, y: usize, rows: usize, width: usize, white: &[bool]) -> Vec<bool> {
        let cells: Vec<usize> = (0..width).map(|x| self.cell_x(x)).collect();
        (0..rows * width)
            .map(|i| {
                let c = self.cell_y(y + i / width) * self.width + cells[i % width];
                self.deep[c] || self.glass[c] && white[i]
            })
            .collect()
    }
}

/// A streamed segmentation of a region (a whole slide, typically).
pub struct WholeSlideJob {
    grid: TileGrid,
    /// Each row of tiles: its top row of pixels.
    row_tops: Vec<usize>,
    /// The row of tiles of each tile.
    row_of: Vec<usize>,
    /// The tiles that run (those with some tissue), in grid order; batches count in these.
    order: Vec<usize>,
    /// Tiles handed out, and tiles accepted (a prefix of `order` each).
    issued: usize,
    done: usize,
    /// Rows of tiles whose pixels are labelled.
    rows_finished: usize,
    /// The windows read of rows of tiles with tiles out.
    bands: std::collections::BTreeMap<usize, Vec<Window>>,
    blender: Blender,
    tissue: Option<TissueMap>,
    orientations: usize,
    /// Final model-resolution label rows from `model_top` on, kept until resampled.
    model_rows: VecDeque<Vec<u8>>,
    model_top: usize,
    /// Model column of each output column, and the next output row.
    columns: Vec<usize>,
    out_height: usize,
    out_next: usize,
    /// Output rows before post-processing, when asked for ([`WholeSlideJob::keep_raw_rows`]).
    raw_rows: Option<Vec<Vec<u8>>>,
    objects: ObjectStream,
}

impl WholeSlideJob {
    /// A job over a `width` x `height` image at the model's resolution whose labels come out at
    /// `out` (the region's level-0 size, at `out_um` µm/px), in tiles of `tile_size`; `tissue`
    /// (from [`TissueMap::new`]) applies the glass rule.
    pub fn new(width: usize, height: usize, out: (usize, usize), out_um: f64, manifest: &Manifest, tile_size: usize, tissue: Option<TissueMap>) -> Result<Self, JobError> {
        let grid = TileGrid::new(width, height, tile_size, manifest.overlap)?;
        let mut row_tops: Vec<usize> = Vec::new();
        let mut row_of = Vec::with_capacity(grid.tiles.len());
        for t in &grid.tiles {
            if row_tops.last() != Some(&t.y) {
                row_tops.push(t.y);
            }
            row_of.push(row_tops.len() - 1);
        }
        let order: Vec<usize> = (0..grid.tiles.len()).filter(|&i| tissue.as_ref().is_none_or(|m| m.runs(&grid.tiles[i]))).collect();
        if order.is_empty() {
            return Err(JobError::NoTissue);
        }
        let (out_width, out_height) = out;
        let columns = (0..out_width).map(|x| (((x as f64 + 0.5) * width as f64 / out_width as f64) as usize).min(width - 1)).collect();
        let classes = manifest.head.num_classes;
        let blender = Blender::band(grid.clone(), classes, tile_size);
        let objects = ObjectStream::new(out_width, out_height, classes, manifest.postprocess.clone(), out_um);
        Ok(Self {
            grid,
            row_tops,
            row_of,
            order,
            issued: 0,
            done: 0,
            rows_finished: 0,
            bands: Default::default(),
            blender,
            tissue,
            orientations: 1,
            model_rows: VecDeque::new(),
            model_top: 0,
            columns,
            out_height,
            out_next: 0,
            raw_rows: None,
            objects,
        })
    }

    /// Runs every tile in the eight orientations of the square and averages them ([`crate::tta`]).
    pub fn with_tta(mut self, on: bool) -> Self {
        self.orientations = if on { tta::ORIENTATIONS } else { 1 };
        self
    }

    /// Keeps the output rows before post-processing too ([`WholeSlideJob::take_raw_rows`], or
    /// [`StreamRow::Raw`] to a sink): the page previews them while objects are still open.
    pub fn keep_raw_rows(mut self) -> Self {
        self.raw_rows = Some(Vec::new());
        self
    }

    /// Tiles that run (those with some tissue).
    pub fn total_tiles(&self) -> usize {
        self.order.len()
    }

    /// Tiles of the grid not run because they lie in the glass.
    pub fn glass_tiles(&self) -> usize {
        self.grid.tiles.len() - self.order.len()
    }

    pub fn tiles_done(&self) -> usize {
        self.done
    }

    pub fn is_done(&self) -> bool {
        self.rows_finished == self.row_tops.len()
    }

    /// The next tiles after those handed out, up to `max` network inputs (at least one tile, in
    /// all its orientations), their bands read from `source`; `None` when all are out. Several
    /// batches may be out at once (a pool of workers); they are accepted in order.
    pub fn take_batch(&mut self, source: &mut dyn RowSource, max: usize) -> Result<Option<Batch>, SlideError> {
        let tiles = (max / self.orientations).max(1).min(self.order.len() - self.issued);
        if tiles == 0 {
            return Ok(None);
        }
        let take = self.order[self.issued..self.issued + tiles].to_vec();
        let mut planar = Vec::with_capacity(tiles * self.orientations * 3 * self.grid.tile_size * self.grid.tile_size);
        for &i in &take {
            let row = self.row_of[i];
            if !self.bands.contains_key(&row) {
                let top = self.row_tops[row];
                let rows = self.grid.tile_size.min(self.grid.image_height - top);
                let windows = self.windows(row).into_iter().map(|(x, width)| Window::read(source, x, top, width, rows)).collect::<Result<_, _>>()?;
                self.bands.insert(row, windows);
            }
            let tile = &self.grid.tiles[i];
            let window = self.bands[&row].iter().find(|w| w.x <= tile.x && tile.x + tile.width <= w.x + w.image.width).expect("a tile that runs lies in a window of its band");
            let tile = self.extract(window, self.row_tops[row], tile);
            planar.extend(in_orientations(tile, self.grid.tile_size, self.orientations));
        }
        let batch = Batch { start: self.issued, tiles, count: tiles * self.orientations, planar };
        self.issued += tiles;
        Ok(Some(batch))
    }

    /// Hands out again the tiles handed out but not accepted (their answers were lost).
    pub fn reissue(&mut self) {
        self.issued = self.done;
    }

    /// The columns `x..x + width` of the windows of a row of tiles to read: one for each run of
    /// neighbouring tiles that run.
    fn windows(&self, row: usize) -> Vec<(usize, usize)> {
        let (lo, hi) = (self.order.partition_point(|&i| self.row_of[i] < row), self.order.partition_point(|&i| self.row_of[i] <= row));
        let mut windows: Vec<(usize, usize)> = Vec::new();
        for t in self.order[lo..hi].iter().map(|&i| &self.grid.tiles[i]) {
            match windows.last_mut() {
                // tiles of a row come left to right; overlapping or touching ones share a window
                Some((x, w)) if t.x <= *x + *w => *w = (*w).max(t.x + t.width - *x),
                _ => windows.push((t.x, t.width)),
            }
        }
        windows
    }

    /// A tile's planar `[3, tile, tile]` values from its window of the band starting at row
    /// `top`, padded by edge replication as [`TileGrid::extract_planar`] pads.
    fn extract(&self, window: &Window, top: usize, tile: &Tile) -> Vec<f32> {
        let (t, w, h) = (self.grid.tile_size, self.grid.image_width, self.grid.image_height);
        let ww = window.image.width;
        let mut out = Vec::with_capacity(3 * t * t);
        for c in 0..3 {
            for ty in 0..t {
                let row = ((tile.y + ty).min(h - 1) - top) * ww;
                for tx in 0..t {
                    out.push(window.values[(row + (tile.x + tx).min(w - 1) - window.x) * 3 + c]);
                }
            }
        }
        out
    }

    /// Blends a batch's probabilities, planar `[count, classes, tile, tile]`. Batches are
    /// accepted in the order they were handed out; the rows of pixels no tile still to come
    /// touches are labelled at once, and kept for [`WholeSlideJob::take_label_rows`].
    pub fn accept(&mut self, batch: &Batch, probabilities: &[f32]) {
        self.accept_into(batch, probabilities, None);
    }

    /// [`WholeSlideJob::accept`], handing each row to `sink` as soon as it exists instead of
    /// keeping it: the rows of glass between distant tissue, or after the last tissue, are
    /// labelled in one call, and a slide's worth of them must not pile up.
    pub fn accept_with(&mut self, batch: &Batch, probabilities: &[f32], sink: &mut dyn FnMut(StreamRow)) {
        self.accept_into(batch, probabilities, Some(sink));
    }

    fn accept_into(&mut self, batch: &Batch, probabilities: &[f32], mut sink: Option<&mut dyn FnMut(StreamRow)>) {
        assert_eq!(batch.start, self.done, "batches must be accepted in order");
        let tiles: Vec<usize> = self.order[batch.start..batch.start + batch.tiles].to_vec();
        for (&i, mean) in tiles.iter().zip(per_tile(batch, probabilities, self.blender.channels(), self.grid.tile_size)) {
            while self.rows_finished < self.row_of[i] {
                self.finish_row(&mut sink);
            }
            self.blender.add(&self.grid.tiles[i], &mean);
        }
        self.done += batch.tiles;
        let next = self.order.get(self.done).map_or(self.row_tops.len(), |&i| self.row_of[i]);
        while self.rows_finished < next {
            self.finish_row(&mut sink);
        }
    }

    /// Labels the pixel rows above the next row of tiles.
    fn finish_row(&mut self, sink: &mut Option<&mut dyn FnMut(StreamRow)>) {
        let row = self.rows_finished;
        let top = self.row_tops[row];
        let next_top = self.row_tops.get(row + 1).copied().unwrap_or(self.grid.image_height);
        let rows = next_top - self.blender.top();
        let width = self.grid.image_width;
        let mut labels = self.blender.take_labels(rows);
        let band = self.bands.remove(&row).unwrap_or_default();
        if let Some(tissue) = &self.tissue {
            let y = next_top - rows;
            // pixels outside the windows (a row of tiles none of which ran has none) lie deep in
            // the glass: every pixel whose cell is not is under a tile that ran
            let mut white = vec![false; rows * width];
            for window in &band {
                let ww = window.image.width;
                let rgb = &window.image.pixels[(y - top) * ww * 3..(y - top + rows) * ww * 3];
                for (r, row) in white_pixels(rgb, &tissue.config).chunks_exact(ww).enumerate() {
                    white[r * width + window.x..r * width + window.x + ww].copy_from_slice(row);
                }
            }
            for (l, g) in labels.iter_mut().zip(tissue.glass_rows(y, rows, width, &white)) {
                if g {
                    *l = 0;
                }
            }
        }
        self.model_rows.extend(labels.chunks_exact(width).map(<[u8]>::to_vec));
        self.rows_finished += 1;
        self.resample_rows(sink);
    }

    /// Output rows whose model row is final go to the post-processing (and, with a sink, the rows
    /// it makes final go on at once).
    fn resample_rows(&mut self, sink: &mut Option<&mut dyn FnMut(StreamRow)>) {
        let (height, final_rows) = (self.grid.image_height, self.model_top + self.model_rows.len());
        while self.out_next < self.out_height {
            let sy = (((self.out_next as f64 + 0.5) * height as f64 / self.out_height as f64) as usize).min(height - 1);
            if sy >= final_rows {
                break;
            }
            while self.model_top < sy {
                self.model_rows.pop_front();
                self.model_top += 1;
            }
            let src = &self.model_rows[0];
            let row: Vec<u8> = self.columns.iter().map(|&x| src[x]).collect();
            self.objects.push_row(&row);
            match (sink.as_mut(), &mut self.raw_rows) {
                (Some(sink), Some(_)) => sink(StreamRow::Raw(row)),
                (None, Some(raw)) => raw.push(row),
                (_, None) => {}
            }
            if let Some(sink) = sink.as_mut() {
                for row in self.objects.take_rows() {
                    sink(StreamRow::Final(row));
                }
            }
            self.out_next += 1;
        }
    }

    /// Output rows labelled so far, before post-processing (see [`WholeSlideJob::keep_raw_rows`]).
    pub fn take_raw_rows(&mut self) -> Vec<Vec<u8>> {
        self.raw_rows.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Final label rows (after post-processing, at the output size) since the last call, in order.
    pub fn take_label_rows(&mut self) -> Vec<Vec<u8>> {
        self.objects.take_rows()
    }

    /// Pixels of each class in the final rows so far.
    pub fn class_areas(&self) -> &[u64] {
        self.objects.class_areas()
    }

    /// Every object of the region, numbered as [`crate::postprocess::apply`] numbers them.
    pub fn objects(&mut self) -> Vec<Object> {
        self.objects.objects()
    }
}

/// Columns `x..x + width` of a band: their pixels, and the same in [-1, 1] for the network.
struct Window {
    x: usize,
    image: RgbImage,
    values: Vec<f32>,
}

impl Window {
    fn read(source: &mut dyn RowSource, x: usize, y: usize, width: usize, rows: usize) -> Result<Self, SlideError> {
        let image = source.window(x, y, width, rows)?;
        let values = image.pixels.iter().map(|&v| imageio::to_network(v)).collect();
        Ok(Self { x, image, values })
    }
}

/// A row of a streamed job's output, handed out by [`WholeSlideJob::accept_with`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRow {
    /// The next row before post-processing (only with [`WholeSlideJob::keep_raw_rows`]).
    Raw(Vec<u8>),
    /// The next final row (post-processed), in order.
    Final(Vec<u8>),
}

/// The tissue map of a slide region for `manifest`'s glass rule, read from a thumbnail; `None`
/// when the model has no glass rule.
pub fn tissue_of(slide: &mut Slide, region: Region, level0_um: f64, manifest: &Manifest) -> Result<Option<TissueMap>, SlideError> {
    let Some(config) = &manifest.postprocess.glass else { return Ok(None) };
    let wanted = thumbnail_um(region.width, region.height, level0_um, manifest.um_per_px);
    let (thumb, thumb_um) = slide.thumbnail(region, level0_um, wanted)?;
    Ok(Some(TissueMap::new(&thumb, thumb_um, manifest.um_per_px, config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{HeadConfig, UNetConfig};
    use crate::postprocess::{PostprocessConfig, apply};
    use crate::segment::{SegmentJob, labels_for_region};
    use crate::weights::{ClassInfo, new_manifest};

    /// A stand-in network: two classes from each pixel's red and the tile's mean red (so which
    /// tiles run changes the blend).
    fn fake_network(planar: &[f32], count: usize) -> Vec<f32> {
        let per = planar.len() / count / 3;
        planar
            .chunks_exact(3 * per)
            .flat_map(|t| {
                let red = &t[..per];
                let mean = red.iter().sum::<f32>() / per as f32;
                let p = |r: f32| (0.6 * r + 0.4 * mean + 1.0) / 2.0;
                red.iter().map(|&r| 1.0 - p(r)).chain(red.iter().map(|&r| p(r))).collect::<Vec<_>>()
            })
            .collect()
    }

    fn manifest(postprocess: PostprocessConfig) -> Manifest {
        let head = HeadConfig::new(vec![0], 8, 2);
        let classes = vec![ClassInfo { name: "background".into(), color: [0, 0, 0] }, ClassInfo { name: "gland".into(), color: [255, 0, 0] }];
        let mut m = new_manifest("test", classes, UNetConfig::default(), head);
        (m.overlap, m.postprocess) = (16, postprocess);
        m
    }

    /// Blobs of red of many sizes, some across every tile and band border, on white glass at the
    /// left when `glass`.
    fn picture(w: usize, h: usize, glass: bool) -> RgbImage {
        let pixels = (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                if glass && x < w as f32 * 0.4 - 7.0 {
                    return [242, 241, 240];
                }
                let v = (x / 13.0).sin() * (y / 9.0).cos() + (x / 41.0 + y / 29.0).sin() * 0.6;
                [if v > 0.3 { 220 } else { 60 }, 90, 160]
            })
            .collect();
        RgbImage { width: w, height: h, pixels }
    }

    /// An image as a [`RowSource`] that records the windows read: `(x, y, width, rows)`.
    struct Recording {
        image: RgbImage,
        windows: Vec<(usize, usize, usize, usize)>,
    }

    impl RowSource for Recording {
        fn window(&mut self, x: usize, y: usize, width: usize, rows: usize) -> Result<RgbImage, SlideError> {
            self.windows.push((x, y, width, rows));
            self.image.window(x, y, width, rows)
        }
    }

    fn stream(job: &mut WholeSlideJob, source: &mut dyn RowSource) -> Vec<u8> {
        let mut labels = Vec::new();
        while let Some(b) = job.take_batch(source, 3).unwrap() {
            let p = fake_network(&b.planar, b.count);
            job.accept(&b, &p);
            labels.extend(job.take_label_rows().concat());
        }
        labels.extend(job.take_label_rows().concat());
        labels
    }

    #[test]
    fn streamed_labels_and_objects_are_those_of_the_whole_image() {
        let (w, h, out) = (300, 230, (451, 347));
        let image = picture(w, h, false);
        let config = PostprocessConfig { boundary_class: None, min_object_um2: 3.0, fill_holes: true, glass: None };
        let m = manifest(config.clone());
        for tta in [false, true] {
            let mut whole = SegmentJob::new(&image, 64, 16, 2).unwrap().with_tta(tta);
            while let Some(b) = whole.next_batch(3) {
                let p = fake_network(&b.planar, b.count);
                whole.accept(&b, &p);
            }
            let seg = whole.finish();
            let region = Region { x: 0, y: 0, width: out.0, height: out.1 };
            let want = apply(&labels_for_region(&seg, region), out.0, out.1, &config, 0.5);
            let mut job = WholeSlideJob::new(w, h, out, 0.5, &m, 64, None).unwrap().with_tta(tta);
            let labels = stream(&mut job, &mut image.clone());
            assert_eq!(labels, want.labels, "tta {tta}");
            let objects = job.objects();
            assert_eq!(objects, crate::export::objects(&want), "tta {tta}");
            assert!(objects.len() > 10 && objects.iter().any(|o| o.bbox[3] - o.bbox[1] > 64), "objects across bands: {}", objects.len());
            assert_eq!(job.class_areas(), crate::overlay::class_areas(&want.labels, 2));
        }
    }

    #[test]
    fn batches_taken_ahead_by_a_pool_give_the_sequential_labels() {
        let (w, h) = (300, 230);
        let image = picture(w, h, false);
        let m = manifest(PostprocessConfig { fill_holes: true, ..Default::default() });
        let mut one = WholeSlideJob::new(w, h, (w, h), 0.5, &m, 64, None).unwrap();
        let want = stream(&mut one, &mut image.clone());
        // three batches out at once, as three workers would run them, across rows of tiles
        let mut pooled = WholeSlideJob::new(w, h, (w, h), 0.5, &m, 64, None).unwrap();
        let mut source = image.clone();
        let mut out: Vec<Batch> = (0..3).filter_map(|_| pooled.take_batch(&mut source, 2).unwrap()).collect();
        let mut labels = Vec::new();
        while !out.is_empty() {
            let b = out.remove(0);
            let p = fake_network(&b.planar, b.count);
            pooled.accept(&b, &p);
            labels.extend(pooled.take_label_rows().concat());
            out.extend(pooled.take_batch(&mut source, 2).unwrap());
            assert!(pooled.bands.len() <= 3, "bands held: {}", pooled.bands.len());
        }
        assert!(pooled.is_done());
        assert_eq!(labels, want);
    }

    #[test]
    fn tiles_in_the_glass_are_not_read_or_run_and_change_no_label() {
        let (w, h) = (400, 260);
        let image = picture(w, h, true);
        let config = GlassConfig { min_area_um2: 1_000.0, ..GlassConfig::default() };
        // each cell's first pixel, so the cell left of the tissue's edge is glass with a column
        // of tissue in it
        let thumb = RgbImage { width: w / 8, height: h / 8, pixels: (0..h / 8 * (w / 8)).flat_map(|i| {
            let p = ((i / (w / 8)) * 8 * w + (i % (w / 8)) * 8) * 3;
            image.pixels[p..p + 3].to_vec()
        }).collect() };
        let tissue = || Some(TissueMap::new(&thumb, 8.0, 1.0, &config));
        let m = manifest(PostprocessConfig::default());
        let mut skipping = WholeSlideJob::new(w, h, (w, h), 1.0, &m, 64, tissue()).unwrap();
        let mut every = WholeSlideJob::new(w, h, (w, h), 1.0, &m, 64, tissue()).unwrap();
        every.order = (0..every.grid.tiles.len()).collect();
        assert!(skipping.glass_tiles() >= 6, "{} tiles of glass", skipping.glass_tiles());
        // every pixel of a tile not run is glass by the full-resolution rule
        let map = skipping.tissue.as_ref().unwrap();
        let glass = map.glass_rows(0, h, w, &white_pixels(&image.pixels, &map.config));
        for t in skipping.grid.tiles.iter().enumerate().filter(|(i, _)| !skipping.order.contains(i)).map(|(_, t)| t) {
            assert!((t.y..t.y + t.height).all(|y| (t.x..t.x + t.width).all(|x| glass[y * w + x])), "{t:?} has tissue");
        }
        let mut read = Recording { image: image.clone(), windows: Vec::new() };
        let (a, b) = (stream(&mut skipping, &mut read), stream(&mut every, &mut image.clone()));
        assert_eq!(a, b);
        // only the columns under tiles that ran are read: none of the two columns of tiles of
        // glass at the left (x < 96)
        assert!(!read.windows.is_empty() && read.windows.iter().all(|&(x, _, width, _)| x >= 96 && x + width == w), "{:?}", read.windows);
        // the glass is background, the tissue keeps its labels
        assert!((0..w * h).filter(|i| i % w < 150).all(|i| a[i] == 0));
        assert!((0..w * h).filter(|i| i % w > 170).any(|i| a[i] == 1));
        assert_eq!(skipping.tiles_done(), skipping.total_tiles());
    }

    #[test]
    fn a_sink_gets_every_row_as_it_is_made_and_the_job_keeps_none() {
        let (w, h, out) = (300, 230, (451, 347));
        let image = picture(w, h, false);
        let m = manifest(PostprocessConfig { fill_holes: true, ..Default::default() });
        let mut keeping = WholeSlideJob::new(w, h, out, 0.5, &m, 64, None).unwrap().keep_raw_rows();
        let want = stream(&mut keeping, &mut image.clone());
        let mut job = WholeSlideJob::new(w, h, out, 0.5, &m, 64, None).unwrap().keep_raw_rows();
        let (mut finals, mut raws) = (Vec::new(), 0);
        let mut source = image.clone();
        while let Some(b) = job.take_batch(&mut source, 3).unwrap() {
            let p = fake_network(&b.planar, b.count);
            job.accept_with(&b, &p, &mut |row| match row {
                StreamRow::Final(r) => finals.extend(r),
                StreamRow::Raw(r) => {
                    assert_eq!(r.len(), out.0);
                    raws += 1;
                }
            });
            assert!(job.take_label_rows().is_empty() && job.take_raw_rows().is_empty(), "the job keeps no row");
        }
        assert!(job.is_done());
        assert_eq!(finals, want);
        assert_eq!(raws, out.1);
    }

    #[test]
    fn a_region_of_glass_alone_is_refused() {
        let image = RgbImage { width: 300, height: 200, pixels: vec![240; 300 * 200 * 3] };
        let thumb = imageio::resize(&image, 30, 20);
        let tissue = TissueMap::new(&thumb, 20.0, 2.0, &GlassConfig::default());
        let job = WholeSlideJob::new(300, 200, (300, 200), 1.0, &manifest(PostprocessConfig::default()), 64, Some(tissue));
        assert_eq!(job.err(), Some(JobError::NoTissue));
    }
}
