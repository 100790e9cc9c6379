//! `histoseg train --strokes S --image I --pretrained M`: the viewer's "Train your own" mode on
//! the command line. The strokes painted in the page (its GeoJSON) train the same pixel head on
//! the frozen UNet of M, with the same updates, settings and seed, so the model predicts what
//! the page's did; only the painted tiles of the image or slide are read.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use histoseg::few_shot::{FEATURE_LEVELS, PaintedImage, TrainSettings, feature_segmenter, few_shot_model, replay};
use histoseg::slide::Slide;
use histoseg::strokes::StrokeSet;

use crate::args::read_model;

pub fn run(strokes_path: &Path, image: &Path, pretrained: &str, image_um: Option<f64>, name: &str, out: &Path, seed: u64) -> Result<()> {
    let text = std::fs::read_to_string(strokes_path).with_context(|| format!("cannot read {}", strokes_path.display()))?;
    let strokes = StrokeSet::from_geojson(&text).with_context(|| format!("{} holds no usable strokes", strokes_path.display()))?;
    let base = read_model(Path::new(pretrained))?;
    let m = &base.manifest;
    let device = Device::flex();
    let segmenter = feature_segmenter(&base, FEATURE_LEVELS, &device).with_context(|| format!("cannot load model file {pretrained}"))?;
    let mut slide = Slide::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let level0_um = image_um.or(slide.um_per_px).unwrap_or(m.um_per_px);
    let mut painted = PaintedImage::for_slide(&slide, level0_um, m.um_per_px, m.tile_size, m.overlap)?;
    let channels = m.unet.feature_channels(FEATURE_LEVELS);
    let settings = TrainSettings::default();
    let started = Instant::now();
    println!(
        "{} strokes of {} classes ({}) on {}, {} updates of {} steps, features of the frozen UNet of {pretrained}",
        strokes.strokes.len(),
        strokes.classes.len(),
        strokes.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        image.display(),
        strokes.update_points().len(),
        settings.steps
    );
    let trainer = replay(&strokes, &mut painted, &segmenter, channels, &settings, seed, |p, i| p.input_from_slide(&mut slide, level0_um, m.um_per_px, i), |done, total| {
        if done == total || done % 10 == 0 {
            println!("update {done}/{total}, {:.1} s", started.elapsed().as_secs_f64());
        }
    })?;
    let image_name = image.file_name().unwrap_or_default().to_string_lossy();
    let strokes = StrokeSet { image: if strokes.image.is_empty() { image_name.to_string() } else { strokes.image.clone() }, ..strokes };
    let provenance = format!("histoseg train --strokes {} --image {image_name} --pretrained {pretrained} --seed {seed} ({} painted pixel tiles, {:?})", strokes_path.display(), painted.bytes_held() / (channels * m.tile_size * m.tile_size * 4), settings);
    let file = few_shot_model(&base, trainer.head(), FEATURE_LEVELS, &strokes, name, &provenance, &device)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, file.to_bytes()).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} classes, {:.1} s)", out.display(), file.manifest.classes.len(), started.elapsed().as_secs_f64());
    Ok(())
}
