//! `histoseg dataset`: writes a labelled dataset (a preset's split or any folder pair) at a
//! working resolution as a folder pair with class-index masks, ready for `train --images`. With
//! `--boundaries N` the masks get three classes (background, object interior, object boundary
//! N px wide), derived from the instance masks or from the masks' connected components. This is
//! how the GPU script packs its data and how the 3-class example is made.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use histoseg::train::data::Split;
use histoseg::train::folders::{with_boundaries, write_folder};

use crate::args::DataArgs;

#[derive(Args)]
pub struct DatasetArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Number of classes of the masks in --masks (folders only).
    #[arg(long, default_value_t = 2)]
    classes: usize,
    /// Which split of a preset: train or test.
    #[arg(long, default_value = "train")]
    split: String,
    /// Resample to this resolution (µm/px); default: keep the images' own.
    #[arg(long)]
    um_per_px: Option<f64>,
    /// Replace the masks by background / interior / boundary, the boundary this many pixels wide
    /// (at the output resolution).
    #[arg(long)]
    boundaries: Option<usize>,
    /// Write the images as JPEG of this quality (1-100) instead of PNG: a compact copy, for
    /// carrying the data to another machine. Masks stay lossless PNG.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    jpeg_quality: Option<u8>,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: DatasetArgs, data_dir: &std::path::Path) -> Result<()> {
    let split = match a.split.as_str() {
        "train" => Split::Train,
        "test" => Split::Test,
        other => bail!("unknown split '{other}': use train or test"),
    };
    let data = a.data.load(data_dir, split, a.classes)?;
    let mut samples = data.samples;
    if let Some(um) = a.um_per_px {
        samples = samples.iter().map(|s| s.rescaled(um)).collect();
    }
    if let Some(width) = a.boundaries {
        if width == 0 {
            bail!("--boundaries must be at least 1 pixel");
        }
        samples = samples.iter().map(|s| with_boundaries(s, width)).collect();
    }
    write_folder(&samples, &a.out, a.jpeg_quality)?;
    let um = samples.first().map(|s| s.um_per_px).unwrap_or_default();
    let classes = if a.boundaries.is_some() { 3 } else { a.classes };
    println!("wrote {} images of {} at {um} µm/px with {classes}-class masks to {}", samples.len(), data.name, a.out.display());
    Ok(())
}
