//! Colouring a label mask for display: each class gets its colour, background (class 0) stays
//! transparent. Classes can be hidden, and drawn filled or as contours. Opacity is applied by the
//! page when it composites the layer.

/// How classes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fill,
    /// Only the pixels on a region's border (any of the 8 neighbours has another class).
    Contour,
}

/// RGBA overlay of `labels` (`width` x `height`): visible classes in `colors[class]`, filled or
/// as contours; background, hidden classes and (in contour mode) region interiors transparent.
pub fn render(labels: &[u8], width: usize, height: usize, colors: &[[u8; 3]], visible: &[bool], mode: Mode) -> Vec<u8> {
    let mut out = vec![0u8; labels.len() * 4];
    for y in 0..height {
        for x in 0..width {
            let l = labels[y * width + x];
            if l == 0 || !visible.get(l as usize).copied().unwrap_or(true) {
                continue;
            }
            if mode == Mode::Contour {
                let (x0, x1) = (x.saturating_sub(1), (x + 1).min(width - 1));
                let (y0, y1) = (y.saturating_sub(1), (y + 1).min(height - 1));
                let edge = x == 0 || y == 0 || x == width - 1 || y == height - 1;
                let border = edge || (y0..=y1).any(|yy| (x0..=x1).any(|xx| labels[yy * width + xx] != l));
                if !border {
                    continue;
                }
            }
            let [r, g, b] = colors.get(l as usize).copied().unwrap_or([255, 0, 255]);
            out[(y * width + x) * 4..][..4].copy_from_slice(&[r, g, b, 255]);
        }
    }
    out
}

/// Number of pixels of each class.
pub fn class_areas(labels: &[u8], classes: usize) -> Vec<u64> {
    let mut areas = vec![0u64; classes];
    for &l in labels {
        if let Some(a) = areas.get_mut(l as usize) {
            *a += 1;
        }
    }
    areas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_is_transparent_and_classes_coloured() {
        let colors = [[0, 0, 0], [10, 20, 30], [40, 50, 60]];
        assert_eq!(render(&[0, 1, 2], 3, 1, &colors, &[true; 3], Mode::Fill), vec![0, 0, 0, 0, 10, 20, 30, 255, 40, 50, 60, 255]);
        assert_eq!(class_areas(&[0, 1, 1, 2], 3), vec![1, 2, 1]);
        assert_eq!(render(&[0, 1, 2], 3, 1, &colors, &[true, false, true], Mode::Fill)[4..8], [0, 0, 0, 0], "hidden class");
    }

    #[test]
    fn contours_keep_only_region_borders() {
        // a 5x5 block of class 1 inside a 7x7 background: 16 border pixels, 9 interior
        let mut labels = vec![0u8; 49];
        for y in 1..6 {
            for x in 1..6 {
                labels[y * 7 + x] = 1;
            }
        }
        let o = render(&labels, 7, 7, &[[0, 0, 0], [200, 0, 0]], &[true, true], Mode::Contour);
        let drawn = o.chunks_exact(4).filter(|p| p[3] > 0).count();
        assert_eq!(drawn, 16);
        assert_eq!(o[(3 * 7 + 3) * 4 + 3], 0, "the centre is not drawn");
    }
}
