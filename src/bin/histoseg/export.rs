//! `histoseg export`: the int8 model file the viewer loads (compared with f32 on a test set,
//! whose figures go into its manifest), or with `--format onnx` the inference graph as a
//! standard ONNX model, optionally with reference tiles to check onnxruntime against.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use histoseg::segment::read_for_model;
use histoseg::slide::{Region, Slide};
use histoseg::weights::ModelFile;

use crate::args::{DataArgs, read_model, write_file, write_json};
use crate::eval::{score, test_data};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// histoseg's own int8 model file, for the viewer and the CLI.
    Histoseg,
    /// A standard ONNX graph (float32) of the network as it runs at inference.
    Onnx,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Model to export: an f32 model file from `train` (or, for ONNX, any model file).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "histoseg")]
    format: ExportFormat,
    /// Test set to compare int8 against f32 on, recorded in the manifest (histoseg format).
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    limit: Option<usize>,
    /// JSON report of the comparison.
    #[arg(long)]
    report: Option<PathBuf>,
    /// ONNX: tile size of the graph (default: the model's).
    #[arg(long)]
    tile: Option<usize>,
    /// ONNX: also run histoseg on the first tiles of this image and write the input and the
    /// probabilities beside the model (`<out>.reference.json` plus raw f32 files), so
    /// `scripts/onnx_check.py` can compare onnxruntime with them.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// The class that marks boundaries between touching objects (an instance-aware model
    /// trained on `dataset --boundaries`): objects are split there by a marker watershed.
    #[arg(long)]
    boundary_class: Option<u8>,
    /// Fill background holes enclosed by one object.
    #[arg(long)]
    fill_holes: bool,
    /// Glass: a bright, colourless region that reaches the image's border and covers at least
    /// this many µm² becomes background whatever the network says (0: no glass rule). The
    /// default was chosen on GlaS training images (see `histoseg::tissue`).
    #[arg(long, default_value_t = histoseg::tissue::GlassConfig::default().min_area_um2)]
    glass_um2: f64,
}

pub fn run(a: ExportArgs, data_dir: &Path) -> Result<()> {
    match a.format {
        ExportFormat::Onnx => export_onnx(&a.model, &a.out, a.tile, a.reference.as_deref()),
        ExportFormat::Histoseg => export_int8(&a, data_dir),
    }
}

fn export_int8(a: &ExportArgs, data_dir: &Path) -> Result<()> {
    anyhow::ensure!(a.data.given(), "a test set is needed (--dataset, or --images and --masks): the int8 export is compared with f32 on it");
    let mut f32_file = read_model(&a.model)?;
    // the post-processing the model ships with: what eval scores is what the page and the CLI do
    let pp = &mut f32_file.manifest.postprocess;
    // a boundary class given to `train` stays unless another is given here
    (pp.boundary_class, pp.fill_holes) = (a.boundary_class.or(pp.boundary_class), a.fill_holes);
    pp.glass = (a.glass_um2 > 0.0).then(|| histoseg::tissue::GlassConfig { min_area_um2: a.glass_um2, ..Default::default() });
    let data = test_data(&a.data, data_dir, f32_file.manifest.mask_classes(), a.limit)?;
    f32_file.manifest.postprocess.min_object_um2 = data.eval.min_object_um2;
    f32_file.manifest.validate()?;
    let mut int8_file = ModelFile::from_bytes(&f32_file.to_bytes())?;
    let device = Device::flex();
    let f = score(&f32_file, &data, &device)?;
    let q = score(&int8_file, &data, &device)?;
    let summary = serde_json::json!({
        "dataset": data.name,
        "images": data.samples.len(),
        "f32": { "pixel_dice": f.pixel_dice, "pixel_iou": f.pixel_iou, "per_class": f.per_class, "objects": f.objects },
        "int8": { "pixel_dice": q.pixel_dice, "pixel_iou": q.pixel_iou, "per_class": q.per_class, "objects": q.objects },
        "dice_change": q.pixel_dice - f.pixel_dice,
    });
    let mut metrics = serde_json::json!({ "test": summary });
    // the training run's validation score (files trained before weights were kept by the mean
    // Dice over all classes carry the object classes' Dice instead)
    for key in ["validation_mean_dice", "validation_pixel_dice"] {
        if let Some(v) = f32_file.manifest.metrics.get(key) {
            metrics[key] = v.clone();
        }
    }
    int8_file.manifest.metrics = metrics;
    let bytes = int8_file.to_bytes();
    write_file(&a.out, &bytes)?;
    println!("int8 test set:\n{}", q.table());
    println!(
        "wrote {} ({:.2} MB; f32 {:.2} MB); pixel Dice f32 {:.4} -> int8 {:.4} (change {:+.4})",
        a.out.display(),
        bytes.len() as f64 / 1e6,
        std::fs::metadata(&a.model)?.len() as f64 / 1e6,
        f.pixel_dice,
        q.pixel_dice,
        q.pixel_dice - f.pixel_dice
    );
    if let Some(path) = &a.report {
        write_json(path, &summary)?;
    }
    Ok(())
}

/// `export --format onnx`: the graph, and optionally reference tiles to check it against.
fn export_onnx(model: &Path, out: &Path, tile: Option<usize>, reference: Option<&Path>) -> Result<()> {
    let file = read_model(model)?;
    let m = &file.manifest;
    if m.timesteps().len() > 1 {
        anyhow::bail!("{}: ONNX export writes one UNet pass, but this model reads features at timesteps {:?}", model.display(), m.timesteps());
    }
    let device = Device::flex();
    let segmenter = file.segmenter_with_tile(&device, tile.unwrap_or(m.tile_size))?;
    let classes: Vec<String> = m.classes.iter().map(|c| c.name.clone()).collect();
    let metadata = [
        ("name", m.name.clone()),
        ("classes", classes.join(",")),
        ("um_per_px", m.um_per_px.to_string()),
        ("tile_size", segmenter.tile_size.to_string()),
        ("overlap", m.overlap.to_string()),
        ("timestep", m.timestep.to_string()),
        ("noise_seed", m.noise_seed.to_string()),
        ("input", "image: float32 [batch, 3, tile, tile], RGB / 127.5 - 1".to_string()),
        ("source", model.display().to_string()),
    ];
    let onnx = histoseg::onnx::export(&segmenter, m.head.num_classes, &metadata);
    write_file(out, &onnx.bytes)?;
    println!(
        "wrote {} ({:.2} MB, {} nodes, {} float parameters, opset {}, tile {})",
        out.display(),
        onnx.bytes.len() as f64 / 1e6,
        onnx.nodes,
        onnx.parameters,
        histoseg::onnx::OPSET,
        segmenter.tile_size
    );
    let Some(image) = reference else { return Ok(()) };
    // the first tiles of a real image, at the model's resolution, through the burn network
    let mut slide = Slide::open(image)?;
    let level0_um = slide.um_per_px.unwrap_or(m.um_per_px);
    let whole = Region { x: 0, y: 0, width: slide.width(), height: slide.height() };
    let (_, work) = read_for_model(&mut slide, whole, level0_um, m.um_per_px)?;
    let job = histoseg::segment::SegmentJob::for_model(&work, segmenter.tile_size, m)?;
    let batch = job.next_batch(4).context("the reference image has no tiles")?;
    let probs = segmenter.run(batch.planar.clone(), batch.count);
    let stem = out.with_extension("");
    let write_f32 = |suffix: &str, values: &[f32]| -> Result<String> {
        let path = PathBuf::from(format!("{}.{suffix}.f32", stem.display()));
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_file(&path, &bytes)?;
        Ok(path.file_name().unwrap_or_default().to_string_lossy().to_string())
    };
    let t = segmenter.tile_size;
    let info = serde_json::json!({
        "model": out.file_name().unwrap_or_default().to_string_lossy(),
        "image": image.display().to_string(),
        "input": write_f32("reference-input", &batch.planar)?,
        "input_shape": [batch.count, 3, t, t],
        "probabilities": write_f32("reference-probabilities", &probs)?,
        "probabilities_shape": [batch.count, m.head.num_classes, t, t],
    });
    let json_path = PathBuf::from(format!("{}.reference.json", stem.display()));
    write_json(&json_path, &info)?;
    println!("wrote {} ({} tiles of {})", json_path.display(), batch.count, image.display());
    Ok(())
}
