//! The one path from per-pixel class labels to objects, used alike by `eval`, the CLI's exports
//! and the page's objects, counts, CSV and GeoJSON:
//!
//! 1. **Objects** are 8-connected: two pixels of a class that touch at an edge or a corner belong
//!    to one object ([`CONNECTIVITY`]; background regions, the complement, are 4-connected).
//! 2. **Instance-aware models** (a manifest with a `boundary_class`, trained on background /
//!    interior / boundary) are separated by a marker watershed: the markers are the 8-connected
//!    components of the interior classes, and every boundary pixel joins the marker it is
//!    nearest to through the object's own pixels (a breadth-first flood from all markers at
//!    once, in scan order on ties). A boundary-only component with no marker is one object of
//!    the first interior class. Boundary pixels then take their object's class, so no pixel is
//!    left labelled "boundary".
//! 3. **Hole filling**: a background region that does not reach the border of the image and is
//!    enclosed by one object alone becomes part of that object.
//! 4. **Minimum size**: objects smaller than `min_object_um2` (at the labels' µm/px) are removed
//!    (their pixels become background).
//!
//! Pure Rust, no platform code.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How a model's labels become objects; recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostprocessConfig {
    /// The class that marks the boundary between touching objects, if the model has one.
    #[serde(default)]
    pub boundary_class: Option<u8>,
    /// Objects smaller than this (µm²) are removed.
    #[serde(default)]
    pub min_object_um2: f64,
    /// Fill background holes enclosed by one object.
    #[serde(default)]
    pub fill_holes: bool,
    /// Glass beside the tissue becomes background before any of this ([`crate::tissue`]); the
    /// segmentation applies it, where the image's pixels are.
    #[serde(default)]
    pub glass: Option<crate::tissue::GlassConfig>,
}

impl Default for PostprocessConfig {
    /// What models written before this existed get: plain connected components, nothing removed.
    fn default() -> Self {
        Self { boundary_class: None, min_object_um2: 0.0, fill_holes: false, glass: None }
    }
}

/// The definition of "touching" for objects (see the module comment).
pub const CONNECTIVITY: &str = "8-connected objects, 4-connected background";

/// Objects of a segmentation: semantic labels (no boundary class left) and an instance map.
#[derive(Debug, Clone, PartialEq)]
pub struct Instances {
    pub width: usize,
    pub height: usize,
    /// Class per pixel after post-processing.
    pub labels: Vec<u8>,
    /// Object id per pixel, 0 for background, `1..=count` in order of first pixel.
    pub ids: Vec<u32>,
    /// Class of each object, index `id - 1`.
    pub classes: Vec<u8>,
}

impl Instances {
    pub fn count(&self) -> usize {
        self.classes.len()
    }
}

const N8: [(isize, isize); 8] = [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)];
pub(crate) const N4: [(isize, isize); 4] = [(0, -1), (-1, 0), (1, 0), (0, 1)];

fn neighbours(i: usize, width: usize, height: usize, offsets: &'static [(isize, isize)]) -> impl Iterator<Item = usize> {
    let (x, y) = ((i % width) as isize, (i / width) as isize);
    offsets.iter().filter_map(move |&(dx, dy)| {
        let (nx, ny) = (x + dx, y + dy);
        (nx >= 0 && ny >= 0 && (nx as usize) < width && (ny as usize) < height).then(|| ny as usize * width + nx as usize)
    })
}

/// Components of the pixels where `member` holds, numbered from 1 in scan order; 0 elsewhere.
/// Two member pixels join when `same` says so for the pair (e.g. the same class).
pub(crate) fn components(width: usize, height: usize, offsets: &'static [(isize, isize)], member: impl Fn(usize) -> bool, same: impl Fn(usize, usize) -> bool) -> (Vec<u32>, u32) {
    let mut ids = vec![0u32; width * height];
    let mut next = 0u32;
    let mut queue = VecDeque::new();
    for start in 0..ids.len() {
        if ids[start] != 0 || !member(start) {
            continue;
        }
        next += 1;
        ids[start] = next;
        queue.push_back(start);
        while let Some(p) = queue.pop_front() {
            for n in neighbours(p, width, height, offsets) {
                if ids[n] == 0 && member(n) && same(p, n) {
                    ids[n] = next;
                    queue.push_back(n);
                }
            }
        }
    }
    (ids, next)
}

/// Applies the whole path to `labels` (`width` x `height`, class per pixel) at `um_per_px`.
pub fn apply(labels: &[u8], width: usize, height: usize, config: &PostprocessConfig, um_per_px: f64) -> Instances {
    assert_eq!(labels.len(), width * height, "labels must be width x height");
    let boundary = config.boundary_class.filter(|&b| b != 0);
    let is_interior = |i: usize| labels[i] != 0 && Some(labels[i]) != boundary;
    // 1. markers: 8-connected components of each interior class
    let (mut ids, count) = components(width, height, &N8, is_interior, |a, b| labels[a] == labels[b]);
    let mut classes: Vec<u8> = vec![0; count as usize];
    for (i, &id) in ids.iter().enumerate() {
        if id != 0 {
            classes[id as usize - 1] = labels[i];
        }
    }
    // 2. boundary pixels join the nearest marker through foreground pixels
    if let Some(b) = boundary {
        let mut queue: VecDeque<usize> = (0..ids.len()).filter(|&i| ids[i] != 0).collect();
        while let Some(p) = queue.pop_front() {
            for n in neighbours(p, width, height, &N8) {
                if ids[n] == 0 && labels[n] == b {
                    ids[n] = ids[p];
                    queue.push_back(n);
                }
            }
        }
        // boundary pixels no marker reached: their own objects
        let first_interior = (1..=u8::MAX).find(|&c| c != b).unwrap_or(1);
        let (orphans, n) = components(width, height, &N8, |i| ids[i] == 0 && labels[i] == b, |_, _| true);
        let base = classes.len() as u32;
        for (i, &o) in orphans.iter().enumerate() {
            if o != 0 {
                ids[i] = base + o;
            }
        }
        classes.extend(std::iter::repeat_n(first_interior, n as usize));
    }
    // 3. holes: background regions off the border, enclosed by one object
    if config.fill_holes {
        let (holes, n) = components(width, height, &N4, |i| ids[i] == 0, |_, _| true);
        // per hole: the one enclosing object, or u32::MAX when it touches the border or several
        let mut encloser = vec![0u32; n as usize + 1];
        for (i, &h) in holes.iter().enumerate() {
            if h == 0 {
                continue;
            }
            let (x, y) = (i % width, i / width);
            if x == 0 || y == 0 || x + 1 == width || y + 1 == height {
                encloser[h as usize] = u32::MAX;
            }
            for nb in neighbours(i, width, height, &N4) {
                let id = ids[nb];
                if id != 0 {
                    let e = &mut encloser[h as usize];
                    *e = if *e == 0 || *e == id { id } else { u32::MAX };
                }
            }
        }
        for (i, &h) in holes.iter().enumerate() {
            let e = encloser[h as usize];
            if h != 0 && e != 0 && e != u32::MAX {
                ids[i] = e;
            }
        }
    }
    // 4. minimum size, then consecutive ids in order of first pixel
    let mut area = vec![0u64; classes.len() + 1];
    for &id in &ids {
        area[id as usize] += 1;
    }
    let min_px = config.min_object_um2 / (um_per_px * um_per_px);
    let mut renumber = vec![0u32; classes.len() + 1];
    let mut kept_classes = Vec::new();
    for id in ids.iter_mut() {
        if *id == 0 {
            continue;
        }
        let old = *id as usize;
        if (area[old] as f64) < min_px {
            *id = 0;
            continue;
        }
        if renumber[old] == 0 {
            kept_classes.push(classes[old - 1]);
            renumber[old] = kept_classes.len() as u32;
        }
        *id = renumber[old];
    }
    let labels = ids.iter().map(|&id| if id == 0 { 0 } else { kept_classes[id as usize - 1] }).collect();
    Instances { width, height, labels, ids, classes: kept_classes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let labels = rows.iter().flat_map(|r| r.bytes().map(|b| if b == b'.' { 0 } else { b - b'0' })).collect();
        (labels, w, rows.len())
    }

    fn ids_of(inst: &Instances) -> Vec<String> {
        inst.ids.chunks(inst.width).map(|r| r.iter().map(|&i| if i == 0 { '.' } else { char::from(b'0' + i as u8) }).collect()).collect()
    }

    #[test]
    fn diagonal_pixels_are_one_object() {
        let (l, w, h) = grid(&["1..", ".1.", "..1"]);
        let inst = apply(&l, w, h, &PostprocessConfig::default(), 1.0);
        assert_eq!(inst.count(), 1, "8-connectivity joins corners");
    }

    #[test]
    fn touching_objects_are_split_at_their_boundary() {
        // two interiors (1) joined by a band of boundary (2): one blob as semantics, two objects
        let (l, w, h) = grid(&[
            "22222222",
            "21112112",
            "21112112",
            "22222222",
        ]);
        let cfg = PostprocessConfig { boundary_class: Some(2), ..PostprocessConfig::default() };
        let inst = apply(&l, w, h, &cfg, 1.0);
        assert_eq!(inst.count(), 2);
        assert_eq!(ids_of(&inst), vec!["11111222", "11111222", "11111222", "11111222"], "ties go to the first marker in scan order");
        assert!(inst.labels.iter().all(|&c| c == 1), "boundary pixels take their object's class");
        // without the boundary class it is one object of class 1 and one of class 2... per class
        let plain = apply(&l, w, h, &PostprocessConfig::default(), 1.0);
        assert_eq!(plain.count(), 3);
    }

    #[test]
    fn holes_are_filled_and_small_objects_removed() {
        let (l, w, h) = grid(&[
            "1111....",
            "1..1....",
            "1111..1.",
            "........",
        ]);
        let cfg = PostprocessConfig { boundary_class: None, min_object_um2: 2.0, fill_holes: true, glass: None };
        let inst = apply(&l, w, h, &cfg, 1.0);
        assert_eq!(inst.count(), 1, "the 1-pixel object is under 2 µm²");
        assert_eq!(ids_of(&inst), vec!["1111....", "1111....", "1111....", "........"]);
        // the same pixel survives at a coarser resolution (1 px = 4 µm²)
        assert_eq!(apply(&l, w, h, &cfg, 2.0).count(), 2);
        // a hole open to the border is not a hole
        let (l, w, h) = grid(&["1.11", "1..1", "1111"]);
        let inst = apply(&l, w, h, &cfg, 1.0);
        assert_eq!(inst.labels.iter().filter(|&&c| c == 0).count(), 3);
    }

    #[test]
    fn an_orphan_boundary_component_is_an_object() {
        let (l, w, h) = grid(&["22..", "22..", "...."]);
        let cfg = PostprocessConfig { boundary_class: Some(2), ..PostprocessConfig::default() };
        let inst = apply(&l, w, h, &cfg, 1.0);
        assert_eq!(inst.classes, vec![1]);
        assert_eq!(inst.labels.iter().filter(|&&c| c == 1).count(), 4);
    }
}
