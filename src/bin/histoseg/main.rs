//! The histoseg command line tool: pretrains the diffusion UNet, trains segmentation heads,
//! evaluates on the test sets, exports int8 model files for the viewer, and segments folders of
//! images, all with the same model code, tiling and blending as the browser viewer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Args, Parser, Subcommand};
use histoseg::model::{HeadConfig, HistoSegNet, UNetConfig};
use histoseg::export;
use histoseg::segment::{labels_for_region, read_for_model, segment_image};
use histoseg::slide::{Region, Slide};
use histoseg::train::data::{self, Augment, Dataset, Source, Split};
use histoseg::train::evaluate::{EvalReport, evaluate};
use histoseg::train::fit::{FitConfig, Mode, fit};
use histoseg::train::pretrain::{PretrainConfig, pretrain};
use histoseg::weights::{ClassInfo, ModelFile, Precision, new_manifest};
use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

#[derive(Parser)]
#[command(name = "histoseg", version, about = "Diffusion-feature segmentation of H&E histology images")]
struct Cli {
    /// Folder holding glas/, monuseg/ and samples/ (default: $HISTOSEG_DATA or ../shared/data).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ArchArgs {
    #[arg(long, default_value_t = 32)]
    base_channels: usize,
    /// Comma-separated channel multipliers, one per resolution level.
    #[arg(long, default_value = "1,2,4")]
    channel_mults: String,
    #[arg(long, default_value_t = 1)]
    res_blocks: usize,
}

impl ArchArgs {
    fn config(&self) -> Result<UNetConfig> {
        let c = UNetConfig { base_channels: self.base_channels, channel_mults: parse_list(&self.channel_mults)?, res_blocks: self.res_blocks, ..UNetConfig::default() };
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExportFormat {
    /// histoseg's own int8 model file, for the viewer and the CLI.
    Histoseg,
    /// A standard ONNX graph (float32) of the network as it runs at inference.
    Onnx,
}

#[derive(Subcommand)]
enum Command {
    /// Self-supervised DDPM pretraining of the UNet on unlabelled images.
    Pretrain {
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
        #[arg(long, default_value_t = 2000)]
        steps: usize,
        #[arg(long, default_value_t = 2e-4)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        checkpoint_every: usize,
        /// Checkpoint file (f32 model file); a .state.json and a .loss.csv sit beside it.
        #[arg(long)]
        out: PathBuf,
        /// Continue from the checkpoint at --out.
        #[arg(long)]
        resume: bool,
    },
    /// Train a segmentation model on a labelled dataset's training split.
    Train {
        #[arg(long, value_enum)]
        dataset: Dataset,
        /// A pretrained checkpoint whose UNet to use, or "none" for random initialisation.
        #[arg(long)]
        pretrained: String,
        #[arg(long, value_enum, default_value = "frozen")]
        mode: Mode,
        #[command(flatten)]
        arch: ArchArgs,
        /// Working resolution (µm/px).
        #[arg(long)]
        um_per_px: f64,
        #[arg(long, default_value_t = 50)]
        timestep: usize,
        #[arg(long, default_value = "0,1")]
        feature_levels: String,
        #[arg(long, default_value_t = 32)]
        head_hidden: usize,
        #[arg(long, default_value_t = 128)]
        tile: usize,
        #[arg(long, default_value_t = 32)]
        overlap: usize,
        #[arg(long, default_value_t = 600)]
        steps: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        /// Patches whose features are cached (frozen mode).
        #[arg(long, default_value_t = 256)]
        cache: usize,
        /// Fraction of the training images (after the validation split) whose labels are used.
        #[arg(long, default_value_t = 1.0)]
        label_fraction: f64,
        /// Fraction of the training images held out for validation.
        #[arg(long, default_value_t = 0.1)]
        val_fraction: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Model name and class names/colours.
        #[arg(long)]
        name: String,
        #[arg(long)]
        classes: String,
        /// f32 checkpoint of the trained model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate a model file on a dataset's test split; prints a table and writes JSON.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum)]
        dataset: Dataset,
        /// Evaluate only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Write the int8 model file the viewer loads (reporting its size and the change against
    /// f32), or with `--format onnx` the inference graph as a standard ONNX model.
    Export {
        /// Model to export: an f32 checkpoint from `train` (or, for ONNX, any model file).
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "histoseg")]
        format: ExportFormat,
        /// Test set to compare int8 against f32 on, recorded in the manifest (histoseg format).
        #[arg(long, value_enum)]
        dataset: Option<Dataset>,
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
    },
    /// Time the network natively on real tiles (burn flex CPU): tiles/s, ms/tile and peak
    /// memory for one tile size and batch size. Prints one JSON line.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        tile: Option<usize>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Timed batches after one warm-up batch.
        #[arg(long, default_value_t = 5)]
        iters: usize,
    },
    /// Write a model file with freshly initialised (untrained) weights.
    Init {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "glands")]
        name: String,
        /// Class names and colours, e.g. "background:000000,gland:00c853".
        #[arg(long, default_value = "background:000000,gland:00c853")]
        classes: String,
        #[command(flatten)]
        arch: ArchArgs,
        #[arg(long, default_value = "0,1")]
        feature_levels: String,
        #[arg(long, default_value_t = 128)]
        tile_size: usize,
        #[arg(long, default_value_t = 32)]
        overlap: usize,
        #[arg(long, default_value_t = 50)]
        timestep: usize,
        #[arg(long, default_value_t = 0.62)]
        um_per_px: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print a model file's manifest and size.
    Info { model: PathBuf },
    /// Segment every PNG/JPEG/BMP in a folder (or one file): label-mask PNGs and GeoJSON.
    Segment {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Output folder for `<name>.labels.png` (class index per pixel), `<name>.geojson`
        /// (QuPath objects, image pixel coordinates) and `<name>.measurements.csv`.
        #[arg(long)]
        output: PathBuf,
        /// Resolution of the input images (µm/px); they are resampled to the model's. Without
        /// it, the file's own (SVS MPP, TIFF resolution) is used, else the model's is assumed.
        #[arg(long)]
        um_per_px: Option<f64>,
        /// Segment only this region, X,Y,WIDTH,HEIGHT in level-0 pixels.
        #[arg(long, value_parser = histoseg::slide::Region::parse)]
        region: Option<histoseg::slide::Region>,
        #[arg(long, default_value_t = 4)]
        batch: usize,
    },
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',').map(|p| p.trim().parse::<usize>().with_context(|| format!("'{p}' is not a number in '{s}'"))).collect()
}

fn parse_floats(s: &str) -> Result<Vec<f64>> {
    s.split(',').map(|p| p.trim().parse::<f64>().with_context(|| format!("'{p}' is not a number in '{s}'"))).collect()
}

fn parse_classes(s: &str) -> Result<Vec<ClassInfo>> {
    s.split(',')
        .map(|item| {
            let (name, hex) = item.split_once(':').with_context(|| format!("class '{item}' must be NAME:RRGGBB"))?;
            if hex.len() != 6 {
                bail!("colour '{hex}' is not hex RRGGBB");
            }
            let v = u32::from_str_radix(hex, 16).with_context(|| format!("colour '{hex}' is not hex RRGGBB"))?;
            Ok(ClassInfo { name: name.to_string(), color: [(v >> 16) as u8, (v >> 8) as u8, v as u8] })
        })
        .collect()
}

fn read_model(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load model file {}", path.display()))
}

fn bar(total: usize, what: &str, with_loss: bool) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    let template = if with_loss {
        "{msg} [{bar:30}] {pos}/{len} loss {prefix} {per_sec} eta {eta}"
    } else {
        "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"
    };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

fn image_files(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)
        .with_context(|| format!("cannot read folder {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "bmp" | "tif" | "tiff" | "svs")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no PNG, JPEG, BMP, TIFF or SVS images in {}", input.display());
    }
    Ok(files)
}

fn test_split(data_dir: &Path, dataset: Dataset, limit: Option<usize>) -> Result<Vec<data::Labeled>> {
    let mut test = data::load(data_dir, dataset, Split::Test)?;
    if let Some(n) = limit {
        test.truncate(n);
    }
    Ok(test)
}

fn run_eval(file: &ModelFile, dataset: Dataset, test: &[data::Labeled]) -> Result<EvalReport> {
    let segmenter = file.segmenter(&Device::flex())?;
    let pb = bar(test.len(), "evaluating", false);
    let report = evaluate(&segmenter, &file.manifest, dataset, test, |i| pb.set_position(i as u64))?;
    pb.finish_and_clear();
    Ok(report)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let data_dir = cli.data.clone().unwrap_or_else(histoseg::data_dir);
    match cli.command {
        Command::Pretrain { sources, um_per_px, arch, patch, batch, steps, lr, seed, checkpoint_every, out, resume } => {
            let working = parse_floats(&um_per_px)?;
            let unet = arch.config()?;
            anyhow::ensure!(patch % unet.size_multiple() == 0, "--patch must be a multiple of {}", unet.size_multiple());
            let images = data::load_unlabeled(&sources, &working)?;
            let provenance = format!(
                "histoseg pretrain: {} images from {} at {:?} µm/px, {steps} steps of {batch}x{patch}px, lr {lr}, seed {seed}",
                images.len() / working.len(),
                sources.iter().map(|s| format!("{}[{}*]", s.dir.display(), s.prefix)).collect::<Vec<_>>().join(" + "),
                working
            );
            println!("{provenance}");
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            let cfg = PretrainConfig { unet, patch, batch, steps, lr, seed, checkpoint_every, augment: Augment::DEFAULT, out: out.clone(), resume, provenance };
            let pb = bar(steps, "pretrain", true);
            let mut recent = Vec::new();
            let state = pretrain(&images, &cfg, |step, loss| {
                recent.push(loss);
                if recent.len() > 50 {
                    recent.remove(0);
                }
                pb.set_position(step as u64);
                pb.set_prefix(format!("{:.5}", recent.iter().sum::<f32>() / recent.len() as f32));
            })?;
            pb.finish();
            let first: f32 = state.losses.iter().take(100).sum::<f32>() / state.losses.len().clamp(1, 100) as f32;
            let last: f32 = state.losses.iter().rev().take(100).sum::<f32>() / state.losses.len().clamp(1, 100) as f32;
            println!("pretrained {} steps in {:.0} s; mean loss first 100 steps {first:.5}, last 100 {last:.5}; checkpoint {}", state.step, state.seconds, out.display());
        }
        Command::Train {
            dataset, pretrained, mode, arch, um_per_px, timestep, feature_levels, head_hidden, tile, overlap, steps, batch, lr, cache,
            label_fraction, val_fraction, seed, name, classes, out,
        } => {
            let unet_cfg = arch.config()?;
            let classes = parse_classes(&classes)?;
            let head = HeadConfig { feature_levels: parse_list(&feature_levels)?, hidden_channels: head_hidden, num_classes: classes.len() };
            let mut manifest = new_manifest(&name, classes, unet_cfg.clone(), head.clone());
            (manifest.tile_size, manifest.overlap, manifest.timestep, manifest.um_per_px) = (tile, overlap, timestep, um_per_px);
            manifest.validate()?;
            // split train into train/validation, then keep a fraction of the labels
            let mut all = data::load(&data_dir, dataset, Split::Train)?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for i in (1..all.len()).rev() {
                all.swap(i, data::below(&mut rng, i + 1));
            }
            let n_val = ((all.len() as f64 * val_fraction).round() as usize).min(all.len() - 1);
            let val: Vec<_> = all.drain(..n_val).collect();
            let n_train = ((all.len() as f64 * label_fraction).round() as usize).clamp(1, all.len());
            all.truncate(n_train);
            let train: Vec<_> = all.iter().map(|s| s.rescaled(um_per_px)).collect();
            println!("training on {} images ({} held out for validation), {mode:?} mode, t={timestep}, levels {:?}", train.len(), val.len(), head.feature_levels);
            let pretrained_path = (pretrained != "none").then(|| PathBuf::from(&pretrained));
            let cfg = FitConfig { mode, head, tile, timestep, noise_seed: manifest.noise_seed, steps, batch, lr, seed, cache_patches: cache, augment: Augment::DEFAULT };
            let started = Instant::now();
            let pb = bar(steps, "train", true);
            let net: HistoSegNet = fit(pretrained_path.as_deref(), &unet_cfg, &train, &cfg, |step, loss| {
                pb.set_position(step as u64);
                pb.set_prefix(format!("{loss:.4}"));
            })?;
            pb.finish();
            manifest.trained = true;
            manifest.provenance = format!(
                "histoseg train --dataset {dataset:?} --pretrained {pretrained} --mode {mode:?} --um-per-px {um_per_px} --timestep {timestep} --feature-levels {feature_levels} --steps {steps} --batch {batch} --lr {lr} --label-fraction {label_fraction} --seed {seed} ({} training images, {:.0} s)",
                train.len(),
                started.elapsed().as_secs_f64()
            )
            .to_lowercase();
            let file = ModelFile::from_bytes(&ModelFile::from_net(manifest, &net).to_bytes_with(Precision::F32))?;
            let val_report = run_eval(&file, dataset, &val)?;
            println!("validation ({} images): pixel Dice {:.4}", val.len(), val_report.pixel_dice);
            let mut file = file;
            file.manifest.metrics = serde_json::json!({ "validation_pixel_dice": val_report.pixel_dice });
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            std::fs::write(&out, file.to_bytes_with(Precision::F32)).with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
        }
        Command::Eval { model, dataset, limit, report } => {
            let file = read_model(&model)?;
            let test = test_split(&data_dir, dataset, limit)?;
            let r = run_eval(&file, dataset, &test)?;
            println!("{}", r.table());
            if let Some(path) = report {
                write_json(&path, &r)?;
            }
        }
        Command::Export { checkpoint, out, format: ExportFormat::Onnx, tile, reference, .. } => {
            export_onnx(&checkpoint, &out, tile, reference.as_deref())?;
        }
        Command::Export { checkpoint, out, format: ExportFormat::Histoseg, dataset, limit, report, .. } => {
            let dataset = dataset.context("--dataset is needed: the int8 export is compared with f32 on its test set")?;
            let f32_file = read_model(&checkpoint)?;
            let mut int8_file = ModelFile::from_bytes(&f32_file.to_bytes())?;
            let test = test_split(&data_dir, dataset, limit)?;
            let f = run_eval(&f32_file, dataset, &test)?;
            let q = run_eval(&int8_file, dataset, &test)?;
            let summary = serde_json::json!({
                "dataset": dataset,
                "images": test.len(),
                "f32": { "pixel_dice": f.pixel_dice, "pixel_iou": f.pixel_iou, "objects": f.objects },
                "int8": { "pixel_dice": q.pixel_dice, "pixel_iou": q.pixel_iou, "objects": q.objects },
                "dice_change": q.pixel_dice - f.pixel_dice,
            });
            int8_file.manifest.metrics = serde_json::json!({
                "test": summary,
                "validation_pixel_dice": f32_file.manifest.metrics.get("validation_pixel_dice"),
            });
            let bytes = int8_file.to_bytes();
            std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
            println!("int8 test set:\n{}", q.table());
            println!(
                "wrote {} ({:.2} MB; f32 checkpoint {:.2} MB); pixel Dice f32 {:.4} -> int8 {:.4} (change {:+.4})",
                out.display(),
                bytes.len() as f64 / 1e6,
                std::fs::metadata(&checkpoint)?.len() as f64 / 1e6,
                f.pixel_dice,
                q.pixel_dice,
                q.pixel_dice - f.pixel_dice
            );
            if let Some(path) = report {
                write_json(&path, &summary)?;
            }
        }
        Command::Init { out, name, classes, arch, feature_levels, tile_size, overlap, timestep, um_per_px, seed } => {
            let classes = parse_classes(&classes)?;
            let head = HeadConfig { feature_levels: parse_list(&feature_levels)?, hidden_channels: 32, num_classes: classes.len() };
            let mut manifest = new_manifest(&name, classes, arch.config()?, head);
            (manifest.tile_size, manifest.overlap, manifest.timestep, manifest.um_per_px) = (tile_size, overlap, timestep, um_per_px);
            manifest.description = "UNTRAINED: randomly initialised weights. Its masks mean nothing yet.".into();
            manifest.provenance = format!("histoseg init --name {name} --seed {seed} (no training)");
            manifest.validate()?;
            let device = Device::flex();
            device.seed(seed);
            let net = HistoSegNet::new(&manifest.unet, &manifest.head, &device);
            let file = ModelFile::from_net(manifest, &net);
            let bytes = file.to_bytes();
            std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {} ({} parameters, {} bytes)", out.display(), file.parameter_count(), bytes.len());
        }
        Command::Bench { model, tile, batch, iters } => bench(&model, tile, batch, iters)?,
        Command::Info { model } => {
            let file = read_model(&model)?;
            println!("{}", serde_json::to_string_pretty(&file.manifest)?);
            println!("parameters: {}", file.parameter_count());
        }
        Command::Segment { model, input, output, um_per_px, batch, region } => {
            let file = read_model(&model)?;
            let m = &file.manifest;
            let segmenter = file.segmenter(&Device::flex()).with_context(|| format!("cannot load model file {}", model.display()))?;
            std::fs::create_dir_all(&output).with_context(|| format!("cannot create {}", output.display()))?;
            let files = image_files(&input)?;
            let mut failures = 0;
            for path in &files {
                let started = Instant::now();
                let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
                let result = (|| -> Result<_> {
                    let mut slide = Slide::open(path)?;
                    // the flag wins over the file; without either the model's is assumed
                    let known_um = um_per_px.or(slide.um_per_px);
                    let level0_um = known_um.unwrap_or(m.um_per_px);
                    let wanted = region.unwrap_or(Region { x: 0, y: 0, width: slide.width(), height: slide.height() });
                    let (region, work) = read_for_model(&mut slide, wanted, level0_um, m.um_per_px)?;
                    let mut pb = None;
                    let seg = segment_image(&segmenter, &work, m.overlap, m.head.num_classes, batch, |done, total| {
                        pb.get_or_insert_with(|| bar(total, &name, false)).set_position(done as u64)
                    })?;
                    if let Some(pb) = pb {
                        pb.finish_and_clear();
                    }
                    Ok((labels_for_region(&seg, region), region, known_um, slide.note))
                })();
                match result {
                    Ok((labels, region, known_um, note)) => {
                        let (w, h) = (region.width, region.height);
                        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                        let objects = export::objects(&labels, w, h, m.classes.len());
                        let gj = export::geojson(&objects, &m.classes, [region.x as f64, region.y as f64]);
                        let table = export::measurements(&labels, w, h, &objects, &m.classes, [region.x, region.y], known_um);
                        let png = output.join(format!("{stem}.labels.png"));
                        std::fs::write(&png, export::label_png(&labels, w, h)).with_context(|| format!("cannot write {}", png.display()))?;
                        write_json(&output.join(format!("{stem}.geojson")), &gj)?;
                        let csv = output.join(format!("{stem}.measurements.csv"));
                        std::fs::write(&csv, table.to_csv()).with_context(|| format!("cannot write {}", csv.display()))?;
                        println!("{} -> {} (+ .geojson, .measurements.csv; {} objects, {:.2} s)", path.display(), png.display(), objects.len(), started.elapsed().as_secs_f64());
                        if let Some(note) = note {
                            println!("note: {}: {note}", path.display());
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        eprintln!("error: {}: {e:#}", path.display());
                    }
                }
            }
            if failures > 0 {
                bail!("{failures} of {} images could not be segmented", files.len());
            }
        }
    }
    Ok(())
}

/// `export --format onnx`: the graph, and optionally reference tiles to check it against.
fn export_onnx(checkpoint: &Path, out: &Path, tile: Option<usize>, reference: Option<&Path>) -> Result<()> {
    let file = read_model(checkpoint)?;
    let m = &file.manifest;
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
        ("source", checkpoint.display().to_string()),
    ];
    let onnx = histoseg::onnx::export(&segmenter, m.head.num_classes, &metadata);
    std::fs::write(out, &onnx.bytes).with_context(|| format!("cannot write {}", out.display()))?;
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
    let job = histoseg::segment::SegmentJob::new(&work, segmenter.tile_size, m.overlap, m.head.num_classes)?;
    let batch = job.next_batch(4).context("the reference image has no tiles")?;
    let probs = segmenter.run(batch.planar.clone(), batch.count);
    let stem = out.with_extension("");
    let write_f32 = |suffix: &str, values: &[f32]| -> Result<String> {
        let path = PathBuf::from(format!("{}.{suffix}.f32", stem.display()));
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
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

/// Peak resident memory of this process so far, from /proc (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `bench`: one tile size and batch size, real GlaS tiles, flex CPU.
fn bench(model: &Path, tile: Option<usize>, batch: usize, iters: usize) -> Result<()> {
    let file = read_model(model)?;
    let m = &file.manifest;
    let device = Device::flex();
    let tile = tile.unwrap_or(m.tile_size);
    let segmenter = file.segmenter_with_tile(&device, tile)?;
    let image_path = histoseg::data_dir().join("glas/images/testA_1.png");
    let image = histoseg::imageio::decode(&std::fs::read(&image_path).with_context(|| format!("cannot read {}", image_path.display()))?)?;
    let job = histoseg::segment::SegmentJob::new(&image, tile, 0, m.head.num_classes)?;
    // every tile of the image, repeated when the batch is larger than the image
    let tiles = job.next_batch(usize::MAX).context("no tiles")?;
    let per_tile = 3 * tile * tile;
    let planar: Vec<f32> = (0..batch).flat_map(|i| tiles.planar[(i % tiles.count) * per_tile..][..per_tile].iter().copied()).collect();
    let run = || segmenter.run(planar.clone(), batch);
    let started = Instant::now();
    run();
    let warmup_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    for _ in 0..iters {
        run();
    }
    let seconds = started.elapsed().as_secs_f64();
    let tiles = (iters * batch) as f64;
    let report = serde_json::json!({
        "engine": "histoseg flex",
        "tile": tile,
        "batch": batch,
        "iters": iters,
        "warmup_ms": warmup_ms,
        "ms_per_tile": seconds * 1e3 / tiles,
        "tiles_per_s": tiles / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    println!("{report}");
    Ok(())
}
