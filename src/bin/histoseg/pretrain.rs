//! `histoseg pretrain`: self-supervised DDPM pretraining of the UNet on unlabelled images, as a
//! resumable run (see `histoseg::train::run`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use histoseg::train::data::{self, Augment, Source};
use histoseg::train::pretrain::{LossWeighting, PretrainSettings, pretrain};

use crate::args::{ArchArgs, DeviceArgs, RunArgs, RunReporter, parse_floats};

#[derive(Args)]
pub struct PretrainArgs {
    /// Image folder as DIR,UM_PER_PX[,NAME_PREFIX]; repeat for several folders.
    #[arg(long = "source", required = true)]
    sources: Vec<Source>,
    /// Working resolutions (µm/px); every image is resampled to each of them.
    #[arg(long, default_value = "0.5,1.0")]
    um_per_px: String,
    #[command(flatten)]
    arch: ArchArgs,
    #[arg(long, default_value_t = 64)]
    patch: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Per-timestep loss weight: one-minus-alpha-bar (GenSelfDiff-HIS), uniform, or min-snr.
    #[arg(long, default_value = "one-minus-alpha-bar")]
    loss_weighting: String,
    /// Hold out every Nth source image for the validation loss (0: none).
    #[arg(long, default_value_t = 20)]
    validation_every: usize,
    #[arg(long, default_value_t = 64)]
    validation_patches: usize,
    /// Start the UNet from this model file's UNet (same architecture) instead of random weights,
    /// e.g. to go on from a published pretrained UNet whose run state was not kept; the optimiser,
    /// EMA and step count start afresh.
    #[arg(long)]
    init: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// The pretrained weights (EMA, best validation loss) are copied here at the end.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: PretrainArgs) -> Result<()> {
    let working = parse_floats(&a.um_per_px)?;
    let unet = a.arch.config()?;
    let weighting = LossWeighting::parse(&a.loss_weighting)?;
    let compute = a.device.compute()?;
    let device = compute.device()?;
    let images = data::load_unlabeled(&a.sources, &working, a.validation_every)?;
    let cfg = a.run.config(&a.out, 2e-4)?;
    let provenance = format!(
        "histoseg pretrain: {} images ({} held out for validation) from {} at {working:?} µm/px, {} steps of {}x{}px, lr {}, {weighting:?} weighting, EMA {}, seed {}, {}, on {}",
        images.files.0,
        images.files.1,
        a.sources.iter().map(|s| format!("{}[{}*]", s.dir.display(), s.prefix)).collect::<Vec<_>>().join(" + "),
        cfg.steps,
        a.batch,
        a.patch,
        cfg.lr,
        cfg.ema_decay,
        cfg.seed,
        a.init.as_ref().map_or("from random weights".to_string(), |p| format!("starting from the UNet of {}", p.display())),
        compute.describe()
    );
    println!("{provenance}\nrun folder {}", cfg.dir.display());
    let settings = PretrainSettings { unet, patch: a.patch, batch: a.batch, augment: Augment::DEFAULT, weighting, validation_patches: a.validation_patches, init: a.init };
    let mut reporter = RunReporter::new(&cfg, "pretrain", a.run.log_every);
    let outcome = pretrain(&images.train, &images.validation, settings, &cfg, &device, &provenance, |p| reporter.report(p))?;
    reporter.finish();
    if !crate::args::say_how_far(&outcome, &cfg) {
        return Ok(());
    }
    crate::args::publish(&cfg.dir, &a.out, |_| Ok(()))
}
