//! `histoseg bench`: speed on real tiles, one JSON line per call.
//!
//! - Inference (default): tiles/s, ms/tile and peak memory of a model file for one tile size and
//!   batch size.
//! - `--train`: DDPM training steps/s (forward, backward, Adam and EMA, through the same run loop
//!   as `pretrain`) for one architecture, patch and batch, so devices compare on the same batch.
//! - `--receptive-field`: the measured receptive field of a model (or of a random-init
//!   architecture), from the gradient of the centre pixel's logit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use histoseg::imageio;
use histoseg::train::data::Augment;
use histoseg::train::pretrain::{LossWeighting, PretrainSettings, pretrain};
use histoseg::train::run::RunConfig;

use crate::args::{ArchArgs, DeviceArgs, read_model};

#[derive(Args)]
pub struct BenchArgs {
    /// Model file to time (inference).
    #[arg(long, required_unless_present_any = ["train", "receptive_field"])]
    model: Option<PathBuf>,
    /// Time training steps instead of inference.
    #[arg(long)]
    train: bool,
    /// Measure the receptive field (of --model, or of a random-init UNet given by the
    /// architecture flags) on a tile of --tile pixels.
    #[arg(long, conflicts_with = "train")]
    receptive_field: bool,
    /// Inference: tile size (default: the model's). Training: patch size.
    #[arg(long)]
    tile: Option<usize>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed batches (inference) or steps (training), after warm-up.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// The image tiles are cut from (default: GlaS testA_1 for inference, train_1 for training).
    #[arg(long)]
    image: Option<PathBuf>,
    #[command(flatten)]
    arch: ArchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Peak resident memory of this process so far, from /proc (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn read_image(path: &Path) -> Result<imageio::RgbImage> {
    Ok(imageio::decode(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?)
}

pub fn run(a: BenchArgs) -> Result<()> {
    let compute = a.device.compute()?;
    let device = compute.device()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if a.train {
        return bench_training(&a, compute, &device, threads);
    }
    if a.receptive_field {
        return bench_receptive_field(&a, &device);
    }
    let model_path = a.model.as_deref().expect("clap requires --model");
    let file = read_model(model_path)?;
    let m = &file.manifest;
    let tile = a.tile.unwrap_or(m.tile_size);
    let macs = m.unet.macs(tile) * m.timesteps().len() as u64 + m.head.macs(m.head.input_channels(&m.unet), tile);
    let segmenter = file.segmenter_with_tile(&device, tile)?;
    let image = read_image(&a.image.clone().unwrap_or_else(|| histoseg::data_dir().join("glas/images/testA_1.png")))?;
    let job = histoseg::segment::SegmentJob::new(&image, tile, 0, m.head.num_classes)?;
    // every tile of the image, repeated when the batch is larger than the image
    let tiles = job.next_batch(usize::MAX).context("no tiles")?;
    let per_tile = 3 * tile * tile;
    let planar: Vec<f32> = (0..a.batch).flat_map(|i| tiles.planar[(i % tiles.count) * per_tile..][..per_tile].iter().copied()).collect();
    let run = || segmenter.run(planar.clone(), a.batch);
    let started = Instant::now();
    run();
    let warmup_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    for _ in 0..a.iters {
        run();
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = (a.iters * a.batch) as f64;
    let report = serde_json::json!({
        "engine": format!("histoseg {}", compute.describe()),
        "tile": tile, "batch": a.batch, "iters": a.iters, "warmup_ms": warmup_ms,
        "ms_per_tile": seconds * 1e3 / n, "tiles_per_s": n / seconds,
        "gmac_per_tile": macs as f64 / 1e9, "gflop_per_tile": 2.0 * macs as f64 / 1e9,
        "parameters": file.parameter_count(), "file_bytes": std::fs::metadata(model_path)?.len(),
        "peak_rss_mb": peak_rss_mb(), "threads": threads,
    });
    println!("{report}");
    Ok(())
}

fn bench_training(a: &BenchArgs, compute: histoseg::train::compute::Compute, device: &burn::prelude::Device, threads: usize) -> Result<()> {
    let unet = a.arch.config()?;
    let patch = a.tile.unwrap_or(64);
    let image = read_image(&a.image.clone().unwrap_or_else(|| histoseg::data_dir().join("glas/images/train_1.png")))?;
    let dir = std::env::temp_dir().join(format!("histoseg-bench-{}", std::process::id()));
    // two warm-up steps (kernel compilation on the GPU), then the timed ones
    let warm = 2;
    let cfg = RunConfig {
        dir: dir.clone(),
        steps: warm + a.iters,
        lr: 2e-4,
        warmup: 1,
        seed: 0,
        checkpoint_every: usize::MAX,
        validate_every: 0,
        ema_decay: 0.999,
        stop_after: None,
        stop_after_steps: None,
        resume: false,
    };
    let settings = PretrainSettings { unet: unet.clone(), patch, batch: a.batch, augment: Augment::DEFAULT, weighting: LossWeighting::OneMinusAlphaBar, validation_patches: 0, init: None };
    let mut marks = Vec::new();
    let images = [image];
    pretrain(&images, &[], settings, &cfg, device, "bench", |p| marks.push((p.step, Instant::now(), p.loss)))?;
    std::fs::remove_dir_all(&dir).ok();
    let (s0, t0, _) = marks[warm - 1];
    let (s1, t1, loss) = *marks.last().expect("steps ran");
    let seconds = (t1 - t0).as_secs_f64();
    let report = serde_json::json!({
        "engine": format!("histoseg {}", compute.describe()),
        "what": "DDPM training step (forward, backward, Adam, EMA)",
        "unet": unet, "patch": patch, "batch": a.batch, "steps": s1 - s0,
        "steps_per_s": (s1 - s0) as f64 / seconds, "ms_per_step": seconds * 1e3 / (s1 - s0) as f64,
        "last_loss": loss, "peak_rss_mb": peak_rss_mb(), "threads": threads,
    });
    println!("{report}");
    Ok(())
}

fn bench_receptive_field(a: &BenchArgs, device: &burn::prelude::Device) -> Result<()> {
    use histoseg::model::{HeadConfig, HistoSegNet};
    let (net, timesteps, levels, um_per_px, tile) = match &a.model {
        Some(path) => {
            let file = read_model(path)?;
            let m = file.manifest.clone();
            let net = file.segmenter_with_tile(device, m.tile_size)?.net;
            (net, m.timesteps(), m.head.feature_levels, Some(m.um_per_px), a.tile.unwrap_or(m.tile_size))
        }
        None => {
            let head = HeadConfig::new(vec![0, 1], 32, 2);
            (HistoSegNet::new(&a.arch.config()?, &head, device), vec![50], head.feature_levels, None, a.tile.unwrap_or(256))
        }
    };
    let rf = histoseg::model::receptive_field::measure(&net, &timesteps, &levels, tile, device);
    let um = |r: usize| um_per_px.map(|u| (2 * r + 1) as f64 * u);
    let report = serde_json::json!({
        "what": "receptive field of the centre pixel's class-1 logit",
        "model": a.model, "unet": net_config(&a.model, &a.arch)?, "field": rf,
        "theoretical_side_um": um(rf.theoretical_radius), "effective_side_90_um": um(rf.effective_radius_90),
    });
    println!("{report}");
    Ok(())
}

fn net_config(model: &Option<PathBuf>, arch: &ArchArgs) -> Result<histoseg::model::UNetConfig> {
    match model {
        Some(path) => Ok(read_model(path)?.manifest.unet),
        None => arch.config(),
    }
}
