//! `histoseg segment`: every image and slide of a folder (or one file) to a label PNG, a
//! QuPath-importable GeoJSON and a measurements CSV. A file that cannot be read is reported by
//! name and the others are still segmented; the exit status counts the failures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Args;
use histoseg::export;
use histoseg::imageio;
use histoseg::model::Segmenter;
use histoseg::png_stream::LabelPngStream;
use histoseg::segment::{MAX_LABEL_PIXELS, MAX_WORK_PIXELS, labels_for_region, read_for_model, segment_image};
use histoseg::slide::{Region, Slide, SlideError};
use histoseg::weights::{ClassInfo, Manifest};
use histoseg::whole_slide::{RowSource, SlideRows, StreamRow, WholeSlideJob, tissue_of};
use std::io::IsTerminal;

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
    /// Stream the segmentation: rows of tiles in order, tissue found on a thumbnail, memory
    /// bounded by a band of tiles whatever the slide's size. Regions beyond what is segmented
    /// in memory are always streamed.
    #[arg(long)]
    stream: bool,
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

/// What one file gave: its label PNG, object count and a note on the tiles run.
struct Done {
    png: PathBuf,
    streamed: bool,
    objects: usize,
    tiles: String,
    note: Option<String>,
}

fn tiles_note(tiles: usize, glass: usize) -> String {
    match glass {
        0 => format!("{tiles} tiles"),
        g => format!("{tiles} tiles, {g} of glass skipped"),
    }
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
        match segment_file(&a, &segmenter, m, path) {
            Ok(done) => {
                let how = if done.streamed { ", streamed" } else { "" };
                println!("{} -> {} (+ .geojson, .measurements.csv; {} objects, {}{how}, {:.2} s)", path.display(), done.png.display(), done.objects, done.tiles, started.elapsed().as_secs_f64());
                if let Some(note) = done.note {
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

/// Segments one file into the output folder: in memory, or streamed when asked or when the
/// region is larger than a segmentation held in memory.
fn segment_file(a: &SegmentArgs, segmenter: &Segmenter, m: &Manifest, path: &Path) -> Result<Done> {
    let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
    let stem = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let mut slide = Slide::open(path)?;
    // the flag wins over the file; without either the model's is assumed
    let known_um = a.um_per_px.or(slide.um_per_px);
    let level0_um = known_um.unwrap_or(m.um_per_px);
    let wanted = a.region.unwrap_or(Region { x: 0, y: 0, width: slide.width(), height: slide.height() });
    let region = wanted.clamp_to(slide.width(), slide.height()).ok_or(SlideError::OutsideImage(slide.width(), slide.height()))?;
    let (w, h) = imageio::rescaled_size(region.width, region.height, level0_um, m.um_per_px);
    let out = Output { dir: &a.output, stem: &stem, region, known_um, classes: &m.classes };
    let note = slide.note.clone();
    if a.stream || w * h > MAX_WORK_PIXELS || region.width * region.height > MAX_LABEL_PIXELS {
        let tissue = tissue_of(&mut slide, region, level0_um, m)?;
        let rows = SlideRows { region, level0_um, model_um: m.um_per_px };
        let mut source = rows.on(&mut slide);
        let job = WholeSlideJob::new(w, h, (region.width, region.height), known_um.unwrap_or(m.um_per_px), m, segmenter.tile_size, tissue)?.with_tta(a.tta);
        let (png, objects, tiles) = streamed(job, &mut source, segmenter, a.batch, &name, &out)?;
        return Ok(Done { png, streamed: true, objects, tiles, note });
    }
    let (region, work) = read_for_model(&mut slide, region, level0_um, m.um_per_px)?;
    let mut pb = None;
    let seg = segment_image(segmenter, &work, m, a.batch, a.tta, |done, total| pb.get_or_insert_with(|| bar(total, &name)).set_position(done as u64))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let tiles = tiles_note(seg.tiles, seg.glass_tiles);
    let raw = labels_for_region(&seg, region);
    let (lw, lh) = (region.width, region.height);
    let instances = m.objects_of(&raw, lw, lh, known_um.unwrap_or(m.um_per_px));
    let objects = export::objects(&instances);
    let png = out.path("labels.png");
    write_file(&png, &histoseg::png_stream::label_png(&instances.labels, lw, lh)?)?;
    out.write_tables(&objects, &histoseg::overlay::class_areas(&instances.labels, m.classes.len()))?;
    Ok(Done { png, streamed: false, objects: objects.len(), tiles, note })
}

/// Where one file's outputs go and what they describe.
struct Output<'a> {
    dir: &'a Path,
    stem: &'a str,
    region: Region,
    known_um: Option<f64>,
    classes: &'a [ClassInfo],
}

impl Output<'_> {
    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.stem))
    }

    /// The GeoJSON of `objects` and the measurements CSV, from per-class pixel counts.
    fn write_tables(&self, objects: &[export::Object], areas: &[u64]) -> Result<()> {
        let r = self.region;
        let gj = export::geojson(objects, self.classes, [r.x as f64, r.y as f64]);
        let table = export::measurements_of_areas(areas, r.width, r.height, objects, self.classes, [r.x, r.y], self.known_um);
        write_json(&self.path("geojson"), &gj)?;
        write_file(&self.path("measurements.csv"), table.to_csv().as_bytes())
    }
}

/// Runs a streamed job, writing the label PNG a row at a time as rows are final, then the
/// tables. Memory stays that of a band of tiles and the objects still open.
fn streamed(mut job: WholeSlideJob, source: &mut dyn RowSource, segmenter: &Segmenter, batch: usize, name: &str, out: &Output) -> Result<(PathBuf, usize, String)> {
    let path = out.path("labels.png");
    // the encoder writes whole compressed chunks, so the file needs no buffer of its own
    let file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut png = LabelPngStream::new(file, out.region.width, out.region.height)?;
    let total = job.total_tiles();
    println!("{name}: streaming {}x{} pixels in {total} tiles ({} of glass skipped)", out.region.width, out.region.height, job.glass_tiles());
    // a bar on a terminal, else a line every ten seconds (for runs with their output in a log)
    let pb = std::io::stderr().is_terminal().then(|| bar(total, name));
    let (started, mut last_line) = (Instant::now(), None::<Instant>);
    while let Some(mut b) = job.take_batch(source, batch)? {
        let probabilities = segmenter.run(std::mem::take(&mut b.planar), b.count);
        // each final row is written as it comes (a slide's worth of glass rows can come at once)
        let mut written = Ok(());
        job.accept_with(&b, &probabilities, &mut |row| {
            if let (StreamRow::Final(row), Ok(())) = (row, &written) {
                written = png.write_rows(&row);
            }
        });
        written.with_context(|| format!("cannot write {}", path.display()))?;
        let done = job.tiles_done();
        match &pb {
            Some(pb) => pb.set_position(done as u64),
            None if last_line.is_none_or(|t| t.elapsed().as_secs_f64() >= 10.0) || done == total => {
                last_line = Some(Instant::now());
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                println!("{name}: {done} of {total} tiles, {rate:.2} tiles/s, {:.1} min left", (total - done) as f64 / rate.max(1e-9) / 60.0);
            }
            None => {}
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let rest = || -> std::io::Result<()> {
        for row in job.take_label_rows() {
            png.write_rows(&row)?;
        }
        png.finish()
    };
    rest().with_context(|| format!("cannot write {}", path.display()))?;
    let objects = job.objects();
    out.write_tables(&objects, job.class_areas())?;
    Ok((path, objects.len(), tiles_note(job.total_tiles(), job.glass_tiles())))
}
