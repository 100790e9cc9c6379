//! `histoseg eval`: scores a model file on a labelled set (a preset's test split or any folder
//! pair) through the viewer's tiling and blending; prints a table and writes a JSON report.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use histoseg::train::data::Split;
use histoseg::train::evaluate::{EvalReport, evaluate};
use histoseg::weights::ModelFile;

use crate::args::{DataArgs, DeviceArgs, LoadedData, bar, read_model, write_json};

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    report: Option<PathBuf>,
    /// Test-time augmentation: every tile in the eight flips and 90° rotations, averaged.
    #[arg(long)]
    tta: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The test split of a preset, or the folders as they are.
pub fn test_data(data: &DataArgs, data_dir: &Path, classes: usize, limit: Option<usize>) -> Result<LoadedData> {
    let mut d = data.load(data_dir, Split::Test, classes)?;
    if let Some(n) = limit {
        d.samples.truncate(n);
    }
    Ok(d)
}

pub fn score(file: &ModelFile, data: &LoadedData, device: &burn::prelude::Device) -> Result<EvalReport> {
    let segmenter = file.segmenter(device)?;
    let pb = bar(data.samples.len(), "evaluating");
    let report = evaluate(&segmenter, &file.manifest, &data.name, &data.samples, &data.eval, |i| pb.set_position(i as u64))?;
    pb.finish_and_clear();
    Ok(report)
}

pub fn run(a: EvalArgs, data_dir: &Path) -> Result<()> {
    let file = read_model(&a.model)?;
    let mut data = test_data(&a.data, data_dir, file.manifest.mask_classes(), a.limit)?;
    data.eval.tta = a.tta;
    let device = a.device.compute()?.device()?;
    let report = score(&file, &data, &device)?;
    println!("{}", report.table());
    if let Some(path) = a.report {
        write_json(&path, &report)?;
    }
    Ok(())
}
