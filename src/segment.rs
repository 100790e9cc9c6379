//! One segmentation run over a whole image, shared by the CLI and the browser: the image is cut
//! into tiles, batches of tiles go through the network, and their class probabilities are
//! blended back into an image-sized map and reduced to labels.
//!
//! The job itself holds no tensors. The caller takes a batch's input with [`SegmentJob::next_batch`],
//! runs [`crate::model::Segmenter::probabilities`] on it on whatever device it has, reads the
//! result back (synchronously natively, asynchronously in the browser) and hands it to
//! [`SegmentJob::accept`].
//!
//! A job made with [`SegmentJob::for_model`] applies the model's glass rule ([`crate::tissue`]):
//! glass beside the tissue is background whatever the network says, so a tile that is glass
//! throughout is never run (the labels are the same: a tile is blended only into its own pixels),
//! and a region with no tissue at all is refused with [`JobError::NoTissue`].

use crate::imageio::{self, RgbImage};
use crate::slide::{Region, Slide, SlideError};
#[cfg(not(target_family = "wasm"))]
use crate::model::Segmenter;
use crate::tiling::{Blender, Tile, TileGrid, TilingError, argmax_labels};
use crate::tissue::glass_mask;
use crate::tta;
use crate::weights::Manifest;

/// The most pixels one segmentation works on at the model's resolution (the blended class
/// probabilities of every pixel are held until the end).
pub const MAX_WORK_PIXELS: usize = 16_000_000;
/// The largest region (level-0 pixels) one segmentation covers; its labels are kept at that size.
pub const MAX_LABEL_PIXELS: usize = 36_000_000;

/// Reads `region` (level-0 pixels, clamped to the image) of a slide whose level 0 has `level0_um`
/// µm/px, at the model's `model_um` µm/px, ready for a [`SegmentJob`]. Returns the clamped
/// region and the image to segment.
pub fn read_for_model(slide: &mut Slide, region: Region, level0_um: f64, model_um: f64) -> Result<(Region, RgbImage), SlideError> {
    let region = region.clamp_to(slide.width(), slide.height()).ok_or(SlideError::OutsideImage(slide.width(), slide.height()))?;
    let (w, h) = imageio::rescaled_size(region.width, region.height, level0_um, model_um);
    // the labels come back at level-0 resolution, so that is bounded too
    if w * h > MAX_WORK_PIXELS || region.width * region.height > MAX_LABEL_PIXELS {
        return Err(SlideError::TooLargeToSegment(region.width, region.height));
    }
    Ok((region, slide.read_at_resolution(region, level0_um, model_um)?))
}

/// Labels of a segmentation resampled (nearest neighbour) to the region's level-0 size.
pub fn labels_for_region(seg: &Segmentation, region: Region) -> Vec<u8> {
    imageio::resize_nearest(&seg.labels, seg.width, seg.height, region.width, region.height)
}

/// Why a segmentation job cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error(transparent)]
    Tiling(#[from] TilingError),
    #[error("no tissue found: the region is all glass (bright, colourless background), so there is nothing to segment")]
    NoTissue,
}

/// Input for a batch of consecutive tiles: planar `[count, 3, tile, tile]` values in [-1, 1].
/// With test-time augmentation each tile is there in every orientation ([`crate::tta`]), so
/// the network's batch `count` is a multiple of the `tiles`.
pub struct Batch {
    pub start: usize,
    pub tiles: usize,
    pub count: usize,
    pub planar: Vec<f32>,
}

pub struct SegmentJob {
    blender: Blender,
    /// Interleaved RGB scaled to [-1, 1].
    pixels: Vec<f32>,
    /// The grid's tiles that run (those with some tissue), in grid order; batches count in these.
    runs: Vec<usize>,
    next: usize,
    /// Tiles handed out by [`SegmentJob::take_batch`] (ahead of `next` while they run elsewhere).
    issued: usize,
    /// Pixels the model's glass rule makes background, when it has one.
    glass: Option<Vec<bool>>,
    /// Orientations each tile runs in: 1, or [`tta::ORIENTATIONS`] with test-time augmentation.
    orientations: usize,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub width: usize,
    pub height: usize,
    pub classes: usize,
    /// Interleaved per-pixel class probabilities, `height * width * classes`.
    pub probabilities: Vec<f32>,
    /// Per-pixel argmax class.
    pub labels: Vec<u8>,
    /// Tiles run through the network.
    pub tiles: usize,
    /// Tiles not run because they are glass throughout.
    pub glass_tiles: usize,
}

impl SegmentJob {
    pub fn new(image: &RgbImage, tile_size: usize, overlap: usize, classes: usize) -> Result<Self, TilingError> {
        let grid = TileGrid::new(image.width, image.height, tile_size, overlap)?;
        let pixels = image.pixels.iter().map(|&v| crate::imageio::to_network(v)).collect();
        let runs = (0..grid.tiles.len()).collect();
        Ok(Self { blender: Blender::new(grid, classes), pixels, runs, next: 0, issued: 0, glass: None, orientations: 1 })
    }

    /// A job for `manifest`'s model on an image at the model's resolution, in tiles of
    /// `tile_size` (the manifest's unless overridden), with the model's glass rule.
    pub fn for_model(image: &RgbImage, tile_size: usize, manifest: &Manifest) -> Result<Self, JobError> {
        let job = Self::new(image, tile_size, manifest.overlap, manifest.head.num_classes)?;
        match &manifest.postprocess.glass {
            Some(g) => job.with_glass(glass_mask(&image.pixels, image.width, image.height, manifest.um_per_px, g)),
            None => Ok(job),
        }
    }

    /// Makes the `glass` pixels background and skips the tiles that are glass throughout;
    /// refuses a region that is all glass.
    pub fn with_glass(mut self, glass: Vec<bool>) -> Result<Self, JobError> {
        let grid = self.blender.grid();
        let width = grid.image_width;
        let tissue = |t: &Tile| (t.y..t.y + t.height).any(|y| glass[y * width + t.x..y * width + t.x + t.width].iter().any(|&g| !g));
        self.runs = (0..grid.tiles.len()).filter(|&i| tissue(&grid.tiles[i])).collect();
        if self.runs.is_empty() {
            return Err(JobError::NoTissue);
        }
        self.glass = Some(glass);
        Ok(self)
    }

    /// Runs every tile in the eight orientations of the square and averages them ([`crate::tta`]).
    pub fn with_tta(mut self, on: bool) -> Self {
        self.orientations = if on { tta::ORIENTATIONS } else { 1 };
        self
    }

    /// Tiles that run: the grid's, less those that are glass throughout.
    pub fn total_tiles(&self) -> usize {
        self.runs.len()
    }

    /// Tiles of the grid not run because they are glass throughout.
    pub fn glass_tiles(&self) -> usize {
        self.blender.grid().tiles.len() - self.runs.len()
    }

    pub fn tiles_done(&self) -> usize {
        self.next
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.total_tiles()
    }

    /// The next tiles, up to `max` network inputs (at least one tile, in all its orientations),
    /// or `None` when every tile has been accepted.
    pub fn next_batch(&self, max: usize) -> Option<Batch> {
        self.batch_from(self.next, max)
    }

    /// Like [`SegmentJob::next_batch`], but for running several batches at once (the browser's
    /// pool of CPU workers): each call hands out the tiles after the previous call's. Batches are
    /// still accepted in order, so the result is the same as one batch at a time.
    pub fn take_batch(&mut self, max: usize) -> Option<Batch> {
        let batch = self.batch_from(self.issued.max(self.next), max)?;
        self.issued = batch.start + batch.tiles;
        Some(batch)
    }

    /// Hands out again the tiles handed out but not accepted (their answers were lost).
    pub fn reissue(&mut self) {
        self.issued = self.next;
    }

    fn batch_from(&self, start: usize, max: usize) -> Option<Batch> {
        let grid = self.blender.grid();
        let k = self.orientations;
        let tiles = (max / k).max(1).min(self.total_tiles() - start);
        if tiles == 0 {
            return None;
        }
        let planar = self.runs[start..start + tiles].iter().flat_map(|&i| in_orientations(grid.extract_planar(&self.pixels, 3, &grid.tiles[i]), grid.tile_size, k)).collect();
        Some(Batch { start, tiles, count: tiles * k, planar })
    }

    /// Blends a batch's probabilities, planar `[count, classes, tile, tile]`.
    pub fn accept(&mut self, batch: &Batch, probabilities: &[f32]) {
        assert_eq!(batch.start, self.next, "batches must be accepted in order");
        for (i, mean) in per_tile(batch, probabilities, self.blender.channels(), self.blender.grid().tile_size).enumerate() {
            let tile = self.blender.grid().tiles[self.runs[batch.start + i]];
            self.blender.add(&tile, &mean);
        }
        self.next += batch.tiles;
    }

    pub fn finish(self) -> Segmentation {
        let grid = self.blender.grid().clone();
        let (tiles, glass_tiles) = (self.total_tiles(), self.glass_tiles());
        let classes = self.blender.channels();
        let mut probabilities = self.blender.finish();
        let mut labels = argmax_labels(&probabilities, classes);
        if let Some(glass) = &self.glass {
            for i in (0..labels.len()).filter(|&i| glass[i]) {
                labels[i] = 0;
                let p = &mut probabilities[i * classes..(i + 1) * classes];
                p.fill(0.0);
                p[0] = 1.0;
            }
        }
        Segmentation { width: grid.image_width, height: grid.image_height, classes, probabilities, labels, tiles, glass_tiles }
    }
}

/// A tile's planar input in each of `k` orientations (just the tile when `k` is 1), one after another.
pub(crate) fn in_orientations(tile: Vec<f32>, size: usize, k: usize) -> Vec<f32> {
    if k == 1 {
        return tile;
    }
    (0..k).flat_map(|o| tta::orient(&tile, 3, size, o)).collect()
}

/// Each tile's probabilities of a batch, averaged over its orientations and turned back.
pub(crate) fn per_tile<'a>(batch: &Batch, probabilities: &'a [f32], classes: usize, size: usize) -> impl Iterator<Item = std::borrow::Cow<'a, [f32]>> {
    let k = batch.count / batch.tiles;
    let per = probabilities.len() / batch.count;
    probabilities.chunks_exact(per * k).map(move |orientations| {
        if k == 1 {
            return std::borrow::Cow::Borrowed(orientations);
        }
        let mut mean = vec![0.0; per];
        for (o, chunk) in orientations.chunks_exact(per).enumerate() {
            tta::add_unoriented(&mut mean, chunk, classes, size, o);
        }
        mean.iter_mut().for_each(|v| *v /= k as f32);
        std::borrow::Cow::Owned(mean)
    })
}

/// Segments a whole image synchronously (native targets; the browser drives the job itself so
/// it can await readbacks and report progress).
#[cfg(not(target_family = "wasm"))]
pub fn segment_image(
    segmenter: &Segmenter,
    image: &RgbImage,
    manifest: &Manifest,
    batch_size: usize,
    tta: bool,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<Segmentation, JobError> {
    let mut job = SegmentJob::for_model(image, segmenter.tile_size, manifest)?.with_tta(tta);
    while let Some(mut batch) = job.next_batch(batch_size) {
        let probs = segmenter.run(std::mem::take(&mut batch.planar), batch.count);
        job.accept(&batch, &probs);
        on_progress(job.tiles_done(), job.total_tiles());
    }
    Ok(job.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in network: two classes from the tile's own pixels, so every tile differs.
    fn fake_network(planar: &[f32], count: usize) -> Vec<f32> {
        let per = planar.len() / count / 3;
        planar
            .chunks_exact(3 * per)
            .flat_map(|t| {
                let red = &t[..per];
                red.iter().map(|&r| (r + 1.0) / 2.0).chain(red.iter().map(|&r| (1.0 - r) / 2.0)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn batches_taken_ahead_and_accepted_in_order_give_the_sequential_result() {
        let pixels = (0..300 * 200 * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let image = RgbImage { width: 300, height: 200, pixels };
        for tta in [false, true] {
            let mut one = SegmentJob::new(&image, 64, 16, 2).unwrap().with_tta(tta);
            while let Some(b) = one.next_batch(1) {
                let p = fake_network(&b.planar, b.count);
                one.accept(&b, &p);
            }
            // three batches out at once, as three workers would run them
            let mut pooled = SegmentJob::new(&image, 64, 16, 2).unwrap().with_tta(tta);
            let mut out: Vec<Batch> = (0..3).filter_map(|_| pooled.take_batch(1)).collect();
            assert_eq!(out.iter().map(|b| b.start).collect::<Vec<_>>(), vec![0, 1, 2]);
            while !out.is_empty() {
                let b = out.remove(0);
                let p = fake_network(&b.planar, b.count);
                pooled.accept(&b, &p);
                out.extend(pooled.take_batch(1));
            }
            assert!(pooled.is_done());
            let (a, b) = (one.finish(), pooled.finish());
            assert_eq!(a.probabilities, b.probabilities, "tta {tta}");
            assert!(a.labels.iter().any(|&l| l == 1) && a.labels.iter().any(|&l| l == 0));
        }
    }

    fn run_all(mut job: SegmentJob) -> Segmentation {
        while let Some(b) = job.next_batch(2) {
            let p = fake_network(&b.planar, b.count);
            job.accept(&b, &p);
        }
        job.finish()
    }

    #[test]
    fn tiles_of_glass_alone_are_skipped_and_the_labels_stay_the_same() {
        // glass over the left 150 columns and a glass notch reaching into the tissue
        let (w, h) = (300, 200);
        let glass: Vec<bool> = (0..w * h).map(|i| i % w < 150 || (i % w < 170 && i / w < 40)).collect();
        let pixels = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let image = RgbImage { width: w, height: h, pixels };
        let skipping = SegmentJob::new(&image, 64, 16, 2).unwrap().with_glass(glass.clone()).unwrap();
        // the same rule applied at the end only, every tile run
        let mut every = SegmentJob::new(&image, 64, 16, 2).unwrap();
        every.glass = Some(glass.clone());
        assert!(skipping.glass_tiles() > 0 && skipping.total_tiles() + skipping.glass_tiles() == every.total_tiles());
        println!("{} of {} tiles skipped", skipping.glass_tiles(), every.total_tiles());
        let (a, b) = (run_all(skipping), run_all(every));
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.probabilities, b.probabilities);
        assert!(a.labels.iter().enumerate().any(|(i, &l)| l == 1 && !glass[i]), "tissue keeps its labels");
    }

    #[test]
    fn a_region_of_glass_alone_is_refused() {
        let image = RgbImage { width: 100, height: 80, pixels: vec![240; 100 * 80 * 3] };
        let job = SegmentJob::new(&image, 64, 16, 2).unwrap().with_glass(vec![true; 100 * 80]);
        assert_eq!(job.err(), Some(JobError::NoTissue));
    }
}
