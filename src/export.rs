//! Exports of a label mask: polygons as a GeoJSON FeatureCollection that QuPath imports
//! ("File > Import objects"), in image pixel coordinates. Pure Rust, no platform code.
//!
//! Each 8-connected region of a class becomes one Polygon feature: its outer border is the first
//! ring and the borders of its holes follow. Ring vertices are the centres of border pixels; a
//! region of one or two pixels gets the square around its pixels so that every ring is valid.

use image::GrayImage;
use imageproc::contours::{BorderType, find_contours};
use serde_json::{Value, json};

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

/// Polygons of every non-background class of `labels` (`width` x `height`, class per pixel).
/// Returns the rings of each polygon (outer first) with its class index.
pub fn class_polygons(labels: &[u8], width: usize, height: usize, classes: usize) -> Vec<(u8, Vec<Vec<[f64; 2]>>)> {
    let mut out = Vec::new();
    for class in 1..classes as u8 {
        // a one-pixel background frame: the contour tracer ignores regions touching the border
        let mut mask = GrayImage::new(width as u32 + 2, height as u32 + 2);
        for (i, &l) in labels.iter().enumerate() {
            if l == class {
                mask.put_pixel((i % width) as u32 + 1, (i / width) as u32 + 1, image::Luma([255]));
            }
        }
        let contours = find_contours::<i32>(&mask);
        for (i, c) in contours.iter().enumerate() {
            if c.border_type != BorderType::Outer {
                continue;
            }
            let pts = |c: &imageproc::contours::Contour<i32>| c.points.iter().map(|p| (p.x as f64 - 1.0, p.y as f64 - 1.0)).collect::<Vec<_>>();
            let mut rings = vec![ring(&pts(c))];
            for h in contours.iter().filter(|h| h.border_type == BorderType::Hole && h.parent == Some(i)) {
                rings.push(ring(&pts(h)));
            }
            out.push((class, rings));
        }
    }
    out
}

/// A GeoJSON FeatureCollection of the label mask's regions, with QuPath classifications.
pub fn geojson(labels: &[u8], width: usize, height: usize, classes: &[ClassInfo]) -> Value {
    let features: Vec<Value> = class_polygons(labels, width, height, classes.len())
        .into_iter()
        .map(|(class, rings)| {
            let info = &classes[class as usize];
            json!({
                "type": "Feature",
                "geometry": { "type": "Polygon", "coordinates": rings },
                "properties": {
                    "objectType": "annotation",
                    "classification": { "name": info.name, "color": info.color },
                }
            })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features })
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
        let gj = geojson(&labels, 6, 5, &classes);
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
