//! `histoseg segment`: every image and slide of a folder (or one file) to a label PNG, a
//! QuPath-importable GeoJSON and a measurements CSV. A file that cannot be read is reported by
//! name and the others are still segmented; the exit status counts the failures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Args;
use histoseg::export;
use histoseg::segment::{labels_for_region, read_for_model, segment_image};
use histoseg::slide::{Region, Slide};

use crate::args::{bar, read_model, write_file, write_json};

#[derive(Args)]
pub struct SegmentArgs {
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
    #[arg(long, value_parser = Region::parse)]
    region: Option<Region>,
    /// Test-time augmentation: run every tile in the eight flips and 90° rotations of the square
    /// and average them (eight times the work; the page's "best" quality).
    #[arg(long)]
    tta: bool,
    #[arg(long, default_value_t = 4)]
    batch: usize,
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

pub fn run(a: SegmentArgs) -> Result<()> {
    let file = read_model(&a.model)?;
    let m = &file.manifest;
    let segmenter = file.segmenter(&Device::flex()).with_context(|| format!("cannot load model file {}", a.model.display()))?;
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    let files = image_files(&a.input)?;
    let mut failures = 0;
    for path in &files {
        let started = Instant::now();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let result = (|| -> Result<_> {
            let mut slide = Slide::open(path)?;
            // the flag wins over the file; without either the model's is assumed
            let known_um = a.um_per_px.or(slide.um_per_px);
            let level0_um = known_um.unwrap_or(m.um_per_px);
            let wanted = a.region.unwrap_or(Region { x: 0, y: 0, width: slide.width(), height: slide.height() });
            let (region, work) = read_for_model(&mut slide, wanted, level0_um, m.um_per_px)?;
            let mut pb = None;
            let seg = segment_image(&segmenter, &work, m, a.batch, a.tta, |done, total| {
                pb.get_or_insert_with(|| bar(total, &name)).set_position(done as u64)
            })?;
            if let Some(pb) = pb {
                pb.finish_and_clear();
            }
            let tiles = match seg.glass_tiles {
                0 => format!("{} tiles", seg.tiles),
                g => format!("{} tiles, {g} of glass skipped", seg.tiles),
            };
            Ok((labels_for_region(&seg, region), region, known_um, slide.note, tiles))
        })();
        match result {
            Ok((raw, region, known_um, note, tiles)) => {
                let (w, h) = (region.width, region.height);
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let instances = m.objects_of(&raw, w, h, known_um.unwrap_or(m.um_per_px));
                let labels = &instances.labels;
                let objects = export::objects(&instances);
                let gj = export::geojson(&objects, &m.classes, [region.x as f64, region.y as f64]);
                let table = export::measurements(labels, w, h, &objects, &m.classes, [region.x, region.y], known_um);
                let png = a.output.join(format!("{stem}.labels.png"));
                write_file(&png, &export::label_png(labels, w, h))?;
                write_json(&a.output.join(format!("{stem}.geojson")), &gj)?;
                write_file(&a.output.join(format!("{stem}.measurements.csv")), table.to_csv().as_bytes())?;
                println!("{} -> {} (+ .geojson, .measurements.csv; {} objects, {tiles}, {:.2} s)", path.display(), png.display(), objects.len(), started.elapsed().as_secs_f64());
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
    Ok(())
}
