//! `histoseg train`: a segmentation model from a labelled dataset (a preset or any folder pair
//! with any number of classes), frozen-UNet head or full fine-tune, as a resumable run whose
//! best weights by validation mean Dice (every class, background included) are written to `--out`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use histoseg::model::HeadConfig;
use histoseg::train::data::{Augment, Split, split_train_val};
use histoseg::train::fit::{Mode, SegSettings, train_segmentation};
use histoseg::weights::{ClassInfo, Manifest};

use crate::args::{ArchArgs, DataArgs, DeviceArgs, RunArgs, RunReporter, parse_list};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Class names and colours, background first: "background:000000,gland:00c853". The
    /// presets have their own; folders need it.
    #[arg(long)]
    classes: Option<String>,
    /// A model file whose UNet to start from (a pretraining run's output), or "none" for random
    /// initialisation. With --strokes: the model whose frozen UNet gives the features.
    #[arg(long)]
    pretrained: String,
    /// Strokes painted in the viewer's "Train your own" mode (the GeoJSON it saves, or line
    /// annotations from QuPath): trains a pixel head on the frozen UNet of --pretrained from
    /// the painted pixels of --image, replaying the page's updates.
    #[arg(long, requires = "image", conflicts_with_all = ["dataset", "images"])]
    strokes: Option<PathBuf>,
    /// The image or slide the strokes were painted on (its resolution from the file, else
    /// --image-um-per-px).
    #[arg(long, requires = "strokes")]
    image: Option<PathBuf>,
    /// frozen (train the head on cached features of the frozen UNet) or finetune (all of it).
    #[arg(long, default_value = "frozen")]
    mode: String,
    #[command(flatten)]
    arch: ArchArgs,
    /// Working resolution of the model (µm/px); with --strokes, that of --pretrained.
    #[arg(long, required_unless_present = "strokes")]
    um_per_px: Option<f64>,
    /// Diffusion timestep(s) the features are read at. Several (10,50,200) run the UNet once each
    /// and give the head their features side by side, as DDPM-Seg does.
    #[arg(long, default_value = "50")]
    timestep: String,
    #[arg(long, default_value = "0,1")]
    feature_levels: String,
    #[arg(long, default_value_t = 32)]
    head_hidden: usize,
    /// The head standardises each feature channel first (scale and shift set from the training
    /// features' mean and spread, then trained), as DDPM-Seg's pixel MLP normalises its inputs.
    #[arg(long)]
    standardize_features: bool,
    /// The class of the masks that marks boundaries between touching objects (masks from
    /// `dataset --boundaries`): validation removes it as post-processing does, from the
    /// prediction and the truth alike, so the mean Dice is that of background and objects, as a
    /// head without one is scored; the file records it for `export`.
    #[arg(long)]
    boundary_class: Option<u8>,
    #[arg(long, default_value_t = 128)]
    tile: usize,
    #[arg(long, default_value_t = 32)]
    overlap: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Patches whose features are cached (frozen mode).
    #[arg(long, default_value_t = 256)]
    cache: usize,
    /// Fraction of the training images (after the validation split) whose labels are used.
    #[arg(long, default_value_t = 1.0)]
    label_fraction: f64,
    /// Fraction of the training images held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Model name, shown in the viewer.
    #[arg(long)]
    name: String,
    /// The trained model (f32 model file): the run's best weights by validation mean Dice (background included).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: TrainArgs, data_dir: &std::path::Path) -> Result<()> {
    if let (Some(strokes), Some(image)) = (&a.strokes, &a.image) {
        return crate::teach::run(strokes, image, &a.pretrained, a.data.image_um_per_px, &a.name, &a.out, a.run.seed);
    }
    let um_per_px = a.um_per_px.context("--um-per-px is needed")?;
    let mode = Mode::parse(&a.mode)?;
    let preset = a.data.preset()?;
    let classes = match (&a.classes, preset) {
        (Some(c), _) => ClassInfo::parse_list(c).map_err(anyhow::Error::msg)?,
        (None, Some(d)) => d.classes(),
        (None, None) => anyhow::bail!("--classes NAME:RRGGBB,... is needed with --images: one per mask value, background first"),
    };
    let unet = a.arch.config()?;
    let timesteps = parse_list(&a.timestep)?;
    let (&timestep, extra_timesteps) = timesteps.split_first().context("--timestep needs a timestep")?;
    let head = HeadConfig { extra_timesteps: extra_timesteps.to_vec(), standardize: a.standardize_features, ..HeadConfig::new(parse_list(&a.feature_levels)?, a.head_hidden, classes.len()) };
    let mut manifest = Manifest::for_segmentation(&a.name, classes, unet, head, um_per_px, a.tile, a.overlap, timestep)?;
    manifest.postprocess.boundary_class = a.boundary_class;
    manifest.validate()?;
    let data = a.data.load(data_dir, Split::Train, manifest.head.num_classes).context("cannot load the training data")?;
    let (train, val) = split_train_val(data.samples, a.val_fraction, a.label_fraction, a.run.seed)?;
    let train: Vec<_> = train.iter().map(|s| s.rescaled(um_per_px)).collect();
    let compute = a.device.compute()?;
    let device = compute.device()?;
    let cfg = a.run.config(&a.out, 2e-3)?;
    println!(
        "training on {} images of {} ({} held out for validation), {} classes, {mode:?} mode, t={:?}, levels {:?}{}, on {}\nrun folder {}",
        train.len(),
        data.name,
        val.len(),
        manifest.classes.len(),
        manifest.timesteps(),
        manifest.head.feature_levels,
        if manifest.head.standardize { ", standardised features" } else { "" },
        compute.describe(),
        cfg.dir.display()
    );
    let data_flags = match preset {
        Some(d) => format!("--dataset {}", d.name()),
        None => format!("--images {}", data.name),
    };
    manifest.trained = true;
    manifest.provenance = format!(
        "histoseg train {data_flags} --pretrained {} --mode {mode:?} --um-per-px {} --timestep {} --feature-levels {}{}{} --steps {} --batch {} --lr {} --ema {} --label-fraction {} --seed {} ({} training images, on {})",
        a.pretrained,
        um_per_px,
        a.timestep,
        a.feature_levels,
        if a.standardize_features { " --standardize-features" } else { "" },
        a.boundary_class.map(|b| format!(" --boundary-class {b}")).unwrap_or_default(),
        cfg.steps,
        a.batch,
        cfg.lr,
        cfg.ema_decay,
        a.label_fraction,
        cfg.seed,
        train.len(),
        compute.describe()
    )
    .to_lowercase();
    let settings = SegSettings { mode, batch: a.batch, cache_patches: a.cache, augment: Augment::DEFAULT };
    let pretrained = (a.pretrained != "none").then(|| PathBuf::from(&a.pretrained));
    let mut reporter = RunReporter::new(&cfg, "train", a.run.log_every);
    let outcome = train_segmentation(pretrained.as_deref(), &manifest, &train, &val, settings, &cfg, &device, |p| reporter.report(p))?;
    reporter.finish();
    if !crate::args::say_how_far(&outcome, &cfg) {
        return Ok(());
    }
    let best = outcome.state.best;
    if let Some((step, dice)) = best {
        println!("best validation mean Dice {dice:.4} at step {step} (all classes, background included; {} images)", val.len());
    }
    crate::args::publish(&cfg.dir, &a.out, |file| {
        file.manifest.metrics = match best {
            Some((step, dice)) if !val.is_empty() => serde_json::json!({ "validation_mean_dice": dice, "validation_step": step, "validation_images": val.len() }),
            _ => serde_json::Value::Null,
        };
        Ok(())
    })
}
