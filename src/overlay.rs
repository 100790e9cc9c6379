//! Colouring a label mask for display: each class gets its manifest colour, background (class 0)
//! stays transparent. Opacity is applied by the page when it composites the layer.

/// RGBA overlay of `labels` with `colors[class]`; class 0 is fully transparent.
pub fn label_overlay(labels: &[u8], colors: &[[u8; 3]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * 4);
    for &l in labels {
        if l == 0 {
            out.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            let [r, g, b] = colors.get(l as usize).copied().unwrap_or([255, 0, 255]);
            out.extend_from_slice(&[r, g, b, 255]);
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
        let o = label_overlay(&[0, 1, 2], &[[0, 0, 0], [10, 20, 30], [40, 50, 60]]);
        assert_eq!(o, vec![0, 0, 0, 0, 10, 20, 30, 255, 40, 50, 60, 255]);
        assert_eq!(class_areas(&[0, 1, 1, 2], 3), vec![1, 2, 1]);
    }
}
