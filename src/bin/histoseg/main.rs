//! The histoseg command line tool: creates model files, inspects them, and segments folders of
//! images with the same model code, tiling and blending as the browser viewer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand};
use histoseg::imageio;
use histoseg::model::{HeadConfig, HistoSegNet, UNetConfig};
use histoseg::segment::segment_image;
use histoseg::weights::{ClassInfo, ModelFile, new_manifest};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "histoseg", version, about = "Diffusion-feature segmentation of H&E histology images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a model file with freshly initialised (untrained) weights.
    Init {
        /// Output model file.
        #[arg(long)]
        out: PathBuf,
        /// Model name shown in the viewer.
        #[arg(long, default_value = "glands")]
        name: String,
        /// Class names and colours, e.g. "background:000000,gland:00c853".
        #[arg(long, default_value = "background:000000,gland:00c853")]
        classes: String,
        #[arg(long, default_value_t = 32)]
        base_channels: usize,
        /// Comma-separated channel multipliers, one per resolution level.
        #[arg(long, default_value = "1,2,4")]
        channel_mults: String,
        #[arg(long, default_value_t = 1)]
        res_blocks: usize,
        /// Comma-separated decoder levels feeding the head (0 = full resolution).
        #[arg(long, default_value = "0,1")]
        feature_levels: String,
        #[arg(long, default_value_t = 128)]
        tile_size: usize,
        #[arg(long, default_value_t = 32)]
        overlap: usize,
        #[arg(long, default_value_t = 50)]
        timestep: usize,
        /// Working resolution in µm per pixel.
        #[arg(long, default_value_t = 0.62)]
        um_per_px: f64,
        /// Seed for the weight initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print a model file's manifest and size.
    Info { model: PathBuf },
    /// Segment every PNG/JPEG/BMP in a folder (or one file) and write label-mask PNGs.
    Segment {
        #[arg(long)]
        model: PathBuf,
        /// An image file or a folder of images.
        #[arg(long)]
        input: PathBuf,
        /// Output folder for `<name>.labels.png` (class index per pixel).
        #[arg(long)]
        output: PathBuf,
        /// Tiles per forward pass.
        #[arg(long, default_value_t = 4)]
        batch: usize,
    },
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',').map(|p| p.trim().parse::<usize>().with_context(|| format!("'{p}' is not a number in '{s}'"))).collect()
}

fn parse_classes(s: &str) -> Result<Vec<ClassInfo>> {
    s.split(',')
        .map(|item| {
            let (name, hex) = item.split_once(':').with_context(|| format!("class '{item}' must be NAME:RRGGBB"))?;
            let v = u32::from_str_radix(hex, 16).with_context(|| format!("colour '{hex}' is not hex RRGGBB"))?;
            if hex.len() != 6 {
                bail!("colour '{hex}' is not hex RRGGBB");
            }
            Ok(ClassInfo { name: name.to_string(), color: [(v >> 16) as u8, (v >> 8) as u8, v as u8] })
        })
        .collect()
}

fn read_model(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load model file {}", path.display()))
}

fn progress_bar(total: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
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
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "bmp"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no PNG, JPEG or BMP images in {}", input.display());
    }
    Ok(files)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Init {
            out,
            name,
            classes,
            base_channels,
            channel_mults,
            res_blocks,
            feature_levels,
            tile_size,
            overlap,
            timestep,
            um_per_px,
            seed,
        } => {
            let classes = parse_classes(&classes)?;
            let unet = UNetConfig { base_channels, channel_mults: parse_list(&channel_mults)?, res_blocks, ..UNetConfig::default() };
            let head = HeadConfig { feature_levels: parse_list(&feature_levels)?, hidden_channels: 32, num_classes: classes.len() };
            let mut manifest = new_manifest(&name, classes, unet, head);
            manifest.tile_size = tile_size;
            manifest.overlap = overlap;
            manifest.timestep = timestep;
            manifest.um_per_px = um_per_px;
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
        Command::Info { model } => {
            let file = read_model(&model)?;
            println!("{}", serde_json::to_string_pretty(&file.manifest)?);
            println!("parameters: {}", file.parameter_count());
        }
        Command::Segment { model, input, output, batch } => {
            let file = read_model(&model)?;
            let m = &file.manifest;
            let device = Device::flex();
            let segmenter = file.segmenter(&device)?;
            std::fs::create_dir_all(&output).with_context(|| format!("cannot create {}", output.display()))?;
            let files = image_files(&input)?;
            let mut failures = 0;
            for path in &files {
                let started = Instant::now();
                let result = std::fs::read(path)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| imageio::decode(&b).map_err(anyhow::Error::from))
                    .and_then(|img| {
                        let grid = histoseg::tiling::TileGrid::new(img.width, img.height, m.tile_size, m.overlap)?;
                        let pb = progress_bar(grid.tiles.len(), &path.file_name().unwrap_or_default().to_string_lossy());
                        let seg = segment_image(&segmenter, &img, m.overlap, m.head.num_classes, batch, |d, _| pb.set_position(d as u64))?;
                        pb.finish_and_clear();
                        Ok(seg)
                    });
                match result {
                    Ok(seg) => {
                        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                        let out = output.join(format!("{stem}.labels.png"));
                        image::GrayImage::from_raw(seg.width as u32, seg.height as u32, seg.labels)
                            .expect("label buffer size")
                            .save(&out)
                            .with_context(|| format!("cannot write {}", out.display()))?;
                        println!("{} -> {} ({:.2} s)", path.display(), out.display(), started.elapsed().as_secs_f64());
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
