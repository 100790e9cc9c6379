//! `histoseg init` (a model file with fresh, untrained weights) and `histoseg info` (print a
//! model file's manifest).

use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::*;
use clap::Args;
use histoseg::model::{HeadConfig, HistoSegNet};
use histoseg::weights::{ClassInfo, Manifest, ModelFile};

use crate::args::{ArchArgs, parse_list, read_model, write_file};

#[derive(Args)]
pub struct InitArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "glands")]
    name: String,
    /// Class names and colours, background first, e.g. "background:000000,gland:00c853".
    #[arg(long, default_value = "background:000000,gland:00c853")]
    classes: String,
    #[command(flatten)]
    arch: ArchArgs,
    #[arg(long, default_value = "0,1")]
    feature_levels: String,
    #[arg(long, default_value_t = 128)]
    tile: usize,
    #[arg(long, default_value_t = 32)]
    overlap: usize,
    #[arg(long, default_value_t = 50)]
    timestep: usize,
    #[arg(long, default_value_t = 0.62)]
    um_per_px: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn init(a: InitArgs) -> Result<()> {
    let classes = ClassInfo::parse_list(&a.classes).map_err(anyhow::Error::msg)?;
    let head = HeadConfig::new(parse_list(&a.feature_levels)?, 32, classes.len());
    let mut manifest = Manifest::for_segmentation(&a.name, classes, a.arch.config()?, head, a.um_per_px, a.tile, a.overlap, a.timestep)?;
    manifest.description = "UNTRAINED: randomly initialised weights. Its masks mean nothing yet.".into();
    manifest.provenance = format!("histoseg init --name {} --seed {} (no training)", a.name, a.seed);
    let device = Device::flex();
    device.seed(a.seed);
    let net = HistoSegNet::new(&manifest.unet, &manifest.head, &device);
    let file = ModelFile::from_net(manifest, &net);
    let bytes = file.to_bytes();
    write_file(&a.out, &bytes)?;
    println!("wrote {} ({} parameters, {} bytes)", a.out.display(), file.parameter_count(), bytes.len());
    Ok(())
}

pub fn info(model: PathBuf) -> Result<()> {
    let file = read_model(&model)?;
    println!("{}", serde_json::to_string_pretty(&file.manifest)?);
    println!("parameters: {}", file.parameter_count());
    Ok(())
}
