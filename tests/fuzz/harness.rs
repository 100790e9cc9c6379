//! What each fuzz target does with its input. Shared by the cargo-fuzz targets
//! (`tests/fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays the kept
//! corpus (`tests/fuzz/corpus/<target>/`) on every `cargo test`.
//!
//! Every function must return normally for every input: a panic, an abort, a hang or running out
//! of memory is a bug in histoseg. Where an input is accepted, the results are checked for the
//! properties every caller relies on.

#![allow(dead_code)] // each fuzz target uses one of these functions

use burn::prelude::Device;
use histoseg::export;
use histoseg::slide::Slide;
use histoseg::weights::{ClassInfo, ModelFile};

/// Opens bytes the way the viewer and the CLI do (PNG, JPEG, BMP, TIFF, BigTIFF, SVS) and reads
/// regions of every level: the corner, the middle and across the far edge.
pub fn open_image(data: &[u8]) {
    let mut slide = match Slide::from_bytes(data.to_vec()) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(slide.width() > 0 && slide.height() > 0, "an opened image has pixels");
    for level in 0..slide.levels.len() {
        let l = slide.levels[level];
        for (x, y) in [(0, 0), (l.width / 2, l.height / 2), (l.width.saturating_sub(17), l.height.saturating_sub(17))] {
            if let Ok(region) = slide.read_region(level, x, y, 33, 33) {
                assert_eq!((region.width, region.height, region.pixels.len()), (33, 33, 33 * 33 * 3));
            }
        }
    }
}

/// Loads a model file and, when it parses, builds the network and the inference pipeline. The
/// first input byte chooses whether to repair the trailing CRC-32 first, so that mutations reach
/// the parser and the architecture checks rather than stopping at the checksum.
pub fn model_file(data: &[u8]) {
    let Some((&flag, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flag & 1 == 1 && bytes.len() >= 4 {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }
    let file = match ModelFile::from_bytes(&bytes) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // every accepted manifest describes a network small enough to build
    if let Ok(seg) = file.segmenter(&Device::flex()) {
        assert_eq!(seg.tile_size, file.manifest.tile_size);
    }
}

/// A label mask from the input (`width`, `height`, class count, then one byte per pixel), through
/// every export: objects, GeoJSON, measurements, the label PNG and the overlay.
pub fn export(data: &[u8]) {
    let [w, h, c, pixels @ ..] = data else { return };
    let (width, height) = (*w as usize % 48 + 1, *h as usize % 48 + 1);
    let classes = *c as usize % 5 + 2;
    let labels: Vec<u8> = (0..width * height).map(|i| pixels.get(i).map_or(0, |&v| v % classes as u8)).collect();
    let infos: Vec<ClassInfo> = (0..classes).map(|i| ClassInfo { name: format!("class {i}"), color: [i as u8 * 40, 200, 90] }).collect();

    // every other input as an instance-aware model's labels: the last class marks boundaries
    let boundary_class = (classes >= 3 && *w % 2 == 1).then(|| classes as u8 - 1);
    let config = histoseg::postprocess::PostprocessConfig { boundary_class, ..Default::default() };
    let instances = histoseg::postprocess::apply(&labels, width, height, &config, 1.0);
    let objects = export::objects(&instances);
    let labels = instances.labels.clone();
    assert!(boundary_class.is_none_or(|b| !labels.contains(&b)), "no pixel keeps the boundary class");
    let labelled = labels.iter().filter(|&&l| l != 0).count() as u64;
    assert_eq!(objects.iter().map(|o| o.area_px).sum::<u64>(), labelled, "every labelled pixel is in exactly one object");
    for o in &objects {
        assert!(o.class > 0 && (o.class as usize) < classes && Some(o.class) != boundary_class);
        for ring in &o.rings {
            assert!(ring.len() >= 4 && ring.first() == ring.last(), "rings are closed polygons: {ring:?}");
            assert!(ring.iter().all(|p| p[0] >= -0.5 && p[1] >= -0.5 && p[0] <= width as f64 - 0.5 && p[1] <= height as f64 - 0.5));
        }
    }

    let geojson = export::geojson(&objects, &infos, [10.0, 20.0]).to_string();
    let parsed: serde_json::Value = serde_json::from_str(&geojson).expect("the GeoJSON is valid JSON");
    assert_eq!(parsed["type"], "FeatureCollection");
    assert_eq!(parsed["features"].as_array().map(|f| f.len()), Some(objects.len()));

    let table = export::measurements(&labels, width, height, &objects, &infos, [10, 20], Some(0.5));
    assert_eq!(table.to_csv().lines().count(), classes + objects.len() + 3, "two headers, a blank line, a row per class and per object");

    let png = histoseg::png_stream::label_png(&labels, width, height).expect("a mask in memory encodes");
    let back = image::load_from_memory(&png).expect("the label PNG decodes").to_luma8();
    assert_eq!((back.width() as usize, back.height() as usize), (width, height));
    assert_eq!(back.into_raw(), labels, "the label PNG holds the labels exactly");

    let colors: Vec<[u8; 3]> = infos.iter().map(|c| c.color).collect();
    let visible = vec![true; classes];
    for mode in [histoseg::overlay::Mode::Fill, histoseg::overlay::Mode::Contour] {
        assert_eq!(histoseg::overlay::render(&labels, width, height, &colors, &visible, mode).len(), width * height * 4);
    }
}
