//! Arguments shared by several commands, with one name for one meaning across the tool
//! (`--tile`, `--um-per-px`, `--model`, `--device`, `--run`), and the small helpers the commands
//! share: progress reports, reading model files, writing JSON.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use histoseg::model::UNetConfig;
use histoseg::train::compute::Compute;
use histoseg::train::data::{self, Dataset, Labeled, Split};
use histoseg::train::evaluate::EvalOptions;
use histoseg::train::folders::{FolderSpec, load_folder};
use histoseg::train::run::{Progress, RunConfig, RunOutcome, runs_dir, write_progress_line};
use histoseg::weights::ModelFile;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Clone)]
pub struct ArchArgs {
    #[arg(long, default_value_t = 32)]
    pub base_channels: usize,
    /// Comma-separated channel multipliers, one per resolution level (the shipped UNet's five).
    #[arg(long, default_value = "1,2,2,4,4")]
    pub channel_mults: String,
    #[arg(long, default_value_t = 1)]
    pub res_blocks: usize,
    /// Self-attention at the coarsest level: true or false.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub attention: bool,
}

impl ArchArgs {
    pub fn config(&self) -> Result<UNetConfig> {
        let c = UNetConfig { base_channels: self.base_channels, channel_mults: parse_list(&self.channel_mults)?, res_blocks: self.res_blocks, attention: self.attention, ..UNetConfig::default() };
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// Where to run: cpu (burn flex) or gpu (burn wgpu on Vulkan; needs `--features gpu`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    pub fn compute(&self) -> Result<Compute> {
        Compute::parse(&self.device)
    }
}

/// A labelled dataset: a preset from the data folder, or any folder pair.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// A preset from the data folder: glas or monuseg.
    #[arg(long, conflicts_with_all = ["images", "masks", "instances"])]
    pub dataset: Option<String>,
    /// Folder of images (PNG, JPEG, BMP, TIFF); each needs a mask of the same name in --masks.
    #[arg(long, requires = "masks")]
    pub images: Option<PathBuf>,
    /// Folder of masks: one class index per pixel (0 = background, 1, 2, ...), 8- or 16-bit grey.
    #[arg(long, requires = "images")]
    pub masks: Option<PathBuf>,
    /// Folder of instance masks (one id per object, 0 = background), for object metrics.
    #[arg(long, requires = "images")]
    pub instances: Option<PathBuf>,
    /// Resolution of the images in --images (µm/px).
    #[arg(long)]
    pub image_um_per_px: Option<f64>,
    /// Predicted objects smaller than this (µm²) are dropped before object metrics (folders;
    /// the presets use 400 for glas and 4 for monuseg).
    #[arg(long, default_value_t = 0.0)]
    pub min_object_um2: f64,
}

/// A loaded dataset with its name and how to score it.
pub struct LoadedData {
    pub name: String,
    pub samples: Vec<Labeled>,
    pub eval: EvalOptions,
}

impl DataArgs {
    pub fn given(&self) -> bool {
        self.dataset.is_some() || self.images.is_some()
    }

    pub fn preset(&self) -> Result<Option<Dataset>> {
        self.dataset.as_deref().map(Dataset::parse).transpose()
    }

    /// Loads the split of a preset, or the folders, checked against `classes`.
    pub fn load(&self, data_dir: &Path, split: Split, classes: usize) -> Result<LoadedData> {
        if let Some(d) = self.preset()? {
            if classes != 2 {
                bail!("the {} preset has 2 classes, but the model has {classes}", d.name());
            }
            let samples = data::load(data_dir, d, split)?;
            return Ok(LoadedData { name: d.name().into(), samples, eval: EvalOptions::for_dataset(d) });
        }
        let (Some(images), Some(masks)) = (&self.images, &self.masks) else {
            bail!("say which data: --dataset glas|monuseg, or --images DIR --masks DIR");
        };
        let um = self.image_um_per_px.context("--image-um-per-px is needed with --images: the resolution of those images, in µm/px")?;
        if !(um > 0.0 && um.is_finite()) {
            bail!("--image-um-per-px must be positive, got {um}");
        }
        let spec = FolderSpec::new(images.clone(), masks.clone(), self.instances.clone(), um, classes);
        let samples = load_folder(&spec)?;
        Ok(LoadedData { name: images.display().to_string(), samples, eval: EvalOptions::for_folder(self.instances.is_some(), self.min_object_um2) })
    }
}

/// The run's length, optimiser, checkpoints and where it lives.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Training steps (not used with --strokes, which replays the page's updates).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Peak learning rate (default: 2e-4 for pretrain, 2e-3 for train).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warmup steps (default: 5% of the steps).
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Validate every N steps (and at the end); 0: only at the end.
    #[arg(long, default_value_t = 100)]
    pub validate_every: usize,
    /// EMA decay of the weights per step (0 turns it off).
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Stop with a checkpoint after this many seconds (resume with --resume).
    #[arg(long)]
    pub stop_after: Option<f64>,
    /// Stop with a checkpoint after this many steps in this process (resume with --resume).
    #[arg(long)]
    pub stop_after_steps: Option<usize>,
    /// Folder of the run's state (default: $HISTOSEG_RUNS/NAME, else ../runs/NAME beside the
    /// checkout, where NAME is --out's file stem).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Continue the run in --run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Seconds between progress lines when the output is not a terminal.
    #[arg(long, default_value_t = 30.0)]
    pub log_every: f64,
}

impl RunArgs {
    pub fn config(&self, out: &Path, default_lr: f64) -> Result<RunConfig> {
        let dir = self.run.clone().unwrap_or_else(|| runs_dir().join(out.file_stem().unwrap_or_default()));
        let steps = self.steps.context("--steps N is needed")?;
        Ok(RunConfig {
            dir,
            steps,
            lr: self.lr.unwrap_or(default_lr),
            warmup: self.warmup.unwrap_or(steps / 20),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            validate_every: self.validate_every,
            ema_decay: self.ema,
            stop_after: self.stop_after,
            stop_after_steps: self.stop_after_steps,
            resume: self.resume,
        })
    }
}

pub fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',').map(|p| p.trim().parse::<usize>().with_context(|| format!("'{p}' is not a number in '{s}'"))).collect()
}

pub fn parse_floats(s: &str) -> Result<Vec<f64>> {
    s.split(',').map(|p| p.trim().parse::<f64>().with_context(|| format!("'{p}' is not a number in '{s}'"))).collect()
}

pub fn read_model(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load model file {}", path.display()))
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

pub fn bar(total: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}").expect("valid template");
    pb.set_style(style.progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

/// Progress of a training run: a bar on a terminal, else a line every `log_every` seconds (for
/// runs in the background with their output in a log), plus `progress.txt` in the run folder.
pub struct RunReporter {
    bar: Option<ProgressBar>,
    run_dir: PathBuf,
    log_every: f64,
    started: Instant,
    last_line: Instant,
    first_step: Option<usize>,
}

impl RunReporter {
    pub fn new(cfg: &RunConfig, what: &str, log_every: f64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new(cfg.steps as u64);
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} loss {prefix} {per_sec} eta {eta}").expect("valid template");
            pb.set_style(style.progress_chars("=> "));
            pb.set_message(what.to_string());
            pb
        });
        Self { bar, run_dir: cfg.dir.clone(), log_every, started: Instant::now(), last_line: Instant::now(), first_step: None }
    }

    pub fn report(&mut self, p: &Progress) {
        let first = *self.first_step.get_or_insert(p.step - 1);
        let per_second = (p.step - first) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        write_progress_line(&self.run_dir, p, per_second);
        if let Some(pb) = &self.bar {
            pb.set_position(p.step as u64);
            pb.set_prefix(format!("{:.5}", p.loss));
            if let Some(v) = p.validation {
                pb.println(format!("step {}: validation {v:.4}", p.step));
            }
        } else if p.validation.is_some() || self.last_line.elapsed().as_secs_f64() >= self.log_every || p.step == p.steps {
            self.last_line = Instant::now();
            let val = p.validation.map(|v| format!(", validation {v:.4}")).unwrap_or_default();
            let left = (p.steps - p.step) as f64 / per_second.max(1e-9);
            println!("step {}/{} loss {:.5} lr {:.2e}{val}, {per_second:.2} steps/s, {:.1} min left", p.step, p.steps, p.loss, p.lr, left / 60.0);
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish();
        }
    }
}

/// Prints how far a run got in this process; false when it stopped early (to be resumed).
pub fn say_how_far(outcome: &RunOutcome, cfg: &RunConfig) -> bool {
    let per_second = outcome.steps_this_process as f64 / outcome.seconds_this_process.max(1e-9);
    println!("{} steps in this process ({per_second:.3} steps/s), {} of {} in all", outcome.steps_this_process, outcome.state.step, cfg.steps);
    if !outcome.finished {
        println!("stopped early with a checkpoint in {}; continue with --resume", cfg.dir.display());
    }
    outcome.finished
}

/// Copies a finished run's weights with the best validation score (its final weights when
/// nothing was validated) to `out` as an f32 model file, after `edit` has updated the manifest.
pub fn publish(run_dir: &Path, out: &Path, edit: impl FnOnce(&mut ModelFile) -> Result<()>) -> Result<()> {
    let best = run_dir.join("best.histoseg");
    let source = if best.exists() { best } else { run_dir.join("final.histoseg") };
    let mut file = read_model(&source)?;
    edit(&mut file)?;
    write_file(out, &file.to_bytes_with(histoseg::weights::Precision::F32))?;
    println!("wrote {} (the run's {})", out.display(), source.file_name().unwrap_or_default().to_string_lossy());
    Ok(())
}
