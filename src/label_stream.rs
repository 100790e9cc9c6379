//! Post-processing and object export of a label image that arrives a row at a time, so a whole
//! slide's labels never have to be held at once.
//!
//! Every step of [`crate::postprocess`] stays inside a *cluster*: an 8-connected set of pixels
//! that are not background (whatever their classes). The watershed floods through a cluster's
//! own pixels, a filled hole lies inside the cluster that encloses it, and the size rule is per
//! object. So when a cluster is closed (a row arrives that does not touch it), it is
//! post-processed alone, in its bounding box with a one-pixel frame, with the raw labels of
//! everything else in that box; the pixels it owns afterwards (its objects and their filled
//! holes) take the result. This gives exactly the labels and objects of [`crate::postprocess::apply`]
//! over the whole image, and objects that cross any tile or band border are one object.
//!
//! Raw rows are kept run-length encoded and dropped once no open cluster can reach them;
//! finished rows leave in order ([`ObjectStream::take_rows`]) once no open cluster can still
//! change them. Memory follows the open clusters, not the image.

use std::collections::{HashSet, VecDeque};

use crate::export::{Object, traced};
use crate::postprocess::{PostprocessConfig, apply};

/// A run of one class in a row: first column, length, class (never background).
type Run = (u32, u32, u8);

fn encode(row: &[u8]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut x = 0;
    while x < row.len() {
        let c = row[x];
        let start = x;
        while x < row.len() && row[x] == c {
            x += 1;
        }
        if c != 0 {
            runs.push((start as u32, (x - start) as u32, c));
        }
    }
    runs
}

/// Columns `x0..x1` of an encoded row into `out`.
fn decode_into(runs: &[Run], x0: usize, out: &mut [u8]) {
    let x1 = x0 + out.len();
    for &(s, n, c) in runs {
        let (s, e) = (s as usize, (s + n) as usize);
        if e <= x0 || s >= x1 {
            continue;
        }
        out[s.max(x0) - x0..e.min(x1) - x0].fill(c);
    }
}

/// Runs of foreground (any class), `(start, end)` exclusive, from a row's class runs.
fn foreground(runs: &[Run]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &(s, n, _) in runs {
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = s + n,
            _ => out.push((s, s + n)),
        }
    }
    out
}

struct Cluster {
    /// `[x0, y0, x1, y1]`, inclusive.
    bbox: [usize; 4],
    /// Its first pixel `(y, x)` in scan order.
    seed: (usize, usize),
}

/// One object of a streamed label image, with its first pixel `(y, x)` (objects are numbered in
/// that order, as [`crate::postprocess::Instances`] numbers them).
pub struct StreamedObject {
    pub first: (usize, usize),
    pub object: Object,
}

pub struct ObjectStream {
    width: usize,
    height: usize,
    config: PostprocessConfig,
    um_per_px: f64,
    /// Raw rows from `raw_top` on.
    raw: VecDeque<Vec<Run>>,
    raw_top: usize,
    /// Finished rows from `done_top` on: runs owned by closed clusters, in no order.
    done: VecDeque<Vec<Run>>,
    done_top: usize,
    /// Union-find over cluster ids; the root holds the cluster.
    parent: Vec<u32>,
    clusters: Vec<Option<Cluster>>,
    /// The previous row's foreground runs and their cluster ids.
    previous: Vec<(u32, u32, u32)>,
    objects: Vec<StreamedObject>,
    areas: Vec<u64>,
    ready: VecDeque<Vec<u8>>,
}

impl ObjectStream {
    /// A stream of `height` rows of `width` labels at `um_per_px`, post-processed with `config`.
    pub fn new(width: usize, height: usize, classes: usize, config: PostprocessConfig, um_per_px: f64) -> Self {
        Self {
            width,
            height,
            config,
            um_per_px,
            raw: VecDeque::new(),
            raw_top: 0,
            done: VecDeque::new(),
            done_top: 0,
            parent: Vec::new(),
            clusters: Vec::new(),
            previous: Vec::new(),
            objects: Vec::new(),
            areas: vec![0; classes.max(1)],
            ready: VecDeque::new(),
        }
    }

    /// Rows pushed so far.
    pub fn rows_in(&self) -> usize {
        self.raw_top + self.raw.len()
    }

    fn root(&mut self, mut id: u32) -> u32 {
        while self.parent[id as usize] != id {
            let up = self.parent[self.parent[id as usize] as usize];
            self.parent[id as usize] = up;
            id = up;
        }
        id
    }

    fn join(&mut self, a: u32, b: u32) -> u32 {
        let (a, b) = (self.root(a), self.root(b));
        if a == b {
            return a;
        }
        let (keep, gone) = if a < b { (a, b) } else { (b, a) };
        self.parent[gone as usize] = keep;
        let g = self.clusters[gone as usize].take().expect("a root holds its cluster");
        let k = self.clusters[keep as usize].as_mut().expect("a root holds its cluster");
        k.bbox = [k.bbox[0].min(g.bbox[0]), k.bbox[1].min(g.bbox[1]), k.bbox[2].max(g.bbox[2]), k.bbox[3].max(g.bbox[3])];
        k.seed = k.seed.min(g.seed);
        keep
    }

    /// The next row of raw labels (class per pixel, after the glass rule).
    pub fn push_row(&mut self, row: &[u8]) {
        assert_eq!(row.len(), self.width, "a row of the stream's width");
        let y = self.rows_in();
        assert!(y < self.height, "more rows than the stream's height");
        let runs = encode(row);
        let fg = foreground(&runs);
        self.raw.push_back(runs);
        self.done.push_back(Vec::new());
        // join each run with the previous row's runs it touches (8-connected)
        let mut current = Vec::with_capacity(fg.len());
        let mut j = 0;
        for &(s, e) in &fg {
            while j < self.previous.len() && self.previous[j].1 < s {
                j += 1;
            }
            let mut id = None;
            let mut k = j;
            while k < self.previous.len() && self.previous[k].0 <= e {
                let other = self.previous[k].2;
                id = Some(match id {
                    None => self.root(other),
                    Some(mine) => self.join(mine, other),
                });
                k += 1;
            }
            let id = match id {
                Some(id) => {
                    let c = self.clusters[id as usize].as_mut().expect("a root holds its cluster");
                    c.bbox = [c.bbox[0].min(s as usize), c.bbox[1], c.bbox[2].max(e as usize - 1), y];
                    id
                }
                None => {
                    let id = self.parent.len() as u32;
                    self.parent.push(id);
                    self.clusters.push(Some(Cluster { bbox: [s as usize, y, e as usize - 1, y], seed: (y, s as usize) }));
                    id
                }
            };
            current.push((s, e, id));
        }
        // clusters of the previous row that this row does not touch are closed
        let open: HashSet<u32> = current.iter().map(|r| r.2).collect::<Vec<_>>().into_iter().map(|id| self.root(id)).collect();
        let previous = std::mem::replace(&mut self.previous, current);
        let mut closed: Vec<u32> = previous.iter().map(|r| r.2).collect::<Vec<_>>().into_iter().map(|id| self.root(id)).filter(|r| !open.contains(r)).collect();
        closed.sort_unstable();
        closed.dedup();
        for id in closed {
            self.close(id);
        }
        if self.rows_in() == self.height {
            let last: Vec<u32> = self.previous.iter().map(|r| r.2).collect::<Vec<_>>().into_iter().map(|id| self.root(id)).collect();
            let mut last = last;
            last.sort_unstable();
            last.dedup();
            for id in last {
                self.close(id);
            }
            self.previous.clear();
        }
        self.release();
    }

    /// Post-processes a closed cluster in its box and writes the pixels it owns.
    fn close(&mut self, id: u32) {
        let Cluster { bbox, seed } = self.clusters[id as usize].take().expect("a closed cluster is a root");
        let x0 = bbox[0].saturating_sub(1);
        let y0 = bbox[1].saturating_sub(1);
        let x1 = (bbox[2] + 2).min(self.width);
        let y1 = (bbox[3] + 2).min(self.height).min(self.rows_in());
        let (w, h) = (x1 - x0, y1 - y0);
        let mut labels = vec![0u8; w * h];
        for (r, out) in labels.chunks_exact_mut(w).enumerate() {
            decode_into(&self.raw[y0 + r - self.raw_top], x0, out);
        }
        // the cluster's pixels: 8-connected foreground from its first pixel
        let mut mine = vec![false; w * h];
        let start = (seed.0 - y0) * w + seed.1 - x0;
        let mut queue = vec![start];
        mine[start] = true;
        while let Some(p) = queue.pop() {
            let (px, py) = ((p % w) as isize, (p / w) as isize);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (nx, ny) = (px + dx, py + dy);
                    if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                        continue;
                    }
                    let n = ny as usize * w + nx as usize;
                    if !mine[n] && labels[n] != 0 {
                        mine[n] = true;
                        queue.push(n);
                    }
                }
            }
        }
        let instances = apply(&labels, w, h, &self.config, self.um_per_px);
        let ids: HashSet<u32> = instances.ids.iter().zip(&mine).filter(|&(&i, &m)| m && i != 0).map(|(&i, _)| i).collect();
        // the pixels its objects own (their own and their filled holes, all inside its box) take
        // the result
        for r in bbox[1] - y0..=bbox[3] - y0 {
            let row = &mut self.done[y0 + r - self.done_top];
            let mut x = 0;
            while x < w {
                let p = r * w + x;
                if !ids.contains(&instances.ids[p]) {
                    x += 1;
                    continue;
                }
                let c = instances.labels[p];
                let s = x;
                while x < w && ids.contains(&instances.ids[r * w + x]) && instances.labels[r * w + x] == c {
                    x += 1;
                }
                row.push(((x0 + s) as u32, (x - s) as u32, c));
            }
        }
        for (first, object) in traced(&instances, [x0, y0], |i| ids.contains(&i)) {
            self.objects.push(StreamedObject { first, object });
        }
    }

    /// Drops raw rows no open cluster can read and finishes rows no open cluster can change.
    fn release(&mut self) {
        // the open clusters are those of the newest row; a cluster grows downwards only
        let open: Vec<u32> = self.previous.iter().map(|r| r.2).collect();
        let open_top = open.into_iter().map(|id| {
            let r = self.root(id);
            self.clusters[r as usize].as_ref().expect("an open cluster is a root").bbox[1]
        }).min();
        let rows = self.rows_in();
        let top = open_top.unwrap_or(rows);
        // a box's frame reaches a row above it; a cluster starting in the next row reads this one
        while self.raw_top + 1 < top {
            self.raw.pop_front();
            self.raw_top += 1;
        }
        while self.done_top < top {
            let runs = self.done.pop_front().expect("a row per pushed row");
            let mut row = vec![0u8; self.width];
            for (s, n, c) in runs {
                row[s as usize..(s + n) as usize].fill(c);
            }
            for &c in &row {
                if let Some(a) = self.areas.get_mut(c as usize) {
                    *a += 1;
                }
            }
            self.ready.push_back(row);
            self.done_top += 1;
        }
    }

    /// Finished rows of labels after post-processing, in order, since the last call.
    pub fn take_rows(&mut self) -> Vec<Vec<u8>> {
        self.ready.drain(..).collect()
    }

    /// Rows finished so far (taken or not).
    pub fn rows_done(&self) -> usize {
        self.done_top
    }

    /// Pixels of each class in the finished rows.
    pub fn class_areas(&self) -> &[u64] {
        &self.areas
    }

    /// Every object, in the order [`crate::postprocess::apply`] numbers them. Call after the
    /// last row.
    pub fn objects(&mut self) -> Vec<Object> {
        assert_eq!(self.done_top, self.height, "objects are complete after the last row");
        let mut all = std::mem::take(&mut self.objects);
        all.sort_by_key(|o| o.first);
        all.into_iter().map(|o| o.object).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::objects;

    fn stream_all(labels: &[u8], w: usize, h: usize, classes: usize, config: &PostprocessConfig) -> (Vec<u8>, Vec<Object>, Vec<u64>) {
        let mut s = ObjectStream::new(w, h, classes, config.clone(), 0.5);
        let mut out = Vec::new();
        for row in labels.chunks_exact(w) {
            s.push_row(row);
            out.extend(s.take_rows().concat());
        }
        assert_eq!(out.len(), w * h);
        (out, s.objects(), s.class_areas().to_vec())
    }

    fn whole(labels: &[u8], w: usize, h: usize, config: &PostprocessConfig) -> (Vec<u8>, Vec<Object>) {
        let inst = apply(labels, w, h, config, 0.5);
        let objs = objects(&inst);
        (inst.labels, objs)
    }

    /// A picture with every case: a ring object with a hole, an island inside another ring's
    /// hole, boundary pixels between two interiors, an orphan boundary, a tiny object, objects on
    /// every image edge, and a diagonal (corner-touching) join.
    fn picture() -> (Vec<u8>, usize, usize) {
        let (w, h) = (40, 30);
        let mut l = vec![0u8; w * h];
        let mut set = |x: usize, y: usize, c: u8| l[y * w + x] = c;
        for y in 2..12 {
            for x in 2..12 {
                if !(5..9).contains(&x) || !(5..9).contains(&y) {
                    set(x, y, 1);
                }
            }
        }
        // an island in a second ring's hole
        for y in 14..26 {
            for x in 2..14 {
                if !(4..12).contains(&x) || !(16..24).contains(&y) {
                    set(x, y, 1);
                }
            }
        }
        set(7, 19, 1);
        set(8, 20, 1);
        // two interiors split by a boundary column, and an orphan boundary blob
        for y in 3..9 {
            for x in 16..28 {
                set(x, y, if x == 21 { 2 } else { 1 });
            }
        }
        set(30, 3, 2);
        set(31, 4, 2);
        // a tiny object and objects on the edges
        set(20, 15, 1);
        for x in 0..40 {
            set(x, 29, 1);
        }
        for y in 0..5 {
            set(39, y, 1);
        }
        // a staircase reaching down
        for i in 0..10 {
            set(25 + i, 12 + i, 1);
        }
        (l, w, h)
    }

    #[test]
    fn a_stream_gives_the_whole_image_labels_and_objects() {
        let (l, w, h) = picture();
        for config in [
            PostprocessConfig::default(),
            PostprocessConfig { boundary_class: Some(2), fill_holes: true, min_object_um2: 1.0, glass: None },
            PostprocessConfig { boundary_class: None, fill_holes: true, min_object_um2: 0.0, glass: None },
        ] {
            let (labels, objs, areas) = stream_all(&l, w, h, 3, &config);
            let (want_labels, want_objs) = whole(&l, w, h, &config);
            assert_eq!(labels, want_labels, "{config:?}");
            assert_eq!(objs, want_objs, "{config:?}");
            assert_eq!(areas, crate::overlay::class_areas(&want_labels, 3));
        }
    }

    #[test]
    fn rows_leave_before_the_end_and_raw_rows_are_dropped() {
        // a tall image of small separate blobs: rows must not pile up
        let (w, h) = (20, 400);
        let l: Vec<u8> = (0..w * h).map(|i| ((i / w) % 10 < 3 && (i % w) % 7 < 3) as u8).collect();
        let mut s = ObjectStream::new(w, h, 2, PostprocessConfig::default(), 0.5);
        let mut most = 0;
        for row in l.chunks_exact(w) {
            s.push_row(row);
            s.take_rows();
            most = most.max(s.raw.len()).max(s.done.len());
        }
        assert!(most <= 6, "rows held at once: {most}");
        assert_eq!(s.rows_done(), h);
        assert_eq!(s.objects().len(), 40 * 3);
    }
}
