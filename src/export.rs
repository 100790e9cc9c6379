//! Exports of a label mask, all generated locally: polygons as a GeoJSON FeatureCollection that
//! QuPath imports ("File > Import objects") in image pixel coordinates, per-class areas and
//! per-object morphology (CSV/JSON), the label PNG and the overlay PNG. Pure Rust, no platform code.
//!
//! Each object of [`crate::postprocess`] (8-connected, split at boundaries by instance-aware
//! models) becomes one Polygon feature: its outer border is the first ring and the borders of its
//! holes follow. Ring vertices are the centres of border pixels; a
//! region of one or two pixels gets the square around its pixels so that every ring is valid.

use image::GrayImage;
use imageproc::contours::{BorderType, find_contours};
use serde_json::{Value, json};

use crate::postprocess::Instances;
use crate::weights::ClassInfo;

fn ring(points: &[(f64, f64)]) -> Vec<[f64; 2]> {
    let mut distinct: Vec<(f64, f64)> = points.to_vec();
    distinct.dedup();
    if distinct.len() < 3 {
        let (x0, x1) = distinct.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = distinct.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        distinct = vec![(x0 - 0.5, y0 - 0.5), (x1 + 0.5, y0 - 0.5), (x1 + 0.5, y1 + 0.5), (x0 - 0.5, y1 + 0.5)];
    }
    let mut r: Vec<[f64; 2]> = distinct.iter().map(|&(x, y)| [x, y]).collect();
    r.push(r[0]);
    r
}

/// One object of a segmentation (see [`crate::postprocess`]): its polygon and basic morphology,
/// in the mask's pixels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Object {
    pub class: u8,
    /// Outer ring first, then one ring per hole; closed, vertices at border-pixel centres.
    pub rings: Vec<Vec<[f64; 2]>>,
    pub area_px: u64,
    /// Length of the outer ring.
    pub perimeter_px: f64,
    /// Mean pixel position.
    pub centroid: [f64; 2],
    /// `[x0, y0, x1, y1]`, inclusive.
    pub bbox: [usize; 4],
}

fn ring_length(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2).map(|w| (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1])).sum()
}

/// Every object of `instances`, in id order: one polygon each, traced in the object's own
/// bounding box, so touching objects stay separate polygons. An object in several pieces (rare:
/// hole filling and the watershed keep objects connected) is drawn by its largest piece.
pub fn objects(instances: &Instances) -> Vec<Object> {
    traced(instances, [0, 0], |_| true).into_iter().map(|(_, o)| o).collect()
}

/// The objects of `instances` whose id `keep` accepts, in id order, each with its first pixel
/// `(y, x)` in scan order. `instances` is a crop whose top-left pixel lies at `origin` in the
/// image: coordinates, centroids and boxes come out in image pixels, computed as for the whole
/// image (sums of image coordinates), so a crop gives the same objects as the image.
pub(crate) fn traced(instances: &Instances, origin: [usize; 2], keep: impl Fn(u32) -> bool) -> Vec<((usize, usize), Object)> {
    let (width, n) = (instances.width, instances.count());
    let mut stats = vec![(0u64, 0f64, 0f64, [usize::MAX, usize::MAX, 0, 0], (0, 0)); n + 1];
    for (i, &id) in instances.ids.iter().enumerate() {
        if id == 0 || !keep(id) {
            continue;
        }
        let (px, py) = (i % width + origin[0], i / width + origin[1]);
        let s = &mut stats[id as usize];
        if s.0 == 0 {
            s.4 = (py, px);
        }
        s.0 += 1;
        s.1 += px as f64;
        s.2 += py as f64;
        s.3 = [s.3[0].min(px), s.3[1].min(py), s.3[2].max(px), s.3[3].max(py)];
    }
    let mut out = Vec::with_capacity(n);
    for id in 1..=n {
        let (area, sx, sy, bbox, first) = stats[id];
        if area == 0 {
            continue;
        }
        // the object's box with a one-pixel background frame (the tracer ignores the border)
        let (bw, bh) = (bbox[2] - bbox[0] + 1, bbox[3] - bbox[1] + 1);
        let (lx, ly) = (bbox[0] - origin[0], bbox[1] - origin[1]);
        let mut mask = GrayImage::new(bw as u32 + 2, bh as u32 + 2);
        for y in 0..bh {
            for x in 0..bw {
                if instances.ids[(ly + y) * width + lx + x] == id as u32 {
                    mask.put_pixel(x as u32 + 1, y as u32 + 1, image::Luma([255]));
                }
            }
        }
        let contours = find_contours::<i32>(&mask);
        let pts = |c: &imageproc::contours::Contour<i32>| {
            c.points.iter().map(|p| ((p.x - 1) as f64 + bbox[0] as f64, (p.y - 1) as f64 + bbox[1] as f64)).collect::<Vec<_>>()
        };
        let Some((outer, c)) = contours.iter().enumerate().filter(|(_, c)| c.border_type == BorderType::Outer).max_by_key(|(_, c)| c.points.len()) else {
            continue;
        };
        let mut rings = vec![ring(&pts(c))];
        for h in contours.iter().filter(|h| h.border_type == BorderType::Hole && h.parent == Some(outer)) {
            rings.push(ring(&pts(h)));
        }
        let perimeter_px = ring_length(&rings[0]);
        let class = instances.classes[id - 1];
        out.push((first, Object { class, rings, area_px: area, perimeter_px, centroid: [sx / area as f64, sy / area as f64], bbox }));
    }
    out
}

/// A GeoJSON FeatureCollection of the objects, with QuPath classifications and measurements.
/// Coordinates are the mask's pixels plus `offset` (the region's origin in the image), so they
/// are image pixel coordinates.
pub fn geojson(objects: &[Object], classes: &[ClassInfo], offset: [f64; 2]) -> Value {
    let features: Vec<Value> = objects
        .iter()
        .map(|o| {
            let info = &classes[o.class as usize];
            let rings: Vec<Vec<[f64; 2]>> = o.rings.iter().map(|r| r.iter().map(|p| [p[0] + offset[0], p[1] + offset[1]]).collect()).collect();
            json!({
                "type": "Feature",
                "geometry": { "type": "Polygon", "coordinates": rings },
                "properties": {
                    "objectType": "annotation",
                    "classification": { "name": info.name, "color": info.color },
                    "measurements": { "Area px^2": o.area_px, "Perimeter px": o.perimeter_px },
                }
            })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features })
}

/// Per-class totals of a segmentation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassSummary {
    pub class: String,
    pub area_px: u64,
    pub area_um2: Option<f64>,
    /// Share of the segmented region's pixels.
    pub fraction: f64,
    pub objects: usize,
}

/// One object's row in the measurement table, in image pixel coordinates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObjectRow {
    pub id: usize,
    pub class: String,
    pub area_px: u64,
    pub area_um2: Option<f64>,
    pub perimeter_px: f64,
    pub perimeter_um: Option<f64>,
    pub centroid_x: f64,
    pub centroid_y: f64,
}

/// Areas, counts and per-object morphology; areas in µm² when the resolution is known.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measurements {
    pub um_per_px: Option<f64>,
    pub region: [usize; 4],
    pub classes: Vec<ClassSummary>,
    pub objects: Vec<ObjectRow>,
}

/// Measures a segmentation of the region at `offset` (`width` x `height` labels, image pixels).
pub fn measurements(labels: &[u8], width: usize, height: usize, objects: &[Object], classes: &[ClassInfo], offset: [usize; 2], um_per_px: Option<f64>) -> Measurements {
    let areas = crate::overlay::class_areas(labels, classes.len());
    measurements_of_areas(&areas, width, height, objects, classes, offset, um_per_px)
}

/// [`measurements`] from per-class pixel counts (a whole slide's, counted as its labels stream).
pub fn measurements_of_areas(areas: &[u64], width: usize, height: usize, objects: &[Object], classes: &[ClassInfo], offset: [usize; 2], um_per_px: Option<f64>) -> Measurements {
    let um2 = |px: f64| um_per_px.map(|u| px * u * u);
    let total = (width * height).max(1) as f64;
    let summaries = classes
        .iter()
        .enumerate()
        .map(|(i, c)| ClassSummary {
            class: c.name.clone(),
            area_px: areas[i],
            area_um2: um2(areas[i] as f64),
            fraction: areas[i] as f64 / total,
            objects: objects.iter().filter(|o| o.class as usize == i).count(),
        })
        .collect();
    let rows = objects
        .iter()
        .enumerate()
        .map(|(i, o)| ObjectRow {
            id: i + 1,
            class: classes[o.class as usize].name.clone(),
            area_px: o.area_px,
            area_um2: um2(o.area_px as f64),
            perimeter_px: o.perimeter_px,
            perimeter_um: um_per_px.map(|u| o.perimeter_px * u),
            centroid_x: o.centroid[0] + offset[0] as f64,
            centroid_y: o.centroid[1] + offset[1] as f64,
        })
        .collect();
    Measurements { um_per_px, region: [offset[0], offset[1], width, height], classes: summaries, objects: rows }
}

impl Measurements {
    /// The per-class summary followed by the object table, as CSV.
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
        let mut s = String::from("class,area_px,area_um2,fraction,objects\n");
        for c in &self.classes {
            s += &format!("{},{},{},{:.5},{}\n", c.class, c.area_px, opt(c.area_um2), c.fraction, c.objects);
        }
        s += "\nid,class,area_px,area_um2,perimeter_px,perimeter_um,centroid_x,centroid_y\n";
        for o in &self.objects {
            s += &format!("{},{},{},{},{:.2},{},{:.1},{:.1}\n", o.id, o.class, o.area_px, opt(o.area_um2), o.perimeter_px, opt(o.perimeter_um), o.centroid_x, o.centroid_y);
        }
        s
    }
}

/// An RGB image with the overlay `rgba` blended on at `opacity`, as a PNG.
pub fn overlay_png(image: &crate::imageio::RgbImage, rgba: &[u8], opacity: f32) -> Vec<u8> {
    let a = opacity.clamp(0.0, 1.0);
    let pixels: Vec<u8> = image
        .pixels
        .chunks_exact(3)
        .zip(rgba.chunks_exact(4))
        .flat_map(|(p, o)| {
            let w = a * o[3] as f32 / 255.0;
            [0, 1, 2].map(|c| (p[c] as f32 * (1.0 - w) + o[c] as f32 * w).round() as u8)
        })
        .collect();
    let img = image::RgbImage::from_raw(image.width as u32, image.height as u32, pixels).expect("RGB buffer size");
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("PNG encoding to memory");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polygon_per_region_with_holes_and_tiny_regions() {
        // 6x5: a ring-shaped region of class 1 with a hole, and a single pixel of class 1
        #[rustfmt::skip]
        let labels: Vec<u8> = vec![
            1, 1, 1, 0, 0, 0,
            1, 0, 1, 0, 0, 0,
            1, 1, 1, 0, 0, 0,
            0, 0, 0, 0, 0, 1,
            0, 0, 0, 0, 0, 0,
        ];
        let classes = vec![ClassInfo { name: "bg".into(), color: [0, 0, 0] }, ClassInfo { name: "gland".into(), color: [0, 200, 80] }];
        let inst = crate::postprocess::apply(&labels, 6, 5, &crate::postprocess::PostprocessConfig::default(), 1.0);
        let objs = objects(&inst);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs.iter().map(|o| o.area_px).collect::<Vec<_>>(), vec![8, 1]);
        assert_eq!(objs[0].bbox, [0, 0, 2, 2]);
        assert_eq!(objs[0].centroid, [1.0, 1.0]);
        assert!((objs[0].perimeter_px - 8.0).abs() < 1e-9, "ring through the border-pixel centres: {}", objs[0].perimeter_px);
        let m = measurements(&labels, 6, 5, &objs, &classes, [100, 200], Some(0.5));
        assert_eq!(m.classes[1].area_px, 9);
        assert_eq!(m.classes[1].area_um2, Some(2.25));
        assert_eq!(m.classes[1].objects, 2);
        assert_eq!((m.objects[1].centroid_x, m.objects[1].centroid_y), (105.0, 203.0));
        assert!(m.to_csv().contains("\n2,gland,1,0.25,4.00,2.00,105.0,203.0\n"), "{}", m.to_csv());
        let gj = geojson(&objs, &classes, [0.0, 0.0]);
        let features = gj["features"].as_array().unwrap();
        assert_eq!(features.len(), 2);
        let rings_of = |f: &Value| f["geometry"]["coordinates"].as_array().unwrap().len();
        let mut ring_counts: Vec<usize> = features.iter().map(rings_of).collect();
        ring_counts.sort();
        assert_eq!(ring_counts, vec![1, 2], "the ring has a hole, the pixel has none");
        for f in features {
            assert_eq!(f["properties"]["classification"]["name"], "gland");
            for r in f["geometry"]["coordinates"].as_array().unwrap() {
                let r = r.as_array().unwrap();
                assert!(r.len() >= 4, "a valid linear ring");
                assert_eq!(r.first(), r.last(), "rings are closed");
                for p in r {
                    let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                    assert!((-0.5..=5.5).contains(&x) && (-0.5..=4.5).contains(&y));
                }
            }
        }
    }
}
