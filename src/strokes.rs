//! Painted strokes: what a user draws to teach a model their own classes (issue 15), kept as
//! brush paths in level-0 pixel coordinates, never as pixels.
//!
//! - GeoJSON in and out, in the form QuPath opens: one `LineString` feature per stroke, with a
//!   `classification` of name and colour, and the brush radius under `histoseg`. The collection
//!   records the class list (in model order, background first) and the image's name.
//! - An eraser stroke clears what earlier strokes painted under it.
//! - [`StrokeSet::rasterize`] paints the strokes onto any pixel grid (a tile at the model's
//!   working resolution), later strokes over earlier ones, for [`crate::few_shot`].

use serde_json::{Value, json};

use crate::weights::ClassInfo;

#[derive(Debug, Clone, PartialEq)]
pub struct Stroke {
    /// The class painted, or `None` for the eraser.
    pub class: Option<u8>,
    /// Brush radius in level-0 pixels.
    pub radius: f64,
    /// The brush path in level-0 pixels; one point is a dab.
    pub points: Vec<[f64; 2]>,
}

impl Stroke {
    /// Level-0 bounding box `(x0, y0, x1, y1)` of the stroke, brush included.
    pub fn bounds(&self) -> [f64; 4] {
        let r = self.radius;
        self.points.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |e, p| [e[0].min(p[0] - r), e[1].min(p[1] - r), e[2].max(p[0] + r), e[3].max(p[1] + r)])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrokeSet {
    /// The classes a model trained on these strokes has, background (class 0) first.
    pub classes: Vec<ClassInfo>,
    pub strokes: Vec<Stroke>,
    /// The name of the image the strokes were painted on (not its pixels).
    pub image: String,
    /// When the page trained: the number of strokes at each update, in order. Empty means after
    /// every stroke. `histoseg train --strokes` replays the same updates.
    pub updates: Vec<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StrokeError {
    #[error("the strokes file is not JSON: {0}")]
    NotJson(String),
    #[error("the strokes file is not a GeoJSON FeatureCollection")]
    NotCollection,
    #[error("stroke {0}: {1}")]
    BadStroke(usize, String),
    #[error("the strokes name {0} class(es); a model needs at least two (for example the tissue to find and everything else)")]
    TooFewClasses(usize),
    #[error("the strokes file has no painted stroke")]
    Empty,
}

fn color_of(v: &Value) -> Option<[u8; 3]> {
    let c = v.as_array()?;
    let mut out = [0u8; 3];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::try_from(c.get(i)?.as_u64()?).ok()?;
    }
    (c.len() == 3).then_some(out)
}

impl StrokeSet {
    pub fn new(classes: Vec<ClassInfo>, image: &str) -> Self {
        Self { classes, strokes: Vec::new(), image: image.to_string(), updates: Vec::new() }
    }

    /// Strokes that paint a class (not the eraser).
    pub fn painted(&self) -> usize {
        self.strokes.iter().filter(|s| s.class.is_some()).count()
    }

    /// The strokes as a GeoJSON FeatureCollection that QuPath opens as line annotations.
    pub fn to_geojson(&self) -> String {
        let features: Vec<Value> = self
            .strokes
            .iter()
            .map(|s| {
                let mut coords: Vec<[f64; 2]> = s.points.clone();
                if coords.len() == 1 {
                    coords.push(coords[0]);
                }
                let mut props = json!({ "objectType": "annotation", "histoseg": { "brush_radius_px": s.radius, "erase": s.class.is_none() } });
                if let Some(c) = s.class {
                    let info = &self.classes[c as usize];
                    props["classification"] = json!({ "name": info.name, "color": info.color });
                }
                json!({ "type": "Feature", "geometry": { "type": "LineString", "coordinates": coords }, "properties": props })
            })
            .collect();
        let classes: Vec<Value> = self.classes.iter().map(|c| json!({ "name": c.name, "color": c.color })).collect();
        serde_json::to_string(&json!({
            "type": "FeatureCollection",
            "histoseg": { "kind": "strokes", "image": self.image, "classes": classes, "updates": self.updates },
            "features": features,
        }))
        .expect("strokes serialise")
    }

    /// Reads strokes written by [`Self::to_geojson`], or line annotations from QuPath: classes come
    /// from the collection's list, else in order of first appearance (name them background first).
    pub fn from_geojson(text: &str) -> Result<Self, StrokeError> {
        let v: Value = serde_json::from_str(text).map_err(|e| StrokeError::NotJson(e.to_string()))?;
        if v["type"] != "FeatureCollection" || !v["features"].is_array() {
            return Err(StrokeError::NotCollection);
        }
        let mut classes: Vec<ClassInfo> = Vec::new();
        if let Some(list) = v["histoseg"]["classes"].as_array() {
            for (i, c) in list.iter().enumerate() {
                let name = c["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| StrokeError::BadStroke(i, "a class in the list has no name".into()))?;
                let color = color_of(&c["color"]).ok_or_else(|| StrokeError::BadStroke(i, format!("class '{name}' has no [r, g, b] colour")))?;
                classes.push(ClassInfo { name: name.to_string(), color });
            }
        }
        let mut strokes = Vec::new();
        for (i, f) in v["features"].as_array().expect("checked").iter().enumerate() {
            let bad = |m: &str| StrokeError::BadStroke(i + 1, m.to_string());
            let geometry = &f["geometry"];
            let point = |p: &Value| p.as_array().and_then(|p| Some([p.first()?.as_f64()?, p.get(1)?.as_f64()?]));
            let points: Vec<[f64; 2]> = match geometry["type"].as_str() {
                Some("LineString") => geometry["coordinates"].as_array().ok_or_else(|| bad("a LineString without coordinates"))?.iter().map(point).collect::<Option<_>>().ok_or_else(|| bad("a coordinate is not [x, y]"))?,
                Some("Point") => vec![point(&geometry["coordinates"]).ok_or_else(|| bad("a Point without [x, y]"))?],
                other => return Err(bad(&format!("a {} is not a stroke (LineString or Point)", other.unwrap_or("feature without geometry")))),
            };
            if points.is_empty() || points.iter().flatten().any(|c| !c.is_finite()) {
                return Err(bad("no points, or a coordinate that is not a finite number"));
            }
            let props = &f["properties"];
            let radius = props["histoseg"]["brush_radius_px"].as_f64().unwrap_or(4.0);
            if !(radius > 0.0 && radius <= 4096.0) {
                return Err(bad(&format!("brush radius {radius} px is outside 0 to 4096")));
            }
            let class = if props["histoseg"]["erase"].as_bool() == Some(true) {
                None
            } else {
                let c = &props["classification"];
                let name = c["name"].as_str().ok_or_else(|| bad("no classification name (and not an eraser stroke)"))?;
                let index = match classes.iter().position(|k| k.name == name) {
                    Some(k) => k,
                    None => {
                        classes.push(ClassInfo { name: name.to_string(), color: color_of(&c["color"]).unwrap_or([255, 255, 0]) });
                        classes.len() - 1
                    }
                };
                Some(u8::try_from(index).map_err(|_| bad("more than 256 classes"))?)
            };
            strokes.push(Stroke { class, radius, points });
        }
        if classes.len() < 2 {
            return Err(StrokeError::TooFewClasses(classes.len()));
        }
        let updates: Vec<usize> = match v["histoseg"]["updates"].as_array() {
            Some(list) => list.iter().map(|u| u.as_u64().map(|u| u as usize)).collect::<Option<_>>().ok_or(StrokeError::BadStroke(0, "'updates' must be stroke counts".into()))?,
            None => Vec::new(),
        };
        if updates.windows(2).any(|w| w[0] > w[1]) || updates.last().is_some_and(|&u| u > strokes.len()) {
            return Err(StrokeError::BadStroke(0, format!("'updates' {updates:?} must be rising stroke counts up to {}", strokes.len())));
        }
        let set = Self { classes, strokes, image: v["histoseg"]["image"].as_str().unwrap_or("").to_string(), updates };
        if set.painted() == 0 {
            return Err(StrokeError::Empty);
        }
        Ok(set)
    }

    /// The stroke counts after which the head is trained: [`Self::updates`], or every stroke.
    pub fn update_points(&self) -> Vec<usize> {
        if self.updates.is_empty() { (1..=self.strokes.len()).collect() } else { self.updates.clone() }
    }

    /// The first `n` strokes.
    pub fn first(&self, n: usize) -> StrokeSet {
        StrokeSet { strokes: self.strokes[..n.min(self.strokes.len())].to_vec(), updates: Vec::new(), ..self.clone() }
    }

    /// Level-0 bounding box `(x0, y0, x1, y1)` of everything painted, brush included.
    pub fn bounds(&self) -> Option<[f64; 4]> {
        self.strokes.iter().filter(|s| s.class.is_some()).map(Stroke::bounds).reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
    }

    /// Paints the strokes onto a `width` x `height` grid whose pixel `(i, j)` is centred on level-0
    /// `(x0 + (i + 0.5) * scale, y0 + (j + 0.5) * scale)`: 0 where nothing is painted, else the
    /// class + 1. A pixel is painted when its centre lies within the brush radius of the path.
    pub fn rasterize(&self, x0: f64, y0: f64, scale: f64, width: usize, height: usize) -> Vec<u8> {
        let mut out = vec![0u8; width * height];
        for s in &self.strokes {
            let value = s.class.map_or(0, |c| c + 1);
            let segments: Vec<([f64; 2], [f64; 2])> = if s.points.len() == 1 { vec![(s.points[0], s.points[0])] } else { s.points.windows(2).map(|w| (w[0], w[1])).collect() };
            for (a, b) in segments {
                let to_grid = |v: f64, origin: f64| (v - origin) / scale - 0.5;
                let r = s.radius / scale;
                let (gx0, gx1) = (to_grid(a[0].min(b[0]), x0) - r, to_grid(a[0].max(b[0]), x0) + r);
                let (gy0, gy1) = (to_grid(a[1].min(b[1]), y0) - r, to_grid(a[1].max(b[1]), y0) + r);
                if gx1 < 0.0 || gy1 < 0.0 || gx0 > width as f64 || gy0 > height as f64 {
                    continue;
                }
                let (i0, i1) = (gx0.ceil().max(0.0) as usize, (gx1.floor() as usize).min(width.saturating_sub(1)));
                let (j0, j1) = (gy0.ceil().max(0.0) as usize, (gy1.floor() as usize).min(height.saturating_sub(1)));
                let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
                let len2 = dx * dx + dy * dy;
                for j in j0..=j1 {
                    let py = y0 + (j as f64 + 0.5) * scale;
                    for i in i0..=i1 {
                        let px = x0 + (i as f64 + 0.5) * scale;
                        let t = if len2 > 0.0 { (((px - a[0]) * dx + (py - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                        let (ex, ey) = (px - (a[0] + t * dx), py - (a[1] + t * dy));
                        if ex * ex + ey * ey <= s.radius * s.radius {
                            out[j * width + i] = value;
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<ClassInfo> {
        vec![ClassInfo { name: "stroma".into(), color: [200, 0, 200] }, ClassInfo { name: "gland".into(), color: [0, 200, 80] }]
    }

    #[test]
    fn geojson_round_trips_and_names_every_class() {
        let mut set = StrokeSet::new(classes(), "slide.svs");
        set.strokes.push(Stroke { class: Some(1), radius: 6.0, points: vec![[10.0, 10.0], [50.5, 12.25]] });
        set.strokes.push(Stroke { class: Some(0), radius: 3.0, points: vec![[80.0, 80.0]] });
        set.strokes.push(Stroke { class: None, radius: 2.0, points: vec![[30.0, 10.0], [30.0, 12.0]] });
        assert_eq!(set.update_points(), [1, 2, 3]);
        set.updates = vec![2, 3];
        let text = set.to_geojson();
        let back = StrokeSet::from_geojson(&text).unwrap();
        assert_eq!(back.updates, [2, 3]);
        assert_eq!(back.classes, set.classes);
        assert_eq!(back.image, "slide.svs");
        assert_eq!(back.strokes[0], set.strokes[0]);
        // a dab is written as a two-point line (QuPath wants two), which paints the same pixels
        assert_eq!(back.strokes[1].points, vec![[80.0, 80.0], [80.0, 80.0]]);
        assert_eq!(back.rasterize(0.0, 0.0, 1.0, 100, 100), set.rasterize(0.0, 0.0, 1.0, 100, 100));
        // QuPath's own export has no class list: classes follow first appearance
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("histoseg");
        let bare = StrokeSet::from_geojson(&v.to_string()).unwrap();
        assert_eq!(bare.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["gland", "stroma"]);
        assert_eq!(bare.strokes[0].class, Some(0));
    }

    #[test]
    fn bad_strokes_files_say_what_is_wrong() {
        assert!(matches!(StrokeSet::from_geojson("nope"), Err(StrokeError::NotJson(_))));
        assert_eq!(StrokeSet::from_geojson(r#"{"type":"Feature"}"#), Err(StrokeError::NotCollection));
        let one = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[5,5]]},"properties":{"classification":{"name":"gland"}}}]}"#;
        assert_eq!(StrokeSet::from_geojson(one), Err(StrokeError::TooFewClasses(1)));
        let poly = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[]},"properties":{}}]}"#;
        let err = StrokeSet::from_geojson(poly).unwrap_err().to_string();
        assert!(err.contains("stroke 1") && err.contains("Polygon"), "{err}");
        let nan = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,"x"]]},"properties":{}}]}"#;
        assert!(StrokeSet::from_geojson(nan).unwrap_err().to_string().contains("[x, y]"));
    }

    #[test]
    fn rasterize_paints_within_the_radius_erases_and_scales() {
        let mut set = StrokeSet::new(classes(), "");
        set.strokes.push(Stroke { class: Some(1), radius: 2.0, points: vec![[10.0, 10.0], [20.0, 10.0]] });
        let m = set.rasterize(0.0, 0.0, 1.0, 32, 32);
        // pixel centres within 2 px of the segment from (10,10) to (20,10)
        let expected = |i: usize, j: usize| {
            let (x, y) = (i as f64 + 0.5, j as f64 + 0.5);
            let t = ((x - 10.0) / 10.0).clamp(0.0, 1.0);
            let (ex, ey) = (x - (10.0 + 10.0 * t), y - 10.0);
            ex * ex + ey * ey <= 4.0
        };
        for j in 0..32 {
            for i in 0..32 {
                assert_eq!(m[j * 32 + i], if expected(i, j) { 2 } else { 0 }, "pixel {i},{j}");
            }
        }
        // the eraser clears under it, and a grid at half resolution with an offset sees the same paths
        set.strokes.push(Stroke { class: None, radius: 3.0, points: vec![[15.0, 10.0]] });
        let m = set.rasterize(0.0, 0.0, 1.0, 32, 32);
        assert_eq!(m[9 * 32 + 15], 0);
        assert_eq!(m[9 * 32 + 10], 2);
        let half = set.rasterize(8.0, 8.0, 2.0, 8, 8);
        assert_eq!(half[0], 2); // centre (9, 9): 1.4 px from the path's end, 6.1 from the eraser
        assert_eq!(half[2], 0); // centre (13, 9): 2.2 px from the eraser
        assert_eq!(half[5], 2); // centre (19, 9): 4.1 px from the eraser, 1 from the path
        assert_eq!(half[8 + 1], 2); // centre (11, 11): 1 px from the path
        assert_eq!(half[16 + 1], 0); // centre (11, 13): 3 px from the path

    }
}
