//! The few-shot benchmark of issue 15: a scripted user paints short strokes inside the ground
//! truth of a few training images, a head is trained after every stroke as the page trains it,
//! and the result is scored on a whole split. The same strokes train a head on each feature
//! extractor: a model file's frozen UNet, a random-init UNet of the same architecture, or
//! ilastik-style filter features ("filters").
//!
//! ```text
//! cargo run --release --features cli --example few_shot_bench -- \
//!     --dataset glas --extractors models/glands.histoseg,random,filters \
//!     --images 3 --strokes 50 --seeds 0,1,2 --score test --out results/few-shot/glas.json
//! ```
//!
//! `--score validation` scores on 12 training images that are never painted (for choosing
//! settings); `--score test` on the whole test split (GlaS testA, MoNuSeg test).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use histoseg::few_shot::{HeadTrainer, PaintedImage, PixelSamples, TrainSettings, feature_segmenter, few_shot_model};
use histoseg::imageio::{self, RgbImage};
use histoseg::model::head::SegHead;
use histoseg::model::{HistoSegNet, Segmenter};
use histoseg::postprocess;
use histoseg::strokes::StrokeSet;
use histoseg::tiling::argmax_labels;
use histoseg::tissue::glass_mask;
use histoseg::train::data::{Dataset, Labeled, Split, load};
use histoseg::train::evaluate::predict;
use histoseg::train::filter_features::{self, filter_features};
use histoseg::train::scripted_user::{StrokePlan, scripted_strokes};
use histoseg::weights::{Manifest, ModelFile};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

struct Args {
    dataset: Dataset,
    extractors: Vec<String>,
    images: usize,
    strokes: usize,
    seeds: Vec<u64>,
    score: Split,
    /// Brush radius and longest stroke, µm.
    radius_um: f64,
    length_um: f64,
    settings: TrainSettings,
    out: Option<PathBuf>,
    /// The model file whose manifest (resolution, tile, timestep, classes) every extractor uses.
    base: PathBuf,
    /// Decoder levels the UNet extractors tap.
    levels: Vec<usize>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        dataset: Dataset::Glas,
        extractors: vec!["models/glands.histoseg".into(), "random".into(), "filters".into()],
        images: 3,
        strokes: 50,
        seeds: vec![0, 1, 2],
        score: Split::Train,
        radius_um: 5.0,
        length_um: 40.0,
        settings: TrainSettings::default(),
        out: None,
        base: PathBuf::new(),
        levels: histoseg::few_shot::FEATURE_LEVELS.to_vec(),
    };
    let mut base = None;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let [k, v] = pair else { bail!("every option takes a value") };
        match k.as_str() {
            "--dataset" => a.dataset = Dataset::parse(v)?,
            "--extractors" => a.extractors = v.split(',').map(String::from).collect(),
            "--images" => a.images = v.parse()?,
            "--strokes" => a.strokes = v.parse()?,
            "--seeds" => a.seeds = v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?,
            "--score" => a.score = if v == "test" { Split::Test } else if v == "validation" { Split::Train } else { bail!("--score test or validation") },
            "--radius-um" => a.radius_um = v.parse()?,
            "--length-um" => a.length_um = v.parse()?,
            "--steps" => a.settings.steps = v.parse()?,
            "--batch" => a.settings.batch = v.parse()?,
            "--lr" => a.settings.lr = v.parse()?,
            "--base" => base = Some(PathBuf::from(v)),
            "--levels" => a.levels = v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?,
            "--out" => a.out = Some(PathBuf::from(v)),
            other => bail!("unknown option {other}"),
        }
    }
    a.base = base.unwrap_or_else(|| PathBuf::from(if a.dataset == Dataset::Glas { "models/glands.histoseg" } else { "models/nuclei.histoseg" }));
    Ok(a)
}

/// What turns an image at the model's resolution into per-pixel features.
enum Extractor {
    /// The frozen UNet (tapping `levels`), and the model file it comes from.
    Unet(Segmenter, ModelFile, Vec<usize>),
    Filters,
}

impl Extractor {
    fn channels(&self) -> usize {
        match self {
            Extractor::Unet(_, f, levels) => f.manifest.unet.feature_channels(levels),
            Extractor::Filters => filter_features::channels(),
        }
    }
}

fn load_extractor(name: &str, base: &ModelFile, levels: &[usize], seed: u64, device: &Device) -> Result<Extractor> {
    Ok(match name {
        "filters" => Extractor::Filters,
        "random" => {
            device.seed(seed);
            let m = &base.manifest;
            let net = HistoSegNet::new(&m.unet, &m.head, device);
            let file = ModelFile::from_net(m.clone(), &net);
            Extractor::Unet(feature_segmenter(&file, levels, device)?, file, levels.to_vec())
        }
        path => {
            let mut file = ModelFile::from_bytes(&std::fs::read(path).with_context(|| format!("cannot read {path}"))?)?;
            // every extractor works at the base model's resolution and tile (a UNet is fully
            // convolutional; its timestep and feature levels stay its own)
            let b = &base.manifest;
            (file.manifest.um_per_px, file.manifest.tile_size, file.manifest.overlap) = (b.um_per_px, b.tile_size, b.overlap);
            Extractor::Unet(feature_segmenter(&file, levels, device)?, file, levels.to_vec())
        }
    })
}

/// The model's raw labels for one native-resolution sample, with a trained few-shot head.
fn labels_for(extractor: &Extractor, head: &SegHead, strokes: &StrokeSet, manifest: &Manifest, sample: &Labeled, device: &Device) -> Result<Vec<u8>> {
    match extractor {
        Extractor::Unet(_, file, levels) => {
            let model = few_shot_model(file, head.clone(), levels, strokes, "bench", "", device)?;
            let seg = model.segmenter(device)?;
            predict(&seg, &model.manifest, sample, 4, false)
        }
        Extractor::Filters => {
            let (w, h) = (sample.image.width, sample.image.height);
            let (mw, mh) = imageio::rescaled_size(w, h, sample.um_per_px, manifest.um_per_px);
            let img = imageio::resize(&sample.image, mw, mh);
            let f = filter_features(&img);
            let x = Tensor::<4>::from_data(TensorData::new(f, [1, filter_features::channels(), mh, mw]), device);
            let probs = head.forward(x).into_data().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let classes = strokes.classes.len();
            // planar -> interleaved for argmax
            let n = mw * mh;
            let inter: Vec<f32> = (0..n).flat_map(|p| (0..classes).map(move |c| (p, c))).map(|(p, c)| probs[c * n + p]).collect();
            let mut labels = argmax_labels(&inter, classes);
            if let Some(g) = &manifest.postprocess.glass {
                for (l, glass) in labels.iter_mut().zip(glass_mask(&img.pixels, mw, mh, manifest.um_per_px, g)) {
                    if glass {
                        *l = 0;
                    }
                }
            }
            Ok(imageio::resize_nearest(&labels, mw, mh, w, h))
        }
    }
}

/// Features of a whole image at the model's resolution for the filter extractor, cut into the
/// same tiles as the UNet's so both train on the same painted pixels.
fn filter_tiles(painted: &mut PaintedImage, img: &RgbImage, strokes: &StrokeSet) {
    let todo = painted.tiles_to_compute(strokes);
    if todo.is_empty() {
        return;
    }
    let f = filter_features(img);
    let c = filter_features::channels();
    // planar [c, h, w] -> interleaved, as extract_planar wants
    let n = img.width * img.height;
    let inter: Vec<f32> = (0..n).flat_map(|p| (0..c).map(move |k| (p, k))).map(|(p, k)| f[k * n + p]).collect();
    for i in todo {
        let tile = painted.grid.tiles[i];
        let planar = painted.grid.extract_planar(&inter, c, &tile);
        painted.set_features(i, planar);
    }
}

struct Outcome {
    dice: f64,
    painted_px: usize,
    update_ms_mean: f64,
    update_ms_max: f64,
}

fn run_one(a: &Args, extractor: &Extractor, manifest: &Manifest, painted_on: &[Labeled], score_on: &[Labeled], seed: u64, device: &Device) -> Result<Outcome> {
    let classes = manifest.classes.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57_0CE5);
    // each image's strokes, then interleaved: the user goes back and forth between images
    let per_image: Vec<usize> = (0..painted_on.len()).map(|i| a.strokes / painted_on.len() + (i < a.strokes % painted_on.len()) as usize).collect();
    let mut queues: Vec<std::collections::VecDeque<histoseg::strokes::Stroke>> = painted_on
        .iter()
        .zip(&per_image)
        .map(|(s, &n)| {
            let plan = StrokePlan { radius: a.radius_um / s.um_per_px, length: a.length_um / s.um_per_px };
            scripted_strokes(&s.mask, s.image.width, s.image.height, classes.len(), n, plan, &mut rng).into()
        })
        .collect();
    let mut order = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        for (i, q) in queues.iter_mut().enumerate() {
            if let Some(st) = q.pop_front() {
                order.push((i, st));
            }
        }
    }
    let mut sets: Vec<StrokeSet> = painted_on.iter().map(|s| StrokeSet::new(classes.clone(), &s.name)).collect();
    let model_images: Vec<RgbImage> = painted_on.iter().map(|s| s.rescaled(manifest.um_per_px).image).collect();
    let mut painted: Vec<PaintedImage> = model_images
        .iter()
        .zip(painted_on)
        .map(|(img, s)| PaintedImage::new(img.width, img.height, manifest.tile_size, manifest.overlap, [0.0, 0.0], manifest.um_per_px / s.um_per_px))
        .collect::<Result<_, _>>()?;
    let mut trainer = HeadTrainer::new(extractor.channels(), classes.len(), seed, device);
    let mut times = Vec::new();
    let mut samples = PixelSamples::new(extractor.channels());
    for (i, stroke) in order {
        let t0 = Instant::now();
        sets[i].strokes.push(stroke);
        match extractor {
            Extractor::Unet(seg, _, _) => {
                let image = &model_images[i];
                painted[i].compute_features(seg, &sets[i], |p, k| Ok::<_, std::convert::Infallible>(p.input_from_image(image, k)))?;
            }
            Extractor::Filters => filter_tiles(&mut painted[i], &model_images[i], &sets[i]),
        }
        if !trainer.has_norm() {
            if let Some((mean, std)) = painted[i].channel_stats() {
                trainer.set_norm(mean, std);
            }
        }
        samples = PixelSamples::new(extractor.channels());
        for (p, set) in painted.iter().zip(&sets) {
            p.add_samples(set, &mut samples);
        }
        trainer.set_samples(&samples);
        if let Some(loss) = trainer.train(&a.settings) {
            loss.into_scalar::<f32>();
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let head = trainer.head();
    let all = StrokeSet { strokes: sets.iter().flat_map(|s| s.strokes.clone()).collect(), ..sets[0].clone() };
    // aggregated pixel Dice over the split, mean over the object classes (as `histoseg eval`)
    let object_classes: Vec<u8> = (1..classes.len() as u8).collect();
    let mut tp = vec![0usize; classes.len()];
    let mut fp = vec![0usize; classes.len()];
    let mut fneg = vec![0usize; classes.len()];
    for sample in score_on {
        let raw = labels_for(extractor, &head, &all, manifest, sample, device)?;
        let pp = postprocess::PostprocessConfig { glass: None, ..manifest.postprocess.clone() };
        let labels = postprocess::apply(&raw, sample.image.width, sample.image.height, &pp, sample.um_per_px).labels;
        for (&p, &t) in labels.iter().zip(&sample.mask) {
            for &k in &object_classes {
                match (p == k, t == k) {
                    (true, true) => tp[k as usize] += 1,
                    (true, false) => fp[k as usize] += 1,
                    (false, true) => fneg[k as usize] += 1,
                    _ => {}
                }
            }
        }
    }
    let dice = object_classes.iter().map(|&k| {
        let k = k as usize;
        2.0 * tp[k] as f64 / ((2 * tp[k] + fp[k] + fneg[k]).max(1)) as f64
    });
    let dice = dice.sum::<f64>() / object_classes.len() as f64;
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok(Outcome { dice, painted_px: samples.len(), update_ms_mean: mean, update_ms_max: times.iter().cloned().fold(0.0, f64::max) })
}

fn main() -> Result<()> {
    let a = parse()?;
    let device = Device::flex();
    let base = ModelFile::from_bytes(&std::fs::read(&a.base).with_context(|| format!("cannot read {}", a.base.display()))?)?;
    // the few-shot models' manifest: the base's resolution, tile and timestep, the dataset's
    // classes, no boundary class, and the base's glass rule
    let mut manifest = base.manifest.clone();
    manifest.classes = a.dataset.classes();
    manifest.postprocess = postprocess::PostprocessConfig { glass: base.manifest.postprocess.glass.clone(), ..Default::default() };
    let data = histoseg::data_dir();
    let train = load(&data, a.dataset, Split::Train)?;
    let test = if a.score == Split::Test { Some(load(&data, a.dataset, Split::Test)?) } else { None };
    println!("few-shot benchmark: {} strokes on {} {} training images, scored on {}, seeds {:?}, levels {:?}, {:?}", a.strokes, a.images, a.dataset.name(), if test.is_some() { "the test split" } else { "12 unpainted training images" }, a.seeds, a.levels, a.settings);
    let mut rows = Vec::new();
    for name in &a.extractors {
        let mut dices = Vec::new();
        for &seed in &a.seeds {
            // the painted images (and the validation images) are chosen by the seed
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut idx: Vec<usize> = (0..train.len()).collect();
            for i in (1..idx.len()).rev() {
                idx.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            let painted_on: Vec<Labeled> = idx[..a.images].iter().map(|&i| train[i].clone()).collect();
            let validation: Vec<Labeled> = idx[a.images..a.images + 12].iter().map(|&i| train[i].clone()).collect();
            let score_on = test.as_deref().unwrap_or(&validation);
            let extractor = load_extractor(name, &base, &a.levels, seed, &device)?;
            let t0 = Instant::now();
            let o = run_one(&a, &extractor, &manifest, &painted_on, score_on, seed, &device)?;
            println!(
                "{name} seed {seed}: pixel Dice {:.4} ({} painted pixel samples on {:?}); update after a stroke {:.0} ms mean, {:.0} ms max; {:.0} s in all",
                o.dice,
                o.painted_px,
                painted_on.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                o.update_ms_mean,
                o.update_ms_max,
                t0.elapsed().as_secs_f64()
            );
            dices.push(o.dice);
            rows.push(serde_json::json!({ "extractor": name, "seed": seed, "dice": o.dice, "painted_samples": o.painted_px, "update_ms_mean": o.update_ms_mean, "update_ms_max": o.update_ms_max, "images": painted_on.iter().map(|s| s.name.clone()).collect::<Vec<_>>() }));
        }
        let mean = dices.iter().sum::<f64>() / dices.len() as f64;
        let sd = (dices.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (dices.len().max(2) - 1) as f64).sqrt();
        println!("== {name}: pixel Dice {mean:.3} ± {sd:.3} (mean ± sd over {} seeds)", dices.len());
    }
    if let Some(out) = &a.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let doc = serde_json::json!({
            "command": format!("cargo run --release --features cli --example few_shot_bench -- {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
            "dataset": a.dataset.name(), "images": a.images, "strokes": a.strokes, "scored_on": if test.is_some() { "test" } else { "validation" },
            "settings": { "levels": a.levels, "steps": a.settings.steps, "batch": a.settings.batch, "lr": a.settings.lr, "radius_um": a.radius_um, "length_um": a.length_um },
            "runs": rows,
        });
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
