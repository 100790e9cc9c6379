//! Few-shot training from painted strokes (issue 15): a light pixel head on the frozen diffusion
//! UNet's features, trained with burn's autodiff on the painted pixels only.
//!
//! - [`PixelSamples`]: the feature vectors of painted pixels and their classes, read from the same
//!   tiles inference uses (a pixel in the overlap of two tiles gives one sample from each), so the
//!   head learns the features it will see.
//! - [`HeadTrainer`]: a pixel MLP (the segmentation head with a 1x1 hidden convolution) trained
//!   with Adam on class-balanced batches of painted pixels, on inputs standardised per channel.
//!   It keeps its weights and optimiser between calls, so each new stroke warm-starts from the
//!   previous head. [`HeadTrainer::head`] folds the standardisation into the first layer, so the
//!   head runs on raw features like any other.
//! - [`PaintedImage`]: an image cut into the inference grid's tiles, with the frozen features of
//!   each painted tile computed once and kept (a new stroke costs only the tiles it first touches).
//! - [`few_shot_model`]: the base model's UNet plus the trained head as an ordinary model file,
//!   recording its classes, the strokes' count and the image's name (never pixels).

use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::model::head::SegHead;
use crate::model::unet::UNet;
use crate::model::{HeadConfig, HistoSegNet, Segmenter};
use crate::postprocess::PostprocessConfig;
use crate::strokes::StrokeSet;
use crate::imageio::{self, RgbImage};
use crate::slide::{Region, Slide, SlideError};
use crate::tiling::{TileGrid, TilingError};
use crate::weights::{ModelFile, WeightsError};

/// Hidden units of the pixel MLP.
pub const HIDDEN: usize = 32;

/// The decoder levels whose features the head reads (0 = full resolution).
pub const FEATURE_LEVELS: &[usize] = &[0];

/// How the head is trained after each change of the strokes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSettings {
    /// Adam steps per update.
    pub steps: usize,
    /// Painted pixels per step, the same number from each class.
    pub batch: usize,
    pub lr: f64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self { steps: 100, batch: 512, lr: 1e-3 }
    }
}

/// Feature vectors of painted pixels (`channels` values each) and their classes.
#[derive(Debug, Clone, Default)]
pub struct PixelSamples {
    pub channels: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u8>,
}

impl PixelSamples {
    pub fn new(channels: usize) -> Self {
        Self { channels, features: Vec::new(), labels: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Adds the painted pixels of one tile: `features` planar `[channels, side, side]`, `painted`
    /// the tile's `side * side` stroke raster (0 unpainted, else class + 1).
    pub fn add_tile(&mut self, features: &[f32], painted: &[u8]) {
        let n = painted.len();
        assert_eq!(features.len(), self.channels * n, "features and painted pixels disagree");
        for (p, &v) in painted.iter().enumerate() {
            if v > 0 {
                self.features.extend((0..self.channels).map(|c| features[c * n + p]));
                self.labels.push(v - 1);
            }
        }
    }

    /// Samples of each class.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A pixel MLP trained on [`PixelSamples`], warm-started across updates.
pub struct HeadTrainer {
    head: SegHead,
    optim: ModuleOptimizer,
    rng: ChaCha8Rng,
    classes: usize,
    channels: usize,
    /// The autodiff device the head trains on.
    device: Device,
    /// Per-channel mean and standard deviation of the samples (fixed at the first update, so the
    /// head's inputs keep their meaning as strokes are added).
    norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Standardised samples on the device `[N, channels]`, and each class's sample indices.
    data: Option<(Tensor<2>, Vec<Vec<i64>>)>,
    pub steps_done: usize,
}

impl HeadTrainer {
    pub fn config(feature_levels: Vec<usize>, classes: usize) -> HeadConfig {
        HeadConfig { kernel: 1, ..HeadConfig::new(feature_levels, HIDDEN, classes) }
    }

    /// A fresh head for `channels` features and `classes` classes, on `device` (autodiff is added).
    pub fn new(channels: usize, classes: usize, seed: u64, device: &Device) -> Self {
        let device = device.clone().autodiff();
        device.seed(seed);
        let head = SegHead::new(channels, &Self::config(vec![0], classes), &device);
        Self { head, optim: AdamConfig::new().init(), rng: ChaCha8Rng::seed_from_u64(seed), classes, channels, device, norm: None, data: None, steps_done: 0 }
    }

    /// Fixes the per-channel standardisation (before the first [`Self::set_samples`]; otherwise
    /// the first samples' statistics are used). It never changes afterwards.
    pub fn set_norm(&mut self, mean: Vec<f32>, std: Vec<f32>) {
        if self.norm.is_none() {
            self.norm = Some((mean, std));
        }
    }

    pub fn has_norm(&self) -> bool {
        self.norm.is_some()
    }

    /// Replaces the training pixels (all strokes so far). The head and its optimiser stay.
    pub fn set_samples(&mut self, samples: &PixelSamples) {
        assert_eq!(samples.channels, self.channels);
        let n = samples.len();
        if n == 0 {
            self.data = None;
            return;
        }
        let (mean, std) = self.norm.get_or_insert_with(|| channel_stats(samples)).clone();
        let x: Vec<f32> = samples.features.chunks_exact(self.channels).flat_map(|f| f.iter().zip(&mean).zip(&std).map(|((v, m), s)| (v - m) / s)).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [n, self.channels]), &self.device);
        let mut by_class = vec![Vec::new(); self.classes];
        for (i, &l) in samples.labels.iter().enumerate() {
            by_class[l as usize].push(i as i64);
        }
        self.data = Some((x, by_class));
    }

    /// Trains for `settings.steps` Adam steps on class-balanced batches and returns the last loss
    /// (a tensor, so the browser can read it back asynchronously). `None` without samples.
    pub fn train(&mut self, settings: &TrainSettings) -> Option<Tensor<1>> {
        let (x, by_class) = self.data.as_ref()?;
        let present: Vec<usize> = (0..self.classes).filter(|&c| !by_class[c].is_empty()).collect();
        let b = settings.batch.max(present.len());
        let mut labels = Vec::with_capacity(b);
        let mut index = Vec::with_capacity(b);
        let mut last = None;
        for _ in 0..settings.steps {
            labels.clear();
            index.clear();
            for k in 0..b {
                let c = present[k % present.len()];
                let list = &by_class[c];
                index.push(list[(self.rng.next_u64() % list.len() as u64) as usize]);
                labels.push(c as i64);
            }
            let idx = Tensor::<1, Int>::from_data(TensorData::new(index.clone(), [b]), &self.device);
            // the one-hot targets are made here: burn's `one_hot` checks its input by reading it
            // back, which WebGPU in a browser cannot do synchronously
            let mut one_hot = vec![0f32; b * self.classes];
            for (k, &c) in labels.iter().enumerate() {
                one_hot[k * self.classes + c as usize] = 1.0;
            }
            let y = Tensor::<2>::from_data(TensorData::new(one_hot, [b, self.classes]), &self.device);
            let xb = x.clone().select(0, idx).reshape([b, self.channels, 1, 1]);
            let logits = self.head.forward(xb).reshape([b, self.classes]);
            let loss = -(log_softmax(logits, 1) * y).sum_dim(1).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &self.head);
            self.head = self.optim.step(settings.lr, self.head.clone(), grads);
            self.steps_done += 1;
            last = Some(loss.detach());
        }
        last
    }

    /// The trained head without autodiff, standardisation folded into its first layer, for
    /// `feature_levels`' features.
    pub fn head(&self) -> SegHead {
        let mut head = self.head.valid();
        if let Some((mean, std)) = &self.norm {
            let device = head.hidden.weight.val().device();
            let f = self.channels;
            let w = head.hidden.weight.val().reshape([HIDDEN, f]);
            let inv = Tensor::<1>::from_data(TensorData::new(std.iter().map(|s| 1.0 / s).collect::<Vec<f32>>(), [f]), &device).reshape([1, f]);
            let m = Tensor::<1>::from_data(TensorData::new(mean.clone(), [f]), &device).reshape([1, f]);
            let w = w * inv;
            let shift = (w.clone() * m).sum_dim(1).reshape([HIDDEN]);
            let bias = head.hidden.bias.as_ref().expect("the hidden layer has a bias").val() - shift;
            head.hidden.weight = Param::from_tensor(w.reshape([HIDDEN, f, 1, 1]));
            head.hidden.bias = Some(Param::from_tensor(bias));
        }
        head
    }
}

/// An image (or a slide region) at the model's resolution, cut into the inference grid's tiles,
/// with the frozen features of each tile that has been painted, computed once and kept.
pub struct PaintedImage {
    pub grid: TileGrid,
    /// Level-0 position of the image's top-left corner.
    pub origin: [f64; 2],
    /// Level-0 pixels per model pixel.
    pub scale: f64,
    features: Vec<Option<Vec<f32>>>,
}

impl PaintedImage {
    pub fn new(width: usize, height: usize, tile: usize, overlap: usize, origin: [f64; 2], scale: f64) -> Result<Self, TilingError> {
        let grid = TileGrid::new(width, height, tile, overlap)?;
        let features = vec![None; grid.tiles.len()];
        Ok(Self { grid, origin, scale, features })
    }

    /// The stroke raster of tile `i` (`tile * tile`; pixels past the image's edge are unpainted).
    pub fn painted(&self, strokes: &StrokeSet, i: usize) -> Vec<u8> {
        let (tile, t) = (self.grid.tiles[i], self.grid.tile_size);
        let mut mask = strokes.rasterize(self.origin[0] + tile.x as f64 * self.scale, self.origin[1] + tile.y as f64 * self.scale, self.scale, t, t);
        for (p, m) in mask.iter_mut().enumerate() {
            if p % t >= tile.width || p / t >= tile.height {
                *m = 0;
            }
        }
        mask
    }

    /// Level-0 rectangle `[x0, y0, x1, y1]` of tile `i` (its whole side, as it is read).
    fn tile_rect(&self, i: usize) -> [f64; 4] {
        let (tile, t) = (self.grid.tiles[i], self.grid.tile_size as f64 * self.scale);
        let (x0, y0) = (self.origin[0] + tile.x as f64 * self.scale, self.origin[1] + tile.y as f64 * self.scale);
        [x0, y0, x0 + t, y0 + t]
    }

    fn tile_meets(&self, i: usize, rect: [f64; 4]) -> bool {
        let r = self.tile_rect(i);
        rect[0] < r[2] && rect[2] > r[0] && rect[1] < r[3] && rect[3] > r[1]
    }

    /// Tiles with painted pixels whose features are not computed yet (only tiles that meet a
    /// stroke's bounds are rasterised, so a whole slide's grid costs nothing).
    pub fn tiles_to_compute(&self, strokes: &StrokeSet) -> Vec<usize> {
        let boxes: Vec<[f64; 4]> = strokes.strokes.iter().filter(|s| s.class.is_some()).map(|s| s.bounds()).collect();
        (0..self.grid.tiles.len())
            .filter(|&i| self.features[i].is_none() && boxes.iter().any(|&b| self.tile_meets(i, b)) && self.painted(strokes, i).iter().any(|&m| m > 0))
            .collect()
    }

    /// Tiles meeting the level-0 rectangle `[x0, y0, x1, y1]` (the view).
    pub fn tiles_meeting(&self, rect: [f64; 4]) -> Vec<usize> {
        (0..self.grid.tiles.len()).filter(|&i| self.tile_meets(i, rect)).collect()
    }

    /// The tiles meeting `rect` whose centres are nearest its centre, at most `max`, in grid
    /// order: the part of a large view that a preview covers.
    pub fn tiles_nearest(&self, rect: [f64; 4], max: usize) -> Vec<usize> {
        let centre = [(rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0];
        let distance = |i: usize| {
            let r = self.tile_rect(i);
            ((r[0] + r[2]) / 2.0 - centre[0]).hypot((r[1] + r[3]) / 2.0 - centre[1])
        };
        let mut tiles = self.tiles_meeting(rect);
        tiles.sort_by(|&a, &b| distance(a).total_cmp(&distance(b)));
        tiles.truncate(max);
        tiles.sort_unstable();
        tiles
    }

    pub fn features_of(&self, i: usize) -> Option<&[f32]> {
        self.features[i].as_deref()
    }

    /// Drops the features of unpainted tiles not in `keep` (the preview's tiles of an old view).
    pub fn forget_unpainted(&mut self, strokes: &StrokeSet, keep: &[usize]) {
        for i in 0..self.features.len() {
            if self.features[i].is_some() && !keep.contains(&i) && self.painted(strokes, i).iter().all(|&m| m == 0) {
                self.features[i] = None;
            }
        }
    }

    /// Keeps tile `i`'s features, planar `[channels, tile, tile]`.
    pub fn set_features(&mut self, i: usize, features: Vec<f32>) {
        self.features[i] = Some(features);
    }

    /// Per-channel mean and standard deviation over every pixel of the tiles computed so far
    /// (painted or not: the features the head will meet), or `None` before any.
    pub fn channel_stats(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let tiles: Vec<&Vec<f32>> = self.features.iter().flatten().collect();
        let first = tiles.first()?;
        let n = self.grid.tile_size * self.grid.tile_size;
        let mut samples = PixelSamples::new(first.len() / n);
        // every 4th pixel is plenty for a mean and a spread
        let every: Vec<u8> = (0..n).map(|p| (p % 4 == 0) as u8).collect();
        for f in tiles {
            samples.add_tile(f, &every);
        }
        Some(channel_stats(&samples))
    }

    /// Bytes of features held.
    pub fn bytes_held(&self) -> usize {
        self.features.iter().flatten().map(|f| f.len() * 4).sum()
    }

    /// Adds every painted pixel of the tiles with features to `samples`.
    pub fn add_samples(&self, strokes: &StrokeSet, samples: &mut PixelSamples) {
        for (i, f) in self.features.iter().enumerate() {
            if let Some(f) = f {
                samples.add_tile(f, &self.painted(strokes, i));
            }
        }
    }

    /// Computes the features of the painted tiles still missing with the frozen UNet of
    /// `segmenter`; `input` gives a tile's pixels, planar `[3, tile, tile]` in [-1, 1].
    #[cfg(not(target_family = "wasm"))]
    pub fn compute_features<E>(&mut self, segmenter: &Segmenter, strokes: &StrokeSet, mut input: impl FnMut(&Self, usize) -> Result<Vec<f32>, E>) -> Result<usize, E> {
        let todo = self.tiles_to_compute(strokes);
        for &i in &todo {
            let x = segmenter.input_tensor(input(self, i)?, 1);
            self.set_features(i, segmenter.features(x).into_data().try_into_vec_as::<f32>().expect("f32 features"));
        }
        Ok(todo.len())
    }

    /// Tile `i`'s pixels from an image at the model's resolution (this one's whole extent).
    pub fn input_from_image(&self, image: &RgbImage, i: usize) -> Vec<f32> {
        let planar = self.grid.extract_planar(&image.pixels, 3, &self.grid.tiles[i]);
        planar.into_iter().map(crate::imageio::to_network).collect()
    }

    /// Tile `i`'s pixels read from a slide whose level 0 has `level0_um` µm/px, this image being
    /// the whole slide at `model_um` (origin 0): the tile's level-0 square read at the model's
    /// resolution, so only the painted tiles of a whole slide are ever read.
    pub fn input_from_slide(&self, slide: &mut Slide, level0_um: f64, model_um: f64, i: usize) -> Result<Vec<f32>, SlideError> {
        let tile = self.grid.tiles[i];
        let t = self.grid.tile_size;
        let s = self.scale;
        let x0 = (tile.x as f64 * s).floor() as usize;
        let y0 = (tile.y as f64 * s).floor() as usize;
        let x1 = (((tile.x + tile.width) as f64 * s).round() as usize).min(slide.width());
        let y1 = (((tile.y + tile.height) as f64 * s).round() as usize).min(slide.height());
        let img = slide.read_at_resolution(Region { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, level0_um, model_um)?;
        let img = if (img.width, img.height) == (tile.width, tile.height) { img } else { imageio::resize(&img, tile.width, tile.height) };
        // an image smaller than a tile: edge replication, as the inference grid does
        let part = TileGrid::new(tile.width, tile.height, t, 0).expect("a non-empty tile");
        Ok(part.extract_planar(&img.pixels, 3, &part.tiles[0]).into_iter().map(crate::imageio::to_network).collect())
    }

    /// The whole of a slide at the model's resolution, as [`Self::input_from_slide`] reads it.
    pub fn for_slide(slide: &Slide, level0_um: f64, model_um: f64, tile: usize, overlap: usize) -> Result<Self, TilingError> {
        let (w, h) = imageio::rescaled_size(slide.width(), slide.height(), level0_um, model_um);
        Self::new(w, h, tile, overlap, [0.0, 0.0], model_um / level0_um)
    }
}

/// The live preview (issue 15): class probabilities over the tiles of a [`PaintedImage`] that
/// meet the view, blended with the inference grid's weights, so a pixel whose covering tiles
/// are all in the view gets exactly what a segmentation of the whole image would give it.
pub struct ViewBlend {
    /// The box of model pixels the view's tiles cover.
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    classes: usize,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl ViewBlend {
    /// A blend over the box of `tiles` of `grid`.
    pub fn new(grid: &TileGrid, tiles: &[usize], classes: usize) -> Self {
        let x = tiles.iter().map(|&i| grid.tiles[i].x).min().unwrap_or(0);
        let y = tiles.iter().map(|&i| grid.tiles[i].y).min().unwrap_or(0);
        let width = tiles.iter().map(|&i| grid.tiles[i].x + grid.tiles[i].width).max().unwrap_or(0) - x;
        let height = tiles.iter().map(|&i| grid.tiles[i].y + grid.tiles[i].height).max().unwrap_or(0) - y;
        Self { x, y, width, height, classes, sum: vec![0.0; width * height * classes], weight: vec![0.0; width * height] }
    }

    /// Adds tile `i`'s probabilities, planar `[classes, tile, tile]`.
    pub fn add(&mut self, grid: &TileGrid, i: usize, planar: &[f32]) {
        let (tile, t, c) = (grid.tiles[i], grid.tile_size, self.classes);
        assert_eq!(planar.len(), c * t * t);
        for ty in 0..tile.height {
            for tx in 0..tile.width {
                let w = grid.weight(&tile, tx, ty);
                let p = (tile.y + ty - self.y) * self.width + tile.x + tx - self.x;
                self.weight[p] += w;
                for k in 0..c {
                    self.sum[p * c + k] += w * planar[(k * t + ty) * t + tx];
                }
            }
        }
    }

    /// The blended probabilities, interleaved `width * height * classes` (0 where no tile ran).
    pub fn probabilities(&self) -> Vec<f32> {
        let c = self.classes;
        let mut out = self.sum.clone();
        for (p, &w) in self.weight.iter().enumerate() {
            let inv = if w > 0.0 { 1.0 / w } else { 0.0 };
            out[p * c..(p + 1) * c].iter_mut().for_each(|v| *v *= inv);
        }
        out
    }

    /// Labels, and the uncertainty of each pixel as 0..=255: one minus the margin between its two
    /// likeliest classes (where to paint next).
    pub fn labels_and_uncertainty(&self) -> (Vec<u8>, Vec<u8>) {
        let probs = self.probabilities();
        let labels = crate::tiling::argmax_labels(&probs, self.classes);
        let uncertainty = probs
            .chunks_exact(self.classes)
            .map(|p| {
                let (mut a, mut b) = (0f32, 0f32);
                for &v in p {
                    if v > a {
                        (a, b) = (v, a);
                    } else if v > b {
                        b = v;
                    }
                }
                ((1.0 - (a - b)).clamp(0.0, 1.0) * 255.0).round() as u8
            })
            .collect();
        (labels, uncertainty)
    }
}

/// Trains a head on `strokes` as the page did: at each of [`StrokeSet::update_points`], the
/// features of newly painted tiles are computed (`input` gives a tile's pixels), the
/// standardisation is fixed from the first tiles, and `settings.steps` steps are taken.
/// `on_update(done, total)` follows the updates.
#[cfg(not(target_family = "wasm"))]
pub fn replay<E>(
    strokes: &StrokeSet,
    painted: &mut PaintedImage,
    segmenter: &Segmenter,
    channels: usize,
    settings: &TrainSettings,
    seed: u64,
    mut input: impl FnMut(&PaintedImage, usize) -> Result<Vec<f32>, E>,
    mut on_update: impl FnMut(usize, usize),
) -> Result<HeadTrainer, E> {
    let mut trainer = HeadTrainer::new(channels, strokes.classes.len(), seed, segmenter.device());
    let points = strokes.update_points();
    for (k, &n) in points.iter().enumerate() {
        let now = strokes.first(n);
        painted.compute_features(segmenter, &now, &mut input)?;
        if let (false, Some((mean, std))) = (trainer.has_norm(), painted.channel_stats()) {
            trainer.set_norm(mean, std);
        }
        let mut samples = PixelSamples::new(channels);
        painted.add_samples(&now, &mut samples);
        trainer.set_samples(&samples);
        if let Some(loss) = trainer.train(settings) {
            // wait for the step to finish, as the page does before it draws
            loss.into_scalar::<f32>();
        }
        on_update(k + 1, points.len());
    }
    Ok(trainer)
}

fn channel_stats(samples: &PixelSamples) -> (Vec<f32>, Vec<f32>) {
    let f = samples.channels;
    let n = samples.len() as f64;
    let mut sum = vec![0f64; f];
    let mut sq = vec![0f64; f];
    for v in samples.features.chunks_exact(f) {
        for c in 0..f {
            sum[c] += v[c] as f64;
            sq[c] += (v[c] as f64).powi(2);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sq.iter().zip(&sum).map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt() as f32).max(1e-3)).collect();
    (mean, std)
}

/// The frozen feature extractor of a base model, tapping decoder `levels` (which need not be
/// the base model's own: its head is not used).
pub fn feature_segmenter(base: &ModelFile, levels: &[usize], device: &Device) -> Result<Segmenter, WeightsError> {
    let m = &base.manifest;
    let unet = base.load_into(UNet::new(&m.unet, device), "unet", device)?;
    let head = SegHead::new(m.unet.feature_channels(levels), &HeadTrainer::config(levels.to_vec(), 2), device);
    Ok(Segmenter::new(HistoSegNet { unet, head }, levels.to_vec(), m.tile_size, &[m.timestep], m.noise_seed, m.unet.in_channels, device))
}

/// The base model's UNet with a head trained on `strokes` from decoder `levels`: an ordinary
/// model file the viewer and the CLI run. Its manifest records the classes, the strokes' count
/// and the image's name.
pub fn few_shot_model(base: &ModelFile, head: SegHead, levels: &[usize], strokes: &StrokeSet, name: &str, provenance: &str, device: &Device) -> Result<ModelFile, WeightsError> {
    let unet = base.load_into(UNet::new(&base.manifest.unet, device), "unet", device)?;
    let mut manifest = base.manifest.clone();
    manifest.name = name.to_string();
    manifest.description = format!("Taught from {} painted strokes on {} ({} classes), on the diffusion features of '{}'", strokes.painted(), if strokes.image.is_empty() { "an image" } else { &strokes.image }, strokes.classes.len(), base.manifest.name);
    manifest.head = HeadTrainer::config(levels.to_vec(), strokes.classes.len());
    manifest.classes = strokes.classes.clone();
    manifest.trained = true;
    manifest.provenance = provenance.to_string();
    manifest.postprocess = PostprocessConfig { glass: base.manifest.postprocess.glass.clone(), ..PostprocessConfig::default() };
    manifest.metrics = serde_json::json!({ "strokes": strokes.painted(), "image": strokes.image, "features_from": base.manifest.name });
    manifest.validate()?;
    Ok(ModelFile::from_net(manifest, &HistoSegNet { unet, head }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes told apart by one of eight channels, whose scale is far from 1 (as raw UNet
    /// activations are): the standardised head learns it and the folded head agrees on raw input.
    #[test]
    fn head_learns_painted_pixels_and_folds_its_standardisation() {
        let device = Device::flex();
        let (f, n) = (8, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut samples = PixelSamples::new(f);
        // class 1 is rare (1 in 8): balanced sampling must still learn it
        for i in 0..n {
            let label = (i % 8 == 0) as u8;
            let noise = |rng: &mut ChaCha8Rng| (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 40.0;
            let v: Vec<f32> = (0..f).map(|c| if c == 5 { 300.0 + if label == 1 { 60.0 } else { -60.0 } + noise(&mut rng) } else { noise(&mut rng) + 100.0 }).collect();
            samples.add_tile(&v, &[label + 1]);
        }
        assert_eq!(samples.class_counts(2), vec![350, 50]);
        let mut trainer = HeadTrainer::new(f, 2, 0, &device);
        trainer.set_samples(&samples);
        let first = trainer.train(&TrainSettings { steps: 1, ..Default::default() }).unwrap().into_scalar::<f32>();
        let last = trainer.train(&TrainSettings { steps: 150, ..Default::default() }).unwrap().into_scalar::<f32>();
        assert!(last < first * 0.2, "loss {first} -> {last}");
        assert_eq!(trainer.steps_done, 151);
        let head = trainer.head();
        let x = Tensor::<2>::from_data(TensorData::new(samples.features.clone(), [n, f]), &device).reshape([n, f, 1, 1]);
        let logits = head.forward(x).reshape([n, 2]).into_data().try_into_vec_as::<f32>().unwrap();
        let wrong = (0..n).filter(|&i| (logits[2 * i + 1] > logits[2 * i]) as u8 != samples.labels[i]).count();
        assert!(wrong <= 4, "{wrong} of {n} painted pixels misclassified by the folded head");
    }

    #[test]
    fn the_view_blend_gives_what_the_inference_blender_gives() {
        let grid = TileGrid::new(150, 100, 32, 8).unwrap();
        let classes = 3;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let tiles: Vec<Vec<f32>> = grid.tiles.iter().map(|_| (0..classes * 32 * 32).map(|_| (rng.next_u32() % 1000) as f32 / 1000.0).collect()).collect();
        let mut whole = crate::tiling::Blender::new(grid.clone(), classes);
        for (tile, p) in grid.tiles.iter().zip(&tiles) {
            whole.add(tile, p);
        }
        let whole = whole.finish();
        // a view over part of the image: its tiles, and the pixels all of whose tiles are among them
        let img = PaintedImage::new(150, 100, 32, 8, [0.0, 0.0], 1.0).unwrap();
        let view = img.tiles_meeting([40.0, 30.0, 90.0, 60.0]);
        let mut blend = ViewBlend::new(&grid, &view, classes);
        for &i in &view {
            blend.add(&grid, i, &tiles[i]);
        }
        let probs = blend.probabilities();
        let mut compared = 0;
        for y in 0..blend.height {
            for x in 0..blend.width {
                let (gx, gy) = (blend.x + x, blend.y + y);
                let covering = grid.tiles.iter().enumerate().filter(|(_, t)| (t.x..t.x + t.width).contains(&gx) && (t.y..t.y + t.height).contains(&gy)).map(|(i, _)| i);
                if covering.clone().all(|i| view.contains(&i)) {
                    for k in 0..classes {
                        let (a, b) = (probs[(y * blend.width + x) * classes + k], whole[(gy * 150 + gx) * classes + k]);
                        assert!((a - b).abs() < 1e-5, "pixel {gx},{gy} class {k}: {a} against {b}");
                    }
                    compared += 1;
                }
            }
        }
        assert!(compared > 50 * 30, "{compared} pixels compared");
        let (labels, unsure) = blend.labels_and_uncertainty();
        assert_eq!(labels.len(), blend.width * blend.height);
        assert!(unsure.iter().any(|&u| u > 200) && unsure.iter().any(|&u| u < 200));
    }

    #[test]
    fn a_large_view_previews_the_tiles_nearest_its_centre() {
        // level-0 pixels are twice the model's; tiles of 32 with overlap 8 start every 24 model px
        let img = PaintedImage::new(200, 200, 32, 8, [10.0, 20.0], 2.0).unwrap();
        let whole = [10.0, 20.0, 410.0, 420.0];
        assert_eq!(img.tiles_nearest(whole, 1000), img.tiles_meeting(whole));
        let near = img.tiles_nearest(whole, 4);
        assert_eq!(near.len(), 4);
        // the view's centre is model pixel (100, 100); the tiles starting at 72 and 96 have their
        // centres 12 px from it on each axis, every other tile's is farther
        let mut starts: Vec<(usize, usize)> = near.iter().map(|&i| (img.grid.tiles[i].x, img.grid.tiles[i].y)).collect();
        starts.sort_unstable();
        assert_eq!(starts, vec![(72, 72), (72, 96), (96, 72), (96, 96)]);
        assert!(near.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn painted_image_computes_each_painted_tile_once_and_samples_every_covering_tile() {
        use crate::strokes::Stroke;
        use crate::weights::ClassInfo;
        let classes = vec![ClassInfo { name: "a".into(), color: [0; 3] }, ClassInfo { name: "b".into(), color: [9; 3] }];
        let mut strokes = StrokeSet::new(classes, "x");
        // level-0 image at twice the model's resolution, offset by (100, 50): a dab at model (13, 13)
        strokes.strokes.push(Stroke { class: Some(1), radius: 2.0, points: vec![[127.0, 77.0]] });
        let mut img = PaintedImage::new(40, 30, 16, 4, [100.0, 50.0], 2.0).unwrap();
        let todo = img.tiles_to_compute(&strokes);
        // the tiles start at x 0, 12, 24 and y 0, 12, 14; the dab covers model x 12..=14, y 12..=14
        assert_eq!(
            todo.iter().map(|&i| (img.grid.tiles[i].x, img.grid.tiles[i].y)).collect::<Vec<_>>(),
            vec![(0, 0), (12, 0), (0, 12), (12, 12), (0, 14), (12, 14)]
        );
        for &i in &todo {
            let tile = img.grid.tiles[i];
            // feature 0 = the pixel's image x, so each sample says where it came from
            let f: Vec<f32> = (0..16 * 16).map(|p| (tile.x + p % 16) as f32).collect();
            img.set_features(i, f);
        }
        assert!(img.tiles_to_compute(&strokes).is_empty());
        let mut samples = PixelSamples::new(1);
        img.add_samples(&strokes, &mut samples);
        // a radius of 2 level-0 px is 1 model px: the centre and its 4 neighbours, from the 4 tiles
        // holding all of them, and the lowest pixel (13, 14) again from the 2 tiles starting at y 14
        assert_eq!(samples.len(), 5 * 4 + 2);
        assert!(samples.labels.iter().all(|&l| l == 1));
        let mut xs: Vec<f32> = samples.features.clone();
        xs.sort_by(f32::total_cmp);
        xs.dedup();
        assert_eq!(xs, vec![12.0, 13.0, 14.0]);
    }
}
